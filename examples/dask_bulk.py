"""Validate a long list of domains or addresses on a Dask cluster: ``mxselect --json -f``'s
records, computed on many machines (``docs/howto/scale-out.md``).

    python examples/dask_bulk.py --scheduler tcp://10.0.0.1:8786 -f domains.txt \\
        --nameserver 127.0.0.1:53 > results.jsonl

Without ``--scheduler`` it starts a ``LocalCluster`` on this machine (``--workers`` processes,
one thread each, on loopback). Each worker process builds one event loop and one
``StubResolver`` asking ``--nameserver`` -- give every worker host a caching resolver of its
own (Unbound on 127.0.0.1) and name it here. The records stream out as partitions complete,
one JSON object per input line (duplicates looked up once), the summary goes to stderr, and
the exit code is the command's: the worst outcome's (75 > 69 > 68 > 65 > 0).

Needs the ``distributed`` extra: ``pip install "mxselect[distributed]"``.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

import mxselect
from mxselect.distributed import DEFAULT_CONCURRENCY, DEFAULT_PARTITION_SIZE, select_many, worst


def nameserver(text: str) -> tuple[str, int]:
    """``ADDR``, ``ADDR:PORT`` or ``[ADDR]:PORT`` (IPv6), as ``mxselect --nameserver``."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    else:
        host, port = text, 53
    return str(ipaddress.ip_address(host)), port


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "-f", "--file", required=True, help="one domain or address per line ('-': stdin)"
    )
    p.add_argument(
        "--nameserver",
        action="append",
        type=nameserver,
        required=True,
        metavar="ADDR[:PORT]",
        help="the recursive resolver each worker asks (repeatable)",
    )
    p.add_argument("--scheduler", help="address of a running scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster processes (default 2)")
    p.add_argument("-o", "--output", help="write the JSON Lines here (default: stdout)")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N")
    p.add_argument("--partition-size", type=int, default=DEFAULT_PARTITION_SIZE, metavar="N")
    p.add_argument("--deadline", type=float, metavar="SECONDS")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")
    p.add_argument("--seed", type=int)
    p.add_argument("--dane", action="store_true", help="DANE where published (RFC 7672)")
    p.add_argument("--mta-sts", action="store_true", help="MTA-STS (RFC 8461; the mta-sts extra)")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    return p


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A Client of the scheduler given, or of a LocalCluster started (and stopped) here."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # any free port: 8787 may be taken
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@contextlib.contextmanager
def opened(path: str, mode: str, default: TextIO) -> Iterator[TextIO]:
    if path == "-":
        yield default
    else:
        with open(path, mode, encoding="utf-8", errors="replace") as stream:
            yield stream


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run the recipe; the exit code (64 for bad arguments)."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 64
    dane = mxselect.Dane.OPPORTUNISTIC if args.dane else mxselect.Dane.OFF
    policy = mxselect.Policy(dane=dane, mta_sts=args.mta_sts)
    counts: Counter[str] = Counter()
    codes = [0]
    started = time.monotonic()
    with (
        opened(args.file, "r", sys.stdin) as lines,
        opened(args.output or "-", "w", stdout or sys.stdout) as out,
        connect(args.scheduler, args.workers) as client,
    ):
        records = select_many(
            client,
            lines,
            nameservers=args.nameserver,
            policy=policy,
            lifetime=args.timeout,
            timeout=min(2.0, args.timeout),
            cache=not args.no_cache,
            concurrency=args.concurrency,
            partition_size=args.partition_size,
            seed=args.seed,
            deadline=args.deadline,
        )
        for record in records:
            out.write(record + "\n")
            fields = json.loads(record)
            counts[fields["error"] or "ok"] += 1
            codes[0] = worst([codes[0], fields["exit_code"]])
    if not args.quiet:
        elapsed = time.monotonic() - started
        done = sum(counts.values())
        print(f"{done} entries in {elapsed:.2f} s ({done / elapsed:.1f}/s)", file=sys.stderr)
        for label, count in counts.most_common():
            print(f"  {label}  {count}", file=sys.stderr)
        print(f"  exit {codes[0]}", file=sys.stderr)
    return codes[0]


if __name__ == "__main__":
    raise SystemExit(main())
