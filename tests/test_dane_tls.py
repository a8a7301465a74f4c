"""mxselect.dane.verify and mxselect.tls: TLSA matching against certificate chains made here
with ``cryptography`` (RFC 7672 §3, RFC 7671 §5, RFC 6698 §2.1), the client context, the
peer chain; §7 rows T1/T2/T20 of shared/secure-delivery.md at connect time."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("CI"):  # in CI (.ci/run installs the extra) a missing package fails
    pytest.importorskip("cryptography", reason="pip install -e '.[dane]'")

from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from dane_certs import DAY, NOW, Cert, make, new_key, pki, requirement, server_context

import mxselect
import mxselect.tls
from mxselect import Posture, TLSARecord, TlsRequirement
from mxselect.dane import DaneVerdict, _spki, verify
from mxselect.tls import peer_chain, ssl_context

# ------------------------------------------------------------------------- DANE-EE(3)


@pytest.mark.parametrize(("selector", "mtype"), [(1, 1), (0, 1), (1, 2), (0, 2), (0, 0), (1, 0)])
def test_T1_dane_ee_matches_the_leaf(selector: int, mtype: int) -> None:
    """3 1 1 (RFC 7672 §3.1 RECOMMENDED), and every other selector/matching type."""
    p = pki(leaf_dns=("unrelated.example.net",))  # DANE-EE: no name check (§3.2.1)
    record = p.leaf.tlsa(3, selector, mtype)
    verdict = verify(requirement(record), [p.leaf.der], now=NOW)
    assert verdict.ok, verdict
    assert verdict.matched == record
    assert verdict.result_type is None
    assert "DANE-EE" in verdict.reason


def test_dane_ee_wrong_digest_fails() -> None:
    p = pki()
    good = p.leaf.tlsa(3, 1, 1)
    wrong = TLSARecord(3, 1, 1, bytes(b ^ 0xFF for b in good.data))
    verdict = verify(requirement(wrong), p.chain, now=NOW)
    assert not verdict.ok
    assert verdict.matched is None
    assert verdict.result_type == "validation-failure"
    assert "3 1 1" in verdict.reason


def test_dane_ee_another_key_fails() -> None:
    """The same name, another key: the SPKI digest differs (a MITM with its own cert)."""
    p = pki()
    forged = make(None, issuer=p.inter, dns=("mx.example.com",))
    verdict = verify(requirement(p.leaf.tlsa(3, 1, 1)), [forged.der], now=NOW)
    assert (verdict.ok, verdict.result_type) == (False, "validation-failure")


def test_dane_ee_spki_survives_a_new_certificate_for_the_same_key() -> None:
    """3 1 1 matches a renewed certificate with the same key; 3 0 1 does not."""
    p = pki()
    renewed = make(None, issuer=p.inter, key=p.leaf.key, dns=("mx.example.com",))
    assert verify(requirement(p.leaf.tlsa(3, 1, 1)), [renewed.der], now=NOW).ok
    assert not verify(requirement(p.leaf.tlsa(3, 0, 1)), [renewed.der], now=NOW).ok


def test_dane_ee_ignores_expiry() -> None:
    """RFC 7672 §3.1.1: "The expiration date of the server certificate MUST be ignored"."""
    leaf = make("mx.example.com", not_before=NOW - 400 * DAY, not_after=NOW - 30 * DAY)
    verdict = verify(requirement(leaf.tlsa(3, 1, 1)), [leaf.der], now=NOW)
    assert verdict.ok, verdict


def test_dane_ee_matches_the_leaf_only() -> None:
    """A DANE-EE record of the issuer does not authenticate the leaf."""
    p = pki()
    verdict = verify(requirement(p.inter.tlsa(3, 1, 1)), p.chain, now=NOW)
    assert not verdict.ok


@pytest.mark.parametrize("kind", ["ec", "rsa", "ed25519"])
def test_spki_is_the_certificate_s_own_bytes(kind: str) -> None:
    """Selector 1 is the DER SubjectPublicKeyInfo (RFC 6698 §2.1.2), read from the
    certificate: the same as cryptography's encoding of the key, for each key type."""
    cert = make("mx.example.com", key=new_key(kind))
    assert _spki(cert.cert) == cert.spki
    assert verify(requirement(cert.tlsa(3, 1, 1)), [cert.der], now=NOW).ok


# ------------------------------------------------------------------------- DANE-TA(2)


@pytest.mark.parametrize(("selector", "mtype"), [(0, 1), (1, 1), (0, 2), (1, 0)])
def test_dane_ta_root_in_the_chain(selector: int, mtype: int) -> None:
    """2 0 1 (RFC 7672 §3.1 second choice) on the root the server presents (§3.1.2)."""
    p = pki()
    record = p.root.tlsa(2, selector, mtype)
    verdict = verify(requirement(record), p.chain, now=NOW)
    assert verdict.ok, verdict
    assert verdict.matched == record
    assert "DANE-TA" in verdict.reason


def test_dane_ta_intermediate_as_anchor() -> None:
    """The TA may be an intermediate (not self-signed); the root need not be sent."""
    p = pki()
    verdict = verify(requirement(p.inter.tlsa(2, 0, 1)), p.chain[:2], now=NOW)
    assert verdict.ok, verdict


def test_dane_ta_chain_in_any_order() -> None:
    p = pki()
    chain = [p.leaf.der, p.root.der, p.inter.der]
    assert verify(requirement(p.root.tlsa(2, 0, 1)), chain, now=NOW).ok


def test_dane_ta_digest_of_a_root_not_presented_fails() -> None:
    """RFC 7671 §5.2.2: with a digest, a TA absent from the chain cannot be used."""
    p = pki()
    verdict = verify(requirement(p.root.tlsa(2, 0, 1)), p.chain[:2], now=NOW)
    assert (verdict.ok, verdict.result_type) == (False, "validation-failure")
    assert "none of the 1 issuer certificates presented matches" in verdict.reason


def test_dane_ta_full_certificate_from_dns() -> None:
    """RFC 7671 §5.2.2: "2 0 0" -- the client MUST verify even when the TA is only in DNS."""
    p = pki()
    verdict = verify(requirement(p.root.tlsa(2, 0, 0)), p.chain[:2], now=NOW)
    assert verdict.ok, verdict


def test_dane_ta_only_the_leaf_says_why() -> None:
    """DANE-TA without the issuers (Python 3.11 without the private chain method, or a
    server that sends only its leaf): a failure with a clear reason."""
    p = pki()
    verdict = verify(requirement(p.root.tlsa(2, 0, 1)), [p.leaf.der], now=NOW)
    assert (verdict.ok, verdict.result_type) == (False, "validation-failure")
    assert "only the leaf certificate is available" in verdict.reason
    assert "peer_chain" in verdict.reason


def test_dane_ta_record_of_the_leaf_does_not_count() -> None:
    """A DANE-TA record matching a leaf that is not self-issued: no trust anchor."""
    p = pki()
    verdict = verify(requirement(p.leaf.tlsa(2, 0, 1)), p.chain, now=NOW)
    assert not verdict.ok


def test_dane_ta_self_issued_leaf_is_its_own_anchor() -> None:
    """A self-issued leaf matching a DANE-TA record: trusted, and names still checked."""
    leaf = make("mx.example.com", dns=("mx.example.com",))
    assert verify(requirement(leaf.tlsa(2, 0, 1)), [leaf.der], now=NOW).ok
    other = make("other.example.net", dns=("other.example.net",))
    verdict = verify(requirement(other.tlsa(2, 0, 1)), [other.der], now=NOW)
    assert verdict.result_type == "certificate-host-mismatch"


def test_dane_ta_forged_issuer_name_is_not_trusted() -> None:
    """The leaf names the intermediate as issuer but another key signed it."""
    p = pki()
    impostor = make("Test Intermediate CA", ca=True, key_cert_sign=True)
    forged = make(None, issuer=impostor, dns=("mx.example.com",))
    verdict = verify(
        requirement(p.root.tlsa(2, 0, 1)), [forged.der, p.inter.der, p.root.der], now=NOW
    )
    assert (verdict.ok, verdict.result_type) == (False, "certificate-not-trusted")
    assert "not signed by any presented certificate" in verdict.reason


@pytest.mark.parametrize(
    ("ca", "key_cert_sign", "why"),
    [
        (False, None, "basic constraints cA false"),
        (None, None, "no basic constraints"),
        (True, False, "without keyCertSign"),
    ],
)
def test_dane_ta_issuer_must_be_a_ca(ca: bool | None, key_cert_sign: bool | None, why: str) -> None:
    p = pki()
    not_ca = make("Not A CA", issuer=p.root, ca=ca, key_cert_sign=key_cert_sign)
    leaf = make(None, issuer=not_ca, dns=("mx.example.com",))
    verdict = verify(requirement(p.root.tlsa(2, 0, 1)), [leaf.der, not_ca.der, p.root.der], now=NOW)
    assert (verdict.ok, verdict.result_type) == (False, "certificate-not-trusted")
    assert why in verdict.reason


def test_dane_ta_path_length() -> None:
    """The intermediate allows no CA below it (pathLen 0): a second intermediate breaks it."""
    p = pki()
    sub = make("Sub CA", issuer=p.inter, ca=True, key_cert_sign=True)
    leaf = make(None, issuer=sub, dns=("mx.example.com",))
    chain = [leaf.der, sub.der, p.inter.der, p.root.der]
    verdict = verify(requirement(p.root.tlsa(2, 0, 1)), chain, now=NOW)
    assert (verdict.ok, verdict.result_type) == (False, "certificate-not-trusted")
    assert "allows 0 intermediate CAs below it, not 1" in verdict.reason
    # ... which is fine when the sub CA is the anchor.
    assert verify(requirement(sub.tlsa(2, 0, 1)), chain, now=NOW).ok


def test_dane_ta_expired_leaf() -> None:
    """Unlike DANE-EE, a DANE-TA path is PKIX-validated: an expired leaf fails."""
    p = pki()
    old = make(None, issuer=p.inter, dns=("mx.example.com",), not_after=NOW - DAY)
    verdict = verify(requirement(p.root.tlsa(2, 0, 1)), [old.der, p.inter.der, p.root.der], now=NOW)
    assert (verdict.ok, verdict.result_type) == (False, "certificate-expired")
    assert verify(requirement(old.tlsa(3, 1, 1)), [old.der], now=NOW).ok  # DANE-EE: fine


def test_dane_ta_not_yet_valid() -> None:
    p = pki()
    verdict = verify(requirement(p.root.tlsa(2, 0, 1)), p.chain, now=NOW - 10 * DAY)
    assert (verdict.ok, verdict.result_type) == (False, "certificate-not-trusted")


# ---------------------------------------------------------------- DANE-TA(2) name checks


@pytest.mark.parametrize(
    ("dns", "references", "ok"),
    [
        (("mx.example.com",), ("mx.example.com",), True),
        (("MX.Example.COM.",), ("mx.example.com",), True),  # case, trailing dot
        (("example.com",), ("mx.example.com", "example.com"), True),  # 2nd reference id
        (("other.example.com", "example.com"), ("mx.example.com", "example.com"), True),
        (("*.example.com",), ("mx.example.com",), True),  # §3.2.3 first label
        (("*.example.com",), ("example.com",), False),  # not the bare domain
        (("*.example.com",), ("a.mx.example.com",), False),  # exactly one label
        (("mx*.example.com",), ("mx1.example.com",), False),  # partial label
        (("*mx.example.com",), ("amx.example.com",), False),
        (("*.com",), ("example.com",), False),  # too broad
        (("mx.example.com.evil.test",), ("mx.example.com",), False),
        (("mx.example.net",), ("mx.example.com", "example.com"), False),
    ],
)
def test_dane_ta_names(dns: tuple[str, ...], references: tuple[str, ...], ok: bool) -> None:
    """RFC 7672 §3.2.2, §3.2.3: DNS-IDs against the reference identifiers."""
    p = pki(leaf_dns=dns)
    verdict = verify(requirement(p.root.tlsa(2, 0, 1), reference_ids=references), p.chain)
    assert verdict.ok is ok, verdict
    if not ok:
        assert verdict.result_type == "certificate-host-mismatch"
        assert "reference identifiers" in verdict.reason


def test_dane_ta_cn_only_without_dns_id() -> None:
    """RFC 7672 §3.2.3: the CN-ID only when the certificate has no DNS-ID."""
    no_san = pki(leaf_dns=(), leaf_cn="mx.example.com")
    assert verify(requirement(no_san.root.tlsa(2, 0, 1)), no_san.chain, now=NOW).ok
    wildcard_cn = pki(leaf_dns=(), leaf_cn="*.example.com")
    assert verify(requirement(wildcard_cn.root.tlsa(2, 0, 1)), wildcard_cn.chain, now=NOW).ok
    # A DNS-ID present: the CN is not looked at, even if it would match.
    both = pki(leaf_dns=("other.example.net",), leaf_cn="mx.example.com")
    verdict = verify(requirement(both.root.tlsa(2, 0, 1)), both.chain, now=NOW)
    assert verdict.result_type == "certificate-host-mismatch"
    assert "DNS-ID" in verdict.reason


def test_dane_ta_cn_when_the_san_has_only_ip_addresses() -> None:
    root = make("Root", ca=True, key_cert_sign=True)
    leaf = make("mx.example.com", issuer=root, ips=("192.0.2.1",))
    assert verify(requirement(root.tlsa(2, 0, 1)), [leaf.der, root.der], now=NOW).ok


def test_dane_ta_no_names_at_all() -> None:
    root = make("Root", ca=True, key_cert_sign=True)
    leaf = make(None, issuer=root)
    verdict = verify(requirement(root.tlsa(2, 0, 1)), [leaf.der, root.der], now=NOW)
    assert verdict.result_type == "certificate-host-mismatch"
    assert "(none)" in verdict.reason


def test_dane_ta_reference_ids_default_to_the_base_domain() -> None:
    """A requirement built without reference_ids: the TLSA base domain (RFC 7672 §3.2.2
    "primary reference identifier")."""
    p = pki()
    verdict = verify(requirement(p.root.tlsa(2, 0, 1), reference_ids=()), p.chain, now=NOW)
    assert verdict.ok, verdict


def test_dane_ee_and_ta_records_together() -> None:
    """A stale DANE-EE record and a good DANE-TA one: authenticated by the TA (any usable
    record may match, RFC 6698 §2.1)."""
    p = pki()
    stale = make(None, dns=("mx.example.com",)).tlsa(3, 1, 1)
    verdict = verify(requirement(stale, p.root.tlsa(2, 0, 1)), p.chain, now=NOW)
    assert verdict.ok
    assert verdict.matched == p.root.tlsa(2, 0, 1)


# ---------------------------------------------------------------- malformed input, postures


@pytest.mark.parametrize(
    "chain",
    [
        [b"not a certificate"],
        [b""],
        [b"\x30\x82\xff\xff"],
    ],
)
def test_garbage_leaf_is_a_failed_verdict(chain: list[bytes]) -> None:
    p = pki()
    verdict = verify(requirement(p.leaf.tlsa(3, 1, 1), p.root.tlsa(2, 0, 1)), chain, now=NOW)
    assert (verdict.ok, verdict.result_type) == (False, "validation-failure")
    assert "malformed" in verdict.reason


def test_garbage_issuer_is_ignored() -> None:
    p = pki()
    chain = [p.leaf.der, b"garbage", p.inter.der, p.root.der]
    assert verify(requirement(p.root.tlsa(2, 0, 1)), chain, now=NOW).ok
    verdict = verify(requirement(p.root.tlsa(2, 0, 1)), [p.leaf.der, b"garbage"], now=NOW)
    assert not verdict.ok
    assert "1 malformed" in verdict.reason


def test_malformed_full_ta_record_is_ignored() -> None:
    p = pki()
    verdict = verify(requirement(TLSARecord(2, 0, 0, b"junk")), p.chain, now=NOW)
    assert (verdict.ok, verdict.result_type) == (False, "validation-failure")


def test_empty_chain() -> None:
    verdict = verify(requirement(pki().leaf.tlsa(3, 1, 1)), [], now=NOW)
    assert (verdict.ok, verdict.result_type) == (False, "validation-failure")


def test_unusable_records_never_match() -> None:
    """PKIX-EE(1) and a 31-byte digest are unusable (RFC 7672 §3.1.3, RFC 6698 §4.1)."""
    p = pki()
    pkix = p.leaf.tlsa(1, 1, 1)
    short = TLSARecord(3, 1, 1, p.leaf.tlsa(3, 1, 1).data[:31])
    verdict = verify(requirement(pkix, short), p.chain, now=NOW)
    assert (verdict.ok, verdict.result_type) == (False, "tlsa-invalid")


@pytest.mark.parametrize("posture", [Posture.OPPORTUNISTIC, Posture.DANE_ENCRYPT])
def test_nothing_to_authenticate(posture: Posture) -> None:
    """T2: DANE_ENCRYPT (and opportunistic TLS) require no authentication (RFC 7672 §2.2)."""
    verdict = verify(requirement(posture=posture), [b"anything"])
    assert verdict == DaneVerdict(ok=True, reason=verdict.reason)
    assert "no authentication required" in str(verdict)


def test_insecure_mx_posture_is_verified_the_same() -> None:
    p = pki()
    req = requirement(
        p.root.tlsa(2, 0, 1), posture=Posture.DANE_INSECURE_MX, reference_ids=("mx.example.com",)
    )
    assert verify(req, p.chain, now=NOW).ok


def test_chain_items_may_be_bytearray() -> None:
    p = pki()
    chain: list[Any] = [bytearray(p.leaf.der)]
    assert verify(requirement(p.leaf.tlsa(3, 1, 1)), chain, now=NOW).ok


def test_verdict_text() -> None:
    p = pki()
    bad = verify(requirement(TLSARecord(3, 1, 1, bytes(32))), p.chain, now=NOW)
    assert str(bad).startswith("validation-failure: ")
    assert str(verify(requirement(p.leaf.tlsa(3, 1, 1)), p.chain, now=NOW)).startswith("ok: ")


# ------------------------------------------------------------------------- mxselect.tls


@pytest.mark.parametrize("posture", list(Posture))
def test_ssl_context_never_verifies_during_the_handshake(posture: Posture) -> None:
    """DANE: CERT_NONE + no hostname check, the TLSA match comes after (RFC 7672 §3.1.1);
    DANE_ENCRYPT and opportunistic: no verification at all (RFC 7435)."""
    context = ssl_context(requirement(posture=posture))
    assert context.verify_mode is ssl.CERT_NONE
    assert context.check_hostname is False
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.get_ca_certs() == []  # no CA list loaded


def test_ssl_context_configures_a_base_in_place() -> None:
    base = ssl.create_default_context()
    base.minimum_version = ssl.TLSVersion.TLSv1_3
    context = ssl_context(mxselect.OPPORTUNISTIC_TLS, base=base)
    assert context is base
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)
    assert context.minimum_version is ssl.TLSVersion.TLSv1_3  # a stricter floor is kept


def test_ssl_context_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="x509-magic"):
        ssl_context(TlsRequirement(posture=Posture.DANE, required=True, authenticate="x509-magic"))


# ------------------------------------------------- mxselect.tls: PKIX (MTA-STS, RFC 8461 §4.2)

MTA_STS_MX = TlsRequirement(
    posture=Posture.MTA_STS,
    required=True,
    authenticate="pkix",
    sni="mx1.example.org",
    reference_ids=("mx1.example.org",),
)


@pytest.mark.parametrize("posture", [Posture.MTA_STS, Posture.MTA_STS_TESTING])
def test_pkix_context_verifies_during_the_handshake(posture: Posture) -> None:
    """RFC 8461 §4.2 (PKIX, the MX host name) and §7.2 (TLS 1.2 or later); the system's CA
    certificates by default."""
    context = ssl_context(TlsRequirement(posture=posture, authenticate="pkix"))
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_pkix_context_with_a_cafile_trusts_only_it(tmp_path: Path) -> None:
    ca = make("pkix test CA", ca=True, key_cert_sign=True)
    (tmp_path / "ca.pem").write_bytes(ca.pem())
    context = ssl_context(MTA_STS_MX, cafile=tmp_path / "ca.pem")
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "pkix test CA"),),)]


def test_pkix_context_configures_a_base_in_place(tmp_path: Path) -> None:
    ca = make("pkix test CA", ca=True, key_cert_sign=True)
    (tmp_path / "ca.pem").write_bytes(ca.pem())
    base = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    base.check_hostname = False
    base.verify_mode = ssl.CERT_NONE
    base.minimum_version = ssl.TLSVersion.TLSv1_3
    context = ssl_context(MTA_STS_MX, base=base, cafile=str(tmp_path / "ca.pem"))
    assert context is base
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert context.minimum_version is ssl.TLSVersion.TLSv1_3
    assert len(context.get_ca_certs()) == 1


def _serve_once(context: ssl.SSLContext) -> tuple[int, threading.Thread]:
    """A TLS server on 127.0.0.1 for one connection: the handshake, then close."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    port = int(listener.getsockname()[1])

    def run() -> None:
        with listener:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return port, thread


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, name: str) -> None:
    port, thread = _serve_once(server)
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
            client.wrap_socket(sock, server_hostname=name),
        ):
            pass
    finally:
        thread.join(5)


@pytest.fixture(scope="module")
def pkix_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cert, Path]:
    where = tmp_path_factory.mktemp("pkix")
    ca = make("pkix test CA", ca=True, key_cert_sign=True)
    (where / "ca.pem").write_bytes(ca.pem())
    return ca, where


def test_pkix_handshake_with_the_right_name(pkix_ca: tuple[Cert, Path]) -> None:
    ca, where = pkix_ca
    leaf = make(None, issuer=ca, dns=["mx1.example.org"])
    client = ssl_context(MTA_STS_MX, cafile=where / "ca.pem")
    _handshake(client, server_context(where / "good", leaf), "mx1.example.org")  # no error


def test_pkix_handshake_matches_a_wildcard(pkix_ca: tuple[Cert, Path]) -> None:
    ca, where = pkix_ca
    leaf = make(None, issuer=ca, dns=["*.example.org"])
    client = ssl_context(MTA_STS_MX, cafile=where / "ca.pem")
    _handshake(client, server_context(where / "wild", leaf), "mx1.example.org")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("wrong-name", "certificate-host-mismatch"),
        ("expired", "certificate-expired"),
        ("untrusted", "certificate-not-trusted"),
        ("self-signed", "certificate-not-trusted"),
        ("not-yet-valid", "validation-failure"),
    ],
)
def test_pkix_handshake_failures_and_their_result_types(
    pkix_ca: tuple[Cert, Path], kind: str, expected: str
) -> None:
    """Each failure raises SSLCertVerificationError in the handshake; result_type names its
    RFC 8460 §4.3 result type."""
    ca, where = pkix_ca
    name = ["mx1.example.org"]
    leaf = {
        "wrong-name": lambda: make(None, issuer=ca, dns=["mx2.example.org"]),
        "expired": lambda: make(
            None, issuer=ca, dns=name, not_before=NOW - 30 * DAY, not_after=NOW - DAY
        ),
        "untrusted": lambda: make(
            None, issuer=make("other CA", ca=True, key_cert_sign=True), dns=name
        ),
        "self-signed": lambda: make("mx1.example.org", dns=name),
        "not-yet-valid": lambda: make(
            None, issuer=ca, dns=name, not_before=NOW + DAY, not_after=NOW + 30 * DAY
        ),
    }[kind]()
    client = ssl_context(MTA_STS_MX, cafile=where / "ca.pem")
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        _handshake(client, server_context(where / kind, leaf), "mx1.example.org")
    assert mxselect.tls.result_type(caught.value) == expected
    wrapped = OSError("wrapped")
    wrapped.__cause__ = caught.value
    assert mxselect.tls.certificate_error(wrapped) is caught.value
    assert mxselect.tls.result_type(wrapped) == expected


def test_pkix_handshake_refuses_tls_1_1(pkix_ca: tuple[Cert, Path]) -> None:
    """RFC 8461 §7.2: TLS 1.2 or later. A server that speaks at most TLS 1.1 fails the
    handshake (OpenSSL 3 may refuse TLS 1.1 on its side too: either way, no session)."""
    ca, where = pkix_ca
    server = server_context(where / "tls11", make(None, issuer=ca, dns=["mx1.example.org"]))
    with warnings.catch_warnings():  # "ssl.TLSVersion.TLSv1_1 is deprecated": on purpose
        warnings.simplefilter("ignore", DeprecationWarning)
        server.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        server.maximum_version = ssl.TLSVersion.TLSv1_1
    client = ssl_context(MTA_STS_MX, cafile=where / "ca.pem")
    with pytest.raises(ssl.SSLError) as caught:
        _handshake(client, server, "mx1.example.org")
    assert not isinstance(caught.value, ssl.SSLCertVerificationError)
    assert mxselect.tls.result_type(caught.value) == "validation-failure"


def test_result_type_without_a_certificate_error() -> None:
    assert mxselect.tls.result_type(ConnectionResetError("reset")) == "validation-failure"
    assert mxselect.tls.certificate_error(ValueError()) is None


class _Peer:
    def __init__(self, leaf: bytes | None, chain: object = None, private: object = None) -> None:
        self.leaf = leaf
        if chain is not None:
            self.get_unverified_chain = lambda: chain
        if private is not None:
            self._sslobj = private

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        assert binary_form
        return self.leaf


class _Private:
    """CPython 3.10-3.12's ``_ssl._SSLSocket.get_unverified_chain``: _ssl.Certificate items."""

    class Certificate:
        def __init__(self, der: bytes) -> None:
            self.der = der

        def public_bytes(self, encoding: int) -> bytes:
            assert encoding == ssl._ssl.ENCODING_DER  # type: ignore[attr-defined]
            return self.der

    def __init__(self, *ders: bytes) -> None:
        self.ders = ders

    def get_unverified_chain(self) -> list[Certificate]:
        return [self.Certificate(d) for d in self.ders]


def test_peer_chain_sources() -> None:
    p = pki()
    assert peer_chain(None) == []
    assert peer_chain(_Peer(None)) == []
    assert peer_chain(_Peer(p.leaf.der)) == [p.leaf.der]  # no chain method: the leaf
    assert peer_chain(_Peer(p.leaf.der, chain=p.chain)) == p.chain  # 3.13+
    assert peer_chain(_Peer(p.leaf.der, private=_Private(*p.chain))) == p.chain  # 3.10-3.12
    # A chain without the leaf (a server-side list) gets the leaf in front.
    assert peer_chain(_Peer(p.leaf.der, chain=p.chain[1:])) == p.chain


def test_peer_chain_of_a_real_tls_connection(tmp_path: Path) -> None:
    """A loopback TLS handshake (memory BIOs, no sockets): the client with ssl_context() sees
    the leaf, and the whole chain where Python gives it."""
    p = pki()
    server = server_context(tmp_path, p.leaf, p.inter, p.root)
    client = ssl_context(requirement(p.leaf.tlsa(3, 1, 1)))
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname="mx.example.com")
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        done = 0
        for side in (c, s):
            try:
                side.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if done == 2:
            break
    assert done == 2
    chain = peer_chain(c)
    assert chain[0] == p.leaf.der
    assert chain == p.chain  # CPython 3.11: through the private method
    assert verify(requirement(p.root.tlsa(2, 0, 1)), chain).ok
    assert verify(requirement(p.leaf.tlsa(3, 1, 1)), chain).ok


def test_cert_helper_makes_what_it_says() -> None:
    """The test's own helper: subject CN and SAN as asked (a sanity check of the fixtures)."""
    p = pki(leaf_dns=("a.example", "b.example"), leaf_cn="cn.example")
    assert [a.value for a in p.leaf.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [
        "cn.example"
    ]
    assert hashlib.sha256(p.leaf.der).digest() == p.leaf.tlsa(3, 0, 1).data
    assert isinstance(p.leaf, Cert)
    assert p.leaf.cert.public_bytes(serialization.Encoding.DER) == p.chain[0]
