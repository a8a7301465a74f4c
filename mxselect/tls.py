"""TLS for one target, as its :class:`~mxselect.TlsRequirement` says: the client context and
the peer's certificate chain. Standard library only.

::

    context = mxselect.tls.ssl_context(target.tls)
    await smtp.starttls(tls_context=context, server_hostname=target.tls.sni or target.host)
    chain = mxselect.tls.peer_chain(smtp.transport.get_extra_info("ssl_object"))
    verdict = mxselect.dane.verify(target.tls, chain)      # DANE postures (mxselect[dane])

Always pass ``server_hostname=target.tls.sni`` when it is set: with DANE it is the TLSA base
domain, which the client "MUST send" in the TLS SNI extension (RFC 7672 §8.1); with MTA-STS it
is the MX host name, which the certificate must name (RFC 8461 §4.2). Without a name
(opportunistic TLS) the MX host name is a fine SNI value.

With MTA-STS (``authenticate="pkix"``) the certificate is checked *during* the handshake by
the context: a failure raises :class:`ssl.SSLCertVerificationError`, and
:func:`result_type` names its RFC 8460 result type for
:meth:`~mxselect.DeliveryPlan.tls_failed`.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from ._model import Posture, TlsRequirement

__all__ = ["certificate_error", "peer_chain", "result_type", "ssl_context"]

#: The postures this module knows.
_POSTURES = frozenset(Posture)


def ssl_context(
    requirement: TlsRequirement,
    *,
    base: ssl.SSLContext | None = None,
    cafile: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext:
    """The client :class:`ssl.SSLContext` for a target with this requirement, TLS 1.2 at least.

    With ``authenticate="pkix"`` (:attr:`~mxselect.Posture.MTA_STS` and
    :attr:`~mxselect.Posture.MTA_STS_TESTING`) the context **verifies** the server during the
    handshake, as RFC 8461 §4.2 asks ("the usual certificate checks", RFC 6125 names): a chain
    to a trusted root (``CERT_REQUIRED``), not expired, and a DNS-ID matching the name passed
    as ``server_hostname`` (``check_hostname``) -- pass ``target.tls.sni``, the MX host name;
    RFC 8461 §7.2 requires TLS 1.2 or later. A new context is
    :func:`ssl.create_default_context` (the system's CA certificates, or only ``cafile``'s).

    Every other posture gets a context that does **not** verify the certificate during the
    handshake (``CERT_NONE``, ``check_hostname`` off):

    * DANE (:attr:`~mxselect.Posture.DANE`, :attr:`~mxselect.Posture.DANE_INSECURE_MX`): the
      peer is authenticated by its TLSA records, not by a CA list, and for DANE-EE(3) without
      any name check (RFC 7672 §3.1.1, §3.2.1): call :func:`mxselect.dane.verify` on
      :func:`peer_chain` after the handshake and before ``MAIL FROM``, and treat a failed
      verdict as a failed handshake (RFC 7672 §3.2 "Messages MUST NOT be delivered via the
      SMTP server if authentication fails").
    * :attr:`~mxselect.Posture.DANE_ENCRYPT`: TLS is required, authentication is not
      (RFC 7672 §2.2 second bullet): the same context, nothing to verify.
    * :attr:`~mxselect.Posture.OPPORTUNISTIC`: RFC 7435 opportunistic security -- any
      certificate is accepted, because refusing one would only push the client to cleartext
      (RFC 7672 §1.3). Servers that speak only TLS 1.0/1.1 fail the handshake, and the plan
      allows a cleartext retry (RFC 7672 §2.2 "MAY retry in cleartext").

    Args:
        requirement: the target's :attr:`~mxselect.Target.tls`.
        base: a context to configure instead of a new one (e.g. with a client certificate or
            your ciphers): it is changed **in place** and returned -- verification as above,
            TLS >= 1.2 (a stricter floor is kept). For ``"pkix"`` it keeps the CA
            certificates it has (``cafile``'s are added); one without any fails every
            handshake. By default a new ``PROTOCOL_TLS_CLIENT`` context, without any CA
            certificates, or for ``"pkix"`` :func:`ssl.create_default_context`.
        cafile: for ``"pkix"``: a PEM file of the CA certificates to trust instead of the
            system's (a private CA, the tests); ignored by the other postures.

    Raises:
        ValueError: the requirement asks for an authentication this version cannot set up
            (anything but ``"dane"``, ``"pkix"`` or ``None``).
    """
    if requirement.posture not in _POSTURES or requirement.authenticate not in (
        None,
        "dane",
        "pkix",
    ):
        raise ValueError(
            f"no TLS context for {requirement.posture} with authenticate="
            f"{requirement.authenticate!r} in this version of mxselect"
        )
    if requirement.authenticate == "pkix":
        if base is None:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cafile=None if cafile is None else os.fspath(cafile)
            )
        else:
            context = base
            if cafile is not None:
                context.load_verify_locations(cafile=os.fspath(cafile))
        context.verify_mode = ssl.CERT_REQUIRED  # before check_hostname: it needs it
        context.check_hostname = True
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) if base is None else base
        context.check_hostname = False  # before verify_mode: CERT_NONE needs it off
        context.verify_mode = ssl.CERT_NONE
    if context.minimum_version < ssl.TLSVersion.TLSv1_2:  # MINIMUM_SUPPORTED is -2
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


#: OpenSSL verify codes (``X509_V_ERR_*``) -> RFC 8460 §4.3 result types.
_RESULT_TYPES = {
    10: "certificate-expired",  # CERT_HAS_EXPIRED
    2: "certificate-not-trusted",  # UNABLE_TO_GET_ISSUER_CERT
    18: "certificate-not-trusted",  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: "certificate-not-trusted",  # SELF_SIGNED_CERT_IN_CHAIN
    20: "certificate-not-trusted",  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: "certificate-not-trusted",  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    27: "certificate-not-trusted",  # CERT_UNTRUSTED
    28: "certificate-not-trusted",  # CERT_REJECTED
    62: "certificate-host-mismatch",  # HOSTNAME_MISMATCH
    64: "certificate-host-mismatch",  # IP_ADDRESS_MISMATCH
}


def result_type(error: BaseException) -> str:
    """The RFC 8460 §4.3 result type of a failed PKIX handshake (MTA-STS): from the
    :class:`ssl.SSLCertVerificationError` that ``error`` is or was raised from (its
    ``verify_code``) -- ``"certificate-host-mismatch"`` (the name), ``"certificate-expired"``
    (past its ``notAfter``), ``"certificate-not-trusted"`` (no chain to a trusted root,
    self-signed); ``"validation-failure"`` for any other verification error (a certificate
    not yet valid, a bad signature...) and for a handshake that failed without one (a
    protocol version, a closed connection)."""
    verify_error = certificate_error(error)
    if verify_error is None:
        return "validation-failure"
    return _RESULT_TYPES.get(verify_error.verify_code, "validation-failure")


def certificate_error(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The :class:`ssl.SSLCertVerificationError` that ``error`` is, or was raised from or
    during (libraries wrap it: aiosmtplib, httpx), or ``None``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def peer_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket | Any) -> list[bytes]:
    """The certificates the server presented, DER, leaf first; ``[]`` without a certificate.

    The leaf comes from ``getpeercert(binary_form=True)``, which works with ``CERT_NONE``;
    that is all DANE-EE(3) needs (RFC 7672 §3.1.1). DANE-TA(2) also needs the issuers the
    server sent (RFC 7672 §3.1.2: the server "MUST include the TA certificate"): Python 3.13+
    has the public ``get_unverified_chain()``; on 3.10-3.12 this reads the same list through
    the private ``_sslobj.get_unverified_chain()`` of :class:`ssl.SSLObject` /
    :class:`ssl.SSLSocket` (CPython's ``_ssl`` module; bpo-18233) when it is there. Where
    neither exists only the leaf is returned, and :func:`mxselect.dane.verify` then fails
    DANE-TA(2) records with a reason that says so (DANE-EE records still work).

    Args:
        ssl_object: the connection's :class:`ssl.SSLObject` (asyncio: the transport's
            ``get_extra_info("ssl_object")``) or :class:`ssl.SSLSocket`.
    """
    if ssl_object is None:
        return []
    leaf = ssl_object.getpeercert(binary_form=True)
    if not leaf:
        return []
    presented: list[bytes] = []
    getter = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13+
    if getter is None:
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        try:
            raw = getter() or []
            presented = [_der(cert) for cert in raw]
        except (ssl.SSLError, AttributeError, TypeError, ValueError):
            presented = []
    if not presented or presented[0] != leaf:
        presented = [leaf, *(cert for cert in presented if cert != leaf)]
    return presented


def _der(cert: object) -> bytes:
    """A certificate of ``get_unverified_chain()`` as DER: bytes on 3.13+, an
    ``_ssl.Certificate`` (``public_bytes(ENCODING_DER)``) from the private 3.10-3.12 method."""
    if isinstance(cert, bytes | bytearray | memoryview):
        return bytes(cert)
    encoding = getattr(ssl, "_ssl").ENCODING_DER  # noqa: B009 (the private module, on purpose)
    return bytes(cert.public_bytes(encoding))  # type: ignore[attr-defined]
