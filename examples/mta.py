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

MTA-STS (RFC 8461; ``pip install "mxselect[examples,mta-sts]"``): ``--mta-sts`` turns on
``Policy(mta_sts=True)``; the policy is fetched over HTTPS by ``mxselect.fetch.HttpxFetcher``
(or the ``fetcher=`` given to :func:`deliver`) and cached in ``--sts-cache FILE`` (an
``mxselect.mtasts.SQLiteStore``; ``sts_store=``), so a policy stays in force while its server
is down (RFC 8461 §3.3, §5.1). ``--ca-file FILE`` (``cafile=``) replaces the system's CA
certificates for the MX certificates (a private CA, a test bench)::

    python examples/mta.py --mta-sts --sts-cache sts.sqlite --from me@example.net \\
        --to you@example.org < message.eml

* ``MTA_STS`` targets (mode enforce): STARTTLS is required and the certificate must chain to a
  trusted root and name the MX host (``mxselect.tls.ssl_context``, ``server_hostname`` =
  ``target.tls.sni``; RFC 8461 §4.2); a failure is reported with ``plan.tls_failed`` and its
  RFC 8460 result type (``certificate-host-mismatch``, ``certificate-expired``,
  ``certificate-not-trusted``, ``validation-failure``, ``starttls-not-supported``) and the next
  MX is tried -- never cleartext. When none is left the message is deferred 451 4.7.5 with
  ``outcome.recheck_policy``: look for a new policy before it may ever bounce (RFC 8461 §5.1);
  so is a policy no MX matches (``StsPolicyError``). ``main`` prints a line saying so.
* ``MTA_STS_TESTING`` targets (mode testing): validated the same way, but a failure only is
  reported (``plan.tlsrpt_events``, for TLS-RPT) and the message is delivered anyway
  (RFC 8461 §5). The failed handshake closed the connection, so the plan hands the same target
  back once (``plan.cleartext_retry``); this MTA then reconnects and, after a *certificate*
  failure, does STARTTLS again **without** validation -- delivered "as though there were no
  MTA-STS validation failure", still encrypted -- and after any other failure (STARTTLS not
  offered, a TLS version) goes on in cleartext, as opportunistic TLS does (RFC 7672 §2.2).
  The unvalidated session is not reported as a TLS success: its failure already was.

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
import mxselect.mtasts
import mxselect.tls
from mxselect.delivery import DeliveryPlan, DeliveryStatus, HandshakeStage, HostStatus, Outcome
from mxselect.tlsrpt import TlsRptEvent

#: The default unsafe networks minus 127.0.0.0/8, so MX hosts on 127.0.0.2, 127.0.0.3...
#: are used. Everything else (0.0.0.0/8, link-local, multicast, ::1...) stays unsafe.
TEST_POLICY = mxselect.Policy().without_unsafe("127.0.0.0/8")
#: The same with MTA-STS (RFC 8461): ``--mta-sts``.
STS_TEST_POLICY = mxselect.Policy(mta_sts=True).without_unsafe("127.0.0.0/8")

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
    fetcher: object = None,
    sts_store: mxselect.mtasts.PolicyStore | None = None,
    cafile: str | None = None,
    tlsrpt: list[TlsRptEvent] | None = None,
) -> Outcome:
    """Deliver ``message`` (bytes, CRLF line endings) to ``recipient``; never raises for a
    DNS or SMTP outcome. Resolves the domain, then :func:`deliver_to` its targets.

    With ``policy.mta_sts`` the domain's MTA-STS policy is looked up too: ``fetcher`` fetches
    it (``None``: ``mxselect.fetch.HttpxFetcher()``) and ``sts_store`` caches it (``None``: no
    cache, a fetch every time the TXT record is there). ``cafile``: the CA certificates that
    MTA-STS targets' certificates must chain to (default: the system's). ``tlsrpt``: a list
    the delivery's TLS-RPT events are appended to (``plan.tlsrpt_events``: one per TLS session,
    successful or failed; feed them to an ``mxselect.tlsrpt.Aggregator``)."""
    domain = recipient.rpartition("@")[2]
    try:
        selection = await mxselect.aselect_targets(
            domain, resolver=resolver, policy=policy, fetcher=fetcher, sts_store=sts_store
        )
    except mxselect.MXSelectError as exc:  # null MX, NXDOMAIN, SERVFAIL, MTA-STS: no MX...
        status = DeliveryStatus.BOUNCED if exc.permanent else DeliveryStatus.DEFERRED
        recheck = bool(getattr(exc, "recheck_policy", False))  # StsPolicyError (RFC 8461 §5.1)
        return Outcome(status, exc.reply_code, exc.status, str(exc), recheck_policy=recheck)
    return await deliver_to(
        selection,
        sender,
        recipient,
        message,
        smtp_port=smtp_port,
        host_status=host_status,
        timeout=timeout,
        tls_context=tls_context,
        cafile=cafile,
        tlsrpt=tlsrpt,
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
    cafile: str | None = None,
    tlsrpt: list[TlsRptEvent] | None = None,
) -> Outcome:
    """Deliver ``message`` to the targets of ``selection``, TLS as each ``target.tls`` says
    (see :func:`handshake`); ``cafile``, ``tlsrpt``: as for :func:`deliver`.

    ``tls_context``: instead, require STARTTLS (RFC 3207) with this context at every target,
    the certificate checked against the MX host name; a target that does not offer it or fails
    the TLS handshake is skipped (RFC 8461 §5: the next server, or defer)."""
    plan = DeliveryPlan(selection, host_status)
    retry = CLEARTEXT  # how the plan's second try of a target goes (see TlsFailure.retry)
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
        again = retry if plan.cleartext_retry else None
        try:
            if await handshake(smtp, target, tls_context, retry=again, cafile=cafile):
                plan.tls_ok(target)  # TLS is up (and authenticated, with DANE or MTA-STS)
        except TlsFailure as exc:  # next target, or this one again (opportunistic, testing)
            plan.tls_failed(target, exc.result_type, exc.detail)
            retry = exc.retry
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
    if tlsrpt is not None:
        tlsrpt.extend(plan.tlsrpt_events)
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


#: The plan's retry of a target (``plan.cleartext_retry``): without STARTTLS (RFC 7672 §2.2).
CLEARTEXT = "cleartext"
#: ... or STARTTLS without validating the certificate: MTA-STS testing after a certificate
#: failure, delivered "as though there were no MTA-STS validation failure" (RFC 8461 §5).
UNVALIDATED = "unvalidated"


class TlsFailure(Exception):
    """TLS as ``target.tls`` requires did not happen: ``result_type`` is the RFC 8460 result
    type for :meth:`~mxselect.DeliveryPlan.tls_failed`; ``retry`` how to try the target again
    if the plan hands it back (:data:`CLEARTEXT` or :data:`UNVALIDATED`)."""

    def __init__(self, result_type: str, detail: str, retry: str = CLEARTEXT) -> None:
        super().__init__(f"{result_type}: {detail}")
        self.result_type, self.detail, self.retry = result_type, detail, retry


async def handshake(
    smtp: aiosmtplib.SMTP,
    target: mxselect.Target,
    tls_context: ssl.SSLContext | None,
    *,
    retry: str | None = None,
    cafile: str | None = None,
) -> bool:
    """EHLO, then STARTTLS, the TLS handshake, DANE authentication and EHLO again (RFC 3207
    §4.2), before the transaction, so that a failure here is told apart from one in it.

    TLS follows ``target.tls`` (RFC 7672 §2.2, RFC 8461 §5): required (DANE, MTA-STS enforce)
    -- STARTTLS must be offered and succeed, with the context of
    :func:`mxselect.tls.ssl_context` and the SNI name ``target.tls.sni`` (RFC 7672 §8.1,
    RFC 8461 §4.2), and with DANE the peer's chain must match the TLSA records
    (:func:`mxselect.dane.verify`) before MAIL FROM (RFC 7672 §3.2); with MTA-STS the context
    validates the certificate (PKIX, the MX host name; ``cafile``'s CA certificates if given);
    opportunistic -- STARTTLS when offered, cleartext otherwise; MTA-STS testing -- validated as
    enforce, but a failure allows a retry. ``retry`` is the plan's retry of the target after a
    failed TLS handshake: :data:`CLEARTEXT` skips STARTTLS, :data:`UNVALIDATED` does STARTTLS
    with an opportunistic (unvalidated) context. With ``tls_context`` every target must do
    STARTTLS with that context instead.

    Returns:
        whether the session is now over TLS as ``target.tls`` asks (authenticated, with DANE
        and MTA-STS): a TLS success to report (``plan.tls_ok``). ``False`` in cleartext and
        over an :data:`UNVALIDATED` retry (its failure was reported already).

    Raises:
        TlsFailure: TLS that ``target.tls`` requires was not offered, failed or was not
            authenticated, or an opportunistic or MTA-STS testing TLS handshake failed.
        HandshakeError: a 4xx/5xx reply, or no reply (a timeout, a closed connection; with
            ``tls_context``: a failed TLS handshake, STARTTLS not offered).
    """
    tls = target.tls
    if retry == UNVALIDATED:  # RFC 8461 §5: "as though there were no MTA-STS validation failure"
        tls = mxselect.OPPORTUNISTIC_TLS
    stage = HandshakeStage.EHLO
    try:
        await hello(smtp)
        if retry == CLEARTEXT:  # RFC 7672 §2.2: "MAY retry in cleartext"
            return False
        stage = HandshakeStage.STARTTLS
        # MTA-STS testing reports what enforce would refuse (RFC 8460), then retries.
        report_failure = tls.required or tls.authenticate == "pkix"
        if not smtp.supports_extension("starttls"):
            if tls_context is not None:
                raise HandshakeError(stage, 0, "STARTTLS not offered, and TLS is required")
            if report_failure:
                raise TlsFailure("starttls-not-supported", "STARTTLS not offered")
            return False  # opportunistic TLS: cleartext (RFC 3207 §4)
        context = tls_context or mxselect.tls.ssl_context(tls, cafile=cafile)
        name = target.host if tls_context else tls.sni or target.host
        # A reply other than 220 raises SMTPResponseException (the STARTTLS stage); anything
        # else raised comes from the TLS handshake.
        try:
            await smtp.starttls(tls_context=context, server_hostname=name)
        except aiosmtplib.SMTPResponseException as exc:
            if tls_context is not None:
                raise
            if report_failure:
                raise TlsFailure("starttls-not-supported", f"{exc.code} {exc.message}") from exc
            return False  # opportunistic: STARTTLS refused, go on in cleartext (RFC 3207 §4)
        except (ssl.SSLError, aiosmtplib.SMTPException, OSError) as exc:
            text = str(exc) or type(exc).__name__
            if tls_context is not None:
                raise HandshakeError(HandshakeStage.TLS, 0, text) from exc
            if tls.authenticate != "pkix":
                raise TlsFailure("validation-failure", f"TLS handshake: {text}") from exc
            # MTA-STS: the certificate was checked in the handshake (RFC 8460 §4.3 types).
            failed = mxselect.tls.certificate_error(exc)
            if failed is not None:
                text = failed.verify_message or text
            retry_as = UNVALIDATED if failed is not None else CLEARTEXT
            result = mxselect.tls.result_type(exc)
            raise TlsFailure(result, f"TLS handshake: {text}", retry_as) from exc
        if tls_context is None and tls.authenticate == "dane":
            transport = smtp.transport
            ssl_object = transport.get_extra_info("ssl_object") if transport else None
            chain = mxselect.tls.peer_chain(ssl_object)
            verdict = mxselect.dane.verify(tls, chain)
            if not verdict.ok:  # RFC 7672 §3.2: "MUST NOT be delivered via the SMTP server"
                raise TlsFailure(verdict.result_type or "validation-failure", verdict.reason)
        stage = HandshakeStage.EHLO
        await hello(smtp)
        return retry != UNVALIDATED
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


def describe(outcome: Outcome) -> str:
    """The outcome, and for a deferral after MTA-STS refused every MX a second line saying
    that the policy must be checked again before the message may ever bounce (RFC 8461 §5.1)."""
    if outcome.recheck_policy:
        return (
            f"{outcome}\nMTA-STS: check the domain's _mta-sts record for a new policy before "
            "this message may fail permanently (RFC 8461 §5.1)"
        )
    return str(outcome)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="sender", required=True)
    parser.add_argument("--to", dest="recipient", required=True)
    parser.add_argument("--smtp-port", type=int, default=25)
    parser.add_argument("--nameserver", help="ask only this resolver (default: system)")
    parser.add_argument("--dns-port", type=int, default=53)
    parser.add_argument("--mta-sts", action="store_true", help="apply MTA-STS (RFC 8461)")
    parser.add_argument("--sts-cache", metavar="FILE", help="the MTA-STS policy cache (SQLite)")
    parser.add_argument("--ca-file", metavar="FILE", help="CA certificates for MTA-STS MX hosts")
    args = parser.parse_args()
    policy = STS_TEST_POLICY if args.mta_sts else TEST_POLICY
    store = mxselect.mtasts.SQLiteStore(args.sts_cache) if args.sts_cache else None
    resolver = None
    if args.nameserver:
        import dns.asyncresolver

        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [args.nameserver]
        resolver.port = args.dns_port
    message = sys.stdin.buffer.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    try:
        outcome = asyncio.run(
            deliver(
                args.sender,
                args.recipient,
                message,
                resolver=resolver,
                smtp_port=args.smtp_port,
                policy=policy,
                sts_store=store,
                cafile=args.ca_file,
            )
        )
    finally:
        if store is not None:
            store.close()
    print(describe(outcome))
    return {DeliveryStatus.DELIVERED: 0, DeliveryStatus.DEFERRED: 75}.get(outcome.status, 69)


if __name__ == "__main__":
    sys.exit(main())
