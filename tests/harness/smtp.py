"""Helpers for the SMTP servers (aiosmtpd) the MTA tests start on loopback."""

from __future__ import annotations

import socket


def port_free_on(*addresses: str) -> int:
    """A TCP port free on every one of ``addresses`` (loopback IPv4 addresses), so that
    servers on each can share it -- as MX hosts all listen on port 25."""
    first, *others = addresses
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((first, 0))
            port = int(probe.getsockname()[1])
        try:
            for address in others:
                with socket.socket() as other:
                    other.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no port free on all of {', '.join(addresses)}")
