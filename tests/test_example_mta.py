"""examples/mta.py end to end on loopback: Knot + Unbound serve mta.test (MX 10 mx1 =
127.0.0.2, MX 20 mx2 = 127.0.0.3) and aiosmtpd servers listen there; the example resolves
with mxselect, walks the DeliveryPlan and sends with aiosmtplib."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import dns.asyncresolver
import pytest

if not os.environ.get("CI"):  # in CI (.ci/run installs the extra) a missing package fails
    pytest.importorskip("aiosmtplib", reason="pip install -e '.[examples]'")
    pytest.importorskip("aiosmtpd", reason="pip install -e '.[examples]'")
from aiosmtpd.controller import Controller

from examples.mta import deliver
from mxselect.delivery import DeliveryStatus, HostStatus, Outcome

pytestmark = pytest.mark.e2e

MX1, MX2 = "127.0.0.2", "127.0.0.3"
SENDER, RECIPIENT = "alice@sender.test", "bob@mta.test"
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


class Handler:
    """An aiosmtpd handler that accepts, or answers RCPT with ``reply`` (e.g. 451)."""

    def __init__(self, reply: str | None = None) -> None:
        self.reply = reply
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.reply is not None:
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 queued as 1"


def _free_port() -> int:
    """A port free on both 127.0.0.2 and 127.0.0.3."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((MX1, 0))
            port = int(probe.getsockname()[1])
        try:
            with socket.socket() as other:
                other.bind((MX2, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on both loopback addresses")


@pytest.fixture
def smtp() -> Iterator[tuple[int, Callable[[str, str | None], Handler]]]:
    """(port, start(address, reply)) -- start an aiosmtpd server on address:port."""
    port = _free_port()
    controllers: list[Controller] = []

    def start(address: str, reply: str | None = None) -> Handler:
        handler = Handler(reply)
        controller = Controller(handler, hostname=address, port=port)
        controller.start()
        controllers.append(controller)
        return handler

    yield port, start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def send(
    async_unbound_resolver: dns.asyncresolver.Resolver,
    smtp: tuple[int, Callable[[str, str | None], Handler]],
) -> Callable[[str], Outcome]:
    port = smtp[0]

    def run(recipient: str = RECIPIENT) -> Outcome:
        return asyncio.run(
            deliver(
                SENDER,
                recipient,
                MESSAGE,
                resolver=async_unbound_resolver,
                smtp_port=port,
                host_status=HostStatus(),
                timeout=5,
            )
        )

    return run


def test_best_mx_accepts(smtp: Any, send: Callable[..., Outcome]) -> None:
    best, backup = smtp[1](MX1), smtp[1](MX2)
    outcome = send()
    assert (outcome.status, outcome.reply_code) == (DeliveryStatus.DELIVERED, 250)
    assert outcome.target is not None
    assert str(outcome.target.address) == MX1
    assert best.received == [(SENDER, [RECIPIENT], MESSAGE)]  # byte for byte
    assert backup.received == []


def test_best_mx_down_backup_receives(smtp: Any, send: Callable[..., Outcome]) -> None:
    backup = smtp[1](MX2)  # nothing listens on 127.0.0.2: connection refused
    outcome = send()
    assert outcome.status is DeliveryStatus.DELIVERED
    assert outcome.target is not None
    assert str(outcome.target.address) == MX2
    assert backup.received == [(SENDER, [RECIPIENT], MESSAGE)]


def test_best_mx_451_next_is_tried(smtp: Any, send: Callable[..., Outcome]) -> None:
    best = smtp[1](MX1, "451 4.3.0 try again later")
    backup = smtp[1](MX2)
    outcome = send()
    assert outcome.status is DeliveryStatus.DELIVERED
    assert best.received == []
    assert backup.received == [(SENDER, [RECIPIENT], MESSAGE)]


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
    assert best.received == backup.received == []


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
