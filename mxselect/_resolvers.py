"""What the drivers know about resolvers: wrapping one, and running a batch on it.

This is the one module that looks at a resolver. :func:`sync_port` and :func:`async_port`
wrap whatever the caller passed -- ``None`` (a dnspython resolver with the system
configuration, built for this call), a dnspython resolver (detected by ``isinstance``), or an
object implementing the protocols of :mod:`mxselect.typing` -- in a *port*: the resolver with
its capabilities found once (a ``lifetime`` keyword, a batch method; runtime-checkable
protocols), every exception and every non-:class:`~mxselect.Answer` mapped to a temporary
failure once (a resolver that raises has established no DNS fact: defer, never bounce), and
the batch runners with and without a deadline. The drivers (``_drivers``) are one short loop
over a port; :class:`~mxselect.cache.CachingResolver` uses ports for its upstream too.
"""

from __future__ import annotations

import inspect
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

from ._answers import Answer, Query, Status
from .typing import AsyncBatchResolver, AsyncResolver, BatchResolver, Resolver

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = [
    "MAX_THREADS",
    "AsyncPort",
    "SyncPort",
    "async_port",
    "checked",
    "failed",
    "pool",
    "provides",
    "sync_port",
]

#: Threads the sync driver may use at once (shared by all callers of the process).
MAX_THREADS = 32

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """The thread pool the sync driver runs a batch's queries on (made on first use)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                from concurrent.futures import ThreadPoolExecutor

                _pool = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="mxselect")
    return _pool


def checked(query: Query, answer: object) -> Answer:
    """``answer`` if it is an :class:`Answer`, else a temporary failure saying what it was."""
    if isinstance(answer, Answer):
        return answer
    return Answer.tempfail(
        f"resolver returned {type(answer).__name__} for {query}, expected an mxselect Answer"
    )


def failed(exc: Exception) -> Answer:
    """The answer for a resolver that raised: it has not established any DNS fact, so the
    failure is temporary (defer, never bounce), and names the exception."""
    text = str(exc)
    return Answer.tempfail(
        f"resolver raised {type(exc).__name__}: {text}" if text else type(exc).__name__
    )


_TAKES_LIFETIME: dict[tuple[type, str], bool] = {}


def takes_lifetime(resolver: object, method: str) -> bool:
    """Whether ``resolver.<method>`` takes a ``lifetime`` keyword (the
    :class:`~mxselect.typing.LifetimeResolver` capability), found once per type."""
    key = (type(resolver), method)
    known = _TAKES_LIFETIME.get(key)
    if known is None:
        try:
            parameters = inspect.signature(getattr(resolver, method)).parameters
        except (TypeError, ValueError):  # a builtin without a signature
            known = False
        else:
            known = "lifetime" in parameters or any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
            )
        if len(_TAKES_LIFETIME) < 1024:
            _TAKES_LIFETIME[key] = known
    return known


_PROVIDES: dict[tuple[type, type], bool] = {}


def provides(resolver: object, protocol: type) -> TypeGuard[Any]:
    """``isinstance(resolver, protocol)`` for a runtime-checkable protocol of
    :mod:`mxselect.typing`, found once per class when the class itself has the methods.

    Each of those protocols has methods only, so ``isinstance`` is true whenever the class is
    a subclass; but on Python 3.11 it lists the protocol's members again at every call (about
    16 µs of a selection, two checks per selection). Only that case is remembered; an object
    whose methods are its own attributes is checked each time, as before."""
    cls = resolver.__class__
    key = (cls, protocol)
    try:
        if key in _PROVIDES:
            return True
    except TypeError:  # an unhashable class (a metaclass with __eq__): no cache
        return isinstance(resolver, protocol)
    if not isinstance(resolver, protocol):
        return False
    if issubclass(cls, protocol) and len(_PROVIDES) < 1024:
        _PROVIDES[key] = True
    return True


def _dnspython(resolver: object, module: str) -> Any:
    """The dnspython module ``module`` if ``resolver`` may be one of its resolvers: an object
    can only be a dnspython resolver if dnspython is imported."""
    return sys.modules.get(module) if "dns" in sys.modules else None


# -- sync ----------------------------------------------------------------------------------


class SyncPort:
    """A synchronous resolver as the sync driver uses it."""

    __slots__ = ("_batch", "_batch_lifetime", "_lifetime", "resolver")

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self._lifetime = takes_lifetime(resolver, "resolve")
        self._batch: Callable[..., Sequence[Answer]] | None = (
            resolver.resolve_batch if provides(resolver, BatchResolver) else None
        )
        #: whether ``resolve_batch`` takes a ``lifetime`` (it then returns within it:
        #: StubResolver, CachingResolver), so a deadline needs no thread per query
        self._batch_lifetime = self._batch is not None and takes_lifetime(resolver, "resolve_batch")

    @property
    def batched(self) -> bool:
        """Whether the resolver has a ``resolve_batch`` (a
        :class:`~mxselect.typing.BatchResolver`)."""
        return self._batch is not None

    @property
    def bounded_batch(self) -> bool:
        """Whether :meth:`answers` with a ``lifetime`` runs the batch in the calling thread
        by the resolver's ``resolve_batch`` (which takes the lifetime), without the pool."""
        return self._batch_lifetime

    def answer(self, query: Query, lifetime: float | None = None) -> Answer:
        """One query's answer; never raises (``lifetime``: the time left, if it takes one)."""
        try:
            if lifetime is not None and self._lifetime:
                return checked(query, self.resolver.resolve(query, lifetime=lifetime))  # type: ignore[call-arg]
            return checked(query, self.resolver.resolve(query))
        except Exception as exc:
            return failed(exc)

    def answers(self, batch: Sequence[Query], lifetime: float | None = None) -> list[Answer]:
        """Every query of ``batch`` answered, concurrently: by the resolver's
        ``resolve_batch`` if it has one (given ``lifetime`` if it takes one; with a
        ``lifetime`` it does not take, the pool instead), else on the thread pool (the first
        query in the calling thread, each given ``lifetime`` if ``resolve`` takes one)."""
        batched = self._batch
        if batched is not None and (lifetime is None or self._batch_lifetime):
            try:
                answers = list(
                    batched(batch) if lifetime is None else batched(batch, lifetime=lifetime)
                )
            except Exception as exc:
                return [failed(exc)] * len(batch)
            if len(answers) != len(batch):
                wrong = Answer.tempfail("resolve_batch returned the wrong number of answers")
                return [wrong] * len(batch)
            return [checked(q, a) for q, a in zip(batch, answers, strict=True)]
        if len(batch) == 1:
            return [self.answer(batch[0], lifetime)]
        futures = [pool().submit(self.answer, q, lifetime) for q in batch[1:]]
        first = self.answer(batch[0], lifetime)
        return [first, *(f.result() for f in futures)]

    def answers_until(self, batch: Sequence[Query], end: float) -> list[Answer | None]:
        """The answers that arrived before ``end`` (``time.monotonic()``), ``None`` for the
        others, which are given up.

        A resolver whose ``resolve_batch`` takes a ``lifetime`` (:attr:`bounded_batch`:
        StubResolver, CachingResolver) answers the batch in the calling thread, given the
        time left, and returns by ``end``; no thread is used or left running. When it
        returned at or after ``end``, its temporary failures count as unanswered (``None``:
        the deadline, not the servers, ended those queries; nothing temporary establishes a
        DNS fact either way). Any other resolver runs each query on the pool so the caller
        can stop waiting at the deadline (threads cannot be killed: a query still running
        finishes in the background, bounded by the lifetime it was given when the resolver
        takes one); one pool job per query, even for a resolver with a ``resolve_batch``
        that takes no lifetime: it could not be stopped at the deadline."""
        remaining = end - time.monotonic()
        if remaining <= 0:
            return [None] * len(batch)
        if self._batch_lifetime:
            answers = self.answers(batch, remaining)
            if time.monotonic() < end:
                return list(answers)
            return [None if a.status is Status.TEMPFAIL else a for a in answers]
        from concurrent.futures import wait

        futures = [pool().submit(self.answer, q, remaining) for q in batch]
        done, not_done = wait(futures, timeout=remaining)
        for future in not_done:
            future.cancel()
        return [f.result() if f in done else None for f in futures]


def sync_port(resolver: object) -> SyncPort:
    """Wrap what ``select_targets`` was given.

    Raises:
        TypeError: not a resolver (no query is sent).
    """
    if resolver is None:
        from .dnspython import DnspythonResolver

        return SyncPort(DnspythonResolver())  # the system configuration, read now
    dns_resolver = _dnspython(resolver, "dns.resolver")
    if dns_resolver is not None and isinstance(resolver, dns_resolver.BaseResolver):
        if not isinstance(resolver, dns_resolver.Resolver):
            raise TypeError(
                f"select_targets needs a dns.resolver.Resolver, got {type(resolver).__name__}; "
                "use aselect_targets with a dns.asyncresolver.Resolver"
            )
        from .dnspython import DnspythonResolver

        return SyncPort(DnspythonResolver(resolver))
    if not provides(resolver, Resolver) or not callable(resolver.resolve):
        raise TypeError(
            f"resolver must have a resolve(query) method (mxselect.typing.Resolver), "
            f"got {resolver!r}"
        )
    return SyncPort(resolver)


# -- asyncio -------------------------------------------------------------------------------


class _Threaded:
    """A synchronous resolver as an asyncio one: each query in asyncio's default executor."""

    __slots__ = ("port",)

    def __init__(self, port: SyncPort) -> None:
        self.port = port

    async def aresolve(self, query: Query, lifetime: float | None = None) -> Answer:
        import asyncio

        return await asyncio.to_thread(self.port.answer, query, lifetime)


class AsyncPort:
    """An asyncio resolver as the asyncio driver uses it."""

    __slots__ = ("_batch", "_lifetime", "resolver")

    def __init__(self, resolver: AsyncResolver) -> None:
        self.resolver = resolver
        self._lifetime = isinstance(resolver, _Threaded) or takes_lifetime(resolver, "aresolve")
        self._batch: Callable[[Sequence[Query]], Any] | None = (
            resolver.aresolve_batch if provides(resolver, AsyncBatchResolver) else None
        )

    async def answer(self, query: Query, lifetime: float | None = None) -> Answer:
        """One query's answer; never raises (``lifetime``: the time left, if it takes one)."""
        try:
            if lifetime is not None and self._lifetime:
                answer = await self.resolver.aresolve(query, lifetime=lifetime)  # type: ignore[call-arg]
            else:
                answer = await self.resolver.aresolve(query)
            return checked(query, answer)
        except Exception as exc:
            return failed(exc)

    async def answers(self, batch: Sequence[Query]) -> list[Answer]:
        """Every query of ``batch`` answered, concurrently: by the resolver's
        ``aresolve_batch`` in one call if it has one (no task per query), else one task per
        query -- even a single query (the MX): measured under load, that costs less CPU than
        awaiting it in the caller's task (benchmarks/RESULTS.md)."""
        if self._batch is not None:
            try:
                results = list(await self._batch(batch))
                if len(results) != len(batch):
                    raise TypeError(
                        f"aresolve_batch returned {len(results)} answers for {len(batch)} queries"
                    )
                return [checked(q, a) for q, a in zip(batch, results, strict=True)]
            except Exception as exc:
                return [failed(exc)] * len(batch)
        import asyncio

        return list(await asyncio.gather(*(self.answer(q) for q in batch)))

    async def answers_until(self, batch: Sequence[Query], end: float) -> list[Answer | None]:
        """The answers that arrived before ``end`` (the loop's clock), ``None`` for the others,
        whose queries are cancelled. Whatever happens -- the deadline, or this task being
        cancelled -- no task of the batch is left behind."""
        import asyncio

        remaining = end - asyncio.get_running_loop().time()
        if remaining <= 0:
            return [None] * len(batch)
        tasks = [asyncio.ensure_future(self.answer(q, remaining)) for q in batch]
        try:
            done, _ = await asyncio.wait(tasks, timeout=remaining)
        finally:
            late = [task for task in tasks if not task.done()]
            for task in late:
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
        return [task.result() if task in done else None for task in tasks]


def async_port(resolver: object) -> AsyncPort:
    """Wrap what ``aselect_targets`` was given (a synchronous resolver runs in threads).

    Raises:
        TypeError: not a resolver (no query is sent).
    """
    if resolver is None:
        from .dnspython import AsyncDnspythonResolver

        return AsyncPort(AsyncDnspythonResolver())  # the system configuration, read now
    dns_async = _dnspython(resolver, "dns.asyncresolver")
    if dns_async is not None and isinstance(resolver, dns_async.Resolver):
        from .dnspython import AsyncDnspythonResolver

        return AsyncPort(AsyncDnspythonResolver(resolver))
    dns_resolver = _dnspython(resolver, "dns.resolver")
    if dns_resolver is not None and isinstance(resolver, dns_resolver.BaseResolver):
        return AsyncPort(_Threaded(sync_port(resolver)))
    if provides(resolver, AsyncResolver) and callable(resolver.aresolve):
        return AsyncPort(resolver)
    if provides(resolver, Resolver) and callable(resolver.resolve):
        return AsyncPort(_Threaded(SyncPort(resolver)))
    raise TypeError(
        "resolver must have an async aresolve(query) method (mxselect.typing.AsyncResolver) "
        f"or a resolve(query) method, got {resolver!r}"
    )
