"""Certificates for the DANE tests, made with ``cryptography``: CAs, intermediates, leaves,
names, validity periods; TLSA records for them; PEM files for TLS servers."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from collections.abc import Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from mxselect import Posture, TLSARecord, TlsRequirement

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

#: The time of the checks (real time: the TLS tests verify with the clock).
NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
DAY = datetime.timedelta(days=1)


@attrs.frozen
class Cert:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def spki(self) -> bytes:
        return self.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def tlsa(self, usage: int, selector: int, mtype: int) -> TLSARecord:
        """The TLSA record ``usage selector mtype`` for this certificate (RFC 6698 §2.1)."""
        data = self.der if selector == 0 else self.spki
        if mtype == 1:
            data = hashlib.sha256(data).digest()
        elif mtype == 2:
            data = hashlib.sha512(data).digest()
        return TLSARecord(usage, selector, mtype, data)


def new_key(kind: str = "ec") -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def make(
    cn: str | None,
    *,
    issuer: Cert | None = None,
    key: PrivateKey | None = None,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    ca: bool | None = False,
    path_length: int | None = None,
    key_cert_sign: bool | None = None,
    not_before: datetime.datetime = NOW - DAY,
    not_after: datetime.datetime = NOW + 30 * DAY,
    issuer_name: x509.Name | None = None,
) -> Cert:
    """A certificate for ``cn`` signed by ``issuer`` (self-signed when ``None``). ``ca=None``:
    no basic constraints at all; ``key_cert_sign=None``: no key usage extension."""
    key = key if key is not None else new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    signer_name = issuer_name or (issuer.cert.subject if issuer else name)
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
    if key_cert_sign is not None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=key_cert_sign,
                crl_sign=key_cert_sign,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = None if isinstance(signer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Cert(builder.sign(signer_key, algorithm), key)


@attrs.frozen
class Pki:
    """root -> intermediate -> leaf (mx.example.com), and the chain as a server sends it."""

    root: Cert
    inter: Cert
    leaf: Cert

    @property
    def chain(self) -> list[bytes]:
        return [self.leaf.der, self.inter.der, self.root.der]


def pki(leaf_dns: Sequence[str] = ("mx.example.com",), leaf_cn: str | None = None) -> Pki:
    root = make("Test Root CA", ca=True, key_cert_sign=True)
    inter = make("Test Intermediate CA", issuer=root, ca=True, path_length=0, key_cert_sign=True)
    leaf = make(leaf_cn, issuer=inter, dns=leaf_dns)
    return Pki(root, inter, leaf)


def requirement(
    *records: TLSARecord,
    reference_ids: Sequence[str] = ("mx.example.com", "example.com"),
    posture: Posture = Posture.DANE,
    base: str = "mx.example.com",
) -> TlsRequirement:
    """A DANE requirement as the core makes it (RFC 7672 §2.2 first bullet)."""
    if posture is Posture.OPPORTUNISTIC:
        return TlsRequirement(posture=posture)
    authenticate = "dane" if posture in (Posture.DANE, Posture.DANE_INSECURE_MX) else None
    return TlsRequirement(
        posture=posture,
        required=True,
        authenticate=authenticate,
        sni=base,
        reference_ids=tuple(reference_ids),
        tlsa=records,
        tlsa_base_domain=base,
        rule="test",
    )


def write_chain(where: Path, *certs: Cert) -> tuple[Path, Path]:
    """cert.pem (``certs`` in order, leaf first) and key.pem (the leaf's key) in ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = where / "cert.pem", where / "key.pem"
    cert_file.write_bytes(b"".join(c.pem() for c in certs))
    key_file.write_bytes(certs[0].key_pem())
    return cert_file, key_file


def server_context(where: Path, *certs: Cert) -> ssl.SSLContext:
    """A TLS server context presenting ``certs`` (leaf first), written to ``where``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*write_chain(where, *certs))
    return context
