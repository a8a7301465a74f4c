"""Benchmark 3: bulk throughput over Knot + Unbound, cold and warm cache, against the peers.

1,000 generated domains under ``bulk.test.`` (multi-MX with own hosts, MX at a shared
provider, implicit MX, null MX, NXDOMAIN; seeded) are served by Knot (tests/harness/dnsenv.py)
behind a UDP proxy that holds every query 10 ms (the round trip to a distant authoritative
server), and resolved through the harness's Unbound. Cold: Unbound's cache is flushed before
every run; warm: the same run again right after.

Peers, on the same domains in the same run:

* mxselect: ``aselect_targets`` with ``CONCURRENCY`` selections in flight, through its own stub
  resolver (``mxselect.stub.StubResolver``: the figure the targets use) and through the
  dnspython adapter; ``select_targets`` in 32 threads (both resolvers), as email-validator runs
  (with the stub, the threads' batches are handed to its one I/O loop thread); and
  ``select_targets`` + StubResolver from one thread, sequential (each batch in the calling
  thread), on the first ``SEQUENTIAL`` domains;
* the previous design of the stub resolver (``benchmarks/_pooled_stub.py``: pooled UDP sockets,
  one source port for up to 4,096 queries, before issue 14 / RFC 5452): the same selections and
  the same raw queries, so the run reports what a fresh socket per query costs;
* the floor: raw ``dns.asyncresolver`` queries for exactly the messages mxselect sends (recorded
  per domain, batch by batch), same concurrency, no selection logic; and the same queries sent
  raw through ``StubResolver.aresolve`` (what the selection logic adds to its transport);
* the C anchor: the same queries, batch after batch, through GNU adns (one ``adnshost
  --asynch --pipe`` process, ``benchmarks/_adns.py``), same concurrency, same Unbound (on a
  second loopback address at port 53: adns asks no other port; needs root): what the
  transport costs without Python. Its answers are checked against the recorded ones;
* the bare-Python floor: the same queries through the most minimal asyncio client
  (``benchmarks/_bare_client.py``, no mxselect code), on a fresh connected socket per query
  (RFC 5452 §9.2) and on one shared socket (what §9.2 rules out, what adns does): what any
  Python client pays for the transport, and what the socket per query costs in bare Python;
* email-validator's deliverability check, 32 threads (it resolves the MX set only, and A/AAAA/
  TXT of the domain when there is no MX: no exchange address -- less work);
* the naive sequential dnspython loop (MX, then A and AAAA per host) and
  ``dns.resolver.resolve_name`` per host: sequential, run on the first ``SEQUENTIAL`` domains
  (a representative slice: the list is shuffled) to keep the run short; domains/s is a rate.

CPU seconds per domain is the client process's CPU time (``time.process_time``, all threads;
for adns, the ``adnshost`` process's, from ``wait4``) divided by the domains resolved; Unbound,
Knot and the proxy run in other processes.

The contestants run one after the other, round after round (``--repeat``, default
``REPEAT``), each cold then warm; the ratios the targets use are taken within each round (two
contestants' figures measured close in time, so a swing of the shared machine moves both) and
the median of those per-round ratios is the figure checked, printed with their min–max and
the ratio of the medians next to it.

    python benchmarks/bulk.py [--smoke] [--quick] [--domains N] [--repeat N]
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import _adns
import _bare_client
import dns.asyncresolver
import dns.resolver
from _common import (
    Report,
    Skipped,
    Table,
    Target,
    async_resolver,
    median,
    server_process,
    spread,
)
from _common import sync_resolver as make_sync_resolver
from _pooled_stub import StubResolver as PooledStubResolver
from harness import bulkzone
from harness.dnsenv import DnsEnv, free_port, missing_programs

import mxselect
from mxselect import Query, RRType, SelectionPlan, Status
from mxselect.dnspython import AsyncDnspythonResolver
from mxselect.stub import StubResolver

NAME = "bulk"
#: The contestants ``--quick`` runs: the headline, the previous design, the floors (the bare
#: Python ones are cheap: about as long as the raw stub's), the peers.
QUICK = (
    "StubResolver (",
    "previous design",
    "raw StubResolver",
    "adns",
    "bare Python client",
    "email-validator",
    "naive",
)

CONCURRENCY = 100
#: A second, wider run of the headline contestant: where throughput stops growing.
WIDE = 300
#: The sync contestants' threads, as email-validator runs; the asyncio path is also run with as
#: many selections in flight, so that the sync path can be compared at the same concurrency.
THREADS = 32
DOMAINS = 1000
SEQUENTIAL = 150
#: Rounds of every contestant (cold then warm each) in a full run.
REPEAT = 5
UPSTREAM_DELAY_MS = 10.0
ZONE = "bulk.test"

_Batches = list[list[tuple[str, str]]]
#: What the recording resolver answered to each question: (``Status`` value, records).
_Recorded = dict[tuple[str, str], tuple[str, int]]
#: Queries that failed temporarily while the floor's queries were recorded (should be none).
RECORD_TEMPFAILS: list[str] = []


def generate(count: int, seed: int = 1000) -> tuple[str, list[str]]:
    """The bulk.test. zone text and its domains in a shuffled order (kinds mixed): the shared
    generator of ``tests/harness/bulkzone.py`` (also used by tests/test_distributed.py)."""
    return bulkzone.generate(count, seed, zone=ZONE)


class BulkEnv(DnsEnv):
    """The harness's Knot + Unbound, plus the generated zone behind the delaying proxy."""

    def __init__(
        self,
        workdir: Path,
        zone_text: str,
        proxy_port: int,
        auth_port: int,
        port53_address: str | None = None,
    ) -> None:
        """``port53_address``: a second address for Unbound to listen on, at port 53 (for
        adns, which asks no other port: ``benchmarks/_adns.py``)."""
        super().__init__(
            workdir,
            auth_port=auth_port,
            resolver_port=free_port(5353),
            dead_port=free_port(5399),
        )
        self.zone_text = zone_text
        self.proxy_port = proxy_port
        self.port53_address = port53_address

    def _prepare_zones(self) -> None:
        super()._prepare_zones()
        (self.zones_dir / f"{ZONE}.zone").write_text(self.zone_text)

    def _knot_conf(self) -> str:
        return super()._knot_conf() + f"  - domain: {ZONE}.\n"

    def _unbound_conf(self) -> str:
        extra = f"server:\n    interface: {self.port53_address}@53\n" if self.port53_address else ""
        return (
            super()._unbound_conf()
            + f'stub-zone:\n    name: "{ZONE}."\n    stub-addr: 127.0.0.1@{self.proxy_port}\n'
            + extra
        )

    def flush(self) -> None:
        """A cold cache: forget every answer, negative ones and server RTTs included."""
        self.unbound_control("flush_zone", f"{ZONE}.")
        self.unbound_control("flush_negative")
        self.unbound_control("flush_infra", "all")


# -- the contestants: each returns Counter of "ok" / "permanent" / "temporary" ------------

_T = TypeVar("_T")


def in_flight(
    items: Sequence[_T], one: Callable[[_T], Awaitable[object]], concurrency: int = CONCURRENCY
) -> None:
    """``await one(item)`` for every item, in order, ``concurrency`` at a time, in a fresh
    event loop."""

    async def worker(queue: list[_T]) -> None:
        while queue:
            await one(queue.pop())

    async def main() -> None:
        queue = list(reversed(items))
        await asyncio.gather(*(worker(queue) for _ in range(concurrency)))

    asyncio.run(main())


def run_mxselect(
    resolver: dns.asyncresolver.Resolver | StubResolver | PooledStubResolver,
    domains: Sequence[str],
    concurrency: int = CONCURRENCY,
) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    rng = random.Random(7)

    async def one(domain: str) -> None:
        try:
            await mxselect.aselect_targets(domain, resolver=resolver, rng=rng)
        except mxselect.PermanentError:
            outcomes["permanent"] += 1
        except mxselect.TemporaryError:
            outcomes["temporary"] += 1
        else:
            outcomes["ok"] += 1

    in_flight(domains, one, concurrency)
    return outcomes


def record_batches(
    resolver: dns.asyncresolver.Resolver,
    domains: Sequence[str],
    answered: _Recorded | None = None,
) -> list[_Batches]:
    """The queries mxselect sends for each domain, batch by batch (for the floor); what
    each query was answered (its status and number of records) goes into ``answered``."""
    adapter = AsyncDnspythonResolver(resolver)
    RECORD_TEMPFAILS.clear()
    out: dict[str, _Batches] = {}

    async def one(domain: str) -> None:
        plan = SelectionPlan(domain, rng=random.Random(7))
        batches: _Batches = []
        while not plan.done:
            batch = plan.pending
            batches.append([(q.name, q.rtype.value) for q in batch])
            answers = await asyncio.gather(*(adapter.aresolve(q) for q in batch))
            RECORD_TEMPFAILS.extend(
                str(q) for q, a in zip(batch, answers, strict=True) if a.status is Status.TEMPFAIL
            )
            for query, answer in zip(batch, answers, strict=True):
                plan.feed(query, answer)
                if answered is not None:
                    count = len(answer.mx) + len(answer.addresses) + len(answer.tlsa)
                    count += len(answer.txt)
                    answered[(query.name, query.rtype.value)] = (answer.status.value, count)
        out[domain] = batches

    in_flight(domains, one)
    return [out[d] for d in domains]


def run_floor(resolver: dns.asyncresolver.Resolver, recorded: Sequence[_Batches]) -> Counter[str]:
    outcomes: Counter[str] = Counter()

    async def ask(name: str, rtype: str) -> object:
        try:
            return await resolver.resolve(name, rtype, search=False)
        except Exception as exc:
            return exc

    async def one(batches: _Batches) -> None:
        for batch in batches:
            await asyncio.gather(*(ask(n, t) for n, t in batch))
        outcomes["queries"] += 1

    in_flight(recorded, one)
    return outcomes


def run_stub_floor(
    resolver: StubResolver | PooledStubResolver, recorded: Sequence[_Batches]
) -> Counter[str]:
    """The floor's queries sent raw through the stub resolver: no selection logic. Each
    batch is one ``aresolve_batch`` call, as the selection sends it: the cheapest way to
    ask the stub for a batch (one ``aresolve`` task per query, as this floor was first
    written, costs 1.3x its CPU per query and made the floor look dearer than the
    selection's own transport)."""
    outcomes: Counter[str] = Counter()
    rtypes = {t.value: t for t in RRType}

    async def one(batches: _Batches) -> None:
        for batch in batches:
            await resolver.aresolve_batch([Query(n, rtypes[t]) for n, t in batch])
        outcomes["queries"] += 1

    in_flight(recorded, one)
    return outcomes


def run_adns(
    address: str, recorded: Sequence[_Batches], expected: _Recorded, max_queries: int
) -> Counter[str]:
    """The floor's queries through GNU adns (C): one ``adnshost --asynch`` process, the same
    batches in the same order, ``CONCURRENCY`` domains and at most ``max_queries`` queries
    in flight (``StubResolver``'s ``max_in_flight``: without it a burst overflows Unbound's
    socket buffer and adns waits 2 s to retransmit; ``benchmarks/_adns.py``).

    Besides the domains done (``queries``), counts the answers that agree with the recorded
    ones (same status, same number of records) and those that do not; ``cpu_us`` is
    adnshost's own CPU time and ``wall_us`` the time from the first query written to the
    last answer read (the process start left out), which :func:`_measure` uses instead of
    its own figures; ``driver_cpu_us`` is the CPU this process spent feeding it."""
    result = _adns.run(recorded, address, CONCURRENCY, max_queries)
    outcomes: Counter[str] = Counter(queries=result.domains, agree=0, disagree=0)
    for question, kind in result.kinds.items():
        agrees = expected.get(question) == (kind, result.counts[question])
        outcomes["agree" if agrees else "disagree"] += 1
    outcomes["cpu_us"] = round(result.cpu * 1e6)
    outcomes["wall_us"] = round(result.wall * 1e6)
    outcomes["driver_cpu_us"] = round(result.driver_cpu * 1e6)
    return outcomes


def run_bare(
    server: tuple[str, int], recorded: Sequence[_Batches], max_queries: int, shared: bool
) -> Counter[str]:
    """The floor's queries through the bare-Python client (``benchmarks/_bare_client.py``):
    a fresh socket per query (RFC 5452 §9.2), or one shared socket with ``shared``;
    ``CONCURRENCY`` domains and at most ``max_queries`` queries in flight, as adns. Counts
    the domains done (``queries``), the queries sent, the replies and any timeout."""
    return _bare_client.run(recorded, server, CONCURRENCY, max_queries, shared=shared)


def run_select_threads(
    resolver: dns.resolver.Resolver | StubResolver, domains: Sequence[str]
) -> Counter[str]:
    """The sync API in a 32-thread pool, as email-validator is run. With a StubResolver each
    batch goes through ``StubResolver.resolve_batch`` (no thread of the driver's pool per
    query), which hands it to the stub's one I/O loop thread while other threads are in it
    too; with the dnspython adapter, one pool job per query."""
    rng = random.Random(7)
    with ThreadPoolExecutor(THREADS) as pool:
        return Counter(pool.map(lambda domain: _sync_outcome(domain, resolver, rng), domains))


def _sync_outcome(
    domain: str, resolver: dns.resolver.Resolver | StubResolver, rng: random.Random
) -> str:
    """``select_targets(domain)``'s outcome: "ok", "permanent" or "temporary"."""
    try:
        mxselect.select_targets(domain, resolver=resolver, rng=rng)
    except mxselect.PermanentError:
        return "permanent"
    except mxselect.TemporaryError:
        return "temporary"
    return "ok"


def run_select_sequential(resolver: StubResolver, domains: Sequence[str]) -> Counter[str]:
    """The sync API from one thread, one selection after another: each batch through
    ``StubResolver.resolve_batch`` in the calling thread (alone: no hand-off to the I/O
    loop), what a single-threaded caller pays."""
    rng = random.Random(7)
    return Counter(_sync_outcome(domain, resolver, rng) for domain in domains)


def run_email_validator(resolver: dns.resolver.Resolver, domains: Sequence[str]) -> Counter[str]:
    import email_validator

    # The zone lives under test. (RFC 6761), which email-validator refuses by default; its
    # documentation says to remove the name from this list for tests.
    with contextlib.suppress(ValueError):
        email_validator.SPECIAL_USE_DOMAIN_NAMES.remove("test")

    def check(domain: str) -> str:
        try:
            info = email_validator.validate_email(
                f"postmaster@{domain}", check_deliverability=True, dns_resolver=resolver
            )
        except email_validator.EmailUndeliverableError:
            return "permanent"
        return "temporary" if getattr(info, "unknown_deliverability", None) else "ok"

    with ThreadPoolExecutor(THREADS) as pool:
        return Counter(pool.map(check, domains))


def _addresses(resolver: dns.resolver.Resolver, host: object) -> list[str]:
    """A, then AAAA, one query after the other."""
    out: list[str] = []
    for rtype in ("A", "AAAA"):
        with contextlib.suppress(dns.resolver.NoAnswer):
            out += [r.address for r in resolver.resolve(host, rtype)]  # type: ignore[arg-type]
    return out


def _resolve_name(resolver: dns.resolver.Resolver, host: object) -> list[str]:
    """dnspython's ``resolve_name`` (A and AAAA); a host that does not exist has none."""
    with contextlib.suppress(dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
        return list(resolver.resolve_name(host).addresses())  # type: ignore[arg-type]
    return []


def _sequential(
    resolver: dns.resolver.Resolver,
    domains: Sequence[str],
    addresses: Callable[[dns.resolver.Resolver, object], list[str]],
) -> Counter[str]:
    """MX, then the addresses of each host, one domain and one query after another."""
    outcomes: Counter[str] = Counter()
    for domain in domains:
        try:
            try:
                records = sorted(resolver.resolve(domain, "MX"), key=lambda r: r.preference)
                hosts: list[object] = [r.exchange for r in records if r.exchange.to_text() != "."]
                if not hosts:
                    outcomes["permanent"] += 1
                    continue
            except dns.resolver.NoAnswer:
                hosts = [domain]
            found = [a for host in hosts for a in addresses(resolver, host)]
            outcomes["ok" if found else "permanent"] += 1
        except dns.resolver.NXDOMAIN:
            outcomes["permanent"] += 1
        except dns.exception.DNSException:
            outcomes["temporary"] += 1
    return outcomes


def run_naive(resolver: dns.resolver.Resolver, domains: Sequence[str]) -> Counter[str]:
    """What most scripts do: MX, then A and AAAA of each host, one query after another."""
    return _sequential(resolver, domains, _addresses)


def run_resolve_name(resolver: dns.resolver.Resolver, domains: Sequence[str]) -> Counter[str]:
    """MX, then ``resolve_name`` (A and AAAA) of each host, sequentially."""
    return _sequential(resolver, domains, _resolve_name)


#: One run of a contestant: wall seconds, CPU seconds, outcomes (:func:`_measure`).
_Sample = tuple[float, float, Counter[str]]


def per_round(
    a: Sequence[_Sample], b: Sequence[_Sample], a_size: int, b_size: int, cpu: bool = False
) -> list[float]:
    """Contestant ``a``'s figure ÷ ``b``'s within each round (round i's runs of both, made
    close in time, so that a swing of the shared machine moves both): domains/s, or CPU per
    domain with ``cpu``; ``a_size``/``b_size``: the domains each run resolved."""
    pairs = zip(a, b, strict=True)
    if cpu:
        return [(ca / a_size) / (cb / b_size) for (_, ca, _), (_, cb, _) in pairs]
    return [(a_size / wa) / (b_size / wb) for (wa, _, _), (wb, _, _) in pairs]


def ratio_text(
    per: Sequence[float], of_medians: float, fmt: str = ".2f", short: bool = False
) -> tuple[float, str]:
    """The median of the per-round ratios ``per`` (the figure a target checks) and its text:
    the median, the min–max, and the ratio of the medians ``of_medians`` (``short``: the
    median and the min–max only)."""
    r = median(per)
    if short:
        return r, f"{r:{fmt}}× ({spread(per, 1, fmt)})"
    return r, (
        f"{r:{fmt}}× (per round, {len(per)} rounds: {spread(per, 1, fmt)}; "
        f"ratio of the medians {of_medians:{fmt}}×)"
    )


def _measure(fn: Callable[[], Counter[str]]) -> tuple[float, float, Counter[str]]:
    """Wall and CPU seconds of ``fn()`` and its outcomes; a contestant running in another
    process (adns) reports its own as ``wall_us`` and ``cpu_us``."""
    cpu, wall = time.process_time(), time.perf_counter()
    outcomes = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if "cpu_us" in outcomes:
        wall, cpu = outcomes.pop("wall_us") / 1e6, outcomes.pop("cpu_us") / 1e6
    return wall, cpu, outcomes


def run(
    smoke: bool = False,
    quick: bool = False,
    domains_count: int | None = None,
    repeat_count: int | None = None,
) -> Report:
    count, sequential, repeat = (20, 10, 1) if smoke else (DOMAINS, SEQUENTIAL, REPEAT)
    count = domains_count or count
    sequential = min(sequential, count)
    repeat = repeat_count or repeat
    zone_text, domains = generate(count)
    if missing_programs():
        raise Skipped(
            f"missing {missing_programs()}: apt-get install -y --no-install-recommends "
            "knot unbound ldnsutils"
        )
    head = domains[:sequential]
    # GNU adns asks port 53 only: Unbound listens there too, on a loopback address of its own.
    adns_address = _adns.port53_address() if _adns.adnshost() else None
    adns_skipped = (
        "adnshost not installed (apt-get install -y adns-tools)"
        if not _adns.adnshost()
        else "port 53 cannot be bound on loopback (adns asks no other port): run as root"
    )
    with tempfile.TemporaryDirectory(prefix="mxselect-bulk-") as tmp:
        auth_port = free_port(5300)
        with server_process("delayproxy", str(auth_port), str(UPSTREAM_DELAY_MS)) as proxy:
            env = BulkEnv(Path(tmp), zone_text, proxy, auth_port, adns_address)
            with env:
                aio = async_resolver(env.resolver_port)
                sync = make_sync_resolver(env.resolver_port)
                answered: _Recorded = {}
                recorded = record_batches(aio, domains, answered)
                queries = sum(len(b) for batches in recorded for b in batches)
                stub = StubResolver([("127.0.0.1", env.resolver_port)])
                pooled = PooledStubResolver([("127.0.0.1", env.resolver_port)])
                adns_row: list[tuple[str, Callable[[], Counter[str]], int]] = []
                adns_max = stub.max_in_flight
                if adns_address is not None:
                    at = adns_address
                    adns_row.append(
                        (
                            f"GNU adns (C): adnshost --asynch, same queries "
                            f"({CONCURRENCY} in flight)",
                            lambda: run_adns(at, recorded, answered, adns_max),
                            count,
                        )
                    )
                server = ("127.0.0.1", env.resolver_port)
                # The order puts the contestants a target compares next to each other in a
                # round: the per-round ratios compare figures measured close in time.
                contestants: list[tuple[str, Callable[[], Counter[str]], int]] = [
                    (f"mxselect aselect_targets + StubResolver ({CONCURRENCY} in flight)",
                     lambda: run_mxselect(stub, domains), count),
                    (f"raw StubResolver queries, same queries ({CONCURRENCY} in flight)",
                     lambda: run_stub_floor(stub, recorded), count),
                    (f"bare Python client, socket per query, same queries "
                     f"({CONCURRENCY} in flight)",
                     lambda: run_bare(server, recorded, adns_max, False), count),
                    (f"bare Python client, one socket, same queries ({CONCURRENCY} in flight)",
                     lambda: run_bare(server, recorded, adns_max, True), count),
                    *adns_row,
                    ("email-validator, 32 threads (no exchange addresses)",
                     lambda: run_email_validator(sync, domains), count),
                    (f"previous design: aselect_targets + pooled stub ({CONCURRENCY} in flight)",
                     lambda: run_mxselect(pooled, domains), count),
                    (f"previous design: raw pooled-socket stub queries ({CONCURRENCY} in flight)",
                     lambda: run_stub_floor(pooled, recorded), count),
                    (f"mxselect aselect_targets + StubResolver ({WIDE} in flight)",
                     lambda: run_mxselect(stub, domains, WIDE), count),
                    (f"mxselect aselect_targets + dnspython adapter ({CONCURRENCY} in flight)",
                     lambda: run_mxselect(aio, domains), count),
                    (f"floor: raw dns.asyncresolver, same queries ({CONCURRENCY} in flight)",
                     lambda: run_floor(aio, recorded), count),
                    (f"naive sequential loop (first {len(head)})",
                     lambda: run_naive(sync, head), len(head)),
                    (f"mxselect aselect_targets + StubResolver ({THREADS} in flight)",
                     lambda: run_mxselect(stub, domains, THREADS), count),
                    ("mxselect select_targets + StubResolver, 32 threads",
                     lambda: run_select_threads(stub, domains), count),
                    (f"mxselect select_targets + StubResolver, 1 thread (first {len(head)})",
                     lambda: run_select_sequential(stub, head), len(head)),
                    ("mxselect select_targets + dnspython adapter, 32 threads",
                     lambda: run_select_threads(sync, domains), count),
                    (f"resolve_name per host, sequential (first {len(head)})",
                     lambda: run_resolve_name(sync, head), len(head)),
                ]  # fmt: skip
                if quick:
                    contestants = [c for c in contestants if any(k in c[0] for k in QUICK)]
                results: dict[tuple[str, str], list[_Sample]] = {}
                for _ in range(repeat):
                    for name, fn, _n in contestants:
                        env.flush()
                        results.setdefault((name, "cold"), []).append(_measure(fn))
                        results.setdefault((name, "warm"), []).append(_measure(fn))
    table = Table(
        f"Bulk throughput: {count} domains via Unbound -> Knot "
        f"(+{UPSTREAM_DELAY_MS:g} ms upstream), {repeat} runs each",
        [
            "contestant",
            "cache",
            "domains/s median",
            "min–max",
            "CPU ms/domain",
            "mxselect ×",
            "outcomes ok/perm/temp",
        ],
    )
    rates: dict[tuple[str, str], float] = {}
    cpus: dict[tuple[str, str], float] = {}
    sizes = {name: n for name, _, n in contestants}
    for (name, cache), samples in results.items():
        n = sizes[name]
        per_s = [n / wall for wall, _, _ in samples]
        rates[(name, cache)] = median(per_s)
        cpus[(name, cache)] = median([cpu / n for _, cpu, _ in samples])
    mx_name = contestants[0][0]

    def ratio(
        a: str, b: str, cache: str, cpu: bool = False, fmt: str = ".2f", short: bool = False
    ) -> tuple[float, str]:
        """``a``'s domains/s (or CPU per domain, with ``cpu``) ÷ ``b``'s: the median of the
        ratios taken within each round (both measured close in time), and a text with it,
        their min–max and the ratio of the medians (the figure of the table's columns);
        ``short``: the median and the min–max only."""
        per = per_round(results[(a, cache)], results[(b, cache)], sizes[a], sizes[b], cpu)
        figures = cpus if cpu else rates
        return ratio_text(per, figures[(a, cache)] / figures[(b, cache)], fmt, short)

    for (name, cache), samples in results.items():
        outcomes = samples[-1][2]
        per_s = [sizes[name] / wall for wall, _, _ in samples]
        shown = (
            f"{outcomes['queries']} domains"
            if "queries" in outcomes
            else f"{outcomes['ok']}/{outcomes['permanent']}/{outcomes['temporary']}"
        )
        if "agree" in outcomes:
            shown += f", {outcomes['agree']}/{outcomes['agree'] + outcomes['disagree']} agree"
        if "timeouts" in outcomes:
            shown += f", {sum(o['timeouts'] for _, _, o in samples)} timeouts"
        table.rows.append(
            [
                name,
                cache,
                f"{median(per_s):.0f}",
                spread(per_s, 1, ".0f"),
                f"{cpus[(name, cache)] * 1000:.2f}",
                f"{rates[(mx_name, cache)] / rates[(name, cache)]:.1f}",
                shown,
            ]
        )
    table.notes += [
        f"{count} domains, {queries} queries by mxselect ({queries / count:.2f} per domain); "
        f"concurrency {CONCURRENCY} for the asyncio contestants; "
        f"{len(RECORD_TEMPFAILS)} temporary failures while recording the floor's queries.",
        "mxselect × = the first row's domains/s (aselect_targets + StubResolver) ÷ this "
        "contestant's, same cache state (the ratio of the medians).",
        f"Ratios per round: the ratio within each of the {repeat} rounds (a round runs every "
        "contestant once, cold then warm; most compared ones run next to each other), their "
        "median (the figure the targets check) and min–max, in parentheses; then the ratio "
        "of the medians.",
        "email-validator resolves the MX set only (A/AAAA/TXT of the domain when it has no "
        "MX): it does less work than a selection, which resolves every exchange's addresses.",
        "CPU ms/domain: client process CPU time ÷ domains; the DNS servers run elsewhere.",
        f"The {WIDE}-in-flight row shows where widening stops paying: Unbound, the proxy and "
        "Knot each take a burst of queries one after the other, on the two cores the client "
        "uses too, so a selection waits longer as more are in flight.",
    ]
    report = Report([table])
    names = [name for name, _, _ in contestants]

    def named(start: str) -> str | None:
        return next((n for n in names if n.startswith(start)), None)

    adapter = named("mxselect aselect_targets + dnspython adapter")
    floor = named("floor: raw dns.asyncresolver")
    ev = named("email-validator")
    adns = named("GNU adns (C)")
    pooled = named("previous design: aselect_targets")
    stub_raw = named("raw StubResolver queries")
    bare_each = named("bare Python client, socket per query")
    bare_one = named("bare Python client, one socket")
    sync_stub = named("mxselect select_targets + StubResolver, 32 threads")
    same = named(f"mxselect aselect_targets + StubResolver ({THREADS} in flight)")
    pooled_raw = named("previous design: raw pooled")
    for cache in ("cold", "warm"):
        if pooled is not None:
            table.notes.append(
                f"{cache}: a fresh socket per query (RFC 5452 §9.2) vs the previous pooled "
                f"design, same run: {rates[(mx_name, cache)] / rates[(pooled, cache)]:.2f}× the "
                f"domains/s, {cpus[(mx_name, cache)] / cpus[(pooled, cache)]:.2f}× the CPU per "
                f"domain (+{(cpus[(mx_name, cache)] - cpus[(pooled, cache)]) * 1e6:.0f} µs)"
                + (
                    f"; raw queries {cpus[(stub_raw, cache)] / cpus[(pooled_raw, cache)]:.2f}× "
                    "the CPU"
                    if stub_raw is not None and pooled_raw is not None
                    else ""
                )
                + "."
            )
        # Issue 19 replaced "≥ 20× the naive loop, warm" and "≥ 3× email-validator, cold":
        # both were bounded by the setting (benchmarks/RESULTS.md); their rows stay, as figures.
        if stub_raw is not None:
            r, text = ratio(mx_name, stub_raw, cache)
            report.targets.append(
                Target(
                    f"bulk vs raw-stub transport floor (same queries, same run), {cache}",
                    "≥ 0.9×",
                    text,
                    r >= 0.9,
                )
            )
        if ev is not None and cache == "warm":
            r, text = ratio(mx_name, ev, cache, fmt=".1f")
            report.targets.append(
                Target(f"bulk vs email-validator 32 threads, {cache}", "≥ 3×", text, r >= 3)
            )
        if floor is not None:
            r, text = ratio(mx_name, floor, cache, cpu=True)
            report.targets.append(
                Target(f"CPU per domain vs floor, {cache}", "≤ 1.3×", text, r <= 1.3)
            )
        if sync_stub is not None:
            r, text = ratio(sync_stub, mx_name, cache, cpu=True)
            report.targets.append(
                Target(
                    f"sync CPU per selection vs asyncio (StubResolver, 32 threads), {cache}",
                    "≤ 1.5×",
                    text,
                    r <= 1.5,
                )
            )
            if same is not None:
                r, text = ratio(sync_stub, same, cache, cpu=True)
                report.targets.append(
                    Target(
                        f"sync CPU per selection vs asyncio at the same concurrency "
                        f"({THREADS} threads / {THREADS} in flight), {cache}",
                        "≤ 1.5×",
                        text,
                        r <= 1.5,
                    )
                )
                table.notes.append(
                    f"{cache}: the asyncio path itself costs "
                    f"{cpus[(same, cache)] / cpus[(mx_name, cache)]:.2f}× the CPU per domain with "
                    f"{THREADS} selections in flight as with {CONCURRENCY}; the sync rows run "
                    f"{THREADS} at a time."
                )
        if floor is not None and adapter is not None:
            r, text = ratio(adapter, floor, cache, cpu=True)
            report.targets.append(
                Target(
                    f"CPU per domain vs floor, dnspython adapter, {cache}",
                    "≤ 1.3×",
                    text,
                    r <= 1.3,
                )
            )
    if adns is not None:
        adns_ratio = {c: ratio(mx_name, adns, c) for c in ("cold", "warm")}
        cpu_ratio = {c: cpus[(mx_name, c)] / cpus[(adns, c)] for c in ("cold", "warm")}
        driver = {
            c: median([o["driver_cpu_us"] / 1e3 / count for _, _, o in results[(adns, c)]])
            for c in ("cold", "warm")
        }
        disagree = sum(
            o["disagree"]
            for samples in (results[(adns, "cold")], results[(adns, "warm")])
            for _, _, o in samples
        )
        table.notes.append(
            "GNU adns (C): one `adnshost --asynch --pipe` process fed exactly the recorded "
            f"queries, batch after batch per domain, {CONCURRENCY} domains in flight and at "
            f"most {adns_max} queries (StubResolver's max_in_flight: beyond it "
            "a burst overflows Unbound's socket buffer, and adns, which has no such limit, "
            "retransmits after 2 s), through the same Unbound (on a second loopback address "
            "at port 53: adns asks no other port); one UDP socket for every query (no "
            "RFC 5452 §9.2 port per query): the "
            "transport without Python. Its CPU column is adnshost's own (wait4); the Python "
            f"feeding it took {driver['cold']:.2f} / {driver['warm']:.2f} ms/domain more "
            '(cold / warm). Its domains/s leave out the process start. "agree": distinct '
            "questions answered with the recorded status and number of records."
        )
        for cache in ("cold", "warm"):
            table.notes.append(
                f"{cache}: mxselect vs adns (C): {adns_ratio[cache][1]} the domains/s, "
                f"{cpu_ratio[cache]:.1f}× the client CPU per domain."
            )
        report.targets.append(
            Target(
                "bulk vs GNU adns (C), same queries, warm",
                "≥ 0.5×",
                f"{adns_ratio['warm'][1]}; cold {adns_ratio['cold'][1]}"
                + (f"; {disagree} answers disagree" if disagree else ""),
                adns_ratio["warm"][0] >= 0.5 and not disagree,
            )
        )
    else:
        report.targets.append(
            Target(
                "bulk vs GNU adns (C), same queries, warm",
                "≥ 0.5×",
                f"skipped: {adns_skipped}",
                False,
                skipped=True,
            )
        )
    if bare_each is not None and bare_one is not None:
        table.notes += _bare_notes(ratio, mx_name, stub_raw, bare_each, bare_one, adns, adns_max)
    return report


#: ``run``'s ratio helper: (a, b, cache, cpu=False, fmt=".2f") -> (per-round median, text).
_Ratio = Callable[..., tuple[float, str]]


def _bare_notes(
    ratio: _Ratio,
    mx_name: str,
    stub_raw: str | None,
    bare_each: str,
    bare_one: str,
    adns: str | None,
    max_queries: int,
) -> list[str]:
    """The notes of the bare-Python rows: what they run; what the socket per query costs in
    bare Python; mxselect's and the raw stub's ratios to them and theirs to adns; and, with
    adns measured, where the gap to adns goes -- the setting (Python, RFC 5452's socket per
    query, the machine: what the bare clients pay) or the code (what the stub and the
    selection add to the bare client) -- with the answer, for the warm target, to whether
    0.5× adns is within reach of any Python client with a socket per query here."""
    notes = [
        "bare Python client (`benchmarks/_bare_client.py`, no mxselect code): the recorded "
        f"batches, {CONCURRENCY} domains and at most {max_queries} queries in flight, as "
        "adns; per query a fresh connected non-blocking UDP socket (RFC 5452 §9.2: a random "
        "ephemeral port), an ID from os.urandom, the query built by hand (RD+AD, EDNS0 OPT "
        "with a 1232-octet payload: mxselect's octets), its socket in one epoll set of the "
        "client's own that the event loop watches as one reader (cheaper than a loop reader "
        "per socket), the reply's ID, QR bit and question checked and nothing parsed, the "
        "socket closed; event-loop callbacks only, no task or future; a 2 s timer per batch "
        "as a safety net (its timeouts are in the outcomes, summed over the runs). One "
        "socket: every query on one connected socket, replies matched by ID (what RFC 5452 "
        f"§9.2 rules out; what adns does), its receive buffer sized for {max_queries} replies. "
        "Their ratios below: the median of the per-round ratios (min–max).",
    ]

    def short(a: str, b: str, cache: str, cpu: bool = False) -> str:
        return ratio(a, b, cache, cpu=cpu, short=True)[1]

    for cache in ("cold", "warm"):
        line = (
            f"{cache}: bare Python, a socket per query vs one socket: "
            f"{short(bare_each, bare_one, cache)} the domains/s, "
            f"{short(bare_each, bare_one, cache, cpu=True)} the CPU per domain; mxselect vs "
            f"the bare socket-per-query client: {short(mx_name, bare_each, cache)}"
        )
        if stub_raw is not None:
            line += f", the raw stub: {short(stub_raw, bare_each, cache)}"
        if adns is not None:
            line += (
                f"; vs adns (C): bare socket per query {short(bare_each, adns, cache)}, "
                f"bare one socket {short(bare_one, adns, cache)} the domains/s"
            )
        notes.append(line + ".")
    if adns is None or stub_raw is None:
        return notes
    for cache in ("cold", "warm"):
        python = ratio(bare_one, adns, cache)[0]
        sockets = ratio(bare_each, bare_one, cache)[0]
        transport = ratio(stub_raw, bare_each, cache)[0]
        selection = ratio(mx_name, stub_raw, cache)[0]
        reach = ratio(bare_each, adns, cache)[0]
        line = (
            f"{cache}, where mxselect's gap to adns goes (domains/s, per-round medians): "
            f"the setting ×{python * sockets:.2f} = Python ×{python:.2f} (bare one socket ÷ "
            f"adns) × RFC 5452's socket per query ×{sockets:.2f} (bare, socket per query ÷ one "
            f"socket); the code ×{transport * selection:.2f} = the stub's transport "
            f"×{transport:.2f} (raw stub ÷ bare socket per query) × the selection "
            f"×{selection:.2f} (mxselect ÷ raw stub: the raw-stub target, code against code "
            f"on one transport); in all mxselect ÷ adns {ratio(mx_name, adns, cache)[0]:.2f}×."
        )
        if cache == "warm":
            code = transport * selection
            line += (
                f" 0.5× adns is out of reach of any Python client with a socket per query on "
                f"this machine: the bare one, the transport and nothing else, reaches "
                f"{reach:.2f}× (on one socket {python:.2f}×). The unmet target is the "
                f"setting; the code costs ×{code:.2f} on top."
                if reach < 0.5
                else f" A Python client with a socket per query reaches {reach:.2f}× adns "
                f"here: 0.5× is within the setting, and what mxselect is short of it is the "
                f"code (×{code:.2f})."
            )
        notes.append(line)
    return notes


def main() -> None:
    import argparse

    from _common import print_report

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="once, at a tiny size")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the headline, the previous stub design, the raw-query floors (raw stub, "
        "bare Python, adns), email-validator and the naive loop",
    )
    parser.add_argument("--domains", type=int, help=f"domains (default {DOMAINS})")
    parser.add_argument("--repeat", type=int, help=f"runs per contestant (default {REPEAT})")
    args = parser.parse_args()
    print_report(run(args.smoke, args.quick, args.domains, args.repeat))


if __name__ == "__main__":
    main()
