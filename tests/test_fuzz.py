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

Example counts are bounded (see the settings) so CI stays fast.
"""

from __future__ import annotations

import ipaddress
import random
import re
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
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
        top_bit = any(r.ttl >= TOP_BIT for r in response.answer)
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
                self.mx_top_bit = top_bit
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
