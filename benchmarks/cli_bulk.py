"""Benchmark: ``mxselect -f`` (batch mode of the command) against the library's own bulk path.

Issue 19: batch mode of 10,000 domains reaches at least 0.8x the library's bulk rate, in the
same run. The domains and the servers are the bulk benchmark's (``benchmarks/bulk.py``:
``generate()``, ``BulkEnv``: Knot behind the 10 ms delaying proxy, resolved through the
harness's validating Unbound). In the same run, on the same domains:

* the library: ``aselect_targets`` + ``StubResolver`` with ``bulk.CONCURRENCY`` selections in
  flight (``bulk.run_mxselect``, the figure of the bulk benchmark), in this process;
* the command, like for like: ``python -m mxselect -f FILE --json -q --no-cache
  --concurrency N --nameserver 127.0.0.1:PORT`` -- its default resolver (the stub), the same
  concurrency, no answer cache -- as a child process, JSON Lines written to a file; its wall
  time includes the interpreter's start and imports, its CPU time is the child's
  (``RUSAGE_CHILDREN``);
* the command as run by default (the per-run ``CachingResolver`` in front of the stub), which
  asks the shared provider's hosts once: for information, the target uses the like-for-like
  row.

Cold: Unbound's cache is flushed before the run; warm: the same run right after. The command's
outcomes (the ``outcome`` field of each JSON line) are counted and printed beside the
library's, so both did the same work.

The child imports the mxselect of this checkout (its working directory and ``PYTHONPATH``).
``--tree DIR`` (repeatable) adds the command rows of another checkout (e.g. ``--tree
/work/main``), run in the same rounds, alternating with this one's: a change to the command is
measured against the code before it in one run.

    python benchmarks/cli_bulk.py [--smoke] [--domains N] [--repeat N] [--tree DIR]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import bulk
from _common import ROOT, Report, Skipped, Table, Target, bytecode_env, median, server_process
from harness.dnsenv import free_port, missing_programs

from mxselect.stub import StubResolver

NAME = "cli_bulk"
DOMAINS = 10_000
SMOKE_DOMAINS = 200
REPEAT = 3
#: The issue's goal: the command's rate over the library's, like for like.
GOAL = 0.8

_Sample = tuple[float, float, Counter[str]]  # wall s, CPU s, outcomes


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_command(listing: Path, port: int, out: Path, *extra: str, tree: Path = ROOT) -> _Sample:
    """``python -m mxselect -f listing`` against 127.0.0.1@port, importing the mxselect of
    ``tree``; its wall and CPU time and the outcomes of its JSON lines."""
    cmd = [
        sys.executable, "-m", "mxselect", "-f", str(listing), "--json", "-q",
        "--concurrency", str(bulk.CONCURRENCY), "--nameserver", f"127.0.0.1:{port}", *extra,
    ]  # fmt: skip
    env = bytecode_env() | {"PYTHONPATH": str(tree)}
    cpu, wall = _children_cpu(), time.perf_counter()
    with out.open("w", encoding="utf-8") as stdout:
        done = subprocess.run(
            cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=tree, env=env
        )
    wall, cpu = time.perf_counter() - wall, _children_cpu() - cpu
    if done.returncode not in (0, 69, 75):  # the batch's worst outcome, not a crash
        raise RuntimeError(f"mxselect exited {done.returncode}: {done.stderr[-2000:]}")
    with out.open(encoding="utf-8") as lines:
        outcomes = Counter(json.loads(line)["outcome"] for line in lines)
    return wall, cpu, outcomes


def run_library(stub: StubResolver, domains: list[str]) -> _Sample:
    cpu, wall = time.process_time(), time.perf_counter()
    outcomes = bulk.run_mxselect(stub, domains, bulk.CONCURRENCY)
    return time.perf_counter() - wall, time.process_time() - cpu, outcomes


def run(
    smoke: bool = False,
    domains_count: int | None = None,
    repeat: int | None = None,
    trees: Sequence[Path] = (),
) -> Report:
    """The rows; ``trees``: other checkouts whose command rows are run too (for comparison)."""
    count = domains_count or (SMOKE_DOMAINS if smoke else DOMAINS)
    repeat = repeat or (1 if smoke else REPEAT)
    if missing_programs():
        raise Skipped(
            f"missing {missing_programs()}: apt-get install -y --no-install-recommends "
            "knot unbound ldnsutils"
        )
    zone_text, domains = bulk.generate(count)
    library = "library: aselect_targets + StubResolver"
    like = "mxselect -f --no-cache (stub resolver)"
    default = "mxselect -f (stub resolver + run cache, the default)"
    results: dict[tuple[str, str], list[_Sample]] = {}
    with tempfile.TemporaryDirectory(prefix="mxselect-cli-bulk-") as tmp:
        listing = Path(tmp) / "domains.txt"
        listing.write_text("\n".join(domains) + "\n", encoding="utf-8")
        out = Path(tmp) / "out.jsonl"
        auth_port = free_port(5300)
        delay = str(bulk.UPSTREAM_DELAY_MS)
        with server_process("delayproxy", str(auth_port), delay) as proxy:
            env = bulk.BulkEnv(Path(tmp), zone_text, proxy, auth_port)
            with env:
                port = env.resolver_port
                stub = StubResolver([("127.0.0.1", port)])
                contestants: list[tuple[str, Callable[[], _Sample]]] = [
                    (library, lambda: run_library(stub, domains)),
                    (like, lambda: run_command(listing, port, out, "--no-cache")),
                    (default, lambda: run_command(listing, port, out)),
                ]
                for tree in trees:
                    contestants += [
                        (
                            f"{like} [{tree}]",
                            partial(run_command, listing, port, out, "--no-cache", tree=tree),
                        ),
                        (
                            f"{default} [{tree}]",
                            partial(run_command, listing, port, out, tree=tree),
                        ),
                    ]
                for _ in range(repeat):
                    for name, fn in contestants:
                        env.flush()
                        results.setdefault((name, "cold"), []).append(fn())
                        results.setdefault((name, "warm"), []).append(fn())
    table = Table(
        f"Batch mode: mxselect -f vs the library, {count} domains via Unbound -> Knot "
        f"(+{bulk.UPSTREAM_DELAY_MS:g} ms upstream), {bulk.CONCURRENCY} in flight, "
        f"{repeat} run(s) each",
        ["contestant", "cache", "domains/s median", "min–max", "CPU ms/domain", "× library",
         "outcomes ok/perm/temp"],
    )  # fmt: skip
    rates = {key: median([count / wall for wall, _, _ in s]) for key, s in results.items()}
    cpus = {key: median([cpu / count for _, cpu, _ in s]) for key, s in results.items()}
    for (name, cache), samples in results.items():
        per_s = [count / wall for wall, _, _ in samples]
        outcomes = samples[-1][2]
        table.rows.append(
            [
                name,
                cache,
                f"{rates[(name, cache)]:.0f}",
                f"{min(per_s):.0f}–{max(per_s):.0f}",
                f"{cpus[(name, cache)] * 1000:.2f}",
                f"{rates[(name, cache)] / rates[(library, cache)]:.2f}",
                f"{outcomes['ok']}/{outcomes['permanent']}/{outcomes['temporary']}",
            ]
        )
    table.notes += [
        "× library = this row's domains/s ÷ the library's, same cache state, same run.",
        "The command's wall time includes starting Python and importing mxselect (bytecode "
        "cached); its CPU is the child process's. The library runs in this process.",
        *(
            ["[DIR]: the command of the checkout DIR (--tree), in the same rounds, alternating."]
            if trees
            else []
        ),
        "Timing figures taken on a shared machine are noisy: read them as provisional. The "
        "client CPU per domain varies less than the wall time; the command's over the "
        "library's: "
        + ", ".join(
            f"{cache} {cpus[(name + tag, cache)] / cpus[(library, cache)]:.2f}× ({label}{tag})"
            for tag in ["", *(f" [{tree}]" for tree in trees)]
            for name, label in ((like, "--no-cache"), (default, "default"))
            for cache in ("cold", "warm")
        )
        + ".",
    ]
    report = Report([table])
    for cache in ("cold", "warm"):
        ratio = rates[(like, cache)] / rates[(library, cache)]
        report.targets.append(
            Target(f"mxselect -f vs library bulk rate, {cache}", f"≥ {GOAL}×", f"{ratio:.2f}×",
                   ratio >= GOAL)
        )  # fmt: skip
    return report


def main() -> None:
    import argparse

    from _common import print_report

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_DOMAINS} domains, once")
    parser.add_argument("--domains", type=int, help=f"domains (default {DOMAINS})")
    parser.add_argument("--repeat", type=int, help=f"runs per contestant (default {REPEAT})")
    parser.add_argument(
        "--tree",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="also run the command of this checkout (repeatable), e.g. --tree /work/main",
    )
    args = parser.parse_args()
    print_report(run(args.smoke, args.domains, args.repeat, [t.resolve() for t in args.tree]))


if __name__ == "__main__":
    main()
