"""examples/mta.py over real STARTTLS on loopback, TLS as each target's ``tls`` says: aiosmtpd
servers on 127.0.0.2 / 127.0.0.3 with certificates made here; targets built by hand with their
TlsRequirement, then resolved by mxselect from a FakeResolver zone with TLSA records and a
DNSSEC status (RFC 7672 §2.2, §3.2; rows T1, T20, P2, P3 of shared/secure-delivery.md §7)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest

if not os.environ.get("CI"):  # in CI (.ci/run installs the extras) a missing package fails
    pytest.importorskip("aiosmtplib", reason="pip install -e '.[examples]'")
    pytest.importorskip("aiosmtpd", reason="pip install -e '.[examples]'")
    pytest.importorskip("cryptography", reason="pip install -e '.[dane]'")
from dane_certs import Pki, make, pki, requirement, server_context
from harness.smtp import Recorder, SmtpServers

import mxselect
from examples.mta import deliver, deliver_to
from mxselect import Posture, Selection, Target, TLSARecord, TlsRequirement
from mxselect.delivery import DeliveryStatus, HostStatus, Outcome
from mxselect.testing import FakeResolver

MX1, MX2 = "127.0.0.2", "127.0.0.3"
HOST1, HOST2 = "mx1.example.org", "mx2.example.org"
SENDER, RECIPIENT = "alice@sender.test", "bob@example.org"
MESSAGE = b"From: alice@sender.test\r\nTo: bob@example.org\r\nSubject: dane\r\n\r\nhi\r\n"


Start = Callable[..., Recorder]


@pytest.fixture
def servers() -> Iterator[tuple[int, Start]]:
    """(port, start(address, tls=server context or None)): aiosmtpd on address:port, offering
    STARTTLS with ``tls`` (none without), recording what it receives."""
    with SmtpServers(MX1, MX2) as smtp:
        yield smtp.port, smtp.start


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A PKI per host (root -> intermediate -> leaf named after the host)."""
    return {
        HOST1: pki(leaf_dns=(HOST1,)),
        HOST2: pki(leaf_dns=(HOST2,)),
        "dir": tmp_path_factory.mktemp("dane-mta"),
    }


def full_chain(certs: dict[str, Any], host: str) -> ssl.SSLContext:
    p: Pki = certs[host]
    return server_context(certs["dir"] / host, p.leaf, p.inter, p.root)


def target(address: str, host: str, preference: int, tls: TlsRequirement) -> Target:
    return Target(host, preference, ipaddress.ip_address(address), tls=tls)


def dane_ee(certs: dict[str, Any], host: str) -> TlsRequirement:
    """T1: "3 1 1" of the host's leaf."""
    return requirement(certs[host].leaf.tlsa(3, 1, 1), reference_ids=(host,), base=host)


def send(port: int, *targets: Target) -> Outcome:
    selection = Selection(
        domain="example.org", canonical_domain="example.org", targets=targets, hosts=()
    )
    return asyncio.run(
        deliver_to(
            selection,
            SENDER,
            RECIPIENT,
            MESSAGE,
            smtp_port=port,
            host_status=HostStatus(),
            timeout=5,
        )
    )


def test_T1_dane_ee_match_delivers_over_tls(servers: Any, certs: dict[str, Any]) -> None:
    port, start = servers
    mx1 = start(MX1, tls=full_chain(certs, HOST1))
    outcome = send(port, target(MX1, HOST1, 10, dane_ee(certs, HOST1)))
    assert outcome.status is DeliveryStatus.DELIVERED, outcome
    assert mx1.received == [MESSAGE]
    assert mx1.tls == [True]


def test_dane_ta_match_delivers_over_tls(servers: Any, certs: dict[str, Any]) -> None:
    """DANE-TA(2) "2 0 1" on the root the server sends: needs the presented chain, which
    mxselect.tls.peer_chain reads from the asyncio SSL object (on 3.11 via the private
    method); the leaf's DNS-ID is the TLSA base domain."""
    port, start = servers
    mx1 = start(MX1, tls=full_chain(certs, HOST1))
    tls = requirement(certs[HOST1].root.tlsa(2, 0, 1), reference_ids=(HOST1,), base=HOST1)
    outcome = send(port, target(MX1, HOST1, 10, tls))
    assert outcome.status is DeliveryStatus.DELIVERED, outcome
    assert mx1.tls == [True]


def test_dane_ta_name_mismatch_is_not_delivered(servers: Any, certs: dict[str, Any]) -> None:
    """mx1 presents mx2's chain: the TA matches, the names do not (RFC 7672 §3.2.2)."""
    port, start = servers
    mx1 = start(MX1, tls=full_chain(certs, HOST2))
    tls = requirement(certs[HOST2].root.tlsa(2, 0, 1), reference_ids=(HOST1,), base=HOST1)
    outcome = send(port, target(MX1, HOST1, 10, tls))
    assert (outcome.status, outcome.reply_code, outcome.enhanced_status) == (
        DeliveryStatus.DEFERRED,
        451,
        "4.7.5",
    )
    assert "certificate-host-mismatch" in outcome.message
    assert mx1.received == []


def test_mismatching_tlsa_moves_to_the_next_host(servers: Any, certs: dict[str, Any]) -> None:
    """mx1's TLSA record does not match its certificate: nothing sent to mx1 (RFC 7672 §3.2
    "MUST NOT be delivered"), mx2 (matching) gets the message over TLS."""
    port, start = servers
    mx1 = start(MX1, tls=full_chain(certs, HOST1))
    mx2 = start(MX2, tls=full_chain(certs, HOST2))
    wrong = requirement(TLSARecord(3, 1, 1, bytes(32)), reference_ids=(HOST1,), base=HOST1)
    outcome = send(
        port, target(MX1, HOST1, 10, wrong), target(MX2, HOST2, 20, dane_ee(certs, HOST2))
    )
    assert outcome.status is DeliveryStatus.DELIVERED, outcome
    assert outcome.target is not None
    assert str(outcome.target.address) == MX2
    assert mx1.received == []
    assert mx2.tls == [True]


def test_P3_mismatch_everywhere_defers_4_7_5(servers: Any, certs: dict[str, Any]) -> None:
    port, start = servers
    mx1 = start(MX1, tls=full_chain(certs, HOST1))
    mx2 = start(MX2, tls=full_chain(certs, HOST2))
    outcome = send(
        port,
        target(MX1, HOST1, 10, dane_ee(certs, HOST2)),  # each host with the other's record
        target(MX2, HOST2, 20, dane_ee(certs, HOST1)),
    )
    assert (outcome.status, outcome.reply_code, outcome.enhanced_status) == (
        DeliveryStatus.DEFERRED,
        451,
        "4.7.5",
    )
    for address in (MX1, MX2):
        assert f"[{address}] (preference" in outcome.message
    assert outcome.message.count("TLS handshake: validation-failure: the leaf") == 2
    assert mx1.received == mx2.received == []


def test_required_tls_without_starttls_moves_on(servers: Any, certs: dict[str, Any]) -> None:
    """mx1 has DANE records but offers no STARTTLS: never cleartext, mx2 over TLS."""
    port, start = servers
    mx1 = start(MX1)
    mx2 = start(MX2, tls=full_chain(certs, HOST2))
    outcome = send(
        port,
        target(MX1, HOST1, 10, dane_ee(certs, HOST1)),
        target(MX2, HOST2, 20, dane_ee(certs, HOST2)),
    )
    assert outcome.status is DeliveryStatus.DELIVERED, outcome
    assert mx1.received == []
    assert mx2.tls == [True]


def test_dane_encrypt_needs_tls_but_no_match(servers: Any, certs: dict[str, Any]) -> None:
    """T2: DANE_ENCRYPT -- TLS required, any certificate (RFC 7672 §2.2 second bullet)."""
    port, start = servers
    mx1 = start(MX1)  # no STARTTLS: skipped
    self_signed = make(HOST2, dns=(HOST2,))
    mx2 = start(MX2, tls=server_context(certs["dir"] / "self", self_signed))
    encrypt = requirement(posture=Posture.DANE_ENCRYPT, base=HOST1)
    outcome = send(port, target(MX1, HOST1, 10, encrypt), target(MX2, HOST2, 20, encrypt))
    assert outcome.status is DeliveryStatus.DELIVERED, outcome
    assert mx1.received == []
    assert mx2.tls == [True]


def test_opportunistic_without_starttls_is_cleartext(servers: Any) -> None:
    port, start = servers
    mx1 = start(MX1)
    outcome = send(port, target(MX1, HOST1, 10, mxselect.OPPORTUNISTIC_TLS))
    assert outcome.status is DeliveryStatus.DELIVERED, outcome
    assert mx1.tls == [False]


def test_opportunistic_takes_any_certificate(servers: Any, certs: dict[str, Any]) -> None:
    """RFC 7435: opportunistic TLS does not verify (a self-signed certificate for another
    name is fine)."""
    port, start = servers
    other = make("unrelated.test", dns=("unrelated.test",))
    mx1 = start(MX1, tls=server_context(certs["dir"] / "other", other))
    outcome = send(port, target(MX1, HOST1, 10, mxselect.OPPORTUNISTIC_TLS))
    assert outcome.status is DeliveryStatus.DELIVERED, outcome
    assert mx1.tls == [True]


def test_P2_opportunistic_handshake_failure_retries_in_cleartext(
    servers: Any, certs: dict[str, Any]
) -> None:
    """The server's TLS handshake fails (TLS 1.2 only, and it demands a client certificate):
    the same host again in cleartext (RFC 7672 §2.2 "MAY retry in cleartext"); the backup MX
    is not needed."""
    port, start = servers
    context = full_chain(certs, HOST1)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=certs[HOST1].root.pem().decode())
    mx1 = start(MX1, tls=context)
    mx2 = start(MX2)
    outcome = send(
        port,
        target(MX1, HOST1, 10, mxselect.OPPORTUNISTIC_TLS),
        target(MX2, HOST2, 20, mxselect.OPPORTUNISTIC_TLS),
    )
    assert outcome.status is DeliveryStatus.DELIVERED, outcome
    assert outcome.target is not None
    assert str(outcome.target.address) == MX1
    assert mx1.tls == [False]
    assert mx2.received == []


# ------------------------------------------------- resolved by mxselect: FakeResolver + TLSA


DANE_POLICY = mxselect.Policy(dane=mxselect.Dane.OPPORTUNISTIC).without_unsafe("127.0.0.0/8")


def zone(mx1_tlsa: TLSARecord, mx2_tlsa: TLSARecord) -> str:
    """example.org: MX 10 mx1 (127.0.0.2), MX 20 mx2 (127.0.0.3), a TLSA record each."""
    return f"""
$ORIGIN example.org.
$TTL 300
@   SOA ns hostmaster 1 3600 900 604800 60
@   MX 10 mx1
@   MX 20 mx2
mx1 A {MX1}
mx2 A {MX2}
_25._tcp.mx1 TLSA {mx1_tlsa}
_25._tcp.mx2 TLSA {mx2_tlsa}
"""


def resolve_and_send(port: int, text: str, *, signed: bool = True) -> Outcome:
    resolver = FakeResolver.from_zone(text)
    if signed:
        resolver.set_security("example.org", mxselect.Security.SECURE)
    return asyncio.run(
        deliver(
            SENDER,
            RECIPIENT,
            MESSAGE,
            resolver=resolver,
            smtp_port=port,
            policy=DANE_POLICY,
            host_status=HostStatus(),
            timeout=5,
        )
    )


def test_resolved_dane_targets(certs: dict[str, Any]) -> None:
    """The core makes DANE targets of the zone (what the tests below deliver to)."""
    resolver = FakeResolver.from_zone(
        zone(certs[HOST1].leaf.tlsa(3, 1, 1), certs[HOST2].root.tlsa(2, 0, 1))
    )
    resolver.set_security("example.org", mxselect.Security.SECURE)
    selection = mxselect.select_targets("example.org", resolver=resolver, policy=DANE_POLICY)
    first, second = selection.targets
    assert (first.tls.posture, first.tls.required, first.tls.authenticate) == (
        Posture.DANE,
        True,
        "dane",
    )
    assert first.tls.sni == HOST1
    assert first.tls.tlsa == (certs[HOST1].leaf.tlsa(3, 1, 1),)
    assert second.tls.reference_ids[:2] == (HOST2, "example.org")


def test_resolved_dane_ee_delivers_over_tls(servers: Any, certs: dict[str, Any]) -> None:
    port, start = servers
    mx1 = start(MX1, tls=full_chain(certs, HOST1))
    mx2 = start(MX2, tls=full_chain(certs, HOST2))
    text = zone(certs[HOST1].leaf.tlsa(3, 1, 1), certs[HOST2].leaf.tlsa(3, 1, 1))
    outcome = resolve_and_send(port, text)
    assert outcome.status is DeliveryStatus.DELIVERED, outcome
    assert outcome.target is not None
    assert str(outcome.target.address) == MX1
    assert mx1.tls == [True]
    assert mx2.received == []


def test_resolved_mismatch_uses_the_next_mx(servers: Any, certs: dict[str, Any]) -> None:
    """mx1's published record is for another key: nothing to mx1, mx2 (DANE-TA, its name)
    gets the message over TLS."""
    port, start = servers
    mx1 = start(MX1, tls=full_chain(certs, HOST1))
    mx2 = start(MX2, tls=full_chain(certs, HOST2))
    text = zone(certs[HOST2].leaf.tlsa(3, 1, 1), certs[HOST2].root.tlsa(2, 0, 1))
    outcome = resolve_and_send(port, text)
    assert outcome.status is DeliveryStatus.DELIVERED, outcome
    assert outcome.target is not None
    assert str(outcome.target.address) == MX2
    assert mx1.received == []
    assert mx2.tls == [True]


def test_resolved_dane_ta_next_hop_name(servers: Any, certs: dict[str, Any]) -> None:
    """T20 at connect time: mx1's certificate names only the next-hop domain example.org,
    the second reference identifier of a secure MX (RFC 7672 §3.2.2)."""
    port, start = servers
    domain_cert = pki(leaf_dns=("example.org",))
    mx1 = start(
        MX1,
        tls=server_context(
            certs["dir"] / "domain", domain_cert.leaf, domain_cert.inter, domain_cert.root
        ),
    )
    text = zone(domain_cert.inter.tlsa(2, 0, 1), certs[HOST2].leaf.tlsa(3, 1, 1))
    outcome = resolve_and_send(port, text)
    assert outcome.status is DeliveryStatus.DELIVERED, outcome
    assert mx1.tls == [True]


def test_resolved_mismatch_everywhere_defers(servers: Any, certs: dict[str, Any]) -> None:
    port, start = servers
    mx1 = start(MX1, tls=full_chain(certs, HOST1))
    mx2 = start(MX2)  # DANE, no STARTTLS
    text = zone(certs[HOST2].leaf.tlsa(3, 1, 1), certs[HOST2].leaf.tlsa(3, 1, 1))
    outcome = resolve_and_send(port, text)
    assert (outcome.status, outcome.reply_code, outcome.enhanced_status) == (
        DeliveryStatus.DEFERRED,
        451,
        "4.7.5",
    )
    assert "validation-failure" in outcome.message
    assert "starttls-not-supported" in outcome.message
    assert mx1.received == mx2.received == []


def test_resolved_unsigned_zone_is_opportunistic(servers: Any, certs: dict[str, Any]) -> None:
    """The same TLSA records in an unsigned zone: DANE does not apply (RFC 7672 §2.2 third
    bullet): mx1 without STARTTLS gets the message in cleartext."""
    port, start = servers
    mx1 = start(MX1)
    text = zone(certs[HOST1].leaf.tlsa(3, 1, 1), certs[HOST2].leaf.tlsa(3, 1, 1))
    outcome = resolve_and_send(port, text, signed=False)
    assert outcome.status is DeliveryStatus.DELIVERED, outcome
    assert mx1.tls == [False]
