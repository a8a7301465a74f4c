"""Fetching MTA-STS policies over HTTPS (RFC 8461 §3.3): the fetcher protocols and an httpx one.

Install with ``pip install "mxselect[mta-sts]"`` (httpx). A fetcher answers a
:class:`~mxselect.PolicyFetch` with a :class:`~mxselect.FetchResult` and never raises: it
enforces what only the transport can, and hands everything else to the plan, which checks
the status (200 only), the media type (``text/plain``, RFC 8461 §3.2), the size and the
policy's syntax:

* **HTTPS only, to** ``mta-sts.<domain>`` (RFC 8461 §3.3): any other scheme or host in the
  request is refused before anything is sent;
* **the certificate must be valid for that name** ("valid for the "mta-sts" DNS-ID",
  RFC 8461 §3.3): normal PKIX verification -- a chain to a trusted root, not expired, the name
  in the subjectAltName (RFC 6125) -- by the ``ssl`` module; ``verify`` chooses the trust
  anchors (a test CA, say);
* **redirects are not followed** ("HTTP 3xx redirects MUST NOT be followed", RFC 8461 §3.3):
  a 3xx is returned as a response, which the plan rejects;
* **no HTTP caching** ("HTTP caching ... MUST NOT be used", RFC 8461 §3.3): there is no cache
  layer; every fetch opens a new connection with a new client (policy fetches are rare), and
  no proxy or netrc from the environment is used (``trust_env=False``). No ``Cache-Control``
  request header is sent (nothing between the fetcher and the server is expected to cache);
* **one deadline for the whole fetch**, ``request.timeout`` seconds (RFC 8461 §3.3 suggests
  a minute): httpx's timeouts are per phase, so every socket operation -- connect, TLS
  handshake, each read and write -- is given only what is left of the deadline, and the
  async fetch also runs under ``asyncio.timeout``. (A synchronous fetch without
  ``connect_to`` resolves ``mta-sts.<domain>`` with the system resolver first, which the
  deadline cannot interrupt.) A slow server, or one that trickles its body, ends in a failure
  "timeout after N s";
* **at most** ``max_bytes`` **+ 1 octets are read** (RFC 8461 §3.3: "a suggested maximum
  policy size is 64 kilobytes"): the body is streamed and the connection dropped once one
  octet more than allowed has arrived -- the plan sees the body is too long. The request asks
  for ``Accept-Encoding: identity`` and the body is returned as sent (never decompressed, so
  no decompression bomb);
* **every error is a** :meth:`FetchResult.failed <mxselect.FetchResult.failed>` naming it:
  ``"timeout after 5 s"``, ``"TLS certificate error: Hostname mismatch, certificate is not
  valid for 'mta-sts.example.org'."``, ``"TLS certificate error: certificate has expired"``,
  ``"connection refused"``, ``"name resolution failed: ..."``, ``"HTTP protocol error: ..."``.

``connect_to`` works as curl's ``--connect-to``: the TCP connection for a host name goes to
the address and port given, while the URL's host is still the one sent in SNI and verified
in the certificate. With ``connect_to`` set, only its hosts can be fetched (any other is a
failure, never a DNS lookup), and its addresses must be IP literals -- so tests reach a
loopback server and nothing is resolved.

::

    fetcher = HttpxFetcher()
    result = fetcher.fetch(PolicyFetch.for_domain("example.org", timeout=60))
    # or: result = await fetcher.afetch(...)
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
import typing
from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

import httpcore
import httpx

from ._answers import FetchResult, PolicyFetch

__all__ = ["AsyncFetcher", "Fetcher", "HttpxFetcher"]

#: The User-Agent sent unless one is given.
USER_AGENT = "mxselect (MTA-STS policy fetch, RFC 8461)"


@runtime_checkable
class Fetcher(Protocol):
    """Answers a :class:`~mxselect.PolicyFetch` (RFC 8461 §3.3), synchronously, never
    raising: a response of any status, or :meth:`FetchResult.failed
    <mxselect.FetchResult.failed>` naming the error."""

    def fetch(self, request: PolicyFetch) -> FetchResult:
        """Fetch ``request.url`` within ``request.timeout`` seconds, reading at most
        ``request.max_bytes`` + 1 octets of the body."""
        ...


@runtime_checkable
class AsyncFetcher(Protocol):
    """The asyncio twin of :class:`Fetcher`."""

    async def afetch(self, request: PolicyFetch) -> FetchResult:
        """As :meth:`Fetcher.fetch`, awaited."""
        ...


class HttpxFetcher:
    """A :class:`Fetcher` and :class:`AsyncFetcher` over httpx (``httpx.Client`` for
    :meth:`fetch`, ``httpx.AsyncClient`` for :meth:`afetch`), with the rules of the module
    notes (RFC 8461 §3.3).

    Args:
        connect_to: host name -> (IP address, port) to connect to instead of resolving the
            name (curl's ``--connect-to``); SNI and certificate verification keep the URL's
            host. When given, hosts not in it are refused.
        verify: the trust anchors: ``True`` the default CA bundle (httpx's, certifi), a path
            to a PEM CA bundle, or an ``ssl.SSLContext`` used as is. ``False`` turns
            certificate verification off -- for diagnostics only: RFC 8461 §3.3 requires a
            certificate valid for ``mta-sts.<domain>``.
        user_agent: the ``User-Agent`` header.

    Raises:
        ValueError: an address of ``connect_to`` that is not an IP literal.
    """

    def __init__(
        self,
        *,
        connect_to: Mapping[str, tuple[str, int]] | None = None,
        verify: ssl.SSLContext | str | bool = True,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.connect_to: dict[str, tuple[str, int]] | None = None
        if connect_to is not None:
            self.connect_to = {}
            for host, (address, port) in connect_to.items():
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    raise ValueError(
                        f"connect_to[{host!r}]: {address!r} is not an IP address"
                    ) from None
                self.connect_to[host.lower().rstrip(".")] = (address, int(port))
        self.ssl_context = _ssl_context(verify)
        self.user_agent = user_agent

    def fetch(self, request: PolicyFetch) -> FetchResult:
        """Fetch the policy (RFC 8461 §3.3); never raises."""
        refused = self._refusal(request)
        if refused is not None:
            return FetchResult.failed(refused)
        deadline = time.monotonic() + request.timeout
        backend = _SyncBackend(httpcore.SyncBackend(), self.connect_to, deadline)
        transport = _SyncTransport(self.ssl_context, backend)
        try:
            with (
                httpx.Client(
                    transport=transport,
                    follow_redirects=False,
                    trust_env=False,
                    timeout=request.timeout,
                ) as client,
                client.stream("GET", request.url, headers=self._headers()) as response,
            ):
                body = bytearray()
                limit = request.max_bytes + 1
                for chunk in response.iter_raw():
                    body += chunk
                    if len(body) >= limit:
                        break
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("the fetch's deadline passed")
                return _result(response, bytes(body[:limit]))
        except Exception as exc:
            return FetchResult.failed(_describe(exc, request.timeout))

    async def afetch(self, request: PolicyFetch) -> FetchResult:
        """Fetch the policy (RFC 8461 §3.3) on the running event loop; never raises (but a
        cancellation is passed on)."""
        refused = self._refusal(request)
        if refused is not None:
            return FetchResult.failed(refused)
        deadline = time.monotonic() + request.timeout
        backend = _AsyncBackend(httpcore.AnyIOBackend(), self.connect_to, deadline)
        transport = _AsyncTransport(self.ssl_context, backend)
        try:
            async with (
                asyncio.timeout(request.timeout),
                httpx.AsyncClient(
                    transport=transport,
                    follow_redirects=False,
                    trust_env=False,
                    timeout=request.timeout,
                ) as client,
                client.stream("GET", request.url, headers=self._headers()) as response,
            ):
                body = bytearray()
                limit = request.max_bytes + 1
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) >= limit:
                        break
                return _result(response, bytes(body[:limit]))
        except Exception as exc:
            return FetchResult.failed(_describe(exc, request.timeout))

    def _headers(self) -> dict[str, str]:
        return {"User-Agent": self.user_agent, "Accept-Encoding": "identity"}

    def _refusal(self, request: PolicyFetch) -> str | None:
        """Why ``request`` is not fetched at all (RFC 8461 §3.3: HTTPS to mta-sts.<domain>),
        or ``None``."""
        try:
            url = httpx.URL(request.url)
        except Exception as exc:
            return f"not a URL: {request.url!r} ({exc})"
        if url.scheme != "https":
            return f"not an HTTPS URL: {request.url} (RFC 8461 §3.3)"
        expected = f"mta-sts.{request.domain}".lower().rstrip(".")
        if url.host != expected:
            return f"the URL's host {url.host!r} is not {expected!r} (RFC 8461 §3.3)"
        if self.connect_to is not None and url.host not in self.connect_to:
            return f"{url.host} is not in connect_to (no name is resolved)"
        return None

    def __repr__(self) -> str:
        where = f"connect_to={self.connect_to!r}" if self.connect_to is not None else ""
        return f"HttpxFetcher({where})"


def _ssl_context(verify: ssl.SSLContext | str | bool) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        return verify
    if isinstance(verify, str):
        context = ssl.create_default_context(cafile=verify)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context
    if verify:
        return httpx.create_ssl_context()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _result(response: httpx.Response, body: bytes) -> FetchResult:
    return FetchResult.response(
        response.status_code, response.headers.get("content-type", ""), body
    )


# -- the error a failure names ----------------------------------------------------------------


def _causes(exc: BaseException) -> Iterable[BaseException]:
    """``exc`` and the exceptions it was raised from or during, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


_PHASES: tuple[tuple[type[Exception], str], ...] = (
    (httpx.ConnectTimeout, "connecting"),
    (httpx.ReadTimeout, "reading"),
    (httpx.WriteTimeout, "writing"),
    (httpx.PoolTimeout, "waiting for a connection"),
)


def _describe(exc: BaseException, timeout: float) -> str:
    """The reason a :meth:`FetchResult.failed <mxselect.FetchResult.failed>` gives for
    ``exc``: the timeout, the TLS certificate error (the ``ssl`` module's verify message), the
    connection error, the name resolution error, the HTTP protocol error, or the exception
    named."""
    chain = list(_causes(exc))
    for error in chain:
        if isinstance(error, ssl.SSLCertVerificationError):
            detail = error.verify_message or error.reason or str(error)
            return f"TLS certificate error: {detail}"
    for error in chain:
        if isinstance(error, httpx.TimeoutException | TimeoutError):
            phase = next((p for kind, p in _PHASES if isinstance(error, kind)), "")
            return f"timeout after {timeout:g} s" + (f" ({phase})" if phase else "")
    for error in chain:
        if isinstance(error, ssl.SSLError):
            return f"TLS error: {error.reason or error}"
    for error in chain:
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, socket.gaierror):
            return f"name resolution failed: {error}"
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {exc}" if str(exc) else "connection failed"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return f"HTTP protocol error: {exc}"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return f"connection lost: {exc}" if str(exc) else "connection lost"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- the network backends: connect_to and the deadline ----------------------------------------


def _left(deadline: float, timeout: float | None, kind: type[Exception]) -> float:
    """The smaller of ``timeout`` and what is left until ``deadline``; raises ``kind`` (an
    httpcore timeout) when nothing is left."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise kind("the fetch's deadline passed")
    return left if timeout is None else min(timeout, left)


def _destination(
    connect_to: Mapping[str, tuple[str, int]] | None, host: str, port: int
) -> tuple[str, int]:
    if connect_to is None:
        return host, port
    target = connect_to.get(host.lower().rstrip("."))
    if target is None:  # (refused before the request too: never resolved)
        raise httpcore.ConnectError(f"{host} is not in connect_to")
    return target


class _SyncStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(self._deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(self._deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(self._deadline, timeout, httpcore.ConnectTimeout)
        return _SyncStream(
            self._stream.start_tls(ssl_context, server_hostname, left), self._deadline
        )

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _SyncBackend(httpcore.NetworkBackend):
    """Connects where ``connect_to`` says, every operation within the deadline."""

    def __init__(
        self,
        backend: httpcore.NetworkBackend,
        connect_to: Mapping[str, tuple[str, int]] | None,
        deadline: float,
    ) -> None:
        self._backend = backend
        self._connect_to = connect_to
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        host, port = _destination(self._connect_to, host, port)
        left = _left(self._deadline, timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, left, local_address, socket_options)
        return _SyncStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: httpcore.AsyncNetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        left = _left(self._deadline, timeout, httpcore.ReadTimeout)
        return await self._stream.read(max_bytes, left)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, _left(self._deadline, timeout, httpcore.WriteTimeout))

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        left = _left(self._deadline, timeout, httpcore.ConnectTimeout)
        stream = await self._stream.start_tls(ssl_context, server_hostname, left)
        return _AsyncStream(stream, self._deadline)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    """The asyncio twin of :class:`_SyncBackend`."""

    def __init__(
        self,
        backend: httpcore.AsyncNetworkBackend,
        connect_to: Mapping[str, tuple[str, int]] | None,
        deadline: float,
    ) -> None:
        self._backend = backend
        self._connect_to = connect_to
        self._deadline = deadline

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        host, port = _destination(self._connect_to, host, port)
        left = _left(self._deadline, timeout, httpcore.ConnectTimeout)
        stream = await self._backend.connect_tcp(host, port, left, local_address, socket_options)
        return _AsyncStream(stream, self._deadline)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _SyncTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool with our network backend: one connection,
    HTTP/1.1, no retries. (httpx offers no parameter for the backend; its ``_pool`` is
    replaced -- pinned by ``httpx<1`` and covered by the tests.)"""

    def __init__(self, ssl_context: ssl.SSLContext, backend: httpcore.NetworkBackend) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=1,
            http1=True,
            http2=False,
            retries=0,
            network_backend=backend,
        )


class _AsyncTransport(httpx.AsyncHTTPTransport):
    """The asyncio twin of :class:`_SyncTransport`."""

    def __init__(self, ssl_context: ssl.SSLContext, backend: httpcore.AsyncNetworkBackend) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=1,
            http1=True,
            http2=False,
            retries=0,
            network_backend=backend,
        )
