"""The selection rules (checklist sections B-F), driven through the FakeResolver.

Every test names the checklist ID it implements (../shared/rfc-checklist.md).
"""

from __future__ import annotations

import ipaddress
import random

import pytest
from zones import zone

import mxselect
from mxselect import (
    Answer,
    DNSTemporaryError,
    NoSuchDomainError,
    NoUsableTargetsError,
    NullMXError,
    Query,
    RRType,
    WarningCode,
)
from mxselect.testing import FakeResolver


def select(fake: FakeResolver, domain: str = "example.org", seed: int = 1) -> mxselect.Selection:
    return mxselect.select_targets(domain, resolver=fake, rng=random.Random(seed))


def hosts(selection: mxselect.Selection) -> list[str]:
    return [h.name for h in selection.hosts]


def asked(fake: FakeResolver) -> list[str]:
    return [str(q) for q in fake.queries]


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


# -- B. MX lookup and classification -------------------------------------------------------


def test_R5321_5_1_a_first_query_is_mx_for_absolute_domain() -> None:
    """The first query is MX for the absolute A-label domain."""
    fake = zone("@ MX 10 mx\nmx A 192.0.2.1\n")
    select(fake)
    assert fake.queries[0] == Query("example.org.", RRType.MX)


def test_R5321_5_1_b_every_query_is_absolute() -> None:
    """No query ever depends on a search list: every name is absolute (trailing dot)."""
    fake = zone("@ MX 10 mx\n@ MX 20 other.example.net.\nmx A 192.0.2.1\n")
    select(fake)
    assert all(q.name.endswith(".") for q in fake.queries)
    assert {q.name for q in fake.queries} == {
        "example.org.",
        "mx.example.org.",
        "other.example.net.",
    }


def test_R5321_5_1_c_cname_at_domain_is_followed() -> None:
    """A CNAME at the domain: its target's MX records are used; the domain is not rewritten."""
    fake = zone(
        "alias CNAME target\ntarget MX 10 mx.target\nmx.target A 192.0.2.7\n"
        "nomx CNAME plain\nplain A 192.0.2.8\n"
    )
    selection = select(fake, "alias.example.org")
    assert (selection.domain, selection.canonical_domain) == (
        "alias.example.org",
        "target.example.org",
    )
    assert hosts(selection) == ["mx.target.example.org"]
    # Target without MX but with an address: implicit MX at the *target* (R3974-3-j too).
    implicit = select(fake, "nomx.example.org")
    assert (implicit.implicit, hosts(implicit)) == (True, ["plain.example.org"])
    assert implicit.addresses == (ip("192.0.2.8"),)


def test_R5321_2_3_5_c_cnamed_recipient_domain_is_legal() -> None:
    """example.com CNAME alias.example.net, which has MX records: a legal recipient domain."""
    fake = FakeResolver(
        {
            "example.com": {"CNAME": "alias.example.net"},
            "alias.example.net": {"MX": [(10, "mx.example.net")]},
            "mx.example.net": {"A": ["192.0.2.1"]},
        }
    )
    selection = select(fake, "example.com")
    assert (selection.domain, selection.canonical_domain, hosts(selection)) == (
        "example.com",
        "alias.example.net",
        ["mx.example.net"],
    )


def test_R3974_3_j_cname_target_replaces_destination() -> None:
    """RFC 3974 step 1: with a CNAME, the lookup goes on at the target (resolver that does not
    chase CNAMEs: the core asks for the target itself)."""
    fake = FakeResolver(
        {
            "a.example.org": {"CNAME": "b.example.org"},
            "b.example.org": {"MX": [(10, "mx.example.org")]},
            "mx.example.org": {"A": ["192.0.2.1"]},
        },
        follow_cnames=False,
    )
    selection = select(fake, "a.example.org")
    assert hosts(selection) == ["mx.example.org"]
    assert asked(fake)[:2] == ["a.example.org. MX", "b.example.org. MX"]


def test_R5321_5_1_d_nxdomain_is_permanent_without_address_queries() -> None:
    """NXDOMAIN on the MX query: NoSuchDomainError (5.1.2) and no A/AAAA fallback query."""
    fake = zone("@ MX 10 mx\n")
    with pytest.raises(NoSuchDomainError) as info:
        select(fake, "nope.example.org")
    assert (info.value.reply_code, info.value.status) == (550, "5.1.2")
    assert asked(fake) == ["nope.example.org. MX"]
    assert str(info.value) == "MX lookup for nope.example.org: NXDOMAIN (the domain does not exist)"


@pytest.mark.parametrize("fault", ["servfail", "timeout", "refused"])
def test_R5321_5_1_e_temporary_mx_failure_never_falls_back(fault: str) -> None:
    """SERVFAIL/timeout/REFUSED on MX: DNSTemporaryError (451 4.4.3), never the A record."""
    fake = zone("@ A 192.0.2.9\n")
    fake.fail("example.org", "MX", fault)
    with pytest.raises(DNSTemporaryError) as info:
        select(fake)
    assert (info.value.reply_code, info.value.status) == (451, "4.4.3")
    assert asked(fake) == ["example.org. MX"]
    assert str(info.value).startswith("MX lookup for example.org: ")


def test_R974_c_servfail_retry_nxdomain_return() -> None:
    """RFC 974: NXDOMAIN returns the message, SERVFAIL retries it later."""
    fake = zone("@ MX 10 mx\nmx A 192.0.2.1\n")
    fake.fail("example.org", "MX", "servfail")
    with pytest.raises(mxselect.TemporaryError):
        select(fake)
    with pytest.raises(mxselect.PermanentError):
        select(fake, "missing.example.org")


def test_R3974_3_b_and_R3974_3_c_host_not_found_vs_servfail() -> None:
    """RFC 3974 step 1: HOST_NOT_FOUND is permanent, SERVFAIL is a retry."""
    fake = zone("")
    with pytest.raises(NoSuchDomainError):
        select(fake, "x.example.org")
    fake.fail("x.example.org", None, "servfail")
    with pytest.raises(DNSTemporaryError):
        select(fake, "x.example.org")


def test_R2308_2_1_a_name_error_means_domain_does_not_exist() -> None:
    """An NXDOMAIN answer is classified as 'the domain does not exist'."""
    fake = FakeResolver()
    fake.resolve = lambda q: Answer.nxdomain()  # type: ignore[method-assign]
    with pytest.raises(NoSuchDomainError, match="does not exist"):
        select(fake, "whatever.example")


def test_R2308_2_2_a_nodata_means_implicit_mx_not_error() -> None:
    """NOERROR without MX records (NODATA) leads to the implicit MX, not to an error."""
    fake = zone("@ A 192.0.2.1\n@ TXT hello\n")
    selection = select(fake)
    assert (selection.implicit, hosts(selection)) == (True, ["example.org"])


def test_R6604_3_a_nxdomain_at_end_of_cname_chain_is_permanent() -> None:
    """example CNAME to a name that does not exist: NXDOMAIN for the chain -> 5.1.2."""
    fake = zone("alias CNAME gone.example.net.\n")
    with pytest.raises(NoSuchDomainError, match=r"via CNAME gone\.example\.net"):
        select(fake, "alias.example.org")


def test_R1034_3_6_2_a_chains_followed_loops_and_overlong_chains_are_errors() -> None:
    """Chains are followed; a CNAME loop and a chain over the limit are temporary errors."""
    fake = zone(
        "a CNAME b\nb CNAME c\nc MX 10 mx\nmx A 192.0.2.1\nloop1 CNAME loop2\nloop2 CNAME loop1\n"
    )
    assert hosts(select(fake, "a.example.org")) == ["mx.example.org"]
    with pytest.raises(DNSTemporaryError, match="CNAME loop"):
        select(fake, "loop1.example.org")
    links = mxselect.CNAME_CHAIN_LIMIT + 1
    chain = "".join(f"c{i} CNAME c{i + 1}\n" for i in range(links)) + f"c{links} MX 10 mx\n"
    with pytest.raises(DNSTemporaryError, match="CNAME chain longer than 10"):
        select(zone(chain + "mx A 192.0.2.1\n"), "c0.example.org")
    short = "".join(f"c{i} CNAME c{i + 1}\n" for i in range(10)) + "c10 MX 10 mx\n"
    assert hosts(select(zone(short + "mx A 192.0.2.1\n"), "c0.example.org")) == ["mx.example.org"]


def test_R1034_3_6_2_a_loop_detected_when_core_follows_aliases() -> None:
    """With a resolver that answers ALIAS, the core detects the loop itself, in bounded
    queries."""
    fake = FakeResolver(
        {"a.example": {"CNAME": "b.example"}, "b.example": {"CNAME": "a.example"}},
        follow_cnames=False,
    )
    with pytest.raises(DNSTemporaryError, match="CNAME loop"):
        select(fake, "a.example")
    assert len(fake.queries) == 2


def test_R2181_10_1_a_cname_and_mx_at_one_name_never_merged() -> None:
    """A malformed name with both CNAME and MX: the MX answers the question; the CNAME
    target's records are never merged in."""
    fake = FakeResolver(
        {
            "both.example.org": {"MX": [(10, "mx.example.org")], "CNAME": "other.example.org"},
            "other.example.org": {"MX": [(10, "mx2.example.org")]},
            "mx.example.org": {"A": ["192.0.2.1"]},
            "mx2.example.org": {"A": ["192.0.2.2"]},
        }
    )
    selection = select(fake, "both.example.org")
    assert hosts(selection) == ["mx.example.org"]


# -- C. Null MX ----------------------------------------------------------------------------


def test_R7505_3_a_null_mx_is_permanent_and_stops() -> None:
    """{0 .}: NullMXError, no A/AAAA query for the domain and none for '.'."""
    fake = zone("@ MX 0 .\n@ A 192.0.2.60\n")
    with pytest.raises(NullMXError) as info:
        select(fake)
    assert asked(fake) == ["example.org. MX"]
    assert info.value.permanent is True


def test_R7505_3_b_root_never_a_target() -> None:
    """'.' never appears as a host, whatever the mix of records."""
    fake = zone("@ MX 0 .\n@ MX 10 mx\nmx A 192.0.2.1\n")
    selection = select(fake)
    assert "" not in hosts(selection)
    assert "." not in hosts(selection)
    assert "." not in {q.name for q in fake.queries}


def test_R7505_3_c_mixed_null_mx_uses_real_records_and_warns() -> None:
    """{0 ., 10 mx}: the real record is used, with a NULL_MX_MIXED warning (Exim); {10 .}
    alone is still a null MX, with a warning about the preference."""
    fake = zone("@ MX 0 .\n@ MX 10 mx\nmx A 192.0.2.1\nodd MX 10 .\n")
    selection = select(fake)
    assert hosts(selection) == ["mx.example.org"]
    assert [w.code for w in selection.warnings] == [WarningCode.NULL_MX_MIXED]
    with pytest.raises(NullMXError) as info:
        select(fake, "odd.example.org")
    assert [w.code for w in info.value.warnings] == [WarningCode.NULL_MX_PREFERENCE]


def test_R7505_3_c_duplicate_null_records_are_still_null_mx() -> None:
    """Two root exchanges and nothing else: still a null MX."""
    fake = FakeResolver({"example.org": {"MX": [(0, "."), (0, "")]}})
    with pytest.raises(NullMXError):
        select(fake)


def test_R7505_4_1_a_null_mx_is_permanent() -> None:
    """Null MX is permanent: a PermanentError, never a TemporaryError."""
    assert issubclass(NullMXError, mxselect.PermanentError)
    assert not issubclass(NullMXError, mxselect.TemporaryError)


def test_R7505_4_1_b_and_R7505_6_a_null_mx_is_556_5_1_10() -> None:
    """NullMXError carries 556 and 5.1.10."""
    with pytest.raises(NullMXError) as info:
        select(zone("@ MX 0 .\n"))
    assert (info.value.reply_code, info.value.status) == (556, "5.1.10")
    assert info.value.smtp_reply.startswith("556 5.1.10 example.org publishes a null MX")


def test_R7504_4_a_and_R7504_4_b_null_mx_gives_no_target_and_is_permanent() -> None:
    """No connection target is ever produced for a null MX; 556 is a permanent reply."""
    fake = zone("@ MX 0 .\n")
    with pytest.raises(mxselect.PermanentError) as info:
        select(fake)
    assert info.value.reply_code // 100 == 5
    assert all(q.rtype is RRType.MX for q in fake.queries)


# -- D. Implicit MX ------------------------------------------------------------------------


def test_R5321_5_1_f_and_R3974_3_k_implicit_mx_on_nodata() -> None:
    """MX NODATA, A and AAAA present: one implicit host, preference 0, both addresses."""
    fake = zone("@ A 192.0.2.1\n@ AAAA 2001:db8::1\n")
    selection = select(fake)
    assert selection.implicit is True
    assert [(h.name, h.preference, h.addresses) for h in selection.hosts] == [
        ("example.org", 0, (ip("2001:db8::1"), ip("192.0.2.1")))
    ]


def test_R5321_5_1_g_implicit_mx_unusable_is_an_error() -> None:
    """Implicit MX without addresses -> permanent 5.4.4; A SERVFAIL -> temporary."""
    fake = zone("@ TXT hello\n")
    with pytest.raises(NoUsableTargetsError) as info:
        select(fake)
    assert (info.value.reply_code, info.value.status) == (550, "5.4.4")
    assert "implicit MX" in str(info.value)
    fake.fail("example.org", "A", "servfail")
    with pytest.raises(DNSTemporaryError):
        select(fake)


def test_R5321_5_1_g_implicit_mx_address_nxdomain_is_permanent() -> None:
    """MX NODATA, then A/AAAA NXDOMAIN (the name vanished meanwhile): permanent."""

    class Racing(FakeResolver):
        def answer(self, query: Query) -> Answer:
            if query.rtype is RRType.MX:
                return Answer.nodata()
            return Answer.nxdomain()

    with pytest.raises(NoUsableTargetsError):
        select(Racing(), "example.org")


def test_R5321_5_1_h_domain_address_never_used_when_mx_exists() -> None:
    """MX records exist but are unusable: the domain's own A record is never used."""
    fake = zone("@ MX 10 mx\n@ A 192.0.2.9\n")
    with pytest.raises(NoUsableTargetsError):
        select(fake)
    assert "example.org. A" not in asked(fake)


def test_R7672_2_2_2_b_implicit_host_is_the_expanded_domain() -> None:
    """The implicit MX host name is the CNAME-expanded domain."""
    fake = zone("www CNAME web\nweb A 192.0.2.5\n")
    selection = select(fake, "www.example.org")
    assert hosts(selection) == ["web.example.org"]
    assert selection.targets[0].host == "web.example.org"


# -- E. Validating MX records and targets -------------------------------------------------


def test_R5321_5_1_i_host_without_address_is_skipped() -> None:
    """{10 a, 20 b}: a has no address, b does -> [b], with a HOST_UNUSABLE warning for a."""
    fake = zone("@ MX 10 a\n@ MX 20 b\na TXT x\nb A 192.0.2.2\n")
    selection = select(fake)
    assert hosts(selection) == ["b.example.org"]
    assert [(w.code, w.host) for w in selection.warnings] == [
        (WarningCode.HOST_UNUSABLE, "a.example.org")
    ]


def test_R5321_5_1_j_cname_exchange_followed_keeping_both_names() -> None:
    """An exchange that is a CNAME is followed; the MX name and the canonical name are both
    kept, with an EXCHANGE_IS_ALIAS warning (R2181-10.3-a: strict mode comes with the policy)."""
    fake = zone("@ MX 10 alias\nalias CNAME real\nreal A 192.0.2.3\n")
    selection = select(fake)
    assert [(h.name, h.canonical_name) for h in selection.hosts] == [
        ("alias.example.org", "real.example.org")
    ]
    assert selection.targets[0].host == "alias.example.org"
    assert [w.code for w in selection.warnings] == [WarningCode.EXCHANGE_IS_ALIAS]


def test_R2181_10_3_a_alias_exchange_chain_limit() -> None:
    """An exchange CNAME loop makes that host unusable (temporary), not the whole selection."""
    fake = zone(
        "@ MX 10 loop\n@ MX 20 good\nloop CNAME loop2\nloop2 CNAME loop\ngood A 192.0.2.4\n"
    )
    selection = select(fake)
    assert hosts(selection) == ["good.example.org"]
    assert "CNAME loop" in selection.warnings[0].message


def test_R2181_10_3_b_aaaa_only_host_is_usable() -> None:
    """A host with only AAAA records is usable."""
    fake = zone("@ MX 10 v6\nv6 AAAA 2001:db8::6\n")
    assert select(fake).addresses == (ip("2001:db8::6"),)


@pytest.mark.parametrize(
    "exchange",
    ["bad_name.example.org.", "has\\032space.example.org.", "-lead.example.org.", "*.example.org."],
)
def test_R2181_11_b_invalid_exchange_dropped_others_kept(exchange: str) -> None:
    """A record whose exchange is not a host name is dropped; the good ones still work
    (go#46979: one bad record must not hide the others); all bad -> permanent error."""
    fake = zone(f"@ MX 5 {exchange}\n@ MX 10 good\ngood A 192.0.2.1\nonly MX 10 {exchange}\n")
    selection = select(fake)
    assert hosts(selection) == ["good.example.org"]
    assert [w.code for w in selection.warnings] == [WarningCode.INVALID_EXCHANGE]
    with pytest.raises(NoUsableTargetsError, match="not a valid host name"):
        select(fake, "only.example.org")
    assert not any("\\" in q.name or "_" in q.name or "*" in q.name for q in fake.queries)


def test_R2181_11_b_exchange_with_non_ascii_or_long_label_dropped() -> None:
    """Exchanges with non-ASCII text or a 64-octet label (possible in DNS data) are dropped."""
    fake = FakeResolver(
        {
            "example.org": {
                "MX": [(1, "bücher.example."), (2, "a" * 64 + ".example."), (3, "ok.example.")]
            },
            "ok.example": {"A": ["192.0.2.1"]},
        }
    )
    selection = select(fake)
    assert hosts(selection) == ["ok.example"]
    assert [w.code for w in selection.warnings] == [WarningCode.INVALID_EXCHANGE] * 2


def test_R7672_2_2_a_ip_address_as_exchange_is_unusable() -> None:
    """MX {10 192.0.2.5}: unusable with an explaining warning, no A query for '192.0.2.5.'."""
    fake = zone("@ MX 10 192.0.2.5.\n@ MX 20 mx\nmx A 192.0.2.1\nonly MX 10 192.0.2.5.\n")
    selection = select(fake)
    assert hosts(selection) == ["mx.example.org"]
    assert [w.code for w in selection.warnings] == [WarningCode.MX_IS_ADDRESS]
    assert "IP address instead of a host name" in selection.warnings[0].message
    with pytest.raises(NoUsableTargetsError, match="is an IP address"):
        select(fake, "only.example.org")
    assert not any(q.name.startswith("192.") for q in fake.queries)


def test_R974_h_wildcard_exchange_discarded() -> None:
    """MX {10 *.example.net}: the record is discarded."""
    fake = FakeResolver({"example.org": {"MX": [(10, "*.example.net.")]}})
    with pytest.raises(NoUsableTargetsError):
        select(fake)
    assert asked(fake) == ["example.org. MX"]


def test_R974_j_no_mx_query_for_exchanges() -> None:
    """The MX lookup is not repeated for the exchanges (only A/AAAA are asked)."""
    fake = zone("@ MX 10 relay\nrelay MX 10 other\nrelay A 192.0.2.4\nother A 192.0.2.5\n")
    selection = select(fake)
    assert selection.addresses == (ip("192.0.2.4"),)
    assert [q.rtype for q in fake.queries].count(RRType.MX) == 1


# -- F. Sorting, randomisation -------------------------------------------------------------


def test_R5321_5_1_k_and_R1123_5_3_4_a_all_addresses_returned() -> None:
    """Without a limit every usable address of every usable host is returned, in order."""
    fake = zone(
        "@ MX 10 a\n@ MX 20 b\na A 192.0.2.1\na A 192.0.2.2\na AAAA 2001:db8::1\nb A 192.0.2.3\n"
    )
    selection = select(fake)
    assert [(t.host, str(t.address)) for t in selection] == [
        ("a.example.org", "2001:db8::1"),
        ("a.example.org", "192.0.2.1"),
        ("a.example.org", "192.0.2.2"),
        ("b.example.org", "192.0.2.3"),
    ]


def test_R5321_5_1_m_and_R1035_3_3_9_a_numeric_preference_order() -> None:
    """{20 c, 10 a, 65535 z, 0 p} -> p, a, c, z (numeric, 0 and 65535 included)."""
    fake = zone(
        "@ MX 20 c\n@ MX 10 a\n@ MX 65535 z\n@ MX 0 p\n"
        "c A 192.0.2.3\na A 192.0.2.1\nz A 192.0.2.26\np A 192.0.2.16\n"
    )
    assert hosts(select(fake)) == [
        "p.example.org",
        "a.example.org",
        "c.example.org",
        "z.example.org",
    ]
    assert [t.preference for t in select(fake)] == [0, 10, 20, 65535]


def test_R5321_5_1_n_and_R1123_5_3_4_b_equal_preferences_randomised() -> None:
    """{10 a, 10 b, 20 c}: over 2000 seeds a is first 40-60 % of the time; c always last."""
    fake = zone("@ MX 10 a\n@ MX 10 b\n@ MX 20 c\na A 192.0.2.1\nb A 192.0.2.2\nc A 192.0.2.3\n")
    firsts = []
    for seed in range(2000):
        order = hosts(select(fake, seed=seed))
        assert order[-1] == "c.example.org"
        firsts.append(order[0])
    assert 800 <= firsts.count("a.example.org") <= 1200


def test_R5321_5_1_n_order_independent_of_answer_order() -> None:
    """The same seed gives the same order whatever order the resolver lists the records in."""
    records = [(10, f"mx{i}.example.org") for i in range(6)]
    addresses = {f"mx{i}.example.org": {"A": [f"192.0.2.{i + 1}"]} for i in range(6)}
    orders = set()
    for permutation in (records, records[::-1], records[2:] + records[:2]):
        fake = FakeResolver({"example.org": {"MX": permutation}, **addresses})
        orders.add(tuple(hosts(select(fake, seed=42))))
    assert len(orders) == 1


def test_unseeded_selection_does_not_use_global_random(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without rng, shuffling never touches the global random (psycopg's flaky-test bug)."""

    def forbidden(*args: object) -> None:
        raise AssertionError("global random used")

    monkeypatch.setattr(random, "shuffle", forbidden)
    monkeypatch.setattr(random, "random", forbidden)
    monkeypatch.setattr(random, "randrange", forbidden)
    fake = zone("@ MX 10 a\n@ MX 10 b\na A 192.0.2.1\nb A 192.0.2.2\n")
    seen = {tuple(hosts(mxselect.select_targets("example.org", resolver=fake))) for _ in range(60)}
    assert len(seen) == 2


def test_R1123_5_3_5_a_mx_routing_is_the_default_path() -> None:
    """MX-based routing is what select_targets does by default."""
    fake = zone("@ MX 10 mx\n@ A 192.0.2.99\nmx A 192.0.2.1\n")
    selection = select(fake)
    assert (selection.implicit, selection.addresses) == (False, (ip("192.0.2.1"),))


def test_R1123_5_2_12_a_only_mx_a_aaaa_queried() -> None:
    """No WKS (or ANY, or anything else) query is ever sent."""
    fake = zone("@ MX 10 a\n@ MX 20 b\na CNAME b\nb A 192.0.2.1\nb AAAA 2001:db8::1\n")
    select(fake)
    assert {q.rtype for q in fake.queries} <= {RRType.MX, RRType.A, RRType.AAAA}


def test_R1123_2_3_a_one_target_per_address() -> None:
    """A multi-address host produces one target per address, not only the first."""
    fake = zone("@ MX 10 a\na A 192.0.2.1\na A 192.0.2.2\na A 192.0.2.3\n")
    assert len(select(fake)) == 3


def test_R5321_5_1_o_addresses_in_the_order_presented() -> None:
    """Within a family, addresses keep the resolver's order (no sorting)."""
    fake = FakeResolver(
        {
            "example.org": {"MX": [(10, "a.example.org")]},
            "a.example.org": {"A": ["192.0.2.9", "192.0.2.1", "192.0.2.5"]},
        }
    )
    assert [str(a) for a in select(fake).addresses] == ["192.0.2.9", "192.0.2.1", "192.0.2.5"]


def test_host_listed_twice_keeps_best_preference() -> None:
    """{20 mx, 10 mx, 15 other}: mx kept once at 10, before other."""
    fake = FakeResolver(
        {
            "example.org": {
                "MX": [(20, "mx.example.org"), (10, "MX.example.org."), (15, "o.example")]
            },
            "mx.example.org": {"A": ["192.0.2.1"]},
            "o.example": {"A": ["192.0.2.2"]},
        }
    )
    selection = select(fake)
    assert [(h.name, h.preference) for h in selection.hosts] == [
        ("mx.example.org", 10),
        ("o.example", 15),
    ]
    assert [w.code for w in selection.warnings] == [WarningCode.DUPLICATE_HOST]


def test_duplicate_addresses_tried_once_at_best_position() -> None:
    """Two hosts sharing an address: it is listed once, for the better-placed host."""
    fake = zone("@ MX 10 a\n@ MX 20 b\na A 192.0.2.1\nb A 192.0.2.1\nb A 192.0.2.2\n")
    selection = select(fake)
    assert [(t.host, str(t.address)) for t in selection] == [
        ("a.example.org", "192.0.2.1"),
        ("b.example.org", "192.0.2.2"),
    ]
    assert [w.code for w in selection.warnings] == [WarningCode.DUPLICATE_ADDRESS]


# -- Addresses: batching and partial failures ---------------------------------------------


def test_address_queries_for_all_exchanges_in_one_batch() -> None:
    """After the MX answer, AAAA and A of every exchange are asked as one batch."""
    fake = zone("@ MX 10 a\n@ MX 20 b\n@ MX 30 c\na A 192.0.2.1\nb A 192.0.2.2\nc A 192.0.2.3\n")
    plan = mxselect.SelectionPlan("example.org", rng=random.Random(0))
    batches = []
    while not plan.done:
        batch = plan.pending
        batches.append(batch)
        for query in batch:
            plan.feed(query, fake.answer(query))
    assert [len(b) for b in batches] == [1, 6]
    assert {(q.name, q.rtype) for q in batches[1]} == {
        (f"{h}.example.org.", t) for h in "abc" for t in (RRType.A, RRType.AAAA)
    }
    assert len(plan.result()) == 3


@pytest.mark.parametrize(("failing", "answering"), [("AAAA", "A"), ("A", "AAAA")])
def test_R3974_5_a_one_family_failing_still_usable(failing: str, answering: str) -> None:
    """AAAA SERVFAIL while A answers (and vice versa): the host is used, with a warning."""
    fake = zone("@ MX 10 mx\nmx A 192.0.2.8\nmx AAAA 2001:db8::8\n")
    fake.fail("mx.example.org", failing, "servfail")
    selection = select(fake)
    assert [t.address.version for t in selection] == [4 if answering == "A" else 6]
    assert [w.code for w in selection.warnings] == [WarningCode.PARTIAL_ADDRESS_FAILURE]


def test_R7672_2_1_2_b_partial_host_failure_uses_remaining_hosts() -> None:
    """{10 a, 20 b}: a SERVFAIL, b answers -> [b] with a warning about a."""
    fake = zone("@ MX 10 a\n@ MX 20 b\na A 192.0.2.1\nb A 192.0.2.2\n")
    fake.fail("a.example.org", None, "servfail")
    selection = select(fake)
    assert hosts(selection) == ["b.example.org"]
    assert "SERVFAIL" in selection.warnings[0].message


def test_N3_soft_error_dominates_hard_errors() -> None:
    """No usable host, one failure temporary and one permanent -> DNSTemporaryError."""
    fake = zone("@ MX 10 a\n@ MX 20 b\nb TXT no-address\n")
    fake.add("a.example.org", "A", "192.0.2.1")
    fake.fail("a.example.org", "A", "timeout")
    with pytest.raises(DNSTemporaryError) as info:
        select(fake)
    assert "a.example.org: AAAA lookup: NODATA; A lookup: timeout" in str(info.value)
    assert "b.example.org: no A or AAAA records" in str(info.value)


def test_N4_aaaa_timeout_plus_no_a_is_temporary() -> None:
    """Exim: an AAAA timeout plus 'no A records' still means try again later."""
    fake = zone("@ MX 10 mx\nmx TXT x\n")
    fake.fail("mx.example.org", "AAAA", "timeout")
    with pytest.raises(DNSTemporaryError):
        select(fake)


def test_all_hosts_permanently_unusable_is_5_4_4() -> None:
    """Every exchange NXDOMAIN or NODATA -> NoUsableTargetsError, naming each host."""
    fake = zone("@ MX 10 gone\n@ MX 20 empty\nempty TXT x\n")
    with pytest.raises(NoUsableTargetsError) as info:
        select(fake)
    assert str(info.value) == (
        "no usable mail exchanger for example.org: gone.example.org: the host does not exist "
        "(NXDOMAIN); empty.example.org: no A or AAAA records"
    )


def test_wrong_family_answer_is_ignored() -> None:
    """A resolver answering A with an IPv6 address: ignored with a BAD_ANSWER warning."""

    class Confused(FakeResolver):
        def answer(self, query: Query) -> Answer:
            if query.rtype is RRType.A and query.name == "mx.example.org.":
                return Answer.from_addresses(["2001:db8::1", "192.0.2.1"])
            return super().answer(query)

    fake = Confused({"example.org": {"MX": [(10, "mx.example.org")]}, "mx.example.org": {}})
    selection = select(fake)
    assert selection.addresses == (ip("192.0.2.1"),)
    assert WarningCode.BAD_ANSWER in [w.code for w in selection.warnings]


def test_records_answer_without_records_is_temporary_never_implicit() -> None:
    """A resolver claiming RECORDS but giving none (or only wrong-family addresses) has
    established nothing: a temporary failure, never the implicit MX (postal#2833)."""

    class Empty(FakeResolver):
        def answer(self, query: Query) -> Answer:
            if query.rtype is RRType.MX and query.name == "example.org.":
                return Answer.from_addresses(["192.0.2.1"])  # MX query, address records
            if query.rtype is RRType.A:
                return Answer.from_addresses(["2001:db8::1"])  # A query, IPv6 only
            return super().answer(query)

    fake = Empty({"example.org": {"A": ["192.0.2.1"]}, "other.example": {"MX": [(1, "h.example")]}})
    with pytest.raises(DNSTemporaryError, match="answered without MX records"):
        select(fake)
    assert [str(q) for q in fake.queries] == ["example.org. MX"]
    with pytest.raises(DNSTemporaryError, match="answered without A records"):
        select(fake, "other.example")


def test_ttl_is_the_smallest_ttl_used() -> None:
    """The selection's TTL is the smallest TTL of the answers used (negative TTLs too), and a
    TTL with the top bit set counts as 0 (RFC 2181 §8)."""
    fake = FakeResolver()
    fake.add("example.org", "MX", (10, "mx.example.org"), ttl=3600)
    fake.add("mx.example.org", "A", "192.0.2.1", ttl=120)
    fake.add("mx.example.org", "AAAA", "2001:db8::1", ttl=900)
    assert select(fake).ttl == 120
    top_bit = FakeResolver()
    top_bit.add("example.org", "MX", (10, "mx.example.org"), ttl=3600)
    top_bit.add("mx.example.org", "A", "192.0.2.2", ttl=2**31 + 5)
    assert select(top_bit).ttl == 0
    assert select(zone("@ MX 10 mx\nmx A 192.0.2.1\n")).ttl == 60  # NODATA AAAA: SOA minimum


def test_address_literal_selection_has_no_ttl_and_no_dns() -> None:
    """An address literal: one target, ttl None, no query."""
    fake = FakeResolver()
    selection = mxselect.select_targets("[192.0.2.1]", resolver=fake)
    assert (selection.address_literal, selection.ttl, fake.queries) == (True, None, [])
    assert [(t.host, t.preference, str(t.address)) for t in selection] == [
        ("[192.0.2.1]", 0, "192.0.2.1")
    ]
