"""Test helpers: :class:`FakeResolver`, an in-memory resolver for both APIs.

Build it from a mapping or from RFC 1035 master-file text, make any (name, type) fail, and
check what was asked::

    fake = FakeResolver.from_zone('''
    $ORIGIN example.org.
    $TTL 300
    @     SOA  ns hostmaster 1 3600 900 604800 60
    @     MX   10 mx1
    mx1   A    192.0.2.1
    ''')
    fake.fail("mx1.example.org", "A", Fault.SERVFAIL)
    with pytest.raises(mxselect.DNSTemporaryError):
        mxselect.select_targets("example.org", resolver=fake)
    assert fake.queries[0] == Query("example.org.", RRType.MX)

It behaves like a recursive resolver: unknown names are NXDOMAIN, known names (or empty
non-terminals) without the type are NODATA, CNAME chains are followed (up to 16 links, or
``follow_cnames=False`` to answer ``ALIAS`` and let mxselect follow them), wildcards (``*.``)
are expanded, and negative answers carry the TTL of the enclosing SOA (RFC 2308 §5).
"""

from __future__ import annotations

import enum
import ipaddress
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._answers import (
    Answer,
    IPAddress,
    MXRecord,
    Query,
    RRType,
    Security,
    TLSARecord,
    least_secure,
)
from ._domain import normalize_exchange
from ._resolvers import failed as _failed

__all__ = ["FakeResolver", "Fault"]

_MAX_FOLLOW = 16  # like dnspython's limit inside one response


class Fault(enum.Enum):
    """How a (name, type) fails."""

    SERVFAIL = "SERVFAIL"
    TIMEOUT = "timeout"
    REFUSED = "REFUSED"
    FORMERR = "FORMERR"
    #: A truncated UDP answer whose TCP retry failed (RFC 1123 §6.1.3.2).
    TRUNCATED = "truncated"
    #: A validating resolver found the RRset bogus: SERVFAIL with EDE 6 (RFC 7672 §2.1.1:
    #: a failure, never a status).
    BOGUS = "bogus"
    #: A validating resolver could not decide (RFC 4035 §4.3 "indeterminate"): a failure too
    #: (RFC 7672 §2.1.1 "MUST be treated ... as though a "bogus" or error result had been
    #: returned").
    INDETERMINATE = "indeterminate"

    @property
    def reason(self) -> str:
        if self is Fault.TRUNCATED:
            return "truncated answer, TCP retry failed (fake)"
        if self is Fault.BOGUS:
            return "SERVFAIL (EDE 6: DNSSEC Bogus) (fake)"
        if self is Fault.INDETERMINATE:
            return "SERVFAIL (EDE 5: DNSSEC Indeterminate) (fake)"
        return f"{self.value} (fake)"


_Value = MXRecord | IPAddress | TLSARecord | str
_RecordInput = Mapping[str, Iterable[object] | str]


def _rtype_key(rtype: str | RRType | None) -> str | None:
    if rtype is None:
        return None
    return rtype.value if isinstance(rtype, RRType) else rtype.upper()


class FakeResolver:
    """An in-memory resolver implementing both :class:`mxselect.typing.Resolver` and
    :class:`mxselect.typing.AsyncResolver`.

    Args:
        records: ``{name: {type: values}}``, e.g. ``{"example.org": {"MX": [(10,
            "mx.example.org")]}, "mx.example.org": {"A": ["192.0.2.1"]}, "www.example.org":
            {"CNAME": "example.org"}}``. Names are absolute, with or without the trailing dot.
        ttl: the TTL of records given in ``records``.
        follow_cnames: chase CNAMEs like a recursive resolver (default), or answer
            :meth:`~mxselect.Answer.alias` and let mxselect chase them.
        security: the DNSSEC status of every answer (default ``UNKNOWN``, as from a resolver
            that cannot say); :meth:`set_security` gives zones their own (a signed zone
            ``SECURE``, an unsigned one ``INSECURE``).

    Attributes:
        queries: every query received, in order.
    """

    def __init__(
        self,
        records: Mapping[str, _RecordInput] | None = None,
        *,
        ttl: int = 300,
        follow_cnames: bool = True,
        security: Security = Security.UNKNOWN,
    ) -> None:
        self._data: dict[str, dict[str, list[_Value]]] = {}
        self._ttl: dict[tuple[str, str], int] = {}
        self._soa: dict[str, int] = {}
        self._faults: dict[tuple[str, str | None], Fault] = {}
        self._delays: dict[tuple[str, str | None], float] = {}
        self._lock = threading.Lock()
        self.follow_cnames = follow_cnames
        self.security = security
        self._zones: dict[str, Security] = {}
        self.queries: list[Query] = []
        for name, types in (records or {}).items():
            for rtype, values in types.items():
                if isinstance(values, str):
                    values = [values]
                self.add(name, rtype, *values, ttl=ttl)

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def from_zone(
        cls,
        text: str,
        *,
        origin: str | None = None,
        security: Security = Security.UNKNOWN,
        signed: Iterable[str] = (),
    ) -> FakeResolver:
        """Build a fake from RFC 1035 master-file text (read by ``dns.zonefile``).

        The text may hold several domains (several ``$ORIGIN`` lines). Without ``$ORIGIN`` or
        ``origin``, relative names are relative to the root. ``security``: the DNSSEC status
        of every answer; ``signed``: zones whose answers, positive and negative, are
        ``SECURE`` (as from a validating resolver with their trust anchor) -- the same as
        :meth:`set_security` for each. TLSA records are read as in a zone file
        (``_25._tcp.mx  TLSA  3 1 1 ab12...``).
        """
        fake = cls(security=security)
        fake.load_zone(text, origin=origin)
        for zone in signed:
            fake.set_security(zone, Security.SECURE)
        return fake

    def set_security(self, zone: str, security: Security | str) -> None:
        """Answers about ``zone`` and every name below it get this DNSSEC status: ``SECURE``
        for a signed zone a validating resolver trusts, ``INSECURE`` for an unsigned one. An
        answer that followed CNAMEs gets the least secure status of the names it passed
        (one AD bit covers a whole response: RFC 4035 §3.2.3). Bogus data is a fault:
        :meth:`fail` with :attr:`Fault.BOGUS`."""
        with self._lock:
            self._zones[normalize_exchange(zone)] = Security(security)

    def _security_of(self, name: str) -> Security:
        if self._zones:
            labels = name.split(".")
            for i in range(len(labels)):
                zone = ".".join(labels[i:])
                if zone in self._zones:
                    return self._zones[zone]
        return self.security

    def load_zone(self, text: str, *, origin: str | None = None) -> None:
        """Add the records of RFC 1035 master-file text (see :meth:`from_zone`)."""
        import dns.name
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset
        import dns.tokenizer
        import dns.zonefile

        # dnspython's master-file reader. One text may hold several domains, each with its SOA;
        # dnspython accepts an SOA only at the origin, so each $ORIGIN section is read on its
        # own (the last $TTL carries over).
        rrsets: list[dns.rrset.RRset] = []
        ttl_line = ""
        for section in re.split(r"(?m)^(?=\$ORIGIN\s)", text):
            match = re.match(r"\$ORIGIN\s+(\S+)", section)
            section_origin = match.group(1) if match else origin
            manager = dns.zonefile.RRSetsReaderManager(
                dns.name.from_text(section_origin) if section_origin else dns.name.root,
                False,
                dns.rdataclass.IN,
            )
            with manager.writer(True) as txn:  # type: ignore[no-untyped-call]
                dns.zonefile.Reader(
                    dns.tokenizer.Tokenizer(ttl_line + section, "<zone>"), dns.rdataclass.IN, txn
                ).read()
            rrsets.extend(manager.rrsets)
            ttls = re.findall(r"(?m)^\$TTL\s+(\S+)", section)
            if ttls:
                ttl_line = f"$TTL {ttls[-1]}\n"
        for rdataset in rrsets:
            owner = rdataset.name.to_text()
            rtype = dns.rdatatype.to_text(rdataset.rdtype)
            values: list[object] = []
            for rdata in rdataset:
                fields: Any = rdata
                if rdataset.rdtype == dns.rdatatype.MX:
                    values.append((fields.preference, fields.exchange.to_text()))
                elif rdataset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    values.append(fields.address)
                elif rdataset.rdtype == dns.rdatatype.CNAME:
                    values.append(fields.target.to_text())
                elif rdataset.rdtype == dns.rdatatype.TXT:
                    # RFC 8461 §3.1: a record's strings concatenated without spaces.
                    values.append(b"".join(fields.strings).decode("utf-8", "replace"))
                elif rdataset.rdtype == dns.rdatatype.TLSA:
                    values.append(
                        TLSARecord(fields.usage, fields.selector, fields.mtype, fields.cert)
                    )
                elif rdataset.rdtype == dns.rdatatype.SOA:
                    values.append(fields.minimum)
                else:
                    values.append(rdata.to_text())
            self.add(owner, rtype, *values, ttl=rdataset.ttl)

    def add(self, name: str, rtype: str | RRType, *values: object, ttl: int = 300) -> None:
        """Add records: ``add("example.org", "MX", (10, "mx.example.org"))``,
        ``add("mx.example.org", "A", "192.0.2.1")``, ``add("www.example.org", "CNAME",
        "example.org")``, ``add("example.org", "SOA", 60)`` (the SOA minimum),
        ``add("_25._tcp.mx.example.org", "TLSA", (3, 1, 1, "ab12..."))`` (a
        :class:`~mxselect.TLSARecord`, a tuple with the data as bytes or hex, or the text
        ``"3 1 1 ab12..."``), ``add("_mta-sts.example.org", "TXT", "v=STSv1; id=1")`` (one
        string per record, already concatenated)."""
        owner = normalize_exchange(name)
        key = _rtype_key(rtype)
        assert key is not None
        converted: list[_Value] = []
        for value in values:
            if key == "MX":
                if isinstance(value, MXRecord):
                    converted.append(value)
                else:
                    pair: Any = value
                    converted.append(MXRecord(int(pair[0]), str(pair[1])))
            elif key in ("A", "AAAA"):
                address = ipaddress.ip_address(value)  # type: ignore[arg-type]
                if address.version != (4 if key == "A" else 6):
                    raise ValueError(f"{value} is not an address for a {key} record")
                converted.append(address)
            elif key == "TLSA":
                converted.append(_tlsa(value))
            elif key == "SOA":
                self._soa[owner] = min(ttl, int(value))  # type: ignore[call-overload]
                converted.append(str(value))
            else:
                converted.append(str(value))
        with self._lock:
            node = self._data.setdefault(owner, {})
            if not converted:  # the name exists, with no records of this type: NODATA
                return
            node.setdefault(key, []).extend(converted)
            self._ttl[(owner, key)] = min(ttl, self._ttl.get((owner, key), ttl))

    def fail(
        self, name: str, rtype: str | RRType | None = None, fault: Fault | str = Fault.SERVFAIL
    ) -> None:
        """Make queries for ``name`` (of ``rtype``, or of every type) fail with ``fault``.

        Faults apply at every step of a CNAME chain, as with a real recursive resolver.
        """
        fault = fault if isinstance(fault, Fault) else Fault[fault.upper()]
        with self._lock:
            self._faults[(normalize_exchange(name), _rtype_key(rtype))] = fault

    def delay(self, name: str, rtype: str | RRType | None = None, seconds: float = 0.0) -> None:
        """Answer queries for ``name`` (of ``rtype``, or every type) after ``seconds``."""
        with self._lock:
            self._delays[(normalize_exchange(name), _rtype_key(rtype))] = seconds

    def clear_faults(self) -> None:
        """Remove every fault and delay."""
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    # -- answering ---------------------------------------------------------------------------

    def resolve(self, query: Query) -> Answer:
        """Answer one query (the :class:`mxselect.typing.Resolver` protocol)."""
        self._record(query)
        seconds = self._delay_for(query)
        if seconds:
            import time

            time.sleep(seconds)
        return self.answer(query)

    def resolve_batch(self, queries: Sequence[Query]) -> list[Answer]:
        """Answer a batch (used by the sync driver): recorded in batch order, answered
        concurrently when delays are set, so timings behave like a real concurrent batch."""
        for query in queries:
            self._record(query)
        delays = [self._delay_for(q) for q in queries]

        def one(item: tuple[Query, float]) -> Answer:
            if item[1]:
                import time

                time.sleep(item[1])
            try:
                return self.answer(item[0])
            except Exception as exc:  # one query's failure is that query's alone
                return _failed(exc)

        if not any(delays):
            return [one((q, 0.0)) for q in queries]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(queries)) as pool:
            return list(pool.map(one, zip(queries, delays, strict=True)))

    async def aresolve(self, query: Query) -> Answer:
        """Answer one query (the :class:`mxselect.typing.AsyncResolver` protocol)."""
        self._record(query)
        seconds = self._delay_for(query)
        if seconds:
            import asyncio

            await asyncio.sleep(seconds)
        return self.answer(query)

    def _record(self, query: Query) -> None:
        with self._lock:
            self.queries.append(query)

    def _delay_for(self, query: Query) -> float:
        name = normalize_exchange(query.name)
        return self._delays.get((name, query.rtype.value), self._delays.get((name, None), 0.0))

    def answer(self, query: Query) -> Answer:
        """What this fake answers for ``query``, without recording it."""
        rtype = query.rtype.value
        current = normalize_exchange(query.name)
        if rtype == "CNAME":
            return self._cname(current)
        chain: list[str] = []
        ttl: int | None = None
        security = self._security_of(current)
        while True:
            fault = self._faults.get((current, rtype)) or self._faults.get((current, None))
            if fault is not None:
                return Answer.tempfail(fault.reason)
            if chain:
                security = least_secure(security, self._security_of(current))
            node = self._node(current)
            canonical = current if chain else None
            aliases = tuple(chain)
            if node is None:
                return Answer.nxdomain(
                    ttl=_min(ttl, self._negative_ttl(current)),
                    canonical_name=canonical,
                    aliases=aliases,
                    security=security,
                )
            owner, types = node
            if rtype in types:
                ttl = _min(ttl, self._ttl.get((owner, rtype)))
                if rtype == "MX":
                    return Answer.from_mx(
                        [v for v in types[rtype] if isinstance(v, MXRecord)],
                        ttl=ttl,
                        canonical_name=canonical,
                        aliases=aliases,
                        security=security,
                    )
                if rtype == "TXT":
                    return Answer.from_txt(
                        [v for v in types[rtype] if isinstance(v, str)],
                        ttl=ttl,
                        canonical_name=canonical,
                        aliases=aliases,
                        security=security,
                    )
                if rtype == "TLSA":
                    return Answer.from_tlsa(
                        [v for v in types[rtype] if isinstance(v, TLSARecord)],
                        ttl=ttl,
                        canonical_name=canonical,
                        aliases=aliases,
                        security=security,
                    )
                return Answer.from_addresses(
                    [v for v in types[rtype] if not isinstance(v, MXRecord | TLSARecord | str)],
                    ttl=ttl,
                    canonical_name=canonical,
                    aliases=aliases,
                    security=security,
                )
            if "CNAME" in types:
                target = normalize_exchange(str(types["CNAME"][0]))
                ttl = _min(ttl, self._ttl.get((owner, "CNAME")))
                chain.append(current)
                if not self.follow_cnames or target in chain or len(chain) >= _MAX_FOLLOW:
                    return Answer.alias(target, ttl=ttl, aliases=chain, security=security)
                current = target
                continue
            return Answer.nodata(
                ttl=_min(ttl, self._negative_ttl(current)),
                canonical_name=canonical,
                aliases=aliases,
                security=security,
            )

    def _cname(self, name: str) -> Answer:
        """A CNAME query: the record itself, not followed (``ALIAS`` with its target), with the
        status of the zone holding it (RFC 7672 §2.1.3 asks it to learn just that)."""
        fault = self._faults.get((name, "CNAME")) or self._faults.get((name, None))
        if fault is not None:
            return Answer.tempfail(fault.reason)
        security = self._security_of(name)
        node = self._node(name)
        if node is None:
            return Answer.nxdomain(ttl=self._negative_ttl(name), security=security)
        owner, types = node
        if "CNAME" in types:
            target = normalize_exchange(str(types["CNAME"][0]))
            ttl = self._ttl.get((owner, "CNAME"))
            return Answer.alias(target, ttl=ttl, aliases=(name,), security=security)
        return Answer.nodata(ttl=self._negative_ttl(name), security=security)

    def _node(self, name: str) -> tuple[str, dict[str, list[_Value]]] | None:
        """The records at ``name`` (or the wildcard that covers it); ``{}`` for an empty
        non-terminal; ``None`` if the name does not exist."""
        types = self._data.get(name)
        if types is not None:
            return name, types
        suffix = "." + name
        if any(other.endswith(suffix) for other in self._data):
            return name, {}
        # RFC 4592: the closest encloser's wildcard, if any.
        labels = name.split(".")
        for i in range(1, len(labels)):
            encloser = ".".join(labels[i:])
            wildcard = "*." + encloser
            if wildcard in self._data:
                return wildcard, self._data[wildcard]
            if encloser in self._data:
                break
        return None

    def _negative_ttl(self, name: str) -> int | None:
        """RFC 2308 §5: min(SOA TTL, SOA MINIMUM) of the enclosing zone."""
        labels = name.split(".")
        for i in range(len(labels)):
            owner = ".".join(labels[i:])
            if owner in self._soa:
                return self._soa[owner]
        return None

    def __repr__(self) -> str:
        return f"FakeResolver({len(self._data)} names, {len(self.queries)} queries)"


def _tlsa(value: object) -> TLSARecord:
    """A TLSA record from a :class:`TLSARecord`, ``(usage, selector, mtype, data)`` with the
    data as bytes or hex, or presentation text ``"3 1 1 ab12..."``."""
    if isinstance(value, TLSARecord):
        return value
    if isinstance(value, str):
        usage, selector, mtype, *data = value.split()
        return TLSARecord(int(usage), int(selector), int(mtype), bytes.fromhex("".join(data)))
    fields: Any = value
    data = fields[3]
    return TLSARecord(
        int(fields[0]),
        int(fields[1]),
        int(fields[2]),
        bytes.fromhex(data) if isinstance(data, str) else bytes(data),
    )


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


# -- MTA-STS policy fetches (RFC 8461 §3.3) ---------------------------------------------------

import asyncio as _asyncio  # noqa: E402
import time as _time  # noqa: E402

from ._answers import FetchResult, PolicyFetch  # noqa: E402

__all__ += ["FakeFetcher"]


class FakeFetcher:
    """An in-memory :class:`mxselect.fetch.Fetcher` and :class:`mxselect.fetch.AsyncFetcher`:
    policies by domain, every request recorded in :attr:`fetches`.

    ::

        fetcher = FakeFetcher({"example.org": "version: STSv1\\nmode: enforce\\n..."})
        fetcher.fetch(PolicyFetch.for_domain("example.org", 60)).status  # 200

    Args:
        policies: policy domain (``"example.org"``) -> the body (``str``, sent as UTF-8, or
            ``bytes``), or a whole :class:`~mxselect.FetchResult` to return as is. A domain
            not in it answers 404 (RFC 8461 §3.3: only a 200 is a policy). Kept as the
            mutable ``policies`` dict: change it to publish a new policy.
        status: the HTTP status of every policy response.
        content_type: the ``Content-Type`` of every policy response (RFC 8461 §3.2).
        delay: seconds each fetch takes (``time.sleep`` / ``asyncio.sleep``); a delay longer
            than the request's timeout sleeps the timeout, then fails "timeout after N s".
        fail: domain -> the reason of a :meth:`FetchResult.failed
            <mxselect.FetchResult.failed>` (``"connection refused"``, ``"TLS certificate
            error: ..."``).
        redirect: domains answered with ``301 Moved Permanently`` (RFC 8461 §3.3: not to be
            followed; the fake follows nothing).

    Like a real fetcher, the body returned is at most ``max_bytes`` + 1 octets long.
    """

    def __init__(
        self,
        policies: Mapping[str, str | bytes | FetchResult] | None = None,
        *,
        status: int = 200,
        content_type: str = "text/plain",
        delay: float = 0.0,
        fail: Mapping[str, str] | None = None,
        redirect: Iterable[str] = (),
    ) -> None:
        self.policies: dict[str, str | bytes | FetchResult] = dict(policies or {})
        self.status = status
        self.content_type = content_type
        self.delay = delay
        self.fail: dict[str, str] = dict(fail or {})
        self.redirect: set[str] = set(redirect)
        #: Every request, in the order received (sync and async alike).
        self.fetches: list[PolicyFetch] = []

    def fetch(self, request: PolicyFetch) -> FetchResult:
        """Record ``request`` and answer it (after ``delay`` seconds)."""
        self.fetches.append(request)
        if self.delay:
            _time.sleep(min(self.delay, request.timeout))
        return self._answer(request)

    async def afetch(self, request: PolicyFetch) -> FetchResult:
        """Record ``request`` and answer it (after ``delay`` seconds, awaited)."""
        self.fetches.append(request)
        if self.delay:
            await _asyncio.sleep(min(self.delay, request.timeout))
        return self._answer(request)

    def _answer(self, request: PolicyFetch) -> FetchResult:
        if self.delay > request.timeout:
            return FetchResult.failed(f"timeout after {request.timeout:g} s")
        domain = request.domain.lower().rstrip(".")
        if domain in self.fail:
            return FetchResult.failed(self.fail[domain])
        if domain in self.redirect:
            return FetchResult.response(301, "text/html", b"<h1>Moved Permanently</h1>")
        policy = self.policies.get(domain)
        if policy is None:
            return FetchResult.response(404, "text/html", b"<h1>Not Found</h1>")
        if isinstance(policy, FetchResult):
            return policy
        body = policy.encode() if isinstance(policy, str) else bytes(policy)
        return FetchResult.response(self.status, self.content_type, body[: request.max_bytes + 1])

    def __repr__(self) -> str:
        return f"FakeFetcher({len(self.policies)} policies, {len(self.fetches)} fetches)"
