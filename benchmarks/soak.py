"""Soak: many domains through the asyncio API against a loopback DNS server injecting faults.

Each domain ``d<i>.soak.test`` has ``MX 10 mx<i>`` with an A and an AAAA record. A seeded 10%
of the domains get a fault of one of the kinds below (real packets from the fault-injecting
server: dropped, garbage, wrong ID, truncated with TCP closed, each error rcode, NXDOMAIN,
slow, truncated with a working TCP), on the MX query, on both address queries of the exchange,
or on its AAAA query only. Each domain's outcome must be the one its fault implies:

* no fault, a slow answer, truncation with a working TCP: the selection (2 addresses)
* the MX query fails: DNSTemporaryError 451 4.4.3; forced NXDOMAIN on MX: NoSuchDomainError
* both address queries fail: DNSTemporaryError; only AAAA fails: the IPv4 address, a warning

Checked: every domain classified, each outcome matches its fault, no task / thread / file
descriptor leak (counted before and after), memory flat (tracemalloc snapshots at each fifth
of the run, compared with the first). Prints figures; exits 1 if a check fails.

    python benchmarks/soak.py [--domains 10000] [--fault-rate 0.1] [--concurrency 50] [--lifetime 3]

Offline: only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import sys
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from harness.faultserver import FaultServer  # noqa: E402
from harness.resolvers import make_dnspython_resolver  # noqa: E402

import mxselect  # noqa: E402
from mxselect import MXSelectError, Selection, WarningCode  # noqa: E402

#: Failures: (behaviour of the fault server). Data faults: "nxdomain", "slow", "tc".
FAILURES = ("servfail", "refused", "formerr", "drop", "garbage", "wrongid", "tc-notcp")
#: Every (where, behaviour) injected, in a fixed order.
KINDS = (
    *(("mx", b) for b in (*FAILURES, "nxdomain", "delay-30", "tc")),
    *(("host", b) for b in FAILURES),
    *(("aaaa", b) for b in FAILURES),
)


@dataclass
class SoakReport:
    domains: int
    faults: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0
    queries: int = 0
    #: (tasks, threads, fds) before and after
    before: tuple[int, int, int] = (0, 0, 0)
    after: tuple[int, int, int] = (0, 0, 0)
    #: traced memory (bytes) at each checkpoint
    memory: list[int] = field(default_factory=list)

    @property
    def memory_growth(self) -> int:
        return self.memory[-1] - self.memory[0] if self.memory else 0

    def ok(self, memory_slack: int) -> bool:
        return (
            not self.mismatches
            and sum(self.outcomes.values()) == self.domains
            and self.before == self.after
            and self.memory_growth <= memory_slack
        )

    def lines(self) -> list[str]:
        faulted = sum(self.faults.values())
        return [
            f"domains: {self.domains}, faulted: {faulted} ({faulted / self.domains:.1%}), "
            f"kinds: {len(self.faults)}",
            "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
            f"mismatches: {len(self.mismatches)}"
            + (f" (first: {self.mismatches[0]})" if self.mismatches else ""),
            f"time: {self.seconds:.1f} s ({self.domains / self.seconds:.0f} domains/s), "
            f"queries: {self.queries}",
            f"tasks/threads/fds before {self.before}, after {self.after}",
            "traced memory at checkpoints (KiB): "
            + ", ".join(f"{m / 1024:.0f}" for m in self.memory)
            + f"; growth {self.memory_growth / 1024:+.0f} KiB",
        ]


def zone_text(count: int) -> str:
    lines = ["$ORIGIN soak.test.", "$TTL 300", "@ SOA ns hostmaster 1 3600 900 604800 60"]
    for i in range(count):
        lines += [
            f"d{i} MX 10 mx{i}",
            f"mx{i} A 192.0.{2 + i // 60000}.{i % 250 + 1}",
            f"mx{i} AAAA 2001:db8::{i:x}",
        ]
    return "\n".join(lines) + "\n"


def expected(i: int, fault: tuple[str, str] | None) -> str:
    """The outcome a domain must get: an error class name, or 'selection:<n addresses>'."""
    if fault is None:
        return "selection:2"
    where, behaviour = fault
    if where == "mx":
        if behaviour == "nxdomain":
            return "NoSuchDomainError"
        return "selection:2" if behaviour in ("delay-30", "tc") else "DNSTemporaryError"
    if where == "host":
        return "DNSTemporaryError"
    return "selection:1"  # AAAA only: the IPv4 address, with a warning


def observed(result: Selection | MXSelectError) -> str:
    if isinstance(result, Selection):
        if len(result) == 1 and WarningCode.PARTIAL_ADDRESS_FAILURE not in {
            w.code for w in result.warnings
        }:
            return "selection:1 without warning"
        return f"selection:{len(result)}"
    return type(result).__name__


def _counts() -> tuple[int, int, int]:
    tasks = len(asyncio.all_tasks()) - 1  # not the one counting
    return tasks, threading.active_count(), len(os.listdir("/proc/self/fd"))


async def _soak(
    server: FaultServer, faults: dict[int, tuple[str, str]], count: int, args: argparse.Namespace
) -> SoakReport:
    report = SoakReport(count)
    resolver = make_dnspython_resolver(
        server.port, asynchronous=True, lifetime=args.lifetime, timeout=args.lifetime
    )
    limit = asyncio.Semaphore(args.concurrency)

    async def one(i: int) -> None:
        async with limit:
            try:
                result: Selection | MXSelectError = await mxselect.aselect_targets(
                    f"d{i}.soak.test", resolver=resolver, rng=random.Random(i)
                )
            except MXSelectError as exc:
                result = exc
        got, want = observed(result), expected(i, faults.get(i))
        report.outcomes[got] += 1
        if got != want:
            report.mismatches.append(f"d{i} ({faults.get(i)}): {got}, expected {want}")

    report.before = _counts()
    started = time.perf_counter()
    chunks = 5
    for c in range(chunks):
        await asyncio.gather(
            *(one(i) for i in range(c * count // chunks, (c + 1) * count // chunks))
        )
        report.queries += len(server.queries)
        server.clear()  # the server's own log would grow: measure mxselect, not the harness
        gc.collect()  # finished tasks and errors sit in reference cycles until collected
        report.memory.append(tracemalloc.get_traced_memory()[0])
    report.seconds = time.perf_counter() - started
    await asyncio.sleep(0)
    report.after = _counts()
    return report


def run_soak(
    count: int,
    *,
    fault_rate: float = 0.1,
    seed: int = 6,
    concurrency: int = 50,
    lifetime: float = 3.0,
) -> SoakReport:
    """Resolve ``count`` domains with ``fault_rate`` of them faulted; return the figures."""
    rng = random.Random(seed)
    faulted = rng.sample(range(count), round(count * fault_rate))
    # Every kind at least once (when there are enough faulted domains), then at random.
    faults = {i: KINDS[n] if n < len(KINDS) else rng.choice(KINDS) for n, i in enumerate(faulted)}
    server = FaultServer(zone_text(count)).start()
    try:
        for i, (where, behaviour) in faults.items():
            name = f"d{i}.soak.test." if where == "mx" else f"mx{i}.soak.test."
            rdtype = {"mx": "MX", "host": None, "aaaa": "AAAA"}[where]
            server.set_rule(name, rdtype, behaviour)
        args = argparse.Namespace(concurrency=concurrency, lifetime=lifetime)
        tracing = tracemalloc.is_tracing()
        if not tracing:
            tracemalloc.start()
        try:
            report = asyncio.run(_soak(server, faults, count, args))
        finally:
            if not tracing:
                tracemalloc.stop()
    finally:
        server.stop()
    report.faults = Counter(f"{w}:{b}" for w, b in faults.values())
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--lifetime", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    report = run_soak(
        args.domains,
        fault_rate=args.fault_rate,
        seed=args.seed,
        concurrency=args.concurrency,
        lifetime=args.lifetime,
    )
    for line in report.lines():
        print(line)
    print("fault kinds: " + ", ".join(f"{k} {v}" for k, v in sorted(report.faults.items())))
    ok = report.ok(memory_slack=1024 * 1024)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
