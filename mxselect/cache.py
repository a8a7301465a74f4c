"""A TTL-aware DNS cache that wraps any resolver, sync or asyncio: :class:`CachingResolver`.

It sits between mxselect and *your* resolver (the dnspython adapter, the aiodns adapter, a
``dns.resolver.Resolver``, your own class) and is itself a :class:`mxselect.typing.Resolver`
and :class:`mxselect.typing.AsyncResolver`::

    cache = CachingResolver(my_resolver)            # one per process, shared by all workers
    selection = mxselect.select_targets("example.org", resolver=cache)
    selection = await mxselect.aselect_targets("example.org", resolver=cache)

The rules, each from the RFC cited next to the code:

* positive answers (records, and CNAMEs a resolver reports as ``ALIAS``) are kept for their TTL,
  capped at ``max_ttl``; a TTL of 0 is used once and not kept (RFC 1123 §6.1.2.1); a TTL with
  the top bit set counts as 0 (RFC 2181 §8); an answer without a TTL is not kept;
* NXDOMAIN and NODATA are kept for their negative TTL, the SOA-derived TTL the resolver
  reports (RFC 2308 §5), capped at ``max_negative_ttl`` (default 3 hours, RFC 2308 §5); a
  negative answer without one (no SOA) is not kept (RFC 2308 §5); an NXDOMAIN for the name
  asked also answers the other types of that name (RFC 2308 §5);
* an answer is stored only under the question that was asked (RFC 5452 §6): records met on
  the way -- CNAME targets, an NXDOMAIN at the end of a chain (RFC 6604 §3) -- are part of
  that answer, never facts about other names, so a forged reply for a random name cannot
  poison another;
* temporary failures are kept at most ``tempfail_ttl`` seconds (default 30, at most 300,
  0 = never; RFC 2308 §7.1, RFC 1123 §6.1.3.3); a cached one says ``(cached)`` in its reason;
* TLSA answers (DANE, RFC 7672 §2.2.3) -- records, NODATA and NXDOMAIN alike -- are kept at
  most ``max_tlsa_ttl`` seconds (default 100): RFC 7671 §13 warns that "clients that cache
  stale TLSA records will fail to validate the certificate chain of the updated server", and
  Postfix clamps its TLSA cache the same way (``TLS_DANE_CACHE_TTL_MAX``, 100 s); a name-wide
  NXDOMAIN recorded by another query never answers a TLSA query;
* every entry keeps the answer's DNSSEC status (:class:`~mxselect.Security`) with it: a cached
  SECURE answer is SECURE again, never re-labelled;
* at most ``max_entries`` entries, least recently used dropped first;
* every answer it returns carries the *remaining* TTL, so :attr:`mxselect.Selection.ttl`
  tells how much longer a selection made from cached answers stays valid;
* safe to share between threads and between asyncio tasks (even of several event loops):
  concurrent identical queries are coalesced into one upstream query -- threads wait for the
  one in-flight call, tasks share one future. Cancelling a waiting task does not cancel the
  shared upstream query.

**dnspython's own cache.** ``dns.resolver.Resolver.cache`` (off unless you set it) serves only
dnspython; it keeps positive answers, NODATA and NXDOMAIN, but it returns them with the TTLs as
received (not decremented, so a selection's TTL would overstate its validity), does not keep
temporary failures and does not coalesce concurrent queries. Use one cache, not both: with
:class:`CachingResolver`, leave dnspython's cache off (``resolver.cache = None``, the default).

The module imports neither dnspython nor asyncio until used (``asyncio`` on the first
``aresolve``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs

from ._answers import Answer, Query, RRType, Status, seconds
from ._resolvers import AsyncPort, SyncPort, async_port, pool, sync_port

if TYPE_CHECKING:
    import asyncio

    from .typing import AsyncResolver, Resolver

__all__ = ["CacheStats", "CachingResolver"]

#: RFC 2308 §7.1: a server failure "MUST NOT" be cached for longer than five minutes.
MAX_TEMPFAIL_TTL = 300
#: RFC 2308 §5: "Values exceeding one day have been found to be problematic."
MAX_NEGATIVE_TTL = 86400
#: RFC 7671 §13 / Postfix ``TLS_DANE_CACHE_TTL_MAX``: TLSA answers are kept at most 100 s.
TLSA_CACHE_TTL_MAX = 100

_TOP_BIT = 2**31


@attrs.define
class CacheStats:
    """Counters of a :class:`CachingResolver` (read them, e.g. for metrics).

    Attributes:
        hits: queries answered from the cache.
        misses: queries that needed the wrapped resolver (coalesced ones included).
        upstream: queries actually sent to the wrapped resolver.
        coalesced: queries that waited for an identical in-flight query instead.
        evictions: entries dropped because the cache was full.
    """

    hits: int = 0
    misses: int = 0
    upstream: int = 0
    coalesced: int = 0
    evictions: int = 0


class _Entry:
    """A kept answer, when it expires, and the answer last handed out for it: the same
    remaining TTL (whole seconds) gives the same object again, so a hit does not build a new
    :class:`Answer` each time. Read and written with the cache's lock held."""

    __slots__ = ("answer", "expires", "served", "served_ttl")

    def __init__(self, answer: Answer, expires: float) -> None:
        self.answer = answer
        self.expires = expires
        self.served_ttl = -1
        self.served = answer

    def with_ttl(self, ttl: int) -> Answer:
        """The answer with ``ttl`` seconds remaining."""
        if ttl != self.served_ttl:
            self.served = attrs.evolve(self.answer, ttl=ttl)
            self.served_ttl = ttl
        return self.served


class _Flight:
    """One in-flight synchronous upstream query that other threads wait for."""

    __slots__ = ("answer", "done")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: Answer | None = None


def _same_name(canonical: str | None, name: str) -> bool:
    """Whether ``canonical`` (an Answer's, or None: no CNAME) is ``name`` itself."""
    if canonical is None:
        return True
    return canonical.rstrip(".").lower() == name.rstrip(".").lower()


def _check_ttl(name: str, value: int, limit: int | None) -> None:
    if value < 0 or (limit is not None and value > limit):
        bound = f"0..{limit}" if limit is not None else ">= 0"
        raise ValueError(f"{name} must be {bound}, got {value}")


class CachingResolver:
    """A cache in front of any resolver; both a sync and an asyncio resolver itself.

    Args:
        resolver: the resolver to ask on a miss: a :class:`mxselect.typing.Resolver` (used by
            :meth:`resolve`, and in a thread by :meth:`aresolve`), an
            :class:`mxselect.typing.AsyncResolver` (used by :meth:`aresolve`), an object with
            both, or a dnspython ``Resolver`` / ``asyncresolver.Resolver`` (through the
            dnspython adapter).
        max_entries: the most answers kept; the least recently used go first.
        max_ttl: the longest a positive answer is kept, whatever its TTL (default 1 day, like
            Unbound's ``cache-max-ttl``).
        max_negative_ttl: the longest NXDOMAIN/NODATA is kept (RFC 2308 §5: "one to three
            hours ... a sensible default"; default 3 h, at most 1 day).
        tempfail_ttl: how long a temporary failure is kept (RFC 2308 §7.1: at most 300 s;
            0 never keeps one). Default 30 s: a burst of deliveries to a broken domain costs
            one query, and the next queue run asks again.
        max_tlsa_ttl: the longest a TLSA answer (records or negative) is kept, whatever its
            TTL (RFC 7671 §13; default 100 s, Postfix's ``TLS_DANE_CACHE_TTL_MAX``; 0 never
            keeps one).
        clock: a monotonic clock in seconds (inject a fake one in tests).

    Attributes:
        stats: the :class:`CacheStats` counters.
    """

    def __init__(
        self,
        resolver: Resolver | AsyncResolver | Any,
        *,
        max_entries: int = 10_000,
        max_ttl: int = 86400,
        max_negative_ttl: int = 3 * 3600,
        tempfail_ttl: int = 30,
        max_tlsa_ttl: int = TLSA_CACHE_TTL_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        _check_ttl("max_ttl", max_ttl, _TOP_BIT - 1)
        _check_ttl("max_negative_ttl", max_negative_ttl, MAX_NEGATIVE_TTL)
        _check_ttl("tempfail_ttl", tempfail_ttl, MAX_TEMPFAIL_TTL)
        _check_ttl("max_tlsa_ttl", max_tlsa_ttl, _TOP_BIT - 1)
        self.resolver = resolver
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self.tempfail_ttl = tempfail_ttl
        self.max_tlsa_ttl = max_tlsa_ttl
        self.clock = clock
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._entries: OrderedDict[Query | tuple[str, None], _Entry] = OrderedDict()
        self._flights: dict[Query, _Flight] = {}
        # (loop, query) -> the task asking it upstream, and the query's place in its batch:
        # the task's result is the list of the batch's answers.
        self._tasks: dict[
            tuple[asyncio.AbstractEventLoop, Query], tuple[asyncio.Task[list[Answer]], int]
        ] = {}
        self._sync: SyncPort | None = None
        self._async: AsyncPort | None = None

    # -- the rules ---------------------------------------------------------------------------

    def lifetime(self, answer: Answer, rtype: RRType | None = None) -> int:
        """How many seconds ``answer`` (to a query of type ``rtype``, if given) may be kept
        (0: not at all), by the rules above."""
        if answer.status is Status.TEMPFAIL:
            return self.tempfail_ttl  # RFC 2308 §7.1: at most 5 minutes, or never
        if rtype is RRType.TLSA:
            # RFC 7671 §13: stale TLSA records fail the updated server; Postfix: 100 s.
            return min(self._lifetime(answer), self.max_tlsa_ttl)
        return self._lifetime(answer)

    def _lifetime(self, answer: Answer) -> int:
        ttl = answer.ttl
        if ttl is None:
            # RFC 2308 §5: "Negative responses without SOA records SHOULD NOT be cached";
            # a positive answer without a TTL has no known lifetime either.
            return 0
        if ttl < 0 or ttl >= _TOP_BIT:
            return 0  # RFC 2181 §8: a TTL with the most significant bit set counts as zero
        if answer.status in (Status.NXDOMAIN, Status.NODATA):
            return min(ttl, self.max_negative_ttl)  # RFC 2308 §5, capped
        return min(ttl, self.max_ttl)  # RFC 1123 §6.1.2.1: TTL 0 -> used once, not kept

    # -- the store ---------------------------------------------------------------------------

    def _lookup(self, query: Query, now: float) -> Answer | None:
        """A cached answer with its remaining TTL, or ``None``. Call with the lock held."""
        entries = self._entries
        key: Query | tuple[str, None] = query
        entry = entries.get(query)
        if entry is not None:
            remaining = entry.expires - now
            if remaining > 0:
                entries.move_to_end(key)
                if entry.answer.status is Status.TEMPFAIL:
                    return entry.answer
                return entry.with_ttl(int(remaining))
            del entries[key]  # RFC 2308 §5: at zero, "MUST NOT be used again"
        key = (query.name, None)
        entry = entries.get(key)
        if entry is None:
            return None
        remaining = entry.expires - now
        if remaining <= 0:
            del entries[key]
            return None
        entries.move_to_end(key)
        # An NXDOMAIN recorded for the name answers every type (the entry is the denial,
        # with its DNSSEC status: _store), but not past the TLSA cap (RFC 7671 §13): ask again.
        if query.rtype is RRType.TLSA:
            return None
        return entry.with_ttl(int(remaining))

    def _store(self, query: Query, answer: Answer, now: float) -> None:
        """Keep ``answer`` by the rules. Call with the lock held."""
        seconds = self.lifetime(answer, query.rtype)
        if seconds <= 0:
            return
        expires = now + seconds
        if answer.status is Status.TEMPFAIL:
            # RFC 2308 §7.1: against the query tuple (this cache wraps one upstream).
            self._put(
                query, _Entry(attrs.evolve(answer, reason=f"{answer.reason} (cached)"), expires)
            )
            return
        self._put(query, _Entry(answer, expires))
        if answer.status is Status.NXDOMAIN and _same_name(answer.canonical_name, query.name):
            # RFC 2308 §5: the name asked does not exist, whatever the type. At the end of a
            # CNAME chain (RFC 6604 §3) the name that does not exist is another one: that
            # NXDOMAIN is part of the answer to this question only, never a fact about the
            # chain's last name (RFC 5452 §6, RFC 2181 §5.4.1) -- one forged reply for a
            # random name would otherwise make any victim domain "not exist" for hours.
            # The denial of the name, with its DNSSEC status (an NSEC proof covers every type).
            denial = Answer.nxdomain(ttl=seconds, security=answer.security)
            self._put((query.name, None), _Entry(denial, expires))

    def _put(self, key: Query | tuple[str, None], entry: _Entry) -> None:
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
        entries[key] = entry  # a new key goes to the end
        while len(entries) > self.max_entries:
            entries.popitem(last=False)
            self.stats.evictions += 1

    def clear(self) -> None:
        """Forget every cached answer."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # -- sync --------------------------------------------------------------------------------

    def _counted_lookup(self, query: Query) -> Answer | None:
        """The cached answer now, counted as a hit or a miss (the lock is held)."""
        return self._counted_lookup_at(query, self.clock())

    def _counted_lookup_at(self, query: Query, now: float) -> Answer | None:
        """The cached answer at ``now``, counted as a hit or a miss (the lock is held)."""
        cached = self._lookup(query, now)
        if cached is not None:
            self.stats.hits += 1
        else:
            self.stats.misses += 1
        return cached

    def _sync_port(self) -> SyncPort:
        if self._sync is None:
            self._sync = sync_port(self.resolver)
        return self._sync

    def resolve(self, query: Query, lifetime: float | None = None) -> Answer:
        """Answer from the cache, or ask the wrapped resolver once for all waiting threads.

        ``lifetime`` (seconds, from a driver's deadline) is passed on to a wrapped resolver
        that takes one (the dnspython adapter); a thread waiting for another's identical
        query waits for that query.

        Raises:
            TypeError: the wrapped resolver has no synchronous ``resolve``.
        """
        upstream = self._sync_port()
        with self._lock:
            cached = self._counted_lookup(query)
            if cached is not None:
                return cached
            flight = self._flights.get(query)
            leader = flight is None
            if flight is None:
                flight = self._flights[query] = _Flight()
                self.stats.upstream += 1
            else:
                self.stats.coalesced += 1
        if not leader:
            flight.done.wait()
            assert flight.answer is not None
            return flight.answer
        answer: Answer | None = None
        try:
            # the drivers' own call: lifetime passed on, exceptions and non-Answers -> TEMPFAIL
            answer = upstream.answer(query, lifetime)
            return answer
        finally:
            if answer is None:  # KeyboardInterrupt and the like: release the waiters
                answer = Answer.tempfail("resolver interrupted")
            else:
                with self._lock:
                    self._store(query, answer, self.clock())
            with self._lock:
                del self._flights[query]
            flight.answer = answer
            flight.done.set()

    def resolve_batch(
        self, queries: Sequence[Query], lifetime: float | None = None
    ) -> list[Answer]:
        """Answer a batch (used by the sync driver): hits at once, without threads; each miss
        asked upstream once for all the threads waiting for it, as by :meth:`resolve`.

        A wrapped resolver with a batch method that takes a lifetime
        (:meth:`mxselect.stub.StubResolver.resolve_batch`) gets the misses in one call from
        this thread: no thread per query at all. Any other resolver gets them concurrently on
        the driver's thread pool.

        ``lifetime`` (seconds, from a driver's deadline): passed on, and the call returns
        within it; a miss still unanswered then is a temporary failure (not kept).
        """
        upstream = self._sync_port()
        if not upstream.batched or (lifetime is not None and not upstream.bounded_batch):
            return self._pooled_batch(queries, lifetime)
        end = None if lifetime is None else time.monotonic() + lifetime
        answers: list[Answer | None] = [None] * len(queries)
        leaders: list[tuple[int, _Flight]] = []
        joined: list[tuple[int, _Flight]] = []
        with self._lock:
            now = self.clock()
            for i, query in enumerate(queries):
                cached = self._counted_lookup_at(query, now)
                if cached is not None:
                    answers[i] = cached
                    continue
                flight = self._flights.get(query)
                if flight is None:
                    flight = self._flights[query] = _Flight()
                    self.stats.upstream += 1
                    leaders.append((i, flight))
                else:  # another thread's, or this batch's own (the same query twice)
                    self.stats.coalesced += 1
                    joined.append((i, flight))
        if leaders:
            got: list[Answer] | None = None
            try:
                got = upstream.answers([queries[i] for i, _ in leaders], lifetime)
            finally:
                with self._lock:
                    for n, (i, flight) in enumerate(leaders):
                        answer = (
                            got[n] if got is not None else Answer.tempfail("resolver interrupted")
                        )
                        if got is not None:
                            self._store(queries[i], answer, self.clock())
                        del self._flights[queries[i]]
                        flight.answer = answer
                        answers[i] = answer
                for _, flight in leaders:
                    flight.done.set()
        for i, flight in joined:
            wait = None if end is None else max(0.0, end - time.monotonic())
            if flight.done.wait(wait) and flight.answer is not None:
                answers[i] = flight.answer
            else:  # our deadline came first (the other thread's query goes on)
                answers[i] = Answer.tempfail(
                    f"timeout after {seconds(lifetime or 0)} s (an identical query)"
                )
        return cast("list[Answer]", answers)

    def _pooled_batch(self, queries: Sequence[Query], lifetime: float | None) -> list[Answer]:
        """The misses of a batch through :meth:`resolve` on the driver's thread pool (the
        first in this thread without a ``lifetime``; with one, all on the pool, and the
        call stops waiting when it is spent)."""
        answers: list[Answer | None] = [None] * len(queries)
        misses: list[int] = []
        with self._lock:
            now = self.clock()
            for i, query in enumerate(queries):
                cached = self._lookup(query, now)
                if cached is None:
                    misses.append(i)
                else:
                    self.stats.hits += 1
                    answers[i] = cached
        if misses and lifetime is None:
            first, rest = misses[0], misses[1:]
            futures = [(i, pool().submit(self.resolve, queries[i])) for i in rest]
            answers[first] = self.resolve(queries[first])
            for i, future in futures:
                answers[i] = future.result()
        elif misses:
            from concurrent.futures import wait

            futures = [(i, pool().submit(self.resolve, queries[i], lifetime)) for i in misses]
            done, _ = wait([f for _, f in futures], timeout=lifetime)
            for i, future in futures:
                if future in done:
                    answers[i] = future.result()
                else:  # still running: it finishes (and is kept) in the background
                    future.cancel()
                    answers[i] = Answer.tempfail(f"timeout after {seconds(lifetime or 0)} s")
        return [a if a is not None else Answer.tempfail("no answer") for a in answers]

    # -- asyncio -----------------------------------------------------------------------------

    def _async_port(self) -> AsyncPort:
        if self._async is None:
            self._async = async_port(self.resolver)
        return self._async

    async def aresolve(self, query: Query, lifetime: float | None = None) -> Answer:
        """The asyncio twin of :meth:`resolve`: concurrent identical queries share one future."""
        return (await self.aresolve_batch((query,), lifetime, single=True))[0]

    async def aresolve_batch(
        self, queries: Sequence[Query], lifetime: float | None = None, *, single: bool = False
    ) -> list[Answer]:
        """The asyncio twin of :meth:`resolve_batch` (used by the asyncio driver without a
        deadline): hits at once; the misses that no other task is asking already go to the
        wrapped resolver in one call -- its ``aresolve_batch`` when it has one
        (:class:`mxselect.stub.StubResolver`: no task per query), concurrent ``aresolve``
        calls otherwise -- and a miss another task is asking waits for that query, as
        :meth:`aresolve` does.

        The upstream call runs in one task of its own, shielded: a cancelled caller does not
        cancel the queries other tasks wait for. ``lifetime`` (seconds): passed on; a miss
        unanswered when it is spent is a temporary failure, not kept. (``single``: the call
        of :meth:`aresolve`, whose one miss goes to the wrapped resolver's ``aresolve``.)
        """
        import asyncio

        loop = asyncio.get_running_loop()
        answers: list[Answer | None] = [None] * len(queries)
        # (place in this batch, the task asking the query, the query's place in its batch)
        waits: list[tuple[int, asyncio.Task[list[Answer]], int]] = []
        fetching: asyncio.Task[list[Answer]] | None = None
        batch: list[Query] = []
        stats, tasks = self.stats, self._tasks
        with self._lock:
            now = self.clock()
            for i, query in enumerate(queries):
                cached = self._lookup(query, now)
                if cached is not None:
                    stats.hits += 1
                    answers[i] = cached
                    continue
                stats.misses += 1
                key = (loop, query)
                flight = tasks.get(key)
                if flight is None:
                    if fetching is None:
                        # It starts at the loop's next turn: the batch is complete by then.
                        fetching = loop.create_task(
                            self._fetch_batch(loop, batch, lifetime, single)
                        )
                    flight = tasks[key] = (fetching, len(batch))
                    batch.append(query)
                    stats.upstream += 1
                else:  # another task's, or this batch's own (the same query twice)
                    stats.coalesced += 1
                waits.append((i, *flight))
        own: list[Answer] = []
        if fetching is not None:
            # shield: a cancelled caller must not cancel the queries the others wait for.
            own = await asyncio.shield(fetching)
        for i, task, n in waits:
            answers[i] = own[n] if task is fetching else (await asyncio.shield(task))[n]
        return cast("list[Answer]", answers)

    async def _fetch_batch(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: Sequence[Query],
        lifetime: float | None,
        single: bool,
    ) -> list[Answer]:
        """Ask the wrapped resolver for ``batch`` in one call (its ``aresolve`` when
        ``single``); store each answer and return them all (temporary failures if the call is
        interrupted, so that no waiter is stranded)."""
        import asyncio

        got: list[Answer | None] | None = None
        port = self._async_port()
        try:
            if single:
                got = [await port.answer(batch[0], lifetime)]
            elif lifetime is None:
                got = list(await port.answers(batch))
            else:
                got = await port.answers_until(batch, loop.time() + lifetime)
        except asyncio.CancelledError:
            pass  # every waiter gets a temporary failure below (the loop is shutting down)
        finally:
            answers: list[Answer] = []
            this = asyncio.current_task()
            with self._lock:
                now = self.clock()
                for n, query in enumerate(batch):
                    answer = got[n] if got is not None else None
                    if answer is not None:
                        self._store(query, answer, now)
                    elif got is not None:
                        answer = Answer.tempfail(f"timeout after {seconds(lifetime or 0)} s")
                    else:
                        answer = Answer.tempfail("resolver interrupted")
                    answers.append(answer)
                    flight = self._tasks.get((loop, query))
                    if flight is not None and flight[0] is this:
                        del self._tasks[(loop, query)]
        return answers

    def __repr__(self) -> str:
        return f"CachingResolver({self.resolver!r}, {len(self)} entries)"
