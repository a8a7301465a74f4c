"""mxselect.stub.StubResolver: the client side -- servers, retries, TCP, sockets, lifecycle.

The codec (mxselect._wire) has its own tests (tests/test_wire.py); the fault matrix and the
Knot + Unbound suite run every outcome through the stub too. Here: what only a client does.
Every server is on loopback: the fault server fixture, or a tiny scripted server below.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

import mxselect
import mxselect.stub as stub_module
from mxselect import DNSTemporaryError, Query, RRType, Status
from mxselect import _wire as wire
from mxselect.stub import (
    Exchange,
    Failure,
    Rcode,
    Reply,
    Server,
    Signal,
    Stray,
    StubResolver,
    classify,
)

pytestmark = pytest.mark.e2e

ZONE = """
$ORIGIN stub.test.
$TTL 300
@        SOA  ns hostmaster 1 3600 900 604800 60
d        MX   10 mx1.d
d        MX   20 mx2.d
mx1.d    A    192.0.2.1
mx1.d    AAAA 2001:db8::1
mx2.d    A    192.0.2.2
big      MX   10 mx1.d
"""
# Enough MX records that the answer does not fit in 512 octets (a TC over plain UDP), but
# fits in EDNS0's 1232.
ZONE += "".join(f"big MX {i} host-number-{i:03d}.example.net.\n" for i in range(20))

MX = Query("d.stub.test.", RRType.MX)
A = Query("mx1.d.stub.test.", RRType.A)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def dead_port() -> int:
    """A loopback UDP/TCP port with nothing listening (ICMP port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- construction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ([[]], {}, "at least one nameserver"),
        ([["dns.example"]], {}, "must be an IP address"),
        ([["127.0.0.1"]], {"port": 0}, "port must be 1..65535"),
        ([[("127.0.0.1", 70000)]], {}, "port must be 1..65535"),
        ([["127.0.0.1"]], {"port": True}, "port must be 1..65535"),
        ([["127.0.0.1"]], {"timeout": 0}, "timeout must be a positive"),
        ([["127.0.0.1"]], {"lifetime": float("nan")}, "lifetime must be a positive"),
        ([["127.0.0.1"]], {"timeout": "2"}, "timeout must be a positive"),
    ],
)
def test_bad_configuration_is_a_value_error(
    args: list[object], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        StubResolver(*args, **kwargs)  # type: ignore[arg-type]


def test_nameserver_forms() -> None:
    stub = StubResolver(["192.0.2.1", ("::1", 5353), "2001:db8::53"], port=1053)
    assert [(a, p) for a, p, _ in stub.nameservers] == [
        ("192.0.2.1", 1053),
        ("::1", 5353),
        ("2001:db8::53", 1053),
    ]
    assert StubResolver("127.0.0.1").nameservers[0][:2] == ("127.0.0.1", 53)
    assert "192.0.2.1@1053" in repr(stub)


def test_a_name_that_cannot_be_sent_is_a_tempfail_and_sends_nothing(fault_server) -> None:  # type: ignore[no-untyped-def]
    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)])
    bad = Query("a" * 64 + ".stub.test.", RRType.A)
    for answer in (stub.resolve(bad), asyncio.run(stub.aresolve(bad))):
        assert answer.status is Status.TEMPFAIL
        assert "cannot ask" in answer.reason
    assert server.queries == []


# -- the retry engine, without sockets: servers, replies, classification, the loop ----------
#
# As dnspython's test_resolution drives _Resolution: the typed pieces fed literal replies,
# a fake clock, no server at all.

S1 = Server("192.0.2.1", 53, socket.AF_INET)
S2 = Server("192.0.2.2", 53, socket.AF_INET)


def test_a_server_is_a_frozen_value() -> None:
    server = Server.parse("2001:DB8::53", 53)
    assert server == Server("2001:db8::53", 53, socket.AF_INET6)
    assert server.where == "2001:db8::53@53"
    assert Server.parse(("192.0.2.1", 5353), 53) == Server("192.0.2.1", 5353, socket.AF_INET)
    assert StubResolver(["192.0.2.1"]).nameservers == (S1,)
    assert {S1: 1}[Server("192.0.2.1", 53, socket.AF_INET)] == 1  # a key, by value
    with pytest.raises(AttributeError):
        S1.port = 54  # type: ignore[misc]


QUESTION = wire.question_of("d.stub.test.", RRType.MX)


def reply_to(question_name: str = "d.stub.test.") -> dns.message.Message:
    query = dns.message.make_query(question_name, "MX")
    query.id = 4242
    return dns.message.make_response(query)


def test_classify_judges_every_kind_of_message() -> None:
    """One function for UDP and TCP: each kind of message, given literally."""
    records = reply_to()
    records.answer.append(dns.rrset.from_text("d.stub.test.", 300, "IN", "MX", "10 mx1.d."))
    got = classify(records.to_wire(), QUESTION, QUESTION, RRType.MX)
    assert isinstance(got, mxselect.Answer)
    assert [(r.preference, r.exchange) for r in got.mx] == [(10, "mx1.d.")]

    nxdomain = reply_to()
    nxdomain.set_rcode(dns.rcode.NXDOMAIN)
    got = classify(nxdomain.to_wire(), QUESTION, QUESTION, RRType.MX)
    assert isinstance(got, mxselect.Answer)
    assert got.status is Status.NXDOMAIN

    for rcode, text in ((dns.rcode.SERVFAIL, "SERVFAIL"), (dns.rcode.REFUSED, "REFUSED")):
        failed = reply_to()
        failed.set_rcode(rcode)
        assert classify(failed.to_wire(), QUESTION, QUESTION, RRType.MX) == Rcode(int(rcode))
        assert Rcode(int(rcode)).text == text
    badvers = reply_to()
    badvers.use_edns(0)
    badvers.set_rcode(dns.rcode.BADVERS)  # extended RCODE 16, in the OPT record
    assert classify(badvers.to_wire(), QUESTION, QUESTION, RRType.MX) == Rcode(16)
    assert Rcode(16).text == "BADVERS"
    assert Rcode(23).text == "RCODE 23"

    truncated = reply_to()
    truncated.flags |= dns.flags.TC
    assert classify(truncated.to_wire(), QUESTION, QUESTION, RRType.MX) is Signal.TRUNCATED

    other = reply_to("other.stub.test.")
    stray = classify(other.to_wire(), QUESTION, QUESTION, RRType.MX)
    assert isinstance(stray, Stray)
    assert stray.why.startswith("unreadable reply (the reply is for another question")
    cut = classify(records.to_wire()[:-3], QUESTION, QUESTION, RRType.MX)
    assert isinstance(cut, Stray)


def test_classify_with_dns0x20_takes_only_an_exact_echo() -> None:
    sent = wire.question_of("D.sTuB.TeSt.", RRType.MX)  # the question as sent, mixed case
    exact = reply_to("D.sTuB.TeSt.")
    exact.answer.append(dns.rrset.from_text("D.sTuB.TeSt.", 300, "IN", "MX", "10 mx1.d."))
    got = classify(exact.to_wire(), QUESTION, sent, RRType.MX)
    assert isinstance(got, mxselect.Answer)
    assert [r.exchange for r in got.mx] == ["mx1.d."]
    lower = reply_to()
    lower.answer.append(dns.rrset.from_text("d.stub.test.", 300, "IN", "MX", "10 mx1.d."))
    assert classify(lower.to_wire(), QUESTION, sent, RRType.MX) is Signal.CASE_MISMATCH
    # a FORMERR without the question repeats no case (RFC 6891 §7): the server's failure
    bare = (4242).to_bytes(2, "big") + b"\x81\x01" + bytes(8)
    assert classify(bare, QUESTION, sent, RRType.MX) == Rcode(1)


def test_over_tcp_what_udp_ignores_ends_the_exchange() -> None:
    """One message per connection (RFC 7766 §7): another ID, or a message that is no reply
    to our question, is the exchange's failure; over UDP both are ignored."""
    good = reply_to()
    good.answer.append(dns.rrset.from_text("d.stub.test.", 300, "IN", "MX", "10 mx1.d."))
    data = good.to_wire()
    assert isinstance(stub_module._tcp_reply(data, 4242, QUESTION, RRType.MX, S1), mxselect.Answer)
    assert stub_module._tcp_reply(data, 4243, QUESTION, RRType.MX, S1) == Failure(
        "a message with another ID over TCP from 192.0.2.1@53"
    )
    other = reply_to("other.stub.test.").to_wire()
    failure = stub_module._tcp_reply(other, 4242, QUESTION, RRType.MX, S1)
    assert isinstance(failure, Failure)
    assert failure.text.startswith("unreadable reply (the reply is for another question")
    assert failure.text.endswith(") from 192.0.2.1@53")


ANSWER = mxselect.Answer.from_mx([mxselect.MXRecord(10, "mx1.d.stub.test.")], ttl=300)


def drive(
    stub: StubResolver, script: Sequence[tuple[float, Reply]], lifetime: float = 5.0
) -> tuple[list[Exchange], mxselect.Answer]:
    """Run the retry loop with a fake clock: each exchange takes the seconds the script says
    and gets its reply. Returns the exchanges asked for and the answer."""
    now = 100.0
    steps = stub._attempts(lifetime, now + lifetime, lambda: now)
    asked: list[Exchange] = []
    replies = iter(script)
    try:
        exchange = next(steps)
        while True:
            asked.append(exchange)
            step = next(replies, None)
            assert step is not None, f"the loop asked for more: {exchange}"
            seconds, reply = step
            now += seconds
            exchange = steps.send(reply)
    except StopIteration as stop:
        assert next(replies, None) is None, "the loop stopped before the script's end"
        return asked, stop.value


def test_the_retry_loop_goes_round_the_servers_on_timeouts() -> None:
    stub = StubResolver(["192.0.2.1", "192.0.2.2"], timeout=2, lifetime=5)
    asked, answer = drive(stub, [(2, Signal.TIMEOUT), (2, Signal.TIMEOUT), (0.1, ANSWER)])
    assert answer is ANSWER
    assert [(e.tcp, e.server, e.wait) for e in asked] == [
        (False, S1, 2),
        (False, S2, 2),
        (False, S1, 1),  # what is left of the lifetime
    ]
    asked, answer = drive(stub, [(2, Signal.TIMEOUT)] * 3)
    assert answer.status is Status.TEMPFAIL
    assert answer.reason == "timeout after 5.0 s (asked 192.0.2.1@53, 192.0.2.2@53)"


def test_the_retry_loop_asks_a_truncated_question_again_over_tcp() -> None:
    stub = StubResolver(["192.0.2.1", "192.0.2.2"])
    asked, answer = drive(stub, [(0.1, Signal.TRUNCATED), (0.1, ANSWER)])
    assert answer is ANSWER
    assert [(e.tcp, e.server) for e in asked] == [(False, S1), (True, S1)]
    refused = Failure("connection refused from 192.0.2.1@53")
    asked, answer = drive(
        stub, [(0.1, Signal.TRUNCATED), (0.1, refused), (0.1, Rcode(wire.SERVFAIL))]
    )
    assert [(e.tcp, e.server) for e in asked] == [(False, S1), (True, S1), (False, S2)]
    assert answer.reason == (
        "connection refused from 192.0.2.1@53 over TCP (the UDP reply was truncated); "
        "SERVFAIL from 192.0.2.2@53"
    )
    tcp = StubResolver(["192.0.2.1"], tcp=True)  # TC over TCP: that server's failure
    asked, answer = drive(tcp, [(0.1, Signal.TRUNCATED)])
    assert [e.tcp for e in asked] == [True]
    assert answer.reason == "TRUNCATED"


def test_the_retry_loop_drops_a_failing_server_and_keeps_the_others() -> None:
    stub = StubResolver(["192.0.2.1", "192.0.2.2"], timeout=2, lifetime=5)
    asked, answer = drive(
        stub,
        [
            (0.1, Rcode(wire.SERVFAIL)),
            (2, Signal.TIMEOUT),
            (2, Signal.TIMEOUT),
            (1, Signal.TIMEOUT),
        ],
    )
    assert [e.server for e in asked] == [S1, S2, S2, S2]  # S1 is not asked again
    assert answer.reason == "timeout after 5.0 s (asked 192.0.2.2@53); SERVFAIL from 192.0.2.1@53"
    failure = Failure("OSError: no route from 192.0.2.2@53")
    asked, answer = drive(stub, [(0.1, Rcode(wire.REFUSED)), (0.1, failure)])
    assert answer.reason == "REFUSED from 192.0.2.1@53; OSError: no route from 192.0.2.2@53"


def test_the_retry_loop_asks_again_without_edns_and_without_mixed_case() -> None:
    stub = StubResolver(["192.0.2.1", "192.0.2.2"], dns0x20=True)
    asked, answer = drive(
        stub,
        [
            (0.1, Rcode(wire.FORMERR)),  # RFC 6891 §7: the same server, without EDNS
            (0.1, Signal.CASE_MISMATCH),  # DNS 0x20: the same server, in lower case
            (0.1, Rcode(wire.SERVFAIL)),
            (0.1, ANSWER),
        ],
    )
    assert answer is ANSWER
    assert [(e.server, e.edns, e.caps) for e in asked] == [
        (S1, True, True),
        (S1, False, True),
        (S1, False, False),
        (S2, False, True),  # no EDNS for this query from then on; mixed case for S2
    ]
    asked, answer = drive(stub, [(0.1, Rcode(wire.NOTIMP))] * 3)
    assert [(e.server, e.edns) for e in asked] == [(S1, True), (S1, False), (S2, False)]
    assert answer.reason == (
        "NOTIMP from 192.0.2.1@53 (to EDNS); NOTIMP from 192.0.2.1@53; NOTIMP from 192.0.2.2@53"
    )


def test_the_retry_loop_with_its_lifetime_spent_asks_nothing() -> None:
    stub = StubResolver(["192.0.2.1"])
    asked, answer = drive(stub, [], lifetime=0)
    assert asked == []
    assert answer.reason == "timeout after 0.0 s"
    # the lifetime runs out between a truncated reply and its TCP exchange
    asked, answer = drive(stub, [(1.0, Signal.TRUNCATED)], lifetime=1.0)
    assert [e.tcp for e in asked] == [False]
    assert answer.reason == "timeout after 1.0 s"


# -- answers and both protocols ----------------------------------------------------------


@pytest.mark.parametrize("api", ["sync", "async"])
def test_answers_over_udp(api: str, fault_server) -> None:  # type: ignore[no-untyped-def]
    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)])
    ask: Callable[[Query], mxselect.Answer] = (
        stub.resolve if api == "sync" else lambda q: asyncio.run(stub.aresolve(q))
    )
    mx = ask(MX)
    assert mx.status is Status.RECORDS
    assert sorted((r.preference, r.exchange) for r in mx.mx) == [
        (10, "mx1.d.stub.test."),
        (20, "mx2.d.stub.test."),
    ]
    assert mx.ttl == 300
    nodata = ask(Query("mx2.d.stub.test.", RRType.AAAA))
    assert (nodata.status, nodata.ttl) == (Status.NODATA, 60)  # min(SOA TTL 300, MINIMUM 60)
    nx = ask(Query("nope.stub.test.", RRType.MX))
    assert (nx.status, nx.ttl) == (Status.NXDOMAIN, 60)
    assert [q[2] for q in server.queries] == ["udp", "udp", "udp"]


@pytest.mark.parametrize("api", ["sync", "async"])
def test_truncated_reply_is_asked_again_over_tcp(api: str, fault_server) -> None:  # type: ignore[no-untyped-def]
    """RFC 1123 §6.1.3.2: TC=1 -> the same question over TCP."""
    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)], edns=False)  # 512 octets: the big MX set
    query = Query("big.stub.test.", RRType.MX)
    answer = stub.resolve(query) if api == "sync" else asyncio.run(stub.aresolve(query))
    assert answer.status is Status.RECORDS
    assert len(answer.mx) == 21
    assert [q[2] for q in server.queries] == ["udp", "tcp"]


@pytest.mark.parametrize("api", ["sync", "async"])
def test_edns_payload_avoids_tcp_for_a_large_answer(api: str, fault_server) -> None:  # type: ignore[no-untyped-def]
    """RFC 6891: with EDNS0 (1232 octets) the same answer comes over UDP in one exchange."""
    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)])
    query = Query("big.stub.test.", RRType.MX)
    answer = stub.resolve(query) if api == "sync" else asyncio.run(stub.aresolve(query))
    assert len(answer.mx) == 21
    assert [q[2] for q in server.queries] == ["udp"]


@pytest.mark.parametrize("api", ["sync", "async"])
def test_tcp_only(api: str, fault_server) -> None:  # type: ignore[no-untyped-def]
    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)], tcp=True)
    answer = stub.resolve(MX) if api == "sync" else asyncio.run(stub.aresolve(MX))
    assert answer.status is Status.RECORDS
    assert [q[2] for q in server.queries] == ["tcp"]


@pytest.mark.parametrize("api", ["sync", "async"])
def test_truncated_then_tcp_fails_names_tcp(api: str, fault_server) -> None:  # type: ignore[no-untyped-def]
    server = fault_server(ZONE)
    server.set_rule("d.stub.test.", "MX", "tc-notcp")
    # nothing here is meant to time out (the closed connection ends the query at once): the
    # default bounds, so that a loaded machine cannot turn the TC reply into a timeout
    stub = StubResolver([("127.0.0.1", server.port)], timeout=2.0, lifetime=5.0)
    answer = stub.resolve(MX) if api == "sync" else asyncio.run(stub.aresolve(MX))
    assert answer.status is Status.TEMPFAIL
    assert "over TCP (the UDP reply was truncated)" in answer.reason
    assert f"127.0.0.1@{server.port}" in answer.reason


# -- servers: failover, retransmission, errors ---------------------------------------------


@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize("rcode", ["servfail", "refused", "formerr"])
def test_an_error_from_one_server_goes_to_the_next(api: str, rcode: str, fault_server) -> None:  # type: ignore[no-untyped-def]
    bad, good = fault_server(ZONE), fault_server(ZONE)
    bad.set_rule("d.stub.test.", "MX", rcode)
    stub = StubResolver([("127.0.0.1", bad.port), ("127.0.0.1", good.port)], timeout=1.0)
    answer = stub.resolve(MX) if api == "sync" else asyncio.run(stub.aresolve(MX))
    assert answer.status is Status.RECORDS
    # A FORMERR/NOTIMP to an EDNS query is asked once more without EDNS (RFC 6891 §7).
    assert len(bad.queries) == (2 if rcode == "formerr" else 1)
    assert len(good.queries) == 1


@pytest.mark.parametrize("api", ["sync", "async"])
def test_every_server_failing_names_each(api: str, fault_server) -> None:  # type: ignore[no-untyped-def]
    one, two = fault_server(ZONE), fault_server(ZONE)
    one.set_rule("d.stub.test.", "MX", "servfail")
    two.set_rule("d.stub.test.", "MX", "refused")
    stub = StubResolver([("127.0.0.1", one.port), ("127.0.0.1", two.port)], timeout=1.0)
    answer = stub.resolve(MX) if api == "sync" else asyncio.run(stub.aresolve(MX))
    assert answer.status is Status.TEMPFAIL
    assert answer.reason == (
        f"SERVFAIL from 127.0.0.1@{one.port}; REFUSED from 127.0.0.1@{two.port}"
    )
    # an error is not retried on the same server
    assert (len(one.queries), len(two.queries)) == (1, 1)


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_lost_datagram_is_sent_again(api: str, fault_server) -> None:  # type: ignore[no-untyped-def]
    """RFC 1536 §1 / RFC 1123 §6.1.3.3: no reply within the timeout -> retransmit."""
    server = fault_server(ZONE)
    server.set_rule("d.stub.test.", "MX", "drop", times=2)
    stub = StubResolver([("127.0.0.1", server.port)], timeout=0.2, lifetime=3.0)
    started = time.monotonic()
    answer = stub.resolve(MX) if api == "sync" else asyncio.run(stub.aresolve(MX))
    assert answer.status is Status.RECORDS
    assert len(server.queries) == 3
    assert 0.35 < time.monotonic() - started < 2.0


@pytest.mark.parametrize("api", ["sync", "async"])
def test_no_reply_at_all_is_a_timeout_naming_the_servers(api: str, fault_server) -> None:  # type: ignore[no-untyped-def]
    one, two = fault_server(ZONE), fault_server(ZONE)
    for server in (one, two):
        server.set_rule("d.stub.test.", "MX", "drop")
    stub = StubResolver(
        [("127.0.0.1", one.port), ("127.0.0.1", two.port)], timeout=0.1, lifetime=0.5
    )
    started = time.monotonic()
    answer = stub.resolve(MX) if api == "sync" else asyncio.run(stub.aresolve(MX))
    elapsed = time.monotonic() - started
    assert answer.status is Status.TEMPFAIL
    assert answer.reason == (
        f"timeout after 0.5 s (asked 127.0.0.1@{one.port}, 127.0.0.1@{two.port})"
    )
    assert 0.45 < elapsed < 1.5
    # both servers asked, alternately, more than once
    assert len(one.queries) >= 2
    assert len(two.queries) >= 2


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_dead_server_is_skipped_without_waiting(api: str, fault_server) -> None:  # type: ignore[no-untyped-def]
    """ICMP port unreachable on the connected socket: the next server at once, not after the
    timeout."""
    good = fault_server(ZONE)
    dead = dead_port()
    stub = StubResolver([("127.0.0.1", dead), ("127.0.0.1", good.port)], timeout=3.0)
    started = time.monotonic()
    answer = stub.resolve(MX) if api == "sync" else asyncio.run(stub.aresolve(MX))
    assert answer.status is Status.RECORDS
    assert time.monotonic() - started < 1.0
    only_dead = StubResolver([("127.0.0.1", dead)], timeout=3.0)
    answer = only_dead.resolve(MX) if api == "sync" else asyncio.run(only_dead.aresolve(MX))
    assert answer.status is Status.TEMPFAIL
    assert answer.reason == f"connection refused from 127.0.0.1@{dead}"


@pytest.mark.parametrize("api", ["sync", "async"])
def test_deadline_lowers_the_lifetime(api: str, fault_server) -> None:  # type: ignore[no-untyped-def]
    """The drivers pass the time left before their deadline; a 20 s lifetime does not hold
    the message."""
    server = fault_server(ZONE)
    server.set_rule("d.stub.test.", "MX", "drop")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=20, lifetime=20)
    started = time.monotonic()

    def select() -> object:
        if api == "sync":
            return mxselect.select_targets("d.stub.test", resolver=stub, deadline=0.3)
        return asyncio.run(mxselect.aselect_targets("d.stub.test", resolver=stub, deadline=0.3))

    with pytest.raises(DNSTemporaryError) as info:
        select()
    assert time.monotonic() - started < 2.0
    assert info.value.reply_code == 451


# -- replies that must not be taken -------------------------------------------------------


class ScriptedServer:
    """A UDP server on loopback that answers each query with the replies ``script`` returns
    (wire messages, sent in order)."""

    def __init__(self, script: Callable[[dns.message.Message, bytes], list[bytes]]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.script = script
        self.received: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            self.received.append(data)
            query = dns.message.from_wire(data)
            for reply in self.script(query, data):
                self.sock.sendto(reply, peer)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def scripted() -> Iterator[
    Callable[[Callable[[dns.message.Message, bytes], list[bytes]]], ScriptedServer]
]:
    servers: list[ScriptedServer] = []

    def make(script: Callable[[dns.message.Message, bytes], list[bytes]]) -> ScriptedServer:
        server = ScriptedServer(script)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def mx_reply(query: dns.message.Message, name: str | None = None) -> dns.message.Message:
    reply = dns.message.make_response(query)
    owner = name or query.question[0].name.to_text()
    reply.answer.append(dns.rrset.from_text(owner, 300, "IN", "MX", "10 mx1.d.stub.test."))
    return reply


@pytest.mark.parametrize("api", ["sync", "async"])
def test_forged_and_damaged_replies_are_ignored(api: str, scripted) -> None:  # type: ignore[no-untyped-def]
    """A reply with another ID, for another question, not a reply (QR clear), or cut short
    is not the answer: the stub keeps waiting for the real one (RFC 5452 §9.1)."""

    def script(query: dns.message.Message, wire: bytes) -> list[bytes]:
        right = mx_reply(query)
        wrong_id = mx_reply(query)
        wrong_id.id = (query.id + 1) % 65536
        other = dns.message.make_query("other.stub.test.", "MX")
        other.id = query.id
        other_reply = mx_reply(other, "other.stub.test.")
        not_reply = mx_reply(query)
        not_reply.flags &= ~dns.flags.QR
        servfail = dns.message.make_response(query)
        servfail.set_rcode(dns.rcode.SERVFAIL)
        good = right.to_wire()
        return [
            wrong_id.to_wire(),
            other_reply.to_wire(),
            not_reply.to_wire(),
            good[: len(good) - 3],  # damaged: cut short
            good + b"\x00",  # damaged: trailing junk
            servfail.to_wire()[:11],  # shorter than a header
            good,
        ]

    server = scripted(script)
    stub = StubResolver([("127.0.0.1", server.port)], timeout=1.0)
    answer = stub.resolve(MX) if api == "sync" else asyncio.run(stub.aresolve(MX))
    assert answer.status is Status.RECORDS
    assert [r.exchange for r in answer.mx] == ["mx1.d.stub.test."]
    assert len(server.received) == 1


@pytest.mark.parametrize("bare", [False, True], ids=["with-question", "header-only"])
@pytest.mark.parametrize("api", ["sync", "async"])
def test_formerr_to_edns_is_asked_again_without(api: str, bare: bool, scripted) -> None:  # type: ignore[no-untyped-def]
    """RFC 6891 §7: a server that answers FORMERR to an OPT record is asked without one --
    also when its FORMERR is a bare header without the question (it could not parse ours)."""

    def script(query: dns.message.Message, wire: bytes) -> list[bytes]:
        if query.edns >= 0:
            if bare:
                return [wire[:2] + b"\x81\x01" + bytes(8)]
            reply = dns.message.make_response(query)
            reply.use_edns(False)
            reply.set_rcode(dns.rcode.FORMERR)
            return [reply.to_wire()]
        return [mx_reply(query).to_wire()]

    server = scripted(script)
    stub = StubResolver([("127.0.0.1", server.port)], timeout=3.0)
    started = time.monotonic()
    answer = stub.resolve(MX) if api == "sync" else asyncio.run(stub.aresolve(MX))
    assert time.monotonic() - started < 1.0  # not after a timeout
    assert answer.status is Status.RECORDS
    sent = [dns.message.from_wire(w) for w in server.received]
    assert [m.edns for m in sent] == [0, -1]
    assert sent[0].payload == 1232
    assert all(m.flags & dns.flags.RD for m in sent)
    assert len({m.id for m in sent}) == 2  # a fresh ID each time


# -- sockets and event loops --------------------------------------------------------------


def test_no_socket_outlives_a_burst_or_the_loop(fault_server) -> None:  # type: ignore[no-untyped-def]
    zone = ZONE + "".join(f"h{i} A 198.51.100.{i + 1}\n" for i in range(50))
    server = fault_server(zone)
    stub = StubResolver([("127.0.0.1", server.port)])
    before = open_fds()
    seen_during: list[int] = []

    async def main() -> None:
        inside = open_fds()  # with the event loop's own descriptors
        waiter = asyncio.gather(
            *(stub.aresolve(Query(f"h{i}.stub.test.", RRType.A)) for i in range(50))
        )
        await asyncio.sleep(0)
        seen_during.append(open_fds() - inside)
        await waiter

    for _ in range(3):
        asyncio.run(main())
        assert open_fds() == before
    # 50 queries in flight: a socket each (RFC 5452 §9.2), and on Linux the epoll set
    assert seen_during[0] in (50, 51)
    for _ in range(3):
        asyncio.run(mxselect.aselect_targets("d.stub.test", resolver=stub))
        assert open_fds() == before


def test_cancelled_queries_leave_nothing(fault_server) -> None:  # type: ignore[no-untyped-def]
    server = fault_server(ZONE)
    server.set_rule("d.stub.test.", "MX", "drop")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=5, lifetime=5)
    before = open_fds()

    async def main() -> None:
        task = asyncio.gather(*(stub.aresolve(MX) for _ in range(20)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert stub._states == {}

    asyncio.run(main())
    assert open_fds() == before


def test_close_closes_open_sockets(fault_server) -> None:  # type: ignore[no-untyped-def]
    server = fault_server(ZONE)
    server.set_rule("d.stub.test.", "MX", "drop")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=0.3, lifetime=0.3)

    async def main() -> None:
        before = open_fds()  # the event loop's own descriptors included
        task = asyncio.ensure_future(stub.aresolve(MX))
        await asyncio.sleep(0.05)
        assert open_fds() > before
        stub.close()
        assert open_fds() == before
        answer = await task  # the query ends as a timeout, not a crash
        assert answer.status is Status.TEMPFAIL

    asyncio.run(main())


def test_hundreds_in_flight_each_on_its_own_socket(fault_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """600 concurrent queries on one resolver: every answer right, each question sent once
    (the 100 repeated ones wait for the first, RFC 5452 §5), each transmission on a socket of
    its own, never more open at once than ``max_in_flight`` allows. (The fault server answers
    about 1,000 queries/s; more would test it, not the stub.)"""
    import mxselect.stub as stub_module

    zone = ZONE + "".join(f"h{i} A 198.51.100.{i % 250 + 1}\n" for i in range(500))
    server = fault_server(zone)
    stub = StubResolver([("127.0.0.1", server.port)], timeout=2.0, lifetime=10, max_in_flight=64)
    sockets = 0
    most = 0
    original = stub_module._Socket.__init__

    def spy(self: stub_module._Socket, *args: object) -> None:
        nonlocal sockets, most
        original(self, *args)  # type: ignore[arg-type]
        sockets += 1
        most = max(most, len(self.state.open))

    monkeypatch.setattr(stub_module._Socket, "__init__", spy)

    async def main() -> list[mxselect.Answer]:
        return await asyncio.gather(
            *(stub.aresolve(Query(f"h{i % 500}.stub.test.", RRType.A)) for i in range(600))
        )

    answers = asyncio.run(main())
    assert [a for a in answers if a.status is not Status.RECORDS] == []
    assert [str(a.addresses[0]) for a in answers] == [
        f"198.51.100.{i % 500 % 250 + 1}" for i in range(600)
    ]
    assert len(server.queries) == 500
    assert sockets == 500
    assert most <= 64
    assert stub._states == {}


def test_sync_resolve_is_thread_safe(fault_server) -> None:  # type: ignore[no-untyped-def]
    zone = ZONE + "".join(f"h{i} A 198.51.100.{i + 1}\n" for i in range(40))
    server = fault_server(zone)
    stub = StubResolver([("127.0.0.1", server.port)])
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(25):
            i = rng.randrange(40)
            answer = stub.resolve(Query(f"h{i}.stub.test.", RRType.A))
            if [str(a) for a in answer.addresses] != [f"198.51.100.{i + 1}"]:
                errors.append(f"h{i}: {answer}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(server.queries) == 300


def test_one_resolver_in_two_event_loops_at_once(fault_server) -> None:  # type: ignore[no-untyped-def]
    """Each loop gets its own sockets; both get their answers."""
    zone = ZONE + "".join(f"h{i} A 198.51.100.{i + 1}\n" for i in range(40))
    server = fault_server(zone)
    server.set_rule("h0.stub.test.", "A", "delay-100")
    stub = StubResolver([("127.0.0.1", server.port)])
    results: dict[int, list[str]] = {}

    def run(n: int) -> None:
        async def main() -> list[str]:
            answers = await asyncio.gather(
                *(stub.aresolve(Query(f"h{i}.stub.test.", RRType.A)) for i in range(40))
            )
            return [str(a.addresses[0]) for a in answers]

        results[n] = asyncio.run(main())

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = [f"198.51.100.{i + 1}" for i in range(40)]
    assert results == {0: expected, 1: expected}
    assert stub._states == {}


def test_selection_through_the_stub_matches_the_dnspython_adapter(fault_server) -> None:  # type: ignore[no-untyped-def]
    from harness.resolvers import make_dnspython_resolver

    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)])
    plain = make_dnspython_resolver(server.port)
    for domain in ("d.stub.test", "big.stub.test", "mx1.d.stub.test"):
        ours = mxselect.select_targets(domain, resolver=stub, rng=random.Random(3))
        theirs = mxselect.select_targets(domain, resolver=plain, rng=random.Random(3))
        assert ours == theirs


def test_queries_beyond_max_in_flight_wait_their_turn(fault_server) -> None:  # type: ignore[no-untyped-def]
    """At most max_in_flight UDP queries are outstanding to a server: a burst of 20 with
    4 allowed arrives in 5 waves (each answer held 100 ms), all answered."""
    import mxselect.stub as stub_module

    zone = ZONE + "".join(f"h{i} A 198.51.100.{i + 1}\n" for i in range(20))
    server = fault_server(zone, default_delay_ms=100)
    stub = StubResolver([("127.0.0.1", server.port)], max_in_flight=4)
    most = 0
    original = stub_module._UdpQuery.transmit

    def spy(self: stub_module._UdpQuery, *args: object) -> None:
        nonlocal most
        original(self, *args)  # type: ignore[arg-type]
        most = max(most, len(self.state.open))

    async def main() -> list[mxselect.Answer]:
        return await asyncio.gather(
            *(stub.aresolve(Query(f"h{i}.stub.test.", RRType.A)) for i in range(20))
        )

    stub_module._UdpQuery.transmit = spy  # type: ignore[method-assign]
    try:
        started = time.monotonic()
        answers = asyncio.run(main())
        elapsed = time.monotonic() - started
    finally:
        stub_module._UdpQuery.transmit = original  # type: ignore[method-assign]
    assert [str(a.addresses[0]) for a in answers] == [f"198.51.100.{i + 1}" for i in range(20)]
    assert most == 4
    assert elapsed >= 0.45
    with pytest.raises(ValueError, match="max_in_flight"):
        StubResolver(["127.0.0.1"], max_in_flight=0)


def test_waiting_for_a_free_slot_counts_as_the_timeout(fault_server) -> None:  # type: ignore[no-untyped-def]
    server = fault_server(ZONE)
    server.set_rule("d.stub.test.", "MX", "drop")
    stub = StubResolver([("127.0.0.1", server.port)], max_in_flight=1, timeout=0.2, lifetime=0.2)

    async def main() -> list[mxselect.Answer]:
        return await asyncio.gather(stub.aresolve(MX), stub.aresolve(A))

    blocked, waiting = asyncio.run(main())
    assert blocked.status is Status.TEMPFAIL
    assert waiting.status is Status.TEMPFAIL  # never got a slot within its 0.2 s
    assert waiting.reason.startswith("timeout after 0.2 s")
    assert [q[0] for q in server.queries] == ["d.stub.test."]


# -- batches: aresolve_batch (what aselect_targets uses) ------------------------------------


def test_a_batch_continues_each_query_like_aresolve(fault_server) -> None:  # type: ignore[no-untyped-def]
    """One batch, every first exchange together; each query that got no answer goes on from
    there: a lost datagram is sent again, an error goes to the next server (and is not asked
    of the first again), a truncated reply goes to TCP, a name that cannot be sent is a
    TEMPFAIL without a query."""
    zone = ZONE + "lost A 192.0.2.10\nfail A 192.0.2.11\n"
    first, second = fault_server(zone), fault_server(zone)
    first.set_rule("lost.stub.test.", "A", "drop", times=1)
    first.set_rule("fail.stub.test.", "A", "servfail")
    first.set_rule("mx1.d.stub.test.", "A", "tc")
    stub = StubResolver(
        [("127.0.0.1", first.port), ("127.0.0.1", second.port)], timeout=0.3, lifetime=3
    )
    queries = [
        Query("lost.stub.test.", RRType.A),
        Query("fail.stub.test.", RRType.A),
        A,
        Query("a" * 64 + ".stub.test.", RRType.A),
        MX,
    ]
    answers = asyncio.run(stub.aresolve_batch(queries))
    assert [a.status for a in answers] == [
        Status.RECORDS,
        Status.RECORDS,
        Status.RECORDS,
        Status.TEMPFAIL,
        Status.RECORDS,
    ]
    assert [str(x) for x in answers[0].addresses] == ["192.0.2.10"]
    assert [str(x) for x in answers[2].addresses] == ["192.0.2.1"]
    assert "cannot ask" in answers[3].reason
    assert sorted(first.queries) == sorted(
        [
            ("lost.stub.test.", "A", "udp"),
            ("fail.stub.test.", "A", "udp"),
            ("mx1.d.stub.test.", "A", "udp"),
            ("d.stub.test.", "MX", "udp"),
            ("mx1.d.stub.test.", "A", "tcp"),
        ]
    )
    # the lost one: the second server in the next turn (round robin); the failed one too
    assert sorted(second.queries) == [
        ("fail.stub.test.", "A", "udp"),
        ("lost.stub.test.", "A", "udp"),
    ]


def test_a_batch_larger_than_the_free_slots_still_completes(fault_server) -> None:  # type: ignore[no-untyped-def]
    zone = ZONE + "".join(f"h{i} A 198.51.100.{i + 1}\n" for i in range(10))
    server = fault_server(zone, default_delay_ms=20)
    stub = StubResolver([("127.0.0.1", server.port)], max_in_flight=3)

    async def main() -> list[list[mxselect.Answer]]:
        batch = [Query(f"h{i}.stub.test.", RRType.A) for i in range(10)]
        return await asyncio.gather(stub.aresolve_batch(batch), stub.aresolve_batch(batch[:2]))

    big, small = asyncio.run(main())
    assert [str(a.addresses[0]) for a in big] == [f"198.51.100.{i + 1}" for i in range(10)]
    assert [str(a.addresses[0]) for a in small] == ["198.51.100.1", "198.51.100.2"]
    assert stub._states == {}


def test_batches_beyond_max_in_flight_wait_as_batches(fault_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Batches that find the server's slots taken wait for all their slots at once and go
    out together (no task per query): three batches of 4 with 4 allowed arrive in three
    waves, each answer held 100 ms, and the per-query path is never taken."""
    import mxselect.stub as stub_module

    zone = ZONE + "".join(f"h{i} A 198.51.100.{i + 1}\n" for i in range(12))
    server = fault_server(zone, default_delay_ms=100)
    stub = StubResolver([("127.0.0.1", server.port)], max_in_flight=4)
    per_query = 0
    original = stub_module.StubResolver._aresolve

    def spy(self: StubResolver, *args: object) -> object:
        nonlocal per_query
        per_query += 1
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(stub_module.StubResolver, "_aresolve", spy)
    batches = [[Query(f"h{4 * b + i}.stub.test.", RRType.A) for i in range(4)] for b in range(3)]

    async def main() -> list[list[mxselect.Answer]]:
        return await asyncio.gather(*(stub.aresolve_batch(b) for b in batches))

    started = time.monotonic()
    results = asyncio.run(main())
    elapsed = time.monotonic() - started
    got = [str(a.addresses[0]) for answers in results for a in answers]
    assert got == [f"198.51.100.{i + 1}" for i in range(12)]
    assert per_query == 0
    assert 0.3 <= elapsed < 2.0  # three waves of 100 ms: never more than 4 outstanding
    assert stub._states == {}


def test_a_batch_that_gets_no_slots_in_time_goes_to_the_next_server(fault_server) -> None:  # type: ignore[no-untyped-def]
    """Waiting for slots longer than the timeout counts as the first server timing out, as
    for a single query: the batch goes on to the next server, and nothing was sent to the
    first. With one server and the lifetime spent, it is a timeout naming that server."""
    first, second = fault_server(ZONE), fault_server(ZONE)
    batch = [MX, A]

    async def blocked(stub: StubResolver) -> list[mxselect.Answer]:
        limiter = stub._state(asyncio.get_running_loop()).limiter(stub.nameservers[0], 2)
        assert limiter.take_now(1)  # someone else holds one of the two slots
        try:
            return await stub.aresolve_batch(batch)
        finally:
            limiter.give(1)

    two = StubResolver(
        [("127.0.0.1", first.port), ("127.0.0.1", second.port)],
        max_in_flight=2,
        timeout=0.2,
        lifetime=3,
    )
    answers = asyncio.run(blocked(two))
    assert [a.status for a in answers] == [Status.RECORDS, Status.RECORDS]
    assert first.queries == []
    assert sorted(q[:2] for q in second.queries) == [
        ("d.stub.test.", "MX"),
        ("mx1.d.stub.test.", "A"),
    ]

    one = StubResolver([("127.0.0.1", first.port)], max_in_flight=2, timeout=0.2, lifetime=0.2)
    answers = asyncio.run(blocked(one))
    assert [a.status for a in answers] == [Status.TEMPFAIL, Status.TEMPFAIL]
    assert all(a.reason.startswith("timeout after 0.2 s") for a in answers)
    assert first.queries == []


def test_cancelled_waiters_give_their_slots_back(fault_server) -> None:  # type: ignore[no-untyped-def]
    """Tasks cancelled while waiting for a slot, or just after being handed one, leave the
    count of free slots whole: afterwards a full burst still goes out at once."""
    import mxselect.stub as stub_module

    zone = ZONE + "".join(f"h{i} A 198.51.100.{i + 1}\n" for i in range(8))
    server = fault_server(zone, default_delay_ms=50)
    stub = StubResolver([("127.0.0.1", server.port)], max_in_flight=2, timeout=2)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tasks = [
            asyncio.ensure_future(stub.aresolve(Query(f"h{i}.stub.test.", RRType.A)))
            for i in range(8)
        ]
        await asyncio.sleep(0.01)
        limiter = stub._state(loop).limiters[stub.nameservers[0]]
        assert (limiter.free, len(limiter.waiters)) == (0, 6)
        for task in tasks[2:]:
            task.cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(d, asyncio.CancelledError) for d in done[2:])
        assert [str(d.addresses[0]) for d in done[:2]] == ["198.51.100.1", "198.51.100.2"]  # type: ignore[union-attr]

        # a slot handed to a waiter that is cancelled before it runs goes to the next one
        limiter2 = stub_module._Limiter(1)
        assert limiter2.take_now(1)
        first = asyncio.ensure_future(limiter2.take(loop, 1.0))
        second = asyncio.ensure_future(limiter2.take(loop, 1.0))
        await asyncio.sleep(0)
        limiter2.give(1)  # handed to `first`...
        first.cancel()  # ...which is cancelled before it runs
        assert await second is True
        assert (limiter2.free, len(limiter2.waiters)) == (0, 0)
        limiter2.give(1)
        assert limiter2.free == 1

        # a batch waits for all its slots, first come first served: a single query behind
        # it waits too, until the batch gives up (cancelled) and the slot goes to it
        limiter3 = stub_module._Limiter(2)
        assert limiter3.take_now(2)
        batch = asyncio.ensure_future(limiter3.take(loop, 1.0, 2))
        single = asyncio.ensure_future(limiter3.take(loop, 1.0))
        await asyncio.sleep(0)
        limiter3.give(1)
        await asyncio.sleep(0)
        assert not batch.done()
        assert not single.done()
        assert not limiter3.take_now(1)  # nobody jumps the queue
        batch.cancel()
        assert await single is True
        assert (limiter3.free, len(limiter3.waiters)) == (0, 0)
        limiter3.give(2)
        assert limiter3.free == 2

    asyncio.run(main())
    assert stub._states == {}


def test_the_driver_uses_aresolve_batch_and_checks_what_it_returns() -> None:
    from mxselect.testing import FakeResolver

    fake = FakeResolver.from_zone(ZONE)
    calls: list[int] = []

    class Batched:
        async def aresolve(self, query: Query) -> mxselect.Answer:
            raise AssertionError("the batch method should be used")

        async def aresolve_batch(self, queries: tuple[Query, ...]) -> list[mxselect.Answer]:
            calls.append(len(queries))
            return [fake.resolve(q) for q in queries]

    got = asyncio.run(
        mxselect.aselect_targets("d.stub.test", resolver=Batched(), rng=random.Random(2))
    )
    assert got == mxselect.select_targets("d.stub.test", resolver=fake, rng=random.Random(2))
    assert calls == [1, 4]  # the MX, then AAAA and A of both hosts

    class Short(Batched):
        async def aresolve_batch(self, queries: tuple[Query, ...]) -> list[mxselect.Answer]:
            return []

    class Raises(Batched):
        async def aresolve_batch(self, queries: tuple[Query, ...]) -> list[mxselect.Answer]:
            raise OSError("no route")

    for broken, text in ((Short(), "returned 0 answers for 1"), (Raises(), "OSError: no route")):
        with pytest.raises(DNSTemporaryError, match=text):
            asyncio.run(mxselect.aselect_targets("d.stub.test", resolver=broken))


def test_a_batch_survives_a_socket_that_cannot_be_opened(fault_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An OSError while sending one query of a batch (no socket to be had) fails that query
    alone, in its place; the others are answered."""
    import mxselect.stub as stub_module

    server = fault_server(ZONE)
    # generous bounds: the two other queries must be answered, the failed one fails at once
    stub = StubResolver([("127.0.0.1", server.port)], timeout=2.0, lifetime=5.0)
    original = stub_module._Socket.__init__
    calls = 0

    def flaky(self: stub_module._Socket, *args: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(24, "Too many open files")
        original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(stub_module._Socket, "__init__", flaky)
    answers = asyncio.run(stub.aresolve_batch([MX, A, Query("mx2.d.stub.test.", RRType.A)]))
    assert [a.status for a in answers] == [Status.RECORDS, Status.TEMPFAIL, Status.RECORDS]
    assert "Too many open files" in answers[1].reason
    assert stub._states == {}


# -- retransmissions: a late reply to an earlier transmission -------------------------------


@pytest.mark.parametrize("api", ["sync", "async", "batch"])
def test_a_late_reply_to_an_earlier_transmission_is_taken(api: str, fault_server) -> None:  # type: ignore[no-untyped-def]
    """RFC 1536 §1: a slow server is not a lost one. Exim's case, scaled down: the server
    answers every query 600 ms late, timeout 0.5 s, lifetime 1.2 s. The first transmission's
    socket stays open while the second waits, and its answer (at 0.6 s) is taken: two
    queries sent, not a failure. Before, each retransmission was a new exchange and a late
    answer was thrown away: three queries, and a timeout at the lifetime."""
    server = fault_server(ZONE, default_delay_ms=600)
    stub = StubResolver([("127.0.0.1", server.port)], timeout=0.5, lifetime=1.2)
    if api == "sync":
        answer = stub.resolve(MX)
    elif api == "async":
        answer = asyncio.run(stub.aresolve(MX))
    else:
        answer = asyncio.run(stub.aresolve_batch([MX]))[0]
    assert answer.status is Status.RECORDS
    assert sorted(r.exchange for r in answer.mx) == ["mx1.d.stub.test.", "mx2.d.stub.test."]
    assert len(server.queries) == 2
    assert stub._states == {}


# -- TCP: one message, one absolute end ----------------------------------------------------


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_tcp_flood_after_tc_stops_at_the_first_message(api: str) -> None:
    """A server that answers TC over UDP and then streams 65,535-octet messages with a wrong
    ID over TCP, forever: the client reads one message (at most 65,537 octets), sees that it
    is no reply to its query (one query per connection), closes the connection and the
    query is a temporary failure. Before, the sync client read ~30 GB in 12 s."""
    from harness.forger import HostileTcpServer

    with HostileTcpServer("flood") as server:
        stub = StubResolver([("127.0.0.1", server.port)], timeout=1.0, lifetime=3.0)
        answer = stub.resolve(MX) if api == "sync" else asyncio.run(stub.aresolve(MX))
        time.sleep(0.1)  # let the server notice the closed connection
    assert answer.status is Status.TEMPFAIL
    assert "another ID over TCP" in answer.reason
    assert len(server.connections) == 1
    sent, closed_by_client = server.connections[0]
    assert closed_by_client is True
    assert isinstance(sent, int)
    assert sent < 4 << 20  # one message + the sockets' buffers


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_tcp_trickle_after_tc_is_abandoned_at_the_lifetime(api: str) -> None:
    """A server that trickles one octet every 20 ms over TCP (each read succeeds, so a
    per-read timeout never fires): every exchange ends at its own absolute end, the query at
    its lifetime, as a temporary failure; every connection is closed by the client, long
    before the server's own safety stop (8 s)."""
    from harness.forger import HostileTcpServer

    with HostileTcpServer("trickle") as server:
        stub = StubResolver([("127.0.0.1", server.port)], timeout=0.5, lifetime=1.0)
        answer = stub.resolve(MX) if api == "sync" else asyncio.run(stub.aresolve(MX))
        time.sleep(0.1)
    assert answer.status is Status.TEMPFAIL
    assert answer.reason.startswith("timeout after 1.0 s")
    assert 1 <= len(server.connections) <= 2
    assert all(closed for _, closed in server.connections)


def test_a_tcp_trickle_does_not_outlive_a_selection_deadline() -> None:
    """The sync driver's worker thread stops reading at the deadline too (the resolver is
    given the time left as its lifetime): no thread keeps reading a hostile stream."""
    from harness.forger import HostileTcpServer

    with HostileTcpServer("trickle") as server:
        stub = StubResolver([("127.0.0.1", server.port)], timeout=20.0, lifetime=20.0)
        with pytest.raises(DNSTemporaryError):
            mxselect.select_targets("d.stub.test", resolver=stub, deadline=0.5)
        for _ in range(100):  # the worker ends its exchange at the deadline
            if server.connections and all(closed for _, closed in server.connections):
                break
            time.sleep(0.05)
    assert server.connections
    assert all(closed for _, closed in server.connections)


# -- DNS 0x20 ------------------------------------------------------------------------------


LONG = Query("mixed-case-query-name.with-many-letters.stub.test.", RRType.MX)


@pytest.mark.parametrize("api", ["sync", "async"])
def test_dns0x20_sends_mixed_case_and_takes_an_exact_echo(api: str, scripted) -> None:  # type: ignore[no-untyped-def]
    """dns0x20=True: the query name goes out in a random mix of cases (each letter one more
    bit for a forger to guess) and a reply that repeats it exactly is taken."""
    server = scripted(lambda query, wire: [mx_reply(query).to_wire()])
    stub = StubResolver([("127.0.0.1", server.port)], dns0x20=True)
    answer = stub.resolve(LONG) if api == "sync" else asyncio.run(stub.aresolve(LONG))
    assert answer.status is Status.RECORDS
    assert [r.exchange for r in answer.mx] == ["mx1.d.stub.test."]
    (sent,) = [dns.message.from_wire(w).question[0].name.to_text() for w in server.received]
    assert sent.lower() == LONG.name
    assert sent != LONG.name  # 2^-40 that all 40 letters came out in lower case
    plain = StubResolver([("127.0.0.1", server.port)])  # off by default: lower case as asked
    assert plain.resolve(LONG).status is Status.RECORDS
    assert dns.message.from_wire(server.received[-1]).question[0].name.to_text() == LONG.name


@pytest.mark.parametrize("api", ["sync", "async"])
def test_dns0x20_falls_back_to_lower_case_for_a_server_that_does_not_echo_case(
    api: str,
    scripted,  # type: ignore[no-untyped-def]
) -> None:
    """A server that answers in lower case whatever the query's case: its reply to the
    mixed-case query is not taken; the same server is asked once more at once in lower case
    (Unbound's fallback for use-caps-for-id), and that reply is taken."""

    def lower_case(query: dns.message.Message, wire: bytes) -> list[bytes]:
        lowered = dns.message.make_query(query.question[0].name.to_text().lower(), "MX")
        lowered.id = query.id
        return [mx_reply(lowered).to_wire()]

    server = scripted(lower_case)
    stub = StubResolver([("127.0.0.1", server.port)], dns0x20=True, timeout=3.0)
    started = time.monotonic()
    answer = stub.resolve(LONG) if api == "sync" else asyncio.run(stub.aresolve(LONG))
    assert time.monotonic() - started < 2.0  # at once, not after the 3 s timeout
    assert answer.status is Status.RECORDS
    sent = [dns.message.from_wire(w).question[0].name.to_text() for w in server.received]
    assert len(sent) == 2
    assert sent[0] != LONG.name
    assert sent[0].lower() == LONG.name
    assert sent[1] == LONG.name


def test_a_short_lifetime_is_written_as_it_was_never_as_zero() -> None:
    """A bound below 0.1 s (the time left before a deadline) is not written "0.0 s"."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # receives, never answers
    try:
        stub = StubResolver([("127.0.0.1", silent.getsockname()[1])], timeout=1, lifetime=1)
        answer = stub.resolve(Query("example.test", RRType.A), lifetime=0.04)
    finally:
        silent.close()
    assert answer.status is Status.TEMPFAIL
    assert answer.reason.startswith("timeout after 0.04 s"), answer.reason
