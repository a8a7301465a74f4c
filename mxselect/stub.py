"""A lean stub resolver for bulk work: :class:`StubResolver`, both protocols, no dnspython.

It asks a recursive resolver you name (Unbound, BIND, Knot Resolver, a provider's) for exactly
the queries mxselect needs, and nothing else. Where the dnspython adapter pays for a
general-purpose resolver -- a full message parse, rdata objects, a task per query -- this one
matches replies to queries by ID and question and reads only the records a selection uses
(:mod:`mxselect._wire`). In the bulk benchmark it needs a fraction of the dnspython adapter's
CPU per query (``benchmarks/RESULTS.md``).

What it does, as a stub resolver should (RFC 1123 §6.1.3):

* one query per (name, type), RD set, EDNS0 with a 1232-byte payload; absolute names only,
  never a search list (RFC 5321 §5.1);
* every UDP query -- sync, asyncio, :meth:`~StubResolver.aresolve_batch`, bursts -- goes out
  on a socket of its own, bound by the kernel to a fresh, randomly chosen ephemeral port
  (RFC 5452 §9.2: "MUST use multiple different source ports simultaneously"), with a random
  ID (RFC 5452 §9.2, ``secrets``); so no datagram that arrived before a query was sent can be
  matched to it, and an ICMP error fails only the query whose socket it reached;
* a reply counts only if it comes from the server asked (connected sockets), carries the
  query's ID, QR set, and repeats the question (with ``dns0x20=True``, in the exact mixed case
  sent); anything else -- a forged, damaged or stray datagram -- is ignored and the query
  keeps waiting, as with dnspython (RFC 5452 §9.1);
* identical questions outstanding at once on one event loop are one exchange (RFC 5452 §5):
  the callers share its answer;
* no reply within ``timeout``: the next server, and the whole list again, until ``lifetime``
  runs out (RFC 1536 §1: retransmit, do not give up after one datagram) -- and the earlier
  transmissions stay open: a late answer to any of them, within the lifetime, is taken;
* TC set: the same question again over TCP (RFC 1123 §6.1.3.2, RFC 7766); ``tcp=True`` sends
  every query over TCP; one message is read per connection (at most 65,535 octets, RFC 1035
  §4.2.2), and it must carry the query's ID;
* every exchange has one absolute end, ``timeout`` or what is left of ``lifetime``: a server
  that trickles bytes or floods datagrams cannot hold a query longer;
* SERVFAIL, REFUSED, FORMERR, NOTIMP, an unreadable TCP reply or a refused connection: the next
  server;
* the outcome is an :class:`~mxselect.Answer`, classified as the dnspython adapter does:
  records, NODATA, NXDOMAIN (both with the SOA's negative TTL, RFC 2308 §5, and the CNAME
  chain, RFC 6604 §3), or a temporary failure naming what each server said
  (``"SERVFAIL from 127.0.0.1@53"``, ``"timeout after 5.0 s (asked 127.0.0.1@53)"``) -- never a
  permanent outcome for a fault, never an exception.

It trusts the server it asks: use a validating recursive resolver you run (loopback or a
private network), as for any stub. The defences above are against an *off-path* attacker who
sprays forged replies; an attacker on the path to the resolver sees the port, ID and case and
is stopped only by DNSSEC validation in a resolver you reach safely (``docs/security.md``).

The asyncio side uses ``loop.add_reader`` (any selector event loop, uvloop included; not the
Windows proactor loop). Its sockets belong to the event loop that made them and live while
their query is in flight, so nothing stays open between lookups or after ``asyncio.run``.
:meth:`StubResolver.close` closes whatever is open now.

::

    resolver = StubResolver(["127.0.0.1"])           # your recursive resolver
    selection = await mxselect.aselect_targets("example.org", resolver=resolver)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import ipaddress
import math
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar, cast

import attrs

from . import _wire
from ._answers import Answer, Query, Security, Status

__all__ = ["StubResolver"]

#: Datagrams read from one socket per event-loop callback (a flood cannot starve the loop).
READS_PER_CALLBACK = 8
#: Earlier transmissions of one query kept open for a late reply while it is retransmitted.
KEEP_EARLIER = 3
#: Earlier transmissions kept open per event loop in all (a bound on descriptors).
KEEP_MAX = 256
_UDP_MAX = 65535
_TCP_MAX = 65535
_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)
_EPOLL = getattr(select, "epoll", None)


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
#: A datagram that is not a reply to this transmission: ignore it, keep waiting.
_NOT_OURS = object()
#: A reply to our question, but not in the mixed case sent (DNS 0x20): ask again in lower case.
_CASE_MISMATCH = object()
#: The leader of a merged query gave up (cancelled): the callers waiting for it ask themselves.
_RESTART = object()


def _mix_case(question: bytes) -> bytes:
    """``question`` with each letter of its QNAME in a random case (DNS 0x20,
    draft-vixie-dnsext-dns0x20 §4; Unbound's ``use-caps-for-id``). Length octets (1..63) are
    never letters, so the whole name can be walked as bytes."""
    bits = secrets.randbits(len(question))
    out = bytearray(question)
    for i in range(len(out) - 4):  # not QTYPE/QCLASS
        if 97 <= out[i] <= 122 and bits >> i & 1:
            out[i] -= 32
    return bytes(out)


def _check(data: bytes, question: bytes, sent: bytes, rtype: Any) -> object:
    """What a datagram carrying our ID means for the transmission that sent ``sent``: the
    decoded reply, :data:`_CASE_MISMATCH`, or :data:`_NOT_OURS` (a forged, damaged or stray
    datagram: ignored, RFC 5452 §9.1)."""
    try:
        result = _wire.decode(data, question, rtype, dnssec=True)
    except _wire.WireError:
        return _NOT_OURS
    if sent is question or data[4:6] == b"\x00\x00":
        return result  # no 0x20, or an error without the question (RFC 6891 §7)
    end = 12 + len(question)
    if data[12:end] != sent:
        return _CASE_MISMATCH  # the question, but not in the case we sent it
    try:  # read the records as if the question had been sent in lower case
        return _wire.decode(data[:12] + question + data[end:], question, rtype, dnssec=True)
    except _wire.WireError:  # pragma: no cover - decoded above, same bytes but for case
        return _NOT_OURS


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


class _Socket:
    """One UDP transmission: a connected, non-blocking socket of its own, registered with
    one event loop, open while its query may still take a reply to it."""

    __slots__ = ("owner", "qid", "sent", "sock", "state")

    def __init__(
        self,
        owner: _UdpQuery,
        server: tuple[str, int, int],
        qid: int,
        sent: bytes,
    ) -> None:
        self.owner = owner
        self.state = owner.state
        self.qid = qid
        self.sent = sent
        sock = socket.socket(server[2], socket.SOCK_DGRAM | _NONBLOCK)
        try:
            if not _NONBLOCK:  # pragma: no cover - Linux has SOCK_NONBLOCK
                sock.setblocking(False)
            # RFC 5452 §9.2: connect() binds the socket to a fresh ephemeral port, which the
            # kernel picks at random (Linux, the BSDs, macOS and Windows all randomise it), and
            # makes the kernel drop datagrams from any other address or port.
            sock.connect((server[0], server[1]))
            self.state.watch(self, sock.fileno())
        except BaseException:
            sock.close()
            raise
        self.sock: socket.socket | None = sock
        self.state.open.add(self)

    def send(self, wire: bytes) -> None:
        assert self.sock is not None
        self.sock.send(wire)

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:  # pragma: no cover - closed with the callback already queued
            return
        owner = self.owner
        for _ in range(READS_PER_CALLBACK):  # the rest at the next callback
            try:
                data = sock.recv(_UDP_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # ICMP port/host unreachable on this connected socket (RFC 1122 §4.1.3.3): it
                # answers this transmission only -- no other query shares the socket.
                owner.deliver(self, exc)
                return
            if len(data) < 12 or (data[0] << 8 | data[1]) != self.qid:
                continue
            result = _check(data, owner.question, self.sent, owner.rtype)
            if result is _NOT_OURS:
                continue  # not a reply to this query: keep waiting (dnspython does too)
            owner.deliver(self, result)
            return

    def close(self) -> None:
        sock = self.sock
        if sock is None:
            return
        self.sock = None
        self.state.open.discard(self)
        self.state.unwatch(self, sock.fileno())
        sock.close()


class _UdpQuery:
    """The UDP transmissions of one query on one event loop: each on a fresh socket; the
    earlier ones (at most :data:`KEEP_EARLIER`) stay open for a late reply."""

    __slots__ = ("current", "earlier", "future", "late", "question", "rtype", "state")

    def __init__(self, state: _LoopState, question: bytes, rtype: Any) -> None:
        self.state = state
        self.question = question
        self.rtype = rtype
        self.future: asyncio.Future[Any] | None = None
        self.current: _Socket | None = None
        self.earlier: list[_Socket] = []
        #: an answer to an earlier transmission that came while no transmission was waiting
        self.late: Answer | None = None

    def transmit(self, server: tuple[str, int, int], edns: bool, caps: bool) -> None:
        """Send the question to ``server`` on a new socket; ``self.future`` gets the reply."""
        self.future = self.state.loop.create_future()
        qid = secrets.randbits(16)
        sent = _mix_case(self.question) if caps else self.question
        sock = _Socket(self, server, qid, sent)
        self.current = sock
        try:
            sock.send(_wire.make_query(qid, sent, edns=edns))
        except BaseException:
            self.current = None
            sock.close()
            raise

    def fail(self, exc: OSError) -> None:
        """A transmission that could not be made: its result is the error."""
        self.future = self.state.loop.create_future()
        self.future.set_result(exc)

    def deliver(self, sock: _Socket, result: object) -> None:
        future = self.future
        if sock is self.current:
            self.current = None
            sock.close()
            if future is not None and not future.done():
                future.set_result(result)
            return
        # A reply to an earlier transmission of this question: taken if it is an answer
        # (RFC 1536 §1: the server may be slow, not lost); its errors are no longer news.
        with contextlib.suppress(ValueError):
            self.earlier.remove(sock)
            self.state.kept -= 1
        sock.close()
        if isinstance(result, Answer):
            if future is not None and not future.done():
                future.set_result(result)
            else:
                self.late = result

    def settle(self) -> None:
        """The wait for the current transmission is over: if it got no reply, keep its socket
        open (within the bounds) for a late one."""
        sock, self.current = self.current, None
        if sock is None:
            return
        state = self.state
        if sock.sock is None or state.kept >= KEEP_MAX:
            sock.close()
            return
        self.earlier.append(sock)
        state.kept += 1
        if len(self.earlier) > KEEP_EARLIER:
            self.earlier.pop(0).close()
            state.kept -= 1

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
        for sock in self.earlier:
            sock.close()
        self.state.kept -= len(self.earlier)
        self.earlier.clear()


class _Flight:
    """One query in flight that identical questions wait for (RFC 5452 §5)."""

    __slots__ = ("end", "waiters")

    def __init__(self, end: float) -> None:
        self.end = end
        self.waiters: list[asyncio.Future[Any]] = []

    def finish(self, answer: Answer | None) -> None:
        outcome: object = _RESTART if answer is None else answer
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(outcome)
        self.waiters.clear()


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
    """One event loop's queries: open sockets, slots per server, identical questions.

    Its sockets are watched through one epoll set of its own (Linux), which the event loop
    watches as a single reader: a query's socket costs one ``epoll_ctl`` to add, and closing
    it removes it (RFC 5452 §9.2 makes a socket per query; asyncio's own add/remove_reader
    would cost two system calls and its selector bookkeeping for each). Elsewhere, each
    socket is an event-loop reader of its own."""

    __slots__ = ("by_fd", "epoll", "flights", "in_flight", "kept", "limiters", "loop", "open")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.open: set[_Socket] = set()
        self.epoll: Any = None
        self.by_fd: dict[int, _Socket] = {}
        self.limiters: dict[tuple[str, int, int], _Limiter] = {}
        #: question (lower case) -> the query in flight for it
        self.flights: dict[bytes, _Flight] = {}
        self.in_flight = 0
        self.kept = 0

    def limiter(self, server: tuple[str, int, int], size: int) -> _Limiter:
        limiter = self.limiters.get(server)
        if limiter is None:
            limiter = self.limiters[server] = _Limiter(size)
        return limiter

    def watch(self, sock: _Socket, fd: int) -> None:
        """Call ``sock._readable`` when ``fd`` is readable."""
        if _EPOLL is None:  # pragma: no cover - Linux has epoll
            self.loop.add_reader(fd, sock._readable)
            return
        if self.epoll is None:
            epoll = _EPOLL()
            try:
                self.loop.add_reader(epoll.fileno(), self._ready)
            except BaseException:
                epoll.close()
                raise
            self.epoll = epoll
        self.epoll.register(fd, select.EPOLLIN)
        self.by_fd[fd] = sock

    def unwatch(self, sock: _Socket, fd: int) -> None:
        """Stop watching ``fd`` (about to be closed, which takes it out of the epoll set)."""
        if _EPOLL is None:  # pragma: no cover - Linux has epoll
            if not self.loop.is_closed():
                self.loop.remove_reader(fd)
            return
        if self.by_fd.get(fd) is sock:
            del self.by_fd[fd]

    def _ready(self) -> None:
        epoll = self.epoll
        if epoll is None:  # pragma: no cover - closed with the callback already queued
            return
        by_fd = self.by_fd
        for fd, _events in epoll.poll(0):
            sock = by_fd.get(fd)
            if sock is not None:
                sock._readable()

    def close(self) -> None:
        for sock in list(self.open):
            sock.close()
        epoll, self.epoll = self.epoll, None
        if epoll is not None:
            if not self.loop.is_closed():
                self.loop.remove_reader(epoll.fileno())
            epoll.close()


def _unknown(answer: Answer) -> Answer:
    """An answer from a resolver whose AD bit does not count: its status is UNKNOWN."""
    if answer.security is Security.UNKNOWN:
        return answer
    return attrs.evolve(answer, security=Security.UNKNOWN)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _sync_status(method: _Method) -> _Method:
    """Apply ``trust_ad`` to what ``method`` answers."""

    @functools.wraps(method)
    def wrapper(self: StubResolver, *args: Any, **kwargs: Any) -> Answer:
        answer: Answer = method(self, *args, **kwargs)
        return answer if self.trust_ad else _unknown(answer)

    return cast("_Method", wrapper)


def _async_status(method: _Method) -> _Method:
    """Apply ``trust_ad`` to what the coroutine ``method`` answers."""

    @functools.wraps(method)
    async def wrapper(self: StubResolver, *args: Any, **kwargs: Any) -> Answer:
        answer: Answer = await method(self, *args, **kwargs)
        return answer if self.trust_ad else _unknown(answer)

    return cast("_Method", wrapper)


def _batch_status(method: _Method) -> _Method:
    """Apply ``trust_ad`` to every answer of the coroutine ``method``."""

    @functools.wraps(method)
    async def wrapper(self: StubResolver, *args: Any, **kwargs: Any) -> list[Answer]:
        answers: list[Answer] = await method(self, *args, **kwargs)
        return answers if self.trust_ad else [_unknown(a) for a in answers]

    return cast("_Method", wrapper)


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
        dns0x20: send each UDP query name in a random mix of upper and lower case and take
            only replies that repeat it exactly (DNS 0x20, as Unbound's ``use-caps-for-id``
            and c-ares' ``ARES_FLAG_DNS0x20``): up to one more random bit per letter for a
            forger to guess. Default False. A server that answers in another case is asked
            once more in lower case, at once (Unbound's fallback), and that reply is taken.
        trust_ad: whether to believe the AD bit of the replies (:class:`~mxselect.Security`:
            ``SECURE`` with AD, ``INSECURE`` without; queries always carry RD|AD, RFC 6840
            §5.7); ``None`` (default): only when every nameserver is a loopback address. An
            untrusted resolver's answers are ``UNKNOWN``.

    Raises:
        ValueError: no nameserver, a name instead of an address, a bad port or timeout.
    """

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
        dns0x20: bool = False,
        trust_ad: bool | None = None,
    ) -> None:
        if isinstance(nameservers, str):
            nameservers = [nameservers]
        self.nameservers = tuple(_parse_server(s, port) for s in nameservers)
        if not self.nameservers:
            raise ValueError("at least one nameserver is needed")
        #: Whether the AD bit of the replies counts (RFC 7672 §2.1.1 via RFC 4035 §4.9.3:
        #: only from a trusted validating resolver over a secure channel): by default when
        #: every nameserver is on loopback; otherwise every answer's status is UNKNOWN.
        self.trust_ad = (
            all(ipaddress.ip_address(s[0]).is_loopback for s in self.nameservers)
            if trust_ad is None
            else bool(trust_ad)
        )
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
        self.dns0x20 = bool(dns0x20)
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

    @_async_status
    async def aresolve(self, query: Query, lifetime: float | None = None) -> Answer:
        """Resolve one query; never raises for a DNS outcome. ``lifetime`` (seconds) lowers
        the resolver's own lifetime for this query."""
        try:
            question = _wire.question_of(query.name, query.rtype)
        except (_wire.WireError, KeyError) as exc:
            return Answer.tempfail(f"cannot ask for {query}: {exc}")
        loop = asyncio.get_running_loop()
        total = self.lifetime if lifetime is None else min(lifetime, self.lifetime)
        state = self._state(loop)
        state.in_flight += 1
        try:
            return await self._merged(state, query, question, total, loop.time() + total)
        finally:
            state.in_flight -= 1
            if not state.in_flight:
                self._idle(state)

    async def _merged(
        self, state: _LoopState, query: Query, question: bytes, total: float, end: float
    ) -> Answer:
        """Resolve ``query``, or wait for the identical one already in flight on this loop
        (RFC 5452 §5: "resolvers must not send out multiple identical queries
        simultaneously")."""
        loop = state.loop
        while True:
            flight = state.flights.get(question)
            if flight is None:
                break
            waiter: asyncio.Future[Any] = loop.create_future()
            flight.waiters.append(waiter)
            answer = await self._joined(state, waiter, flight, total, end)
            if answer is not None:
                return answer
        flight = state.flights[question] = _Flight(end)
        answer = None
        try:
            answer = await self._aresolve(state, query, question, total, end, _NOTHING)
            return answer
        finally:
            if state.flights.get(question) is flight:
                del state.flights[question]
            flight.finish(answer)

    @staticmethod
    async def _joined(
        state: _LoopState,
        waiter: asyncio.Future[Any],
        flight: _Flight,
        total: float,
        end: float,
    ) -> Answer | None:
        """The answer of the identical query ``flight`` (``waiter`` is registered with it),
        within our own ``end``; None if we must ask ourselves: its leader gave up, or its
        lifetime was shorter than ours and it ended in a temporary failure."""
        loop = state.loop
        handle = loop.call_at(end, _expire, waiter)
        try:
            outcome = await waiter
        finally:
            handle.cancel()
        if outcome is None:
            return _Failures().answer(total, True)
        if outcome is _RESTART:
            return None
        answer = cast("Answer", outcome)
        if answer.status is Status.TEMPFAIL and flight.end < end and loop.time() < end:
            return None
        return answer

    @_batch_status
    async def aresolve_batch(
        self, queries: Sequence[Query], lifetime: float | None = None
    ) -> list[Answer]:
        """Resolve a batch of queries at once; the answers in the order of ``queries``.

        The drivers call this instead of one ``aresolve`` task per query: the first
        datagram of every query goes to the first server together (each on its own socket)
        and the replies are collected in the caller's task, which saves a task per query. A
        query whose first exchange gives no answer (timeout, truncation, an error rcode)
        continues exactly as :meth:`aresolve` would from there; a query identical to one
        already in flight waits for it (RFC 5452 §5).
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
        state = self._state(loop)
        state.in_flight += 1
        try:
            leaders: list[int] = []
            mine: dict[bytes, int] = {}
            copies: list[tuple[int, int]] = []
            joins: list[tuple[int, _Flight, asyncio.Future[Any]]] = []
            for i, answer in enumerate(answers):
                if answer is not None:
                    continue
                question = questions[i]
                if question in mine:  # the same question twice in this batch: ask once
                    copies.append((i, mine[question]))
                    continue
                flight = state.flights.get(question)
                if flight is None:
                    state.flights[question] = _Flight(end)
                    mine[question] = i
                    leaders.append(i)
                else:
                    waiter: asyncio.Future[Any] = loop.create_future()
                    flight.waiters.append(waiter)
                    joins.append((i, flight, waiter))
            try:
                if leaders:
                    await self._lead_batch(state, queries, questions, leaders, answers, total, end)
            finally:
                for i in leaders:
                    flight = state.flights.pop(questions[i])
                    flight.finish(answers[i])
            for i, flight, waiter in joins:
                answers[i] = await self._joined(state, waiter, flight, total, end)
                if answers[i] is None:
                    answers[i] = await self._merged(state, queries[i], questions[i], total, end)
            for i, source in copies:
                answers[i] = answers[source]
        finally:
            state.in_flight -= 1
            if not state.in_flight:
                self._idle(state)
        return cast("list[Answer]", answers)

    async def _lead_batch(
        self,
        state: _LoopState,
        queries: Sequence[Query],
        questions: list[bytes],
        todo: list[int],
        answers: list[Answer | None],
        total: float,
        end: float,
    ) -> None:
        """The queries ``todo`` of a batch, none of them in flight elsewhere: their first
        datagrams together to the first server, then each on its own from there."""
        loop = state.loop
        server = self.nameservers[0]
        if self.tcp or len(todo) > self.max_in_flight:
            # TCP, or more than the server may have outstanding at all: one task per query.
            rest = await asyncio.gather(
                *(
                    self._aresolve(state, queries[i], questions[i], total, end, _NOTHING)
                    for i in todo
                )
            )
            for i, answer in zip(todo, rest, strict=True):
                answers[i] = answer
            return
        limiter = state.limiter(server, self.max_in_flight)
        udp = [_UdpQuery(state, questions[i], queries[i].rtype) for i in todo]
        firsts: list[object] = []
        try:
            wait = min(self.timeout, total)
            if not (limiter.take_now(len(todo)) or await limiter.take(loop, wait, len(todo))):
                # no slots freed up within the first timeout: that counts as the first
                # server timing out, as in _audp, and each query's retry loop goes on
                firsts = [None] * len(todo)
            else:
                handle: asyncio.TimerHandle | None = None
                try:
                    for one in udp:
                        try:
                            one.transmit(server, self.edns, self.dns0x20)
                        except OSError as exc:
                            one.fail(exc)  # this query's retry loop takes it on
                    handle = loop.call_later(wait, _expire_all, [q.future for q in udp])
                    for one in udp:
                        assert one.future is not None
                        firsts.append(await one.future)
                finally:
                    if handle is not None:
                        handle.cancel()
                    for one in udp:
                        one.settle()
                    limiter.give(len(todo))
            again = [n for n, first in enumerate(firsts) if not isinstance(first, Answer)]
            for n, first in enumerate(firsts):
                if isinstance(first, Answer):
                    answers[todo[n]] = first
            if again:
                rest = await asyncio.gather(
                    *(
                        self._aresolve(
                            state,
                            queries[todo[n]],
                            questions[todo[n]],
                            total,
                            end,
                            firsts[n],
                            udp[n],
                        )
                        for n in again
                    )
                )
                for n, answer in zip(again, rest, strict=True):
                    answers[todo[n]] = answer
        finally:
            for one in udp:
                one.close()

    async def _aresolve(
        self,
        state: _LoopState,
        query: Query,
        question: bytes,
        total: float,
        end: float,
        first: object,
        udp: _UdpQuery | None = None,
    ) -> Answer:
        """The retry loop of one query (:meth:`_attempts`) over asyncio. ``first``: the
        result of a first UDP exchange with the first server already made (by
        :meth:`aresolve_batch`, with ``udp`` its transmissions), or ``_NOTHING``."""
        loop = state.loop
        if udp is None:
            udp = _UdpQuery(state, question, query.rtype)
        steps = self._attempts(total, end, loop.time, first)
        try:
            transport, server, edns, caps, wait = next(steps)
            while True:
                result: object
                if udp.late is not None:  # an earlier transmission was answered meanwhile
                    result = udp.late
                elif transport == "tcp":
                    result = await self._atcp(loop, server, question, query, edns, wait)
                else:
                    result = await self._audp(state, udp, server, edns, caps, wait)
                transport, server, edns, caps, wait = steps.send(result)
        except StopIteration as stop:
            return cast("Answer", stop.value)
        finally:
            udp.close()

    def _attempts(
        self, total: float, end: float, clock: Callable[[], float], first: object = _NOTHING
    ) -> Generator[tuple[str, tuple[str, int, int], bool, bool, float], object, Answer]:
        """The retry loop of one query, without I/O, shared by both protocols: yields the
        next exchange to make -- ("udp" or "tcp", server, EDNS on, DNS 0x20 on, seconds to
        wait) -- is sent its result, and returns the Answer. Servers in order, round after
        round (RFC 1123 §6.1.3.3), until ``end`` on ``clock``; TCP after a truncated UDP
        reply (RFC 1123 §6.1.3.2)."""
        failures = _Failures()
        servers = list(self.nameservers)
        edns = self.edns
        no_caps: set[tuple[str, int, int]] = set()
        turn = 0
        while servers:
            server = servers[turn % len(servers)]
            transport = "tcp" if self.tcp else "udp"
            caps = self.dns0x20 and server not in no_caps
            if first is not _NOTHING:
                result, first, transport = first, _NOTHING, "udp"
            else:
                remaining = end - clock()
                if remaining <= 0:
                    return failures.answer(total, True)
                result = yield transport, server, edns, caps, min(self.timeout, remaining)
            if result is _wire.TRUNCATED and transport == "udp":
                remaining = end - clock()
                if remaining <= 0:
                    return failures.answer(total, True)
                result = yield "tcp", server, edns, False, min(self.timeout, remaining)
                if isinstance(result, str):
                    result += " over TCP (the UDP reply was truncated)"
            outcome = self._judge(result, server, failures, servers, edns)
            if isinstance(outcome, Answer):
                return outcome
            if outcome == "no-edns":
                edns = False  # the same server again, without EDNS
            elif outcome == "no-caps":
                no_caps.add(server)  # the same server again, in lower case
            elif server in servers:
                turn += 1  # (a server dropped after an error leaves its place to the next)
        return failures.answer(total, False)

    async def _audp(
        self,
        state: _LoopState,
        udp: _UdpQuery,
        server: tuple[str, int, int],
        edns: bool,
        caps: bool,
        wait: float,
    ) -> object:
        """One UDP transmission: the decoded reply (or an answer to an earlier transmission
        of the same query), None if none came within ``wait`` (or no slot freed up for
        sending in that time), an OSError, or :data:`_CASE_MISMATCH`."""
        loop = state.loop
        limiter = state.limiter(server, self.max_in_flight)
        if not limiter.take_now(1) and not await limiter.take(loop, wait):
            return None
        try:
            try:
                udp.transmit(server, edns, caps)
            except OSError as exc:
                return exc
            future = udp.future
            assert future is not None
            handle = loop.call_later(wait, _expire, future)
            try:
                return await future
            finally:
                handle.cancel()
                udp.settle()
        finally:
            limiter.give(1)

    async def _atcp(
        self,
        loop: asyncio.AbstractEventLoop,
        server: tuple[str, int, int],
        question: bytes,
        query: Query,
        edns: bool,
        wait: float,
    ) -> object:
        """One TCP exchange (RFC 7766 §8: two-octet length prefix): one message read, at
        most 65,535 octets, within ``wait`` in all (one absolute end however the server
        trickles its bytes)."""
        qid = secrets.randbits(16)
        wire = _wire.make_query(qid, question, edns=edns)
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(wait):
                reader, writer = await asyncio.open_connection(
                    server[0], server[1], limit=_TCP_MAX + 2
                )
                writer.write(len(wire).to_bytes(2, "big") + wire)
                await writer.drain()
                size = int.from_bytes(await reader.readexactly(2), "big")
                data = await reader.readexactly(size)
        except TimeoutError:
            return None
        except (OSError, asyncio.IncompleteReadError) as exc:
            return f"{_error_text(exc)} from {_where(server)}"
        finally:
            if writer is not None:
                writer.close()
        return _tcp_reply(data, qid, question, query, server)

    # -- shared ------------------------------------------------------------------------

    @staticmethod
    def _judge(
        result: object,
        server: tuple[str, int, int],
        failures: _Failures,
        servers: list[tuple[str, int, int]],
        edns: bool,
    ) -> Answer | str | None:
        """An Answer to return, ``"no-edns"`` to ask again without EDNS, ``"no-caps"`` to
        ask again without DNS 0x20, or None (go on)."""
        if isinstance(result, Answer):
            return result
        if result is None:  # no reply in time: this server again in the next round
            failures.timeout(server)
            return None
        if result is _CASE_MISMATCH:
            # The server does not echo the case of the name: ask it once more in lower case
            # at once, as Unbound falls back when use-caps-for-id meets such a server.
            return "no-caps"
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

    @_sync_status
    def resolve(self, query: Query, lifetime: float | None = None) -> Answer:
        """Resolve one query; never raises for a DNS outcome. Thread-safe: every
        transmission has its own socket."""
        try:
            question = _wire.question_of(query.name, query.rtype)
        except (_wire.WireError, KeyError) as exc:
            return Answer.tempfail(f"cannot ask for {query}: {exc}")
        total = self.lifetime if lifetime is None else min(lifetime, self.lifetime)
        steps = self._attempts(total, time.monotonic() + total, time.monotonic)
        earlier: list[_SyncSocket] = []
        try:
            transport, server, edns, caps, wait = next(steps)
            while True:
                if transport == "tcp":
                    result = _tcp(server, question, query, edns, wait)
                else:
                    result = _udp(earlier, server, question, query, edns, caps, wait)
                transport, server, edns, caps, wait = steps.send(result)
        except StopIteration as stop:
            return cast("Answer", stop.value)
        finally:
            for entry in earlier:
                entry.sock.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


def _expire_all(futures: list[asyncio.Future[Any] | None]) -> None:
    for future in futures:
        if future is not None and not future.done():
            future.set_result(None)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed before the reply"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _SyncSocket:
    """One synchronous UDP transmission: its own socket, ID and question as sent."""

    __slots__ = ("qid", "sent", "sock")

    def __init__(self, sock: socket.socket, qid: int, sent: bytes) -> None:
        self.sock = sock
        self.qid = qid
        self.sent = sent


def _udp(
    earlier: list[_SyncSocket],
    server: tuple[str, int, int],
    question: bytes,
    query: Query,
    edns: bool,
    caps: bool,
    wait: float,
) -> object:
    """One UDP transmission on a socket of its own (RFC 5452 §9.2: a fresh random port),
    listening on the query's ``earlier`` transmissions too: the decoded reply (or an answer
    to an earlier transmission), None on timeout, an OSError, or :data:`_CASE_MISMATCH`.
    A transmission that got no reply joins ``earlier`` (at most :data:`KEEP_EARLIER`)."""
    end = time.monotonic() + wait
    qid = secrets.randbits(16)
    sent = _mix_case(question) if caps else question
    try:
        sock = socket.socket(server[2], socket.SOCK_DGRAM | _NONBLOCK)
    except OSError as exc:
        return exc
    current = _SyncSocket(sock, qid, sent)
    keep = True
    try:
        if not _NONBLOCK:  # pragma: no cover - Linux has SOCK_NONBLOCK
            sock.setblocking(False)
        sock.connect((server[0], server[1]))
        sock.send(_wire.make_query(qid, sent, edns=edns))
        poller = select.poll()  # not select(): descriptors above FD_SETSIZE in busy processes
        by_fd = {sock.fileno(): current}
        for entry in earlier:
            by_fd[entry.sock.fileno()] = entry
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            for fd, _events in poller.poll(math.ceil(remaining * 1000)):
                entry = by_fd[fd]
                result = _read(entry, question, query)
                if result is _NOT_OURS:
                    continue
                if entry is current:
                    keep = False
                    return result
                # an earlier transmission: its answer is taken, anything else ends it
                if isinstance(result, Answer):
                    return result
                poller.unregister(fd)
                earlier.remove(entry)
                entry.sock.close()
    except OSError as exc:
        keep = False
        return exc
    finally:
        if keep:
            earlier.append(current)
            if len(earlier) > KEEP_EARLIER:
                earlier.pop(0).sock.close()
        else:
            sock.close()


def _read(entry: _SyncSocket, question: bytes, query: Query) -> object:
    """The first datagram on ``entry``'s socket that is a reply to it (at most
    :data:`READS_PER_CALLBACK` read), an OSError (ICMP), or :data:`_NOT_OURS`."""
    for _ in range(READS_PER_CALLBACK):
        try:
            data = entry.sock.recv(_UDP_MAX)
        except (BlockingIOError, InterruptedError):
            return _NOT_OURS
        except OSError as exc:
            return exc
        if len(data) < 12 or (data[0] << 8 | data[1]) != entry.qid:
            continue
        result = _check(data, question, entry.sent, query.rtype)
        if result is not _NOT_OURS:
            return result
    return _NOT_OURS


def _tcp(
    server: tuple[str, int, int], question: bytes, query: Query, edns: bool, wait: float
) -> object:
    """One TCP exchange (RFC 7766 §8: two-octet length prefix): one message read, at most
    65,535 octets (RFC 1035 §4.2.2), all within ``wait`` (one absolute end, however slowly
    the server trickles its bytes)."""
    end = time.monotonic() + wait
    qid = secrets.randbits(16)
    wire = _wire.make_query(qid, question, edns=edns)
    try:
        with socket.create_connection((server[0], server[1]), timeout=wait) as sock:
            _settimeout(sock, end)
            sock.sendall(len(wire).to_bytes(2, "big") + wire)  # (one total timeout, 3.5+)
            size = int.from_bytes(_recv_exactly(sock, 2, end), "big")
            data = _recv_exactly(sock, size, end)
    except TimeoutError:
        return None
    except OSError as exc:
        return f"{_error_text(exc)} from {_where(server)}"
    return _tcp_reply(data, qid, question, query, server)


def _tcp_reply(
    data: bytes, qid: int, question: bytes, query: Query, server: tuple[str, int, int]
) -> object:
    """The one message read over TCP: the decoded reply, or an error text. We send one query
    per connection, so a message with another ID is no reply to it (RFC 7766 §7): stop."""
    if len(data) < 12 or (data[0] << 8 | data[1]) != qid:
        return f"a message with another ID over TCP from {_where(server)}"
    try:
        return _wire.decode(data, question, query.rtype, dnssec=True)
    except _wire.WireError as exc:
        return f"unreadable reply ({exc}) from {_where(server)}"


def _settimeout(sock: socket.socket, end: float) -> None:
    remaining = end - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    sock.settimeout(remaining)


def _recv_exactly(sock: socket.socket, size: int, end: float) -> bytes:
    """``size`` octets, read before ``end`` (TimeoutError after it)."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        _settimeout(sock, end)
        count = sock.recv_into(view[got:])
        if not count:
            raise ConnectionResetError("connection closed before the reply")
        got += count
    return bytes(buffer)
