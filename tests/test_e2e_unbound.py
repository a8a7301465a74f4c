"""End to end: every adapter -- dnspython (sync and async), aiodns (c-ares) and mxselect's own
stub resolver (sync and async) -- against Knot + a validating Unbound.

Zones: tests/harness/zones (see each file's header). Every outcome of RFC 5321 §5.1 / RFC 7505
is checked against real DNS software, through both APIs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import threading
from collections.abc import Callable

import dns.asyncresolver
import dns.resolver
import pytest

import mxselect
from mxselect import (
    Answer,
    DNSTemporaryError,
    NoSuchDomainError,
    NoUsableTargetsError,
    NullMXError,
    Query,
    RRType,
    Selection,
    WarningCode,
)
from mxselect.dnspython import AsyncDnspythonResolver, DnspythonResolver

pytestmark = pytest.mark.e2e

Select = Callable[[str], Selection]

#: Every address of every host: these tests check the RFC outcomes, not the default limits
#: (which have their own tests below).
ALL = mxselect.Policy(max_addresses=None, max_mx_hosts=100)


class Recording:
    """Wraps the real adapters and records what was asked (both protocols)."""

    def __init__(self, sync: dns.resolver.Resolver, aio: dns.asyncresolver.Resolver) -> None:
        self.sync = DnspythonResolver(sync)
        self.aio = AsyncDnspythonResolver(aio)
        self.queries: list[Query] = []
        self.lock = threading.Lock()

    def resolve(self, query: Query) -> Answer:
        with self.lock:
            self.queries.append(query)
        return self.sync.resolve(query)

    async def aresolve(self, query: Query) -> Answer:
        self.queries.append(query)
        return await self.aio.aresolve(query)


@pytest.fixture
def recording(
    unbound_resolver: dns.resolver.Resolver, async_unbound_resolver: dns.asyncresolver.Resolver
) -> Recording:
    return Recording(unbound_resolver, async_unbound_resolver)


ADAPTERS = ["sync", "async", "aiodns", "stub-sync", "stub-async"]


def _stub_select(
    unbound_resolver: dns.resolver.Resolver, api: str, record: list[Query] | None = None
) -> Select:
    """select(domain) through mxselect.stub.StubResolver asking the harness's Unbound."""
    from mxselect.stub import StubResolver

    stub = StubResolver([("127.0.0.1", unbound_resolver.port)], timeout=2.0, lifetime=4.0)

    class Recorded:
        def resolve(self, query: Query) -> Answer:
            if record is not None:
                record.append(query)
            return stub.resolve(query)

        async def aresolve(self, query: Query) -> Answer:
            if record is not None:
                record.append(query)
            return await stub.aresolve(query)

    resolver = Recorded() if record is not None else stub
    if api == "stub-sync":
        return lambda domain: mxselect.select_targets(
            domain, resolver=resolver, rng=random.Random(5), policy=ALL
        )
    return lambda domain: asyncio.run(
        mxselect.aselect_targets(domain, resolver=resolver, rng=random.Random(5), policy=ALL)
    )


def _aiodns_select(request: pytest.FixtureRequest, record: list[Query] | None = None) -> Select:
    """select(domain) through a fresh AiodnsResolver (closed after each selection)."""
    make = request.getfixturevalue("aiodns_factory")

    async def run(domain: str) -> Selection:
        async with make() as adapter:

            class Recorded:
                async def aresolve(self, query: Query) -> Answer:
                    if record is not None:
                        record.append(query)
                    answer: Answer = await adapter.aresolve(query)
                    return answer

            return await mxselect.aselect_targets(
                domain, resolver=Recorded(), rng=random.Random(5), policy=ALL
            )

    return lambda domain: asyncio.run(run(domain))


@pytest.fixture(params=ADAPTERS)
def select(
    request: pytest.FixtureRequest,
    unbound_resolver: dns.resolver.Resolver,
    async_unbound_resolver: dns.asyncresolver.Resolver,
) -> Select:
    """select(domain) through the dnspython resolver given as is, sync or async, or through
    the aiodns adapter or the stub resolver."""
    if request.param == "aiodns":
        return _aiodns_select(request)
    if request.param.startswith("stub"):
        return _stub_select(unbound_resolver, request.param)
    if request.param == "sync":
        return lambda domain: mxselect.select_targets(
            domain, resolver=unbound_resolver, rng=random.Random(5), policy=ALL
        )
    return lambda domain: asyncio.run(
        mxselect.aselect_targets(
            domain, resolver=async_unbound_resolver, rng=random.Random(5), policy=ALL
        )
    )


@pytest.fixture(params=ADAPTERS)
def select_recorded(
    request: pytest.FixtureRequest, recording: Recording, unbound_resolver: dns.resolver.Resolver
) -> Select:
    if request.param == "aiodns":
        return _aiodns_select(request, recording.queries)
    if request.param.startswith("stub"):
        return _stub_select(unbound_resolver, request.param, recording.queries)
    if request.param == "sync":
        return lambda domain: mxselect.select_targets(
            domain, resolver=recording, rng=random.Random(5), policy=ALL
        )

    async def run(domain: str) -> Selection:
        # A resolver with only aresolve for the async driver.
        class OnlyAsync:
            aresolve = recording.aresolve

        return await mxselect.aselect_targets(
            domain, resolver=OnlyAsync(), rng=random.Random(5), policy=ALL
        )

    return lambda domain: asyncio.run(run(domain))


def names(selection: Selection) -> list[str]:
    return [h.name for h in selection.hosts]


def test_multi_mx_with_equal_preferences(select: Select) -> None:
    """example.test: mx1/mx2 at 10 (shuffled), backup at 20, 6 dual-stack targets."""
    selection = select("example.test")
    assert sorted(names(selection)[:2]) == ["mx1.example.test", "mx2.example.test"]
    assert names(selection)[2] == "backup.example.test"
    assert [t.preference for t in selection] == [10, 10, 10, 10, 20, 20]
    assert selection.hosts[2].addresses == (
        ipaddress.ip_address("2001:db8::20"),
        ipaddress.ip_address("192.0.2.20"),
    )
    assert selection.ttl is not None
    assert 0 < selection.ttl <= 300
    assert (selection.implicit, selection.warnings) == (False, ())


def test_equal_preferences_shuffled_through_real_dns(
    unbound_resolver: dns.resolver.Resolver,
) -> None:
    """Over 40 seeds both orders of the two preference-10 hosts occur."""
    firsts = {
        mxselect.select_targets("example.test", resolver=unbound_resolver, rng=random.Random(seed))
        .hosts[0]
        .name
        for seed in range(40)
    }
    assert firsts == {"mx1.example.test", "mx2.example.test"}


def test_R5321_5_1_c_cname_domain(select: Select) -> None:
    """alias.example.test CNAME example.test: its MX used, the domain not rewritten."""
    selection = select("alias.example.test")
    assert (selection.domain, selection.canonical_domain) == (
        "alias.example.test",
        "example.test",
    )
    assert len(selection.hosts) == 3


def test_R5321_5_1_c_cname_domain_without_mx_is_implicit_at_target(select: Select) -> None:
    """alias-nomx CNAME v4only (no MX): implicit MX at v4only; its AAAA is NODATA."""
    selection = select("alias-nomx.example.test")
    assert (selection.implicit, names(selection)) == (True, ["v4only.example.test"])
    assert [str(a) for a in selection.addresses] == ["192.0.2.30"]


def test_R6604_3_a_cname_to_nxdomain(select: Select) -> None:
    """alias-nx CNAME a missing name: NoSuchDomainError 5.1.2."""
    with pytest.raises(NoSuchDomainError) as info:
        select("alias-nx.example.test")
    assert info.value.status == "5.1.2"


def test_R1034_3_6_2_a_cname_loop_is_temporary(select: Select) -> None:
    """loop1 <-> loop2: Unbound answers SERVFAIL; a temporary error, never a bounce."""
    with pytest.raises(DNSTemporaryError, match="SERVFAIL"):
        select("loop1.example.test")


def test_R5321_5_1_d_nxdomain(select_recorded: Select, recording: Recording) -> None:
    """nx.example.test and nope.test: NXDOMAIN, and no address query follows."""
    for domain in ("nx.example.test", "nope.test"):
        recording.queries.clear()
        with pytest.raises(NoSuchDomainError):
            select_recorded(domain)
        assert recording.queries == [Query(domain + ".", RRType.MX)]


def test_R7505_3_a_null_mx(select_recorded: Select, recording: Recording) -> None:
    """nullmx.test (0 ., plus an A record): NullMXError and no further query."""
    with pytest.raises(NullMXError) as info:
        select_recorded("nullmx.test")
    assert (info.value.reply_code, info.value.status) == (556, "5.1.10")
    assert recording.queries == [Query("nullmx.test.", RRType.MX)]


def test_R7505_3_c_null_mx_mixed(select: Select) -> None:
    """dualnull.test (0 . and 10 mx): the real MX is used, with a warning."""
    selection = select("dualnull.test")
    assert names(selection) == ["mx.dualnull.test"]
    assert [w.code for w in selection.warnings] == [WarningCode.NULL_MX_MIXED]


def test_R5321_5_1_f_implicit_mx(select: Select) -> None:
    """nomx.test (A + AAAA, no MX): the implicit MX with both addresses."""
    selection = select("nomx.test")
    assert (selection.implicit, names(selection)) == (True, ["nomx.test"])
    assert [str(a) for a in selection.addresses] == ["2001:db8::40", "192.0.2.40"]


def test_R2181_10_3_b_aaaa_only_implicit_host(select: Select) -> None:
    """v6only.example.test: A is NODATA, AAAA answers: usable over IPv6 only."""
    selection = select("v6only.example.test")
    assert [str(a) for a in selection.addresses] == ["2001:db8::31"]


def test_R5321_5_1_j_cname_exchanges_inside_and_outside_the_zone(select: Select) -> None:
    """cname.test: mail CNAME real (same zone), ext CNAME mx1.example.test (other zone)."""
    selection = select("cname.test")
    assert [(h.name, h.canonical_name) for h in selection.hosts] == [
        ("mail.cname.test", "real.cname.test"),
        ("ext.cname.test", "mx1.example.test"),
    ]
    assert [w.code for w in selection.warnings] == [WarningCode.EXCHANGE_IS_ALIAS] * 2
    assert [str(a) for a in selection.hosts[1].addresses] == ["2001:db8::11", "192.0.2.11"]


def test_R1123_6_1_3_2_a_truncated_answer_retried_over_tcp(select: Select) -> None:
    """bigmx.test: 60 MX records, truncated over UDP; all 60 arrive (TCP retry)."""
    selection = select("bigmx.test")
    assert len(selection.hosts) == 60
    assert [h.preference for h in selection.hosts] == list(range(1, 61))


def test_R5321_5_1_i_host_nxdomain_skipped(select: Select) -> None:
    """partial.example.test: the second exchange does not exist; the first is used."""
    selection = select("partial.example.test")
    assert names(selection) == ["mx1.example.test"]
    assert [w.code for w in selection.warnings] == [WarningCode.HOST_UNUSABLE]


def test_R5321_5_1_g_no_usable_host(select: Select) -> None:
    """noaddr.example.test: the only exchange has no address: 550 5.4.4."""
    with pytest.raises(NoUsableTargetsError) as info:
        select("noaddr.example.test")
    assert info.value.status == "5.4.4"


def test_R7672_2_1_2_b_servfail_host_skipped(select: Select) -> None:
    """deadmx.example.test: the backup exchange SERVFAILs; the primary is used."""
    selection = select("deadmx.example.test")
    assert names(selection) == ["mx1.example.test"]
    assert "SERVFAIL" in selection.warnings[0].message


def test_N3_only_exchange_servfail_is_temporary(select: Select) -> None:
    """onlydead.example.test: the only exchange SERVFAILs: DNSTemporaryError 4.4.3."""
    with pytest.raises(DNSTemporaryError) as info:
        select("onlydead.example.test")
    assert info.value.status == "4.4.3"
    assert "host.dead.test" in str(info.value)


def test_R5321_5_1_e_dead_upstream_is_temporary(select: Select) -> None:
    """A domain under a dead nameserver: SERVFAIL -> DNSTemporaryError naming the rcode."""
    with pytest.raises(DNSTemporaryError) as info:
        select("mail.dead.test")
    assert str(info.value).startswith("MX lookup for mail.dead.test: SERVFAIL from 127.0.0.1@")


def test_R7672_2_1_2_a_dnssec_bogus_is_temporary(select: Select) -> None:
    """bogus.test (signatures broken after signing): Unbound SERVFAIL -> temporary."""
    with pytest.raises(DNSTemporaryError):
        select("bogus.test")
    assert names(select("dnssec.test")) == ["mx1.dnssec.test"]


def test_R3463_3_5_b_unreachable_resolver_is_4_4_3() -> None:
    """Nothing listening: a timeout, a temporary 4.4.3 within the lifetime."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = 9
    resolver.lifetime = 0.3
    with pytest.raises(DNSTemporaryError, match="timeout") as info:
        mxselect.select_targets("example.test", resolver=resolver)
    assert info.value.status == "4.4.3"


def test_address_batch_is_one_round(select_recorded: Select, recording: Recording) -> None:
    """After the MX query, AAAA and A of all three exchanges: 7 queries in all."""
    select_recorded("example.test")
    assert recording.queries[0] == Query("example.test.", RRType.MX)
    assert sorted(str(q) for q in recording.queries[1:]) == sorted(
        f"{h}.example.test. {t}" for h in ("mx1", "mx2", "backup") for t in ("A", "AAAA")
    )


def test_readme_stub_resolver_example(dns_env: object) -> None:
    """The ~20-line custom resolver of docs/howto/resolver.md works against Unbound."""
    from examples.stub_resolver import StubResolver

    port = dns_env.resolver_port  # type: ignore[attr-defined]
    resolver = StubResolver("127.0.0.1", port)
    assert len(mxselect.select_targets("example.test", resolver=resolver, policy=ALL)) == 6
    assert names(mxselect.select_targets("alias-nomx.example.test", resolver=resolver)) == [
        "v4only.example.test"
    ]
    with pytest.raises(NoSuchDomainError):
        mxselect.select_targets("nope.test", resolver=resolver)
    with pytest.raises(NullMXError):
        mxselect.select_targets("nullmx.test", resolver=resolver)
    with pytest.raises(DNSTemporaryError):
        mxselect.select_targets("mail.dead.test", resolver=resolver)
    assert len(mxselect.select_targets("bigmx.test", resolver=resolver, policy=ALL).hosts) == 60


def test_default_policy_limits_on_real_dns(recording: Recording) -> None:
    """Defaults: 5 addresses, both families kept within the limit; bigmx.test's 60 MX hosts
    cost at most 2 x 20 address queries (max_mx_hosts)."""
    selection = mxselect.select_targets("example.test", resolver=recording, rng=random.Random(1))
    assert len(selection) == 5
    assert {t.family for t in selection} == {4, 6}
    recording.queries.clear()
    big = mxselect.select_targets("bigmx.test", resolver=recording, rng=random.Random(1))
    assert [h.name for h in big.hosts] == [f"mail-exchanger-0{i}.bigmx.test" for i in range(1, 6)]
    assert len(recording.queries) == 1 + 2 * 20
    assert WarningCode.MX_HOSTS_CAPPED in [w.code for w in big.warnings]
