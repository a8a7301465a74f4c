"""Property tests (hypothesis) for MX target selection over generated zones.

Zones are built with ``mxselect.testing.FakeResolver`` from generated data: an MX RRset of
1-12 records for example.org with preferences from a small set (so ties happen), exchanges
``mx{i}.example.org`` with A and/or AAAA records drawn from small pools (so addresses repeat
across hosts), some exchanges that are CNAMEs, some NXDOMAIN or NODATA, and some listed twice.
No test touches the network; no hypothesis database is written.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import random
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mxselect
from mxselect import (
    InvalidDomainError,
    MXSelectError,
    NoUsableTargetsError,
    PermanentError,
    Selection,
    Target,
    TemporaryError,
)
from mxselect.testing import FakeResolver

# When a property fails, hypothesis's pytest plugin imports libcst to write a patch file, and
# libcst triggers mypy_extensions' DeprecationWarning; with filterwarnings=error that would hide
# the real failure behind an INTERNALERROR.
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)

DOMAIN = "example.org"
PREFERENCES = (0, 5, 10, 20, 65535)
V4_POOL = tuple(f"192.0.2.{i}" for i in range(1, 13))
V6_POOL = tuple(f"2001:db8::{i:x}" for i in range(1, 13))

ZONE_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass
class Zone:
    """Generated records plus what a correct selection may use."""

    records: dict[str, dict[str, Any]]
    #: lower-case exchange -> best preference among its MX records
    preference: dict[str, int] = field(default_factory=dict)
    #: lower-case exchange -> its A addresses / AAAA addresses (after any CNAME)
    v4: dict[str, set[IPAddress]] = field(default_factory=dict)
    v6: dict[str, set[IPAddress]] = field(default_factory=dict)

    def fake(self) -> FakeResolver:
        return FakeResolver(self.records)

    def addresses(self, host: str) -> set[IPAddress]:
        return self.v4.get(host, set()) | self.v6.get(host, set())

    @property
    def resolvable(self) -> list[str]:
        return [host for host in self.preference if self.addresses(host)]


#: No address limit: these properties look at every address.
ALL = mxselect.Policy(max_addresses=None)


@st.composite
def zones(draw: st.DrawFn) -> Zone:
    count = draw(st.integers(min_value=1, max_value=12))
    zone = Zone(records={})
    mx: list[tuple[int, str]] = []
    for i in range(count):
        host = f"mx{i}.example.org"
        kind = draw(st.sampled_from(["a", "aaaa", "both", "both", "nxdomain", "nodata"]))
        owner = host
        if kind in ("a", "aaaa", "both") and draw(st.integers(0, 5)) == 0:
            owner = f"real{i}.example.net"
            zone.records[host] = {"CNAME": owner}
        if kind == "nodata":
            zone.records[host] = {"TXT": ["no address here"]}
        rrsets: dict[str, Any] = {}
        if kind in ("a", "both"):
            v4 = draw(st.lists(st.sampled_from(V4_POOL), min_size=1, max_size=3, unique=True))
            rrsets["A"] = v4
            zone.v4[host] = {ipaddress.ip_address(a) for a in v4}
        if kind in ("aaaa", "both"):
            v6 = draw(st.lists(st.sampled_from(V6_POOL), min_size=1, max_size=3, unique=True))
            rrsets["AAAA"] = v6
            zone.v6[host] = {ipaddress.ip_address(a) for a in v6}
        if rrsets:
            zone.records[owner] = rrsets
        copies = draw(st.integers(1, 3)) if draw(st.integers(0, 4)) == 0 else 1
        for _ in range(copies):
            preference = draw(st.sampled_from(PREFERENCES))
            written = draw(st.sampled_from([host, host + ".", host.upper(), "Mx" + host[2:]]))
            mx.append((preference, written))
            zone.preference[host] = min(preference, zone.preference.get(host, 65535))
    zone.records[DOMAIN] = {"MX": draw(st.permutations(mx))}
    return zone


def usable_zones() -> st.SearchStrategy[Zone]:
    return zones().filter(lambda zone: bool(zone.resolvable))


seeds = st.integers(min_value=0, max_value=2**32 - 1)


def outcome(call: Callable[[], Selection]) -> Selection | MXSelectError:
    """The Selection, or the MXSelectError raised; any other exception propagates."""
    try:
        return call()
    except MXSelectError as exc:
        return exc


def run(zone: Zone, seed: int, fake: FakeResolver | None = None) -> Selection | MXSelectError:
    resolver = fake if fake is not None else zone.fake()
    return outcome(
        lambda: mxselect.select_targets(
            DOMAIN, resolver=resolver, rng=random.Random(seed), policy=ALL
        )
    )


def check_outcome_matches_zone(zone: Zone, result: Selection | MXSelectError) -> Selection | None:
    """With no DNS failure: a Selection iff some exchange has an address, else 5.4.4."""
    if zone.resolvable:
        assert isinstance(result, Selection), result
        return result
    assert isinstance(result, NoUsableTargetsError), result
    return None


# -- 1. Preference order (R5321-5.1-m, R1035-3.3.9-a) --------------------------------------


@ZONE_SETTINGS
@given(zone=zones(), seed=seeds)
def test_R5321_5_1_m_preference_order_never_inverted(zone: Zone, seed: int) -> None:
    """R5321-5.1-m: target and host preferences are non-decreasing, for any zone and seed."""
    selection = check_outcome_matches_zone(zone, run(zone, seed))
    if selection is None:
        return
    target_prefs = [t.preference for t in selection.targets]
    host_prefs = [h.preference for h in selection.hosts]
    assert target_prefs == sorted(target_prefs)
    assert host_prefs == sorted(host_prefs)
    # Each host carries its best preference (duplicates collapse to the minimum).
    assert [h.preference for h in selection.hosts] == [
        zone.preference[h.name] for h in selection.hosts
    ]


def test_R1035_3_3_9_a_numeric_not_lexicographic() -> None:
    """R1035-3.3.9-a / R5321-5.1-m: {20 c, 10 a, 65535 z, 0 p} -> p, a, c, z."""
    records: dict[str, dict[str, Any]] = {
        DOMAIN: {
            "MX": [
                (20, "c.example.org"),
                (10, "a.example.org"),
                (65535, "z.example.org"),
                (0, "p.example.org"),
            ]
        },
    }
    for i, name in enumerate("capz"):
        records[f"{name}.example.org"] = {"A": [f"192.0.2.{i + 1}"]}
    for seed in range(20):
        selection = mxselect.select_targets(
            DOMAIN, resolver=FakeResolver(records), rng=random.Random(seed), policy=ALL
        )
        assert [h.name[0] for h in selection.hosts] == ["p", "a", "c", "z"]


# -- 2. Equal-preference shuffle (R5321-5.1-n, R1123-5.3.4-b) ------------------------------

CHI2_CRITICAL_2_DOF = 13.816  # p = 0.001
CHI2_CRITICAL_5_DOF = 20.515  # p = 0.001


def chi_square_uniform(counts: Counter[Any], categories: list[Any]) -> float:
    total = sum(counts[c] for c in categories)
    expected = total / len(categories)
    return sum((counts[c] - expected) ** 2 / expected for c in categories)


def test_R5321_5_1_n_equal_preference_shuffle_uniform() -> None:
    """R5321-5.1-n: {10 a, 10 b, 10 c, 20 d}: a/b/c first uniformly, all 6 orders, d last."""
    records: dict[str, dict[str, Any]] = {
        DOMAIN: {
            "MX": [
                (10, "a.example.org"),
                (10, "b.example.org"),
                (10, "c.example.org"),
                (20, "d.example.org"),
            ]
        },
    }
    for i, name in enumerate("abcd"):
        records[f"{name}.example.org"] = {"A": [f"192.0.2.{i + 1}"]}
    fake = FakeResolver(records)
    first: Counter[str] = Counter()
    orders: Counter[tuple[str, ...]] = Counter()
    runs = 3000
    for seed in range(runs):
        selection = mxselect.select_targets(
            DOMAIN, resolver=fake, rng=random.Random(seed), policy=ALL
        )
        names = tuple(h.name[0] for h in selection.hosts)
        assert len(names) == 4
        assert names[3] == "d"
        assert [t.host[0] for t in selection.targets][-1] == "d"
        first[names[0]] += 1
        orders[names[:3]] += 1
    assert set(first) == {"a", "b", "c"}
    assert chi_square_uniform(first, ["a", "b", "c"]) < CHI2_CRITICAL_2_DOF, first
    permutations = list(itertools.permutations("abc"))
    assert set(orders) == set(permutations)
    assert chi_square_uniform(orders, permutations) < CHI2_CRITICAL_5_DOF, orders


def test_R5321_5_1_n_shuffle_independent_of_resolver_order() -> None:
    """R5321-5.1-n: with a seed, the order does not depend on the order of the MX RRset."""
    names = [f"{c}.example.org" for c in "abcdef"]
    results = set()
    for rotation in range(len(names)):
        rotated = names[rotation:] + names[:rotation]
        records: dict[str, dict[str, Any]] = {DOMAIN: {"MX": [(10, n) for n in rotated]}}
        for i, name in enumerate(names):
            records[name] = {"A": [f"192.0.2.{i + 1}"]}
        selection = mxselect.select_targets(
            DOMAIN, resolver=FakeResolver(records), rng=random.Random(7)
        )
        results.add(tuple(h.name for h in selection.hosts))
    assert len(results) == 1


# -- 3. Determinism -----------------------------------------------------------------------


@ZONE_SETTINGS
@given(zone=zones(), seed=seeds)
def test_same_seed_same_result(zone: Zone, seed: int) -> None:
    """Same zone and seed -> equal outcome, sync twice, async twice, and sync == async."""
    first = run(zone, seed)
    second = run(zone, seed)

    def run_async() -> Selection | MXSelectError:
        resolver = zone.fake()
        return outcome(
            lambda: asyncio.run(
                mxselect.aselect_targets(
                    DOMAIN, resolver=resolver, rng=random.Random(seed), policy=ALL
                )
            )
        )

    third = run_async()
    fourth = run_async()
    if isinstance(first, Selection):
        assert first == second == third == fourth
    else:
        for other in (second, third, fourth):
            assert type(other) is type(first)
            assert (other.reason, other.domain, other.warnings) == (
                first.reason,
                first.domain,
                first.warnings,
            )


# -- 4. Invalid input: no query (section A, checklist O) -----------------------------------

ldh_labels = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,12}[a-z0-9])?", fullmatch=True)
names = st.lists(ldh_labels, min_size=1, max_size=4).map(".".join).map(lambda n: n + ".example")
BAD_CHARACTERS = " \t\n\r\x00\x01\x1b\x7f\u00a0\u2028_@"


@st.composite
def with_inserted(draw: st.DrawFn, characters: str) -> str:
    name = draw(names)
    position = draw(st.integers(0, len(name)))
    return name[:position] + draw(st.sampled_from(characters)) + name[position:]


@st.composite
def long_names(draw: st.DrawFn) -> str:
    """LDH names of more than 253 characters made of labels of at most 63."""
    total = draw(st.integers(254, 600))
    letters = draw(st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=5))
    labels: list[str] = []
    remaining = total
    while remaining > 0:
        size = min(63, remaining)
        if remaining - size == 1:
            size -= 1
        labels.append((letters * 63)[:size])
        remaining -= size + 1
    return ".".join(labels)


invalid_domains = st.one_of(
    # underscore inside a label (RFC 5321 §4.1.2)
    st.builds(lambda a, b, tail: f"{a}_{b}.{tail}", ldh_labels, ldh_labels, names),
    # a whole address
    st.builds(lambda local, domain: f"{local}@{domain}", ldh_labels, names),
    # white space, control characters, '_' or '@' anywhere
    with_inserted(BAD_CHARACTERS),
    # an empty label
    st.builds(lambda a, b: f"{a}..{b}", names, names),
    st.builds(lambda a: "." + a, names),
    st.builds(lambda a: a + "..", names),
    # a label of more than 63 octets
    st.builds(lambda size, tail: "a" * size + "." + tail, st.integers(64, 200), names),
    # a leading or trailing hyphen
    st.builds(lambda a, tail: f"-{a}.{tail}", ldh_labels, names),
    st.builds(lambda a, tail: f"{a}-.{tail}", ldh_labels, names),
    st.builds(lambda tail, a: f"{tail}.{a}-", names, ldh_labels),
    # brackets around junk: 'z' and '_' are neither hex digits nor part of the IPv6 tag
    st.builds(
        lambda before, bad, after: f"[{before}{bad}{after}]",
        st.text(alphabet="0123456789abcdefIPv:._- ", max_size=12),
        st.sampled_from("z_ g%/"),
        st.text(alphabet="0123456789abcdefIPv:._- ", max_size=12),
    ),
    # over 253 characters
    long_names(),
)


@settings(max_examples=400, deadline=None, database=None)
@given(domain=invalid_domains)
def test_invalid_input_zero_queries(domain: str) -> None:
    """Section A / checklist O: invalid input -> InvalidDomainError (5.1.3) and no query."""
    fake = FakeResolver({"example": {"MX": [(10, "mx.example")]}, "*.example": {"A": "192.0.2.1"}})
    with pytest.raises(InvalidDomainError) as info:
        mxselect.select_targets(domain, resolver=fake)
    assert fake.queries == []
    assert (info.value.status, info.value.reply_code) == ("5.1.3", 501)
    assert info.value.domain == domain


any_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(exclude_categories=())),  # lone surrogates too
    st.text(alphabet="abcxn-Z09._@[]:üß\u3002\u0308 \x00IPv6", max_size=30),
    names,
    st.builds(lambda n: f"[{n}]", st.ip_addresses().map(str)),
    st.builds(lambda n: f"[IPv6:{n}]", st.ip_addresses(v=6).map(str)),
)


@settings(max_examples=500, deadline=None, database=None)
@given(domain=any_text)
def test_fuzz_any_text_selection_or_mxselect_error(domain: str) -> None:
    """Any str gives a Selection or an MXSelectError; InvalidDomainError means no query."""
    records: dict[str, dict[str, Any]] = {
        "example": {"MX": [(10, "mx.example")]},
        "mx.example": {"A": ["192.0.2.1"]},
    }
    fake = FakeResolver(records)
    result = outcome(lambda: mxselect.select_targets(domain, resolver=fake))
    assert isinstance(result, Selection | MXSelectError)
    if isinstance(result, InvalidDomainError):
        assert fake.queries == []
    else:
        assert all(q.name.isascii() and q.name.endswith(".") for q in fake.queries)
    if isinstance(result, Selection) and result.address_literal:
        assert fake.queries == []
        assert len(result.targets) == 1


# NR-LDH labels: no '--' in positions 3-4 (those are R-LDH / XN-labels, see N17).
nr_ldh_names = (
    st.lists(ldh_labels.filter(lambda label: label[2:4] != "--"), min_size=1, max_size=4)
    .map(".".join)
    .map(lambda n: n + ".example")
)


def fake_records(name: str) -> dict[str, dict[str, Any]]:
    return {name: {"MX": [(10, "mx.example")]}, "mx.example": {"A": ["192.0.2.1"]}}


FULL_WIDTH = {c: chr(ord(c) - 0x21 + 0xFF01) for c in string.ascii_lowercase + string.digits}


@settings(max_examples=300, deadline=None, database=None)
@given(
    name=nr_ldh_names, how=st.sampled_from(["soft-hyphen", "full-width", "upper"]), data=st.data()
)
def test_N24_uts46_mapping_agrees_with_ascii_path(name: str, how: str, data: st.DataObject) -> None:
    """N24 / R5890-2.3.1-b: a valid LDH name written with UTS #46-mapped code points (soft
    hyphen, full-width letters and digits, upper case) normalises to the same name."""
    if how == "soft-hyphen":
        position = data.draw(st.integers(0, len(name)))
        variant = name[:position] + "\u00ad" + name[position:]
    elif how == "full-width":
        variant = "".join(
            FULL_WIDTH[c] if c in FULL_WIDTH and data.draw(st.booleans()) else c for c in name
        )
    else:
        variant = name.upper()
    fake = FakeResolver(fake_records(name))
    expected = mxselect.select_targets(name, resolver=FakeResolver(fake_records(name)))
    actual = mxselect.select_targets(variant, resolver=fake)
    assert expected == actual
    assert fake.queries[0].name == name + "."


# -- 5./6. What the selection contains ----------------------------------------------------


@ZONE_SETTINGS
@given(zone=zones(), seed=seeds)
def test_result_addresses_come_from_answers(zone: Zone, seed: int) -> None:
    """Every address of a host is one of that exchange's (or its CNAME target's) records."""
    selection = check_outcome_matches_zone(zone, run(zone, seed))
    if selection is None:
        return
    for host in selection.hosts:
        assert set(host.addresses) <= zone.addresses(host.name), host
    for target in selection.targets:
        assert target.address in zone.addresses(target.host), target
        assert target.preference == zone.preference[target.host]


@ZONE_SETTINGS
@given(zone=zones(), seed=seeds)
def test_hosts_unique_and_targets_match_hosts(zone: Zone, seed: int) -> None:
    """Hosts are unique, targets are the hosts' addresses in order, no address repeats."""
    selection = check_outcome_matches_zone(zone, run(zone, seed))
    if selection is None:
        return
    host_names = [h.name for h in selection.hosts]
    assert len(host_names) == len(set(host_names))
    # Targets may interleave the hosts of one preference level (family balance), but each
    # host's addresses appear in the targets in the host's own order.
    assert sorted(map(str, selection.targets)) == sorted(
        str(Target(h.name, h.preference, a)) for h in selection.hosts for a in h.addresses
    )
    for host in selection.hosts:
        assert tuple(t.address for t in selection.targets if t.host == host.name) == host.addresses
    addresses = list(selection.addresses)
    assert len(addresses) == len(set(addresses))
    assert all(h.addresses for h in selection.hosts)


@ZONE_SETTINGS
@given(zone=zones(), seed=seeds)
def test_R5321_5_1_k_every_usable_address_returned(zone: Zone, seed: int) -> None:
    """R5321-5.1-k / R1123-2.3-a: without a limit, every address of every exchange is listed."""
    selection = check_outcome_matches_zone(zone, run(zone, seed))
    if selection is None:
        return
    everything = set().union(*(zone.addresses(host) for host in zone.preference))
    assert set(selection.addresses) == everything


# -- 7. Temporary failures never become permanent (checklist I) ---------------------------

failure_plans = st.lists(
    st.tuples(
        st.sampled_from(["A", "AAAA", None]),
        st.sampled_from(["servfail", "timeout"]),
    ),
    min_size=12,
    max_size=12,
)


@ZONE_SETTINGS
@given(
    zone=usable_zones(),
    seed=seeds,
    chosen=st.lists(st.booleans(), min_size=12, max_size=12),
    plans=failure_plans,
    # Half the time every lookup of every exchange fails, so that case is always explored.
    wipe_out=st.booleans(),
)
def test_temporary_failure_never_permanent(
    zone: Zone,
    seed: int,
    chosen: list[bool],
    plans: list[tuple[str | None, str]],
    wipe_out: bool,
) -> None:
    """Failing any exchanges' A/AAAA lookups gives a Selection or a TemporaryError, never
    a PermanentError; a Selection exactly when some exchange keeps a working family."""
    assert isinstance(run(zone, seed), Selection)
    if wipe_out:
        chosen = [True] * len(chosen)
        plans = [(None, fault) for _, fault in plans]
    fake = zone.fake()
    still_usable = []
    failed_any = False
    for i, host in enumerate(sorted(zone.preference)):
        rtype, fault = plans[i]
        if chosen[i]:
            failed_any = True
            fake.fail(host, rtype, fault)
        lost4 = chosen[i] and rtype in ("A", None)
        lost6 = chosen[i] and rtype in ("AAAA", None)
        if (zone.v4.get(host) and not lost4) or (zone.v6.get(host) and not lost6):
            still_usable.append(host)
    result = run(zone, seed, fake)
    assert not isinstance(result, PermanentError), result
    assert isinstance(result, Selection | TemporaryError), result
    if still_usable:
        assert isinstance(result, Selection), result
        assert {h.name for h in result.hosts} <= set(still_usable)
    else:
        assert failed_any
        assert isinstance(result, mxselect.DNSTemporaryError), result
        assert (result.status, result.reply_code) == ("4.4.3", 451)
