"""A real HTTPS server on loopback serving MTA-STS policies (RFC 8461 §3.3) for the tests.

``PolicyServer`` listens on 127.0.0.1 (a free port), in a thread, and serves
``/.well-known/mta-sts.txt`` for ``mta-sts.<domain>`` of each configured :class:`Site`: the
certificate is chosen by SNI, the site by the Host header. Each site says what to answer --
status, content type, body, a delay before the headers, a body trickled in chunks, a
``Location`` -- and which certificate to present:

* ``"good"``: a leaf for ``mta-sts.<domain>`` issued by the server's test CA (:attr:`ca_file`);
* ``"wrong-name"``: a leaf from the same CA for ``www.<domain>`` only;
* ``"expired"``: a leaf for the right name from the same CA, expired yesterday;
* ``"untrusted"``: a leaf for the right name from another CA, in no bundle.

Certificates are made at start-up with ``cryptography`` (``tests/dane_certs.py``). Every
request is recorded (:attr:`requests`, with the SNI name). Point
``mxselect.fetch.HttpxFetcher(connect_to=server.connect_to(), verify=str(server.ca_file))``
at it: nothing is resolved, nothing leaves loopback.

::

    with PolicyServer(tmp_path, {"example.test": Site(body=b"version: STSv1\\n...")}) as server:
        ...
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs
from dane_certs import DAY, NOW, Cert, make, write_chain

__all__ = ["POLICY", "WELL_KNOWN", "PolicyServer", "Request", "Site"]

#: The path of the policy (RFC 8461 §3.3).
WELL_KNOWN = "/.well-known/mta-sts.txt"
#: A valid policy body (RFC 8461 §3.2).
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmax_age: 86400\r\n"


@attrs.frozen(kw_only=True)
class Site:
    """What ``mta-sts.<domain>`` answers.

    Attributes:
        status: the HTTP status.
        content_type: the ``Content-Type`` header (``None``: none sent).
        body: the body.
        delay: seconds to wait before sending the response.
        trickle: seconds to wait between body chunks of ``chunk`` octets (0: all at once).
        chunk: the size of a trickled chunk.
        location: a ``Location`` header (a redirect target).
        cert: ``"good"``, ``"wrong-name"``, ``"expired"`` or ``"untrusted"``.
    """

    status: int = 200
    content_type: str | None = "text/plain"
    body: bytes = POLICY
    delay: float = 0.0
    trickle: float = 0.0
    chunk: int = 64
    location: str | None = None
    cert: str = "good"


@attrs.frozen
class Request:
    """One request the server read: the SNI name, the Host header, the path, the headers."""

    sni: str | None
    host: str
    path: str
    headers: dict[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: PolicyServer

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake in the request's thread: a client that rejects the certificate
        # (most of the certificate tests) never holds up the accept loop.
        request.settimeout(10)
        try:
            tls = self.owner.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        sni = getattr(self.connection, "sni", None)
        owner.requests.append(Request(sni, host, self.path, dict(self.headers.items())))
        site = (
            owner.sites.get(host.removeprefix("mta-sts.")) if host.startswith("mta-sts.") else None
        )
        if site is None or self.path != WELL_KNOWN:
            site = Site(status=404, content_type="text/html", body=b"not found")
        if site.delay and owner.stopping.wait(site.delay):
            return
        try:
            self.send_response(site.status)
            if site.content_type is not None:
                self.send_header("Content-Type", site.content_type)
            if site.location is not None:
                self.send_header("Location", site.location)
            self.send_header("Content-Length", str(len(site.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if not site.trickle:
                self.wfile.write(site.body)
                return
            for at in range(0, len(site.body), site.chunk):
                self.wfile.write(site.body[at : at + site.chunk])
                self.wfile.flush()
                if owner.stopping.wait(site.trickle):
                    return
        except OSError:  # the client stopped reading (a body cut at max_bytes + 1)
            pass
        self.close_connection = True


class PolicyServer:
    """The HTTPS policy server (see the module notes). A context manager; or ``start()`` /
    ``stop()``."""

    def __init__(self, workdir: Path, sites: Mapping[str, Site]) -> None:
        self.workdir = workdir
        self.sites = dict(sites)
        self.requests: list[Request] = []
        self.sni_names: list[str | None] = []
        self.stopping = threading.Event()
        self.ca = make("mxselect test CA", ca=True, key_cert_sign=True)
        self.other_ca = make("untrusted test CA", ca=True, key_cert_sign=True)
        self.ca_file = workdir / "ca.pem"
        self.ca_file.write_bytes(self.ca.pem())
        self._contexts = {
            f"mta-sts.{domain}": self._context(domain, site.cert) for domain, site in sites.items()
        }
        self.context = self._context("unknown.invalid", "good")
        self.context.sni_callback = self._pick
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _context(self, domain: str, kind: str) -> ssl.SSLContext:
        name = f"mta-sts.{domain}"
        leaf: Cert
        if kind == "good":
            leaf = make(None, issuer=self.ca, dns=[name])
        elif kind == "wrong-name":
            leaf = make(None, issuer=self.ca, dns=[f"www.{domain}"])
        elif kind == "expired":
            leaf = make(
                None, issuer=self.ca, dns=[name], not_before=NOW - 30 * DAY, not_after=NOW - DAY
            )
        elif kind == "untrusted":
            leaf = make(None, issuer=self.other_ca, dns=[name])
        else:
            raise ValueError(f"unknown certificate kind {kind!r}")
        cert_file, key_file = write_chain(self.workdir / f"{kind}-{name}", leaf)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context

    def _pick(self, sslobj: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        self.sni_names.append(name)
        sslobj.sni = name  # type: ignore[attr-defined]  # read back by the handler
        chosen = self._contexts.get((name or "").lower())
        if chosen is not None:
            sslobj.context = chosen

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def connect_to(self) -> dict[str, tuple[str, int]]:
        """``mta-sts.<domain>`` -> (127.0.0.1, port) for every site (``HttpxFetcher``'s
        ``connect_to``)."""
        return {f"mta-sts.{domain}": ("127.0.0.1", self.port) for domain in self.sites}

    def start(self) -> PolicyServer:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def closed_port() -> int:
    """A loopback port where nothing listens (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, timeout: float = 2.0) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds have passed."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
