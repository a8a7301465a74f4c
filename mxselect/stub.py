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
* every UDP query -- sync, asyncio, :meth:`~StubResolver.resolve_batch`,
  :meth:`~StubResolver.aresolve_batch`, bursts -- goes out
  on a socket of its own, bound by the kernel to a fresh, randomly chosen ephemeral port
  (RFC 5452 §9.2: "MUST use multiple different source ports simultaneously"), with a random
  ID (RFC 5452 §9.2, ``secrets``); so no datagram that arrived before a query was sent can be
  matched to it, and an ICMP error fails only the query whose socket it reached;
* a reply counts only if it comes from the server asked (connected sockets), carries the
  query's ID, QR set, and repeats the question (with ``dns0x20=True``, in the exact mixed case
  sent); anything else -- a forged, damaged or stray datagram -- is ignored and the query
  keeps waiting, as with dnspython (RFC 5452 §9.1);
* identical questions outstanding at once on one event loop, or in one sync batch, are one
  exchange (RFC 5452 §5): the callers share its answer;
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

How it is built (as psycopg's ``generators.py`` and ``waiting.py``): one retry loop per query,
``StubResolver._attempts``, a generator without I/O that yields the next
``Exchange`` to make and is sent its typed ``Reply`` -- an :class:`~mxselect.Answer`,
an ``Rcode``, a ``Failure`` or a ``Signal`` (truncated, timeout, case
mismatch) -- until it returns the Answer. Every path drives the same loop: ``resolve`` with
blocking sockets, ``aresolve`` over asyncio, and ``aresolve_batch`` drives one loop per query
of the batch, their first exchanges sent together; ``resolve_batch`` does the same from the
calling thread, one ``select.poll()`` over the batch's sockets (what ``select_targets`` uses:
no thread per query) -- or, while other threads are in it too, hands the batch to
``aresolve_batch`` on one process-wide I/O loop thread (``mxselect._ioloop``). A message
read over UDP or TCP is judged by one function, ``classify``; the nameservers are ``Server`` values.

The asyncio side uses ``loop.add_reader`` (any selector event loop, uvloop included; not the
Windows proactor loop). Its sockets belong to the event loop that made them and live while
their query is in flight, so nothing stays open between lookups or after ``asyncio.run``.
:meth:`StubResolver.close` closes whatever is open now.

::

    resolver = StubResolver(["127.0.0.1"])           # your recursive resolver
    selection = await mxselect.aselect_targets("example.org", resolver=resolver)
"""

from __future__ import annotations

import _socket
import asyncio
import collections
import contextlib
import enum
import errno
import functools
import ipaddress
import math
import os
import secrets
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any, NamedTuple, TypeAlias, TypeVar, cast

import attrs

from . import _ioloop, _wire
from ._answers import Answer, Query, RRType, Security, Status, seconds

__all__ = ["StubResolver"]

#: Datagrams read from one socket per event-loop callback (a flood cannot starve the loop).
READS_PER_CALLBACK = 8
#: Earlier transmissions of one query kept open for a late reply while it is retransmitted.
KEEP_EARLIER = 3
#: Earlier transmissions kept open per event loop in all (a bound on descriptors).
KEEP_MAX = 256
#: Seconds past a handed-over batch's end before its caller stops waiting for the I/O loop
#: (the batch ends by itself first; only a bug on the loop side would reach this guard).
_HANDOFF_GRACE = 1.0
_UDP_MAX = 65535
_TCP_MAX = 65535
_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)
_UDP_TYPE = socket.SOCK_DGRAM | _NONBLOCK
_EPOLL = getattr(select, "epoll", None)
_EPOLLIN = getattr(select, "EPOLLIN", 1)


# -- the engine's types: servers, exchanges, replies ----------------------------------------


class Server(NamedTuple):
    """One nameserver as :class:`StubResolver` asks it: frozen, a key for its per-server
    state (the ``max_in_flight`` slots, the DNS 0x20 fallback)."""

    address: str
    port: int
    family: int  #: ``socket.AF_INET`` or ``socket.AF_INET6``

    @property
    def where(self) -> str:
        """``"127.0.0.1@53"``: the server as the reasons of temporary failures name it."""
        return f"{self.address}@{self.port}"

    @classmethod
    def parse(cls, server: str | tuple[str, int], port: int) -> Server:
        """One nameserver: ``"192.0.2.1"``, ``"::1"`` or an ``(address, port)`` tuple; a name
        is refused (a stub asks addresses it is given, never resolves its own servers)."""
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
        return cls(str(ip), port, family)


class Exchange(NamedTuple):
    """One exchange the retry loop asks for: the question to ``server`` once, over TCP or UDP,
    with or without EDNS0 and DNS 0x20, waiting at most ``wait`` seconds for the reply."""

    tcp: bool
    server: Server
    edns: bool
    caps: bool
    wait: float


class Rcode(NamedTuple):
    """A reply with an error RCODE (RFC 1035 §4.1.1; extended, RFC 6891 §6.1.3): SERVFAIL,
    REFUSED, FORMERR, NOTIMP... (NOERROR and NXDOMAIN are answers), with the extended DNS
    errors it carried (RFC 8914: why a validating resolver failed, e.g. 6 "DNSSEC Bogus")."""

    code: int
    ede: tuple[tuple[int, str], ...] = ()

    @property
    def text(self) -> str:
        """``SERVFAIL (EDE 6: DNSSEC Bogus "...")``, as the dnspython adapter says it."""
        text = _wire.RCODE_TEXT.get(self.code, f"RCODE {self.code}")
        for code, extra in self.ede:
            text += f" ({_wire.describe_ede(code, extra)})"
        return text


class Failure(NamedTuple):
    """No usable reply from the exchange, with the reason naming the server: an ICMP error on
    the UDP socket, a refused or broken TCP connection, an unreadable TCP message."""

    text: str


class Signal(enum.Enum):
    """The replies that carry nothing but what they mean for the retry loop."""

    #: TC set: ask the same server again over TCP (RFC 1123 §6.1.3.2).
    TRUNCATED = "TRUNCATED"
    #: No reply within the exchange's wait: the next server (RFC 1536 §1).
    TIMEOUT = "timeout"
    #: The question repeated, but not in the mixed case sent (DNS 0x20): ask again in lower case.
    CASE_MISMATCH = "case mismatch"


#: What one exchange gives the retry loop.
Reply: TypeAlias = Answer | Rcode | Failure | Signal


class Stray(NamedTuple):
    """A message carrying the transmission's ID that is no reply to it: for another question,
    not a reply, or unreadable. Over UDP it is ignored and the query keeps waiting
    (RFC 5452 §9.1: a forged or damaged datagram must not end the lookup); over TCP, where one
    message is read per connection, it is the exchange's failure."""

    why: str


def classify(data: bytes, question: bytes, sent: bytes, rtype: RRType) -> Reply | Stray:
    """What a message with the transmission's ID (checked by the caller) says, over UDP or
    TCP: an :class:`~mxselect.Answer` (NOERROR, NXDOMAIN), an ``Rcode``,
    :attr:`Signal.TRUNCATED`, :attr:`Signal.CASE_MISMATCH` (``sent``, the question as sent
    in mixed case, not repeated exactly), or :class:`Stray`.

    ``question`` is the question in lower case; ``sent`` is ``question`` itself unless DNS
    0x20 mixed its case.
    """
    try:
        result = _wire.decode(data, question, rtype, dnssec=True)
    except _wire.WireError as exc:
        return Stray(f"unreadable reply ({exc})")
    if sent is not question and data[4:6] != b"\x00\x00":  # an error without the question
        end = 12 + len(question)  # repeats no case (RFC 6891 §7); anything else must
        if data[12:end] != sent:
            return Signal.CASE_MISMATCH
        try:  # read the records as if the question had been sent in lower case
            result = _wire.decode(data[:12] + question + data[end:], question, rtype, dnssec=True)
        except _wire.WireError as exc:  # pragma: no cover - decoded above but for case
            return Stray(f"unreadable reply ({exc})")
    if isinstance(result, Answer):
        return result
    if isinstance(result, int):
        return Rcode(result, _wire.extended_errors(data))
    return Signal.TRUNCATED


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


class _Failures:
    """What each server did, for the reason of a temporary failure."""

    __slots__ = ("parts", "timeouts")

    def __init__(self) -> None:
        # tuples: a query that is answered at once (nearly all) makes no list
        self.parts: tuple[str, ...] = ()
        self.timeouts: tuple[str, ...] = ()

    def add(self, text: str) -> None:
        if text not in self.parts:
            self.parts += (text,)

    def timeout(self, server: Server) -> None:
        where = server.where
        if where not in self.timeouts:
            self.timeouts += (where,)

    def answer(self, lifetime: float, expired: bool) -> Answer:
        if expired or not self.parts:
            text = f"timeout after {seconds(lifetime)} s"
            if self.timeouts:
                text += f" (asked {', '.join(self.timeouts)})"
            if self.parts:
                text += "; " + "; ".join(self.parts)
            return Answer.tempfail(text)
        return Answer.tempfail("; ".join(self.parts))


class _Run:
    """One query's retry loop (``StubResolver._attempts``) and where it stands: the
    exchange it asks for next, or, once it has returned, its answer."""

    __slots__ = ("answer", "exchange", "steps")

    def __init__(self, steps: Generator[Exchange, Reply, Answer]) -> None:
        self.steps = steps
        self.answer: Answer | None = None
        self.exchange: Exchange | None = None
        try:
            self.exchange = next(steps)
        except StopIteration as stop:
            self.answer = stop.value

    def feed(self, reply: Reply) -> None:
        """The reply to :attr:`exchange`: the loop's next exchange, or its answer."""
        try:
            self.exchange = self.steps.send(reply)
        except StopIteration as stop:
            self.exchange = None
            self.answer = stop.value

    def result(self) -> Answer:
        assert self.answer is not None, "the retry loop has not returned"
        return self.answer


# -- transmissions, shared by the sync and asyncio paths ------------------------------------


def _open_udp(server: Server) -> _socket.socket:
    """A connected, non-blocking UDP socket of its own for one transmission to ``server``.

    RFC 5452 §9.2: ``connect()`` binds the socket to a fresh ephemeral port, which the kernel
    picks at random (Linux, the BSDs, macOS and Windows all randomise it), and makes the kernel
    drop datagrams from any other address or port.

    The socket is the C type (``_socket.socket``) that :class:`socket.socket` wraps: the same
    system calls, without the wrapper's Python ``__init__`` and ``close`` (about 3 µs of the
    CPU a query costs, a socket being made per query); it is never handed out.
    Non-blocking from the start on Linux (``SOCK_NONBLOCK``: no ``fcntl`` call)."""
    sock = _socket.socket(server.family, _UDP_TYPE)
    try:
        if not _NONBLOCK:  # pragma: no cover - Linux has SOCK_NONBLOCK
            sock.setblocking(False)
        sock.connect((server.address, server.port))
    except BaseException:
        sock.close()
        raise
    return sock


def _receive(
    sock: _socket.socket, qid: int, question: bytes, sent: bytes, rtype: RRType, server: Server
) -> Reply | None:
    """The first datagram waiting on ``sock`` that is a reply to the transmission (ID
    ``qid``, question as ``sent``), at most :data:`READS_PER_CALLBACK` read; a
    ``Failure`` for an ICMP error on the connected socket (port or host unreachable,
    RFC 1122 §4.1.3.3: it answers this transmission only, no other query shares the
    socket); None while there is none (anything else read is ignored, RFC 5452 §9.1)."""
    for _ in range(READS_PER_CALLBACK):
        try:
            data = sock.recv(_UDP_MAX)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            return _failure(exc, server)
        if len(data) < 12 or (data[0] << 8 | data[1]) != qid:
            continue
        reply = classify(data, question, sent, rtype)
        if not isinstance(reply, Stray):
            return reply
    return None


def _random_ids(count: int) -> tuple[int, ...]:
    """``count`` query IDs from the operating system's CSPRNG (RFC 5452 §9.2: unpredictable
    IDs; what :mod:`secrets` reads), in one ``os.urandom`` call for a whole batch."""
    return struct.unpack(f"!{count}H", os.urandom(2 * count))


def _tcp_message(qid: int, question: bytes, edns: bool) -> bytes:
    """The query with its two-octet length prefix (RFC 1035 §4.2.2, RFC 7766 §8)."""
    wire = _wire.make_query(qid, question, edns=edns)
    return len(wire).to_bytes(2, "big") + wire


def _tcp_reply(data: bytes, qid: int, question: bytes, rtype: RRType, server: Server) -> Reply:
    """The one message read over TCP. We send one query per connection, so a message with
    another ID, or one that is no reply to our question, ends the exchange (RFC 7766 §7)."""
    if len(data) < 12 or (data[0] << 8 | data[1]) != qid:
        return Failure(f"a message with another ID over TCP from {server.where}")
    reply = classify(data, question, question, rtype)
    if isinstance(reply, Stray):
        return Failure(f"{reply.why} from {server.where}")
    return reply


def _failure(exc: BaseException, server: Server) -> Failure:
    return Failure(f"{_error_text(exc)} from {server.where}")


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed before the reply"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- asyncio: sockets, transmissions, merged questions, slots -------------------------------


class _Socket:
    """One UDP transmission: a connected, non-blocking socket of its own, registered with
    one event loop, open while its query may still take a reply to it."""

    __slots__ = ("fd", "owner", "qid", "sent", "server", "sock", "state")

    def __init__(self, owner: _UdpQuery, server: Server, qid: int, sent: bytes) -> None:
        self.owner = owner
        self.state = owner.state
        self.server = server
        self.qid = qid
        self.sent = sent
        sock = _open_udp(server)
        self.fd = sock.fileno()
        try:
            self.state.watch(self)
        except BaseException:
            sock.close()
            raise
        self.sock: _socket.socket | None = sock

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:  # pragma: no cover - closed with the callback already queued
            return
        owner = self.owner
        reply = _receive(sock, self.qid, owner.question, self.sent, owner.rtype, self.server)
        if reply is not None:
            owner.deliver(self, reply)

    def close(self) -> None:
        sock = self.sock
        if sock is None:
            return
        self.sock = None
        self.state.unwatch(self)
        sock.close()


class _Wait:
    """Transmissions waited for together -- the first exchanges of a batch, or one exchange:
    one future, done when each transmission has its reply or when the timer set for the
    wait expires it. A batch costs one future and one wake-up of its task, not one each."""

    __slots__ = ("future", "left")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.future: asyncio.Future[None] = loop.create_future()
        self.left = count

    def one(self) -> None:
        """One transmission has its reply."""
        self.left -= 1
        if self.left <= 0 and not self.future.done():
            self.future.set_result(None)

    def expire(self) -> None:
        """The wait is over (its timer): the transmissions without a reply timed out."""
        if not self.future.done():
            self.future.set_result(None)


class _UdpQuery:
    """The UDP transmissions of one query on one event loop: each on a fresh socket; the
    earlier ones (at most :data:`KEEP_EARLIER`) stay open for a late reply."""

    __slots__ = (
        "current",
        "earlier",
        "late",
        "on_answer",
        "question",
        "reply",
        "rtype",
        "state",
        "wait",
    )

    def __init__(self, state: _LoopState, question: bytes, rtype: RRType) -> None:
        self.state = state
        self.question = question
        self.rtype = rtype
        #: the wait the current transmission is part of, until it has its reply
        self.wait: _Wait | None = None
        self.reply: Reply | None = None
        self.current: _Socket | None = None
        self.earlier: list[_Socket] = []
        #: an answer to an earlier transmission that came while no transmission was waiting
        self.late: Answer | None = None
        #: called with the query's answer the moment it arrives (identical questions of other
        #: batches waiting for it get it then, not when their leader's wait is over)
        self.on_answer: Callable[[Answer], None] | None = None

    def transmit(self, exchange: Exchange, qid: int, wait: _Wait) -> None:
        """Send the question as ``exchange`` says, with ID ``qid``, on a new socket; its reply
        counts towards ``wait`` (:meth:`settle` returns it)."""
        self.wait = wait
        self.reply = None
        sent = _mix_case(self.question) if exchange.caps else self.question
        sock = _Socket(self, exchange.server, qid, sent)
        self.current = sock
        assert sock.sock is not None
        try:
            sock.sock.send(_wire.make_query(qid, sent, edns=exchange.edns))
        except BaseException:
            self.current = None
            self.wait = None
            sock.close()
            raise

    def fail(self, failure: Failure, wait: _Wait) -> None:
        """A transmission that could not be made: its reply is the failure."""
        self.wait = wait
        self._got(failure)

    def _got(self, reply: Reply) -> bool:
        """``reply`` is the current transmission's, if it is still waited for."""
        wait = self.wait
        if wait is None:
            return False
        self.wait = None
        self.reply = reply
        if self.on_answer is not None and isinstance(reply, Answer):
            self.on_answer(reply)
        wait.one()
        return True

    def deliver(self, sock: _Socket, reply: Reply) -> None:
        if sock is self.current:
            self.current = None
            sock.close()
            self._got(reply)
            return
        # A reply to an earlier transmission of this question: taken if it is an answer
        # (RFC 1536 §1: the server may be slow, not lost); its errors are no longer news.
        with contextlib.suppress(ValueError):
            self.earlier.remove(sock)
            self.state.kept -= 1
        sock.close()
        if isinstance(reply, Answer) and not self._got(reply):
            self.late = reply

    def settle(self) -> Reply:
        """The wait is over: the current transmission's reply, or a timeout -- and then its
        socket stays open (within the bounds) for a late reply."""
        self.wait = None
        reply, self.reply = self.reply, None
        sock, self.current = self.current, None
        if sock is not None:
            state = self.state
            if sock.sock is None or state.kept >= KEEP_MAX:
                sock.close()
            else:
                self.earlier.append(sock)
                state.kept += 1
                if len(self.earlier) > KEEP_EARLIER:
                    self.earlier.pop(0).close()
                    state.kept -= 1
        return Signal.TIMEOUT if reply is None else reply

    def close(self) -> None:
        self.wait = None
        if self.current is None and not self.earlier:
            return
        if self.current is not None:
            self.current.close()
            self.current = None
        for sock in self.earlier:
            sock.close()
        self.state.kept -= len(self.earlier)
        self.earlier.clear()


class _Flight:
    """One query in flight that identical questions wait for (RFC 5452 §5). A waiter's
    result: the leader's answer, None if the leader gave up (cancelled: ask yourself), or
    :attr:`Signal.TIMEOUT` (the waiter's own end came first)."""

    __slots__ = ("end", "waiters")

    def __init__(self, end: float) -> None:
        self.end = end
        self.waiters: list[asyncio.Future[Answer | Signal | None]] = []

    def finish(self, answer: Answer | None) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(answer)
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

    __slots__ = ("epoll", "flights", "in_flight", "kept", "limiters", "loop", "open")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        #: descriptor -> socket, for every socket open on this loop
        self.open: dict[int, _Socket] = {}
        self.epoll: Any = None
        self.limiters: dict[Server, _Limiter] = {}
        #: question (lower case) -> the query in flight for it
        self.flights: dict[bytes, _Flight] = {}
        self.in_flight = 0
        self.kept = 0

    def limiter(self, server: Server, size: int) -> _Limiter:
        limiter = self.limiters.get(server)
        if limiter is None:
            limiter = self.limiters[server] = _Limiter(size)
        return limiter

    def watch(self, sock: _Socket) -> None:
        """Call ``sock._readable`` when its socket is readable."""
        fd = sock.fd
        if _EPOLL is None:  # pragma: no cover - Linux has epoll
            self.loop.add_reader(fd, sock._readable)
        else:
            epoll = self.epoll
            if epoll is None:
                epoll = _EPOLL()
                try:
                    self.loop.add_reader(epoll.fileno(), self._ready)
                except BaseException:
                    epoll.close()
                    raise
                self.epoll = epoll
            epoll.register(fd, _EPOLLIN)
        self.open[fd] = sock

    def unwatch(self, sock: _Socket) -> None:
        """Stop watching ``sock`` (about to be closed, which takes it out of the epoll set)."""
        fd = sock.fd
        if self.open.get(fd) is sock:
            del self.open[fd]
        if _EPOLL is None and not self.loop.is_closed():  # pragma: no cover - Linux has epoll
            self.loop.remove_reader(fd)

    def _ready(self) -> None:
        epoll = self.epoll
        if epoll is None:  # pragma: no cover - closed with the callback already queued
            return
        get = self.open.get
        for fd, _events in epoll.poll(0):
            sock = get(fd)
            if sock is not None:
                sock._readable()

    def close(self) -> None:
        for sock in list(self.open.values()):
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


class StubResolver:
    """A stub resolver (sync :class:`~mxselect.typing.Resolver` and asyncio
    :class:`~mxselect.typing.AsyncResolver`) asking the recursive resolvers you name.

    Args:
        nameservers: IP addresses (``"127.0.0.1"``, ``"::1"``) or ``(address, port)`` tuples,
            asked in this order (kept as ``Server`` values in ``nameservers``). No
            default: the constructor never reads ``/etc/resolv.conf``
            (:meth:`from_system` does).
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
        self.nameservers = tuple(Server.parse(s, port) for s in nameservers)
        if not self.nameservers:
            raise ValueError("at least one nameserver is needed")
        #: Whether the AD bit of the replies counts (RFC 7672 §2.1.1 via RFC 4035 §4.9.3:
        #: only from a trusted validating resolver over a secure channel): by default when
        #: every nameserver is on loopback; otherwise every answer's status is UNKNOWN.
        self.trust_ad = (
            all(ipaddress.ip_address(s.address).is_loopback for s in self.nameservers)
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
        #: the exchange the retry loops asked for last: equal values are not made again
        self._last_exchange: Exchange | None = None

    @classmethod
    def from_system(
        cls, filename: str | os.PathLike[str] = "/etc/resolv.conf", **kwargs: Any
    ) -> StubResolver:
        """A stub resolver asking the name servers of the system's ``resolv.conf``.

        The file is read by dnspython's parser (``dns.resolver.Resolver.read_resolv_conf``,
        the one the dnspython adapter's default configuration uses); what it gives is used
        as follows:

        * ``nameserver`` lines: the servers, IPv4 or IPv6 (a scoped ``fe80::1%eth0`` too), in
          the order of the file, on port 53 (resolv.conf names no port; ``port=`` asks them
          all on another). A DNS-over-HTTPS URL, which dnspython accepts there, is refused:
          the stub speaks DNS over UDP and TCP only.
        * ``options timeout:N``: the seconds to wait for one server (``timeout``; a value
          below 1 leaves the default, 2).
        * ``search`` and ``domain``: never used. mxselect asks absolute names only
          (RFC 5321 §5.1: the domain is looked up as given, never with a suffix).
        * ``options rotate``: not used -- the stub asks the servers in order (RFC 1123
          §6.1.3.3), the first one first; ``options edns0``: not needed, the stub always
          sends EDNS0 and drops it for a server that refuses it (RFC 6891 §7);
          ``options ndots:N``: meaningless without a search list. dnspython does not read
          ``options attempts:N``; the stub retries within ``lifetime`` instead.

        Whether the AD bit counts follows the servers as in the constructor: by default only
        when every one is a loopback address.

        Args:
            filename: the file (default ``/etc/resolv.conf``).
            kwargs: the constructor's keywords (``lifetime``, ``tcp``, ``trust_ad``...);
                ``timeout`` and ``port`` override the file's.

        Raises:
            dns.resolver.NoResolverConfiguration: the file cannot be read, names no
                nameserver, or names one the stub cannot ask (a host name, a DoH URL); the
                message says which.
            ValueError: a keyword the constructor refuses.
        """
        import dns.inet
        import dns.nameserver
        import dns.resolver

        def refused(text: str) -> Exception:
            return dns.resolver.NoResolverConfiguration(text)  # type: ignore[no-untyped-call]

        where = os.fspath(filename)
        config = dns.resolver.Resolver(configure=False)
        try:
            config.read_resolv_conf(where)
        except dns.resolver.NoResolverConfiguration as exc:
            error = exc.__context__  # dnspython raises it while handling the OSError
            reason = (
                f"cannot be read ({error.strerror or error})"
                if isinstance(error, OSError)
                else "names no nameserver"
            )
            raise refused(f"{where} {reason}") from exc
        except ValueError as exc:  # a nameserver that is neither an address nor a DoH URL
            raise refused(f"{where}: {exc}") from exc
        port = kwargs.pop("port", None)
        servers: list[tuple[str, int]] = []
        for entry in config.nameservers:
            # the text of the line, or a Nameserver object (as some dnspython versions keep)
            if isinstance(entry, dns.nameserver.Do53Nameserver):
                address, default = entry.address, entry.port
            elif isinstance(entry, str) and dns.inet.is_address(entry):
                address, default = entry, config.nameserver_ports.get(entry, config.port)
            else:
                raise refused(
                    f"{where}: nameserver {entry} is not a plain DNS server (the stub resolver "
                    "asks over UDP and TCP only, not DNS over HTTPS or TLS)"
                )
            servers.append((address, default if port is None else port))
        if "timeout" not in kwargs and config.timeout >= 1:
            kwargs["timeout"] = float(config.timeout)
        return cls(servers, **kwargs)

    def __repr__(self) -> str:
        servers = ", ".join(s.where for s in self.nameservers)
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

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> StubResolver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def _state(self, loop: asyncio.AbstractEventLoop) -> _LoopState:
        state = self._states.get(loop)
        if state is None:
            with self._lock:
                state = self._states.setdefault(loop, _LoopState(loop))
        return state

    def _idle(self, state: _LoopState) -> None:
        """No query in flight on this loop: close its sockets and forget it, so nothing is
        left open when the loop ends (``asyncio.run`` per call is fine).

        Off the critical path: a selection's next batch usually starts in the same step of
        its task (MX, then the addresses, then TLSA), so the close is left to a callback
        that finds the loop busy again and keeps the epoll set; closed at once when no
        task is running it (a sync hop) or the task is being cancelled (nothing may be
        left open when the loop ends)."""
        loop = state.loop
        task = asyncio.current_task(loop)
        if task is None or task.cancelling() or loop.is_closed():
            self._close_idle(state)
        else:
            loop.call_soon(self._close_idle, state)

    def _close_idle(self, state: _LoopState) -> None:
        if state.in_flight:
            return
        with self._lock:
            if self._states.get(state.loop) is state:
                del self._states[state.loop]
        state.close()

    # -- the retry loop, shared by every path -------------------------------------------

    def _attempts(
        self, total: float, end: float, clock: Callable[[], float], first: Reply | None = None
    ) -> Generator[Exchange, Reply, Answer]:
        """The retry loop of one query, without I/O: yields the next ``Exchange`` to
        make, is sent its ``Reply``, returns the Answer (``total``: the lifetime, for the
        reason of a timeout; ``end``: when it is over, on ``clock``). ``first``: the reply
        to the loop's first exchange (:meth:`_first_exchange`), already made by a batch; the
        loop goes on from there.

        * The servers in order, round after round (RFC 1123 §6.1.3.3), each exchange waiting
          ``timeout`` or what is left before ``end``; at ``end``, a timeout naming the servers
          that gave none (RFC 1536 §1: retransmit, but within a bound).
        * :attr:`Signal.TIMEOUT`: this server again in the next round.
        * :attr:`Signal.TRUNCATED` over UDP: the same question to the same server over TCP
          (RFC 1123 §6.1.3.2, RFC 7766 §5).
        * FORMERR or NOTIMP to a query with EDNS0: the same server again without it, and no
          EDNS0 for this query from then on (RFC 6891 §7).
        * :attr:`Signal.CASE_MISMATCH`: the same server again at once in lower case (DNS
          0x20: Unbound's fallback when use-caps-for-id meets such a server).
        * Any other ``Rcode``, a ``Failure``, TC over TCP: this server is not asked
          this question again (its place in the round goes to the next).
        * An :class:`~mxselect.Answer`: the result.
        """
        failures = _Failures()
        servers = list(self.nameservers)
        edns = self.edns
        no_caps: tuple[Server, ...] = ()
        turn = 0
        while servers:
            server = servers[turn % len(servers)]
            if first is not None:  # (made by a batch: the first server, as below)
                reply, first = first, None
            else:
                remaining = end - clock()
                if remaining <= 0:
                    return failures.answer(total, True)
                caps = self.dns0x20 and server not in no_caps
                ask = (self.tcp, server, edns, caps, min(self.timeout, remaining))
                exchange = self._last_exchange
                if exchange != ask:  # (most queries' first exchange is the one made before)
                    exchange = self._last_exchange = Exchange(*ask)
                reply = yield exchange
            if isinstance(reply, Answer):  # (nearly always, at the first exchange)
                return reply
            if reply is Signal.TRUNCATED and not self.tcp:
                remaining = end - clock()
                if remaining <= 0:
                    return failures.answer(total, True)
                reply = yield Exchange(True, server, edns, False, min(self.timeout, remaining))
                if isinstance(reply, Failure):
                    reply = Failure(f"{reply.text} over TCP (the UDP reply was truncated)")
            if isinstance(reply, Answer):
                return reply
            if reply is Signal.TIMEOUT:
                failures.timeout(server)
                turn += 1
                continue
            if reply is Signal.CASE_MISMATCH:
                no_caps += (server,)
                continue
            if isinstance(reply, Rcode):
                if edns and reply.code in (_wire.FORMERR, _wire.NOTIMP):
                    failures.add(f"{reply.text} from {server.where} (to EDNS)")
                    edns = False
                    continue
                failures.add(f"{reply.text} from {server.where}")
            elif isinstance(reply, Failure):
                failures.add(reply.text)
            else:  # TC over TCP
                failures.add(reply.value)
            servers.remove(server)
        return failures.answer(total, False)

    def _first_exchange(self, remaining: float) -> Exchange | None:
        """The first exchange of every retry loop started now, ``remaining`` seconds before
        its end, if it is a UDP one (what :meth:`_attempts` yields first: the first server,
        EDNS0 and DNS 0x20 as configured); None if the loop starts otherwise (TCP only, or
        no time left)."""
        if self.tcp or remaining <= 0:
            return None
        ask = (False, self.nameservers[0], self.edns, self.dns0x20, min(self.timeout, remaining))
        exchange = self._last_exchange
        if exchange != ask:
            exchange = self._last_exchange = Exchange(*ask)
        return exchange

    # -- asyncio -----------------------------------------------------------------------

    async def aresolve(self, query: Query, lifetime: float | None = None) -> Answer:
        """Resolve one query; never raises for a DNS outcome. ``lifetime`` (seconds) lowers
        the resolver's own lifetime for this query."""
        loop = asyncio.get_running_loop()
        total = self.lifetime if lifetime is None else min(lifetime, self.lifetime)
        answer = await self._one(loop, query, total, loop.time() + total)
        # trust_ad applied here, not by a wrapping coroutine (one frame less per query)
        return answer if self.trust_ad else _unknown(answer)

    async def _one(
        self, loop: asyncio.AbstractEventLoop, query: Query, total: float, end: float
    ) -> Answer:
        """One query on ``loop`` (running), as :meth:`aresolve` and a batch of one ask it: the
        lifetime ``total`` (for the reasons of timeouts) ending at ``end`` on the loop's
        clock; ``trust_ad`` not applied."""
        try:
            question = _wire.question_of(query.name, query.rtype)
        except (_wire.WireError, KeyError) as exc:
            return Answer.tempfail(f"cannot ask for {query}: {exc}")
        state = self._state(loop)
        state.in_flight += 1
        try:
            return await self._merged(state, query, question, total, end)
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
            waiter: asyncio.Future[Answer | Signal | None] = loop.create_future()
            flight.waiters.append(waiter)
            answer = await self._joined(state, waiter, flight, total, end)
            if answer is not None:
                return answer
        flight = state.flights[question] = _Flight(end)
        answer = None
        try:
            udp = _UdpQuery(state, question, query.rtype)
            try:
                # The retry loop's first exchange made here, as a batch makes it
                # (:meth:`_first_exchange`): nearly every query ends with it, without a
                # retry loop (a generator) and the coroutine that drives it.
                first = self._first_exchange(end - loop.time())
                reply = None if first is None else await self._audp(state, udp, first)
                if isinstance(reply, Answer):
                    answer = reply
                else:
                    run = _Run(self._attempts(total, end, loop.time, reply))
                    answer = await self._aresolve(state, run, udp)
            finally:
                udp.close()
            return answer
        finally:
            if state.flights.get(question) is flight:
                del state.flights[question]
            flight.finish(answer)

    @staticmethod
    async def _joined(
        state: _LoopState,
        waiter: asyncio.Future[Answer | Signal | None],
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
        if outcome is Signal.TIMEOUT:
            return _Failures().answer(total, True)
        if not isinstance(outcome, Answer):
            return None
        if outcome.status is Status.TEMPFAIL and flight.end < end and loop.time() < end:
            return None
        return outcome

    async def aresolve_batch(
        self, queries: Sequence[Query], lifetime: float | None = None
    ) -> list[Answer]:
        """Resolve a batch of queries at once; the answers in the order of ``queries``.

        The drivers call this instead of one ``aresolve`` task per query. It drives the
        retry loop of every query of the batch: their first exchanges go to the first server
        together (each on its own socket) and the replies are collected in the caller's
        task, which saves a task per query. A query whose first exchange gives no answer
        (timeout, truncation, an error rcode) continues exactly as :meth:`aresolve` would
        from there; a query identical to one already in flight waits for it (RFC 5452 §5).
        """
        loop = asyncio.get_running_loop()
        total = self.lifetime if lifetime is None else min(lifetime, self.lifetime)
        answers = await self._abatch(loop, queries, total, loop.time() + total)
        # trust_ad applied here, not by a wrapping coroutine (one frame less per batch)
        return answers if self.trust_ad else [_unknown(a) for a in answers]

    async def _abatch(
        self,
        loop: asyncio.AbstractEventLoop,
        queries: Sequence[Query],
        total: float,
        end: float,
    ) -> list[Answer]:
        """:meth:`aresolve_batch` on ``loop`` (running), the lifetime ``total`` (for the
        reasons of timeouts) ending at ``end`` on the loop's clock; ``trust_ad`` not applied.

        A batch of one query (nearly every batch of the bulk benchmark's selections) is
        that query as :meth:`aresolve` asks it, without the batch's bookkeeping: the same
        exchanges, the same answer."""
        if len(queries) == 1:
            return [await self._one(loop, queries[0], total, end)]
        answers: list[Answer | None] = [None] * len(queries)
        questions: list[bytes] = []
        names: dict[str, bytes] = {}
        for i, query in enumerate(queries):
            try:
                questions.append(_wire.question_of(query.name, query.rtype, names))
            except (_wire.WireError, KeyError) as exc:
                answers[i] = Answer.tempfail(f"cannot ask for {query}: {exc}")
                questions.append(b"")
        state = self._state(loop)
        state.in_flight += 1
        try:
            leaders: list[int] = []
            led: dict[int, _Flight] = {}  # the flights this batch leads, until settled
            mine: dict[bytes, int] = {}
            copies: list[tuple[int, int]] = []
            joins: list[tuple[int, _Flight, asyncio.Future[Answer | Signal | None]]] = []
            for i, answer in enumerate(answers):
                if answer is not None:
                    continue
                question = questions[i]
                if question in mine:  # the same question twice in this batch: ask once
                    copies.append((i, mine[question]))
                    continue
                flight = state.flights.get(question)
                if flight is None:
                    state.flights[question] = led[i] = _Flight(end)
                    mine[question] = i
                    leaders.append(i)
                else:
                    waiter: asyncio.Future[Answer | Signal | None] = loop.create_future()
                    flight.waiters.append(waiter)
                    joins.append((i, flight, waiter))

            def settle(i: int) -> None:
                """Leader ``i`` has its answer: the identical questions waiting for it (other
                batches') get it now, not when the rest of this batch is done."""
                flight = led.pop(i, None)
                if flight is None:
                    return
                if state.flights.get(questions[i]) is flight:
                    del state.flights[questions[i]]
                if flight.waiters:
                    flight.finish(answers[i])  # (None: given up, the waiters ask themselves)

            try:
                if leaders:
                    await self._lead_batch(
                        state, queries, questions, leaders, answers, total, end, settle
                    )
            finally:
                for i in leaders:
                    settle(i)
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
        settle: Callable[[int], None],
    ) -> None:
        """The queries ``todo`` of a batch, none of them in flight elsewhere: their first
        UDP exchanges together (:meth:`_first_exchanges`), then a retry loop for each query
        that got no answer from it, on its own from there (:meth:`_aresolve`). Each query's
        answer is given to ``settle`` (its index) as soon as it is there.

        The first exchange of every query's retry loop is the same (:meth:`_first_exchange`),
        and nearly every query ends with it: a loop is started only for the others, with the
        reply they got (a timeout, truncation, an error RCODE...)."""
        loop = state.loop
        udp = [_UdpQuery(state, questions[i], queries[i].rtype) for i in todo]

        def answered(i: int) -> Callable[[Answer], None]:
            def take(answer: Answer) -> None:
                answers[i] = answer
                settle(i)

            return take

        for i, one in zip(todo, udp, strict=True):
            one.on_answer = answered(i)
        try:
            # (more than the server may have outstanding at all: each query on its own)
            first = (
                self._first_exchange(end - loop.time()) if len(todo) <= self.max_in_flight else None
            )
            runs: list[_Run | None]
            if first is None:
                runs = [_Run(self._attempts(total, end, loop.time)) for _ in todo]
            else:
                runs = []
                for n, reply in enumerate(await self._first_exchanges(state, first, udp)):
                    if isinstance(reply, Answer):
                        answers[todo[n]] = reply
                        settle(todo[n])
                        runs.append(None)
                    else:
                        runs.append(_Run(self._attempts(total, end, loop.time, reply)))
            rest: list[tuple[int, _Run]] = []
            for n, run in enumerate(runs):
                if run is None:
                    continue
                if run.exchange is None:  # (its loop returned at once)
                    answers[todo[n]] = run.answer
                    settle(todo[n])
                else:
                    rest.append((n, run))
            if rest:

                async def resolve(n: int, run: _Run) -> None:
                    answers[todo[n]] = await self._aresolve(state, run, udp[n])
                    settle(todo[n])

                await asyncio.gather(*(resolve(n, run) for n, run in rest))
        finally:
            for one in udp:
                one.close()

    async def _first_exchanges(
        self, state: _LoopState, first: Exchange, udp: list[_UdpQuery]
    ) -> list[Reply]:
        """Make ``first`` -- a UDP exchange -- for each of ``udp`` at once: one wait and one
        timer for all; their replies."""
        loop = state.loop
        count = len(udp)
        limiter = state.limiter(first.server, self.max_in_flight)
        if not (limiter.take_now(count) or await limiter.take(loop, first.wait, count)):
            # no slots freed up within the first timeout: that counts as the first server
            # timing out, as in _audp, and each query's retry loop goes on
            return [Signal.TIMEOUT] * count
        wait = _Wait(loop, count)
        handle: asyncio.TimerHandle | None = None
        try:
            for one, qid in zip(udp, _random_ids(count), strict=True):
                try:
                    one.transmit(first, qid, wait)
                except OSError as exc:
                    one.fail(_failure(exc, first.server), wait)  # its loop takes it on
            handle = loop.call_later(first.wait, wait.expire)
            await wait.future
        finally:
            if handle is not None:
                handle.cancel()
            replies = [one.settle() for one in udp]
            limiter.give(count)
        return replies

    async def _aresolve(self, state: _LoopState, run: _Run, udp: _UdpQuery) -> Answer:
        """The per-query path: drive one retry loop over asyncio from where it stands (its
        start, or where a batch's first exchange left it), ``udp`` its transmissions."""
        loop = state.loop
        try:
            while (exchange := run.exchange) is not None:
                reply: Reply
                if udp.late is not None:  # an earlier transmission was answered meanwhile
                    reply = udp.late
                elif exchange.tcp:
                    reply = await _atcp(loop, exchange, udp.question, udp.rtype)
                else:
                    reply = await self._audp(state, udp, exchange)
                run.feed(reply)
            return run.result()
        finally:
            udp.close()

    async def _audp(self, state: _LoopState, udp: _UdpQuery, exchange: Exchange) -> Reply:
        """One UDP transmission: the reply (or an answer to an earlier transmission of the
        same query); a timeout if none came within the wait, or no slot freed up for sending
        in that time."""
        loop = state.loop
        limiter = state.limiter(exchange.server, self.max_in_flight)
        if not limiter.take_now(1) and not await limiter.take(loop, exchange.wait):
            return Signal.TIMEOUT
        try:
            wait = _Wait(loop, 1)
            try:
                udp.transmit(exchange, secrets.randbits(16), wait)
            except OSError as exc:
                return _failure(exc, exchange.server)
            handle = loop.call_later(exchange.wait, wait.expire)
            try:
                await wait.future
            finally:
                handle.cancel()
                reply = udp.settle()
            return reply
        finally:
            limiter.give(1)

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
        run = _Run(self._attempts(total, time.monotonic() + total, time.monotonic))
        earlier: list[_SyncSocket] = []
        try:
            while (exchange := run.exchange) is not None:
                if exchange.tcp:
                    run.feed(_tcp(exchange, question, query.rtype))
                else:
                    run.feed(_udp(earlier, exchange, question, query.rtype))
            return run.result()
        finally:
            for entry in earlier:
                entry.sock.close()

    def resolve_batch(
        self, queries: Sequence[Query], lifetime: float | None = None
    ) -> list[Answer]:
        """Resolve a batch of queries at once from the calling thread, without a thread per
        query; the answers in the order of ``queries``, each what :meth:`resolve` would
        answer. Never raises for a DNS outcome; thread-safe (a call's state is its own).

        What :func:`mxselect.select_targets` uses (the
        :class:`~mxselect.typing.BatchResolver` capability), with and without a deadline
        (``lifetime``: the time left; it lowers the resolver's own). Every query's first UDP
        transmission goes out at once, each on a socket of its own -- a fresh port the
        kernel picks at random, a random ID (RFC 5452 §9.2) -- and one ``poll()`` waits on
        all of them (not ``select()``: descriptors above FD_SETSIZE in a busy process). Each
        query then goes on with its own retry loop, as :meth:`resolve` does: the next server
        after a timeout or an error, a late reply to an earlier transmission taken, TCP after
        a truncated reply (or for every query with ``tcp=True``: non-blocking connections in
        the same ``poll()``, side by side). At most ``max_in_flight`` of the batch's queries are
        outstanding at once; every exchange ends by the batch's one end, ``lifetime`` from
        now. A question twice in one batch is asked once (RFC 5452 §5). Every socket is
        closed when the call returns, however it returns (an exception, KeyboardInterrupt).

        While other threads are inside ``resolve_batch`` too (of any StubResolver), the batch
        is handed to one process-wide I/O thread (``mxselect-io``: a daemon running an
        asyncio event loop, started on first use) and the caller waits for its answers: the
        same answers as :meth:`aresolve_batch` gives on that loop, with the same end (the
        loop's clock is ``time.monotonic``), a fresh socket per query, identical questions
        of all those threads one exchange (RFC 5452 §5). Many threads each waiting on
        ``poll()`` would pass the GIL to one another at every system call; one loop serves
        every thread's sockets from one ``epoll``. Alone, a caller keeps to its own thread
        (one ``poll()``, no hand-off). A caller interrupted while it waits (an exception,
        KeyboardInterrupt) has its batch cancelled on the loop, its sockets closed, before
        the exception goes on; a child after ``fork()`` starts a loop of its own.
        """
        total = self.lifetime if lifetime is None else min(lifetime, self.lifetime)
        end = time.monotonic() + total
        token = _ioloop.enter()
        try:
            if _ioloop.crowded():
                io = _ioloop.io_loop()
                if io.ident != threading.get_ident():  # (never on the I/O thread itself)
                    # the I/O loop's clock is time.monotonic: the same end. The batch ends
                    # by itself by then; the guard turns a loop-side bug into a temporary
                    # failure, never a caller blocked for good.
                    try:
                        out = io.run(
                            self._abatch(io.loop, queries, total, end),
                            timeout=end - time.monotonic() + _HANDOFF_GRACE,
                        )
                    except TimeoutError:
                        out = [Answer.tempfail(f"timeout after {seconds(total)} s")] * len(queries)
                    return out if self.trust_ad else [_unknown(a) for a in out]
            return self._resolve_batch_here(queries, total, end)
        finally:
            _ioloop.leave(token)

    def _resolve_batch_here(
        self, queries: Sequence[Query], total: float, end: float
    ) -> list[Answer]:
        """:meth:`resolve_batch` from the calling thread: one ``poll()`` (``_SyncBatch``)."""
        answers: list[Answer | None] = [None] * len(queries)
        jobs: list[_SyncQuery] = []
        slots: list[int] = []  # the job answering each query (-1: none, it cannot be sent)
        mine: dict[bytes, int] = {}
        names: dict[str, bytes] = {}
        for i, query in enumerate(queries):
            try:
                question = _wire.question_of(query.name, query.rtype, names)
            except (_wire.WireError, KeyError) as exc:
                answers[i] = Answer.tempfail(f"cannot ask for {query}: {exc}")
                slots.append(-1)
                continue
            n = mine.get(question)
            if n is None:  # (the same question twice in this batch: asked once, RFC 5452 §5)
                n = mine[question] = len(jobs)
                jobs.append(_SyncQuery(question, query.rtype))
            slots.append(n)
        if jobs:
            _SyncBatch(self, jobs, total, end).run()
        for i, n in enumerate(slots):
            if n >= 0:
                answers[i] = jobs[n].answer
        out = cast("list[Answer]", answers)
        return out if self.trust_ad else [_unknown(a) for a in out]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(Signal.TIMEOUT)


async def _atcp(
    loop: asyncio.AbstractEventLoop, exchange: Exchange, question: bytes, rtype: RRType
) -> Reply:
    """One TCP exchange (RFC 7766 §8: two-octet length prefix): one message read, at most
    65,535 octets, within the wait in all (one absolute end however the server trickles its
    bytes)."""
    server = exchange.server
    qid = secrets.randbits(16)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(exchange.wait):
            reader, writer = await asyncio.open_connection(
                server.address, server.port, limit=_TCP_MAX + 2
            )
            writer.write(_tcp_message(qid, question, exchange.edns))
            await writer.drain()
            size = int.from_bytes(await reader.readexactly(2), "big")
            data = await reader.readexactly(size)
    except TimeoutError:
        return Signal.TIMEOUT
    except (OSError, asyncio.IncompleteReadError) as exc:
        return _failure(exc, server)
    finally:
        if writer is not None:
            writer.close()
    return _tcp_reply(data, qid, question, rtype, server)


# -- synchronous transmissions ---------------------------------------------------------------


class _SyncSocket:
    """One synchronous UDP transmission: its own socket, ID and question as sent."""

    __slots__ = ("qid", "sent", "sock")

    def __init__(self, sock: _socket.socket, qid: int, sent: bytes) -> None:
        self.sock = sock
        self.qid = qid
        self.sent = sent


def _udp(earlier: list[_SyncSocket], exchange: Exchange, question: bytes, rtype: RRType) -> Reply:
    """One UDP transmission on a socket of its own (RFC 5452 §9.2: a fresh random port),
    listening on the query's ``earlier`` transmissions too: the reply (or an answer to an
    earlier transmission), or a timeout. A transmission that got no reply joins ``earlier``
    (at most :data:`KEEP_EARLIER`)."""
    server = exchange.server
    end = time.monotonic() + exchange.wait
    qid = secrets.randbits(16)
    sent = _mix_case(question) if exchange.caps else question
    try:
        sock = _open_udp(server)
    except OSError as exc:
        return _failure(exc, server)
    current = _SyncSocket(sock, qid, sent)
    keep = True
    try:
        sock.send(_wire.make_query(qid, sent, edns=exchange.edns))
        poller = select.poll()  # not select(): descriptors above FD_SETSIZE in busy processes
        by_fd = {sock.fileno(): current}
        for entry in earlier:
            by_fd[entry.sock.fileno()] = entry
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return Signal.TIMEOUT
            for fd, _events in poller.poll(math.ceil(remaining * 1000)):
                entry = by_fd[fd]
                reply = _receive(entry.sock, entry.qid, question, entry.sent, rtype, server)
                if reply is None:
                    continue
                if entry is current:
                    keep = False
                    return reply
                # an earlier transmission: its answer is taken, anything else ends it
                if isinstance(reply, Answer):
                    return reply
                poller.unregister(fd)
                earlier.remove(entry)
                entry.sock.close()
    except OSError as exc:
        keep = False
        return _failure(exc, server)
    finally:
        if keep:
            earlier.append(current)
            if len(earlier) > KEEP_EARLIER:
                earlier.pop(0).sock.close()
        else:
            sock.close()


class _SyncQuery:
    """One query of a synchronous batch (:meth:`StubResolver.resolve_batch`): its retry loop
    once started, the transmission it waits for and the earlier ones kept open for a late
    reply (at most :data:`KEEP_EARLIER`)."""

    __slots__ = ("answer", "current", "earlier", "question", "rtype", "run", "until")

    def __init__(self, question: bytes, rtype: RRType) -> None:
        self.question = question
        self.rtype = rtype
        self.run: _Run | None = None
        self.answer: Answer | None = None
        self.current: _Transmission | _Connection | None = None
        self.earlier: list[_Transmission] = []
        #: when the wait for the current exchange's reply is over (``time.monotonic``)
        self.until = 0.0


class _Transmission:
    """One UDP transmission of a synchronous batch: its socket, ID, question as sent."""

    __slots__ = ("fd", "owner", "qid", "sent", "server", "sock")

    def __init__(
        self, owner: _SyncQuery, sock: _socket.socket, server: Server, qid: int, sent: bytes
    ) -> None:
        self.owner = owner
        self.sock = sock
        self.fd = sock.fileno()
        self.server = server
        self.qid = qid
        self.sent = sent


class _Connection:
    """One TCP exchange of a synchronous batch (RFC 7766 §8: two-octet length prefix), made
    without blocking in the batch's ``poll()``: connect, send the query, read one message (at
    most 65,535 octets, RFC 1035 §4.2.2), all by the exchange's one end."""

    __slots__ = ("fd", "inbox", "outbox", "owner", "qid", "server", "sock")

    def __init__(self, owner: _SyncQuery, exchange: Exchange) -> None:
        self.owner = owner
        self.server = server = exchange.server
        self.qid = secrets.randbits(16)
        self.outbox = _tcp_message(self.qid, owner.question, exchange.edns)
        self.inbox = bytearray()
        sock = _socket.socket(server.family, socket.SOCK_STREAM | _NONBLOCK)
        try:
            if not _NONBLOCK:  # pragma: no cover - Linux has SOCK_NONBLOCK
                sock.setblocking(False)
            code = sock.connect_ex((server.address, server.port))
            if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                raise OSError(code, os.strerror(code))  # (ConnectionRefusedError...)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.fd = sock.fileno()

    def ready(self) -> Reply | None:
        """The socket is ready (writable while the query is unsent, then readable): the
        exchange's reply once the message is read, None while it goes on.

        Raises:
            OSError: the connection failed (refused, reset, closed before the reply).
        """
        sock = self.sock
        if self.outbox:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, os.strerror(code))
            try:
                sent = sock.send(self.outbox)
            except (BlockingIOError, InterruptedError):
                return None
            self.outbox = self.outbox[sent:]
            return None
        inbox = self.inbox
        want = 2 if len(inbox) < 2 else 2 + int.from_bytes(inbox[:2], "big")
        try:
            data = sock.recv(want - len(inbox))
        except (BlockingIOError, InterruptedError):
            return None
        if not data:
            raise ConnectionResetError("connection closed before the reply")
        inbox += data
        if len(inbox) == 2:
            want = 2 + int.from_bytes(inbox, "big")
        if len(inbox) < want:
            return None
        return _tcp_reply(
            bytes(inbox[2:]), self.qid, self.owner.question, self.owner.rtype, self.server
        )


class _SyncBatch:
    """The queries of one :meth:`StubResolver.resolve_batch` call, driven from the calling
    thread: one retry loop (``_Run``) per query, all their UDP transmissions and TCP
    connections watched by one ``select.poll()`` object (not ``select()``: descriptors above
    FD_SETSIZE; and no descriptor of its own to close, unlike epoll). Every socket is closed
    by :meth:`run`, however it ends."""

    __slots__ = (
        "by_fd",
        "end",
        "ids",
        "jobs",
        "kept",
        "limit",
        "poller",
        "queue",
        "resolver",
        "total",
        "waiting",
    )

    def __init__(
        self, resolver: StubResolver, jobs: list[_SyncQuery], total: float, end: float
    ) -> None:
        self.resolver = resolver
        self.jobs = jobs
        self.total = total
        self.end = end
        self.limit = resolver.max_in_flight
        self.poller = select.poll()
        self.by_fd: dict[int, _Transmission | _Connection] = {}
        #: the queries waiting for a reply (at most ``limit``)
        self.waiting: set[_SyncQuery] = set()
        #: the queries not started yet (more than ``limit`` in the batch)
        self.queue = collections.deque(jobs)
        self.kept = 0  # earlier transmissions kept open, at most KEEP_MAX
        #: random IDs for the first transmissions (RFC 5452 §9.2), read in one call: each
        #: read of the CSPRNG is a system call that lets another thread take the GIL
        self.ids = list(_random_ids(min(len(jobs), self.limit)))

    def run(self) -> None:
        """Every query of the batch to its answer (``_SyncQuery.answer``)."""
        waiting = self.waiting
        clock = time.monotonic
        try:
            self._fill()
            while waiting:
                timeout = min(job.until for job in waiting) - clock()
                events = self.poller.poll(math.ceil(timeout * 1000) if timeout > 0 else 0)
                by_fd = self.by_fd
                for fd, _events in events:
                    entry = by_fd.get(fd)
                    if entry is not None:  # (None: closed since, its query answered)
                        self._ready(entry)
                now = clock()
                expired = [job for job in waiting if job.until <= now]
                for job in expired:
                    self._expire(job)
                if self.queue:
                    self._fill()
        finally:
            for entry in self.by_fd.values():
                entry.sock.close()
            self.by_fd.clear()

    def _fill(self) -> None:
        """Start queries while fewer than ``limit`` wait for a reply."""
        queue = self.queue
        while queue and len(self.waiting) < self.limit:
            job = queue.popleft()
            job.run = _Run(self.resolver._attempts(self.total, self.end, time.monotonic))
            self._step(job)

    def _step(self, job: _SyncQuery) -> None:
        """Drive ``job``'s retry loop until it waits for a reply or has its answer."""
        run = job.run
        assert run is not None
        while (exchange := run.exchange) is not None:
            if exchange.tcp:  # (after TC, or tcp=True)
                failure = self._connect(job, exchange)
            else:
                failure = self._transmit(job, exchange)
            if failure is None:
                return  # waiting for the reply
            run.feed(failure)
        job.answer = run.result()
        for entry in job.earlier:
            self._drop(entry)
        self.kept -= len(job.earlier)
        job.earlier.clear()

    def _transmit(self, job: _SyncQuery, exchange: Exchange) -> Failure | None:
        """Send ``job``'s question as ``exchange`` says on a fresh socket (RFC 5452 §9.2: a
        random port and ID), watched from now on; a ``Failure`` if it could not be sent."""
        server = exchange.server
        try:
            sock = _open_udp(server)
        except OSError as exc:
            return _failure(exc, server)
        try:
            ids = self.ids
            qid = ids.pop() if ids else secrets.randbits(16)
            sent = _mix_case(job.question) if exchange.caps else job.question
            entry = _Transmission(job, sock, server, qid, sent)
            self.by_fd[entry.fd] = entry  # (from here on, closed by run() whatever happens)
        except BaseException:
            sock.close()
            raise
        try:
            self.poller.register(entry.fd, select.POLLIN)
            sock.send(_wire.make_query(qid, sent, edns=exchange.edns))
        except OSError as exc:
            self._drop(entry)
            return _failure(exc, server)
        job.current = entry
        job.until = min(time.monotonic() + exchange.wait, self.end)
        self.waiting.add(job)
        return None

    def _connect(self, job: _SyncQuery, exchange: Exchange) -> Failure | None:
        """Open ``job``'s TCP exchange, watched from now on (writable until the query is
        sent); a ``Failure`` if the connection could not be made."""
        try:
            entry = _Connection(job, exchange)
        except OSError as exc:
            return _failure(exc, exchange.server)
        try:
            self.by_fd[entry.fd] = entry  # (from here on, closed by run() whatever happens)
        except BaseException:
            entry.sock.close()
            raise
        self.poller.register(entry.fd, select.POLLOUT)
        job.current = entry
        job.until = min(time.monotonic() + exchange.wait, self.end)
        self.waiting.add(job)
        return None

    def _ready(self, entry: _Transmission | _Connection) -> None:
        if isinstance(entry, _Transmission):
            self._readable(entry)
            return
        try:
            reply = entry.ready()
        except OSError as exc:
            reply = _failure(exc, entry.server)
        if reply is None:
            if not entry.outbox:  # the query is sent: wait for the reply
                self.poller.modify(entry.fd, select.POLLIN)
            return
        job = entry.owner
        self._drop(entry)
        job.current = None
        self.waiting.discard(job)
        assert job.run is not None
        job.run.feed(reply)
        self._step(job)

    def _readable(self, entry: _Transmission) -> None:
        job = entry.owner
        reply = _receive(entry.sock, entry.qid, job.question, entry.sent, job.rtype, entry.server)
        if reply is None:
            return
        self._drop(entry)
        if entry is job.current:
            job.current = None
        else:
            # A reply to an earlier transmission of this query: taken if it is an answer
            # (RFC 1536 §1: the server may be slow, not lost); its errors are no longer news.
            job.earlier.remove(entry)
            self.kept -= 1
            if not isinstance(reply, Answer):
                return
            current, job.current = job.current, None
            if current is not None:
                self._drop(current)
        self.waiting.discard(job)
        assert job.run is not None
        job.run.feed(reply)
        self._step(job)

    def _expire(self, job: _SyncQuery) -> None:
        """No reply within the wait: a timeout for the retry loop; the transmission stays
        open for a late reply (within the bounds)."""
        self.waiting.discard(job)
        current, job.current = job.current, None
        if current is not None:
            if isinstance(current, _Connection) or self.kept >= KEEP_MAX:
                self._drop(current)
            else:
                job.earlier.append(current)
                self.kept += 1
                if len(job.earlier) > KEEP_EARLIER:
                    self._drop(job.earlier.pop(0))
                    self.kept -= 1
        assert job.run is not None
        job.run.feed(Signal.TIMEOUT)
        self._step(job)

    def _drop(self, entry: _Transmission | _Connection) -> None:
        """Stop watching ``entry`` and close its socket."""
        if self.by_fd.get(entry.fd) is entry:
            del self.by_fd[entry.fd]
            with contextlib.suppress(KeyError):
                self.poller.unregister(entry.fd)
        entry.sock.close()


def _tcp(exchange: Exchange, question: bytes, rtype: RRType) -> Reply:
    """One TCP exchange (RFC 7766 §8: two-octet length prefix): one message read, at most
    65,535 octets (RFC 1035 §4.2.2), all within the wait (one absolute end, however slowly
    the server trickles its bytes)."""
    server = exchange.server
    end = time.monotonic() + exchange.wait
    qid = secrets.randbits(16)
    try:
        with socket.create_connection((server.address, server.port), exchange.wait) as sock:
            _settimeout(sock, end)
            sock.sendall(_tcp_message(qid, question, exchange.edns))  # (one total timeout)
            size = int.from_bytes(_recv_exactly(sock, 2, end), "big")
            data = _recv_exactly(sock, size, end)
    except TimeoutError:
        return Signal.TIMEOUT
    except OSError as exc:
        return _failure(exc, server)
    return _tcp_reply(data, qid, question, rtype, server)


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
