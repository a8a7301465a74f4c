"""The fault matrix: every DNS outcome at every stage (tests/failure_matrix.py) as tests.

Each cell runs four ways: through the FakeResolver (sync and async), and over the wire with
the dnspython adapter against the fault-injecting server (sync and async: real packets
dropped, garbage, wrong ID, truncated with TCP closed, each rcode). The document
docs/failure-semantics.md shows the same table; a test checks it agrees.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from failure_matrix import BEGIN, END, Cell, cells, render

import mxselect
from mxselect import MXSelectError, Selection
from mxselect.stub import StubResolver
from mxselect.testing import FakeResolver

CELLS = cells()
IDS = [cell.id for cell in CELLS]
#: The lifetime on the wire for the cells whose fault is no usable reply (drop, garbage, wrong
#: ID): the test waits this long for the faulted query, and every other query of the cell must
#: be answered within it, so it is not cut to the bone (0.2 s flaked on a loaded CI machine).
TIMEOUT_LIFETIME = 0.5
#: ...and for every other cell, where nothing is meant to time out: a generous bound, so that a
#: slow machine can never turn a SERVFAIL cell into a timeout of the MX query.
LIFETIME = 5.0
NO_REPLY = frozenset({"drop", "garbage", "wrongid"})
DOC = Path(__file__).resolve().parent.parent / "docs" / "failure-semantics.md"


def check(cell: Cell, result: Selection | MXSelectError) -> None:
    """The result is exactly the cell's expectation."""
    expect = cell.expect
    if expect.outcome == "selection":
        assert isinstance(result, Selection), f"{cell.id}: {result!r}"
        assert tuple(str(t.address) for t in result) == expect.targets
        assert result.implicit is expect.implicit
        assert tuple(sorted({w.code.value for w in result.warnings})) == expect.warnings
        return
    assert isinstance(result, MXSelectError), f"{cell.id}: {result!r}"
    assert type(result).__name__ == expect.outcome, f"{cell.id}: {result!r}"
    assert (result.reply_code, result.status) == (expect.reply, expect.status)
    assert result.domain == "d.matrix.test"
    if not result.permanent:
        assert cell.stage.reason_has in result.reason, result.reason


def outcome(api: str, resolver: object) -> Selection | MXSelectError:
    try:
        if api == "sync":
            return mxselect.select_targets("d.matrix.test", resolver=resolver, rng=random.Random(1))
        return asyncio.run(
            mxselect.aselect_targets("d.matrix.test", resolver=resolver, rng=random.Random(1))
        )
    except MXSelectError as exc:
        return exc


@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_fault_matrix_fake(cell: Cell, api: str) -> None:
    """Each cell through the FakeResolver: the table's result, reply code and status."""
    fake = FakeResolver.from_zone(cell.zone_text())
    if cell.fault is not None:
        fake.fail(cell.fault_name, cell.fault_type, cell.fault)
    check(cell, outcome(api, fake))


@pytest.mark.e2e
@pytest.mark.parametrize("adapter", ["dnspython", "stub"])
@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_fault_matrix_wire(cell: Cell, api: str, adapter: str, fault_server) -> None:  # type: ignore[no-untyped-def]
    """Each cell over the wire, real packets from the fault server: the dnspython adapter
    and the stub resolver (mxselect.stub), each sync and async."""
    from harness.resolvers import make_dnspython_resolver

    server = fault_server(cell.zone_text())
    if cell.behaviour is not None:
        server.set_rule(cell.fault_name, cell.fault_type, cell.behaviour)
    lifetime = TIMEOUT_LIFETIME if cell.behaviour in NO_REPLY else LIFETIME
    resolver: object
    if adapter == "stub":
        resolver = StubResolver([("127.0.0.1", server.port)], timeout=lifetime, lifetime=lifetime)
    else:
        resolver = make_dnspython_resolver(
            server.port, asynchronous=api == "async", lifetime=lifetime, timeout=lifetime
        )
    check(cell, outcome(api, resolver))
    if cell.behaviour is not None:
        # The fault really was met on the wire (a rule on a CNAME target applies to the
        # query whose chain passes through it).
        assert server.queries, cell.id


def test_failure_semantics_doc_agrees_with_the_table() -> None:
    """docs/failure-semantics.md shows exactly the table the matrix tests run."""
    text = DOC.read_text()
    start = text.index(BEGIN) + len(BEGIN) + 1
    assert text[start : text.index(END)] == render()


def test_matrix_covers_every_stage_and_outcome() -> None:
    """The five stages of the issue and all ten DNS outcomes are in the table; only the
    impossible cell (NXDOMAIN for one address family of a name that has the other) is out."""
    stages = {cell.stage.key for cell in CELLS}
    assert {"mx", "mx-cname", "a", "aaaa", "exchange-cname"} <= stages
    assert len({cell.outcome for cell in CELLS}) == 10
    missing = {(s, o) for s in stages for o in {c.outcome for c in CELLS}} - {
        (c.stage.key, c.outcome) for c in CELLS
    }
    assert missing == {("a-dual", "nxdomain")}
