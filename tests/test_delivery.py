"""DeliveryPlan and HostStatus: every report kind, the limits, host-status ordering
(RFC 5321 §4.5.4.1), and the property that preference levels are never reordered."""

from __future__ import annotations

import ipaddress
import random
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxselect import Selection, Target
from mxselect.delivery import Attempt, DeliveryPlan, DeliveryStatus, HandshakeStage, HostStatus


def target(n: int, preference: int = 10, host: str | None = None) -> Target:
    return Target(host or f"mx{n}.example.org", preference, ipaddress.ip_address(f"192.0.2.{n}"))


def selection(*targets: Target) -> Selection:
    return Selection(
        domain="example.org", canonical_domain="example.org", targets=targets, hosts=()
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


T1, T2, T3, T4, T5, T6 = (target(i, 10 if i <= 2 else 20 if i <= 4 else 30) for i in range(1, 7))
SIX = selection(T1, T2, T3, T4, T5, T6)


def test_delivered_by_the_first_target() -> None:
    plan = DeliveryPlan(SIX)
    first = plan.next_target()
    assert first == T1
    plan.connected(first)
    plan.delivered(first, 250, "2.0.0 Ok: queued")
    assert plan.done
    assert plan.next_target() is None
    out = plan.outcome
    assert (out.status, out.reply_code, out.enhanced_status, out.target) == (
        DeliveryStatus.DELIVERED,
        250,
        "2.0.0",
        T1,
    )
    assert plan.sessions == 1
    assert str(out) == "delivered: 250 2.0.0 Ok: queued"


def test_refused_and_timed_out_move_on_and_are_not_sessions() -> None:
    plan = DeliveryPlan(SIX)
    tried = []
    for t in plan:
        tried.append(t)
        if t == T1:
            plan.refused(t)
        elif t == T2:
            plan.timed_out(t)
        else:
            plan.delivered(t)
    assert tried == [T1, T2, T3]
    assert plan.sessions == 1
    assert [a[1] for a in plan.attempts] == [Attempt.REFUSED, Attempt.TIMED_OUT, Attempt.DELIVERED]
    assert plan.outcome.status is DeliveryStatus.DELIVERED


def test_4xx_moves_on_to_the_next_target() -> None:
    plan = DeliveryPlan(SIX)
    t = plan.next_target()
    plan.connected(t)
    plan.temporary(t, 451, "4.3.0 try later")
    nxt = plan.next_target()
    assert nxt == T2
    plan.delivered(nxt)
    assert plan.outcome.status is DeliveryStatus.DELIVERED


def test_5xx_bounces_with_the_reply() -> None:
    plan = DeliveryPlan(SIX)
    t = plan.next_target()
    plan.connected(t)
    plan.permanent(t, 550, "5.1.1 no such user")
    assert plan.done
    out = plan.outcome
    assert (out.status, out.reply_code, out.enhanced_status) == (
        DeliveryStatus.BOUNCED,
        550,
        "5.1.1",
    )
    assert "mx1.example.org" in out.message


def test_5xx_greeting_tries_the_next_mx() -> None:
    plan = DeliveryPlan(SIX)
    t = plan.next_target()
    plan.permanent(t, 554, "5.3.2 not accepting", at_greeting=True)
    assert not plan.done
    assert plan.next_target() == T2


def test_session_limit_two_by_default_then_deferred_with_the_last_4xx() -> None:
    plan = DeliveryPlan(SIX)
    for t in plan:
        plan.connected(t)
        plan.temporary(t, 452 if t == T2 else 451, f"4.{t.address.packed[3]}.0 busy")
    assert [a[0] for a in plan.attempts[::2]] == [T1, T2]
    out = plan.outcome
    assert (out.status, out.reply_code, out.enhanced_status, out.target) == (
        DeliveryStatus.DEFERRED,
        452,
        "4.2.0",
        T2,
    )
    assert "session limit (2)" in out.message


def test_session_limit_configurable() -> None:
    plan = DeliveryPlan(SIX, session_limit=3)
    count = 0
    for t in plan:
        count += 1
        plan.temporary(t, 421, "")
    assert count == 3


def test_address_limit_counts_failed_connections() -> None:
    plan = DeliveryPlan(SIX, address_limit=3)
    tried = [t for t in plan if plan.refused(t) is None]
    assert tried == [T1, T2, T3]
    out = plan.outcome
    assert (out.status, out.reply_code, out.enhanced_status) == (
        DeliveryStatus.DEFERRED,
        451,
        "4.4.1",
    )
    assert out.message.startswith("address limit (3) reached: ")
    assert str(out).startswith("deferred: 451 4.4.1 address limit (3) reached: ")
    assert "mx3.example.org [192.0.2.3]" in out.message


def test_default_address_limit_is_five() -> None:
    plan = DeliveryPlan(SIX)
    assert len([t for t in plan if plan.timed_out(t) is None]) == 5


def test_all_targets_unreachable_is_deferred_never_bounced() -> None:
    plan = DeliveryPlan(selection(T1, T2))
    for t in plan:
        plan.refused(t)
    assert plan.outcome.status is DeliveryStatus.DEFERRED
    assert plan.outcome.message.startswith("all 2 targets tried")


def test_empty_selection_is_deferred() -> None:
    plan = DeliveryPlan(selection())
    assert plan.next_target() is None
    assert plan.outcome.status is DeliveryStatus.DEFERRED


def test_lost_session_moves_on_and_counts_as_a_session() -> None:
    plan = DeliveryPlan(SIX)
    t = plan.next_target()
    plan.connected(t)
    plan.lost(t, "connection reset")
    t2 = plan.next_target()
    plan.connected(t2)
    plan.lost(t2)
    assert plan.next_target() is None
    assert plan.outcome.status is DeliveryStatus.DEFERRED
    assert "connection reset" in plan.outcome.message


# -- failed handshakes (issue 13 item 5; Postfix smtp_mx_session_limit) -------------------------

#: (stage, code, text) of every kind of failed handshake that moves on to the next target.
HANDSHAKE_FAILURES = [
    (HandshakeStage.GREETING, 421, "4.3.2 busy"),
    (HandshakeStage.GREETING, 554, "5.7.1 go away"),
    (HandshakeStage.GREETING, 0, "connection closed before the greeting"),
    (HandshakeStage.EHLO, 421, "4.7.0 closing"),
    (HandshakeStage.EHLO, 0, "connection lost"),
    (HandshakeStage.STARTTLS, 454, "4.7.0 TLS not available"),
    (HandshakeStage.STARTTLS, 554, "5.7.3 no TLS for you"),
    (HandshakeStage.STARTTLS, 0, "STARTTLS not offered"),
    (HandshakeStage.TLS, 0, "certificate verify failed"),
]


@pytest.mark.parametrize(("stage", "code", "text"), HANDSHAKE_FAILURES)
@pytest.mark.parametrize("connected_first", [False, True])
def test_a_failed_handshake_is_not_a_session(
    stage: HandshakeStage, code: int, text: str, connected_first: bool
) -> None:
    """The issue's scenario, one failed handshake of each kind: MX 10 fails its handshake, MX 20
    answers 451 (session 1), MX 30 accepts (session 2) -- with or without ``connected()``
    before the failure (an MTA may report it on TCP connect)."""
    a, b, c = target(1, 10), target(2, 20), target(3, 30)
    plan = DeliveryPlan(selection(a, b, c))
    assert plan.next_target() == a
    if connected_first:
        plan.connected(a)
    plan.handshake_failed(a, code, text, stage=stage)
    assert plan.sessions == 0
    assert plan.next_target() == b
    plan.connected(b)
    plan.temporary(b, 451, "4.3.0 try later")
    assert plan.sessions == 1
    assert plan.next_target() == c
    plan.connected(c)
    plan.delivered(c)
    assert (plan.outcome.status, plan.outcome.target, plan.sessions) == (
        DeliveryStatus.DELIVERED,
        c,
        2,
    )
    kinds = [kind for _, kind, _, _ in plan.attempts]
    assert kinds[: 2 if connected_first else 1][-1] is Attempt.HANDSHAKE_FAILED


def test_failed_handshakes_never_use_up_the_session_limit() -> None:
    """Random runs (seeded): a target whose handshake fails never counts; the plan stops at
    the second session, and only there (addresses unlimited)."""
    rng = random.Random(13)
    for _ in range(200):
        n = rng.randint(1, 12)
        targets = tuple(target(i + 1, 10 * (i + 1)) for i in range(n))
        fails = [rng.random() < 0.6 for _ in targets]
        plan = DeliveryPlan(selection(*targets), address_limit=None)
        tried = []
        for t in plan:
            tried.append(t)
            if fails[len(tried) - 1]:
                stage, code, text = rng.choice(HANDSHAKE_FAILURES)
                if rng.random() < 0.5:
                    plan.connected(t)
                plan.handshake_failed(t, code, text, stage=stage)
            else:
                plan.temporary(t, 451, "4.3.0 busy")
        sessions = [i for i, failed in enumerate(fails) if not failed]
        expected = sessions[1] + 1 if len(sessions) >= 2 else n
        assert len(tried) == expected
        assert plan.sessions == min(len(sessions), 2)
        assert plan.outcome.status is DeliveryStatus.DEFERRED


def test_temporary_still_counts_a_4xx_greeting_as_a_session() -> None:
    """``temporary()`` cannot tell a greeting from a later reply: it counts (report a 421
    greeting with ``handshake_failed``)."""
    plan = DeliveryPlan(SIX)
    for t in plan:
        plan.temporary(t, 421, "4.3.2 busy")
    assert plan.sessions == 2
    assert len(plan.attempts) == 2


def test_permanent_at_greeting_is_a_failed_handshake() -> None:
    """``permanent(at_greeting=True)``: the next MX, and not a session."""
    plan = DeliveryPlan(SIX)
    tried = []
    for t in plan:
        tried.append(t)
        if t == T1:
            plan.permanent(t, 554, "5.3.2 not accepting", at_greeting=True)
        else:
            plan.temporary(t, 451, "4.3.0 busy")
    assert tried == [T1, T2, T3]
    assert plan.attempts[0][1:] == (Attempt.HANDSHAKE_FAILED, 554, "5.3.2 not accepting")
    assert plan.outcome.status is DeliveryStatus.DEFERRED


def test_5xx_greeting_and_starttls_never_bounce_5xx_ehlo_does() -> None:
    """A 5xx greeting (Postfix smtp_skip_5xx_greeting) or STARTTLS reply (RFC 7672 §2.2) moves
    on; a 5xx to EHLO and HELO bounces (Postfix smtp_site_fail, Exim)."""
    plan = DeliveryPlan(SIX)
    t = plan.next_target()
    plan.handshake_failed(t, 554, "5.7.1 no", stage=HandshakeStage.GREETING)
    t = plan.next_target()
    plan.handshake_failed(t, 554, "5.7.3 no TLS", stage=HandshakeStage.STARTTLS)
    assert not plan.done
    t = plan.next_target()
    assert t == T3
    plan.handshake_failed(t, 550, "5.7.1 bad HELO name", stage=HandshakeStage.EHLO)
    out = plan.outcome
    assert (out.status, out.reply_code, out.enhanced_status, out.target) == (
        DeliveryStatus.BOUNCED,
        550,
        "5.7.1",
        T3,
    )
    assert out.message == "mx3.example.org: 5.7.1 bad HELO name"
    assert plan.next_target() is None


def test_deferral_lists_failed_handshakes_with_the_last_4xx_reply() -> None:
    """Out of targets: deferred with the last 4xx reply -- a 421 greeting counts -- and every
    failure, handshakes included, in the message."""
    plan = DeliveryPlan(selection(T1, T2, T3))
    t = plan.next_target()
    plan.connected(t)
    plan.temporary(t, 451, "4.3.0 busy")
    t = plan.next_target()
    plan.handshake_failed(t, 0, "certificate verify failed", stage=HandshakeStage.TLS)
    t = plan.next_target()
    plan.handshake_failed(t, 421, "4.3.2 too many connections")
    assert plan.next_target() is None
    out = plan.outcome
    assert (out.status, out.reply_code, out.enhanced_status, out.target) == (
        DeliveryStatus.DEFERRED,
        421,
        "4.3.2",
        T3,
    )
    assert out.message == (
        "all 3 targets tried; last reply from mx3.example.org: 4.3.2 too many connections ("
        "mx1.example.org [192.0.2.1] (preference 10): 451 4.3.0 busy; "
        "mx2.example.org [192.0.2.2] (preference 10): TLS handshake: certificate verify failed; "
        "mx3.example.org [192.0.2.3] (preference 20): greeting 421 4.3.2 too many connections)"
    )


def test_deferral_without_a_4xx_reply_is_451_4_4_1_naming_the_handshakes() -> None:
    plan = DeliveryPlan(selection(T1, T2))
    t = plan.next_target()
    plan.handshake_failed(t, 0, "STARTTLS not offered", stage=HandshakeStage.STARTTLS)
    t = plan.next_target()
    plan.handshake_failed(t, 554, "5.7.1 go away")
    assert plan.next_target() is None
    out = plan.outcome
    assert (out.status, out.reply_code, out.enhanced_status) == (
        DeliveryStatus.DEFERRED,
        451,
        "4.4.1",
    )
    assert out.message == (
        "all 2 targets tried: mx1.example.org [192.0.2.1] (preference 10): STARTTLS: "
        "STARTTLS not offered; mx2.example.org [192.0.2.2] (preference 10): greeting 554 "
        "5.7.1 go away"
    )


def test_a_failed_handshake_is_not_unreachable() -> None:
    """The host answered: it is not remembered as down, and a remembered failure is
    forgotten (RFC 5321 §4.5.4.1 keeps the hosts it cannot reach)."""
    status = HostStatus(clock=Clock())
    status.mark_down(T2.address, "timeout")
    plan = DeliveryPlan(SIX, status)
    assert plan.targets[:2] == (T1, T2)  # T2 down: after T1 (it already was)
    for stage, code, text in HANDSHAKE_FAILURES[:2]:
        t = plan.next_target()
        plan.handshake_failed(t, code, text, stage=stage)
    assert len(status) == 0
    assert DeliveryPlan(SIX, status).targets == SIX.targets


def test_failed_handshake_misuse_is_an_error() -> None:
    plan = DeliveryPlan(SIX)
    t = plan.next_target()
    for code in (250, 354, 399, 600, -1):
        with pytest.raises(ValueError, match="4xx/5xx reply or none"):
            plan.handshake_failed(t, code)
    plan.handshake_failed(t, 421)
    with pytest.raises(RuntimeError, match="already reported"):
        plan.handshake_failed(t, 421)
    with pytest.raises(RuntimeError, match="already reported"):
        plan.temporary(t, 451)
    t = plan.next_target()
    with pytest.raises(ValueError, match="not the current target"):
        plan.handshake_failed(T1)
    plan.delivered(t)
    with pytest.raises(RuntimeError, match="done"):
        plan.handshake_failed(t)


def test_report_dispatches_every_kind() -> None:
    plan = DeliveryPlan(SIX, session_limit=5, address_limit=None)
    kinds = [Attempt.REFUSED, Attempt.TIMED_OUT, Attempt.LOST, Attempt.TEMPORARY]
    for kind, t in zip(kinds, plan, strict=False):
        plan.report(t, kind)
    t = plan.next_target()
    plan.report(t, Attempt.CONNECTED)
    plan.report(t, Attempt.PERMANENT, 550, "5.7.1 no")
    assert [a[1] for a in plan.attempts] == [*kinds, Attempt.CONNECTED, Attempt.PERMANENT]
    assert plan.outcome.status is DeliveryStatus.BOUNCED
    plan2 = DeliveryPlan(SIX)
    t = plan2.next_target()
    plan2.report(t, Attempt.DELIVERED)
    assert plan2.outcome.reply_code == 250
    plan3 = DeliveryPlan(SIX)
    t = plan3.next_target()
    plan3.report(t, Attempt.HANDSHAKE_FAILED, 421, "4.7.0 closing", stage=HandshakeStage.EHLO)
    assert (plan3.attempts, plan3.sessions) == (
        [(T1, Attempt.HANDSHAKE_FAILED, 421, "4.7.0 closing")],
        0,
    )
    assert plan3.next_target() == T2
    plan3.report(T2, Attempt.HANDSHAKE_FAILED)
    assert plan3.outcome.status is DeliveryStatus.PENDING
    assert plan3.next_target() == T3


def test_misuse_is_an_error() -> None:
    plan = DeliveryPlan(SIX)
    t = plan.next_target()
    with pytest.raises(RuntimeError, match="report"):
        plan.next_target()
    with pytest.raises(ValueError, match="not the current target"):
        plan.refused(T2)
    plan.connected(t)
    with pytest.raises(RuntimeError, match="report"):
        plan.next_target()
    with pytest.raises(ValueError, match="4xx"):
        plan.temporary(t, 550)
    with pytest.raises(ValueError, match="5xx"):
        plan.permanent(t, 451)
    plan.delivered(t)
    with pytest.raises(RuntimeError, match="done"):
        plan.refused(t)
    with pytest.raises(ValueError, match="session_limit"):
        DeliveryPlan(SIX, session_limit=0)


# -- host status -------------------------------------------------------------------------------


def test_R5321_4_5_4_1_c_failed_host_moves_after_its_equal_preference_peers() -> None:
    clock = Clock()
    status = HostStatus(clock=clock)
    plan = DeliveryPlan(SIX, status)
    t = plan.next_target()
    plan.refused(t)
    assert status.is_down(T1.address)
    assert status.reason(T1.address) == "connection refused"
    # The next message: T1 goes after T2 (same preference), never after T3 (preference 20).
    assert DeliveryPlan(SIX, status).targets == (T2, T1, T3, T4, T5, T6)


def test_R5321_4_5_4_1_c_never_across_preference_levels() -> None:
    status = HostStatus(clock=Clock())
    for t in (T1, T2, T3):
        status.mark_down(t.address)
    # Both preference-10 targets are down: they still come before every preference-20 one.
    assert DeliveryPlan(SIX, status).targets == (T1, T2, T4, T3, T5, T6)


def test_host_status_forgets_after_retry_after() -> None:
    clock = Clock()
    status = HostStatus(retry_after=60, clock=clock)
    status.mark_down(T1.address, "timeout")
    clock.now = 59.9
    assert DeliveryPlan(SIX, status).targets[0] == T2
    clock.now = 60
    assert not status.is_down(T1.address)
    assert DeliveryPlan(SIX, status).targets[0] == T1
    assert len(status) == 0


def test_host_status_forgets_a_host_that_answers() -> None:
    status = HostStatus(clock=Clock())
    status.mark_down(T2.address)
    plan = DeliveryPlan(selection(T2), status)
    t = plan.next_target()
    plan.connected(t)
    assert not status.is_down(T2.address)


def test_host_status_is_bounded() -> None:
    status = HostStatus(max_entries=2, clock=Clock())
    for t in (T1, T2, T3):
        status.mark_down(t.address)
    assert [status.is_down(t.address) for t in (T1, T2, T3)] == [False, True, True]


def test_host_status_thread_safety() -> None:
    clock = Clock()
    status = HostStatus(max_entries=50, clock=clock)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(2000):
                address = ipaddress.ip_address(f"192.0.2.{(i * k) % 200}")
                if i % 3:
                    status.mark_down(address)
                else:
                    status.mark_up(address)
                status.order(SIX.targets)
                status.is_down(address)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(status) <= 50


@st.composite
def targets_and_down(draw: st.DrawFn) -> tuple[tuple[Target, ...], set[int]]:
    prefs = sorted(draw(st.lists(st.integers(0, 5), min_size=0, max_size=20)))
    targets = tuple(target(i + 1, p) for i, p in enumerate(prefs))
    down = draw(st.sets(st.integers(1, len(prefs) or 1)))
    return targets, down


@given(targets_and_down())
def test_property_preference_levels_never_reordered(
    data: tuple[tuple[Target, ...], set[int]],
) -> None:
    targets, down = data
    status = HostStatus(clock=Clock())
    for n in down:
        status.mark_down(ipaddress.ip_address(f"192.0.2.{n}"))
    ordered = DeliveryPlan(selection(*targets), status, address_limit=None).targets
    # Same targets; the preference sequence is exactly the selection's.
    assert sorted(ordered, key=lambda t: t.address) == sorted(targets, key=lambda t: t.address)
    assert [t.preference for t in ordered] == [t.preference for t in targets]
    # Within each level: every up target before every down one, each part in selection order.
    for pref in {t.preference for t in targets}:
        level = [t for t in targets if t.preference == pref]
        got = [t for t in ordered if t.preference == pref]
        is_down = [int(t.address.packed[3]) in down for t in level]
        want = [t for t, d in zip(level, is_down, strict=True) if not d] + [
            t for t, d in zip(level, is_down, strict=True) if d
        ]
        assert got == want
