"""Tests of tests/harness/smtp.py itself (SmtpServers, Recorder), with the standard library's
``smtplib`` as the client: what the MTA tests rely on (what is recorded, what is counted,
STARTTLS offered or required, every server stopped), on loopback only."""

from __future__ import annotations

import os
import smtplib
import socket
import ssl

import pytest

if not os.environ.get("CI"):  # in CI (.ci/run installs the extras) a missing package fails
    pytest.importorskip("aiosmtpd", reason="pip install -e '.[examples]'")
    pytest.importorskip("cryptography", reason="pip install -e '.[dane]'")
from dane_certs import make, server_context

from harness.smtp import Recorder, SmtpServers, port_free_on

MX1, MX2 = "127.0.0.2", "127.0.0.3"
MESSAGE = b"From: a@sender.test\r\nTo: b@example.org\r\nSubject: harness\r\n\r\nhi\r\n"


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context with a self-signed certificate for mx.example.org."""
    cert = make("mx.example.org", dns=("mx.example.org",))
    return server_context(tmp_path_factory.mktemp("smtp-harness"), cert)


def unverified() -> ssl.SSLContext:
    """A client context that takes any certificate (the test checks the server, not TLS)."""
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    return client


def refused(address: str, port: int) -> bool:
    """Whether a TCP connection to address:port is refused (nothing listens there)."""
    with socket.socket() as probe:
        probe.settimeout(5)
        try:
            probe.connect((address, port))
        except ConnectionRefusedError:
            return True
        return False


def client(address: str, port: int) -> smtplib.SMTP:
    return smtplib.SMTP(address, port, local_hostname="client.test", timeout=10)


def answers(address: str, port: int) -> bool:
    """Whether an SMTP server at address:port answers NOOP (then QUIT: a clean close)."""
    with client(address, port) as session:
        return session.noop()[0] == 250


def test_records_messages_and_counts_connections_not_starttls(context: ssl.SSLContext) -> None:
    with SmtpServers(MX1, MX2) as smtp:
        tls = smtp.start(MX1, tls=context)
        plain = smtp.start(MX2)
        assert (tls.connections, plain.connections) == (0, 0)  # start()'s own check is not one
        with client(MX1, smtp.port) as session:
            session.ehlo()
            assert session.has_extn("starttls")
            session.starttls(context=unverified())
            session.sendmail("a@sender.test", ["b@example.org", "c@example.org"], MESSAGE)
        with client(MX2, smtp.port) as session:
            session.ehlo()
            assert not session.has_extn("starttls")
            session.sendmail("a@sender.test", ["b@example.org"], MESSAGE)
            session.sendmail("<>", ["d@example.org"], MESSAGE)
    assert tls.received == [MESSAGE]
    assert tls.envelopes == [("a@sender.test", ["b@example.org", "c@example.org"], MESSAGE)]
    assert tls.tls == [True]
    assert tls.connections == 1  # the STARTTLS upgrade is the same connection
    assert plain.received == [MESSAGE, MESSAGE]
    assert [e[:2] for e in plain.envelopes] == [
        ("a@sender.test", ["b@example.org"]),
        ("<>", ["d@example.org"]),
    ]
    assert plain.tls == [False, False]
    assert plain.connections == 1


def test_require_starttls_refuses_mail_before_tls(context: ssl.SSLContext) -> None:
    """RFC 3207 §4: 530 to MAIL before STARTTLS; after it, the message is accepted."""
    with SmtpServers(MX1) as smtp:
        mx = smtp.start(MX1, tls=context, require_starttls=True)
        with client(MX1, smtp.port) as session:
            session.ehlo()
            code, _ = session.mail("a@sender.test")
            assert code == 530
            session.starttls(context=unverified())
            session.sendmail("a@sender.test", ["b@example.org"], MESSAGE)
    assert mx.tls == [True]
    assert mx.received == [MESSAGE]


def test_offered_starttls_is_not_required(context: ssl.SSLContext) -> None:
    with SmtpServers(MX1) as smtp:
        mx = smtp.start(MX1, tls=context)
        with client(MX1, smtp.port) as session:
            session.sendmail("a@sender.test", ["b@example.org"], MESSAGE)
    assert mx.tls == [False]


def test_own_handler_and_port_then_all_stopped() -> None:
    class Kept(Recorder):
        data_reply = "250 2.0.0 kept"

    with SmtpServers(MX1, MX2) as smtp:
        other = port_free_on(MX1)
        mine = smtp.start(MX1, Kept(), port=other)
        shared = smtp.start(MX2)
        assert answers(MX2, smtp.port)
        with client(MX1, other) as session:
            session.ehlo()
            session.mail("a@sender.test")
            session.rcpt("b@example.org")
            assert session.data(MESSAGE) == (250, b"2.0.0 kept")
    assert isinstance(mine, Kept)
    assert mine.connections == 1
    assert mine.received == [MESSAGE]
    assert shared.connections == 1  # answers() above
    assert shared.received == []
    assert refused(MX1, other)  # every server stopped on exit
    assert refused(MX2, smtp.port)


def fail_inside(smtp: SmtpServers) -> None:
    with smtp:
        smtp.start(MX1)
        assert answers(MX1, smtp.port)
        raise RuntimeError("the test failed")


def test_stopped_when_the_test_fails_and_stop_twice_is_harmless() -> None:
    smtp = SmtpServers(MX1)
    with pytest.raises(RuntimeError, match="the test failed"):
        fail_inside(smtp)
    assert refused(MX1, smtp.port)
    smtp.stop()  # nothing left to stop
