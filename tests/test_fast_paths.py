"""The performance shortcuts of the core (issue 5) decide exactly as the plain definitions."""

from __future__ import annotations

import ipaddress
import random

import pytest

from mxselect import Policy
from mxselect._core import _ip_address
from mxselect._policy import DEFAULT_POLICY

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
    ],
    ids=["default", "extended", "none", "all-v6", "all-v4"],
)
def test_is_unsafe_matches_ipaddress_membership(policy: Policy) -> None:
    rng = random.Random(5)
    for address in _addresses(rng):
        assert policy.is_unsafe(address) is _plain_is_unsafe(policy, address), address


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
