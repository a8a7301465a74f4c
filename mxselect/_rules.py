"""The rules of RFC 5321 §5.1 / RFC 7505 MX target selection, as pure functions (no I/O).

Each rule is one function over immutable values (``NamedTuple`` records, frozen policy,
answers and chains it only reads). A rule returns what it decided and the *notes* it made --
warnings and explain-trace steps, in order -- and never raises a selection error: it says which
outcome applies (:class:`Outcome`) and the plan (``_core``) turns that into the
:class:`~mxselect.MXSelectError`. The plan is the glue that runs them in this order:

====  ========================  ==============================================================
rule  function                  what, and where it is written
====  ========================  ==============================================================
1     :func:`literal_target`    an address literal is the single target, no DNS; the policy
                                still applies (RFC 5321 §4.1.3, §5.2; Exim ``ignore_target_
                                hosts``; OpenSMTPD#410)
2     (the plan)                the MX query for the absolute domain; a CNAME at the domain is
                                processed as the initial name (RFC 5321 §5.1, §2.3.5)
3     :func:`mx_outcome`        TEMPFAIL -> temporary, never an A/AAAA fallback; NXDOMAIN ->
                                permanent; NODATA -> the implicit MX (RFC 5321 §5.1, RFC 6604
                                §3, RFC 3974 §3; postal#2833)
4     :func:`null_mx`           only root exchanges: null MX (RFC 7505 §3, §4.1); mixed with
                                real ones: ignored (Exim) unless ``strict_null_mx`` (Postfix)
5     :func:`valid_exchanges`   each record validated on its own; duplicates keep their best
                                preference (RFC 2181 §11, RFC 5321 §4.1.2, §5.1, RFC 1035 §3.1)
6     :func:`ordered_hosts`     sorted by preference, equal ones shuffled with the injected
                                ``rng`` (RFC 5321 §5.1 "MUST randomize")
6b    :func:`cut_at_own_name`,  loop prevention: this host's level and worse ones discarded;
      :func:`find_self`         as the best MX, a loop (RFC 5321 §5.1 "inspect the list")
7     :func:`next_batch`        AAAA and A of ``max_mx_hosts`` exchanges at a time, within the
                                address query budget (RFC 3974 §3, RFC 8305 §3, RFC 5321 §5.2)
8a    :func:`host_addresses`    a host is usable if either family answered (RFC 3974 §5)
8b    :func:`judge`             the family policy, CNAME'd exchanges, unsafe networks
                                (RFC 5321 §5.2, RFC 2181 §10.3; Exim, Haraka#3314)
8c    :func:`order_targets`     family order within each preference level, duplicates, the
                                address limit (RFC 8305 §4, RFC 3974 §3, RFC 5321 §5.1)
9     :func:`classify_failure`  none usable: temporary if anything failed temporarily or was
                                left unexamined, else permanent (RFC 5321 §5.1; Postfix)
====  ========================  ==============================================================
"""

from __future__ import annotations

import enum
import ipaddress
import random
from typing import Any, NamedTuple

from ._answers import (
    Answer,
    IPAddress,
    MXRecord,
    RRType,
    Security,
    Status,
    TLSARecord,
    least_secure,
)
from ._domain import check_ldh_name, normalize_exchange
from ._lookup import Chain
from ._model import OPPORTUNISTIC_TLS, Posture, Target, TlsRequirement, WarningCode, make_target
from ._policy import Dane, Families, InsecureMX, Policy, safe_addresses
from ._sts import StsMode, StsPolicy

__all__ = [
    "Candidate",
    "Examined",
    "LookupFailure",
    "Note",
    "Outcome",
    "classify_failure",
    "cut_at_own_name",
    "find_self",
    "host_addresses",
    "judge",
    "literal_target",
    "mx_outcome",
    "next_batch",
    "null_mx",
    "order_targets",
    "ordered_hosts",
    "self_found",
    "valid_exchanges",
]

_IPv4 = ipaddress.IPv4Address
_IPv6 = ipaddress.IPv6Address
#: Set in the address keys of IPv6 addresses (above any IPv4 one): ``order_targets``.
_V6_KEY = 1 << 128

#: A note a rule made: ``(kind, message, host)``. ``kind`` is a :class:`WarningCode` for a
#: warning (recorded in the trace too) or a trace step's kind; ``message`` is the text or
#: ``(function, *arguments)`` formatting it when the trace is read. A warning about one
#: address is ``(kind, message, host, address, listed_for)``: the structured
#: :attr:`SelectionWarning.address` (and ``listed_for``, the host a duplicate address is
#: already listed for), so that nobody parses the message.
Note = (
    tuple["WarningCode | str", "str | tuple[Any, ...]", "str | None"]
    | tuple["WarningCode", str, "str | None", "IPAddress | None", "str | None"]
)
Notes = list[Note]


class Outcome(enum.Enum):
    """What a rule decided for the whole selection, when it decided it."""

    #: Go on: nothing final yet.
    CONTINUE = "continue"
    #: :class:`~mxselect.DNSTemporaryError` (451 4.4.3).
    TEMPORARY = "temporary"
    #: :class:`~mxselect.NoSuchDomainError` (550 5.1.2).
    NO_SUCH_DOMAIN = "no-such-domain"
    #: :class:`~mxselect.NullMXError` (556 5.1.10).
    NULL_MX = "null-mx"
    #: :class:`~mxselect.NoUsableTargetsError` (550 5.4.4).
    NO_USABLE_TARGETS = "no-usable-targets"
    #: :class:`~mxselect.MailLoopError` (554 5.4.6).
    MAIL_LOOP = "mail-loop"
    #: :class:`~mxselect.NoPrimaryRelayError` (451 4.4.4).
    NO_PRIMARY_RELAY = "no-primary-relay"
    #: :class:`~mxselect.DaneRequiredError` (451 4.7.5).
    DANE_REQUIRED = "dane-required"
    #: :class:`~mxselect.SecureDeliveryError` (451 4.7.5).
    SECURE_DELIVERY = "secure-delivery"
    #: :class:`~mxselect.StsPolicyError` (451 4.7.5).
    STS_POLICY = "sts-policy"


class LookupFailure(enum.Enum):
    """Why one family's lookup of an exchange gave no address."""

    #: The name does not exist.
    NXDOMAIN = "NXDOMAIN"
    #: The name exists without records of the type.
    NODATA = "NODATA"
    #: A temporary failure (the text says which).
    TEMPORARY = "temporary"
    #: The policy disables the family: not asked.
    NOT_QUERIED = "not queried"


class Candidate(NamedTuple):
    """An exchange to resolve: its name, preference, and the address if the MX names one."""

    name: str
    preference: int
    literal: IPAddress | None = None


class Examined(NamedTuple):
    """One exchange after its lookups: every address found (before any policy), its
    canonical name, why it has none (or which family failed), whether that was temporary,
    and the lookups that gave its addresses (their DNSSEC status: :func:`address_status`)."""

    candidate: Candidate
    found: list[IPAddress]
    canonical: str
    why: str
    temporary: bool
    sources: tuple[Chain, ...] = ()


class AddressStatus(NamedTuple):
    """The DNSSEC status of a host's addresses (RFC 7672 §2.1.3, §2.2.2): the least secure
    family that gave addresses, whether any such family is secure (TLSA records are looked
    up then; host-level, see docs), and the status of the initial CNAME response when the
    plan followed the alias itself (``None``: not known)."""

    security: Security
    secure_any: bool
    cname_security: Security | None


def address_status(examined: Examined) -> AddressStatus:
    """The :class:`AddressStatus` of an examined host (``UNKNOWN`` without DNS addresses)."""
    sources = examined.sources
    if not sources:
        return AddressStatus(Security.UNKNOWN, False, None)
    statuses = [chain.security() for chain in sources]
    first = next((c.first_alias for c in sources if c.first_alias is not None), None)
    return AddressStatus(least_secure(*statuses), Security.SECURE in statuses, first)


class Family(NamedTuple):
    """One family's lookup of an exchange: its addresses, or why none."""

    addresses: list[IPAddress]
    failure: LookupFailure | None
    text: str

    @property
    def temporary(self) -> bool:
        return self.failure is LookupFailure.TEMPORARY


#: ``tuple.__new__``: makes a NamedTuple from a tuple without its Python-level ``__new__``.
_new = tuple.__new__

_NOT_QUERIED = Family([], LookupFailure.NOT_QUERIED, "not queried")
#: No notes (shared: a rule returning it never appends to it).
_NONE: Notes = []


# -- rule 1 --------------------------------------------------------------------------------


def literal_target(text: str, address: IPAddress, policy: Policy) -> tuple[Outcome, str, Notes]:
    """Rule 1 -- RFC 5321 §4.1.3: an address literal is the single target; no DNS query.
    The policy still applies to it: this host's own address is a loop (OpenSMTPD#410), a
    family the policy disables is unusable (RFC 5321 §5.2), and an address in an unsafe
    network is refused like an MX host whose addresses are all unsafe (Exim's ipliteral
    router honours ``ignore_target_hosts``): a recipient ``user@[10.0.0.5]`` must not reach an
    internal host. Returns the outcome (``CONTINUE``: use it), the reason and the notes."""
    notes: Notes = [
        ("literal", f"{text} is an address literal: the single target, no DNS query", None)
    ]
    if address in policy.local_addresses:
        reason = f"mail for {text} loops back to myself: the address literal is this host's address"
        return Outcome.MAIL_LOOP, reason, notes
    why = family_refusal(address, policy)
    if why is None:
        network = policy.unsafe_network_of(address)
        if network is not None:
            notes.append(
                (
                    WarningCode.UNSAFE_ADDRESS,
                    f"address literal {text} is in the unsafe network {network} "
                    "(Policy.unsafe_networks); refused",
                    text,
                    address,
                    None,
                )
            )
            why = f"it is in the unsafe network {network} (Policy.unsafe_networks)"
    if why is not None:
        return Outcome.NO_USABLE_TARGETS, f"address literal {text} is not usable: {why}", notes
    notes.append(("outcome", f"1 target: {address}", None))
    return Outcome.CONTINUE, "", notes


def family_refusal(address: IPAddress, policy: Policy) -> str | None:
    """Why ``address`` cannot be used under the policy's families (RFC 5321 §5.2), or None."""
    version = 6 if type(address) is _IPv6 or address.version == 6 else 4
    if policy.wants_family(version):
        return None
    return (
        f"it is an IPv{version} address and the policy uses IPv{10 - version} only "
        f"(families={policy.families.value})"
    )


# -- rule 3 --------------------------------------------------------------------------------


def mx_outcome(domain: str, chain: Chain, policy: Policy) -> tuple[Outcome, str, Notes]:
    """Rule 3: what the MX lookup of ``domain`` (followed through its CNAMEs) established.

    ``CONTINUE`` with records or, for NODATA, the implicit MX; otherwise the outcome and its
    reason. Returns the notes too (the "mx" trace step)."""
    via = f" (via CNAME {chain.canonical})" if chain.canonical != domain else ""
    notes: Notes = [("mx", (_mx_message, domain, via, chain.error, chain.answer), None)]
    if chain.error is not None:
        return Outcome.TEMPORARY, f"MX lookup for {domain}: {chain.error}", notes
    answer = chain.answer
    assert answer is not None
    if answer.status is Status.TEMPFAIL:
        # RFC 5321 §5.1: "If a temporary error is returned, the message MUST be queued and
        # retried later" -- and never a fallback to the domain's A/AAAA records.
        return Outcome.TEMPORARY, f"MX lookup for {domain}{via}: {answer.reason or 'failed'}", notes
    if answer.status is Status.NXDOMAIN:
        # RFC 5321 §5.1: "If a non-existent domain error is returned, this situation MUST be
        # reported as an error." RFC 6604 §3: at the end of a CNAME chain too.
        reason = f"MX lookup for {domain}{via}: NXDOMAIN (the domain does not exist)"
        return Outcome.NO_SUCH_DOMAIN, reason, notes
    if answer.status is Status.RECORDS and not answer.mx:
        # A resolver that claims records but gives none has established nothing: never read
        # it as NODATA (that would send mail to the implicit MX; postal#2833).
        reason = f"MX lookup for {domain}{via}: the resolver answered without MX records"
        return Outcome.TEMPORARY, reason, notes
    if answer.status is Status.NODATA and not policy.implicit_mx:
        reason = f"{domain}{via} has no MX records and the implicit MX is disabled by the policy"
        return Outcome.NO_USABLE_TARGETS, reason, notes
    return Outcome.CONTINUE, "", notes


# -- rules 4-6 -----------------------------------------------------------------------------


def null_mx(domain: str, records: tuple[MXRecord, ...], policy: Policy) -> tuple[bool, Notes]:
    """Rule 4 -- RFC 7505 §3: whether the records are a null MX ("a zero-length label ... as
    the exchange domain": the domain accepts no mail; §4.1: 556 5.1.10; no further query).
    With ``strict_null_mx`` any root exchange poisons the whole set (Postfix); otherwise a
    root exchange beside real records is ignored with a warning (Exim)."""
    null = [r for r in records if normalize_exchange(r.exchange) == ""]
    notes: Notes = []
    if null and (len(null) == len(records) or policy.strict_null_mx):
        if any(r.preference != 0 for r in null):
            notes.append(
                (
                    WarningCode.NULL_MX_PREFERENCE,
                    f"null MX of {domain} has preference "
                    f"{', '.join(str(r.preference) for r in null)}; RFC 7505 §3 says 0",
                    None,
                )
            )
        if len(null) != len(records):
            notes.append(
                (
                    WarningCode.NULL_MX_MIXED,
                    f"{domain} mixes a null MX record with {len(records) - len(null)} other MX "
                    "record(s) (RFC 7505 §3 forbids it); strict_null_mx treats it as a null MX",
                    None,
                )
            )
        return True, notes
    if null:
        # RFC 7505 §3: "A domain that advertises a null MX MUST NOT advertise any other MX
        # RR." The sender's behaviour is unspecified: use the real records (Exim).
        notes.append(
            (
                WarningCode.NULL_MX_MIXED,
                f"{domain} mixes a null MX record with {len(records) - len(null)} other MX "
                "record(s) (RFC 7505 §3 forbids it); the null record is ignored",
                None,
            )
        )
    return False, notes


def valid_exchanges(
    domain: str, records: tuple[MXRecord, ...], policy: Policy
) -> tuple[dict[str, int], dict[str, IPAddress], list[str], Notes]:
    """Rule 5: each MX record validated on its own (RFC 2181 §11: the client "is solely
    responsible for validating the data"; RFC 5321 §4.1.2): one bad record never hides the
    good ones. Returns each exchange's best preference (RFC 1035 §3.1: names compare
    case-insensitively), the exchanges that name an address (``allow_mx_to_ip``), why each
    dropped record was dropped, and the notes."""
    best: dict[str, int] = {}
    literals: dict[str, IPAddress] = {}
    dropped: list[str] = []
    notes: Notes = []
    for record in records:
        name = normalize_exchange(record.exchange)
        if name == "":
            continue
        address = ip_address(name)
        if address is not None:
            # RFC 5321 §5.1: the data field "MUST contain a domain name" (Exim rejects;
            # Postfix accepts; RFC 7672 §2.2: DANE does not apply to it).
            accepted = policy.allow_mx_to_ip
            notes.append(
                (
                    WarningCode.MX_IS_ADDRESS,
                    f"MX record '{record.preference} {record.exchange}' of {domain} points to "
                    "an IP address instead of a host name (RFC 5321 §5.1); "
                    + ("used as an address (allow_mx_to_ip)" if accepted else "ignored"),
                    name,
                    address,
                    None,
                )
            )
            if not accepted:
                dropped.append(f"{record.exchange} is an IP address")
                continue
            literals[name] = address
        else:
            why = check_ldh_name(name)
            if why is not None:
                notes.append(
                    (
                        WarningCode.INVALID_EXCHANGE,
                        f"MX record '{record.preference} {record.exchange}' of {domain} is "
                        f"not a valid host name ({why}); ignored",
                        name,
                    )
                )
                dropped.append(f"'{record.exchange}' is not a valid host name")
                continue
        if name in best:
            notes.append(
                (
                    WarningCode.DUPLICATE_HOST,
                    f"{name} is listed more than once in the MX records of {domain}; "
                    f"kept at preference {min(best[name], record.preference)}",
                    name,
                )
            )
            best[name] = min(best[name], record.preference)
        else:
            best[name] = record.preference
    return best, literals, dropped, notes


def ordered_hosts(
    best: dict[str, int], literals: dict[str, IPAddress], rng: random.Random
) -> tuple[list[Candidate], Notes]:
    """Rule 6 -- RFC 5321 §5.1: "Lower numbers are more preferred than higher ones." and "the
    sender-SMTP MUST randomize them" (equal preferences): Fisher-Yates via ``rng.shuffle``.
    Each group is put in name order first, so a seed reproduces the order whatever order
    the resolver used."""
    groups: dict[int, list[str]] = {}
    for name, preference in best.items():
        group = groups.get(preference)
        if group is None:
            groups[preference] = [name]
        else:
            group.append(name)
    ordered: list[Candidate] = []
    notes: Notes = []
    for preference in sorted(groups) if len(groups) > 1 else groups:
        names = groups[preference]
        if len(names) > 1:
            names.sort()
            rng.shuffle(names)
            notes.append(("order", (_shuffled_message, preference, names), None))
        else:
            notes.append(("order", (_PREFERENCE_FORMAT, preference, names[0]), None))
        for name in names:
            # tuple.__new__: a NamedTuple without its Python-level __new__ (the same value).
            literal = literals.get(name) if literals else None
            ordered.append(_new(Candidate, (name, preference, literal)))
    return ordered, notes


_PREFERENCE_FORMAT = "preference {}: {}".format


def capped(domain: str, count: int, policy: Policy) -> Notes:
    """The warning that the hosts are resolved in batches (rule 7), if there are more of them
    than one batch holds."""
    if count <= policy.max_mx_hosts:
        return []
    # Bounded work for hostile zones: the hosts are resolved max_mx_hosts at a time and only
    # as far as needed, within max_address_queries queries.
    return [
        (
            WarningCode.MX_HOSTS_CAPPED,
            f"{domain} lists {count} MX hosts; they are resolved {policy.max_mx_hosts} at a "
            "time, best first, only while none is usable (max_mx_hosts), with at most "
            f"{policy.address_query_budget} address queries (max_address_queries)",
            None,
        )
    ]


# -- rule 6b: loop prevention ------------------------------------------------------------------


def cut_at_own_name(
    domain: str, ordered: list[Candidate], policy: Policy
) -> tuple[list[Candidate], int | None, str, Notes]:
    """Rule 6b -- RFC 5321 §5.1 loop prevention by name, over the whole MX list before any
    address is resolved: "The relay host MUST then inspect the list for any of the names or
    addresses by which it might be known in mail transactions. If a matching record is found,
    all records at that preference level and higher-numbered ones MUST be discarded from
    consideration." Returns the hosts kept, the preference cut at (or None), the loop reason
    when this host is the best MX (else ""), and the notes. (Canonical names and addresses are
    known only once resolved: :func:`find_self`.)"""
    names = policy.local_names
    for candidate in ordered if names else ():
        if candidate.name in names:
            loop, notes = self_found(
                domain, candidate, f"its name {candidate.name}", ordered[0].preference
            )
            kept = [c for c in ordered if c.preference < candidate.preference]
            return kept, candidate.preference, loop, notes
    return ordered, None, "", []


def find_self(examined: list[Examined], policy: Policy) -> tuple[Examined, str] | None:
    """Rule 6b over resolved hosts: the first that is this host, by name, by canonical
    (CNAME-expanded) name (RFC 974: an alias of the local host) or by address, and how."""
    names = policy.local_names
    addresses = policy.local_addresses
    if not (names or addresses):
        return None
    for entry in examined:
        if entry.candidate.name in names:
            return entry, f"its name {entry.candidate.name}"
        if entry.canonical in names:
            return entry, f"its canonical name {entry.canonical}"
        hit = next((a for a in entry.found if a in addresses), None)
        if hit is not None:
            return entry, f"its address {hit}"
    return None


def self_found(domain: str, candidate: Candidate, match: str, best: int) -> tuple[str, Notes]:
    """This host is ``candidate``: the loop reason if it is the best MX (RFC 5321 §5.1: an
    error), else "" and the warning that it and every worse MX are dropped."""
    preference = candidate.preference
    if preference <= best:
        return (
            f"mail for {domain} loops back to myself: MX host {candidate.name} "
            f"(preference {preference}) is this host ({match})"
        ), []
    return "", [
        (
            WarningCode.LOCAL_HOST,
            f"MX host {candidate.name} (preference {preference}) is this host ({match}); it "
            f"and every MX host of preference {preference} or more are dropped "
            "(RFC 5321 §5.1)",
            candidate.name,
        )
    ]


# -- rule 7 --------------------------------------------------------------------------------


def address_types(policy: Policy) -> tuple[RRType, ...]:
    """AAAA then A (RFC 8305 §3 query order); a family the policy disables is not queried at
    all (RFC 5321 §5.2)."""
    return _ADDRESS_TYPES[policy.families]


#: :func:`address_types` of each family policy.
_ADDRESS_TYPES = {
    families: tuple(
        t
        for t, wanted in (
            (RRType.AAAA, families is not Families.IPV4_ONLY),
            (RRType.A, families is not Families.IPV6_ONLY),
        )
        if wanted
    )
    for families in Families
}


def next_batch(
    candidates: list[Candidate], start: int, per_host: int, budget: int, policy: Policy
) -> list[Candidate]:
    """Rule 7: the next hosts to resolve at once, best first: as many as ``max_mx_hosts`` and
    the budget left allow (an MX that names an address costs no query; a host that does not
    fit whole still goes alone while any budget is left, its lookups cut off there). CNAME
    follow-ups share the budget, so a hostile zone costs at most ``max_address_queries``
    address queries in all."""
    batch: list[Candidate] = []
    cost = 0
    for candidate in candidates[start : start + policy.max_mx_hosts]:
        need = 0 if candidate.literal is not None else per_host
        if cost + need > budget and (batch or budget <= 0):
            break
        batch.append(candidate)
        cost += need
    return batch


# -- rule 8 --------------------------------------------------------------------------------


def family_result(chain: Chain, host: str) -> tuple[Family, Notes]:
    """One family's lookup of ``host``: its addresses, or the typed failure."""
    if chain.error is not None:
        return _new(Family, ([], LookupFailure.TEMPORARY, chain.error)), _NONE
    answer = chain.answer
    assert answer is not None
    status = answer.status
    if status is Status.RECORDS:
        version, cls = (6, _IPv6) if chain.rtype is RRType.AAAA else (4, _IPv4)
        addresses = answer.addresses
        # The common case: one address, or all of the usual type (``type() is``: the version
        # test without the property call).
        if len(addresses) == 1:
            if type(addresses[0]) is cls:
                return _new(Family, ([addresses[0]], None, "")), _NONE
        elif addresses and all(type(a) is cls for a in addresses):
            return _new(Family, (list(addresses), None, "")), _NONE
        good = [a for a in addresses if type(a) is cls or a.version == version]
        if good and len(good) == len(addresses):
            return _new(Family, (good, None, "")), _NONE
    elif status is Status.TEMPFAIL:
        return _new(Family, ([], LookupFailure.TEMPORARY, answer.reason or "failed")), _NONE
    elif status is Status.NXDOMAIN:
        return _new(Family, ([], LookupFailure.NXDOMAIN, "NXDOMAIN")), _NONE
    else:
        return _new(Family, ([], LookupFailure.NODATA, "NODATA")), _NONE
    notes: Notes = []
    if len(good) != len(answer.addresses):
        notes.append(
            (
                WarningCode.BAD_ANSWER,
                f"the resolver answered {chain.rtype} for {host} with addresses of the wrong "
                "family; ignored",
                host,
            )
        )
    if not good:
        # Records claimed but none usable: a resolver fault, not a DNS fact -- temporary.
        text = f"the resolver answered without {chain.rtype} records"
        return _new(Family, ([], LookupFailure.TEMPORARY, text)), notes
    return _new(Family, (good, None, "")), notes


def host_addresses(
    candidate: Candidate, six: Chain | None, four: Chain | None
) -> tuple[Examined, tuple[int | None, ...], Notes, Note | None]:
    """Rule 8a: what the lookups of one exchange found (an MX naming an address: that
    address). A host with addresses of one family is usable even if the other failed
    temporarily (RFC 3974 §5; Exim, Postfix), with a warning. Returns the record, the TTLs of
    the lookups it used, the warnings, and the "lookup" trace step that follows them."""
    name = candidate.name
    if candidate.literal is not None:
        return Examined(candidate, [candidate.literal], name, "", False), (), _NONE, None
    r6, n6 = family_result(six, name) if six is not None else (_NOT_QUERIED, _NONE)
    r4, n4 = family_result(four, name) if four is not None else (_NOT_QUERIED, _NONE)
    notes: Notes = [*n6, *n4] if n6 or n4 else _NONE
    if not r6.addresses and not r4.addresses:
        if six is None or four is None:
            only, result = ("AAAA", r6) if four is None else ("A", r4)
            why = (
                f"{only} lookup: {result.text} (the policy uses {only} only)"
                if r6.temporary or r4.temporary
                else f"no {only} records (the policy uses {only} only)"
            )
        elif r6.failure is r4.failure is LookupFailure.NXDOMAIN:
            why = "the host does not exist (NXDOMAIN)"
        elif not r6.temporary and not r4.temporary:
            why = "no A or AAAA records"
        else:
            why = f"AAAA lookup: {r6.text}; A lookup: {r4.text}"
        examined = Examined(candidate, [], name, why, r6.temporary or r4.temporary)
        return examined, (), notes, ("lookup", (_lookup_message, name, name, [], why), name)
    partial = ""
    failed = (
        [(family, r) for family, r in (("AAAA", r6), ("A", r4)) if r.temporary]
        if r6.failure is LookupFailure.TEMPORARY or r4.failure is LookupFailure.TEMPORARY
        else ()
    )
    if failed and notes is _NONE:
        notes = []
    for family, result in failed:
        # RFC 3974 §5, Exim, Postfix: proceed with the family that answered.
        notes.append(
            (
                WarningCode.PARTIAL_ADDRESS_FAILURE,
                f"{family} lookup for {name} failed ({result.text}); using its other addresses",
                name,
            )
        )
    if failed:
        partial = "; ".join(f"{family} lookup: {r.text}" for family, r in failed)
    chain = four if four is not None and r4.addresses else six
    assert chain is not None
    ttls = (
        (six.ttl, four.ttl)
        if six is not None and four is not None
        else (six.ttl,)
        if six is not None
        else (four.ttl,)
        if four is not None
        else ()
    )
    found = r6.addresses + r4.addresses
    # The lookups that gave addresses: their DNSSEC status is read only when needed
    # (address_status).
    sources = (six, four) if r6.addresses and r4.addresses else (chain,)
    # The temporary flag stays set: if every address found is later dropped (unsafe), the
    # family that failed might have had a usable one -- that host's failure is temporary.
    examined = _new(Examined, (candidate, found, chain.canonical, partial, bool(failed), sources))
    step = ("lookup", (_lookup_message, name, chain.canonical, found, partial), name)
    return examined, ttls, notes, step


def judge(
    examined: Examined, policy: Policy, implicit: bool, *, notes: Notes | None = None
) -> tuple[list[IPAddress], str, bool]:
    """Rule 8b for one examined host: (its usable addresses, why none, temporary). The drops
    are noted in ``notes`` when given; without it nothing is recorded (the batch loop asks
    whether any host is usable yet)."""
    candidate = examined.candidate
    name = candidate.name
    if candidate.literal is not None:
        # RFC 5321 §5.2: the family policy applies to every target, an MX naming an address
        # (allow_mx_to_ip) included.
        refusal = family_refusal(candidate.literal, policy)
        if refusal is not None:
            return [], refusal, False
    else:
        if not examined.found:
            return [], examined.why, examined.temporary
        if examined.canonical != name and not implicit:
            if policy.strict_cname_exchange:
                why = f"it is an alias (CNAME) of {examined.canonical} (strict_cname_exchange)"
                return [], why, False
            if notes is not None:
                notes.append(
                    (
                        WarningCode.EXCHANGE_IS_ALIAS,
                        f"MX exchange {name} is an alias (CNAME) of {examined.canonical}; RFC "
                        "2181 §10.3 says it must not be; followed",
                        name,
                    )
                )
    found = examined.found
    safe = safe_addresses(policy, found)
    for address in found if notes is not None and len(safe) != len(found) else ():
        if address not in safe:
            assert notes is not None
            notes.append(
                (
                    WarningCode.UNSAFE_ADDRESS,
                    f"address {address} of {name} is in an unsafe network (loopback, "
                    "link-local, multicast, reserved or configured); dropped",
                    name,
                    address,
                    None,
                )
            )
    if safe:
        return safe, "", False
    why = "all its addresses are in unsafe networks (" + ", ".join(map(str, found)) + ")"
    if examined.why:
        why += f"; {examined.why}"  # a family that failed temporarily
    return [], why, examined.temporary


def order_targets(
    usable: list[tuple[Candidate, str, list[IPAddress]]],
    policy: Policy,
    tls: dict[str, TlsRequirement] | None = None,
) -> tuple[list[Target], Notes]:
    """Rule 8c: family order within each preference level (``Policy.families``; RFC 8305 §4),
    each family in resolver order (RFC 5321 §5.1 "in the order presented"), never across
    levels (RFC 3974 §3); an address already listed for a better-placed host is not repeated;
    then the address limit (``Policy.max_addresses``, RFC 5321 §5.1). Each target carries its
    host's TLS requirement from ``tls`` (opportunistic when absent); security never moves a
    target (RFC 7672 §2.2.1)."""
    # Each preference level's targets by family as they come (``family_order`` in one pass).
    levels: dict[int, tuple[list[Target], list[Target]]] = {}
    seen: dict[object, str] = {}
    notes: Notes = []
    for candidate, _, addresses in usable:
        name = candidate.name
        preference = candidate.preference
        requirement = tls.get(name, OPPORTUNISTIC_TLS) if tls else OPPORTUNISTIC_TLS
        level = levels.get(preference)
        if level is None:
            level = levels[preference] = ([], [])
        six, four = level
        for address in addresses:
            # ``int()`` as the key of the usual types: half the cost of
            # ``IPv4Address.__hash__`` (Python code); IPv6 keys above every IPv4 one. Any
            # other type (a subclass) is its own key, as before.
            cls = type(address)
            key: object = (
                int(address)
                if cls is _IPv4
                else int(address) | _V6_KEY
                if cls is _IPv6
                else address
            )
            listed = seen.get(key)
            if listed is not None:
                if listed != name:
                    notes.append(
                        (
                            WarningCode.DUPLICATE_ADDRESS,
                            f"address {address} of {name} is already listed for {listed}",
                            name,
                            address,
                            listed,
                        )
                    )
                continue
            seen[key] = name
            target = make_target(name, preference, address, requirement)
            # by address.version; ``type() is``: the same without the property call
            if cls is _IPv6 or (cls is not _IPv4 and address.version == 6):
                six.append(target)
            elif cls is _IPv4 or address.version == 4:
                four.append(target)
    families = policy.families
    first_count = policy.first_family_count
    ordered = [
        _family_order(*levels[p], families, first_count)
        for p in sorted(levels)
        if levels[p][0] or levels[p][1]  # a level whose addresses were all listed already
    ]
    for in_order in ordered:
        notes.append(("families", (_families_message, families.value, in_order), None))
    targets = [t for in_order in ordered for t in in_order]
    limit = policy.max_addresses
    if limit is None or len(targets) <= limit:
        return targets, notes
    notes.append(
        ("limit", f"kept the first {limit} of {len(targets)} addresses (max_addresses)", None)
    )
    # RFC 5321 §5.1: "there MAY also be a configurable limit on the number of alternate
    # addresses that can be tried" (Postfix smtp_mx_address_limit, Exim hosts_max_try).
    kept = targets[:limit]
    if policy.keep_one_per_preference:
        present = {t.preference for t in kept}
        kept += [level[0] for level in ordered if level[0].preference not in present]
    return kept, notes


def family_order(level: list[Target], families: Families, first_count: int) -> list[Target]:
    """Order one preference level's addresses by family; never across levels (RFC 3974 §3)."""
    six: list[Target] = []
    four: list[Target] = []
    for t in level:  # by address.version; ``type() is``: the same without the property call
        cls = type(t.address)
        if cls is _IPv6 or (cls is not _IPv4 and t.address.version == 6):
            six.append(t)
        elif cls is _IPv4 or t.address.version == 4:
            four.append(t)
    return _family_order(six, four, families, first_count)


def _family_order(
    six: list[Target], four: list[Target], families: Families, first_count: int
) -> list[Target]:
    """:func:`family_order` of a level already split by family (each in resolver order)."""
    if families is Families.PREFER_IPV4:
        return four + six
    if families is not Families.ANY or not six or not four:
        return six + four
    # RFC 8305 §4: first_count addresses of the first family, then alternate.
    out = six[:first_count]
    rest6, rest4 = six[first_count:], four
    for i in range(max(len(rest6), len(rest4))):
        if i < len(rest4):
            out.append(rest4[i])
        if i < len(rest6):
            out.append(rest6[i])
    return out


# -- rule 9 --------------------------------------------------------------------------------


def classify_failure(
    domain: str,
    implicit: bool,
    failures: list[str],
    temporary: bool,
    self_cut: bool,
    unexamined: int,
    budget: int,
) -> tuple[Outcome, str]:
    """Rule 9: no host is usable. A backup MX (this host) with no usable better MX defers
    (Postfix: "unable to find primary relay"); a temporary failure anywhere, or an exchange
    left unexamined when the budget ran out, is temporary (Postfix: "A soft error dominates
    past and future hard errors"; docs/failure-semantics.md: a permanent result needs every
    exchange examined); otherwise :class:`NoUsableTargetsError` (RFC 5321 §5.1: "MUST be
    reported as an error")."""
    if unexamined:
        failures = [
            *failures,
            f"{unexamined} more exchange(s) not examined: the budget of {budget} address "
            "queries is used up (max_address_queries)",
        ]
        temporary = True
    if self_cut:
        return Outcome.NO_PRIMARY_RELAY, (
            f"unable to find primary relay for {domain}: " + "; ".join(failures)
        )
    if implicit:
        reason = (
            f"{domain} has no MX records and its implicit MX has no usable address: "
            + "; ".join(failures)
        )
    else:
        reason = f"no usable mail exchanger for {domain}: " + "; ".join(failures)
    return (Outcome.TEMPORARY if temporary else Outcome.NO_USABLE_TARGETS), reason


# -- rule 10: DANE (RFC 7672) ---------------------------------------------------------------

#: The RFC sentences that decide a posture (the ``rule`` of a :class:`TlsRequirement`).
RULE_DANE = (
    'RFC 7672 §2.2: a "secure" TLSA RRset with at least one usable record: any connection '
    "MUST employ TLS encryption and MUST authenticate the SMTP server"
)
RULE_DANE_INSECURE_MX = (
    "RFC 7672 §2.2.1: DANE TLS \"even with MX hosts obtained via an 'insecure' MX RRset\"; "
    "authentication MUST NOT be logged as secure delivery to the next-hop domain"
)
RULE_ENCRYPT_UNUSABLE = (
    'RFC 7672 §2.2: a "secure" non-empty TLSA RRset where all the records are unusable: any '
    "connection MUST be made via TLS, but authentication is not required"
)
RULE_ENCRYPT_INSECURE_MX = (
    "RFC 7672 §2.2.1 with an insecure MX RRset (dane_insecure_mx=encrypt, Postfix "
    "'encrypt'): TLS required, no authentication"
)
RULE_NO_TLSA = (
    'RFC 7672 §2.2: an "insecure" TLSA RRset or DNSSEC-authenticated denial of existence: '
    "opportunistic TLS, cleartext allowed"
)
RULE_INSECURE_ADDRESS = (
    'RFC 7672 §2.2.2: address records "insecure": the SMTP client SHOULD NOT proceed to '
    "search for any associated TLSA records; opportunistic TLS"
)
RULE_UNKNOWN_ADDRESS = (
    "RFC 7672 §2.1.1: no DNSSEC status for the address records (the resolver is not trusted, "
    "or cannot say): treated as insecure, no TLSA lookup; opportunistic TLS"
)
RULE_INSECURE_MX_MAY = (
    'RFC 7672 §2.2.1: the MX RRset is "insecure" and DANE is not mandatory: pre-DANE '
    "opportunistic TLS (dane_insecure_mx=may)"
)
RULE_NOT_A_NAME = (
    "RFC 7672 §2.2: an MX record listing a network address: DANE TLSA does not apply; "
    "opportunistic TLS"
)


class TlsaSearch(NamedTuple):
    """Where one host's TLSA records are looked for (RFC 7672 §2.2.2, §2.2.3): the candidate
    TLSA base domains in order, or none and why (the rule deciding opportunistic TLS), and
    whether the security of the initial CNAME response must be asked first."""

    candidates: tuple[str, ...]
    rule: str
    ask_cname: bool


def dane_precheck(domain: str, mx_security: Security, policy: Policy) -> tuple[Outcome, str]:
    """RFC 7672 §2.2.1: with mandatory DANE, an MX RRset (or a CNAME leading to it) that is
    not "secure" means "delivery MUST be delayed" -- before any address query. A resolver
    that gives no DNSSEC status at all cannot do mandatory DANE (RFC 7672 §2.1.1: a
    security-aware resolver MUST be used; Postfix's "dane-only" without DNSSEC)."""
    if policy.dane is not Dane.MANDATORY or mx_security is Security.SECURE:
        return Outcome.CONTINUE, ""
    if mx_security is Security.UNKNOWN:
        return Outcome.DANE_REQUIRED, (
            f"mandatory DANE for {domain}, but the resolver reports no DNSSEC status (not "
            "trusted, or it cannot say): RFC 7672 §2.1.1 requires a security-aware resolver "
            "the client trusts"
        )
    return Outcome.DANE_REQUIRED, (
        f"mandatory DANE for {domain}, but its MX RRset is not DNSSEC-secure: delivery MUST be "
        "delayed (RFC 7672 §2.2.1)"
    )


def dane_wanted(mx_security: Security, policy: Policy) -> bool:
    """Whether TLSA records are looked up for this selection's hosts at all: DANE on, and
    the MX RRset secure, or insecure with ``dane_insecure_mx`` other than ``MAY``
    (RFC 7672 §2.2.1 "MAY elect to use DANE TLS ... even with MX hosts obtained via an
    "insecure" MX RRset")."""
    if policy.dane is Dane.OFF:
        return False
    return mx_security is Security.SECURE or policy.dane_insecure_mx is not InsecureMX.MAY


def dane_step(mx_security: Security, wanted: bool, policy: Policy) -> str:
    """The trace step that opens DANE for a selection: the MX RRset's status and what follows
    from it (RFC 7672 §2.2.1)."""
    if mx_security is Security.UNKNOWN:
        status = "MX RRset without DNSSEC status (the resolver is not trusted, or cannot say)"
    else:
        status = f"MX RRset {mx_security}"
    if not wanted:
        return f"{status}: no TLSA lookups (RFC 7672 §2.2.1, dane_insecure_mx=may)"
    if mx_security is Security.SECURE:
        return f"{status}: TLSA records of hosts with secure addresses (RFC 7672 §2.2.1, §2.2.2)"
    return (
        f"{status}: TLSA records of hosts with secure addresses all the same "
        f"(dane_insecure_mx={policy.dane_insecure_mx.value}; RFC 7672 §2.2.1 MAY)"
    )


def tlsa_search(examined: Examined) -> TlsaSearch:
    """RFC 7672 §2.2.2: the candidate TLSA base domains of one host, from its address
    answers: a non-CNAME host with secure addresses: the host name; a CNAME'd host whose
    whole chain is secure: the expanded name, then the host name (RFC 7671 §7 "the final
    target name SHOULD be the preferred base domain"); a CNAME'd host with insecure addresses:
    the host name only if the initial CNAME response is secure (asked with one CNAME query
    when unknown, RFC 7672 §2.1.3); otherwise none ("SHOULD NOT proceed to search for any
    associated TLSA records"). Intermediate names of a chain are never candidates
    (§2.2.3)."""
    candidate = examined.candidate
    if candidate.literal is not None:
        return TlsaSearch((), RULE_NOT_A_NAME, False)
    name = candidate.name
    canonical = examined.canonical
    status = address_status(examined)
    if status.secure_any:
        if canonical != name:
            return TlsaSearch((canonical, name), "", False)
        return TlsaSearch((name,), "", False)
    if status.security is Security.UNKNOWN:
        # No status (an untrusted resolver, c-ares): treated as insecure (RFC 7672 §2.1.1).
        return TlsaSearch((), RULE_UNKNOWN_ADDRESS, False)
    if canonical == name:
        return TlsaSearch((), RULE_INSECURE_ADDRESS, False)
    if status.cname_security is None:
        return TlsaSearch((name,), "", True)
    if status.cname_security is Security.SECURE:
        return TlsaSearch((name,), "", False)
    return TlsaSearch((), RULE_INSECURE_ADDRESS, False)


def cname_secure(answer: Answer) -> bool | None:
    """The answer to a host's CNAME query (RFC 7672 §2.1.3): ``True`` if its CNAME record is
    secure, ``False`` if not (insecure, or no CNAME there any more), ``None`` when the query
    failed (a lookup error: RFC 7672 §2.2.2 "errors ... for any query in the process MUST
    result in delaying or abandoning delivery")."""
    if answer.status is Status.TEMPFAIL:
        return None
    return answer.status is Status.ALIAS and answer.security is Security.SECURE


def tlsa_name(base: str, port: int) -> str:
    """RFC 7672 §2.2.3: the TLSA query name ``_<port>._tcp.<base domain>``."""
    return f"_{port}._tcp.{base}"


def tlsa_found(chain: Chain) -> tuple[tuple[TLSARecord, ...] | None, str]:
    """One candidate's TLSA lookup (RFC 7672 §2.2.3): ``(records, "")`` for a secure TLSA
    RRset (through CNAMEs too, "keeps track of whether or not the entire chain is secure");
    ``(None, why)`` with ``why`` starting ``"failed"`` for a lookup failure (SERVFAIL,
    timeout, bogus, malformed: the host is unreachable, RFC 7672 §2.1.2), else ``(None,
    why)`` when the next candidate is to be tried (insecure records, NXDOMAIN, NODATA)."""
    if chain.error is not None:
        return None, f"failed: {chain.error}"
    answer = chain.answer
    assert answer is not None
    status = answer.status
    if status is Status.TEMPFAIL:
        return None, f"failed: {answer.reason or 'temporary failure'}"
    security = chain.security()
    if status is Status.RECORDS and answer.tlsa:
        if security is Security.SECURE:
            return answer.tlsa, ""
        return None, f"TLSA records {security} (RFC 6698 §4.1: unusable)"
    what = "NXDOMAIN" if status is Status.NXDOMAIN else "no TLSA records"
    return None, f"{what} ({security})"


def usable_tlsa(
    records: tuple[TLSARecord, ...], digest_order: tuple[int, ...]
) -> tuple[TLSARecord, ...]:
    """The records to match: usable ones (RFC 6698 §4.1, RFC 7672 §3.1.3) of a matching
    type the policy knows, and per usage and selector only Full(0) records and those of the
    strongest digest present (RFC 7671 §9: "the client SHOULD process only any usable records
    with a matching type of Full(0) and the usable records whose digest algorithm is
    considered by the client to be the strongest"; RFC 7672 §5 makes §9 a MUST)."""
    rank = {mtype: i for i, mtype in enumerate(digest_order)}
    usable = [r for r in records if r.usable and (r.mtype == 0 or r.mtype in rank)]
    strongest: dict[tuple[int, int], int] = {}
    for r in usable:
        if r.mtype:
            key = (r.usage, r.selector)
            best = strongest.get(key)
            if best is None or rank[r.mtype] < rank[best]:
                strongest[key] = r.mtype
    kept = [r for r in usable if not r.mtype or strongest[(r.usage, r.selector)] == r.mtype]
    return tuple(dict.fromkeys(kept))  # a record listed twice is matched once


def tls_requirement(
    host: str,
    base: str,
    records: tuple[TLSARecord, ...],
    mx_security: Security,
    policy: Policy,
    next_hop: tuple[str, str],
) -> tuple[TlsRequirement, Notes]:
    """RFC 7672 §2.2: the requirement for a host whose secure TLSA RRset was found at
    ``_<port>._tcp.<base>``: DANE when a record is usable (DANE_INSECURE_MX with an insecure
    MX RRset), else TLS without authentication (DANE_ENCRYPT). The SNI name is the TLSA base
    domain (§8.1). DANE-TA reference identifiers (§3.2.2): the base domain, then for a secure
    MX the next-hop domain and its CNAME-expanded form; with an insecure MX the MX host name
    only. ``next_hop``: the recipient domain and its CNAME-expanded name."""
    usable = usable_tlsa(records, policy.digest_order)
    secure_mx = mx_security is Security.SECURE
    notes: Notes = []
    if not usable:
        notes.append(
            (
                WarningCode.TLSA_UNUSABLE,
                f"{host}: the secure TLSA RRset at {tlsa_name(base, policy.tlsa_port)} has no "
                "usable record (RFC 6698 §4.1, RFC 7672 §3.1.3): TLS required, unauthenticated",
                host,
            )
        )
        return TlsRequirement(
            posture=Posture.DANE_ENCRYPT,
            required=True,
            sni=base,
            tlsa_base_domain=base,
            rule=RULE_ENCRYPT_UNUSABLE,
        ), notes
    if not secure_mx and policy.dane_insecure_mx is InsecureMX.ENCRYPT:
        return TlsRequirement(
            posture=Posture.DANE_ENCRYPT,
            required=True,
            sni=base,
            tlsa_base_domain=base,
            rule=RULE_ENCRYPT_INSECURE_MX,
        ), notes
    if secure_mx:
        ids = tuple(dict.fromkeys((base, *next_hop)))
        posture, rule = Posture.DANE, RULE_DANE
    else:
        # RFC 7672 §3.2.2: "the MX hostname is the only reference identifier".
        ids, posture, rule = (host,), Posture.DANE_INSECURE_MX, RULE_DANE_INSECURE_MX
    return TlsRequirement(
        posture=posture,
        required=True,
        authenticate="dane",
        sni=base,
        reference_ids=ids,
        tlsa=usable,
        tlsa_base_domain=base,
        rule=rule,
    ), notes


RULE_STS_ENFORCE = (
    "RFC 8461 §4.2, §5, §7: MTA-STS enforce: TLS 1.2 or later, a certificate that chains to a "
    "trusted root with the MX host name as a DNS-ID, the MX host name as SNI; MUST NOT deliver "
    "otherwise"
)
RULE_STS_TESTING = (
    "RFC 8461 §5: MTA-STS testing: validate as for enforce and report failures, but deliver anyway"
)


def sts_requirement(host: str, policy: StsPolicy, matches: bool) -> TlsRequirement:
    """RFC 8461 §4.2, §5, §7.1: the requirement of a host under an MTA-STS policy (mode
    enforce: it matched; mode testing: matched or not)."""
    if policy.mode is StsMode.ENFORCE and matches:
        return TlsRequirement(
            posture=Posture.MTA_STS,
            required=True,
            authenticate="pkix",
            sni=host,
            reference_ids=(host,),
            rule=RULE_STS_ENFORCE,
        )
    rule = RULE_STS_TESTING + ("" if matches else f"; {host} does not match the policy's mx")
    return TlsRequirement(
        posture=Posture.MTA_STS_TESTING,
        authenticate="pkix",
        sni=host,
        reference_ids=(host,),
        rule=rule,
    )


def opportunistic(rule: str) -> TlsRequirement:
    """Opportunistic TLS, decided by ``rule``."""
    if rule == OPPORTUNISTIC_TLS.rule:
        return OPPORTUNISTIC_TLS
    return TlsRequirement(posture=Posture.OPPORTUNISTIC, rule=rule)


# -- helpers -------------------------------------------------------------------------------


def ip_address(name: str) -> IPAddress | None:
    """The address an exchange name spells, if it is one."""
    # Only digits and dots (IPv4) or a colon (IPv6) can parse: skip the exception otherwise.
    if ":" not in name and not name.replace(".", "").isdigit():
        return None
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


# The trace messages, formatted only when a trace is read.


def _mx_message(domain: str, via: str, error: str | None, answer: Answer | None) -> str:
    return f"MX lookup for {domain}{via}: {_describe_mx(error, answer)}"


def _shuffled_message(preference: int, names: list[str]) -> str:
    return f"preference {preference}: shuffled to {', '.join(names)}"


def _lookup_message(name: str, canonical: str, found: list[IPAddress], why: str) -> str:
    via = f" (CNAME {canonical})" if canonical != name else ""
    shown = ", ".join(map(str, found)) if found else why
    return f"{name}{via}: {shown}"


def _families_message(families: str, level: list[Target]) -> str:
    return f"preference {level[0].preference}, families {families}: " + ", ".join(
        f"{t.host} {t.address!s}" for t in level
    )


def _describe_mx(error: str | None, answer: Answer | None) -> str:
    if error is not None:
        return error
    assert answer is not None
    if answer.status is Status.RECORDS:
        return ", ".join(f"{r.preference} {r.exchange}" for r in answer.mx) or "no records"
    if answer.status is Status.TEMPFAIL:
        return answer.reason or "failed"
    return answer.status.name
