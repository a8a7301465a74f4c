"""DANE selections end to end (scenario row P5 of shared/secure-delivery.md §7): Knot serves
the signed ``dnssec.test`` / ``bogus.test`` zones with TLSA records, the validating Unbound
answers, and ``select_targets`` / ``aselect_targets`` run through the stub and the dnspython
adapters (every adapter that can report DNSSEC; aiodns cannot: tests/test_dane_adapters.py).

Only loopback servers started by the tests are asked.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from harness.dnsenv import TLSA_DATA, DnsEnv

import mxselect
from mxselect import (
    Dane,
    DaneRequiredError,
    DNSTemporaryError,
    Policy,
    Posture,
    SecureDeliveryError,
    Security,
    Selection,
    TLSARecord,
)

pytestmark = pytest.mark.e2e

Select = Callable[[str, Policy], Selection]
APIS = ["stub", "stub-async", "dnspython", "dnspython-async"]


def _selector(api: str, port: int) -> Select:
    """``select(domain, policy)`` through one API and adapter, asking only Unbound."""
    if api.startswith("stub"):
        from mxselect.stub import StubResolver

        stub = StubResolver([("127.0.0.1", port)], timeout=2.0, lifetime=5.0)
        if api == "stub":
            return lambda d, p: mxselect.select_targets(
                d, resolver=stub, policy=p, rng=random.Random(3)
            )
        return lambda d, p: asyncio.run(
            mxselect.aselect_targets(d, resolver=stub, policy=p, rng=random.Random(3))
        )
    from harness.resolvers import make_dnspython_resolver

    from mxselect.dnspython import AsyncDnspythonResolver, DnspythonResolver

    if api == "dnspython":
        sync = make_dnspython_resolver(port, lifetime=5.0, timeout=2.0)
        sync.use_edns(0, 0, 1232)  # Unbound sends extended errors only to EDNS queries
        adapter = DnspythonResolver(sync)
        return lambda d, p: mxselect.select_targets(
            d, resolver=adapter, policy=p, rng=random.Random(3)
        )
    aio = make_dnspython_resolver(port, asynchronous=True, lifetime=5.0, timeout=2.0)
    aio.use_edns(0, 0, 1232)
    aadapter = AsyncDnspythonResolver(aio)
    return lambda d, p: asyncio.run(
        mxselect.aselect_targets(d, resolver=aadapter, policy=p, rng=random.Random(3))
    )


@pytest.fixture(params=APIS)
def select(request: pytest.FixtureRequest, dns_env: DnsEnv) -> Select:
    return _selector(request.param, dns_env.resolver_port)


DANE_ON = Policy(dane=Dane.OPPORTUNISTIC)
MANDATORY = Policy(dane=Dane.MANDATORY)


def record(owner: str) -> TLSARecord:
    usage, selector, mtype, data = TLSA_DATA[owner]
    return TLSARecord(usage, selector, mtype, bytes.fromhex(data))


def test_P5_D1_secure_mx_without_tlsa_is_opportunistic(select: Select) -> None:
    selection = select("dnssec.test", DANE_ON)
    assert selection.mx_security is Security.SECURE
    assert selection.hosts[0].address_security is Security.SECURE
    assert {t.tls.posture for t in selection} == {Posture.OPPORTUNISTIC}
    assert "denial of existence" in selection.hosts[0].tls.rule


def test_P5_D6_bogus_mx_defers(select: Select) -> None:
    with pytest.raises(DNSTemporaryError) as caught:
        select("bogus.test", DANE_ON)
    assert "Bogus" in str(caught.value)


def test_P5_T1_secure_tlsa_gives_dane(select: Select) -> None:
    selection = select("dane.dnssec.test", MANDATORY)
    tls = selection.hosts[0].tls
    assert tls.posture is Posture.DANE
    assert tls.tlsa == (record("_25._tcp.mx.dane.dnssec.test."),)
    assert tls.sni == "mx.dane.dnssec.test"
    assert tls.reference_ids == ("mx.dane.dnssec.test", "dane.dnssec.test")
    assert [str(t.address) for t in selection] == ["2001:db8::71", "192.0.2.71"]


@pytest.mark.parametrize("domain", ["notlsa.dnssec.test", "nodata-tlsa.dnssec.test"])
def test_P5_T3_T4_secure_denial_is_opportunistic_and_mandatory_defers(
    select: Select, domain: str
) -> None:
    assert select(domain, DANE_ON).hosts[0].tls.posture is Posture.OPPORTUNISTIC
    with pytest.raises(DaneRequiredError) as caught:
        select(domain, MANDATORY)
    assert caught.value.status == "4.7.5"


def test_P5_T9_bogus_tlsa_defers_never_cleartext(select: Select) -> None:
    with pytest.raises(SecureDeliveryError) as caught:
        select("dane.bogus.test", DANE_ON)
    assert (caught.value.reply_code, caught.value.status) == (451, "4.7.5")
    assert "Bogus" in str(caught.value)
    # Without DANE the same domain is deliverable: only its TLSA RRset is bogus.
    assert select("dane.bogus.test", Policy()).targets


def test_P5_A4_secure_cname_uses_the_target_as_base_domain(select: Select) -> None:
    tls = select("cname.dnssec.test", DANE_ON).hosts[0].tls
    assert tls.posture is Posture.DANE
    assert tls.tlsa_base_domain == tls.sni == "real.cname.dnssec.test"
    assert tls.tlsa == (record("_25._tcp.real.cname.dnssec.test."),)


def test_P5_A5_original_name_after_a_secure_denial_at_the_target(select: Select) -> None:
    tls = select("fallback.dnssec.test", DANE_ON).hosts[0].tls
    assert tls.posture is Posture.DANE
    assert tls.tlsa_base_domain == "mx.fallback.dnssec.test"


def test_P5_A6_cname_into_an_unsigned_zone(select: Select) -> None:
    selection = select("a6.dnssec.test", DANE_ON)
    host = selection.hosts[0]
    assert host.address_security is Security.INSECURE
    assert host.tls.posture is Posture.DANE
    assert host.tls.tlsa_base_domain == "mx.a6.dnssec.test"
    assert host.tls.tlsa == (record("_25._tcp.mx.a6.dnssec.test."),)


def test_P5_A9_tlsa_via_cname_keeps_the_host_as_base_domain(select: Select) -> None:
    tls = select("shared.dnssec.test", DANE_ON).hosts[0].tls
    assert tls.posture is Posture.DANE
    assert tls.tlsa_base_domain == "mx.shared.dnssec.test"


def test_P5_insecure_delegation(select: Select) -> None:
    selection = select("insecure.dnssec.test", DANE_ON)
    assert selection.mx_security is Security.INSECURE
    assert selection.hosts[0].tls.posture is Posture.OPPORTUNISTIC
    with pytest.raises(DaneRequiredError):
        select("insecure.dnssec.test", MANDATORY)
