"""CachingResolver's entries and asyncio flights after issue 19's speed work: a hit reuses the
answer served at the same remaining TTL (never past expiry, never with another status), and
the one task that asks a batch upstream is the flight every other caller joins -- single
``aresolve`` calls and batches alike."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from zones import HEADER, zone

from mxselect import Answer, Query, RRType, Security, Status
from mxselect.cache import CachingResolver
from mxselect.testing import FakeResolver

MX = Query("example.org.", RRType.MX)
A = Query("mx.example.org.", RRType.A)
AAAA = Query("mx.example.org.", RRType.AAAA)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_hit_reuses_the_answer_of_the_same_second_and_counts_down_to_expiry() -> None:
    clock = Clock()
    fake = zone("@ 300 MX 10 mx\nmx 300 A 192.0.2.1")
    cache = CachingResolver(fake, clock=clock)
    cache.resolve(MX)
    clock.now += 10.2
    first = cache.resolve(MX)
    clock.now += 0.3  # still 289 whole seconds left
    assert cache.resolve(MX) is first
    assert first.ttl == 289
    clock.now += 1.0
    later = cache.resolve(MX)
    assert later.ttl == 288
    assert later.mx == first.mx
    clock.now += 288.2  # 0.3 s left: 0 whole seconds, not expired yet
    assert cache.resolve(MX).ttl == 0
    assert fake.queries == [MX]
    clock.now += 0.3  # expired: RFC 2308 §5, never used again
    cache.resolve(MX)
    assert fake.queries == [MX, MX]


def test_a_served_answer_keeps_the_status_and_the_security_it_was_kept_with() -> None:
    clock = Clock()
    fake = FakeResolver.from_zone(HEADER + "@ 300 MX 10 mx", security=Security.SECURE)
    cache = CachingResolver(fake, clock=clock)
    cache.resolve(A)  # mx.example.org does not exist: NXDOMAIN, kept name-wide
    clock.now += 5
    for query in (A, AAAA, MX):
        answer = cache.resolve(query)
        assert answer.security is Security.SECURE
    assert cache.resolve(A).status is cache.resolve(AAAA).status is Status.NXDOMAIN
    assert cache.resolve(A).ttl == cache.resolve(AAAA).ttl
    assert fake.queries.count(A) == 1
    assert AAAA not in fake.queries  # RFC 2308 §5
    assert cache.resolve(MX).status is Status.RECORDS


def test_a_cname_targets_nxdomain_is_not_kept_under_the_target_in_a_batch() -> None:
    """RFC 5452 §6 through the asyncio batch path: the NXDOMAIN at the end of a chain answers
    the question asked only."""
    fake = zone("@ 300 MX 10 mx\nmx 300 CNAME gone.example.org.")
    cache = CachingResolver(fake)
    gone = Query("gone.example.org.", RRType.A)

    async def main() -> list[Answer]:
        return await cache.aresolve_batch([A])

    (answer,) = asyncio.run(main())
    assert answer.status is Status.NXDOMAIN
    asyncio.run(cache.aresolve_batch([gone]))
    assert gone in fake.queries  # asked: not answered from A's chain


class Held:
    """A batch upstream that holds its answers until released and records each call."""

    def __init__(self, fake: FakeResolver) -> None:
        self.fake = fake
        self.calls: list[tuple[str, tuple[Query, ...]]] = []
        self.release = asyncio.Event()

    async def aresolve(self, query: Query) -> Answer:
        self.calls.append(("one", (query,)))
        await self.release.wait()
        return self.fake.answer(query)

    async def aresolve_batch(self, queries: Sequence[Query]) -> list[Answer]:
        self.calls.append(("batch", tuple(queries)))
        await self.release.wait()
        return [self.fake.answer(q) for q in queries]


def test_single_queries_and_batches_join_each_others_flights() -> None:
    upstream = Held(zone("@ 300 MX 10 mx\nmx 300 A 192.0.2.1\nmx 300 AAAA 2001:db8::1"))
    cache = CachingResolver(upstream)

    async def main() -> tuple[Answer, list[Answer], Answer]:
        single = asyncio.ensure_future(cache.aresolve(A))
        await asyncio.sleep(0)
        batch = asyncio.ensure_future(cache.aresolve_batch([A, AAAA, AAAA]))
        await asyncio.sleep(0)
        late = asyncio.ensure_future(cache.aresolve(AAAA))
        await asyncio.sleep(0)
        upstream.release.set()
        return await single, await batch, await late

    single, batch, late = asyncio.run(main())
    assert upstream.calls == [("one", (A,)), ("batch", (AAAA,))]
    assert batch[0] is single
    assert batch[1] is batch[2] is late
    assert (cache.stats.upstream, cache.stats.coalesced) == (2, 3)
    assert not cache._tasks


def test_a_lifetime_spent_in_a_joined_flight_does_not_strand_the_joiner() -> None:
    upstream = Held(zone("@ 300 MX 10 mx\nmx 300 A 192.0.2.1"))
    cache = CachingResolver(upstream)

    async def main() -> tuple[list[Answer], list[Answer]]:
        leader = asyncio.ensure_future(cache.aresolve_batch([A], lifetime=0.05))
        await asyncio.sleep(0)
        joiner = asyncio.ensure_future(cache.aresolve_batch([A]))
        return await leader, await joiner

    leader, joiner = asyncio.run(main())
    assert leader[0].status is joiner[0].status is Status.TEMPFAIL
    assert len(cache) == 0
    assert not cache._tasks
