"""DANE authentication of an SMTP server (RFC 7672 §3, RFC 7671, RFC 6698): match the
certificate chain the server presented against the target's TLSA records.

Needs ``cryptography`` (``pip install "mxselect[dane]"``). After STARTTLS with the context of
:func:`mxselect.tls.ssl_context` (no verification during the handshake)::

    verdict = mxselect.dane.verify(target.tls, mxselect.tls.peer_chain(ssl_object))
    if not verdict.ok:                                   # do not send MAIL FROM
        plan.tls_failed(target, verdict.result_type, verdict.reason)

What is checked, per usable record (:attr:`mxselect.TLSARecord.usable`):

* **DANE-EE(3)**: the leaf certificate (selector 0) or its SubjectPublicKeyInfo (selector 1),
  exactly (matching type 0), or its SHA2-256 (1) or SHA2-512 (2) digest. Nothing else: no
  name check and no expiry check (RFC 7672 §3.1.1 "The expiration date of the server
  certificate MUST be ignored", §3.2.1 "MUST NOT perform certificate name checks").
* **DANE-TA(2)**: a certificate the server presented -- not the leaf, unless the leaf is
  self-issued -- matches the record (RFC 7672 §3.1.2: the server "MUST include the TA
  certificate"); a ``2 0 0`` record's full certificate is also a trust anchor when the server
  left it out (RFC 7671 §5.2.2). The leaf must chain to that trust anchor through the
  presented certificates: each link's issuer name and signature
  (``Certificate.verify_directly_issued_by``), each issuer a CA (basic constraints, key usage
  ``keyCertSign`` when present, path length), every certificate of the path within its
  validity period. Then the leaf's names: its DNS-ID subject alternative names -- or, only
  when it has none, its subject CN-IDs -- must match one of
  :attr:`~mxselect.TlsRequirement.reference_ids` (RFC 7672 §3.2.2, §3.2.3), a wildcard only
  as the entire first label and matching exactly one label.

The path is checked here rather than with ``cryptography.x509.verification``, whose verifier
has no CN-ID fallback and applies the Web PKI certificate profile (RFC 7672 §3.2.3 allows the
CN-ID, and private SMTP CAs rarely follow that profile). Not checked: name constraints,
policy constraints and unknown critical extensions of the issuers; a ``2 1 0`` bare public
key is a trust anchor only as the key of a presented certificate (RFC 7671 §5.2.3: servers
"MUST include the corresponding TA certificate").

Python 3.11 and 3.12 give the full presented chain only through a private method (see
:func:`mxselect.tls.peer_chain`); where it is missing, DANE-TA(2) cannot be verified and the
verdict says so. DANE-EE(3), the records RFC 7672 §3.1 recommends, needs only the leaf.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from ._answers import TLSARecord
from ._model import TlsRequirement

__all__ = ["DaneVerdict", "verify"]

#: The most certificates of a presented chain looked at (a server may send any number).
_MAX_CHAIN = 16


@attrs.frozen(kw_only=True)
class DaneVerdict:
    """Whether the presented chain matched the TLSA records (:func:`verify`).

    Attributes:
        ok: ``True``: authenticated (or nothing to authenticate); deliver. ``False``: do not
            deliver via this server (RFC 7672 §3.2, §9.1): report it with
            :meth:`mxselect.DeliveryPlan.tls_failed`.
        matched: the TLSA record that authenticated the server (``None`` when not ``ok``, or
            when the requirement asks for no authentication).
        reason: a readable sentence: what matched, or what failed.
        result_type: on failure, the RFC 8460 result type (``"validation-failure"``: no record
            matches; ``"certificate-host-mismatch"``: DANE-TA chain fine, names do not match;
            ``"certificate-expired"``, ``"certificate-not-trusted"``: the DANE-TA path);
            ``None`` when ``ok``.
    """

    ok: bool
    matched: TLSARecord | None = None
    reason: str = ""
    result_type: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {self.reason}"
        return f"{self.result_type}: {self.reason}"


def _fail(result_type: str, reason: str) -> DaneVerdict:
    return DaneVerdict(ok=False, reason=reason, result_type=result_type)


def verify(
    requirement: TlsRequirement,
    chain: Sequence[bytes],
    *,
    now: datetime.datetime | None = None,
) -> DaneVerdict:
    """Match ``chain`` against ``requirement.tlsa`` (see the module's text for the rules).

    Never raises for what the server sent: a malformed certificate is a failed verdict.

    Args:
        requirement: the target's :attr:`~mxselect.Target.tls`. Without
            ``authenticate="dane"`` (opportunistic TLS, :attr:`~mxselect.Posture.DANE_ENCRYPT`)
            there is nothing to verify and the verdict is ``ok``.
        chain: the presented certificates, DER, leaf first (:func:`mxselect.tls.peer_chain`).
        now: the time for the DANE-TA(2) validity checks (default: now, UTC; naive values
            are taken as UTC).

    Returns:
        a :class:`DaneVerdict`.
    """
    if requirement.authenticate != "dane":
        return DaneVerdict(
            ok=True, reason=f"{requirement.posture}: no authentication required (RFC 7672 §2.2)"
        )
    records = [r for r in requirement.tlsa if r.usable]
    if not records:
        return _fail("tlsa-invalid", "no usable TLSA record to authenticate with (RFC 6698 §4.1)")
    if not chain:
        return _fail("validation-failure", "the server presented no certificate")
    try:
        ders = [bytes(der) for der in chain[:_MAX_CHAIN]]
        leaf = x509.load_der_x509_certificate(ders[0])
        leaf_spki = _spki(leaf)
    except (ValueError, TypeError) as exc:
        return _fail("validation-failure", f"malformed server certificate: {exc}")

    for record in records:  # DANE-EE(3): the leaf alone (RFC 7672 §3.1.1, §3.2.1)
        if record.usage == 3 and _matches(record, ders[0], leaf_spki):
            return DaneVerdict(
                ok=True,
                matched=record,
                reason=f"DANE-EE: the leaf certificate matches TLSA {_short(record)}",
            )
    anchors = [r for r in records if r.usage == 2]
    if not anchors:
        return _fail(
            "validation-failure",
            "the leaf certificate matches no DANE-EE TLSA record ("
            + ", ".join(_short(r) for r in records)
            + ")",
        )
    return _verify_ta(requirement, anchors, ders, leaf, now)


def _verify_ta(
    requirement: TlsRequirement,
    anchors: list[TLSARecord],
    ders: list[bytes],
    leaf: x509.Certificate,
    now: datetime.datetime | None,
) -> DaneVerdict:
    """DANE-TA(2): the trust anchor, the path to it, its validity, then the names."""
    presented: list[tuple[bytes, x509.Certificate]] = [(ders[0], leaf)]
    malformed = 0
    for der in ders[1:]:
        try:
            presented.append((der, x509.load_der_x509_certificate(der)))
        except ValueError:
            malformed += 1  # cannot be an anchor or a link; ignored
    # Which certificates are trust anchors, and by which record (RFC 7671 §5.2.2).
    trusted: dict[int, TLSARecord] = {}
    for index, (der, cert) in enumerate(presented):
        if index == 0 and cert.issuer != cert.subject:
            continue  # a DANE-TA record names an issuer, not the leaf (unless self-issued)
        try:
            spki = _spki(cert)
        except ValueError:
            continue
        for record in anchors:
            if _matches(record, der, spki):
                trusted[index] = record
                break
    candidates = list(presented)
    for record in anchors:  # "2 0 0": the full TA certificate, from DNS
        if record.selector == 0 and record.mtype == 0:
            try:
                cert = x509.load_der_x509_certificate(record.data)
            except ValueError:
                continue
            if all(record.data != der for der, _ in presented):
                trusted[len(candidates)] = record
                candidates.append((record.data, cert))
    if not trusted:
        if len(ders) == 1:
            why = (
                "only the leaf certificate is available: the server sent no issuers, or this "
                "Python cannot read them (mxselect.tls.peer_chain)"
            )
        else:
            why = f"none of the {len(ders) - 1} issuer certificates presented matches"
            if malformed:
                why += f" ({malformed} malformed)"
        return _fail(
            "validation-failure",
            f"no TLSA record matches ({', '.join(_short(r) for r in anchors)}): {why}",
        )

    path = _path_to_anchor(candidates, trusted)
    if isinstance(path, str):
        return _fail("certificate-not-trusted", path)
    record = trusted[path[-1]]
    at = now if now is not None else datetime.datetime.now(datetime.UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.UTC)
    for index in path:
        cert = candidates[index][1]
        label = "the leaf certificate" if index == 0 else f"certificate {_subject(cert)}"
        if at > cert.not_valid_after_utc:
            return _fail(
                "certificate-expired",
                f"DANE-TA: {label} expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC",
            )
        if at < cert.not_valid_before_utc:
            return _fail(
                "certificate-not-trusted",
                f"DANE-TA: {label} is not valid before "
                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC",
            )
    references = requirement.reference_ids or tuple(
        name for name in (requirement.tlsa_base_domain, requirement.sni) if name
    )
    try:
        presented_ids, kind = _presented_ids(leaf)
    except ValueError as exc:
        return _fail("validation-failure", f"malformed leaf certificate extensions: {exc}")
    for reference in references:
        for name in presented_ids:
            if _name_matches(name, reference):
                return DaneVerdict(
                    ok=True,
                    matched=record,
                    reason=(
                        f"DANE-TA: chain to the trust anchor {_subject(candidates[path[-1]][1])} "
                        f"(TLSA {_short(record)}), {kind} {name!r} matches {reference!r}"
                    ),
                )
    shown = ", ".join(repr(n) for n in presented_ids) or "none"
    return _fail(
        "certificate-host-mismatch",
        f"DANE-TA: chain trusted (TLSA {_short(record)}), but the leaf's {kind}s ({shown}) "
        f"match none of the reference identifiers {list(references)} (RFC 7672 §3.2.2)",
    )


def _path_to_anchor(
    candidates: list[tuple[bytes, x509.Certificate]], trusted: dict[int, TLSARecord]
) -> list[int] | str:
    """Indices of the certificates from the leaf (0) to a trust anchor, each issued by the
    next; or why there is none. Anchors are preferred as issuers; no backtracking."""
    path = [0]
    while path[-1] not in trusted:
        if len(path) > _MAX_CHAIN:
            return "DANE-TA: the certificate path is too long"
        cert = candidates[path[-1]][1]
        issuers = [
            i
            for i, (_, issuer) in enumerate(candidates)
            if i not in path and _issued_by(cert, issuer)
        ]
        if not issuers:
            who = "the leaf certificate" if len(path) == 1 else _subject(cert)
            return (
                f"DANE-TA: {who} (issuer {cert.issuer.rfc4514_string()!r}) is not signed by "
                "any presented certificate, so the chain does not reach a trust anchor"
            )
        issuers.sort(key=lambda i: i not in trusted)
        below = sum(1 for i in path[1:] if not _self_issued(candidates[i][1]))
        problem = _not_a_ca(candidates[issuers[0]][1], below)
        if problem:
            return f"DANE-TA: {_subject(candidates[issuers[0]][1])} {problem}"
        path.append(issuers[0])
    return path


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _not_a_ca(cert: x509.Certificate, below: int) -> str:
    """Why ``cert`` may not issue certificates with ``below`` CA certificates under it, or ''
    (RFC 5280 §4.2.1.9 basic constraints and path length, §4.2.1.3 key usage)."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "is not a CA certificate (no basic constraints)"
    except ValueError as exc:
        return f"has malformed extensions: {exc}"
    if not constraints.ca:
        return "is not a CA certificate (basic constraints cA false)"
    if constraints.path_length is not None and below > constraints.path_length:
        return f"allows {constraints.path_length} intermediate CAs below it, not {below}"
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return ""
    if not usage.key_cert_sign:
        return "may not sign certificates (key usage without keyCertSign)"
    return ""


def _self_issued(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def _presented_ids(leaf: x509.Certificate) -> tuple[list[str], str]:
    """The DNS-IDs of the leaf, or its CN-IDs when it has no DNS-ID (RFC 7672 §3.2.3)."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_ids = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        dns_ids = []
    if dns_ids:
        return dns_ids, "DNS-ID"
    common_names = [
        attribute.value
        for attribute in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if isinstance(attribute.value, str)
    ]
    return common_names, "CN-ID"


def _name_matches(presented: str, reference: str) -> bool:
    """RFC 7672 §3.2.3 / RFC 6125 §6.4: case-insensitive, a trailing dot ignored; ``*`` only
    as the entire first label, matching exactly one label, with at least two labels after
    it."""
    presented = presented.strip().rstrip(".").lower()
    reference = reference.strip().rstrip(".").lower()
    if not presented or not reference or not presented.isascii():
        return False
    if presented == reference:
        return "*" not in presented
    if not presented.startswith("*."):
        return False
    rest = presented[2:]
    if "*" in rest or rest.count(".") < 1:
        return False
    first, dot, remainder = reference.partition(".")
    return bool(first) and bool(dot) and remainder == rest


def _matches(record: TLSARecord, cert_der: bytes, spki_der: bytes) -> bool:
    """RFC 6698 §2.1.2, §2.1.3: the selected data, exactly or as a digest."""
    data = cert_der if record.selector == 0 else spki_der
    if record.mtype == 1:
        data = hashlib.sha256(data).digest()
    elif record.mtype == 2:
        data = hashlib.sha512(data).digest()
    elif record.mtype != 0:
        return False
    return data == record.data


def _spki(cert: x509.Certificate) -> bytes:
    """The SubjectPublicKeyInfo as encoded in the certificate (RFC 6698 §2.1.2 selector 1):
    the seventh element of the TBSCertificate, or the sixth without the optional version
    (RFC 5280 §4.1). Read from the DER rather than re-encoded from the key, so any key
    algorithm works and the bytes are the server's.

    Raises:
        ValueError: the TBSCertificate is not the expected DER.
    """
    tbs = cert.tbs_certificate_bytes
    tag, start, end = _element(tbs, 0)
    if tag != 0x30:
        raise ValueError("TBSCertificate is not a SEQUENCE")
    offset = start
    tag, _, next_offset = _element(tbs, offset)
    if tag == 0xA0:  # [0] EXPLICIT version
        offset = next_offset
    for _ in range(5):  # serialNumber, signature, issuer, validity, subject
        offset = _element(tbs, offset)[2]
    tag, _, spki_end = _element(tbs, offset)
    if tag != 0x30 or spki_end > end:
        raise ValueError("no SubjectPublicKeyInfo SEQUENCE in the TBSCertificate")
    return tbs[offset:spki_end]


def _element(data: bytes, offset: int) -> tuple[int, int, int]:
    """One DER element at ``offset``: (tag, start of the contents, end)."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or offset + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    if offset + length > len(data):
        raise ValueError("truncated DER")
    return tag, offset, offset + length


def _short(record: TLSARecord) -> str:
    data = record.data.hex()
    data = data if len(data) <= 16 else data[:16] + "…"
    return f"{record.usage} {record.selector} {record.mtype} {data}"


def _subject(cert: x509.Certificate) -> str:
    return repr(cert.subject.rfc4514_string())
