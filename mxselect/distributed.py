"""Scale-out past one machine: ``mxselect -f``'s JSON Lines, computed on a Dask cluster.

:func:`select_many` takes the lines of a batch file (what ``mxselect -f FILE`` reads), and
yields the ``--json`` record of every entry -- the same JSON object the command prints, made
by the same function -- as the partitions finish on the workers of a `Dask distributed
<https://distributed.dask.org/>`_ cluster:

* **deduplicated before they are sent**: entries are grouped by their domain, normalised as
  the selection normalises it (lower-case A-label, no trailing dot: RFC 5321 §2.3.5,
  RFC 5891); each domain is sent and looked up once, and its record is rendered for every
  input line that asked (``input``, ``line`` and ``domain`` are that line's), as an MTA's list
  cleaning expects one verdict per address;
* **invalid entries never leave the client**: a syntax error is a record (``InvalidDomainError``
  501 5.1.3, exit code 65) made before anything is submitted, and no DNS query is sent for it;
* **one event loop and one** :class:`~mxselect.stub.StubResolver` **per worker process**,
  built on the first partition a process runs and reused by every later one; at most
  ``concurrency`` selections are in flight per worker process, whatever the number of its
  threads; an answer cache (:class:`~mxselect.CachingResolver`) is shared by the partitions
  a process runs for one call, as ``mxselect -f`` has one for its run, unless ``cache=False``;
* **streamed**: at most ``max_pending`` partitions are submitted at once; the records of each
  are yielded as soon as it completes (:func:`distributed.as_completed`), then the next one is
  submitted, so neither the client nor the cluster holds the results of the whole list;
* **errors are results**: a failed lookup is a record (temporary or permanent), never a failed
  partition. A worker that dies loses only its partitions in flight; the scheduler runs them
  again on another worker (or the restarted one). That is safe: a partition is idempotent, it only
  reads the DNS, and its records are yielded only once it has completed, so a partition run
  twice is never yielded twice.

Needs the ``distributed`` extra (``pip install "mxselect[distributed]"``); ``import mxselect``
does not import this module or Dask. The recipe, and what limits throughput at scale (the
recursive resolvers, not the library): ``docs/howto/scale-out.md``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO, cast

import attrs

from ._domain import normalize_domain
from ._drivers import _check_deadline
from ._output import Item, Result, render
from ._output import worst as worst
from ._policy import Policy
from .exceptions import InvalidDomainError, MXSelectError, TemporaryError
from .stub import Server, StubResolver

if TYPE_CHECKING:
    import distributed

    from .typing import AsyncResolver

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_PARTITION_SIZE", "select_many", "worker_stats", "worst"]

_log = logging.getLogger(__name__)

#: Selections in flight per worker process (``concurrency``): each has at most a few queries
#: outstanding, so 100 keep a nearby caching resolver busy (``docs/howto/scale-out.md``).
DEFAULT_CONCURRENCY = 100
#: Distinct domains per partition (``partition_size``): large enough that Dask's overhead per
#: task (about a millisecond) is small beside the selections, small enough that a retried
#: partition repeats little work and the first records arrive early.
DEFAULT_PARTITION_SIZE = 500


# ------------------------------------------------------------------------------ the worker


@attrs.frozen
class _ResolverConfig:
    """What the per-process resolver is built from: the same values give the same resolver."""

    nameservers: tuple[Server, ...]
    timeout: float
    lifetime: float
    tcp: bool
    trust_ad: bool
    max_in_flight: int
    cache: bool
    concurrency: int


@attrs.frozen
class _Job:
    """What a partition's selections are asked with (the command's options)."""

    run: str
    policy: Policy
    seed: int | None
    deadline: float | None
    explain: bool
    #: With ``Policy.mta_sts``: makes the run's policy fetcher on each worker process.
    sts_fetcher: Callable[[], Any] | None = None


@attrs.frozen
class _Run:
    """What the selections of one run ask in one process: the resolver (the stub, behind the
    run's answer cache) and the MTA-STS fetcher and store (a :class:`~mxselect.mtasts.
    MemoryStore` for the run, as ``mxselect --mta-sts`` without ``--sts-cache``)."""

    resolver: AsyncResolver
    sts: Any


class _WorkerResolver:
    """One per process and :class:`_ResolverConfig`: the StubResolver, the answer caches in
    front of it (one per run, as ``mxselect -f`` has one per run) and the bound on selections
    in flight, all used on the process's one event loop."""

    def __init__(self, config: _ResolverConfig) -> None:
        self.config = config
        self.stub = StubResolver(
            [(server.address, server.port) for server in config.nameservers],
            timeout=config.timeout,
            lifetime=config.lifetime,
            tcp=config.tcp,
            trust_ad=config.trust_ad,
            max_in_flight=config.max_in_flight,
        )
        self.limit = asyncio.Semaphore(config.concurrency)  # bound to the loop on first use
        self.runs: OrderedDict[str, _Run] = OrderedDict()

    def run(self, job: _Job) -> _Run:
        """What the selections of ``job``'s run ask, made on its first partition here; the
        oldest of more than ``_RUNS`` are dropped, and :func:`select_many` drops its own when
        it ends."""
        from ._cli import _Sts

        found = self.runs.get(job.run)
        if found is None:
            resolver: AsyncResolver = self.stub
            if self.config.cache:
                from .cache import CachingResolver

                # RFC 2308 rules, as ``mxselect -f``: domains sharing MX hosts query them once.
                resolver = CachingResolver(self.stub)
            sts = _Sts()
            if job.policy.mta_sts and job.sts_fetcher is not None:
                from .mtasts import MemoryStore

                sts = _Sts(job.sts_fetcher(), MemoryStore())
            found = self.runs[job.run] = _Run(resolver, sts)
            while len(self.runs) > _RUNS:
                self.runs.popitem(last=False)
        return found


class _ProcessState:
    """The worker process's event loop (in a thread of its own, run forever) and its
    resolvers; made on the first partition, kept for the life of the process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.resolvers: dict[_ResolverConfig, _WorkerResolver] = {}
        self.counts = {"loops": 0, "resolvers": 0, "partitions": 0, "selections": 0, "records": 0}

    def event_loop(self) -> asyncio.AbstractEventLoop:
        with self.lock:
            if self.loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="mxselect-event-loop", daemon=True
                )
                thread.start()
                self.loop = loop
                self.counts["loops"] += 1
            return self.loop

    def resolver(self, config: _ResolverConfig) -> _WorkerResolver:
        with self.lock:
            worker = self.resolvers.get(config)
            if worker is None:
                worker = self.resolvers[config] = _WorkerResolver(config)
                self.counts["resolvers"] += 1
            return worker

    def count(self, **added: int) -> None:
        with self.lock:
            for name, value in added.items():
                self.counts[name] += value


_STATE = _ProcessState()
#: Runs whose answer caches and MTA-STS stores a worker process keeps at once (runs
#: overlapping in time).
_RUNS = 4


def _forget(run: str) -> None:
    """Drop the answer caches and MTA-STS stores of run ``run`` in this process
    (``client.run`` at its end)."""
    with _STATE.lock:
        for worker in _STATE.resolvers.values():
            worker.runs.pop(run, None)


def worker_stats() -> dict[str, int]:
    """This process's counters, for ``client.run(worker_stats)``: ``loops`` and ``resolvers``
    built (1 each, however many partitions ran), ``partitions`` run, ``selections`` made
    (distinct domains looked up) and ``records`` rendered, and the ``pid``."""
    with _STATE.lock:
        return {**_STATE.counts, "pid": os.getpid()}


async def _one(group: Sequence[Item], run: _Run, worker: _WorkerResolver, job: _Job) -> list[str]:
    """Select the targets of one domain, once, and render the record of every line that asked:
    what ``mxselect --json`` prints for each of them."""
    from ._cli import _select

    first = group[0]
    async with worker.limit:
        try:
            result = await _select(first, run.resolver, job.policy, job.seed, job.deadline, run.sts)
        except Exception as exc:  # a bug must not fail the partition of 500 domains: defer
            _log.exception("mxselect: selecting %r failed", first.domain)
            error = TemporaryError(
                f"internal error selecting {first.domain!r}: {type(exc).__name__}: {exc}",
                domain=first.domain,
            )
            result = Result(first, None, error)
    return [
        render(attrs.evolve(result, item=item), json_lines=True, batch=True, explained=job.explain)
        for item in group
    ]


async def _partition(
    groups: Sequence[Sequence[Item]], worker: _WorkerResolver, job: _Job
) -> list[str]:
    with _STATE.lock:
        run = worker.run(job)
    done = await asyncio.gather(*(_one(group, run, worker, job) for group in groups))
    return [record for records in done for record in records]


def _run_partition(
    config: _ResolverConfig, job: _Job, groups: Sequence[Sequence[Item]]
) -> list[str]:
    """The task: run the partition on the process's event loop; its records (JSON Lines)."""
    loop = _STATE.event_loop()
    worker = _STATE.resolver(config)
    records = asyncio.run_coroutine_threadsafe(_partition(groups, worker, job), loop).result()
    _STATE.count(partitions=1, selections=len(groups), records=len(records))
    return records


# ------------------------------------------------------------------------------ the client


def _key(domain: str) -> str:
    """The domain as the selection normalises it (InvalidDomainError if it cannot be)."""
    name = normalize_domain(domain)
    return name if isinstance(name, str) else f"[{name}]"


def _refused(item: Item, job: _Job) -> str:
    """The record of an entry that is not a mail domain, as the command makes it: the
    selection raises InvalidDomainError before it asks anything (RFC 5321 §2.3.5, RFC 5891;
    the resolver given would fail the test suite if it were asked)."""
    from ._drivers import select_targets

    class _NoDNS:
        def resolve(self, query: object) -> Any:
            raise AssertionError(f"an invalid domain asked for {query}")

    try:
        select_targets(item.domain, resolver=_NoDNS(), policy=job.policy)
    except InvalidDomainError as exc:
        result = Result(item, None, exc)
    else:  # pragma: no cover - _key and the selection normalise with the same function
        raise AssertionError(f"{item.domain!r} was refused by normalize_domain only")
    return render(result, json_lines=True, batch=True, explained=job.explain)


def select_many(
    client: distributed.Client,
    lines: Iterable[str],
    *,
    nameservers: Sequence[str | tuple[str, int]],
    policy: Policy | None = None,
    port: int = 53,
    timeout: float = 2.0,
    lifetime: float = 5.0,
    tcp: bool = False,
    trust_ad: bool | None = None,
    max_in_flight: int = 256,
    cache: bool = True,
    concurrency: int = DEFAULT_CONCURRENCY,
    partition_size: int = DEFAULT_PARTITION_SIZE,
    max_pending: int | None = None,
    seed: int | None = None,
    deadline: float | None = None,
    explain: bool = False,
    retries: int = 2,
    sts_fetcher: Callable[[], Any] | None = None,
) -> Iterator[str]:
    """The ``mxselect --json -f`` record of every entry of ``lines``, computed on ``client``'s
    workers and yielded as JSON Lines (without the newline) as their partitions complete.

    Args:
        client: a connected ``distributed.Client`` (a ``LocalCluster``'s or a scheduler's).
        lines: the lines of a batch file, as ``mxselect -f`` reads them: one domain or e-mail
            address per line, blank lines and ``#`` comments skipped, lines numbered from 1
            (an open file will do). Read in full before anything is submitted: the entries
            are grouped by domain first.
        nameservers: the recursive resolver(s) each worker's
            :class:`~mxselect.stub.StubResolver` asks, as it takes them (``"10.0.0.53"`` or
            ``("127.0.0.1", 5353)``); give the workers a resolver near them
            (``docs/howto/scale-out.md``): ``127.0.0.1`` is each worker's own. ``port``,
            ``timeout``, ``lifetime``, ``tcp``, ``trust_ad`` and ``max_in_flight`` (queries
            outstanding per server and worker process) are the StubResolver's (by
            default the AD bit counts only from loopback servers: DNSSEC and DANE need a
            validating resolver reached safely).
        policy: the :class:`~mxselect.Policy` (``None``: the defaults). With
            ``Policy.mta_sts``, each worker process fetches the policies with a fetcher
            made by ``sts_fetcher`` and keeps them in memory for the run, as
            ``mxselect --mta-sts`` does without ``--sts-cache``.
        cache: an answer cache in front of each worker process's StubResolver for this run,
            as ``mxselect -f`` has one for its run (``--no-cache`` is ``cache=False``).
        concurrency: selections in flight per worker process (``--concurrency``).
        partition_size: distinct domains per Dask task.
        max_pending: partitions submitted and not yet yielded, at most (default: twice the
            cluster's threads); bounds what the cluster holds for the client.
        seed: ``--seed``: each domain's equal preferences are shuffled with a generator
            seeded from it and the domain as first written in ``lines``.
        deadline: ``--deadline``: seconds a selection may take, all its queries included.
        explain: ``--explain``: each record carries the ``trace``.
        retries: how many times Dask runs a partition again after it raised (a partition
            whose worker died is run again by the scheduler anyway, up to Dask's
            ``distributed.scheduler.allowed-failures`` times).
        sts_fetcher: with ``Policy.mta_sts``, what makes a worker's policy fetcher for the
            run (called once per worker process and run; sent to the workers, so a class or
            a module-level function, not a lambda); default
            :class:`~mxselect.fetch.HttpxFetcher` (the ``mta-sts`` extra).

    Returns:
        An iterator of JSON texts, one per entry (duplicates included), in the order their
        partitions complete; the invalid entries first. The ``line`` of each record says
        which entry it is. Stop iterating and the partitions not yet done are cancelled.

    Raises:
        ValueError: a bad nameserver, number or policy, before anything is submitted.
        TypeError: ``policy`` is not a Policy, or ``lines`` is one string.
    """
    if isinstance(lines, str | bytes):  # its characters would be taken for lines
        raise TypeError("lines must be an iterable of lines: an open file, text.splitlines()")
    if policy is None:
        policy = Policy()
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a mxselect.Policy, got {type(policy).__name__}")
    if policy.mta_sts and sts_fetcher is None:
        try:
            from .fetch import HttpxFetcher
        except ImportError as exc:  # pragma: no cover - depends on the extras installed
            raise ImportError(
                "Policy.mta_sts needs a policy fetcher: pip install 'mxselect[mta-sts]' for the "
                "httpx one, or pass sts_fetcher=..."
            ) from exc
        sts_fetcher = HttpxFetcher
    if sts_fetcher is not None and not callable(sts_fetcher):
        raise TypeError(f"sts_fetcher must make a fetcher when called, got {sts_fetcher!r}")
    for what, value in (
        ("concurrency", concurrency),
        ("partition_size", partition_size),
        ("max_pending", 1 if max_pending is None else max_pending),
        ("retries", retries + 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{what} must be a positive integer, got {value!r}")
    # The StubResolver checks its own arguments; built here, it raises before any submission.
    stub = StubResolver(
        nameservers,
        port=port,
        timeout=timeout,
        lifetime=lifetime,
        tcp=tcp,
        trust_ad=trust_ad,
        max_in_flight=max_in_flight,
    )
    config = _ResolverConfig(
        stub.nameservers,
        stub.timeout,
        stub.lifetime,
        bool(tcp),
        stub.trust_ad,
        stub.max_in_flight,
        bool(cache),
        concurrency,
    )
    fetcher = sts_fetcher if policy.mta_sts else None
    job = _Job(uuid.uuid4().hex, policy, seed, _check_deadline(deadline), bool(explain), fetcher)
    return _stream(client, lines, config, job, partition_size, max_pending, retries)


def _group(lines: Iterable[str]) -> tuple[list[Item], list[list[Item]]]:
    """The invalid entries, and the others grouped by domain in the order first seen."""
    from ._cli import read_items

    invalid: list[Item] = []
    groups: dict[str, list[Item]] = {}
    for item in read_items(cast("TextIO", lines)):
        try:
            key = _key(item.domain)
        except MXSelectError:
            invalid.append(item)
        else:
            groups.setdefault(key, []).append(item)
    return invalid, list(groups.values())


def _stream(
    client: distributed.Client,
    lines: Iterable[str],
    config: _ResolverConfig,
    job: _Job,
    partition_size: int,
    max_pending: int | None,
    retries: int,
) -> Iterator[str]:
    from distributed import as_completed

    invalid, groups = _group(lines)
    for item in invalid:
        yield _refused(item, job)
    if not groups:
        return
    if max_pending is None:
        threads = client.nthreads()  # type: ignore[no-untyped-call,unused-ignore]
        max_pending = 2 * max(1, sum(threads.values()))
    chunks = (groups[i : i + partition_size] for i in range(0, len(groups), partition_size))
    numbers = itertools.count()

    outstanding: set[Any] = set()

    def submit(chunk: list[list[Item]]) -> Any:
        key = f"mxselect-partition-{job.run}-{next(numbers)}"
        future = client.submit(_run_partition, config, job, chunk, key=key, retries=retries)
        outstanding.add(future)
        return future

    first = [submit(chunk) for chunk in itertools.islice(chunks, max_pending)]
    pending = as_completed(first, loop=client.loop)  # type: ignore[no-untyped-call,unused-ignore]
    try:
        for future in pending:
            records: list[str] = future.result()
            outstanding.discard(future)
            future.release()
            chunk = next(chunks, None)
            if chunk is not None:
                pending.add(submit(chunk))  # type: ignore[no-untyped-call,unused-ignore]
            yield from records
    finally:
        if outstanding:  # the caller stopped early, or a partition failed: stop the others
            client.cancel(list(outstanding))  # type: ignore[no-untyped-call,unused-ignore]
        if config.cache or job.sts_fetcher is not None:  # best effort: a dead worker forgot
            try:
                client.run(_forget, job.run, on_error="ignore")  # type: ignore[no-untyped-call,unused-ignore]
            except Exception as exc:
                _log.debug("mxselect: dropping the answer caches of run %s: %s", job.run, exc)
