"""CachingResolver.aresolve_batch: the asyncio driver's batch through the cache -- hits at
once, misses in one upstream batch call (no task per query with StubResolver), identical
questions asked once across tasks, cancellation and interruption never strand a waiter."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

import mxselect
from mxselect import Answer, Query, RRType, Status
from mxselect.cache import CachingResolver
from mxselect.stub import StubResolver
from mxselect.testing import FakeResolver

ZONE = """
example.org. 300 IN MX 10 mx1.example.org.
example.org. 300 IN MX 20 mx2.example.org.
mx1.example.org. 300 IN A 192.0.2.1
mx1.example.org. 300 IN AAAA 2001:db8::1
mx2.example.org. 300 IN A 192.0.2.2
"""

A1 = Query("mx1.example.org", RRType.A)
A2 = Query("mx2.example.org", RRType.A)
AAAA1 = Query("mx1.example.org", RRType.AAAA)


class BatchUpstream:
    """An asyncio batch resolver over a FakeResolver that records each batch call, and can
    hold its answers until released."""

    def __init__(self, fake: FakeResolver, *, hold: bool = False) -> None:
        self.fake = fake
        self.batches: list[tuple[Query, ...]] = []
        self.single: list[Query] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.fail: BaseException | None = None

    async def aresolve(self, query: Query) -> Answer:
        self.single.append(query)
        await self.release.wait()
        return self.fake.answer(query)

    async def aresolve_batch(self, queries: Sequence[Query]) -> list[Answer]:
        self.batches.append(tuple(queries))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return [self.fake.answer(q) for q in queries]


def fake() -> FakeResolver:
    return FakeResolver.from_zone(ZONE)


def test_misses_go_upstream_in_one_batch_and_hits_not_at_all() -> None:
    upstream = BatchUpstream(fake())
    cache = CachingResolver(upstream)

    async def main() -> tuple[list[Answer], list[Answer]]:
        first = await cache.aresolve_batch([A1, AAAA1, A2])
        second = await cache.aresolve_batch([A1, AAAA1, A2])
        return first, second

    first, second = asyncio.run(main())
    assert upstream.batches == [(A1, AAAA1, A2)]
    assert upstream.single == []
    assert [a.addresses for a in first] == [a.addresses for a in second]
    assert [str(a.addresses[0]) for a in first] == ["192.0.2.1", "2001:db8::1", "192.0.2.2"]
    assert (cache.stats.hits, cache.stats.misses, cache.stats.upstream) == (3, 3, 3)


def test_the_same_question_twice_in_a_batch_is_asked_once() -> None:
    upstream = BatchUpstream(fake())
    cache = CachingResolver(upstream)
    answers = asyncio.run(cache.aresolve_batch([A1, A1, A2]))
    assert upstream.batches == [(A1, A2)]
    assert answers[0] == answers[1]
    assert cache.stats.coalesced == 1


def test_concurrent_batches_share_a_question_in_flight() -> None:
    """RFC 5452 §5 in spirit, and the cache's own promise: an identical question asked by
    another task while one is in flight waits for it instead of going upstream again."""
    upstream = BatchUpstream(fake(), hold=True)
    cache = CachingResolver(upstream)

    async def main() -> tuple[list[Answer], list[Answer]]:
        one = asyncio.ensure_future(cache.aresolve_batch([A1, AAAA1]))
        await asyncio.sleep(0)
        two = asyncio.ensure_future(cache.aresolve_batch([A1, A2]))
        await asyncio.sleep(0)
        upstream.release.set()
        return await one, await two

    one, two = asyncio.run(main())
    assert upstream.batches == [(A1, AAAA1), (A2,)]
    assert one[0] == two[0]
    assert two[1].status is Status.RECORDS


def test_a_cancelled_caller_does_not_cancel_the_query_others_wait_for() -> None:
    upstream = BatchUpstream(fake(), hold=True)
    cache = CachingResolver(upstream)

    async def main() -> list[Answer]:
        leader = asyncio.ensure_future(cache.aresolve_batch([A1]))
        await asyncio.sleep(0)
        follower = asyncio.ensure_future(cache.aresolve_batch([A1]))
        await asyncio.sleep(0)
        leader.cancel()
        await asyncio.sleep(0)
        upstream.release.set()
        with pytest.raises(asyncio.CancelledError):
            await leader
        return await follower

    (answer,) = asyncio.run(main())
    assert answer.status is Status.RECORDS
    assert upstream.batches == [(A1,)]
    assert not cache._tasks  # nothing left in flight


def test_an_upstream_error_is_a_temporary_failure_for_every_waiter_and_not_kept() -> None:
    upstream = BatchUpstream(fake(), hold=True)
    upstream.fail = RuntimeError("boom")
    cache = CachingResolver(upstream, tempfail_ttl=0)

    async def main() -> tuple[list[Answer], list[Answer]]:
        one = asyncio.ensure_future(cache.aresolve_batch([A1, A2]))
        await asyncio.sleep(0)
        two = asyncio.ensure_future(cache.aresolve_batch([A2]))
        await asyncio.sleep(0)
        upstream.release.set()
        return await one, await two

    one, two = asyncio.run(main())
    assert {a.status for a in (*one, *two)} == {Status.TEMPFAIL}
    assert "boom" in one[0].reason
    assert not cache._tasks
    upstream.fail = None
    again = asyncio.run(cache.aresolve_batch([A1]))
    assert again[0].status is Status.RECORDS  # the failure was not kept


def test_lifetime_spent_is_a_temporary_failure_not_kept() -> None:
    upstream = BatchUpstream(fake(), hold=True)  # never released
    cache = CachingResolver(upstream)
    (answer,) = asyncio.run(cache.aresolve_batch([A1], lifetime=0.05))
    assert answer.status is Status.TEMPFAIL
    assert "timeout after 0.05 s" in answer.reason
    assert len(cache) == 0
    assert not cache._tasks


def test_an_upstream_without_a_batch_method_gets_concurrent_single_queries() -> None:
    class Single:
        def __init__(self) -> None:
            self.asked: list[Query] = []
            self.fake = fake()

        async def aresolve(self, query: Query) -> Answer:
            self.asked.append(query)
            return self.fake.answer(query)

    upstream = Single()
    cache = CachingResolver(upstream)
    answers = asyncio.run(cache.aresolve_batch([A1, A2, A1]))
    assert sorted(upstream.asked, key=str) == sorted([A1, A2], key=str)
    assert answers[0] == answers[2]


@pytest.mark.e2e
def test_aselect_targets_through_the_cache_uses_the_stubs_batch(
    fault_server, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """With CachingResolver(StubResolver) -- what `mxselect -f` runs -- a selection's misses
    reach the stub as batches: its one-query aresolve is never called."""
    server = fault_server(ZONE.replace("example.org.", "example.test."))
    stub = StubResolver([("127.0.0.1", server.port)], timeout=2, lifetime=2)

    async def refuse(*args: object, **kwargs: object) -> Answer:
        raise AssertionError("aresolve called: the batch path was not used")

    monkeypatch.setattr(StubResolver, "aresolve", refuse)
    cache = CachingResolver(stub)

    async def main() -> tuple[mxselect.Selection, mxselect.Selection]:
        first = await mxselect.aselect_targets("example.test", resolver=cache)
        second = await mxselect.aselect_targets("example.test", resolver=cache)
        return first, second

    first, second = asyncio.run(main())
    assert [str(t.address) for t in first] == ["2001:db8::1", "192.0.2.1", "192.0.2.2"]
    assert [str(t.address) for t in second] == [str(t.address) for t in first]
    assert cache.stats.hits >= 4
