"""Defects found by routing the same domains through Exim 4.96 and by acceptance tests
(issue 13): unsafe address literals, dead exchanges beyond ``max_mx_hosts``, loop prevention
over the whole MX list, the family policy for MX records naming addresses, escaped names in
warnings. Each test failed before its fix."""

from __future__ import annotations

import asyncio
import random

import pytest

import mxselect
from mxselect import (
    DNSTemporaryError,
    Families,
    MailLoopError,
    NoPrimaryRelayError,
    NoUsableTargetsError,
    Policy,
    RRType,
    Selection,
    WarningCode,
)
from mxselect.testing import FakeResolver

EMPTY = "$ORIGIN test.\n@ SOA ns hm 1 2 3 4 5\n"


def fake_zone(origin: str, body: str) -> FakeResolver:
    return FakeResolver.from_zone(f"$ORIGIN {origin}.\n@ SOA ns hm 1 2 3 4 5\n" + body)


# -- 1. address literals and the unsafe networks (RFC 5321 §4.1.3; Exim ignore_target_hosts) --


@pytest.mark.parametrize(
    ("literal", "network"),
    [
        ("[169.254.169.254]", "169.254.0.0/16"),
        ("[127.0.0.1]", "127.0.0.0/8"),
        ("[0.0.0.0]", "0.0.0.0/8"),
        ("[224.0.0.1]", "224.0.0.0/4"),
        ("[255.255.255.255]", "240.0.0.0/4"),
        ("[IPv6:::1]", "::1/128"),
        ("[IPv6:fe80::1]", "fe80::/10"),
        ("[IPv6:::ffff:127.0.0.1]", "127.0.0.0/8"),  # IPv4-mapped: checked as IPv4
    ],
)
def test_R5321_4_1_3_a_unsafe_address_literal_is_refused(literal: str, network: str) -> None:
    """An address literal in a default unsafe network: a permanent NoUsableTargetsError
    (550 5.4.4, like an MX whose addresses are all unsafe) naming the network, no query,
    explained in the trace."""
    fake = FakeResolver.from_zone(EMPTY)
    with pytest.raises(NoUsableTargetsError) as caught:
        mxselect.select_targets(literal, resolver=fake)
    error = caught.value
    assert (error.reply_code, error.status, error.permanent) == (550, "5.4.4", True)
    assert network in str(error)
    assert [w.code for w in error.warnings] == [WarningCode.UNSAFE_ADDRESS]
    assert [step.kind for step in error.trace] == ["literal", "unsafe-address", "outcome"]
    assert network in error.explain()
    assert fake.queries == []


def test_configured_unsafe_network_refuses_the_literal_and_allowing_it_restores_it() -> None:
    """``with_unsafe("10.0.0.0/8")`` refuses ``[10.0.0.5]`` (an internal host) in both APIs;
    the default policy and ``without_unsafe`` let it through."""
    fake = FakeResolver.from_zone(EMPTY)
    strict = Policy().with_unsafe("10.0.0.0/8")
    with pytest.raises(NoUsableTargetsError, match=r"unsafe network 10\.0\.0\.0/8"):
        mxselect.select_targets("[10.0.0.5]", resolver=fake, policy=strict)
    with pytest.raises(NoUsableTargetsError, match=r"unsafe network 10\.0\.0\.0/8"):
        asyncio.run(mxselect.aselect_targets("[10.0.0.5]", resolver=fake, policy=strict))
    assert [str(a) for a in mxselect.select_targets("[10.0.0.5]", resolver=fake).addresses] == [
        "10.0.0.5"
    ]
    bench = Policy().without_unsafe("127.0.0.0/8")
    selection = mxselect.select_targets("[127.0.0.1]", resolver=fake, policy=bench)
    assert selection.address_literal
    assert [str(a) for a in selection.addresses] == ["127.0.0.1"]
    assert [step.kind for step in selection.trace] == ["literal", "outcome"]
    assert fake.queries == []


def test_R5321_5_2_b_address_literal_of_a_disabled_family_is_unusable() -> None:
    """The family policy applies to a literal too (RFC 5321 §5.2): ``[192.0.2.1]`` under
    IPv6 only and ``[IPv6:2001:db8::1]`` under IPv4 only are unusable, permanently."""
    fake = FakeResolver.from_zone(EMPTY)
    with pytest.raises(NoUsableTargetsError, match="IPv4 address and the policy uses IPv6 only"):
        mxselect.select_targets(
            "[192.0.2.1]", resolver=fake, policy=Policy(families=Families.IPV6_ONLY)
        )
    with pytest.raises(NoUsableTargetsError, match="IPv6 address and the policy uses IPv4 only"):
        mxselect.select_targets(
            "[IPv6:2001:db8::1]", resolver=fake, policy=Policy(families=Families.IPV4_ONLY)
        )
    assert fake.queries == []


# -- 2. max_mx_hosts: further batches, never a bounce while exchanges are unexamined ---------


def dead_then_good(dead: int, *, good: bool = True) -> str:
    body = "".join(f"@ MX {i} gone{i}\n" for i in range(1, dead + 1))
    if good:
        body += "@ MX 3000 good\ngood A 192.0.2.1\n"
    return body


def test_R5321_5_1_g_dead_exchanges_beyond_the_first_batch_do_not_bounce() -> None:
    """The issue's zone: 20 exchanges that do not exist, then a good one. The first batch
    (max_mx_hosts = 20) gives nothing usable, so the next batch is resolved: delivered to
    ``good`` (as Exim does), 1 + 2 x 20 + 2 queries."""
    fake = fake_zone("cap.test", dead_then_good(20))
    selection = mxselect.select_targets("cap.test", resolver=fake, rng=random.Random(1))
    assert [(t.host, str(t.address)) for t in selection] == [("good.cap.test", "192.0.2.1")]
    assert len(fake.queries) == 1 + 2 * 20 + 2
    assert "more" in [step.kind for step in selection.trace]
    unusable = [w for w in selection.warnings if w.code is WarningCode.HOST_UNUSABLE]
    assert len(unusable) == 20
    assert WarningCode.MX_HOSTS_CAPPED in {w.code for w in selection.warnings}


def test_batches_stop_at_the_first_batch_with_a_usable_host() -> None:
    """A usable host in the first batch: no further batch, whatever follows."""
    body = "@ MX 1 first\nfirst A 192.0.2.7\n" + dead_then_good(40)
    fake = fake_zone("cap.test", body)
    selection = mxselect.select_targets(
        "cap.test", resolver=fake, policy=Policy(max_mx_hosts=5, max_addresses=None)
    )
    assert [t.host for t in selection] == ["first.cap.test"]
    assert len(fake.queries) == 1 + 2 * 5


def test_budget_used_up_with_exchanges_unexamined_is_temporary() -> None:
    """1,000 MX records that all point nowhere: bounded work (1 + max_address_queries
    queries, measured here), and a temporary error that says exchanges were not examined --
    never a bounce, since one of them might be usable."""
    fake = fake_zone("huge.test", dead_then_good(1000, good=False))
    with pytest.raises(DNSTemporaryError, match=r"950 more exchange\(s\) not examined") as caught:
        mxselect.select_targets("huge.test", resolver=fake, rng=random.Random(2))
    assert len(fake.queries) == 1 + 100
    assert "max_address_queries" in str(caught.value)
    # The same budget with IPv4 only examines twice as many hosts (one query each).
    v4 = fake_zone("huge.test", dead_then_good(1000, good=False))
    with pytest.raises(DNSTemporaryError, match=r"900 more exchange\(s\) not examined"):
        mxselect.select_targets("huge.test", resolver=v4, policy=Policy(families="ipv4-only"))  # type: ignore[arg-type]
    assert len(v4.queries) == 1 + 100


def test_every_exchange_examined_and_dead_is_permanent() -> None:
    """60 dead exchanges, a budget that covers them all: three batches, then the permanent
    NoUsableTargetsError (every exchange answered NXDOMAIN)."""
    fake = fake_zone("cap.test", dead_then_good(60, good=False))
    with pytest.raises(NoUsableTargetsError):
        mxselect.select_targets("cap.test", resolver=fake, policy=Policy(max_address_queries=120))
    assert len(fake.queries) == 1 + 120


def test_a_temporary_failure_in_the_first_batch_still_reaches_the_next() -> None:
    """The first batch failed temporarily (SERVFAIL): the next batch is resolved and its
    usable host is used (RFC 7672 §2.1.2: proceed via the remaining MX hosts)."""
    fake = fake_zone("cap.test", "@ MX 10 a\n@ MX 20 b\na A 192.0.2.1\nb A 192.0.2.2\n")
    fake.fail("a.cap.test", RRType.A)
    fake.fail("a.cap.test", RRType.AAAA)
    selection = mxselect.select_targets("cap.test", resolver=fake, policy=Policy(max_mx_hosts=1))
    assert [t.host for t in selection] == ["b.cap.test"]
    # With b failing too, temporary: nothing left unexamined, but a failure was temporary.
    fake.fail("b.cap.test", RRType.A)
    with pytest.raises(DNSTemporaryError):
        mxselect.select_targets("cap.test", resolver=fake, policy=Policy(max_mx_hosts=1))


def _outcome(result: Selection | mxselect.MXSelectError) -> tuple[str, str | None]:
    if isinstance(result, Selection):
        return "selection", result.targets[0].host
    return type(result).__name__, None


def test_batches_agree_with_resolving_every_host_at_once() -> None:
    """Seeded random zones (up to 30 exchanges, each usable, dead, empty or failing):
    resolving in batches of 1-7 gives the same outcome class and the same first target as
    resolving every exchange at once, whenever the budget covers every exchange."""
    gen = random.Random(13)
    for case in range(150):
        count = gen.randint(1, 30)
        body = ""
        failing: list[str] = []
        for i in range(count):
            body += f"@ MX {gen.choice([0, 5, 10, 20])} h{i}\n"
            kind = gen.choice(["usable", "dead", "empty", "fail", "unsafe"])
            if kind == "usable" and gen.random() < 0.6:
                kind = "dead"  # keep usable hosts rare, so several batches are needed
            if kind == "usable":
                body += f"h{i} A 192.0.2.{i + 1}\n"
            elif kind == "empty":
                body += f"h{i} TXT x\n"
            elif kind == "unsafe":
                body += f"h{i} A 127.0.0.{i + 1}\n"
            elif kind == "fail":
                body += f"h{i} A 192.0.2.{i + 1}\n"
                failing.append(f"h{i}.rand.test")
        results = []
        for hosts in (gen.randint(1, 7), 1000):
            fake = fake_zone("rand.test", body)
            for name in failing:
                fake.fail(name, RRType.A)
                fake.fail(name, RRType.AAAA)
            policy = Policy(max_mx_hosts=hosts, max_address_queries=2 * count)
            try:
                result: Selection | mxselect.MXSelectError = mxselect.select_targets(
                    "rand.test", resolver=fake, policy=policy, rng=random.Random(case)
                )
            except mxselect.MXSelectError as exc:
                result = exc
            results.append(_outcome(result))
        assert results[0] == results[1], (case, body, failing)


# -- 3. loop prevention over the whole MX list (RFC 5321 §5.1) -------------------------------


def test_R5321_5_1_q_own_name_beyond_the_cap_still_discards_its_level() -> None:
    """``MX 10 a, 20 b, 30 c, 30 me`` with ``max_mx_hosts=3``: ``c`` shares this host's
    preference and must never be returned, whatever the shuffle (was: 5 of 12 seeds)."""
    body = "@ MX 10 a\n@ MX 20 b\n@ MX 30 c\n@ MX 30 me\n"
    body += "a A 192.0.2.1\nb A 192.0.2.2\nc A 192.0.2.3\nme A 192.0.2.4\n"
    policy = Policy(max_mx_hosts=3, max_addresses=None, local_names=["me.loop.test"])
    for seed in range(12):
        fake = fake_zone("loop.test", body)
        selection = mxselect.select_targets(
            "loop.test", resolver=fake, policy=policy, rng=random.Random(seed)
        )
        assert [t.host for t in selection] == ["a.loop.test", "b.loop.test"], seed
        assert WarningCode.LOCAL_HOST in {w.code for w in selection.warnings}
        # c and me are never resolved: the cut is known from the MX answer.
        asked = {str(q.name) for q in fake.queries}
        assert "c.loop.test." not in asked
        assert "me.loop.test." not in asked


def test_R5321_5_1_r_own_name_among_25_best_is_a_loop_for_every_seed() -> None:
    """25 MX at preference 10 with this host among them: MailLoopError for every seed (was: a
    selection of its peers for 2 of 12 seeds), and no address query at all."""
    body = "".join(f"@ MX 10 h{i}\nh{i} A 192.0.2.{i + 1}\n" for i in range(24))
    body += "@ MX 10 me\nme A 192.0.2.200\n"
    policy = Policy(local_names=["me.loop.test"])
    for seed in range(12):
        fake = fake_zone("loop.test", body)
        with pytest.raises(MailLoopError, match=r"its name me\.loop\.test"):
            mxselect.select_targets(
                "loop.test", resolver=fake, policy=policy, rng=random.Random(seed)
            )
        assert [q.rtype for q in fake.queries] == [RRType.MX]


def test_own_address_found_in_a_later_batch_cuts_there() -> None:
    """This host found by address only in the second batch: its level and worse are dropped,
    and with nothing better usable the result is NoPrimaryRelayError (451 4.4.4)."""
    body = "@ MX 10 dead1\n@ MX 10 dead2\n@ MX 20 me\n@ MX 30 after\n"
    body += "me A 192.0.2.50\nafter A 192.0.2.51\n"
    fake = fake_zone("loop.test", body)
    policy = Policy(max_mx_hosts=1, max_address_queries=20, local_addresses=["192.0.2.50"])
    with pytest.raises(NoPrimaryRelayError):
        mxselect.select_targets("loop.test", resolver=fake, policy=policy)
    assert "after.loop.test." not in {str(q.name) for q in fake.queries}


# -- 4. allow_mx_to_ip and the family policy (RFC 5321 §5.2) ---------------------------------


def test_R5321_5_2_b_mx_naming_an_ipv4_address_is_not_used_ipv6_only() -> None:
    """``MX 10 192.0.2.5.`` with allow_mx_to_ip and IPv6 only: no IPv4 target (was one);
    alone it is unusable, beside a host with AAAA records that host's address is used."""
    policy = Policy(allow_mx_to_ip=True, families=Families.IPV6_ONLY)
    fake = fake_zone("ip.test", "@ MX 10 192.0.2.5.\n")
    with pytest.raises(NoUsableTargetsError, match="IPv4 address and the policy uses IPv6 only"):
        mxselect.select_targets("ip.test", resolver=fake, policy=policy)
    mixed = fake_zone("ip.test", "@ MX 10 192.0.2.5.\n@ MX 20 h\nh AAAA 2001:db8::7\n")
    selection = mxselect.select_targets("ip.test", resolver=mixed, policy=policy)
    assert [str(a) for a in selection.addresses] == ["2001:db8::7"]


def test_R5321_5_2_b_mx_naming_an_ipv6_address_is_not_used_ipv4_only() -> None:
    """The reverse: ``MX 10 2001:db8::5.`` under IPv4 only is unusable."""
    policy = Policy(allow_mx_to_ip=True, families=Families.IPV4_ONLY)
    fake = fake_zone("ip.test", "@ MX 10 2001:db8::5.\n")
    with pytest.raises(NoUsableTargetsError, match="IPv6 address and the policy uses IPv4 only"):
        mxselect.select_targets("ip.test", resolver=fake, policy=policy)
    both = Policy(allow_mx_to_ip=True)
    selection = mxselect.select_targets("ip.test", resolver=fake, policy=both)
    assert [str(a) for a in selection.addresses] == ["2001:db8::5"]


# -- 6. escaped names in the invalid-exchange warning (RFC 1035 §5.1) -------------------------


def test_invalid_exchange_warning_reports_escaped_labels_as_they_are() -> None:
    r"""``MX 10 mx\.x`` is one label with a dot in it: the warning names ``mx\.x`` (was the
    wrongly split ``'mx\\'``) and the name in presentation format."""
    fake = fake_zone("t.test", "@ MX 10 mx\\.x\n@ MX 20 good\ngood A 192.0.2.1\n")
    selection = mxselect.select_targets("t.test", resolver=fake)
    (warning,) = [w for w in selection.warnings if w.code is WarningCode.INVALID_EXCHANGE]
    assert "label 'mx\\.x' is not letters" in warning.message
    assert "'10 mx\\.x.t.test.'" in warning.message
    assert "\\\\" not in warning.message
    only = fake_zone("t.test", "@ MX 10 a\\046b\n")
    with pytest.raises(NoUsableTargetsError) as caught:
        mxselect.select_targets("t.test", resolver=only)
    # dnspython writes the octet 046 as an escaped dot; the error shows the name as it is.
    assert "'a\\.b.t.test.' is not a valid host name" in str(caught.value)
