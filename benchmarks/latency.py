"""Cold-selection latency in DNS round trips, and `import mxselect` time.

A fault-injecting DNS server on loopback delays every answer by --delay ms (default 25). A
3-MX dual-stack domain is selected cold with the sync and the asyncio API, and with the naive
loop most scripts use (MX, then A and AAAA per host, one after another). The physical limit is
2 round trips (MX, then every address at once).

    python benchmarks/latency.py [--delay 25] [--repeat 15]

Offline: only 127.0.0.1 is used. Prints medians, spread and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import dns.asyncresolver  # noqa: E402
import dns.resolver  # noqa: E402
from harness.faultserver import FaultServer  # noqa: E402

import mxselect  # noqa: E402

ZONE = """
$ORIGIN bench.test.
$TTL 300
@      SOA   ns hostmaster 1 3600 900 604800 60
@      MX    10 mx1
@      MX    10 mx2
@      MX    20 mx3
mx1    A     192.0.2.1
mx1    AAAA  2001:db8::1
mx2    A     192.0.2.2
mx2    AAAA  2001:db8::2
mx3    A     192.0.2.3
mx3    AAAA  2001:db8::3
implicit A   192.0.2.9
implicit AAAA 2001:db8::9
cnamed MX    10 alias
alias  CNAME mx1
"""


def resolvers(port: int) -> tuple[dns.resolver.Resolver, dns.asyncresolver.Resolver]:
    sync = dns.resolver.Resolver(configure=False)
    aio = dns.asyncresolver.Resolver(configure=False)
    for r in (sync, aio):
        r.nameservers = ["127.0.0.1"]
        r.port = port
        r.cache = None
        r.lifetime = 5.0
    return sync, aio


def naive(resolver: dns.resolver.Resolver, domain: str) -> list[str]:
    """What most scripts do: MX, then A and AAAA of each host, sequentially."""
    out = []
    for mx in sorted(resolver.resolve(domain, "MX"), key=lambda r: r.preference):
        for rtype in ("A", "AAAA"):
            with contextlib.suppress(dns.resolver.NoAnswer):
                out += [r.address for r in resolver.resolve(mx.exchange, rtype)]
    return out


def measure(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def import_time_ms(statement: str, repeat: int = 7) -> float:
    """Median cumulative -X importtime of the mxselect modules, with bytecode caching on
    (as in any installed package; a warm-up run writes the .pyc files)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    samples = []
    for i in range(repeat + 1):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", statement],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=env,
        ).stderr
        if i == 0:
            continue
        total = 0
        for line in out.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[2].strip() in ("mxselect", "mxselect.dnspython"):
                total += int(parts[1])
        samples.append(total / 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=25.0, help="ms added to every answer")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rtt = args.delay / 1000
    with FaultServer(ZONE, default_delay_ms=args.delay) as server:
        sync, aio = resolvers(server.port)
        cases: list[tuple[str, Callable[[], object]]] = []
        for domain, label in (
            ("bench.test", "3 MX, dual stack"),
            ("implicit.bench.test", "implicit MX"),
            ("cnamed.bench.test", "CNAME'd exchange"),
        ):
            cases.append(
                (
                    f"select_targets   {label}",
                    lambda d=domain: mxselect.select_targets(d, resolver=sync),
                )
            )
            cases.append(
                (
                    f"aselect_targets  {label}",
                    lambda d=domain: asyncio.run(mxselect.aselect_targets(d, resolver=aio)),
                )
            )
        cases.append(("naive dnspython loop  3 MX, dual stack", lambda: naive(sync, "bench.test")))
        print(f"cold selection latency, {args.delay:g} ms per DNS answer, {args.repeat} runs")
        print(f"{'case':42} {'median ms':>10} {'min':>7} {'max':>7} {'RTT':>6}")
        results = {}
        for name, fn in cases:
            fn()  # warm up the interpreter (not the DNS: the server has no cache)
            times = measure(fn, args.repeat)
            med = statistics.median(times)
            results[name] = med
            print(
                f"{name:42} {med * 1000:10.1f} {min(times) * 1000:7.1f} "
                f"{max(times) * 1000:7.1f} {med / rtt:6.2f}"
            )
        ratio = (
            results["naive dnspython loop  3 MX, dual stack"]
            / results["aselect_targets  3 MX, dual stack"]
        )
        print(f"naive loop / aselect_targets: {ratio:.2f}x")
    bare = import_time_ms("import mxselect")
    with_adapter = import_time_ms("import mxselect, mxselect.dnspython")
    print(f"import mxselect: {bare:.1f} ms cumulative (-X importtime, median of 7)")
    print(f"import mxselect + dnspython adapter: {with_adapter:.1f} ms")


if __name__ == "__main__":
    main()
