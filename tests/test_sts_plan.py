"""MTA-STS in the plan (RFC 8461): the ``_mta-sts`` TXT beside the MX query, the policy fetch
as a request of the plan that overlaps the address lookups, the cache decisions, MX matching
and the enforce / testing / none semantics; TLS-RPT's ``_smtp._tls`` record (RFC 8460 §3).

Test names carry the scenario IDs of ../shared/secure-delivery.md §7 (S, R, P).
"""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mxselect
from mxselect import (
    Dane,
    FetchResult,
    NoPrimaryRelayError,
    Policy,
    PolicyFetch,
    Posture,
    Query,
    RRType,
    Security,
    StsEntry,
    StsMode,
    StsPolicyError,
    WarningCode,
)
from mxselect.mtasts import MemoryStore
from mxselect.testing import FakeResolver, Fault

SOA = "@ SOA ns hostmaster 1 3600 900 604800 60"
SHA256 = "aa" * 32
NOW = 1_800_000_000.0

ZONE = f"""
$ORIGIN example.org.
$TTL 300
{SOA}
@        MX  10 bad.example.net.
@        MX  20 mx1
@        MX  30 mx2
mx1      A   192.0.2.1
mx2      A   192.0.2.2
_mta-sts TXT "v=STSv1; id=20261201"
_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.org"
$ORIGIN example.net.
$TTL 300
{SOA}
bad      A   192.0.2.9
"""

ENFORCE = """version: STSv1
mode: enforce
mx: *.example.org
max_age: 86400
"""

STS = Policy(mta_sts=True)


class Fetcher:
    """Answers policy fetches from a dict; records them; ``afetch`` for the async driver."""

    def __init__(self, bodies: dict[str, str | FetchResult]) -> None:
        self.bodies = bodies
        self.fetches: list[PolicyFetch] = []

    def fetch(self, request: PolicyFetch) -> FetchResult:
        self.fetches.append(request)
        body = self.bodies.get(request.domain)
        if body is None:
            return FetchResult.failed("connection refused (test)")
        if isinstance(body, FetchResult):
            return body
        return FetchResult.response(200, "text/plain; charset=utf-8", body.encode())

    async def afetch(self, request: PolicyFetch) -> FetchResult:
        return self.fetch(request)


def select(
    resolver: FakeResolver,
    fetcher: Fetcher,
    *,
    policy: Policy = STS,
    store: MemoryStore | None = None,
    domain: str = "example.org",
) -> mxselect.Selection:
    return mxselect.select_targets(
        domain,
        resolver=resolver,
        policy=policy,
        rng=random.Random(2),
        fetcher=fetcher,
        sts_store=store,
    )


def fake(text: str = ZONE) -> FakeResolver:
    return FakeResolver.from_zone(text)


def test_S1_no_record_no_fetch_no_policy() -> None:
    resolver = fake(ZONE.replace('_mta-sts TXT "v=STSv1; id=20261201"', ""))
    fetcher = Fetcher({"example.org": ENFORCE})
    selection = select(resolver, fetcher)
    assert fetcher.fetches == []
    assert selection.sts_policy is None
    assert next(h.name for h in selection.hosts) == "bad.example.net"
    assert Query("_mta-sts.example.org.", RRType.TXT) in resolver.queries


def test_mta_sts_off_asks_nothing_more() -> None:
    resolver = fake()
    select(resolver, Fetcher({}), policy=Policy())
    assert {q.rtype for q in resolver.queries} == {RRType.MX, RRType.A, RRType.AAAA}


def test_S2_S3_enforce_skips_the_host_that_does_not_match_and_keeps_the_order() -> None:
    resolver = fake()
    fetcher = Fetcher({"example.org": ENFORCE})
    store = MemoryStore()
    selection = select(resolver, fetcher, store=store)
    assert [h.name for h in selection.hosts] == ["mx1.example.org", "mx2.example.org"]
    tls = selection.hosts[0].tls
    assert tls.posture is Posture.MTA_STS
    assert tls.required
    assert tls.authenticate == "pkix"
    assert tls.sni == "mx1.example.org"
    assert tls.reference_ids == ("mx1.example.org",)
    assert selection.sts_policy is not None
    assert selection.sts_policy.mode is StsMode.ENFORCE
    assert selection.sts_source == "fetched"
    assert selection.sts_policy_id == "20261201"
    warning = next(w for w in selection.warnings if w.code is WarningCode.STS_MX_MISMATCH)
    assert warning.host == "bad.example.net"
    assert "RFC 8461" in warning.message
    assert [f.url for f in fetcher.fetches] == [
        "https://mta-sts.example.org/.well-known/mta-sts.txt"
    ]
    entry = store.get("example.org")
    assert entry is not None
    assert entry.id == "20261201"


def test_the_txt_query_goes_beside_the_mx_query_and_the_fetch_beside_the_addresses() -> None:
    resolver = fake()
    plan = mxselect.SelectionPlan("example.org", policy=STS, rng=random.Random(1), now=NOW)
    assert {(q.name, q.rtype) for q in plan.pending} == {
        ("example.org.", RRType.MX),
        ("_mta-sts.example.org.", RRType.TXT),
    }
    assert plan.fetches == ()
    for query in plan.pending:
        plan.feed(query, resolver.answer(query))
    # Batch 2: the address queries; the fetch is asked for at the same time.
    assert {q.rtype for q in plan.pending} == {RRType.A, RRType.AAAA}
    (request,) = plan.fetches
    assert request.domain == "example.org"
    for query in plan.pending:
        plan.feed(query, resolver.answer(query))
    # Nothing but the fetch is missing now: the plan waits for it.
    assert plan.pending == ()
    assert not plan.done
    plan.feed(request, FetchResult.response(200, "text/plain", ENFORCE.encode()))
    assert plan.done
    assert plan.result().hosts[0].name == "mx1.example.org"
    assert plan.sts_update is not None


def test_a_fetch_fed_early_is_not_waited_for() -> None:
    resolver = fake()
    plan = mxselect.SelectionPlan("example.org", policy=STS, rng=random.Random(1), now=NOW)
    for query in plan.pending:
        plan.feed(query, resolver.answer(query))
    (request,) = plan.fetches
    plan.feed(request, FetchResult.response(200, "text/plain", ENFORCE.encode()))
    assert plan.fetches == ()
    for query in plan.pending:
        plan.feed(query, resolver.answer(query))
    assert plan.done
    with pytest.raises(ValueError, match="not a pending fetch"):
        plan.feed(request, FetchResult.failed("again"))


def test_S4_enforce_without_a_matching_host_is_temporary_and_asks_for_a_recheck() -> None:
    policy = ENFORCE.replace("*.example.org", "*.elsewhere.example")
    with pytest.raises(StsPolicyError) as caught:
        select(fake(), Fetcher({"example.org": policy}))
    error = caught.value
    assert (error.reply_code, error.status) == (451, "4.7.5")
    assert isinstance(error, mxselect.TemporaryError)
    assert error.recheck_policy
    assert error.policy_id == "20261201"
    assert error.sts_policy is not None
    assert error.sts_policy.mx == ("*.elsewhere.example",)
    assert error.tlsrpt == ()  # Policy.tlsrpt not asked for


def test_S4_the_refusal_carries_what_a_tls_rpt_report_needs() -> None:
    """RFC 8461 §6: the MX mismatch is reported with TLS-RPT -- the error carries the policy
    that refused and the domain's rua URIs, so the MTA can build the report entry."""
    from mxselect.tlsrpt import ReportPolicy, TlsRptEvent

    policy = ENFORCE.replace("*.example.org", "*.elsewhere.example")
    with pytest.raises(StsPolicyError) as caught:
        select(fake(), Fetcher({"example.org": policy}), policy=Policy(mta_sts=True, tlsrpt=True))
    error = caught.value
    assert error.tlsrpt == ("mailto:tlsrpt@example.org",)
    assert error.sts_policy is not None
    event = TlsRptEvent.policy_failure(
        "validation-failure", 0.0, policy=ReportPolicy.sts("example.org", error.sts_policy)
    )
    assert event.policy.policy_domain == "example.org"


def test_S5_self_pruning_comes_before_the_policy() -> None:
    # This host is mx1 (preference 20); only it matches the policy: the better MX does not,
    # so nothing is left -- and the mail is never delivered to this host itself.
    policy = ENFORCE.replace("*.example.org", "mx1.example.org")
    local = Policy(mta_sts=True, local_names=["mx1.example.org"])
    with pytest.raises(NoPrimaryRelayError):
        select(fake(), Fetcher({"example.org": policy}), policy=local)


def test_S6_testing_keeps_the_host_that_does_not_match() -> None:
    policy = ENFORCE.replace("enforce", "testing")
    selection = select(fake(), Fetcher({"example.org": policy}))
    assert next(h.name for h in selection.hosts) == "bad.example.net"
    assert {h.tls.posture for h in selection.hosts} == {Posture.MTA_STS_TESTING}
    assert not any(h.tls.required for h in selection.hosts)
    assert "does not match" in selection.hosts[0].tls.rule
    warning = next(w for w in selection.warnings if w.code is WarningCode.STS_MX_MISMATCH)
    assert warning.host == "bad.example.net"
    assert "testing" in warning.message


def test_S7_mode_none_applies_nothing_but_is_cached() -> None:
    store = MemoryStore()
    selection = select(
        fake(),
        Fetcher({"example.org": "version: STSv1\nmode: none\nmax_age: 86400\n"}),
        store=store,
    )
    assert {h.tls.posture for h in selection.hosts} == {Posture.OPPORTUNISTIC}
    assert selection.hosts[0].name == "bad.example.net"
    assert store.get("example.org") is not None


def test_S10_implicit_mx_matches_the_domain() -> None:
    text = f"""
$ORIGIN example.org.
$TTL 300
{SOA}
@        A   192.0.2.5
_mta-sts TXT "v=STSv1; id=1"
"""
    policy = ENFORCE.replace("*.example.org", "example.org")
    selection = select(fake(text), Fetcher({"example.org": policy}))
    assert selection.implicit
    assert selection.hosts[0].tls.posture is Posture.MTA_STS


def test_S11_a_cnamed_exchange_is_matched_by_its_mx_name() -> None:
    text = ZONE.replace("mx1      A   192.0.2.1", "mx1      CNAME real.example.net.")
    text += "real A 192.0.2.7\n"  # in example.net
    selection = select(fake(text), Fetcher({"example.org": ENFORCE}))
    assert selection.hosts[0].name == "mx1.example.org"
    assert selection.hosts[0].tls.posture is Posture.MTA_STS


def test_S12_same_id_no_fetch_S13_new_id_failed_fetch_uses_the_cache() -> None:
    store = MemoryStore()
    fetcher = Fetcher({"example.org": ENFORCE})
    select(fake(), fetcher, store=store)
    assert len(fetcher.fetches) == 1
    second = select(fake(), fetcher, store=store)
    assert len(fetcher.fetches) == 1  # S12: the same id, a valid cache: no fetch
    assert second.sts_source == "cached"
    # S13: a new id, the server down: the cached policy still applies.
    down = Fetcher({})
    third = select(fake(ZONE.replace("id=20261201", "id=20261202")), down, store=store)
    assert len(down.fetches) == 1
    assert third.sts_source == "cached"
    assert third.hosts[0].name == "mx1.example.org"
    assert WarningCode.STS_POLICY_STALE in {w.code for w in third.warnings}


def test_S14_txt_failure_applies_the_valid_cache_or_nothing() -> None:
    store = MemoryStore()
    select(fake(), Fetcher({"example.org": ENFORCE}), store=store)
    broken = fake()
    broken.fail("_mta-sts.example.org", "TXT", Fault.SERVFAIL)
    fetcher = Fetcher({"example.org": ENFORCE})
    cached = select(broken, fetcher, store=store)
    assert fetcher.fetches == []
    assert cached.sts_source == "cached"
    assert cached.hosts[0].name == "mx1.example.org"
    none = select(broken, fetcher)
    assert none.sts_policy is None
    assert none.hosts[0].name == "bad.example.net"


@pytest.mark.parametrize(
    "result",
    [
        FetchResult.response(404, "text/plain", b"not found"),
        FetchResult.response(301, "text/plain", b""),
        FetchResult.response(200, "text/html", ENFORCE.encode()),
        FetchResult.response(200, "text/plain", b"version: STSv1\nmode: strict\n"),
        FetchResult.failed("timeout"),
    ],
)
def test_S16_S17_S18_fetch_errors_without_cache_mean_no_policy_never_a_bounce(
    result: FetchResult,
) -> None:
    selection = select(fake(), Fetcher({"example.org": result}))
    assert selection.sts_policy is None
    assert selection.hosts[0].name == "bad.example.net"
    assert WarningCode.STS_FETCH_FAILED in {w.code for w in selection.warnings}


def test_S24_a_subdomain_asks_its_own_record_only() -> None:
    text = ZONE + f"$ORIGIN mail.example.org.\n$TTL 300\n{SOA}\n@ MX 10 mx1.example.org.\n"
    resolver = fake(text)
    select(resolver, Fetcher({}), domain="mail.example.org")
    txt = [q.name for q in resolver.queries if q.rtype is RRType.TXT]
    assert txt == ["_mta-sts.mail.example.org."]


def test_S26_dane_wins_for_authentication_but_the_mx_filter_applies() -> None:
    text = ZONE.replace(
        "mx2      A   192.0.2.2", f"mx2 A 192.0.2.2\n_25._tcp.mx1 TLSA 3 1 1 {SHA256}"
    )
    resolver = FakeResolver.from_zone(text, signed=["example.org", "example.net"])
    policy = Policy(mta_sts=True, dane=Dane.OPPORTUNISTIC)
    selection = select(resolver, Fetcher({"example.org": ENFORCE}), policy=policy)
    assert [h.name for h in selection.hosts] == ["mx1.example.org", "mx2.example.org"]
    assert selection.hosts[0].tls.posture is Posture.DANE
    assert selection.hosts[1].tls.posture is Posture.MTA_STS
    assert "bad.example.net" not in {t.host for t in selection}


def test_address_literal_asks_nothing() -> None:
    resolver = fake()
    fetcher = Fetcher({})
    selection = mxselect.select_targets(
        "[192.0.2.1]", resolver=resolver, policy=STS, fetcher=fetcher
    )
    assert resolver.queries == []
    assert fetcher.fetches == []
    assert selection.targets[0].tls.posture is Posture.OPPORTUNISTIC


def test_async_driver_overlaps_the_fetch_and_gives_the_same_result() -> None:
    fetcher = Fetcher({"example.org": ENFORCE})
    selection = asyncio.run(
        mxselect.aselect_targets(
            "example.org",
            resolver=fake(),
            policy=STS,
            rng=random.Random(2),
            fetcher=fetcher,
            sts_store=MemoryStore(),
        )
    )
    assert [h.name for h in selection.hosts] == ["mx1.example.org", "mx2.example.org"]
    assert len(fetcher.fetches) == 1


def test_a_fetcher_that_raises_is_a_failed_fetch() -> None:
    class Broken:
        def fetch(self, request: PolicyFetch) -> FetchResult:
            raise RuntimeError("boom")

    selection = select(fake(), Broken())  # type: ignore[arg-type]
    assert selection.sts_policy is None
    assert "boom" in selection.explain()


def test_R1_tlsrpt_record_is_reported() -> None:
    selection = select(fake(), Fetcher({}), policy=Policy(tlsrpt=True))
    assert selection.tlsrpt == ("mailto:tlsrpt@example.org",)
    assert select(fake(), Fetcher({})).tlsrpt == ()


def test_the_plan_needs_the_time_with_mta_sts() -> None:
    with pytest.raises(ValueError, match="now"):
        mxselect.SelectionPlan("example.org", policy=STS)


def test_a_cached_entry_given_to_the_plan_is_used() -> None:
    from mxselect._sts import parse_policy

    entry = StsEntry(
        domain="example.org",
        policy=parse_policy(ENFORCE),
        id="20261201",
        fetched_at=NOW - 60,
        checked_at=NOW - 60,
    )
    plan = mxselect.SelectionPlan(
        "example.org", policy=STS, rng=random.Random(1), sts_entry=entry, now=NOW
    )
    resolver = fake()
    while not plan.done:
        assert plan.fetches == ()
        for query in plan.pending:
            plan.feed(query, resolver.answer(query))
    assert plan.result().sts_source == "cached"


# -- P1 with MTA-STS ------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(
    patterns=st.lists(
        st.sampled_from(["*.example.org", "bad.example.net", "mx2.example.org", "x.test"]),
        min_size=1,
        max_size=3,
    ),
    mode=st.sampled_from(["enforce", "testing", "none"]),
    fail=st.sampled_from([None, "bad.example.net", "mx1.example.org"]),
    seed=st.integers(0, 1000),
)
def test_P1_mta_sts_never_makes_an_outcome_permanent_nor_reorders(
    patterns: list[str], mode: str, fail: str | None, seed: int
) -> None:
    body = f"version: STSv1\nmode: {mode}\n" + "".join(f"mx: {p}\n" for p in patterns)
    body += "max_age: 86400\n"

    def run(policy: Policy) -> mxselect.Selection | mxselect.MXSelectError:
        resolver = fake()
        if fail is not None:
            resolver.fail(fail, "A", Fault.SERVFAIL)
        try:
            return mxselect.select_targets(
                "example.org",
                resolver=resolver,
                policy=policy,
                rng=random.Random(seed),
                fetcher=Fetcher({"example.org": body}),
            )
        except mxselect.MXSelectError as exc:
            return exc

    plain, sts = run(Policy()), run(STS)
    if not isinstance(plain, mxselect.PermanentError):
        assert not isinstance(sts, mxselect.PermanentError), (plain, sts)
    if isinstance(plain, mxselect.Selection) and isinstance(sts, mxselect.Selection):
        order = [t.address for t in plain]
        kept = [t.address for t in sts]
        assert kept == [a for a in order if a in kept]
    if isinstance(sts, mxselect.Selection) and mode == "enforce":
        assert all(t.tls.posture is Posture.MTA_STS for t in sts)


def test_security_is_reported_for_sts_hosts_too() -> None:
    # A signed zone: MTA-STS and the DNSSEC status side by side.
    resolver = FakeResolver.from_zone(ZONE, signed=["example.org"], security=Security.INSECURE)
    selection = select(resolver, Fetcher({"example.org": ENFORCE}))
    assert selection.mx_security is Security.SECURE


def test_P4_delivery_under_enforce_defers_with_recheck_and_testing_delivers_anyway() -> None:
    from mxselect.delivery import DeliveryPlan, DeliveryStatus

    selection = select(fake(), Fetcher({"example.org": ENFORCE}))
    plan = DeliveryPlan(selection)
    for target in plan:
        assert not plan.tls_failed(target, "certificate-host-mismatch", "bad name")
    assert plan.outcome.status is DeliveryStatus.DEFERRED
    assert "4.7.5" in str(plan.outcome)
    assert plan.outcome.recheck_policy
    testing = select(fake(), Fetcher({"example.org": ENFORCE.replace("enforce", "testing")}))
    plan = DeliveryPlan(testing)
    first = plan.next_target()
    assert first is not None
    assert plan.tls_failed(first, "certificate-host-mismatch", "bad name")  # cleartext allowed
    assert plan.next_target() == first
    assert plan.cleartext_retry


class SlowFetcher(Fetcher):
    """A fetcher that answers only once released."""

    def __init__(self, bodies: dict[str, str | FetchResult]) -> None:
        super().__init__(bodies)
        import threading

        self.release = threading.Event()

    def fetch(self, request: PolicyFetch) -> FetchResult:
        self.release.wait(5)
        return super().fetch(request)

    async def afetch(self, request: PolicyFetch) -> FetchResult:
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        return super().fetch(request)


def test_S27_background_fetch_does_not_hold_the_message_and_stores_the_policy() -> None:
    import time

    store = MemoryStore()
    fetcher = SlowFetcher({"example.org": ENFORCE})
    background = Policy(mta_sts=True, sts_background=True)
    first = select(fake(), fetcher, policy=background, store=store)
    assert first.sts_policy is None  # no cached policy: this message goes without one
    assert first.hosts[0].name == "bad.example.net"
    assert "background" in first.explain()
    assert store.get("example.org") is None
    fetcher.release.set()
    for _ in range(200):
        if store.get("example.org") is not None:
            break
        time.sleep(0.01)
    entry = store.get("example.org")
    assert entry is not None
    assert entry.policy.mode is StsMode.ENFORCE
    second = select(fake(), fetcher, policy=background, store=store)
    assert second.sts_source == "cached"
    assert second.hosts[0].name == "mx1.example.org"


def test_S27_background_fetch_in_asyncio() -> None:
    store = MemoryStore()
    fetcher = SlowFetcher({"example.org": ENFORCE})
    background = Policy(mta_sts=True, sts_background=True)

    async def main() -> tuple[mxselect.Selection, StsEntry | None]:
        first = await mxselect.aselect_targets(
            "example.org", resolver=fake(), policy=background, fetcher=fetcher, sts_store=store
        )
        fetcher.release.set()
        for _ in range(200):
            if store.get("example.org") is not None:
                break
            await asyncio.sleep(0.01)
        return first, store.get("example.org")

    first, entry = asyncio.run(main())
    assert first.sts_policy is None
    assert entry is not None
    assert entry.id == "20261201"


def test_the_same_id_seen_again_moves_checked_at_but_not_the_validity() -> None:
    """RFC 8461 §3.3 bookkeeping: a TXT check with the same id is stored (checked_at = now, at
    most once a minute) so refresh_due knows the domain was checked; fetched_at is kept, so the
    policy's validity is never extended (§3.2)."""
    from mxselect._sts import parse_policy

    entry = StsEntry(
        domain="example.org",
        policy=parse_policy(ENFORCE),
        id="20261201",
        fetched_at=NOW - 600,
        checked_at=NOW - 600,
    )
    plan = mxselect.SelectionPlan(
        "example.org", policy=STS, rng=random.Random(1), sts_entry=entry, now=NOW
    )
    resolver = fake()
    while not plan.done:
        for query in plan.pending:
            plan.feed(query, resolver.answer(query))
    assert plan.result().sts_source == "cached"
    assert plan.sts_update is not None
    assert plan.sts_update.checked_at == NOW
    assert plan.sts_update.fetched_at == NOW - 600
