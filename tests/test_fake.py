"""mxselect.testing.FakeResolver behaves like a recursive resolver."""

from __future__ import annotations

import asyncio

import pytest

from mxselect import Answer, Query, RRType, Status
from mxselect.testing import FakeResolver, Fault

ZONES = """
$ORIGIN example.org.
$TTL 300
@        SOA   ns hostmaster 1 3600 900 604800 60
@        MX    10 mx
mx       A     192.0.2.1
a.b.c    A     192.0.2.2
www      CNAME mx
*.wild   A     192.0.2.3
$ORIGIN example.net.
$TTL 600
@        SOA   ns hostmaster 1 3600 900 604800 30
@        MX    0 .
"""


def q(name: str, rtype: RRType = RRType.A) -> Query:
    return Query(name, rtype)


def test_from_zone_reads_several_domains_with_their_soa() -> None:
    """One text, two $ORIGIN sections, each with an SOA; negative TTLs from each SOA."""
    fake = FakeResolver.from_zone(ZONES)
    assert fake.answer(q("example.net.", RRType.MX)).mx[0].exchange == "."
    assert fake.answer(q("example.net.", RRType.A)) == Answer.nodata(ttl=30)
    assert fake.answer(q("nope.example.org.")) == Answer.nxdomain(ttl=60)


def test_unknown_is_nxdomain_known_without_type_is_nodata_ent_is_nodata() -> None:
    """NXDOMAIN for unknown names, NODATA for known names and empty non-terminals."""
    fake = FakeResolver.from_zone(ZONES)
    assert fake.answer(q("zzz.example.org.")).status is Status.NXDOMAIN
    assert fake.answer(q("mx.example.org.", RRType.AAAA)).status is Status.NODATA
    assert fake.answer(q("b.c.example.org.")).status is Status.NODATA


def test_cname_followed_with_chain_reported() -> None:
    """A CNAME is followed; the answer carries the canonical name and the chain."""
    fake = FakeResolver.from_zone(ZONES)
    answer = fake.answer(q("www.example.org."))
    assert (answer.status, answer.canonical_name, answer.aliases) == (
        Status.RECORDS,
        "mx.example.org",
        ("www.example.org",),
    )
    assert [str(a) for a in answer.addresses] == ["192.0.2.1"]


def test_follow_cnames_false_answers_alias() -> None:
    """With follow_cnames=False the fake answers ALIAS and lets the core chase it."""
    fake = FakeResolver.from_zone(ZONES)
    fake.follow_cnames = False
    answer = fake.answer(q("www.example.org."))
    assert (answer.status, answer.canonical_name) == (Status.ALIAS, "mx.example.org")


def test_wildcard_expanded() -> None:
    """*.wild answers for any name below it."""
    fake = FakeResolver.from_zone(ZONES)
    assert [str(a) for a in fake.answer(q("x.wild.example.org.")).addresses] == ["192.0.2.3"]


@pytest.mark.parametrize("fault", list(Fault))
def test_faults_per_name_and_type(fault: Fault) -> None:
    """fail(name, type, fault) fails exactly that (name, type); None fails every type."""
    fake = FakeResolver.from_zone(ZONES)
    fake.fail("mx.example.org", "A", fault)
    assert fake.answer(q("mx.example.org.")) == Answer.tempfail(fault.reason)
    assert fake.answer(q("mx.example.org.", RRType.AAAA)).status is Status.NODATA
    fake.fail("example.org", None, fault.value)
    assert fake.answer(q("example.org.", RRType.MX)).status is Status.TEMPFAIL
    fake.clear_faults()
    assert fake.answer(q("mx.example.org.")).status is Status.RECORDS


def test_fault_applies_along_a_cname_chain() -> None:
    """A failing CNAME target makes the query for the alias fail too (RFC 7672 §2.1.3)."""
    fake = FakeResolver.from_zone(ZONES)
    fake.fail("mx.example.org", None, Fault.SERVFAIL)
    assert fake.answer(q("www.example.org.")).status is Status.TEMPFAIL


def test_queries_recorded_in_order_by_both_apis() -> None:
    """.queries lists every query received, in order, from resolve and aresolve."""
    fake = FakeResolver.from_zone(ZONES)
    fake.resolve(q("mx.example.org."))
    asyncio.run(fake.aresolve(q("example.org.", RRType.MX)))
    fake.resolve_batch([q("a.example.org."), q("b.example.org.", RRType.AAAA)])
    assert [str(x) for x in fake.queries] == [
        "mx.example.org. A",
        "example.org. MX",
        "a.example.org. A",
        "b.example.org. AAAA",
    ]


def test_mapping_constructor_and_add() -> None:
    """Records from a mapping; bad address families are refused."""
    fake = FakeResolver({"example.com": {"MX": [(5, "mx.example.com")], "A": "192.0.2.9"}})
    assert fake.answer(q("example.com.", RRType.MX)).mx[0].preference == 5
    with pytest.raises(ValueError, match="not an address for a A record"):
        fake.add("x.example.com", "A", "2001:db8::1")


def test_bad_zone_text_is_an_error() -> None:
    """Zone syntax errors surface (from dnspython's reader)."""
    with pytest.raises(Exception, match="unknown rdatatype"):
        FakeResolver.from_zone("$ORIGIN example.org.\n@ 300 IN BOGUS data\n")


def test_empty_record_list_means_nodata() -> None:
    """{"A": []}: the name exists without A records -> NODATA, never an empty RECORDS answer."""
    fake = FakeResolver({"mx.example.com": {"A": [], "AAAA": ["2001:db8::1"]}})
    assert fake.answer(q("mx.example.com.")).status is Status.NODATA
