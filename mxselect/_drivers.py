"""The drivers: one short loop each that runs a :class:`SelectionPlan` against a resolver.

Both feed the same core, so they cannot disagree, and mirror each other line for line (as
dnspython's ``resolver.py`` and ``asyncresolver.py`` do). What a resolver can do, and how a
batch runs on it (threads or tasks, a batch method, the deadline), is the business of
``_resolvers``: a driver only asks its *port* for a batch's answers. ``asyncio`` and the
dnspython adapter are imported only when needed, keeping ``import mxselect`` light.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from ._core import SelectionPlan
from ._resolvers import async_port, sync_port

if TYPE_CHECKING:
    import random
    from collections.abc import Sequence

    from ._answers import Answer, FetchResult, PolicyFetch, Query
    from ._model import Selection
    from ._policy import Policy
    from ._sts import StsEntry
    from .typing import AsyncResolver, Resolver

__all__ = ["aselect_targets", "select_targets"]


def _check_deadline(deadline: object) -> float | None:
    """The deadline in seconds (None: no deadline); bad values raise before any query."""
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, int | float):
        raise TypeError(f"deadline must be a number of seconds or None, got {deadline!r}")
    if not deadline > 0:  # also NaN
        raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}")
    return None if math.isinf(deadline) else float(deadline)


def _feed(
    plan: SelectionPlan,
    batch: Sequence[Query],
    answers: Sequence[Answer | None],
    deadline: float | None = None,
) -> None:
    """Feed what arrived; with answers missing (the deadline expired), end the plan: only
    temporary (nothing unanswered established anything)."""
    missing = False
    for query, answer in zip(batch, answers, strict=True):
        if answer is None:
            missing = True
        else:
            plan.feed(query, answer)
    if missing:
        plan.abandon(f"the deadline of {deadline:g} s expired before DNS answered")


def _sts_entry(
    domain: str, policy: Policy | None, store: Any
) -> tuple[str | None, StsEntry | None]:
    """The policy domain and its cached MTA-STS entry (None when MTA-STS is off or no store)."""
    if policy is None or not policy.mta_sts:
        return None, None
    from ._domain import normalize_domain

    name = normalize_domain(domain)  # InvalidDomainError is raised by the plan as well
    if not isinstance(name, str):
        return None, None  # an address literal: no MTA-STS (RFC 8461 §3.4)
    return name, (store.get(name) if store is not None else None)


def _fetcher(fetcher: Any) -> Any:
    """The fetcher given, or the default one (httpx, the ``mta-sts`` extra)."""
    if fetcher is not None:
        return fetcher
    try:
        from .fetch import HttpxFetcher
    except ImportError as exc:  # pragma: no cover - depends on the extras installed
        raise ImportError(
            "Policy.mta_sts needs a policy fetcher: pip install 'mxselect[mta-sts]' for the "
            "httpx one, or pass fetcher=..."
        ) from exc
    return HttpxFetcher()


def _fetch_failed(exc: BaseException) -> FetchResult:
    from ._answers import FetchResult

    return FetchResult.failed(f"the fetcher raised {type(exc).__name__}: {exc}")


def select_targets(
    domain: str,
    *,
    resolver: Resolver | Any | None = None,
    rng: random.Random | None = None,
    policy: Policy | None = None,
    deadline: float | None = None,
    fetcher: Any = None,
    sts_store: Any = None,
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
        fetcher: with :attr:`Policy.mta_sts`, what fetches MTA-STS policies
            (``fetch(PolicyFetch) -> FetchResult``); ``None``: ``mxselect.fetch.HttpxFetcher``
            (the ``mta-sts`` extra). The fetch runs in a thread beside the DNS lookups.
        sts_store: with :attr:`Policy.mta_sts`, where MTA-STS policies are cached
            (``mxselect.mtasts.SQLiteStore``, ``MemoryStore`` or yours: ``get``/``put``);
            ``None``: no cache -- every selection fetches, and a failed fetch has no cached
            policy to fall back to (RFC 8461 §10.2: an MTA should keep one across restarts).

    Returns:
        The :class:`~mxselect.Selection`; iterate over it for the targets in try order.

    Raises:
        InvalidDomainError: bad input (no DNS query is sent).
        NoSuchDomainError, NullMXError, NoUsableTargetsError: permanent -- bounce.
        DNSTemporaryError: temporary -- defer and retry (also: the deadline expired).
        ValueError, TypeError: ``deadline`` is not a positive number (no query is sent).
    """
    seconds = _check_deadline(deadline)
    name, entry = _sts_entry(domain, policy, sts_store)
    now = time.time() if policy is not None and policy.mta_sts else None
    plan = SelectionPlan(domain, rng=rng, policy=policy, sts_entry=entry, now=now)
    if plan.done:
        try:
            return plan.result()
        finally:
            del plan  # (a raised error's traceback holds this frame: no cycle through the plan)
    port = sync_port(resolver)
    end = None if seconds is None else time.monotonic() + seconds
    fetching: Any = None  # the MTA-STS fetch, in a thread beside the DNS batches
    try:
        while not plan.done:
            if fetching is None and plan.fetches:
                fetching = _start_fetch(_fetcher(fetcher), plan.fetches[0])
            batch = plan.pending
            if not batch:
                _feed_fetch(plan, fetching, end, seconds)
            elif end is None:
                _feed(plan, batch, port.answers(batch))
            else:
                _feed(plan, batch, port.answers_until(batch, end), seconds)
    finally:
        if fetching is not None:
            if plan.background_fetch is not None and not fetching[2].done():
                _store_later(fetching[2], plan, sts_store)  # RFC 8461 §5.1: in the background
            fetching[1].shutdown(wait=False, cancel_futures=plan.background_fetch is None)
    if name is not None and sts_store is not None and plan.sts_update is not None:
        sts_store.put(plan.sts_update)
    try:
        return plan.result()
    finally:
        del plan  # (a raised error's traceback holds this frame: no cycle through the plan)


def _store_later(future: Any, plan: SelectionPlan, store: Any) -> None:
    """When a background fetch completes, store its policy (or its failure) for later
    messages (Policy.sts_background)."""
    assert plan.background_fetch is not None
    _, record = plan.background_fetch
    domain = plan.domain

    def done(finished: Any) -> None:
        from ._sts import fetched

        try:
            result = finished.result()
        except BaseException as exc:  # cancelled, or the fetcher raised
            result = _fetch_failed(exc)
        if store is not None:
            outcome = fetched(store.get(domain), domain, record, result, time.time())
            if outcome.entry is not None:
                store.put(outcome.entry)

    future.add_done_callback(done)


def _start_fetch(fetcher: Any, request: PolicyFetch) -> Any:
    """Run ``fetcher.fetch(request)`` in a thread of its own; returns (request, pool, future)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix="mxselect-sts")
    return request, pool, pool.submit(fetcher.fetch, request)


def _feed_fetch(
    plan: SelectionPlan, fetching: Any, end: float | None, seconds: float | None
) -> None:
    """Wait for the fetch (the plan needs nothing else now) and feed it; at the deadline, end
    the plan (temporary)."""
    from concurrent.futures import TimeoutError as FutureTimeout

    request, _, future = fetching
    try:
        result = future.result(None if end is None else max(0.0, end - time.monotonic()))
    except FutureTimeout:
        plan.abandon(f"the deadline of {seconds:g} s expired before the MTA-STS policy arrived")
        return
    except Exception as exc:  # a fetcher that raised: a failed fetch, never a crash
        result = _fetch_failed(exc)
    plan.feed(request, result)


async def aselect_targets(
    domain: str,
    *,
    resolver: AsyncResolver | Resolver | Any | None = None,
    rng: random.Random | None = None,
    policy: Policy | None = None,
    deadline: float | None = None,
    fetcher: Any = None,
    sts_store: Any = None,
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
        fetcher: as for :func:`select_targets`; its ``afetch`` coroutine runs as a task beside
            the DNS batches (a fetcher with only ``fetch`` runs in a thread).
        sts_store: as for :func:`select_targets` (called in a thread).
        deadline: as for :func:`select_targets`; at the deadline the queries still running
            are cancelled. Cancelling the task running ``aselect_targets`` cancels its
            queries too; nothing is left running.
    """
    import asyncio

    seconds = _check_deadline(deadline)
    if policy is not None and policy.mta_sts and sts_store is not None:
        name, entry = await asyncio.to_thread(_sts_entry, domain, policy, sts_store)
    else:
        name, entry = _sts_entry(domain, policy, None)
    now = time.time() if policy is not None and policy.mta_sts else None
    plan = SelectionPlan(domain, rng=rng, policy=policy, sts_entry=entry, now=now)
    if plan.done:
        try:
            return plan.result()
        finally:
            del plan  # (a raised error's traceback holds this frame: no cycle through the plan)
    port = async_port(resolver)
    loop = asyncio.get_running_loop()
    end = None if seconds is None else loop.time() + seconds
    fetching: asyncio.Task[FetchResult] | None = None  # beside the DNS batches
    request: PolicyFetch | None = None
    try:
        while not plan.done:
            if fetching is None and plan.fetches:
                request = plan.fetches[0]
                fetching = asyncio.ensure_future(_afetch(_fetcher(fetcher), request))
            batch = plan.pending
            if not batch:
                assert fetching is not None
                assert request is not None
                timeout = None if end is None else max(0.0, end - loop.time())
                done, _ = await asyncio.wait([fetching], timeout=timeout)
                if not done:
                    plan.abandon(
                        f"the deadline of {seconds:g} s expired before the MTA-STS policy arrived"
                    )
                    break
                plan.feed(request, fetching.result())
            elif end is None:
                _feed(plan, batch, await port.answers(batch))
            else:
                _feed(plan, batch, await port.answers_until(batch, end), seconds)
    finally:
        if fetching is not None and not fetching.done():
            if plan.background_fetch is not None:
                _BACKGROUND.add(fetching)  # keep it alive; RFC 8461 §5.1: in the background
                fetching.add_done_callback(_BACKGROUND.discard)
                _store_later(fetching, plan, sts_store)
            else:
                fetching.cancel()
    if name is not None and sts_store is not None and plan.sts_update is not None:
        await asyncio.to_thread(sts_store.put, plan.sts_update)
    try:
        return plan.result()
    finally:
        del plan  # (a raised error's traceback holds this frame: no cycle through the plan)


#: Background MTA-STS fetches still running (a task needs a reference to survive).
_BACKGROUND: set[Any] = set()


async def _afetch(fetcher: Any, request: PolicyFetch) -> FetchResult:
    """The fetch as a coroutine: ``afetch``, or ``fetch`` in a thread; never raises."""
    import asyncio

    try:
        if hasattr(fetcher, "afetch"):
            result: FetchResult = await fetcher.afetch(request)
        else:
            result = await asyncio.to_thread(fetcher.fetch, request)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a fetcher that raised: a failed fetch, never a crash
        return _fetch_failed(exc)
    return result
