"""mxselect.distributed on a Dask LocalCluster of two worker processes, against Knot + Unbound.

The zone ``scale.test.`` holds a few hundred generated domains (own MX hosts, a shared
provider, implicit MX, null MX, NXDOMAIN; seeded; benchmarks/bulk.py's generator,
tests/harness/bulkzone.py); the batch adds duplicates written in other forms, invalid entries
and the harness's SERVFAIL cases (``mail.dead.test``, ``bogus.test``).
Every record must be the one a single-process run of ``mxselect --json -f`` prints for that
line, the duplicates must be looked up once (counted by the workers and by Unbound), both
workers must take part, and each must build one event loop and one StubResolver.

Loopback only: the cluster listens on 127.0.0.1 and the workers ask the harness's Unbound.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.bulkzone import generate
from harness.dnsenv import DnsEnv, free_port, require_programs

import mxselect
from mxselect import _cli

if not os.environ.get("CI"):  # in CI (.ci/run installs the extra) a missing Dask fails
    pytest.importorskip("distributed", reason="pip install -e '.[distributed]'")
import distributed

from mxselect.distributed import select_many, worker_stats

pytestmark = pytest.mark.e2e

ZONE = "scale.test"
DOMAINS = 300
SEED = 7
#: The harness's domains that fail temporarily (a dead upstream, a DNSSEC-bogus zone) or
#: permanently (null MX, NXDOMAIN in test.), and an address literal.
HARNESS = ["mail.dead.test", "bogus.test", "nullmx.test", "nope.test", "[192.0.2.1]"]
INVALID = ["bad_domain.example", "-lead.example", "a..b.example", "user@", "x" * 300, "1.2.3.4"]


class ScaleEnv(DnsEnv):
    """The harness's Knot + Unbound, with scale.test. served by Knot and per-type query
    counters in Unbound (``unbound-control stats_noreset``: ``num.query.type.MX``)."""

    def __init__(self, workdir: Path, zone_text: str) -> None:
        super().__init__(
            workdir,
            auth_port=free_port(5300),
            resolver_port=free_port(5353),
            dead_port=free_port(5399),
        )
        self.zone_text = zone_text

    def _prepare_zones(self) -> None:
        super()._prepare_zones()
        (self.zones_dir / f"{ZONE}.zone").write_text(self.zone_text)

    def _knot_conf(self) -> str:
        return super()._knot_conf() + f"  - domain: {ZONE}.\n"

    def _unbound_conf(self) -> str:
        return (
            super()
            ._unbound_conf()
            .replace("server:\n", "server:\n    extended-statistics: yes\n", 1)
        )

    def mx_queries(self) -> int:
        """MX queries Unbound has received so far (from clients, cache hits included)."""
        found = re.search(
            r"^num\.query\.type\.MX=(\d+)$", self.unbound_control("stats_noreset"), re.M
        )
        return int(found.group(1)) if found else 0


@pytest.fixture(scope="module")
def scale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ScaleEnv, list[str]]]:
    require_programs()
    zone_text, domains = generate(DOMAINS, SEED, zone=ZONE)
    env = ScaleEnv(tmp_path_factory.mktemp("scale"), zone_text)
    env.start()
    try:
        yield env, domains
    finally:
        env.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    """Two worker processes of one thread each, on loopback."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            # No fixed port (8787 may be taken: Dask would warn): any free one, on loopback.
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def batch_lines(domains: list[str]) -> list[str]:
    """The batch file: every domain, duplicates in other forms (case, trailing dot, e-mail
    address, angle brackets), the harness's cases, invalid entries, comments and blanks;
    seeded order."""
    rng = random.Random(SEED + 1)
    lines = [*domains, *HARNESS, *INVALID]
    for domain in rng.sample(domains, 60):
        form = rng.choice(["same", "upper", "dot", "address", "angle"])
        lines.append(
            {
                "same": domain,
                "upper": domain.upper(),
                "dot": domain + ".",
                "address": f"User.{rng.randrange(100)}@{domain}",
                "angle": f"<postmaster@{domain.title()}>",
            }[form]
        )
    lines += ["mail.dead.test", "NULLMX.test."]
    rng.shuffle(lines)
    lines[10:10] = ["# a comment", "", "   "]
    return [line + "\n" for line in lines]


def by_line(records: list[str]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for text in records:
        record = json.loads(text)
        assert record["line"] not in found, f"two records for line {record['line']}"
        found[record["line"]] = record
    return found


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without what Unbound's state at the time decides: the TTL (its cache counts
    it down between two runs) and the text of an Extended DNS Error in a reason (RFC 8914:
    Unbound explains a validation failure the first time, then answers "DNSSEC Bogus" from
    its cache; the dnspython adapter does not show EDEs at all)."""
    found = {key: value for key, value in record.items() if key != "ttl"}
    if found["reason"] is not None:
        found["reason"] = EDE.sub("", found["reason"])
    return found


#: The Extended DNS Error the stub resolver adds to a SERVFAIL's reason.
EDE = re.compile(r" \(EDE \d+: .*\)(?= from )")


def single_process(
    lines: list[str], port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> list[str]:
    """What ``mxselect --json -f`` prints for the lines, in this process."""
    source = tmp_path / "batch.txt"
    source.write_text("".join(lines), encoding="utf-8")
    capsys.readouterr()
    server = f"127.0.0.1:{port}"
    code = _cli.main(
        ["--json", "-q", "--seed", str(SEED), "--nameserver", server, "-f", str(source)]
    )
    out = capsys.readouterr().out
    assert code == 75  # the worst outcome: the temporary failures of the dead and bogus zones
    return out.splitlines()


def library_run(lines: list[str], port: int) -> list[str]:
    """The same entries through the library in this process, with what each worker has: a
    StubResolver behind a CachingResolver; the record of each entry rendered as the command
    renders it."""
    import asyncio

    from mxselect._output import render
    from mxselect.stub import StubResolver

    items = _cli.read_items(io.StringIO("".join(lines)))

    async def run() -> list[str]:
        resolver = mxselect.CachingResolver(StubResolver([("127.0.0.1", port)]))
        policy, sts = mxselect.Policy(), _cli._Sts()
        results = await asyncio.gather(
            *(_cli._select(item, resolver, policy, SEED, None, sts) for item in items)
        )
        return [render(r, json_lines=True, batch=True, explained=False) for r in results]

    return asyncio.run(run())


def stats(client: distributed.Client) -> dict[str, dict[str, int]]:
    return client.run(worker_stats)  # type: ignore[no-any-return]


def test_every_line_gets_the_commands_record(
    scale: tuple[ScaleEnv, list[str]],
    client: distributed.Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env, domains = scale
    lines = batch_lines(domains)
    items = _cli.read_items(io.StringIO("".join(lines)))
    before = stats(client)
    records = list(
        select_many(
            client,
            lines,
            nameservers=[("127.0.0.1", env.resolver_port)],
            seed=SEED,
            partition_size=25,
        )
    )
    after = stats(client)
    # One record per entry (comments and blank lines are not entries), each for its line.
    got = by_line(records)
    assert sorted(got) == sorted(item.line for item in items)
    assert len(records) == len(items)

    # The same objects as the library's in one process (the same resolver as each worker's),
    # line for line. A duplicate has the record of the first line of its domain (looked up
    # once, with the first line's seed), with its own input, line and domain.
    library = by_line(library_run(lines, env.resolver_port))
    # And as the command's (through the dnspython adapter).
    command = by_line(single_process(lines, env.resolver_port, tmp_path, capsys))
    assert sorted(library) == sorted(command) == sorted(got)
    first: dict[str, int] = {}
    for item in items:
        assert item.line is not None
        try:
            key = mxselect.distributed._key(item.domain)
        except mxselect.InvalidDomainError:
            key = f"invalid {item.line}"
        first.setdefault(key, item.line)
        own = {"input": item.text, "line": item.line, "domain": item.domain}
        record = comparable(got[item.line])
        assert record == comparable(library[first[key]]) | own, item
        assert record == comparable(command[first[key]]) | own, item
        assert (got[item.line]["ttl"] is None) == (command[item.line]["ttl"] is None)
    assert any(EDE.search(r["reason"] or "") for r in got.values())  # the bogus zone's

    outcomes = {record["error"] for record in got.values()}
    assert {None, "InvalidDomainError", "NoSuchDomainError", "NullMXError"} <= outcomes
    assert "DNSTemporaryError" in outcomes
    temporary = [r for r in got.values() if r["domain"] in ("mail.dead.test", "bogus.test")]
    assert temporary
    assert all(r["outcome"] == "temporary" for r in temporary)

    # Each distinct valid domain was sent once; the invalid ones never.
    distinct = len(first) - len([k for k in first if k.startswith("invalid ")])
    assert distinct == DOMAINS + len(HARNESS)
    selections = sum(after[w]["selections"] - before[w]["selections"] for w in after)
    assert selections == distinct
    # Both workers took part, and neither built a second event loop or StubResolver.
    assert len(after) == 2
    for worker in after:
        assert after[worker]["partitions"] > before[worker]["partitions"], worker
        assert after[worker]["loops"] == 1
        assert after[worker]["resolvers"] - before[worker]["resolvers"] <= 1


def test_duplicates_are_asked_once_and_invalid_entries_never(
    scale: tuple[ScaleEnv, list[str]], client: distributed.Client
) -> None:
    """Without the workers' answer cache: Unbound receives one MX query per distinct domain
    (no CNAME in scale.test.), not one per line; the invalid entries reach nobody."""
    env, domains = scale
    rng = random.Random(SEED + 2)
    chosen = rng.sample(domains, 80)
    lines = [*chosen, *(d.upper() for d in chosen[:30]), *(f"a@{d}." for d in chosen[:20])]
    lines += INVALID
    rng.shuffle(lines)
    before = env.mx_queries()
    records = list(
        select_many(
            client,
            lines,
            nameservers=[("127.0.0.1", env.resolver_port)],
            cache=False,
            partition_size=10,
        )
    )
    assert len(records) == len(lines)
    assert env.mx_queries() - before == len(chosen)
    invalid = [json.loads(r) for r in records if json.loads(r)["error"] == "InvalidDomainError"]
    assert len(invalid) == len(INVALID)
    assert {r["exit_code"] for r in invalid} == {65}


def test_one_loop_and_one_stub_resolver_per_worker_across_runs(
    scale: tuple[ScaleEnv, list[str]], client: distributed.Client
) -> None:
    env, domains = scale
    options = {"nameservers": [("127.0.0.1", env.resolver_port)], "lifetime": 4.5}
    before = stats(client)
    for part in (domains[:100], domains[100:200]):
        assert len(list(select_many(client, part, partition_size=10, **options))) == 100
    after = stats(client)
    assert len(after) == 2
    assert set(after) == set(before)
    built = {w: after[w]["resolvers"] - before[w]["resolvers"] for w in after}
    ran = {w: after[w]["partitions"] - before[w]["partitions"] for w in after}
    assert sum(ran.values()) == 20
    assert all(ran[w] > 0 for w in ran), ran  # both workers used
    assert all(built[w] == 1 for w in built), built  # one StubResolver each for 20 partitions
    assert all(after[w]["loops"] == 1 for w in after)
    assert len({after[w]["pid"] for w in after}) == 2


def partitions_known(dask_scheduler: Any) -> set[str]:
    """The mxselect partitions the scheduler holds (submitted, not yet released)."""
    return {str(key) for key in dask_scheduler.tasks if str(key).startswith("mxselect-partition-")}


def test_records_stream_as_partitions_complete(
    scale: tuple[ScaleEnv, list[str]], client: distributed.Client
) -> None:
    """With max_pending=2, the first record arrives while at most 3 of the 12 partitions are
    known to the scheduler (2 submitted, the first not yet forgotten): the rest are submitted
    as the client reads, and each one is released once yielded."""
    env, domains = scale
    before = stats(client)
    records = select_many(
        client,
        domains[:120],
        nameservers=[("127.0.0.1", env.resolver_port)],
        partition_size=10,
        max_pending=2,
    )
    earlier = client.run_on_scheduler(partitions_known)  # other runs' still being forgotten
    first = next(records)
    assert 1 <= len(client.run_on_scheduler(partitions_known) - earlier) <= 3
    rest = list(records)
    assert len(rest) + 1 == 120
    assert json.loads(first)["schema"] == 1
    ran = sum(v["partitions"] for v in stats(client).values())
    assert ran - sum(v["partitions"] for v in before.values()) == 12


#: The MTA-STS policies the fake fetcher serves (RFC 8461 §3.2): sts.test's names its MX host,
#: stsmismatch.sts.test's does not (StsPolicyError 451 4.7.5), ststesting.sts.test's is in
#: mode testing; sts.test.'s other domains have no _mta-sts record, or one whose fetch 404s.
POLICIES = {
    "sts.test": "version: STSv1\nmode: enforce\nmx: mx1.sts.test\nmax_age: 86400\n",
    "stsmismatch.sts.test": "version: STSv1\nmode: enforce\nmx: mx.other.example\nmax_age: 600\n",
    "ststesting.sts.test": "version: STSv1\nmode: testing\nmx: mx.other.example\nmax_age: 600\n",
}


def test_mta_sts_policies_are_fetched_on_the_workers(
    scale: tuple[ScaleEnv, list[str]], client: distributed.Client
) -> None:
    """Policy.mta_sts: each worker makes its fetcher with ``sts_fetcher`` (here the fake one,
    no HTTPS) and a policy store for the run; the records are the library's in one process,
    policy, id and StsPolicyError included."""
    import asyncio
    import functools

    from mxselect._output import render
    from mxselect.mtasts import MemoryStore
    from mxselect.stub import StubResolver
    from mxselect.testing import FakeFetcher

    env, domains = scale
    lines = ["sts.test", "stsmismatch.sts.test", "STSTESTING.sts.test.", "nodata.sts.test"]
    lines += [*domains[:20], "a@sts.test"]
    policy = mxselect.Policy(mta_sts=True)
    records = select_many(
        client,
        lines,
        nameservers=[("127.0.0.1", env.resolver_port)],
        policy=policy,
        seed=SEED,
        partition_size=5,
        sts_fetcher=functools.partial(FakeFetcher, POLICIES),
    )
    got = by_line(list(records))

    items = _cli.read_items(io.StringIO("".join(f"{line}\n" for line in lines)))

    async def one_process() -> list[str]:
        resolver = mxselect.CachingResolver(StubResolver([("127.0.0.1", env.resolver_port)]))
        sts = _cli._Sts(FakeFetcher(POLICIES), MemoryStore())
        results = [await _cli._select(i, resolver, policy, SEED, None, sts) for i in items]
        return [render(r, json_lines=True, batch=True, explained=False) for r in results]

    expected = by_line(asyncio.run(one_process()))
    assert sorted(got) == sorted(expected)
    first: dict[str, int] = {}
    for item in items:  # a duplicate: the first line's record (its policy "fetched"), its fields
        assert item.line is not None
        line = first.setdefault(mxselect.distributed._key(item.domain), item.line)
        own = {"input": item.text, "line": item.line, "domain": item.domain}
        assert comparable(got[item.line]) == comparable(expected[line]) | own, item
    assert got[1]["sts"]["mode"] == "enforce"
    assert got[1]["sts"]["id"] == "20260101"
    assert got[2]["error"] == "StsPolicyError"
    assert got[3]["sts"]["mode"] == "testing"
    assert got[len(lines)]["sts"] == got[1]["sts"]  # a@sts.test: sts.test's record


def test_bad_arguments_raise_before_anything_is_submitted() -> None:
    """A typed error, no DNS query, no task: the client is not even touched."""
    nowhere: Any = object()
    good = {"nameservers": ["127.0.0.1"]}
    with pytest.raises(ValueError, match="nameserver must be an IP address"):
        select_many(nowhere, ["example.test"], nameservers=["resolver.example"])
    with pytest.raises(ValueError, match="partition_size"):
        select_many(nowhere, ["example.test"], partition_size=0, **good)
    with pytest.raises(ValueError, match="concurrency"):
        select_many(nowhere, ["example.test"], concurrency=0, **good)
    with pytest.raises(ValueError, match="deadline"):
        select_many(nowhere, ["example.test"], deadline=-1, **good)
    sts = mxselect.Policy(mta_sts=True)
    with pytest.raises(TypeError, match="sts_fetcher"):
        select_many(nowhere, ["example.test"], policy=sts, sts_fetcher="httpx", **good)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="iterable of lines"):
        select_many(nowhere, "example.test\nexample.net\n", **good)
    with pytest.raises(TypeError, match="Policy"):
        select_many(nowhere, ["example.test"], policy="strict", **good)  # type: ignore[arg-type]


def test_the_example_recipe(
    scale: tuple[ScaleEnv, list[str]],
    client: distributed.Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """examples/dask_bulk.py against the test's cluster: the same records as select_many,
    the command's exit code (75: the dead and bogus zones), a summary on stderr."""
    from examples import dask_bulk

    env, domains = scale
    lines = [*domains[:50], *HARNESS, *INVALID, domains[0].upper()]
    source = tmp_path / "domains.txt"
    source.write_text("".join(f"{line}\n" for line in lines))
    output = tmp_path / "results.jsonl"
    server = f"127.0.0.1:{env.resolver_port}"
    argv = ["--scheduler", client.scheduler.address, "-f", str(source), "--nameserver", server]
    code = dask_bulk.main([*argv, "--seed", str(SEED), "-o", str(output)])
    assert code == 75
    assert "exit 75" in capsys.readouterr().err
    got = by_line(output.read_text().splitlines())
    expected = by_line(
        list(select_many(client, lines, nameservers=[("127.0.0.1", env.resolver_port)], seed=SEED))
    )
    assert {k: comparable(v) for k, v in got.items()} == {
        k: comparable(v) for k, v in expected.items()
    }
    assert len(got) == len(lines)
    assert dask_bulk.main(["-f", str(source)]) == 64  # --nameserver is required


def test_a_worker_dying_loses_no_record_and_yields_none_twice(
    client: distributed.Client, fault_server: Any
) -> None:
    """A worker process killed while its partitions are in flight: Dask runs them again on
    the other worker (or the one its nanny restarts), and every entry still gets exactly one
    record -- a partition is yielded only once it has completed, and is only DNS reads. The
    queries the server saw twice show that partitions did run again. Last in the file: the
    killed worker comes back under another address."""

    zone = ["$ORIGIN w.test.", "@ SOA ns.w.test. h.w.test. 1 3600 900 604800 60"]
    domains = [f"d{i:02d}.w.test" for i in range(40)]
    for i in range(40):
        zone += [f"d{i:02d} MX 10 mx-d{i:02d}", f"mx-d{i:02d} A 11.0.0.{i + 1}"]
    server = fault_server("\n".join(zone) + "\n", default_delay_ms=200)
    records = select_many(
        client,
        domains,
        nameservers=[("127.0.0.1", server.port)],
        partition_size=5,
        max_pending=4,
    )
    seen = [next(records)]
    victim = sorted(stats(client))[0]
    with pytest.raises(Exception):  # noqa: B017, PT011 - the worker dies before it replies
        client.run(os._exit, 1, workers=[victim])
    seen += list(records)
    got = by_line(seen)
    assert sorted(got) == list(range(1, 41))
    assert all(got[line]["domain"] == domains[line - 1] for line in got)
    assert all(got[line]["outcome"] == "ok" for line in got)
    mx = [q for q in server.queries if q[1] == "MX"]
    assert len(mx) > len(domains)  # some partitions ran twice
