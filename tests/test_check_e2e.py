"""``mxselect check`` end to end: each finding produced by real DNS -- Knot serving the harness
zones (``tests/harness/zones/``), the validating Unbound in front -- and, for MTA-STS, the real
loopback HTTPS policy server (``tests/harness/https.py``). One test per finding code, named
after it (tracker issue 18). The FakeResolver tests of the same findings are in
tests/test_check.py and tests/test_check_secure.py; the Knot + Unbound tests of the findings
not here are there too (their ``E2E`` tables). Loopback only.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_check_coverage import finds

from mxselect.check import Report, Severity, acheck, check
from mxselect.testing import FakeFetcher

pytestmark = pytest.mark.e2e

#: The exchange of every sts.test. domain here (the `mx` of the policies served).
STS_MX = "mx1.sts.test"


def codes(report: Report) -> dict[str, Severity]:
    return {f.code: f.severity for f in report.findings}


def stub(port: int, **kwargs: Any) -> Any:
    from mxselect.stub import StubResolver

    return StubResolver([("127.0.0.1", port)], timeout=2.0, lifetime=5.0, **kwargs)


def through_unbound(domain: str, dns_env: Any, **kwargs: Any) -> list[Report]:
    """The reports of ``domain`` through Unbound: the stub resolver (sync and asyncio) and the
    dnspython adapter. ``kwargs`` go to :func:`check` (a ``fetcher`` only to the sync ones)."""
    import dns.resolver

    from mxselect.dnspython import DnspythonResolver

    port = dns_env.resolver_port
    resolver = stub(port)
    dnspython = dns.resolver.Resolver(configure=False)
    dnspython.nameservers = ["127.0.0.1"]
    dnspython.port = port
    dnspython.timeout, dnspython.lifetime = 2.0, 5.0
    dnspython.cache = None
    reports = [
        check(domain, resolver=resolver, **kwargs),
        check(domain, resolver=DnspythonResolver(dnspython), **kwargs),
    ]
    if "fetcher" not in kwargs:
        reports.append(asyncio.run(acheck(domain, resolver=resolver, **kwargs)))
    return reports


def assert_found(reports: list[Report], code: str, severity: Severity, subject: str = "") -> None:
    for report in reports:
        found = [f for f in report.findings if f.code == code]
        assert found, report.findings
        assert {f.severity for f in found} == {severity}, report.findings
        assert any(subject in f.subject for f in found), report.findings
        assert "dnssec-unknown" not in codes(report), report.findings


# ------------------------------------------------------------------------------- DNS findings


@finds("invalid-domain")
def test_invalid_domain(dns_env: Any) -> None:
    """No DNS is needed to say so, and none is asked."""
    assert_found(through_unbound("bad..domain", dns_env), "invalid-domain", Severity.ERROR)


@finds("mx-lookup-failed")
def test_mx_lookup_failed(dns_env: Any) -> None:
    """dead.test. is stubbed by Unbound to a port where nothing listens: SERVFAIL."""
    reports = through_unbound("chk.dead.test", dns_env)
    assert_found(reports, "mx-lookup-failed", Severity.ERROR)


@finds("address-lookup-failed")
def test_address_lookup_failed(dns_env: Any) -> None:
    """partial.bogus.test.: the MX validates; its host's A RRset is bogus (SERVFAIL, EDE 6)
    while its AAAA validates -- one family fails, senders use the other."""
    reports = through_unbound("partial.bogus.test", dns_env)
    assert_found(reports, "address-lookup-failed", Severity.WARNING, "mx1.bogus.test")
    for report in reports:
        assert report.selection is not None
        assert [str(a) for a in report.selection.addresses] == ["2001:db8::70"]


@finds("no-mx-no-address")
def test_no_mx_no_address(dns_env: Any) -> None:
    reports = through_unbound("nodata-host.example.test", dns_env)
    assert_found(reports, "no-mx-no-address", Severity.ERROR)


@finds("invalid-exchange")
def test_invalid_exchange(dns_env: Any) -> None:
    reports = through_unbound("chk-badname.example.test", dns_env)
    assert_found(reports, "invalid-exchange", Severity.ERROR, "bad_name")


@finds("exchange-no-address")
def test_exchange_no_address(dns_env: Any) -> None:
    reports = through_unbound("chk-noaddr.example.test", dns_env)
    assert_found(reports, "exchange-no-address", Severity.ERROR, "nodata-host.example.test")


@finds("private-address")
def test_private_address(dns_env: Any) -> None:
    """10.1.2.3 on a domain under .test (never public): only info."""
    reports = through_unbound("chk-private.example.test", dns_env)
    assert_found(reports, "private-address", Severity.INFO, "private.example.test")


@finds("duplicate-host")
def test_duplicate_host(dns_env: Any) -> None:
    reports = through_unbound("chk-dup.example.test", dns_env)
    assert_found(reports, "duplicate-host", Severity.WARNING, "mx1.example.test")


@finds("duplicate-address")
def test_duplicate_address(dns_env: Any) -> None:
    assert_found(
        through_unbound("chk-dupaddr.example.test", dns_env), "duplicate-address", Severity.WARNING
    )


@finds("null-mx-preference")
def test_null_mx_preference(dns_env: Any) -> None:
    reports = through_unbound("chk-nullpref.example.test", dns_env)
    assert_found(reports, "null-mx-preference", Severity.WARNING)


@finds("too-many-mx-hosts")
def test_too_many_mx_hosts(dns_env: Any) -> None:
    """bigmx.test.: 60 MX hosts, generated at start-up."""
    reports = through_unbound("bigmx.test", dns_env)
    assert_found(reports, "too-many-mx-hosts", Severity.WARNING)


@finds("no-ipv4")
def test_no_ipv4(dns_env: Any) -> None:
    assert_found(through_unbound("chk-v6.example.test", dns_env), "no-ipv4", Severity.WARNING)


@finds("no-ipv6")
def test_no_ipv6(dns_env: Any) -> None:
    assert_found(through_unbound("chk-v4.example.test", dns_env), "no-ipv6", Severity.INFO)


@finds("single-mx")
def test_single_mx(dns_env: Any) -> None:
    reports = through_unbound("chk-v4.example.test", dns_env)
    assert_found(reports, "single-mx", Severity.INFO, "v4only.example.test")
    for report in through_unbound("example.test", dns_env):
        assert "single-mx" not in codes(report)


@finds("ttl-short")
def test_ttl_short(dns_env: Any) -> None:
    assert_found(through_unbound("chk-ttlshort.example.test", dns_env), "ttl-short", Severity.INFO)


@finds("ttl-long")
def test_ttl_long(dns_env: Any) -> None:
    """Through Knot itself: Unbound caps the TTLs it hands out (cache-max-ttl, a day), so a
    caching resolver never shows a 14-day TTL -- asked directly, the published one is seen."""
    knot = stub(dns_env.auth_port)
    report = check("chk-ttllong.example.test", resolver=knot)
    assert codes(report).get("ttl-long") is Severity.WARNING, report.findings
    for report in through_unbound("chk-ttllong.example.test", dns_env):
        assert "ttl-long" not in codes(report), report.findings


@finds("dnssec-unknown")
def test_dnssec_unknown(dns_env: Any) -> None:
    """The same Unbound, its AD bit not trusted: said once, and no DNSSEC finding made."""
    report = check("insecure.dnssec.test", resolver=stub(dns_env.resolver_port, trust_ad=False))
    assert [f.code for f in report.findings].count("dnssec-unknown") == 1
    assert codes(report)["dnssec-unknown"] is Severity.INFO
    assert "mx-unsigned" not in codes(report)
    for trusted in through_unbound("insecure.dnssec.test", dns_env):
        assert "mx-unsigned" in codes(trusted)


# -------------------------------------------------------------------------------------- DANE


@finds("tlsa-unusable")
def test_tlsa_unusable(dns_env: Any) -> None:
    """dnssec.test.: a secure TLSA RRset holding only a PKIX-TA (0 0 1) record."""
    reports = through_unbound("unusable.dnssec.test", dns_env)
    assert_found(reports, "tlsa-unusable", Severity.WARNING, "mx.unusable.dnssec.test")


@finds("dane-insecure-mx")
def test_dane_insecure_mx(dns_env: Any) -> None:
    """The unsigned example.test. names mx.dane.dnssec.test. (secure A, usable secure TLSA)."""
    reports = through_unbound("chk-daneins.example.test", dns_env)
    assert_found(reports, "dane-insecure-mx", Severity.INFO, "mx.dane.dnssec.test")
    assert_found(reports, "mx-unsigned", Severity.INFO)


# ------------------------------------------------------------------------- MTA-STS, TLS-RPT


def policy(mode: str = "enforce", mx: str = STS_MX, max_age: str = "604800") -> bytes:
    return f"version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: {max_age}\r\n".encode()


@pytest.fixture
def sts_server(tmp_path: Path) -> Any:
    from harness.https import PolicyServer, Site

    sites = {
        "stsmismatch.sts.test": Site(body=policy(mx="other.sts.test")),
        "stsfail.sts.test": Site(status=404, body=b"not here"),
        "stsshort.sts.test": Site(body=policy(max_age="3600")),
        "stsclamp.sts.test": Site(body=policy(max_age="99999999")),
        "ststesting.sts.test": Site(body=policy(mode="testing")),
        "stsnone.sts.test": Site(body=policy(mode="none")),
    }
    with PolicyServer(tmp_path, sites) as server:
        yield server


def sts_check(domain: str, dns_env: Any, server: Any) -> list[Report]:
    from mxselect.fetch import HttpxFetcher

    fetcher = HttpxFetcher(connect_to=server.connect_to(), verify=str(server.ca_file))
    reports = through_unbound(domain, dns_env, fetcher=fetcher)
    hosts = {r.sni for r in server.requests}
    assert hosts == {f"mta-sts.{domain}"}, server.requests
    return reports


@finds("sts-mx-mismatch")
def test_sts_mx_mismatch(dns_env: Any, sts_server: Any) -> None:
    reports = sts_check("stsmismatch.sts.test", dns_env, sts_server)
    assert_found(reports, "sts-mx-mismatch", Severity.ERROR, STS_MX)


@finds("sts-fetch-failed")
def test_sts_fetch_failed(dns_env: Any, sts_server: Any) -> None:
    reports = sts_check("stsfail.sts.test", dns_env, sts_server)
    assert_found(reports, "sts-fetch-failed", Severity.WARNING)


@finds("sts-max-age-short")
def test_sts_max_age_short(dns_env: Any, sts_server: Any) -> None:
    reports = sts_check("stsshort.sts.test", dns_env, sts_server)
    assert_found(reports, "sts-max-age-short", Severity.WARNING)


@finds("sts-policy-warning")
def test_sts_policy_warning(dns_env: Any, sts_server: Any) -> None:
    reports = sts_check("stsclamp.sts.test", dns_env, sts_server)
    assert_found(reports, "sts-policy-warning", Severity.WARNING)


@finds("sts-testing")
def test_sts_testing(dns_env: Any, sts_server: Any) -> None:
    reports = sts_check("ststesting.sts.test", dns_env, sts_server)
    assert_found(reports, "sts-testing", Severity.INFO)


@finds("sts-mode-none")
def test_sts_mode_none(dns_env: Any, sts_server: Any) -> None:
    reports = sts_check("stsnone.sts.test", dns_env, sts_server)
    assert_found(reports, "sts-mode-none", Severity.INFO)


@finds("sts-record-invalid")
def test_sts_record_invalid(dns_env: Any) -> None:
    """Two v=STSv1 records: senders assume no policy, so nothing is fetched."""
    fetcher = FakeFetcher()
    reports = through_unbound("stsdouble.sts.test", dns_env, fetcher=fetcher)
    assert_found(reports, "sts-record-invalid", Severity.WARNING)
    assert fetcher.fetches == []


@finds("sts-not-fetched")
def test_sts_not_fetched(dns_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without httpx (no default fetcher): the _mta-sts record is seen, the policy not fetched."""
    import mxselect.check

    monkeypatch.setattr(mxselect.check, "_default_fetcher", lambda: None)
    reports = through_unbound("sts.test", dns_env)
    assert_found(reports, "sts-not-fetched", Severity.INFO)
    for report in reports:
        assert "sts-fetch-failed" not in codes(report)


@finds("tlsrpt-invalid")
def test_tlsrpt_invalid(dns_env: Any) -> None:
    reports = through_unbound("tlsdouble.sts.test", dns_env, fetcher=FakeFetcher())
    assert_found(reports, "tlsrpt-invalid", Severity.WARNING)


# ------------------------------------------------- bad-answer: not producible on the wire


@pytest.fixture
def wrong_family_server() -> Any:
    """A DNS server on 127.0.0.1 (UDP) for wrong.test.: MX 10 mx.wrong.test., whose A query
    answers 192.0.2.90 and whose AAAA query answers with an A record (the wrong family)."""
    import socket
    import threading

    import dns.flags
    import dns.message
    import dns.rdatatype
    import dns.rrset

    records = {
        ("wrong.test.", "MX"): ("MX", "10 mx.wrong.test."),
        ("mx.wrong.test.", "A"): ("A", "192.0.2.90"),
        ("mx.wrong.test.", "AAAA"): ("A", "192.0.2.91"),  # the fault
    }
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()
    asked: list[tuple[str, str]] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            query = dns.message.from_wire(data)
            question = query.question[0]
            key = (question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype))
            asked.append(key)
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.RA
            if key in records:
                rtype, text = records[key]
                reply.answer.append(dns.rrset.from_text(key[0], 300, "IN", rtype, text))
            sock.sendto(reply.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1], asked
    stop.set()
    thread.join()
    sock.close()


def test_bad_answer_cannot_come_over_the_wire(wrong_family_server: Any) -> None:
    """Why ``bad-answer`` has no Knot + Unbound test (tests/test_check_coverage.py NO_E2E):
    a server answering AAAA with an A record, asked through the stub resolver and dnspython
    -- the adapters keep only the records of the type asked, so the core sees NODATA for
    AAAA and the host's A address: no ``bad-answer``, and the stray 192.0.2.91 is never
    used. (Unbound, a real resolver, would not pass such an answer on either.)"""
    import dns.resolver

    from mxselect.dnspython import DnspythonResolver

    port, asked = wrong_family_server
    dnspython = dns.resolver.Resolver(configure=False)
    dnspython.nameservers = ["127.0.0.1"]
    dnspython.port = port
    dnspython.timeout, dnspython.lifetime = 2.0, 5.0
    dnspython.cache = None
    for resolver in (stub(port), DnspythonResolver(dnspython)):
        report = check("wrong.test", resolver=resolver, fetcher=FakeFetcher())
        assert "bad-answer" not in codes(report), report.findings
        assert report.selection is not None
        assert [str(a) for a in report.selection.addresses] == ["192.0.2.90"]
    assert ("mx.wrong.test.", "AAAA") in asked


# ------------------------------------------------------------------- the JSON's DANE/MTA-STS


def test_json_facts_through_unbound(dns_env: Any, sts_server: Any) -> None:
    """--json beside the findings, from real DNS: a DANE host's posture and its usable TLSA
    record (the harness data), and an MTA-STS domain's record id and policy, fetched."""
    from harness.dnsenv import TLSA_DATA

    for report in through_unbound("dane.dnssec.test", dns_env, fetcher=FakeFetcher()):
        data = report.as_dict()
        assert data["selection"]["mx_security"] == "secure"
        (host,) = data["selection"]["hosts"]
        assert host["tls"]["posture"] == "dane"
        usage, selector, mtype, digest = TLSA_DATA["_25._tcp.mx.dane.dnssec.test."]
        assert host["tls"]["tlsa"] == [f"{usage} {selector} {mtype} {digest}"]
        assert data["mta_sts"] is None
    for report in sts_check("ststesting.sts.test", dns_env, sts_server):
        sts = report.as_dict()["mta_sts"]
        assert sts == {
            "id": "chk1",
            "mode": "testing",
            "mx": [STS_MX],
            "max_age": 604800,
            "source": "fetched",
            "warnings": [],
        }
    for report in through_unbound("sts.test", dns_env, fetcher=FakeFetcher()):
        assert report.as_dict()["tlsrpt"] == ["mailto:tlsrpt@sts.test"]
