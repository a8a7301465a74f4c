"""The dnspython adapter: the only module of mxselect that imports ``dns`` at run time.

It translates; it decides nothing. Every dnspython outcome is mapped to an
:class:`~mxselect.Answer` in exactly one place, :func:`answer_from_exception` (and
:func:`answer_from_dnspython` for success):

==================================== ==========================================================
dnspython                            mxselect
==================================== ==========================================================
an ``Answer``                        ``RECORDS`` (with the CNAME chain and the minimum TTL);
                                     to a ``CNAME`` query, ``ALIAS`` with the record's target
``NXDOMAIN``                         ``NXDOMAIN`` (canonical name and negative TTL from the SOA)
``NoAnswer``                         ``NODATA`` (canonical name and negative TTL from the SOA)
``NoNameservers``                    ``TEMPFAIL``, reason lists each server's rcode or error
                                     (SERVFAIL, REFUSED, FORMERR, ...)
``LifetimeTimeout``                  ``TEMPFAIL``, "timeout after N s"
``YXDOMAIN``, any other exception    ``TEMPFAIL`` with the exception named -- never a crash,
                                     never a permanent outcome
==================================== ==========================================================

Every query is absolute and sent with ``search=False``: the search list is never applied
(RFC 5321 §5.1, Postfix, Exim). dnspython retries a truncated UDP answer over TCP by itself
(RFC 1123 §6.1.3.2); if TCP fails too, the result is a temporary failure.

**DNSSEC status** (:class:`~mxselect.Security`). The AD bit of a response is trusted only from
a resolver the caller trusts (RFC 7672 §2.1.1, quoting RFC 4035 §4.9.3: "a trusted
security-aware recursive name server via a secure channel"): by default one whose every
nameserver is a loopback address (a validating resolver on this host; maddy does the same),
or any resolver with ``trust_ad=True``. Then an answer with AD is ``SECURE`` and one without is
``INSECURE`` (positive and negative answers alike: RFC 7672 §2.1.1), and queries carry RD|AD
(RFC 6840 §5.7: AD in a query asks for the AD bit without DNSSEC records) unless the
resolver's ``flags`` are already set. From any other resolver every answer is ``UNKNOWN``.
A validating resolver answers a bogus RRset with SERVFAIL: a temporary failure, whose reason
names the extended DNS error when the server sent one (RFC 8914, e.g. "EDE 6: DNSSEC Bogus").
Unbound sends it only to a query with EDNS: give the resolver ``use_edns(0)`` to see it.

**DANE** (RFC 7672). A ``TLSA`` query (at ``_25._tcp.<host>``, RFC 7672 §2.2.3) is answered as
the address queries are: :meth:`Answer.from_tlsa <mxselect.Answer.from_tlsa>` with the CNAME
chain the resolver followed (``_25._tcp.mx.example`` CNAME ``_tlsa.provider.example``) in
``canonical_name``/``aliases``, NODATA, NXDOMAIN or a temporary failure, and the AD bit over
the whole response, CNAMEs included. A ``CNAME`` query (RFC 7672 §2.1.3: is an alias whose
final addresses are insecure itself signed?) is answered with
:meth:`Answer.alias(target) <mxselect.Answer.alias>`, or NODATA/NXDOMAIN when the name is no
alias.

**MTA-STS and TLS-RPT** (RFC 8461 §3.1, RFC 8460 §3). A ``TXT`` query is answered with
:meth:`Answer.from_txt <mxselect.Answer.from_txt>`: each record's strings joined without spaces
(``b"".join(rdata.strings)``, RFC 8461 §3.1) and decoded as Latin-1 (every octet one
character: nothing replaced, two different records never read the same; the records mxselect
reads are ASCII), the CNAME chain followed (RFC 8461 §3.1: "senders MUST follow the CNAME
pointers") -- as :mod:`mxselect.stub` does.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any, cast

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver

from ._answers import Answer, IPAddress, MXRecord, Query, RRType, Security, TLSARecord, seconds
from ._wire import describe_ede

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "AsyncDnspythonResolver",
    "DnspythonResolver",
    "answer_from_dnspython",
    "answer_from_exception",
]

_RDTYPE = {
    RRType.MX: dns.rdatatype.MX,
    RRType.A: dns.rdatatype.A,
    RRType.AAAA: dns.rdatatype.AAAA,
    RRType.TLSA: dns.rdatatype.TLSA,  # RFC 6698 §7.1
    RRType.CNAME: dns.rdatatype.CNAME,
    RRType.TXT: dns.rdatatype.TXT,  # RFC 1035 §3.3.14
}


class DnspythonResolver:
    """Synchronous :class:`mxselect.typing.Resolver` over a ``dns.resolver.Resolver``.

    Args:
        resolver: used as is (nameservers, port, timeouts, EDNS, cache: all yours). ``None``:
            a resolver with the system configuration (``/etc/resolv.conf``), search list off.
        tcp: send every query over TCP (default: UDP, retried over TCP when truncated).
        trust_ad: whether to believe the AD bit of its answers (see the module notes);
            ``None``: only when every nameserver is a loopback address.
    """

    def __init__(
        self,
        resolver: dns.resolver.Resolver | None = None,
        *,
        tcp: bool = False,
        trust_ad: bool | None = None,
    ) -> None:
        # None: the system configuration (/etc/resolv.conf), read now -- no module-global
        # default resolver (a process that rereads its configuration gets the new one).
        self.resolver = resolver if resolver is not None else dns.resolver.Resolver()
        self.tcp = tcp
        self.trust_ad = _trust(self.resolver, trust_ad)

    def resolve(self, query: Query, lifetime: float | None = None) -> Answer:
        """Resolve one query; never raises for a DNS outcome. ``lifetime`` (seconds) lowers
        the resolver's own lifetime for this query."""
        try:
            answer = self.resolver.resolve(*_question(query), **_options(self, lifetime))
        except Exception as exc:
            return answer_from_exception(query, exc, trusted=self.trust_ad)
        return answer_from_dnspython(query, answer, trusted=self.trust_ad)

    def __repr__(self) -> str:
        return f"DnspythonResolver({_describe(self.resolver)})"


class AsyncDnspythonResolver:
    """asyncio :class:`mxselect.typing.AsyncResolver` over a ``dns.asyncresolver.Resolver``.

    Args:
        resolver: used as is. ``None``: the system configuration, search list off.
        tcp: send every query over TCP (default: UDP, retried over TCP when truncated).
        trust_ad: as for :class:`DnspythonResolver`.
    """

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver | None = None,
        *,
        tcp: bool = False,
        trust_ad: bool | None = None,
    ) -> None:
        self.resolver = resolver if resolver is not None else dns.asyncresolver.Resolver()
        self.tcp = tcp
        self.trust_ad = _trust(self.resolver, trust_ad)

    async def aresolve(self, query: Query, lifetime: float | None = None) -> Answer:
        """Resolve one query; never raises for a DNS outcome. ``lifetime`` (seconds) lowers
        the resolver's own lifetime for this query."""
        try:
            answer = await self.resolver.resolve(*_question(query), **_options(self, lifetime))
        except Exception as exc:
            return answer_from_exception(query, exc, trusted=self.trust_ad)
        return answer_from_dnspython(query, answer, trusted=self.trust_ad)

    def __repr__(self) -> str:
        return f"AsyncDnspythonResolver({_describe(self.resolver)})"


def _question(query: Query) -> tuple[dns.name.Name, dns.rdatatype.RdataType]:
    return dns.name.from_text(query.name), _RDTYPE[query.rtype]


def _options(
    adapter: DnspythonResolver | AsyncDnspythonResolver, lifetime: float | None
) -> dict[str, Any]:
    """The keyword arguments of one query, the same for both adapters: the transport, never
    the search list (RFC 5321 §5.1: absolute names), the smaller lifetime."""
    return {
        "tcp": adapter.tcp,
        "search": False,
        "lifetime": _lifetime(adapter.resolver, lifetime),
    }


def _lifetime(resolver: dns.resolver.BaseResolver, lifetime: float | None) -> float | None:
    """The smaller of the resolver's lifetime and the caller's (None: the resolver's)."""
    if lifetime is None:
        return None
    return min(lifetime, resolver.lifetime)


def _describe(resolver: dns.resolver.BaseResolver) -> str:
    servers = ", ".join(str(ns) for ns in resolver.nameservers)
    return f"nameservers=[{servers}], port={resolver.port}"


def _chain(
    response: dns.message.Message | None,
) -> tuple[str | None, tuple[str, ...], int | None]:
    """(canonical name, CNAME owners, minimum TTL incl. the SOA negative TTL) of a response."""
    if not isinstance(response, dns.message.QueryMessage):
        return None, (), None
    try:
        chaining = response.resolve_chaining()
    except Exception:
        return None, (), None
    return _chain_of(chaining)


def _chain_of(
    chaining: dns.message.ChainingResult,
) -> tuple[str | None, tuple[str, ...], int | None]:
    aliases = tuple(rrset.name.to_text() for rrset in chaining.cnames)
    canonical = chaining.canonical_name.to_text() if aliases else None
    ttl = chaining.minimum_ttl
    # dnspython reports "no TTL known" as the maximum 32-bit value.
    return canonical, aliases, (None if ttl >= 2**31 - 1 else ttl)


def _trust(resolver: dns.resolver.BaseResolver, trust_ad: bool | None) -> bool:
    """Whether the AD bit of ``resolver``'s answers counts (RFC 7672 §2.1.1 via RFC 4035
    §4.9.3): as the caller says, else only when every nameserver is on loopback. A trusted
    resolver without query flags of its own is asked with RD|AD (RFC 6840 §5.7)."""
    if trust_ad is None:
        trust_ad = bool(resolver.nameservers) and all(
            _is_loopback(ns) for ns in resolver.nameservers
        )
    if trust_ad and resolver.flags is None:
        resolver.flags = dns.flags.RD | dns.flags.AD
    return trust_ad


def _is_loopback(nameserver: object) -> bool:
    address = getattr(nameserver, "address", nameserver)  # a dns.nameserver object, or a str
    try:
        return ipaddress.ip_address(str(address)).is_loopback
    except ValueError:
        return False  # DoH URLs and the like: not on loopback


def _security(response: dns.message.Message | None, trusted: bool) -> Security:
    """The status one response reports: its AD bit covers every RRset in it (RFC 4035
    §3.2.3), the CNAMEs of a chain included; without trust, UNKNOWN."""
    if not trusted or response is None:
        return Security.UNKNOWN
    return Security.SECURE if response.flags & dns.flags.AD else Security.INSECURE


def answer_from_dnspython(
    query: Query, answer: dns.resolver.Answer, *, trusted: bool = False
) -> Answer:
    """Translate a successful dnspython answer (``trusted``: believe its AD bit)."""
    canonical, aliases, ttl = _chain_of(answer.chaining_result)
    security = _security(answer.response, trusted)
    rrset = answer.rrset
    if rrset is None:  # pragma: no cover - dnspython raises NoAnswer instead
        return Answer.nodata(ttl=ttl, canonical_name=canonical, aliases=aliases, security=security)
    if ttl is None:
        ttl = rrset.ttl
    if query.rtype is RRType.CNAME:
        # RFC 7672 §2.1.3: the alias itself, its target not followed (a singleton RRset).
        target = next(iter(rrset)).target.to_text()
        return Answer.alias(target, ttl=ttl, aliases=[rrset.name.to_text()], security=security)
    if query.rtype is RRType.TLSA:
        # RFC 6698 §2.1: usage, selector, matching type, association data.
        tlsa = [TLSARecord(rd.usage, rd.selector, rd.mtype, bytes(rd.cert)) for rd in rrset]
        return Answer.from_tlsa(
            tlsa, ttl=ttl, canonical_name=canonical, aliases=aliases, security=security
        )
    if query.rtype is RRType.TXT:
        # RFC 8461 §3.1: "treated as if those strings are concatenated without adding spaces".
        txt = [b"".join(rd.strings).decode("latin-1") for rd in rrset]
        return Answer.from_txt(
            txt, ttl=ttl, canonical_name=canonical, aliases=aliases, security=security
        )
    if query.rtype is RRType.MX:
        records = [MXRecord(rd.preference, rd.exchange.to_text()) for rd in rrset]
        return Answer.from_mx(
            records, ttl=ttl, canonical_name=canonical, aliases=aliases, security=security
        )
    addresses: Sequence[IPAddress] = [ipaddress.ip_address(rd.address) for rd in rrset]
    return Answer.from_addresses(
        addresses, ttl=ttl, canonical_name=canonical, aliases=aliases, security=security
    )


def answer_from_exception(query: Query, exc: BaseException, *, trusted: bool = False) -> Answer:
    """Translate a dnspython exception (or any exception) -- the one place that does it
    (``trusted``: believe the AD bit of a negative answer)."""
    if isinstance(exc, dns.resolver.NXDOMAIN):
        response = None
        try:
            responses = exc.responses()  # type: ignore[no-untyped-call]
            response = next(iter(responses.values()), None)
        except Exception:
            pass
        canonical, aliases, ttl = _chain(response)
        return Answer.nxdomain(
            ttl=ttl,
            canonical_name=canonical,
            aliases=aliases,
            security=_security(response, trusted),
        )
    if isinstance(exc, dns.resolver.NoAnswer):
        response = exc.kwargs.get("response")
        canonical, aliases, ttl = _chain(response)
        return Answer.nodata(
            ttl=ttl,
            canonical_name=canonical,
            aliases=aliases,
            security=_security(response, trusted),
        )
    if isinstance(exc, dns.resolver.NoNameservers):
        return Answer.tempfail(_server_errors(exc))
    if isinstance(exc, dns.resolver.LifetimeTimeout):
        timeout = exc.kwargs.get("timeout")
        text = f"timeout after {seconds(timeout)} s" if isinstance(timeout, float) else "timeout"
        servers = list(dict.fromkeys(_where(e) for e in exc.kwargs.get("errors", [])))
        return Answer.tempfail(f"{text} (asked {', '.join(servers)})" if servers else text)
    if isinstance(exc, dns.exception.Timeout):
        return Answer.tempfail("timeout")
    if isinstance(exc, dns.resolver.YXDOMAIN):
        return Answer.tempfail("YXDOMAIN (DNAME substitution too long)")
    text = str(exc)
    return Answer.tempfail(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _extended_errors(response: dns.message.Message) -> list[Any]:
    try:
        return list(response.extended_errors())
    except Exception:  # an old dnspython, or an OPT record it could not read
        return []


def _where(error: object) -> str:
    """``127.0.0.1@5353`` for one entry of a dnspython exception's ``errors`` list."""
    try:
        server, _tcp, port, _err, _response = cast("tuple[object, ...]", error)
    except (TypeError, ValueError):
        return str(error)
    where = str(server).removeprefix("Do53:")  # dnspython Nameserver objects: Do53:addr@port
    return where if "@" in where else f"{where}@{port}"


def _server_errors(exc: dns.resolver.NoNameservers) -> str:
    """'SERVFAIL from 127.0.0.1@5353' -- the rcode or error of every server asked."""
    parts: list[str] = []
    for error in exc.kwargs.get("errors", []):
        try:
            _server, tcp, _port, err, response = error
        except (TypeError, ValueError):
            parts.append(str(error))
            continue
        if response is not None:
            what = dns.rcode.to_text(response.rcode())
            # RFC 8914: why a validating resolver failed (6: DNSSEC Bogus, 9: DNSKEY Missing...)
            for ede in _extended_errors(response):
                what += f" ({describe_ede(int(ede.code), ede.text)})"
        else:
            what = f"{type(err).__name__}: {err}" if err else "no answer"
        via = " over TCP" if tcp else ""
        parts.append(f"{what} from {_where(error)}{via}")
    unique = list(dict.fromkeys(parts))
    return "; ".join(unique) if unique else "all nameservers failed"
