"""The explain trace: every decision, in order, as data and as readable lines (#3)."""

from __future__ import annotations

import random

import pytest

import mxselect
from mxselect import Policy
from mxselect.testing import FakeResolver

ZONE = """
$ORIGIN example.org.
$TTL 300
@      SOA  ns hostmaster 1 3600 900 604800 60
@      MX   10 a
@      MX   10 b
@      MX   20 c
@      MX   30 192.0.2.99.
a      A    192.0.2.1
a      AAAA fe80::1
b      A    192.0.2.2
c      A    192.0.2.3
self   MX   10 me
me     A    192.0.2.50
"""


def test_trace_records_every_decision_in_order() -> None:
    """MX set, shuffle, lookups, drops (IP literal, unsafe address), families, limit, outcome."""
    fake = FakeResolver.from_zone(ZONE)
    selection = mxselect.select_targets(
        "example.org", resolver=fake, rng=random.Random(2), policy=Policy(max_addresses=2)
    )
    kinds = [step.kind for step in selection.trace]
    assert kinds == [
        "mx",
        "mx-is-address",
        "order",
        "order",
        "lookup",
        "lookup",
        "lookup",
        "unsafe-address",
        "families",
        "families",
        "limit",
        "outcome",
    ]
    text = selection.explain()
    assert "MX lookup for example.org: 10 a.example.org., 10 b.example.org., " in text
    assert "preference 10: shuffled to" in text
    assert "address fe80::1 of a.example.org is in an unsafe network" in text
    assert "kept the first 2 of 3 addresses (max_addresses)" in text
    assert text.splitlines()[-1].endswith("[outcome] 2 target(s) on 2 host(s)")


def test_errors_carry_the_trace() -> None:
    """A failure explains itself too: the self-loop names the MX and the address."""
    fake = FakeResolver.from_zone(ZONE)
    with pytest.raises(mxselect.MailLoopError) as info:
        mxselect.select_targets(
            "self.example.org", resolver=fake, policy=Policy(local_addresses=["192.0.2.50"])
        )
    assert [step.kind for step in info.value.trace] == ["mx", "order", "lookup", "outcome"]
    assert "loops back to myself" in info.value.explain()


def test_trace_is_not_part_of_equality() -> None:
    """Two selections with the same result compare equal whatever their traces."""
    fake = FakeResolver.from_zone(ZONE)
    one = mxselect.select_targets("example.org", resolver=fake, rng=random.Random(1))
    two = mxselect.select_targets("example.org", resolver=fake, rng=random.Random(1))
    assert one == two
    assert one.trace == two.trace
