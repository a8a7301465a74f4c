"""``mxselect check --probe``: connect to each selected target on port 25 and see what a
sender would see -- the banner, EHLO, STARTTLS, the certificate, and whether it satisfies the
target's DANE (RFC 7672) or MTA-STS (RFC 8461) requirement.

Raw asyncio streams (:func:`asyncio.open_connection`, :meth:`asyncio.StreamWriter.start_tls`,
Python 3.11+), not aiosmtplib: the probe needs no dependency, reads a 5xx banner as a reply
rather than an exception, and bounds each target's conversation with one timeout and the
whole probe with a deadline. It sends ``EHLO``,
``STARTTLS`` and ``QUIT`` -- never ``MAIL FROM``.

Safety: a target whose address the policy calls unsafe (loopback, link-local...; the
selection has dropped those already) is never connected to (``probe-unsafe-address``).
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from ._model import Posture, Target
from ._policy import Policy

if TYPE_CHECKING:
    import asyncio
    import os
    import ssl

    from .check import Finding, Report

#: Seconds the conversation with one target (connect to QUIT) may take, by default.
PROBE_TIMEOUT = 10.0
#: Seconds the whole probe of one report may take, by default.
PROBE_DEADLINE = 60.0
#: Targets probed at once.
PROBE_CONCURRENCY = 20
#: The most lines of one reply read (a server may send any number).
_MAX_LINES = 200
_STS = (Posture.MTA_STS, Posture.MTA_STS_TESTING)
_DANE = (Posture.DANE, Posture.DANE_INSECURE_MX)


class _Reply(Exception):
    """A reply that ends the probe (already turned into a finding)."""


@attrs.define
class _State:
    target: Target
    step: str = "connecting"
    findings: list[Finding] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)


def _subject(target: Target) -> str:
    return f"{target.host} {target.address}"


def _finding(state: _State, code: str, severity: str, message: str, fix: str, rfc: str) -> None:
    from .check import Finding, Severity

    state.findings.append(
        Finding(code, Severity(severity), _subject(state.target), message, fix, rfc)
    )


async def _reply(reader: asyncio.StreamReader) -> tuple[int, list[str]]:
    """One SMTP reply: (code, text lines); code 0 for a malformed reply (RFC 5321 §4.2)."""
    lines: list[str] = []
    for _ in range(_MAX_LINES):
        raw = await reader.readline()
        if not raw:
            raise ConnectionResetError("the server closed the connection")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        code = line[:3]
        if len(line) < 3 or not code.isdigit():
            return 0, [*lines, line]
        lines.append(line[4:])
        if line[3:4] != "-":
            return int(code), lines
    return 0, lines


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str
) -> tuple[int, list[str]]:
    writer.write(line.encode("ascii") + b"\r\n")
    await writer.drain()
    return await _reply(reader)


def _context(target: Target, cafile: str | os.PathLike[str] | None) -> ssl.SSLContext:
    from .tls import ssl_context

    return ssl_context(target.tls, cafile=cafile)


async def _probe_one(
    state: _State, port: int, helo: str, cafile: str | os.PathLike[str] | None
) -> None:
    import asyncio
    import ssl

    target = state.target
    tls = target.tls
    reader, writer = await asyncio.open_connection(str(target.address), port)
    try:
        state.step = "waiting for the banner"
        code, text = await _reply(reader)
        banner = text[0] if text else ""
        state.notes.append(f"banner {code} {banner}".rstrip())
        if 500 <= code < 600:
            _finding(
                state,
                "probe-banner-5xx",
                "error",
                f"{target.host} ({target.address}) greets with {code} {banner!r}: it refuses "
                "every session, so senders bounce or skip it.",
                "Make the server accept SMTP sessions from the internet (check its access "
                "rules), or remove it from the MX records.",
                "RFC 5321 §3.1, §4.2.2",
            )
            return
        if code != 220:
            _finding(
                state,
                "probe-banner-not-220",
                "warning",
                f"{target.host} ({target.address}) greets with {code or 'no valid reply'} "
                f"{banner!r} instead of 220: senders try it again later.",
                "Make the server greet with 220.",
                "RFC 5321 §3.1, §4.2",
            )
            return
        state.step = "waiting for the EHLO reply"
        code, text = await _command(reader, writer, f"EHLO {helo}")
        if code != 250:
            _finding(
                state,
                "probe-ehlo-refused",
                "warning",
                f"{target.host} ({target.address}) answers EHLO with {code} "
                f"{(text or [''])[0]!r}: senders fall back to HELO, without STARTTLS.",
                "Make the server accept EHLO (ESMTP).",
                "RFC 5321 §4.1.1.1",
            )
            return
        keywords = {line.split(" ", 1)[0].upper() for line in text[1:]}
        if "STARTTLS" not in keywords:
            required = tls.required
            _finding(
                state,
                "no-starttls",
                "error" if required else "warning",
                f"{target.host} ({target.address}) does not offer STARTTLS"
                + (
                    f": its {tls.posture} requirement forbids cleartext, so senders that "
                    "honour it defer mail to this host."
                    if required
                    else ": mail to it travels in cleartext."
                ),
                "Configure a certificate and enable STARTTLS on the server.",
                "RFC 3207, RFC 7672 §2.2" if required else "RFC 3207, RFC 8314",
            )
            return
        state.step = "waiting for the STARTTLS reply"
        code, text = await _command(reader, writer, "STARTTLS")
        if code != 220:
            _handshake_failed(state, f"STARTTLS answered {code} {(text or [''])[0]!r}")
            return
        state.step = "in the TLS handshake"
        context = _context(target, cafile)
        name = tls.sni if tls.sni else (target.host if tls.posture in _STS else None)
        try:
            await writer.start_tls(context, server_hostname=name)
        except OSError as exc:  # ssl.SSLError, or the server closed the connection
            if tls.posture in _STS and isinstance(exc, ssl.SSLCertVerificationError):
                _sts_invalid(state, exc)
            else:
                _handshake_failed(state, str(exc))
            return
        ssl_object = writer.get_extra_info("ssl_object")
        version = ssl_object.version() if ssl_object is not None else None
        state.notes.append(f"STARTTLS {version or 'TLS'}")
        _certificate(state, ssl_object)
        state.step = "waiting for the QUIT reply"
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(_command(reader, writer, "QUIT"), 1.0)
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


def _handshake_failed(state: _State, why: str) -> None:
    target = state.target
    required = target.tls.required
    _finding(
        state,
        "tls-handshake-failed",
        "error" if required else "warning",
        f"STARTTLS with {target.host} ({target.address}) fails ({why})"
        + (
            f": its {target.tls.posture} requirement forbids cleartext, so senders defer."
            if required
            else ": senders retry in cleartext."
        ),
        "Check the server's certificate, key and TLS versions (TLS 1.2 or later).",
        "RFC 3207, RFC 7672 §2.2" if required else "RFC 3207, RFC 7435",
    )


def _sts_invalid(state: _State, exc: ssl.SSLCertVerificationError) -> None:
    from .tls import result_type

    target = state.target
    enforce = target.tls.posture is Posture.MTA_STS
    _finding(
        state,
        "sts-certificate-invalid",
        "error" if enforce else "warning",
        f"The certificate of {target.host} ({target.address}) fails the MTA-STS checks "
        f"({result_type(exc)}: {exc.verify_message})"
        + (
            ": under the enforce policy senders do not deliver to it."
            if enforce
            else ": the testing policy only reports it (TLS-RPT)."
        ),
        f"Serve a certificate from a public CA that names {target.host} and has not expired.",
        "RFC 8461 §4.2, §5",
    )


def _certificate(state: _State, ssl_object: ssl.SSLObject | None) -> None:
    from .tls import peer_chain

    target = state.target
    tls = target.tls
    chain = peer_chain(ssl_object)
    leaf = _leaf(chain[0]) if chain else None
    if leaf is not None:
        subject, not_after = leaf
        state.notes.append(f"certificate {subject}, valid until {not_after:%Y-%m-%d}")
        if not_after < datetime.datetime.now(datetime.UTC) and tls.posture not in _STS:
            _finding(
                state,
                "certificate-expired",
                "warning",
                f"The certificate of {target.host} ({target.address}) expired on "
                f"{not_after:%Y-%m-%d}: opportunistic and DANE-EE senders still use it, "
                "MTA-STS and DANE-TA senders do not.",
                "Renew the certificate (and update TLSA records that pin it).",
                "RFC 5280 §4.1.2.5, RFC 7672 §3.1.1",
            )
    if tls.authenticate == "dane":
        from .dane import verify

        verdict = verify(tls, chain)
        if verdict.ok:
            state.notes.append(f"DANE ok ({verdict.reason})")
        else:
            _finding(
                state,
                "dane-mismatch",
                "error",
                f"The certificate of {target.host} ({target.address}) does not match its "
                f"TLSA records ({verdict.result_type}: {verdict.reason}): DANE senders "
                "defer mail to it.",
                "Publish TLSA records for the certificate the server presents (publish the "
                "new one before switching certificates: RFC 7671 §8.1).",
                "RFC 7672 §3.1, §3.2",
            )
    elif tls.posture in _STS:
        state.notes.append("MTA-STS certificate ok")


def _leaf(der: bytes) -> tuple[str, datetime.datetime] | None:
    """(subject, notAfter) of a DER certificate, or ``None`` (no ``cryptography``, malformed)."""
    try:
        from cryptography import x509
    except ImportError:  # pragma: no cover - the dane extra
        return None
    try:
        cert = x509.load_der_x509_certificate(der)
        return cert.subject.rfc4514_string(), cert.not_valid_after_utc
    except ValueError:
        return None


async def _guarded(
    state: _State,
    port: int,
    helo: str,
    cafile: str | os.PathLike[str] | None,
    timeout: float,
    end: float,
    deadline: float,
    gate: asyncio.Semaphore,
) -> None:
    import asyncio

    target = state.target
    async with gate:
        loop = asyncio.get_running_loop()
        left = end - loop.time()
        # The bound that applies: the per-target timeout, or what is left of the deadline
        # (said as the deadline, never as the rounded -- possibly zero -- remainder).
        by_deadline = left < timeout
        try:
            if left <= 0:
                raise TimeoutError
            await asyncio.wait_for(_probe_one(state, port, helo, cafile), min(timeout, left))
        except TimeoutError:
            bound = (
                f"before the probe deadline ({deadline:g} s for the whole probe) ran out"
                if by_deadline
                else f"within the probe timeout of {timeout:g} s"
            )
            _finding(
                state,
                "probe-timeout",
                "warning",
                f"{target.host} ({target.address}) port {port}: no answer {bound}, "
                f"{state.step}: unreachable now (or filtered); senders try the next host and "
                "retry later.",
                "Check that the server runs and that port 25 is open to the internet; then "
                "probe again.",
                "RFC 5321 §4.5.3.2, §4.5.4.1",
            )
        except OSError as exc:
            _finding(
                state,
                "probe-refused",
                "warning",
                f"{target.host} ({target.address}) port {port}: "
                f"{exc.strerror or exc} ({state.step}): unreachable now; senders try "
                "the next host and retry later.",
                "Check that the server runs and that port 25 is open to the internet; then "
                "probe again.",
                "RFC 5321 §4.5.4.1",
            )


async def aprobe(
    report: Report,
    *,
    policy: Policy | None = None,
    port: int = 25,
    timeout: float = PROBE_TIMEOUT,
    deadline: float = PROBE_DEADLINE,
    cafile: str | os.PathLike[str] | None = None,
    helo: str = "mxselect.invalid",
) -> Report:
    """Probe the targets of ``report.selection`` over SMTP, all at once: the report with the
    probe's findings added (``--probe``; docs/check.md lists them).

    For each target (each host and address once): connect, read the banner, ``EHLO``, and if
    STARTTLS is offered, ``STARTTLS`` and the TLS handshake with the context of
    :func:`mxselect.tls.ssl_context` for the target's requirement; then the certificate is
    checked as its senders check it -- DANE: :func:`mxselect.dane.verify` on
    :func:`mxselect.tls.peer_chain`; MTA-STS: the handshake verifies (PKIX, the MX host name);
    opportunistic: only its expiry. Then ``QUIT``: no mail is sent. A target without
    problems gets a ``probe-ok`` INFO finding that says what it saw.

    Args:
        report: a :class:`~mxselect.check.Report` of :func:`~mxselect.check.check`; without a
            selection it is returned as it is.
        policy: the policy of the check: a target whose address it calls unsafe is never
            connected to (``probe-unsafe-address``). Default :class:`~mxselect.Policy` (where
            loopback is unsafe: ``Policy().without_unsafe("127.0.0.0/8")`` for tests).
        port: the port to connect to (25; another for tests).
        timeout: seconds the conversation with one target may take (``probe-timeout``).
        deadline: seconds the whole probe may take (targets still unfinished then:
            ``probe-timeout``); at most 20 targets are probed at once.
        cafile: for MTA-STS targets: a PEM file of the CA certificates to trust instead of the
            system's.
        helo: the name sent with ``EHLO``.

    Raises:
        ValueError: ``timeout`` or ``deadline`` is not positive.
    """
    import asyncio

    from .check import Finding, Severity

    if not timeout > 0 or not deadline > 0:
        raise ValueError("timeout and deadline must be positive numbers of seconds")
    policy = policy if policy is not None else Policy()
    selection = report.selection
    if selection is None or not selection.targets:
        return report
    states: list[_State] = []
    skipped: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for target in selection.targets:
        key = (target.host, str(target.address))
        if key in seen:
            continue
        seen.add(key)
        if policy.is_unsafe(target.address):
            skipped.append(
                Finding(
                    "probe-unsafe-address",
                    Severity.INFO,
                    _subject(target),
                    f"{target.address} is in a network the policy calls unsafe: not probed.",
                    "Nothing to fix for the probe (see unsafe-address); allow the network "
                    "with --allow-network only for a test setup.",
                    "RFC 6890",
                )
            )
            continue
        states.append(_State(target))
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    gate = asyncio.Semaphore(PROBE_CONCURRENCY)
    await asyncio.gather(
        *(_guarded(s, port, helo, cafile, timeout, end, deadline, gate) for s in states)
    )
    found: list[Finding] = list(skipped)
    for state in states:
        found.extend(state.findings)
        if not state.findings:
            found.append(
                Finding(
                    "probe-ok",
                    Severity.INFO,
                    _subject(state.target),
                    f"{state.target.host} ({state.target.address}) port {port}: "
                    + "; ".join(state.notes)
                    + ".",
                    "Nothing to fix.",
                    "RFC 5321 §3.1, RFC 3207",
                )
            )
    return attrs.evolve(report, findings=_merge(report.findings, found))


def _merge(old: Iterable[Finding], new: Iterable[Finding]) -> tuple[Finding, ...]:
    return (*old, *new)


def probe(
    report: Report,
    *,
    policy: Policy | None = None,
    port: int = 25,
    timeout: float = PROBE_TIMEOUT,
    deadline: float = PROBE_DEADLINE,
    cafile: str | os.PathLike[str] | None = None,
    helo: str = "mxselect.invalid",
) -> Report:
    """The synchronous twin of :func:`aprobe` (runs its own event loop)."""
    import asyncio

    return asyncio.run(
        aprobe(
            report,
            policy=policy,
            port=port,
            timeout=timeout,
            deadline=deadline,
            cafile=cafile,
            helo=helo,
        )
    )
