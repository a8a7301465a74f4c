"""Run every benchmark and print its tables, then each target of issue 5 next to its figure.

    python3 benchmarks/run.py            # the full run (about 2 minutes on 2 cores)
    python3 benchmarks/run.py --smoke    # every benchmark once, at a tiny size (CI)
    python3 benchmarks/run.py --only latency,core_cpu

To add a benchmark, write a module in this directory with ``NAME`` and
``run(smoke: bool) -> _common.Report`` and add its name to ``BENCHMARKS``. Nothing here asserts
a timing: the figures are read, not checked (a failing benchmark still fails the run).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Report, Skipped, Table, Target

#: The benchmark modules, in the order they run.
BENCHMARKS = ["machine", "latency", "core_cpu", "bulk", "footprint", "cache"]
BENCHMARKS += ["cli_bulk"]  # issue 19: mxselect -f against the library's bulk rate


def _met(target: Target, smoke: bool) -> str:
    if target.skipped:
        return "skipped"
    if smoke:
        return "n/a (smoke)"
    return "yes" if target.met else "NO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="every benchmark once, tiny size")
    parser.add_argument("--only", help="comma-separated benchmark names")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else BENCHMARKS
    import dns.version

    import mxselect

    print(
        f"# mxselect {mxselect.__version__} benchmarks{' (smoke)' if args.smoke else ''}\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; Python "
        f"{platform.python_version()}, dnspython {dns.version.version}, "
        f"{platform.machine()} {platform.system()} {platform.release()}\n"
    )
    targets = Table("Targets", ["target", "goal", "measured", "met"])
    skipped: list[str] = []
    started = time.perf_counter()
    for name in names:
        module = importlib.import_module(name)
        began = time.perf_counter()
        try:
            report: Report = module.run(smoke=args.smoke)
        except Skipped as exc:
            if os.environ.get("CI"):
                raise  # CI installs everything: a benchmark that cannot run is a failure
            print(f"({name} skipped: {exc})\n", flush=True)
            continue
        for table in report.tables:
            print(table.render(), flush=True)
        print(f"({name}: {time.perf_counter() - began:.1f} s)\n", flush=True)
        for target in report.targets:
            if target.skipped:
                skipped.append(f"{target.name}: {target.measured}")
            targets.rows.append(
                [
                    target.name,
                    target.goal,
                    target.measured,
                    _met(target, args.smoke),
                ]
            )
    print(targets.render())
    print(f"(all: {time.perf_counter() - started:.1f} s)")
    if skipped and os.environ.get("CI"):
        # CI installs everything (.ci/run): a target that could not be measured is a failure.
        sys.exit("targets skipped under CI:\n" + "\n".join(skipped))


if __name__ == "__main__":
    main()
