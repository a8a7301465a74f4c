"""DANE in the plan (RFC 7672 §2.2): the TLSA batch, the CNAME rules, the TLS requirement of
each host, and the classification of DANE failures -- against FakeResolver zones with a
DNSSEC status (the end-to-end versions run against Knot + Unbound).

Test names carry the scenario IDs of ../shared/secure-delivery.md §7 (D, A, T, P).
"""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mxselect
from mxselect import (
    Answer,
    Dane,
    DaneRequiredError,
    DNSTemporaryError,
    InsecureMX,
    NoSuchDomainError,
    Policy,
    Posture,
    Query,
    RRType,
    SecureDeliveryError,
    Security,
    TLSARecord,
    WarningCode,
)
from mxselect.testing import FakeResolver, Fault

SHA256 = "aa" * 32
SHA512 = "bb" * 64
SOA = "@ SOA ns hostmaster 1 3600 900 604800 60"

#: example.org (signed): two MX hosts; mx1 publishes DANE-EE, mx2 nothing.
ZONE = f"""
$ORIGIN example.org.
$TTL 300
{SOA}
@   MX 10 mx1
@   MX 20 mx2
mx1 A 192.0.2.1
mx1 AAAA 2001:db8::1
mx2 A 192.0.2.2
_25._tcp.mx1 TLSA 3 1 1 {SHA256}
"""

DANE_ON = Policy(dane=Dane.OPPORTUNISTIC)
MANDATORY = Policy(dane=Dane.MANDATORY)


def fake(
    text: str = ZONE,
    signed: tuple[str, ...] = ("example.org",),
    security: Security = Security.INSECURE,
    follow_cnames: bool = True,
) -> FakeResolver:
    resolver = FakeResolver.from_zone(text, signed=signed, security=security)
    resolver.follow_cnames = follow_cnames
    return resolver


def select(
    resolver: FakeResolver, policy: Policy = DANE_ON, domain: str = "example.org"
) -> mxselect.Selection:
    return mxselect.select_targets(domain, resolver=resolver, policy=policy, rng=random.Random(7))


def asked(resolver: FakeResolver, rtype: RRType) -> list[str]:
    return [q.name for q in resolver.queries if q.rtype is rtype]


def tls_of(selection: mxselect.Selection) -> dict[str, mxselect.TlsRequirement]:
    return {h.name: h.tls for h in selection.hosts}


# -- DNSSEC status and the MX RRset -----------------------------------------------------------


def test_D1_secure_mx_hosts_without_tlsa_are_opportunistic() -> None:
    text = ZONE.replace(f"_25._tcp.mx1 TLSA 3 1 1 {SHA256}", "")
    resolver = fake(text)
    selection = select(resolver)
    assert selection.mx_security is Security.SECURE
    assert {h.tls.posture for h in selection.hosts} == {Posture.OPPORTUNISTIC}
    assert all(not t.tls.required for t in selection)
    assert asked(resolver, RRType.TLSA) == [
        "_25._tcp.mx1.example.org.",
        "_25._tcp.mx2.example.org.",
    ]
    assert all(h.address_security is Security.SECURE for h in selection.hosts)


def test_T1_secure_dane_ee_record_requires_authenticated_tls() -> None:
    resolver = fake()
    selection = select(resolver)
    mx1 = tls_of(selection)["mx1.example.org"]
    assert mx1.posture is Posture.DANE
    assert mx1.required
    assert mx1.authenticate == "dane"
    assert mx1.sni == "mx1.example.org" == mx1.tlsa_base_domain
    assert mx1.tlsa == (TLSARecord(3, 1, 1, bytes.fromhex(SHA256)),)
    assert mx1.reference_ids == ("mx1.example.org", "example.org")
    assert "RFC 7672 §2.2" in mx1.rule
    # Every target of the host carries it; mx2 stays opportunistic.
    assert [t.tls.posture for t in selection] == [
        Posture.DANE,
        Posture.DANE,
        Posture.OPPORTUNISTIC,
    ]
    assert "[tlsa]" in selection.explain()


def test_A1_tlsa_queries_come_after_the_addresses_in_one_batch() -> None:
    """RFC 7672 §2.2.2: A/AAAA before TLSA; all hosts' TLSA at once: 3 batches."""
    resolver = fake()
    plan = mxselect.SelectionPlan("example.org", policy=DANE_ON, rng=random.Random(1))
    batches: list[set[RRType]] = []
    while not plan.done:
        pending = plan.pending
        batches.append({q.rtype for q in pending})
        for query in pending:
            plan.feed(query, resolver.answer(query))
    assert batches == [{RRType.MX}, {RRType.AAAA, RRType.A}, {RRType.TLSA}]
    assert plan.result().targets[0].tls.posture is Posture.DANE


def test_dane_off_sends_exactly_todays_queries() -> None:
    resolver = fake()
    selection = select(resolver, Policy())
    assert asked(resolver, RRType.TLSA) == asked(resolver, RRType.CNAME) == []
    assert len(resolver.queries) == 5  # MX, then AAAA and A of both hosts
    assert all(t.tls is mxselect.OPPORTUNISTIC_TLS for t in selection)


def test_D2_insecure_mx_with_dane_policy_gives_dane_insecure_mx() -> None:
    # The MX RRset is in an unsigned zone; the hosts live in a signed one.
    text = (
        f"""
$ORIGIN example.net.
$TTL 300
{SOA}
@ MX 10 mx1.example.org.
"""
        + ZONE
    )
    resolver = fake(text)
    selection = select(resolver, domain="example.net")
    assert selection.mx_security is Security.INSECURE
    mx1 = selection.hosts[0].tls
    assert mx1.posture is Posture.DANE_INSECURE_MX
    assert mx1.reference_ids == ("mx1.example.org",)  # RFC 7672 §3.2.2: the MX host only


def test_D3_insecure_mx_with_encrypt_policy_requires_tls_only() -> None:
    text = f"$ORIGIN example.net.\n$TTL 300\n{SOA}\n@ MX 10 mx1.example.org.\n" + ZONE
    policy = Policy(dane=Dane.OPPORTUNISTIC, dane_insecure_mx=InsecureMX.ENCRYPT)
    mx1 = select(fake(text), policy, "example.net").hosts[0].tls
    assert mx1.posture is Posture.DANE_ENCRYPT
    assert mx1.required
    assert mx1.authenticate is None
    assert mx1.tlsa == ()


def test_D4_insecure_mx_with_may_policy_sends_no_tlsa_query() -> None:
    text = f"$ORIGIN example.net.\n$TTL 300\n{SOA}\n@ MX 10 mx1.example.org.\n" + ZONE
    resolver = fake(text)
    policy = Policy(dane=Dane.OPPORTUNISTIC, dane_insecure_mx=InsecureMX.MAY)
    selection = select(resolver, policy, "example.net")
    assert asked(resolver, RRType.TLSA) == []
    assert selection.hosts[0].tls.posture is Posture.OPPORTUNISTIC
    assert "dane_insecure_mx=may" in selection.hosts[0].tls.rule


def test_D5_mandatory_dane_with_insecure_mx_defers_before_any_address_query() -> None:
    text = f"$ORIGIN example.net.\n$TTL 300\n{SOA}\n@ MX 10 mx1.example.org.\n" + ZONE
    resolver = fake(text)
    with pytest.raises(DaneRequiredError) as caught:
        select(resolver, MANDATORY, "example.net")
    assert (caught.value.reply_code, caught.value.status) == (451, "4.7.5")
    assert isinstance(caught.value, mxselect.TemporaryError)
    assert [q.rtype for q in resolver.queries] == [RRType.MX]


@pytest.mark.parametrize("fault", [Fault.BOGUS, Fault.INDETERMINATE])
def test_D6_D7_bogus_or_indeterminate_mx_is_temporary(fault: Fault) -> None:
    resolver = fake()
    resolver.fail("example.org", "MX", fault)
    with pytest.raises(DNSTemporaryError) as caught:
        select(resolver, MANDATORY)
    assert caught.value.status == "4.4.3"
    assert "DNSSEC" in str(caught.value)


def test_D8_secure_cname_to_insecure_mx_zone_is_insecure() -> None:
    text = (
        ZONE
        + "alias CNAME target.example.net.\n"
        + f"$ORIGIN example.net.\n$TTL 300\n{SOA}\ntarget MX 10 mx1.example.org.\n"
    )
    resolver = fake(text)
    selection = select(resolver, domain="alias.example.org")
    assert selection.mx_security is Security.INSECURE
    assert selection.hosts[0].tls.posture is Posture.DANE_INSECURE_MX
    with pytest.raises(DaneRequiredError):
        select(fake(text), MANDATORY, "alias.example.org")


def test_D9_secure_nodata_implicit_mx_is_a_dane_destination() -> None:
    text = f"""
$ORIGIN example.org.
$TTL 300
{SOA}
@ A 192.0.2.9
_25._tcp TLSA 3 1 1 {SHA256}
"""
    resolver = fake(text)
    selection = select(resolver, MANDATORY)
    assert selection.implicit
    assert selection.hosts[0].tls.posture is Posture.DANE
    assert asked(resolver, RRType.TLSA) == ["_25._tcp.example.org."]


def test_D10_secure_nxdomain_stays_permanent() -> None:
    with pytest.raises(NoSuchDomainError):
        select(fake(), MANDATORY, "nowhere.example.org")


def test_D11_untrusted_resolver_warns_once_and_stays_opportunistic() -> None:
    resolver = fake(signed=(), security=Security.UNKNOWN)
    selection = select(resolver)
    codes = [w.code for w in selection.warnings]
    assert codes.count(WarningCode.DNSSEC_UNAVAILABLE) == 1
    assert {t.tls.posture for t in selection} == {Posture.OPPORTUNISTIC}
    assert asked(resolver, RRType.TLSA) == []


def test_D12_untrusted_resolver_with_mandatory_dane_defers() -> None:
    resolver = fake(signed=(), security=Security.UNKNOWN)
    with pytest.raises(DaneRequiredError) as caught:
        select(resolver, MANDATORY)
    assert "no DNSSEC status" in str(caught.value)
    assert [q.rtype for q in resolver.queries] == [RRType.MX]


# -- addresses and the TLSA base domain ------------------------------------------------------


def test_A2_insecure_addresses_get_no_tlsa_query() -> None:
    plain = ZONE.replace(f"_25._tcp.mx1 TLSA 3 1 1 {SHA256}", "")
    unsigned = fake(plain, signed=())  # everything insecure
    selection = select(unsigned)
    assert asked(unsigned, RRType.TLSA) == []
    assert asked(unsigned, RRType.CNAME) == []
    assert all("SHOULD NOT" in h.tls.rule for h in selection.hosts)


def test_A3_host_without_addresses_gets_no_tlsa_query() -> None:
    text = ZONE.replace("mx2 A 192.0.2.2\n", "")
    resolver = fake(text)
    selection = select(resolver)
    assert [h.name for h in selection.hosts] == ["mx1.example.org"]
    assert asked(resolver, RRType.TLSA) == ["_25._tcp.mx1.example.org."]


CNAMED = f"""
$ORIGIN example.org.
$TTL 300
{SOA}
@ MX 10 mail
mail CNAME real
real A 192.0.2.5
"""


@pytest.mark.parametrize("follow", [True, False])
def test_A4_secure_cname_chain_uses_the_expanded_name_as_base_domain(follow: bool) -> None:
    text = CNAMED + f"_25._tcp.real TLSA 3 1 1 {SHA256}\n_25._tcp.mail TLSA 3 1 1 {'cc' * 32}\n"
    resolver = fake(text, follow_cnames=follow)
    selection = select(resolver)
    tls = selection.hosts[0].tls
    assert tls.posture is Posture.DANE
    assert tls.tlsa_base_domain == tls.sni == "real.example.org"
    assert tls.reference_ids[0] == "real.example.org"
    assert tls.tlsa[0].data == bytes.fromhex(SHA256)
    assert asked(resolver, RRType.TLSA) == ["_25._tcp.real.example.org."]


def test_A5_secure_denial_at_the_expanded_name_tries_the_original_name() -> None:
    text = CNAMED + f"_25._tcp.mail TLSA 3 1 1 {SHA256}\n"
    resolver = fake(text)
    tls = select(resolver).hosts[0].tls
    assert tls.posture is Posture.DANE
    assert tls.tlsa_base_domain == tls.sni == "mail.example.org"
    assert asked(resolver, RRType.TLSA) == [
        "_25._tcp.real.example.org.",
        "_25._tcp.mail.example.org.",
    ]


CNAME_OUT = f"""
$ORIGIN example.org.
$TTL 300
{SOA}
@ MX 10 mail
mail CNAME mx.provider.test.
_25._tcp.mail TLSA 3 1 1 {SHA256}
$ORIGIN provider.test.
$TTL 300
{SOA}
mx A 192.0.2.6
"""


def test_A6_insecure_target_of_a_secure_cname_asks_the_cname_then_the_original() -> None:
    resolver = fake(CNAME_OUT)
    selection = select(resolver)
    tls = selection.hosts[0].tls
    assert selection.hosts[0].address_security is Security.INSECURE
    assert asked(resolver, RRType.CNAME) == ["mail.example.org."]
    assert asked(resolver, RRType.TLSA) == ["_25._tcp.mail.example.org."]
    assert tls.posture is Posture.DANE
    assert tls.tlsa_base_domain == "mail.example.org"


def test_A6_a_resolver_that_does_not_chase_cnames_needs_no_cname_query() -> None:
    resolver = fake(CNAME_OUT, follow_cnames=False)
    tls = select(resolver).hosts[0].tls
    assert asked(resolver, RRType.CNAME) == []
    assert tls.posture is Posture.DANE


def test_A7_insecure_target_of_an_insecure_cname_gets_no_tlsa_query() -> None:
    resolver = fake(CNAME_OUT, signed=())
    selection = select(resolver)
    assert asked(resolver, RRType.TLSA) == []
    assert selection.hosts[0].tls.posture is Posture.OPPORTUNISTIC


def test_A6_cname_query_failure_makes_the_host_unusable() -> None:
    resolver = fake(CNAME_OUT)
    resolver.fail("mail.example.org", "CNAME", Fault.SERVFAIL)
    with pytest.raises(SecureDeliveryError):
        select(resolver)


def test_A8_intermediate_names_are_never_base_domains() -> None:
    text = f"""
$ORIGIN example.org.
$TTL 300
{SOA}
@ MX 10 one
one CNAME two
two CNAME three
three A 192.0.2.7
_25._tcp.two TLSA 3 1 1 {SHA256}
"""
    resolver = fake(text)
    tls = select(resolver).hosts[0].tls
    assert tls.posture is Posture.OPPORTUNISTIC
    assert "_25._tcp.two.example.org." not in asked(resolver, RRType.TLSA)
    assert asked(resolver, RRType.TLSA) == [
        "_25._tcp.three.example.org.",
        "_25._tcp.one.example.org.",
    ]


def test_A9_tlsa_behind_a_cname_keeps_the_host_as_base_domain() -> None:
    text = ZONE.replace(f"_25._tcp.mx1 TLSA 3 1 1 {SHA256}", "_25._tcp.mx1 CNAME _dane.shared")
    text += f"_dane.shared TLSA 3 1 1 {SHA256}\n"
    for follow in (True, False):
        tls = select(fake(text, follow_cnames=follow)).hosts[0].tls
        assert tls.posture is Posture.DANE
        assert tls.tlsa_base_domain == tls.sni == "mx1.example.org"


def test_A9_insecure_cname_target_of_a_tlsa_record_is_not_dane() -> None:
    text = ZONE.replace(f"_25._tcp.mx1 TLSA 3 1 1 {SHA256}", "_25._tcp.mx1 CNAME tlsa.example.net.")
    text += f"$ORIGIN example.net.\n$TTL 300\n{SOA}\ntlsa TLSA 3 1 1 {SHA256}\n"
    tls = select(fake(text)).hosts[0].tls
    assert tls.posture is Posture.OPPORTUNISTIC


def test_A10_bogus_aaaa_beside_secure_a_with_tlsa_keeps_ipv4_with_dane() -> None:
    resolver = fake()
    resolver.fail("mx1.example.org", "AAAA", Fault.BOGUS)
    selection = select(resolver)
    mx1 = [t for t in selection if t.host == "mx1.example.org"]
    assert [t.family for t in mx1] == [4]
    assert mx1[0].tls.posture is Posture.DANE
    assert WarningCode.PARTIAL_ADDRESS_FAILURE in {w.code for w in selection.warnings}


def test_A11_one_secure_family_is_enough_and_dane_covers_the_host() -> None:
    text = ZONE.replace("mx1 AAAA 2001:db8::1", "") + (
        f"$ORIGIN six.example.org.\n$TTL 300\n{SOA}\n"
    )
    # mx1's AAAA answer is insecure (a different status for one family of the same host).
    resolver = fake(text)
    resolver.add("mx1.example.org", "AAAA", "2001:db8::1")
    original = resolver.answer

    def answer(query: Query) -> Answer:
        got = original(query)
        if query.rtype is RRType.AAAA:
            return Answer.from_addresses(got.addresses, ttl=got.ttl, security=Security.INSECURE)
        return got

    resolver.answer = answer  # type: ignore[method-assign]
    selection = select(resolver)
    host = selection.hosts[0]
    assert host.address_security is Security.INSECURE  # the least secure family
    assert {t.tls.posture for t in selection if t.host == host.name} == {Posture.DANE}


# -- TLSA outcomes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [(1, 1, 1, SHA256), (0, 0, 1, SHA256), (3, 1, 9, SHA256), (3, 1, 1, "aa" * 31)],
)
def test_T2_only_unusable_records_require_tls_without_authentication(
    record: tuple[int, int, int, str],
) -> None:
    # Added through the API: dnspython's zone reader refuses a 31-byte SHA2-256 itself.
    resolver = fake(ZONE.replace(f"_25._tcp.mx1 TLSA 3 1 1 {SHA256}", ""))
    resolver.add("_25._tcp.mx1.example.org", "TLSA", record)
    selection = select(resolver)
    tls = selection.hosts[0].tls
    assert tls.posture is Posture.DANE_ENCRYPT
    assert tls.required
    assert tls.authenticate is None
    assert tls.tlsa == ()
    assert tls.sni == "mx1.example.org"
    assert WarningCode.TLSA_UNUSABLE in {w.code for w in selection.warnings}


def test_T3_T4_secure_denial_is_opportunistic() -> None:
    for text in (
        ZONE.replace(f"_25._tcp.mx1 TLSA 3 1 1 {SHA256}", ""),  # NXDOMAIN
        ZONE.replace(f"TLSA 3 1 1 {SHA256}", 'TXT "not a tlsa"'),  # NODATA
    ):
        tls = select(fake(text)).hosts[0].tls
        assert tls.posture is Posture.OPPORTUNISTIC
        assert not tls.required


def test_T5_tlsa_records_without_ad_are_not_used() -> None:
    resolver = fake()
    resolver.set_security("_25._tcp.mx1.example.org", Security.INSECURE)
    tls = select(resolver).hosts[0].tls
    assert tls.posture is Posture.OPPORTUNISTIC


@pytest.mark.parametrize("fault", [Fault.SERVFAIL, Fault.TIMEOUT, Fault.BOGUS, Fault.REFUSED])
def test_T6_T8_T9_tlsa_failure_skips_that_host(fault: Fault) -> None:
    resolver = fake()
    resolver.fail("_25._tcp.mx1.example.org", "TLSA", fault)
    selection = select(resolver)
    assert [h.name for h in selection.hosts] == ["mx2.example.org"]
    warning = next(w for w in selection.warnings if w.code is WarningCode.TLSA_LOOKUP_FAILED)
    assert warning.host == "mx1.example.org"
    assert "RFC 7672 §2.1.2" in warning.message


@pytest.mark.parametrize("fault", [Fault.SERVFAIL, Fault.TIMEOUT, Fault.BOGUS])
def test_T7_tlsa_failure_of_the_only_host_defers_never_cleartext(fault: Fault) -> None:
    text = ZONE.replace("@   MX 20 mx2\n", "")
    resolver = fake(text)
    resolver.fail("_25._tcp.mx1.example.org", "TLSA", fault)
    with pytest.raises(SecureDeliveryError) as caught:
        select(resolver)
    assert (caught.value.reply_code, caught.value.status) == (451, "4.7.5")
    if fault is Fault.BOGUS:
        assert "Bogus" in str(caught.value)


def test_T10_refused_tlsa_in_an_unsigned_zone_is_never_asked() -> None:
    plain = ZONE
    resolver = fake(plain, signed=())
    resolver.fail("_25._tcp.mx1.example.org", "TLSA", Fault.REFUSED)
    selection = select(resolver)
    assert len(selection.hosts) == 2
    assert asked(resolver, RRType.TLSA) == []


def test_T11_failed_expanded_name_lookup_does_not_try_the_original() -> None:
    text = CNAMED + f"_25._tcp.mail TLSA 3 1 1 {SHA256}\n"
    resolver = fake(text)
    resolver.fail("_25._tcp.real.example.org", "TLSA", Fault.SERVFAIL)
    with pytest.raises(SecureDeliveryError):
        select(resolver)
    assert asked(resolver, RRType.TLSA) == ["_25._tcp.real.example.org."]


def test_T12_a_worse_host_with_tlsa_never_preempts_a_better_one() -> None:
    text = ZONE.replace(f"_25._tcp.mx1 TLSA 3 1 1 {SHA256}", f"_25._tcp.mx2 TLSA 3 1 1 {SHA256}")
    selection = select(fake(text))
    assert [h.name for h in selection.hosts] == ["mx1.example.org", "mx2.example.org"]
    assert [h.tls.posture for h in selection.hosts] == [Posture.OPPORTUNISTIC, Posture.DANE]


def test_T13_equal_preferences_keep_the_order_of_the_shuffle() -> None:
    names = [f"h{i}" for i in range(6)]
    text = f"$ORIGIN example.org.\n$TTL 300\n{SOA}\n" + "".join(
        f"@ MX 10 {n}\n{n} A 192.0.2.{i + 10}\n" for i, n in enumerate(names)
    )
    text += f"_25._tcp.h3 TLSA 3 1 1 {SHA256}\n"
    for seed in range(12):
        plain = mxselect.select_targets("example.org", resolver=fake(text), rng=random.Random(seed))
        dane = mxselect.select_targets(
            "example.org", resolver=fake(text), rng=random.Random(seed), policy=DANE_ON
        )
        assert [t.address for t in plain] == [t.address for t in dane]


def test_T14_mandatory_dane_uses_only_hosts_with_usable_tlsa() -> None:
    selection = select(fake(), MANDATORY)
    assert [h.name for h in selection.hosts] == ["mx1.example.org"]
    warning = next(w for w in selection.warnings if w.code is WarningCode.DANE_REQUIRED)
    assert warning.host == "mx2.example.org"
    assert "RFC 7672 §6" in warning.message


@pytest.mark.parametrize("record", [None, "1 1 1 " + SHA256])
def test_T15_mandatory_dane_without_usable_tlsa_defers(record: str | None) -> None:
    text = ZONE.replace(
        f"_25._tcp.mx1 TLSA 3 1 1 {SHA256}", "" if record is None else f"_25._tcp.mx1 TLSA {record}"
    )
    with pytest.raises(DaneRequiredError) as caught:
        select(fake(text), MANDATORY)
    assert (caught.value.reply_code, caught.value.status) == (451, "4.7.5")


def test_T16_address_literal_gets_no_dane() -> None:
    resolver = fake()
    selection = mxselect.select_targets("[192.0.2.1]", resolver=resolver, policy=MANDATORY)
    assert resolver.queries == []
    assert selection.targets[0].tls.posture is Posture.OPPORTUNISTIC


def test_T17_mx_naming_an_address_gets_no_dane() -> None:
    text = ZONE.replace("@   MX 20 mx2", "@   MX 20 192.0.2.99.")
    policy = Policy(dane=Dane.OPPORTUNISTIC, allow_mx_to_ip=True)
    resolver = fake(text)
    resolver.fail("_25._tcp.mx1.example.org", "TLSA", Fault.SERVFAIL)
    selection = select(resolver, policy)
    assert [(h.name, h.tls.posture) for h in selection.hosts] == [
        ("192.0.2.99", Posture.OPPORTUNISTIC)
    ]
    assert "network address" in selection.hosts[0].tls.rule


def test_T18_digest_agility_keeps_only_the_strongest_digest() -> None:
    text = ZONE.replace(
        f"_25._tcp.mx1 TLSA 3 1 1 {SHA256}",
        f"_25._tcp.mx1 TLSA 3 1 1 {SHA256}\n_25._tcp.mx1 TLSA 3 1 2 {SHA512}\n"
        f"_25._tcp.mx1 TLSA 2 0 1 {SHA256}\n_25._tcp.mx1 TLSA 3 0 0 3082",
    )
    tls = select(fake(text)).hosts[0].tls
    assert {str(r)[:5] for r in tls.tlsa} == {"3 1 2", "2 0 1", "3 0 0"}
    only256 = Policy(dane=Dane.OPPORTUNISTIC, digest_order=(1,))
    tls = select(fake(text), only256).hosts[0].tls
    assert {str(r)[:5] for r in tls.tlsa} == {"3 1 1", "2 0 1", "3 0 0"}


def test_T19_custom_port() -> None:
    text = ZONE.replace("_25._tcp", "_587._tcp")
    resolver = fake(text)
    tls = select(resolver, Policy(dane=Dane.OPPORTUNISTIC, tlsa_port=587)).hosts[0].tls
    assert tls.posture is Posture.DANE
    assert asked(resolver, RRType.TLSA)[0] == "_587._tcp.mx1.example.org."


def test_T20_reference_ids_with_a_cnamed_next_hop() -> None:
    text = ZONE + "alias CNAME example.org.\n"
    tls = select(fake(text), domain="alias.example.org").hosts[0].tls
    assert tls.reference_ids == ("mx1.example.org", "alias.example.org", "example.org")
    assert tls.sni == "mx1.example.org"


def test_T21_selection_ttl_includes_the_tlsa_ttl() -> None:
    text = ZONE.replace("_25._tcp.mx1 TLSA", "_25._tcp.mx1 42 TLSA")
    assert select(fake(text)).ttl == 42


def test_T22_tlsa_only_for_hosts_the_address_limit_keeps() -> None:
    names = [f"h{i}" for i in range(5)]
    text = f"$ORIGIN example.org.\n$TTL 300\n{SOA}\n" + "".join(
        f"@ MX {10 * (i + 1)} {n}\n{n} A 192.0.2.{i + 10}\n{n} A 198.51.100.{i + 10}\n"
        for i, n in enumerate(names)
    )
    resolver = fake(text)
    policy = Policy(dane=Dane.OPPORTUNISTIC, max_addresses=4)
    select(resolver, policy)
    assert asked(resolver, RRType.TLSA) == ["_25._tcp.h0.example.org.", "_25._tcp.h1.example.org."]
    # A TLSA failure pulls the next host into one more pass.
    resolver = fake(text)
    resolver.fail("_25._tcp.h0.example.org", "TLSA", Fault.SERVFAIL)
    selection = select(resolver, policy)
    assert [h.name for h in selection.hosts] == ["h1.example.org", "h2.example.org"]
    assert asked(resolver, RRType.TLSA) == [
        "_25._tcp.h0.example.org.",
        "_25._tcp.h1.example.org.",
        "_25._tcp.h2.example.org.",
    ]


def test_tlsa_failure_of_every_host_in_a_batch_resolves_the_next_batch() -> None:
    names = [f"h{i}" for i in range(4)]
    text = f"$ORIGIN example.org.\n$TTL 300\n{SOA}\n" + "".join(
        f"@ MX {10 * (i + 1)} {n}\n{n} A 192.0.2.{i + 10}\n" for i, n in enumerate(names)
    )
    resolver = fake(text)
    for n in names[:2]:
        resolver.fail(f"_25._tcp.{n}.example.org", "TLSA", Fault.SERVFAIL)
    policy = Policy(dane=Dane.OPPORTUNISTIC, max_mx_hosts=2)
    selection = select(resolver, policy)
    assert [h.name for h in selection.hosts] == ["h2.example.org", "h3.example.org"]


def test_mixed_permanent_dns_failure_and_tlsa_failure_is_temporary() -> None:
    text = ZONE.replace("mx2 A 192.0.2.2\n", "")  # mx2: NXDOMAIN (permanent on its own)
    resolver = fake(text)
    resolver.fail("_25._tcp.mx1.example.org", "TLSA", Fault.SERVFAIL)
    with pytest.raises(SecureDeliveryError):
        select(resolver)


def test_async_api_gives_the_same_requirements() -> None:
    resolver = fake()
    selection = asyncio.run(
        mxselect.aselect_targets(
            "example.org", resolver=resolver, policy=DANE_ON, rng=random.Random(7)
        )
    )
    assert tls_of(selection) == tls_of(select(fake()))


def test_usable_record_rules() -> None:
    assert TLSARecord(3, 1, 1, b"\0" * 32).usable
    assert TLSARecord(2, 0, 2, b"\0" * 64).usable
    assert TLSARecord(3, 0, 0, b"\x30").usable
    assert not TLSARecord(3, 1, 1, b"\0" * 33).usable  # malformed digest (RFC 6698 §4.1)
    assert not TLSARecord(1, 1, 1, b"\0" * 32).usable  # PKIX-EE (RFC 7672 §3.1.3)
    assert not TLSARecord(3, 2, 1, b"\0" * 32).usable  # unknown selector
    assert not TLSARecord(3, 0, 0, b"").usable


# -- P1: DANE never makes an outcome permanent and never reorders -----------------------------

HOST_FATES = st.sampled_from(["ok", "ok", "ok", "nxdomain", "servfail", "bogus-a", "no-address"])
TLSA_FATES = st.sampled_from(["none", "3 1 1", "3 1 1", "1 1 1", "servfail", "bogus", "cname"])
HOSTS = st.lists(
    st.tuples(
        st.integers(0, 3),  # preference / 10
        HOST_FATES,
        TLSA_FATES,
        st.booleans(),  # the host's zone is signed
        st.booleans(),  # the host is a CNAME
    ),
    min_size=1,
    max_size=6,
)
POLICIES = st.builds(
    lambda dane, insecure, port: Policy(
        dane=dane, dane_insecure_mx=insecure, tlsa_port=port, max_addresses=None
    ),
    st.sampled_from([Dane.OPPORTUNISTIC, Dane.MANDATORY]),
    st.sampled_from(list(InsecureMX)),
    st.sampled_from([25, 587]),
)


def random_zone(hosts: list[tuple[int, str, str, bool, bool]], mx_signed: bool) -> FakeResolver:
    """example.org's MX set over hosts in h<i>.signed.test / h<i>.plain.test zones."""
    resolver = FakeResolver(security=Security.INSECURE)
    resolver.add("example.org", "SOA", 60)
    if mx_signed:
        resolver.set_security("example.org", Security.SECURE)
    resolver.set_security("signed.test", Security.SECURE)
    for i, (pref, fate, tlsa, signed, cnamed) in enumerate(hosts):
        zone = "signed.test" if signed else "plain.test"
        name = f"h{i}.{zone}"
        resolver.add("example.org", "MX", (pref * 10, name))
        real = f"r{i}.signed.test" if cnamed else name
        if cnamed:
            resolver.add(name, "CNAME", real)
        if fate != "nxdomain":
            resolver.add(real, "A", f"192.0.2.{i + 1}") if fate != "no-address" else resolver.add(
                real, "TXT", "x"
            )
        if fate == "servfail":
            resolver.fail(real, "A", Fault.SERVFAIL)
        if fate == "bogus-a":
            resolver.fail(real, "A", Fault.BOGUS)
        for port in (25, 587):
            owner = f"_{port}._tcp.{name}"
            if tlsa in ("3 1 1", "1 1 1"):
                resolver.add(owner, "TLSA", f"{tlsa} {SHA256}")
            elif tlsa == "cname":
                resolver.add(owner, "CNAME", "_tlsa.plain.test")
                resolver.add("_tlsa.plain.test", "TLSA", f"3 1 1 {SHA256}")
            elif tlsa in ("servfail", "bogus"):
                resolver.fail(owner, "TLSA", Fault.SERVFAIL if tlsa == "servfail" else Fault.BOGUS)
    return resolver


def outcome(
    hosts: list[tuple[int, str, str, bool, bool]], mx_signed: bool, policy: Policy, seed: int
) -> mxselect.Selection | mxselect.MXSelectError:
    try:
        return mxselect.select_targets(
            "example.org",
            resolver=random_zone(hosts, mx_signed),
            policy=policy,
            rng=random.Random(seed),
        )
    except mxselect.MXSelectError as exc:
        return exc


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(hosts=HOSTS, mx_signed=st.booleans(), policy=POLICIES, seed=st.integers(0, 2**16))
def test_P1_dane_never_makes_an_outcome_permanent_nor_reorders(
    hosts: list[tuple[int, str, str, bool, bool]], mx_signed: bool, policy: Policy, seed: int
) -> None:
    plain = outcome(hosts, mx_signed, Policy(max_addresses=None), seed)
    dane = outcome(hosts, mx_signed, policy, seed)
    if not isinstance(plain, mxselect.PermanentError):
        assert not isinstance(dane, mxselect.PermanentError), (plain, dane)
    if isinstance(plain, mxselect.Selection) and isinstance(dane, mxselect.Selection):
        # DANE only ever removes targets: what is left is in the same order.
        order = [t.address for t in plain]
        kept = [t.address for t in dane]
        assert kept == [a for a in order if a in kept]
    if isinstance(dane, mxselect.Selection):
        for target in dane:
            assert target.tls.required or policy.dane is not Dane.MANDATORY


def test_T14_mandatory_dane_with_keep_one_per_preference_keeps_only_dane_hosts() -> None:
    names = [f"h{i}" for i in range(4)]
    text = f"$ORIGIN example.org.\n$TTL 300\n{SOA}\n" + "".join(
        f"@ MX {10 * (i + 1)} {n}\n{n} A 192.0.2.{i + 10}\n{n} A 198.51.100.{i + 10}\n"
        for i, n in enumerate(names)
    )
    text += "".join(f"_25._tcp.{n} TLSA 3 1 1 {SHA256}\n" for n in names[::2])
    policy = Policy(dane=Dane.MANDATORY, max_addresses=2, keep_one_per_preference=True)
    selection = select(fake(text), policy)
    assert {t.host for t in selection} == {"h0.example.org", "h2.example.org"}
    assert all(t.tls.posture is Posture.DANE for t in selection)
