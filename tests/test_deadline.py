"""The overall deadline (``deadline=`` on select_targets / aselect_targets) and cancellation.

R1123-6.1.3.3-a: "an implementation MUST give up and return a soft error" -- when the deadline
expires the result is a DNSTemporaryError naming the queries still unanswered, never a hang,
never a permanent error. Over the wire with a server that never answers (fault server
``drop``), with a dnspython lifetime far longer than the deadline. Cancelling an
aselect_targets task leaves no task, thread or socket behind.

The elapsed-time checks are hang guards with a wide margin, not speed targets.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time

import pytest

import mxselect
from mxselect import DNSTemporaryError, Query, RRType, SelectionPlan
from mxselect.testing import FakeResolver

ZONE = """
$ORIGIN example.org.
$TTL 300
@    SOA  ns hostmaster 1 3600 900 604800 60
@    MX   10 mx1
@    MX   20 mx2
mx1  A    192.0.2.1
mx2  A    192.0.2.2
mx2  AAAA 2001:db8::2
"""
#: How long past the deadline a selection may end (a loaded CI machine): a hang guard.
SLACK = 2.0


def run(api: str, resolver: object, deadline: float | None, **kwargs: object) -> object:
    if api == "sync":
        return mxselect.select_targets(
            "example.org", resolver=resolver, deadline=deadline, **kwargs
        )  # type: ignore[arg-type]
    return asyncio.run(
        mxselect.aselect_targets("example.org", resolver=resolver, deadline=deadline, **kwargs)  # type: ignore[arg-type]
    )


def test_R1123_6_1_3_3_a_abandon_names_the_pending_queries() -> None:
    """SelectionPlan.abandon: a DNSTemporaryError naming exactly the unanswered queries,
    keeping what the answers fed so far established (warnings, trace)."""
    plan = SelectionPlan("example.org", rng=random.Random(1))
    fake = FakeResolver.from_zone(ZONE)
    (mx,) = plan.pending
    plan.feed(mx, fake.answer(mx))
    first, *_ = plan.pending
    plan.feed(first, fake.answer(first))
    left = plan.pending
    plan.abandon("the deadline of 1 s expired")
    assert plan.done
    assert plan.pending == ()
    with pytest.raises(DNSTemporaryError) as info:
        plan.result()
    assert info.value.reason == (
        "the deadline of 1 s expired; no answer yet for: " + ", ".join(map(str, left))
    )
    assert (info.value.reply_code, info.value.status) == (451, "4.4.3")
    assert info.value.trace[-1].kind == "outcome"
    plan.abandon("again")  # no effect once done
    with pytest.raises(DNSTemporaryError, match="1 s expired"):
        plan.result()


@pytest.mark.parametrize("api", ["sync", "async"])
def test_deadline_with_a_slow_fake(api: str) -> None:
    """The fake answers mx1's A after 1 s; a 0.2 s deadline gives DNSTemporaryError naming
    that query, about 0.2 s later (not 1 s)."""
    fake = FakeResolver.from_zone(ZONE)
    fake.delay("mx1.example.org", "A", 1.0)
    started = time.perf_counter()
    with pytest.raises(DNSTemporaryError) as info:
        run(api, fake, 0.2)
    elapsed = time.perf_counter() - started
    assert "mx1.example.org. A" in info.value.reason
    assert "deadline of 0.2 s expired" in info.value.reason
    assert elapsed < 0.9


@pytest.mark.parametrize("api", ["sync", "async"])
def test_deadline_not_reached_changes_nothing(api: str) -> None:
    """A deadline that is not reached gives the same selection as none."""
    fake = FakeResolver.from_zone(ZONE)
    with_deadline = run(api, fake, 5.0, rng=random.Random(4))
    without = run(api, fake, None, rng=random.Random(4))
    assert with_deadline == without


@pytest.mark.parametrize("deadline", [0, -1, float("nan"), "1", True, [1]])
@pytest.mark.parametrize("api", ["sync", "async"])
def test_bad_deadline_is_refused_before_any_query(api: str, deadline: object) -> None:
    """A deadline that is not a positive number: ValueError/TypeError, no query sent."""
    fake = FakeResolver.from_zone(ZONE)
    with pytest.raises((ValueError, TypeError)):
        run(api, fake, deadline)  # type: ignore[arg-type]
    assert fake.queries == []


@pytest.mark.e2e
@pytest.mark.parametrize("where", ["mx", "address"])
@pytest.mark.parametrize("api", ["sync", "async"])
def test_deadline_against_a_server_that_never_answers(
    api: str,
    where: str,
    fault_server,  # type: ignore[no-untyped-def]
) -> None:
    """The fault server drops the MX query (or mx1's A query); the dnspython lifetime is
    30 s: the deadline (0.3 s; 2 s when the MX must be answered before it) ends the selection
    with DNSTemporaryError naming the query."""
    from harness.resolvers import make_dnspython_resolver

    server = fault_server(ZONE)
    name, rtype = ("example.org.", "MX") if where == "mx" else ("mx1.example.org.", "A")
    # Dropping mx1's A, the MX query must be answered within the deadline for the A query to
    # be the one named: a generous deadline there, so that a loaded machine cannot make the
    # MX the query still unanswered.
    deadline = 0.3 if where == "mx" else 2.0
    server.set_rule(name, rtype, "drop")
    raw = make_dnspython_resolver(
        server.port, asynchronous=api == "async", lifetime=30.0, timeout=30.0
    )
    returned = threading.Event()
    resolver: object = raw
    if api == "sync":
        from mxselect.dnspython import DnspythonResolver

        class Watched(DnspythonResolver):
            def resolve(self, query: Query, lifetime: float | None = None) -> mxselect.Answer:
                answer = super().resolve(query, lifetime)
                if (query.name, query.rtype) == (name, RRType(rtype)):
                    returned.set()
                return answer

        resolver = Watched(raw)
    started = time.perf_counter()
    with pytest.raises(DNSTemporaryError) as info:
        run(api, resolver, deadline)
    elapsed = time.perf_counter() - started
    assert f"no answer yet for: {name} {rtype}" in info.value.reason
    assert (name, rtype, "udp") in server.queries
    assert elapsed < deadline + SLACK
    if api == "sync":
        # The query's thread got the time left as its dnspython lifetime: it ends too,
        # instead of waiting 30 s.
        assert returned.wait(SLACK)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.e2e
@pytest.mark.parametrize("deadline", [None, 10.0])
def test_cancelling_aselect_targets_leaves_nothing_behind(
    deadline: float | None,
    fault_server,  # type: ignore[no-untyped-def]
) -> None:
    """Cancel a task waiting on a dropped query: afterwards no other task, no new thread, no
    open socket (file descriptors counted in /proc/self/fd)."""
    from harness.resolvers import make_dnspython_resolver

    server = fault_server(ZONE)
    server.set_rule("mx1.example.org.", "A", "drop")
    server.set_rule("mx2.example.org.", None, "drop")
    resolver = make_dnspython_resolver(server.port, asynchronous=True, lifetime=30.0, timeout=30.0)

    async def main() -> tuple[int, int, int, int, set[asyncio.Task[object]]]:
        threads, fds = threading.active_count(), _fds()
        task = asyncio.create_task(
            mxselect.aselect_targets("example.org", resolver=resolver, deadline=deadline)
        )
        while len(server.queries) < 4:  # MX, then the address batch is in flight
            await asyncio.sleep(0.01)
        during = _fds()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        others = asyncio.all_tasks() - {asyncio.current_task()}
        return threads, fds, during, _fds(), others  # type: ignore[return-value]

    threads_before, fds_before, fds_during, fds_after, others = asyncio.run(main())
    assert fds_during > fds_before  # the queries' sockets were open...
    assert fds_after == fds_before  # ...and are closed
    assert others == set()
    assert threading.active_count() == threads_before
