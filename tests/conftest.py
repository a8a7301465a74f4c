"""Fixtures for tests that need real DNS servers on loopback.

* ``dns_env`` (session): Knot + validating Unbound, see harness/dnsenv.py and
  /work/shared/dns-test-harness.md. Skipped without the Debian packages, failed
  instead when the CI environment variable is set.
* ``unbound_resolver`` / ``async_unbound_resolver``: dnspython resolvers asking
  only that Unbound.
* ``fault_server``: a factory of started FaultServers (harness/faultserver.py),
  all stopped at teardown.

Nothing here queries anything but servers started on 127.0.0.1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.asyncresolver
import dns.resolver
import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:  # pyproject's pythonpath = ["tests"] does the same
    sys.path.insert(0, _TESTS_DIR)

from harness.dnsenv import DnsEnv, free_port, require_programs  # noqa: E402
from harness.faultserver import FaultServer, FaultServerFactory  # noqa: E402
from harness.resolvers import make_dnspython_resolver  # noqa: E402


@pytest.fixture(scope="session")
def dns_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsEnv]:
    """Knot (authoritative) and Unbound (validating recursive) on 127.0.0.1."""
    require_programs()
    env = DnsEnv(
        tmp_path_factory.mktemp("dns"),
        auth_port=free_port(5300),
        resolver_port=free_port(5353),
        dead_port=free_port(5399),
    )
    env.start()
    try:
        yield env
    finally:
        env.stop()


@pytest.fixture
def unbound_resolver(dns_env: DnsEnv) -> dns.resolver.Resolver:
    """A dnspython resolver asking only the harness's Unbound (no cache)."""
    return make_dnspython_resolver(dns_env.resolver_port, lifetime=5.0, timeout=2.0)


@pytest.fixture
def async_unbound_resolver(dns_env: DnsEnv) -> dns.asyncresolver.Resolver:
    """The asyncio twin of ``unbound_resolver``."""
    return make_dnspython_resolver(
        dns_env.resolver_port, asynchronous=True, lifetime=5.0, timeout=2.0
    )


@pytest.fixture
def aiodns_factory(dns_env: DnsEnv) -> Callable[[], Any]:
    """``make()`` returns a new ``mxselect.aiodns.AiodnsResolver`` asking only the harness's
    Unbound (nameservers and port given: never the system configuration). Use it inside the
    event loop and close it (``async with make() as resolver``). Skipped without aiodns,
    failed instead when the CI environment variable is set."""
    try:
        from mxselect.aiodns import AiodnsResolver
    except ImportError as exc:
        msg = f"aiodns missing ({exc}): pip install -e '.[aiodns]'"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)

    def make() -> AiodnsResolver:
        return AiodnsResolver(
            nameservers=["127.0.0.1"], port=dns_env.resolver_port, timeout=2.0, tries=2
        )

    return make


@pytest.fixture
def fault_server() -> Iterator[FaultServerFactory]:
    """``make(zone_text, default_delay_ms=0)`` returns a started FaultServer."""
    servers: list[FaultServer] = []

    def make(zone_text: str, default_delay_ms: float = 0) -> FaultServer:
        server = FaultServer(zone_text, default_delay_ms).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
