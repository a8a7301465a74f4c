"""The resolver protocols: how mxselect asks your resolver for DNS answers.

A resolver has one method. It takes a :class:`~mxselect.Query` (an absolute name with its
trailing dot, and ``MX``, ``A`` or ``AAAA``) and returns an :class:`~mxselect.Answer`: records,
NODATA, NXDOMAIN or a temporary failure (RFC 1123 §6.1.4.2). It should not raise for a DNS
outcome; if it raises anyway, the drivers treat the exception as a temporary failure (the
message is deferred, never bounced) and name it in the reason.

Optional capabilities, each a protocol below that the drivers look for (once per call, in
``mxselect._resolvers``):

* :class:`LifetimeResolver` / :class:`AsyncLifetimeResolver`: ``resolve`` / ``aresolve`` take
  a ``lifetime`` keyword (seconds); with a ``deadline``, the drivers pass the time left, so a
  query never outlives the selection (the dnspython adapters,
  :class:`~mxselect.stub.StubResolver` and :class:`~mxselect.cache.CachingResolver` do).
* :class:`BatchResolver` / :class:`AsyncBatchResolver`: ``resolve_batch(queries)`` /
  ``aresolve_batch(queries)`` answer a whole batch in one call (the answers in the order of
  the queries) instead of one thread or task per query. :class:`~mxselect.stub.StubResolver`
  has both: ``aresolve_batch`` saves about a fifth of the CPU of a selection, and
  ``resolve_batch`` sends a sync batch from the calling thread (no thread per query; with a
  ``deadline`` the driver passes the time left as its ``lifetime``).
  :class:`~mxselect.cache.CachingResolver` has both too, and hands its misses to the wrapped
  resolver's batch method.

A resolver that does not follow CNAMEs may answer :meth:`Answer.alias(target)
<mxselect.Answer.alias>`; mxselect then asks for the target (at most 10 links).

Worked examples: :mod:`mxselect.aiodns` (an :class:`AsyncResolver` over aiodns/c-ares: one
``aresolve`` that maps every library outcome to an ``Answer`` in one place) and
:mod:`mxselect.dnspython`. Wrap any of them in :class:`mxselect.cache.CachingResolver` for a
TTL-aware cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._answers import Answer, Query

__all__ = [
    "AsyncBatchResolver",
    "AsyncLifetimeResolver",
    "AsyncResolver",
    "BatchResolver",
    "LifetimeResolver",
    "Resolver",
]


@runtime_checkable
class Resolver(Protocol):
    """A synchronous resolver, for :func:`mxselect.select_targets`.

    The driver calls ``resolve`` from several threads at once to run a batch concurrently,
    so it must be thread-safe.
    """

    def resolve(self, query: Query, /) -> Answer:
        """Answer one query."""
        ...


class LifetimeResolver(Protocol):
    """A :class:`Resolver` whose ``resolve`` takes a ``lifetime`` keyword: the most seconds
    the query may take (the time left before the driver's deadline); ``None``: its own.

    Found at run time by the keyword in the method's signature.
    """

    def resolve(self, query: Query, /, lifetime: float | None = None) -> Answer:
        """Answer one query within ``lifetime`` seconds."""
        ...


@runtime_checkable
class BatchResolver(Protocol):
    """A :class:`Resolver` that also answers a whole batch in one call (the sync driver then
    runs no thread per query). It must return one answer per query, in their order."""

    def resolve_batch(self, queries: Sequence[Query], /) -> Sequence[Answer]:
        """Answer every query of a batch."""
        ...


@runtime_checkable
class AsyncResolver(Protocol):
    """An asyncio resolver, for :func:`mxselect.aselect_targets`.

    The driver awaits ``aresolve`` for every query of a batch concurrently.
    """

    async def aresolve(self, query: Query, /) -> Answer:
        """Answer one query."""
        ...


class AsyncLifetimeResolver(Protocol):
    """An :class:`AsyncResolver` whose ``aresolve`` takes a ``lifetime`` keyword (see
    :class:`LifetimeResolver`)."""

    async def aresolve(self, query: Query, /, lifetime: float | None = None) -> Answer:
        """Answer one query within ``lifetime`` seconds."""
        ...


@runtime_checkable
class AsyncBatchResolver(Protocol):
    """An :class:`AsyncResolver` that also answers a whole batch in one call (no task per
    query). It must return one answer per query, in their order. Used when no ``deadline``
    is set (with one, each query runs as its own task so it can be cancelled)."""

    async def aresolve_batch(self, queries: Sequence[Query], /) -> Sequence[Answer]:
        """Answer every query of a batch."""
        ...
