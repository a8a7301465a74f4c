"""Benchmark 4: ``import mxselect`` time and memory per in-flight selection.

Import: ``python -X importtime -c "import mxselect"`` in a fresh interpreter, the cumulative
time of the ``mxselect`` line (everything it imports: attrs, idna, ipaddress...), with bytecode
caching on -- as for any installed package -- after one warm-up run that writes the ``.pyc``
files (this machine sets PYTHONDONTWRITEBYTECODE=1; the child runs without it). Then the same
with the dnspython adapter (``mxselect.dnspython``, which loads dnspython).

Memory: ``tracemalloc`` while 1,000 ``aselect_targets`` are in flight at once, each holding its
MX answer and waiting for its address batch: (traced memory then - before) / 1,000. Once with a
resolver that parks the address queries (mxselect's own state: plan, generator, tasks), once
with the dnspython adapter against a loopback server that delays every answer by 300 ms (peak
traced memory: mxselect plus dnspython's sockets and messages in flight).

    python benchmarks/footprint.py [--smoke]
"""

from __future__ import annotations

import asyncio
import gc
import random
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

from _common import (
    ROOT,
    Report,
    Table,
    Target,
    async_resolver,
    bytecode_env,
    median,
    server_process,
    spread,
    standalone,
    three_mx_zone,
)

import mxselect
from mxselect import Answer, Query, RRType
from mxselect.stub import StubResolver

NAME = "footprint"

ZONE = three_mx_zone("mem.test.")


def import_times(statement: str, modules: tuple[str, ...], repeat: int) -> list[float]:
    """ms: the cumulative -X importtime of ``modules`` in fresh interpreters."""
    samples = []
    for i in range(repeat + 1):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", statement],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=bytecode_env(),
        ).stderr
        if i == 0:
            continue  # writes the .pyc files
        total = 0
        for line in err.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[2].strip() in modules:
                total += int(parts[1])
        samples.append(total / 1000)
    return samples


class _Parked:
    """Answers MX at once; parks every address query until ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.parked = 0
        self.mx = Answer.from_mx(
            [(10, "mx1.mem.test."), (10, "mx2.mem.test."), (20, "mx3.mem.test.")], ttl=300
        )

    async def aresolve(self, query: Query) -> Answer:
        if query.rtype is RRType.MX:
            return self.mx
        self.parked += 1
        await self.release.wait()
        return Answer.from_addresses(
            ["2001:db8::1" if query.rtype is RRType.AAAA else "192.0.2.1"], ttl=300
        )


async def _parked(count: int) -> float:
    resolver = _Parked()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    tasks = [
        asyncio.ensure_future(
            mxselect.aselect_targets(f"d{i}.mem.test", resolver=resolver, rng=random.Random(i))
        )
        for i in range(count)
    ]
    while resolver.parked < 6 * count:
        await asyncio.sleep(0.001)
    gc.collect()
    during = tracemalloc.get_traced_memory()[0]
    resolver.release.set()
    await asyncio.gather(*tasks)
    return (during - before) / count


async def _adapter(port: int, count: int, stub: bool = False) -> float:
    resolver: object
    if stub:
        resolver = StubResolver([("127.0.0.1", port)], timeout=30.0, lifetime=30.0)
    else:
        resolver = async_resolver(port, lifetime=30.0)
        resolver.timeout = 30.0
    await mxselect.aselect_targets("mem.test", resolver=resolver)  # imports, caches
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    await asyncio.gather(
        *(
            mxselect.aselect_targets("mem.test", resolver=resolver, rng=random.Random(i))
            for i in range(count)
        )
    )
    return (tracemalloc.get_traced_memory()[1] - before) / count


def run(smoke: bool = False) -> Report:
    repeat, count = (1, 20) if smoke else (9, 1000)
    bare = import_times("import mxselect", ("mxselect",), repeat)
    adapter = import_times(
        "import mxselect, mxselect.dnspython", ("mxselect", "mxselect.dnspython"), repeat
    )
    imports = Table(
        f"import time (-X importtime, cumulative, bytecode cached, {repeat} fresh interpreters)",
        ["import", "median ms", "min–max ms"],
    )
    imports.rows.append(["import mxselect", f"{median(bare):.1f}", spread(bare)])
    imports.rows.append(
        ["import mxselect, mxselect.dnspython", f"{median(adapter):.1f}", spread(adapter)]
    )
    stub_import = import_times(
        "import mxselect, mxselect.stub", ("mxselect", "mxselect.stub"), repeat
    )
    imports.rows.append(
        ["import mxselect, mxselect.stub", f"{median(stub_import):.1f}", spread(stub_import)]
    )
    imports.notes.append(
        "Cumulative time of the mxselect line (its imports included: attrs, idna, ipaddress, "
        "enum...); the second row adds the adapter line, which loads dnspython; the third the "
        "stub resolver's line (no dnspython)."
    )
    tracemalloc.start()
    try:
        parked = asyncio.run(_parked(count))
        with tempfile.TemporaryDirectory() as tmp:
            zone = Path(tmp) / "mem.zone"
            zone.write_text(ZONE)
            delay = "300" if not smoke else "5"
            with server_process("delay", str(zone), delay) as port:
                with_dns = asyncio.run(_adapter(port, count))
                with_stub = asyncio.run(_adapter(port, count, stub=True))
    finally:
        tracemalloc.stop()
    memory = Table(
        f"Memory per in-flight selection ({count} concurrent, tracemalloc)",
        ["case", "KiB per selection"],
    )
    memory.rows.append(
        ["mxselect alone (plans, generators, tasks; resolver parks)", f"{parked / 1024:.1f}"]
    )
    memory.rows.append(
        ["with the dnspython adapter, 3 MX, loopback server (peak)", f"{with_dns / 1024:.1f}"]
    )
    memory.rows.append(
        ["with StubResolver, 3 MX, loopback server (peak)", f"{with_stub / 1024:.1f}"]
    )
    report = Report([imports, memory])
    report.targets.append(
        Target("import mxselect", "≤ 30 ms", f"{median(bare):.1f} ms", median(bare) <= 30)
    )
    return report


def main() -> None:
    standalone(run, __doc__)


if __name__ == "__main__":
    main()
