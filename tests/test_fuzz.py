"""Fuzzing bad input (hypothesis): domain strings, and DNS data reaching the dnspython adapter.

1. Domains: Unicode of every category, control characters, brackets, '@', dots, huge lengths,
   mixed scripts, and values that are not even strings. Only a Selection or an MXSelectError
   (documented results); an InvalidDomainError means no query was sent.
2. DNS data: dnspython answers built by hand -- odd owner names, MX exchanges with
   underscores, spaces, non-ASCII bytes, the root, wildcards, IP addresses, over-long names,
   TTLs of 0 and with the top bit set, CNAME chains and loops, huge record sets -- served by a
   ``dns.resolver.Resolver`` whose ``resolve`` returns them, so they go through
   ``mxselect/dnspython.py``'s mapping and the whole selection. Only documented results;
   nothing outside the answers; a TTL with the top bit set counts as 0 (RFC 2181 §8).
3. DNS data over the wire, differential: hand-built data sets of the same kinds (and seeded
   random ones) served by the fault server; mxselect.stub.StubResolver must give exactly the
   dnspython adapter's Selection or error (sync; async for a subset).

Example counts are bounded (see the settings) so CI stays fast.
"""

from __future__ import annotations

import ipaddress
import random
import re
import textwrap
import types
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import mxselect
from mxselect import InvalidDomainError, MXSelectError, Selection
from mxselect.dnspython import DnspythonResolver
from mxselect.testing import FakeResolver

pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- 1. domain strings -----------------------------------------------------------------------

CATEGORIES = (
    "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe",
    "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn",
)  # fmt: skip
SCRIPTS = "abcxyzабвгдαβγδאבגدهو日本語한국어ไทย0123456789-"
SPECIAL = "@[]:.。．｡\\\"' \t\r\n\x00\x7f_%/*?#"

labels = st.one_of(
    st.text(alphabet=st.characters(categories=CATEGORIES), min_size=1, max_size=20),
    st.text(alphabet=SCRIPTS, min_size=1, max_size=20),
    st.text(alphabet=SCRIPTS + SPECIAL, min_size=0, max_size=10),
)
domains = st.one_of(
    st.lists(labels, min_size=1, max_size=6).map(".".join),
    st.builds(lambda a, b: f"{a}@{b}", labels, labels),
    st.builds(lambda a: f"[{a}]", labels),
    st.builds(lambda n, label: (label + ".") * n, st.integers(1, 3000), labels),
    st.builds(lambda n: "a" * n, st.integers(60, 100_000)),
    st.builds(lambda n: "." * n, st.integers(1, 300)),
    st.text(alphabet=st.characters(categories=CATEGORIES), max_size=300),
)
not_strings = st.one_of(
    st.none(), st.integers(), st.binary(max_size=20), st.floats(), st.lists(st.integers())
)

DOMAIN_ZONE = """
$ORIGIN example.
@ SOA ns hostmaster 1 3600 900 604800 60
@ MX 10 mx
mx A 192.0.2.1
* A 192.0.2.2
"""


@FUZZ
@given(domain=domains)
def test_fuzz_domain_strings(domain: str) -> None:
    """Any string: a Selection or an MXSelectError; InvalidDomainError sends no query;
    otherwise every query is an absolute ASCII name."""
    fake = FakeResolver.from_zone(DOMAIN_ZONE)
    try:
        result: Selection | MXSelectError = mxselect.select_targets(domain, resolver=fake)
    except MXSelectError as exc:
        result = exc
    if isinstance(result, InvalidDomainError):
        assert fake.queries == []
        assert (result.reply_code, result.status) == (501, "5.1.3")
    assert all(q.name.isascii() and q.name.endswith(".") for q in fake.queries)
    assert len(fake.queries) <= 3


@settings(FUZZ, max_examples=50)
@given(value=not_strings)
def test_fuzz_not_a_string_is_invalid_without_query(value: object) -> None:
    """A value that is not a str is an InvalidDomainError (a ValueError), never a crash."""
    fake = FakeResolver.from_zone(DOMAIN_ZONE)
    with pytest.raises(InvalidDomainError):
        mxselect.select_targets(value, resolver=fake)  # type: ignore[arg-type]
    assert fake.queries == []


# -- 2. DNS data through the adapter -----------------------------------------------------

DOMAIN = "example.org."
IN = dns.rdataclass.IN
TOP_BIT = 2**31

ttls = st.one_of(
    st.sampled_from([0, 1, 300, 2**31 - 1, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1)
)
raw_labels = st.one_of(
    st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True).map(str.encode),
    st.sampled_from([b"mx_1", b"mx 1", b"\xc3\xa9t\xc3\xa9", b"*", b"-mx", b"mx-", b"\x00", b"."]),
    st.binary(min_size=1, max_size=63),
)


@st.composite
def names(draw: st.DrawFn) -> dns.name.Name:
    """Absolute names, from ordinary to hostile; at most 255 octets on the wire."""
    kind = draw(st.sampled_from(["ok", "ok", "odd", "root", "ip", "long"]))
    if kind == "root":
        return dns.name.root
    if kind == "ip":
        return dns.name.from_text(str(draw(st.ip_addresses(v=4))) + ".")
    if kind == "ok":
        return dns.name.from_text(f"mx{draw(st.integers(0, 9))}.example.org.")
    if kind == "long":
        return dns.name.Name([b"a" * 63] * 3 + [b"b" * 61, b""])
    parts = draw(st.lists(raw_labels, min_size=1, max_size=4))
    while sum(len(p) + 1 for p in parts) > 250:
        parts.pop()
    return dns.name.Name([*parts, b"org", b""])


@st.composite
def mx_rrsets(draw: st.DrawFn, owner: dns.name.Name) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(owner, IN, dns.rdatatype.MX)
    count = draw(st.sampled_from([1, 2, 3, 4, 6, 1000]))
    exchanges = [draw(names()) for _ in range(min(count, 8))]
    # Huge sets: the values come from a drawn seed (drawing 1,000 of them is slow).
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    base = dns.rdata.from_text(IN, dns.rdatatype.MX, "0 .")
    for i in range(count):
        preference = draw(st.integers(0, 65535)) if count < 10 else rng.randrange(65536)
        rrset.add(base.replace(preference=preference, exchange=exchanges[i % len(exchanges)]))
    rrset.ttl = draw(ttls)
    return rrset


@st.composite
def address_rrsets(draw: st.DrawFn, owner: dns.name.Name, rdtype: int) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(owner, IN, rdtype)
    version = 4 if rdtype == dns.rdatatype.A else 6
    count = draw(st.sampled_from([1, 2, 3, 200]))
    if count < 10:
        addresses = draw(st.lists(st.ip_addresses(v=version), min_size=count, max_size=count))
    else:
        rng = random.Random(draw(st.integers(0, 2**32 - 1)))
        bits = 32 if version == 4 else 128
        addresses = [ipaddress.ip_address(rng.getrandbits(bits)) for _ in range(count)]
        addresses = [
            a if a.version == version else ipaddress.IPv6Address(int(a)) for a in addresses
        ]
    for address in addresses:
        rrset.add(dns.rdata.from_text(IN, rdtype, str(address)))
    rrset.ttl = draw(ttls)
    return rrset


class Crafted(dns.resolver.Resolver):
    """A dnspython resolver that answers with generated messages instead of the network."""

    def __init__(self, data: st.DataObject) -> None:
        super().__init__(configure=False)
        self.nameservers = ["127.0.0.1"]
        self.data = data
        #: every address answered
        self.answered: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        #: the MX answer used an RRset (CNAME or MX) whose TTL has the top bit set
        self.mx_top_bit = False

    def resolve(self, qname: Any, rdtype: Any = None, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        assert kwargs.get("search") is False  # never the search list
        draw = self.data.draw
        qname = dns.name.from_text(str(qname)) if not isinstance(qname, dns.name.Name) else qname
        rdtype = dns.rdatatype.RdataType.make(rdtype)
        request = dns.message.make_query(qname, rdtype)
        response = dns.message.make_response(request)
        assert isinstance(response, dns.message.QueryMessage)
        shape = draw(
            st.sampled_from(
                ["records", "records", "records", "odd-owner", "cname", "loop", "nodata", "nx"]
            )
        )
        owner = qname
        if shape == "odd-owner":
            owner = draw(names())
        if shape in ("cname", "loop"):
            target = draw(names()) if shape == "cname" else qname
            cname = dns.rrset.from_text(qname, 300, IN, dns.rdatatype.CNAME, target.to_text())
            cname.ttl = draw(ttls)
            response.answer.append(cname)
            owner = target
        if shape in ("nodata", "nx"):
            soa = dns.rrset.from_text(
                "example.org.", 300, IN, "SOA", "ns hostmaster 1 3600 900 604800 60"
            )
            soa.ttl = draw(ttls)
            response.authority.append(soa)
            if shape == "nx":
                response.set_rcode(dns.rcode.NXDOMAIN)
                raise dns.resolver.NXDOMAIN(qnames=[qname], responses={qname: response})
            raise dns.resolver.NoAnswer(response=response)
        if rdtype == dns.rdatatype.MX:
            records = draw(mx_rrsets(owner))
        else:
            records = draw(address_rrsets(owner, rdtype))
        response.answer.append(records)
        # As received: through the wire format, then what dnspython's Resolver does with the
        # response (Answer() follows the chain, raises NoAnswer when nothing answers).
        received = dns.message.from_wire(response.to_wire())
        assert isinstance(received, dns.message.QueryMessage)
        answer = dns.resolver.Answer(qname, rdtype, IN, received, "127.0.0.1", 53)
        if answer.rrset is not None:
            if rdtype != dns.rdatatype.MX:
                self.answered |= {ipaddress.ip_address(r.address) for r in answer.rrset}
            if rdtype == dns.rdatatype.MX:
                # dnspython reads such a TTL as 0 off the wire: the selection must say 0 too.
                # Only the RRsets the chain used count: a CNAME loop beside an MX RRset at the
                # same name is never followed (the data is found first), so its TTL is not.
                used = [*answer.chaining_result.cnames, answer.rrset]
                self.mx_top_bit = any(r.ttl >= TOP_BIT for r in response.answer if r in used)
        return answer


@settings(FUZZ, max_examples=120)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_fuzz_dns_data_through_the_adapter(data: st.DataObject, seed: int) -> None:
    """Generated DNS data through mxselect.dnspython: a Selection or an MXSelectError only;
    hosts are valid host names; addresses only from answers; a top-bit TTL counts as 0."""
    resolver = Crafted(data)
    adapter = DnspythonResolver(resolver)
    # Driven in query order (not on the sync driver's threads) so hypothesis draws repeatably.
    plan = mxselect.SelectionPlan("example.org", rng=random.Random(seed))
    while not plan.done:
        for query in plan.pending:
            plan.feed(query, adapter.resolve(query))
    try:
        result: Selection | MXSelectError = plan.result()
    except MXSelectError as exc:
        result = exc
    event(type(result).__name__)
    if isinstance(result, MXSelectError):
        assert "AssertionError" not in result.reason, result.reason  # the resolver's checks
    assert not isinstance(result, InvalidDomainError)
    if isinstance(result, Selection):
        assert set(result.addresses) <= resolver.answered
        for host in result.hosts:
            assert re.fullmatch(r"[a-z0-9.-]+", host.name), host.name
        assert result.ttl is None or 0 <= result.ttl < TOP_BIT
        if resolver.mx_top_bit and not result.implicit:
            assert result.ttl == 0
        assert len(result.hosts) <= 20


# -- 3. DNS data over the wire: the stub resolver against the dnspython adapter ---------------
#
# Hand-built data sets (and seeded random ones) served by the fault server on loopback; the
# same selection through mxselect.dnspython and through mxselect.stub.StubResolver must come
# out the same: the same Selection (targets, hosts, TTL, warnings), or the same error class,
# reply code, status and warnings. (The documented differences of tests/test_wire.py -- a
# chain without data and SOA, a chain of 16 links in one reply -- cannot come from this
# server: it chases every chain and answers SERVFAIL beyond 16 links, as Unbound does.)

SOA = "@ 300 SOA ns hostmaster 1 3600 900 604800 60"
DATA_SETS: dict[str, str] = {
    "plain": f"""
        $ORIGIN example.org.
        {SOA}
        @ MX 10 mx1
        @ MX 20 mx2
        mx1 A 192.0.2.1
        mx1 AAAA 2001:db8::1
        mx2 A 192.0.2.2
        """,
    "odd exchanges": f"""
        $ORIGIN example.org.
        {SOA}
        @ MX 10 mx_1
        @ MX 10 mx\\0321
        @ MX 10 \\195\\169t\\195\\169
        @ MX 20 MX2.Example.ORG.
        @ MX 30 192.0.2.9.
        @ MX 40 *.example.org.
        @ MX 50 {"a" * 63}.{"b" * 63}.{"c" * 63}.{"d" * 49}.example.org.
        mx2 A 192.0.2.2
        mx_1 A 192.0.2.3
        192.0.2.9 A 192.0.2.9
        """,
    "null MX": f"""
        $ORIGIN example.org.
        {SOA}
        @ MX 0 .
        """,
    "null MX beside another": f"""
        $ORIGIN example.org.
        {SOA}
        @ MX 0 .
        @ MX 10 mx
        mx A 192.0.2.1
        """,
    "wildcards": f"""
        $ORIGIN example.org.
        {SOA}
        @ MX 10 host.wild
        *.wild A 192.0.2.88
        *.wild AAAA 2001:db8::88
        """,
    "ttls": f"""
        $ORIGIN example.org.
        {SOA}
        @ 0 MX 10 mx1
        @ 0 MX 20 mx2
        mx1 2147483648 A 192.0.2.1
        mx1 4294967295 AAAA 2001:db8::1
        mx2 2147483647 A 192.0.2.2
        """,
    "cname at the domain": """
        $ORIGIN example.org.
        @ 300 SOA ns hostmaster 1 3600 900 604800 60
        @ 100 CNAME Target.Example.NET.
        $ORIGIN example.net.
        @ 300 SOA ns hostmaster 1 3600 900 604800 60
        target 200 MX 10 mx.example.net.
        mx 50 A 192.0.2.5
        """,
    "cname chains at the exchanges": f"""
        $ORIGIN example.org.
        {SOA}
        @ MX 10 a1
        @ MX 20 b1
        a1 CNAME a2
        a2 CNAME a3
        a3 CNAME a4
        a4 CNAME a5
        a5 A 192.0.2.5
        a5 AAAA 2001:db8::5
        b1 CNAME nowhere.example.org.
        """,
    "cname loop at an exchange": f"""
        $ORIGIN example.org.
        {SOA}
        @ MX 10 loop1
        @ MX 20 mx
        loop1 CNAME loop2
        loop2 CNAME loop1
        mx A 192.0.2.1
        """,
    "cname loop at the domain": f"""
        $ORIGIN example.org.
        {SOA}
        @ CNAME other
        other CNAME example.org.
        """,
    "cname to nodata": f"""
        $ORIGIN example.org.
        {SOA}
        @ MX 10 mx
        mx CNAME txt
        txt TXT "no address here"
        """,
    "nodata at the domain: implicit MX": f"""
        $ORIGIN example.org.
        {SOA}
        @ A 192.0.2.7
        @ AAAA 2001:db8::7
        """,
    "nothing at the domain": f"""
        $ORIGIN example.org.
        {SOA}
        @ TXT "v=spf1 -all"
        """,
    "nxdomain": """
        $ORIGIN example.net.
        @ 300 SOA ns hostmaster 1 3600 900 604800 60
        """,
    "no SOA anywhere": """
        example.org. MX 10 mx.example.org.
        mx.example.org. A 192.0.2.1
        """,
    "huge MX set": "$ORIGIN example.org.\n"
    + SOA
    + "".join(f"\n@ MX {i} mx{i}\nmx{i} A 192.0.2.{i % 250 + 1}" for i in range(1000)),
    "huge address set": f"""
        $ORIGIN example.org.
        {SOA}
        @ MX 10 mx
        $GENERATE 1-200 mx A 198.51.100.$
        $GENERATE 1-200 mx AAAA 2001:db8::$
        """,
    "loopback and unspecified": f"""
        $ORIGIN example.org.
        {SOA}
        @ MX 10 lh
        @ MX 20 zero
        lh A 127.0.0.1
        lh AAAA ::1
        zero A 0.0.0.0
        """,
    "mixed case owners": f"""
        $ORIGIN example.org.
        {SOA}
        @ MX 10 MX.EXAMPLE.ORG.
        Mx A 192.0.2.1
        mX AAAA 2001:db8::1
        """,
}


def random_data_set(seed: int) -> str:
    """A zone for example.org. from a seeded random.Random: MX records of odd kinds, CNAMEs
    at the domain and the exchanges, address sets, TTLs of every kind."""
    rng = random.Random(seed)
    ttl = lambda: rng.choice([0, 1, 60, 300, 2**31 - 1, 2**31, 2**32 - 1])  # noqa: E731
    lines = ["$ORIGIN example.org.", f"@ {ttl()} SOA ns hostmaster 1 3600 900 604800 {ttl()}"]
    apex = "@"
    if rng.random() < 0.3:
        lines.append(f"@ {ttl()} CNAME alias")
        apex = "alias"
    for i in range(rng.choice([0, 1, 2, 3, 5])):
        kind = rng.choice(["plain", "plain", "cname", "missing", "nodata", "odd", "root"])
        name = {"odd": f"Mx_{i}", "root": "."}.get(kind, f"mx{i}")
        lines.append(f"{apex} {ttl()} MX {rng.choice([0, 10, 10, 20])} {name}")
        if kind == "cname":
            lines.append(f"{name} {ttl()} CNAME real{i}")
            name = f"real{i}"
        if kind in ("plain", "cname", "odd"):
            for _ in range(rng.choice([0, 1, 2])):
                lines.append(f"{name} {ttl()} A 192.0.2.{rng.randrange(1, 255)}")
            for _ in range(rng.choice([0, 1, 2])):
                lines.append(f"{name} {ttl()} AAAA 2001:db8::{rng.randrange(1, 0xFFFF):x}")
        if kind == "nodata":
            lines.append(f"{name} {ttl()} TXT nothing")
    if rng.random() < 0.3:
        lines.append(f"{apex} {ttl()} A 192.0.2.200")
    return "\n".join(lines) + "\n"


DATA_SETS.update({f"random {seed}": random_data_set(seed) for seed in range(24)})
#: The data sets also run through the async API (both adapters).
ASYNC_DATA_SETS = ["plain", "odd exchanges", "ttls", "cname chains at the exchanges",
                   "cname loop at an exchange", "nxdomain", "huge MX set", "random 3"]  # fmt: skip


def summary(result: Selection | MXSelectError) -> object:
    """What must agree: a Selection as a whole (trace aside), or an error's class, codes,
    warnings and -- when permanent -- reason (a temporary one names servers differently)."""
    if isinstance(result, Selection):
        return result
    return (
        type(result).__name__,
        result.reply_code,
        result.status,
        result.warnings,
        result.reason if result.permanent else "",
    )


def select_both(
    api: str, zone_text: str, fault_server: Any, *, edns: bool = True
) -> tuple[Selection | MXSelectError, Selection | MXSelectError]:
    import asyncio

    from harness.resolvers import make_dnspython_resolver

    from mxselect.dnspython import AsyncDnspythonResolver
    from mxselect.stub import StubResolver

    server = fault_server(textwrap.dedent(zone_text))
    results: list[Selection | MXSelectError] = []
    for adapter in ("dnspython", "stub"):
        resolver: Any
        if adapter == "stub":
            resolver = StubResolver(
                [("127.0.0.1", server.port)], timeout=2.0, lifetime=4.0, edns=edns
            )
        elif api == "sync":
            resolver = DnspythonResolver(make_dnspython_resolver(server.port, lifetime=4.0))
        else:
            resolver = AsyncDnspythonResolver(
                make_dnspython_resolver(server.port, asynchronous=True, lifetime=4.0)
            )
        try:
            if api == "sync":
                result: Selection | MXSelectError = mxselect.select_targets(
                    "example.org", resolver=resolver, rng=random.Random(7)
                )
            else:
                result = asyncio.run(
                    mxselect.aselect_targets("example.org", resolver=resolver, rng=random.Random(7))
                )
        except MXSelectError as exc:
            result = exc
        results.append(result)
    return results[0], results[1]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("name", "api"),
    [(name, "sync") for name in DATA_SETS] + [(name, "async") for name in ASYNC_DATA_SETS],
)
def test_stub_resolver_selects_as_the_dnspython_adapter(
    name: str, api: str, fault_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each data set over real packets from the fault server: StubResolver gives exactly the
    dnspython adapter's Selection or error."""
    # The server writes every RRset in its order, not shuffled (dnspython's default), so that
    # both adapters receive the same records in the same order.
    monkeypatch.setattr(dns.rdataset, "random", types.SimpleNamespace(shuffle=lambda _: None))
    # The fault server caps a TCP reply to an EDNS query at the EDNS payload (dnspython's
    # to_wire default) and sends nothing when it is larger: for the huge sets the stub asks
    # without EDNS, as the dnspython resolver does by default (512 bytes, TC, then TCP).
    edns = not name.startswith("huge")
    via_dnspython, via_stub = select_both(api, DATA_SETS[name], fault_server, edns=edns)
    assert summary(via_stub) == summary(via_dnspython)
