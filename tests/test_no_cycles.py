"""A selection leaves no reference cycle behind, failed ones included.

A failed selection's error is raised inside the core (its traceback holding the core's frames,
which hold the plan, which holds the error) and again by ``result()`` through the driver's
frame (which holds the plan): each a cycle that only the cyclic garbage collector frees. Under
load every failed selection then kept its frames, answers and plan alive until a collection,
and the collections themselves cost CPU (benchmarks/bulk.py, warm: 38 -> 23 µs of collector
time per domain, -6.7 % CPU per selection). Refcounting alone must free everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
from collections.abc import Callable, Iterator

import pytest

import mxselect
from mxselect import Answer, Query, RRType, SelectionPlan
from mxselect.testing import FakeResolver

ZONE = """\
$TTL 300
ok.test.        MX 10 mx.ok.test.
mx.ok.test.     A 192.0.2.1
mx.ok.test.     AAAA 2001:db8::1
null.test.      MX 0 .
nohost.test.    MX 10 missing.nohost.test.
temp.test.      MX 10 mx.temp.test.
"""


@pytest.fixture
def resolver() -> FakeResolver:
    fake = FakeResolver.from_zone(ZONE)
    fake.fail("temp.test", "MX")
    return fake


@pytest.fixture
def no_collector() -> Iterator[None]:
    """The cyclic collector off (and everything collectable collected before)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _garbage_after(work: Callable[[], None]) -> int:
    """How many objects ``work`` left that only the cyclic collector can free."""
    gc.collect()
    work()
    return gc.collect()


DOMAINS = ["ok.test", "null.test", "nohost.test", "temp.test", "missing.test", "[192.0.2.7]"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_select_targets_leaves_no_cycle(
    domain: str, resolver: FakeResolver, no_collector: None
) -> None:
    def work() -> None:
        # (no pytest.raises: its ExceptionInfo and the frame holding it make a cycle)
        traces = []
        for _ in range(3):
            try:
                mxselect.select_targets(domain, resolver=resolver, rng=random.Random(1))
            except mxselect.MXSelectError as exc:
                traces.append(exc.trace)
        assert all(traces)  # an error still carries its explanation

    assert _garbage_after(work) == 0


@pytest.mark.parametrize("domain", DOMAINS)
def test_aselect_targets_leaves_no_cycle(
    domain: str, resolver: FakeResolver, no_collector: None
) -> None:
    async def main() -> int:
        async def work() -> None:
            for _ in range(3):
                with contextlib.suppress(mxselect.MXSelectError):
                    await mxselect.aselect_targets(domain, resolver=resolver, rng=random.Random(1))

        await work()  # (the loop's own first-use objects)
        gc.collect()
        await work()
        return gc.collect()

    assert asyncio.run(main()) == 0


def test_plan_result_raises_the_same_error_again_without_a_cycle(no_collector: None) -> None:
    def work() -> None:
        plan = SelectionPlan("null.test", rng=random.Random(1))
        (query,) = plan.pending
        plan.feed(query, Answer.from_mx([(0, ".")]))
        errors: list[mxselect.MXSelectError] = []
        for _ in range(2):
            try:
                plan.result()
            except mxselect.NullMXError as exc:
                errors.append(exc)
        # The caller's own frame is in the traceback: it lets go of the plan, as the drivers
        # do; the core's frames hold nothing.
        del plan
        assert errors[0] is errors[1]
        assert errors[0].trace[-1].kind == "outcome"
        del errors

    assert _garbage_after(work) == 0


def test_abandoned_plan_leaves_no_cycle(no_collector: None) -> None:
    def work() -> None:
        plan = SelectionPlan("ok.test", rng=random.Random(1))
        assert plan.pending == (Query("ok.test.", RRType.MX),)
        plan.abandon("the deadline expired")
        reasons = []
        try:
            plan.result()
        except mxselect.DNSTemporaryError as exc:
            reasons.append(str(exc))
        del plan
        assert "deadline" in reasons[0]

    assert _garbage_after(work) == 0
