"""examples/mta.py end to end on loopback: Knot + Unbound serve mta.test (MX 10 mx1 =
127.0.0.2, MX 20 mx2 = 127.0.0.3; three.mta.test adds MX 30 mx3 = 127.0.0.4) and aiosmtpd
servers listen there; the example resolves with mxselect, walks the DeliveryPlan and sends
with aiosmtplib."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import dns.asyncresolver
import pytest

if not os.environ.get("CI"):  # in CI (.ci/run installs the extra) a missing package fails
    pytest.importorskip("aiosmtplib", reason="pip install -e '.[examples]'")
    pytest.importorskip("aiosmtpd", reason="pip install -e '.[examples]'")
from harness.smtp import CountingSMTP, Recorder, SmtpServers

from examples.mta import deliver
from mxselect.delivery import DeliveryStatus, HostStatus, Outcome

pytestmark = pytest.mark.e2e

MX1, MX2, MX3 = "127.0.0.2", "127.0.0.3", "127.0.0.4"
SENDER, RECIPIENT = "alice@sender.test", "bob@mta.test"
#: A recipient at three.mta.test: MX 10 mx1, 20 mx2, 30 mx3.
RECIPIENT3 = "bob@three.mta.test"
#: CRLF line endings, a line starting with a dot (dot-stuffing), 8-bit-free text.
MESSAGE = (
    b"From: alice@sender.test\r\n"
    b"To: bob@mta.test\r\n"
    b"Subject: mxselect example\r\n"
    b"Message-ID: <1@sender.test>\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b".a line that starts with a dot\r\n"
    b"..and two dots\r\n"
    b"\r\n"
    b"-- \r\n"
    b"Alice\r\n"
)


class Handler(Recorder):
    """A Recorder that accepts, or answers RCPT with ``reply`` (e.g. 451), or EHLO and HELO
    with ``ehlo`` (e.g. 421)."""

    data_reply = "250 2.0.0 queued as 1"

    def __init__(self, reply: str | None = None, ehlo: str | None = None) -> None:
        super().__init__()
        self.reply = reply
        self.ehlo = ehlo
        #: "EHLO" and "HELO", in the order received
        self.hellos: list[str] = []

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.hellos.append("EHLO")
        if self.ehlo is not None:
            return [self.ehlo]
        session.host_name = hostname  # what aiosmtpd does when there is no hook
        return responses

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        self.hellos.append("HELO")
        if self.ehlo is not None:
            return self.ehlo
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.reply is not None:
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"


class GreetingSMTP(CountingSMTP):
    """An aiosmtpd server that greets with ``greeting`` (e.g. 421) instead of 220 and closes
    the connection (RFC 5321 §3.8). aiosmtpd has no hook for the greeting, so this replaces
    its private ``_handle_client`` (aiosmtpd 1.4)."""

    def __init__(self, handler: Any, *, greeting: str, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.greeting = greeting

    async def _handle_client(self) -> None:
        await self.push(self.greeting)
        assert self.transport is not None
        self.transport.close()


class Start(Protocol):
    """The type of the ``smtp`` fixture's ``start``."""

    def __call__(
        self,
        address: str,
        reply: str | None = None,
        *,
        greeting: str | None = None,
        ehlo: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> Handler: ...


@pytest.fixture
def smtp() -> Iterator[tuple[int, Start]]:
    """(port, start(address, reply, greeting=, ehlo=, tls=)) -- start an aiosmtpd server on
    address:port: it answers RCPT with ``reply``, greets with ``greeting`` instead of 220,
    answers EHLO and HELO with ``ehlo``, offers STARTTLS with the server context ``tls``
    (each ``None``: as usual, no STARTTLS)."""
    with SmtpServers(MX1, MX2, MX3) as servers:

        def start(
            address: str,
            reply: str | None = None,
            *,
            greeting: str | None = None,
            ehlo: str | None = None,
            tls: ssl.SSLContext | None = None,
        ) -> Handler:
            server: Callable[..., CountingSMTP] = CountingSMTP
            if greeting is not None:
                server = functools.partial(GreetingSMTP, greeting=greeting)
            return servers.start(address, Handler(reply, ehlo), tls=tls, server=server)

        yield servers.port, start


@pytest.fixture
def send(
    async_unbound_resolver: dns.asyncresolver.Resolver,
    smtp: tuple[int, Start],
) -> Callable[..., Outcome]:
    port = smtp[0]

    def run(recipient: str = RECIPIENT, **options: Any) -> Outcome:
        return asyncio.run(
            deliver(
                SENDER,
                recipient,
                MESSAGE,
                resolver=async_unbound_resolver,
                smtp_port=port,
                host_status=HostStatus(),
                timeout=5,
                **options,
            )
        )

    return run


def test_best_mx_accepts(smtp: Any, send: Callable[..., Outcome]) -> None:
    best, backup = smtp[1](MX1), smtp[1](MX2)
    outcome = send()
    assert (outcome.status, outcome.reply_code) == (DeliveryStatus.DELIVERED, 250)
    assert outcome.target is not None
    assert str(outcome.target.address) == MX1
    assert best.envelopes == [(SENDER, [RECIPIENT], MESSAGE)]  # byte for byte
    assert backup.envelopes == []


def test_best_mx_down_backup_receives(smtp: Any, send: Callable[..., Outcome]) -> None:
    backup = smtp[1](MX2)  # nothing listens on 127.0.0.2: connection refused
    outcome = send()
    assert outcome.status is DeliveryStatus.DELIVERED
    assert outcome.target is not None
    assert str(outcome.target.address) == MX2
    assert backup.envelopes == [(SENDER, [RECIPIENT], MESSAGE)]


def test_best_mx_451_next_is_tried(smtp: Any, send: Callable[..., Outcome]) -> None:
    best = smtp[1](MX1, "451 4.3.0 try again later")
    backup = smtp[1](MX2)
    outcome = send()
    assert outcome.status is DeliveryStatus.DELIVERED
    assert best.envelopes == []
    assert backup.envelopes == [(SENDER, [RECIPIENT], MESSAGE)]


def test_all_refuse_is_deferred(smtp: Any, send: Callable[..., Outcome]) -> None:
    """Both MX hosts answer 451: deferred with the last reply; nothing was received."""
    best = smtp[1](MX1, "451 4.3.0 busy")
    backup = smtp[1](MX2, "452 4.3.1 out of space")
    outcome = send()
    assert (outcome.status, outcome.reply_code, outcome.enhanced_status) == (
        DeliveryStatus.DEFERRED,
        452,
        "4.3.1",
    )
    assert best.envelopes == backup.envelopes == []


def test_all_down_is_deferred(send: Callable[..., Outcome]) -> None:
    """Nothing listens on either MX host: deferred 451 4.4.1, never bounced."""
    outcome = send()
    assert (outcome.status, outcome.reply_code, outcome.enhanced_status) == (
        DeliveryStatus.DEFERRED,
        451,
        "4.4.1",
    )
    assert "127.0.0.2" in outcome.message
    assert "127.0.0.3" in outcome.message


def test_greeting_421_is_not_a_session(smtp: Any, send: Callable[..., Outcome]) -> None:
    """Issue 13 item 5: MX 10 greets 421, MX 20 answers 451 at RCPT, MX 30 accepts. The 421
    greeting is a failed handshake, which Postfix does not count toward
    smtp_mx_session_limit (2): the 451 is the first session, MX 30 the second."""
    first = smtp[1](MX1, greeting="421 4.3.2 mx1 busy, try later")
    second = smtp[1](MX2, "451 4.3.0 try again later")
    third = smtp[1](MX3)
    outcome = send(RECIPIENT3)
    assert (outcome.status, outcome.reply_code) == (DeliveryStatus.DELIVERED, 250)
    assert outcome.target is not None
    assert str(outcome.target.address) == MX3
    assert first.envelopes == second.envelopes == []
    assert third.envelopes == [(SENDER, ["bob@three.mta.test"], MESSAGE)]


def test_greeting_554_is_not_a_session(smtp: Any, send: Callable[..., Outcome]) -> None:
    """A 554 greeting: the next MX (Postfix smtp_skip_5xx_greeting), never a bounce, and not
    a session either."""
    smtp[1](MX1, greeting="554 5.7.1 mx1 does not want you")
    smtp[1](MX2, "451 4.3.0 try again later")
    third = smtp[1](MX3)
    outcome = send(RECIPIENT3)
    assert outcome.status is DeliveryStatus.DELIVERED
    assert third.envelopes == [(SENDER, ["bob@three.mta.test"], MESSAGE)]


def test_ehlo_421_is_not_a_session(smtp: Any, send: Callable[..., Outcome]) -> None:
    """MX 10 answers EHLO (and HELO) with 421: a failed handshake, not a session."""
    first = smtp[1](MX1, ehlo="421 4.7.0 mx1 closing")
    smtp[1](MX2, "451 4.3.0 try again later")
    third = smtp[1](MX3)
    outcome = send(RECIPIENT3)
    assert outcome.status is DeliveryStatus.DELIVERED
    assert first.hellos == ["EHLO"]  # no HELO after a 4xx
    assert first.envelopes == []
    assert third.envelopes == [(SENDER, ["bob@three.mta.test"], MESSAGE)]
    assert third.hellos == ["EHLO"]


def test_ehlo_and_helo_5xx_bounces(smtp: Any, send: Callable[..., Outcome]) -> None:
    """MX 10 answers EHLO with 550, then the HELO fallback (RFC 5321 §3.2) with 550 too: the
    message bounces with that reply, like Postfix (a hard error in the handshake bounces) and
    Exim; the backup MX is not tried."""
    first = smtp[1](MX1, ehlo="550 5.7.1 bad HELO name")
    backup = smtp[1](MX2)
    outcome = send()
    assert (outcome.status, outcome.reply_code, outcome.enhanced_status) == (
        DeliveryStatus.BOUNCED,
        550,
        "5.7.1",
    )
    assert outcome.message == "mx1.mta.test: 5.7.1 bad HELO name"
    assert first.hellos == ["EHLO", "HELO"]
    assert backup.hellos == backup.envelopes == []


def test_all_fail_deferral_names_the_handshakes(smtp: Any, send: Callable[..., Outcome]) -> None:
    """MX 10 greets 421, MX 20 rejects EHLO with 421, MX 30 greets 421: deferred with the last
    4xx reply (the 421 greeting of MX 30), every failure named; nothing received."""
    smtp[1](MX1, greeting="421 4.3.2 mx1 busy")
    smtp[1](MX2, ehlo="421 4.7.0 mx2 closing")
    smtp[1](MX3, greeting="421 4.3.2 mx3 busy")
    outcome = send(RECIPIENT3)
    assert (outcome.status, outcome.reply_code, outcome.enhanced_status) == (
        DeliveryStatus.DEFERRED,
        421,
        "4.3.2",
    )
    assert outcome.target is not None
    assert str(outcome.target.address) == MX3
    for address, failure in (
        (MX1, "greeting 421 4.3.2 mx1 busy"),
        (MX2, "EHLO 421 4.7.0 mx2 closing"),
        (MX3, "greeting 421 4.3.2 mx3 busy"),
    ):
        assert f"[{address}] (preference" in outcome.message
        assert failure in outcome.message


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``make(host)``: the directory holding a self-signed certificate for ``host`` (cert.pem,
    key.pem), made once per module with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        if os.environ.get("CI"):
            pytest.fail("the openssl command is missing")
        pytest.skip("the openssl command is missing")
    base = tmp_path_factory.mktemp("certs")

    def make(host: str) -> Path:
        where = base / host
        if where.exists():
            return where
        where.mkdir()
        command = [openssl, "req", "-x509", "-nodes", "-days", "2", "-subj", f"/CN={host}"]
        command += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        command += ["-addext", f"subjectAltName=DNS:{host}"]
        command += ["-keyout", str(where / "key.pem"), "-out", str(where / "cert.pem")]
        subprocess.run(command, check=True, capture_output=True, timeout=30)
        return where

    return make


def _server_context(where: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(where / "cert.pem", where / "key.pem")
    return context


def test_tls_failures_are_not_sessions(
    smtp: Any, send: Callable[..., Outcome], certificates: Callable[[str], Path]
) -> None:
    """TLS required (``tls_context``): MX 10's certificate is not trusted (the TLS handshake
    fails), MX 20 does not offer STARTTLS, MX 30's certificate is trusted: delivered at MX 30
    over TLS -- neither failure used up a session."""
    untrusted, trusted = certificates("mx1.mta.test"), certificates("mx3.mta.test")
    first = smtp[1](MX1, tls=_server_context(untrusted))
    second = smtp[1](MX2)
    third = smtp[1](MX3, tls=_server_context(trusted))
    client = ssl.create_default_context(cafile=trusted / "cert.pem")
    outcome = send(RECIPIENT3, tls_context=client)
    assert (outcome.status, outcome.reply_code) == (DeliveryStatus.DELIVERED, 250)
    assert outcome.target is not None
    assert str(outcome.target.address) == MX3
    assert first.envelopes == second.envelopes == []
    assert third.envelopes == [(SENDER, ["bob@three.mta.test"], MESSAGE)]
    assert third.tls == [True]  # the message came over TLS


def test_tls_failures_everywhere_are_deferred(
    smtp: Any, send: Callable[..., Outcome], certificates: Callable[[str], Path]
) -> None:
    """TLS required and no target passes: deferred 451 4.4.1 naming each failure, never sent
    in clear text."""
    smtp[1](MX1, tls=_server_context(certificates("mx1.mta.test")))
    smtp[1](MX2)
    plain = smtp[1](MX3)
    outcome = send(RECIPIENT3, tls_context=ssl.create_default_context())
    assert (outcome.status, outcome.reply_code, outcome.enhanced_status) == (
        DeliveryStatus.DEFERRED,
        451,
        "4.4.1",
    )
    assert "[127.0.0.2] (preference 10): TLS handshake: " in outcome.message
    assert "certificate verify failed" in outcome.message
    assert "[127.0.0.3] (preference 20): STARTTLS: STARTTLS not offered" in outcome.message
    assert "[127.0.0.4] (preference 30): STARTTLS: STARTTLS not offered" in outcome.message
    assert plain.envelopes == []


def test_R7505_null_mx_bounces_556_5_1_10(send: Callable[..., Outcome]) -> None:
    outcome = send("bob@nullmx.test")
    assert (outcome.status, outcome.reply_code, outcome.enhanced_status) == (
        DeliveryStatus.BOUNCED,
        556,
        "5.1.10",
    )


def test_servfail_is_deferred_never_bounced(send: Callable[..., Outcome]) -> None:
    outcome = send("bob@mail.dead.test")
    assert (outcome.status, outcome.reply_code, outcome.enhanced_status) == (
        DeliveryStatus.DEFERRED,
        451,
        "4.4.3",
    )
    assert "SERVFAIL" in outcome.message
