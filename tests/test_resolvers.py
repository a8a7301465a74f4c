"""The resolver interface the drivers use is the one mxselect.typing declares (issue 15 §1):
capabilities found by protocol (isinstance, the ``lifetime`` keyword), exceptions mapped once,
dnspython found by isinstance, no global default resolver, services on shared modules only."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Sequence
from pathlib import Path

import dns.asyncresolver
import dns.resolver
import pytest

import mxselect
from mxselect import Answer, DNSTemporaryError, Query
from mxselect._resolvers import async_port, provides, sync_port
from mxselect.testing import FakeResolver
from mxselect.typing import AsyncBatchResolver, AsyncResolver, BatchResolver, Resolver

ZONE = "$ORIGIN example.org.\n@ SOA ns hm 1 2 3 4 5\n@ MX 10 mx\nmx A 192.0.2.1\n"
PACKAGE = Path(mxselect.__file__).parent


class Plain:
    """resolve(query) only: never given a lifetime."""

    def __init__(self) -> None:
        self.fake = FakeResolver.from_zone(ZONE)
        self.calls: list[tuple[Query, dict[str, object]]] = []

    def resolve(self, query: Query) -> Answer:
        self.calls.append((query, {}))
        return self.fake.resolve(query)


class WithLifetime(Plain):
    def resolve(self, query: Query, lifetime: float | None = None) -> Answer:  # type: ignore[override]
        self.calls.append((query, {"lifetime": lifetime}))
        return self.fake.resolve(query)


class WithKwargs(Plain):
    def resolve(self, query: Query, **options: object) -> Answer:  # type: ignore[override]
        self.calls.append((query, dict(options)))
        return self.fake.resolve(query)


class Batched(Plain):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[Query, ...]] = []

    def resolve_batch(self, queries: Sequence[Query]) -> list[Answer]:
        self.batches.append(tuple(queries))
        return [self.fake.resolve(q) for q in queries]


class AsyncBatched:
    def __init__(self) -> None:
        self.fake = FakeResolver.from_zone(ZONE)
        self.batches: list[tuple[Query, ...]] = []

    async def aresolve(self, query: Query) -> Answer:
        raise AssertionError("the batch method is used")

    async def aresolve_batch(self, queries: Sequence[Query]) -> list[Answer]:
        self.batches.append(tuple(queries))
        return [self.fake.resolve(q) for q in queries]


def test_protocols_are_runtime_checkable_capabilities() -> None:
    assert isinstance(Plain(), Resolver)
    assert not isinstance(Plain(), BatchResolver)
    assert isinstance(Batched(), BatchResolver)
    assert isinstance(AsyncBatched(), AsyncResolver)
    assert isinstance(AsyncBatched(), AsyncBatchResolver)
    assert isinstance(FakeResolver(), Resolver)
    assert isinstance(mxselect.CachingResolver(FakeResolver()), BatchResolver)


def test_lifetime_goes_only_to_resolvers_that_declare_it() -> None:
    """With a deadline, the time left goes to a ``lifetime`` keyword (or ``**kwargs``) and
    never to a plain ``resolve(query)``, which would raise TypeError (and defer the mail)."""
    for resolver, expect in ((Plain(), False), (WithLifetime(), True), (WithKwargs(), True)):
        selection = mxselect.select_targets("example.org", resolver=resolver, deadline=5)
        assert [str(a) for a in selection.addresses] == ["192.0.2.1"]
        given = [options.get("lifetime") for _, options in resolver.calls]
        assert all(isinstance(v, float) and 0 < v <= 5 for v in given) is expect, resolver
        if not expect:
            assert given == [None] * len(resolver.calls)
        resolver.calls.clear()
        asyncio.run(mxselect.aselect_targets("example.org", resolver=resolver, deadline=5))
        given = [options.get("lifetime") for _, options in resolver.calls]
        assert all(isinstance(v, float) and 0 < v <= 5 for v in given) is expect, resolver


def test_batch_methods_are_used_when_declared() -> None:
    sync = Batched()
    mxselect.select_targets("example.org", resolver=sync)
    assert [len(b) for b in sync.batches] == [1, 2]
    assert sync.calls == []
    batched = AsyncBatched()
    asyncio.run(mxselect.aselect_targets("example.org", resolver=batched))
    assert [len(b) for b in batched.batches] == [1, 2]


def test_exceptions_and_wrong_types_are_temporary_in_one_place() -> None:
    class Raising:
        def resolve(self, query: Query) -> Answer:
            raise RuntimeError("boom")

    class Wrong:
        def resolve(self, query: Query) -> object:
            return "not an answer"

    for resolver, text in ((Raising(), "resolver raised RuntimeError: boom"), (Wrong(), "str")):
        port = sync_port(resolver)
        answer = port.answer(Query("example.org.", mxselect.RRType.MX))
        assert answer.status is mxselect.Status.TEMPFAIL
        assert text in (answer.reason or "")
        with pytest.raises(DNSTemporaryError, match=text):
            mxselect.select_targets("example.org", resolver=resolver)
        with pytest.raises(DNSTemporaryError, match=text):
            asyncio.run(mxselect.aselect_targets("example.org", resolver=resolver))


def test_dnspython_resolvers_are_found_by_isinstance() -> None:
    from mxselect.dnspython import AsyncDnspythonResolver, DnspythonResolver

    sync = dns.resolver.Resolver(configure=False)
    assert isinstance(sync_port(sync).resolver, DnspythonResolver)
    asynchronous = dns.asyncresolver.Resolver(configure=False)
    assert isinstance(async_port(asynchronous).resolver, AsyncDnspythonResolver)
    with pytest.raises(TypeError, match=r"needs a dns\.resolver\.Resolver"):
        sync_port(asynchronous)

    class Subclassed(dns.resolver.Resolver):
        pass

    assert isinstance(sync_port(Subclassed(configure=False)).resolver, DnspythonResolver)
    with pytest.raises(TypeError, match="resolve"):
        sync_port(object())
    with pytest.raises(TypeError, match="aresolve"):
        async_port(object())


def test_no_global_default_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """``resolver=None`` reads the system configuration for each call: nothing is cached in
    a module global (a changed /etc/resolv.conf is seen; tests need no monkeypatched global)."""
    reads: list[object] = []

    def fake_system(resolver: dns.resolver.Resolver, filename: object = None) -> None:
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = 9  # nobody serves there
        resolver.lifetime = 0.1
        reads.append(resolver)

    monkeypatch.setattr(dns.resolver.Resolver, "read_resolv_conf", fake_system)
    for _ in range(2):
        with pytest.raises(DNSTemporaryError):
            mxselect.select_targets("example.org")
    assert len(reads) == 2
    assert reads[0] is not reads[1]


def test_services_import_only_public_or_shared_modules() -> None:
    """cache.py and testing.py use the shared resolver module, never the drivers' privates."""
    for name in ("cache", "testing", "stub", "dnspython", "aiodns", "delivery"):
        tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                assert node.module != "_drivers", name


def test_provides_is_isinstance_of_the_protocols() -> None:
    """The per-class memo of the protocol checks answers as isinstance does, every time: a
    class with the methods, an object with its own method attribute, one without."""

    class Batching:
        async def aresolve(self, query: Query) -> Answer:
            return Answer.tempfail("x")

        async def aresolve_batch(self, queries: Sequence[Query]) -> list[Answer]:
            return []

    class Plain:
        pass

    own = Plain()
    own.resolve = lambda query: Answer.tempfail("x")  # type: ignore[attr-defined]
    protocols = (Resolver, BatchResolver, AsyncResolver, AsyncBatchResolver)
    for _ in range(2):  # the second time from the memo
        for resolver in (Batching(), Plain(), own, FakeResolver({}), object()):
            for protocol in protocols:
                assert provides(resolver, protocol) is isinstance(resolver, protocol)
