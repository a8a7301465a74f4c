"""Servers the benchmarks run in a child process (see ``_common.server_process``).

    python benchmarks/_servers.py fault ZONE_FILE DELAY_MS
        tests/harness/faultserver.py's FaultServer, every answer delayed by DELAY_MS.
    python benchmarks/_servers.py delay ZONE_FILE DELAY_MS
        a lean UDP server for latency figures: answers from the zone (FaultServer's logic,
        computed once per question, then cached) sent DELAY_MS after each query arrived, by a
        thread that sleeps precisely (asyncio's timers round up to the millisecond).
    python benchmarks/_servers.py delayproxy UPSTREAM_PORT DELAY_MS
        a UDP forwarder to 127.0.0.1@UPSTREAM_PORT that holds every query DELAY_MS before
        passing it on: the round trip to a distant authoritative server, for Unbound's stub.

The child prints its port on one line, serves on 127.0.0.1 only, and exits when its standard
input is closed.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


class _Proxy(asyncio.DatagramProtocol):
    """Clients -> (delay) -> upstream; replies go straight back. Query IDs are remapped so
    that one upstream socket serves every client."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.next_id = 0
        self.pending: dict[int, tuple[bytes, tuple[str, int]]] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.up: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12:
            return
        self.next_id = (self.next_id + 1) & 0xFFFF
        new_id = self.next_id.to_bytes(2, "big")
        self.pending[self.next_id] = (data[:2], addr)
        assert self.up is not None
        asyncio.get_running_loop().call_later(
            self.delay, self.up.sendto, new_id + data[2:], self.upstream
        )

    def reply(self, data: bytes) -> None:
        entry = self.pending.pop(int.from_bytes(data[:2], "big"), None)
        if entry is not None and self.transport is not None:
            old_id, addr = entry
            self.transport.sendto(old_id + data[2:], addr)


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, proxy: _Proxy) -> None:
        self.proxy = proxy

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.proxy.reply(data)


async def _proxy(upstream_port: int, delay_ms: float, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    proxy = _Proxy(("127.0.0.1", upstream_port), delay_ms / 1000)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    transport, _ = await loop.create_datagram_endpoint(lambda: proxy, sock=sock)
    up, _ = await loop.create_datagram_endpoint(
        lambda: _Upstream(proxy), local_addr=("127.0.0.1", 0)
    )
    proxy.up = up  # type: ignore[assignment]
    print(sock.getsockname()[1], flush=True)
    await stop.wait()
    transport.close()
    up.close()


def _delay_server(zone_text: str, delay: float) -> None:
    import heapq
    import time

    import dns.message
    from harness.faultserver import FaultServer

    logic = FaultServer(zone_text)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    cache: dict[bytes, bytes] = {}
    heap: list[tuple[float, int, bytes, tuple[str, int]]] = []
    ready = threading.Condition()
    counter = 0

    def sender() -> None:
        while True:
            with ready:
                while not heap or heap[0][0] > time.monotonic():
                    ready.wait(heap[0][0] - time.monotonic() if heap else None)
                _, _, packet, addr = heapq.heappop(heap)
            sock.sendto(packet, addr)

    threading.Thread(target=sender, daemon=True).start()

    def receiver() -> None:
        nonlocal counter
        while True:
            data, addr = sock.recvfrom(4096)
            due = time.monotonic() + delay
            body = cache.get(data[2:])
            if body is None:
                query = dns.message.from_wire(data)
                question = query.question[0]
                response = logic._answer(query, question.name, question.rdtype)
                body = cache[data[2:]] = logic._to_wire(query, response, "udp")[2:]
            counter += 1
            with ready:
                heapq.heappush(heap, (due, counter, data[:2] + body, addr))
                ready.notify()

    threading.Thread(target=receiver, daemon=True).start()
    print(sock.getsockname()[1], flush=True)
    sys.stdin.read()


def _wait_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    sys.stdin.read()
    loop.call_soon_threadsafe(stop.set)


def main() -> None:
    kind = sys.argv[1]
    if kind == "fault":
        from harness.faultserver import FaultServer

        server = FaultServer(Path(sys.argv[2]).read_text(), default_delay_ms=float(sys.argv[3]))
        with server:
            print(server.port, flush=True)
            sys.stdin.read()
        return
    if kind == "delay":
        _delay_server(Path(sys.argv[2]).read_text(), float(sys.argv[3]) / 1000)
        return
    if kind == "delayproxy":
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        threading.Thread(target=_wait_stdin, args=(loop, stop), daemon=True).start()
        loop.run_until_complete(_proxy(int(sys.argv[2]), float(sys.argv[3]), stop))
        return
    raise SystemExit(f"unknown server kind {kind!r}")


if __name__ == "__main__":
    main()
