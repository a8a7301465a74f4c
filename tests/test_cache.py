"""CachingResolver: each TTL rule (RFC 1123, 2181, 2308), LRU, coalescing, thread safety."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path

import pytest
from zones import zone

import mxselect
from mxselect import Answer, DNSTemporaryError, Query, RRType, Status
from mxselect.cache import CachingResolver
from mxselect.testing import FakeResolver

MX = Query("example.org.", RRType.MX)
A = Query("mx.example.org.", RRType.A)


class Clock:
    """A fake monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Scripted:
    """A sync + async resolver that answers from a dict and counts the queries."""

    def __init__(self, answers: dict[Query, Answer]) -> None:
        self.answers = answers
        self.calls: list[Query] = []
        self.lock = threading.Lock()

    def resolve(self, query: Query) -> Answer:
        with self.lock:
            self.calls.append(query)
        return self.answers[query]

    async def aresolve(self, query: Query) -> Answer:
        return self.resolve(query)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def cached(resolver: object, clock: Clock, **kwargs: int) -> CachingResolver:
    return CachingResolver(resolver, clock=clock, **kwargs)


def test_R974_a_positive_answer_kept_for_its_ttl_then_asked_again(clock: Clock) -> None:
    fake = zone("@ 300 MX 10 mx\nmx A 192.0.2.1")
    cache = cached(fake, clock)
    assert cache.resolve(MX).ttl == 300
    clock.advance(299.5)
    again = cache.resolve(MX)
    assert (again.mx, again.ttl) == (fake.answer(MX).mx, 0)
    assert fake.queries == [MX]
    clock.advance(0.5)  # expired exactly now
    cache.resolve(MX)
    assert fake.queries == [MX, MX]


def test_cached_answers_carry_the_remaining_ttl(clock: Clock) -> None:
    fake = zone("@ 300 MX 10 mx\nmx 200 A 192.0.2.1")
    cache = cached(fake, clock)
    cache.resolve(MX)
    clock.advance(120)
    assert cache.resolve(MX).ttl == 180
    assert cache.stats.hits == 1


def test_selection_ttl_is_the_remaining_validity_with_cached_answers(clock: Clock) -> None:
    """Selection.ttl = min TTL of the answers used: with cached answers, what is left."""
    fake = zone("@ 300 MX 10 mx\nmx 200 A 192.0.2.1\nmx 600 AAAA 2001:db8::1")
    cache = cached(fake, clock)
    assert mxselect.select_targets("example.org", resolver=cache).ttl == 200
    clock.advance(150)
    assert mxselect.select_targets("example.org", resolver=cache).ttl == 50
    assert len(fake.queries) == 3
    clock.advance(50)  # the A record expired: asked again, the others still cached
    assert mxselect.select_targets("example.org", resolver=cache).ttl == 100
    assert fake.queries[3:] == [A]


def test_R1123_6_1_2_1_a_ttl_zero_used_but_not_kept(clock: Clock) -> None:
    fake = zone("@ 0 MX 10 mx\nmx A 192.0.2.1")
    cache = cached(fake, clock)
    assert cache.resolve(MX).mx
    cache.resolve(MX)
    assert fake.queries == [MX, MX]
    assert len(cache) == 0


@pytest.mark.parametrize("ttl", [0x80000001, 2**31, 2**32 - 1, -5])
def test_R2181_8_a_top_bit_ttl_counts_as_zero(clock: Clock, ttl: int) -> None:
    upstream = Scripted({MX: Answer.from_mx([(10, "mx.example.org.")], ttl=ttl)})
    cache = cached(upstream, clock)
    cache.resolve(MX)
    cache.resolve(MX)
    assert len(upstream.calls) == 2
    assert cache.lifetime(upstream.answers[MX]) == 0


def test_positive_answer_without_ttl_is_not_kept(clock: Clock) -> None:
    upstream = Scripted({MX: Answer.from_mx([(10, "mx.example.org.")])})
    cache = cached(upstream, clock)
    cache.resolve(MX)
    cache.resolve(MX)
    assert len(upstream.calls) == 2


def test_max_ttl_caps_positive_answers(clock: Clock) -> None:
    fake = zone("@ 604800 MX 10 mx")
    cache = cached(fake, clock, max_ttl=3600)
    cache.resolve(MX)
    clock.advance(3599)
    assert cache.resolve(MX).ttl == 1
    clock.advance(1)
    cache.resolve(MX)
    assert len(fake.queries) == 2


def test_R2308_5_a_nodata_kept_for_the_soa_negative_ttl(clock: Clock) -> None:
    """SOA TTL 3600, MINIMUM 300: NODATA is kept 300 s (min of the two); at 300 s, re-asked."""
    fake = FakeResolver.from_zone(
        "$ORIGIN example.org.\n@ 3600 SOA ns hostmaster 1 3600 900 604800 300\nmx A 192.0.2.1"
    )
    cache = cached(fake, clock)
    first = cache.resolve(MX)
    assert (first.status, first.ttl) == (Status.NODATA, 300)
    clock.advance(299)
    assert cache.resolve(MX).ttl == 1
    clock.advance(1)
    cache.resolve(MX)
    assert fake.queries == [MX, MX]


def test_R2308_5_a_soa_ttl_below_minimum_wins(clock: Clock) -> None:
    fake = FakeResolver.from_zone(
        "$ORIGIN example.org.\n@ 60 SOA ns hostmaster 1 3600 900 604800 300\nmx A 192.0.2.1"
    )
    cache = cached(fake, clock)
    assert cache.resolve(MX).ttl == 60
    clock.advance(60)
    cache.resolve(MX)
    assert len(fake.queries) == 2


def test_R2308_5_b_nxdomain_answers_every_type_of_the_name(clock: Clock) -> None:
    fake = zone("@ MX 10 mx")
    cache = cached(fake, clock)
    nx_a = Query("gone.example.org.", RRType.A)
    nx_aaaa = Query("gone.example.org.", RRType.AAAA)
    assert cache.resolve(nx_a).status is Status.NXDOMAIN
    clock.advance(10)
    other = cache.resolve(nx_aaaa)
    assert (other.status, other.ttl) == (Status.NXDOMAIN, 50)
    assert fake.queries == [nx_a]


def test_R2308_5_b_nodata_does_not_answer_another_type(clock: Clock) -> None:
    fake = zone("mx A 192.0.2.1")
    cache = cached(fake, clock)
    aaaa = Query("mx.example.org.", RRType.AAAA)
    assert cache.resolve(aaaa).status is Status.NODATA
    assert cache.resolve(A).status is Status.RECORDS
    assert fake.queries == [aaaa, A]


def test_R2308_5_c_negative_answer_without_soa_not_kept(clock: Clock) -> None:
    upstream = Scripted({MX: Answer.nodata(), A: Answer.nxdomain()})
    cache = cached(upstream, clock)
    for _ in range(2):
        cache.resolve(MX)
        cache.resolve(A)
    assert len(upstream.calls) == 4


def test_R2308_5_d_negative_ttl_capped_at_three_hours_by_default(clock: Clock) -> None:
    fake = FakeResolver.from_zone(
        "$ORIGIN example.org.\n@ 604800 SOA ns hostmaster 1 3600 900 604800 604800\n"
    )
    cache = cached(fake, clock)
    cache.resolve(A)
    clock.advance(3 * 3600 - 1)
    assert cache.resolve(A).ttl == 1
    clock.advance(1)
    cache.resolve(A)
    assert len(fake.queries) == 2


def test_R2308_5_d_negative_cap_configurable_up_to_one_day() -> None:
    assert CachingResolver(FakeResolver(), max_negative_ttl=86400).max_negative_ttl == 86400
    with pytest.raises(ValueError, match="max_negative_ttl"):
        CachingResolver(FakeResolver(), max_negative_ttl=86401)


def test_R5452_6_nxdomain_through_a_cname_is_kept_only_for_the_question(clock: Clock) -> None:
    """An NXDOMAIN at the end of a CNAME chain is part of the answer to the question asked,
    not a fact about the chain's last name (RFC 5452 §6): asking that name goes upstream."""
    fake = zone("alias CNAME gone\n@ MX 10 mx")
    cache = cached(fake, clock)
    first = cache.resolve(Query("alias.example.org.", RRType.A))
    assert first.status is Status.NXDOMAIN
    assert first.canonical_name == "gone.example.org"
    assert cache.resolve(Query("alias.example.org.", RRType.A)).status is Status.NXDOMAIN
    assert cache.resolve(Query("gone.example.org.", RRType.AAAA)).status is Status.NXDOMAIN
    assert [str(q) for q in fake.queries] == ["alias.example.org. A", "gone.example.org. AAAA"]


VICTIM_MX = Query("victim.example.", RRType.MX)
RND1_MX = Query("rnd1.attacker.test.", RRType.MX)


def _poisoning_upstream() -> Scripted:
    """What one accepted reply for ``rnd1.attacker.test MX`` says (CNAME victim.example +
    NXDOMAIN, 3 h negative TTL), and the truth about victim.example."""
    return Scripted(
        {
            RND1_MX: Answer.nxdomain(
                ttl=10800, canonical_name="victim.example.", aliases=["rnd1.attacker.test."]
            ),
            VICTIM_MX: Answer.from_mx([(10, "mx.victim.example.")], ttl=300),
            Query("mx.victim.example.", RRType.A): Answer.from_addresses(["192.0.2.25"], ttl=300),
            Query("mx.victim.example.", RRType.AAAA): Answer.nodata(ttl=300),
        }
    )


def test_R5452_6_cross_name_nxdomain_not_cached_sync(clock: Clock) -> None:
    """RFC 5452 §6: a reply is trusted only for the question asked. One reply for
    rnd1.attacker.test MX naming victim.example as a missing CNAME target must not make
    victim.example a cached NXDOMAIN (before: 550 5.1.2 with no query, for 3 hours)."""
    upstream = _poisoning_upstream()
    cache = cached(upstream, clock)
    assert cache.resolve(RND1_MX).status is Status.NXDOMAIN
    selection = mxselect.select_targets("victim.example", resolver=cache)
    assert [str(t.address) for t in selection.targets] == ["192.0.2.25"]
    assert VICTIM_MX in upstream.calls


def test_R5452_6_cross_name_nxdomain_not_cached_async(clock: Clock) -> None:
    upstream = _poisoning_upstream()
    cache = cached(upstream, clock)

    async def main() -> mxselect.Selection:
        assert (await cache.aresolve(RND1_MX)).status is Status.NXDOMAIN
        return await mxselect.aselect_targets("victim.example", resolver=cache)

    selection = asyncio.run(main())
    assert [str(t.address) for t in selection.targets] == ["192.0.2.25"]
    assert VICTIM_MX in upstream.calls


def test_R2308_7_1_a_tempfail_kept_at_most_the_configured_time(clock: Clock) -> None:
    fake = zone("@ MX 10 mx")
    fake.fail("example.org", "MX")
    cache = cached(fake, clock, tempfail_ttl=120)
    assert cache.resolve(MX).status is Status.TEMPFAIL
    clock.advance(119)
    again = cache.resolve(MX)
    assert (again.status, again.reason) == (Status.TEMPFAIL, "SERVFAIL (fake) (cached)")
    assert len(fake.queries) == 1
    fake.clear_faults()
    clock.advance(1)
    assert cache.resolve(MX).status is Status.RECORDS
    assert len(fake.queries) == 2


def test_R1123_6_1_3_3_b_tempfail_cached_by_default_for_30_seconds(clock: Clock) -> None:
    fake = zone("@ MX 10 mx")
    fake.fail("example.org", "MX")
    cache = cached(fake, clock)
    cache.resolve(MX)
    clock.advance(29)
    cache.resolve(MX)
    clock.advance(1)
    cache.resolve(MX)
    assert len(fake.queries) == 2


def test_R2308_7_1_a_tempfail_caching_off_and_bounded() -> None:
    fake = zone("@ MX 10 mx")
    fake.fail("example.org", "MX")
    cache = CachingResolver(fake, tempfail_ttl=0)
    cache.resolve(MX)
    cache.resolve(MX)
    assert len(fake.queries) == 2
    with pytest.raises(ValueError, match="tempfail_ttl"):
        CachingResolver(fake, tempfail_ttl=301)


def test_cached_tempfail_stays_temporary_through_a_selection(clock: Clock) -> None:
    fake = zone("@ MX 10 mx")
    fake.fail("example.org", "MX")
    cache = cached(fake, clock)
    with pytest.raises(DNSTemporaryError, match=r"SERVFAIL \(fake\)$"):
        mxselect.select_targets("example.org", resolver=cache)
    with pytest.raises(DNSTemporaryError, match=r"SERVFAIL \(fake\) \(cached\)$"):
        mxselect.select_targets("example.org", resolver=cache)
    assert len(fake.queries) == 1


def test_lru_drops_the_least_recently_used(clock: Clock) -> None:
    fake = zone("a A 192.0.2.1\nb A 192.0.2.2\nc A 192.0.2.3")
    cache = cached(fake, clock, max_entries=2)
    qa, qb, qc = (Query(f"{n}.example.org.", RRType.A) for n in "abc")
    cache.resolve(qa)
    cache.resolve(qb)
    cache.resolve(qa)  # a is now the most recent
    cache.resolve(qc)  # evicts b
    assert len(cache) == 2
    cache.resolve(qa)
    cache.resolve(qb)
    assert fake.queries == [qa, qb, qc, qb]
    assert cache.stats.evictions == 2


def test_resolver_exception_is_a_tempfail_and_releases_waiters(clock: Clock) -> None:
    class Broken:
        def resolve(self, query: Query) -> Answer:
            raise OSError("network down")

    cache = cached(Broken(), clock, tempfail_ttl=0)
    answer = cache.resolve(MX)
    assert (answer.status, answer.reason) == (
        Status.TEMPFAIL,
        "resolver raised OSError: network down",
    )
    assert cache.resolve(MX).status is Status.TEMPFAIL  # no flight left behind


def test_async_only_resolver_and_sync_resolver_in_threads(clock: Clock) -> None:
    fake = zone("@ MX 10 mx\nmx A 192.0.2.1")

    class OnlyAsync:
        aresolve = fake.aresolve

    cache = cached(OnlyAsync(), clock)
    assert asyncio.run(cache.aresolve(MX)).mx
    assert asyncio.run(cache.aresolve(MX)).mx
    assert fake.queries == [MX]
    with pytest.raises(TypeError):
        cache.resolve(A)
    sync_only = cached(Scripted({MX: fake.answer(MX)}), clock)
    assert asyncio.run(sync_only.aresolve(MX)).mx


class Gate:
    """Answers only once `expected` callers have joined the in-flight query."""

    def __init__(self, cache_ref: list[CachingResolver], expected: int) -> None:
        self.fake = zone("@ MX 10 mx")
        self.cache_ref = cache_ref
        self.expected = expected
        self.calls = 0
        self.lock = threading.Lock()

    def resolve(self, query: Query) -> Answer:
        with self.lock:
            self.calls += 1
        deadline = time.monotonic() + 10
        while self.cache_ref[0].stats.coalesced < self.expected and time.monotonic() < deadline:
            time.sleep(0.001)
        return self.fake.answer(query)

    async def aresolve(self, query: Query) -> Answer:
        with self.lock:
            self.calls += 1
        while self.cache_ref[0].stats.coalesced < self.expected:
            await asyncio.sleep(0)
        return self.fake.answer(query)


def test_coalescing_100_threads_one_upstream_query() -> None:
    ref: list[CachingResolver] = []
    gate = Gate(ref, expected=99)
    cache = CachingResolver(gate)
    ref.append(cache)
    results: list[Answer] = []
    barrier = threading.Barrier(100)

    def worker() -> None:
        barrier.wait()
        results.append(cache.resolve(MX))

    threads = [threading.Thread(target=worker) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert gate.calls == 1
    assert len(results) == 100
    assert {r.mx for r in results} == {gate.fake.answer(MX).mx}
    assert (cache.stats.upstream, cache.stats.coalesced) == (1, 99)


def test_coalescing_100_tasks_one_upstream_query() -> None:
    ref: list[CachingResolver] = []
    gate = Gate(ref, expected=99)
    cache = CachingResolver(gate)
    ref.append(cache)

    async def main() -> list[Answer]:
        return await asyncio.gather(*(cache.aresolve(MX) for _ in range(100)))

    results = asyncio.run(main())
    assert gate.calls == 1
    assert len(results) == 100
    assert {r.mx for r in results} == {gate.fake.answer(MX).mx}
    assert (cache.stats.upstream, cache.stats.coalesced) == (1, 99)


def test_cancelled_waiter_does_not_cancel_the_shared_query() -> None:
    fake = zone("@ MX 10 mx")
    fake.delay("example.org", "MX", 0.05)
    cache = CachingResolver(fake)

    async def main() -> Answer:
        first = asyncio.create_task(cache.aresolve(MX))
        second = asyncio.create_task(cache.aresolve(MX))
        await asyncio.sleep(0.01)
        first.cancel()
        return await second

    assert asyncio.run(main()).mx
    assert len(fake.queries) == 1


def test_thread_safety_stress(clock: Clock) -> None:
    """16 threads x 1500 random queries over 60 names, a tiny LRU and a moving clock: every
    answer is the upstream's, and the counters add up."""
    body = "\n".join(f"h{i} {30 + i} A 192.0.2.{i}" for i in range(40))
    fake = zone(body)
    names = [f"h{i}.example.org." for i in range(60)]  # 20 of them NXDOMAIN
    cache = CachingResolver(fake, max_entries=25, clock=clock)
    errors: list[str] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(1500):
            query = Query(rng.choice(names), rng.choice([RRType.A, RRType.AAAA]))
            if rng.random() < 0.01:
                with lock:
                    clock.advance(1)
            got = cache.resolve(query)
            want = fake.answer(query)
            if (got.status, got.addresses) != (want.status, want.addresses):
                errors.append(f"{query}: {got} != {want}")
            if got.ttl is not None and want.ttl is not None and not 0 <= got.ttl <= want.ttl:
                errors.append(f"{query}: ttl {got.ttl} > {want.ttl}")

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert cache.stats.hits + cache.stats.misses == 16 * 1500
    assert cache.stats.upstream + cache.stats.coalesced == cache.stats.misses
    assert cache.stats.upstream == len(fake.queries)
    assert cache.stats.hits > 0
    assert len(cache) <= 25


def test_resolve_batch_answers_hits_inline_and_misses_upstream(clock: Clock) -> None:
    fake = zone("a A 192.0.2.1\nb A 192.0.2.2\nc A 192.0.2.3")
    cache = cached(fake, clock)
    qa, qb, qc = (Query(f"{n}.example.org.", RRType.A) for n in "abc")
    cache.resolve(qb)
    answers = cache.resolve_batch([qa, qb, qc])
    assert [str(a.addresses[0]) for a in answers] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert sorted(map(str, fake.queries)) == sorted(map(str, [qa, qb, qc]))
    assert (cache.stats.hits, cache.stats.upstream) == (1, 3)


def test_import_cache_loads_no_dnspython_nor_asyncio() -> None:
    import json
    import subprocess
    import sys

    code = (
        "import sys, json, mxselect.cache; "
        "print(json.dumps([m for m in ('dns', 'asyncio', 'socket') if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(mxselect.__file__).resolve().parent.parent,
    ).stdout
    assert json.loads(out) == []


ZONE_BODY = "@ MX 10 mx1\n@ MX 20 mx2\nmx1 A 192.0.2.1\nmx2 AAAA 2001:db8::2\n"


class LifetimeRecorder:
    """A resolver that takes the drivers' ``lifetime`` (as the dnspython adapters do), records
    it, and answers from a FakeResolver after ``delay`` seconds (the ``lifetime`` keyword is
    what the drivers look for: mxselect.typing.LifetimeResolver)."""

    def __init__(self, fake: FakeResolver, delay: float = 0.0) -> None:
        self.fake, self.delay = fake, delay
        self.lifetimes: list[float | None] = []
        self.lock = threading.Lock()

    def resolve(self, query: Query, lifetime: float | None = None) -> Answer:
        with self.lock:
            self.lifetimes.append(lifetime)
        time.sleep(self.delay)
        return self.fake.resolve(query)

    async def aresolve(self, query: Query, lifetime: float | None = None) -> Answer:
        with self.lock:
            self.lifetimes.append(lifetime)
        await asyncio.sleep(self.delay)
        return self.fake.resolve(query)


def test_deadline_lifetime_passes_through_the_cache() -> None:
    """Under a deadline, the time left reaches the wrapped resolver, sync and async."""
    recorder = LifetimeRecorder(zone(ZONE_BODY))
    cache = CachingResolver(recorder)
    mxselect.select_targets("example.org", resolver=cache, deadline=5)
    assert recorder.lifetimes
    assert all(t is not None and 0 < t <= 5 for t in recorder.lifetimes)
    recorder.lifetimes.clear()
    cache.clear()
    asyncio.run(mxselect.aselect_targets("example.org", resolver=cache, deadline=5))
    assert recorder.lifetimes
    assert all(t is not None and 0 < t <= 5 for t in recorder.lifetimes)


def test_deadline_with_an_async_only_resolver_behind_the_cache() -> None:
    """A wrapped resolver that takes no lifetime is called without one (no TypeError)."""

    class AsyncOnly:
        def __init__(self) -> None:
            self.fake = zone(ZONE_BODY)

        async def aresolve(self, query: Query) -> Answer:
            return self.fake.resolve(query)

    cache = CachingResolver(AsyncOnly())
    selection = asyncio.run(mxselect.aselect_targets("example.org", resolver=cache, deadline=5))
    assert len(selection) > 0


def test_deadline_under_load_does_not_starve_the_thread_pool() -> None:
    """60 threads select at once through one cache with a deadline and a slow upstream: all
    succeed -- more callers than the sync driver's 32 pool threads cause no spurious 4.4.3."""
    fake = FakeResolver()
    for i in range(60):
        fake.add(f"d{i}.example", "MX", (10, f"mx{i}.example"))
        fake.add(f"mx{i}.example", "A", f"192.0.2.{i + 1}")
    cache = CachingResolver(LifetimeRecorder(fake, delay=0.05))
    errors: list[BaseException] = []
    start = threading.Barrier(60)

    def select(i: int) -> None:
        start.wait()
        try:
            mxselect.select_targets(f"d{i}.example", resolver=cache, deadline=3)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=select, args=(i,)) for i in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
