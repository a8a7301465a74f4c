"""The bare-Python transport floor of the bulk benchmark (``benchmarks/_bare_client.py``):
its queries are mxselect's octet for octet, and both variants (a socket per query, one
shared socket) resolve every recorded batch in dependency order against a loopback stand-in
server that answers out of order, sends stray datagrams first, and drops what it is told to."""

from __future__ import annotations

import asyncio
import random
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from benchmarks import _bare_client
from benchmarks._bare_client import is_reply, query, question
from mxselect import RRType, _wire


def test_query_octets_are_mxselects() -> None:
    """Header with RD+AD, the question, the EDNS0 OPT record: what the stub sends, so the
    server does the same work for both."""
    for rtype in RRType:
        for name in ("mx1.example.org.", "a.b.c.bulk.test.", "x."):
            assert query(0xBEEF, question(name, rtype.value)) == _wire.make_query(
                0xBEEF, _wire.question_of(name, rtype)
            )


def test_is_reply_checks_id_qr_and_question() -> None:
    q = question("d1.bulk.test.", "MX")
    sent = query(0x1234, q)
    reply = bytearray(sent)
    reply[2] |= 0x80
    assert is_reply(bytes(reply), 0x1234, q)
    assert not is_reply(sent, 0x1234, q)  # QR clear: our own query reflected
    assert not is_reply(bytes(reply), 0x1235, q)
    assert not is_reply(bytes(reply), 0x1234, question("d1.bulk.test.", "A"))
    assert not is_reply(bytes(reply[:20]), 0x1234, q)


@dataclass
class StandIn:
    """A loopback UDP server answering every query (QR set; rcode 3 for names starting
    "nx"), never those whose name starts with "drop"; each burst read is answered in
    reverse order, each reply preceded by two datagrams that are no reply to it."""

    recorded: list[list[list[tuple[str, str]]]]
    sock: socket.socket = field(
        default_factory=lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    )
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)
    sources: dict[str, set[tuple[str, int]]] = field(default_factory=dict)
    most_outstanding: int = 0
    most_domains: int = 0
    #: seconds each burst waits before it is answered (the client sends what it may meanwhile)
    delay: float = 0.0

    def __post_init__(self) -> None:
        self.sock.bind(("127.0.0.1", 0))
        #: question octets -> (domain, batch index)
        self.where = {
            question(n, t): (d, b)
            for d, batches in enumerate(self.recorded)
            for b, batch in enumerate(batches)
            for n, t in batch
        }
        self.answered: set[bytes] = set()
        self.dropped: set[bytes] = set()
        self.outstanding: dict[bytes, int] = {}

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return str(host), int(port)

    def serve(self) -> None:
        while not self.stop.is_set():
            if not select.select([self.sock], [], [], 0.05)[0]:
                continue
            burst: list[tuple[bytes, tuple[str, int]]] = []
            self.sock.setblocking(False)
            try:
                while True:
                    burst.append(self.sock.recvfrom(4096))
            except BlockingIOError:
                pass
            self.sock.setblocking(True)
            time.sleep(self.delay)
            for data, _ in burst:
                q = self.question_in(data)
                self.outstanding[q] = self.where[q][0]
            self.most_outstanding = max(self.most_outstanding, len(self.outstanding))
            self.most_domains = max(self.most_domains, len(set(self.outstanding.values())))
            for data, peer in reversed(burst):
                self.handle(data, peer)

    @staticmethod
    def question_in(data: bytes) -> bytes:
        """The question octets of a query (its name holds no zero octet but the root's)."""
        return data[12 : data.index(b"\x00", 12) + 5]

    def handle(self, data: bytes, peer: tuple[str, int]) -> None:
        end = data.index(b"\x00", 12) + 5
        q = data[12:end]
        domain, batch = self.where[q]
        name = self.recorded[domain][batch][0][0]
        self.sources.setdefault(name, set()).add(peer)
        if batch and any(
            question(n, t) not in self.answered | self.dropped
            for n, t in self.recorded[domain][batch - 1]
        ):
            self.errors.append(f"{q!r} asked before the previous batch was answered")
        if q[1:5] == b"drop":
            self.dropped.add(q)
            del self.outstanding[q]
            return
        reply = bytearray(data)
        reply[2] |= 0x80
        if q[1:3] == b"nx":
            reply[3] |= 3
        wrong_id = bytearray(reply)
        wrong_id[0] ^= 0x80
        wrong_question = bytearray(reply)
        wrong_question[end - 3] ^= 0x40  # another QTYPE
        for datagram in (bytes(wrong_id), bytes(wrong_question), bytes(reply[:11])):
            self.sock.sendto(datagram, peer)
        del self.outstanding[q]
        self.answered.add(q)
        self.sock.sendto(bytes(reply), peer)


@pytest.fixture
def stand_in(request: pytest.FixtureRequest) -> Iterator[StandIn]:
    recorded, delay = request.param
    server = StandIn(recorded, delay=delay)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        thread.join()
        server.sock.close()


def _recorded(count: int, seed: int = 19) -> list[list[list[tuple[str, str]]]]:
    """Selections' batches: the MX, then A and AAAA of 1 to 4 exchanges, then TLSA; some
    domains NXDOMAIN (one batch)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        domain = f"{'nx' if i % 7 == 0 else 'd'}{i}.bulk.test."
        if i % 7 == 0:
            out.append([[(domain, "MX")]])
            continue
        hosts = [f"mx{h}-{i}.bulk.test." for h in range(rng.randint(1, 4))]
        out.append(
            [
                [(domain, "MX")],
                [(h, t) for h in hosts for t in ("A", "AAAA")],
                [(f"_25._tcp.{hosts[0]}", "TLSA")],
            ]
        )
    return out


RECORDED = _recorded(60)
VARIANTS = [
    pytest.param({"shared": False, "watch": "epoll"}, id="socket-per-query-epoll"),
    pytest.param({"shared": False, "watch": "reader"}, id="socket-per-query-reader"),
    pytest.param({"shared": True}, id="one-socket"),
]


@pytest.mark.parametrize("stand_in", [(RECORDED, 0.01)], indirect=True)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_batch_in_order(stand_in: StandIn, variant: dict[str, object]) -> None:
    sent = sum(len(b) for batches in RECORDED for b in batches)
    out = _bare_client.run(RECORDED, stand_in.address, 5, 12, **variant)  # type: ignore[arg-type]
    assert stand_in.errors == []
    assert out["queries"] == len(RECORDED)
    assert out["sent"] == sent
    assert out["nxdomain"] == sum(1 for b in RECORDED if len(b) == 1)
    assert out["noerror"] == sent - out["nxdomain"]
    assert out["timeouts"] == 0
    assert out["strays"] == 3 * sent
    assert stand_in.most_domains <= 5
    assert stand_in.most_outstanding <= 12
    ports = {peer for peers in stand_in.sources.values() for peer in peers}
    if variant.get("shared"):
        assert len(ports) == 1  # every query from one source port
    else:
        # A batch's sockets are all open at once: one source port per query of the batch.
        batch = RECORDED[1][1]
        assert len(stand_in.sources[batch[0][0]]) == len(batch)
        assert len(ports) > 12


DROPPED = [
    [[("d0.bulk.test.", "MX")], [("drop0.bulk.test.", "A"), ("mx0.bulk.test.", "A")]],
    [[("d1.bulk.test.", "MX")], [("mx1.bulk.test.", "A")], [("mx1.bulk.test.", "AAAA")]],
    [[("drop2.bulk.test.", "MX")], [("mx2.bulk.test.", "A")]],
]


@pytest.mark.parametrize("stand_in", [(DROPPED, 0.0)], indirect=True)
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_lost_reply_is_a_counted_timeout(
    stand_in: StandIn, variant: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net: a batch whose reply never comes ends after its timer, the loss is
    counted, and the domain goes on with its next batch."""
    monkeypatch.setattr(_bare_client, "BATCH_TIMEOUT", 0.2)
    out = _bare_client.run(DROPPED, stand_in.address, 2, 8, **variant)  # type: ignore[arg-type]
    assert out["queries"] == 3
    assert out["timeouts"] == 2
    assert out["sent"] == 8
    assert out["noerror"] == 6
    assert question("mx2.bulk.test.", "A") in stand_in.answered


@pytest.mark.parametrize("stand_in", [(RECORDED, 0.01)], indirect=True)
def test_empty_input(stand_in: StandIn) -> None:
    assert _bare_client.run([], stand_in.address, 3)["queries"] == 0
    assert _bare_client.run([[], [[]]], stand_in.address, 3, shared=True)["queries"] == 2


def test_one_socket_buffer_holds_every_reply_in_flight() -> None:
    """All replies of the shared socket queue in one receive buffer: it is sized for
    ``max_in_flight`` of them (the default dropped replies in a warm bulk run)."""

    async def main() -> int:
        client = _bare_client.OneSocket(asyncio.get_running_loop(), ("127.0.0.1", 9), [], 1, 64)
        try:
            return client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        finally:
            client.close()

    assert asyncio.run(main()) >= 64 * _bare_client.RCVBUF_PER_QUERY
