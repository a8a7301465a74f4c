"""The drivers: one short loop each that runs a :class:`SelectionPlan` against a resolver.

The sync driver runs each batch concurrently on a small shared thread pool; the asyncio driver
gathers the batch. Both feed the same core, so they cannot disagree. ``asyncio`` and the
dnspython adapter are imported only when needed, keeping ``import mxselect`` light.
"""

from __future__ import annotations

import threading
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


def _call(resolver: Resolver, query: Query) -> Answer:
    try:
        return _checked(query, resolver.resolve(query))
    except Exception as exc:
        return _failed(exc)


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

    Returns:
        The :class:`~mxselect.Selection`; iterate over it for the targets in try order.

    Raises:
        InvalidDomainError: bad input (no DNS query is sent).
        NoSuchDomainError, NullMXError, NoUsableTargetsError: permanent -- bounce.
        DNSTemporaryError: temporary -- defer and retry.
    """
    plan = SelectionPlan(domain, rng=rng, policy=policy)
    if not plan.done:
        res = _sync_resolver(resolver)
        while not plan.done:
            batch = plan.pending
            for query, answer in zip(batch, _resolve_batch(res, batch), strict=True):
                plan.feed(query, answer)
    return plan.result()


class _ThreadedResolver:
    """Runs a synchronous resolver's ``resolve`` in asyncio's default executor."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    async def aresolve(self, query: Query) -> Answer:
        import asyncio

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


async def _acall(resolver: AsyncResolver, query: Query) -> Answer:
    try:
        return _checked(query, await resolver.aresolve(query))
    except Exception as exc:
        return _failed(exc)


async def aselect_targets(
    domain: str,
    *,
    resolver: AsyncResolver | Resolver | Any | None = None,
    rng: random.Random | None = None,
    policy: Policy | None = None,
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
    """
    import asyncio

    plan = SelectionPlan(domain, rng=rng, policy=policy)
    if not plan.done:
        res = _async_resolver(resolver)
        while not plan.done:
            batch = plan.pending
            # Even a single query (the MX) gets its own task: measured under load, that costs
            # less CPU than awaiting it in the caller's task (benchmarks/RESULTS.md).
            answers: Sequence[Answer] = await asyncio.gather(*(_acall(res, q) for q in batch))
            for query, answer in zip(batch, answers, strict=True):
                plan.feed(query, answer)
    return plan.result()
