"""The result of a selection: frozen value types (pure; no I/O)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import attrs

from ._answers import IPAddress, Security, TLSARecord, _slot_setters
from ._sts import StsPolicy

__all__ = [
    "OPPORTUNISTIC_TLS",
    "Host",
    "Posture",
    "Selection",
    "SelectionWarning",
    "Target",
    "TlsRequirement",
    "Trace",
    "TraceStep",
    "WarningCode",
]


class WarningCode(enum.Enum):
    """The kinds of misconfiguration mxselect notices and works around."""

    #: A root-exchange ("null") MX record mixed with real ones (RFC 7505 §3): ignored.
    NULL_MX_MIXED = "null-mx-mixed"
    #: A null MX with a non-zero preference (RFC 7505 §3 says preference 0): still null MX.
    NULL_MX_PREFERENCE = "null-mx-preference"
    #: An MX exchange that is not a valid host name (RFC 5321 §4.1.2, RFC 2181 §11): dropped.
    INVALID_EXCHANGE = "invalid-exchange"
    #: An MX exchange written as an IP address (RFC 5321 §5.1 requires a name): dropped.
    MX_IS_ADDRESS = "mx-is-address"
    #: The same exchange listed twice: kept once, at its best preference.
    DUPLICATE_HOST = "duplicate-host"
    #: An address already listed for a better-placed host: kept there only.
    DUPLICATE_ADDRESS = "duplicate-address"
    #: An MX exchange that is an alias (CNAME; RFC 2181 §10.3): followed.
    EXCHANGE_IS_ALIAS = "exchange-is-alias"
    #: A host with no usable address (NODATA, NXDOMAIN or a temporary failure): skipped.
    HOST_UNUSABLE = "host-unusable"
    #: One address family failed temporarily while the other answered: the host is used.
    PARTIAL_ADDRESS_FAILURE = "partial-address-failure"
    #: A resolver returned records that do not fit the query (wrong family): ignored.
    BAD_ANSWER = "bad-answer"
    #: An address in an unsafe network (loopback, link-local, ...): dropped (the policy).
    UNSAFE_ADDRESS = "unsafe-address"
    #: This host is one of the MX hosts: it and every worse MX were dropped (RFC 5321 §5.1).
    LOCAL_HOST = "local-host"
    #: More MX hosts than one batch resolves (``max_mx_hosts``): the rest are resolved in
    #: further batches only while none is usable, within ``max_address_queries``.
    MX_HOSTS_CAPPED = "mx-hosts-capped"
    #: A host's TLSA lookup failed (SERVFAIL, timeout, bogus...): the host is unusable, never
    #: reached without DANE (RFC 7672 §2.1.2 "MUST treat that server as unreachable").
    TLSA_LOOKUP_FAILED = "tlsa-lookup-failed"
    #: A host's secure TLSA RRset has no usable record: TLS is required, unauthenticated
    #: (RFC 7672 §2.2, RFC 6698 §4.1).
    TLSA_UNUSABLE = "tlsa-unusable"
    #: Mandatory DANE and a host without usable secure TLSA records: unusable (RFC 7672 §6).
    DANE_REQUIRED = "dane-required"
    #: DANE is on but the resolver reported no DNSSEC status for any answer (untrusted, or it
    #: cannot say): every host is opportunistic (RFC 7672 §2.1.1; Postfix's dnssec_probe).
    DNSSEC_UNAVAILABLE = "dnssec-unavailable"
    #: An MX host that does not match the domain's MTA-STS policy in mode enforce: unusable,
    #: as an unreachable host (RFC 8461 §4.1, §5, §8.4).
    STS_MX_MISMATCH = "sts-mx-mismatch"
    #: The MTA-STS policy could not be fetched (or was invalid); the cached policy, still
    #: valid, was applied (RFC 8461 §3.3).
    STS_POLICY_STALE = "sts-policy-stale"
    #: The MTA-STS policy could not be fetched (or was invalid) and none is cached: delivery
    #: goes on as though the domain had no policy (RFC 8461 §3.3).
    STS_FETCH_FAILED = "sts-fetch-failed"


@attrs.frozen
class SelectionWarning:
    """A misconfiguration that was worked around (the mail can still go somewhere).

    Attributes:
        code: what kind of problem.
        message: a readable sentence naming the host and the rule.
        host: the exchange concerned, if any.
        address: the one address concerned, if any: set for ``unsafe-address`` (the address
            dropped, or the address literal refused), ``duplicate-address`` (the address
            already listed for a better-placed host) and ``mx-is-address`` (the address the
            MX record names); ``None`` for the other codes. Read it
            rather than parsing :attr:`message`, whose wording may change.
        listed_for: for ``duplicate-address``, the host the address is already listed for;
            ``None`` otherwise.
    """

    code: WarningCode
    message: str
    host: str | None = None
    address: IPAddress | None = attrs.field(default=None, kw_only=True)
    listed_for: str | None = attrs.field(default=None, kw_only=True)

    def __str__(self) -> str:
        return self.message


@attrs.frozen
class TraceStep:
    """One decision of a selection, in order (see :meth:`Selection.explain`).

    Attributes:
        kind: what kind of step: ``"mx"`` (the MX answer), ``"lookup"`` (a host's address
            lookups), ``"order"`` (sorting and the shuffle of a preference group),
            ``"families"`` (the family order of a level), ``"limit"``, ``"more"`` (a further
            batch of hosts), ``"literal"`` (an address literal), ``"outcome"``, or the
            value of a :class:`WarningCode` for each drop and misconfiguration.
        message: the step as a readable sentence.
        host: the host concerned, if any.
    """

    kind: str
    message: str
    host: str | None = None

    def __str__(self) -> str:
        return self.message


def explain(trace: Sequence[TraceStep]) -> str:
    """The trace as numbered lines."""
    return "\n".join(f"{i:2d}. [{step.kind}] {step.message}" for i, step in enumerate(trace, 1))


#: One step as the core records it: ``(kind, message, host)``, where ``message`` is the text
#: or, to be formatted only if the trace is ever read, ``(function, *arguments)``.
RawStep = tuple[str, "str | tuple[Any, ...]", "str | None"]


class Trace(Sequence[TraceStep]):
    """The explain trace of a selection or an error: a read-only sequence of
    :class:`TraceStep`, in order.

    The core records its steps unformatted and a :class:`Trace` formats them when it is first
    read (most callers never read it); its length is known without formatting. It compares
    equal to any sequence of the same steps (a tuple included), and pickles as its steps.
    The arguments of a deferred message must not change after they are recorded (the core
    records immutable values, or lists it never touches again).
    """

    __slots__ = ("_raw", "_steps")

    def __init__(self, raw: Iterable[RawStep] = ()) -> None:
        self._raw: tuple[RawStep, ...] = tuple(raw)
        self._steps: tuple[TraceStep, ...] | None = None

    @classmethod
    def of(cls, steps: Iterable[TraceStep]) -> Trace:
        """A trace of steps already made."""
        trace = cls()
        trace._steps = tuple(steps)
        return trace

    @property
    def steps(self) -> tuple[TraceStep, ...]:
        """The steps as a tuple (formatted now if they were not yet)."""
        steps = self._steps
        if steps is None:
            steps = self._steps = tuple(
                TraceStep(
                    kind, message if isinstance(message, str) else message[0](*message[1:]), host
                )
                for kind, message, host in self._raw
            )
            self._raw = ()
        return steps

    @overload
    def __getitem__(self, index: int) -> TraceStep: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[TraceStep, ...]: ...

    def __getitem__(self, index: int | slice) -> TraceStep | tuple[TraceStep, ...]:
        return self.steps[index]

    def __len__(self) -> int:
        return len(self._raw) if self._steps is None else len(self._steps)

    def __iter__(self) -> Iterator[TraceStep]:
        return iter(self.steps)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Trace):
            return self.steps == other.steps
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return self.steps == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.steps)

    def __repr__(self) -> str:
        return f"Trace({list(self.steps)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Trace.of, (self.steps,))


def _as_trace(value: Iterable[TraceStep]) -> Trace:
    return value if isinstance(value, Trace) else Trace.of(value)


class Posture(enum.Enum):
    """How TLS must be used with a host (RFC 7672 §2.2; Postfix's TLS security levels)."""

    #: Secure TLSA records with a usable one, via a secure MX RRset: TLS, authenticated by the
    #: TLSA records; delivery may be logged as verified (RFC 7672 §2.2 first bullet).
    DANE = "dane"
    #: The same checks, but the MX RRset was not secure: log as "trusted", never as verified
    #: delivery to the domain (RFC 7672 §2.2.1 "MUST NOT be misrepresented").
    DANE_INSECURE_MX = "dane-insecure-mx"
    #: A secure TLSA RRset without a usable record (or an insecure MX with
    #: :attr:`InsecureMX.ENCRYPT`): TLS is required, not authenticated (RFC 7672 §2.2 second
    #: bullet).
    DANE_ENCRYPT = "dane-encrypt"
    #: An MTA-STS policy in mode enforce matches the host: TLS 1.2 or later, a certificate
    #: that chains to a trusted root and names the MX host (PKIX), no cleartext
    #: (RFC 8461 §4.2, §5, §7.2).
    MTA_STS = "mta-sts"
    #: An MTA-STS policy in mode testing: validate as for ``MTA_STS`` and report failures, but
    #: deliver anyway (RFC 8461 §5).
    MTA_STS_TESTING = "mta-sts-testing"
    #: STARTTLS when offered, cleartext otherwise; a failed handshake may be retried in
    #: cleartext (RFC 7672 §2.2 third bullet; RFC 3207).
    OPPORTUNISTIC = "opportunistic"

    def __str__(self) -> str:
        return self.value

    __hash__ = object.__hash__


@attrs.frozen(kw_only=True)
class TlsRequirement:
    """How the MTA must use TLS with a host: everything decided, nothing to re-derive.

    Attributes:
        posture: the :class:`Posture`.
        required: ``True``: no cleartext delivery -- no STARTTLS offered, or a failed
            handshake, means the next target (RFC 7672 §2.2: "MUST employ TLS").
        authenticate: ``"dane"``: verify the peer against :attr:`tlsa` (``mxselect.dane``),
            not against a CA list or by name for DANE-EE (RFC 7672 §3.1.1); ``"pkix"``: the
            usual certificate checks against trusted roots, with :attr:`sni` as the name
            (MTA-STS, RFC 8461 §4.2); ``None``: no authentication required.
        sni: the server name to send in the TLS SNI extension: the TLSA base domain
            (RFC 7672 §8.1), or the MX host name for MTA-STS (RFC 8461 §7.1); ``None`` when no
            name is required.
        reference_ids: the names a DANE-TA(2) certificate must match (RFC 7672 §3.2.2): the
            TLSA base domain first, then for a secure MX the next-hop domain and its
            CNAME-expanded form; with an insecure MX the MX host name only.
        tlsa: the usable TLSA records to match, after digest agility (RFC 7671 §9).
        tlsa_base_domain: the name whose ``_<port>._tcp`` TLSA records were used
            (RFC 7672 §2.2.3), or ``None``.
        rule: the RFC sentence that decided the posture.
    """

    posture: Posture
    required: bool = False
    authenticate: str | None = None
    sni: str | None = None
    reference_ids: tuple[str, ...] = ()
    tlsa: tuple[TLSARecord, ...] = ()
    tlsa_base_domain: str | None = None
    rule: str = ""

    def __str__(self) -> str:
        if self.posture in (Posture.DANE, Posture.DANE_INSECURE_MX):
            return f"{self.posture} " + ", ".join(
                f"{r.usage} {r.selector} {r.mtype}" for r in self.tlsa
            )
        return str(self.posture)


#: The requirement of every target without DANE: opportunistic TLS (one shared value).
OPPORTUNISTIC_TLS = TlsRequirement(
    posture=Posture.OPPORTUNISTIC,
    rule="RFC 3207 / RFC 7672 §2.2: no secure TLSA records: opportunistic TLS, cleartext allowed",
)


@attrs.frozen
class Target:
    """One address to try, in order.

    Attributes:
        host: the exchange name (the MX record's data, or the domain for an implicit MX, or the
            address literal as written).
        preference: the MX preference (0 for an implicit MX or an address literal).
        address: the IP address to connect to.
        tls: how TLS must be used with it (its host's :class:`TlsRequirement`).
    """

    host: str
    preference: int
    address: IPAddress
    tls: TlsRequirement = OPPORTUNISTIC_TLS

    @property
    def family(self) -> int:
        """4 or 6."""
        return self.address.version

    def __str__(self) -> str:
        return f"{self.host} [{self.address}] (preference {self.preference})"


_set_host, _set_preference, _set_address, _set_tls = _slot_setters(Target)


def make_target(host: str, preference: int, address: IPAddress, tls: TlsRequirement) -> Target:
    """``Target(host, preference, address, tls)`` without the attrs ``__init__`` (the core's
    hot path: one per address of a selection; the same object, frozen, equal and hashing
    alike)."""
    target: Target = object.__new__(Target)
    _set_host(target, host)
    _set_preference(target, preference)
    _set_address(target, address)
    _set_tls(target, tls)
    return target


@attrs.frozen
class Host:
    """One usable mail exchanger, with its addresses in the order to try them.

    Attributes:
        name: the exchange name as listed in the MX record (not CNAME-expanded; RFC 8461 §4.1
            matches MTA-STS policies against this name).
        preference: its MX preference (0 for the implicit MX).
        addresses: IPv6 and IPv4 addresses interleaved, IPv6 first (RFC 8305 §4, first address
            family count 1), each family in the order the resolver returned it (RFC 5321 §5.1).
        canonical_name: the name at the end of its CNAME chain (== ``name`` when no CNAME;
            RFC 7671 §7 uses it as the TLSA base domain).
        tls: how TLS must be used with it (:class:`TlsRequirement`; opportunistic without
            DANE).
        address_security: with DANE on (:attr:`Policy.dane`), the DNSSEC status of its address
            answers, CNAMEs included (the least secure family that gave addresses); ``UNKNOWN``
            without DANE (not worked out: a selection without DANE costs what it did) and for
            an address literal.
    """

    name: str
    preference: int
    addresses: tuple[IPAddress, ...]
    canonical_name: str
    tls: TlsRequirement = OPPORTUNISTIC_TLS
    address_security: Security = Security.UNKNOWN


@attrs.frozen(kw_only=True)
class Selection:
    """The outcome of a successful selection: the targets to try, in order.

    Iterating over it yields the :class:`Target` objects in try order.

    Attributes:
        domain: the recipient domain, normalised (lower-case A-label, no trailing dot); for an
            address literal, the literal as written by the caller, normalised.
        canonical_domain: the name whose MX records were used, after following any CNAME at
            ``domain`` (RFC 5321 §5.1); ``domain`` is never rewritten.
        targets: every address to try, in order.
        hosts: the usable hosts in order, each with its addresses.
        implicit: ``True`` when the domain has no MX records and the implicit MX (the domain
            itself, preference 0; RFC 5321 §5.1) was used.
        address_literal: ``True`` for ``[192.0.2.1]``-style input (no DNS used).
        ttl: the smallest TTL among the DNS answers used (seconds), i.e. how long this selection
            may be reused; ``None`` when no DNS answer was used or no TTL was known.
        warnings: misconfigurations that were worked around.
        mx_security: the DNSSEC status of the MX RRset and of the CNAMEs leading to it (for an
            implicit MX, of the NODATA answer) -- the least secure of them (RFC 7672 §2.2.1);
            ``UNKNOWN`` for an address literal or a resolver that cannot say.
        sts_policy: the MTA-STS policy applied (RFC 8461), or ``None``.
        sts_source: where it came from: ``"fetched"`` or ``"cached"`` (``None`` without one).
        sts_policy_id: the ``id`` of the ``_mta-sts`` record the policy was fetched for.
        tlsrpt: the reporting URIs (``rua``) of the domain's TLS-RPT record (RFC 8460 §3),
            when the policy asks for it and one is published; ``()`` otherwise.
        trace: every decision, in order: a :class:`Trace` (a sequence of :class:`TraceStep`);
            see :meth:`explain`. Not part of equality.
    """

    domain: str
    canonical_domain: str
    targets: tuple[Target, ...]
    hosts: tuple[Host, ...]
    implicit: bool = False
    address_literal: bool = False
    ttl: int | None = None
    warnings: tuple[SelectionWarning, ...] = ()
    mx_security: Security = Security.UNKNOWN
    sts_policy: StsPolicy | None = None
    sts_source: str | None = None
    sts_policy_id: str | None = None
    tlsrpt: tuple[str, ...] = ()
    trace: Trace = attrs.field(factory=Trace, converter=_as_trace, eq=False, repr=False)

    def explain(self) -> str:
        """Every decision taken, in order, as readable lines: the MX set received, each host's
        lookups, each drop with its reason, the shuffle of each preference group, the family
        order, the limit. The same steps are in :attr:`trace` as data."""
        return explain(self.trace)

    def __iter__(self) -> Iterator[Target]:
        return iter(self.targets)

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        """The addresses alone, in try order."""
        return tuple(t.address for t in self.targets)
