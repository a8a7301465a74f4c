"""mxselect._wire (the stub resolver's DNS codec) against dnspython: regressions.

The differential suite (hypothesis) that found them follows.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis.errors import InvalidArgument

from mxselect import Answer, Query, RRType, Status, _wire
from mxselect._wire import TRUNCATED, WireError, decode, question_of
from mxselect.dnspython import DnspythonResolver, answer_from_dnspython, answer_from_exception

pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)

IN = dns.rdataclass.IN
CH = dns.rdataclass.CH
RDTYPE = {RRType.MX: dns.rdatatype.MX, RRType.A: dns.rdatatype.A, RRType.AAAA: dns.rdatatype.AAAA}
#: dnspython reads a TTL with the top bit set as 0 (RFC 2181 §8).
TOP_BIT = 2**31

BOUNDED = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- what dnspython makes of a reply ---------------------------------------------------------


class Outcome:
    """dnspython's verdicts that are not an Answer."""

    IGNORED = "ignored (unreadable or not a reply to the query)"
    CHAIN_TOO_LONG = "ChainTooLong (server dropped)"


def dnspython_outcome(wire: bytes, qname_text: str, rtype: RRType) -> Any:
    """What dnspython's resolver + mxselect's adapter make of ``wire`` as the reply to
    ``qname_text``/``rtype``: an Answer, TRUNCATED, an RCODE (the server is dropped:
    SERVFAIL, REFUSED, ..., or a NOERROR/NXDOMAIN reply dnspython's checks refuse),
    Outcome.CHAIN_TOO_LONG, or Outcome.IGNORED. Follows dns/resolver.py
    (``_Resolution.query_result``) and dns/query.py (``receive_udp`` with ignore_errors)."""
    qname = dns.name.from_text(qname_text)
    rdtype = RDTYPE[rtype]
    query = Query(qname_text, rtype)
    request = dns.message.make_query(qname, rdtype, id=(wire[0] << 8 | wire[1]) if wire else 0)
    try:
        response = dns.message.from_wire(wire, raise_on_truncation=True)
    except dns.message.Truncated as exc:
        truncated = exc.message()
        return TRUNCATED if request.is_response(truncated) else Outcome.IGNORED
    except Exception:
        return Outcome.IGNORED
    if not request.is_response(response):
        return Outcome.IGNORED
    assert isinstance(response, dns.message.QueryMessage)
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return int(rcode)
    try:
        # For NXDOMAIN dnspython builds an Answer too, to validate the reply.
        answer = dns.resolver.Answer(qname, rdtype, IN, response)
    except dns.message.ChainTooLong:
        return Outcome.CHAIN_TOO_LONG
    except Exception:
        return int(rcode)  # "the nameserver is no good": next server
    if rcode == dns.rcode.NXDOMAIN:
        return answer_from_exception(
            query, dns.resolver.NXDOMAIN(qnames=[qname], responses={qname: response})
        )
    if answer.rrset is None:
        return answer_from_exception(query, dns.resolver.NoAnswer(response=response))
    return answer_from_dnspython(query, answer)


def _event(text: str) -> None:
    """hypothesis's statistics (``--hypothesis-show-statistics``), outside a test a no-op."""
    with contextlib.suppress(InvalidArgument):
        event(text)


def wire_outcome(wire: bytes, qname_text: str, rtype: RRType) -> Any:
    try:
        return decode(wire, question_of(qname_text, rtype), rtype)
    except WireError:
        return Outcome.IGNORED


def has_soa(wire: bytes) -> bool:
    response = dns.message.from_wire(wire)
    return any(r.rdtype == dns.rdatatype.SOA and r.rdclass == IN for r in response.authority)


def check_against_dnspython(wire: bytes, qname_text: str, rtype: RRType) -> Any:
    """decode(wire) agrees with dnspython, except for the documented differences (1), (2),
    (4), each recognised by its exact shape. Returns dnspython's outcome."""
    expected = dnspython_outcome(wire, qname_text, rtype)
    actual = wire_outcome(wire, qname_text, rtype)
    if expected is Outcome.IGNORED:
        # (3): decode may read what dnspython refuses; it must not raise anything else.
        _event("dnspython refuses")
        return expected
    if isinstance(expected, int) and actual is Outcome.IGNORED and _qdcount(wire) != 1:
        _event("difference (4): QDCOUNT not 1")
        return expected
    if expected is Outcome.CHAIN_TOO_LONG:
        # (2): the chain handed to the core after 15 links.
        _event("difference (2): chain too long")
        assert isinstance(actual, Answer), actual
        assert actual.status is Status.ALIAS
        assert len(actual.aliases) == _wire.MAX_CHAIN
        return expected
    if (
        isinstance(expected, Answer)
        and expected.status is Status.NODATA
        and expected.aliases
        and not has_soa(wire)
    ):
        # (1): a chain to nowhere without an SOA: the target is left to the core.
        _event("difference (1): chain without data and SOA")
        assert actual == Answer.alias(
            expected.canonical_name or "",
            ttl=_chain_ttl(wire, len(expected.aliases)),
            aliases=expected.aliases,
        )
        return expected
    if isinstance(expected, Answer):
        _event(f"{expected.status.value}{' via CNAME' if expected.aliases else ''}")
    else:
        _event(f"{expected!r}")
    assert actual == expected
    return expected


def _qdcount(wire: bytes) -> int:
    return int.from_bytes(wire[4:6], "big")


def _chain_ttl(wire: bytes, links: int) -> int:
    """The smallest TTL of the first ``links`` CNAME RRsets of the chain (as dnspython reads
    them, top-bit TTLs as 0)."""
    response = dns.message.from_wire(wire)
    assert isinstance(response, dns.message.QueryMessage)
    chaining = response.resolve_chaining()
    return min(rrset.ttl for rrset in chaining.cnames[:links])


class WireNameserver(dns.nameserver.Nameserver):
    """A dnspython nameserver object that answers every query with ``wire`` (re-IDed)."""

    def __init__(self, wire: bytes) -> None:
        super().__init__()
        self.wire = wire

    def __str__(self) -> str:
        return "wire@53"

    def kind(self) -> str:
        return "wire"

    def is_always_max_size(self) -> bool:
        return False

    def answer_nameserver(self) -> str:
        return "wire"

    def answer_port(self) -> int:
        return 53

    def query(self, request: dns.message.QueryMessage, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        wire = request.id.to_bytes(2, "big") + self.wire[2:]
        return dns.message.from_wire(wire, raise_on_truncation=True)


def through_dnspython_resolver(wire: bytes, qname_text: str, rtype: RRType) -> Answer:
    """The same reply through a real dns.resolver.Resolver and the adapter."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [WireNameserver(wire)]
    resolver.cache = None
    resolver.lifetime = 1.0
    return DnspythonResolver(resolver).resolve(Query(qname_text, rtype))


# -- building replies by hand ----------------------------------------------------------------

QNAME = "example.org."
QMX = question_of(QNAME, RRType.MX)
QA = question_of(QNAME, RRType.A)
QAAAA = question_of(QNAME, RRType.AAAA)
AT_QNAME = b"\xc0\x0c"  # a compression pointer to the question's name


def header(*, flags: int = 0x8180, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", 0x1234, flags, qd, an, ns, ar)


def rr(owner: bytes, rtype: int, rdata: bytes, *, ttl: int = 300, rclass: int = 1) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def rr_len(owner: bytes, rtype: int, rdlen: int, rdata: bytes, *, rclass: int = 1) -> bytes:
    """A record whose RDLENGTH says ``rdlen`` whatever the data."""
    return owner + struct.pack("!HHIH", rtype, rclass, 300, rdlen) + rdata


def msg(
    *answers: bytes,
    authority: tuple[bytes, ...] = (),
    additional: tuple[bytes, ...] = (),
    question: bytes = QMX,
    flags: int = 0x8180,
    counts: tuple[int, int, int, int] | None = None,
) -> bytes:
    qd, an, ns, ar = counts or (1, len(answers), len(authority), len(additional))
    return (
        header(flags=flags, qd=qd, an=an, ns=ns, ar=ar)
        + question
        + b"".join(answers)
        + b"".join(authority)
        + b"".join(additional)
    )


MX_RDATA = b"\x00\x0a" + b"\x02mx" + AT_QNAME  # 10 mx.example.org.
SOA_RDATA = b"\x02ns" + AT_QNAME + b"\x04host" + AT_QNAME + struct.pack("!5I", 1, 2, 3, 4, 60)
GOOD = msg(rr(AT_QNAME, 15, MX_RDATA))
LABEL_63 = b"\x3f" + b"a" * 63


def _message(qname: str, rtype: RRType, *answers: str, authority: tuple[str, ...] = ()) -> bytes:
    """A reply (no EDNS) with the records given as 'owner ttl type rdata' lines."""
    request = dns.message.make_query(qname, RDTYPE[rtype])
    response = dns.message.make_response(request)
    response.answer = [_rrset(line) for line in answers]
    response.authority = [_rrset(line) for line in authority]
    return response.to_wire(want_shuffle=False)


def _rrset(line: str) -> dns.rrset.RRset:
    owner, ttl, rdtype, rdata = line.split(maxsplit=3)
    return dns.rrset.from_text(owner, int(ttl), "IN", rdtype, rdata)


def _with_counts(wire: bytes, *, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return wire[:4] + struct.pack("!HHHH", qd, an, ns, ar) + wire[12:]


def hops(count: int) -> bytes:
    """A reply whose second owner name is ``count`` (2..17) compression pointers deep: a root
    name at 41 (in a private-type record), pointers at 42, 44, ... 72 each to the one before,
    and the owner's pointer to the one at 38 + 2 * count."""
    pointers = [struct.pack("!H", 0xC000 | (41 if i == 0 else 40 + 2 * i)) for i in range(16)]
    first = rr(AT_QNAME, 65280, b"\x00" + b"".join(pointers))
    return msg(first, rr(struct.pack("!H", 0xC000 | (38 + 2 * count)), 15, MX_RDATA))


# -- 4. regressions: what the differential found in _wire.py ---------------------------------


def test_compression_pointers_as_dnspython_reads_them() -> None:
    """Found by the hostile cases: dnspython (dns/name.py, from_wire_parser) takes a pointer
    only below the name's start and below every pointer before it, only to a name that ends
    before the part read just before, and at most 16 per name; decode took any pointer below
    its own position (an owner pointing into itself, a target overlapping the pointer)."""
    into_itself = msg(rr(b"\x03x\x00y\xc0\x1f", 15, MX_RDATA))  # "x\0y" -> its own \0
    overlapping = msg(rr(b"\xc0\x1a", 16, b"\x01\x00"))  # -> QTYPE's 0x0f: a 15-octet label
    for wire in (into_itself, overlapping, hops(17)):
        assert dnspython_outcome(wire, QNAME, RRType.MX) is Outcome.IGNORED
        with pytest.raises(WireError):
            decode(wire, QMX, RRType.MX)
    answer = decode(hops(16), QMX, RRType.MX)
    assert isinstance(answer, Answer)
    assert answer.status is Status.NODATA


def test_ttl_with_the_top_bit_set_counts_as_zero() -> None:
    """Found by the differential: dnspython reads a TTL above 2^31 - 1 as 0 (RFC 2181 §8), so
    the smallest TTL of a chain is 0; decode kept 2^31 and took the other TTL."""
    wire = _message(
        "a.example.", RRType.MX, "a.example. 2147483648 CNAME b.example.", "b.example. 300 MX 0 ."
    )
    expected = Answer.from_mx(
        [(0, ".")], ttl=0, canonical_name="b.example.", aliases=["a.example."]
    )
    assert decode(wire, question_of("a.example.", RRType.MX), RRType.MX) == expected
    assert dnspython_outcome(wire, "a.example.", RRType.MX) == expected
    soa = msg(authority=(rr(AT_QNAME, 6, SOA_RDATA, ttl=2**32 - 1),))
    assert (
        decode(soa, QMX, RRType.MX)
        == Answer.nodata(ttl=0)
        == dnspython_outcome(soa, QNAME, RRType.MX)
    )


def test_of_two_cnames_for_one_name_the_last_counts() -> None:
    """Found by the differential: two CNAME records for one owner (RFC 2181 §10.1 forbids it):
    dnspython's RRset keeps the last (a singleton type) with the smaller TTL; decode followed
    the first."""
    wire = _message(
        "a.example.",
        RRType.A,
        "a.example. 300 CNAME first.example.",
        "a.example. 200 CNAME second.example.",
        "first.example. 300 A 192.0.2.1",
        "second.example. 300 A 192.0.2.2",
    )
    expected = Answer.from_addresses(
        ["192.0.2.2"], ttl=200, canonical_name="second.example.", aliases=["a.example."]
    )
    assert decode(wire, question_of("a.example.", RRType.A), RRType.A) == expected
    assert dnspython_outcome(wire, "a.example.", RRType.A) == expected


@pytest.mark.parametrize("links", [15, 16])
def test_sixteen_links_in_one_reply_are_more_than_dnspython_takes(links: int) -> None:
    """Found by the differential: dnspython follows 15 CNAME links of one reply and refuses
    16 (ChainTooLong: the server is dropped); decode answered a 16-link chain with the records.
    Now 15 links are the same answer, 16 are documented difference (2): ALIAS(16th name)."""
    names = [f"n{i}.example." for i in range(links + 1)]
    lines = [f"{names[i]} {300 - i} CNAME {names[i + 1]}" for i in range(links)]
    wire = _message("n0.example.", RRType.A, *lines, f"{names[-1]} 900 A 192.0.2.1")
    actual = decode(wire, question_of("n0.example.", RRType.A), RRType.A)
    if links == 15:
        assert actual == dnspython_outcome(wire, "n0.example.", RRType.A)
        assert actual == Answer.from_addresses(
            ["192.0.2.1"], ttl=286, canonical_name=names[-1], aliases=names[:-1]
        )
    else:
        assert dnspython_outcome(wire, "n0.example.", RRType.A) is Outcome.CHAIN_TOO_LONG
        assert actual == Answer.alias(names[15], ttl=286, aliases=names[:15])


def test_nxdomain_with_the_data_drops_the_server() -> None:
    """Found by the differential: NXDOMAIN and yet the records of the type (after a CNAME or
    not): dnspython refuses the reply (AnswerForNXDOMAIN) and drops the server (TEMPFAIL if
    none is left); decode said NXDOMAIN -- a permanent answer. Now it gives the RCODE, which
    the stub treats as that server's failure."""
    for lines in (
        ("a.example. 300 MX 10 mx.example.",),
        ("a.example. 300 CNAME b.example.", "b.example. 300 MX 10 mx.example."),
    ):
        wire = bytearray(_message("a.example.", RRType.MX, *lines))
        wire[3] |= dns.rcode.NXDOMAIN
        assert dnspython_outcome(bytes(wire), "a.example.", RRType.MX) == dns.rcode.NXDOMAIN
        real = through_dnspython_resolver(bytes(wire), "a.example.", RRType.MX)
        assert real.status is Status.TEMPFAIL
        assert decode(bytes(wire), question_of("a.example.", RRType.MX), RRType.MX) == 3
    assert _wire.RCODE_TEXT[3] == "NXDOMAIN"


@pytest.mark.parametrize(
    ("rcode", "answers", "authority", "ttl"),
    [
        # no SOA: dnspython's default of 300 s (dns.message.NEGATIVE_TTL_WITHOUT_SOA)
        (0, (), (), 300),
        (3, (), (), 300),
        (3, ("a.example.org. 100 CNAME b.example.org.",), (), 100),
        # an SOA that is not the last name's or an ancestor's: not used
        (0, (), ("other.test. 60 SOA ns. host. 1 2 3 4 5",), 300),
        # the nearest ancestor's SOA, not the first one in the section
        (
            0,
            (),
            ("org. 60 SOA ns. host. 1 2 3 4 5", "example.org. 60 SOA ns. host. 1 2 3 4 50"),
            50,
        ),
        # after a chain: the SOA of the last name's zone
        (
            3,
            ("a.example.org. 900 CNAME x.test.",),
            ("example.org. 60 SOA ns. host. 1 2 3 4 5", "test. 60 SOA ns. host. 1 2 3 4 40"),
            40,
        ),
        # 2^31 - 1 everywhere: dnspython's "no TTL known"
        (0, (), ("example.org. 2147483647 SOA ns. host. 1 2 3 4 4294967295",), None),
    ],
)
def test_negative_ttl_from_the_soa_dnspython_takes(
    rcode: int, answers: tuple[str, ...], authority: tuple[str, ...], ttl: int | None
) -> None:
    """Found by the differential: dnspython takes the negative TTL (RFC 2308 §5) from the SOA
    owned by the last name of the chain or its nearest ancestor, 300 s without one, and
    reports 2^31 - 1 as no TTL; decode took the first SOA of any owner and None without."""
    wire = bytearray(_message("a.example.org.", RRType.MX, *answers, authority=authority))
    wire[3] |= rcode
    result = decode(bytes(wire), question_of("a.example.org.", RRType.MX), RRType.MX)
    assert isinstance(result, Answer)
    assert result.ttl == ttl
    assert result == dnspython_outcome(bytes(wire), "a.example.org.", RRType.MX)


def test_every_soa_is_checked() -> None:
    """Found by the hostile cases: dnspython parses every SOA record; decode only checked the
    first, so a second SOA of the wrong length went through."""
    wire = msg(authority=(rr(AT_QNAME, 6, SOA_RDATA), rr(AT_QNAME, 6, SOA_RDATA[:-2])))
    assert dnspython_outcome(wire, QNAME, RRType.MX) is Outcome.IGNORED
    with pytest.raises(WireError):
        decode(wire, QMX, RRType.MX)
