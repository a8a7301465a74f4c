"""mxselect.check, the secure-delivery findings (tracker issue 18, slice 2): DNSSEC, DANE
(RFC 7672), MTA-STS (RFC 8461) and TLS-RPT (RFC 8460). One test per finding from a zone
(FakeResolver, FakeFetcher), a healthy signed DANE + MTA-STS domain, and the DNSSEC/DANE
findings end to end through Knot + Unbound."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_check_coverage import finds

from mxselect import Security
from mxselect._cli import main
from mxselect.check import Report, Severity, acheck, check
from mxselect.testing import FakeFetcher, FakeResolver, Fault

SHA = "aa" * 32

ZONE = f"""
$ORIGIN example.org.
$TTL 3600
@              MX 10 mx1
mx1            A 192.0.2.1
mx1            AAAA 2001:db8::1
_25._tcp.mx1   TLSA 3 1 1 {SHA}
_mta-sts       TXT "v=STSv1; id=20261201"
_smtp._tls     TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.org"
tlsafail       MX 10 mxf
mxf            A 192.0.2.2
unusable       MX 10 mxu
mxu            A 192.0.2.3
_25._tcp.mxu   TLSA 1 1 1 {SHA}
insecurehost   MX 10 mail.example.net.
bogusmx        MX 10 mx1
sts            MX 10 mx1
_mta-sts.sts   TXT "v=STSv1; id=1"
_smtp._tls.sts TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.org"
norpt          MX 10 mx1
_mta-sts.norpt TXT "v=STSv1; id=1"
badrpt         MX 10 mx1
_smtp._tls.badrpt TXT "v=TLSRPTv1; rua"
two            MX 10 mx1
_mta-sts.two   TXT "v=STSv1; id=1"
_mta-sts.two   TXT "v=STSv1; id=2"
broken         MX 10 mx1
_mta-sts.broken TXT "v=STSv1; id=not-an-id!"
$ORIGIN example.net.
@              MX 10 mx1.example.org.
mail           A 198.51.100.1
_25._tcp.mail  TLSA 3 1 1 {SHA}
plain          MX 10 mail
"""

ENFORCE = "version: STSv1\nmode: enforce\nmx: mx1.example.org\nmax_age: 604800\n"


def policy(mode: str = "enforce", mx: str = "mx1.example.org", max_age: str = "604800") -> str:
    return f"version: STSv1\nmode: {mode}\nmx: {mx}\nmax_age: {max_age}\n"


def resolver(**kw: object) -> FakeResolver:
    fake = FakeResolver.from_zone(ZONE, signed=["example.org"], security=Security.INSECURE)
    fake.fail("_25._tcp.mxf.example.org", "TLSA", Fault.SERVFAIL)
    fake.fail("bogusmx.example.org", "MX", Fault.BOGUS)
    return fake


def run(domain: str, policies: dict[str, str] | None = None) -> Report:
    fetcher = FakeFetcher(policies if policies is not None else {"example.org": ENFORCE})
    return check(domain, resolver=resolver(), fetcher=fetcher)


def codes(report: Report) -> dict[str, Severity]:
    return {f.code: f.severity for f in report.findings}


def the(report: Report, code: str) -> None:
    found = [f for f in report.findings if f.code == code]
    assert len(found) == 1, report.findings
    finding = found[0]
    assert finding.message.endswith(".")
    assert finding.fix
    assert finding.rfc


def test_healthy_signed_dane_mta_sts_domain() -> None:
    report = run("example.org")
    assert report.ok, report.findings
    assert codes(report) == {"single-mx": Severity.INFO}
    assert report.selection is not None
    assert report.selection.sts_policy is not None
    assert str(report.selection.hosts[0].tls.posture) == "dane"


def test_the_check_is_backward_compatible_and_async_is_the_same() -> None:
    fetcher = FakeFetcher({"example.org": ENFORCE})
    sync = check("example.org", resolver=resolver(), fetcher=fetcher)
    aio = asyncio.run(acheck("example.org", resolver=resolver(), fetcher=fetcher))
    assert sync == aio
    assert check("example.org", resolver=resolver(), fetcher=fetcher, deadline=30) == sync


def test_json_has_the_dane_and_mta_sts_facts() -> None:
    """--json / Report.as_dict: each host's DNSSEC status, TLS posture and usable TLSA
    records, the MTA-STS record id and policy (mode, mx, max_age, source) and the TLS-RPT
    rua -- beside the findings."""
    import json

    report = run("example.org")
    assert report.sts_id == "20261201"
    assert report.tlsrpt == ("mailto:tlsrpt@example.org",)
    data = json.loads(json.dumps(report.as_dict()))
    assert data["selection"]["mx_security"] == "secure"
    (host,) = data["selection"]["hosts"]
    assert host["canonical_name"] == "mx1.example.org"
    assert host["address_security"] == "secure"
    assert host["tls"] == {
        "posture": "dane",
        "required": True,
        "authenticate": "dane",
        "tlsa": [f"3 1 1 {SHA}"],
        "tlsa_base_domain": "mx1.example.org",
    }
    assert data["mta_sts"] == {
        "id": "20261201",
        "mode": "enforce",
        "mx": ["mx1.example.org"],
        "max_age": 604800,
        "source": "fetched",
        "warnings": [],
    }
    assert data["tlsrpt"] == ["mailto:tlsrpt@example.org"]


def test_json_mta_sts_when_the_selection_fails_and_without_a_policy() -> None:
    # Every host outside the enforce policy: no selection, the policy still reported.
    failed = run("sts.example.org", {"sts.example.org": policy(mx="other.example.org")})
    assert failed.selection is None
    data = failed.as_dict()
    assert data["selection"] is None
    assert data["mta_sts"]["mode"] == "enforce"
    assert data["mta_sts"]["mx"] == ["other.example.org"]
    assert data["mta_sts"]["id"] == "1"
    # A record whose policy cannot be fetched: the id, no policy.
    unfetched = run("sts.example.org", {}).as_dict()["mta_sts"]
    assert unfetched == {
        "id": "1",
        "mode": None,
        "mx": [],
        "max_age": None,
        "source": None,
        "warnings": [],
    }
    # No _mta-sts record and a malformed TLS-RPT one: nothing to say.
    none = run("badrpt.example.org", {}).as_dict()
    assert none["mta_sts"] is None
    assert none["tlsrpt"] == []
    # Opportunistic hosts: the posture, no TLSA.
    tls = run("sts.example.org", {"sts.example.org": policy()}).as_dict()["selection"]
    assert tls["hosts"][0]["tls"]["posture"] == "dane"  # mx1 has TLSA: DANE outranks STS
    plain = run("insecurehost.example.org").as_dict()["selection"]["hosts"][0]["tls"]
    assert plain["posture"] == "opportunistic"
    assert plain["tlsa"] == []


SECURE_CASES = [
    # (domain, policies or None for the default, code, severity, RFC contains)
    ("bogusmx.example.org", None, "mx-bogus", Severity.ERROR, "RFC 4035"),
    ("tlsafail.example.org", None, "tlsa-lookup-failed", Severity.ERROR, "RFC 7672 §2.1.2"),
    ("unusable.example.org", None, "tlsa-unusable", Severity.WARNING, "RFC 6698 §4.1"),
    ("insecurehost.example.org", None, "tlsa-ignored", Severity.WARNING, "RFC 7672 §2.2.2"),
    ("example.net", None, "dane-insecure-mx", Severity.INFO, "RFC 7672 §2.2.1"),
    ("plain.example.net", None, "mx-unsigned", Severity.INFO, "RFC 7672 §2.2.1"),
    ("sts.example.org", {}, "sts-fetch-failed", Severity.WARNING, "RFC 8461 §3.3"),
    (
        "sts.example.org",
        {"sts.example.org": policy(mx="other.example.org")},
        "sts-mx-mismatch",
        Severity.ERROR,
        "RFC 8461 §4.1",
    ),
    (
        "sts.example.org",
        {"sts.example.org": policy("testing", mx="other.example.org")},
        "sts-mx-mismatch",
        Severity.WARNING,
        "RFC 8461 §4.1",
    ),
    ("sts.example.org", {"sts.example.org": policy("testing")}, "sts-testing", Severity.INFO, "§5"),
    ("sts.example.org", {"sts.example.org": policy("none")}, "sts-mode-none", Severity.INFO, "§5"),
    (
        "sts.example.org",
        {"sts.example.org": policy(max_age="3600")},
        "sts-max-age-short",
        Severity.WARNING,
        "RFC 8461 §3.2",
    ),
    (
        "sts.example.org",
        {"sts.example.org": policy(max_age="99999999999")},
        "sts-policy-warning",
        Severity.WARNING,
        "RFC 8461 §3.2",
    ),
    ("two.example.org", {}, "sts-record-invalid", Severity.WARNING, "RFC 8461 §3.1"),
    ("broken.example.org", {}, "sts-record-invalid", Severity.WARNING, "RFC 8461 §3.1"),
    (
        "norpt.example.org",
        {"norpt.example.org": policy()},
        "tlsrpt-missing",
        Severity.INFO,
        "RFC 8460 §3",
    ),
    ("badrpt.example.org", {}, "tlsrpt-invalid", Severity.WARNING, "RFC 8460 §3"),
]


@pytest.mark.parametrize(("domain", "policies", "code", "severity", "rfc"), SECURE_CASES)
def test_each_secure_finding(
    domain: str, policies: dict[str, str] | None, code: str, severity: Severity, rfc: str
) -> None:
    report = run(domain, policies)
    the(report, code)
    finding = next(f for f in report.findings if f.code == code)
    assert finding.severity is severity, report.findings
    assert rfc in finding.rfc
    assert report.worst is report.findings[0].severity


def test_enforce_mismatch_of_every_host_is_an_error_not_a_crash() -> None:
    report = run("sts.example.org", {"sts.example.org": policy(mx="other.example.org")})
    assert report.selection is None
    assert type(report.error).__name__ == "StsPolicyError"
    assert report.worst is Severity.ERROR


def test_a_u_label_mx_pattern_is_a_policy_warning() -> None:
    report = run(
        "sts.example.org", {"sts.example.org": policy(mx="mx1.example.org\nmx: bücher.example")}
    )
    found = [f for f in report.findings if f.code == "sts-policy-warning"]
    assert len(found) == 1
    assert "A-label" in found[0].message


@finds("dnssec-unknown")
def test_the_fetch_is_for_the_domain_and_unknown_dnssec_is_said_once() -> None:
    fetcher = FakeFetcher({"example.org": ENFORCE})
    report = check("example.org", resolver=FakeResolver.from_zone(ZONE), fetcher=fetcher)
    assert [r.domain for r in fetcher.fetches] == ["example.org"]
    assert [f.code for f in report.findings].count("dnssec-unknown") == 1
    assert codes(report)["dnssec-unknown"] is Severity.INFO
    assert "mx-unsigned" not in codes(report)
    assert report.ok


@finds("sts-not-fetched")
def test_without_httpx_the_policy_is_not_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    import mxselect.check

    monkeypatch.setattr(mxselect.check, "_default_fetcher", lambda: None)
    report = check("sts.example.org", resolver=resolver())
    assert codes(report)["sts-not-fetched"] is Severity.INFO
    assert "sts-fetch-failed" not in codes(report)


def test_cli_sts_policy_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zone = tmp_path / "z.zone"
    zone.write_text(ZONE)
    good = tmp_path / "good.txt"
    good.write_text(ENFORCE)
    short = tmp_path / "short.txt"
    short.write_text(policy(max_age="3600"))
    args = ["check", "--zone", str(zone), "--signed", "example.org"]
    assert main([*args, "--sts-policy", f"example.org={good}", "example.org"]) == 0
    assert main([*args, "--sts-policy", f"sts.example.org={short}", "sts.example.org"]) == 1
    assert "[sts-max-age-short]" in capsys.readouterr().out
    assert main([*args, "sts.example.org"]) == 1  # no policy file: 404, sts-fetch-failed


# ------------------------------------------------------------------------- Knot + Unbound

E2E = [
    ("dane.dnssec.test", {"tlsrpt-missing": Severity.INFO}),
    ("notlsa.dnssec.test", {}),
    ("a6.dnssec.test", {"tlsa-ignored": Severity.WARNING}),
    ("bogus.test", {"mx-bogus": Severity.ERROR}),
    ("dane.bogus.test", {"tlsa-lookup-failed": Severity.ERROR}),
    ("insecure.dnssec.test", {"mx-unsigned": Severity.INFO}),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("domain", "expected"), E2E)
def test_e2e_secure_findings(domain: str, expected: dict[str, Severity], dns_env: object) -> None:
    from mxselect.stub import StubResolver

    port = dns_env.resolver_port  # type: ignore[attr-defined]
    stub = StubResolver([("127.0.0.1", port)], timeout=2.0, lifetime=5.0)
    fetcher = FakeFetcher()  # no _mta-sts records here: nothing is fetched
    sync = check(domain, resolver=stub, fetcher=fetcher)
    aio = asyncio.run(acheck(domain, resolver=stub, fetcher=fetcher))
    for report in (sync, aio):
        found = codes(report)
        assert "dnssec-unknown" not in found, report.findings
        for code, severity in expected.items():
            assert found.get(code) is severity, report.findings
        if not expected:
            assert report.ok, report.findings
    assert fetcher.fetches == []
