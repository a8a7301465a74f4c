"""Shared helpers of the benchmarks: tables, statistics, resolvers, servers in subprocesses.

Every benchmark module exposes ``run(smoke: bool) -> Report``; ``benchmarks/run.py`` runs the
modules listed in its ``BENCHMARKS`` and prints their tables, then every target next to the
figure measured. Nothing here asserts a timing.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "tests"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import dns.asyncresolver  # noqa: E402
import dns.resolver  # noqa: E402
from harness.resolvers import make_dnspython_resolver  # noqa: E402


def three_mx_zone(origin: str) -> str:
    """Master-file text of a 3-MX dual-stack domain at ``origin`` (10 mx1, 10 mx2, 20 mx3)."""
    return f"""
$ORIGIN {origin}
$TTL 300
@      SOA   ns hostmaster 1 3600 900 604800 60
@      MX    10 mx1
@      MX    10 mx2
@      MX    20 mx3
mx1    A     192.0.2.1
mx1    AAAA  2001:db8::1
mx2    A     192.0.2.2
mx2    AAAA  2001:db8::2
mx3    A     192.0.2.3
mx3    AAAA  2001:db8::3
"""


class Skipped(Exception):
    """A benchmark cannot run here (a missing program); the runner fails on it under CI."""


@dataclass
class Table:
    """One printed table: a title, column names, rows of already formatted cells, notes."""

    title: str
    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        lines = [f"## {self.title}", ""]
        header = (
            "| " + " | ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)) + " |"
        )
        lines.append(header)
        lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for row in self.rows:
            cells = [
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("| " + " | ".join(cells) + " |")
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


@dataclass
class Target:
    """A target of issue 5 and the figure measured for it (printed, never asserted)."""

    name: str
    goal: str
    measured: str
    met: bool
    skipped: bool = False  #: not measured here (a missing program); ``measured`` says why


@dataclass
class Report:
    """What one benchmark module returns."""

    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def spread(samples: Sequence[float], scale: float = 1.0, fmt: str = ".1f") -> str:
    """'min-max' of the samples, scaled."""
    return f"{min(samples) * scale:{fmt}}–{max(samples) * scale:{fmt}}"


def sync_resolver(port: int, lifetime: float = 5.0) -> dns.resolver.Resolver:
    """A dnspython resolver asking only 127.0.0.1@port: no system configuration, no cache."""
    return make_dnspython_resolver(port, lifetime=lifetime, timeout=min(2.0, lifetime))


def async_resolver(port: int, lifetime: float = 5.0) -> dns.asyncresolver.Resolver:
    """The asyncio twin of :func:`sync_resolver`."""
    return make_dnspython_resolver(
        port, asynchronous=True, lifetime=lifetime, timeout=min(2.0, lifetime)
    )


def bytecode_env() -> dict[str, str]:
    """The environment with bytecode caching on (this machine sets PYTHONDONTWRITEBYTECODE)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


_CHILD = Path(__file__).resolve().parent / "_servers.py"


@contextlib.contextmanager
def server_process(kind: str, *args: str) -> Iterator[int]:
    """Run a server of ``benchmarks/_servers.py`` in a child process; yield its port.

    The server runs in its own process so that its CPU time and the GIL are not shared with
    the client measured (a DNS server is never inside the MTA's process)."""
    with tempfile.TemporaryDirectory(prefix="mxselect-bench-") as tmp:
        proc = subprocess.Popen(
            [sys.executable, str(_CHILD), kind, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.strip().isdigit():
                raise RuntimeError(f"{kind} server did not start: {line!r}")
            yield int(line)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()  # the child exits when its stdin closes
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def print_report(report: Report) -> None:
    """Print a benchmark's tables and targets (a module run on its own)."""
    for table in report.tables:
        print(table.render())
    for target in report.targets:
        print(f"{target.name}: {target.measured} (target {target.goal})")


def standalone(run: Callable[[bool], Report], doc: str | None) -> None:
    """``python benchmarks/<name>.py [--smoke]``: run one benchmark and print its report."""
    import argparse

    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="once, at a tiny size")
    print_report(run(parser.parse_args().smoke))
