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

import contextlib
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def _proxy(upstream_port: int, delay: float) -> None:
    """The delaying forwarder: one thread, plain non-blocking sockets, a FIFO of held queries
    (the delay is the same for all, so the oldest is always due first). Query IDs are
    remapped so that one upstream socket serves every client. Lean on purpose: the proxy
    stands for a distant server, which costs the benchmark machine nothing; an asyncio
    forwarder used about half a core at 7,000 queries/s, CPU the client and Unbound share."""
    import collections
    import select
    import time

    down = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    down.bind(("127.0.0.1", 0))
    down.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    down.setblocking(False)
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    up.connect(("127.0.0.1", upstream_port))
    up.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    up.setblocking(False)
    held: collections.deque[tuple[float, bytes]] = collections.deque()
    pending: dict[bytes, tuple[bytes, tuple[str, int]]] = {}
    next_id = 0

    def serve() -> None:
        nonlocal next_id
        clock = time.monotonic
        while True:
            timeout = max(0.0, held[0][0] - clock()) if held else None
            readable, _, _ = select.select([down, up], [], [], timeout)
            if down in readable:
                due = clock() + delay
                while True:
                    try:
                        data, addr = down.recvfrom(4096)
                    except BlockingIOError:
                        break
                    if len(data) < 12:
                        continue
                    next_id = (next_id + 1) & 0xFFFF
                    new_id = next_id.to_bytes(2, "big")
                    pending[new_id] = (data[:2], addr)
                    held.append((due, new_id + data[2:]))
            if up in readable:
                while True:
                    try:
                        data = up.recv(65535)
                    except BlockingIOError:
                        break
                    entry = pending.pop(data[:2], None)
                    if entry is not None:
                        down.sendto(entry[0] + data[2:], entry[1])
            now = clock()
            while held and held[0][0] <= now:
                with contextlib.suppress(OSError):
                    up.send(held.popleft()[1])

    threading.Thread(target=serve, daemon=True).start()
    print(down.getsockname()[1], flush=True)
    sys.stdin.read()


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
        _proxy(int(sys.argv[2]), float(sys.argv[3]) / 1000)
        return
    raise SystemExit(f"unknown server kind {kind!r}")


if __name__ == "__main__":
    main()
