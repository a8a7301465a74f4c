"""Reliability properties (hypothesis) over generated zones AND generated fault sets.

The zones cover every shape of the recipient domain (MX, NODATA with an implicit MX, NXDOMAIN,
null MX, a CNAME to another domain) and of its exchanges (A, AAAA, both, NXDOMAIN, NODATA,
CNAME'd, unsafe addresses, listed twice); the fault sets fail any (name, type) -- the MX query
included -- with any fault the fake knows. The fake resolver follows CNAMEs itself or leaves
them to mxselect (both drawn).

1. Adding failures never turns a selection or a temporary error into a permanent error; a
   permanent result under failures is the same permanent result without them (it was
   established by answers that did not fail: NXDOMAIN or null MX on the MX query, or every
   exchange answered without a usable address).
2. No result address was not in an answer.
3. The same zone, faults and seed always give the same result, sync and async alike.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mxselect
from mxselect import Answer, MXSelectError, Query, Selection
from mxselect.testing import FakeResolver, Fault

pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)

DOMAIN = "example.org"
PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
V4 = ("192.0.2.1", "192.0.2.2", "192.0.2.3", "127.0.0.1", "10.0.0.1")
V6 = ("2001:db8::1", "2001:db8::2", "::1", "fe80::1")
FAULTS = tuple(Fault)
#: Unsafe networks on, the private 10/8 among them: unsafe-only hosts are generated too.
POLICY = mxselect.Policy(max_addresses=None).with_unsafe("10.0.0.0/8")


@dataclass
class World:
    """A generated zone (as FakeResolver records) plus the names faults may hit."""

    records: dict[str, dict[str, Any]]
    follow_cnames: bool
    names: list[str] = field(default_factory=list)

    def fake(self, faults: list[tuple[str, str | None, Fault]]) -> FakeResolver:
        fake = FakeResolver(self.records, follow_cnames=self.follow_cnames)
        fake.add("example.org", "SOA", 60)
        for name, rtype, fault in faults:
            fake.fail(name, rtype, fault)
        return fake


@st.composite
def worlds(draw: st.DrawFn) -> World:
    records: dict[str, dict[str, Any]] = {}
    names = [DOMAIN]
    shape = draw(st.sampled_from(["mx", "mx", "mx", "nodata", "nxdomain", "nullmx", "cname"]))
    owner = DOMAIN
    if shape == "cname":
        owner = "target.example.net"
        records[DOMAIN] = {"CNAME": owner}
        names.append(owner)
    if shape == "nodata":
        records[owner] = {"TXT": ["x"]}
        if draw(st.booleans()):
            records[owner]["A"] = draw(st.lists(st.sampled_from(V4), min_size=1, unique=True))
    elif shape == "nullmx":
        records[owner] = {"MX": [(0, ".")]}
    elif shape != "nxdomain":
        mx = []
        for i in range(draw(st.integers(1, 5))):
            host = f"mx{i}.example.org"
            names.append(host)
            kind = draw(st.sampled_from(["a", "aaaa", "both", "both", "nxdomain", "nodata"]))
            target = host
            if kind in ("a", "aaaa", "both") and draw(st.integers(0, 3)) == 0:
                target = f"real{i}.example.net"
                records[host] = {"CNAME": target}
                names.append(target)
            rrsets: dict[str, Any] = {}
            if kind == "nodata":
                rrsets["TXT"] = ["x"]
            if kind in ("a", "both"):
                rrsets["A"] = draw(st.lists(st.sampled_from(V4), min_size=1, unique=True))
            if kind in ("aaaa", "both"):
                rrsets["AAAA"] = draw(st.lists(st.sampled_from(V6), min_size=1, unique=True))
            if rrsets:
                records[target] = rrsets
            for _ in range(draw(st.integers(1, 2))):
                mx.append((draw(st.sampled_from([0, 10, 10, 20])), host))
        if draw(st.integers(0, 5)) == 0:
            mx.append((0, "."))  # a null record mixed in
        records.setdefault(owner, {})["MX"] = mx
    return World(records, draw(st.booleans()), names)


def fault_sets(world: World) -> st.SearchStrategy[list[tuple[str, str | None, Fault]]]:
    return st.lists(
        st.tuples(
            st.sampled_from(world.names),
            st.sampled_from(["MX", "A", "AAAA", None]),
            st.sampled_from(FAULTS),
        ),
        max_size=6,
    )


class Recording:
    """Wraps a resolver; keeps every answer it gave."""

    def __init__(self, inner: FakeResolver) -> None:
        self.inner = inner
        self.answers: list[Answer] = []

    def resolve(self, query: Query) -> Answer:
        answer = self.inner.resolve(query)
        self.answers.append(answer)
        return answer

    async def aresolve(self, query: Query) -> Answer:
        answer = await self.inner.aresolve(query)
        self.answers.append(answer)
        return answer


def run(resolver: object, seed: int, api: str = "sync") -> Selection | MXSelectError:
    try:
        if api == "sync":
            return mxselect.select_targets(
                DOMAIN, resolver=resolver, rng=random.Random(seed), policy=POLICY
            )
        return asyncio.run(
            mxselect.aselect_targets(
                DOMAIN, resolver=resolver, rng=random.Random(seed), policy=POLICY
            )
        )
    except MXSelectError as exc:
        return exc


def summary(result: Selection | MXSelectError) -> tuple[object, ...]:
    """Everything a caller can see of a result."""
    if isinstance(result, Selection):
        return ("selection", tuple(result.targets), result.warnings, result.implicit, result.ttl)
    return (type(result).__name__, result.reason, result.status, result.warnings)


seeds = st.integers(0, 2**32 - 1)


@PROPERTY_SETTINGS
@given(data=st.data(), world=worlds(), seed=seeds)
def test_failures_never_create_a_permanent_error(
    data: st.DataObject, world: World, seed: int
) -> None:
    """F a subset of F': a non-permanent result under F stays non-permanent under F'; a
    permanent result under F' is the same permanent error under F (it rests on answers
    that did not fail)."""
    fewer = data.draw(fault_sets(world), label="faults")
    extra = data.draw(fault_sets(world).filter(bool), label="extra faults")
    before = run(world.fake(fewer), seed)
    after = run(world.fake(fewer + extra), seed)
    if not (isinstance(before, MXSelectError) and before.permanent):
        assert not (isinstance(after, MXSelectError) and after.permanent), (before, after)
    if isinstance(after, MXSelectError) and after.permanent:
        assert type(before) is type(after), (before, after)


@PROPERTY_SETTINGS
@given(data=st.data(), world=worlds(), seed=seeds)
def test_no_address_that_was_not_in_an_answer(data: st.DataObject, world: World, seed: int) -> None:
    """Every target address came in an A/AAAA answer of this selection (there are no
    address literals here), under any faults."""
    faults = data.draw(fault_sets(world), label="faults")
    recording = Recording(world.fake(faults))
    result = run(recording, seed)
    if isinstance(result, Selection):
        answered = {a for answer in recording.answers for a in answer.addresses}
        assert set(result.addresses) <= answered
        assert all(not POLICY.is_unsafe(a) for a in result.addresses)


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(data=st.data(), world=worlds(), seed=seeds)
def test_same_zone_faults_and_seed_same_result(
    data: st.DataObject, world: World, seed: int
) -> None:
    """Deterministic: twice sync and once async give the same result, warnings and reason."""
    faults = data.draw(fault_sets(world), label="faults")
    first = summary(run(world.fake(faults), seed))
    assert summary(run(world.fake(faults), seed)) == first
    assert summary(run(world.fake(faults), seed, "async")) == first
