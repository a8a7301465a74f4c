"""mxselect.check and ``mxselect check``: one test per finding from a zone (FakeResolver), a
healthy domain, the JSON schema, exit codes, batch mode; end to end through Knot + Unbound."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from test_check_coverage import finds

from mxselect import Policy
from mxselect._cli import main
from mxselect.check import Finding, Report, Severity, acheck, check
from mxselect.testing import FakeResolver

ZONE = """
$ORIGIN example.org.
$TTL 3600
@            MX 10 mx1
@            MX 20 mx2
mx1          A 192.0.2.1
mx1          AAAA 2001:db8::1
mx2          A 192.0.2.2
mx2          AAAA 2001:db8::2
alias        CNAME example.org.
nullmx       MX 0 .
nullpref     MX 10 .
mixednull    MX 0 .
mixednull    MX 10 mx1
implicit     A 192.0.2.30
noaddr       TXT "nothing"
cnamemx      MX 10 via
cnamemx      MX 20 mx2
via          CNAME mx1
ipmx         MX 10 192.0.2.5.
ipmx         MX 20 mx2
badname      MX 10 bad_name
badname      MX 20 mx2
dup          MX 10 mx1
dup          MX 20 mx1
dup          MX 30 mx2
dupaddr      MX 10 mx1
dupaddr      MX 20 same
same         A 192.0.2.1
same         AAAA 2001:db8::1
nxhost       MX 10 gone
nxhost       MX 20 mx2
nodatahost   MX 10 noaddr
nodatahost   MX 20 mx2
onlynodata   MX 10 noaddr
deadhost     MX 10 dead
deadhost     MX 20 mx2
onlydead     MX 10 dead
dead         A 192.0.2.99
partial      MX 10 half
partial      MX 20 mx2
half         A 192.0.2.7
half         AAAA 2001:db8::7
loopback     MX 10 lo
loopback     MX 20 mx2
lo           A 127.0.0.1
private      MX 10 internal
private      MX 20 mx2
internal     A 10.1.2.3
single       MX 10 mx1
v4           MX 10 v4host
v4           MX 20 mx2v4
v4host       A 192.0.2.40
mx2v4        A 192.0.2.41
v6           MX 10 v6host
v6host       AAAA 2001:db8::60
short        300 MX 10 mx1
short        MX 20 mx2
shorter      60 MX 10 mx1
shorter      MX 20 mx2
long         1209600 MX 10 mx1
long         1209600 MX 20 mx2
servfail     MX 10 mx1
"""


def resolver() -> FakeResolver:
    fake = FakeResolver.from_zone(ZONE)
    fake.fail("dead.example.org", None, "SERVFAIL")
    fake.fail("half.example.org", "AAAA", "timeout")
    fake.fail("servfail.example.org", "MX", "SERVFAIL")
    return fake


def run(domain: str) -> Report:
    return check(domain, resolver=resolver())


def codes(report: Report) -> dict[str, Severity]:
    """The findings by code, without ``dnssec-unknown``: a FakeResolver without ``security``
    (and a non-validating resolver) cannot say, and every check says so once (its own test
    is in tests/test_check_secure.py)."""
    return {f.code: f.severity for f in report.findings if f.code != "dnssec-unknown"}


def test_healthy_domain_has_no_warning_or_error() -> None:
    report = run("example.org")
    assert [f.code for f in report.findings] == ["dnssec-unknown"]
    assert report.ok
    assert report.worst is Severity.INFO
    assert report.selection is not None
    assert len(report.selection.targets) == 4
    assert report.error is None


# One case per finding: (domain, code, severity, the subject contains, the RFC contains).
CASES = [
    ("alias.example.org", "domain-is-cname", Severity.WARNING, "alias.example.org", "2181"),
    ("nullmx.example.org", "null-mx", Severity.INFO, "nullmx", "RFC 7505"),
    ("nullpref.example.org", "null-mx-preference", Severity.WARNING, "MX .", "RFC 7505 §3"),
    ("mixednull.example.org", "null-mx-mixed", Severity.ERROR, "MX 0 .", "RFC 7505 §3"),
    ("implicit.example.org", "no-mx", Severity.INFO, "implicit", "RFC 5321 §5.1"),
    ("noaddr.example.org", "no-mx-no-address", Severity.ERROR, "noaddr", "RFC 7505"),
    ("nowhere.example.org", "no-such-domain", Severity.ERROR, "nowhere", "RFC 5321 §5.1"),
    ("cnamemx.example.org", "mx-is-cname", Severity.WARNING, "via.example.org", "2181 §10.3"),
    ("ipmx.example.org", "mx-is-address", Severity.ERROR, "192.0.2.5", "RFC 5321 §5.1"),
    ("badname.example.org", "invalid-exchange", Severity.ERROR, "bad_name", "RFC 5321"),
    ("dup.example.org", "duplicate-host", Severity.WARNING, "mx1.example.org", "5321"),
    ("dupaddr.example.org", "duplicate-address", Severity.WARNING, "same", "5321"),
    ("nxhost.example.org", "exchange-nxdomain", Severity.ERROR, "gone.example.org", "5321"),
    ("nodatahost.example.org", "exchange-no-address", Severity.ERROR, "noaddr", "5321"),
    ("onlynodata.example.org", "no-usable-exchange", Severity.ERROR, "onlynodata", "5321"),
    ("deadhost.example.org", "exchange-lookup-failed", Severity.WARNING, "dead", "5321"),
    ("onlydead.example.org", "mail-deferred", Severity.ERROR, "onlydead", "§4.5.4.1"),
    ("servfail.example.org", "mx-lookup-failed", Severity.ERROR, "MX servfail", "§5.1"),
    ("partial.example.org", "address-lookup-failed", Severity.WARNING, "half", "5321"),
    ("loopback.example.org", "unsafe-address", Severity.ERROR, "127.0.0.1", "RFC 6890"),
    ("private.example.org", "private-address", Severity.ERROR, "10.1.2.3", "RFC 1918"),
    ("single.example.org", "single-mx", Severity.INFO, "mx1.example.org", "5321"),
    ("v4.example.org", "no-ipv6", Severity.INFO, "v4.example.org", "RFC 3974"),
    ("v6.example.org", "no-ipv4", Severity.WARNING, "v6.example.org", "RFC 3974"),
    ("shorter.example.org", "ttl-short", Severity.INFO, "MX shorter", "RFC 2181 §8"),
    ("long.example.org", "ttl-long", Severity.WARNING, "MX long", "RFC 8767 §4"),
    ("bad..domain", "invalid-domain", Severity.ERROR, "bad..domain", "RFC 5321"),
]


@pytest.mark.parametrize(("domain", "code", "severity", "subject", "rfc"), CASES)
def test_each_finding(domain: str, code: str, severity: Severity, subject: str, rfc: str) -> None:
    report = run(domain)
    found = [f for f in report.findings if f.code == code]
    assert len(found) == 1, report.findings
    finding = found[0]
    assert finding.severity is severity
    assert subject in finding.subject
    assert rfc in finding.rfc
    assert finding.message.endswith(".")
    assert finding.fix
    assert report.worst is report.findings[0].severity
    assert [f.severity.rank for f in report.findings] == sorted(
        (f.severity.rank for f in report.findings), reverse=True
    )


def test_only_the_finding_of_the_case() -> None:
    """The broken shapes do not drag in unrelated findings (a healthy backup stays quiet)."""
    assert codes(run("nxhost.example.org")) == {"exchange-nxdomain": Severity.ERROR}
    assert codes(run("deadhost.example.org")) == {"exchange-lookup-failed": Severity.WARNING}
    assert codes(run("nullmx.example.org")) == {"null-mx": Severity.INFO}
    assert codes(run("short.example.org")) == {}  # 300 s is not short


def test_temporary_is_a_warning_nxdomain_an_error() -> None:
    """The difference between "unreachable right now" and "broken"."""
    failing = run("deadhost.example.org").findings[0]
    broken = run("nxhost.example.org").findings[0]
    assert failing.severity is Severity.WARNING
    assert "right now" in failing.message
    assert broken.severity is Severity.ERROR
    assert "does not exist" in broken.message


def test_private_address_on_an_internal_domain_is_info() -> None:
    fake = FakeResolver.from_zone(
        "$ORIGIN corp.test.\n$TTL 3600\n@ MX 10 mx\n@ MX 20 mx2\nmx A 10.0.0.5\nmx2 A 192.0.2.9\n"
    )
    found = codes(check("corp.test", resolver=fake))
    assert found["private-address"] is Severity.INFO


@finds("too-many-mx-hosts")
def test_more_than_twenty_mx_hosts() -> None:
    lines = ["$ORIGIN many.example.", "$TTL 3600"]
    lines += [
        f"@ MX {i} h{i}\nh{i} A 192.0.2.{i + 1}\nh{i} AAAA 2001:db8::{i + 1}" for i in range(25)
    ]
    report = check("many.example", resolver=FakeResolver.from_zone("\n".join(lines)))
    assert codes(report) == {"too-many-mx-hosts": Severity.WARNING}
    assert report.selection is not None
    assert len(report.selection.hosts) == 25


def test_policy_unsafe_networks_apply() -> None:
    report = check(
        "private.example.org", resolver=resolver(), policy=Policy().with_unsafe("10.0.0.0/8")
    )
    assert codes(report)["unsafe-address"] is Severity.ERROR
    assert "private-address" not in codes(report)


def test_acheck_is_the_same() -> None:
    for domain in ("example.org", "cnamemx.example.org", "onlydead.example.org"):
        assert asyncio.run(acheck(domain, resolver=resolver())) == run(domain)


def test_finding_and_report_values() -> None:
    report = run("cnamemx.example.org")
    finding = report.findings[0]
    assert isinstance(finding, Finding)
    with pytest.raises(AttributeError):
        finding.code = "x"  # type: ignore[misc]
    data = report.as_dict()
    assert data["schema"] == 1
    assert set(data) == {
        *("schema", "domain", "worst", "counts", "findings", "selection", "error"),
        *("mta_sts", "tlsrpt"),
    }
    assert set(data["findings"][0]) == {"code", "severity", "subject", "message", "fix", "rfc"}
    assert data["counts"] == {"error": 0, "warning": 1, "info": 1}  # + dnssec-unknown
    assert set(data["selection"]) == {
        *("canonical_domain", "implicit", "ttl", "mx_security", "hosts"),
    }
    assert set(data["selection"]["hosts"][0]) == {
        *("name", "preference", "addresses", "canonical_name", "address_security", "tls"),
    }
    assert data["mta_sts"] is None
    assert data["tlsrpt"] == []
    error = run("onlydead.example.org").as_dict()["error"]
    assert error["type"] == "DNSTemporaryError"
    assert error["reply_code"] == 451
    assert error["permanent"] is False


# ------------------------------------------------------------------------------------- CLI


@pytest.fixture
def zone(tmp_path: Path) -> Path:
    path = tmp_path / "check.zone"
    path.write_text(ZONE)
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_exit_codes(zone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "--zone", str(zone), "example.org")[0] == 0
    assert cli(capsys, "--zone", str(zone), "single.example.org")[0] == 0  # info only
    assert cli(capsys, "--zone", str(zone), "cnamemx.example.org")[0] == 1
    assert cli(capsys, "--zone", str(zone), "nxhost.example.org")[0] == 2
    assert cli(capsys, "--zone", str(zone), "example.org", "cnamemx.example.org")[0] == 1
    assert cli(capsys, "--zone", str(zone), "cnamemx.example.org", "nxhost.example.org")[0] == 2
    assert cli(capsys, "--zone", str(zone))[0] == 64
    assert cli(capsys, "--zone", str(zone), "--bogus", "x")[0] == 64


def test_cli_human_output(zone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--zone", str(zone), "--signed", "example.org"]  # signed: no dnssec-unknown
    _code, out, _ = cli(capsys, *args, "example.org", "dup.example.org")
    assert out.splitlines()[0] == "example.org: ok (no findings)"
    assert "dup.example.org: problems found (1 warning)" in out
    assert "  warning:\n    [duplicate-host] MX mx1.example.org (RFC 5321 §5.1)\n" in out
    assert "      fix: Remove the duplicate MX record." in out


def test_cli_groups_by_severity(zone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = cli(capsys, "--zone", str(zone), "v4.example.org", "mixednull.example.org")
    text = out.split("mixednull.example.org:")[1]
    assert text.index("  error:") < text.index("  info:")


def test_cli_json(zone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys,
        *("--zone", str(zone), "--signed", "example.org", "--json"),
        *("user@nxhost.example.org", "example.org"),
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 2
    assert [d["domain"] for d in lines] == ["nxhost.example.org", "example.org"]
    assert lines[0]["input"] == "user@nxhost.example.org"
    assert lines[0]["worst"] == "error"
    assert lines[1]["worst"] is None
    assert lines[0]["findings"][0]["code"] == "exchange-nxdomain"
    assert all(d["schema"] == 1 for d in lines)


def test_cli_batch(zone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch = tmp_path / "domains.txt"
    batch.write_text("# a list\nexample.org\n\ncnamemx.example.org\nnxhost.example.org\n")
    code, out, err = cli(capsys, "--zone", str(zone), "--json", "--in-order", "-f", str(batch))
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 2
    assert [(d["domain"], d["line"]) for d in lines] == [
        ("example.org", 2),
        ("cnamemx.example.org", 4),
        ("nxhost.example.org", 5),
    ]
    assert "mxselect check: 3 domains" in err
    for label in ("ok", "warnings", "errors"):
        assert f"  {label}" in err
    assert "exit 2" in err
    code, out, err = cli(capsys, "--zone", str(zone), "-q", "-f", str(batch))
    assert code == 2
    assert err == ""
    assert len(out.splitlines()) > 3


def test_selection_command_unchanged(zone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without ``check`` first, ``mxselect`` still selects."""
    assert main(["--zone", str(zone), "example.org"]) == 0
    assert "target(s)" in capsys.readouterr().out


# ------------------------------------------------------------------------- Knot + Unbound


E2E = [
    ("example.test", {}),
    ("partial.example.test", {"exchange-nxdomain": Severity.ERROR}),
    ("deadmx.example.test", {"exchange-lookup-failed": Severity.WARNING}),
    ("onlydead.example.test", {"mail-deferred": Severity.ERROR}),
    ("noaddr.example.test", {"no-usable-exchange": Severity.ERROR}),
    ("ipmx.example.test", {"mx-is-address": Severity.ERROR}),
    ("lo-mx.example.test", {"unsafe-address": Severity.ERROR}),
    ("alias.example.test", {"domain-is-cname": Severity.WARNING}),
    ("nullmx.test", {"null-mx": Severity.INFO}),
    ("dualnull.test", {"null-mx-mixed": Severity.ERROR}),
    ("nomx.test", {"no-mx": Severity.INFO}),
    ("cname.test", {"mx-is-cname": Severity.WARNING}),
    ("nx.example.test", {"no-such-domain": Severity.ERROR}),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("domain", "expected"), E2E)
def test_e2e_findings(
    domain: str,
    expected: dict[str, Severity],
    unbound_resolver: object,
    async_unbound_resolver: object,
) -> None:
    """Through Knot + Unbound on loopback: the finding appears (sync and asyncio)."""
    from mxselect.dnspython import AsyncDnspythonResolver, DnspythonResolver

    sync = check(domain, resolver=DnspythonResolver(unbound_resolver))  # type: ignore[arg-type]
    aio = asyncio.run(
        acheck(domain, resolver=AsyncDnspythonResolver(async_unbound_resolver))  # type: ignore[arg-type]
    )
    for report in (sync, aio):
        found = codes(report)
        for code, severity in expected.items():
            assert found.get(code) is severity, report.findings
        if not expected:
            assert report.ok, report.findings
    # The TTLs seen through a caching resolver are the time left (ttl-short may differ).
    assert codes(sync).keys() - {"ttl-short"} == codes(aio).keys() - {"ttl-short"}


@pytest.mark.e2e
def test_e2e_cli(dns_env: object, capsys: pytest.CaptureFixture[str]) -> None:
    """``mxselect check --nameserver`` against Unbound: exit codes by the worst finding."""
    port = dns_env.resolver_port  # type: ignore[attr-defined]
    args = ["--nameserver", f"127.0.0.1:{port}", "--timeout", "5", "--no-cache"]
    assert cli(capsys, *args, "example.test")[0] == 0
    assert cli(capsys, *args, "cname.test")[0] == 1
    code, out, _ = cli(capsys, *args, "--json", "partial.example.test")
    assert code == 2
    assert json.loads(out)["findings"][0]["code"] == "exchange-nxdomain"


@finds("bad-answer")
def test_bad_answer() -> None:
    """A resolver answering AAAA with an IPv4 address: ``bad-answer`` (a warning)."""
    from mxselect import Answer, Query, RRType

    fake = resolver()

    class Wrong:
        def resolve(self, query: Query) -> Answer:
            if query.name == "mx2.example.org." and query.rtype is RRType.AAAA:
                return Answer.from_addresses(["2001:db8::2", "192.0.2.2"], ttl=3600)
            return fake.resolve(query)

    assert codes(check("example.org", resolver=Wrong())) == {"bad-answer": Severity.WARNING}


# ------------------------------------------------- SelectionWarning.address (structured)


def test_warnings_carry_the_address_structured() -> None:
    """The address-related warnings say their address in a field: the check reads it, not
    the message text (whose wording may change)."""
    import ipaddress

    from mxselect import WarningCode, select_targets

    selection = select_targets("loopback.example.org", resolver=resolver())
    (unsafe,) = [w for w in selection.warnings if w.code is WarningCode.UNSAFE_ADDRESS]
    assert unsafe.host == "lo.example.org"
    assert unsafe.address == ipaddress.ip_address("127.0.0.1")
    assert unsafe.listed_for is None
    selection = select_targets("dupaddr.example.org", resolver=resolver())
    dups = [w for w in selection.warnings if w.code is WarningCode.DUPLICATE_ADDRESS]
    assert {(w.host, str(w.address), w.listed_for) for w in dups} == {
        ("same.example.org", "192.0.2.1", "mx1.example.org"),
        ("same.example.org", "2001:db8::1", "mx1.example.org"),
    }
    report = check("ipmx.example.org", resolver=resolver())
    assert report.selection is not None
    (literal,) = [w for w in report.selection.warnings if w.code is WarningCode.MX_IS_ADDRESS]
    assert literal.address == ipaddress.ip_address("192.0.2.5")
    # The others have none; and the old three-argument form still builds a warning.
    from mxselect import SelectionWarning

    old = SelectionWarning(WarningCode.DUPLICATE_HOST, "text", "mx1.example.org")
    assert old.address is None
    assert old.listed_for is None


def test_the_check_does_not_parse_warning_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every warning message replaced by nonsense, the address findings still name
    the right addresses and hosts: they come from the structured fields."""
    from mxselect import _core

    real = _core.SelectionWarning

    def garbled(code: object, message: str, host: str | None = None, **kw: object) -> object:
        return real(code, "x y z", host, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(_core, "SelectionWarning", garbled)
    unsafe = next(f for f in run("loopback.example.org").findings if f.code == "unsafe-address")
    assert unsafe.subject == "lo.example.org 127.0.0.1"
    dup = next(f for f in run("dupaddr.example.org").findings if f.code == "duplicate-address")
    assert "as mx1.example.org (2001:db8::1, 192.0.2.1)" in dup.message


def test_cli_json_warnings_have_the_address(zone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``mxselect DOMAIN --json``: each warning has an ``address`` key (``null`` if none)."""
    assert main(["--zone", str(zone), "--json", "loopback.example.org"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert [(w["code"], w["host"], w["address"]) for w in warnings] == [
        ("unsafe-address", "lo.example.org", "127.0.0.1"),
        ("host-unusable", "lo.example.org", None),
    ]
    main(["--zone", str(zone), "--json", "cnamemx.example.org"])
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert [(w["code"], w["address"]) for w in warnings] == [("exchange-is-alias", None)]
