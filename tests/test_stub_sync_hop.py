"""StubResolver.resolve_batch under many threads: the hand-off to the process's I/O loop.

While other threads are inside the synchronous batch path too, a batch is handed to one
process-wide I/O thread (``mxselect-io``) running an asyncio event loop, and the caller waits
for it; alone, a caller keeps its own ``poll()`` (tests/test_stub_sync_batch.py). Here: the
same answers either way, the hand-off used under concurrency and not alone, RFC 5452 (a fresh
port per query), the lifetime and the deadline, fork, an interrupted caller, a caller inside an
event loop, and the CachingResolver over a stub. Every server is on loopback (the fault server,
the forgery harness's EchoServer).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import random
import signal
import threading
import time
from collections.abc import Iterator, Sequence

import attrs
import pytest
from harness.forger import GOOD, EchoServer
from test_stub_sync_batch import EXPECTED, OUTCOMES, ZONE, in_order, open_fds, settled_fds

import mxselect
from mxselect import Answer, CachingResolver, DNSTemporaryError, Query, RRType, Status, _ioloop
from mxselect.stub import StubResolver

pytestmark = pytest.mark.e2e

DROP = Query("drop.sb.test.", RRType.A)


@contextlib.contextmanager
def another_caller(port: int, name: str = DROP.name, hold: float = 2.5) -> Iterator[None]:
    """Another thread inside ``resolve_batch`` for the whole block (a query the server never
    answers, held ``hold`` seconds, on one socket: timeout = lifetime)."""
    stub = StubResolver([("127.0.0.1", port)], timeout=hold, lifetime=hold)
    inside, fds = len(_ioloop._inside), open_fds()
    thread = threading.Thread(target=stub.resolve_batch, args=([Query(name, RRType.A)],))
    thread.start()
    while len(_ioloop._inside) <= inside:
        time.sleep(0.005)
    # and its socket open (it enters before it opens one: a count of descriptors taken in
    # between would miss it)
    deadline = time.monotonic() + 5
    while open_fds() <= fds and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        yield
    finally:
        thread.join()


def io_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == _ioloop.THREAD_NAME]


def in_threads(count: int, work: Sequence[object], fn: object) -> list[object]:
    """``fn(item)`` for every item of ``work``, from ``count`` threads started together."""
    results: list[object] = [None] * len(work)
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(part: int) -> None:
        barrier.wait()
        for n in range(part, len(work), count):
            try:
                results[n] = fn(work[n])  # type: ignore[operator]
            except BaseException as exc:  # (reported below)
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


# -- the same answers, the hand-off used only when crowded ----------------------------------


@pytest.mark.parametrize("trust_ad", [True, False])
def test_many_threads_get_the_answers_one_thread_gets(trust_ad: bool, fault_server) -> None:  # type: ignore[no-untyped-def]
    """16 threads each resolve the batch of every outcome (records, NODATA, NXDOMAIN,
    SERVFAIL, no reply, TC -> TCP, ignored garbage, a name that cannot be sent) at once:
    every thread's answers equal, record for record and reason for reason, to what one
    thread alone gets -- DNSSEC status (trust_ad) included -- and the batches were handed
    over to the I/O loop. The one difference: on the loop, identical questions of the
    threads are one exchange (RFC 5452 §5), and a thread whose own lifetime ends while it
    waits for another's exchange says "timeout after 0.5 s" without naming the servers
    asked (as aresolve_batch says it)."""
    server = fault_server(ZONE)
    server.set_rule("tc.sb.test.", "MX", "tc")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=0.2, lifetime=0.5, trust_ad=trust_ad)
    alone = [in_order(a) for a in stub.resolve_batch(OUTCOMES)]
    assert [a.status for a in alone] == EXPECTED
    before = _ioloop.handed_over
    results = in_threads(16, [OUTCOMES] * 16, stub.resolve_batch)
    assert _ioloop.handed_over > before
    timeout = "timeout after 0.5 s"
    for answers in results:
        got = [in_order(a) for a in answers]  # type: ignore[attr-defined]
        assert [attrs.evolve(a, reason="") for a in got] == [
            attrs.evolve(a, reason="") for a in alone
        ]
        assert [a.reason if not a.reason.startswith(timeout) else timeout for a in got] == [
            a.reason if not a.reason.startswith(timeout) else timeout for a in alone
        ]


def test_the_hand_off_is_used_when_crowded_and_not_alone(fault_server) -> None:  # type: ignore[no-untyped-def]
    """Alone, one call after another: no hand-off (and no I/O thread started for it). While
    another thread is inside resolve_batch: the call is handed over, and the I/O thread
    runs. 16 threads at once (each answer held 300 ms): each call either handed over or
    run in its own thread, and at least all but the first handed over."""
    server = fault_server(ZONE)
    server.set_rule("drop.sb.test.", None, "drop")
    stub = StubResolver([("127.0.0.1", server.port)])
    before = _ioloop.handed_over
    running = bool(io_threads())
    for _ in range(5):
        assert stub.resolve_batch([A_QUERY])[0].status is Status.RECORDS
    assert _ioloop.handed_over == before
    assert bool(io_threads()) == running  # not started by callers alone

    with another_caller(server.port):
        answers = stub.resolve_batch([A_QUERY, MX_QUERY])
        assert _ioloop.handed_over == before + 1
        assert io_threads()
        assert io_threads()[0].daemon
    assert [a.status for a in answers] == [Status.RECORDS, Status.RECORDS]

    server.default_delay_ms = 300
    here = 0
    original = StubResolver._resolve_batch_here

    def counting(self: StubResolver, *args: object) -> list[Answer]:
        nonlocal here
        here += 1
        return original(self, *args)  # type: ignore[arg-type]

    StubResolver._resolve_batch_here = counting  # type: ignore[method-assign]
    try:
        before = _ioloop.handed_over
        results = in_threads(16, [[A_QUERY]] * 16, stub.resolve_batch)
    finally:
        StubResolver._resolve_batch_here = original  # type: ignore[method-assign]
    handed = _ioloop.handed_over - before
    assert handed + here == 16
    assert handed >= 15 or here <= 1
    assert all(r[0].status is Status.RECORDS for r in results)  # type: ignore[index]


A_QUERY = Query("mx1.d.sb.test.", RRType.A)
MX_QUERY = Query("d.sb.test.", RRType.MX)


def test_many_threads_select_what_one_thread_selects(fault_server) -> None:  # type: ignore[no-untyped-def]
    """16 threads x 10 selections at once through one StubResolver, and through a
    CachingResolver over it: every selection what a thread alone selected (same seed)."""
    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)], timeout=2.0, lifetime=10.0)
    domains = [f"s{i}.sb.test" for i in range(40)] + ["d.sb.test"] * 8 + ["nope.sb.test"]

    def select(resolver: object, domain: str) -> object:
        try:
            found = mxselect.select_targets(domain, resolver=resolver, rng=random.Random(3))
        except mxselect.MXSelectError as exc:
            return type(exc)
        return [(t.host, str(t.address)) for t in found]

    expected = [select(stub, d) for d in domains]
    assert expected[-1] is mxselect.NoSuchDomainError
    before = _ioloop.handed_over
    assert in_threads(16, domains * 4, lambda d: select(stub, d)) == expected * 4
    assert _ioloop.handed_over > before
    cache = CachingResolver(stub)
    before = _ioloop.handed_over
    assert in_threads(16, domains, lambda d: select(cache, d)) == expected
    assert _ioloop.handed_over > before  # the cache's misses went through the stub's hop


# -- RFC 5452 -------------------------------------------------------------------------------


def test_R5452_9_2_a_fresh_source_port_for_every_query_handed_over() -> None:
    """RFC 5452 §9.2: 2,000 queries in batches of 8 from 16 threads at once, another caller
    inside all along: every query handed over goes out from a socket of its own on a port
    the kernel picked at random (>= 95% distinct: the birthday bound over Linux's 28,232
    ephemeral ports), every answer right."""
    queries = [Query(f"p{i}.sb.forge.test.", RRType.MX) for i in range(2000)]
    chunks = [queries[i : i + 8] for i in range(0, len(queries), 8)]
    with EchoServer() as server:
        stub = StubResolver([("127.0.0.1", server.port)], timeout=2.0, lifetime=10.0)
        with another_caller(server.port, "drop.sb.forge.test.", hold=4.0):
            before = _ioloop.handed_over
            results = in_threads(16, chunks, stub.resolve_batch)
            handed = _ioloop.handed_over - before
    got = [r.exchange for answers in results for a in answers for r in a.mx]  # type: ignore[attr-defined]
    assert got == [GOOD] * 2000
    assert handed == len(chunks)
    ports = [p for p, n in zip(server.ports, server.names, strict=True) if n.startswith("p")]
    assert len(ports) == 2000
    assert len(set(ports)) >= 0.95 * 2000


def test_R5452_5_identical_questions_of_many_threads_are_asked_once() -> None:
    """Identical questions handed over by threads at once, and within one batch, are asked
    once each (RFC 5452 §5): 16 threads ask the same 4 questions, held by the server."""
    same = [Query(f"same{i}.sb.forge.test.", RRType.MX) for i in range(4)]

    def slow(server: EchoServer, query: bytes, port: int) -> None:
        time.sleep(0.05)  # (the identical questions of the other threads arrive meanwhile)

    with EchoServer(slow) as server:
        stub = StubResolver([("127.0.0.1", server.port)], timeout=2.0, lifetime=5.0)
        with another_caller(server.port, "drop.sb.forge.test.", hold=3.0):
            results = in_threads(16, [same + same[:1]] * 16, stub.resolve_batch)
    assert all([a.mx[0].exchange for a in r] == [GOOD] * 5 for r in results)  # type: ignore[attr-defined]
    asked = [n for n in server.names if n.startswith("same")]
    assert len(asked) < 16 * 4  # merged across threads (each thread alone would ask 4)
    assert sorted(set(asked)) == sorted(q.name for q in same)


# -- the lifetime, the deadline --------------------------------------------------------------


def test_the_lifetime_ends_a_handed_over_batch(fault_server) -> None:  # type: ignore[no-untyped-def]
    """A server that never answers, a 20 s resolver lifetime: 16 threads' batches with
    lifetime=0.5 handed over all end by it, with a timeout as the reason; and
    select_targets(deadline=0.3) from 8 threads raises the deadline's DNSTemporaryError."""
    server = fault_server(ZONE)
    server.set_rule("d.sb.test.", "MX", "drop")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=20, lifetime=20)
    started = time.monotonic()
    before = _ioloop.handed_over
    results = in_threads(16, [[MX_QUERY]] * 16, lambda q: stub.resolve_batch(q, lifetime=0.5))
    elapsed = time.monotonic() - started
    assert _ioloop.handed_over > before
    reason = f"timeout after 0.5 s (asked 127.0.0.1@{server.port})"
    reasons = [r[0].reason for r in results]  # type: ignore[index]
    assert reason in reasons  # the thread that led the exchange (the others joined it:
    assert set(reasons) <= {reason, "timeout after 0.5 s"}  # one exchange, RFC 5452 §5)
    assert elapsed < 5.0  # a hang guard: the lifetime is 20 s

    def select(domain: str) -> str:
        with pytest.raises(DNSTemporaryError) as info:
            mxselect.select_targets(domain, resolver=stub, deadline=0.3)
        return str(info.value)

    messages = in_threads(8, ["d.sb.test"] * 8, select)
    assert all("the deadline of 0.3 s expired" in str(m) for m in messages)


# -- fork, an interrupted caller, a caller in an event loop ----------------------------------


def test_a_child_after_fork_starts_its_own_io_loop(fault_server) -> None:  # type: ignore[no-untyped-def]
    """After os.fork() the child never uses its parent's I/O thread (it does not exist
    there): crowded in the child, its batches are handed to a loop of its own, and answered."""
    server = fault_server(ZONE)
    server.set_rule("drop.sb.test.", None, "drop")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=2.0, lifetime=5.0)
    with another_caller(server.port, hold=1.0):
        stub.resolve_batch([A_QUERY])  # the parent's loop runs
    parent_loop = _ioloop.io_loop()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running anything of pytest's
        code = 1
        try:
            with another_caller(server.port, hold=1.0):
                before = _ioloop.handed_over
                answers = stub.resolve_batch([A_QUERY, MX_QUERY])
                handed = _ioloop.handed_over - before
            io = _ioloop.io_loop()
            report = (
                [str(x) for a in answers for x in a.addresses],
                [r.exchange for a in answers for r in a.mx],
                handed,
                io is not parent_loop and io.pid == os.getpid() and io.thread.is_alive(),
            )
            os.write(write, pickle.dumps(report))
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    for _ in range(600):  # a hang guard (30 s): a child using its parent's loop would block
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read)
        pytest.fail("the child hung: it waited for a loop thread that does not exist there")
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    assert os.waitstatus_to_exitcode(status) == 0
    addresses, exchanges, handed, fresh = pickle.loads(data)
    assert addresses == ["192.0.2.1"]
    assert sorted(exchanges) == ["mx1.d.sb.test.", "mx2.d.sb.test."]
    assert handed == 1
    assert fresh
    assert _ioloop.io_loop() is parent_loop  # the parent's own is untouched


def test_an_interrupted_caller_cancels_its_batch_and_closes_its_sockets(fault_server) -> None:  # type: ignore[no-untyped-def]
    """KeyboardInterrupt (a real SIGINT) while the caller waits for its handed-over batch:
    the batch is cancelled on the loop, its sockets are closed before the interrupt reaches
    the caller, and nothing is left running on the loop."""
    server = fault_server(ZONE)
    server.set_rule("drop.sb.test.", None, "drop")
    server.set_rule("d.sb.test.", "MX", "drop")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=0.2, lifetime=10)
    io = _ioloop.io_loop()

    def interrupt(*_args: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        with another_caller(server.port, hold=2.0):
            before = open_fds()
            timer = threading.Timer(
                0.5, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)
            )
            started = time.monotonic()
            timer.start()
            with pytest.raises(KeyboardInterrupt):
                stub.resolve_batch([MX_QUERY, Query("drop.sb.test.", RRType.AAAA)])
            elapsed = time.monotonic() - started
            timer.join()
            after = open_fds()
            assert not io.running
        assert after == before  # (the other caller's one socket open in both counts)
        assert 0.4 < elapsed < 3.0  # interrupted, not at the 10 s lifetime
        assert sorted(q[0] for q in server.queries).count("d.sb.test.") >= 2  # retransmitted
    finally:
        signal.signal(signal.SIGINT, previous)
    assert settled_fds(before - 1) == before - 1  # (the other caller's socket closed too)


def test_an_exception_on_the_loop_reaches_the_caller(fault_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A bug raised while the batch runs on the loop is raised in the caller (not lost,
    not a hang); the loop goes on serving the next call."""
    server = fault_server(ZONE)
    server.set_rule("drop.sb.test.", None, "drop")
    stub = StubResolver([("127.0.0.1", server.port)])
    original = StubResolver._abatch

    async def broken(self: StubResolver, *args: object) -> list[Answer]:
        raise RuntimeError("a bug in the batch")

    with another_caller(server.port, hold=1.5):
        monkeypatch.setattr(StubResolver, "_abatch", broken)
        with pytest.raises(RuntimeError, match="a bug in the batch"):
            stub.resolve_batch([A_QUERY])
        monkeypatch.setattr(StubResolver, "_abatch", original)
        assert stub.resolve_batch([A_QUERY])[0].status is Status.RECORDS


def test_a_caller_inside_an_event_loop_still_gets_its_answers(fault_server) -> None:  # type: ignore[no-untyped-def]
    """resolve_batch called (blocking) from a coroutine, on another event loop's thread,
    while crowded: handed over to the I/O loop like any other caller, and answered."""
    server = fault_server(ZONE)
    server.set_rule("drop.sb.test.", None, "drop")
    stub = StubResolver([("127.0.0.1", server.port)])

    async def main() -> list[Answer]:
        return stub.resolve_batch([A_QUERY, MX_QUERY])

    with another_caller(server.port, hold=1.5):
        before = _ioloop.handed_over
        answers = asyncio.run(main())
        assert _ioloop.handed_over == before + 1
    assert [a.status for a in answers] == [Status.RECORDS, Status.RECORDS]


def test_an_identical_question_gets_its_answer_before_the_leaders_batch_ends(fault_server) -> None:  # type: ignore[no-untyped-def]
    """RFC 5452 §5 on one loop (where handed-over batches of many threads meet): batch X
    asks MX and a question never answered (lifetime 3 s); batch Y, started while X's MX is
    held 200 ms, asks the same MX with lifetime 1 s and joins X's exchange. Y gets the MX as
    soon as X has it, not when X's whole batch ends (after Y's own lifetime)."""
    server = fault_server(ZONE)
    server.set_rule("drop.sb.test.", None, "drop")
    server.set_rule("d.sb.test.", "MX", "delay-200")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=3.0, lifetime=3.0)

    async def main() -> tuple[list[Answer], list[Answer]]:
        x = asyncio.ensure_future(stub.aresolve_batch([MX_QUERY, DROP]))
        while not server.queries:
            await asyncio.sleep(0.01)
        y = await stub.aresolve_batch([MX_QUERY], lifetime=1.0)
        return await x, y

    x, y = asyncio.run(main())
    assert [a.status for a in x] == [Status.RECORDS, Status.TEMPFAIL]
    assert y[0].status is Status.RECORDS
    assert [q[0] for q in server.queries].count("d.sb.test.") == 1  # one exchange


def test_a_handed_over_call_that_never_ends_is_given_up_by_its_guard() -> None:
    """``IoLoop.run(coro, timeout=)``: a coroutine that does not end by itself is cancelled
    at the guard (its ``finally`` runs on the loop) and the caller gets TimeoutError."""
    io = _ioloop.io_loop()
    cleaned = threading.Event()

    async def hangs() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.set()

    with pytest.raises(TimeoutError):
        io.run(hangs(), timeout=0.2)
    assert cleaned.wait(5)
    assert not io.running


def test_a_handed_over_batch_past_its_end_is_a_temporary_failure(fault_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A batch handed over that would not end by itself (a bug on the loop side, simulated)
    costs its caller its lifetime plus the guard and a temporary failure, never a hang."""
    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)], timeout=0.2, lifetime=0.3)

    async def never(*_args: object) -> list[Answer]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    monkeypatch.setattr(stub, "_abatch", never)
    with another_caller(server.port, hold=3.0):
        answers = stub.resolve_batch([MX_QUERY])
    assert [a.status for a in answers] == [Status.TEMPFAIL]
    assert answers[0].reason == "timeout after 0.3 s"
