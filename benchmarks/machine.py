"""Benchmark 0: what this machine charges for the system calls a DNS client makes.

Not mxselect: the setting every other figure is measured in. A socket per query (RFC 5452
§9.2) costs ``socket()``, ``connect()`` and ``close()``; every datagram costs a ``send()``,
and a ``send()`` to a process that sleeps in ``recv()`` (a resolver between two queries of a
slow client) also pays for waking it, in the sender's CPU. On a virtual machine that wake-up
(an inter-processor interrupt, a VM exit) can cost several times the ``send()`` itself; a
client that sends in bursts (GNU adns) keeps the resolver awake and pays it less often.

    python benchmarks/machine.py [--smoke]
"""

from __future__ import annotations

import _socket
import argparse
import os
import socket
import time

from _common import Report, Table, print_report

NAME = "machine"


def _per_call(fn: object, count: int) -> float:
    """Process CPU µs per call of ``fn``."""
    assert callable(fn)
    started = time.process_time()
    for _ in range(count):
        fn()
    return (time.process_time() - started) / count * 1e6


def run(smoke: bool = False) -> Report:
    count = 500 if smoke else 20_000
    gap = 0.0002
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    address = receiver.getsockname()
    pid = os.fork()
    if pid == 0:  # the receiver: sleeps in recv() until a datagram comes
        try:
            while receiver.recv(64) != b"q":
                pass
        finally:
            os._exit(0)
    receiver.close()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.connect(address)
    payload = b"x" * 40
    try:

        def fresh() -> None:
            sock = _socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
            sock.connect(address)
            sock.close()

        setup = _per_call(fresh, count)
        burst = _per_call(lambda: sender.send(payload), count)
        sleep_only = _per_call(lambda: time.sleep(gap), count // 4)

        def spaced() -> None:
            sender.send(payload)
            time.sleep(gap)

        woken = _per_call(spaced, count // 4) - sleep_only
    finally:
        sender.send(b"q")
        sender.close()
        os.waitpid(pid, 0)
    table = Table(
        "What the machine charges for a DNS client's system calls (µs of the caller's CPU)",
        ["call", "µs per call"],
    )
    table.rows += [
        ["socket() + connect() + close() (a fresh UDP socket per query)", f"{setup:.1f}"],
        ["send() of a 40-octet datagram, back to back (the receiver stays awake)", f"{burst:.1f}"],
        [
            f"send() to a receiver asleep in recv() ({gap * 1e6:.0f} µs between datagrams)",
            f"{woken:.1f}",
        ],
    ]
    table.notes += [
        "The receiver is another process on loopback, as Unbound is to the benchmarks' "
        "clients. The wake-up is charged to the sender: a client slow enough to let the "
        "resolver fall asleep between datagrams pays it on every query.",
    ]
    return Report(tables=[table])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    print_report(run(smoke=parser.parse_args().smoke))


if __name__ == "__main__":
    main()
