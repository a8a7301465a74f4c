"""A tiny MTA: deliver one message to one recipient with mxselect and aiosmtplib.

It resolves the recipient's domain with :func:`mxselect.aselect_targets`, walks a
:class:`mxselect.DeliveryPlan` (next target, report, next...) and sends with aiosmtplib.
It returns the plan's outcome: delivered, deferred (keep the message queued) or bounced.

    pip install "mxselect[examples]"
    python examples/mta.py --from me@example.net --to you@example.org \\
        --nameserver 127.0.0.1 --dns-port 5353 --smtp-port 2525 < message.eml

Test deployments only: the policy below allows loopback targets (127.0.0.0/8), which
mxselect drops by default because a public MX pointing at loopback is a misconfiguration.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiosmtplib

import mxselect
from mxselect.delivery import DeliveryPlan, DeliveryStatus, HostStatus, Outcome

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
) -> Outcome:
    """Deliver ``message`` (bytes, CRLF line endings) to ``recipient``; never raises for a
    DNS or SMTP outcome."""
    domain = recipient.rpartition("@")[2]
    try:
        selection = await mxselect.aselect_targets(domain, resolver=resolver, policy=policy)
    except mxselect.MXSelectError as exc:  # null MX, NXDOMAIN, SERVFAIL...
        status = DeliveryStatus.BOUNCED if exc.permanent else DeliveryStatus.DEFERRED
        return Outcome(status, exc.reply_code, exc.status, str(exc))

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
            if exc.code >= 500:
                plan.permanent(target, exc.code, exc.message, at_greeting=True)
            else:
                plan.temporary(target, exc.code, exc.message)
            continue
        except OSError as exc:  # refused, unreachable (SMTPConnectError is an OSError)
            plan.refused(target, str(exc))
            continue
        plan.connected(target)
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
            smtp.close()
    return plan.outcome


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
