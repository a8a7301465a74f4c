"""A DNSSEC status on every answer (issue 16, first slice): ``Answer.security``, the trust rule
for the AD bit (RFC 7672 §2.1.1 via RFC 4035 §4.9.3), ``Selection.mx_security``, the fake's
signed zones and bogus faults, the cache keeping the status, and the dnspython adapter against
a validating Unbound serving a signed zone."""

from __future__ import annotations

import asyncio
import random

import dns.asyncresolver
import dns.flags
import dns.resolver
import pytest

import mxselect
from mxselect import Answer, DNSTemporaryError, RRType, Security
from mxselect.cache import CachingResolver
from mxselect.dnspython import AsyncDnspythonResolver, DnspythonResolver
from mxselect.testing import FakeResolver, Fault

ZONES = """
$TTL 300
$ORIGIN signed.test.
@ SOA ns hm 1 2 3 4 5
@ MX 10 mx
mx A 192.0.2.1
nomx A 192.0.2.3
out CNAME plain.test.
$ORIGIN plain.test.
@ SOA ns hm 1 2 3 4 5
@ MX 10 mx.signed.test.
$ORIGIN other.test.
@ SOA ns hm 1 2 3 4 5
@ MX 10 mx.signed.test.
"""


def fake() -> FakeResolver:
    resolver = FakeResolver.from_zone(ZONES)
    resolver.set_security("signed.test", Security.SECURE)
    resolver.set_security("plain.test", "insecure")
    return resolver


def mx_security(domain: str, resolver: object) -> Security:
    return mxselect.select_targets(domain, resolver=resolver, rng=random.Random(1)).mx_security


def test_R7672_2_1_1_a_status_is_unknown_unless_reported() -> None:
    assert Answer.from_mx([(10, "mx.example.")]).security is Security.UNKNOWN
    assert mx_security("signed.test", FakeResolver.from_zone(ZONES)) is Security.UNKNOWN
    assert mxselect.select_targets("[192.0.2.1]").mx_security is Security.UNKNOWN


def test_R7672_2_2_1_a_mx_rrset_security_is_reported() -> None:
    resolver = fake()
    assert mx_security("signed.test", resolver) is Security.SECURE
    assert mx_security("plain.test", resolver) is Security.INSECURE
    assert mx_security("other.test", resolver) is Security.UNKNOWN
    # A secure NODATA is a fact (RFC 7672 §2.1.1): the implicit MX, and its MX status.
    assert mx_security("nomx.signed.test", resolver) is Security.SECURE


@pytest.mark.parametrize("follow", [True, False])
def test_R7672_2_1_3_a_cname_into_an_unsigned_zone_is_insecure(follow: bool) -> None:
    """out.signed.test (secure) is a CNAME of plain.test (insecure): the MX RRset "and any
    CNAME leading to it" is only as secure as its weakest part -- whether the resolver
    follows the CNAME (one answer) or mxselect does (two answers)."""
    resolver = fake()
    resolver.follow_cnames = follow
    selection = mxselect.select_targets("out.signed.test", resolver=resolver)
    assert selection.canonical_domain == "plain.test"
    assert selection.mx_security is Security.INSECURE


def test_R7672_2_1_1_b_bogus_is_a_temporary_failure_with_the_reason() -> None:
    resolver = fake()
    resolver.fail("signed.test", RRType.MX, Fault.BOGUS)
    with pytest.raises(DNSTemporaryError, match="EDE 6: DNSSEC Bogus"):
        mxselect.select_targets("signed.test", resolver=resolver)
    with pytest.raises(DNSTemporaryError, match="EDE 6: DNSSEC Bogus"):
        asyncio.run(mxselect.aselect_targets("signed.test", resolver=resolver))


def test_cache_keeps_the_status_with_the_entry() -> None:
    cache = CachingResolver(fake())
    first = mx_security("signed.test", cache)
    second = mx_security("signed.test", cache)
    assert first is second is Security.SECURE
    assert cache.stats.hits >= 1


# -- the trust rule of the dnspython adapter (no query is sent) --------------------------------


def resolver_at(*nameservers: str) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = list(nameservers)
    return resolver


def test_D13_R4035_4_9_3_a_ad_trusted_only_from_loopback_by_default() -> None:
    local = DnspythonResolver(resolver_at("127.0.0.1", "::1"))
    assert local.trust_ad
    assert DnspythonResolver(resolver_at("127.0.0.2")).trust_ad  # all of 127.0.0.0/8
    assert local.resolver.flags == dns.flags.RD | dns.flags.AD  # asks for AD (RFC 6840 §5.7)
    remote = DnspythonResolver(resolver_at("192.0.2.53"))
    assert not remote.trust_ad
    assert remote.resolver.flags is None  # nothing changed
    assert not DnspythonResolver(resolver_at("127.0.0.1", "192.0.2.53")).trust_ad
    marked = DnspythonResolver(resolver_at("192.0.2.53"), trust_ad=True)
    assert marked.trust_ad
    mine = resolver_at("127.0.0.1")
    mine.flags = dns.flags.RD
    assert DnspythonResolver(mine).resolver.flags == dns.flags.RD  # the caller's flags kept
    assert not DnspythonResolver(resolver_at("127.0.0.1"), trust_ad=False).trust_ad
    asynchronous = dns.asyncresolver.Resolver(configure=False)
    asynchronous.nameservers = ["127.0.0.1"]
    assert AsyncDnspythonResolver(asynchronous).trust_ad


# -- against the harness: Knot serving signed dnssec.test, a validating Unbound --------------


@pytest.mark.e2e
@pytest.mark.parametrize("api", ["sync", "async"])
def test_R7672_2_1_1_c_validating_resolver_on_loopback(
    api: str,
    unbound_resolver: dns.resolver.Resolver,
    async_unbound_resolver: dns.asyncresolver.Resolver,
) -> None:
    """dnssec.test is signed and its DS is a trust anchor: SECURE; example.test is outside
    every trust anchor: INSECURE; bogus.test (signatures broken): SERVFAIL, temporary; the
    same resolver not trusted: UNKNOWN."""

    def status(domain: str, trust: bool | None = None) -> Security:
        if api == "sync":
            adapter: object = DnspythonResolver(unbound_resolver, trust_ad=trust)
            return mxselect.select_targets(domain, resolver=adapter).mx_security
        aio = AsyncDnspythonResolver(async_unbound_resolver, trust_ad=trust)
        return asyncio.run(mxselect.aselect_targets(domain, resolver=aio)).mx_security

    assert status("dnssec.test") is Security.SECURE
    assert status("example.test") is Security.INSECURE
    with pytest.raises(DNSTemporaryError, match="SERVFAIL"):
        status("bogus.test")
    unbound_resolver.flags = None
    async_unbound_resolver.flags = None
    assert status("dnssec.test", trust=False) is Security.UNKNOWN


def test_stub_resolver_trust_rule() -> None:
    from mxselect.stub import StubResolver

    assert StubResolver(["127.0.0.1", ("::1", 5353)]).trust_ad
    assert not StubResolver(["192.0.2.53"]).trust_ad
    assert not StubResolver(["127.0.0.1", "192.0.2.53"]).trust_ad
    assert StubResolver(["192.0.2.53"], trust_ad=True).trust_ad


@pytest.mark.e2e
@pytest.mark.parametrize("api", ["sync", "async", "batch"])
def test_R7672_2_1_1_c_stub_resolver_reports_the_ad_bit(
    api: str, unbound_resolver: dns.resolver.Resolver
) -> None:
    """StubResolver (RD|AD queries, the AD bit of the reply) through the validating Unbound:
    the same statuses as the dnspython adapter; an untrusted stub reports UNKNOWN."""
    from mxselect import Query
    from mxselect.stub import StubResolver

    def status(domain: str, trust: bool | None = None) -> Security:
        stub = StubResolver([("127.0.0.1", unbound_resolver.port)], trust_ad=trust)
        if api == "sync":
            return mxselect.select_targets(domain, resolver=stub).mx_security
        if api == "async":
            return asyncio.run(mxselect.aselect_targets(domain, resolver=stub)).mx_security

        async def batch() -> Security:
            (answer,) = await stub.aresolve_batch([Query(domain + ".", RRType.MX)])
            return answer.security

        return asyncio.run(batch())

    assert status("dnssec.test") is Security.SECURE
    assert status("example.test") is Security.INSECURE
    assert status("dnssec.test", trust=False) is Security.UNKNOWN
