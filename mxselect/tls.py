"""TLS for one target, as its :class:`~mxselect.TlsRequirement` says: the client context and
the peer's certificate chain. Standard library only.

::

    context = mxselect.tls.ssl_context(target.tls)
    await smtp.starttls(tls_context=context, server_hostname=target.tls.sni or target.host)
    chain = mxselect.tls.peer_chain(smtp.transport.get_extra_info("ssl_object"))
    verdict = mxselect.dane.verify(target.tls, chain)      # DANE postures (mxselect[dane])

Always pass ``server_hostname=target.tls.sni`` when it is set: with DANE it is the TLSA base
domain, which the client "MUST send" in the TLS SNI extension (RFC 7672 §8.1). Without a
name (opportunistic TLS) the MX host name is a fine SNI value.
"""

from __future__ import annotations

import ssl
from typing import Any

from ._model import Posture, TlsRequirement

__all__ = ["peer_chain", "ssl_context"]

#: The postures this module knows.
_POSTURES = frozenset(Posture)


def ssl_context(
    requirement: TlsRequirement, *, base: ssl.SSLContext | None = None
) -> ssl.SSLContext:
    """The client :class:`ssl.SSLContext` for a target with this requirement.

    Every posture of this version gets a context that does **not** verify the certificate
    during the handshake (``CERT_NONE``, ``check_hostname`` off), with TLS 1.2 at least:

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
            your ciphers): it is changed **in place** -- verification off, TLS >= 1.2 -- and
            returned. By default a new ``PROTOCOL_TLS_CLIENT`` context, without loading any
            CA certificates.

    Raises:
        ValueError: the requirement asks for an authentication this version cannot set up
            (anything but ``"dane"`` or ``None``).
    """
    if requirement.posture not in _POSTURES or requirement.authenticate not in (None, "dane"):
        raise ValueError(
            f"no TLS context for {requirement.posture} with authenticate="
            f"{requirement.authenticate!r} in this version of mxselect"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) if base is None else base
    context.check_hostname = False  # before verify_mode: CERT_NONE needs it off
    context.verify_mode = ssl.CERT_NONE
    if context.minimum_version < ssl.TLSVersion.TLSv1_2:  # MINIMUM_SUPPORTED is -2
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


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
