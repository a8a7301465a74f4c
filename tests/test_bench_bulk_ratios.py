"""The bulk benchmark's ratios (``benchmarks/bulk.py``), without DNS: ratios taken within each
round and their median (what the targets check), and the notes that split mxselect's gap to
adns into the setting and the code."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bulk


def _samples(walls: list[float], cpus: list[float] | None = None) -> list[bulk._Sample]:
    return [(w, c, Counter()) for w, c in zip(walls, cpus or [0.0] * len(walls), strict=True)]


def test_per_round_rates_pair_each_round() -> None:
    """Round by round, not median by median: ``a`` was twice as slow in two rounds of three,
    which the ratio of the medians (1.0 here) does not show."""
    a = _samples([1.0, 2.0, 0.5])
    b = _samples([0.5, 1.0, 1.0])
    per = bulk.per_round(a, b, 1000, 1000)
    assert per == pytest.approx([0.5, 0.5, 2.0])
    r, text = bulk.ratio_text(per, 1.0)
    assert r == pytest.approx(0.5)
    assert text == "0.50× (per round, 3 rounds: 0.50–2.00; ratio of the medians 1.00×)"
    assert bulk.ratio_text(per, 1.0, short=True)[1] == "0.50× (0.50–2.00)"


def test_per_round_cpu_per_domain() -> None:
    """CPU ratios are per domain: runs of different sizes compare fairly."""
    a = _samples([1.0, 1.0], [0.2, 0.4])
    b = _samples([1.0, 1.0], [0.1, 0.1])
    per = bulk.per_round(a, b, 1000, 150, cpu=True)
    assert per == pytest.approx([0.3, 0.6])
    # A round missing on one side is a bug, not a figure.
    with pytest.raises(ValueError, match="shorter"):
        bulk.per_round(a, b[:1], 1000, 150)


def _ratio(figures: dict[tuple[str, str], float]) -> bulk._Ratio:
    def ratio(
        a: str, b: str, cache: str, cpu: bool = False, fmt: str = ".2f", short: bool = False
    ) -> tuple[float, str]:
        r = figures[(a, b)] * (2 if cpu else 1)
        return r, f"{r:.2f}×"

    return ratio


def _notes(bare_vs_adns: float) -> list[str]:
    one_vs_adns = 1.2
    figures = {
        ("bare one", "adns"): one_vs_adns,
        ("bare each", "bare one"): bare_vs_adns / one_vs_adns,
        ("bare each", "adns"): bare_vs_adns,
        ("raw", "bare each"): 0.5,
        ("mx", "raw"): 0.6,
        ("mx", "bare each"): 0.3,
        ("mx", "adns"): bare_vs_adns * 0.3,
    }
    return bulk._bare_notes(_ratio(figures), "mx", "raw", "bare each", "bare one", "adns", 256)


def test_gap_to_adns_is_the_setting_when_no_bare_client_reaches_it() -> None:
    warm = _notes(0.4)[-1]
    assert warm.startswith("warm, where mxselect's gap to adns goes")
    assert "the setting ×0.40 = Python ×1.20" in warm
    assert "RFC 5452's socket per query ×0.33" in warm
    assert "the code ×0.30 = the stub's transport ×0.50" in warm
    assert "in all mxselect ÷ adns 0.12×" in warm
    assert "out of reach of any Python client with a socket per query" in warm
    assert "reaches 0.40×" in warm


def test_gap_to_adns_is_the_code_when_the_bare_client_reaches_it() -> None:
    notes = _notes(0.6)
    assert "reaches 0.60× adns here: 0.5× is within the setting" in notes[-1]
    assert "code (×0.30)" in notes[-1]
    assert "out of reach" not in notes[-2]  # cold: figures only, the target is warm's
    assert notes[-2].startswith("cold, where")


def test_no_chain_without_adns() -> None:
    """Without adns (not root, adnshost missing) the bare rows still get their ratios."""
    figures = {("bare each", "bare one"): 0.5, ("mx", "bare each"): 0.3, ("raw", "bare each"): 0.5}
    notes = bulk._bare_notes(_ratio(figures), "mx", "raw", "bare each", "bare one", None, 256)
    assert len(notes) == 3
    assert not any("gap to adns" in note for note in notes)
    assert "the CPU per domain" in notes[1]
