"""Benchmark 2: CPU of the pure core against the cost of parsing the same DNS responses.

The core (``SelectionPlan``) runs alone on prepared ``Answer`` objects, no I/O: µs per complete
selection of a 3-MX dual-stack domain and of a 60-MX domain (the default policy resolves the
best 20 hosts: 40 address answers). The reference is ``dns.message.from_wire`` on the wire
form of exactly the responses that selection reads (1 MX response + one per address query),
built with dnspython as a resolver would send them.

    python benchmarks/core_cpu.py [--smoke]
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable

import dns.message
import dns.rdatatype
import dns.rrset
from _common import Report, Table, Target, median, spread, standalone

from mxselect import Answer, Query, RRType, SelectionPlan

NAME = "core_cpu"


def _domain(count: int) -> tuple[str, dict[Query, Answer], list[bytes]]:
    """A domain with ``count`` dual-stack MX hosts: the answers and their wire responses."""
    domain = f"mx{count}.example.org"
    hosts = [f"mail-exchanger-{i:02d}.example.org." for i in range(count)]
    mx = [(10 * (1 + i // 2), host) for i, host in enumerate(hosts)]
    answers: dict[Query, Answer] = {Query(domain + ".", RRType.MX): Answer.from_mx(mx, ttl=300)}
    wires: dict[Query, bytes] = {}

    def wire(qname: str, rdtype: str, rdatas: list[str]) -> bytes:
        query = dns.message.make_query(qname, rdtype)
        response = dns.message.make_response(query)
        response.answer.append(dns.rrset.from_text_list(qname, 300, "IN", rdtype, rdatas))
        return response.to_wire()

    wires[Query(domain + ".", RRType.MX)] = wire(domain + ".", "MX", [f"{p} {h}" for p, h in mx])
    for i, host in enumerate(hosts):
        v4, v6 = f"198.51.100.{i + 1}", f"2001:db8::{i + 1:x}"
        answers[Query(host, RRType.A)] = Answer.from_addresses([v4], ttl=300)
        answers[Query(host, RRType.AAAA)] = Answer.from_addresses([v6], ttl=300)
        wires[Query(host, RRType.A)] = wire(host, "A", [v4])
        wires[Query(host, RRType.AAAA)] = wire(host, "AAAA", [v6])
    # Only the responses the selection reads (max_mx_hosts caps the address queries).
    used: list[bytes] = []
    plan = SelectionPlan(domain, rng=random.Random(1))
    while not plan.done:
        for query in plan.pending:
            used.append(wires[query])
            plan.feed(query, answers[query])
    plan.result()
    return domain, answers, used


def select(domain: str, answers: dict[Query, Answer], rng: random.Random) -> None:
    plan = SelectionPlan(domain, rng=rng)
    while not plan.done:
        for query in plan.pending:
            plan.feed(query, answers[query])
    plan.result()


def parse(wires: list[bytes]) -> None:
    for wire in wires:
        dns.message.from_wire(wire)


def _per_call(fn: Callable[[], None], rounds: int, inner: int) -> list[float]:
    """Seconds per call: the median-friendly samples of ``rounds`` timings of ``inner`` calls."""
    fn()
    samples = []
    gc.collect()
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - started) / inner)
    return samples


def run(smoke: bool = False) -> Report:
    rounds, scale = (1, 1) if smoke else (15, 1)
    rng = random.Random(3)
    table = Table(
        "Core CPU per selection vs parsing the same responses (µs, one core)",
        [
            "domain",
            "responses",
            "core median",
            "core min–max",
            "from_wire median",
            "from_wire min–max",
            "core ÷ parse",
        ],
    )
    report = Report([table])
    for count in (3, 60):
        domain, answers, wires = _domain(count)
        inner = (200 if count == 3 else 20) * scale if not smoke else 1
        core = _per_call(lambda d=domain, a=answers: select(d, a, rng), rounds, inner)
        parsed = _per_call(lambda w=wires: parse(w), rounds, inner)
        ratio = median(core) / median(parsed)
        table.rows.append(
            [
                f"{count} MX, dual stack",
                str(len(wires)),
                f"{median(core) * 1e6:.0f}",
                spread(core, 1e6, ".0f"),
                f"{median(parsed) * 1e6:.0f}",
                spread(parsed, 1e6, ".0f"),
                f"{ratio:.2f}",
            ]
        )
        report.targets.append(
            Target(f"core CPU, {count} MX", "≤ 0.5× parse", f"{ratio:.2f}×", ratio <= 0.5)
        )
    table.notes += [
        "core: SelectionPlan from the domain string to the Selection (normalisation, MX "
        "validation, shuffle, address ordering, warnings and the explain trace), fed "
        "prepared Answers.",
        "parse: dns.message.from_wire of the MX response and of every A/AAAA response the "
        "selection reads (60 MX: the best 20 hosts, max_mx_hosts).",
    ]
    return report


def main() -> None:
    standalone(run, __doc__)


if __name__ == "__main__":
    main()
