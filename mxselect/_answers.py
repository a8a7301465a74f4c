"""The types that cross the boundary between the pure core and a resolver.

A resolver receives a :class:`Query` and reports exactly one of the outcomes RFC 1123
§6.1.4.2 asks of a resolver interface -- records, NODATA, NXDOMAIN, or a temporary failure --
as an :class:`Answer`. One more outcome exists for resolvers that do not chase CNAMEs themselves:
``ALIAS`` ("the name is an alias of X, which I did not resolve"); the core then asks for X
(RFC 7672 §2.1.3).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from typing import Any

import attrs

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

__all__ = [
    "Answer",
    "FetchResult",
    "IPAddress",
    "MXRecord",
    "PolicyFetch",
    "Query",
    "RRType",
    "Security",
    "Status",
    "TLSARecord",
    "least_secure",
]


class RRType(enum.Enum):
    """The record types mxselect asks for. Never ANY, never WKS (RFC 1123 §5.2.12).

    ``TLSA`` and ``CNAME`` are asked only with DANE on (:attr:`Policy.dane`): TLSA at
    ``_<port>._tcp.<host>`` (RFC 7672 §2.2.3), CNAME only to learn whether an alias whose
    final addresses are insecure is itself signed (RFC 7672 §2.1.3).
    """

    MX = "MX"
    A = "A"
    AAAA = "AAAA"
    TLSA = "TLSA"
    CNAME = "CNAME"
    #: Asked only with MTA-STS or TLS-RPT on: ``_mta-sts.<domain>`` (RFC 8461 §3.1) and
    #: ``_smtp._tls.<domain>`` (RFC 8460 §3).
    TXT = "TXT"

    def __str__(self) -> str:
        return self.value

    # Members are singletons: identity hashing is correct and much cheaper than Enum's
    # Python-level __hash__ (the core keys its dicts by (name, type) pairs).
    __hash__ = object.__hash__


class Security(enum.Enum):
    """The DNSSEC status of an answer, as a validating resolver the caller trusts reported it.

    RFC 7672 §2.1.1: "secure" and "insecure" answers are both usable facts; "bogus" and
    "indeterminate" are failures -- a resolver reports them as ``TEMPFAIL`` (with the reason),
    never as a status here. The AD bit counts only from a resolver the caller trusts over a
    secure channel (RFC 4035 §4.9.3, quoted in RFC 7672 §2.1.1); from any other, or when the
    resolver cannot say, the status is ``UNKNOWN``, which DANE treats as insecure.
    """

    #: Validated (the AD bit from a trusted validating resolver; RFC 4035 §3.2.3).
    SECURE = "secure"
    #: Validated as insecure, or outside every trust anchor (RFC 7672 §2.1.1), as reported by a
    #: trusted resolver (AD clear).
    INSECURE = "insecure"
    #: Not known: the resolver is not trusted, or cannot report it (c-ares, most fakes).
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value

    __hash__ = object.__hash__


#: Least secure first: the status of several RRsets is that of the least secure one.
_RANK = {Security.UNKNOWN: 0, Security.INSECURE: 1, Security.SECURE: 2}


def seconds(value: float) -> str:
    """A bound in seconds as failure texts write it: one decimal (``5.0``, ``0.3``), or two
    significant digits below 0.1 s (``0.04``) -- never ``0.0`` for a bound that was not 0."""
    return f"{value:.1f}" if value >= 0.1 or value <= 0 else f"{value:.2g}"


def least_secure(*statuses: Security) -> Security:
    """The least secure of ``statuses`` (UNKNOWN < INSECURE < SECURE): a CNAME chain, or a
    set of RRsets, is only as secure as its weakest part (RFC 7672 §2.1.3)."""
    return min(statuses, key=_RANK.__getitem__) if statuses else Security.UNKNOWN


class Status(enum.Enum):
    """What a lookup established."""

    #: NOERROR with records of the asked type (``Answer.mx``, ``Answer.addresses`` or
    #: ``Answer.tlsa``). A CNAME query's record is reported as ``ALIAS`` with its target.
    RECORDS = "records"
    #: NOERROR, the name exists, no records of the asked type (RFC 2308 §2.2).
    NODATA = "nodata"
    #: The name does not exist (RFC 2308 §2.1); with CNAMEs, the last name (RFC 6604 §3).
    NXDOMAIN = "nxdomain"
    #: The name is an alias (CNAME) of ``Answer.canonical_name``, not yet resolved.
    ALIAS = "alias"
    #: SERVFAIL, timeout, REFUSED, FORMERR, truncation without TCP, a resolver error...
    TEMPFAIL = "tempfail"


@attrs.frozen
class Query:
    """One DNS question the core needs answered.

    Attributes:
        name: the absolute name, lower-case A-label *with* a trailing dot
            (``"example.org."``). Pass it to your resolver as is: the trailing dot keeps any
            search list away (RFC 5321 §5.1, RFC 1123 §6.1.4.3).
        rtype: the record type.
    """

    name: str
    rtype: RRType

    def __str__(self) -> str:
        return f"{self.name} {self.rtype.value}"


def _check_preference(_inst: object, _attr: object, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"MX preference must be 0..65535, got {value}")


@attrs.frozen
class MXRecord:
    """One MX record as received (RFC 1035 §3.3.9).

    Attributes:
        preference: 0..65535, lower is preferred.
        exchange: the exchange name in presentation form, as the resolver gave it
            (``"mx1.example.org."``; ``"."`` for a null MX). The core validates it.
    """

    preference: int = attrs.field(validator=_check_preference)
    exchange: str


#: The digest lengths of the TLSA matching types (RFC 6698 §2.1.3): SHA2-256(1), SHA2-512(2).
_DIGEST_LENGTHS = {1: 32, 2: 64}


@attrs.frozen
class TLSARecord:
    """One TLSA record (RFC 6698 §2.1): ``usage selector mtype data``.

    Attributes:
        usage: 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE (RFC 6698 §2.1.1, RFC 7218).
        selector: 0 the full certificate, 1 its SubjectPublicKeyInfo (RFC 6698 §2.1.2).
        mtype: 0 the exact data, 1 SHA2-256, 2 SHA2-512 of it (RFC 6698 §2.1.3).
        data: the certificate association data (binary, not hex).
    """

    usage: int
    selector: int
    mtype: int
    data: bytes

    @property
    def usable(self) -> bool:
        """Whether an SMTP client can use the record (RFC 7672 §3.1.3, RFC 6698 §4.1).

        DANE-TA(2) and DANE-EE(3) only: PKIX-TA(0) and PKIX-EE(1) "MAY" be treated as unusable
        by SMTP clients (RFC 7672 §3.1.3), as Postfix and Exim do, since no CA list is shared
        for SMTP. Selector 0 or 1, matching type 0, 1 or 2; a digest of the wrong length, or
        empty data, is "malformed" and unusable (RFC 6698 §4.1 "MUST be considered
        unusable").
        """
        if self.usage not in (2, 3) or self.selector not in (0, 1) or not self.data:
            return False
        if self.mtype == 0:
            return True
        return _DIGEST_LENGTHS.get(self.mtype) == len(self.data)

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"


def _to_tlsa(value: TLSARecord | tuple[int, int, int, bytes | str]) -> TLSARecord:
    if isinstance(value, TLSARecord):
        return value
    usage, selector, mtype, data = value
    return TLSARecord(
        usage, selector, mtype, bytes.fromhex(data) if isinstance(data, str) else data
    )


def _to_mx(value: MXRecord | tuple[int, str]) -> MXRecord:
    if isinstance(value, MXRecord):
        return value
    preference, exchange = value
    return MXRecord(preference, exchange)


def _to_address(value: IPAddress | str) -> IPAddress:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    return ipaddress.ip_address(value)


@attrs.frozen(kw_only=True)
class Answer:
    """A resolver's report for one :class:`Query`. Build it with the named constructors.

    Attributes:
        status: what the lookup established.
        mx: the MX records (``RECORDS`` answer to an MX query).
        addresses: the addresses, in the order received (``RECORDS`` answer to A/AAAA).
        canonical_name: the name at the end of the CNAME chain, if the queried name was an
            alias; for ``ALIAS``, the target still to resolve.
        tlsa: the TLSA records (``RECORDS`` answer to a TLSA query; RFC 6698 §2.1).
        txt: the TXT records (``RECORDS`` answer to a TXT query), each record's strings
            concatenated without spaces (RFC 8461 §3.1, RFC 8460 §3), in the order received.
        aliases: the owner names of the CNAME records followed, in order, starting with the
            queried name (optional; ``canonical_name`` alone is enough).
        ttl: the smallest TTL of the records used (for NODATA/NXDOMAIN: the negative TTL of
            RFC 2308 §5), or ``None`` if unknown.
        reason: for ``TEMPFAIL``, what went wrong (``"SERVFAIL"``, ``"timeout after 5 s"``);
            free text otherwise.
        security: the DNSSEC status of the answer as a whole -- every RRset it used, CNAMEs
            included (:class:`Security`; ``UNKNOWN`` unless the resolver reports it).
    """

    status: Status
    mx: tuple[MXRecord, ...] = ()
    addresses: tuple[IPAddress, ...] = ()
    tlsa: tuple[TLSARecord, ...] = ()
    txt: tuple[str, ...] = ()
    canonical_name: str | None = None
    aliases: tuple[str, ...] = ()
    ttl: int | None = None
    reason: str = ""
    security: Security = Security.UNKNOWN

    @classmethod
    def from_mx(
        cls,
        records: Iterable[MXRecord | tuple[int, str]],
        *,
        ttl: int | None = None,
        canonical_name: str | None = None,
        aliases: Iterable[str] = (),
        security: Security = Security.UNKNOWN,
    ) -> Answer:
        """MX records, e.g. ``Answer.from_mx([(10, "mx1.example.org.")], ttl=300)``."""
        return cls(
            status=Status.RECORDS,
            mx=tuple(_to_mx(r) for r in records),
            ttl=ttl,
            canonical_name=canonical_name,
            aliases=tuple(aliases),
            security=security,
        )

    @classmethod
    def from_addresses(
        cls,
        addresses: Iterable[IPAddress | str],
        *,
        ttl: int | None = None,
        canonical_name: str | None = None,
        aliases: Iterable[str] = (),
        security: Security = Security.UNKNOWN,
    ) -> Answer:
        """A or AAAA records, e.g. ``Answer.from_addresses(["192.0.2.1"])``."""
        return cls(
            status=Status.RECORDS,
            addresses=tuple(_to_address(a) for a in addresses),
            ttl=ttl,
            canonical_name=canonical_name,
            aliases=tuple(aliases),
            security=security,
        )

    @classmethod
    def from_tlsa(
        cls,
        records: Iterable[TLSARecord | tuple[int, int, int, bytes | str]],
        *,
        ttl: int | None = None,
        canonical_name: str | None = None,
        aliases: Iterable[str] = (),
        security: Security = Security.UNKNOWN,
    ) -> Answer:
        """TLSA records, e.g. ``Answer.from_tlsa([(3, 1, 1, "ab12...")], security=SECURE)``
        (the data as bytes or hex)."""
        return cls(
            status=Status.RECORDS,
            tlsa=tuple(_to_tlsa(r) for r in records),
            ttl=ttl,
            canonical_name=canonical_name,
            aliases=tuple(aliases),
            security=security,
        )

    @classmethod
    def from_txt(
        cls,
        records: Iterable[str],
        *,
        ttl: int | None = None,
        canonical_name: str | None = None,
        aliases: Iterable[str] = (),
        security: Security = Security.UNKNOWN,
    ) -> Answer:
        """TXT records, each given as its strings already concatenated (RFC 8461 §3.1: "the
        record MUST be treated as if those strings are concatenated without adding spaces"),
        e.g. ``Answer.from_txt(["v=STSv1; id=20260101"])``."""
        return cls(
            status=Status.RECORDS,
            txt=tuple(records),
            ttl=ttl,
            canonical_name=canonical_name,
            aliases=tuple(aliases),
            security=security,
        )

    @classmethod
    def nodata(
        cls,
        *,
        ttl: int | None = None,
        canonical_name: str | None = None,
        aliases: Iterable[str] = (),
        security: Security = Security.UNKNOWN,
    ) -> Answer:
        """The name exists but has no records of the asked type (RFC 2308 §2.2); a secure
        NODATA is a fact, not an error (RFC 7672 §2.1.1)."""
        return cls(
            status=Status.NODATA,
            ttl=ttl,
            canonical_name=canonical_name,
            aliases=tuple(aliases),
            security=security,
        )

    @classmethod
    def nxdomain(
        cls,
        *,
        ttl: int | None = None,
        canonical_name: str | None = None,
        aliases: Iterable[str] = (),
        security: Security = Security.UNKNOWN,
    ) -> Answer:
        """The name (or the last name of its CNAME chain) does not exist (RFC 2308 §2.1)."""
        return cls(
            status=Status.NXDOMAIN,
            ttl=ttl,
            canonical_name=canonical_name,
            aliases=tuple(aliases),
            security=security,
        )

    @classmethod
    def alias(
        cls,
        target: str,
        *,
        ttl: int | None = None,
        aliases: Iterable[str] = (),
        security: Security = Security.UNKNOWN,
    ) -> Answer:
        """The name is a CNAME for ``target``, which this resolver did not resolve."""
        return cls(
            status=Status.ALIAS,
            canonical_name=target,
            ttl=ttl,
            aliases=tuple(aliases),
            security=security,
        )

    @classmethod
    def tempfail(cls, reason: str) -> Answer:
        """A temporary failure: SERVFAIL, timeout, REFUSED, network error... (RFC 5321 §5.1)."""
        return cls(status=Status.TEMPFAIL, reason=reason)


# -- the codec's constructors --------------------------------------------------------------
# The stub's codec (``_wire``) builds Answers from wire data it has already checked (a 16-bit
# preference, 4- or 16-octet addresses, tuples of records): these private constructors set
# the slots directly, skipping the attrs ``__init__`` (keyword arguments, its validator). The
# objects are the same as the public constructors build: frozen, equal and hashing alike
# (tests/test_fast_paths.py checks it on a seeded sample of replies).
_new = object.__new__


def _slot_setters(cls: type) -> tuple[Any, ...]:
    """The ``__set__`` of each attrs field's slot of ``cls``, in field order."""
    return tuple(cls.__dict__[field.name].__set__ for field in attrs.fields(cls))


_set_name, _set_rtype = _slot_setters(Query)


def make_query(name: str, rtype: RRType) -> Query:
    """``Query(name, rtype)`` without the attrs ``__init__`` (the core builds one per query
    it asks: the same object, frozen, equal and hashing alike)."""
    query: Query = _new(Query)
    _set_name(query, name)
    _set_rtype(query, rtype)
    return query


(
    _set_status,
    _set_mx,
    _set_addresses,
    _set_tlsa,
    _set_txt,
    _set_canonical_name,
    _set_aliases,
    _set_ttl,
    _set_reason,
    _set_security,
) = _slot_setters(Answer)
_set_preference, _set_exchange = _slot_setters(MXRecord)
_set_usage, _set_selector, _set_mtype, _set_data = _slot_setters(TLSARecord)


def make_answer(
    status: Status,
    mx: tuple[MXRecord, ...],
    addresses: tuple[IPAddress, ...],
    tlsa: tuple[TLSARecord, ...],
    txt: tuple[str, ...],
    canonical_name: str | None,
    aliases: tuple[str, ...],
    ttl: int | None,
    security: Security,
) -> Answer:
    """``Answer(status=..., ...)`` (``reason`` empty) without the attrs ``__init__``; every
    argument already of its field's type (the codec's, never a user's, input)."""
    answer: Answer = _new(Answer)
    _set_status(answer, status)
    _set_mx(answer, mx)
    _set_addresses(answer, addresses)
    _set_tlsa(answer, tlsa)
    _set_txt(answer, txt)
    _set_canonical_name(answer, canonical_name)
    _set_aliases(answer, aliases)
    _set_ttl(answer, ttl)
    _set_reason(answer, "")
    _set_security(answer, security)
    return answer


def make_mx(preference: int, exchange: str) -> MXRecord:
    """``MXRecord(preference, exchange)`` without the range check: a preference read from
    the wire is 16 bits (RFC 1035 §3.3.9), always in range."""
    record: MXRecord = _new(MXRecord)
    _set_preference(record, preference)
    _set_exchange(record, exchange)
    return record


def make_tlsa(usage: int, selector: int, mtype: int, data: bytes) -> TLSARecord:
    """``TLSARecord(usage, selector, mtype, data)`` without the attrs ``__init__``."""
    record: TLSARecord = _new(TLSARecord)
    _set_usage(record, usage)
    _set_selector(record, selector)
    _set_mtype(record, mtype)
    _set_data(record, data)
    return record


#: RFC 8461 §3.3: "a suggested maximum policy size is 64 kilobytes".
MAX_POLICY_BYTES = 65536


@attrs.frozen
class PolicyFetch:
    """A request of the plan that is not DNS: fetch a domain's MTA-STS policy over HTTPS
    (RFC 8461 §3.3). A fetcher (``mxselect.fetch``) answers it with a :class:`FetchResult`.

    Attributes:
        domain: the policy domain (lower-case A-label, no trailing dot).
        url: ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (RFC 8461 §3.3).
        timeout: the most seconds the whole fetch may take (RFC 8461 §3.3 suggests a minute;
            the policy sets it).
        max_bytes: the largest body accepted (RFC 8461 §3.3: 64 kilobytes).
    """

    domain: str
    url: str
    timeout: float
    max_bytes: int = MAX_POLICY_BYTES

    @classmethod
    def for_domain(cls, domain: str, timeout: float) -> PolicyFetch:
        """The fetch of ``domain``'s policy (RFC 8461 §3.3 names the host and path)."""
        return cls(domain, f"https://mta-sts.{domain}/.well-known/mta-sts.txt", timeout)

    def __str__(self) -> str:
        return f"GET {self.url}"


@attrs.frozen(kw_only=True)
class FetchResult:
    """What a fetcher got for a :class:`PolicyFetch`. Build it with the named constructors.

    The fetcher enforces what only the transport can (RFC 8461 §3.3): HTTPS with a
    certificate valid for ``mta-sts.<domain>``, redirects not followed, no HTTP cache, the
    timeout, reading no more than ``max_bytes`` + 1 octets. The plan checks the rest: status
    200, a ``text/plain`` media type (§3.2 SHOULD), the size, and the policy's syntax.

    Attributes:
        status: the HTTP status code, or ``None`` when no response arrived.
        content_type: the ``Content-Type`` header, as sent (``""`` if absent).
        body: the body (at most ``max_bytes`` + 1 octets: one more shows it was too long).
        reason: why the fetch failed (a connection error, a timeout, a certificate error);
            ``""`` when a response arrived.
    """

    status: int | None = None
    content_type: str = ""
    body: bytes = b""
    reason: str = ""

    @classmethod
    def response(cls, status: int, content_type: str, body: bytes) -> FetchResult:
        """An HTTP response arrived (any status: a 3xx is a failure the plan names, §3.3)."""
        return cls(status=status, content_type=content_type, body=body)

    @classmethod
    def failed(cls, reason: str) -> FetchResult:
        """No response: a connection or TLS error, a timeout... (``reason`` says which)."""
        return cls(reason=reason)
