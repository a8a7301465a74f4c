"""The selection policy (issue #3, first slice): each option and each default, through the fake."""

from __future__ import annotations

import ipaddress
import random

import pytest
from zones import zone

import mxselect
from mxselect import (
    DNSTemporaryError,
    Families,
    NoUsableTargetsError,
    NullMXError,
    Policy,
    RRType,
    WarningCode,
)
from mxselect.testing import FakeResolver


def select(fake: FakeResolver, policy: Policy | None = None, domain: str = "example.org"):  # type: ignore[no-untyped-def]
    return mxselect.select_targets(domain, resolver=fake, rng=random.Random(4), policy=policy)


def pairs(selection: mxselect.Selection) -> list[tuple[str, str]]:
    return [(t.host.split(".")[0], str(t.address)) for t in selection]


DUAL = """
@ MX 10 a
@ MX 20 b
a A 192.0.2.1
a AAAA 2001:db8::1
b AAAA 2001:db8::2
b A 192.0.2.2
"""


def test_defaults_are_documented_values() -> None:
    """The defaults: any family, 5 addresses, 20 MX hosts, implicit MX on, Exim-like null MX
    and MX-to-IP handling, CNAMEs followed up to 10 links, unsafe networks filtered."""
    policy = Policy()
    assert (
        policy.families,
        policy.first_family_count,
        policy.max_addresses,
        policy.keep_one_per_preference,
        policy.max_mx_hosts,
        policy.max_address_queries,
        policy.implicit_mx,
        policy.strict_null_mx,
        policy.allow_mx_to_ip,
        policy.strict_cname_exchange,
        policy.cname_limit,
    ) == (Families.ANY, 1, 5, False, 20, None, True, False, False, False, 10)
    assert policy.address_query_budget == 100
    assert Policy(max_mx_hosts=100).address_query_budget == 500
    assert Policy(max_address_queries=7).address_query_budget == 7
    with pytest.raises(ValueError, match="max_address_queries must be at least 1"):
        Policy(max_address_queries=0)
    assert ipaddress.ip_network("127.0.0.0/8") in policy.unsafe_networks
    assert Policy(families="ipv4-only").families is Families.IPV4_ONLY  # type: ignore[arg-type]


def test_R5321_5_1_l_fewer_than_two_addresses_refused() -> None:
    """max_addresses below 2 is refused (RFC 5321 §5.1 'SHOULD try at least two')."""
    with pytest.raises(ValueError, match="at least 2"):
        Policy(max_addresses=1)
    assert Policy(max_addresses=2).max_addresses == 2
    assert Policy(max_addresses=None).max_addresses is None


def test_R5321_5_1_k_limit_returns_exactly_the_first_n() -> None:
    """With max_addresses=N exactly the first N addresses (after ordering) are returned."""
    fake = zone(DUAL)
    full = select(fake, Policy(max_addresses=None))
    assert pairs(select(fake, Policy(max_addresses=3))) == pairs(full)[:3]
    assert len(full) == 4


def test_keep_one_per_preference_level() -> None:
    """Exim: at least one address of every preference level survives the limit."""
    fake = zone(
        "@ MX 10 a\n@ MX 20 b\n@ MX 30 c\na A 192.0.2.1\na A 192.0.2.2\na A 192.0.2.3\n"
        "b A 192.0.2.4\nc A 192.0.2.5\n"
    )
    assert pairs(select(fake, Policy(max_addresses=2))) == [("a", "192.0.2.1"), ("a", "192.0.2.2")]
    assert pairs(select(fake, Policy(max_addresses=2, keep_one_per_preference=True))) == [
        ("a", "192.0.2.1"),
        ("a", "192.0.2.2"),
        ("b", "192.0.2.4"),
        ("c", "192.0.2.5"),
    ]


def test_keep_one_per_preference_with_a_level_of_duplicates_only() -> None:
    """A preference level whose addresses all belong to better hosts adds nothing (regression:
    found by the policy property test)."""
    fake = zone("@ MX 0 a\n@ MX 10 b\na AAAA 2001:db8::1\nb AAAA 2001:db8::1\n")
    selection = select(fake, Policy(max_addresses=2, keep_one_per_preference=True))
    assert pairs(selection) == [("a", "2001:db8::1")]


def test_R5321_5_2_b_ipv4_only_never_queries_aaaa() -> None:
    """ipv4-only: no AAAA query at all; an IPv6-only host is unusable."""
    fake = zone(DUAL + "@ MX 30 six\nsix AAAA 2001:db8::6\n")
    selection = select(fake, Policy(families=Families.IPV4_ONLY, max_addresses=None))
    assert pairs(selection) == [("a", "192.0.2.1"), ("b", "192.0.2.2")]
    assert RRType.AAAA not in {q.rtype for q in fake.queries}
    assert "no A records (the policy uses A only)" in selection.warnings[0].message


def test_R5321_5_2_b_ipv6_only_never_queries_a() -> None:
    """ipv6-only: no A query at all."""
    fake = zone(DUAL)
    selection = select(fake, Policy(families=Families.IPV6_ONLY))
    assert pairs(selection) == [("a", "2001:db8::1"), ("b", "2001:db8::2")]
    assert RRType.A not in {q.rtype for q in fake.queries}


def test_R3974_3_a_ipv4_only_and_aaaa_only_mx_is_permanent() -> None:
    """ipv4-only and the only MX has just AAAA: the same permanent error as no address."""
    fake = zone("@ MX 1 mx1\nmx1 AAAA 2001:db8::1\n")
    with pytest.raises(NoUsableTargetsError):
        select(fake, Policy(families=Families.IPV4_ONLY))


def test_R3974_3_g_family_preference_never_crosses_preference_levels() -> None:
    """prefer-ipv6: {10 a(A,AAAA), 20 b(AAAA)} -> a/AAAA, a/A, b/AAAA; prefer-ipv4 mirrors it."""
    fake = zone("@ MX 10 a\n@ MX 20 b\na A 192.0.2.1\na AAAA 2001:db8::1\nb AAAA 2001:db8::2\n")
    assert pairs(select(fake, Policy(families=Families.PREFER_IPV6))) == [
        ("a", "2001:db8::1"),
        ("a", "192.0.2.1"),
        ("b", "2001:db8::2"),
    ]
    assert pairs(select(fake, Policy(families=Families.PREFER_IPV4))) == [
        ("a", "192.0.2.1"),
        ("a", "2001:db8::1"),
        ("b", "2001:db8::2"),
    ]


def test_R8305_4_b_and_R8305_8_a_interleave_with_first_family_count_1() -> None:
    """A host with AAAA [6a, 6b, 6c] and A [4a, 4b] -> 6a, 4a, 6b, 4b, 6c (default count 1)."""
    fake = zone(
        "@ MX 10 h\nh AAAA 2001:db8::a\nh AAAA 2001:db8::b\nh AAAA 2001:db8::c\n"
        "h A 192.0.2.10\nh A 192.0.2.11\n"
    )
    assert [str(a) for a in select(fake).addresses] == [
        "2001:db8::a",
        "192.0.2.10",
        "2001:db8::b",
        "192.0.2.11",
        "2001:db8::c",
    ]


def test_R8305_4_c_first_family_count_2() -> None:
    """First Address Family Count 2 -> 6a, 6b, 4a, 6c, 4b."""
    fake = zone(
        "@ MX 10 h\nh AAAA 2001:db8::a\nh AAAA 2001:db8::b\nh AAAA 2001:db8::c\n"
        "h A 192.0.2.10\nh A 192.0.2.11\n"
    )
    assert [str(a) for a in select(fake, Policy(first_family_count=2)).addresses] == [
        "2001:db8::a",
        "2001:db8::b",
        "192.0.2.10",
        "2001:db8::c",
        "192.0.2.11",
    ]


def test_N12_limit_never_starves_a_family() -> None:
    """Within one preference level, a host with many IPv6 addresses and another with IPv4 ones:
    a limit of 2 keeps one of each family (Postfix smtp_balance_inet_protocols)."""
    body = "@ MX 10 six\n@ MX 10 four\n"
    body += "".join(f"six AAAA 2001:db8::{i}\n" for i in range(1, 5))
    body += "".join(f"four A 192.0.2.{i}\n" for i in range(1, 5))
    for seed in range(10):
        selection = mxselect.select_targets(
            "example.org",
            resolver=zone(body),
            rng=random.Random(seed),
            policy=Policy(max_addresses=2),
        )
        assert {t.family for t in selection} == {4, 6}


def test_max_mx_hosts_bounds_the_queries() -> None:
    """1,000 MX records: only the best 20 hosts are resolved (at most 40 address queries)."""
    records = [(i % 50, f"mx{i}.example.net") for i in range(1000)]
    fake = FakeResolver(
        {
            "example.org": {"MX": records},
            **{f"mx{i}.example.net": {"A": [f"192.0.2.{i % 250 + 1}"]} for i in range(1000)},
        }
    )
    selection = select(fake, Policy(max_addresses=None))
    assert len(fake.queries) == 1 + 2 * 20
    assert len(selection.hosts) <= 20
    assert [t.preference for t in selection] == sorted(t.preference for t in selection)
    assert selection.warnings[0].code is WarningCode.MX_HOSTS_CAPPED


def test_address_query_budget_holds_with_cname_chains() -> None:
    """Exchanges that are CNAME chains under a resolver that does not follow them: still at
    most max_address_queries address queries; the hosts left unresolved fail temporarily."""
    records: dict[str, dict[str, object]] = {
        "example.org": {"MX": [(10, f"h{i}.example.net") for i in range(3)]}
    }
    for i in range(3):
        records[f"h{i}.example.net"] = {"CNAME": f"h{i}-1.example.net"}
        records[f"h{i}-1.example.net"] = {"CNAME": f"h{i}-2.example.net"}
        records[f"h{i}-2.example.net"] = {"A": [f"192.0.2.{i + 1}"]}
    fake = FakeResolver(records, follow_cnames=False)  # type: ignore[arg-type]
    with pytest.raises(DNSTemporaryError, match="query budget of 6 address queries exhausted"):
        select(fake, Policy(max_mx_hosts=3, max_address_queries=6))
    assert len(fake.queries) - 1 <= 6
    roomy = FakeResolver(records, follow_cnames=False)  # type: ignore[arg-type]
    assert len(select(roomy, Policy(max_mx_hosts=3, max_address_queries=18))) == 3
    assert len(roomy.queries) - 1 == 18


def test_implicit_mx_can_be_disabled() -> None:
    """implicit_mx=False: a domain without MX records fails (5.4.4) with no address query."""
    fake = zone("@ A 192.0.2.1\n")
    with pytest.raises(NoUsableTargetsError, match="implicit MX is disabled"):
        select(fake, Policy(implicit_mx=False))
    assert [str(q) for q in fake.queries] == ["example.org. MX"]


def test_R7505_3_c_strict_null_mx() -> None:
    """strict_null_mx: any root exchange is a null MX for the whole domain (Postfix)."""
    fake = zone("@ MX 0 .\n@ MX 10 mx\nmx A 192.0.2.1\n")
    assert len(select(fake)) == 1
    with pytest.raises(NullMXError) as info:
        select(fake, Policy(strict_null_mx=True))
    assert WarningCode.NULL_MX_MIXED in [w.code for w in info.value.warnings]


def test_R7672_2_2_a_mx_to_ip_opt_in() -> None:
    """allow_mx_to_ip: '10 192.0.2.5' is used as that address, without any DNS query for it;
    still with a warning."""
    fake = FakeResolver({"example.org": {"MX": [(10, "192.0.2.5."), (20, "[::1]")]}})
    selection = select(fake, Policy(allow_mx_to_ip=True))
    assert pairs(selection) == [("192", "192.0.2.5")]
    assert [str(q) for q in fake.queries] == ["example.org. MX"]
    assert selection.warnings[0].code is WarningCode.MX_IS_ADDRESS


def test_mx_to_unsafe_ip_is_dropped_even_when_allowed() -> None:
    """allow_mx_to_ip does not bypass the unsafe-target filter."""
    fake = FakeResolver({"example.org": {"MX": [(10, "127.0.0.1")]}})
    with pytest.raises(NoUsableTargetsError, match="unsafe networks"):
        select(fake, Policy(allow_mx_to_ip=True))


def test_R2181_10_3_a_strict_cname_exchange() -> None:
    """strict_cname_exchange: an exchange that is a CNAME is unusable (RFC 2181 §10.3)."""
    fake = zone(
        "@ MX 10 alias\n@ MX 20 real\nalias CNAME real2\nreal2 A 192.0.2.3\nreal A 192.0.2.4\n"
    )
    assert [h.name for h in select(fake).hosts] == ["alias.example.org", "real.example.org"]
    strict = select(fake, Policy(strict_cname_exchange=True))
    assert [h.name for h in strict.hosts] == ["real.example.org"]
    only = zone("@ MX 10 alias\nalias CNAME real2\nreal2 A 192.0.2.3\n")
    with pytest.raises(NoUsableTargetsError, match="strict_cname_exchange"):
        select(only, Policy(strict_cname_exchange=True))


def test_cname_limit_is_configurable() -> None:
    """cname_limit=2: a chain of 3 links is a temporary error, 2 links work."""
    two = zone("a CNAME b\nb CNAME c\nc MX 10 mx\nmx A 192.0.2.1\n")
    assert len(select(two, Policy(cname_limit=2), "a.example.org")) == 1
    three = zone("a CNAME b\nb CNAME c\nc CNAME d\nd MX 10 mx\nmx A 192.0.2.1\n")
    with pytest.raises(DNSTemporaryError, match="longer than 2 links"):
        select(three, Policy(cname_limit=2), "a.example.org")


def test_unsafe_addresses_dropped_per_address_not_per_host() -> None:
    """Haraka#3314: a link-local AAAA must not block the host's IPv4 address."""
    fake = zone("@ MX 10 mx\nmx AAAA fe80::1\nmx A 192.0.2.1\nmx A 127.0.0.2\n")
    selection = select(fake)
    assert pairs(selection) == [("mx", "192.0.2.1")]
    assert [w.code for w in selection.warnings] == [WarningCode.UNSAFE_ADDRESS] * 2


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "0.0.0.0", "169.254.1.1", "224.0.0.1", "255.255.255.255", "240.0.0.1"],
)
def test_default_unsafe_ipv4(address: str) -> None:
    """MX hosts resolving only to unsafe IPv4 addresses are unusable: NoUsableTargetsError
    saying the addresses were filtered."""
    fake = zone(f"@ MX 10 mx\nmx A {address}\n")
    with pytest.raises(NoUsableTargetsError, match="unsafe networks"):
        select(fake)


@pytest.mark.parametrize("address", ["::1", "::", "fe80::1", "ff02::1", "::ffff:127.0.0.1"])
def test_default_unsafe_ipv6(address: str) -> None:
    """IPv6 loopback, unspecified, link-local, multicast and IPv4-mapped loopback."""
    fake = zone(f"@ MX 10 mx\nmx AAAA {address}\n")
    with pytest.raises(NoUsableTargetsError, match="unsafe networks"):
        select(fake)


def test_unsafe_addresses_plus_a_failed_family_is_temporary() -> None:
    """AAAA gives only ::1 (dropped) and A fails temporarily: the A record might be usable, so
    the outcome is temporary, never a bounce."""
    fake = zone("@ MX 10 mx\nmx AAAA ::1\nmx A 192.0.2.1\n")
    fake.fail("mx.example.org", "A", "timeout")
    with pytest.raises(DNSTemporaryError, match="A lookup: timeout"):
        select(fake)


def test_unsafe_networks_extendable_and_clearable() -> None:
    """with_unsafe adds networks (RFC 1918 here); unsafe_networks=() allows loopback."""
    fake = zone("@ MX 10 mx\nmx A 10.1.2.3\nmx A 127.0.0.2\n")
    assert pairs(select(fake)) == [("mx", "10.1.2.3")]
    with pytest.raises(NoUsableTargetsError):
        select(fake, Policy().with_unsafe("10.0.0.0/8"))
    assert pairs(select(fake, Policy(unsafe_networks=()))) == [
        ("mx", "10.1.2.3"),
        ("mx", "127.0.0.2"),
    ]


def test_policy_is_frozen() -> None:
    """The policy is an immutable value."""
    import attrs

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Policy().max_addresses = 3  # type: ignore[misc]


def test_async_driver_takes_the_same_policy() -> None:
    """aselect_targets applies the policy identically."""
    import asyncio

    policy = Policy(families=Families.PREFER_IPV4, max_addresses=3)
    sync = select(zone(DUAL), policy)
    asynchronous = asyncio.run(
        mxselect.aselect_targets(
            "example.org", resolver=zone(DUAL), rng=random.Random(4), policy=policy
        )
    )
    assert sync == asynchronous


# -- loop prevention (checklist G) ---------------------------------------------------------

LOOP = """
@ MX 10 mx1
@ MX 20 mx2
@ MX 20 mx3
@ MX 30 mx4
mx1 A 192.0.2.1
mx2 A 192.0.2.2
mx3 A 192.0.2.3
mx4 A 192.0.2.4
"""


@pytest.mark.parametrize(
    "policy",
    [
        Policy(local_names=["MX2.Example.ORG."]),
        Policy(local_addresses=["192.0.2.2"]),
    ],
)
def test_R5321_5_1_q_and_R3974_3_d_and_R974_f_self_and_worse_discarded(policy: Policy) -> None:
    """Self is mx2 (by name, case-insensitive, or by address): mx2, mx3 (same preference) and
    mx4 (worse) are dropped; only mx1 is left, with a LOCAL_HOST warning."""
    selection = select(zone(LOOP), policy)
    assert [h.name for h in selection.hosts] == ["mx1.example.org"]
    assert WarningCode.LOCAL_HOST in [w.code for w in selection.warnings]


def test_R5321_5_1_p_pruning_works_on_the_preference_sorted_list() -> None:
    """Records listed in any order: pruning uses the preference order, not the answer order."""
    fake = FakeResolver(
        {
            "example.org": {"MX": [(30, "c.example"), (20, "me.example"), (10, "a.example")]},
            "a.example": {"A": ["192.0.2.1"]},
            "me.example": {"A": ["192.0.2.2"]},
            "c.example": {"A": ["192.0.2.3"]},
        }
    )
    selection = select(fake, Policy(local_names=["me.example"]))
    assert [h.name for h in selection.hosts] == ["a.example"]


def test_R5321_5_1_r_self_is_best_mx_is_a_permanent_loop() -> None:
    """Self is the best MX: MailLoopError 554 5.4.6 naming the MX and the matching address."""
    with pytest.raises(mxselect.MailLoopError) as info:
        select(zone(LOOP), Policy(local_addresses=["192.0.2.1"]))
    assert (info.value.reply_code, info.value.status) == (554, "5.4.6")
    assert str(info.value) == (
        "mail for example.org loops back to myself: MX host mx1.example.org (preference 10) "
        "is this host (its address 192.0.2.1)"
    )
    assert isinstance(info.value, mxselect.PermanentError)


def test_R3974_3_e_and_R974_l_backup_mx_with_no_usable_primary_is_temporary() -> None:
    """Self is a backup MX and the better MX has no address now: NoPrimaryRelayError 4.4.4
    ('unable to find primary relay'), never a bounce and never delivery to self."""
    fake = zone("@ MX 10 primary\n@ MX 20 me\nme A 192.0.2.2\n")
    fake.fail("primary.example.org", None, "servfail")
    with pytest.raises(mxselect.NoPrimaryRelayError) as info:
        select(fake, Policy(local_addresses=["192.0.2.2"]))
    assert (info.value.reply_code, info.value.status) == (451, "4.4.4")
    assert str(info.value).startswith("unable to find primary relay for example.org")
    gone = zone("@ MX 10 primary\n@ MX 20 me\nme A 192.0.2.2\n")  # primary NXDOMAIN
    with pytest.raises(mxselect.NoPrimaryRelayError):
        select(gone, Policy(local_addresses=["192.0.2.2"]))


def test_R974_i_alias_of_the_local_host_is_detected() -> None:
    """MX points at an alias whose CNAME target is a local name: detected as self."""
    fake = zone("@ MX 10 other\n@ MX 20 alias\nalias CNAME me\nme A 192.0.2.9\nother A 192.0.2.1\n")
    selection = select(fake, Policy(local_names=["me.example.org"]))
    assert [h.name for h in selection.hosts] == ["other.example.org"]
    with pytest.raises(mxselect.MailLoopError, match=r"its canonical name me\.example\.org"):
        select(
            zone("@ MX 10 alias\nalias CNAME me\nme A 192.0.2.9\n"),
            Policy(local_names=["me.example.org"]),
        )


def test_loopback_self_address_matches_before_the_unsafe_filter() -> None:
    """Stalwart#1377: an MX of 'localhost' (127.0.0.1) that is this host is a loop, reported
    as such rather than as a filtered address."""
    fake = FakeResolver(
        {"example.org": {"MX": [(10, "localhost")]}, "localhost": {"A": ["127.0.0.1"]}}
    )
    with pytest.raises(mxselect.MailLoopError):
        select(fake, Policy(local_addresses=["127.0.0.1"]))
    with pytest.raises(NoUsableTargetsError, match="unsafe"):
        select(fake)


def test_address_literal_of_own_address_is_a_loop() -> None:
    """OpenSMTPD#410: user@[own address] loops: MailLoopError, no query."""
    fake = FakeResolver()
    with pytest.raises(mxselect.MailLoopError, match="address literal"):
        mxselect.select_targets(
            "[192.0.2.25]", resolver=fake, policy=Policy(local_addresses=["192.0.2.25"])
        )
    assert fake.queries == []
    assert (
        len(
            mxselect.select_targets(
                "[192.0.2.26]", resolver=fake, policy=Policy(local_addresses=["192.0.2.25"])
            )
        )
        == 1
    )


def test_implicit_mx_pointing_at_self_is_a_loop() -> None:
    """No MX records and the domain's address is ours: the implicit MX is self -> loop."""
    with pytest.raises(mxselect.MailLoopError):
        select(zone("@ A 192.0.2.7\n"), Policy(local_addresses=["192.0.2.7"]))


def test_local_names_are_validated() -> None:
    """Local names are normalised like domains; an address literal there is refused."""
    assert Policy(local_names=["BÜCHER.example."]).local_names == frozenset(
        {"xn--bcher-kva.example"}
    )
    with pytest.raises(ValueError, match="local_addresses"):
        Policy(local_names=["[192.0.2.1]"])


# -- properties over generated zones and policies ------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

V4 = ["192.0.2.1", "192.0.2.2", "198.51.100.7", "127.0.0.1", "169.254.3.3", "0.0.0.0"]
V6 = ["2001:db8::1", "2001:db8::2", "2001:db8:1::9", "::1", "fe80::5", "ff02::1"]


@st.composite
def policy_cases(draw: st.DrawFn) -> tuple[dict[str, dict[str, object]], Policy, int]:
    count = draw(st.integers(1, 8))
    records: dict[str, dict[str, object]] = {}
    mx = []
    for i in range(count):
        name = f"h{i}.example.net"
        mx.append((draw(st.sampled_from([0, 10, 20])), name))
        records[name] = {
            "A": draw(st.lists(st.sampled_from(V4), max_size=3, unique=True)),
            "AAAA": draw(st.lists(st.sampled_from(V6), max_size=3, unique=True)),
        }
    records["example.org"] = {"MX": mx}
    policy = Policy(
        families=draw(st.sampled_from(list(Families))),
        first_family_count=draw(st.integers(1, 3)),
        max_addresses=draw(st.sampled_from([None, 2, 3, 5])),
        keep_one_per_preference=draw(st.booleans()),
    )
    return records, policy, draw(st.integers(0, 2**32))


@settings(max_examples=300, deadline=None, database=None)
@given(case=policy_cases())
def test_policy_properties(case: tuple[dict[str, dict[str, object]], Policy, int]) -> None:
    """For any zone and policy: no reordering across preference levels; the limit holds
    (plus one per level with keep_one_per_preference); no unsafe address and no address that
    was not in an answer appears; the disabled family is never queried."""
    records, policy, seed = case
    fake = FakeResolver(records)  # type: ignore[arg-type]
    try:
        selection = mxselect.select_targets(
            "example.org", resolver=fake, rng=random.Random(seed), policy=policy
        )
    except mxselect.NoUsableTargetsError:
        selection = None
    queried = {q.rtype for q in fake.queries}
    if policy.families is Families.IPV4_ONLY:
        assert RRType.AAAA not in queried
    if policy.families is Families.IPV6_ONLY:
        assert RRType.A not in queried
    if selection is None:
        return
    preferences = [t.preference for t in selection]
    assert preferences == sorted(preferences)
    if policy.max_addresses is not None:
        extra = len(set(preferences)) if policy.keep_one_per_preference else 0
        assert len(selection) <= policy.max_addresses + extra
    for target in selection:
        assert not policy.is_unsafe(target.address)
        answered = records[target.host]
        assert str(target.address) in [*answered["A"], *answered["AAAA"]]  # type: ignore[misc]


@pytest.mark.parametrize(
    "allowed",
    [["127.0.0.0/8"], ["127.0.0.2/31"], ["127.0.0.2/32", "::1/128"], ["0.0.0.0/0"], ["10.0.0.0/8"]],
)
def test_without_unsafe_allows_exactly_the_networks_given(allowed: list[str]) -> None:
    """An address is unsafe after `without_unsafe` iff it was unsafe and is in no allowed net."""
    policy = Policy().with_unsafe("10.0.0.0/8")
    opened = policy.without_unsafe(*allowed)
    nets = [ipaddress.ip_network(a) for a in allowed]
    rng = random.Random(5)
    samples = [
        ipaddress.ip_address(a)
        for a in ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "::1", "10.1.2.3", "8.8.8.8")
    ]
    samples += [ipaddress.IPv4Address(rng.getrandbits(32)) for _ in range(2000)]
    samples += [ipaddress.IPv4Address(0x7F000000 | rng.getrandbits(24)) for _ in range(500)]
    for address in samples:
        inside = any(address.version == n.version and address in n for n in nets)
        assert opened.is_unsafe(address) == (policy.is_unsafe(address) and not inside), address
    assert policy.is_unsafe(ipaddress.ip_address("127.0.0.2"))


def test_without_unsafe_keeps_the_rest_of_a_split_network() -> None:
    opened = Policy().without_unsafe("127.0.0.2/31")
    assert not opened.is_unsafe(ipaddress.ip_address("127.0.0.3"))
    assert opened.is_unsafe(ipaddress.ip_address("127.0.0.1"))
    assert opened.is_unsafe(ipaddress.ip_address("127.255.0.1"))
    assert Policy().without_unsafe("0.0.0.0/0", "::/0").unsafe_networks == ()
