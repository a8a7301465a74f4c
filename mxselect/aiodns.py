"""The aiodns (c-ares) adapter: an :class:`mxselect.typing.AsyncResolver` over ``aiodns``.

Install with ``pip install "mxselect[aiodns]"``. It is also the worked example of the resolver
protocol: one ``async def aresolve(query) -> Answer`` that maps every outcome of the library
to an :class:`~mxselect.Answer` in one place, with the same classification as the dnspython
adapter:

=============================== =============================================================
c-ares / aiodns                 mxselect
=============================== =============================================================
records (CNAMEs in the answer)  ``RECORDS``, the chain followed from the queried name, the
                                canonical name, and the minimum TTL of the records used
``ARES_ENODATA``                ``NODATA`` -- or ``ALIAS`` if the name is a CNAME (see below)
``ARES_ENOTFOUND``              ``NXDOMAIN`` -- or ``ALIAS`` if the name is a CNAME
``ARES_ESERVFAIL``,             ``TEMPFAIL``, "SERVFAIL from 127.0.0.1@53" (the rcode and the
``ARES_EREFUSED``,              servers asked)
``ARES_EFORMERR``,
``ARES_ENOTIMP``
``ARES_ETIMEOUT``               ``TEMPFAIL``, "timeout after N s"
anything else                   ``TEMPFAIL`` naming the error -- never a permanent outcome
=============================== =============================================================

c-ares does not hand back the response of a negative answer, so two facts a dnspython
response carries are recovered differently: when a negative answer comes back, one ``CNAME``
query tells whether the queried name is an alias; if it is, the adapter answers
:meth:`Answer.alias(target) <mxselect.Answer.alias>` and mxselect asks for the target itself
(so NXDOMAIN at the end of a chain is reported for the last name, RFC 6604 §3, and an implicit
MX uses the canonical name). The SOA of a negative answer, hence its RFC 2308 §5 TTL, is not
available: negative answers carry ``ttl=None`` unless you set ``negative_ttl``, and
:class:`~mxselect.cache.CachingResolver` does not keep negative answers without a TTL.

**DANE** (RFC 7672). This adapter cannot serve it: aiodns offers no ``TLSA`` query type (its
``query_dns`` knows A, AAAA, CAA, CNAME, MX, NAPTR, NS, PTR, SOA, SRV, TXT), and c-ares does not
expose the AD bit, so every answer's :class:`~mxselect.Security` is ``UNKNOWN`` and a TLSA
RRset from it could never be used (RFC 6698 §4.1: one whose validation state is not secure
"MUST be considered unusable"). A ``TLSA`` query is answered with a temporary failure, "TLSA
queries are not supported by c-ares (aiodns); use the stub or the dnspython adapter for DANE"
-- never with NODATA, which would claim the records do not exist. With only ``UNKNOWN``
statuses mxselect asks no TLSA query (RFC 7672 §2.2.2: TLSA only after secure addresses), so
with DANE on every host is opportunistic and the selection warns ``dnssec-unavailable``.
``CNAME`` queries work (RFC 7672 §2.1.3): :meth:`Answer.alias(target) <mxselect.Answer.alias>`,
or NODATA/NXDOMAIN, status ``UNKNOWN``.

**MTA-STS and TLS-RPT** (RFC 8461 §3.1, RFC 8460 §3). ``TXT`` queries work:
:meth:`Answer.from_txt <mxselect.Answer.from_txt>`, status ``UNKNOWN``. pycares (5.x) hands
back one ``data`` per record with its strings already joined without spaces, as RFC 8461 §3.1
asks; the adapter decodes it as Latin-1, as the stub and the dnspython adapter do (pycares 4.x,
which gave ``.text`` as a ``str``, is taken as is). Neither MTA-STS nor TLS-RPT needs DNSSEC.

c-ares retries a truncated UDP answer over TCP by itself (RFC 1123 §6.1.3.2). Queries are
absolute names sent with ``query`` (never ``search``): no search list (RFC 5321 §5.1).

A malformed datagram from the server makes c-ares close the UDP socket it came in on and
requeue *every* query in flight on that socket, each using up one of its ``tries``; when those
run out, every one of them fails with ``ARES_EBADRESP`` -- queries for other, healthy names
included (two garbage replies to one AAAA query failed both families of the healthy MX and so
deferred the domain, in ``tests/test_aiodns.py``). So a query that failed with
``ARES_EBADRESP`` is asked **once more, on a c-ares channel of its own** (no other query shares
its socket), within what is left of its budget (``timeout`` x ``tries``). Retrying on the
shared channel is not enough: the broken query's own retry resets the socket again. Every
other outcome -- NXDOMAIN, NODATA, SERVFAIL, REFUSED, FORMERR, a timeout -- is what the server
meant and is never retried. With a ``resolver`` passed in, the retry uses it (not isolated).

::

    resolver = AiodnsResolver(nameservers=["127.0.0.1"], port=5353)
    async with resolver:
        selection = await mxselect.aselect_targets("example.org", resolver=resolver)
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import aiodns
import aiodns.error
import pycares

from ._answers import Answer, MXRecord, Query, RRType

__all__ = ["AiodnsResolver", "answer_from_aiodns", "answer_from_error"]

_QTYPE = {
    RRType.MX: "MX",
    RRType.A: "A",
    RRType.AAAA: "AAAA",
    RRType.CNAME: "CNAME",
    RRType.TXT: "TXT",
}
#: The answer to every TLSA query (no TLSA in aiodns, no AD bit from c-ares; see above).
_TLSA_UNSUPPORTED = (
    "TLSA queries are not supported by c-ares (aiodns); use the stub or the dnspython adapter"
    " for DANE"
)
_RCODE_ERRORS = {
    pycares.errno.ARES_ESERVFAIL: "SERVFAIL",
    pycares.errno.ARES_EREFUSED: "REFUSED",
    pycares.errno.ARES_EFORMERR: "FORMERR",
    pycares.errno.ARES_ENOTIMP: "NOTIMP",
}
_NEGATIVE = (pycares.errno.ARES_ENODATA, pycares.errno.ARES_ENOTFOUND)
#: What a query in flight on a socket that c-ares closed after a malformed datagram ends with.
_SOCKET_RESET = pycares.errno.ARES_EBADRESP
#: The most channels of their own (one c-ares thread each) open at once for retries, per loop.
_RETRY_CHANNELS = 8


def _data(record: pycares.DNSRecord) -> Any:
    """A record's typed data (pycares types it as a union of every record type)."""
    return record.data


def _txt(data: Any) -> str:
    """A TXT record's text: pycares 5 gives ``data`` (bytes, the strings joined without
    spaces, RFC 8461 §3.1), decoded as Latin-1 as the other adapters do; older ones ``text``."""
    raw = getattr(data, "data", None)
    if isinstance(raw, bytes):
        return raw.decode("latin-1")
    text = getattr(data, "text", raw)
    return text.decode("latin-1") if isinstance(text, bytes) else str(text)


def _absolute(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


class AiodnsResolver:
    """asyncio :class:`mxselect.typing.AsyncResolver` over ``aiodns.DNSResolver``.

    Args:
        resolver: an ``aiodns.DNSResolver`` used as is (it is bound to its event loop).
            ``None``: one is built on first use in each event loop from the arguments below.
        nameservers: the servers to ask (IP addresses). ``None``: the system configuration
            (``/etc/resolv.conf``).
        port: their port (UDP and TCP).
        timeout: seconds per try; ``tries``: tries per server.
        negative_ttl: the TTL to give NXDOMAIN/NODATA answers, which c-ares reports without
            their SOA (``None``: unknown, so caches do not keep them).
    """

    def __init__(
        self,
        resolver: aiodns.DNSResolver | None = None,
        *,
        nameservers: Sequence[str] | None = None,
        port: int = 53,
        timeout: float = 2.0,
        tries: int = 2,
        negative_ttl: int | None = None,
    ) -> None:
        self._given = resolver
        self.nameservers = list(nameservers) if nameservers is not None else None
        self.port = port
        self.timeout = timeout
        self.tries = tries
        self.negative_ttl = negative_ttl
        self._built: dict[asyncio.AbstractEventLoop, aiodns.DNSResolver] = {}
        self._retry_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    def _resolver(self) -> aiodns.DNSResolver:
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        resolver = self._built.get(loop)
        if resolver is None:
            resolver = self._built[loop] = self._new_resolver(loop)
        return resolver

    def _new_resolver(self, loop: asyncio.AbstractEventLoop) -> aiodns.DNSResolver:
        options: dict[str, Any] = {
            "timeout": self.timeout,
            "tries": self.tries,
            "udp_port": self.port,
            "tcp_port": self.port,
        }
        if self.nameservers is not None:
            options["nameservers"] = self.nameservers
        return aiodns.DNSResolver(loop=loop, **options)

    def _servers(self, resolver: aiodns.DNSResolver) -> str:
        servers = self.nameservers if self._given is None else None
        if servers is None:
            try:
                servers = [str(s) for s in resolver.nameservers]
            except Exception:
                servers = []
        where = [s if ("@" in s or ":" in s) else f"{s}@{self.port}" for s in servers]
        return ", ".join(where) or "the nameservers"

    async def aresolve(self, query: Query) -> Answer:
        """Resolve one query; never raises for a DNS outcome. A query that failed on a
        malformed datagram (``ARES_EBADRESP``) is asked once more (see the module docstring).
        A TLSA query is a temporary failure (RFC 7672 §2.1.2: a TLSA lookup that cannot be made
        is a failed one, never an absence of records)."""
        if query.rtype is RRType.TLSA:
            return Answer.tempfail(_TLSA_UNSUPPORTED)
        resolver = self._resolver()
        started = asyncio.get_running_loop().time()
        try:
            try:
                result = await resolver.query_dns(query.name, _QTYPE[query.rtype])
            except aiodns.error.DNSError as exc:
                if not exc.args or exc.args[0] != _SOCKET_RESET:
                    raise
                result = await self._retry(query, started, exc)
        except aiodns.error.DNSError as exc:
            code = exc.args[0] if exc.args else None
            if code in _NEGATIVE and query.rtype is not RRType.CNAME:
                alias = await self._alias(resolver, query.name)
                if alias is not None:
                    return alias
            return answer_from_error(
                query,
                exc,
                servers=self._servers(resolver),
                timeout=self.timeout * self.tries,
                negative_ttl=self.negative_ttl,
            )
        except TimeoutError:  # the retry ran out of the budget
            return answer_from_error(
                query,
                aiodns.error.DNSError(pycares.errno.ARES_ETIMEOUT, "timeout"),
                servers=self._servers(resolver),
                timeout=self.timeout * self.tries,
            )
        except Exception as exc:
            return answer_from_error(query, exc, servers=self._servers(resolver))
        return answer_from_aiodns(query, result)

    async def _retry(
        self, query: Query, started: float, failure: aiodns.error.DNSError
    ) -> pycares.DNSResult:
        """Ask ``query`` once more after ``failure`` (``ARES_EBADRESP``), on a channel of its
        own, within the budget left; raise ``failure`` if none is left, ``TimeoutError`` if the
        retry outlasts it."""
        loop = asyncio.get_running_loop()
        left = self.timeout * self.tries - (loop.time() - started)
        if left <= 0:
            raise failure
        rtype = _QTYPE[query.rtype]
        if self._given is not None:
            return await asyncio.wait_for(self._given.query_dns(query.name, rtype), left)
        slots = self._retry_slots.get(loop)
        if slots is None:
            slots = self._retry_slots[loop] = asyncio.Semaphore(_RETRY_CHANNELS)

        async def isolated() -> pycares.DNSResult:
            async with slots:
                resolver = self._new_resolver(loop)
                try:
                    return await resolver.query_dns(query.name, rtype)
                finally:
                    await resolver.close()

        return await asyncio.wait_for(isolated(), left)

    async def _alias(self, resolver: aiodns.DNSResolver, name: str) -> Answer | None:
        """``Answer.alias`` if ``name`` is a CNAME, else ``None``."""
        try:
            result = await resolver.query_dns(name, "CNAME")
        except Exception:
            return None
        for record in result.answer:
            if record.type == pycares.QUERY_TYPE_CNAME and _absolute(record.name) == _absolute(
                name
            ):
                return Answer.alias(
                    _absolute(_data(record).cname), ttl=record.ttl, aliases=[_absolute(name)]
                )
        return None

    async def aclose(self) -> None:
        """Close the resolvers this adapter built (not one given to it)."""
        built, self._built = self._built, {}
        self._retry_slots = {}
        for resolver in built.values():
            await resolver.close()

    async def __aenter__(self) -> AiodnsResolver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        servers = self.nameservers if self.nameservers is not None else "system"
        return f"AiodnsResolver(nameservers={servers}, port={self.port})"


def answer_from_aiodns(query: Query, result: pycares.DNSResult) -> Answer:
    """Translate a successful ``query_dns`` result: follow the CNAMEs in the answer section
    from the queried name, then take the records of the asked type at the canonical name. To a
    CNAME query: ``ALIAS`` with the record's target, not followed (RFC 7672 §2.1.3)."""
    if query.rtype is RRType.CNAME:
        for record in result.answer:
            if record.type == pycares.QUERY_TYPE_CNAME and _absolute(record.name) == _absolute(
                query.name
            ):
                return Answer.alias(
                    _absolute(_data(record).cname),
                    ttl=record.ttl,
                    aliases=[_absolute(query.name)],
                )
        return Answer.nodata()
    cnames: dict[str, tuple[str, int]] = {}
    records: dict[str, list[Any]] = {}
    want = getattr(pycares, f"QUERY_TYPE_{_QTYPE[query.rtype]}")
    for record in result.answer:
        owner = _absolute(record.name)
        if record.type == pycares.QUERY_TYPE_CNAME:
            cnames[owner] = (_absolute(_data(record).cname), record.ttl)
        elif record.type == want:
            records.setdefault(owner, []).append(record)
    current = _absolute(query.name)
    aliases: list[str] = []
    ttls: list[int] = []
    while current in cnames and current not in aliases and len(aliases) < 16:
        aliases.append(current)
        current, ttl = cnames[current]
        ttls.append(ttl)
    canonical = current if aliases else None
    found = records.get(current, [])
    if not found:
        if current in cnames:  # a chain longer than we follow, or a loop: let the core decide
            return Answer.alias(cnames[current][0], ttl=min(ttls, default=None), aliases=aliases)
        return Answer.nodata(canonical_name=canonical, aliases=aliases)
    ttl = min([*ttls, *(r.ttl for r in found)])
    if query.rtype is RRType.TXT:
        txt = [_txt(_data(r)) for r in found]
        return Answer.from_txt(txt, ttl=ttl, canonical_name=canonical, aliases=aliases)
    if query.rtype is RRType.MX:
        mx = [MXRecord(_data(r).priority, _absolute(_data(r).exchange or ".")) for r in found]
        return Answer.from_mx(mx, ttl=ttl, canonical_name=canonical, aliases=aliases)
    addresses = [ipaddress.ip_address(_data(r).addr) for r in found]
    return Answer.from_addresses(addresses, ttl=ttl, canonical_name=canonical, aliases=aliases)


def answer_from_error(
    query: Query,
    exc: BaseException,
    *,
    servers: str = "the nameservers",
    timeout: float | None = None,
    negative_ttl: int | None = None,
) -> Answer:
    """Translate an aiodns error (or any exception) -- the one place that does it."""
    if isinstance(exc, aiodns.error.DNSError) and exc.args:
        code = exc.args[0]
        if code == pycares.errno.ARES_ENOTFOUND:
            return Answer.nxdomain(ttl=negative_ttl)
        if code == pycares.errno.ARES_ENODATA:
            return Answer.nodata(ttl=negative_ttl)
        if code in _RCODE_ERRORS:
            return Answer.tempfail(f"{_RCODE_ERRORS[code]} from {servers}")
        if code == pycares.errno.ARES_ETIMEOUT:
            after = f" after {timeout:g} s" if timeout is not None else ""
            return Answer.tempfail(f"timeout{after} ({servers})")
        text = exc.args[1] if len(exc.args) > 1 else ""
        return Answer.tempfail(f"c-ares error {code}: {text} ({servers})")
    text = str(exc)
    return Answer.tempfail(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
