"""Helpers for the SMTP servers (aiosmtpd) the MTA tests start on loopback.

* ``port_free_on(*addresses)``: one TCP port free on several loopback addresses (the MX hosts
  of a test all listen on "port 25").
* ``Recorder``: an aiosmtpd handler that accepts every message and records what it received,
  whether it came over TLS, and how many TCP connections the server accepted.
* ``SmtpServers``: a context manager that starts aiosmtpd servers (``Controller`` threads) on
  those addresses, offering STARTTLS (RFC 3207) with a given server context, or requiring it,
  or neither, and stops them all on exit.

aiosmtpd is imported here, so a test module imports this only after its
``pytest.importorskip("aiosmtpd")``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, overload

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


def port_free_on(*addresses: str) -> int:
    """A TCP port free on every one of ``addresses`` (loopback IPv4 addresses), so that
    servers on each can share it -- as MX hosts all listen on port 25."""
    first, *others = addresses
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((first, 0))
            port = int(probe.getsockname()[1])
        try:
            for address in others:
                with socket.socket() as other:
                    other.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no port free on all of {', '.join(addresses)}")


class Recorder:
    """An aiosmtpd handler that accepts every message (``data_reply`` to DATA) and records it.

    Subclass it for other answers (aiosmtpd's ``handle_EHLO``, ``handle_RCPT`` ... hooks);
    ``SmtpServers`` counts ``connections`` for any handler that is a Recorder."""

    #: The reply to the end of the message data.
    data_reply = "250 2.0.0 queued"

    def __init__(self) -> None:
        #: TCP connections accepted (a STARTTLS upgrade is not a new one); the connection
        #: Controller.start() makes to see that the server is up is not counted
        self.connections = 0
        #: the content of each message, in the order received
        self.received: list[bytes] = []
        #: (MAIL FROM, RCPT TO addresses, content) of each message
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        #: for each message, whether it came over TLS
        self.tls: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Record the message and accept it."""
        self.received.append(envelope.content)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        self.tls.append(session.ssl is not None)
        return self.data_reply


class CountingSMTP(SMTP):
    """aiosmtpd's server, counting the TCP connections it accepts in its ``Recorder``.

    A subclass can replace more of the server (see tests/test_example_mta.py's greeting)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count a new connection (not the STARTTLS upgrade, aiosmtpd 1.4), then go on."""
        if self._original_transport is None and isinstance(self.event_handler, Recorder):
            self.event_handler.connections += 1
        super().connection_made(transport)


class _Controller(Controller):
    """A Controller whose server is made by ``server`` (a ``CountingSMTP`` by default)."""

    def __init__(self, handler: Any, *, server: Callable[..., SMTP], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.server_factory = server

    def factory(self) -> SMTP:
        return self.server_factory(self.handler, **self.SMTP_kwargs)


H = TypeVar("H")


class SmtpServers:
    """aiosmtpd servers on loopback ``addresses``, all on one port (``port``), stopped on exit.

    For example, ``with SmtpServers(MX1, MX2) as smtp:`` then ``mx1 = smtp.start(MX1,
    tls=context)`` (offers STARTTLS) and ``mx2 = smtp.start(MX2)`` (does not); deliver to
    ``smtp.port``; then ``mx1.received``, ``mx1.tls``, ``mx2.connections`` say what came."""

    def __init__(self, *addresses: str) -> None:
        #: the port every server listens on unless ``start(port=)`` says otherwise
        self.port = port_free_on(*addresses)
        self._controllers: list[Controller] = []

    @overload
    def start(
        self,
        address: str,
        handler: None = None,
        *,
        tls: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        port: int | None = None,
        server: Callable[..., SMTP] = CountingSMTP,
    ) -> Recorder: ...

    @overload
    def start(
        self,
        address: str,
        handler: H,
        *,
        tls: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        port: int | None = None,
        server: Callable[..., SMTP] = CountingSMTP,
    ) -> H: ...

    def start(
        self,
        address: str,
        handler: Any = None,
        *,
        tls: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        port: int | None = None,
        server: Callable[..., SMTP] = CountingSMTP,
    ) -> Any:
        """Start a server on ``address`` (at ``port``, by default the shared one) with
        ``handler`` (a new ``Recorder`` by default) and return the handler.

        ``tls``: a server context; the server offers STARTTLS with it (none without).
        ``require_starttls``: the server answers 530 to every command but NOOP, EHLO,
        STARTTLS and QUIT until TLS has started (RFC 3207 §4). ``server``: makes the aiosmtpd
        server object from the handler and aiosmtpd's keyword arguments."""
        chosen = Recorder() if handler is None else handler
        controller = _Controller(
            chosen,
            server=server,
            hostname=address,
            port=self.port if port is None else port,
            tls_context=tls,
            require_starttls=require_starttls,
        )
        controller.start()
        self._controllers.append(controller)
        if isinstance(chosen, Recorder):
            chosen.connections = 0  # Controller.start() connects once to see the server is up
        return chosen

    def stop(self) -> None:
        """Stop every server started (each at most once)."""
        while self._controllers:
            self._controllers.pop().stop()

    def __enter__(self) -> SmtpServers:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
