"""The fast paths of the stub's transport and codec: they give what the general paths give.

* :func:`mxselect._wire.decode` reads the usual replies to A, AAAA and MX queries (every
  owner a pointer to the question's name, no authority section, the OPT record) without its
  general machinery (``_wire._simple_answer``). A differential test holds it to the general
  decoder as it was before the fast path (``old_decode`` below, kept verbatim as the
  oracle): seeded random replies of that shape and of every near miss -- other owners,
  types, classes, lengths, counts, RCODEs, TTLs with the top bit set, broken pointers,
  truncated and mutated messages, malformed questions -- decode to the same Answer, RCODE or
  WireError (same message).
* :meth:`StubResolver.aresolve` makes the retry loop's first exchange itself, as a batch
  does: an answered query never starts the loop; any other first reply continues it exactly
  where it stands (the next server, RFC 1123 §6.1.3.3).
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest

import mxselect.stub as stub_module
from mxselect import Answer, Query, RRType, Security, Status
from mxselect import _wire as wire
from mxselect.stub import StubResolver


def old_decode(
    msg: bytes, question: bytes, rtype: RRType, *, dnssec: bool = False
) -> Answer | int | wire._Truncated:
    """The general decoder as it was before the fast path (verbatim but for the
    ``wire.`` prefixes): the oracle."""
    if len(msg) < 12:
        raise wire.WireError("shorter than a DNS header")
    _qid, flags, qdcount, ancount, nscount, arcount = wire._HEADER.unpack_from(msg)
    if not flags & 0x8000 or flags & 0x7800:  # QR must be set, OPCODE must be QUERY
        raise wire.WireError("not a reply to a standard query")
    end_q = 12 + len(question)
    header_rcode: int = flags & 0x000F
    if qdcount == 0 and header_rcode not in (wire.NOERROR, wire.NXDOMAIN):
        # An error without the question: what a server that cannot parse the query (an old
        # one, to an OPT record, RFC 6891 §7) sends. dnspython takes it as that server's
        # failure too.
        return header_rcode
    # The reply repeats our question; names compare without case (RFC 4343).
    if qdcount != 1 or msg[12:end_q].lower() != question.lower():
        raise wire.WireError("the reply is for another question")
    if flags & 0x0200:
        return wire.TRUNCATED
    rcode: int = flags & 0x000F
    # With ``dnssec``: what the AD bit says of every RRset in the reply (RFC 4035 §3.2.3);
    # whether it counts is the resolver's decision (StubResolver.trust_ad, RFC 7672 §2.1.1).
    if not dnssec:
        security = Security.UNKNOWN
    else:
        security = Security.SECURE if flags & wire._AD else Security.INSECURE
    seen: dict[int, tuple[str, int, int]] = {}
    qname, _ = wire._name(msg, 12, seen)
    off = end_q
    qtype = wire.QTYPE[rtype]
    # answer section: (owner key, type) -> [(ttl, data)] for the types we read
    records: dict[tuple[str, int], list[tuple[int, Any]]] = {}
    owners: dict[str, str] = {}
    size = len(msg)
    for _ in range(ancount):
        # (wire._record, inline: the answer section is where the records are)
        owner, off = wire._name(msg, off, seen)
        if off + 10 > size:
            raise wire.WireError("record header runs past the end")
        rrtype, rrclass, ttl, rdlen = wire._RR.unpack_from(msg, off)
        off += 10
        rdend = off + rdlen
        if rdend > size:
            raise wire.WireError("record data runs past the end")
        if ttl > wire._MAX_TTL:  # RFC 2181 §8: the top bit set means 0 (dnspython reads it so)
            ttl = 0
        if rrclass == wire._CLASS_IN and rrtype in (qtype, wire._CNAME):
            data: Any
            if rrtype == 1:
                if rdend - off != 4:
                    raise wire.WireError("A record of the wrong length")
                data = msg[off:rdend]
            elif rrtype == 28:
                if rdend - off != 16:
                    raise wire.WireError("AAAA record of the wrong length")
                data = msg[off:rdend]
            elif rrtype == 15:
                if rdend - off < 3:
                    raise wire.WireError("MX record too short")
                exchange, after = wire._name(msg, off + 2, seen)
                if after != rdend:
                    raise wire.WireError("MX record of the wrong length")
                data = ((msg[off] << 8) | msg[off + 1], exchange)
            elif rrtype == wire._TLSA_TYPE:
                # RFC 6698 §2.1: usage, selector, matching type (one octet each), then the
                # association data (any length, even none: then unusable, RFC 6698 §4.1).
                # Shorter than 3 octets is no TLSA record: a malformed reply, never a crash.
                if rdend - off < 3:
                    raise wire.WireError("TLSA record shorter than 3 octets")
                data = (msg[off], msg[off + 1], msg[off + 2], msg[off + 3 : rdend])
            elif rrtype == wire._TXT_TYPE:
                data = wire._txt_strings(msg, off, rdend)
            else:
                target, after = wire._name(msg, off, seen)
                if after != rdend:
                    raise wire.WireError("CNAME record of the wrong length")
                data = target
            key = owner.lower()
            owners.setdefault(key, owner)
            records.setdefault((key, rrtype), []).append((ttl, data))
        off = rdend
    # SOA RRsets of the authority section: owner key -> (TTL, MINIMUM)
    soas: dict[str, tuple[int, int]] = {}
    for _ in range(nscount):
        owner, rrtype, rrclass, ttl, off, rdend = wire._record(msg, off, seen)
        if rrtype == wire._SOA:
            _mname, after = wire._name(msg, off, seen)
            _rname, after = wire._name(msg, after, seen)
            if after + 20 != rdend:
                raise wire.WireError("SOA record of the wrong length")
            if rrclass == wire._CLASS_IN:
                key = owner.lower()
                ttl = ttl if ttl <= wire._MAX_TTL else 0
                known = soas.get(key)
                # As dnspython's RRset: the smallest TTL, the last record's data (a singleton).
                soas[key] = (
                    ttl if known is None else min(known[0], ttl),
                    wire._U32.unpack_from(msg, after + 16)[0],
                )
        off = rdend
    for _ in range(arcount):
        _owner, rrtype, _payload, ttl, _rdata, off = wire._record(msg, off, seen)
        if rrtype == wire._OPT:
            rcode |= (ttl >> 24) << 4  # the extended RCODE (RFC 6891 §6.1.3)
    if off != len(msg):
        raise wire.WireError("trailing data after the last record")
    if rcode not in (wire.NOERROR, wire.NXDOMAIN):
        return rcode
    return wire._answer(rcode, rtype, qname, records, owners, soas, security)


# -- seeded random replies around the fast path's shape --------------------------------------

_LABELS = [b"mx1", b"D123", b"bulk", b"test", b"example", b"a-b", b"xn--bcher-kva", b"_25", b"_tcp"]
_ODD_LABELS = [b"a.b", b"back\\slash", b"sp ace", b"\x80\xff", b"@", b"x" * 63]
_TYPES = {RRType.A: 1, RRType.AAAA: 28, RRType.MX: 15, RRType.TXT: 16, RRType.TLSA: 52}


def _wire_name(labels: list[bytes]) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def _recase(data: bytes, rng: random.Random) -> bytes:
    """DNS 0x20: letters in a random case (length octets are never letters)."""
    return bytes(b ^ 0x20 if 0x61 <= (b | 0x20) <= 0x7A and rng.random() < 0.3 else b for b in data)


def _rr(
    owner: bytes, rtype: int, rclass: int, ttl: int, rdata: bytes, rdlen: int | None = None
) -> bytes:
    size = len(rdata) if rdlen is None else max(0, rdlen)
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, size) + rdata


def random_reply(rng: random.Random) -> tuple[bytes, bytes, RRType]:
    """(message, question, rtype): a reply near the shape the fast path reads, or that shape."""
    rtype = rng.choice([RRType.A, RRType.AAAA, RRType.MX] * 5 + list(_TYPES))
    qtype = _TYPES[rtype]
    labels = [rng.choice(_LABELS) for _ in range(rng.randint(0, 4))]
    if rng.random() < 0.1:
        labels.insert(0, rng.choice(_ODD_LABELS))
    qname = _wire_name(labels)
    if rng.random() < 0.03:  # a malformed question: a pointer, a bad label type, over-long
        qname = rng.choice(
            [
                b"\xc0\x0c",
                b"\x41" + b"a" * 65 + b"\x00",
                (b"\x3fx" + b"y" * 62) * 5 + b"\x00",
                b"\x03mx1\x00\x04test\x00",  # the root octet inside the name
                b"\x03mx1\x05",  # no root octet: the name runs on into QTYPE
            ]
        )
    question = qname + struct.pack("!HH", qtype, 1)
    flags = 0x8180 | (0x0020 if rng.random() < 0.5 else 0)
    if rng.random() < 0.1:
        flags |= rng.choice([0x0003, 0x0002, 0x0200, 0x0001, 0x0005])
    if rng.random() < 0.02:
        flags &= rng.choice([0x7FFF, 0xFFFF ^ 0x0800 ^ 0x7FFF])
    ttl = lambda: rng.choice([0, 60, 300, 3600, 2**31 - 1, 2**31, 2**32 - 1, rng.randrange(2**32)])  # noqa: E731
    body = bytearray(_recase(question, rng))
    answers = 0
    for _ in range(rng.choice([0, 1, 1, 1, 2, 2, 3, 4])):
        owner = b"\xc0\x0c"
        roll = rng.random()
        if roll < 0.05:
            owner = qname
        elif roll < 0.08:
            owner = b"\x03www\xc0\x0c"
        elif roll < 0.1:
            owner = rng.choice([b"\xc0\xff", b"\xc0", b"\xc1\x0c", b"\x00"])
        rrtype = qtype if rng.random() < 0.9 else rng.choice([5, 1, 28, 15, 46, 16])
        rclass = 1 if rng.random() < 0.95 else 3
        if rrtype == 1:
            rdata = bytes(
                rng.randrange(256)
                for _ in range(4 if rng.random() < 0.95 else rng.choice([0, 3, 5, 16]))
            )
        elif rrtype == 28:
            rdata = bytes(
                rng.randrange(256)
                for _ in range(16 if rng.random() < 0.95 else rng.choice([4, 15, 17]))
            )
        elif rrtype in (15, 5):
            pref = struct.pack("!H", rng.choice([0, 10, 10, 20, 65535])) if rrtype == 15 else b""
            target = rng.choice(
                [
                    b"\x03mx1\xc0\x0c",
                    b"\x03mx2\xc0\x0c",
                    b"\xc0\x0c",
                    _wire_name([b"mx", b"other", b"net"]),
                    b"\x03MX1\xc0\x0c",
                    b"\xc0\xf0",
                    b"\x03mx1",
                    b"\x05mx\\.1\xc0\x0c",
                ]
            )
            if rng.random() < 0.05 and len(body) > 20:  # a pointer into an earlier record
                target = struct.pack("!H", 0xC000 | rng.randrange(12, 12 + len(body)))
            rdata = pref + target
            if rng.random() < 0.03:  # too short for an MX record
                rdata = rdata[: rng.randint(0, 2)]
        else:
            rdata = bytes(rng.randrange(256) for _ in range(rng.randint(0, 8)))
        rdlen = None if rng.random() < 0.95 else len(rdata) + rng.choice([-1, 1, 2])
        body += _rr(owner, rrtype, rclass, ttl(), rdata, rdlen)
        answers += 1
        if rng.random() < 0.15:  # the same record twice (a duplicate, dropped)
            body += body[-(len(owner) + 10 + len(rdata)) :]
            answers += 1
    authority = 0
    if rng.random() < 0.15:
        soa = (
            _wire_name([b"ns", b"test"])
            + _wire_name([b"h", b"test"])
            + struct.pack("!5I", 1, 2, 3, 4, 60)
        )
        body += _rr(rng.choice([b"\xc0\x0c", _wire_name([b"test"])]), 6, 1, ttl(), soa)
        authority = 1
    additional = 0
    for _ in range(rng.choice([0, 1, 1, 1, 1, 2])):
        roll = rng.random()
        if roll < 0.8:
            option = b"" if rng.random() < 0.8 else struct.pack("!HHH", 15, 2, 6)
            ext = rng.choice([0, 0, 0, 0, 1, 0x10])
            body += _rr(b"\x00", 41, 1232, ext << 24, option)
        elif roll < 0.9:
            body += _rr(b"\x00", 1, 1, 60, b"\x01\x02\x03\x04")
        else:
            body += _rr(_wire_name([b"ns", b"test"]), 1, 1, 60, b"\x01\x02\x03\x04")
        additional += 1
    counts = [1, answers, authority, additional]
    if rng.random() < 0.05:
        counts[rng.randrange(4)] += rng.choice([-1, 1])
    counts = [max(0, c) for c in counts]
    msg = struct.pack("!HHHHHH", rng.randrange(65536), flags, *counts) + bytes(body)
    roll = rng.random()
    if roll < 0.04:
        msg += b"\x00" * rng.randint(1, 3)  # trailing junk
    elif roll < 0.08:
        msg = msg[: rng.randrange(12, len(msg) + 1)]  # cut short
    elif roll < 0.14:  # a few octets changed
        mutated = bytearray(msg)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        msg = bytes(mutated)
    return msg, question, rtype


def outcome(
    decode: Callable[..., Any], msg: bytes, question: bytes, rtype: RRType, dnssec: bool
) -> Any:
    """What ``decode`` makes of the reply, comparable: the value (with its type and repr, so
    that an IPv4Address is no equal-looking other object) or the WireError's message."""
    try:
        result = decode(msg, question, rtype, dnssec=dnssec)
    except wire.WireError as exc:
        return ("WireError", str(exc))
    return (type(result), result, repr(result))


def test_decode_is_the_general_decoder_on_seeded_random_replies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """20,000 seeded random replies: the new decode gives what the old one gives, and the
    fast path both answers many of them and declines many (the test covers both sides)."""
    rng = random.Random(20261202)
    fast = wire._simple_answer
    taken = declined = 0

    def counting(*args: Any) -> Answer | None:
        nonlocal taken, declined
        result = fast(*args)
        if result is None:
            declined += 1
        else:
            taken += 1
        return result

    monkeypatch.setattr(wire, "_simple_answer", counting)
    for _ in range(20000):
        msg, question, rtype = random_reply(rng)
        dnssec = rng.random() < 0.7
        expected = outcome(old_decode, msg, question, rtype, dnssec)
        assert outcome(wire.decode, msg, question, rtype, dnssec) == expected, (
            msg.hex(),
            question,
            rtype,
        )
    assert taken > 2000, taken
    assert declined > 500, declined


def _reply(rtype: RRType, *rdatas: bytes, rcode: int = 0, ext: int = 0) -> tuple[bytes, bytes]:
    question = wire.question_of("mx1.d.example.", rtype)
    records = b"".join(_rr(b"\xc0\x0c", _TYPES[rtype], 1, 300, rdata) for rdata in rdatas)
    header = struct.pack("!HHHHHH", 7, 0x81A0 | rcode, 1, len(rdatas), 0, 1)
    return header + question + records + _rr(b"\x00", 41, 1232, ext << 24, b""), question


@pytest.mark.parametrize(
    ("rtype", "rdatas"),
    [
        (RRType.A, [b"\xc0\x00\x02\x01", b"\xc0\x00\x02\x02", b"\xc0\x00\x02\x01"]),
        (RRType.AAAA, [b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x01", b"\x20\x01" + b"\x00" * 14]),
        (
            RRType.MX,
            [b"\x00\x0a\x03mx1\xc0\x0c", b"\x00\x14\x03MX2\xc0\x0c", b"\x00\x0a\x03MX1\xc0\x0c"],
        ),
    ],
)
def test_the_usual_replies_take_the_fast_path(
    rtype: RRType, rdatas: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An A, AAAA or MX answer as a recursive resolver sends it is read without the general
    answer builder (``_wire._answer`` is never called), to the same Answer."""
    msg, question = _reply(rtype, *rdatas)
    expected = old_decode(msg, question, rtype, dnssec=True)

    def general(*args: Any) -> Any:
        raise AssertionError("the general answer builder was used")

    monkeypatch.setattr(wire, "_answer", general)
    answer = wire.decode(msg, question, rtype, dnssec=True)
    assert answer == expected
    assert repr(answer) == repr(expected)
    assert isinstance(answer, Answer)
    assert answer.security is Security.SECURE
    assert len(answer.addresses) + len(answer.mx) == 2  # the duplicate dropped (RFC 2181 §5)


@pytest.mark.parametrize(("rcode", "ext"), [(3, 0), (0, 1), (2, 0)])
def test_an_error_rcode_with_records_is_left_to_the_general_decoder(rcode: int, ext: int) -> None:
    """NXDOMAIN with the data, an extended RCODE (RFC 6891 §6.1.3), SERVFAIL: the RCODE,
    as before (the fast path answers NOERROR only)."""
    msg, question = _reply(RRType.A, b"\xc0\x00\x02\x01", rcode=rcode, ext=ext)
    assert (
        wire.decode(msg, question, RRType.A)
        == old_decode(msg, question, RRType.A)
        == rcode | ext << 4
    )


# -- aresolve: the first exchange made without the retry loop -------------------------------

ZONE = """
$ORIGIN fast.test.
$TTL 300
@        SOA  ns hostmaster 1 3600 900 604800 60
d        MX   10 mx1.d
mx1.d    A    192.0.2.1
"""


def test_aresolve_starts_the_retry_loop_only_when_the_first_exchange_gives_no_answer(
    fault_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answered aresolve never starts the retry loop; a SERVFAIL from the first server
    starts it from that reply (the second server next, RFC 1123 §6.1.3.3), as before."""
    bad, good = fault_server(ZONE), fault_server(ZONE)
    bad.set_rule("d.fast.test.", "MX", "servfail")
    stub = StubResolver([("127.0.0.1", bad.port), ("127.0.0.1", good.port)], timeout=1.0)
    loops: list[Any] = []
    attempts = StubResolver._attempts

    def counted(self: StubResolver, *args: Any) -> Any:
        loops.append(args[3:])  # (the first reply, if the loop starts from one)
        return attempts(self, *args)

    monkeypatch.setattr(StubResolver, "_attempts", counted)
    answer = asyncio.run(stub.aresolve(Query("mx1.d.fast.test.", RRType.A)))
    assert answer.status is Status.RECORDS
    assert loops == []
    answer = asyncio.run(stub.aresolve(Query("d.fast.test.", RRType.MX)))
    assert answer.status is Status.RECORDS
    assert [type(first[0]).__name__ for first in loops] == ["Rcode"]
    assert (len(bad.queries), len(good.queries)) == (2, 1)  # (the A query, then the MX)


def test_aresolve_applies_trust_ad(fault_server: Any) -> None:
    """``trust_ad=False``: UNKNOWN, from aresolve and aresolve_batch (applied in their body
    now, no wrapping coroutine)."""
    server = fault_server(ZONE)
    for trust, expected in ((False, Security.UNKNOWN), (True, Security.INSECURE)):
        stub = StubResolver([("127.0.0.1", server.port)], trust_ad=trust)
        query = Query("mx1.d.fast.test.", RRType.A)
        assert asyncio.run(stub.aresolve(query)).security is expected
        assert [a.security for a in asyncio.run(stub.aresolve_batch([query, query]))] == [
            expected
        ] * 2


def test_a_batch_of_one_is_asked_as_aresolve_asks_it(
    fault_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of one query takes aresolve's path (no batch bookkeeping: ``_lead_batch``
    is not used), with aresolve's outcomes: an answer, the next server after an error, a
    name that cannot be sent; a batch of two still goes the batch's way."""
    bad, good = fault_server(ZONE), fault_server(ZONE)
    bad.set_rule("d.fast.test.", "MX", "servfail")
    stub = StubResolver([("127.0.0.1", bad.port), ("127.0.0.1", good.port)], timeout=1.0)
    batches: list[int] = []
    lead = StubResolver._lead_batch

    async def counted(self: StubResolver, state: Any, queries: Any, *args: Any) -> None:
        batches.append(len(queries))
        await lead(self, state, queries, *args)

    monkeypatch.setattr(StubResolver, "_lead_batch", counted)
    a, mx = Query("mx1.d.fast.test.", RRType.A), Query("d.fast.test.", RRType.MX)
    bad_name = Query("x" * 64 + ".fast.test.", RRType.A)
    for query in (a, mx, bad_name):
        (one,) = asyncio.run(stub.aresolve_batch([query]))
        assert one == asyncio.run(stub.aresolve(query))
    assert batches == []
    assert asyncio.run(stub.aresolve_batch([a, mx]))[1].status is Status.RECORDS
    assert batches == [2]
    # A twice and MX twice alone, then both in one batch; each MX: SERVFAIL, then the next
    assert (len(bad.queries), len(good.queries)) == (6, 3)


def test_a_reused_descriptor_never_gets_a_closed_querys_reply(
    fault_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query's socket leaves the loop's epoll set when it is closed -- the kernel takes it
    out, no ``epoll_ctl`` call -- and its descriptor number soon serves another query. Here
    queries time out with their replies still on the way, and the queries sent next reuse
    their descriptors while those late replies arrive (at ports now closed, RFC 5452 §9.2):
    each new query gets its own answer, no event reaches a closed socket, and no socket is
    reported readable with nothing to read (no stale readiness under a reused number). (A
    late reply can still reach a new socket that the kernel happened to give the closed one's
    port: it carries the other query's ID and question and is ignored, RFC 5452 §9.1.)"""
    zone = ZONE + "".join(f"h{i} A 198.51.100.{i + 1}\n" for i in range(60))
    zone += "".join(f"s{i} A 203.0.113.{i + 1}\n" for i in range(30))
    server = fault_server(zone)
    for i in range(30):
        server.set_rule(f"s{i}.fast.test.", "A", "delay-40")
    for i in range(60):
        server.set_rule(f"h{i}.fast.test.", "A", "delay-80")
    server.set_rule("keep.fast.test.", "A", "drop")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=5.0, lifetime=5.0)
    opened: list[int] = []
    open_udp, receive, readable = (
        stub_module._open_udp,
        stub_module._receive,
        stub_module._Socket._readable,
    )
    stale = 0

    def recording(server: Any) -> Any:
        sock = open_udp(server)
        opened.append(sock.fileno())
        return sock

    def counting(sock: Any, *args: Any) -> Any:
        nonlocal stale
        try:
            sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            stale += 1
        except OSError:
            pass  # (an ICMP error: for receive to report)
        return receive(sock, *args)

    def checked(self: Any) -> None:
        assert self.sock is not None, "an event for a closed socket"
        readable(self)

    monkeypatch.setattr(stub_module, "_open_udp", recording)
    monkeypatch.setattr(stub_module, "_receive", counting)
    monkeypatch.setattr(stub_module._Socket, "_readable", checked)

    async def main() -> None:
        # one query kept in flight: the loop's state (and its epoll set) lives throughout
        keep = asyncio.ensure_future(stub.aresolve(Query("keep.fast.test.", RRType.A)))
        await asyncio.sleep(0.01)
        for _ in range(3):
            del opened[:]
            slow = [Query(f"s{i}.fast.test.", RRType.A) for i in range(30)]
            timed_out = await asyncio.gather(*(stub.aresolve(q, lifetime=0.01) for q in slow))
            assert {a.status for a in timed_out} == {Status.TEMPFAIL}
            closed = set(opened)
            del opened[:]
            queries = [Query(f"h{i}.fast.test.", RRType.A) for i in range(60)]
            answers = await asyncio.gather(*(stub.aresolve(q) for q in queries))
            assert [str(a.addresses[0]) for a in answers] == [
                f"198.51.100.{i + 1}" for i in range(60)
            ]
            assert closed & set(opened), "no descriptor was reused"
        keep.cancel()
        with pytest.raises(asyncio.CancelledError):
            await keep

    asyncio.run(main())
    assert stale == 0


def test_consecutive_batches_of_one_task_keep_the_loops_epoll_set(
    fault_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A selection asks its batches one after another in one task (MX, the addresses, the
    TLSA records): the loop's state, and its epoll set, outlive the moment between them
    when nothing is in flight -- closing it there and opening a new one cost a DANE
    selection about 0.4 ms on its critical path. It is still closed once the loop has
    nothing in flight, before the loop ends: no descriptor is left open."""
    import os

    server = fault_server(ZONE)
    stub = StubResolver([("127.0.0.1", server.port)], timeout=2.0, lifetime=4.0)
    made: list[Any] = []
    epoll = stub_module._EPOLL
    assert epoll is not None

    def counting() -> Any:
        made.append(epoll())
        return made[-1]

    monkeypatch.setattr(stub_module, "_EPOLL", counting)
    before = len(os.listdir("/proc/self/fd"))
    q = Query("mx1.d.fast.test.", RRType.A)
    mx = Query("d.fast.test.", RRType.MX)

    async def main() -> int:
        for _ in range(3):
            answers = await stub.aresolve_batch([mx, q])
            assert [a.status for a in answers] == [Status.RECORDS] * 2
            assert (await stub.aresolve(q)).status is Status.RECORDS
        in_use = len(made)
        await asyncio.sleep(0)  # the loop's turn: now it closes the idle state
        assert made[0].closed
        return in_use

    assert asyncio.run(main()) == 1
    assert len(made) == 1
    assert made[0].closed
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_cancelled_task_leaves_nothing_open(fault_server: Any) -> None:
    """A cancelled query leaves nothing open: its loop state is gone by the time the task
    that cancelled it resumes (the stub closes it at once for a task being cancelled, whose
    loop may be about to end), and no descriptor outlives the loop."""
    import os

    server = fault_server(ZONE)
    server.set_rule("mx1.d.fast.test.", "A", "drop")
    stub = StubResolver([("127.0.0.1", server.port)], timeout=2.0, lifetime=4.0)
    before = len(os.listdir("/proc/self/fd"))

    async def main() -> None:
        task = asyncio.ensure_future(stub.aresolve(Query("mx1.d.fast.test.", RRType.A)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not stub._states

    asyncio.run(main())
    assert len(os.listdir("/proc/self/fd")) == before
