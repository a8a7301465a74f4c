"""DeliveryPlan TLS outcomes (tls_failed, tls_ok, cleartext_retry): rows P2 and P3 of
shared/secure-delivery.md §7 -- opportunistic TLS may retry in cleartext, required TLS moves on
and defers with 451 4.7.5, never bounced (RFC 7672 §2.2, §3.2, §9.1)."""

from __future__ import annotations

import ipaddress

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mxselect
from mxselect import Posture, Selection, Target, TLSARecord, TlsRequirement
from mxselect.delivery import Attempt, DeliveryPlan, DeliveryStatus, HostStatus

RECORD = TLSARecord(3, 1, 1, bytes(range(32)))


def dane(host: str, posture: Posture = Posture.DANE) -> TlsRequirement:
    authenticate = "dane" if posture is not Posture.DANE_ENCRYPT else None
    return TlsRequirement(
        posture=posture,
        required=True,
        authenticate=authenticate,
        sni=host,
        reference_ids=(host,),
        tlsa=(RECORD,),
        tlsa_base_domain=host,
        rule="RFC 7672 §2.2",
    )


def target(n: int, preference: int = 10, tls: TlsRequirement | None = None) -> Target:
    host = f"mx{n}.example.org"
    return Target(
        host,
        preference,
        ipaddress.ip_address(f"192.0.2.{n}"),
        tls=tls if tls is not None else mxselect.OPPORTUNISTIC_TLS,
    )


def dane_target(n: int, preference: int = 10, posture: Posture = Posture.DANE) -> Target:
    return target(n, preference, dane(f"mx{n}.example.org", posture))


def selection(*targets: Target) -> Selection:
    return Selection(
        domain="example.org", canonical_domain="example.org", targets=targets, hosts=()
    )


# ---------------------------------------------------------------- P2: opportunistic TLS


def test_P2_opportunistic_handshake_failure_retries_in_cleartext() -> None:
    """RFC 7672 §2.2: "The MTA MAY retry in cleartext when delivery via TLS fails during the
    handshake": the same target once more, flagged, then delivered; one session."""
    t1, t2 = target(1), target(2, 20)
    plan = DeliveryPlan(selection(t1, t2), address_limit=1)
    first = plan.next_target()
    assert first == t1
    assert plan.cleartext_retry is False
    plan.connected(first)
    assert plan.tls_failed(first, "validation-failure", "handshake failure") is True
    again = plan.next_target()
    assert again == t1  # not t2, and address_limit=1 does not stop it
    assert plan.cleartext_retry is True
    plan.connected(again)
    plan.delivered(again, 250, "2.0.0 queued")
    assert plan.outcome.status is DeliveryStatus.DELIVERED
    assert plan.sessions == 1  # the failed TLS handshake was not a session
    assert plan.tls_failures == [(t1, "validation-failure", "handshake failure")]
    assert [a for _, a, _, _ in plan.attempts] == [
        Attempt.CONNECTED,
        Attempt.HANDSHAKE_FAILED,
        Attempt.CONNECTED,
        Attempt.DELIVERED,
    ]


def test_cleartext_retry_comes_once() -> None:
    """A TLS failure during the cleartext retry (there should be none) moves on."""
    t1, t2 = target(1), target(2, 20)
    plan = DeliveryPlan(selection(t1, t2))
    first = plan.next_target()
    assert first is not None
    assert plan.tls_failed(first, "validation-failure")
    retry = plan.next_target()
    assert (retry, plan.cleartext_retry) == (t1, True)
    assert retry is not None
    assert plan.tls_failed(retry, "validation-failure") is False
    assert (plan.next_target(), plan.cleartext_retry) == (t2, False)


def test_cleartext_retry_flag_clears_on_the_next_target() -> None:
    t1, t2 = target(1), target(2, 20)
    plan = DeliveryPlan(selection(t1, t2))
    first = plan.next_target()
    assert first is not None
    plan.tls_failed(first, "certificate-not-trusted")
    retry = plan.next_target()
    assert retry is not None
    plan.connected(retry)
    plan.temporary(retry, 451, "4.3.0 later")
    assert (plan.next_target(), plan.cleartext_retry) == (t2, False)


def test_opportunistic_failures_then_nothing_else_is_not_4_7_5() -> None:
    """Opportunistic TLS failures are not security failures: a deferral after them is the
    usual 451 4.4.1 (no answer)."""
    t1 = target(1)
    plan = DeliveryPlan(selection(t1))
    for t in plan:
        if not plan.cleartext_retry:
            plan.tls_failed(t, "validation-failure", "bad record mac")
        else:
            plan.refused(t)
    assert (plan.outcome.status, plan.outcome.enhanced_status) == (
        DeliveryStatus.DEFERRED,
        "4.4.1",
    )
    assert "retrying in cleartext" in plan.outcome.message


def test_sts_testing_failure_text_says_the_retry_need_not_be_cleartext() -> None:
    """RFC 8461 §5: mode testing delivers "as though there were no MTA-STS validation
    failure" -- after a certificate failure the MTA retries with unvalidated TLS (the example
    MTA does), so the failure text does not claim a cleartext retry."""
    testing = attrs.evolve(
        mxselect.OPPORTUNISTIC_TLS, posture=Posture.MTA_STS_TESTING, authenticate="pkix"
    )
    t1 = target(1, tls=testing)
    plan = DeliveryPlan(selection(t1))
    for t in plan:
        if not plan.cleartext_retry:
            plan.tls_failed(t, "certificate-host-mismatch", "wrong name")
        else:
            plan.refused(t)
    assert "retrying without MTA-STS validation" in plan.outcome.message
    assert "retrying in cleartext" not in plan.outcome.message


# ------------------------------------------------------------------- P3: required TLS


@pytest.mark.parametrize("posture", [Posture.DANE, Posture.DANE_INSECURE_MX, Posture.DANE_ENCRYPT])
def test_P3_dane_failure_everywhere_is_deferred_4_7_5(posture: Posture) -> None:
    """RFC 7672 §2.2, §9.1: every target fails authentication: deferred 451 4.7.5, never
    bounced, never a cleartext retry; no session counted, no host marked down."""
    targets = tuple(dane_target(n, 10 * n, posture) for n in (1, 2, 3))
    status = HostStatus()
    plan = DeliveryPlan(selection(*targets), status, session_limit=1)
    seen = []
    for t in plan:
        assert plan.cleartext_retry is False
        seen.append(t)
        plan.connected(t)
        assert plan.tls_failed(t, "validation-failure", f"no TLSA match at {t.host}") is False
    assert seen == list(targets)
    out = plan.outcome
    assert (out.status, out.reply_code, out.enhanced_status) == (
        DeliveryStatus.DEFERRED,
        451,
        "4.7.5",
    )
    assert out.target == targets[-1]
    assert f"TLS required ({posture})" in out.message
    for t in targets:
        assert f"{t}: TLS handshake: validation-failure: no TLSA match at {t.host}" in out.message
    assert plan.sessions == 0
    assert len(status) == 0
    assert str(out).startswith("deferred: 451 4.7.5 all 3 targets tried")


def test_required_tls_without_starttls_moves_on() -> None:
    """A required-TLS target that does not offer STARTTLS: "starttls-not-supported", the next
    target (RFC 7672 §2.2 "MUST employ TLS")."""
    t1, t2 = dane_target(1), dane_target(2, 20)
    plan = DeliveryPlan(selection(t1, t2))
    first = plan.next_target()
    assert first is not None
    plan.connected(first)
    assert plan.tls_failed(first, "starttls-not-supported", "STARTTLS not offered") is False
    second = plan.next_target()
    assert (second, plan.cleartext_retry) == (t2, False)
    assert second is not None
    plan.connected(second)
    plan.tls_ok(second)
    plan.delivered(second)
    assert plan.outcome.status is DeliveryStatus.DELIVERED
    assert plan.tls_successes == 1
    assert plan.attempts[1] == (
        t1,
        Attempt.HANDSHAKE_FAILED,
        0,
        "starttls-not-supported: STARTTLS not offered",
    )


def test_required_flag_alone_is_enough() -> None:
    """``required`` with an opportunistic posture (a hand-built requirement): no cleartext."""
    tls = TlsRequirement(posture=Posture.OPPORTUNISTIC, required=True)
    t1 = target(1, tls=tls)
    plan = DeliveryPlan(selection(t1))
    first = plan.next_target()
    assert first is not None
    assert plan.tls_failed(first, "starttls-not-supported") is False
    assert plan.next_target() is None
    assert plan.outcome.enhanced_status == "4.7.5"


def test_tls_failures_are_not_sessions() -> None:
    """session_limit=1: two DANE failures, then delivered at the third (Postfix
    smtp_mx_session_limit ignores failed TLS handshakes)."""
    targets = tuple(dane_target(n, 10 * n) for n in (1, 2, 3))
    plan = DeliveryPlan(selection(*targets), session_limit=1)
    for t in plan:
        plan.connected(t)
        if t != targets[2]:
            plan.tls_failed(t, "certificate-host-mismatch")
        else:
            plan.tls_ok(t)
            plan.delivered(t)
    assert plan.outcome.status is DeliveryStatus.DELIVERED
    assert plan.outcome.target == targets[2]
    assert plan.sessions == 1


def test_last_failure_decides_the_deferral() -> None:
    """A 451 reply after a DANE failure: the deferral is the 451; a DANE failure after a 451:
    4.7.5 (the last temporary failure, as for replies)."""
    t1, t2 = dane_target(1), dane_target(2, 20)
    plan = DeliveryPlan(selection(t1, t2))
    first = plan.next_target()
    assert first is not None
    plan.tls_failed(first, "validation-failure")
    second = plan.next_target()
    assert second is not None
    plan.connected(second)
    plan.temporary(second, 451, "4.3.0 later")
    assert plan.next_target() is None
    assert (plan.outcome.reply_code, plan.outcome.enhanced_status) == (451, "4.3.0")

    plan = DeliveryPlan(selection(t1, t2))
    first = plan.next_target()
    assert first is not None
    plan.connected(first)
    plan.temporary(first, 452, "4.3.1 full")
    second = plan.next_target()
    assert second is not None
    plan.tls_failed(second, "certificate-expired")
    assert plan.next_target() is None
    assert (plan.outcome.reply_code, plan.outcome.enhanced_status) == (451, "4.7.5")


def test_mixed_postures() -> None:
    """{10 DANE fails, 20 opportunistic handshake fails -> cleartext delivered}."""
    t1, t2 = dane_target(1), target(2, 20)
    plan = DeliveryPlan(selection(t1, t2))
    order = []
    for t in plan:
        order.append((t.host, plan.cleartext_retry))
        if t == t1:
            plan.tls_failed(t, "validation-failure")
        elif not plan.cleartext_retry:
            plan.tls_failed(t, "validation-failure", "handshake")
        else:
            plan.delivered(t)
    assert order == [
        ("mx1.example.org", False),
        ("mx2.example.org", False),
        ("mx2.example.org", True),
    ]
    assert plan.outcome.status is DeliveryStatus.DELIVERED


def test_tls_reports_are_checked() -> None:
    t1, t2 = dane_target(1), dane_target(2, 20)
    plan = DeliveryPlan(selection(t1, t2))
    first = plan.next_target()
    assert first is not None
    with pytest.raises(ValueError, match="RFC 8460"):
        plan.tls_failed(first, "bad-cert")
    with pytest.raises(ValueError, match="not the current target"):
        plan.tls_failed(t2, "validation-failure")
    with pytest.raises(ValueError, match="not the current target"):
        plan.tls_ok(t2)
    plan.tls_failed(first, "validation-failure")
    with pytest.raises(RuntimeError, match="already reported"):
        plan.tls_failed(first, "validation-failure")
    second = plan.next_target()
    assert second is not None
    plan.delivered(second)
    with pytest.raises(RuntimeError, match="done"):
        plan.tls_ok(second)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    postures=st.lists(st.sampled_from(list(Posture)), min_size=1, max_size=5),
    reports=st.lists(
        st.sampled_from(["tls", "refused", "timeout", "451", "greeting421", "lost"]),
        min_size=1,
        max_size=12,
    ),
)
def test_tls_failures_never_bounce_and_never_clear_required(
    postures: list[Posture], reports: list[str]
) -> None:
    """Property (P1/P3): whatever mix of TLS failures and other temporary failures, the
    outcome is never a bounce; a cleartext retry is only ever offered for an opportunistic
    target; a deferral right after a required-TLS failure is 4.7.5."""
    targets = tuple(
        target(n, 10 * n) if posture is Posture.OPPORTUNISTIC else dane_target(n, 10 * n, posture)
        for n, posture in enumerate(postures, 1)
    )
    plan = DeliveryPlan(selection(*targets), address_limit=None)
    last = None
    for i, t in enumerate(plan):
        if plan.cleartext_retry:
            assert t.tls.posture is Posture.OPPORTUNISTIC
        kind = reports[i % len(reports)]
        last = (t, kind)
        if kind == "tls":
            plan.tls_failed(t, "validation-failure")
        elif kind == "refused":
            plan.refused(t)
        elif kind == "timeout":
            plan.timed_out(t)
        elif kind == "451":
            plan.temporary(t, 451, "4.3.0 later")
        elif kind == "greeting421":
            plan.handshake_failed(t, 421, "4.3.2 busy")
        else:
            plan.lost(t)
    assert plan.outcome.status is DeliveryStatus.DEFERRED
    assert last is not None
    if last[1] == "tls" and last[0].tls.required:
        assert plan.outcome.enhanced_status == "4.7.5"
