"""The soak run, reduced (benchmarks/soak.py runs 10,000 domains): 500 domains through the
asyncio API against the fault server, 10% of them faulted with every kind of fault. Every
domain gets the outcome its fault implies; no task, thread or file descriptor is left over;
traced memory is flat across the run."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_soak_500_domains_every_fault_kind() -> None:
    """500 domains, 50 faulted (all 24 kinds): classified, matching, no leak, flat memory."""
    from benchmarks.soak import KINDS, run_soak

    report = run_soak(500, fault_rate=0.1, seed=6, concurrency=50, lifetime=3.0)
    print("\n" + "\n".join(report.lines()))
    assert sum(report.faults.values()) == 50
    assert len(report.faults) == len(KINDS)  # every kind injected at least once
    assert report.mismatches == []
    assert sum(report.outcomes.values()) == 500
    assert report.before == report.after
    assert report.memory_growth < 200 * 1024
