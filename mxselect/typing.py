"""The resolver protocols: how mxselect asks your resolver for DNS answers.

A resolver has one method. It takes a :class:`~mxselect.Query` (an absolute name with its
trailing dot, and ``MX``, ``A`` or ``AAAA``) and returns an :class:`~mxselect.Answer`: records,
NODATA, NXDOMAIN or a temporary failure (RFC 1123 §6.1.4.2). It should not raise for a DNS
outcome; if it raises anyway, the drivers treat the exception as a temporary failure (the
message is deferred, never bounced) and name it in the reason.

An asyncio resolver may also offer ``async def aresolve_batch(queries) -> list[Answer]`` (the
answers in the order of the queries): :func:`mxselect.aselect_targets` then hands it each batch
in one call instead of one task per query (:class:`mxselect.stub.StubResolver` does, which saves
about a fifth of the CPU of a selection). It is optional; ``aresolve`` stays required.

A resolver that does not follow CNAMEs may answer :meth:`Answer.alias(target)
<mxselect.Answer.alias>`; mxselect then asks for the target (at most 10 links).

Worked examples: :mod:`mxselect.aiodns` (an :class:`AsyncResolver` over aiodns/c-ares: one
``aresolve`` that maps every library outcome to an ``Answer`` in one place) and
:mod:`mxselect.dnspython`. Wrap any of them in :class:`mxselect.cache.CachingResolver` for a
TTL-aware cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._answers import Answer, Query

__all__ = ["AsyncResolver", "Resolver"]


@runtime_checkable
class Resolver(Protocol):
    """A synchronous resolver, for :func:`mxselect.select_targets`.

    The driver calls ``resolve`` from several threads at once to run a batch concurrently,
    so it must be thread-safe.
    """

    def resolve(self, query: Query, /) -> Answer:
        """Answer one query."""
        ...


@runtime_checkable
class AsyncResolver(Protocol):
    """An asyncio resolver, for :func:`mxselect.aselect_targets`.

    The driver awaits ``aresolve`` for every query of a batch concurrently.
    """

    async def aresolve(self, query: Query, /) -> Answer:
        """Answer one query."""
        ...
