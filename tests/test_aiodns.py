"""The aiodns adapter's error mapping (the e2e suite in test_e2e_unbound.py runs it against
Knot + Unbound): every c-ares outcome is classified like the dnspython adapter's; and its retry
of queries a malformed datagram failed (issue 13 item 6b), against the fault server."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
from typing import Any

import pytest

import mxselect
from mxselect import DNSTemporaryError, Query, RRType, Status, WarningCode

if not os.environ.get("CI"):  # in CI (.ci/run installs the extra) a missing aiodns fails
    pytest.importorskip("aiodns", reason="pip install -e '.[aiodns]'")
import aiodns.error
import pycares
from harness.faultserver import FaultServer, FaultServerFactory

from mxselect.aiodns import AiodnsResolver, answer_from_error

Q = Query("example.test.", RRType.MX)


def error(code: int) -> aiodns.error.DNSError:
    return aiodns.error.DNSError(code, pycares.errno.strerror(code))


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        (pycares.errno.ARES_ENOTFOUND, Status.NXDOMAIN, ""),
        (pycares.errno.ARES_ENODATA, Status.NODATA, ""),
        (pycares.errno.ARES_ESERVFAIL, Status.TEMPFAIL, "SERVFAIL from 127.0.0.1@53"),
        (pycares.errno.ARES_EREFUSED, Status.TEMPFAIL, "REFUSED from 127.0.0.1@53"),
        (pycares.errno.ARES_EFORMERR, Status.TEMPFAIL, "FORMERR from 127.0.0.1@53"),
        (pycares.errno.ARES_ETIMEOUT, Status.TEMPFAIL, "timeout after 4 s (127.0.0.1@53)"),
        (pycares.errno.ARES_ECONNREFUSED, Status.TEMPFAIL, "c-ares error 11: "),
    ],
)
def test_error_mapping(code: int, status: Status, reason: str) -> None:
    answer = answer_from_error(Q, error(code), servers="127.0.0.1@53", timeout=4)
    assert answer.status is status
    assert answer.reason.startswith(reason)


def test_negative_ttl_option_and_unknown_exceptions() -> None:
    nx = answer_from_error(Q, error(pycares.errno.ARES_ENOTFOUND), negative_ttl=60)
    assert (nx.status, nx.ttl) == (Status.NXDOMAIN, 60)
    other = answer_from_error(Q, RuntimeError("boom"))
    assert (other.status, other.reason) == (Status.TEMPFAIL, "RuntimeError: boom")


def test_R3463_3_5_b_nothing_listening_is_temporary() -> None:
    """No server on the port: a temporary 4.4.3, never a bounce."""

    async def run() -> None:
        async with AiodnsResolver(nameservers=["127.0.0.1"], port=9, timeout=0.2, tries=1) as r:
            await mxselect.aselect_targets("example.test", resolver=r)

    with pytest.raises(DNSTemporaryError) as info:
        asyncio.run(run())
    assert info.value.status == "4.4.3"


# -- a malformed datagram resets c-ares's UDP socket (issue 13 item 6b) ---------------------------

ZONE = """
$ORIGIN good.test.
$TTL 300
@    SOA  ns hostmaster 1 3600 900 604800 60
@    MX   10 mx1
@    MX   20 mx2
mx1  A    192.0.2.1
mx1  AAAA 2001:db8::1
mx2  A    192.0.2.2
mx2  AAAA 2001:db8::2
nodata  MX 10 mx1
"""
#: Every address of good.test, in selection order (IPv6 first, RFC 8305 interleaving).
EVERY_ADDRESS = ["2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2"]
#: The healthy answers wait this long, so they are in flight when the garbage comes back.
DELAY_MS = 100


def _select(server: FaultServer, **options: Any) -> mxselect.Selection:
    async def run() -> mxselect.Selection:
        async with AiodnsResolver(nameservers=["127.0.0.1"], port=server.port, **options) as r:
            return await mxselect.aselect_targets(
                "good.test", resolver=r, policy=mxselect.Policy(max_addresses=None)
            )

    return asyncio.run(run())


@pytest.mark.e2e
@pytest.mark.parametrize("times", [2, 3])
def test_malformed_datagrams_for_one_name_do_not_fail_the_others(
    fault_server: FaultServerFactory, times: int
) -> None:
    """mx2's AAAA gets ``times`` garbage replies while the other three address queries are in
    flight on the same c-ares socket. c-ares closes the socket on each and requeues every query
    on it, using one of its 2 tries: without the retry every query ends in ARES_EBADRESP and a
    healthy domain is deferred (measured). With it, every address is found."""
    server = fault_server(ZONE, default_delay_ms=DELAY_MS)
    server.set_rule("mx2.good.test.", "AAAA", "garbage", delay_ms=0, times=times)
    selection = _select(server, timeout=2.0, tries=2)
    assert [str(t.address) for t in selection.targets] == EVERY_ADDRESS
    assert selection.warnings == ()


@pytest.mark.e2e
def test_a_name_that_always_gets_garbage_fails_alone(fault_server: FaultServerFactory) -> None:
    """mx2's AAAA always answers garbage: that query fails (a temporary failure: mx2 is used
    over IPv4), and only that one -- mx1's A and AAAA and mx2's A, in flight on the socket each
    garbage reply closes, are resolved. The retry runs on a channel of its own; on the shared
    one, the broken query's own retry reset the socket again and failed all four (measured)."""
    server = fault_server(ZONE, default_delay_ms=DELAY_MS)
    server.set_rule("mx2.good.test.", "AAAA", "garbage", delay_ms=0)
    selection = _select(server, timeout=2.0, tries=2)
    assert [str(t.address) for t in selection.targets] == [
        "2001:db8::1",
        "192.0.2.1",
        "192.0.2.2",
    ]
    (warning,) = selection.warnings
    assert (warning.code, warning.host) == (WarningCode.PARTIAL_ADDRESS_FAILURE, "mx2.good.test")
    assert "c-ares error 10" in warning.message  # ARES_EBADRESP: "Misformatted DNS reply"


def _count(server: FaultServer, name: str, rtype: str) -> int:
    return sum(1 for q in server.queries if q[:2] == (name, rtype))


async def _raw(server: FaultServer, name: str, rtype: str) -> None:
    """One query through aiodns itself (no adapter), as the adapter's channel is set up."""
    resolver = aiodns.DNSResolver(
        nameservers=["127.0.0.1"], udp_port=server.port, tcp_port=server.port, timeout=5.0, tries=2
    )
    try:
        await resolver.query_dns(name, rtype)
    except aiodns.error.DNSError:
        pass
    finally:
        await resolver.close()


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("behavior", "status"),
    [
        ("garbage", Status.TEMPFAIL),
        ("short", Status.TEMPFAIL),
        ("servfail", Status.TEMPFAIL),
        ("refused", Status.TEMPFAIL),
        ("formerr", Status.TEMPFAIL),
        ("nxdomain", Status.NXDOMAIN),
        ("answer", Status.NODATA),
    ],
)
def test_only_a_malformed_reply_is_retried_and_only_once(
    fault_server: FaultServerFactory, behavior: str, status: Status
) -> None:
    """A malformed reply (garbage, a 5-byte packet) is asked once more, never twice; an answer
    the server meant -- NXDOMAIN, NODATA, SERVFAIL, REFUSED, FORMERR -- is not asked again:
    the adapter sends what c-ares alone sends (counted against plain aiodns)."""
    server = fault_server(ZONE)
    name = "nodata.good.test."  # an MX and nothing else: its A query is NODATA
    server.set_rule(name, "A", behavior)
    asyncio.run(_raw(server, name, "A"))
    alone = _count(server, name, "A")
    server.clear()

    async def run() -> mxselect.Answer:
        async with AiodnsResolver(
            nameservers=["127.0.0.1"], port=server.port, timeout=5.0, tries=2
        ) as r:
            return await r.aresolve(Query(name, RRType.A))

    answer = asyncio.run(run())
    assert answer.status is status
    retried = behavior in ("garbage", "short")
    assert _count(server, name, "A") == (2 if retried else 1) * alone


class _Garbled:
    """A stand-in for ``aiodns.DNSResolver``: every query fails with ARES_EBADRESP after
    ``delay`` seconds, then (``heal``) succeeds."""

    def __init__(self, delay: float = 0.0, *, heal: bool = False) -> None:
        self.delay = delay
        self.heal = heal
        self.calls = 0
        self.nameservers = ["192.0.2.53"]

    async def query_dns(self, name: str, rtype: str) -> Any:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.heal and self.calls > 1:
            return _Result()
        raise aiodns.error.DNSError(pycares.errno.ARES_EBADRESP, "Misformatted DNS reply")


class _Address:
    addr = "192.0.2.7"


class _Record:
    type = pycares.QUERY_TYPE_A
    name = "example.test"
    ttl = 60
    data = _Address()


class _Result:
    def __init__(self) -> None:
        self.answer = [_Record()]


def test_the_retry_is_once_and_within_the_budget() -> None:
    """The retry is made once, and only while the query's budget (timeout x tries) lasts."""
    query = Query("example.test.", RRType.A)

    async def ask(fake: _Garbled, **options: Any) -> mxselect.Answer:
        return await AiodnsResolver(fake, **options).aresolve(query)  # type: ignore[arg-type]

    healed = _Garbled(heal=True)
    answer = asyncio.run(ask(healed))
    assert (answer.status, healed.calls) == (Status.RECORDS, 2)
    assert answer.addresses == (ipaddress.ip_address("192.0.2.7"),)
    broken = _Garbled()
    answer = asyncio.run(ask(broken))
    assert (answer.status, broken.calls) == (Status.TEMPFAIL, 2)
    assert answer.reason.startswith("c-ares error 10: Misformatted DNS reply")
    late = _Garbled(0.2, heal=True)  # the budget is 0.1 s: gone when the reply comes
    answer = asyncio.run(ask(late, timeout=0.1, tries=1))
    assert (answer.status, late.calls) == (Status.TEMPFAIL, 1)


def _os_threads() -> set[str]:
    """The threads of this process by ID, c-ares's native ones included."""
    return set(os.listdir("/proc/self/task"))


def _fds() -> set[tuple[str, str]]:
    """The open descriptors of this process, each with what it is (``socket:[inode]``...)."""
    open_now: set[tuple[str, str]] = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the one listdir itself used
            open_now.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
    return open_now


@pytest.mark.e2e
def test_cancelled_during_the_retry_leaves_nothing_behind(
    fault_server: FaultServerFactory,
) -> None:
    """A selection cancelled while retries are in flight: their channels (a c-ares thread and
    a socket each) are closed."""
    server = fault_server(
        "$ORIGIN slow.test.\n@ SOA ns h 1 1 1 1 60\n@ MX 10 delay-3000\ndelay-3000 A 192.0.2.1\n"
    )
    server.set_rule("delay-3000.slow.test.", "A", "garbage", delay_ms=0, times=1)

    Fds = set[tuple[str, str]]

    async def main() -> tuple[set[str], Fds, set[str], set[str], Fds]:
        async with AiodnsResolver(
            nameservers=["127.0.0.1"], port=server.port, timeout=2.0, tries=1
        ) as resolver:
            await resolver.aresolve(Query("slow.test.", RRType.MX))  # the channel is built
            # (by identity, not by count: c-ares closes the MX query's socket, and ends the
            # threads of channels closed before, in threads of its own -- on a loaded machine
            # after this snapshot; what counts is that nothing opened later is left open)
            before = (_os_threads(), _fds())
            task = asyncio.ensure_future(mxselect.aselect_targets("slow.test", resolver=resolver))
            for _ in range(100):  # until both address queries are asked again
                await asyncio.sleep(0.02)
                if len(server.queries) == 5:
                    break
            during = _os_threads()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(100):  # c-ares ends a closed channel's thread on its own
                if _os_threads() <= before[0]:
                    break
                await asyncio.sleep(0.02)
            return *before, during, _os_threads(), _fds()

    threads, fds, threads_during, threads_after, fds_after = asyncio.run(main())
    # MX, A and AAAA (A gets garbage: the shared socket is closed, AAAA fails with it), both again
    assert sorted(q[1] for q in server.queries) == ["A", "A", "AAAA", "AAAA", "MX"]
    assert len(threads_during - threads) == 2  # one channel of its own per retry
    assert threads_after - threads == set()  # no thread started since is left running...
    assert fds_after - fds == set()  # ...and no descriptor opened since is left open
