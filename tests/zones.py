"""Shared test scaffolding: a FakeResolver for example.org built from a few zone lines."""

from __future__ import annotations

from mxselect.testing import FakeResolver

HEADER = """
$ORIGIN example.org.
$TTL 300
@     SOA  ns hostmaster 1 3600 900 604800 60
"""


def zone(body: str) -> FakeResolver:
    """example.org's SOA plus ``body`` (master-file lines relative to example.org.)."""
    return FakeResolver.from_zone(HEADER + body)
