"""End to end: the policy against Knot + Unbound (sync and async): family balance under the
limit, self-pruning by address, MX -> loopback, MX written as an IP address, 1,000 MX records."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import dns.asyncresolver
import dns.resolver
import pytest

import mxselect
from mxselect import Families, Policy, Query, Selection, WarningCode
from mxselect.dnspython import AsyncDnspythonResolver, DnspythonResolver

pytestmark = pytest.mark.e2e


class Counting:
    def __init__(self, sync: dns.resolver.Resolver, aio: dns.asyncresolver.Resolver) -> None:
        self.sync = DnspythonResolver(sync)
        self.aio = AsyncDnspythonResolver(aio)
        self.queries: list[Query] = []

    def resolve(self, query: Query) -> mxselect.Answer:
        self.queries.append(query)
        return self.sync.resolve(query)

    async def aresolve(self, query: Query) -> mxselect.Answer:
        self.queries.append(query)
        return await self.aio.aresolve(query)


Run = Callable[..., Selection]


@pytest.fixture(params=["sync", "async"])
def run(
    request: pytest.FixtureRequest,
    unbound_resolver: dns.resolver.Resolver,
    async_unbound_resolver: dns.asyncresolver.Resolver,
) -> tuple[Run, Counting]:
    counting = Counting(unbound_resolver, async_unbound_resolver)
    if request.param == "sync":

        def sync(domain: str, policy: Policy | None = None) -> Selection:
            return mxselect.select_targets(
                domain, resolver=counting, rng=random.Random(8), policy=policy
            )

        return sync, counting

    class OnlyAsync:
        aresolve = counting.aresolve

    def asynchronous(domain: str, policy: Policy | None = None) -> Selection:
        return asyncio.run(
            mxselect.aselect_targets(
                domain, resolver=OnlyAsync(), rng=random.Random(8), policy=policy
            )
        )

    return asynchronous, counting


def test_family_balance_under_the_limit(run: tuple[Run, Counting]) -> None:
    """example.test with max_addresses=2: one IPv6 and one IPv4 address of the best level."""
    select, _ = run
    selection = select("example.test", Policy(max_addresses=2))
    assert [t.family for t in selection] == [6, 4]
    assert {t.preference for t in selection} == {10}
    ipv4 = select("example.test", Policy(families=Families.IPV4_ONLY, max_addresses=None))
    assert {t.family for t in ipv4} == {4}


def test_disabled_family_not_queried_on_the_wire(run: tuple[Run, Counting]) -> None:
    """ipv6-only: no A query reaches the resolver."""
    select, counting = run
    select("example.test", Policy(families=Families.IPV6_ONLY))
    assert {q.rtype.value for q in counting.queries} == {"MX", "AAAA"}


def test_self_pruning_by_address(run: tuple[Run, Counting]) -> None:
    """This host is 192.0.2.20 (backup.example.test, preference 20): only mx1 and mx2 are
    left; as 192.0.2.11 (mx1, preference 10) it is the best MX: a loop."""
    select, _ = run
    selection = select("example.test", Policy(local_addresses=["192.0.2.20"], max_addresses=None))
    assert sorted(h.name for h in selection.hosts) == ["mx1.example.test", "mx2.example.test"]
    with pytest.raises(mxselect.MailLoopError, match=r"192\.0\.2\.11"):
        select("example.test", Policy(local_addresses=["192.0.2.11"]))


def test_mx_pointing_at_loopback(run: tuple[Run, Counting]) -> None:
    """lo-mx: 127.0.0.1 and ::1 are dropped -> 550 5.4.4 saying so; lo-mixed keeps its public
    address; with unsafe_networks=() loopback is allowed (tests, private deployments)."""
    select, _ = run
    with pytest.raises(mxselect.NoUsableTargetsError, match="unsafe networks"):
        select("lo-mx.example.test")
    mixed = select("lo-mixed.example.test")
    assert [str(a) for a in mixed.addresses] == ["192.0.2.40"]
    assert WarningCode.UNSAFE_ADDRESS in [w.code for w in mixed.warnings]
    allowed = select("lo-mx.example.test", Policy(unsafe_networks=()))
    assert [str(a) for a in allowed.addresses] == ["::1", "127.0.0.1"]


def test_mx_written_as_an_ip_address(run: tuple[Run, Counting]) -> None:
    """ipmx: MX 10 192.0.2.5. -> unusable by default, with an explanation; allow_mx_to_ip
    uses the address without an address query."""
    select, counting = run
    with pytest.raises(mxselect.NoUsableTargetsError, match="is an IP address"):
        select("ipmx.example.test")
    counting.queries.clear()
    selection = select("ipmx.example.test", Policy(allow_mx_to_ip=True))
    assert [str(a) for a in selection.addresses] == ["192.0.2.5"]
    assert [str(q) for q in counting.queries] == ["ipmx.example.test. MX"]


def test_thousand_mx_records_cost_bounded_queries(run: tuple[Run, Counting]) -> None:
    """hugemx.test (1,000 MX over TCP): exactly 1 + 2 x 20 queries, the best preference first,
    done in well under the resolver lifetime; with max_mx_hosts=5, 1 + 10 queries."""
    select, counting = run
    started = time.perf_counter()
    selection = select("hugemx.test")
    elapsed = time.perf_counter() - started
    assert len(counting.queries) == 1 + 2 * 20
    assert {h.preference for h in selection.hosts} == {0}
    assert len(selection) == 5
    assert selection.warnings[0].code is WarningCode.MX_HOSTS_CAPPED
    assert elapsed < 5.0
    counting.queries.clear()
    select("hugemx.test", Policy(max_mx_hosts=5))
    assert len(counting.queries) == 1 + 2 * 5
