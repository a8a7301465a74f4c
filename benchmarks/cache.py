"""Warm-cache selections per second through :class:`mxselect.cache.CachingResolver`.

A 3-MX dual-stack domain (7 queries per selection) is selected once to fill the cache, then
repeatedly: every query is a cache hit, so the figure is the cost of mxselect's selection plus
the cache, with no DNS at all. For comparison: the same selections straight from the in-memory
FakeResolver (no cache), the raw cache hits per second, and 4 threads sharing one cache.

    python benchmarks/cache.py [--smoke]      (also part of benchmarks/run.py)

Offline (the upstream is the in-memory fake); prints figures, asserts no timing.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import mxselect  # noqa: E402
from mxselect import Query, RRType  # noqa: E402
from mxselect.cache import CachingResolver  # noqa: E402
from mxselect.testing import FakeResolver  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, Table, standalone  # noqa: E402

NAME = "cache"

ZONE = """
$ORIGIN bench.test.
$TTL 3600
@      SOA   ns hostmaster 1 3600 900 604800 60
@      MX    10 mx1
@      MX    10 mx2
@      MX    20 backup
mx1    A     192.0.2.1
mx1    AAAA  2001:db8::1
mx2    A     192.0.2.2
mx2    AAAA  2001:db8::2
backup A     192.0.2.3
backup AAAA  2001:db8::3
"""


def _rate(run: Callable[[], None], count: int) -> float:
    """Calls per second of ``run`` over ``count`` calls (best of 3 rounds)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(count):
            run()
        best = min(best, time.perf_counter() - start)
    return count / best


def run(smoke: bool = False) -> Report:
    """Measure; ``smoke`` runs a few iterations only (for CI)."""
    n = 50 if smoke else 3000
    fake = FakeResolver.from_zone(ZONE)
    cache = CachingResolver(fake)
    rng = random.Random(1)

    def sync_select() -> None:
        mxselect.select_targets("bench.test", resolver=cache, rng=rng)

    def uncached_select() -> None:
        mxselect.select_targets("bench.test", resolver=fake, rng=rng)

    sync_select()  # fill the cache
    upstream_before = len(fake.queries)
    sync_rate = _rate(sync_select, n)
    assert len(fake.queries) == upstream_before, "warm selections must not reach upstream"
    uncached_rate = _rate(uncached_select, n)

    async def async_batch() -> float:
        await mxselect.aselect_targets("bench.test", resolver=cache, rng=rng)
        start = time.perf_counter()
        for _ in range(n):
            await mxselect.aselect_targets("bench.test", resolver=cache, rng=rng)
        return n / (time.perf_counter() - start)

    async_rate = max(asyncio.run(async_batch()) for _ in range(3))

    query = Query("mx1.bench.test.", RRType.A)
    hit_rate = _rate(lambda: cache.resolve(query), n * 10)

    threads = 4
    per_thread = max(1, n // threads)

    def worker() -> None:
        local = random.Random(2)
        for _ in range(per_thread):
            mxselect.select_targets("bench.test", resolver=cache, rng=local)

    start = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    threaded_rate = threads * per_thread / (time.perf_counter() - start)

    base = uncached_rate
    table = Table(
        "Warm cache: CachingResolver in front of the resolver (no DNS at all)",
        ["path", "per second", "× uncached selection"],
        [
            ["select_targets, warm cache", f"{sync_rate:,.0f}", f"{sync_rate / base:.2f}"],
            ["aselect_targets, warm cache", f"{async_rate:,.0f}", f"{async_rate / base:.2f}"],
            [
                "select_targets, 4 threads sharing one cache (total)",
                f"{threaded_rate:,.0f}",
                f"{threaded_rate / base:.2f}",
            ],
            ["select_targets, in-memory FakeResolver, no cache", f"{base:,.0f}", "1.00"],
            ["raw cache hits (`resolve`)", f"{hit_rate:,.0f}", "—"],
        ],
        [
            f"{'smoke' if smoke else f'{n} selections per round, best of 3 rounds'}; a 3-MX "
            f"dual-stack domain (7 queries per selection); upstream queries in all: "
            f"{cache.stats.upstream}",
            "a warm selection costs about what the core costs: the cache adds little",
        ],
    )
    return Report(tables=[table])


if __name__ == "__main__":
    standalone(run, __doc__)
