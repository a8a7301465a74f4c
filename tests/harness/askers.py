"""``ask(query) -> Answer`` through each of mxselect's resolver adapters, asking only a
loopback server (the harness's Unbound): the adapter tests run one test per backend.

Backends: ``"stub"`` (``StubResolver.resolve``), ``"stub-async"`` (``aresolve``),
``"stub-batch"`` (``aresolve_batch`` of one query), ``"dnspython"`` and ``"dnspython-async"``
(the adapters over ``harness.resolvers.make_dnspython_resolver``), ``"aiodns"``
(``AiodnsResolver``; skipped without the package).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from harness.resolvers import make_dnspython_resolver
from mxselect import Answer, Query

__all__ = ["asker"]


def asker(
    backend: str, port: int, *, trust: bool | None = None, edns: bool = False
) -> Callable[[Query], Answer]:
    """``ask(query)`` through ``backend``, asking only 127.0.0.1 at ``port``.

    ``trust``: the adapter's ``trust_ad`` (None: its default). ``edns``: the dnspython
    resolvers send EDNS0 with a 1232-octet payload (Unbound sends an Extended DNS Error,
    RFC 8914, only to a query with EDNS); the stub resolver does by default."""
    if backend.startswith("stub"):
        from mxselect.stub import StubResolver

        stub = StubResolver([("127.0.0.1", port)], timeout=2.0, lifetime=5.0, trust_ad=trust)
        if backend == "stub":
            return stub.resolve

        async def batch(query: Query) -> Answer:
            (answer,) = await stub.aresolve_batch([query])
            return answer

        run = stub.aresolve if backend == "stub-async" else batch
        return lambda query: asyncio.run(run(query))
    if backend == "aiodns":
        pytest.importorskip("aiodns")
        from mxselect.aiodns import AiodnsResolver

        async def via_aiodns(query: Query) -> Answer:
            async with AiodnsResolver(
                nameservers=["127.0.0.1"], port=port, timeout=2.0, tries=2
            ) as resolver:
                return await resolver.aresolve(query)

        return lambda query: asyncio.run(via_aiodns(query))
    from mxselect.dnspython import AsyncDnspythonResolver, DnspythonResolver

    if backend == "dnspython":
        resolver = make_dnspython_resolver(port, lifetime=5.0, timeout=2.0)
        if edns:
            resolver.use_edns(0, 0, 1232)
        return DnspythonResolver(resolver, trust_ad=trust).resolve
    if backend != "dnspython-async":
        raise ValueError(f"unknown backend {backend!r}")
    aresolver = make_dnspython_resolver(port, asynchronous=True, lifetime=5.0, timeout=2.0)
    if edns:
        aresolver.use_edns(0, 0, 1232)
    adapter = AsyncDnspythonResolver(aresolver, trust_ad=trust)
    return lambda query: asyncio.run(adapter.aresolve(query))
