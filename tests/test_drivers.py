"""The sync and asyncio drivers, the public plan API, and resolver plumbing."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import dns.asyncresolver
import dns.resolver
import pytest

import mxselect
from mxselect import Answer, DNSTemporaryError, Query, RRType, SelectionPlan
from mxselect.testing import FakeResolver

ZONE = """
$ORIGIN example.org.
$TTL 300
@     SOA  ns hostmaster 1 3600 900 604800 60
@     MX   10 a
@     MX   10 b
@     MX   20 c
a     A    192.0.2.1
a     AAAA 2001:db8::1
b     A    192.0.2.2
c     A    192.0.2.3
"""


class SlowResolver:
    """A plain sync resolver (no resolve_batch): every answer takes `delay` seconds."""

    def __init__(self, delay: float) -> None:
        self.fake = FakeResolver.from_zone(ZONE)
        self.delay = delay
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def resolve(self, query: Query) -> Answer:
        with self.lock:
            self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        return self.fake.answer(query)


def test_sync_driver_runs_the_address_batch_concurrently() -> None:
    """6 address queries of 0.1 s each: the sync selection takes about 2 round trips, not 7."""
    resolver = SlowResolver(0.1)
    started = time.perf_counter()
    selection = mxselect.select_targets("example.org", resolver=resolver, rng=random.Random(1))
    elapsed = time.perf_counter() - started
    assert len(selection) == 4
    assert elapsed < 0.45, elapsed
    assert len(resolver.threads) > 1


def test_async_driver_runs_the_address_batch_concurrently() -> None:
    """With 0.1 s per answer the asyncio selection takes about 0.2 s (2 round trips)."""
    fake = FakeResolver.from_zone(ZONE)
    for name in ("example.org", "a.example.org", "b.example.org", "c.example.org"):
        fake.delay(name, None, 0.1)
    started = time.perf_counter()
    selection = asyncio.run(mxselect.aselect_targets("example.org", resolver=fake))
    elapsed = time.perf_counter() - started
    assert len(selection) == 4
    assert elapsed < 0.45, elapsed


def test_sync_and_async_agree() -> None:
    """Same zone, same seed: the two drivers give equal selections."""
    for seed in range(20):
        sync = mxselect.select_targets(
            "example.org", resolver=FakeResolver.from_zone(ZONE), rng=random.Random(seed)
        )
        asynchronous = asyncio.run(
            mxselect.aselect_targets(
                "example.org", resolver=FakeResolver.from_zone(ZONE), rng=random.Random(seed)
            )
        )
        assert sync == asynchronous


def test_async_driver_accepts_a_sync_resolver() -> None:
    """A resolver with only resolve() runs in threads under aselect_targets."""
    resolver = SlowResolver(0.0)
    selection = asyncio.run(mxselect.aselect_targets("example.org", resolver=resolver))
    assert len(selection) == 4


class Raising:
    def resolve(self, query: Query) -> Answer:
        raise ConnectionResetError("socket closed")

    async def aresolve(self, query: Query) -> Answer:
        raise ConnectionResetError("socket closed")


class Confused:
    def resolve(self, query: Query) -> object:
        return ["not", "an", "answer"]

    async def aresolve(self, query: Query) -> object:
        return None


def test_a_raising_resolver_defers_never_bounces() -> None:
    """A resolver that raises is a temporary failure naming the exception."""
    with pytest.raises(DNSTemporaryError, match="resolver raised ConnectionResetError"):
        mxselect.select_targets("example.org", resolver=Raising())
    with pytest.raises(DNSTemporaryError, match="resolver raised ConnectionResetError"):
        asyncio.run(mxselect.aselect_targets("example.org", resolver=Raising()))


def test_a_resolver_returning_garbage_defers() -> None:
    """A resolver returning something other than an Answer is a temporary failure."""
    with pytest.raises(DNSTemporaryError, match="expected an mxselect Answer"):
        mxselect.select_targets("example.org", resolver=Confused())
    with pytest.raises(DNSTemporaryError, match="expected an mxselect Answer"):
        asyncio.run(mxselect.aselect_targets("example.org", resolver=Confused()))


def test_exchange_failure_from_a_raising_resolver_is_temporary() -> None:
    """The resolver raising only for one exchange's queries: that host is skipped."""

    class Partly(FakeResolver):
        def answer(self, query: Query) -> Answer:
            if query.name == "a.example.org.":
                raise OSError("network unreachable")
            return super().answer(query)

    fake = Partly()
    fake.load_zone(ZONE)
    selection = mxselect.select_targets("example.org", resolver=fake, rng=random.Random(0))
    assert "a.example.org" not in [h.name for h in selection.hosts]


def test_not_a_resolver_is_a_type_error() -> None:
    """Passing something that is not a resolver is a programming error: TypeError."""
    with pytest.raises(TypeError, match="resolve"):
        mxselect.select_targets("example.org", resolver=object())
    with pytest.raises(TypeError, match="aresolve"):
        asyncio.run(mxselect.aselect_targets("example.org", resolver=42))


def test_invalid_domain_raised_before_the_resolver_is_touched() -> None:
    """Bad input fails before the resolver is even checked or built (no query possible)."""
    with pytest.raises(mxselect.InvalidDomainError):
        mxselect.select_targets("bad_domain.example", resolver=object())


def test_dnspython_resolvers_are_accepted_as_is() -> None:
    """A dns.resolver.Resolver / dns.asyncresolver.Resolver is wrapped by the adapter; a
    closed loopback port gives a temporary failure, not a crash."""
    sync = dns.resolver.Resolver(configure=False)
    sync.nameservers = ["127.0.0.1"]
    sync.port = 9  # discard: nothing answers on loopback
    sync.lifetime = 0.3
    with pytest.raises(DNSTemporaryError, match=r"MX lookup for example\.org: "):
        mxselect.select_targets("example.org", resolver=sync)
    asynchronous = dns.asyncresolver.Resolver(configure=False)
    asynchronous.nameservers = ["127.0.0.1"]
    asynchronous.port = 9
    asynchronous.lifetime = 0.3
    with pytest.raises(DNSTemporaryError):
        asyncio.run(mxselect.aselect_targets("example.org", resolver=asynchronous))
    # A sync dnspython resolver under asyncio runs in a thread.
    with pytest.raises(DNSTemporaryError):
        asyncio.run(mxselect.aselect_targets("example.org", resolver=sync))


def test_resolver_none_uses_the_system_dnspython_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """resolver=None builds the dnspython adapter with the system configuration (here
    replaced by a loopback resolver, so no test ever asks the machine's resolver)."""
    built: list[object] = []

    def fake_system(resolver: dns.resolver.Resolver, filename: object = None) -> None:
        # What reading /etc/resolv.conf would set, pointed at a loopback port nobody serves.
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = 9
        resolver.lifetime = 0.2
        built.append(resolver)

    monkeypatch.setattr(dns.resolver.Resolver, "read_resolv_conf", fake_system)
    with pytest.raises(DNSTemporaryError):
        mxselect.select_targets("example.org")
    assert len(built) == 1


# -- the public plan ---------------------------------------------------------------------


def test_plan_can_be_fed_one_answer_at_a_time_in_any_order() -> None:
    """A callback-style driver: answers arrive one by one, in reverse order."""
    fake = FakeResolver.from_zone(ZONE)
    plan = SelectionPlan("example.org", rng=random.Random(3))
    rounds = 0
    while not plan.done:
        rounds += 1
        for query in reversed(plan.pending):
            plan.feed(query, fake.answer(query))
    assert rounds == 2
    expected = mxselect.select_targets("example.org", resolver=fake, rng=random.Random(3))
    assert plan.result() == expected
    assert plan.queries_sent == 7


def test_plan_rejects_misuse() -> None:
    """Feeding an unknown query, answering twice, a non-Answer, or asking early fail loudly."""
    plan = SelectionPlan("example.org")
    with pytest.raises(RuntimeError, match="still needs answers"):
        plan.result()
    with pytest.raises(ValueError, match="not a pending query"):
        plan.feed(Query("other.example.", RRType.MX), Answer.nodata())
    with pytest.raises(TypeError, match="expected an mxselect Answer"):
        plan.feed(plan.pending[0], "NOERROR")  # type: ignore[arg-type]
    query = plan.pending[0]
    plan.feed(query, Answer.from_mx([(10, "mx.example.org.")]))
    with pytest.raises(ValueError, match="not a pending query"):
        plan.feed(query, Answer.nodata())


def test_plan_for_literal_is_done_at_once() -> None:
    """An address literal needs no answer at all."""
    plan = SelectionPlan("[IPv6:2001:db8::25]")
    assert (plan.done, plan.pending, str(plan.result().targets[0].address)) == (
        True,
        (),
        "2001:db8::25",
    )
