"""The performance shortcuts of the core (issue 5) decide exactly as the plain definitions."""

from __future__ import annotations

import copy
import ipaddress
import pickle
import random
import re
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from zones import zone

from mxselect import (
    Answer,
    DNSTemporaryError,
    Families,
    InvalidDomainError,
    Policy,
    Query,
    RRType,
    Security,
    Selection,
    SelectionPlan,
    Status,
    Target,
    Trace,
    TraceStep,
    WarningCode,
    _domain,
    select_targets,
)
from mxselect._domain import check_ldh_name, normalize_domain
from mxselect._model import explain
from mxselect._policy import DEFAULT_POLICY, safe_addresses
from mxselect._rules import family_order as _family_order
from mxselect._rules import ip_address as _ip_address
from mxselect.testing import FakeResolver

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _plain_is_unsafe(policy: Policy, address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in policy.unsafe_networks)


def _addresses(rng: random.Random) -> list[Address]:
    fixed = [
        "0.0.0.0", "0.255.255.255", "1.0.0.0", "126.255.255.255", "127.0.0.1", "128.0.0.0",
        "169.254.0.1", "169.255.0.1", "223.255.255.255", "224.0.0.1", "239.255.255.255",
        "240.0.0.1", "255.255.255.255", "10.1.2.3", "192.0.2.1", "::", "::1", "::2",
        "fe80::1", "febf::1", "fec0::1", "ff02::1", "2001:db8::1", "::ffff:127.0.0.1",
        "::ffff:8.8.8.8", "::ffff:0.0.0.1", "::127.0.0.1", "64:ff9b::127.0.0.1",
        "125.255.255.255", "126.0.0.0", "127.0.0.2", "127.0.0.3", "127.0.0.4",
        "128.127.255.255", "128.128.0.0", "fec0::", "febf:ffff::", "::ffff:127.0.0.3", "10.2.0.0",
        "2001:db8:2::1",
    ]  # fmt: skip
    out: list[Address] = [ipaddress.ip_address(a) for a in fixed]
    out += [ipaddress.IPv4Address(rng.getrandbits(32)) for _ in range(3000)]
    out += [ipaddress.IPv6Address(rng.getrandbits(128)) for _ in range(1000)]
    out += [ipaddress.IPv6Address(0xFFFF << 32 | rng.getrandbits(32)) for _ in range(1000)]
    out += [ipaddress.IPv6Address(0xFE80 << 112 | rng.getrandbits(64)) for _ in range(200)]
    return out


@pytest.mark.parametrize(
    "policy",
    [
        DEFAULT_POLICY,
        DEFAULT_POLICY.with_unsafe("10.0.0.0/8", "2001:db8::/32", "192.0.2.128/25"),
        Policy(unsafe_networks=()),
        Policy(unsafe_networks=["::/0"]),
        Policy(unsafe_networks=["0.0.0.0/0"]),
        # adjacent, overlapping and cut-out networks (merged into ranges)
        DEFAULT_POLICY.without_unsafe("127.0.0.2/31").with_unsafe(
            "126.0.0.0/8",
            "128.0.0.0/9",
            "127.1.0.0/16",
            "fe80::/9",
            "fec0::/10",
            "0.0.0.0/8",
            "10.0.0.0/8",
            "10.1.0.0/16",
            "2001:db8::/32",
            "2001:db8:1::/48",
        ),
    ],
    ids=["default", "extended", "none", "all-v6", "all-v4", "adjacent"],
)
def test_is_unsafe_matches_ipaddress_membership(policy: Policy) -> None:
    rng = random.Random(5)
    addresses = _addresses(rng)
    for address in addresses:
        assert policy.is_unsafe(address) is _plain_is_unsafe(policy, address), address
    # safe_addresses (the core's filter, the table looked up once per list) is the same test;
    # subclasses (IPv4Interface...) are tested by their version.
    addresses += [ipaddress.ip_interface(str(a)) for a in addresses[:300:3]]  # type: ignore[misc]
    expected = [a for a in addresses if not _plain_is_unsafe(policy, a)]
    assert safe_addresses(policy, addresses) == expected


def test_is_unsafe_follows_each_policy_not_a_stale_table() -> None:
    ten = ipaddress.ip_address("10.1.2.3")
    for _ in range(3):  # alternate policies: each answers from its own networks
        assert DEFAULT_POLICY.with_unsafe("10.0.0.0/8").is_unsafe(ten)
        assert not DEFAULT_POLICY.is_unsafe(ten)


@pytest.mark.parametrize(
    "text",
    [
        "192.0.2.1", "192.0.2.01", "1.2.3", "1.2.3.4.5", "256.1.1.1", "2001:db8::1", "::",
        "::ffff:1.2.3.4", "mx1.example.org", "1example", "123", "", ".", "1..2", "٣.٣.٣.٣",
        "１.２.３.４", "fe80::1%eth0", "2001:db8::g", "a:b", "1.2.3.4 ",
    ],
)  # fmt: skip
def test_exchange_address_shortcut_matches_ipaddress(text: str) -> None:
    try:
        expected: Address | None = ipaddress.ip_address(text)
    except ValueError:
        expected = None
    assert _ip_address(text) == expected


# -- the lazy trace: formatted when read, the same text as formatting every step at once ------

RICH_ZONE = """
@       MX 10 mx1
@       MX 10 mx2
@       MX 10 alias
@       MX 20 mx3
@       MX 30 192.0.2.99.
@       MX 40 bad_name
mx1     A 192.0.2.1
mx1     AAAA 2001:db8::1
mx1     AAAA ::ffff:127.0.0.1
mx2     A 192.0.2.2
mx2     A 192.0.2.1
alias   CNAME real
real    AAAA 2001:db8::3
mx3     A 198.51.100.3
"""

# Recorded from the implementation that formatted every step eagerly (before the lazy trace).
SELECTION_TRACE = [
    (
        "mx",
        "MX lookup for example.org: 10 mx1.example.org., 10 mx2.example.org., "
        "10 alias.example.org., 20 mx3.example.org., 30 192.0.2.99., 40 "
        "bad_name.example.org.",
        None,
    ),
    (
        "mx-is-address",
        "MX record '30 192.0.2.99.' of example.org points to an IP address "
        "instead of a host name (RFC 5321 §5.1); ignored",
        "192.0.2.99",
    ),
    (
        "invalid-exchange",
        "MX record '40 bad_name.example.org.' of example.org is not a valid "
        "host name (label 'bad_name' is not letters, digits and hyphens (RFC "
        "5321 §4.1.2; no leading or trailing hyphen, no underscore)); ignored",
        "bad_name.example.org",
    ),
    (
        "order",
        "preference 10: shuffled to alias.example.org, mx1.example.org, mx2.example.org",
        None,
    ),
    ("order", "preference 20: mx3.example.org", None),
    ("lookup", "alias.example.org (CNAME real.example.org): 2001:db8::3", "alias.example.org"),
    ("lookup", "mx1.example.org: 2001:db8::1, ::ffff:7f00:1, 192.0.2.1", "mx1.example.org"),
    (
        "partial-address-failure",
        "AAAA lookup for mx2.example.org failed (SERVFAIL (fake)); using its other addresses",
        "mx2.example.org",
    ),
    ("lookup", "mx2.example.org: 192.0.2.2, 192.0.2.1", "mx2.example.org"),
    ("lookup", "mx3.example.org: 198.51.100.3", "mx3.example.org"),
    (
        "exchange-is-alias",
        "MX exchange alias.example.org is an alias (CNAME) of "
        "real.example.org; RFC 2181 §10.3 says it must not be; followed",
        "alias.example.org",
    ),
    (
        "unsafe-address",
        "address ::ffff:7f00:1 of mx1.example.org is in an unsafe network "
        "(loopback, link-local, multicast, reserved or configured); dropped",
        "mx1.example.org",
    ),
    (
        "duplicate-address",
        "address 192.0.2.1 of mx2.example.org is already listed for mx1.example.org",
        "mx2.example.org",
    ),
    (
        "families",
        "preference 10, families any: alias.example.org 2001:db8::3, "
        "mx1.example.org 192.0.2.1, mx1.example.org 2001:db8::1, "
        "mx2.example.org 192.0.2.2",
        None,
    ),
    ("families", "preference 20, families any: mx3.example.org 198.51.100.3", None),
    ("limit", "kept the first 4 of 5 addresses (max_addresses)", None),
    ("outcome", "5 target(s) on 4 host(s)", None),
]
ERROR_TRACE = [
    (
        "mx",
        "MX lookup for example.org: 10 mx1.example.org., 10 mx2.example.org., "
        "10 alias.example.org., 20 mx3.example.org., 30 192.0.2.99., 40 "
        "bad_name.example.org.",
        None,
    ),
    (
        "mx-is-address",
        "MX record '30 192.0.2.99.' of example.org points to an IP address "
        "instead of a host name (RFC 5321 §5.1); ignored",
        "192.0.2.99",
    ),
    (
        "invalid-exchange",
        "MX record '40 bad_name.example.org.' of example.org is not a valid "
        "host name (label 'bad_name' is not letters, digits and hyphens (RFC "
        "5321 §4.1.2; no leading or trailing hyphen, no underscore)); ignored",
        "bad_name.example.org",
    ),
    (
        "order",
        "preference 10: shuffled to alias.example.org, mx1.example.org, mx2.example.org",
        None,
    ),
    ("order", "preference 20: mx3.example.org", None),
    (
        "lookup",
        "alias.example.org: AAAA lookup: SERVFAIL (fake); A lookup: SERVFAIL (fake)",
        "alias.example.org",
    ),
    (
        "lookup",
        "mx1.example.org: AAAA lookup: SERVFAIL (fake); A lookup: SERVFAIL (fake)",
        "mx1.example.org",
    ),
    (
        "lookup",
        "mx2.example.org: AAAA lookup: SERVFAIL (fake); A lookup: SERVFAIL (fake)",
        "mx2.example.org",
    ),
    (
        "lookup",
        "mx3.example.org: AAAA lookup: NODATA; A lookup: SERVFAIL (fake)",
        "mx3.example.org",
    ),
    (
        "host-unusable",
        "alias.example.org is not usable: AAAA lookup: SERVFAIL (fake); A lookup: SERVFAIL (fake)",
        "alias.example.org",
    ),
    (
        "host-unusable",
        "mx1.example.org is not usable: AAAA lookup: SERVFAIL (fake); A lookup: SERVFAIL (fake)",
        "mx1.example.org",
    ),
    (
        "host-unusable",
        "mx2.example.org is not usable: AAAA lookup: SERVFAIL (fake); A lookup: SERVFAIL (fake)",
        "mx2.example.org",
    ),
    (
        "host-unusable",
        "mx3.example.org is not usable: AAAA lookup: NODATA; A lookup: SERVFAIL (fake)",
        "mx3.example.org",
    ),
    (
        "outcome",
        "DNSTemporaryError 451 4.4.3: no usable mail exchanger for "
        "example.org: alias.example.org: AAAA lookup: SERVFAIL (fake); A "
        "lookup: SERVFAIL (fake); mx1.example.org: AAAA lookup: SERVFAIL "
        "(fake); A lookup: SERVFAIL (fake); mx2.example.org: AAAA lookup: "
        "SERVFAIL (fake); A lookup: SERVFAIL (fake); mx3.example.org: AAAA "
        "lookup: NODATA; A lookup: SERVFAIL (fake)",
        None,
    ),
]


def _rich() -> tuple[FakeResolver, Policy]:
    fake = zone(RICH_ZONE)
    fake.fail("mx2.example.org", "AAAA")
    return fake, Policy(max_addresses=4, keep_one_per_preference=True)


def _steps(trace: tuple[TraceStep, ...]) -> list[tuple[str, str, str | None]]:
    return [(step.kind, step.message, step.host) for step in trace]


def test_lazy_trace_reads_as_the_eager_text() -> None:
    fake, policy = _rich()
    selection = select_targets("Example.ORG.", resolver=fake, rng=random.Random(5), policy=policy)
    trace = selection.trace
    # Issue 15: the lazy trace is a real Sequence type (mxselect.Trace), no longer a tuple
    # patched in by a descriptor; it equals the tuple of its steps.
    assert isinstance(trace, Trace)
    assert trace == tuple(trace)
    assert all(type(step) is TraceStep for step in trace)
    assert _steps(trace) == SELECTION_TRACE
    assert selection.trace is trace  # formatted once, then kept
    assert selection.explain() == explain(trace)
    fake.fail("mx3.example.org", "A")
    for host in ("mx1", "mx2", "real"):
        fake.fail(f"{host}.example.org")
    with pytest.raises(DNSTemporaryError) as info:
        select_targets("example.org", resolver=fake, rng=random.Random(5))
    assert isinstance(info.value.trace, Trace)
    assert _steps(info.value.trace) == ERROR_TRACE
    assert info.value.explain() == explain(info.value.trace)


def test_lazy_trace_is_the_same_sequence_for_every_reader() -> None:
    fake, policy = _rich()

    def make() -> Selection:
        return select_targets("example.org", resolver=fake, rng=random.Random(5), policy=policy)

    assert attrs.asdict(make(), recurse=False)["trace"] == tuple(make().trace)
    assert isinstance(attrs.asdict(make(), recurse=False)["trace"], Trace)
    assert _steps(attrs.evolve(make(), ttl=1).trace) == SELECTION_TRACE
    clone = pickle.loads(pickle.dumps(make()))
    assert _steps(clone.trace) == SELECTION_TRACE
    assert copy.copy(make()).trace == make().trace
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        make().trace = ()  # type: ignore[misc]
    assert Selection(domain="d", canonical_domain="d", targets=(), hosts=(), trace=()).trace == ()
    for host in ("mx1", "mx2", "mx3", "real"):
        fake.fail(f"{host}.example.org")
    with pytest.raises(DNSTemporaryError) as info:
        select_targets("example.org", resolver=fake, rng=random.Random(5))
    error = pickle.loads(pickle.dumps(info.value))  # pickled before its trace was read
    assert isinstance(error.trace, Trace)
    assert _steps(error.trace) == _steps(info.value.trace)
    assert _steps(error.trace)[-1][0] == "outcome"


# -- the plan's batch bookkeeping (answers by position) ----------------------------------------


def test_pending_and_feed_follow_the_plain_definition() -> None:
    """``pending`` is the batch minus the queries answered, in batch order; a query is
    accepted once, by equality (not identity); the batch moves on when the last one comes."""
    fake, policy = _rich()
    for seed in range(20):
        rng = random.Random(seed)
        plan = SelectionPlan("example.org", rng=random.Random(5), policy=policy)
        while not plan.done:
            batch = plan.pending
            answered: list[Query] = []
            for query in rng.sample(batch, len(batch)):
                assert plan.pending == tuple(q for q in batch if q not in answered)
                for done in answered:
                    with pytest.raises(ValueError, match="not a pending query"):
                        plan.feed(done, fake.answer(done))
                plan.feed(Query(query.name, query.rtype), fake.answer(query))  # an equal copy
                answered.append(query)
        expected = select_targets("example.org", resolver=fake, rng=random.Random(5), policy=policy)
        assert plan.result() == expected
        assert _steps(plan.result().trace) == SELECTION_TRACE


# -- name checks: the one-match fast paths decide as the label by label checks ----------------


def _names(rng: random.Random) -> list[str]:
    alphabet = "abcxyz0189-._AZ"
    out = [
        "",
        ".",
        "a",
        "a.",
        "a..b",
        "-a",
        "a-",
        "a_b",
        "1.2.3.4",
        "example.123",
        "ex.1a",
        "Ex.Org",
    ]
    for _ in range(6000):
        labels = [
            "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 2, 5, 62, 63, 64])))
            for _ in range(rng.randint(1, 5))
        ]
        out.append(".".join(labels))
    for _ in range(2000):
        out.append(".".join(rng.choice(["a" * 63, "b" * 61, "c-d", "9", "xn--bcher-kva"])
                            for _ in range(rng.randint(1, 6))))  # fmt: skip
        out.append(
            rng.choice(["a" * 1012, "a." * 506, "b" * 1013, "a" * 300 + ".", "a" * 1020 + "."])
        )
    return out


def _outcome(fn: Callable[[str], object], name: str) -> object:
    try:
        return fn(name)
    except InvalidDomainError as exc:
        return ("error", str(exc))


def test_name_fast_paths_match_the_label_by_label_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    names = _names(random.Random(11))
    lower = [name.lower().rstrip(".") for name in names]
    fast = [check_ldh_name(n) for n in lower], [_outcome(normalize_domain, n) for n in names]
    never = re.compile(r"(?!)")
    monkeypatch.setattr(_domain, "_LDH_NAME", never)
    monkeypatch.setattr(_domain, "_PLAIN_INPUT", never)
    plain = [check_ldh_name(n) for n in lower], [_outcome(normalize_domain, n) for n in names]
    assert fast[0] == plain[0]
    assert fast[1] == plain[1]
    assert sum(why is None for why in plain[0]) > 1000  # both outcomes well represented


# -- address families: ``type() is`` shortcuts decide as ``address.version`` ------------------


def _plain_family_order(level: list[Target], families: Families, first: int) -> list[Target]:
    six = [t for t in level if t.address.version == 6]
    four = [t for t in level if t.address.version == 4]
    if families is Families.PREFER_IPV4:
        return four + six
    if families is not Families.ANY or not six or not four:
        return six + four
    out, rest6 = six[:first], six[first:]
    for i in range(max(len(rest6), len(four))):
        out += four[i : i + 1] + rest6[i : i + 1]
    return out


def test_family_order_matches_the_version_definition() -> None:
    rng = random.Random(3)
    kinds = [
        lambda i: ipaddress.IPv4Address(i),
        lambda i: ipaddress.IPv6Address(i),
        lambda i: ipaddress.IPv4Interface(i),  # subclasses of the address types
        lambda i: ipaddress.IPv6Interface(i),
    ]
    for _ in range(500):
        level = [
            Target(f"h{i}", 10, rng.choice(kinds)(rng.getrandbits(32)))
            for i in range(rng.randint(1, 8))
        ]
        for families in Families:
            for first in (1, 2, 3):
                expected = _plain_family_order(level, families, first)
                assert _family_order(level, families, first) == expected


def test_order_targets_splits_families_as_family_order() -> None:
    """order_targets splits each level by family as it builds it: the same targets and
    notes as building the levels and ordering each with family_order."""
    from mxselect._model import OPPORTUNISTIC_TLS
    from mxselect._rules import Candidate, order_targets

    rng = random.Random(8)
    kinds = [ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface]
    for _ in range(300):
        usable = []
        for i in range(rng.randint(1, 6)):
            candidate = Candidate(f"h{i}", rng.choice([0, 10, 20]), None)
            found = [rng.choice(kinds)(rng.randrange(6)) for _ in range(rng.randint(1, 4))]
            usable.append((candidate, candidate.name, found))
        policy = Policy(
            families=rng.choice(list(Families)),
            first_family_count=rng.randint(1, 2),
            max_addresses=None,
        )
        levels: dict[int, list[Target]] = {}
        seen: set[object] = set()
        for candidate, _, found in usable:
            level = levels.setdefault(candidate.preference, [])
            for address in found:
                if address not in seen:
                    seen.add(address)
                    level.append(Target(candidate.name, candidate.preference, address))
        expected = [
            t
            for p in sorted(levels)
            for t in _family_order(levels[p], policy.families, policy.first_family_count)
        ]
        targets, _ = order_targets(usable, policy)
        assert targets == expected
        assert all(t.tls is OPPORTUNISTIC_TLS for t in targets)


def test_address_answers_keep_subclasses_and_drop_the_wrong_family() -> None:
    """An AAAA answer's IPv6 addresses (subclasses too) are used; an IPv4 one is dropped."""
    v6 = ipaddress.IPv6Address("2001:db8::1")
    v6_interface = ipaddress.IPv6Interface("2001:db8::2")
    v4 = ipaddress.IPv4Address("192.0.2.1")
    answers = {
        Query("example.org.", RRType.MX): Answer.from_mx([(10, "mx.example.org.")]),
        Query("mx.example.org.", RRType.AAAA): Answer(
            status=Status.RECORDS, addresses=(v4, v6_interface, v6)
        ),
        Query("mx.example.org.", RRType.A): Answer(
            status=Status.RECORDS, addresses=(ipaddress.IPv4Interface("192.0.2.2"), v6)
        ),
    }
    plan = SelectionPlan("example.org", rng=random.Random(1))
    while not plan.done:
        for query in plan.pending:
            plan.feed(query, answers[query])
    selection = plan.result()
    assert [str(a) for a in selection.addresses] == [
        "2001:db8::2/128",
        "192.0.2.2/32",
        "2001:db8::1",
    ]
    assert [w.code for w in selection.warnings] == [WarningCode.BAD_ANSWER] * 2


# -- the codec's Answer constructors (issue 19: make_answer, make_mx, make_tlsa) -------------


def _codec_sample(rng: random.Random) -> tuple[bytes, str, RRType, bool, Answer]:
    """A reply built with dnspython, and the Answer the public constructors build from the
    same data: MX, A, AAAA, TLSA or TXT records (some behind a CNAME), NODATA, NXDOMAIN."""
    import dns.flags
    import dns.message
    import dns.rrset

    rtype = rng.choice([RRType.MX, RRType.A, RRType.AAAA, RRType.TLSA, RRType.TXT])
    qname = f"h{rng.randrange(1000)}.example.org."
    dnssec = rng.random() < 0.5
    secure = dnssec and rng.random() < 0.5
    security = (Security.SECURE if secure else Security.INSECURE) if dnssec else Security.UNKNOWN
    query = dns.message.make_query(qname, rtype.value)
    response = dns.message.make_response(query)
    if secure:
        response.flags |= dns.flags.AD
    owner, aliases, canonical = qname, (), None
    ttl = rng.choice([0, 60, 300, 86400])
    if rng.random() < 0.3:
        canonical = f"target{rng.randrange(100)}.example.net."
        response.answer.append(dns.rrset.from_text(qname, ttl, "IN", "CNAME", canonical))
        owner, aliases = canonical, (qname,)
    kind = rng.choice(["records", "records", "records", "nodata", "nxdomain"])
    common: dict[str, Any] = {"canonical_name": canonical, "aliases": aliases}
    common["security"] = security
    if kind != "records":
        response.set_rcode(3 if kind == "nxdomain" else 0)
        negative = rng.choice([30, 900])
        response.authority.append(
            dns.rrset.from_text(
                "example.org." if canonical is None else "example.net.",
                3600,
                "IN",
                "SOA",
                f"ns.example. host.example. 1 7200 900 1209600 {negative}",
            )
        )
        made = Answer.nxdomain if kind == "nxdomain" else Answer.nodata
        expected = made(ttl=min(negative, ttl) if canonical else negative, **common)
        return response.to_wire(want_shuffle=False), qname, rtype, dnssec, expected
    count = rng.randint(1, 4)
    if rtype is RRType.MX:
        texts = [f"{rng.randrange(65536)} mx{i}.example.org." for i in range(count)]
    elif rtype in (RRType.A, RRType.AAAA):
        bits, cls = (
            (32, ipaddress.IPv4Address) if rtype is RRType.A else (128, ipaddress.IPv6Address)
        )
        texts = [str(cls(rng.getrandbits(bits))) for _ in range(count)]
    elif rtype is RRType.TLSA:
        texts = [
            f"{rng.randrange(4)} {rng.randrange(2)} 1 {rng.randbytes(32).hex()}"
            for _ in range(count)
        ]
    else:
        texts = [f'"v=STSv1; id={rng.randrange(10**6)}"' for _ in range(count)]
    rrset = dns.rrset.from_text_list(owner, ttl, "IN", rtype.value, texts)
    response.answer.append(rrset)
    # The data in the order the reply carries it (an RRset is a set).
    if rtype is RRType.MX:
        expected = Answer.from_mx(
            [(r.preference, r.exchange.to_text()) for r in rrset], ttl=ttl, **common
        )
    elif rtype in (RRType.A, RRType.AAAA):
        expected = Answer.from_addresses([r.address for r in rrset], ttl=ttl, **common)
    elif rtype is RRType.TLSA:
        expected = Answer.from_tlsa(
            [(r.usage, r.selector, r.mtype, r.cert) for r in rrset], ttl=ttl, **common
        )
    else:
        expected = Answer.from_txt(
            [b"".join(r.strings).decode("latin-1") for r in rrset], ttl=ttl, **common
        )
    return response.to_wire(want_shuffle=False), qname, rtype, dnssec, expected


def test_the_codec_builds_the_answers_the_public_constructors_build() -> None:
    """The codec's private constructors (slots set directly, no attrs __init__) give objects
    equal to, hashing as, printing as and pickling like the public constructors' -- and as
    frozen: a seeded sample of 600 replies of every kind the codec builds."""
    from mxselect._wire import decode, question_of

    rng = random.Random(19)
    kinds = set()
    for _ in range(600):
        wire, qname, rtype, dnssec, expected = _codec_sample(rng)
        got = decode(wire, question_of(qname, rtype), rtype, dnssec=dnssec)
        assert isinstance(got, Answer)
        assert type(got) is Answer
        assert got == expected
        assert hash(got) == hash(expected)
        assert repr(got) == repr(expected)
        assert attrs.asdict(got) == attrs.asdict(expected)
        assert pickle.loads(pickle.dumps(got)) == expected
        assert copy.copy(got) == expected
        for record in (*got.mx, *got.tlsa):
            assert type(record) is type(expected.mx[0] if got.mx else expected.tlsa[0])
            assert hash(record) == hash(attrs.evolve(record))
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            got.ttl = 1  # type: ignore[misc]
        kinds.add((rtype, got.status, got.canonical_name is not None, got.security))
    assert len(kinds) >= 40  # every type, status, alias and DNSSEC status met


# -- rule 6's order and rule 8a's families (issue 19: fewer steps for the usual answers) ------


def _plain_ordered_hosts(
    best: dict[str, int], literals: dict[str, Any], rng: random.Random
) -> list[tuple[str, int, Any]]:
    """Rule 6 as first written: group by preference, name order, shuffle each group."""
    groups: dict[int, list[str]] = {}
    for name, preference in best.items():
        groups.setdefault(preference, []).append(name)
    ordered = []
    for preference in sorted(groups):
        names = sorted(groups[preference])
        if len(names) > 1:
            rng.shuffle(names)
        ordered.extend((name, preference, literals.get(name)) for name in names)
    return ordered


def test_ordered_hosts_matches_the_plain_definition() -> None:
    """The same hosts, in the same seeded order, and one "order" note per preference."""
    from mxselect._rules import ordered_hosts

    rng = random.Random(11)
    for _ in range(400):
        best = {
            f"h{rng.randrange(30)}": rng.choice([0, 5, 10, 20]) for _ in range(rng.randint(1, 7))
        }
        literals = {n: ipaddress.IPv4Address(i) for i, n in enumerate(best) if rng.random() < 0.2}
        seed = rng.getrandbits(32)
        got, notes = ordered_hosts(best, literals, random.Random(seed))
        assert [tuple(c) for c in got] == _plain_ordered_hosts(best, literals, random.Random(seed))
        assert [n[0] for n in notes] == ["order"] * len(set(best.values()))
        texts = [n[1][0](*n[1][1:]) for n in notes]  # type: ignore[operator,index]
        assert all(t.startswith("preference ") for t in texts)


def _plain_family(addresses: tuple[Any, ...], version: int) -> list[Any] | None:
    """Rule 8a as first written: the addresses of the family, or None when any is not."""
    good = [a for a in addresses if a.version == version]
    return good if good and len(good) == len(addresses) else None


def test_family_result_shortcuts_match_the_version_test() -> None:
    """One address, or all of the exact type: the shortcut; anything else (a subclass, the
    wrong family) the general test -- the same addresses and the same failure either way."""
    from mxselect._lookup import Chain
    from mxselect._rules import family_result

    rng = random.Random(12)
    kinds = [
        ipaddress.IPv4Address,
        ipaddress.IPv6Address,
        ipaddress.IPv4Interface,
        ipaddress.IPv6Interface,
    ]
    for _ in range(600):
        rtype = rng.choice([RRType.A, RRType.AAAA])
        version = 4 if rtype is RRType.A else 6
        same: list[Any] = (
            [ipaddress.IPv4Address, ipaddress.IPv4Interface]
            if version == 4
            else [ipaddress.IPv6Address, ipaddress.IPv6Interface]
        )
        pool = same * 4 + kinds if rng.random() < 0.3 else same
        addresses = tuple(rng.choice(pool)(rng.getrandbits(32)) for _ in range(rng.randint(1, 4)))
        chain = Chain("h.example.org", rtype, 5)
        chain.absorb(Answer(status=Status.RECORDS, addresses=addresses))
        family, notes = family_result(chain, "h.example.org")
        expected = _plain_family(addresses, version)
        if expected is not None:
            assert family.addresses == expected
            assert family.failure is None
            assert not notes
            assert type(family.addresses) is list
        else:
            assert family.addresses == [a for a in addresses if a.version == version]
            assert [n[0] for n in notes] == [WarningCode.BAD_ANSWER]


def test_hosts_reached_for_tlsa_match_order_targets() -> None:
    """The TLSA pass (RFC 7672 §2.2.2) searches the hosts that keep a target after rule 8c;
    its shortcut (every host, when the addresses are distinct and within the limit) names
    the hosts :func:`order_targets` keeps, duplicates and limits included."""
    from mxselect._core import _reached
    from mxselect._rules import Candidate, Examined, order_targets

    rng = random.Random(19)
    kinds = [ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface]
    shortcut = 0
    for _ in range(2000):
        usable = []
        for i in range(rng.randint(1, 6)):
            candidate = Candidate(f"h{i}", rng.choice([0, 10, 20]), None)
            found = [rng.choice(kinds)(rng.randrange(12)) for _ in range(rng.randint(1, 3))]
            usable.append((Examined(candidate, found, candidate.name, "", False), found))
        usable.sort(key=lambda u: u[0].candidate.preference)
        policy = Policy(
            max_addresses=rng.choice([None, 2, 3, 4, 8]),
            keep_one_per_preference=rng.random() < 0.5,
        )
        targets, _ = order_targets([(e.candidate, e.canonical, a) for e, a in usable], policy)
        total = sum(len(a) for _, a in usable)
        limit = policy.max_addresses
        shortcut += len({x for _, a in usable for x in a}) == total and (
            limit is None or total <= limit
        )
        assert _reached(usable, policy) == {t.host for t in targets}
    assert 200 < shortcut < 1800  # both paths taken
