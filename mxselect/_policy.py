"""The selection policy: one frozen, validated object with documented defaults (pure).

Every default comes from an anchor (Postfix, Exim, an RFC); docs/policy.md lists them.
"""

from __future__ import annotations

import bisect
import enum
import ipaddress
from collections.abc import Iterable

import attrs

__all__ = ["DEFAULT_UNSAFE_NETWORKS", "Dane", "Families", "InsecureMX", "Policy"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Families(enum.Enum):
    """Which address families to use, and how to order them within one preference level.

    Family preference never moves an address across preference levels (RFC 3974 §3,
    checklist N11, N22).
    """

    #: Both families, interleaved within each preference level (RFC 8305 §4, IPv6 first,
    #: ``first_family_count`` at a time), so an address limit never starves either family
    #: (Postfix ``smtp_address_preference = any`` with ``smtp_balance_inet_protocols``).
    ANY = "any"
    #: Both families; within each preference level every IPv6 address before any IPv4.
    PREFER_IPV6 = "prefer-ipv6"
    #: Both families; within each preference level every IPv4 address before any IPv6.
    PREFER_IPV4 = "prefer-ipv4"
    #: IPv4 only: AAAA is never queried (RFC 5321 §5.2).
    IPV4_ONLY = "ipv4-only"
    #: IPv6 only: A is never queried (RFC 5321 §5.2).
    IPV6_ONLY = "ipv6-only"


class Dane(enum.Enum):
    """Whether DANE (RFC 7672) decides how TLS is used with each MX host.

    With DANE on, the plan asks for TLSA records after the addresses (RFC 7672 §2.2.2) of
    the hosts whose addresses are DNSSEC-secure, and every target carries the
    :class:`~mxselect.TlsRequirement` that follows (RFC 7672 §2.2). It needs a resolver whose
    DNSSEC status the caller trusts (:class:`~mxselect.Security`).
    """

    #: No TLSA query; every target is opportunistic TLS (today's plan, query for query).
    OFF = "off"
    #: DANE where published: a host with a secure usable TLSA RRset must be reached over
    #: authenticated TLS; elsewhere opportunistic TLS (Postfix ``dane``, Exim
    #: ``hosts_try_dane``).
    OPPORTUNISTIC = "opportunistic"
    #: Only hosts with secure usable TLSA records are used; a domain without them, or with an
    #: insecure MX RRset, is deferred with 451 4.7.5 (RFC 7672 §6; Postfix ``dane-only``, Exim
    #: ``hosts_require_dane``).
    MANDATORY = "mandatory"


class InsecureMX(enum.Enum):
    """What DANE does with hosts named by an MX RRset that is not DNSSEC-secure
    (RFC 7672 §2.2.1; Postfix ``smtp_tls_dane_insecure_mx_policy``)."""

    #: Use their TLSA records as for a secure MX (the RFC's MAY, Postfix's default since 3.6);
    #: the posture is :attr:`Posture.DANE_INSECURE_MX`, never logged as verified delivery,
    #: and the MX host name is the only reference identifier (RFC 7672 §3.2.2).
    DANE = "dane"
    #: Secure TLSA records only make TLS mandatory, without authentication (Postfix
    #: ``encrypt``).
    ENCRYPT = "encrypt"
    #: Ignore DANE for them: no TLSA query, opportunistic TLS (Postfix ``may``).
    MAY = "may"


def _port(_inst: object, _attribute: object, value: int) -> None:
    if not 1 <= value <= 65535:
        raise ValueError(f"tlsa_port must be 1..65535, got {value}")


def _digest_order(value: Iterable[int]) -> tuple[int, ...]:
    order = tuple(value)
    if not order or any(m not in (1, 2) for m in order) or len(set(order)) != len(order):
        raise ValueError(
            "digest_order lists TLSA matching types 1 (SHA2-256) and/or 2 (SHA2-512), "
            f"strongest first, each once; got {order!r}"
        )
    return order


def _positive_seconds(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 3600:
        raise ValueError(
            f"{attribute.name} must be a number of seconds in (0, 3600), got {value!r}"
        )


def _networks(values: Iterable[str | Network]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(v) for v in values)


#: Addresses a mail exchanger must never resolve to (Exim's ``ignore_target_hosts`` default,
#: extended): "this host" and loopback, link-local, multicast, reserved and broadcast, for both
#: families. IPv4-mapped IPv6 forms (``::ffff:127.0.0.1``) are checked as their IPv4 address.
DEFAULT_UNSAFE_NETWORKS: tuple[Network, ...] = _networks(
    [
        "0.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",  # reserved, includes 255.255.255.255 (broadcast)
        "::/128",
        "::1/128",
        "fe80::/10",
        "ff00::/8",
    ]
)


def _local_names(values: Iterable[str]) -> frozenset[str]:
    from ._domain import normalize_domain

    names = set()
    for value in values:
        name = normalize_domain(value)
        if not isinstance(name, str):
            raise ValueError(f"local_names takes host names; put {value} in local_addresses")
        names.add(name)
    return frozenset(names)


def _local_addresses(
    values: Iterable[str | ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return frozenset(ipaddress.ip_address(v) for v in values)


def _positive(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value}")


def _optional_positive(
    _inst: object, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name} must be at least 1 or None, got {value}")


def _address_limit(_inst: object, _attribute: object, value: int | None) -> None:
    if value is not None and value < 2:
        # RFC 5321 §5.1: "the SMTP client SHOULD try at least two addresses."
        raise ValueError(
            f"max_addresses must be at least 2 (RFC 5321 §5.1 'SHOULD try at least two "
            f"addresses'), or None for no limit; got {value}"
        )


@attrs.frozen(kw_only=True)
class Policy:
    """How mxselect chooses among the records it finds. Every field has a safe default.

    Attributes:
        families: address families and their order (:class:`Families`); default
            :attr:`Families.ANY` (Postfix).
        first_family_count: with ``Families.ANY``, how many addresses of the first family come
            before the other family is interleaved (RFC 8305 §4 "First Address Family Count";
            default 1, RFC 8305 §8).
        max_addresses: at most this many addresses are returned, in try order (Postfix
            ``smtp_mx_address_limit`` = 5, Exim ``hosts_max_try`` = 5); at least 2 (RFC 5321
            §5.1); ``None`` for no limit.
        keep_one_per_preference: also keep the first address of every preference level the
            limit cut off (Exim: "at least one IP address from each MX value").
        max_mx_hosts: how many MX hosts are resolved at once, best first (default 20): a zone
            with 1,000 MX records costs 2 x 20 address queries when one of its best 20 hosts is
            usable. Only when the hosts resolved so far give no usable target are the next
            ones resolved, in further batches of this size, within ``max_address_queries``
            (a permanent error needs every exchange examined; docs/failure-semantics.md).
        max_address_queries: the most address queries (AAAA, A and their CNAME follow-ups)
            one selection sends, over all its batches; ``None`` (the default) means
            ``5 x max_mx_hosts`` (100: two and a half batches of dual-stack hosts; see
            :attr:`address_query_budget`). When it runs out with exchanges still unexamined
            and none usable, the result is a :class:`DNSTemporaryError` saying so -- never a
            bounce.
        implicit_mx: use the implicit MX (RFC 5321 §5.1) when a domain has no MX records;
            ``False`` makes such domains fail with :class:`NoUsableTargetsError` (validators).
        strict_null_mx: treat any root-exchange record as a null MX for the whole domain
            (Postfix) instead of ignoring it beside real records (Exim; the default).
        allow_mx_to_ip: use an MX record that names an IP address (``10 192.0.2.5``) as that
            address, without DNS (Postfix accepts them; default ``False``, Exim rejects them).
        strict_cname_exchange: make an exchange that is a CNAME unusable (RFC 2181 §10.3)
            instead of following it (Postfix, Exim; the default).
        cname_limit: the longest CNAME chain followed, in links (Postfix, sendmail: 10).
        local_names: the names this host is known by (RFC 5321 §5.1 loop prevention): an MX
            host whose name or canonical name is one of them is this host.
        local_addresses: this host's addresses: an MX host with any of them is this host, and an
            address literal equal to one is a loop. When this host is an MX, it and every MX of
            equal or worse preference are dropped (RFC 5321 §5.1); if it is the best MX:
            :class:`MailLoopError` (5.4.6); if better MX hosts exist but none is usable:
            :class:`NoPrimaryRelayError` (4.4.4).
        unsafe_networks: addresses never returned, dropped one by one with a warning (Exim's
            ``ignore_target_hosts``; stops an MX from pointing mail at internal services); an
            address literal (``user@[10.0.0.5]``) in one of them is refused with
            :class:`NoUsableTargetsError` naming the network. Add
            networks with :meth:`with_unsafe` (e.g. RFC 1918), take some out with
            :meth:`without_unsafe` (e.g. ``127.0.0.0/8`` for a test deployment), or pass ``()``
            to allow everything.
        dane: DANE for the hosts (:class:`Dane`; default :attr:`Dane.OFF`, which sends exactly
            the queries of a plan without DANE).
        dane_insecure_mx: DANE for hosts of an MX RRset that is not secure (:class:`InsecureMX`;
            default :attr:`InsecureMX.DANE`, Postfix's).
        tlsa_port: the port in the TLSA query name ``_<port>._tcp.<host>`` (RFC 7672 §2.2.3:
            25, or the port of a custom route, e.g. 587 for a submission relay).
        mta_sts: MTA-STS (RFC 8461): ask ``_mta-sts.<domain>`` TXT beside the MX query, fetch
            the policy when its id is new (a :class:`~mxselect.PolicyFetch` the driver's
            fetcher answers, overlapping the address lookups), apply it: with mode enforce,
            MX hosts that do not match are unusable and none left is
            :class:`~mxselect.StsPolicyError` (temporary); matching hosts need validated TLS
            (:attr:`Posture.MTA_STS`). Default off.
        sts_fetch_timeout: seconds a policy fetch may take (RFC 8461 §3.3 suggests up to a
            minute; default 15, as a delivery waits for it).
        sts_background: do not wait for a policy fetch: the selection applies the cached
            policy still valid (or none) and the fetch completes in the background, its policy
            stored for later messages (RFC 8461 §5.1 allows it; Appendix B). Default off: the
            fetch runs beside the DNS lookups and the selection waits for it.
        tlsrpt: ask ``_smtp._tls.<domain>`` TXT beside the MX query and report its ``rua``
            URIs in :attr:`Selection.tlsrpt` (RFC 8460 §3). Default off.
        digest_order: the TLSA digest algorithms (matching types) from strongest to weakest
            (RFC 7671 §9 digest agility): of the usable records of one usage and selector, only
            Full(0) ones and those of the strongest listed type present are kept; a type not
            listed is unusable. Default ``(2, 1)``: SHA2-512, then SHA2-256.
    """

    families: Families = attrs.field(default=Families.ANY, converter=Families)
    first_family_count: int = attrs.field(default=1, validator=_positive)
    max_addresses: int | None = attrs.field(default=5, validator=_address_limit)
    keep_one_per_preference: bool = False
    max_mx_hosts: int = attrs.field(default=20, validator=_positive)
    max_address_queries: int | None = attrs.field(default=None, validator=_optional_positive)
    implicit_mx: bool = True
    strict_null_mx: bool = False
    allow_mx_to_ip: bool = False
    strict_cname_exchange: bool = False
    cname_limit: int = attrs.field(default=10, validator=_positive)
    local_names: frozenset[str] = attrs.field(default=frozenset(), converter=_local_names)
    local_addresses: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address] = attrs.field(
        default=frozenset(), converter=_local_addresses
    )
    unsafe_networks: tuple[Network, ...] = attrs.field(
        default=DEFAULT_UNSAFE_NETWORKS, converter=_networks
    )
    dane: Dane = attrs.field(default=Dane.OFF, converter=Dane)
    dane_insecure_mx: InsecureMX = attrs.field(default=InsecureMX.DANE, converter=InsecureMX)
    tlsa_port: int = attrs.field(default=25, validator=_port)
    digest_order: tuple[int, ...] = attrs.field(default=(2, 1), converter=_digest_order)
    mta_sts: bool = False
    sts_fetch_timeout: float = attrs.field(default=15.0, validator=_positive_seconds)
    sts_background: bool = False
    tlsrpt: bool = False

    def with_unsafe(self, *networks: str | Network) -> Policy:
        """A copy with more unsafe networks, e.g. ``policy.with_unsafe("10.0.0.0/8")``."""
        return attrs.evolve(self, unsafe_networks=self.unsafe_networks + _networks(networks))

    def without_unsafe(self, *networks: str | Network) -> Policy:
        """A copy where addresses in ``networks`` are no longer unsafe.

        A network inside an unsafe one is cut out of it (``without_unsafe("127.0.0.2/31")``
        allows 127.0.0.2 and 127.0.0.3 and keeps the rest of 127.0.0.0/8 unsafe); an unsafe
        network inside one of ``networks`` is dropped.
        """
        remaining = list(self.unsafe_networks)
        for allowed in _networks(networks):
            kept: list[Network] = []
            for unsafe in remaining:
                if unsafe.version != allowed.version or not unsafe.overlaps(allowed):
                    kept.append(unsafe)
                elif allowed.subnet_of(unsafe):  # type: ignore[arg-type]
                    kept.extend(unsafe.address_exclude(allowed))  # type: ignore[arg-type]
                # else: the whole unsafe network is inside the allowed one: dropped
            remaining = kept
        return attrs.evolve(self, unsafe_networks=tuple(remaining))

    def is_unsafe(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether ``address`` (or the IPv4 address inside an IPv4-mapped one) is unsafe."""
        return not safe_addresses(self, [address])

    @property
    def address_query_budget(self) -> int:
        """The address queries one selection may send: :attr:`max_address_queries`, or
        ``5 x max_mx_hosts`` when that is ``None``."""
        if self.max_address_queries is not None:
            return self.max_address_queries
        return 5 * self.max_mx_hosts

    def unsafe_network_of(
        self, address: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> Network | None:
        """The first of :attr:`unsafe_networks` that holds ``address`` (an IPv4-mapped address
        as its IPv4 address), or ``None`` when the address is safe."""
        if not self.is_unsafe(address):
            return None
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        probe = mapped if mapped is not None else address
        return next(n for n in self.unsafe_networks if probe in n)

    def wants_family(self, version: int) -> bool:
        """Whether the policy uses addresses of IP ``version`` (4 or 6) at all
        (RFC 5321 §5.2: the family policy applies to every target)."""
        return self.wants_ipv4 if version == 4 else self.wants_ipv6

    @property
    def wants_ipv4(self) -> bool:
        return self.families is not Families.IPV6_ONLY

    @property
    def wants_ipv6(self) -> bool:
        return self.families is not Families.IPV4_ONLY


_RangeTable = dict[int, tuple[list[int], list[int]]]
# id(networks tuple) -> (the tuple, its table): keyed by identity because hashing a tuple of
# networks costs more than the test itself; the tuple is kept, so its id stays unique.
_RANGE_TABLES: dict[int, tuple[tuple[Network, ...], _RangeTable]] = {}


def _range_table(networks: tuple[Network, ...]) -> _RangeTable:
    """{4: (starts, ends), 6: (...)}: per version, the union of the networks as disjoint
    integer ranges ``starts[i] <= value <= ends[i]``, sorted."""
    entry = _RANGE_TABLES.get(id(networks))
    if entry is not None and entry[0] is networks:
        return entry[1]
    table: _RangeTable = {}
    for version in (4, 6):
        ranges = sorted(
            (int(n.network_address), int(n.broadcast_address))
            for n in networks
            if n.version == version
        )
        starts: list[int] = []
        ends: list[int] = []
        for start, end in ranges:
            if ends and start <= ends[-1] + 1:  # overlapping or adjacent: merge
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
        table[version] = (starts, ends)
    if len(_RANGE_TABLES) >= 256:
        _RANGE_TABLES.clear()
    _RANGE_TABLES[id(networks)] = (networks, table)
    return table


def safe_addresses(
    policy: Policy, addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses of ``addresses`` that are not unsafe (:meth:`Policy.is_unsafe`), in
    order: the same test, with the range table looked up once for the list."""
    # The union of the networks as sorted, merged integer ranges: one bisect instead of
    # ``address in network`` for each network (same test).
    table = _range_table(policy.unsafe_networks)
    safe: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for address in addresses:
        value = int(address)
        # ``type() is``: the version without the property call, for the usual type
        version = 4 if type(address) is _IPV4 else address.version
        if version == 6 and value >> 32 == 0xFFFF:  # ::ffff:a.b.c.d, IPv4-mapped
            value &= 0xFFFFFFFF
            version = 4
        starts, ends = table[version]
        i = bisect.bisect_right(starts, value) - 1
        if i < 0 or value > ends[i]:
            safe.append(address)
    return safe


_IPV4 = ipaddress.IPv4Address

#: The default policy.
DEFAULT_POLICY = Policy()
