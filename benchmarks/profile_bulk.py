"""Where the CPU of a bulk run goes: the profile behind the bulk figures (not a benchmark).

Runs the bulk setup of ``bulk.py`` (Knot + Unbound + the 10 ms upstream proxy, 1,000 domains)
and prints:

1. the client's CPU by component for mxselect and for the floor, warm cache, sampled with
   pyinstrument (each sample goes to the innermost frame in mxselect -- its transport
   ``stub.py``, its codec ``_wire.py`` or the rest, the selection --, dnspython or asyncio;
   stdlib helpers and system calls count for their caller);
2. every process's CPU during a cold run of mxselect and of email-validator (client, Unbound,
   Knot, the proxy) against the cores of the machine (``/proc/stat``), and the median time of
   one selection: whether a run is bound by latency or by CPU.

``--raw`` instead measures the transport alone: raw ``aresolve_batch`` calls (4 A queries
each, ``--concurrency`` in flight; ``--shape single``: 4 ``aresolve`` calls gathered instead,
``--shape one``: 4 ``aresolve_batch`` calls of one query in turn) against a loopback server
in a child process that answers from a cache at once, for
:class:`~mxselect.stub.StubResolver` and the previous pooled design
(``benchmarks/_pooled_stub.py``) in alternating rounds, and prints the client's user and
system CPU per query (``getrusage``): what a socket per query costs, without the selection,
Unbound or Knot.

``--resolver`` picks mxselect's resolver (``stub``, the benchmark's headline; ``pooled``, the
previous design of the stub, ``benchmarks/_pooled_stub.py``; or ``dnspython``),
``--concurrency`` the selections in flight (default: bulk.py's).

    python benchmarks/profile_bulk.py [--smoke] [--resolver stub|pooled|dnspython] [--concurrency N]
    python benchmarks/profile_bulk.py --raw [--rounds N] [--concurrency N]
        [--shape batch|single|one]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import bulk
from _common import Table, async_resolver, server_process
from harness.dnsenv import free_port

_COMPONENTS = (
    (f"{os.sep}mxselect{os.sep}stub.py", "mxselect.stub: the transport (system calls included)"),
    (f"{os.sep}_pooled_stub.py", "mxselect.stub: the transport (system calls included)"),
    (f"{os.sep}mxselect{os.sep}_wire.py", "mxselect._wire: the codec"),
    (f"{os.sep}mxselect{os.sep}", "mxselect: the selection (core, drivers, answers)"),
    (f"{os.sep}dns{os.sep}", "dnspython"),
    (f"{os.sep}asyncio{os.sep}", "asyncio event loop"),
)


def _component(stack: list[str]) -> str:
    for frame in reversed(stack):
        path = frame.split("\x00")[1] if "\x00" in frame else ""
        for marker, name in _COMPONENTS:
            if marker in path:
                return name
    return "other (benchmark loop, GC, ...)"


def cpu_by_component(fn: Callable[[], object]) -> tuple[Counter[str], float]:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    fn()
    profiler.stop()
    session = profiler.last_session
    assert session is not None
    shares: Counter[str] = Counter()
    for stack, seconds in session.frame_records:
        shares[_component(stack)] += seconds
    return shares, session.cpu_time


def _proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--resolver", choices=("stub", "pooled", "dnspython"), default="stub")
    parser.add_argument("--concurrency", type=int, default=bulk.CONCURRENCY)
    parser.add_argument("--raw", action="store_true", help="the transport alone (see above)")
    parser.add_argument("--rounds", type=int, default=20, help="with --raw (default 20)")
    parser.add_argument(
        "--shape",
        choices=tuple(RAW_SHAPES),
        default="batch",
        help="with --raw: how the 4 queries of a unit are asked (default batch)",
    )
    args = parser.parse_args()
    width = args.concurrency
    if args.raw:
        raw_transport(2 if args.smoke else args.rounds, width, args.shape)
        return
    count = 20 if args.smoke else bulk.DOMAINS
    zone_text, domains = bulk.generate(count)
    with tempfile.TemporaryDirectory(prefix="mxselect-profile-") as tmp:
        auth_port = free_port(5300)
        with server_process("delayproxy", str(auth_port), str(bulk.UPSTREAM_DELAY_MS)) as proxy:
            env = bulk.BulkEnv(Path(tmp), zone_text, proxy, auth_port)
            with env:
                aio = async_resolver(env.resolver_port)
                resolver: object = aio
                if args.resolver == "stub":
                    resolver = bulk.StubResolver([("127.0.0.1", env.resolver_port)])
                elif args.resolver == "pooled":  # the previous design, for comparison
                    resolver = bulk.PooledStubResolver([("127.0.0.1", env.resolver_port)])
                recorded = bulk.record_batches(aio, domains)

                def selections() -> object:
                    return bulk.run_mxselect(resolver, domains, width)  # type: ignore[arg-type]

                def floor() -> object:
                    if isinstance(resolver, bulk.StubResolver | bulk.PooledStubResolver):
                        return bulk.run_stub_floor(resolver, recorded)
                    return bulk.run_floor(aio, recorded)

                selections()  # warm
                table = Table(
                    f"Client CPU by component, warm cache, {count} domains, {args.resolver} "
                    f"resolver, {width} in flight (pyinstrument)",
                    ["component", "mxselect run", "floor run"],
                )
                mx, mx_cpu = cpu_by_component(selections)
                fl, fl_cpu = cpu_by_component(floor)
                total_mx, total_fl = sum(mx.values()), sum(fl.values())
                for name in sorted(set(mx) | set(fl), key=lambda n: -mx[n]):
                    table.rows.append(
                        [name, f"{mx[name] / total_mx:.0%}", f"{fl[name] / total_fl:.0%}"]
                    )
                table.notes.append(
                    f"Sampled CPU under the profiler: mxselect run {mx_cpu:.2f} s, floor run "
                    f"{fl_cpu:.2f} s (the profiler inflates both; read the shares)."
                )
                print(table.render())
                pids = {
                    "client (this process)": os.getpid(),
                    "unbound": env._procs["unbound"].pid,
                    "knotd": env._procs["knotd"].pid,
                }
                proxy_pid = _find_proxy(proxy)
                if proxy_pid:
                    pids["upstream delay proxy"] = proxy_pid
                sync = bulk.make_sync_resolver(env.resolver_port)
                runs = {
                    f"mxselect, {args.resolver}, {width} in flight": lambda: _timed(
                        resolver, domains, width
                    ),
                    "email-validator, 32 threads": lambda: bulk.run_email_validator(sync, domains),
                }
                measured = []
                for label, run in runs.items():
                    env.flush()
                    before = {name: _proc_cpu(pid) for name, pid in pids.items()}
                    machine = _jiffies()
                    started = time.perf_counter()
                    result = run()
                    wall = time.perf_counter() - started
                    busy = _busy_since(machine)
                    used = {name: _proc_cpu(pid) - before[name] for name, pid in pids.items()}
                    measured.append((label, wall, busy, used, result))
    cores = os.cpu_count() or 1
    for label, wall, busy, used, result in measured:
        table = Table(
            f"CPU of every process during a cold run: {label} ({count / wall:.0f} domains/s, "
            f"{wall:.2f} s wall, {cores} cores)",
            ["process", "CPU s", "share of one core"],
        )
        for name, seconds in used.items():
            table.rows.append([name, f"{seconds:.2f}", f"{seconds / wall:.0%}"])
        total = sum(used.values())
        table.rows.append(["these processes", f"{total:.2f}", f"{total / wall:.0%}"])
        table.rows.append(["the machine (/proc/stat)", "", f"{busy:.0%} of {cores * 100}%"])
        if isinstance(result, list):
            table.notes.append(
                f"one selection, start to answer: median {statistics.median(result) * 1000:.1f}"
                f" ms, 90th percentile {sorted(result)[len(result) * 9 // 10] * 1000:.1f} ms"
            )
        print(table.render())


RAW_NAMES = 500
RAW_QUERIES = 3000


#: How ``--raw`` asks each unit of 4 queries (``--shape``).
RAW_SHAPES = {
    "batch": "one aresolve_batch of 4 queries",
    "single": "4 aresolve calls gathered, the floor's path",
    "one": "4 aresolve_batch calls of one query in turn, a selection's usual batch",
}


def raw_transport(rounds: int, width: int, shape: str = "batch") -> None:
    """Client CPU per query of raw queries, StubResolver vs the previous pooled design,
    asked as ``shape`` says (:data:`RAW_SHAPES`)."""
    import asyncio
    import gc
    import random
    import resource

    from mxselect import Query, RRType

    zone = "$ORIGIN raw.test.\n$TTL 300\n@ SOA ns hostmaster 1 3600 900 604800 60\n" + "".join(
        f"h{i} A 198.51.100.{i % 250 + 1}\n" for i in range(RAW_NAMES)
    )
    queries = [Query(f"h{i}.raw.test.", RRType.A) for i in range(RAW_NAMES)]

    def run(resolver: bulk.StubResolver | bulk.PooledStubResolver, count: int) -> None:
        async def main() -> None:
            todo = list(range(count // 4))

            async def worker() -> None:
                while todo:
                    k = todo.pop()
                    batch = [queries[(k * 4 + j) % RAW_NAMES] for j in range(4)]
                    if shape == "batch":
                        answers = await resolver.aresolve_batch(batch)
                    elif shape == "single":
                        answers = await asyncio.gather(*(resolver.aresolve(q) for q in batch))
                    else:
                        answers = [(await resolver.aresolve_batch([q]))[0] for q in batch]
                    assert all(a.addresses for a in answers), answers

            await asyncio.gather(*(worker() for _ in range(width)))

        asyncio.run(main())

    with tempfile.TemporaryDirectory(prefix="mxselect-raw-") as tmp:
        zone_file = Path(tmp) / "zone"
        zone_file.write_text(zone)
        with server_process("delay", str(zone_file), "0") as port:
            resolvers = {
                "StubResolver (a socket per query)": bulk.StubResolver([("127.0.0.1", port)]),
                "previous pooled design": bulk.PooledStubResolver([("127.0.0.1", port)]),
            }
            for resolver in resolvers.values():
                run(resolver, 1000)  # warm up (the server's cache too)
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in resolvers}
            order = list(resolvers.items())
            rng = random.Random(5)
            for _ in range(rounds):
                rng.shuffle(order)
                for name, resolver in order:
                    gc.collect()
                    before = resource.getrusage(resource.RUSAGE_SELF)
                    run(resolver, RAW_QUERIES)
                    after = resource.getrusage(resource.RUSAGE_SELF)
                    samples[name].append(
                        (
                            (after.ru_utime - before.ru_utime) / RAW_QUERIES,
                            (after.ru_stime - before.ru_stime) / RAW_QUERIES,
                        )
                    )
    table = Table(
        f"Client CPU per query, raw queries ({RAW_SHAPES[shape]}, {width} units in flight), "
        f"loopback server answering at once, {rounds} rounds of {RAW_QUERIES} queries",
        ["transport", "CPU µs/query (median)", "user µs", "system µs", "min–max µs"],
    )
    for name, values in samples.items():
        total = [u + s for u, s in values]
        table.rows.append(
            [
                name,
                f"{statistics.median(total) * 1e6:.1f}",
                f"{statistics.median([u for u, _ in values]) * 1e6:.1f}",
                f"{statistics.median([s for _, s in values]) * 1e6:.1f}",
                f"{min(total) * 1e6:.1f}–{max(total) * 1e6:.1f}",
            ]
        )
    table.notes.append(
        f"load average {os.getloadavg()[0]:.2f} (1 min) at the end; rounds alternate in a "
        "shuffled order; both use this tree's codec (mxselect._wire)."
    )
    print(table.render())


def _timed(resolver: object, domains: list[str], width: int) -> list[float]:
    """aselect_targets over ``domains``, ``width`` in flight; each selection's wall time."""
    import random

    import mxselect

    times: list[float] = []

    async def one(domain: str) -> None:
        started = time.perf_counter()
        with contextlib.suppress(mxselect.MXSelectError):
            await mxselect.aselect_targets(
                domain,
                resolver=resolver,  # type: ignore[arg-type]
                rng=random.Random(7),
            )
        times.append(time.perf_counter() - started)

    bulk.in_flight(domains, one, width)
    return times


def _jiffies() -> tuple[int, int]:
    """(busy, all) clock ticks of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)  # idle and iowait are not busy


def _busy_since(before: tuple[int, int]) -> float:
    """The machine's busy share since ``before``, in cores (1.0 = one core busy)."""
    busy, total = _jiffies()
    return (os.cpu_count() or 1) * (busy - before[0]) / max(1, total - before[1])


def _find_proxy(port: int) -> int | None:
    """The pid of the child process serving ``port`` (the proxy), from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\x00")
        except OSError:
            continue
        if b"delayproxy" in cmd and os.getppid() != int(entry.name):
            try:
                if int((entry / "stat").read_text().split()[3]) == os.getpid():
                    return int(entry.name)
            except (OSError, ValueError):
                continue
    return None


if __name__ == "__main__":
    main()
