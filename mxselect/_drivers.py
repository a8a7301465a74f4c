"""The drivers: one short loop each that runs a :class:`SelectionPlan` against a resolver.

The sync driver runs each batch concurrently on a small shared thread pool; the asyncio driver
gathers the batch. Both feed the same core, so they cannot disagree. ``asyncio`` and the
dnspython adapter are imported only when needed, keeping ``import mxselect`` light.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from ._answers import Answer, Query
from ._core import SelectionPlan

if TYPE_CHECKING:
    import random
    from concurrent.futures import ThreadPoolExecutor

    from ._model import Selection
    from ._policy import Policy
    from .typing import AsyncResolver, Resolver

__all__ = ["aselect_targets", "select_targets"]

#: Threads the sync driver may use at once (shared by all callers of the process).
MAX_THREADS = 32

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                from concurrent.futures import ThreadPoolExecutor

                _pool = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="mxselect")
    return _pool


def _is_dnspython(obj: object) -> bool:
    return type(obj).__module__.split(".")[0] == "dns"


def _checked(query: Query, answer: object) -> Answer:
    if isinstance(answer, Answer):
        return answer
    return Answer.tempfail(
        f"resolver returned {type(answer).__name__} for {query}, expected an mxselect Answer"
    )


def _failed(exc: Exception) -> Answer:
    # A resolver that raises has not established any DNS fact: defer, never bounce.
    text = str(exc)
    return Answer.tempfail(
        f"resolver raised {type(exc).__name__}: {text}" if text else type(exc).__name__
    )


def _sync_resolver(resolver: object) -> Resolver:
    if resolver is None or _is_dnspython(resolver):
        import dns.resolver

        from .dnspython import DnspythonResolver

        if resolver is None or isinstance(resolver, dns.resolver.Resolver):
            return DnspythonResolver(resolver)
        raise TypeError(
            f"select_targets needs a dns.resolver.Resolver, got {type(resolver).__name__}; "
            "use aselect_targets with a dns.asyncresolver.Resolver"
        )
    if not callable(getattr(resolver, "resolve", None)):
        raise TypeError(
            f"resolver must have a resolve(query) method (mxselect.typing.Resolver), "
            f"got {resolver!r}"
        )
    return cast("Resolver", resolver)


def _call(resolver: Resolver, query: Query, lifetime: float | None = None) -> Answer:
    try:
        if lifetime is not None and getattr(resolver, "_mxselect_lifetime", False):
            # The dnspython adapter bounds the query by the time left before the deadline.
            return _checked(query, resolver.resolve(query, lifetime=lifetime))  # type: ignore[call-arg]
        return _checked(query, resolver.resolve(query))
    except Exception as exc:
        return _failed(exc)


def _check_deadline(deadline: object) -> float | None:
    """The deadline in seconds (None: no deadline); bad values raise before any query."""
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, int | float):
        raise TypeError(f"deadline must be a number of seconds or None, got {deadline!r}")
    if not deadline > 0:  # also NaN
        raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}")
    return None if math.isinf(deadline) else float(deadline)


def _expired(plan: SelectionPlan, deadline: float) -> None:
    plan.abandon(f"the deadline of {deadline:g} s expired before DNS answered")


def _resolve_batch_until(
    resolver: Resolver, batch: tuple[Query, ...], end: float
) -> dict[Query, Answer]:
    """The answers that arrived before ``end`` (time.monotonic()); the others are given up.

    Every query runs on the pool so the caller can stop waiting at the deadline (threads
    cannot be killed: a query still running finishes in the background, bounded by the
    lifetime it was given when the resolver takes one)."""
    from concurrent.futures import wait

    remaining = end - time.monotonic()
    if remaining <= 0:
        return {}
    pool = _get_pool()
    # One pool job per query, even for a resolver with ``resolve_batch``: a batch job that
    # itself waited on the pool (as CachingResolver's does) could starve it under load.
    futures = {pool.submit(_call, resolver, q, remaining): q for q in batch}
    done, not_done = wait(futures, timeout=remaining)
    for future in not_done:
        future.cancel()
    return {futures[f]: f.result() for f in done}


def _resolve_batch(resolver: Resolver, batch: tuple[Query, ...]) -> Sequence[Answer]:
    batch_method = getattr(resolver, "resolve_batch", None)
    if batch_method is not None:
        try:
            answers = list(batch_method(batch))
        except Exception as exc:
            return [_failed(exc)] * len(batch)
        if len(answers) != len(batch):
            return [Answer.tempfail("resolve_batch returned the wrong number of answers")] * len(
                batch
            )
        return [_checked(q, a) for q, a in zip(batch, answers, strict=True)]
    if len(batch) == 1:
        return [_call(resolver, batch[0])]
    pool = _get_pool()
    futures = [pool.submit(_call, resolver, q) for q in batch[1:]]
    first = _call(resolver, batch[0])
    return [first, *(f.result() for f in futures)]


def select_targets(
    domain: str,
    *,
    resolver: Resolver | Any | None = None,
    rng: random.Random | None = None,
    policy: Policy | None = None,
    deadline: float | None = None,
) -> Selection:
    """Select the hosts and addresses to try for mail to ``domain`` (RFC 5321 §5.1).

    Args:
        domain: the domain part of the recipient address: a U-label or A-label domain in any
            case, with or without a trailing dot, or an address literal (``[192.0.2.1]``,
            ``[IPv6:2001:db8::1]``).
        resolver: a :class:`mxselect.typing.Resolver`; a ``dns.resolver.Resolver``, used as is
            through the dnspython adapter; or ``None`` for the system configuration (absolute
            names, never the search list).
        rng: shuffles equal-preference hosts; seed it for reproducible results. ``None``: OS
            entropy (never the global ``random``).
        policy: the :class:`~mxselect.Policy` (families, limits, unsafe targets...); ``None``
            for the defaults.
        deadline: seconds the whole selection may take, all queries included; ``None``: no
            overall bound (each query is still bounded by the resolver's own timeouts). When
            it expires, :class:`DNSTemporaryError` names the queries still unanswered. Each
            query of the dnspython adapter gets the time left as its lifetime; the driver
            stops waiting at the deadline in any case.

    Returns:
        The :class:`~mxselect.Selection`; iterate over it for the targets in try order.

    Raises:
        InvalidDomainError: bad input (no DNS query is sent).
        NoSuchDomainError, NullMXError, NoUsableTargetsError: permanent -- bounce.
        DNSTemporaryError: temporary -- defer and retry (also: the deadline expired).
        ValueError, TypeError: ``deadline`` is not a positive number (no query is sent).
    """
    seconds = _check_deadline(deadline)
    plan = SelectionPlan(domain, rng=rng, policy=policy)
    if not plan.done:
        res = _sync_resolver(resolver)
        end = None if seconds is None else time.monotonic() + seconds
        while not plan.done:
            batch = plan.pending
            if end is None:
                for query, answer in zip(batch, _resolve_batch(res, batch), strict=True):
                    plan.feed(query, answer)
                continue
            answers = _resolve_batch_until(res, batch, end)
            for query in batch:
                if query in answers:
                    plan.feed(query, answers[query])
            if len(answers) < len(batch):
                assert seconds is not None
                _expired(plan, seconds)
    return plan.result()


class _ThreadedResolver:
    """Runs a synchronous resolver's ``resolve`` in asyncio's default executor."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self._mxselect_lifetime = getattr(resolver, "_mxselect_lifetime", False)

    async def aresolve(self, query: Query, lifetime: float | None = None) -> Answer:
        import asyncio

        if lifetime is not None and self._mxselect_lifetime:
            return await asyncio.to_thread(_call, self.resolver, query, lifetime)
        return await asyncio.to_thread(self.resolver.resolve, query)


def _async_resolver(resolver: object) -> AsyncResolver:
    if resolver is None or _is_dnspython(resolver):
        import dns.asyncresolver

        if resolver is None or isinstance(resolver, dns.asyncresolver.Resolver):
            from .dnspython import AsyncDnspythonResolver

            return AsyncDnspythonResolver(resolver)
        return _ThreadedResolver(_sync_resolver(resolver))
    if callable(getattr(resolver, "aresolve", None)):
        return cast("AsyncResolver", resolver)
    if callable(getattr(resolver, "resolve", None)):
        return _ThreadedResolver(cast("Resolver", resolver))
    raise TypeError(
        "resolver must have an async aresolve(query) method (mxselect.typing.AsyncResolver) "
        f"or a resolve(query) method, got {resolver!r}"
    )


async def _acall(resolver: AsyncResolver, query: Query, lifetime: float | None = None) -> Answer:
    try:
        if lifetime is not None and getattr(resolver, "_mxselect_lifetime", False):
            answer = await resolver.aresolve(query, lifetime=lifetime)  # type: ignore[call-arg]
        else:
            answer = await resolver.aresolve(query)
        return _checked(query, answer)
    except Exception as exc:
        return _failed(exc)


async def _agather_until(
    resolver: AsyncResolver, batch: tuple[Query, ...], end: float
) -> dict[Query, Answer]:
    """The answers that arrived before ``end`` (the loop's clock); the other queries are
    cancelled. Whatever happens -- the deadline, or this task being cancelled -- no task of
    the batch is left behind."""
    import asyncio

    loop = asyncio.get_running_loop()
    remaining = end - loop.time()
    if remaining <= 0:
        return {}
    tasks = {asyncio.ensure_future(_acall(resolver, q, remaining)): q for q in batch}
    try:
        done, _ = await asyncio.wait(tasks, timeout=remaining)
    finally:
        late = [task for task in tasks if not task.done()]
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
    return {tasks[task]: task.result() for task in done}


async def aselect_targets(
    domain: str,
    *,
    resolver: AsyncResolver | Resolver | Any | None = None,
    rng: random.Random | None = None,
    policy: Policy | None = None,
    deadline: float | None = None,
) -> Selection:
    """The asyncio twin of :func:`select_targets`: same arguments, same results.

    Each batch of queries (MX; then AAAA and A of every exchange) runs concurrently, so a cold
    selection costs two DNS round trips.

    Args:
        domain: as for :func:`select_targets`.
        resolver: a :class:`mxselect.typing.AsyncResolver`; a ``dns.asyncresolver.Resolver``
            (used as is); a synchronous resolver (run in threads); or ``None`` for the system
            configuration.
        rng, policy: as for :func:`select_targets`.
        deadline: as for :func:`select_targets`; at the deadline the queries still running
            are cancelled. Cancelling the task running ``aselect_targets`` cancels its
            queries too; nothing is left running.
    """
    import asyncio

    seconds = _check_deadline(deadline)
    plan = SelectionPlan(domain, rng=rng, policy=policy)
    if not plan.done:
        res = _async_resolver(resolver)
        if seconds is not None:
            end = asyncio.get_running_loop().time() + seconds
            while not plan.done:
                batch = plan.pending
                arrived = await _agather_until(res, batch, end)
                for query in batch:
                    if query in arrived:
                        plan.feed(query, arrived[query])
                if len(arrived) < len(batch):
                    _expired(plan, seconds)
            return plan.result()
        batched = getattr(res, "aresolve_batch", None)
        while not plan.done and batched is not None:
            # A resolver that takes a whole batch in one call (mxselect.stub.StubResolver):
            # no task per query.
            batch = plan.pending
            try:
                results = list(await batched(batch))
                if len(results) != len(batch):
                    raise TypeError(
                        f"aresolve_batch returned {len(results)} answers for {len(batch)} queries"
                    )
                given = [_checked(q, a) for q, a in zip(batch, results, strict=True)]
            except Exception as exc:
                given = [_failed(exc)] * len(batch)
            for query, answer in zip(batch, given, strict=True):
                plan.feed(query, answer)
        while not plan.done:
            batch = plan.pending
            # Even a single query (the MX) gets its own task: measured under load, that costs
            # less CPU than awaiting it in the caller's task (benchmarks/RESULTS.md).
            answers: Sequence[Answer] = await asyncio.gather(*(_acall(res, q) for q in batch))
            for query, answer in zip(batch, answers, strict=True):
                plan.feed(query, answer)
    return plan.result()
