"""StubResolver.resolve_batch: the sync driver's batch, sent from the calling thread.

A batch's queries go out together, each on a socket of its own, and one ``poll()`` in the
calling thread waits on all of them; each query goes on with its own retry loop. Here: every
outcome answered as ``resolve()`` answers it, the RFC 5452 properties (a fresh port per
query, strict reply matching, identical questions merged), late replies, the deadline, and
that ``select_targets`` with a StubResolver -- alone or behind a CachingResolver -- uses no
thread of the driver's pool. Every server is on loopback (the fault server, the forgery
harness's EchoServer, a scripted UDP server).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence

import attrs
import dns.message
import dns.rrset
import pytest
from harness.forger import EVIL, GOOD, EchoServer, question_of, spray
from harness.forger import mx_reply as raw_mx_reply

import mxselect
import mxselect._resolvers as resolvers_module
import mxselect.stub as stub_module
from mxselect import Answer, CachingResolver, DNSTemporaryError, Query, RRType, Security, Status
from mxselect.stub import StubResolver

pytestmark = pytest.mark.e2e

ZONE = """
$ORIGIN sb.test.
$TTL 300
@        SOA  ns hostmaster 1 3600 900 604800 60
d        MX   10 mx1.d
d        MX   20 mx2.d
mx1.d    A    192.0.2.1
mx1.d    AAAA 2001:db8::1
mx2.d    A    192.0.2.2
tc       MX   10 mx1.d
wrongid  MX   10 mx1.d
big      MX   10 mx1.d
"""
# An answer that does not fit in 512 octets: TC over UDP without EDNS0, then TCP.
ZONE += "".join(f"big MX {i} host-number-{i:03d}.example.net.\n" for i in range(20))
ZONE += "".join(f"h{i} A 198.51.100.{i + 1}\n" for i in range(40))
ZONE += "".join(f"s{i} MX 10 h{i}\n" for i in range(40))

MX = Query("d.sb.test.", RRType.MX)
A = Query("mx1.d.sb.test.", RRType.A)

#: One query per outcome: records, NODATA, NXDOMAIN, SERVFAIL, no reply, TC -> TCP,
#: malformed replies (garbage, a short packet) and a reply with the wrong ID (all three
#: ignored, so the query times out), a name that cannot be sent.
OUTCOMES = [
    MX,
    A,
    Query("mx2.d.sb.test.", RRType.AAAA),  # NODATA
    Query("nope.sb.test.", RRType.MX),  # NXDOMAIN
    Query("servfail.sb.test.", RRType.A),
    Query("drop.sb.test.", RRType.A),
    Query("tc.sb.test.", RRType.MX),
    Query("garbage.sb.test.", RRType.A),
    Query("short.sb.test.", RRType.A),
    Query("wrongid.sb.test.", RRType.MX),
    Query("a" * 64 + ".sb.test.", RRType.A),
]
EXPECTED = [
    Status.RECORDS,
    Status.RECORDS,
    Status.NODATA,
    Status.NXDOMAIN,
    Status.TEMPFAIL,
    Status.TEMPFAIL,
    Status.RECORDS,
    Status.TEMPFAIL,
    Status.TEMPFAIL,
    Status.TEMPFAIL,
    Status.TEMPFAIL,
]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settled_fds(expected: int) -> int:
    """The count of open descriptors once the fault server's thread has closed its side of
    any TCP connection (it does so asynchronously); at most a second."""
    for _ in range(20):
        count = open_fds()
        if count == expected:
            return count
        time.sleep(0.05)
    return open_fds()


@pytest.fixture
def no_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sync driver's thread pool, made unusable: any use of it fails the test."""

    def refuse() -> object:
        raise AssertionError("the sync driver's thread pool was used")

    monkeypatch.setattr(resolvers_module, "pool", refuse)
    import mxselect.cache as cache_module

    monkeypatch.setattr(cache_module, "pool", refuse)


def in_order(answer: Answer) -> Answer:
    """``answer`` with its records sorted (the fault server varies the order of an RRset)."""
    return attrs.evolve(
        answer,
        mx=tuple(sorted(answer.mx, key=lambda r: (r.preference, r.exchange))),
        addresses=tuple(sorted(answer.addresses)),
    )


class PerQuery:
    """The stub without its batch method: the sync driver runs it one query per thread."""

    def __init__(self, stub: StubResolver) -> None:
        self.stub = stub

    def resolve(self, query: Query, lifetime: float | None = None) -> Answer:
        return self.stub.resolve(query, lifetime=lifetime)


# -- answers: the same as resolve() for every outcome -------------------------------------


@pytest.mark.parametrize("trust_ad", [True, False])
def test_a_batch_answers_every_outcome_as_resolve_does(trust_ad: bool, fault_server) -> None:  # type: ignore[no-untyped-def]
    """One batch holding every outcome at once: each answer equal to what resolve() gives
    for the same query (status, records, TTLs, the reason of a failure, the DNSSEC status
    with and without trust_ad), and the same queries on the wire."""
    server = fault_server(ZONE)
    server.set_rule("tc.sb.test.", "MX", "tc")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=0.2, lifetime=0.5, trust_ad=trust_ad)
    batch = stub.resolve_batch(OUTCOMES)
    on_the_wire = sorted(server.queries)
    server.clear()
    one_by_one = [stub.resolve(q) for q in OUTCOMES]
    assert [a.status for a in batch] == EXPECTED
    assert [in_order(a) for a in batch] == [in_order(a) for a in one_by_one]
    assert on_the_wire == sorted(server.queries)
    assert ("tc.sb.test.", "MX", "tcp") in on_the_wire
    assert batch[4].reason == f"SERVFAIL from 127.0.0.1@{server.port}"
    assert batch[5].reason == f"timeout after 0.5 s (asked 127.0.0.1@{server.port})"
    assert all(a.reason == batch[5].reason for a in batch[7:10])  # ignored, then a timeout
    assert "cannot ask" in batch[10].reason
    expected_security = Security.INSECURE if trust_ad else Security.UNKNOWN
    assert batch[0].security is expected_security


def test_a_truncated_reply_goes_to_tcp_inside_a_batch(fault_server) -> None:  # type: ignore[no-untyped-def]
    """RFC 1123 §6.1.3.2: without EDNS0 the big MX set is truncated over UDP; that query is
    asked again over TCP, the others of the batch are answered over UDP."""
    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)], edns=False)
    big = Query("big.sb.test.", RRType.MX)
    answers = stub.resolve_batch([big, MX, A])
    assert [len(answers[0].mx), len(answers[1].mx)] == [21, 2]
    assert [str(x) for x in answers[2].addresses] == ["192.0.2.1"]
    assert sorted(server.queries) == sorted(
        [
            ("big.sb.test.", "MX", "udp"),
            ("big.sb.test.", "MX", "tcp"),
            ("d.sb.test.", "MX", "udp"),
            ("mx1.d.sb.test.", "A", "udp"),
        ]
    )


def test_tcp_exchanges_of_a_batch_run_side_by_side(fault_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """tcp=True: every query of the batch over TCP, the 5 connections open together in the
    batch's poll() (not one after the other), each answer as resolve() gives it; a
    connection closed without a reply after TC fails only its query, naming TCP."""
    zone = ZONE.replace("tc       MX   10 mx1.d", "notcp    MX   10 mx1.d")
    server = fault_server(zone, default_delay_ms=300)
    stub = StubResolver([("127.0.0.1", server.port)], tcp=True, timeout=2.0, lifetime=3.0)
    queries = [MX, A, Query("mx2.d.sb.test.", RRType.AAAA), Query("nope.sb.test.", RRType.MX)]
    queries.append(Query("big.sb.test.", RRType.MX))
    most = 0
    original = stub_module._SyncBatch._connect

    def spy(self: stub_module._SyncBatch, *args: object) -> object:
        nonlocal most
        result = original(self, *args)  # type: ignore[arg-type]
        most = max(most, len(self.by_fd))
        return result

    monkeypatch.setattr(stub_module._SyncBatch, "_connect", spy)
    batch = stub.resolve_batch(queries)
    assert [q[2] for q in server.queries] == ["tcp"] * 5
    assert most == 5  # all open at once: each answer is held 300 ms
    server.default_delay_ms = 0
    assert [in_order(a) for a in batch] == [in_order(stub.resolve(q)) for q in queries]
    assert [a.status for a in batch] == [
        Status.RECORDS,
        Status.RECORDS,
        Status.NODATA,
        Status.NXDOMAIN,
        Status.RECORDS,
    ]
    server.set_rule("notcp.sb.test.", "MX", "tc-notcp")
    # nothing is meant to time out (the closed connection fails its query at once)
    udp = StubResolver([("127.0.0.1", server.port)], timeout=2.0, lifetime=5.0)
    failed, fine = udp.resolve_batch([Query("notcp.sb.test.", RRType.MX), MX])
    assert failed.status is Status.TEMPFAIL
    assert failed.reason == udp.resolve(Query("notcp.sb.test.", RRType.MX)).reason
    assert "over TCP (the UDP reply was truncated)" in failed.reason
    assert fine.status is Status.RECORDS


@pytest.mark.parametrize("mode", ["flood", "trickle"])
def test_a_hostile_tcp_server_after_tc_is_bounded_in_a_batch(mode: str) -> None:
    """After TC, a server that floods wrong-ID messages or trickles an octet at a time over
    TCP: the batch reads one message at most, ends each exchange at its own end and the
    query at its lifetime, and closes every connection itself."""
    from harness.forger import HostileTcpServer

    with HostileTcpServer(mode) as server:
        stub = StubResolver([("127.0.0.1", server.port)], timeout=0.5, lifetime=1.0)
        answers = stub.resolve_batch([MX, A])
        time.sleep(0.1)  # let the server notice the closed connections
    assert [a.status for a in answers] == [Status.TEMPFAIL] * 2
    if mode == "flood":
        assert all("another ID over TCP" in a.reason for a in answers)
        assert all(sent < 4 << 20 for sent, _ in server.connections)  # type: ignore[operator]
    else:
        assert all(a.reason.startswith("timeout after 1.0 s") for a in answers)
    assert server.connections
    assert all(closed for _, closed in server.connections)


def test_each_query_of_a_batch_goes_on_like_resolve(fault_server) -> None:  # type: ignore[no-untyped-def]
    """A lost datagram is sent again (to the next server, round robin), an error goes to the
    next server and is not asked of the first again; the answered ones are not asked twice."""
    zone = ZONE + "lost A 192.0.2.10\nfail A 192.0.2.11\n"
    first, second = fault_server(zone), fault_server(zone)
    first.set_rule("lost.sb.test.", "A", "drop", times=1)
    first.set_rule("fail.sb.test.", "A", "servfail")
    stub = StubResolver(
        [("127.0.0.1", first.port), ("127.0.0.1", second.port)], timeout=0.3, lifetime=3
    )
    queries = [Query("lost.sb.test.", RRType.A), Query("fail.sb.test.", RRType.A), MX]
    answers = stub.resolve_batch(queries)
    assert [str(a.addresses[0]) for a in answers[:2]] == ["192.0.2.10", "192.0.2.11"]
    assert answers[2].status is Status.RECORDS
    assert sorted(q[0] for q in first.queries) == ["d.sb.test.", "fail.sb.test.", "lost.sb.test."]
    assert sorted(q[0] for q in second.queries) == ["fail.sb.test.", "lost.sb.test."]


def test_an_icmp_error_fails_only_its_query(fault_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """RFC 1122 §4.1.3.3: a port unreachable on one query's socket (here: the second socket
    opened is connected to a dead port) fails that query alone, with the error as its
    reason and not after a timeout; the rest of the batch is answered."""
    import socket

    server = fault_server(ZONE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        dead = int(s.getsockname()[1])
    original = stub_module._open_udp
    opened = 0

    def one_dead(target: stub_module.Server) -> object:
        nonlocal opened
        opened += 1
        if opened == 2:
            target = stub_module.Server("127.0.0.1", dead, socket.AF_INET)
        return original(target)

    monkeypatch.setattr(stub_module, "_open_udp", one_dead)
    stub = StubResolver([("127.0.0.1", server.port)], timeout=5.0, lifetime=5.0)
    answers = stub.resolve_batch([MX, A, Query("mx2.d.sb.test.", RRType.A)])
    assert [a.status for a in answers] == [Status.RECORDS, Status.TEMPFAIL, Status.RECORDS]
    # (the reason names the server the query was for: the socket was redirected under it)
    assert answers[1].reason == f"connection refused from 127.0.0.1@{server.port}"
    assert sorted(q[0] for q in server.queries) == ["d.sb.test.", "mx2.d.sb.test."]


def test_a_late_reply_to_an_earlier_transmission_is_taken(fault_server) -> None:  # type: ignore[no-untyped-def]
    """RFC 1536 §1: every answer 600 ms late, timeout 0.5 s, lifetime 1.2 s. Each query's
    first socket stays open while its second transmission waits, and the late answer to the
    first is taken: two transmissions per query, no failure."""
    server = fault_server(ZONE, default_delay_ms=600)
    stub = StubResolver([("127.0.0.1", server.port)], timeout=0.5, lifetime=1.2)
    answers = stub.resolve_batch([MX, A])
    assert [a.status for a in answers] == [Status.RECORDS, Status.RECORDS]
    assert sorted(r.exchange for r in answers[0].mx) == ["mx1.d.sb.test.", "mx2.d.sb.test."]
    assert sorted(server.queries) == sorted(
        [("d.sb.test.", "MX", "udp")] * 2 + [("mx1.d.sb.test.", "A", "udp")] * 2
    )


# -- RFC 5452 --------------------------------------------------------------------------------


def test_R5452_9_2_a_fresh_source_port_for_every_query_of_every_batch() -> None:
    """RFC 5452 §9.2: 2,000 queries in batches of 8, from 4 threads at once: every query
    from a socket of its own, on a port the kernel picked at random (the birthday bound
    allows a few repeats over Linux's 28,232 ephemeral ports), every answer right."""
    queries = [Query(f"q{i}.sb.forge.test.", RRType.MX) for i in range(2000)]
    chunks = [queries[i : i + 8] for i in range(0, len(queries), 8)]
    answers: dict[int, Sequence[Answer]] = {}
    with EchoServer() as server:
        stub = StubResolver([("127.0.0.1", server.port)], timeout=2.0, lifetime=10.0)

        def work(part: int) -> None:
            for n in range(part, len(chunks), 4):
                answers[n] = stub.resolve_batch(chunks[n])

        threads = [threading.Thread(target=work, args=(p,)) for p in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    got = [r.exchange for n in range(len(chunks)) for a in answers[n] for r in a.mx]
    assert got == [GOOD] * 2000
    assert len(server.ports) == 2000
    assert len(set(server.ports)) >= 0.95 * 2000


def test_R5452_9_1_forged_replies_at_the_querys_own_port_are_not_taken() -> None:
    """A forger who knows each query's port (the strongest off-path forger) sprays, before
    the real reply and from the server's own address: 64 replies with wrong IDs, one with the
    right ID for another question, one with the right ID and question but QR clear -- all
    carrying ``evil.attacker.test.``. 50 batches of 4: every answer is the real one."""
    rng = random.Random(5452)
    sprayed = 0

    def forger(server: EchoServer, query: bytes, port: int) -> None:
        nonlocal sprayed
        qid = query[0] << 8 | query[1]
        question = question_of(query)
        ids = [i for i in rng.sample(range(65536), 65) if i != qid][:64]
        template = raw_mx_reply(0, question, EVIL)
        wrong_ids = [i.to_bytes(2, "big") + template[2:] for i in ids]
        sprayed += spray(server.sock, port, wrong_ids)
        other = question_of(b"\x00" * 12 + b"\x05other\x02sb\x04test\x00\x00\x0f\x00\x01")
        sprayed += spray(server.sock, port, [raw_mx_reply(qid, other, EVIL)])
        not_reply = bytearray(raw_mx_reply(qid, question, EVIL))
        not_reply[2] &= 0x7F  # QR clear
        sprayed += spray(server.sock, port, [bytes(not_reply)])

    with EchoServer(forger) as server:
        stub = StubResolver([("127.0.0.1", server.port)], timeout=2.0, lifetime=10.0)
        answers = [
            a
            for b in range(50)
            for a in stub.resolve_batch(
                [Query(f"f{4 * b + i}.sb.forge.test.", RRType.MX) for i in range(4)]
            )
        ]
    assert sprayed == 200 * 66
    exchanges = [r.exchange for a in answers for r in a.mx]
    assert EVIL not in exchanges
    assert exchanges == [GOOD] * 200


def test_R5452_5_identical_questions_in_a_batch_are_one_exchange() -> None:
    """A question three times in one batch goes out once; all three get its answer."""
    same = Query("same.sb.forge.test.", RRType.MX)
    other = Query("other.sb.forge.test.", RRType.MX)
    with EchoServer() as server:
        stub = StubResolver([("127.0.0.1", server.port)])
        answers = stub.resolve_batch([same, other, same, same])
    assert [[r.exchange for r in a.mx] for a in answers] == [[GOOD]] * 4
    assert sorted(server.names) == [other.name, same.name]


def test_dns0x20_in_a_batch(fault_server) -> None:  # type: ignore[no-untyped-def]
    """dns0x20=True: every query of the batch in mixed case, the exact echo taken (the
    fault server echoes the case it was sent, as a resolver does)."""
    sent: list[bytes] = []
    original = stub_module._mix_case

    def spy(question: bytes) -> bytes:
        mixed = original(question)
        sent.append(mixed)
        return mixed

    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)], dns0x20=True)
    stub_module._mix_case = spy
    try:
        answers = stub.resolve_batch([MX, A])
    finally:
        stub_module._mix_case = original
    assert [a.status for a in answers] == [Status.RECORDS, Status.RECORDS]
    assert len(sent) == 2


def test_dns0x20_falls_back_to_lower_case_in_a_batch() -> None:
    """A server that answers in lower case whatever it was asked: each query of the batch is
    asked once more at once, in lower case, and that reply taken."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    received: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            name = query.question[0].name.to_text()
            received.append(name)
            lowered = dns.message.make_query(name.lower(), "MX")
            lowered.id = query.id
            reply = dns.message.make_response(lowered)
            reply.answer.append(dns.rrset.from_text(name.lower(), 300, "IN", "MX", "10 mx."))
            sock.sendto(reply.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        stub = StubResolver([("127.0.0.1", sock.getsockname()[1])], dns0x20=True, timeout=3.0)
        names = [Query(f"mixed-case-name-{i}.with-letters.sb.test.", RRType.MX) for i in range(3)]
        answers = stub.resolve_batch(names)
    finally:
        stop.set()
        thread.join()
        sock.close()
    assert [a.status for a in answers] == [Status.RECORDS] * 3
    assert len(received) == 6
    assert sorted(n for n in received if n == n.lower()) == sorted(q.name for q in names)


# -- the sync driver: no thread pool, the deadline ------------------------------------------


def test_select_targets_with_a_stub_uses_no_thread_pool(fault_server, no_pool) -> None:  # type: ignore[no-untyped-def]
    """The sync driver sends each batch through StubResolver.resolve_batch from the calling
    thread: with the pool unusable, select_targets still works, with and without a deadline,
    and selects what the per-query path (one thread per query) selects."""
    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)])
    batches: list[int] = []
    original = StubResolver.resolve_batch

    def spy(self: StubResolver, queries: Sequence[Query], lifetime: float | None = None) -> object:
        batches.append(len(queries))
        return original(self, queries, lifetime)

    StubResolver.resolve_batch = spy  # type: ignore[method-assign,assignment]
    try:
        plain = mxselect.select_targets("d.sb.test", resolver=stub, rng=random.Random(4))
        timed = mxselect.select_targets(
            "d.sb.test", resolver=stub, rng=random.Random(4), deadline=5
        )
    finally:
        StubResolver.resolve_batch = original  # type: ignore[method-assign]
    assert batches == [1, 4, 1, 4]  # the MX; then A and AAAA of both hosts, in one batch each
    assert plain == timed
    assert [str(t.address) for t in plain] == ["2001:db8::1", "192.0.2.1", "192.0.2.2"]


def test_the_per_query_path_selects_the_same(fault_server) -> None:  # type: ignore[no-untyped-def]
    """The batch path and the thread-per-query path agree (same seed, same selection)."""
    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)])
    for domain in ("d.sb.test", "big.sb.test", "mx1.d.sb.test", "nope.sb.test"):
        try:
            batched = mxselect.select_targets(domain, resolver=stub, rng=random.Random(9))
        except mxselect.MXSelectError as exc:
            batched = type(exc)  # type: ignore[assignment]
        try:
            threaded = mxselect.select_targets(
                domain, resolver=PerQuery(stub), rng=random.Random(9)
            )
        except mxselect.MXSelectError as exc:
            threaded = type(exc)  # type: ignore[assignment]
        assert batched == threaded


def test_the_deadline_ends_a_batch_without_a_thread(fault_server, no_pool) -> None:  # type: ignore[no-untyped-def]
    """select_targets(deadline=0.3) against a server that never answers, with a 20 s
    lifetime: a DNSTemporaryError naming the deadline, soon after it, no thread of the pool
    used, no thread left running the query, no socket left open."""
    server = fault_server(ZONE)
    server.set_rule("d.sb.test.", "MX", "drop")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=20, lifetime=20)
    threads_before = set(threading.enumerate())
    fds_before = open_fds()
    started = time.monotonic()
    with pytest.raises(DNSTemporaryError) as info:
        mxselect.select_targets("d.sb.test", resolver=stub, deadline=0.3)
    elapsed = time.monotonic() - started
    assert "the deadline of 0.3 s expired" in str(info.value)
    assert info.value.reply_code == 451
    assert elapsed < 2.0  # a hang guard: the lifetime is 20 s
    assert set(threading.enumerate()) <= threads_before
    assert open_fds() == fds_before


def test_the_deadline_keeps_what_arrived_and_abandons_the_rest(fault_server, no_pool) -> None:  # type: ignore[no-untyped-def]
    """The MX arrives, one host's addresses never do: the deadline expires in the second
    batch, the error names the queries still unanswered (the plan abandons, as with the
    pool). The MX must be answered before the deadline: a generous one (2 s), so that a
    loaded machine cannot leave the MX unanswered instead."""
    server = fault_server(ZONE)
    server.set_rule("mx2.d.sb.test.", None, "drop")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=20, lifetime=20)
    with pytest.raises(DNSTemporaryError) as info:
        mxselect.select_targets("d.sb.test", resolver=stub, deadline=2)
    assert "the deadline of 2 s expired" in str(info.value)
    assert "mx2.d.sb.test" in str(info.value)


def test_under_a_deadline_a_failure_that_came_in_time_is_the_reason(fault_server, no_pool) -> None:  # type: ignore[no-untyped-def]
    """A batch that returned before the deadline is fed as it is: a SERVFAIL is the reason
    of the temporary error, not the deadline."""
    server = fault_server(ZONE)
    server.set_rule("d.sb.test.", "MX", "servfail")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=2, lifetime=2)
    with pytest.raises(DNSTemporaryError) as info:
        mxselect.select_targets("d.sb.test", resolver=stub, deadline=5)
    assert f"SERVFAIL from 127.0.0.1@{server.port}" in str(info.value)
    assert "deadline" not in str(info.value)


def test_a_caching_resolver_over_a_stub_uses_no_thread_pool(fault_server, no_pool) -> None:  # type: ignore[no-untyped-def]
    """CachingResolver(StubResolver): the misses of a batch go to the stub's resolve_batch in
    one call from the calling thread (no pool, with and without a deadline); the second
    selection is answered from the cache."""
    server = fault_server(ZONE)
    cache = CachingResolver(StubResolver([("127.0.0.1", server.port)]))
    first = mxselect.select_targets("d.sb.test", resolver=cache, rng=random.Random(5))
    asked = len(server.queries)
    again = mxselect.select_targets("d.sb.test", resolver=cache, rng=random.Random(5), deadline=5)
    assert list(first) == list(again)
    assert asked == 5
    assert len(server.queries) == asked  # all hits
    assert (cache.stats.hits, cache.stats.upstream) == (5, 5)
    answers = cache.resolve_batch([A, A, Query("mx2.d.sb.test.", RRType.A)], lifetime=5)
    assert [str(a.addresses[0]) for a in answers] == ["192.0.2.1"] * 2 + ["192.0.2.2"]


def test_a_caching_resolver_batch_joins_another_threads_query(fault_server) -> None:  # type: ignore[no-untyped-def]
    """A miss already asked upstream by another thread is waited for, not asked again
    (coalesced); with a lifetime, the wait ends with it."""
    server = fault_server(ZONE)
    server.set_rule("mx1.d.sb.test.", "A", "delay-300")
    cache = CachingResolver(StubResolver([("127.0.0.1", server.port)], timeout=2, lifetime=2))
    other = threading.Thread(target=cache.resolve, args=(A,))
    other.start()
    while not server.queries:
        time.sleep(0.01)
    short = cache.resolve_batch([A], lifetime=0.05)
    joined = cache.resolve_batch([A, MX])
    other.join()
    assert short[0].status is Status.TEMPFAIL
    assert short[0].reason == "timeout after 0.05 s (an identical query)"
    assert [str(x) for x in joined[0].addresses] == ["192.0.2.1"]
    assert sorted(q[0] for q in server.queries) == ["d.sb.test.", "mx1.d.sb.test."]
    assert cache.stats.coalesced == 2


def test_many_threads_select_at_once_through_one_stub(fault_server, no_pool) -> None:  # type: ignore[no-untyped-def]
    """8 threads x 20 selections at once through one StubResolver, each a batch of its own in
    its thread: every selection right (what the thread-per-query path selected for it)."""
    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)], timeout=2.0, lifetime=10.0)
    domains = [f"s{i}.sb.test" for i in range(40)]
    expected = {
        d: [str(t.address) for t in mxselect.select_targets(d, resolver=stub)] for d in domains
    }
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(20):
            domain = rng.choice(domains)
            try:
                got = [str(t.address) for t in mxselect.select_targets(domain, resolver=stub)]
            except Exception as exc:
                errors.append(f"{domain}: {exc!r}")
                continue
            if got != expected[domain]:
                errors.append(f"{domain}: {got} != {expected[domain]}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [expected[f"s{i}.sb.test"] for i in range(3)] == [
        ["198.51.100.1"],
        ["198.51.100.2"],
        ["198.51.100.3"],
    ]


# -- sockets: bounded, never leaked ----------------------------------------------------------


def test_no_socket_outlives_a_batch_whatever_happens(fault_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Every outcome, a KeyboardInterrupt in the middle of a batch, an exception while
    another query's socket is open: the descriptors open afterwards are those open before."""
    server = fault_server(ZONE)
    server.set_rule("tc.sb.test.", "MX", "tc")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=0.1, lifetime=0.3)
    before = open_fds()
    stub.resolve_batch(OUTCOMES)
    assert settled_fds(before) == before

    server.set_rule("d.sb.test.", "MX", "delay-50")
    original = stub_module._receive
    calls = 0

    def interrupted(*args: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(stub_module, "_receive", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stub.resolve_batch([MX, A, Query("drop.sb.test.", RRType.A)])
    monkeypatch.setattr(stub_module, "_receive", original)
    assert settled_fds(before) == before

    def broken(*args: object) -> object:
        raise RuntimeError("a bug in the TCP exchange")

    # (raised before the connection is made: a connection left half-open here would be the
    # fault server's to clean up, racing its shutdown at the end of the test)
    monkeypatch.setattr(stub_module._SyncBatch, "_connect", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        stub.resolve_batch([Query("drop.sb.test.", RRType.A), Query("tc.sb.test.", RRType.MX)])
    assert settled_fds(before) == before


def test_a_batch_keeps_max_in_flight(fault_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A batch of 20 with max_in_flight=4: never more than 4 of its queries waiting for a
    reply at once; all answered."""
    server = fault_server(ZONE, default_delay_ms=20)
    stub = StubResolver([("127.0.0.1", server.port)], max_in_flight=4)
    most = 0
    original = stub_module._SyncBatch._transmit

    def spy(self: stub_module._SyncBatch, *args: object) -> object:
        nonlocal most
        result = original(self, *args)  # type: ignore[arg-type]
        most = max(most, len(self.waiting), len(self.by_fd))
        return result

    monkeypatch.setattr(stub_module._SyncBatch, "_transmit", spy)
    answers = stub.resolve_batch([Query(f"h{i}.sb.test.", RRType.A) for i in range(20)])
    assert [str(a.addresses[0]) for a in answers] == [f"198.51.100.{i + 1}" for i in range(20)]
    assert most == 4


def test_the_sync_batch_is_what_the_typing_protocol_says() -> None:
    """StubResolver is a BatchResolver; its batch takes the drivers' lifetime."""
    from mxselect._resolvers import sync_port
    from mxselect.typing import BatchResolver

    stub = StubResolver(["127.0.0.1"])
    assert isinstance(stub, BatchResolver)
    port = sync_port(stub)
    assert port.batched
    assert port.bounded_batch
    assert sync_port(CachingResolver(stub)).bounded_batch


def test_a_caching_resolver_over_a_per_query_resolver_stops_at_the_lifetime() -> None:
    """Behind the cache, a resolver with only ``resolve`` (no batch, no lifetime): the misses
    run on the pool and a batch given a lifetime returns when it is spent, the unanswered
    ones as temporary failures; what arrives later is kept for the next caller."""
    from mxselect.testing import FakeResolver

    fake = FakeResolver.from_zone(ZONE)
    release = threading.Event()

    class Slow:
        def resolve(self, query: Query) -> Answer:
            release.wait(5)
            return fake.resolve(query)

    cache = CachingResolver(Slow())
    answers = cache.resolve_batch([A, MX], lifetime=0.1)
    assert [a.reason for a in answers] == ["timeout after 0.1 s"] * 2
    release.set()
    later = cache.resolve_batch([A, MX])
    assert [a.status for a in later] == [Status.RECORDS, Status.RECORDS]
    assert cache.stats.upstream == 2  # the second batch joined or hit the first one's queries


def test_a_batch_works_with_descriptors_above_fd_setsize(fault_server) -> None:  # type: ignore[no-untyped-def]
    """A busy process has more than FD_SETSIZE (1,024) descriptors open: the batch's sockets
    are numbered above it, which select() could not watch; poll() can."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200 and (hard == resource.RLIM_INFINITY or hard >= 1200):
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 1200:
        pytest.skip("cannot open 1,100 descriptors here")
    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)])
    held: list[int] = []
    try:
        while open_fds() < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        answers = stub.resolve_batch([MX, A])
        assert min(held) < 1024 < max(held)
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [a.status for a in answers] == [Status.RECORDS, Status.RECORDS]
