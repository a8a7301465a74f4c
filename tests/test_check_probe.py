"""mxselect check --probe and --html: aiosmtpd servers (and raw sockets) on 127.0.0.x with
certificates made here; the unsafe-network rule; the HTML page well-formed, complete, escaped
and self-contained. Loopback only."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest

if not os.environ.get("CI"):  # in CI (.ci/run installs the extras) a missing package fails
    pytest.importorskip("aiosmtpd", reason="pip install -e '.[examples]'")
    pytest.importorskip("cryptography", reason="pip install -e '.[dane]'")
import dane_certs
from dane_certs import DAY, NOW, Pki, make, pki, requirement
from harness.smtp import SmtpServers, port_free_on
from test_check_coverage import finds

from mxselect import Host, Policy, Posture, Selection, Target, TlsRequirement
from mxselect._check_cli import main as check_main
from mxselect.check import Finding, Report, Severity, aprobe, check, probe, render_html
from mxselect.testing import FakeResolver

HOST = "mx1.example.org"
ADDR = "127.0.0.2"
LOOPBACK = Policy().without_unsafe("127.0.0.0/8")


def report_for(*targets: Target) -> Report:
    hosts: dict[str, list[Any]] = {}
    for t in targets:
        hosts.setdefault(t.host, [t.preference, []])[1].append(t.address)
    selection = Selection(
        domain="example.org",
        canonical_domain="example.org",
        targets=targets,
        hosts=tuple(Host(n, p, tuple(a), n) for n, (p, a) in hosts.items()),
    )
    return Report("example.org", (), selection)


def target(tls: TlsRequirement | None = None, address: str = ADDR, host: str = HOST) -> Target:
    if tls is None:
        return Target(host, 10, ipaddress.ip_address(address))
    return Target(host, 10, ipaddress.ip_address(address), tls=tls)


def codes(report: Report) -> list[str]:
    return [f.code for f in report.findings]


def only(report: Report, code: str) -> Finding:
    (finding,) = [f for f in report.findings if f.code == code]
    return finding


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    where = tmp_path_factory.mktemp("probe")
    good: Pki = pki(leaf_dns=(HOST,))
    other: Pki = pki(leaf_dns=(HOST,))
    expired = make(
        None, issuer=good.inter, dns=(HOST,), not_before=NOW - 60 * DAY, not_after=NOW - DAY
    )
    (where / "ca.pem").write_bytes(good.root.pem())
    return {"good": good, "other": other, "expired": expired, "dir": where}


def server_context(certs: dict[str, Any], name: str, *chain: Any) -> ssl.SSLContext:
    return dane_certs.server_context(certs["dir"] / name, *chain)


@pytest.fixture
def smtp() -> Iterator[Callable[..., int]]:
    """start(tls=None, address=ADDR) -> port: aiosmtpd on a port of its own, with STARTTLS
    when ``tls``."""
    with SmtpServers(ADDR) as servers:

        def start(tls: ssl.SSLContext | None = None, address: str = ADDR) -> int:
            port = port_free_on(address)
            servers.start(address, tls=tls, port=port)
            return port

        yield start


@pytest.fixture
def raw() -> Iterator[Callable[..., int]]:
    """start(greeting, *replies) -> port: a socket server that sends ``greeting``, then one of
    ``replies`` for each line it reads, then waits (``greeting=None``: never speaks)."""
    sockets: list[socket.socket] = []
    stop = threading.Event()

    def start(greeting: bytes | None, *replies: bytes) -> int:
        server = socket.socket()
        server.bind((ADDR, 0))
        server.listen(8)
        server.settimeout(0.1)
        sockets.append(server)

        def talk(conn: socket.socket) -> None:
            if greeting is None:
                return
            conn.sendall(greeting)
            stream = conn.makefile("rb")
            for reply in replies:
                if not stream.readline():
                    return
                conn.sendall(reply)

        def serve() -> None:
            held = []
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except (TimeoutError, OSError):
                    continue
                conn.settimeout(5)
                held.append(conn)
                threading.Thread(target=talk, args=(conn,), daemon=True).start()
            for conn in held:
                conn.close()

        threading.Thread(target=serve, daemon=True).start()
        return int(server.getsockname()[1])

    yield start
    stop.set()
    for s in sockets:
        s.close()


# ------------------------------------------------------------------------------- the probe


@finds("probe-ok")
def test_opportunistic_starttls_is_ok(smtp: Any, certs: dict[str, Any]) -> None:
    good = certs["good"]
    port = smtp(server_context(certs, "ok", good.leaf, good.inter))
    report = probe(report_for(target()), policy=LOOPBACK, port=port, timeout=5)
    assert codes(report) == ["probe-ok"]
    text = report.findings[0].message
    assert "banner 220" in text
    assert "STARTTLS TLS" in text
    assert "certificate" in text
    assert report.ok


@finds("dane-mismatch", "probe-ok")
def test_dane_match_and_mismatch(smtp: Any, certs: dict[str, Any]) -> None:
    good, other = certs["good"], certs["other"]
    port = smtp(server_context(certs, "dane", good.leaf, good.inter))
    match = requirement(good.leaf.tlsa(3, 1, 1), reference_ids=(HOST,), base=HOST)
    report = probe(report_for(target(match)), policy=LOOPBACK, port=port, timeout=5)
    assert codes(report) == ["probe-ok"]
    assert "DANE ok" in report.findings[0].message
    wrong = requirement(other.leaf.tlsa(3, 1, 1), reference_ids=(HOST,), base=HOST)
    report = probe(report_for(target(wrong)), policy=LOOPBACK, port=port, timeout=5)
    finding = only(report, "dane-mismatch")
    assert finding.severity is Severity.ERROR
    assert finding.subject == f"{HOST} {ADDR}"
    assert "RFC 7672" in finding.rfc


@finds("sts-certificate-invalid")
def test_sts_certificate_valid_and_invalid(smtp: Any, certs: dict[str, Any]) -> None:
    good, other = certs["good"], certs["other"]
    sts = TlsRequirement(posture=Posture.MTA_STS, required=True, authenticate="pkix", sni=HOST)
    port = smtp(server_context(certs, "sts", good.leaf, good.inter))
    ca = certs["dir"] / "ca.pem"
    report = probe(report_for(target(sts)), policy=LOOPBACK, port=port, timeout=5, cafile=ca)
    assert codes(report) == ["probe-ok"]
    port = smtp(server_context(certs, "sts-bad", other.leaf, other.inter))
    report = probe(report_for(target(sts)), policy=LOOPBACK, port=port, timeout=5, cafile=ca)
    finding = only(report, "sts-certificate-invalid")
    assert finding.severity is Severity.ERROR
    assert "fails the MTA-STS checks" in finding.message
    testing = TlsRequirement(posture=Posture.MTA_STS_TESTING, authenticate="pkix", sni=HOST)
    report = probe(report_for(target(testing)), policy=LOOPBACK, port=port, timeout=5, cafile=ca)
    assert only(report, "sts-certificate-invalid").severity is Severity.WARNING


@finds("certificate-expired")
def test_expired_certificate_opportunistic(smtp: Any, certs: dict[str, Any]) -> None:
    port = smtp(server_context(certs, "expired", certs["expired"], certs["good"].inter))
    report = probe(report_for(target()), policy=LOOPBACK, port=port, timeout=5)
    assert only(report, "certificate-expired").severity is Severity.WARNING


@finds("no-starttls")
def test_no_starttls(smtp: Any, certs: dict[str, Any]) -> None:
    port = smtp(None)
    report = probe(report_for(target()), policy=LOOPBACK, port=port, timeout=5)
    assert only(report, "no-starttls").severity is Severity.WARNING
    dane = requirement(certs["good"].leaf.tlsa(3, 1, 1), reference_ids=(HOST,), base=HOST)
    report = probe(report_for(target(dane)), policy=LOOPBACK, port=port, timeout=5)
    assert only(report, "no-starttls").severity is Severity.ERROR


@finds("tls-handshake-failed")
def test_tls_handshake_failed(raw: Any, certs: dict[str, Any]) -> None:
    """STARTTLS accepted, then not TLS: a warning when cleartext is allowed, else an error."""
    port = raw(
        b"220 mx1 ESMTP\r\n",
        b"250-mx1\r\n250 STARTTLS\r\n",
        b"220 go ahead\r\n",
        b"this is not a TLS record\r\n" * 4,
    )
    report = probe(report_for(target()), policy=LOOPBACK, port=port, timeout=5)
    assert only(report, "tls-handshake-failed").severity is Severity.WARNING
    dane = requirement(certs["good"].leaf.tlsa(3, 1, 1), reference_ids=(HOST,), base=HOST)
    report = probe(report_for(target(dane)), policy=LOOPBACK, port=port, timeout=5)
    assert only(report, "tls-handshake-failed").severity is Severity.ERROR


@finds("probe-ehlo-refused", "probe-banner-not-220")
def test_starttls_refused_and_ehlo_refused(raw: Any) -> None:
    port = raw(b"220 mx1\r\n", b"250-mx1\r\n250 STARTTLS\r\n", b"454 4.7.0 TLS not available\r\n")
    report = probe(report_for(target()), policy=LOOPBACK, port=port, timeout=5)
    assert "454" in only(report, "tls-handshake-failed").message
    port = raw(b"220 mx1\r\n", b"502 5.5.2 no EHLO\r\n")
    report = probe(report_for(target()), policy=LOOPBACK, port=port, timeout=5)
    assert only(report, "probe-ehlo-refused").severity is Severity.WARNING
    port = raw(b"421 4.3.2 busy\r\n")
    report = probe(report_for(target()), policy=LOOPBACK, port=port, timeout=5)
    assert only(report, "probe-banner-not-220").severity is Severity.WARNING


@finds("probe-refused")
def test_refused_port() -> None:
    port = port_free_on(ADDR)  # nothing listens there
    report = probe(report_for(target()), policy=LOOPBACK, port=port, timeout=5)
    finding = only(report, "probe-refused")
    assert finding.severity is Severity.WARNING
    assert "unreachable now" in finding.message


@finds("probe-banner-5xx")
def test_5xx_banner(raw: Any) -> None:
    port = raw(b"554 5.7.1 go away\r\n")
    report = probe(report_for(target()), policy=LOOPBACK, port=port, timeout=5)
    finding = only(report, "probe-banner-5xx")
    assert finding.severity is Severity.ERROR
    assert "554" in finding.message


@finds("probe-timeout")
def test_timeout_server_never_speaks(raw: Any) -> None:
    port = raw(None)
    report = probe(report_for(target()), policy=LOOPBACK, port=port, timeout=0.5)
    finding = only(report, "probe-timeout")
    assert finding.severity is Severity.WARNING
    assert "waiting for the banner" in finding.message
    assert "no answer within the probe timeout of 0.5 s, waiting for the banner" in (
        finding.message
    )


def test_timeout_wording_names_the_bound_never_zero(raw: Any) -> None:
    """Targets cut off by the whole probe's deadline -- those still queued behind the
    concurrency limit when it runs out have 0 s left -- say the deadline, not "within 0 s"."""
    port = raw(None)
    count = 25  # more than PROBE_CONCURRENCY (20): five start only after the deadline
    targets = [target(host=f"mx{i}.example.org") for i in range(count)]
    report = probe(report_for(*targets), policy=LOOPBACK, port=port, timeout=30, deadline=0.3)
    assert codes(report) == ["probe-timeout"] * count
    for finding in report.findings:
        assert "before the probe deadline (0.3 s for the whole probe) ran out" in finding.message
        assert "within 0 s" not in finding.message
        assert "within 0." not in finding.message


def test_targets_run_concurrently_under_the_deadline(raw: Any) -> None:
    port = raw(None)
    targets = [target(host=f"mx{i}.example.org") for i in range(5)]
    report = asyncio.run(
        aprobe(report_for(*targets), policy=LOOPBACK, port=port, timeout=5, deadline=0.5)
    )
    assert codes(report) == ["probe-timeout"] * 5
    # All five were connected at once, so the deadline (not their 5 s timeouts) ended them.
    assert all("probe deadline (0.5 s" in f.message for f in report.findings)


@finds("probe-unsafe-address")
def test_unsafe_address_is_never_connected_to(raw: Any) -> None:
    """With the default policy loopback is unsafe: the probe does not connect at all."""
    accepted: list[int] = []
    server = socket.socket()
    server.bind((ADDR, 0))
    server.listen(1)
    server.settimeout(0.5)
    port = int(server.getsockname()[1])
    try:
        report = probe(report_for(target()), port=port, timeout=1)
        try:
            conn, _ = server.accept()
            accepted.append(1)
            conn.close()
        except TimeoutError:
            pass
    finally:
        server.close()
    assert not accepted
    assert codes(report) == ["probe-unsafe-address"]


def test_probe_keeps_dns_findings_and_without_selection_does_nothing() -> None:
    zone = "$ORIGIN example.org.\n$TTL 3600\n@ MX 10 gone\n"
    report = check("example.org", resolver=FakeResolver.from_zone(zone))
    assert probe(report) == report


# ------------------------------------------------------------------------------- the page


class Checker(HTMLParser):
    VOID: ClassVar[set[str]] = {"meta", "br", "img", "link", "input", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []
        self.attrs: list[str] = []
        self.tags: set[str] = set()
        self.names: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.names |= {n for n, _ in attrs}
        self.attrs += [v or "" for _, v in attrs]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs += [v or "" for _, v in attrs]

    def handle_endtag(self, tag: str) -> None:
        assert self.stack, tag
        assert self.stack[-1] == tag, (self.stack, tag)
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Checker:
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    return checker


ZONE = """
$ORIGIN example.org.
$TTL 3600
@      MX 10 mx1
@      MX 20 via
mx1    A 192.0.2.1
via    CNAME mx1
"""


def test_html_well_formed_complete_and_self_contained() -> None:
    report = check("example.org", resolver=FakeResolver.from_zone(ZONE))
    page = render_html([report])
    checker = parse(page)
    text = "".join(checker.text)
    assert report.selection is not None
    for host in report.selection.hosts:
        assert host.name in text
        for address in host.addresses:
            assert str(address) in text
    for finding in report.findings:
        assert finding.code in text
    assert "<svg" in page
    assert "<script" not in page
    assert "http://" not in page
    assert "https://" not in page
    assert not any(a.startswith(("http:", "https:", "//")) for a in checker.attrs)


def test_html_draws_the_hosts_senders_cannot_use() -> None:
    zone = """
$ORIGIN example.org.
$TTL 3600
@      MX 10 mx1
@      MX 20 gone
@      MX 30 lo
mx1    A 192.0.2.1
lo     A 127.0.0.1
"""
    report = check("example.org", resolver=FakeResolver.from_zone(zone))
    assert {"exchange-nxdomain", "unsafe-address"} <= set(codes(report))
    checker = parse(render_html([report]))
    text = "".join(checker.text)
    for word in ("gone.example.org", "lo.example.org", "127.0.0.1", "not used", "MX 10"):
        assert word in text


def test_html_escapes_hostile_text() -> None:
    hostile = 'x"><script>alert(1)</script><img src=https://evil.test/x>.example.org'
    finding = Finding("probe-ok", Severity.INFO, hostile, hostile, "<b>fix</b>", "RFC 5321")
    t = target(host=hostile, address="192.0.2.9")
    base = report_for(t)
    report = Report('<svg onload="alert(1)">', (finding,), base.selection)
    page = render_html([report])
    assert "<script" not in page
    assert "<img" not in page
    assert "<b>" not in page
    assert 'onload="' not in page
    checker = parse(page)
    assert not checker.tags & {"script", "img", "b", "iframe", "object", "link"}
    assert not any(n.startswith("on") or n in ("src", "href") for n in checker.names)
    assert hostile in "".join(checker.text)  # shown, as text
    assert '<svg onload="alert(1)">' in "".join(checker.text)


# ------------------------------------------------------------------------------- the command


def test_cli_probe_and_html(
    smtp: Any, certs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = certs["good"]
    port = smtp(server_context(certs, "cli", good.leaf, good.inter))
    zone = tmp_path / "zone"
    zone.write_text("$ORIGIN example.org.\n$TTL 3600\n@ MX 10 mx1\nmx1 A 127.0.0.2\n")
    page = tmp_path / "report.html"
    code = check_main(
        [
            "--zone", str(zone), "--allow-network", "127.0.0.0/8", "-4", "--probe",
            "--probe-port", str(port), "--probe-timeout", "5",
            "--html", str(page), "example.org",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "[probe-ok] mx1.example.org 127.0.0.2" in out, out
    assert code == 0  # single-mx, no-ipv6 (IPv4 only: not asked), probe-ok: INFO
    parse(page.read_text(encoding="utf-8"))
    assert "probe-ok" in page.read_text(encoding="utf-8")


# ------------------------------------------------------------- end to end: Knot + Unbound
#
# The reports are made through the validating Unbound (harness zones: mta.test. has mx1 at
# 127.0.0.2 and mx2 at 127.0.0.3; probe.dnssec.test. a signed MX host at 127.0.0.2 with a
# TLSA record of no real key; stsprobe.sts.test. an MTA-STS domain whose MX is
# mx1.mta.test.), then probed: the server of the case listens on 127.0.0.2, nothing on
# 127.0.0.3 at that port (probe-refused for mx2). Loopback only.

MX1, MX2 = "mx1.mta.test 127.0.0.2", "mx2.mta.test 127.0.0.3"


def through_unbound(domain: str, dns_env: Any, **kwargs: Any) -> Report:
    from mxselect.stub import StubResolver
    from mxselect.testing import FakeFetcher

    stub = StubResolver([("127.0.0.1", dns_env.resolver_port)], timeout=2.0, lifetime=5.0)
    kwargs.setdefault("fetcher", FakeFetcher())
    report = check(domain, resolver=stub, policy=LOOPBACK, **kwargs)
    assert report.selection is not None, report.findings
    assert "dnssec-unknown" not in codes(report), report.findings
    return report


def serve(case: str, raw: Any, smtp: Any, certs: dict[str, Any]) -> int:
    """Start the server of ``case`` on 127.0.0.2: its port."""
    good = certs["good"]
    if case == "ok":
        return int(smtp(server_context(certs, "e2e-ok", good.leaf, good.inter)))
    if case == "expired":
        return int(smtp(server_context(certs, "e2e-expired", certs["expired"], good.inter)))
    if case == "no-starttls":
        return int(smtp(None))
    greetings = {
        "banner-5xx": (b"554 5.7.1 go away\r\n",),
        "banner-421": (b"421 4.3.2 busy\r\n",),
        "no-ehlo": (b"220 mx1\r\n", b"502 5.5.2 no EHLO\r\n"),
        "not-tls": (
            b"220 mx1 ESMTP\r\n",
            b"250-mx1\r\n250 STARTTLS\r\n",
            b"220 go ahead\r\n",
            b"this is not a TLS record\r\n" * 4,
        ),
    }
    if case == "silent":
        return int(raw(None))
    return int(raw(*greetings[case]))


E2E_PROBE = [
    ("ok", {"probe-ok": Severity.INFO, "probe-refused": Severity.WARNING}),
    ("banner-5xx", {"probe-banner-5xx": Severity.ERROR}),
    ("banner-421", {"probe-banner-not-220": Severity.WARNING}),
    ("no-ehlo", {"probe-ehlo-refused": Severity.WARNING}),
    ("no-starttls", {"no-starttls": Severity.WARNING}),
    ("not-tls", {"tls-handshake-failed": Severity.WARNING}),
    ("expired", {"certificate-expired": Severity.WARNING}),
    ("silent", {"probe-timeout": Severity.WARNING}),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("case", "expected"), E2E_PROBE)
def test_e2e_probe(
    case: str,
    expected: dict[str, Severity],
    dns_env: Any,
    raw: Any,
    smtp: Any,
    certs: dict[str, Any],
) -> None:
    """mta.test. through Unbound, then probed: mx1's server gives the case's finding, mx2
    (nothing listening) probe-refused."""
    port = serve(case, raw, smtp, certs)
    report = probe(
        through_unbound("mta.test", dns_env), policy=LOOPBACK, port=port, timeout=2, deadline=10
    )
    by_subject = {(f.code, f.subject): f.severity for f in report.findings}
    for code, severity in expected.items():
        subject = MX2 if code == "probe-refused" else MX1
        assert by_subject.get((code, subject)) is severity, report.findings
    assert by_subject.get(("probe-refused", MX2)) is Severity.WARNING, report.findings


@pytest.mark.e2e
@finds("probe-unsafe-address")
def test_e2e_probe_never_connects_to_unsafe_addresses(dns_env: Any, raw: Any) -> None:
    """The report made with loopback allowed, the probe with the default policy: neither
    127.0.0.2 nor 127.0.0.3 is connected to."""
    port = raw(b"220 mx1\r\n")
    report = probe(through_unbound("mta.test", dns_env), port=port, timeout=2)
    probed = [f for f in report.findings if f.code.startswith("probe-")]
    assert {(f.code, f.subject) for f in probed} == {
        ("probe-unsafe-address", MX1),
        ("probe-unsafe-address", MX2),
    }


@pytest.mark.e2e
@finds("dane-mismatch")
def test_e2e_dane_mismatch(dns_env: Any, smtp: Any, certs: dict[str, Any]) -> None:
    """probe.dnssec.test.: a validated MX host with a secure TLSA 3 1 1 record (DANE
    posture from the check itself), whose server presents a certificate it does not match."""
    good = certs["good"]
    port = smtp(server_context(certs, "e2e-dane", good.leaf, good.inter))
    report = through_unbound("probe.dnssec.test", dns_env)
    assert report.selection is not None
    assert [str(t.tls.posture) for t in report.selection.targets] == ["dane"]
    report = probe(report, policy=LOOPBACK, port=port, timeout=5)
    finding = only(report, "dane-mismatch")
    assert finding.severity is Severity.ERROR
    assert finding.subject == "mx.probe.dnssec.test 127.0.0.2"


@pytest.mark.e2e
@finds("sts-certificate-invalid")
def test_e2e_sts_certificate_invalid(
    dns_env: Any, smtp: Any, certs: dict[str, Any], tmp_path: Path
) -> None:
    """stsprobe.sts.test.: its MTA-STS policy (enforce, mx: mx1.mta.test) fetched from the
    loopback HTTPS server; mx1's SMTP server presents a certificate of a CA not trusted."""
    from harness.https import PolicyServer, Site

    from mxselect.fetch import HttpxFetcher

    body = b"version: STSv1\r\nmode: enforce\r\nmx: mx1.mta.test\r\nmax_age: 604800\r\n"
    other = certs["other"]
    port = smtp(server_context(certs, "e2e-sts", other.leaf, other.inter))
    with PolicyServer(tmp_path, {"stsprobe.sts.test": Site(body=body)}) as server:
        fetcher = HttpxFetcher(connect_to=server.connect_to(), verify=str(server.ca_file))
        report = through_unbound("stsprobe.sts.test", dns_env, fetcher=fetcher)
    assert report.selection is not None
    assert [str(t.tls.posture) for t in report.selection.targets] == ["mta-sts"]
    report = probe(report, policy=LOOPBACK, port=port, timeout=5, cafile=certs["dir"] / "ca.pem")
    finding = only(report, "sts-certificate-invalid")
    assert finding.severity is Severity.ERROR
    assert finding.subject == MX1
