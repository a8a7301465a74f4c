"""A tiny MTA: deliver one message to one recipient with mxselect and aiosmtplib.

It resolves the recipient's domain with :func:`mxselect.aselect_targets`, walks a
:class:`mxselect.DeliveryPlan` (next target, report, next...) and sends with aiosmtplib.
It returns the plan's outcome: delivered, deferred (keep the message queued) or bounced.
The initial handshake (greeting, EHLO, STARTTLS and TLS) is done apart from the transaction,
so that a host failing it is reported with ``plan.handshake_failed`` (or ``plan.tls_failed``)
and does not use up one of the plan's two sessions (Postfix ``smtp_mx_session_limit``).
TLS follows each target's ``target.tls``: with DANE (``Policy(dane=...)``) STARTTLS is required
and the server is authenticated by its TLSA records (``mxselect.dane``) before MAIL FROM.

    pip install "mxselect[examples]"
    python examples/mta.py --from me@example.net --to you@example.org \\
        --nameserver 127.0.0.1 --dns-port 5353 --smtp-port 2525 < message.eml

Test deployments only: the policy below allows loopback targets (127.0.0.0/8), which
mxselect drops by default because a public MX pointing at loopback is a misconfiguration.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys

import aiosmtplib

import mxselect
import mxselect.dane
import mxselect.tls
from mxselect.delivery import DeliveryPlan, DeliveryStatus, HandshakeStage, HostStatus, Outcome

#: The default unsafe networks minus 127.0.0.0/8, so MX hosts on 127.0.0.2, 127.0.0.3...
#: are used. Everything else (0.0.0.0/8, link-local, multicast, ::1...) stays unsafe.
TEST_POLICY = mxselect.Policy().without_unsafe("127.0.0.0/8")

#: Unreachable hosts, remembered across deliveries (RFC 5321 §4.5.4.1).
HOST_STATUS = HostStatus()


async def deliver(
    sender: str,
    recipient: str,
    message: bytes,
    *,
    resolver: object = None,
    smtp_port: int = 25,
    policy: mxselect.Policy = TEST_POLICY,
    host_status: HostStatus = HOST_STATUS,
    timeout: float = 10.0,
    tls_context: ssl.SSLContext | None = None,
) -> Outcome:
    """Deliver ``message`` (bytes, CRLF line endings) to ``recipient``; never raises for a
    DNS or SMTP outcome. Resolves the domain, then :func:`deliver_to` its targets."""
    domain = recipient.rpartition("@")[2]
    try:
        selection = await mxselect.aselect_targets(domain, resolver=resolver, policy=policy)
    except mxselect.MXSelectError as exc:  # null MX, NXDOMAIN, SERVFAIL...
        status = DeliveryStatus.BOUNCED if exc.permanent else DeliveryStatus.DEFERRED
        return Outcome(status, exc.reply_code, exc.status, str(exc))
    return await deliver_to(
        selection,
        sender,
        recipient,
        message,
        smtp_port=smtp_port,
        host_status=host_status,
        timeout=timeout,
        tls_context=tls_context,
    )


async def deliver_to(
    selection: mxselect.Selection,
    sender: str,
    recipient: str,
    message: bytes,
    *,
    smtp_port: int = 25,
    host_status: HostStatus = HOST_STATUS,
    timeout: float = 10.0,
    tls_context: ssl.SSLContext | None = None,
) -> Outcome:
    """Deliver ``message`` to the targets of ``selection``, TLS as each ``target.tls`` says
    (see :func:`handshake`).

    ``tls_context``: instead, require STARTTLS (RFC 3207) with this context at every target,
    the certificate checked against the MX host name; a target that does not offer it or fails
    the TLS handshake is skipped (RFC 8461 §5: the next server, or defer)."""
    plan = DeliveryPlan(selection, host_status)
    for target in plan:
        smtp = aiosmtplib.SMTP(
            hostname=str(target.address), port=smtp_port, timeout=timeout, start_tls=False
        )
        try:
            await smtp.connect()
        except aiosmtplib.SMTPConnectTimeoutError as exc:
            plan.timed_out(target, str(exc))
            continue
        except aiosmtplib.SMTPConnectResponseError as exc:  # a 4xx/5xx greeting
            plan.handshake_failed(target, exc.code, exc.message, stage=HandshakeStage.GREETING)
            continue
        except OSError as exc:  # refused, unreachable (SMTPConnectError is an OSError)
            plan.refused(target, str(exc))
            continue
        plan.connected(target)  # a session: it counts unless the handshake fails
        try:
            if await handshake(smtp, target, tls_context, cleartext=plan.cleartext_retry):
                plan.tls_ok(target)  # TLS is up (and authenticated, with DANE)
        except TlsFailure as exc:  # next target, or (opportunistic) this one in cleartext
            plan.tls_failed(target, exc.result_type, exc.detail)
            await close(smtp)
            continue
        except HandshakeError as exc:
            plan.handshake_failed(target, exc.code, exc.text, stage=exc.stage)
            await close(smtp)
            continue
        try:
            _errors, reply = await smtp.sendmail(sender, [recipient], message)
            plan.delivered(target, 250, reply)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refusal = exc.recipients[0]
            report(plan, target, refusal.code, refusal.message)
        except aiosmtplib.SMTPResponseException as exc:
            report(plan, target, exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            plan.lost(target, str(exc))
        finally:
            await close(smtp)
    return plan.outcome


async def close(smtp: aiosmtplib.SMTP) -> None:
    """Close the connection now, and let the event loop finish closing it. ``smtp.close()``
    alone leaves a TLS connection waiting for the server's close_notify: if the loop ends
    meanwhile (``asyncio.run`` returns), the socket is never closed (``ResourceWarning:
    unclosed transport``). ``abort()`` drops it at once, after close_notify was sent."""
    transport = smtp.transport
    smtp.close()
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
    for _ in range(3):  # the transports' connection_lost callbacks (call_soon, nested)
        await asyncio.sleep(0)


class HandshakeError(Exception):
    """The initial handshake failed at ``stage`` with reply ``code`` (0: no reply)."""

    def __init__(self, stage: HandshakeStage, code: int, text: str) -> None:
        super().__init__(f"{stage.value}: {code} {text}")
        self.stage, self.code, self.text = stage, code, text


class TlsFailure(Exception):
    """TLS as ``target.tls`` requires did not happen: ``result_type`` is the RFC 8460 result
    type for :meth:`~mxselect.DeliveryPlan.tls_failed`."""

    def __init__(self, result_type: str, detail: str) -> None:
        super().__init__(f"{result_type}: {detail}")
        self.result_type, self.detail = result_type, detail


async def handshake(
    smtp: aiosmtplib.SMTP,
    target: mxselect.Target,
    tls_context: ssl.SSLContext | None,
    *,
    cleartext: bool = False,
) -> bool:
    """EHLO, then STARTTLS, the TLS handshake, DANE authentication and EHLO again (RFC 3207
    §4.2), before the transaction, so that a failure here is told apart from one in it.

    TLS follows ``target.tls`` (RFC 7672 §2.2): required (DANE) -- STARTTLS must be offered
    and succeed, with the context of :func:`mxselect.tls.ssl_context` and the SNI name
    ``target.tls.sni`` (RFC 7672 §8.1), and with DANE the peer's chain must match the TLSA
    records (:func:`mxselect.dane.verify`) before MAIL FROM (RFC 7672 §3.2); opportunistic --
    STARTTLS when offered, cleartext otherwise, and ``cleartext`` (the plan's retry after a
    failed TLS handshake) skips it. With ``tls_context`` every target must do STARTTLS with
    that context instead.

    Returns:
        whether the session is now over TLS.

    Raises:
        TlsFailure: TLS that ``target.tls`` requires was not offered, failed or was not
            authenticated, or an opportunistic TLS handshake failed.
        HandshakeError: a 4xx/5xx reply, or no reply (a timeout, a closed connection; with
            ``tls_context``: a failed TLS handshake, STARTTLS not offered).
    """
    tls = target.tls
    stage = HandshakeStage.EHLO
    try:
        await hello(smtp)
        if cleartext:  # RFC 7672 §2.2: "MAY retry in cleartext"
            return False
        stage = HandshakeStage.STARTTLS
        if not smtp.supports_extension("starttls"):
            if tls_context is not None:
                raise HandshakeError(stage, 0, "STARTTLS not offered, and TLS is required")
            if tls.required:
                raise TlsFailure("starttls-not-supported", "STARTTLS not offered")
            return False  # opportunistic TLS: cleartext (RFC 3207 §4)
        context = tls_context or mxselect.tls.ssl_context(tls)
        name = target.host if tls_context else tls.sni or target.host
        # A reply other than 220 raises SMTPResponseException (the STARTTLS stage); anything
        # else raised comes from the TLS handshake.
        try:
            await smtp.starttls(tls_context=context, server_hostname=name)
        except aiosmtplib.SMTPResponseException as exc:
            if tls_context is not None:
                raise
            if tls.required:
                raise TlsFailure("starttls-not-supported", f"{exc.code} {exc.message}") from exc
            return False  # opportunistic: STARTTLS refused, go on in cleartext (RFC 3207 §4)
        except (ssl.SSLError, aiosmtplib.SMTPException, OSError) as exc:
            text = str(exc) or type(exc).__name__
            if tls_context is not None:
                raise HandshakeError(HandshakeStage.TLS, 0, text) from exc
            raise TlsFailure("validation-failure", f"TLS handshake: {text}") from exc
        if tls_context is None and tls.authenticate == "dane":
            transport = smtp.transport
            ssl_object = transport.get_extra_info("ssl_object") if transport else None
            chain = mxselect.tls.peer_chain(ssl_object)
            verdict = mxselect.dane.verify(tls, chain)
            if not verdict.ok:  # RFC 7672 §3.2: "MUST NOT be delivered via the SMTP server"
                raise TlsFailure(verdict.result_type or "validation-failure", verdict.reason)
        stage = HandshakeStage.EHLO
        await hello(smtp)
        return True
    except aiosmtplib.SMTPResponseException as exc:
        raise HandshakeError(stage, exc.code, exc.message) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:  # timeout, connection lost
        raise HandshakeError(stage, 0, str(exc) or type(exc).__name__) from exc


async def hello(smtp: aiosmtplib.SMTP) -> None:
    """EHLO, or HELO after a 5xx reply to it (RFC 5321 §3.2: an old server may not know
    EHLO)."""
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError as exc:
        if exc.code < 500 or not smtp.is_connected:
            raise
        await smtp.helo()


def report(plan: DeliveryPlan, target: mxselect.Target, code: int, text: str) -> None:
    """Report a 4xx or 5xx reply."""
    if code >= 500:
        plan.permanent(target, code, text)
    else:
        plan.temporary(target, code, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="sender", required=True)
    parser.add_argument("--to", dest="recipient", required=True)
    parser.add_argument("--smtp-port", type=int, default=25)
    parser.add_argument("--nameserver", help="ask only this resolver (default: system)")
    parser.add_argument("--dns-port", type=int, default=53)
    args = parser.parse_args()
    resolver = None
    if args.nameserver:
        import dns.asyncresolver

        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [args.nameserver]
        resolver.port = args.dns_port
    message = sys.stdin.buffer.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    outcome = asyncio.run(
        deliver(args.sender, args.recipient, message, resolver=resolver, smtp_port=args.smtp_port)
    )
    print(outcome)
    return {DeliveryStatus.DELIVERED: 0, DeliveryStatus.DEFERRED: 75}.get(outcome.status, 69)


if __name__ == "__main__":
    sys.exit(main())
