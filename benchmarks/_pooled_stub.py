"""The previous design of mxselect.stub.StubResolver, for the bulk benchmark only.

A verbatim copy of ``mxselect/stub.py`` before issue 14 (commit ef34b75): pooled UDP sockets
per event loop and server, one source port for up to ``SOCKET_QUERIES`` (4,096) queries. It is
*not* safe against off-path forgery (RFC 5452 §9.2; ``docs/security.md``): never use it. It is
here so that ``benchmarks/bulk.py`` can report the cost of a socket per query against it in one
run.

The original module docstring follows.

A lean stub resolver for bulk work: :class:`StubResolver`, both protocols, no dnspython.

It asks a recursive resolver you name (Unbound, BIND, Knot Resolver, a provider's) for exactly
the queries mxselect needs, and nothing else. Where the dnspython adapter pays for a
general-purpose resolver -- a new socket per query, a full message parse, rdata objects -- this
one keeps a few UDP sockets open per server and event loop, matches replies to queries by
ID and question, and reads only the records a selection uses (:mod:`mxselect._wire`). In the
bulk benchmark it needs about a fifth of the dnspython adapter's CPU per query
(``benchmarks/RESULTS.md``).

What it does, as a stub resolver should (RFC 1123 §6.1.3):

* one query per (name, type), RD set, EDNS0 with a 1232-byte payload; absolute names only,
  never a search list (RFC 5321 §5.1);
* a reply counts only if it comes from the server asked (connected sockets), carries the
  query's ID (random, RFC 5452 §9.2), QR set, and repeats the question; anything else -- a
  forged, damaged or late datagram -- is ignored and the query keeps waiting, as with dnspython;
* TC set: the same question again over TCP (RFC 1123 §6.1.3.2, RFC 7766); ``tcp=True`` sends
  every query over TCP;
* SERVFAIL, REFUSED, FORMERR, NOTIMP, an unreadable TCP reply or a refused connection: the next
  server; no reply within ``timeout``: the next server, and the whole list again, until
  ``lifetime`` runs out (RFC 1536 §1: retransmit, do not give up after one datagram);
* the outcome is an :class:`~mxselect.Answer`, classified as the dnspython adapter does:
  records, NODATA, NXDOMAIN (both with the SOA's negative TTL, RFC 2308 §5, and the CNAME
  chain, RFC 6604 §3), or a temporary failure naming what each server said
  (``"SERVFAIL from 127.0.0.1@53"``, ``"timeout after 5.0 s (asked 127.0.0.1@53)"``) -- never a
  permanent outcome for a fault, never an exception.

It trusts the server it asks: use a validating recursive resolver you run (loopback or a
private network), as for any stub. With ``StubResolver`` the UDP source port of a socket is
reused for many queries (one ID space of 2^16 per socket, sockets replaced after
``SOCKET_QUERIES`` queries); per-query ports are the recursive resolver's job towards the
Internet, not the stub's towards its resolver.

The asyncio side uses ``loop.add_reader`` (any selector event loop, uvloop included; not the
Windows proactor loop). Its sockets belong to the event loop that made them (a resolver shared
by several loops keeps one set per loop) and live while queries are in flight: when the last
reply of a burst is in, they are closed, so nothing stays open between lookups or after
``asyncio.run``. :meth:`StubResolver.close` closes whatever is open now.

::

    resolver = StubResolver(["127.0.0.1"])           # your recursive resolver
    selection = await mxselect.aselect_targets("example.org", resolver=resolver)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any, cast

from mxselect import _wire
from mxselect._answers import Answer, Query

__all__ = ["SOCKET_QUERIES", "StubResolver"]

#: Queries in flight on one UDP socket before the next socket is opened (keeps replies within
#: the socket's receive buffer under load).
SOCKET_IN_FLIGHT = 32
#: Queries a UDP socket sends before it is replaced by one on a fresh port.
SOCKET_QUERIES = 4096
_RCVBUF = 1 << 20
_TCP_MAX = 65535


def _parse_server(server: str | tuple[str, int], port: int) -> tuple[str, int, int]:
    """(address, port, family) of one nameserver: ``"192.0.2.1"``, ``"::1"`` or a tuple."""
    if isinstance(server, tuple):
        address, port = server
    else:
        address = server
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"nameserver must be an IP address, got {address!r}") from None
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError(f"nameserver port must be 1..65535, got {port!r}")
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return str(ip), port, family


def _where(server: tuple[str, int, int]) -> str:
    return f"{server[0]}@{server[1]}"


#: "No first result yet" for :meth:`StubResolver._aresolve`.
_NOTHING = object()


class _Failures:
    """What each server did, for the reason of a temporary failure."""

    __slots__ = ("parts", "timeouts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.timeouts: list[str] = []

    def add(self, text: str) -> None:
        if text not in self.parts:
            self.parts.append(text)

    def timeout(self, server: tuple[str, int, int]) -> None:
        where = _where(server)
        if where not in self.timeouts:
            self.timeouts.append(where)

    def answer(self, lifetime: float, expired: bool) -> Answer:
        if expired or not self.parts:
            text = f"timeout after {lifetime:.1f} s"
            if self.timeouts:
                text += f" (asked {', '.join(self.timeouts)})"
            if self.parts:
                text += "; " + "; ".join(self.parts)
            return Answer.tempfail(text)
        return Answer.tempfail("; ".join(self.parts))


class _Pending:
    __slots__ = ("future", "query", "question")

    def __init__(self, future: asyncio.Future[Any], question: bytes, query: Query) -> None:
        self.future = future
        self.question = question
        self.query = query


class _Socket:
    """One connected, non-blocking UDP socket registered with one event loop."""

    __slots__ = ("closed", "loop", "pending", "sent", "sock")

    def __init__(self, loop: asyncio.AbstractEventLoop, server: tuple[str, int, int]) -> None:
        self.loop = loop
        self.sock = socket.socket(server[2], socket.SOCK_DGRAM)
        try:
            self.sock.setblocking(False)
            with contextlib.suppress(OSError):  # Linux caps it at rmem_max silently
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            self.sock.connect((server[0], server[1]))
            loop.add_reader(self.sock.fileno(), self._readable)
        except BaseException:
            self.sock.close()
            raise
        self.pending: dict[int, _Pending] = {}
        self.sent = 0
        self.closed = False

    def send(self, wire: bytes) -> None:
        self.sock.send(wire)
        self.sent += 1

    def new_id(self) -> int:
        while True:
            qid = secrets.randbits(16)
            if qid not in self.pending:
                return qid

    def _readable(self) -> None:
        pending = self.pending
        while True:
            try:
                data = self.sock.recv(_TCP_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # ICMP port/host unreachable on a connected socket (RFC 1122 §4.1.3.3):
                # every query waiting on this socket has its answer: this server is down.
                for waiting in pending.values():
                    if not waiting.future.done():
                        waiting.future.set_result(exc)
                pending.clear()
                return
            if len(data) < 12:
                continue
            entry = pending.get((data[0] << 8) | data[1])
            if entry is None:
                continue
            try:
                result = _wire.decode(data, entry.question, entry.query.rtype)
            except _wire.WireError:
                continue  # not a reply to this query: keep waiting (dnspython does too)
            del pending[(data[0] << 8) | data[1]]
            if not entry.future.done():
                entry.future.set_result(result)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.loop.is_closed():
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


class _Limiter:
    """At most ``size`` UDP queries outstanding to one server; the rest wait in order (a
    batch waits for all its slots at once, so it is still sent as one)."""

    __slots__ = ("free", "waiters")

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiters: collections.deque[tuple[asyncio.Future[None], int]] = collections.deque()

    def take_now(self, n: int) -> bool:
        """Take ``n`` slots if they are free and nobody waits before us."""
        if self.free >= n and not self.waiters:
            self.free -= n
            return True
        return False

    async def take(self, loop: asyncio.AbstractEventLoop, wait: float, n: int = 1) -> bool:
        """Wait up to ``wait`` seconds for ``n`` slots (at most the limiter's size); False if
        they did not come."""
        future: asyncio.Future[None] = loop.create_future()
        entry = (future, n)
        self.waiters.append(entry)
        granted = False
        try:
            async with asyncio.timeout(wait):
                await future
            granted = True
            return True
        except TimeoutError:
            return False
        finally:
            if not granted:
                if future.done() and not future.cancelled():
                    self.give(n)  # handed the slots just as the wait ended: pass them on
                else:
                    future.cancel()
                    with contextlib.suppress(ValueError):
                        self.waiters.remove(entry)
                    self.give(0)  # a smaller waiter behind this one may fit now

    def give(self, n: int) -> None:
        self.free += n
        while self.waiters:
            future, want = self.waiters[0]
            if future.done():
                self.waiters.popleft()
            elif self.free >= want:
                self.waiters.popleft()
                self.free -= want
                future.set_result(None)
            else:
                break  # first come, first served: later waiters wait behind this one


class _LoopState:
    """The UDP sockets of one event loop, per server, while queries are in flight."""

    __slots__ = ("in_flight", "limiters", "loop", "sockets")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.sockets: dict[tuple[str, int, int], list[_Socket]] = {}
        self.limiters: dict[tuple[str, int, int], _Limiter] = {}
        self.in_flight = 0

    def limiter(self, server: tuple[str, int, int], size: int) -> _Limiter:
        limiter = self.limiters.get(server)
        if limiter is None:
            limiter = self.limiters[server] = _Limiter(size)
        return limiter

    def socket_for(self, server: tuple[str, int, int]) -> _Socket:
        pool = self.sockets.setdefault(server, [])
        best: _Socket | None = None
        for sock in pool:
            if sock.sent >= SOCKET_QUERIES:
                continue
            if len(sock.pending) < SOCKET_IN_FLIGHT:
                return sock
            if best is None or len(sock.pending) < len(best.pending):
                best = sock
        # Retire used-up sockets once their replies are in.
        for sock in [s for s in pool if s.sent >= SOCKET_QUERIES and not s.pending]:
            sock.close()
            pool.remove(sock)
        if best is not None and len(pool) >= 64:
            return best
        sock = _Socket(self.loop, server)
        pool.append(sock)
        return sock

    def close(self) -> None:
        for pool in self.sockets.values():
            for sock in pool:
                sock.close()
        self.sockets.clear()


class StubResolver:
    """A stub resolver (sync :class:`~mxselect.typing.Resolver` and asyncio
    :class:`~mxselect.typing.AsyncResolver`) asking the recursive resolvers you name.

    Args:
        nameservers: IP addresses (``"127.0.0.1"``, ``"::1"``) or ``(address, port)`` tuples,
            asked in this order. No default: the stub never reads ``/etc/resolv.conf``.
        port: the port of the servers given without one (default 53).
        timeout: seconds to wait for one server's reply before asking the next (default 2).
        lifetime: seconds for a whole query, retransmissions included (default 5); the drivers'
            ``deadline`` lowers it per query.
        tcp: send every query over TCP (default: UDP, TCP when a reply is truncated).
        edns: advertise EDNS0 with a 1232-byte UDP payload (default True).
        max_in_flight: UDP queries outstanding to one server from one event loop (default
            256); more wait their turn. A burst beyond what the server's socket buffer holds
            would be dropped by its kernel and cost a retransmission timeout each.

    Raises:
        ValueError: no nameserver, a name instead of an address, a bad port or timeout.
    """

    #: The drivers pass the time left before their deadline as ``lifetime``.
    _mxselect_lifetime = True

    def __init__(
        self,
        nameservers: Iterable[str | tuple[str, int]],
        *,
        port: int = 53,
        timeout: float = 2.0,
        lifetime: float = 5.0,
        tcp: bool = False,
        edns: bool = True,
        max_in_flight: int = 256,
    ) -> None:
        if isinstance(nameservers, str):
            nameservers = [nameservers]
        self.nameservers = tuple(_parse_server(s, port) for s in nameservers)
        if not self.nameservers:
            raise ValueError("at least one nameserver is needed")
        for what, value in (("timeout", timeout), ("lifetime", lifetime)):
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"{what} must be a positive number of seconds, got {value!r}")
        self.timeout = float(timeout)
        self.lifetime = float(lifetime)
        if (
            not isinstance(max_in_flight, int)
            or isinstance(max_in_flight, bool)
            or max_in_flight < 1
        ):
            raise ValueError(f"max_in_flight must be a positive integer, got {max_in_flight!r}")
        self.tcp = tcp
        self.edns = edns
        self.max_in_flight = max_in_flight
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        servers = ", ".join(_where(s) for s in self.nameservers)
        return f"StubResolver([{servers}], timeout={self.timeout}, lifetime={self.lifetime})"

    # -- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        """Close every socket (of every event loop). The resolver stays usable: it opens
        new sockets when asked again."""
        with self._lock:
            states = list(self._states.values())
            self._states.clear()
        for state in states:
            if state.loop.is_closed() or _running_loop() is state.loop:
                state.close()
            else:  # another thread's loop: close there
                state.loop.call_soon_threadsafe(state.close)

    def __enter__(self) -> StubResolver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> StubResolver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _state(self, loop: asyncio.AbstractEventLoop) -> _LoopState:
        state = self._states.get(loop)
        if state is None:
            with self._lock:
                state = self._states.setdefault(loop, _LoopState(loop))
        return state

    def _idle(self, state: _LoopState) -> None:
        """No query in flight on this loop: close its sockets and forget it, so nothing is
        left open when the loop ends (``asyncio.run`` per call is fine)."""
        with self._lock:
            if self._states.get(state.loop) is state:
                del self._states[state.loop]
        state.close()

    # -- asyncio -----------------------------------------------------------------------

    async def aresolve(self, query: Query, lifetime: float | None = None) -> Answer:
        """Resolve one query; never raises for a DNS outcome. ``lifetime`` (seconds) lowers
        the resolver's own lifetime for this query."""
        try:
            question = _wire.question_of(query.name, query.rtype)
        except (_wire.WireError, KeyError) as exc:
            return Answer.tempfail(f"cannot ask for {query}: {exc}")
        loop = asyncio.get_running_loop()
        total = self.lifetime if lifetime is None else min(lifetime, self.lifetime)
        return await self._aresolve(loop, query, question, total, loop.time() + total, _NOTHING)

    async def aresolve_batch(
        self, queries: Sequence[Query], lifetime: float | None = None
    ) -> list[Answer]:
        """Resolve a batch of queries at once; the answers in the order of ``queries``.

        The drivers call this instead of one ``aresolve`` task per query: the first
        datagram of every query goes to the first server together and the replies are
        collected in the caller's task, which saves a task per query. A query whose first
        exchange gives no answer (timeout, truncation, an error rcode) continues exactly as
        :meth:`aresolve` would from there.
        """
        loop = asyncio.get_running_loop()
        total = self.lifetime if lifetime is None else min(lifetime, self.lifetime)
        end = loop.time() + total
        answers: list[Answer | None] = [None] * len(queries)
        questions: list[bytes] = []
        for i, query in enumerate(queries):
            try:
                questions.append(_wire.question_of(query.name, query.rtype))
            except (_wire.WireError, KeyError) as exc:
                answers[i] = Answer.tempfail(f"cannot ask for {query}: {exc}")
                questions.append(b"")
        todo = [i for i, answer in enumerate(answers) if answer is None]
        server = self.nameservers[0]
        if self.tcp or not todo or len(todo) > self.max_in_flight:
            # TCP, nothing to send, or more than the server may have outstanding at all:
            # one task per query.
            rest = await asyncio.gather(
                *(
                    self._aresolve(loop, queries[i], questions[i], total, end, _NOTHING)
                    for i in todo
                )
            )
            for i, answer in zip(todo, rest, strict=True):
                answers[i] = answer
            return cast("list[Answer]", answers)
        state = self._state(loop)
        limiter = state.limiter(server, self.max_in_flight)
        firsts: list[object] = []
        sent: list[tuple[_Socket | None, int, asyncio.Future[Any]]] = []
        state.in_flight += 1
        handle: asyncio.TimerHandle | None = None
        taken = False
        try:
            wait = min(self.timeout, total)
            taken = limiter.take_now(len(todo)) or await limiter.take(loop, wait, len(todo))
            if not taken:
                # no slots freed up within the first timeout: that counts as the first
                # server timing out, as in _audp, and each query's retry loop goes on
                firsts = [None] * len(todo)
            else:
                for i in todo:
                    future: asyncio.Future[Any] = loop.create_future()
                    try:
                        sock = state.socket_for(server)
                        qid = sock.new_id()
                        sock.pending[qid] = _Pending(future, questions[i], queries[i])
                        sent.append((sock, qid, future))
                        sock.send(_wire.make_query(qid, questions[i], edns=self.edns))
                    except OSError as exc:
                        # this query's first exchange failed: its retry loop takes it on
                        if not future.done():
                            future.set_result(exc)
                        if not sent or sent[-1][2] is not future:
                            sent.append((None, -1, future))
                handle = loop.call_later(wait, _expire_all, [f for _, _, f in sent])
                for _, _, future in sent:
                    firsts.append(await future)
        finally:
            if handle is not None:
                handle.cancel()
            for used, qid, future in sent:
                entry = used.pending.get(qid) if used is not None else None
                if used is not None and entry is not None and entry.future is future:
                    del used.pending[qid]
            if taken:
                limiter.give(len(todo))
            state.in_flight -= 1
            if not state.in_flight:
                self._idle(state)
        again: list[int] = []
        for i, first in zip(todo, firsts, strict=True):
            if isinstance(first, Answer):
                answers[i] = first
            else:
                again.append(i)
        if again:
            rest = await asyncio.gather(
                *(
                    self._aresolve(
                        loop, queries[i], questions[i], total, end, firsts[todo.index(i)]
                    )
                    for i in again
                )
            )
            for i, answer in zip(again, rest, strict=True):
                answers[i] = answer
        return cast("list[Answer]", answers)

    async def _aresolve(
        self,
        loop: asyncio.AbstractEventLoop,
        query: Query,
        question: bytes,
        total: float,
        end: float,
        first: object,
    ) -> Answer:
        """The retry loop of one query (:meth:`_attempts`) over asyncio. ``first``: the
        result of a first UDP exchange with the first server already made (by
        :meth:`aresolve_batch`), or ``_NOTHING``."""
        steps = self._attempts(total, end, loop.time, first)
        try:
            transport, server, edns, wait = next(steps)
            while True:
                if transport == "tcp":
                    result = await self._atcp(loop, server, question, query, edns, wait)
                else:
                    result = await self._audp(loop, server, question, query, edns, wait)
                transport, server, edns, wait = steps.send(result)
        except StopIteration as stop:
            return cast("Answer", stop.value)

    def _attempts(
        self, total: float, end: float, clock: Callable[[], float], first: object = _NOTHING
    ) -> Generator[tuple[str, tuple[str, int, int], bool, float], object, Answer]:
        """The retry loop of one query, without I/O, shared by both protocols: yields the
        next exchange to make -- ("udp" or "tcp", server, EDNS on, seconds to wait) -- is sent
        its result, and returns the Answer. Servers in order, round after round (RFC 1123
        §6.1.3.3), until ``end`` on ``clock``; TCP after a truncated UDP reply (RFC 1123
        §6.1.3.2)."""
        failures = _Failures()
        servers = list(self.nameservers)
        edns = self.edns
        turn = 0
        while servers:
            server = servers[turn % len(servers)]
            transport = "tcp" if self.tcp else "udp"
            if first is not _NOTHING:
                result, first, transport = first, _NOTHING, "udp"
            else:
                remaining = end - clock()
                if remaining <= 0:
                    return failures.answer(total, True)
                result = yield transport, server, edns, min(self.timeout, remaining)
            if result is _wire.TRUNCATED and transport == "udp":
                remaining = end - clock()
                if remaining <= 0:
                    return failures.answer(total, True)
                result = yield "tcp", server, edns, min(self.timeout, remaining)
                if isinstance(result, str):
                    result += " over TCP (the UDP reply was truncated)"
            outcome = self._judge(result, server, failures, servers, edns)
            if isinstance(outcome, Answer):
                return outcome
            if outcome == "no-edns":
                edns = False  # the same server again, without EDNS
            elif server in servers:
                turn += 1  # (a server dropped after an error leaves its place to the next)
        return failures.answer(total, False)

    async def _audp(
        self,
        loop: asyncio.AbstractEventLoop,
        server: tuple[str, int, int],
        question: bytes,
        query: Query,
        edns: bool,
        wait: float,
    ) -> object:
        """One UDP exchange: the decoded reply, None if none came within ``wait`` (or no
        slot freed up for sending in that time), an OSError, or an error text."""
        state = self._state(loop)
        state.in_flight += 1
        try:
            limiter = state.limiter(server, self.max_in_flight)
            if not limiter.take_now(1) and not await limiter.take(loop, wait):
                return None
            try:
                return await self._exchange(state, server, question, query, edns, wait)
            finally:
                limiter.give(1)
        finally:
            state.in_flight -= 1
            if not state.in_flight:
                self._idle(state)

    async def _exchange(
        self,
        state: _LoopState,
        server: tuple[str, int, int],
        question: bytes,
        query: Query,
        edns: bool,
        wait: float,
    ) -> object:
        loop = state.loop
        try:
            sock = state.socket_for(server)
        except OSError as exc:
            return f"{_error_text(exc)} from {_where(server)}"
        qid = sock.new_id()
        future: asyncio.Future[Any] = loop.create_future()
        sock.pending[qid] = _Pending(future, question, query)
        try:
            sock.send(_wire.make_query(qid, question, edns=edns))
            handle = loop.call_later(wait, _expire, future)
            try:
                return await future
            finally:
                handle.cancel()
        except OSError as exc:
            return exc
        finally:
            entry = sock.pending.get(qid)
            if entry is not None and entry.future is future:
                del sock.pending[qid]

    async def _atcp(
        self,
        loop: asyncio.AbstractEventLoop,
        server: tuple[str, int, int],
        question: bytes,
        query: Query,
        edns: bool,
        wait: float,
    ) -> object:
        qid = secrets.randbits(16)
        wire = _wire.make_query(qid, question, edns=edns)
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(wait):
                reader, writer = await asyncio.open_connection(server[0], server[1])
                writer.write(len(wire).to_bytes(2, "big") + wire)
                await writer.drain()
                while True:
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    data = await reader.readexactly(size)
                    if len(data) >= 12 and (data[0] << 8 | data[1]) == qid:
                        try:
                            return _wire.decode(data, question, query.rtype)
                        except _wire.WireError as exc:
                            return f"unreadable reply ({exc}) from {_where(server)}"
        except TimeoutError:
            return None
        except (OSError, asyncio.IncompleteReadError) as exc:
            return f"{_error_text(exc)} from {_where(server)}"
        finally:
            if writer is not None:
                writer.close()

    # -- shared ------------------------------------------------------------------------

    @staticmethod
    def _judge(
        result: object,
        server: tuple[str, int, int],
        failures: _Failures,
        servers: list[tuple[str, int, int]],
        edns: bool,
    ) -> Answer | str | None:
        """An Answer to return, ``"no-edns"`` to ask again without EDNS, or None (go on)."""
        if isinstance(result, Answer):
            return result
        if result is None:  # no reply in time: this server again in the next round
            failures.timeout(server)
            return None
        if isinstance(result, int):
            text = _wire.RCODE_TEXT.get(result, f"RCODE {result}")
            if edns and result in (_wire.FORMERR, _wire.NOTIMP):
                # RFC 6891 §7: a server that does not know EDNS; ask it again without.
                failures.add(f"{text} from {_where(server)} (to EDNS)")
                return "no-edns"
            failures.add(f"{text} from {_where(server)}")
        elif isinstance(result, OSError):
            failures.add(f"{_error_text(result)} from {_where(server)}")
        else:
            failures.add(str(result))
        servers.remove(server)  # an error is not retried on the same server
        return None

    # -- synchronous -------------------------------------------------------------------

    def resolve(self, query: Query, lifetime: float | None = None) -> Answer:
        """Resolve one query; never raises for a DNS outcome. Thread-safe: every call has its
        own socket."""
        try:
            question = _wire.question_of(query.name, query.rtype)
        except (_wire.WireError, KeyError) as exc:
            return Answer.tempfail(f"cannot ask for {query}: {exc}")
        total = self.lifetime if lifetime is None else min(lifetime, self.lifetime)
        steps = self._attempts(total, time.monotonic() + total, time.monotonic)
        try:
            transport, server, edns, wait = next(steps)
            while True:
                exchange = _tcp if transport == "tcp" else _udp
                transport, server, edns, wait = steps.send(
                    exchange(server, question, query, edns, wait)
                )
        except StopIteration as stop:
            return cast("Answer", stop.value)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


def _expire_all(futures: list[asyncio.Future[Any]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed before the reply"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _udp(
    server: tuple[str, int, int], question: bytes, query: Query, edns: bool, wait: float
) -> object:
    """One UDP exchange on a socket of its own: the decoded reply, None on timeout, or an
    OSError."""
    end = time.monotonic() + wait
    qid = secrets.randbits(16)
    try:
        with socket.socket(server[2], socket.SOCK_DGRAM) as sock:
            sock.connect((server[0], server[1]))
            sock.send(_wire.make_query(qid, question, edns=edns))
            while True:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return None
                readable, _, _ = select.select([sock], [], [], remaining)
                if not readable:
                    return None
                data = sock.recv(_TCP_MAX)
                if len(data) < 12 or (data[0] << 8 | data[1]) != qid:
                    continue
                try:
                    return _wire.decode(data, question, query.rtype)
                except _wire.WireError:
                    continue  # not our reply: keep waiting
    except OSError as exc:
        return exc


def _tcp(
    server: tuple[str, int, int], question: bytes, query: Query, edns: bool, wait: float
) -> object:
    """One TCP exchange (RFC 7766 §8: two-octet length prefix)."""
    qid = secrets.randbits(16)
    wire = _wire.make_query(qid, question, edns=edns)
    try:
        with socket.create_connection((server[0], server[1]), timeout=wait) as sock:
            sock.settimeout(wait)
            sock.sendall(len(wire).to_bytes(2, "big") + wire)
            while True:
                size = int.from_bytes(_recv_exactly(sock, 2), "big")
                data = _recv_exactly(sock, size)
                if len(data) >= 12 and (data[0] << 8 | data[1]) == qid:
                    try:
                        return _wire.decode(data, question, query.rtype)
                    except _wire.WireError as exc:
                        return f"unreadable reply ({exc}) from {_where(server)}"
    except TimeoutError:
        return None
    except OSError as exc:
        return f"{_error_text(exc)} from {_where(server)}"


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("connection closed before the reply")
        data += chunk
    return data
