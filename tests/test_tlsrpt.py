"""SMTP TLS Reporting (RFC 8460): rows R1 and R2 of shared/secure-delivery.md §7 -- the
``_smtp._tls`` TXT record (RFC 8460 §3), the events a DeliveryPlan records for each TLS
session (RFC 8460 §4.3 result types, §4.4 policies), and the aggregate report (§4, §5.3)."""

from __future__ import annotations

import gzip
import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mxselect
from mxselect import Posture, Selection, StsMode, StsPolicy, Target, TLSARecord, TlsRequirement
from mxselect.delivery import DeliveryPlan, DeliveryStatus
from mxselect.tlsrpt import (
    MEDIA_TYPE_GZIP,
    Aggregator,
    PolicyType,
    ReportPolicy,
    ResultType,
    TlsRptEvent,
    parse_record,
    policy_for,
    report_filename,
)

RECORD = TLSARecord(3, 1, 1, bytes(range(32)))
RECORD_HEX = bytes(range(32)).hex().upper()
STS_TEXT = "version: STSv1\r\nmode: enforce\r\nmx: *.mail.example.org\r\nmax_age: 86400\r\n"
STS = StsPolicy(mode=StsMode.ENFORCE, mx=("*.mail.example.org",), max_age=86400, text=STS_TEXT)
DAY = 1_704_067_200.0  # 2024-01-01T00:00:00Z


def dane(host: str, posture: Posture = Posture.DANE) -> TlsRequirement:
    return TlsRequirement(
        posture=posture,
        required=True,
        authenticate="dane" if posture is not Posture.DANE_ENCRYPT else None,
        sni=host,
        reference_ids=(host,),
        tlsa=(RECORD,) if posture is not Posture.DANE_ENCRYPT else (),
        tlsa_base_domain=host,
        rule="RFC 7672 §2.2",
    )


def sts(host: str, posture: Posture = Posture.MTA_STS) -> TlsRequirement:
    return TlsRequirement(
        posture=posture, required=True, authenticate="pkix", sni=host, rule="RFC 8461 §5"
    )


def target(n: int, tls: TlsRequirement | None = None, preference: int = 10) -> Target:
    return Target(
        f"mx{n}.mail.example.org",
        preference,
        ipaddress.ip_address(f"192.0.2.{n}"),
        tls=tls if tls is not None else mxselect.OPPORTUNISTIC_TLS,
    )


def selection(*targets: Target, sts_policy: StsPolicy | None = None) -> Selection:
    return Selection(
        domain="example.org",
        canonical_domain="example.org",
        targets=targets,
        hosts=(),
        sts_policy=sts_policy,
        sts_source="fetched" if sts_policy else None,
    )


class Clock:
    """A fake wall clock: each call one second later."""

    def __init__(self, start: float = DAY) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1
        return self.now


# ---------------------------------------------------------------- R1: the TXT record


@pytest.mark.parametrize(
    ("record", "uris"),
    [
        ("v=TLSRPTv1; rua=mailto:tlsrpt@example.org", ("mailto:tlsrpt@example.org",)),
        ("v=TLSRPTv1;rua=https://reports.example.org/v1", ("https://reports.example.org/v1",)),
        (
            "v=TLSRPTv1; rua=mailto:a@example.org,https://r.example.org/tlsrpt",
            ("mailto:a@example.org", "https://r.example.org/tlsrpt"),
        ),
        ("v=TLSRPTv1; rua=mailto:a@example.org;", ("mailto:a@example.org",)),
        ("v=TLSRPTv1;rua=MAILTO:a@example.org", ("MAILTO:a@example.org",)),
        (
            "v=TLSRPTv1; rua=mailto:a@example.org?subject=tls",
            ("mailto:a@example.org?subject=tls",),
        ),
    ],
)
def test_R1_valid_record(record: str, uris: tuple[str, ...]) -> None:
    """RFC 8460 §3: ``v=TLSRPTv1`` then ``rua``: the URIs, as written, in order."""
    assert parse_record([record]) == uris


def test_R1_whitespace_around_delimiters() -> None:
    """``field-delim = *WSP ";" *WSP`` and ``*WSP "," *WSP`` between URIs (RFC 8460 §3)."""
    record = "v=TLSRPTv1 ;\trua=mailto:a@example.org , \thttps://r.example.org/x\t; "
    assert parse_record([record]) == ("mailto:a@example.org", "https://r.example.org/x")


def test_R1_other_txt_records_are_discarded() -> None:
    """Records that do not begin with ``v=TLSRPTv1`` are discarded before counting."""
    txt = ["v=spf1 -all", "google-site-verification=abc", "v=TLSRPTv1; rua=mailto:a@b.example"]
    assert parse_record(txt) == ("mailto:a@b.example",)


@pytest.mark.parametrize(
    "txt",
    [
        ["v=TLSRPTv1; rua=mailto:a@example.org", "v=TLSRPTv1; rua=mailto:b@example.org"],
        # two records, one of them unusable: still "not one" (RFC 8460 §3 counts first)
        ["v=TLSRPTv1; rua=mailto:a@example.org", "v=TLSRPTv1"],
        ["v=TLSRPTv1; rua=mailto:a@example.org", "v=TLSRPTv1; rua=mailto:a@example.org"],
    ],
)
def test_R1_two_records_is_no_policy(txt: list[str]) -> None:
    """ "If the number of resulting records is not one, senders MUST assume the recipient
    domain does not implement TLSRPT" (RFC 8460 §3)."""
    assert parse_record(txt) is None


def test_R1_no_record_is_no_policy() -> None:
    assert parse_record([]) is None
    assert parse_record(["v=spf1 -all"]) is None


@pytest.mark.parametrize(
    "record",
    [
        "v=TLSRPTv2; rua=mailto:a@example.org",
        "v=tlsrptv1; rua=mailto:a@example.org",  # %s"v=TLSRPTv1": case-sensitive
        "v=TLSRPTv10; rua=mailto:a@example.org",
        "V=TLSRPTv1; rua=mailto:a@example.org",
        " v=TLSRPTv1; rua=mailto:a@example.org",
        "rua=mailto:a@example.org; v=TLSRPTv1",
    ],
)
def test_R1_wrong_version(record: str) -> None:
    assert parse_record([record]) is None


@pytest.mark.parametrize(
    "record",
    [
        "v=TLSRPTv1",
        "v=TLSRPTv1;",
        "v=TLSRPTv1; ext=1",
        "v=TLSRPTv1; rua=",
        "v=TLSRPTv1; RUA=mailto:a@example.org",  # field names are case-sensitive
    ],
)
def test_R1_missing_rua(record: str) -> None:
    assert parse_record([record]) is None


def test_R1_rua_twice_is_no_policy() -> None:
    assert parse_record(["v=TLSRPTv1; rua=mailto:a@example.org; rua=mailto:b@ex.org"]) is None


@pytest.mark.parametrize(
    "rua",
    [
        "http://reports.example.org/",  # https only (RFC 8460 §3)
        "ftp://reports.example.org/",
        "mailto:nobody",  # no address
        "https:reports.example.org",  # no authority
        "https:///path",  # no host
    ],
)
def test_R1_bad_scheme_or_uri(rua: str) -> None:
    assert parse_record([f"v=TLSRPTv1; rua={rua}"]) is None


def test_R1_unsupported_uri_beside_a_good_one_is_ignored() -> None:
    record = "v=TLSRPTv1; rua=http://r.example.org/,mailto:a@example.org"
    assert parse_record([record]) == ("mailto:a@example.org",)


@pytest.mark.parametrize(
    "record",
    [
        "v=TLSRPTv1; rua=mailto:a@example.org,",  # an empty URI
        "v=TLSRPTv1; rua=mailto:a@example.org,,https://r.example.org/",
        "v=TLSRPTv1; rua=mailto:a@example.org; junk",  # a field without "="
        "v=TLSRPTv1; rua=mailto:a@example.org; bad name=1",
        "v=TLSRPTv1; rua=mailto:a@example.org; ext=two words",
        "v=TLSRPTv1; rua=mailto:a@example.org; v=TLSRPTv1",
        "v=TLSRPTv1; rua=mailto:a@example.org mailto:b@example.org",
    ],
)
def test_R1_malformed_record(record: str) -> None:
    assert parse_record([record]) is None


def test_R1_unknown_extension_fields_are_ignored() -> None:
    """ "unknown fields SHALL be ignored" (RFC 8460 §3)."""
    record = "v=TLSRPTv1; ext-1=x.y; rua=mailto:a@example.org; future_field=42"
    assert parse_record([record]) == ("mailto:a@example.org",)


def test_R1_duplicate_uris_once() -> None:
    record = "v=TLSRPTv1; rua=mailto:a@example.org,mailto:a@example.org"
    assert parse_record([record]) == ("mailto:a@example.org",)


def test_R1_parse_record_is_the_core_function() -> None:
    """The public name is the core's function (``mxselect._tlsrpt``), not a copy."""
    from mxselect import _tlsrpt

    assert parse_record is _tlsrpt.parse_record


# ---------------------------------------------------------------- R2: policies


def test_R2_policy_for_dane_is_tlsa() -> None:
    """RFC 8460 §4.4: ``tlsa``, the TLSA RRset in presentation form, the recipient domain."""
    t = target(1, dane("mx1.mail.example.org"))
    policy = policy_for(selection(t), t)
    assert policy == ReportPolicy(
        policy_type=PolicyType.TLSA,
        policy_string=(f"_25._tcp.mx1.mail.example.org. IN TLSA 3 1 1 {RECORD_HEX}",),
        policy_domain="example.org",
        mx_host=("mx1.mail.example.org",),
    )


def test_R2_policy_for_dane_uses_the_tlsa_base_domain() -> None:
    """A CNAME'd exchange: the TLSA records are those of the base domain (RFC 7672 §2.2.3)."""
    tls = TlsRequirement(
        posture=Posture.DANE_INSECURE_MX,
        required=True,
        authenticate="dane",
        tlsa=(RECORD, TLSARecord(2, 0, 1, b"\xab" * 32)),
        tlsa_base_domain="mx.provider.example",
    )
    t = target(1, tls)
    assert policy_for(selection(t), t).policy_string == (
        f"_25._tcp.mx.provider.example. IN TLSA 3 1 1 {RECORD_HEX}",
        "_25._tcp.mx.provider.example. IN TLSA 2 0 1 " + "AB" * 32,
    )


def test_R2_policy_for_dane_encrypt_is_tlsa_without_records() -> None:
    t = target(1, dane("mx1.mail.example.org", Posture.DANE_ENCRYPT))
    policy = policy_for(selection(t), t)
    assert policy.policy_type is PolicyType.TLSA
    assert policy.policy_string == ()


@pytest.mark.parametrize("posture", [Posture.MTA_STS, Posture.MTA_STS_TESTING])
def test_R2_policy_for_mta_sts_is_sts(posture: Posture) -> None:
    """``sts``: the policy's lines and its mx patterns (RFC 8460 §4.4)."""
    t = target(1, sts("mx1.mail.example.org", posture))
    policy = policy_for(selection(t, sts_policy=STS), t)
    assert policy.to_json() == {
        "policy-type": "sts",
        "policy-string": [
            "version: STSv1",
            "mode: enforce",
            "mx: *.mail.example.org",
            "max_age: 86400",
        ],
        "policy-domain": "example.org",
        "mx-host": ["*.mail.example.org"],
    }


def test_R2_sts_policy_without_text_is_rebuilt() -> None:
    policy = ReportPolicy.sts(
        "Example.ORG.", StsPolicy(mode=StsMode.TESTING, mx=("a.example", "b.example"))
    )
    assert policy.policy_domain == "example.org"
    assert policy.policy_string == (
        "version: STSv1",
        "mode: testing",
        "mx: a.example",
        "mx: b.example",
        "max_age: 0",
    )


def test_R2_policy_for_opportunistic_is_no_policy_found() -> None:
    t = target(1)
    policy = policy_for(selection(t, sts_policy=STS), t)  # a policy, but not for this target
    assert policy == ReportPolicy.none("example.org")
    assert policy.to_json() == {"policy-type": "no-policy-found", "policy-domain": "example.org"}


# ---------------------------------------------------------------- R2: DeliveryPlan events

SESSION_FAILURES = [
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
]


@pytest.mark.parametrize("result_type", SESSION_FAILURES)
@pytest.mark.parametrize(
    ("tls", "policy_type"),
    [
        (dane("mx1.mail.example.org"), PolicyType.TLSA),
        (sts("mx1.mail.example.org"), PolicyType.STS),
        (sts("mx1.mail.example.org", Posture.MTA_STS_TESTING), PolicyType.STS),
        (mxselect.OPPORTUNISTIC_TLS, PolicyType.NO_POLICY_FOUND),
    ],
)
def test_R2_tls_failed_records_a_failure_event(
    result_type: str, tls: TlsRequirement, policy_type: PolicyType
) -> None:
    t = target(1, tls)
    sel = selection(t, sts_policy=STS)
    plan = DeliveryPlan(sel, clock=Clock())
    assert plan.next_target() == t
    plan.connected(t)
    plan.tls_failed(t, result_type, "handshake alert 42")
    (event,) = plan.tlsrpt_events
    assert event == TlsRptEvent(
        policy=policy_for(sel, t),
        result_type=ResultType(result_type),
        time=DAY + 1,
        receiving_mx_hostname="mx1.mail.example.org",
        receiving_ip=ipaddress.ip_address("192.0.2.1"),
        failure_reason_code="handshake alert 42",
    )
    assert event.policy.policy_type is policy_type
    assert not event.ok


def test_R2_tls_ok_records_a_success_event() -> None:
    t = target(1, dane("mx1.mail.example.org"))
    sel = selection(t)
    plan = DeliveryPlan(sel, clock=lambda: 1234.5)
    target_ = plan.next_target()
    assert target_ is not None
    plan.connected(target_)
    plan.tls_ok(target_, sending_mta_ip="2001:db8::25", receiving_mx_helo="mx1.example.org")
    plan.delivered(target_)
    (event,) = plan.tlsrpt_events
    assert event.ok
    assert event.result_type is None
    assert event.time == 1234.5
    assert event.policy.policy_type is PolicyType.TLSA
    assert event.sending_mta_ip == ipaddress.ip_address("2001:db8::25")
    assert event.receiving_mx_helo == "mx1.example.org"
    assert event.failure_reason_code is None
    assert plan.tls_successes == 1


def test_R2_events_in_order_across_targets() -> None:
    """P3 with events: DANE fails on every target -> 451 4.7.5, one failure event each; then
    a plan that succeeds on the second target: failure, success."""
    t1 = target(1, dane("mx1.mail.example.org"))
    t2 = target(2, dane("mx2.mail.example.org"), 20)
    clock = Clock()
    plan = DeliveryPlan(selection(t1, t2), clock=clock)
    for t in plan:
        plan.tls_failed(t, ResultType.VALIDATION_FAILURE, "no TLSA record matched")
    assert plan.outcome.status is DeliveryStatus.DEFERRED
    assert plan.outcome.enhanced_status == "4.7.5"
    assert [(e.receiving_mx_hostname, e.result_type, e.time) for e in plan.tlsrpt_events] == [
        ("mx1.mail.example.org", ResultType.VALIDATION_FAILURE, DAY + 1),
        ("mx2.mail.example.org", ResultType.VALIDATION_FAILURE, DAY + 2),
    ]
    # the enum is accepted, and tls_failures keeps the registry string
    assert plan.tls_failures[0][1] == "validation-failure"

    plan = DeliveryPlan(selection(t1, t2), clock=clock)
    first = plan.next_target()
    assert first is not None
    plan.tls_failed(first, "certificate-expired")
    second = plan.next_target()
    assert second is not None
    plan.connected(second)
    plan.tls_ok(second)
    plan.delivered(second)
    assert [(e.receiving_mx_hostname, e.result_type) for e in plan.tlsrpt_events] == [
        ("mx1.mail.example.org", ResultType.CERTIFICATE_EXPIRED),
        ("mx2.mail.example.org", None),
    ]
    assert plan.tlsrpt_events[0].failure_reason_code is None  # no detail given


def test_R2_opportunistic_failure_then_cleartext_is_one_failure_event() -> None:
    """P2: the cleartext retry is not a TLS session: one failure, no success."""
    t = target(1)
    plan = DeliveryPlan(selection(t), clock=Clock())
    first = plan.next_target()
    assert first is not None
    plan.connected(first)
    assert plan.tls_failed(first, "starttls-not-supported") is True
    again = plan.next_target()
    assert again is not None
    assert plan.cleartext_retry
    plan.connected(again)
    plan.delivered(again)
    assert [(e.policy.policy_type, e.result_type) for e in plan.tlsrpt_events] == [
        (PolicyType.NO_POLICY_FOUND, ResultType.STARTTLS_NOT_SUPPORTED)
    ]


def test_R2_unknown_result_type_is_refused_and_not_recorded() -> None:
    t = target(1, dane("mx1.mail.example.org"))
    plan = DeliveryPlan(selection(t), clock=Clock())
    assert plan.next_target() == t
    with pytest.raises(ValueError, match="not an RFC 8460 result type: 'tls-broken'"):
        plan.tls_failed(t, "tls-broken")
    assert plan.tlsrpt_events == ()
    assert plan.tls_failures == []
    plan.tls_failed(t, "tlsa-invalid")  # the attempt can still be reported
    assert len(plan.tlsrpt_events) == 1


def test_R2_checked_reports_record_nothing() -> None:
    t1, t2 = target(1), target(2)
    plan = DeliveryPlan(selection(t1, t2), clock=Clock())
    assert plan.next_target() == t1
    with pytest.raises(ValueError, match="is not the current target"):
        plan.tls_ok(t2)
    with pytest.raises(ValueError, match="is not the current target"):
        plan.tls_failed(t2, "validation-failure")
    assert plan.tlsrpt_events == ()


def test_R2_default_clock_is_the_wall_clock() -> None:
    import time

    t = target(1)
    plan = DeliveryPlan(selection(t))
    assert plan.next_target() == t
    before = time.time()
    plan.tls_ok(t)
    assert before <= plan.tlsrpt_events[0].time <= time.time()


# ---------------------------------------------------------------- R2: before any connection


@pytest.mark.parametrize(
    ("result_type", "policy_type"),
    [
        ("tlsa-invalid", PolicyType.TLSA),  # TLSA RRset, none usable
        ("dnssec-invalid", PolicyType.TLSA),  # TLSA bogus
        ("dane-required", PolicyType.TLSA),  # mandatory DANE, no TLSA
        ("sts-policy-fetch-error", PolicyType.STS),
        ("sts-policy-invalid", PolicyType.STS),
        ("sts-webpki-invalid", PolicyType.STS),
    ],
)
def test_R2_policy_failure_before_any_connection(result_type: str, policy_type: PolicyType) -> None:
    event = TlsRptEvent.policy_failure(
        result_type, DAY, domain="Example.org", receiving_mx_hostname="mx1.example.org"
    )
    assert event.result_type is ResultType(result_type)
    assert event.policy.policy_type is policy_type
    assert event.policy.policy_domain == "example.org"
    assert event.policy.policy_string == ()
    expected_mx = ("mx1.example.org",) if policy_type is PolicyType.TLSA else ()
    assert event.policy.mx_host == expected_mx
    assert event.receiving_ip is None


def test_R2_sts_mismatch_is_a_validation_failure_under_the_sts_policy() -> None:
    """An MX host outside an enforce policy never becomes a target (RFC 8461 §5); it is
    reported as ``validation-failure`` under the ``sts`` policy, given explicitly."""
    policy = ReportPolicy.sts("example.org", STS)
    event = TlsRptEvent.policy_failure(
        ResultType.VALIDATION_FAILURE,
        DAY,
        policy=policy,
        domain="example.org",
        receiving_mx_hostname="mx.elsewhere.example",
        failure_reason_code="mx.elsewhere.example does not match the policy",
    )
    assert event.policy is policy
    assert event.result_type is ResultType.VALIDATION_FAILURE
    with pytest.raises(ValueError, match="give the policy"):
        TlsRptEvent.policy_failure("validation-failure", DAY, domain="example.org")
    with pytest.raises(ValueError, match=r"not example\.net"):
        TlsRptEvent.policy_failure("sts-policy-invalid", DAY, policy=policy, domain="example.net")
    with pytest.raises(ValueError, match="domain or the policy"):
        TlsRptEvent.policy_failure("sts-policy-invalid", DAY)
    with pytest.raises(ValueError, match="nonsense"):
        TlsRptEvent.policy_failure("nonsense", DAY, domain="example.org")


def test_result_types_are_the_registry() -> None:
    """The IANA "STARTTLS Validation Result Types" registry (RFC 8460 §6.6)."""
    assert {r.value for r in ResultType} == {
        "starttls-not-supported",
        "certificate-host-mismatch",
        "certificate-expired",
        "certificate-not-trusted",
        "validation-failure",
        "tlsa-invalid",
        "dnssec-invalid",
        "dane-required",
        "sts-policy-fetch-error",
        "sts-policy-invalid",
        "sts-webpki-invalid",
    }
    assert {p.value for p in PolicyType} == {"tlsa", "sts", "no-policy-found"}
    assert str(ResultType.DANE_REQUIRED) == "dane-required"


# ---------------------------------------------------------------- the aggregate report

REPORT_ARGS: dict[str, Any] = {
    "organization_name": "Example Mail",
    "contact_info": "tlsrpt@example.net",
    "report_id": "2024-01-01-example.org",
    "start": DAY,
    "end": DAY + 86400,
    "policy_domain": "example.org",
}


def event(
    n: int = 1,
    result_type: str | None = None,
    time: float = DAY + 60,
    *,
    tls: TlsRequirement | None = None,
    domain: str = "example.org",
    reason: str | None = None,
) -> TlsRptEvent:
    t = target(n, tls if tls is not None else dane(f"mx{n}.mail.example.org"))
    sel = attrs_evolve_domain(selection(t, sts_policy=STS), domain)
    return TlsRptEvent.session(sel, t, time, result_type, failure_reason_code=reason)


def attrs_evolve_domain(sel: Selection, domain: str) -> Selection:
    import attrs

    return attrs.evolve(sel, domain=domain, canonical_domain=domain)


def test_R2_aggregator_counts_and_groups() -> None:
    """One entry per policy; successes and failures counted; failure details grouped by
    (result type, host, IP, ...) with their ``failed-session-count`` (RFC 8460 §4.4)."""
    aggregator = Aggregator()
    aggregator.add([event(1), event(1), event(1)])
    aggregator.add([event(1, "certificate-expired"), event(1, "certificate-expired")])
    aggregator.add([event(1, "certificate-expired", reason="X509_V_ERR_CERT_HAS_EXPIRED")])
    aggregator.add([event(2, "validation-failure"), event(2)])
    stls = sts("mx3.mail.example.org")
    aggregator.add([event(3, "starttls-not-supported", tls=stls), event(3, tls=stls)])
    report = aggregator.report(**REPORT_ARGS)
    policies = report["policies"]
    assert [p["policy"]["policy-type"] for p in policies] == ["tlsa", "tlsa", "sts"]
    assert [p["policy"]["mx-host"] for p in policies] == [
        ["mx1.mail.example.org"],
        ["mx2.mail.example.org"],
        ["*.mail.example.org"],
    ]
    assert [p["summary"] for p in policies] == [
        {"total-successful-session-count": 3, "total-failure-session-count": 3},
        {"total-successful-session-count": 1, "total-failure-session-count": 1},
        {"total-successful-session-count": 1, "total-failure-session-count": 1},
    ]
    assert policies[0]["failure-details"] == [
        {
            "result-type": "certificate-expired",
            "receiving-mx-hostname": "mx1.mail.example.org",
            "receiving-ip": "192.0.2.1",
            "failed-session-count": 2,
        },
        {
            "result-type": "certificate-expired",
            "receiving-mx-hostname": "mx1.mail.example.org",
            "receiving-ip": "192.0.2.1",
            "failed-session-count": 1,
            "failure-reason-code": "X509_V_ERR_CERT_HAS_EXPIRED",
        },
    ]
    assert policies[2]["failure-details"][0]["result-type"] == "starttls-not-supported"


def test_R2_policy_without_failures_has_no_failure_details() -> None:
    aggregator = Aggregator([event(1)])
    (entry,) = aggregator.report(**REPORT_ARGS)["policies"]
    assert "failure-details" not in entry
    assert entry["summary"]["total-failure-session-count"] == 0


def test_R2_date_range_is_half_open() -> None:
    """Events in ``[start, end)`` only; ``date-range`` in RFC 3339 UTC (RFC 8460 §4.4)."""
    end = DAY + 86400
    times = [DAY - 0.5, DAY, DAY + 43200, end - 0.001, end, end + 1]
    aggregator = Aggregator(event(1, time=t) for t in times)
    report = aggregator.report(**REPORT_ARGS)
    assert report["date-range"] == {
        "start-datetime": "2024-01-01T00:00:00Z",
        "end-datetime": "2024-01-02T00:00:00Z",
    }
    (entry,) = report["policies"]
    assert entry["summary"]["total-successful-session-count"] == 3
    assert aggregator.policy_domains(DAY, end) == ("example.org",)
    assert aggregator.policy_domains(end + 2, end + 3) == ()


def test_R2_report_is_per_policy_domain() -> None:
    aggregator = Aggregator([event(1), event(2, domain="example.com"), event(3, "tlsa-invalid")])
    assert aggregator.policy_domains(DAY, DAY + 86400) == ("example.com", "example.org")
    report = aggregator.report(**{**REPORT_ARGS, "policy_domain": "EXAMPLE.org."})
    assert {p["policy"]["policy-domain"] for p in report["policies"]} == {"example.org"}
    assert len(report["policies"]) == 2
    other = aggregator.report(**{**REPORT_ARGS, "policy_domain": "example.net"})
    assert other["policies"] == []


def test_R2_json_keys_are_rfc_8460_names() -> None:
    """Exactly the member names of RFC 8460 §4.4 (and its Appendix B schema)."""
    aggregator = Aggregator()
    aggregator.add(
        [
            TlsRptEvent(
                policy=ReportPolicy.sts("example.org", STS),
                result_type="starttls-not-supported",
                time=DAY + 1,
                receiving_mx_hostname="mx2.mail.example.org",
                receiving_ip="203.0.113.56",
                sending_mta_ip="2001:db8:abcd:13::1",
                receiving_mx_helo="mx2.example.org",
                failure_reason_code="no STARTTLS in EHLO",
                additional_information="https://reports.example.net/info#1",
            ),
            TlsRptEvent(policy=ReportPolicy.sts("example.org", STS), time=DAY + 2),
        ]
    )
    report = json.loads(aggregator.report_json(**REPORT_ARGS))
    assert list(report) == [
        "organization-name",
        "date-range",
        "contact-info",
        "report-id",
        "policies",
    ]
    assert list(report["date-range"]) == ["start-datetime", "end-datetime"]
    (entry,) = report["policies"]
    assert list(entry) == ["policy", "summary", "failure-details"]
    assert list(entry["policy"]) == ["policy-type", "policy-string", "policy-domain", "mx-host"]
    assert list(entry["summary"]) == [
        "total-successful-session-count",
        "total-failure-session-count",
    ]
    (detail,) = entry["failure-details"]
    assert detail == {
        "result-type": "starttls-not-supported",
        "sending-mta-ip": "2001:db8:abcd:13::1",
        "receiving-mx-hostname": "mx2.mail.example.org",
        "receiving-mx-helo": "mx2.example.org",
        "receiving-ip": "203.0.113.56",
        "failed-session-count": 1,
        "additional-information": "https://reports.example.net/info#1",
        "failure-reason-code": "no STARTTLS in EHLO",
    }
    assert report["organization-name"] == "Example Mail"
    assert report["contact-info"] == "tlsrpt@example.net"
    assert report["report-id"] == "2024-01-01-example.org"


def test_R2_policy_failure_in_the_report() -> None:
    """A fetch error before any connection counts as a failed session, with no host."""
    aggregator = Aggregator(
        [TlsRptEvent.policy_failure("sts-policy-fetch-error", DAY + 5, domain="example.org")]
    )
    (entry,) = aggregator.report(**REPORT_ARGS)["policies"]
    assert entry == {
        "policy": {"policy-type": "sts", "policy-domain": "example.org"},
        "summary": {"total-successful-session-count": 0, "total-failure-session-count": 1},
        "failure-details": [{"result-type": "sts-policy-fetch-error", "failed-session-count": 1}],
    }


def test_R2_gzip_round_trip() -> None:
    """RFC 8460 §5.3: gzip, ``application/tlsrpt+gzip``; the same report, the same bytes."""
    aggregator = Aggregator([event(1), event(1, "certificate-not-trusted")])
    body = aggregator.report_gzip(**REPORT_ARGS)
    assert body[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(body)) == aggregator.report(**REPORT_ARGS)
    assert gzip.decompress(body).decode() == aggregator.report_json(**REPORT_ARGS)
    assert aggregator.report_gzip(**REPORT_ARGS) == body
    assert MEDIA_TYPE_GZIP == "application/tlsrpt+gzip"


def test_report_range_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="after its start"):
        Aggregator().report(**{**REPORT_ARGS, "end": DAY})


def test_prune_forgets_reported_events() -> None:
    aggregator = Aggregator(event(1, time=DAY + i) for i in range(10))
    assert aggregator.prune(DAY + 4) == 4
    assert len(aggregator) == 6
    assert aggregator.events[0].time == DAY + 4


def test_report_filename() -> None:
    """RFC 8460 §5.1: ``sender!policy-domain!begin!end[!unique-id].json[.gz]``."""
    name = report_filename("example.net", "example.org", DAY, DAY + 86400, "1a")
    assert name == "example.net!example.org!1704067200!1704153600!1a.json.gz"
    name = report_filename("Example.NET", "example.org", DAY, DAY + 86400, gzip=False)
    assert name == "example.net!example.org!1704067200!1704153600.json"
    with pytest.raises(ValueError, match="letters and digits"):
        report_filename("example.net", "example.org", DAY, DAY + 1, "a-b")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 3),
            st.sampled_from([None, *SESSION_FAILURES]),
            st.floats(DAY - 100, DAY + 86500),
        ),
        max_size=40,
    )
)
def test_report_counts_every_event_in_range_once(
    items: list[tuple[int, str | None, float]],
) -> None:
    events = [event(n, rt, t) for n, rt, t in items]
    report = Aggregator(events).report(**REPORT_ARGS)
    in_range = [e for e in events if DAY <= e.time < DAY + 86400]
    ok = sum(p["summary"]["total-successful-session-count"] for p in report["policies"])
    failed = sum(p["summary"]["total-failure-session-count"] for p in report["policies"])
    details = sum(
        d["failed-session-count"] for p in report["policies"] for d in p.get("failure-details", [])
    )
    assert ok == sum(1 for e in in_range if e.ok)
    assert failed == details == sum(1 for e in in_range if not e.ok)
    assert len(report["policies"]) == len({e.policy for e in in_range})
