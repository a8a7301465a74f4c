"""The bare-Python transport floor of the bulk benchmark (issue 19): no mxselect code.

The same recorded batches as ``bulk.record_batches`` records (every domain's queries, batch
by batch), sent by the most minimal correct asyncio client this module could be written as,
so the run shows what any Python client pays for the transport alone:

* per query, a fresh connected non-blocking UDP socket (RFC 5452 §9.2: ``connect()`` has the
  kernel bind a random ephemeral port; the kernel then drops datagrams from anyone else), a
  random ID from ``os.urandom`` (one call per batch), the query built by hand: header with RD
  and AD (RFC 6840 §5.7) as mxselect sends, the question, an EDNS0 OPT record advertising a
  1232-octet payload (RFC 6891 §6.1.2), so the server does the same work; the reply read,
  checked for its ID, QR bit, one question and the question's octets (RFC 5452 §9.1: anything
  else is ignored, the query keeps waiting), not parsed further; the socket closed;
* the sockets watched through one epoll set of this client's own, registered with the running
  loop as a single reader (``loop.add_reader`` on the epoll descriptor): a query's socket
  costs one ``epoll_ctl`` to add and its ``close()`` takes it out; ``watch="reader"`` makes
  each socket a loop reader of its own instead (``add_reader``/``remove_reader``: two
  ``epoll_ctl`` and the selector's bookkeeping per query), the dearer of the two: 48 µs of
  client CPU per query against 30 µs, warm bulk run, median of 15 alternating rounds (1.66×
  per round, 1.08-2.18×; 2 shared cores);
* the variant :class:`OneSocket`: every query on ONE connected socket per event loop, replies
  demultiplexed by ID -- what RFC 5452 §9.2 rules out (one source port for every query) and
  what adns does -- so the run shows what the socket per query costs even in bare Python.

Scheduling, as the selection and the other floors: ``concurrency`` domains in flight, a
domain's next batch sent once every reply of its current one is in, at most ``max_in_flight``
queries outstanding (a batch waits for all its slots, in order: ``StubResolver``'s
``max_in_flight``; without it a burst overflows Unbound's socket buffer). No tasks and no
futures per query or per batch: callbacks of the event loop drive every domain. A 2 s timer
per batch is only a safety net: its queries without a reply are counted as timeouts and the
domain goes on with its next batch (no retransmission: the counts show whether any was lost).

Stdlib only; Linux (epoll).
"""

from __future__ import annotations

import _socket
import asyncio
import os
import select
import struct
from collections import Counter, deque
from collections.abc import Sequence
from typing import Literal

#: A query as ``bulk.record_batches`` records it: (absolute name, RRType value).
Question = tuple[str, str]
#: One domain's queries, batch by batch.
Batches = Sequence[Sequence[Question]]
Watch = Literal["epoll", "reader"]

#: QTYPE codes (RFC 1035 §3.2.2, RFC 3596 §2.1, RFC 6698 §7.1).
QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "MX": 15, "TXT": 16, "AAAA": 28, "TLSA": 52}
#: RD (RFC 1035 §4.1.1) and AD (RFC 6840 §5.7): the flags mxselect's queries carry.
FLAGS = 0x0120
#: EDNS0 OPT record (RFC 6891 §6.1.2): root owner, TYPE 41, 1232-octet UDP payload, no flags.
OPT_RR = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
#: The batch's safety net: seconds before its unanswered queries count as timeouts.
BATCH_TIMEOUT = 2.0
_HEADER = struct.Struct("!HHHHHH")
_UDP = _socket.SOCK_DGRAM | getattr(_socket, "SOCK_NONBLOCK", 0)
_EPOLLIN = select.EPOLLIN if hasattr(select, "EPOLLIN") else 1


def question(name: str, rtype: str) -> bytes:
    """The question section (QNAME, QTYPE, QCLASS IN, RFC 1035 §4.1.2) for an absolute name."""
    labels = name.rstrip(".").encode("ascii").split(b".") if name.strip(".") else []
    qname = b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
    return qname + struct.pack("!HH", QTYPES[rtype], 1)


def query(qid: int, wire_question: bytes) -> bytes:
    """The query message: header (ID, RD+AD, one question, one additional), question, OPT."""
    return _HEADER.pack(qid, FLAGS, 1, 0, 0, 1) + wire_question + OPT_RR


def is_reply(data: bytes, qid: int, wire_question: bytes) -> bool:
    """``data`` is a reply to the query: same ID, QR set, one question, the same question
    octets (RFC 5452 §9.1); nothing else is read."""
    end = 12 + len(wire_question)
    return (
        len(data) >= end
        and data[0] == qid >> 8
        and data[1] == qid & 0xFF
        and data[2] & 0x80 != 0
        and data[4] == 0
        and data[5] == 1
        and data[12:end] == wire_question
    )


class _Batch:
    """One domain's batch in flight: its queries still unanswered, and its timer."""

    __slots__ = ("domain", "left", "parts", "timer")

    def __init__(self, domain: int) -> None:
        self.domain = domain
        self.left = 0
        #: the transmissions' keys (descriptors or IDs) still waiting for a reply
        self.parts: list[int] = []
        self.timer: asyncio.TimerHandle | None = None


class _Client:
    """What both variants share: the domains' batches, ``concurrency`` domains in flight,
    the ``max_in_flight`` slots, the batch timers and the counts."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        server: tuple[str, int],
        recorded: Sequence[Batches],
        concurrency: int,
        max_in_flight: int,
    ) -> None:
        self.loop = loop
        self.server = server
        # Every question encoded before the clock starts (a real client encodes each name
        # it asks once: this is the floor, without that cost).
        self.recorded = [
            [[question(name, rtype) for name, rtype in batch] for batch in batches if batch]
            for batches in recorded
        ]
        self.concurrency = concurrency
        self.max_in_flight = max_in_flight
        self.outstanding = 0
        self.held: deque[_Batch] = deque()  # batches waiting for their slots, in order
        self.next_domain = 0
        self.next_batch = [0] * len(recorded)
        self.domains_done = 0
        self.counts: Counter[str] = Counter()
        self.rcodes = [0] * 16
        self.finished: asyncio.Future[None] = loop.create_future()

    def start(self) -> None:
        """The first ``concurrency`` domains."""
        while self.next_domain < len(self.recorded) and self.next_domain < self.concurrency:
            self._start_domain()
        if self.domains_done == len(self.recorded) and not self.finished.done():
            self.finished.set_result(None)

    def _start_domain(self) -> None:
        domain = self.next_domain
        self.next_domain += 1
        self._next(domain)

    def _next(self, domain: int) -> None:
        """The domain's next batch, or the domain is done (and the next one starts)."""
        i = self.next_batch[domain]
        if i >= len(self.recorded[domain]):
            self.domains_done += 1
            if self.next_domain < len(self.recorded):
                self._start_domain()
            elif self.domains_done == len(self.recorded) and not self.finished.done():
                self.finished.set_result(None)
            return
        self.next_batch[domain] = i + 1
        batch = _Batch(domain)
        n = len(self.recorded[domain][i])
        if self.held or self.outstanding + n > max(self.max_in_flight, n):
            self.held.append(batch)
            return
        self._send(batch)

    def _send(self, batch: _Batch) -> None:
        questions = self.recorded[batch.domain][self.next_batch[batch.domain] - 1]
        n = len(questions)
        self.outstanding += n
        self.counts["queries"] += n
        batch.left = n
        batch.timer = self.loop.call_later(BATCH_TIMEOUT, self._expire, batch)
        self.transmit(batch, questions, struct.unpack(f"!{n}H", os.urandom(2 * n)))

    def transmit(self, batch: _Batch, questions: list[bytes], ids: tuple[int, ...]) -> None:
        raise NotImplementedError

    def drop(self, key: int) -> None:
        """Forget the transmission ``key`` (its batch timed out)."""
        raise NotImplementedError

    def answered(self, batch: _Batch, data: bytes) -> None:
        """One reply of ``batch`` is in."""
        self.rcodes[data[3] & 0x0F] += 1
        if data[2] & 0x02:
            self.counts["truncated"] += 1
        self.outstanding -= 1
        batch.left -= 1
        if not batch.left:
            assert batch.timer is not None
            batch.timer.cancel()
            self._release()
            self._next(batch.domain)

    def _release(self) -> None:
        """Send the held batches that fit now (first come, first served)."""
        held = self.held
        while held:
            batch = held[0]
            n = len(self.recorded[batch.domain][self.next_batch[batch.domain] - 1])
            if self.outstanding + n > max(self.max_in_flight, n):
                break
            held.popleft()
            self._send(batch)

    def _expire(self, batch: _Batch) -> None:
        """The safety net: the batch's queries without a reply are timeouts."""
        for key in batch.parts:
            self.drop(key)
        self.counts["timeouts"] += batch.left
        self.outstanding -= batch.left
        batch.left = 0
        batch.parts.clear()
        self._release()
        self._next(batch.domain)

    def close(self) -> None:
        """Close whatever is still open."""

    def outcomes(self) -> Counter[str]:
        """``queries`` (as the other floors count: the domains done), the queries sent, the
        replies by kind, timeouts, strays (datagrams that were no reply, ignored)."""
        out = Counter(self.counts)
        out["sent"] = out.pop("queries", 0)
        out["queries"] = self.domains_done
        out["noerror"] = self.rcodes[0]
        out["nxdomain"] = self.rcodes[3]
        out["error_rcodes"] = sum(self.rcodes) - self.rcodes[0] - self.rcodes[3]
        out["timeouts"] += 0
        return out


class SocketPerQuery(_Client):
    """Every query on a fresh connected socket of its own (RFC 5452 §9.2)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        server: tuple[str, int],
        recorded: Sequence[Batches],
        concurrency: int,
        max_in_flight: int,
        watch: Watch = "epoll",
    ) -> None:
        super().__init__(loop, server, recorded, concurrency, max_in_flight)
        #: descriptor -> (socket, ID, question, batch)
        self.open: dict[int, tuple[_socket.socket, int, bytes, _Batch]] = {}
        self.watch = watch
        self.epoll: select.epoll | None = None
        if watch == "epoll":
            self.epoll = select.epoll()
            loop.add_reader(self.epoll.fileno(), self._ready)

    def transmit(self, batch: _Batch, questions: list[bytes], ids: tuple[int, ...]) -> None:
        server, family, open_, parts = self.server, _socket.AF_INET, self.open, batch.parts
        epoll, loop = self.epoll, self.loop
        for wire_question, qid in zip(questions, ids, strict=True):
            sock = _socket.socket(family, _UDP)
            sock.connect(server)
            fd = sock.fileno()
            open_[fd] = (sock, qid, wire_question, batch)
            parts.append(fd)
            if epoll is not None:
                epoll.register(fd, _EPOLLIN)
            else:
                loop.add_reader(fd, self._readable, fd)
            sock.send(query(qid, wire_question))

    def _ready(self) -> None:
        assert self.epoll is not None
        for fd, _ in self.epoll.poll(0):
            self._readable(fd)

    def _readable(self, fd: int) -> None:
        entry = self.open.get(fd)
        if entry is None:
            return
        sock, qid, wire_question, batch = entry
        while True:
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                return
            except OSError:  # an ICMP error (port unreachable): that query's, wait on
                self.counts["icmp_errors"] += 1
                return
            if is_reply(data, qid, wire_question):
                break
            self.counts["strays"] += 1
        del self.open[fd]
        if self.epoll is None:
            self.loop.remove_reader(fd)
        sock.close()  # the kernel takes it out of the epoll set
        batch.parts.remove(fd)
        self.answered(batch, data)

    def drop(self, key: int) -> None:
        sock = self.open.pop(key)[0]
        if self.epoll is None:
            self.loop.remove_reader(key)
        sock.close()

    def close(self) -> None:
        for fd in list(self.open):
            self.drop(fd)
        if self.epoll is not None:
            if not self.loop.is_closed():
                self.loop.remove_reader(self.epoll.fileno())
            self.epoll.close()
            self.epoll = None


#: Receive-buffer octets asked per query in flight for :class:`OneSocket` (the kernel doubles
#: what is asked, up to ``net.core.rmem_max``): room for every reply outstanding at once.
RCVBUF_PER_QUERY = 4096


class OneSocket(_Client):
    """Every query on ONE connected socket, replies matched by ID (what RFC 5452 §9.2 rules
    out, what adns does). An ID in use is drawn again: two outstanding queries never share
    one.

    All replies queue in that one socket's receive buffer, so it is sized for
    ``max_in_flight`` of them (:data:`RCVBUF_PER_QUERY`): with Linux's default (208 KiB) a
    warm bulk run lost about 60 replies of 3,888 to it (``/proc/net/snmp`` RcvbufErrors,
    each a 2 s timeout: ~490 domains/s instead of ~15,000). A socket per query has a buffer
    of its own for its one reply."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        server: tuple[str, int],
        recorded: Sequence[Batches],
        concurrency: int,
        max_in_flight: int,
    ) -> None:
        super().__init__(loop, server, recorded, concurrency, max_in_flight)
        #: ID -> (question, batch)
        self.pending: dict[int, tuple[bytes, _Batch]] = {}
        self.sock = _socket.socket(_socket.AF_INET, _UDP)
        self.sock.setsockopt(
            _socket.SOL_SOCKET, _socket.SO_RCVBUF, max_in_flight * RCVBUF_PER_QUERY
        )
        self.sock.connect(server)
        loop.add_reader(self.sock.fileno(), self._readable)

    def transmit(self, batch: _Batch, questions: list[bytes], ids: tuple[int, ...]) -> None:
        pending, send, parts = self.pending, self.sock.send, batch.parts
        for wire_question, qid in zip(questions, ids, strict=True):
            while qid in pending:
                qid = int.from_bytes(os.urandom(2), "big")
            pending[qid] = (wire_question, batch)
            parts.append(qid)
            send(query(qid, wire_question))

    def _readable(self) -> None:
        recv, pending = self.sock.recv, self.pending
        while True:
            try:
                data = recv(65535)
            except BlockingIOError:
                return
            except OSError:  # an ICMP error: it says nothing of which query
                self.counts["icmp_errors"] += 1
                continue
            if len(data) < 12:
                self.counts["strays"] += 1
                continue
            qid = data[0] << 8 | data[1]
            entry = pending.get(qid)
            if entry is None or not is_reply(data, qid, entry[0]):
                self.counts["strays"] += 1
                continue
            del pending[qid]
            batch = entry[1]
            batch.parts.remove(qid)
            self.answered(batch, data)

    def drop(self, key: int) -> None:
        del self.pending[key]

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def run(
    recorded: Sequence[Batches],
    server: tuple[str, int],
    concurrency: int,
    max_in_flight: int = 256,
    *,
    shared: bool = False,
    watch: Watch = "epoll",
) -> Counter[str]:
    """Send ``recorded`` (every domain's batches) to ``server`` (IPv4 address, port), in a
    fresh event loop; the counts of :meth:`_Client.outcomes`. ``shared``: one socket for
    every query (:class:`OneSocket`) instead of one per query (``watch`` says how those are
    watched)."""

    async def main() -> Counter[str]:
        loop = asyncio.get_running_loop()
        client: _Client = (
            OneSocket(loop, server, recorded, concurrency, max_in_flight)
            if shared
            else SocketPerQuery(loop, server, recorded, concurrency, max_in_flight, watch)
        )
        try:
            client.start()
            await client.finished
        finally:
            client.close()
        return client.outcomes()

    return asyncio.run(main())


__all__ = [
    "BATCH_TIMEOUT",
    "RCVBUF_PER_QUERY",
    "OneSocket",
    "SocketPerQuery",
    "is_reply",
    "query",
    "question",
    "run",
]
