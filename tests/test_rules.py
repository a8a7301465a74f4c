"""The core's units (issue 15 §2): each rule of mxselect._rules as a pure function over literal
values, the lookup engine fed literal answers, and the plan driven by hand with literal
``Answer`` objects -- as dnspython's test_resolution.py drives ``_Resolution``."""

from __future__ import annotations

import ipaddress
import random

import pytest

from mxselect import (
    Answer,
    DNSTemporaryError,
    MXRecord,
    NoUsableTargetsError,
    Policy,
    Query,
    RRType,
    SelectionPlan,
    WarningCode,
)
from mxselect import _rules as rules
from mxselect._lookup import Chain, Lookups
from mxselect._rules import Candidate, Examined, LookupFailure, Outcome

ip = ipaddress.ip_address
POLICY = Policy()


def chain_with(name: str, rtype: RRType, *answers: Answer) -> Chain:
    chain = Chain(name, rtype, 10)
    for answer in answers:
        chain.absorb(answer)
    return chain


def kinds(notes: rules.Notes) -> list[object]:
    return [note[0] for note in notes]


# -- rule 1 ----------------------------------------------------------------------------------


def test_rule_1_literal_target_outcomes() -> None:
    assert rules.literal_target("[192.0.2.1]", ip("192.0.2.1"), POLICY)[0] is Outcome.CONTINUE
    outcome, reason, notes = rules.literal_target("[127.0.0.1]", ip("127.0.0.1"), POLICY)
    assert outcome is Outcome.NO_USABLE_TARGETS
    assert "127.0.0.0/8" in reason
    assert kinds(notes) == ["literal", WarningCode.UNSAFE_ADDRESS]
    own = Policy(local_addresses=["192.0.2.1"])
    assert rules.literal_target("[192.0.2.1]", ip("192.0.2.1"), own)[0] is Outcome.MAIL_LOOP


# -- rule 3 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (Answer.from_mx([(10, "mx.example.org.")]), Outcome.CONTINUE),
        (Answer.nodata(), Outcome.CONTINUE),
        (Answer.nxdomain(), Outcome.NO_SUCH_DOMAIN),
        (Answer.tempfail("SERVFAIL"), Outcome.TEMPORARY),
        (Answer.from_mx([]), Outcome.TEMPORARY),  # records claimed, none given: postal#2833
    ],
)
def test_rule_3_mx_outcome(answer: Answer, outcome: Outcome) -> None:
    chain = chain_with("example.org", RRType.MX, answer)
    assert rules.mx_outcome("example.org", chain, POLICY)[0] is outcome


def test_rule_3_nodata_without_the_implicit_mx() -> None:
    chain = chain_with("example.org", RRType.MX, Answer.nodata())
    outcome, reason, _ = rules.mx_outcome("example.org", chain, Policy(implicit_mx=False))
    assert outcome is Outcome.NO_USABLE_TARGETS
    assert "implicit MX is disabled" in reason


# -- rules 4-6b ------------------------------------------------------------------------------


def test_rule_4_null_mx() -> None:
    null = (MXRecord(0, "."),)
    mixed = (MXRecord(0, "."), MXRecord(10, "mx.example.org."))
    assert rules.null_mx("d", null, POLICY)[0] is True
    is_null, notes = rules.null_mx("d", mixed, POLICY)
    assert (is_null, kinds(notes)) == (False, [WarningCode.NULL_MX_MIXED])
    assert rules.null_mx("d", mixed, Policy(strict_null_mx=True))[0] is True


def test_rule_5_valid_exchanges_drop_bad_records_one_by_one() -> None:
    records = (
        MXRecord(20, "b.example.org."),
        MXRecord(10, "B.example.org."),  # the same host: its best preference
        MXRecord(5, "bad_name.example.org."),
        MXRecord(5, "192.0.2.9."),
    )
    best, literals, dropped, notes = rules.valid_exchanges("d", records, POLICY)
    assert best == {"b.example.org": 10}
    assert literals == {}
    assert len(dropped) == 2
    assert kinds(notes) == [
        WarningCode.DUPLICATE_HOST,
        WarningCode.INVALID_EXCHANGE,
        WarningCode.MX_IS_ADDRESS,
    ]
    allowed = rules.valid_exchanges("d", records, Policy(allow_mx_to_ip=True))
    assert allowed[1] == {"192.0.2.9": ip("192.0.2.9")}


def test_rule_6_order_is_by_preference_and_the_seed() -> None:
    best = {f"h{i}": 10 for i in range(6)} | {"z": 5}
    first, _ = rules.ordered_hosts(best, {}, random.Random(1))
    again, _ = rules.ordered_hosts(dict(reversed(best.items())), {}, random.Random(1))
    assert first == again  # the resolver's order does not matter, the seed does
    assert first[0] == Candidate("z", 5)
    assert {c.name for c in first[1:]} == {f"h{i}" for i in range(6)}


def test_rule_6b_cut_at_own_name() -> None:
    ordered = [Candidate("a", 10), Candidate("me", 20), Candidate("c", 20), Candidate("d", 30)]
    policy = Policy(local_names=["me"])
    kept, cut, loop, notes = rules.cut_at_own_name("d", ordered, policy)
    assert (kept, cut, loop) == ([Candidate("a", 10)], 20, "")
    assert kinds(notes) == [WarningCode.LOCAL_HOST]
    best = [Candidate("me", 10), Candidate("a", 10)]
    assert rules.cut_at_own_name("d", best, policy)[2].startswith("mail for d loops back")


# -- rule 7 ----------------------------------------------------------------------------------


def test_rule_7_next_batch_respects_the_size_and_the_budget() -> None:
    hosts = [Candidate(f"h{i}", i) for i in range(10)]
    policy = Policy(max_mx_hosts=4)
    assert [c.name for c in rules.next_batch(hosts, 0, 2, 100, policy)] == ["h0", "h1", "h2", "h3"]
    assert [c.name for c in rules.next_batch(hosts, 4, 2, 5, policy)] == ["h4", "h5"]
    assert [c.name for c in rules.next_batch(hosts, 4, 2, 1, policy)] == ["h4"]  # cut off inside
    assert rules.next_batch(hosts, 4, 2, 0, policy) == []
    literal = [Candidate("192.0.2.1", 1, ip("192.0.2.1")), *hosts]
    assert len(rules.next_batch(literal, 0, 2, 0, policy)) == 1  # an address costs nothing


# -- rule 8 ----------------------------------------------------------------------------------


def test_rule_8a_host_addresses_typed_failures() -> None:
    host = Candidate("mx.example.org", 10)
    six = chain_with("mx.example.org", RRType.AAAA, Answer.nxdomain())
    four = chain_with("mx.example.org", RRType.A, Answer.nxdomain())
    examined, ttls, notes, step = rules.host_addresses(host, six, four)
    assert (examined.found, examined.why, examined.temporary) == (
        [],
        "the host does not exist (NXDOMAIN)",
        False,
    )
    assert ttls == ()
    assert notes == []
    assert step is not None
    assert step[0] == "lookup"
    four = chain_with("mx.example.org", RRType.A, Answer.from_addresses(["192.0.2.1"], ttl=60))
    six = chain_with("mx.example.org", RRType.AAAA, Answer.tempfail("SERVFAIL"))
    examined, ttls, notes, step = rules.host_addresses(host, six, four)
    assert examined.found == [ip("192.0.2.1")]
    assert examined.temporary  # kept: if every address is unsafe, the failure is temporary
    assert ttls == (None, 60)
    assert kinds(notes) == [WarningCode.PARTIAL_ADDRESS_FAILURE]
    assert step is not None
    result, _ = rules.family_result(six, "mx.example.org")
    assert result.failure is LookupFailure.TEMPORARY


def test_rule_8b_judge() -> None:
    host = Candidate("mx", 10)
    unsafe = Examined(host, [ip("127.0.0.1"), ip("192.0.2.1")], "mx", "", False)
    notes: rules.Notes = []
    safe, why, temporary = rules.judge(unsafe, POLICY, False, notes=notes)
    assert (safe, why, temporary) == ([ip("192.0.2.1")], "", False)
    assert kinds(notes) == [WarningCode.UNSAFE_ADDRESS]
    alias = Examined(host, [ip("192.0.2.1")], "real", "", False)
    assert rules.judge(alias, Policy(strict_cname_exchange=True), False)[0] == []
    v4 = Examined(Candidate("192.0.2.5", 10, ip("192.0.2.5")), [ip("192.0.2.5")], "", "", False)
    assert rules.judge(v4, Policy(families="ipv6-only"), False)[0] == []  # type: ignore[arg-type]


def test_rule_9_classify_failure() -> None:
    assert rules.classify_failure("d", False, ["x: no"], False, False, 0, 100)[0] is (
        Outcome.NO_USABLE_TARGETS
    )
    assert rules.classify_failure("d", False, ["x: no"], True, False, 0, 100)[0] is (
        Outcome.TEMPORARY
    )
    outcome, reason = rules.classify_failure("d", False, ["x: no"], False, False, 3, 100)
    assert outcome is Outcome.TEMPORARY
    assert "3 more exchange(s) not examined" in reason
    assert rules.classify_failure("d", False, [], False, True, 0, 100)[0] is (
        Outcome.NO_PRIMARY_RELAY
    )


# -- the lookup engine -------------------------------------------------------------------------


def test_lookups_follow_aliases_memoise_and_keep_the_budget() -> None:
    lookups = Lookups(10, "budget used up")
    keys = [("a.example", RRType.A), ("b.example", RRType.A)]
    run = lookups.resolve(keys, budget=3)
    batch = next(run)
    assert batch == (Query("a.example.", RRType.A), Query("b.example.", RRType.A))
    batch = run.send([Answer.alias("c.example."), Answer.alias("d.example.")])
    assert batch == (Query("c.example.", RRType.A),)  # the budget allows one more query
    with pytest.raises(StopIteration) as stop:
        run.send([Answer.from_addresses(["192.0.2.3"])])
    chains, sent = stop.value.value
    assert sent == 3
    assert chains[("a.example", RRType.A)].canonical == "c.example"
    assert chains[("b.example", RRType.A)].error == "budget used up"
    # The memo: asked again, nothing is sent.
    again = lookups.resolve([("a.example", RRType.A)])
    with pytest.raises(StopIteration) as stop:
        next(again)
    assert stop.value.value[1] == 0


# -- the plan fed literal answers ------------------------------------------------------------


def drive(plan: SelectionPlan, answers: dict[Query, Answer]) -> list[tuple[Query, ...]]:
    batches = []
    while not plan.done:
        batch = plan.pending
        batches.append(batch)
        for query in batch:
            plan.feed(query, answers[query])
    return batches


def q(name: str, rtype: RRType) -> Query:
    return Query(name, rtype)


def test_plan_with_literal_answers_two_batches() -> None:
    answers = {
        q("example.org.", RRType.MX): Answer.from_mx(
            [(10, "mx1.example.org."), (20, "mx2.example.org.")], ttl=300
        ),
        q("mx1.example.org.", RRType.AAAA): Answer.nodata(ttl=60),
        q("mx1.example.org.", RRType.A): Answer.from_addresses(["192.0.2.1"], ttl=120),
        q("mx2.example.org.", RRType.AAAA): Answer.from_addresses(["2001:db8::2"], ttl=30),
        q("mx2.example.org.", RRType.A): Answer.nxdomain(),
    }
    plan = SelectionPlan("example.org", rng=random.Random(1))
    batches = drive(plan, answers)
    assert [len(b) for b in batches] == [1, 4]
    selection = plan.result()
    assert [str(a) for a in selection.addresses] == ["192.0.2.1", "2001:db8::2"]
    assert selection.ttl == 30
    assert plan.queries_sent == 5


def test_plan_with_literal_answers_further_batch_then_temporary() -> None:
    """max_mx_hosts=1: the dead best host, then the next in a further batch, which fails
    temporarily: DNSTemporaryError, with the "more" step in the trace."""
    answers = {
        q("example.org.", RRType.MX): Answer.from_mx(
            [(10, "a.example.org."), (20, "b.example.org.")]
        ),
        q("a.example.org.", RRType.AAAA): Answer.nxdomain(),
        q("a.example.org.", RRType.A): Answer.nxdomain(),
        q("b.example.org.", RRType.AAAA): Answer.tempfail("SERVFAIL"),
        q("b.example.org.", RRType.A): Answer.tempfail("SERVFAIL"),
    }
    plan = SelectionPlan("example.org", policy=Policy(max_mx_hosts=1))
    assert [len(b) for b in drive(plan, answers)] == [1, 2, 2]
    with pytest.raises(DNSTemporaryError) as caught:
        plan.result()
    assert "more" in [step.kind for step in caught.value.trace]
    answers[q("b.example.org.", RRType.AAAA)] = Answer.nodata()
    answers[q("b.example.org.", RRType.A)] = Answer.nodata()
    plan = SelectionPlan("example.org", policy=Policy(max_mx_hosts=1))
    drive(plan, answers)
    with pytest.raises(NoUsableTargetsError):
        plan.result()
