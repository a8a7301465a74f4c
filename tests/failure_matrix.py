"""The failure-semantics table: every DNS outcome at every stage of a selection -> the result.

One table, three users: ``tests/test_fault_matrix.py`` runs every cell through the fake
resolver and over the wire (fault server + dnspython adapter, sync and async), and
``docs/failure-semantics.md`` shows the table rendered by :func:`render` (a test checks the
document still agrees; ``PYTHONPATH=. python3 tests/failure_matrix.py`` prints the rendered block).

Each cell is a small zone under ``matrix.test.`` for the recipient domain ``d.matrix.test``:
the DNS outcomes NOERROR, NODATA and NXDOMAIN are made by the zone data itself (a name with
the records, a name without them, no name at all); the failures are injected on one
(name, type) -- on the wire by the fault server (rules also apply when a CNAME chain passes
through the name, as a recursive resolver meets the fault while chasing it), in the fake by
``FakeResolver.fail``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mxselect.testing import Fault

ORIGIN = "matrix.test."
DOMAIN = "d.matrix.test"

#: The DNS outcomes (columns): (key, label in the document, fault-server behaviour,
#: FakeResolver fault). The first three are made by the zone data.
OUTCOMES: tuple[tuple[str, str, str | None, Fault | None], ...] = (
    ("noerror", "NOERROR with records", None, None),
    ("nodata", "NODATA (NOERROR, no records of the type)", None, None),
    ("nxdomain", "NXDOMAIN", None, None),
    ("servfail", "SERVFAIL", "servfail", Fault.SERVFAIL),
    ("timeout", "timeout (no reply)", "drop", Fault.TIMEOUT),
    ("refused", "REFUSED", "refused", Fault.REFUSED),
    ("formerr", "FORMERR", "formerr", Fault.FORMERR),
    ("tc-notcp", "truncated, then TCP fails", "tc-notcp", Fault.TRUNCATED),
    ("malformed", "malformed reply (garbage)", "garbage", Fault.TIMEOUT),
    ("wrongid", "reply with a wrong ID", "wrongid", Fault.TIMEOUT),
)
FAILURES = tuple(key for key, _, behaviour, _ in OUTCOMES if behaviour is not None)

TEMPORARY_BASIS = "RFC 5321 §5.1 (queue and retry), RFC 1123 §6.1.3.3, RFC 3463 X.4.3"
HOST_TEMPORARY_BASIS = "RFC 7672 §2.1.2; Postfix: a soft error dominates (peers: Stalwart)"


@dataclass(frozen=True)
class Expect:
    """What a cell must give."""

    #: "selection" or the name of the error class raised
    outcome: str
    reply: int | None = None
    status: str | None = None
    #: for a selection: the target addresses, in order
    targets: tuple[str, ...] = ()
    implicit: bool = False
    #: for a selection: the warning codes (WarningCode values), sorted, exactly
    warnings: tuple[str, ...] = ()
    basis: str = ""

    def describe(self) -> str:
        if self.outcome != "selection":
            return self.outcome
        what = "implicit MX" if self.implicit else "selection"
        text = f"{what}: {', '.join(self.targets)}"
        if self.warnings:
            text += " + warning " + ", ".join(self.warnings)
        return text


@dataclass(frozen=True)
class Stage:
    """One stage of a selection: its zone in each data shape, and where faults go."""

    key: str
    label: str
    #: zone lines (relative to matrix.test.) for "noerror", "nodata", "nxdomain"
    zones: dict[str, tuple[str, ...]]
    #: where faults are injected: (name relative to matrix.test., type or None for all)
    fault_at: tuple[str, str | None]
    #: text every temporary error's reason must contain (names the lookup that failed)
    reason_has: str
    expect: dict[str, Expect]


def _temporary(basis: str = TEMPORARY_BASIS) -> Expect:
    return Expect("DNSTemporaryError", 451, "4.4.3", basis=basis)


def _no_targets(basis: str) -> Expect:
    return Expect("NoUsableTargetsError", 550, "5.4.4", basis=basis)


def _failures(expect: Expect) -> dict[str, Expect]:
    return dict.fromkeys(FAILURES, expect)


MX_ONE = ("d MX 10 mx1", "mx1 A 192.0.2.1")

STAGES: tuple[Stage, ...] = (
    Stage(
        "mx",
        "MX query of the domain",
        {
            "noerror": ("d MX 10 mx1", "d A 192.0.2.9", "mx1 A 192.0.2.1"),
            "nodata": ("d A 192.0.2.9", "mx1 A 192.0.2.1"),
            "nxdomain": ("mx1 A 192.0.2.1",),
        },
        ("d", "MX"),
        "MX lookup for d.matrix.test",
        {
            "noerror": Expect("selection", targets=("192.0.2.1",), basis="RFC 5321 §5.1"),
            "nodata": Expect(
                "selection",
                targets=("192.0.2.9",),
                implicit=True,
                basis="RFC 5321 §5.1 implicit MX; RFC 2308 §2.2",
            ),
            "nxdomain": Expect(
                "NoSuchDomainError", 550, "5.1.2", basis="RFC 5321 §5.1, RFC 3463 X.1.2"
            ),
            **_failures(_temporary("RFC 5321 §5.1: no A/AAAA fallback; postal#2833")),
        },
    ),
    Stage(
        "mx-cname",
        "CNAME hop of the domain (d CNAME t)",
        {
            "noerror": ("d CNAME t", "t MX 10 mx1", "t A 192.0.2.9", "mx1 A 192.0.2.1"),
            "nodata": ("d CNAME t", "t A 192.0.2.9", "mx1 A 192.0.2.1"),
            "nxdomain": ("d CNAME t", "mx1 A 192.0.2.1"),
        },
        ("t", "MX"),
        "MX lookup for d.matrix.test",
        {
            "noerror": Expect(
                "selection", targets=("192.0.2.1",), basis="RFC 5321 §5.1 (processed as t)"
            ),
            "nodata": Expect(
                "selection",
                targets=("192.0.2.9",),
                implicit=True,
                basis="RFC 5321 §5.1: implicit MX at the CNAME target",
            ),
            "nxdomain": Expect(
                "NoSuchDomainError", 550, "5.1.2", basis="RFC 6604 §3: the last rcode of the chain"
            ),
            **_failures(_temporary("RFC 5321 §5.1, RFC 6604 §3")),
        },
    ),
    Stage(
        "a",
        "A query of the only exchange (IPv4-only host)",
        {
            "noerror": MX_ONE,
            "nodata": ("d MX 10 mx1", 'mx1 TXT "no address"'),
            "nxdomain": ("d MX 10 mx1",),
        },
        ("mx1", "A"),
        "mx1.matrix.test",
        {
            "noerror": Expect("selection", targets=("192.0.2.1",), basis="RFC 5321 §5.1"),
            "nodata": _no_targets("RFC 5321 §5.1, RFC 3463 X.4.4"),
            "nxdomain": _no_targets("RFC 5321 §5.1, RFC 3463 X.4.4"),
            **_failures(_temporary(HOST_TEMPORARY_BASIS + "; Exim: AAAA NODATA + A timeout")),
        },
    ),
    Stage(
        "aaaa",
        "AAAA query of the only exchange (IPv6-only host)",
        {
            "noerror": ("d MX 10 mx1", "mx1 AAAA 2001:db8::1"),
            "nodata": ("d MX 10 mx1", 'mx1 TXT "no address"'),
            "nxdomain": ("d MX 10 mx1",),
        },
        ("mx1", "AAAA"),
        "mx1.matrix.test",
        {
            "noerror": Expect("selection", targets=("2001:db8::1",), basis="RFC 5321 §5.1"),
            "nodata": _no_targets("RFC 5321 §5.1, RFC 3463 X.4.4"),
            "nxdomain": _no_targets("RFC 5321 §5.1, RFC 3463 X.4.4"),
            **_failures(_temporary(HOST_TEMPORARY_BASIS)),
        },
    ),
    Stage(
        "exchange-cname",
        "CNAME hop of the exchange (mx1 CNAME real)",
        {
            "noerror": ("d MX 10 mx1", "mx1 CNAME real", "real A 192.0.2.1"),
            "nodata": ("d MX 10 mx1", "mx1 CNAME real", 'real TXT "no address"'),
            "nxdomain": ("d MX 10 mx1", "mx1 CNAME real"),
        },
        ("real", None),
        "mx1.matrix.test",
        {
            "noerror": Expect(
                "selection",
                targets=("192.0.2.1",),
                warnings=("exchange-is-alias",),
                basis="RFC 2181 §10.3 (followed, as Postfix and Exim)",
            ),
            "nodata": _no_targets("RFC 5321 §5.1, RFC 6604 §3"),
            "nxdomain": _no_targets("RFC 5321 §5.1, RFC 6604 §3 (dangling CNAME)"),
            **_failures(_temporary(HOST_TEMPORARY_BASIS)),
        },
    ),
    Stage(
        "a-dual",
        "A query of a dual-stack exchange (AAAA answers)",
        {
            "noerror": ("d MX 10 mx1", "mx1 A 192.0.2.1", "mx1 AAAA 2001:db8::1"),
            "nodata": ("d MX 10 mx1", "mx1 AAAA 2001:db8::1"),
        },
        ("mx1", "A"),
        "",
        {
            "noerror": Expect(
                "selection", targets=("2001:db8::1", "192.0.2.1"), basis="RFC 8305 §4"
            ),
            "nodata": Expect("selection", targets=("2001:db8::1",), basis="RFC 5321 §5.1"),
            **_failures(
                Expect(
                    "selection",
                    targets=("2001:db8::1",),
                    warnings=("partial-address-failure",),
                    basis="RFC 3974 §5; Exim, Postfix",
                )
            ),
        },
    ),
    Stage(
        "best-mx",
        "A and AAAA of the best of two MX hosts",
        {
            "noerror": ("d MX 10 mx1", "d MX 20 mx2", "mx1 A 192.0.2.1", "mx2 A 192.0.2.2"),
            "nodata": ("d MX 10 mx1", "d MX 20 mx2", 'mx1 TXT "none"', "mx2 A 192.0.2.2"),
            "nxdomain": ("d MX 10 mx1", "d MX 20 mx2", "mx2 A 192.0.2.2"),
        },
        ("mx1", None),
        "",
        {
            "noerror": Expect(
                "selection", targets=("192.0.2.1", "192.0.2.2"), basis="RFC 5321 §5.1"
            ),
            **dict.fromkeys(
                ("nodata", "nxdomain", *FAILURES),
                Expect(
                    "selection",
                    targets=("192.0.2.2",),
                    warnings=("host-unusable",),
                    basis="RFC 7672 §2.1.2: proceed via the remaining MX hosts",
                ),
            ),
        },
    ),
)


@dataclass(frozen=True)
class Cell:
    stage: Stage
    outcome: str

    @property
    def id(self) -> str:
        return f"{self.stage.key}-{self.outcome}"

    @property
    def expect(self) -> Expect:
        return self.stage.expect[self.outcome]

    @property
    def behaviour(self) -> str | None:
        """The fault server's behaviour for this cell (None: the data decides)."""
        return next(b for key, _, b, _ in OUTCOMES if key == self.outcome)

    @property
    def fault(self) -> Fault | None:
        return next(f for key, _, _, f in OUTCOMES if key == self.outcome)

    @property
    def fault_name(self) -> str:
        return f"{self.stage.fault_at[0]}.{ORIGIN}"

    @property
    def fault_type(self) -> str | None:
        return self.stage.fault_at[1]

    def zone_text(self) -> str:
        shape = self.outcome if self.outcome in self.stage.zones else "noerror"
        lines = [
            f"$ORIGIN {ORIGIN}",
            "$TTL 300",
            "@ SOA ns hostmaster 1 3600 900 604800 60",
            "ns A 192.0.2.53",
            *self.stage.zones[shape],
        ]
        return "\n".join(lines) + "\n"


def cells() -> list[Cell]:
    """Every cell of the table (a stage leaves out an outcome that cannot happen to it)."""
    return [Cell(stage, key) for stage in STAGES for key, *_ in OUTCOMES if key in stage.expect]


def render() -> str:
    """The table as Markdown, one row per cell."""
    labels = {key: label for key, label, _, _ in OUTCOMES}
    rows = [
        "| stage | DNS outcome | result | reply | status | basis |",
        "|---|---|---|---|---|---|",
    ]
    for cell in cells():
        e = cell.expect
        rows.append(
            f"| {cell.stage.label} | {labels[cell.outcome]} | {e.describe()} | "
            f"{e.reply or '—'} | {e.status or '—'} | {e.basis} |"
        )
    return "\n".join(rows) + "\n"


BEGIN = "<!-- failure-matrix:begin (generated by tests/failure_matrix.py; do not edit) -->"
END = "<!-- failure-matrix:end -->"

if __name__ == "__main__":
    print(BEGIN)
    print(render(), end="")
    print(END)
