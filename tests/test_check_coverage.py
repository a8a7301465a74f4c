"""Every finding ``mxselect check`` can emit has its tests (tracker issue 18, "Done when"):
one that produces it from a zone (FakeResolver, no network) and one end to end (Knot +
validating Unbound on loopback). A new finding code without both fails here.

The codes come from the library's own registry, :data:`mxselect.check.CODES` (the DNS and
secure-delivery findings) and :data:`mxselect.check.PROBE_CODES` (``--probe``), and the
registry is checked against the source: every code a finding is made with is registered.

Which test produces which code is read from the tests themselves: a test covers the codes of
its ``parametrize`` table (the ``code`` argument, or the keys of an ``expected`` dict) and the
codes named by the :func:`finds` decorator; it is end to end when it carries the ``e2e``
marker (itself or its module), from a zone otherwise. For the probe's findings the two sides
are: a loopback SMTP server probed for a report made in-process (the zone side: no DNS), and
the same servers probed for a report made through Knot + Unbound (``mta.test.``,
``probe.dnssec.test.``, ``stsprobe.sts.test.``: MX hosts on 127.0.0.x).

Exempt from the end-to-end requirement, with the reason and the test that shows it:
:data:`NO_E2E`.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mxselect.check import CODES, PROBE_CODES

F = TypeVar("F", bound=Callable[..., Any])

#: The modules holding the tests of mxselect check.
MODULES = ("test_check", "test_check_secure", "test_check_e2e", "test_check_probe")

#: Codes that no real recursive resolver can produce, so no Knot + Unbound test can exist;
#: each with why, and the over-the-wire test that shows it.
NO_E2E = {
    "bad-answer": (
        "a wrong-family address in an A/AAAA answer: every shipped adapter (the stub's wire "
        "decoder, dnspython, pycares) keeps only records of the type asked, so through a real "
        "server the stray records vanish and the lookup is NODATA; only a third-party "
        "Resolver can hand the core such an answer (tests/test_check.py::test_bad_answer). "
        "On the wire: tests/test_check_e2e.py::test_bad_answer_cannot_come_over_the_wire "
        "(a server answering AAAA with an A record, through the stub and dnspython)"
    ),
}

_ROOT = Path(__file__).resolve().parent.parent


def finds(*codes: str) -> Callable[[F], F]:
    """Mark a test as producing the finding(s) ``codes`` (and asserting them)."""

    def mark(test: F) -> F:
        test.finds = (*getattr(test, "finds", ()), *codes)  # type: ignore[attr-defined]
        return test

    return mark


def _marks(obj: object) -> list[Any]:
    marks = getattr(obj, "pytestmark", [])
    return list(marks) if isinstance(marks, list | tuple) else [marks]


def _table_codes(mark: Any) -> Iterator[str]:
    """The codes of a ``parametrize`` mark's table: its ``code`` column, or the keys of its
    ``expected`` column (dicts of code to severity)."""
    names, values = mark.args[0], mark.args[1]
    names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    for column in ("code", "expected"):
        if column not in names:
            continue
        at = names.index(column)
        for row in values:
            row = row.values if hasattr(row, "values") else row
            cell = row[at] if len(names) > 1 else row
            if isinstance(cell, dict):
                yield from cell
            else:
                yield cell


def coverage() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(code -> zone tests, code -> end-to-end tests), read from the test modules."""
    zone: dict[str, list[str]] = {}
    e2e: dict[str, list[str]] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        module_e2e = any(m.name == "e2e" for m in _marks(module))
        for attr, test in vars(module).items():
            if not attr.startswith("test_") or not callable(test):
                continue
            marks = _marks(test)
            codes = set(getattr(test, "finds", ()))
            for mark in marks:
                if mark.name == "parametrize":
                    codes.update(_table_codes(mark))
            where = e2e if module_e2e or any(m.name == "e2e" for m in marks) else zone
            for code in codes:
                where.setdefault(code, []).append(f"{name}::{attr}")
    return zone, e2e


def _source_codes() -> set[str]:
    """The codes findings are made with in the source: the first string argument of
    ``self.add(...)`` and ``Finding(...)``, the second of the probe's ``_finding(state, ...)``."""
    found: set[str] = set()
    for path in ("mxselect/check.py", "mxselect/_probe.py"):
        tree = ast.parse((_ROOT / path).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            at = {"add": 0, "Finding": 0, "_finding": 1}.get(name)
            if at is None or len(node.args) <= at:
                continue
            arg = node.args[at]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
    return found


def test_the_registry_is_the_source() -> None:
    """Every code a finding is made with is in CODES or PROBE_CODES, and no more."""
    assert len(set(CODES)) == len(CODES)
    assert len(set(PROBE_CODES)) == len(PROBE_CODES)
    assert not set(CODES) & set(PROBE_CODES)
    assert _source_codes() == set(CODES) | set(PROBE_CODES)


def test_the_docs_list_every_code() -> None:
    """docs/check.md has one table row per code: the DNS findings, then the probe's."""
    text = (_ROOT / "docs" / "check.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (?:error|warning|info)", text, re.MULTILINE)
    assert sorted(rows) == sorted({*CODES, *PROBE_CODES})
    assert len(rows) == len(CODES) + len(PROBE_CODES)


@pytest.mark.parametrize("code", [*CODES, *PROBE_CODES])
def test_every_finding_has_a_zone_test(code: str) -> None:
    zone, _ = coverage()
    assert zone.get(code), f"no test produces {code!r} from a zone (FakeResolver)"


@pytest.mark.parametrize("code", [*CODES, *PROBE_CODES])
def test_every_finding_has_an_end_to_end_test(code: str) -> None:
    _, e2e = coverage()
    if code in NO_E2E:
        assert not e2e.get(code), f"{code!r} has an end-to-end test now: drop it from NO_E2E"
        return
    assert e2e.get(code), f"no Knot + Unbound test produces {code!r}"


def test_the_exemptions_name_tests_that_exist() -> None:
    """Each NO_E2E reason names tests by module::function, and they exist."""
    for code, why in NO_E2E.items():
        assert code in CODES
        named = re.findall(r"tests/(test_\w+)\.py::(test_\w+)", why)
        assert named, why
        for module, function in named:
            assert callable(getattr(importlib.import_module(module), function, None)), function


def test_the_collector_sees_tables_and_marks() -> None:
    """The collector itself: a table row, a decorated test and the e2e marker are read."""
    zone, e2e = coverage()
    assert "test_check::test_each_finding" in zone["mx-is-cname"]
    assert "test_check::test_more_than_twenty_mx_hosts" in zone["too-many-mx-hosts"]
    assert "test_check_e2e::test_ttl_long" in e2e["ttl-long"]
    assert "test_check::test_e2e_findings" in e2e["mx-is-cname"]
    assert "test_check::test_e2e_findings" not in zone.get("mx-is-cname", [])
