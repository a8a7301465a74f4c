"""dnspython resolvers that only ever ask one loopback server.

Never built from the system configuration nor the module-level resolver: tests
must not read /etc/resolv.conf or touch the network.
"""

from __future__ import annotations

from typing import Literal, overload

import dns.asyncresolver
import dns.resolver

__all__ = ["make_dnspython_resolver"]


@overload
def make_dnspython_resolver(
    port: int,
    host: str = ...,
    *,
    asynchronous: Literal[False] = ...,
    lifetime: float = ...,
    timeout: float | None = ...,
) -> dns.resolver.Resolver: ...


@overload
def make_dnspython_resolver(
    port: int,
    host: str = ...,
    *,
    asynchronous: Literal[True],
    lifetime: float = ...,
    timeout: float | None = ...,
) -> dns.asyncresolver.Resolver: ...


def make_dnspython_resolver(
    port: int,
    host: str = "127.0.0.1",
    *,
    asynchronous: bool = False,
    lifetime: float = 2.0,
    timeout: float | None = None,
) -> dns.resolver.Resolver | dns.asyncresolver.Resolver:
    """A dnspython resolver (``dns.asyncresolver.Resolver`` if ``asynchronous``)
    asking only ``host``@``port``, without cache, search list or resolv.conf.

    ``lifetime`` bounds a whole ``resolve()`` call; ``timeout`` bounds each try
    (None keeps dnspython's default of 2 s, which the lifetime caps anyway)."""
    resolver: dns.resolver.Resolver | dns.asyncresolver.Resolver
    if asynchronous:
        resolver = dns.asyncresolver.Resolver(configure=False)
    else:
        resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.cache = None
    resolver.lifetime = lifetime
    if timeout is not None:
        resolver.timeout = timeout
    return resolver
