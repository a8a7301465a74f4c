"""examples/mta.py with MTA-STS end to end, on loopback only: a FakeResolver zone whose domain
publishes ``_mta-sts`` and ``_smtp._tls`` TXT records, MX hosts on 127.0.0.2 / 127.0.0.3
(aiosmtpd with STARTTLS, certificates for their MX names from a test CA), the real HTTPS
``PolicyServer`` on 127.0.0.1 serving ``mta-sts.example.org`` with a certificate from the same
CA, and ``HttpxFetcher(connect_to=..., verify=ca_file)``: no name is resolved, nothing leaves
loopback (RFC 8461 §3.3, §4.2, §5, §5.1; RFC 8460 §4.3).

Test names carry the scenario IDs of ../shared/secure-delivery.md §7 (S2, S3, S4, S13, P4).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("CI"):  # in CI (.ci/run installs the extras) a missing package fails
    pytest.importorskip("aiosmtplib", reason="pip install -e '.[examples]'")
    pytest.importorskip("aiosmtpd", reason="pip install -e '.[examples]'")
    pytest.importorskip("cryptography", reason="pip install -e '.[dane]'")
    pytest.importorskip("httpx", reason="pip install -e '.[mta-sts]'")
from dane_certs import DAY, NOW, Cert, make, server_context
from harness.https import PolicyServer, Site
from harness.smtp import Recorder, SmtpServers

import mxselect
from examples.mta import deliver, describe
from mxselect import Posture
from mxselect.delivery import DeliveryStatus, HostStatus, Outcome
from mxselect.fetch import HttpxFetcher
from mxselect.mtasts import SQLiteStore
from mxselect.testing import FakeResolver
from mxselect.tlsrpt import TlsRptEvent

MX1, MX2 = "127.0.0.2", "127.0.0.3"
HOST1, HOST2 = "mx1.example.org", "mx2.example.org"
SENDER, RECIPIENT = "alice@sender.test", "bob@example.org"
MESSAGE = b"From: alice@sender.test\r\nTo: bob@example.org\r\nSubject: sts\r\n\r\nhi\r\n"
POLICY = mxselect.Policy(mta_sts=True).without_unsafe("127.0.0.0/8")


def zone(sts_id: str = "20261201") -> str:
    """example.org: MX 10 mx1 (127.0.0.2), MX 20 mx2 (127.0.0.3), MTA-STS and TLS-RPT."""
    return f"""
$ORIGIN example.org.
$TTL 300
@   SOA ns hostmaster 1 3600 900 604800 60
@   MX 10 mx1
@   MX 20 mx2
mx1 A {MX1}
mx2 A {MX2}
_mta-sts TXT "v=STSv1; id={sts_id}"
_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.org"
"""


def policy_body(mode: str = "enforce", *mx: str) -> bytes:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), "max_age: 86400"]
    return ("\r\n".join(lines) + "\r\n").encode()


Start = Callable[..., Recorder]


@pytest.fixture
def smtp_servers() -> Iterator[tuple[int, Start]]:
    """(port, start(address, tls=server context or None)): aiosmtpd on address:port, offering
    STARTTLS with ``tls`` (none without), recording what it receives and counting the TCP
    connections it accepts."""
    with SmtpServers(MX1, MX2) as smtp:
        yield smtp.port, smtp.start


class Bench:
    """The policy server for example.org, the MX certificates from its CA, a delivery."""

    def __init__(self, workdir: Path, body: bytes, port: int, start: Start) -> None:
        self.workdir = workdir
        self.port = port
        self.start = start
        self.server = PolicyServer(workdir, {"example.org": Site(body=body)}).start()
        self.fetcher = HttpxFetcher(
            connect_to=self.server.connect_to(), verify=str(self.server.ca_file)
        )
        self.events: list[TlsRptEvent] = []

    def cert(self, host: str, **kwargs: Any) -> ssl.SSLContext:
        """A server context with a leaf from the test CA (``issuer=`` another one)."""
        kwargs.setdefault("issuer", self.server.ca)
        kwargs.setdefault("dns", [host])
        leaf: Cert = make(None, **kwargs)
        where = self.workdir / f"smtp-{host}-{len(list(self.workdir.iterdir()))}"
        return server_context(where, leaf)

    def mx(self, address: str, host: str, **kwargs: Any) -> Recorder:
        """An MX on ``address`` with STARTTLS and a certificate for ``host``."""
        return self.start(address, tls=self.cert(host, **kwargs))

    def deliver(
        self, text: str | None = None, *, store: SQLiteStore | None = None, cafile: bool = True
    ) -> Outcome:
        return asyncio.run(
            deliver(
                SENDER,
                RECIPIENT,
                MESSAGE,
                resolver=FakeResolver.from_zone(text or zone()),
                smtp_port=self.port,
                policy=POLICY,
                host_status=HostStatus(),
                timeout=5,
                fetcher=self.fetcher,
                sts_store=store,
                cafile=str(self.server.ca_file) if cafile else None,
                tlsrpt=self.events,
            )
        )

    def results(self) -> list[tuple[str | None, str | None]]:
        """(MX host, RFC 8460 result type or None for a success) of each TLS-RPT event."""
        return [
            (e.receiving_mx_hostname, e.result_type.value if e.result_type else None)
            for e in self.events
        ]


@pytest.fixture
def bench(tmp_path: Path, smtp_servers: tuple[int, Start]) -> Iterator[Callable[[bytes], Bench]]:
    made: list[Bench] = []

    def make_bench(body: bytes) -> Bench:
        port, start = smtp_servers
        made.append(Bench(tmp_path, body, port, start))
        return made[-1]

    yield make_bench
    for b in made:
        b.server.stop()


def delivered_to(outcome: Outcome) -> str:
    assert outcome.status is DeliveryStatus.DELIVERED, outcome
    assert outcome.target is not None
    return str(outcome.target.address)


def assert_deferred_for_tls(outcome: Outcome) -> None:
    assert (outcome.status, outcome.reply_code, outcome.enhanced_status) == (
        DeliveryStatus.DEFERRED,
        451,
        "4.7.5",
    ), outcome
    assert outcome.recheck_policy
    assert "RFC 8461 §5.1" in describe(outcome)


# ------------------------------------------------------------------------------ enforce


def test_S2_enforce_delivers_to_the_matching_mx_over_validated_tls(bench: Any) -> None:
    b = bench(policy_body("enforce", HOST1, HOST2))
    mx1 = b.mx(MX1, HOST1)
    mx2 = b.mx(MX2, HOST2)
    outcome = b.deliver()
    assert delivered_to(outcome) == MX1
    assert not outcome.recheck_policy
    assert describe(outcome) == str(outcome)
    assert mx1.received == [MESSAGE]
    assert mx1.tls == [True]
    assert mx2.connections == 0
    assert b.results() == [(HOST1, None)]  # one successful session under the STS policy
    assert b.events[0].policy.policy_type.value == "sts"
    # The policy came from the HTTPS server, by SNI mta-sts.example.org (RFC 8461 §3.3).
    assert [(r.sni, r.host, r.path) for r in b.server.requests] == [
        ("mta-sts.example.org", "mta-sts.example.org", "/.well-known/mta-sts.txt")
    ]


def test_S2_the_mx_certificate_must_chain_to_a_trusted_root(bench: Any) -> None:
    """Without ``cafile`` the system's CA certificates apply: the test CA is not among them,
    so the good certificate is not trusted -- the CA file really is what validates."""
    b = bench(policy_body("enforce", HOST1))
    mx1 = b.mx(MX1, HOST1)
    outcome = b.deliver(cafile=False)
    assert_deferred_for_tls(outcome)
    assert "certificate-not-trusted" in outcome.message
    assert mx1.received == []
    assert b.results() == [(HOST1, "certificate-not-trusted")]


def test_S3_enforce_never_connects_to_an_mx_that_does_not_match(bench: Any) -> None:
    """mx1 (preference 10) is not in the policy: skipped without a connection (RFC 8461 §5
    "MUST NOT deliver the message to hosts that fail MX matching"); mx2 gets it."""
    b = bench(policy_body("enforce", HOST2))
    mx1 = b.mx(MX1, HOST1)
    mx2 = b.mx(MX2, HOST2)
    outcome = b.deliver()
    assert delivered_to(outcome) == MX2
    assert mx1.connections == 0
    assert mx1.received == []
    assert mx2.tls == [True]
    assert b.results() == [(HOST2, None)]


def test_S3_control_without_mta_sts_mx1_is_used(bench: Any) -> None:
    """The same zone and servers without the policy: mx1 gets the message (what S3 rules
    out)."""
    b = bench(policy_body("enforce", HOST2))
    mx1 = b.mx(MX1, HOST1)
    b.mx(MX2, HOST2)
    outcome = b.deliver(zone().replace('_mta-sts TXT "v=STSv1; id=20261201"', ""))
    assert delivered_to(outcome) == MX1
    assert mx1.connections == 1
    assert b.server.requests == []  # no TXT record, no fetch


def test_S4_no_mx_matches_defers_4_7_5_with_recheck_policy(bench: Any) -> None:
    b = bench(policy_body("enforce", "*.elsewhere.example"))
    mx1 = b.mx(MX1, HOST1)
    mx2 = b.mx(MX2, HOST2)
    outcome = b.deliver()
    assert_deferred_for_tls(outcome)
    assert "check the domain's _mta-sts record" in describe(outcome)
    assert mx1.connections == mx2.connections == 0


def test_S13_policy_server_down_the_cached_policy_applies(bench: Any, tmp_path: Path) -> None:
    """A first delivery caches the policy in an SQLiteStore (a file); the policy server goes
    down and the TXT id changes (a refetch is due, and fails): the cached policy -- only mx2 --
    still applies, read back from the file by a new store (RFC 8461 §5.1)."""
    b = bench(policy_body("enforce", HOST2))
    mx1 = b.mx(MX1, HOST1)
    mx2 = b.mx(MX2, HOST2)
    cache = tmp_path / "sts.sqlite"
    with SQLiteStore(cache) as store:
        assert delivered_to(b.deliver(store=store)) == MX2
    assert len(b.server.requests) == 1
    b.server.stop()
    with SQLiteStore(cache) as store:
        entry = store.get("example.org")
        assert entry is not None
        assert entry.id == "20261201"
        outcome = b.deliver(zone("20261202"), store=store)
    assert delivered_to(outcome) == MX2
    assert mx1.connections == 0
    assert mx2.received == [MESSAGE, MESSAGE]
    assert mx2.tls == [True, True]
    assert len(b.server.requests) == 1  # the server is down: nothing more reached it
    # Control: the same, without the cache -- no policy at all, mx1 is used.
    assert delivered_to(b.deliver(zone("20261203"))) == MX1


# ---------------------------------------------------------------- P4: certificate failures


@pytest.mark.parametrize(
    ("kind", "result_type"),
    [
        ("wrong-name", "certificate-host-mismatch"),
        ("expired", "certificate-expired"),
        ("untrusted", "certificate-not-trusted"),
    ],
)
def test_P4_enforce_bad_certificate_moves_to_the_next_mx(
    bench: Any, kind: str, result_type: str
) -> None:
    """mx1's certificate fails PKIX validation: nothing is sent to it (RFC 8461 §5), the
    failure is reported with its RFC 8460 result type, and mx2 (good) gets the message."""
    b = bench(policy_body("enforce", "*.example.org"))
    other_ca = make("another CA", ca=True, key_cert_sign=True)
    bad = {
        "wrong-name": {"dns": ["www.example.org"]},
        "expired": {"not_before": NOW - 30 * DAY, "not_after": NOW - DAY},
        "untrusted": {"issuer": other_ca},
    }[kind]
    mx1 = b.mx(MX1, HOST1, **bad)
    mx2 = b.mx(MX2, HOST2)
    outcome = b.deliver()
    assert delivered_to(outcome) == MX2
    assert mx1.connections == 1
    assert mx1.received == []
    assert mx2.tls == [True]
    assert b.results() == [(HOST1, result_type), (HOST2, None)]
    assert b.events[0].failure_reason_code
    assert "TLS handshake" in b.events[0].failure_reason_code


def test_P4_enforce_every_certificate_bad_defers_with_recheck(bench: Any) -> None:
    b = bench(policy_body("enforce", "*.example.org"))
    mx1 = b.mx(MX1, "mx2.example.org")  # each presents the other's name
    mx2 = b.mx(MX2, "mx1.example.org")
    outcome = b.deliver()
    assert_deferred_for_tls(outcome)
    for address in (MX1, MX2):
        assert f"[{address}] (preference" in outcome.message
    assert "certificate is not valid for 'mx1.example.org'" in outcome.message
    assert "certificate is not valid for 'mx2.example.org'" in outcome.message
    assert "retrying in cleartext" not in outcome.message
    assert mx1.received == mx2.received == []
    assert mx1.connections == mx2.connections == 1  # no cleartext retry
    assert b.results() == [
        (HOST1, "certificate-host-mismatch"),
        (HOST2, "certificate-host-mismatch"),
    ]


def test_P4_enforce_without_starttls_is_never_cleartext(bench: Any) -> None:
    b = bench(policy_body("enforce", "*.example.org"))
    mx1 = b.start(MX1)  # no STARTTLS offered
    b.mx(MX2, HOST2)
    outcome = b.deliver()
    assert delivered_to(outcome) == MX2
    assert mx1.received == []
    assert b.results() == [(HOST1, "starttls-not-supported"), (HOST2, None)]


# ------------------------------------------------------------------------------ testing


def test_P4_testing_bad_certificate_delivers_anyway_and_reports(bench: Any) -> None:
    """Mode testing: mx1's certificate names another host; the failure is recorded for
    TLS-RPT and the message is delivered to mx1 anyway (RFC 8461 §5), over TLS without
    validation on a second connection; mx2 is not needed."""
    b = bench(policy_body("testing", "*.example.org"))
    mx1 = b.mx(MX1, HOST1, dns=["www.example.org"])
    mx2 = b.mx(MX2, HOST2)
    outcome = b.deliver()
    assert delivered_to(outcome) == MX1
    assert outcome.target is not None
    assert outcome.target.tls.posture is Posture.MTA_STS_TESTING
    assert not outcome.recheck_policy
    assert mx1.received == [MESSAGE]
    assert mx1.tls == [True]  # encrypted, not validated: not cleartext
    assert mx1.connections == 2  # the failed validated handshake, then the retry
    assert mx2.connections == 0
    assert b.results() == [(HOST1, "certificate-host-mismatch")]  # the retry is no success
    assert b.events[0].policy.policy_type.value == "sts"


def test_P4_testing_good_certificate_is_a_success(bench: Any) -> None:
    b = bench(policy_body("testing", "*.example.org"))
    mx1 = b.mx(MX1, HOST1)
    outcome = b.deliver()
    assert delivered_to(outcome) == MX1
    assert mx1.connections == 1
    assert b.results() == [(HOST1, None)]


def test_P4_testing_without_starttls_reports_and_delivers_in_cleartext(bench: Any) -> None:
    b = bench(policy_body("testing", "*.example.org"))
    mx1 = b.start(MX1)
    outcome = b.deliver()
    assert delivered_to(outcome) == MX1
    assert mx1.tls == [False]
    assert b.results() == [(HOST1, "starttls-not-supported")]
