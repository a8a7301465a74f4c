"""Hostile zones served by Knot through Unbound (hostile.test., hugemx.test.; see
harness/dnsenv.py): each selection ends in a bounded, exact number of queries and bounded
memory, with the right classification and warnings. Sync and async, through the dnspython
adapter and through mxselect's stub resolver.

Times are printed (``pytest -s``), never asserted; memory is the tracemalloc peak of one
selection.
"""

from __future__ import annotations

import asyncio
import random
import time
import tracemalloc
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dns.asyncresolver
import dns.resolver
import pytest
from test_e2e_policy import Counting

import mxselect
from mxselect import MXSelectError, Policy, Selection, WarningCode

if TYPE_CHECKING:
    from harness.dnsenv import DnsEnv

pytestmark = pytest.mark.e2e

INTERNAL = Policy().with_unsafe("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
#: The most memory one selection may take (tracemalloc peak), whatever the zone.
MEMORY_BOUND = 8 * 2**20


@dataclass(frozen=True)
class Case:
    domain: str
    #: "selection" or the error class name
    outcome: str
    queries: int
    warnings: frozenset[WarningCode] = frozenset()
    targets: tuple[str, ...] | None = None
    policy: Policy | None = None
    status: str | None = None


W = WarningCode
CASES = [
    # 2 exchanges x 200 A records (TCP): 1 MX + 2 x (AAAA, A); the address limit applies.
    Case("wide.hostile.test", "selection", 5),
    # 1,000 MX records: the best 20 hosts only (max_mx_hosts), 1 + 2 x 20 queries.
    Case("hugemx.test", "selection", 41, frozenset({W.MX_HOSTS_CAPPED})),
    # 1,000 MX records, none of whose exchanges exist: batches of 20 hosts until the budget of
    # 5 x 20 address queries is used up, then temporary (950 exchanges never examined).
    Case(
        "deadmx.hostile.test",
        "DNSTemporaryError",
        101,
        frozenset({W.MX_HOSTS_CAPPED, W.HOST_UNUSABLE}),
        status="4.4.3",
    ),
    # 100-link CNAME chain at the domain: the resolver gives up (SERVFAIL): temporary.
    Case("chain.hostile.test", "DNSTemporaryError", 1, status="4.4.3"),
    # ... and at the exchange: that host fails temporarily, the only one: temporary.
    Case("xchain.hostile.test", "DNSTemporaryError", 3, frozenset({W.HOST_UNUSABLE}), None),
    Case("dloop.hostile.test", "DNSTemporaryError", 1, status="4.4.3"),
    Case("xloop.hostile.test", "DNSTemporaryError", 3, frozenset({W.HOST_UNUSABLE})),
    # MX -> localhost.: 127.0.0.1 and ::1 are dropped (unsafe): nothing left, permanent.
    Case(
        "lh.hostile.test",
        "NoUsableTargetsError",
        3,
        frozenset({W.UNSAFE_ADDRESS, W.HOST_UNUSABLE}),
        status="5.4.4",
    ),
    # MX -> 127.0.0.1 written as a name: not a host name, ignored, no address query.
    Case("loip.hostile.test", "NoUsableTargetsError", 1, frozenset({W.MX_IS_ADDRESS})),
    # The domain is its own exchange: legitimate.
    Case("self.hostile.test", "selection", 3, targets=("192.0.2.77",)),
    # Internal networks: used by default (private deployments deliver there) ...
    Case(
        "internal.hostile.test",
        "selection",
        5,
        targets=("fd00::1", "10.1.2.3", "192.168.1.1"),
    ),
    # ... and blocked once the policy lists them (DNS-driven SSRF, docs/security.md).
    Case(
        "internal.hostile.test",
        "NoUsableTargetsError",
        5,
        frozenset({W.UNSAFE_ADDRESS, W.HOST_UNUSABLE}),
        policy=INTERNAL,
        status="5.4.4",
    ),
    # A wildcard owner answers for any name below it.
    Case("anything.wild.hostile.test", "selection", 3, targets=("192.0.2.88",)),
    # An exchange that is a wildcard name: not a host name, ignored.
    Case("wildmx.hostile.test", "NoUsableTargetsError", 1, frozenset({W.INVALID_EXCHANGE})),
]


def ids(case: Case) -> str:
    return case.domain.split(".")[0] + ("-blocked" if case.policy else "")


class StubCounting:
    """mxselect.stub.StubResolver asking the harness's Unbound, counting the queries."""

    def __init__(self, port: int) -> None:
        from mxselect.stub import StubResolver

        self.stub = StubResolver([("127.0.0.1", port)], timeout=2.0, lifetime=5.0)
        self.queries: list[mxselect.Query] = []

    def resolve(self, query: mxselect.Query) -> mxselect.Answer:
        self.queries.append(query)
        return self.stub.resolve(query)

    async def aresolve(self, query: mxselect.Query) -> mxselect.Answer:
        self.queries.append(query)
        return await self.stub.aresolve(query)


@pytest.mark.parametrize("adapter", ["dnspython", "stub"])
@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_hostile_zone(
    case: Case,
    api: str,
    adapter: str,
    unbound_resolver: dns.resolver.Resolver,
    async_unbound_resolver: dns.asyncresolver.Resolver,
) -> None:
    """Exact query count, classification, warnings; bounded memory; time printed. Through
    the dnspython adapter and through mxselect's stub resolver (the same counts: Unbound
    chases the chains itself, so the stub's ALIAS answers never occur here)."""
    counting: Counting | StubCounting
    if adapter == "stub":
        counting = StubCounting(unbound_resolver.port)
    else:
        counting = Counting(unbound_resolver, async_unbound_resolver)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        if api == "sync":
            result: Selection | MXSelectError = mxselect.select_targets(
                case.domain, resolver=counting, rng=random.Random(3), policy=case.policy
            )
        else:

            class OnlyAsync:
                aresolve = counting.aresolve

            result = asyncio.run(
                mxselect.aselect_targets(
                    case.domain, resolver=OnlyAsync(), rng=random.Random(3), policy=case.policy
                )
            )
    except MXSelectError as exc:
        result = exc
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"\n{case.domain} [{adapter} {api}]: {type(result).__name__}, "
        f"{len(counting.queries)} queries, {elapsed * 1000:.1f} ms, peak {peak / 1024:.0f} KiB"
    )
    assert len(counting.queries) == case.queries, [str(q) for q in counting.queries]
    assert peak < MEMORY_BOUND
    codes = {w.code for w in result.warnings}
    assert codes == case.warnings, result.warnings
    if case.outcome == "selection":
        assert isinstance(result, Selection), result
        if case.targets is not None:
            assert tuple(str(a) for a in result.addresses) == case.targets
        assert 1 <= len(result) <= 5
        return
    assert type(result).__name__ == case.outcome, result
    if case.status is not None:
        assert result.status == case.status


@pytest.mark.parametrize(
    ("domain", "queries", "reason"),
    [
        ("chain.hostile.test", 11, "CNAME chain longer than 10 links"),
        ("xchain.hostile.test", 1 + 2 * 11, "CNAME chain longer than 10 links"),
        ("dloop.hostile.test", 2, "CNAME loop"),
        ("xloop.hostile.test", 1 + 2 * 2, "CNAME loop"),
    ],
)
def test_hostile_chains_followed_by_mxselect(domain: str, queries: int, reason: str) -> None:
    """A resolver that leaves CNAMEs to mxselect (Answer.alias): the same zone, mxselect
    follows at most cname_limit (10) links per lookup and stops at a loop -- temporary
    (RFC 1034 §3.6.2), with an exact number of queries."""
    from harness.dnsenv import hostile_zone_text

    from mxselect.testing import FakeResolver

    fake = FakeResolver.from_zone(hostile_zone_text())
    fake.follow_cnames = False
    with pytest.raises(mxselect.DNSTemporaryError) as info:
        mxselect.select_targets(domain, resolver=fake)
    assert reason in info.value.reason
    assert len(fake.queries) == queries, [str(q) for q in fake.queries]


@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize(
    ("domain", "queries", "reason"),
    [
        # Knot puts 5 links of an in-zone chain in one reply, without the SOA: each reply is
        # an ALIAS (documented difference (1) of mxselect._wire) and mxselect goes on.
        ("chain.hostile.test", 3, "CNAME chain longer than 10 links"),
        ("xchain.hostile.test", 1 + 2 * 3, "CNAME chain longer than 10 links"),
        # A loop inside one reply: more than 15 links (difference (2)): ALIAS, then mxselect
        # sees the loop in the aliases.
        ("dloop.hostile.test", 1, "CNAME loop"),
        ("xloop.hostile.test", 1 + 2 * 1, "CNAME loop"),
    ],
)
def test_hostile_chains_through_the_stub_asking_knot(
    domain: str, queries: int, reason: str, api: str, dns_env: DnsEnv
) -> None:
    """The stub resolver asking the authoritative Knot directly (no recursive resolver to
    chase the chains): the ALIAS answers leave the chains to mxselect, which ends each one
    with its own limit or at the loop -- temporary (RFC 1034 §3.6.2), with the stub's exact
    number of queries."""
    counting = StubCounting(dns_env.auth_port)

    def select() -> Selection:
        if api == "sync":
            return mxselect.select_targets(domain, resolver=counting, rng=random.Random(3))
        return asyncio.run(
            mxselect.aselect_targets(domain, resolver=counting, rng=random.Random(3))
        )

    with pytest.raises(mxselect.DNSTemporaryError) as info:
        select()
    assert reason in info.value.reason
    assert len(counting.queries) == queries, [str(q) for q in counting.queries]
