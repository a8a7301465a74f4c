"""mxselect._wire (the stub resolver's DNS codec) against dnspython, the reference.

The contract: for any reply a recursive resolver can send, ``decode`` classifies exactly as
dnspython's resolver plus mxselect's adapter (``mxselect/dnspython.py``) do -- same status,
MX records, addresses, canonical name, aliases and TTL -- and a reply dnspython would not take
(unreadable, or not a reply to our question) is a :class:`WireError` (the stub keeps waiting,
as dnspython's ``ignore_errors`` does).

1. Differential (hypothesis): replies built WITH dnspython (``make_response`` + ``to_wire``,
   compression on) -- CNAME chains with case differences and chains to nowhere, MX/A/AAAA
   RRsets split over several TTLs (0, top-bit), duplicates, odd exchange names, unrelated
   records (other owners, other types, class CH), SOAs in authority, OPT in additional --
   decoded by ``decode`` and by ``dns.message.from_wire`` + what dnspython's resolver does
   with the message (``dns.resolver.Answer``, ``NoAnswer``, ``NXDOMAIN``, or dropping the
   server), then the adapter's translation. Each example is also run through a real
   ``dns.resolver.Resolver`` (a nameserver object that returns the wire) to check that the
   expected value is what dnspython really gives.
2. Hostile messages made by hand: each is a WireError (never another exception), and dnspython
   does not take them either. Fuzz: random bytes and mutations of valid replies.
3. Specific cases: TC, error RCODEs, the extended RCODE, 0x20 case, negative TTLs, NXDOMAIN at
   the end of a chain.
4. Regressions: what the differential and the hostile cases found in _wire.py (each fixed in
   its own commit).

Deliberate differences from dnspython (each tested explicitly below, and allowed -- only in
exactly these shapes -- by :func:`check_against_dnspython`):

(1) NOERROR, a CNAME chain that stops without the data and without any SOA in the authority
    section: ``Answer.alias(target)`` (the server did not chase the chain: the core asks for
    the target). dnspython: NODATA.
(2) A CNAME chain dnspython refuses as too long (``dns.message.ChainTooLong``: 16 links or
    more, loops included): ``Answer.alias(next)`` after 15 links; the core's own
    ``cname_limit`` ends it. dnspython: the server is dropped (TEMPFAIL).
(3) Records of types and sections ``decode`` does not read are skipped by RDLENGTH, not parsed:
    a reply whose only fault is, say, a malformed TXT record is read by ``decode`` and refused
    by dnspython. So the comparison goes one way: every reply dnspython takes, ``decode``
    takes and classifies the same.
(4) A reply whose QDCOUNT is 2, or 0 with NOERROR/NXDOMAIN, is a WireError (dnspython takes a
    reply repeating the question as that server's failure and moves to the next server; the
    stub waits for its timeout on that server and moves on too). An error RCODE without a
    question is that server's failure in both.
(5) A TLSA record whose digest length does not fit its matching type (SHA2-256 not 32
    octets, SHA2-512 not 64): dnspython refuses the whole reply (``TLSABase`` raises), so the
    dnspython adapter ends in a temporary failure; ``decode`` keeps the record, which is
    unusable (``TLSARecord.usable``: RFC 6698 §4.1 "If the comparison data for a certificate
    is malformed, the certificate association MUST be considered unusable" -- the record, not
    the lookup). Falls under the one-way rule of (3).
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import struct
from dataclasses import dataclass
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
from dns.rdtypes.ANY.TLSA import TLSA
from dns.rdtypes.ANY.TXT import TXT
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from mxselect import Answer, Query, RRType, Status, _wire
from mxselect._wire import TRUNCATED, WireError, decode, make_query, question_of
from mxselect.dnspython import DnspythonResolver, answer_from_dnspython, answer_from_exception

pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)

IN = dns.rdataclass.IN
CH = dns.rdataclass.CH
RDTYPE = {
    RRType.MX: dns.rdatatype.MX,
    RRType.A: dns.rdatatype.A,
    RRType.AAAA: dns.rdatatype.AAAA,
    RRType.TLSA: dns.rdatatype.TLSA,
    RRType.CNAME: dns.rdatatype.CNAME,
    RRType.TXT: dns.rdatatype.TXT,
}
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
    request = dns.message.make_query(qname, rdtype, id=int.from_bytes(wire[:2].rjust(2, b"\0")))
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


# -- generating replies with dnspython -------------------------------------------------------

LDH = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
query_names = st.lists(LDH, min_size=1, max_size=4).map(lambda labels: ".".join(labels) + ".")
ODD_LABELS = [
    b"MX1",
    b"Mail",
    b"mx_1",
    b"_25",
    b"mx 1",
    b"a.b",
    b"back\\slash",
    b"\xc3\xa9t\xc3\xa9",
    b"@",
    b"(x)",
    b'"q"',
    b"$",
    b";",
    b"*",
    b"-",
    b"\x00",
    b"\x7f",
    b"\xff",
    b"x" * 63,
]
odd_labels = st.one_of(
    LDH.map(str.encode), st.sampled_from(ODD_LABELS), st.binary(min_size=1, max_size=8)
)
ttls = st.one_of(
    st.sampled_from([0, 1, 60, 300, 2**31 - 1, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1)
)


def recase(name: dns.name.Name, rng: random.Random) -> dns.name.Name:
    """``name`` with the case of some ASCII letters flipped (equal under RFC 4343)."""
    labels = []
    for label in name.labels:
        labels.append(
            bytes(
                b ^ 0x20 if chr(b).isascii() and chr(b).isalpha() and rng.random() < 0.5 else b
                for b in label
            )
        )
    return dns.name.Name(labels)


@st.composite
def names_near(draw: st.DrawFn, base: dns.name.Name) -> dns.name.Name:
    """A name: odd labels under ``base``'s parent (shared suffix: compression pointers),
    under another zone, or the root."""
    kind = draw(st.sampled_from(["sibling", "sibling", "other", "child", "root"]))
    if kind == "root":
        return dns.name.root
    labels = draw(st.lists(odd_labels, min_size=1, max_size=3))
    suffix = {
        "sibling": base.parent() if len(base) > 1 else base,
        "child": base,
        "other": dns.name.from_text(draw(st.sampled_from(["Example.NET.", "test.", "."]))),
    }[kind]
    while labels and sum(len(x) + 1 for x in labels) + len(suffix.to_wire()) > 255:
        labels.pop()
    return dns.name.Name([*labels, *suffix.labels])


def data_rrset(
    draw: st.DrawFn, owner: dns.name.Name, rdtype: int, rdclass: int = IN
) -> dns.rrset.RRset:
    """One RRset of MX/A/AAAA/TLSA/TXT/CNAME records (repeats likely: duplicates across
    RRsets)."""
    rrset = dns.rrset.RRset(owner, rdclass, rdtype)
    for _ in range(draw(st.integers(1, 4))):
        if rdtype == dns.rdatatype.MX:
            exchange = draw(st.one_of(st.sampled_from(EXCHANGES), names_near(owner)))
            text = f"{draw(st.sampled_from([0, 10, 10, 20, 65535]))} {exchange.to_text()}"
        elif rdtype == dns.rdatatype.A:
            text = str(draw(st.sampled_from(V4) | st.ip_addresses(v=4)))
        elif rdtype == dns.rdatatype.TLSA:  # RFC 6698 §2.1, odd values and lengths included
            fields = draw(st.sampled_from(TLSA_FIELDS) | st.tuples(*[st.integers(0, 255)] * 3))
            digest = st.sampled_from([b"\xab" * 32, b"\x01" * 64])
            data = draw(digest | st.binary(min_size=0, max_size=40))
            if {1: 32, 2: 64}.get(fields[2], len(data)) != len(data):
                # A digest of the wrong length: dnspython refuses the reply (difference (5)).
                rrset.add(dns.rdata.GenericRdata(rdclass, rdtype, bytes(fields) + data))
            else:
                rrset.add(TLSA(rdclass, rdtype, *fields, data))
            continue
        elif rdtype == dns.rdatatype.TXT:
            # RFC 1035 §3.3.14: one or more <character-string>s, empty ones and any octet
            # included; one record split over strings (RFC 8461 §3.1: joined, no spaces).
            strings = draw(
                st.sampled_from(TXT_STRINGS)
                | st.lists(st.binary(max_size=12), min_size=1, max_size=4).map(tuple)
                | st.just((b"x" * 255, b"y" * 3))
            )
            if rdclass != IN:
                rrset.add(
                    dns.rdata.GenericRdata(rdclass, rdtype, TXT(IN, rdtype, strings).to_wire())
                )
            else:
                rrset.add(TXT(rdclass, rdtype, strings))
            continue
        elif rdtype == dns.rdatatype.CNAME:
            text = draw(names_near(owner)).to_text()
        else:
            text = str(draw(st.sampled_from(V6) | st.ip_addresses(v=6)))
        rdata = dns.rdata.from_text(IN, rdtype, text)
        if rdclass != IN:  # the same data in another class (dnspython: generic rdata)
            rdata = dns.rdata.GenericRdata(rdclass, rdtype, rdata.to_wire())
        rrset.add(rdata)
    rrset.ttl = draw(ttls)
    return rrset


EXCHANGES = [
    dns.name.root,
    dns.name.from_text("mx1.example.org."),
    dns.name.from_text("MX1.Example.ORG."),
    dns.name.Name([b"mx 1", b"example", b"org", b""]),
    dns.name.Name([b"a.b", b"example", b"org", b""]),
    dns.name.Name([b"_mx", b"example", b"org", b""]),
]
V4 = [ipaddress.IPv4Address("192.0.2.1"), ipaddress.IPv4Address("192.0.2.2")]
TLSA_FIELDS = [(3, 1, 1), (2, 0, 1), (3, 1, 2), (1, 1, 1)]
TXT_STRINGS = [
    (b"v=STSv1; id=20260101",),
    (b"v=STSv1; ", b"id=20260101"),
    (b"v=STSv1;", b" id=2026", b"0101"),
    (b"v=TLSRPTv1; rua=mailto:tlsrpt@example.org",),
    (b"",),
    (b"caf\xc3\xa9 \xff\x00",),
]
V6 = [ipaddress.IPv6Address("2001:db8::1"), ipaddress.IPv6Address("2001:db8::2")]


@dataclass(frozen=True)
class Reply:
    qname: str
    rtype: RRType
    wire: bytes

    def __repr__(self) -> str:  # hypothesis prints it for a failing example
        return f"Reply({self.qname!r}, {self.rtype}, {dns.message.from_wire(self.wire)})"


@st.composite
def replies(draw: st.DrawFn, chain_links: st.SearchStrategy[int] | None = None) -> Reply:
    """A NOERROR or NXDOMAIN reply to one of mxselect's queries, built with dnspython."""
    qtext = draw(query_names)
    rtype = draw(st.sampled_from(list(RRType)))
    rdtype = RDTYPE[rtype]
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    qname = dns.name.from_text(qtext)
    request = dns.message.make_query(
        qname, rdtype, use_edns=draw(st.sampled_from([0, False])), id=draw(st.integers(0, 65535))
    )
    response = dns.message.make_response(request, recursion_available=True)
    assert isinstance(response, dns.message.QueryMessage)
    response.question = [dns.rrset.RRset(recase(qname, rng), IN, rdtype)]  # 0x20
    nxdomain = draw(st.integers(0, 3)) == 3
    if nxdomain:
        response.set_rcode(dns.rcode.NXDOMAIN)
    answer: list[dns.rrset.RRset] = []
    # The CNAME chain: qname -> n1 -> ... -> nk (k = 0: no chain).
    links = draw(chain_links if chain_links is not None else st.sampled_from([0, 0, 1, 1, 2, 3]))
    chain = [qname]
    for _ in range(links):
        chain.append(draw(names_near(chain[-1])))
    for i in range(links):
        for _ in range(draw(st.sampled_from([1, 1, 1, 2]))):  # the same link twice, new TTL
            cname = dns.rrset.from_text(
                recase(chain[i], rng), 0, IN, "CNAME", recase(chain[i + 1], rng).to_text()
            )
            cname.ttl = draw(ttls)
            answer.append(cname)
        if draw(st.integers(0, 15)) == 0:  # a second target (RFC 2181 §10.1 says no)
            other = dns.rrset.from_text(chain[i], 0, IN, "CNAME", f"other{i}.example.")
            other.ttl = draw(ttls)
            answer.append(other)
    # The data at the end of the chain (or not), possibly over several RRsets and TTLs.
    # (NXDOMAIN with the data is the server's failure: now and then only.)
    rrsets = st.sampled_from([0, 0, 0, 0, 1]) if nxdomain else st.sampled_from([0, 0, 1, 1, 2, 3])
    for _ in range(draw(rrsets)):
        answer.append(data_rrset(draw, recase(chain[-1], rng), rdtype))
    # Unrelated records: other owners, other types, class CH.
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        kind = draw(st.sampled_from(["owner", "type", "class", "cname"]))
        owner = draw(names_near(qname))
        if kind == "owner":
            answer.append(data_rrset(draw, owner, rdtype))
        elif kind == "type":
            other_type = draw(st.sampled_from(["TXT", "NS", "A", "AAAA", "MX"]))
            rdata = {
                "TXT": '"v=spf1 -all"',
                "NS": "ns1.example.",
                "A": "192.0.2.9",
                "AAAA": "2001:db8::9",
                "MX": "5 mx9.example.",
            }[other_type]
            if other_type != dns.rdatatype.to_text(rdtype):
                answer.append(
                    dns.rrset.from_text(draw(st.sampled_from(chain)), 60, IN, other_type, rdata)
                )
        elif kind == "class":
            where = draw(st.sampled_from(chain))
            if rdtype == dns.rdatatype.A:
                # Chaosnet A: a name and an address; as generic data, as dnspython refuses
                # the name compressed, which it would write
                chaos = dns.rrset.RRset(where, CH, dns.rdatatype.A)
                chaos.add(dns.rdata.GenericRdata(CH, dns.rdatatype.A, b"\2ch\5chaos\0\2\x9c"), 60)
                answer.append(chaos)
            else:
                answer.append(data_rrset(draw, where, rdtype, CH))
        else:
            answer.append(dns.rrset.from_text(owner, 60, IN, "CNAME", qname.to_text()))
    rng.shuffle(answer)
    response.answer = answer
    # Authority: the SOA of the zone (an ancestor of the last name), another one, or none.
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
        last = chain[-1]
        owner = draw(
            st.sampled_from(
                [last.split(depth)[1] for depth in range(1, len(last) + 1)]
                + [dns.name.from_text("other.example."), qname]
            )
        )
        soa = dns.rrset.from_text(
            recase(owner, rng),
            0,
            IN,
            "SOA",
            f"ns.example. hostmaster.example. 1 3600 900 604800 {draw(ttls)}",
        )
        soa.ttl = draw(ttls)
        response.authority.append(soa)
    if draw(st.booleans()):
        response.authority.append(dns.rrset.from_text(qname, 60, IN, "NS", "ns.example."))
    if draw(st.booleans()):
        response.additional.append(dns.rrset.from_text("ns.example.", 60, IN, "A", "192.0.2.53"))
    return Reply(qtext, rtype, response.to_wire(want_shuffle=False))


# -- 1. differential -------------------------------------------------------------------------


@settings(BOUNDED, max_examples=220)
@given(reply=replies())
def test_decode_classifies_like_dnspython(reply: Reply) -> None:
    """Replies made by dnspython: decode == dnspython + the adapter (documented differences
    recognised by shape); and the expected value is what a real dnspython Resolver gives."""
    expected = check_against_dnspython(reply.wire, reply.qname, reply.rtype)
    real = through_dnspython_resolver(reply.wire, reply.qname, reply.rtype)
    if isinstance(expected, Answer):
        assert real == expected
    else:  # the server is dropped: all nameservers failed
        assert real.status is Status.TEMPFAIL, real


@settings(BOUNDED, max_examples=30)
@given(reply=replies(chain_links=st.integers(13, 18)))
def test_long_chains_in_one_reply(reply: Reply) -> None:
    """Chains around dnspython's limit (15 links followed, 16 refused): the same answer up to
    15 links, difference (2) beyond."""
    check_against_dnspython(reply.wire, reply.qname, reply.rtype)


@settings(BOUNDED, max_examples=50)
@given(
    name=query_names,
    rtype=st.sampled_from(list(RRType)),
    qid=st.integers(0, 65535),
    edns=st.booleans(),
)
def test_query_round_trips_through_dnspython(
    name: str, rtype: RRType, qid: int, edns: bool
) -> None:
    """make_query: one question (the name, the type, class IN), RD and AD set (AD: report
    authentic data, RFC 6840 §5.7; issue 16), ID kept, EDNS0 with a 1232-byte payload
    (RFC 6891 §6.1.2) unless edns=False, nothing else."""
    wire = make_query(qid, question_of(name, rtype), edns=edns)
    message = dns.message.from_wire(wire)
    assert message.id == qid
    assert message.opcode() == dns.opcode.QUERY
    assert message.flags == dns.flags.RD | dns.flags.AD
    assert [(q.name, q.rdtype, q.rdclass) for q in message.question] == [
        (dns.name.from_text(name), RDTYPE[rtype], IN)
    ]
    assert (message.answer, message.authority, message.additional) == ([], [], [])
    if edns:
        assert (message.edns, message.payload, message.ednsflags) == (0, 1232, 0)
        assert message.options == ()
    else:
        assert message.edns == -1


# -- documented differences, generated on purpose ------------------------------------------


def test_difference_1_chain_without_data_and_soa_is_an_alias() -> None:
    """(1) NOERROR, CNAME chain stopping without data and without an SOA: ALIAS of the last
    target (TTL: the chain's), where dnspython says NODATA."""
    wire = _message(
        "example.org.",
        RRType.MX,
        "example.org. 300 CNAME Mail.Example.NET.",
        "mail.example.net. 200 CNAME end.test.",
    )
    expected = dnspython_outcome(wire, "example.org.", RRType.MX)
    assert expected.status is Status.NODATA
    assert decode(wire, question_of("example.org.", RRType.MX), RRType.MX) == Answer.alias(
        "end.test.", ttl=200, aliases=("example.org.", "Mail.Example.NET.")
    )
    # With the SOA, it is NODATA as in dnspython.
    with_soa = _message(
        "example.org.",
        RRType.MX,
        "example.org. 300 CNAME end.test.",
        authority=("test. 100 SOA ns. host. 1 2 3 4 50",),
    )
    assert check_against_dnspython(with_soa, "example.org.", RRType.MX) == Answer.nodata(
        ttl=50, canonical_name="end.test.", aliases=("example.org.",)
    )


@pytest.mark.parametrize("links", [15, 16, 17, 40])
def test_difference_2_chain_too_long_is_an_alias(links: int) -> None:
    """(2) dnspython follows 15 links of one reply and refuses 16 (ChainTooLong: the server is
    dropped); decode gives the 15-link answer the same, and hands a longer chain to the core
    as ALIAS(16th name) with the 15 owners as aliases."""
    names = [f"n{i}.example." for i in range(links + 1)]
    lines = [f"{names[i]} {300 - i} CNAME {names[i + 1]}" for i in range(links)]
    wire = _message("n0.example.", RRType.A, *lines, f"{names[-1]} 900 A 192.0.2.1")
    expected = dnspython_outcome(wire, "n0.example.", RRType.A)
    actual = decode(wire, question_of("n0.example.", RRType.A), RRType.A)
    if links < 16:
        assert actual == expected
        assert actual == Answer.from_addresses(
            ["192.0.2.1"], ttl=300 - links + 1, canonical_name=names[-1], aliases=names[:-1]
        )
    else:
        assert expected is Outcome.CHAIN_TOO_LONG
        assert actual == Answer.alias(names[15], ttl=300 - 14, aliases=names[:15])


def test_difference_2_cname_loop_in_one_reply_is_an_alias() -> None:
    """A loop inside one reply (a -> b -> a): dnspython ChainTooLong; decode: ALIAS after 15
    links, which the core recognises as a loop."""
    wire = _message(
        "a.example.", RRType.MX, "a.example. 60 CNAME b.example.", "b.example. 30 CNAME a.example."
    )
    assert dnspython_outcome(wire, "a.example.", RRType.MX) is Outcome.CHAIN_TOO_LONG
    answer = decode(wire, question_of("a.example.", RRType.MX), RRType.MX)
    assert answer == Answer.alias(
        "b.example.", ttl=30, aliases=("a.example.", "b.example.") * 7 + ("a.example.",)
    )


def test_difference_3_unread_types_are_skipped_not_parsed() -> None:
    """(3) A TXT record whose character-string runs past its RDLENGTH: dnspython refuses the
    whole reply, decode skips the record and reads the MX records."""
    good = _message("example.org.", RRType.MX, "example.org. 300 MX 10 mx.example.org.")
    txt = b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 300, 3) + b"\x09ab"
    wire = _with_counts(good + txt, an=2)
    assert dnspython_outcome(wire, "example.org.", RRType.MX) is Outcome.IGNORED
    assert decode(wire, question_of("example.org.", RRType.MX), RRType.MX) == Answer.from_mx(
        [(10, "mx.example.org.")], ttl=300
    )


def test_error_rcode_without_question_is_that_servers_failure() -> None:
    """An error RCODE with no question section (an old server that could not parse the query,
    e.g. its OPT record, RFC 6891 §7): dnspython takes it as the server's failure, and so does
    decode, so the stub asks again without EDNS or moves on at once instead of waiting. A
    NOERROR or NXDOMAIN without the question is still not a reply to it."""
    question = question_of("example.org.", RRType.MX)
    for flags, rcode in ((0x8182, dns.rcode.SERVFAIL), (0x8181, dns.rcode.FORMERR)):
        wire = struct.pack("!HHHHHH", 7, flags, 0, 0, 0, 0)
        assert dnspython_outcome(wire, "example.org.", RRType.MX) == rcode
        assert decode(wire, question, RRType.MX) == rcode
    for flags in (0x8180, 0x8183):
        with pytest.raises(WireError):
            decode(struct.pack("!HHHHHH", 7, flags, 0, 0, 0, 0), question, RRType.MX)


def test_difference_4_question_twice_is_not_taken() -> None:
    """(4) Our question twice: dnspython takes the reply and drops the server (FormError);
    decode: not a reply to this question."""
    wire = msg(question=QMX + QMX, counts=(2, 0, 0, 0))
    assert dnspython_outcome(wire, QNAME, RRType.MX) == dns.rcode.NOERROR
    with pytest.raises(WireError):
        decode(wire, QMX, RRType.MX)


# -- 2. hostile messages made by hand --------------------------------------------------------


HOSTILE: dict[str, tuple[bytes, RRType]] = {
    "empty": (b"", RRType.MX),
    "shorter than a header": (GOOD[:11], RRType.MX),
    "header only": (GOOD[:12], RRType.MX),
    "QR clear": (msg(rr(AT_QNAME, 15, MX_RDATA), flags=0x0180), RRType.MX),
    "opcode IQUERY": (msg(rr(AT_QNAME, 15, MX_RDATA), flags=0x8980), RRType.MX),
    "opcode NOTIFY": (msg(flags=0xA180), RRType.MX),
    "opcode UPDATE": (msg(flags=0xA980), RRType.MX),
    "QDCOUNT 0": (header(qd=0), RRType.MX),
    "QDCOUNT 0 with the question anyway": (msg(counts=(0, 0, 0, 0)), RRType.MX),
    "QDCOUNT 2": (msg(question=QMX + QA, counts=(2, 0, 0, 0)), RRType.MX),
    "another name": (msg(question=question_of("example.net.", RRType.MX)), RRType.MX),
    "another type": (msg(question=QA), RRType.MX),
    "another class": (msg(question=QMX[:-2] + b"\x00\x03"), RRType.MX),
    "question cut short": (msg()[:-1], RRType.MX),
    # The first answer's owner is at offset 29 (0x1d): 12 (header) + 17 (question).
    "pointer forward": (msg(rr(b"\xc0\x30", 15, MX_RDATA)), RRType.MX),
    "pointer to itself": (msg(rr(b"\xc0\x1d", 15, MX_RDATA)), RRType.MX),
    "pointer to itself in rdata": (msg(rr(AT_QNAME, 5, b"\xc0\x29")), RRType.MX),
    # label "x", then a pointer back to it: the labels repeat for ever
    "pointer loop through a label": (msg(rr(b"\x01x\xc0\x1d", 15, MX_RDATA)), RRType.MX),
    # owner at 29 -> 48 (forward), owner at 48 -> 29: a loop
    "pointer loop": (
        msg(rr(b"\xc0\x30", 15, MX_RDATA), rr(b"\xc0\x1d", 15, MX_RDATA)),
        RRType.MX,
    ),
    # label "x\0y", then a pointer to its \0: inside the name itself (dnspython: BadPointer)
    "pointer into its own name": (msg(rr(b"\x03x\x00y\xc0\x1f", 15, MX_RDATA)), RRType.MX),
    # a pointer to the QTYPE's 0x0f: a 15-octet label overlapping the pointer itself
    "pointer target overlapping the name": (msg(rr(b"\xc0\x1a", 16, b"\x01\x00")), RRType.MX),
    "seventeen pointer hops": (hops(17), RRType.MX),
    "label type 0x40": (msg(rr(b"\x41a\x00", 15, MX_RDATA)), RRType.MX),
    "label type 0x80": (msg(rr(b"\x81a\x00", 15, MX_RDATA)), RRType.MX),
    "label past the end": (msg() + b"\x3fabc", RRType.MX),
    "name past the end": (msg(counts=(1, 1, 0, 0)) + b"\x03abc", RRType.MX),
    "name longer than 255 octets": (msg(rr(LABEL_63 * 4 + b"\x00", 15, MX_RDATA)), RRType.MX),
    "name longer than 255 octets through a pointer": (
        msg(
            rr(LABEL_63 * 2 + b"\x00", 16, b"\x00"),
            rr(LABEL_63 * 2 + b"\xc0\x21", 15, MX_RDATA),
        ),
        RRType.MX,
    ),
    "exchange longer than 255 octets": (
        msg(rr(AT_QNAME, 15, b"\x00\x0a" + LABEL_63 * 4 + b"\x00")),
        RRType.MX,
    ),
    "record header past the end": (
        msg(counts=(1, 1, 0, 0)) + AT_QNAME + b"\x00\x0f\x00\x01\x00",
        RRType.MX,
    ),
    "RDLENGTH past the end": (msg(rr_len(AT_QNAME, 15, 40, MX_RDATA)), RRType.MX),
    "RDLENGTH past the end, unread type": (msg(rr_len(AT_QNAME, 16, 40, b"\x03abc")), RRType.MX),
    "RDLENGTH past the end in authority": (
        msg(authority=(rr_len(AT_QNAME, 2, 40, b"\x00"),)),
        RRType.MX,
    ),
    "RDLENGTH past the end in additional": (
        msg(additional=(rr_len(b"\x00", 41, 40, b""),)),
        RRType.MX,
    ),
    "A with RDLENGTH 3": (msg(rr(AT_QNAME, 1, b"\x01\x02\x03"), question=QA), RRType.A),
    "A with RDLENGTH 5": (msg(rr(AT_QNAME, 1, b"\x01\x02\x03\x04\x05"), question=QA), RRType.A),
    "AAAA with RDLENGTH 15": (msg(rr(AT_QNAME, 28, b"\x20" * 15), question=QAAAA), RRType.AAAA),
    "AAAA with RDLENGTH 17": (msg(rr(AT_QNAME, 28, b"\x20" * 17), question=QAAAA), RRType.AAAA),
    "MX with RDLENGTH 2": (msg(rr(AT_QNAME, 15, b"\x00\x0a")), RRType.MX),
    "MX with a byte after the exchange": (msg(rr(AT_QNAME, 15, MX_RDATA + b"\x00")), RRType.MX),
    "MX exchange past RDLENGTH": (
        msg(rr_len(AT_QNAME, 15, 5, MX_RDATA), rr(AT_QNAME, 16, b"\x00")),
        RRType.MX,
    ),
    "CNAME with extra bytes": (msg(rr(AT_QNAME, 5, b"\x01a\x00\x00")), RRType.MX),
    "CNAME with extra bytes, A query": (
        msg(rr(AT_QNAME, 5, b"\x01a\x00\x00"), question=QA),
        RRType.A,
    ),
    "TXT string past RDLENGTH, TXT query": (
        msg(rr(AT_QNAME, 16, b"\x05ab"), question=question_of(QNAME, RRType.TXT)),
        RRType.TXT,
    ),
    "TXT second string past RDLENGTH, TXT query": (
        msg(rr(AT_QNAME, 16, b"\x02ab\x02c"), question=question_of(QNAME, RRType.TXT)),
        RRType.TXT,
    ),
    "TXT without a string, TXT query": (
        msg(rr(AT_QNAME, 16, b""), question=question_of(QNAME, RRType.TXT)),
        RRType.TXT,
    ),
    "SOA one byte short": (
        msg(authority=(rr(AT_QNAME, 6, SOA_RDATA[:-1]),)),
        RRType.MX,
    ),
    "SOA one byte long": (msg(authority=(rr(AT_QNAME, 6, SOA_RDATA + b"\x00"),)), RRType.MX),
    "second SOA of the wrong length": (
        msg(authority=(rr(AT_QNAME, 6, SOA_RDATA), rr(AT_QNAME, 6, SOA_RDATA[:-2]))),
        RRType.MX,
    ),
    "trailing junk": (GOOD + b"\x00", RRType.MX),
    "trailing junk after OPT": (
        msg(additional=(rr(b"\x00", 41, b"", rclass=1232, ttl=0),)) + b"junk",
        RRType.MX,
    ),
    "ANCOUNT larger than the records": (
        msg(rr(AT_QNAME, 15, MX_RDATA), counts=(1, 2, 0, 0)),
        RRType.MX,
    ),
    "NSCOUNT larger than the records": (msg(counts=(1, 0, 1, 0)), RRType.MX),
    "ARCOUNT larger than the records": (msg(counts=(1, 0, 0, 3)), RRType.MX),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_message_is_a_wire_error(case: str) -> None:
    """Each hand-made hostile message raises WireError -- nothing else, no answer -- and
    dnspython does not take it either (unreadable, or not a reply to the query)."""
    wire, rtype = HOSTILE[case]
    with pytest.raises(WireError):
        decode(wire, question_of(QNAME, rtype), rtype)
    assert dnspython_outcome(wire, QNAME, rtype) is Outcome.IGNORED


def test_the_hostile_messages_are_built_right() -> None:
    """The builders make replies both decoders read (so the hostile cases fail for the one
    fault each was given)."""
    # 16 pointer hops are fine (the MX records' owner is the root name).
    assert check_against_dnspython(hops(16), QNAME, RRType.MX) == Answer.nodata(ttl=300)
    assert check_against_dnspython(GOOD, QNAME, RRType.MX) == Answer.from_mx(
        [(10, "mx.example.org.")], ttl=300
    )
    soa = msg(authority=(rr(AT_QNAME, 6, SOA_RDATA, ttl=90),))
    assert check_against_dnspython(soa, QNAME, RRType.MX) == Answer.nodata(ttl=60)
    a = msg(rr(AT_QNAME, 1, b"\xc0\x00\x02\x01"), question=QA)
    assert check_against_dnspython(a, QNAME, RRType.A) == Answer.from_addresses(
        ["192.0.2.1"], ttl=300
    )


# -- fuzz --------------------------------------------------------------------------------------

mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "truncate", "insert", "delete", "copy"]),
        st.integers(0, 2**16),
        st.integers(0, 2**16),
        st.binary(min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=4,
)


def mutate(wire: bytes, steps: list[tuple[str, int, int, bytes]]) -> bytes:
    data = bytearray(wire)
    for kind, a, b, blob in steps:
        if not data:
            break
        at = a % len(data)
        if kind == "flip":
            data[at] ^= 1 << (b % 8)
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = blob
        elif kind == "delete":
            del data[at : at + 1 + b % 4]
        else:  # splice a piece of the message somewhere else
            src = b % len(data)
            data[at:at] = data[src : src + len(blob)]
    return bytes(data)


@settings(BOUNDED, max_examples=300)
@given(reply=replies(), steps=mutations)
def test_fuzz_mutated_replies(reply: Reply, steps: list[tuple[str, int, int, bytes]]) -> None:
    """Bit flips, truncation, insertions, deletions and splices of valid replies: decode
    returns or raises WireError, never anything else; and whatever dnspython still takes as
    a reply, decode classifies the same (the documented differences aside)."""
    check_against_dnspython(mutate(reply.wire, steps), reply.qname, reply.rtype)


@settings(BOUNDED, max_examples=200)
@given(
    rtype=st.sampled_from(list(RRType)),
    flags=st.integers(0, 0xFFFF),
    counts=st.tuples(*[st.integers(0, 3)] * 3),
    tail=st.binary(max_size=200),
    plain=st.booleans(),
)
def test_fuzz_random_bytes(
    rtype: RRType, flags: int, counts: tuple[int, int, int], tail: bytes, plain: bool
) -> None:
    """Random bytes -- alone, or after a header and the right question so that the sections
    are read: decode returns or raises WireError, and agrees with dnspython where it reads."""
    question = question_of(QNAME, rtype)
    wire = (
        tail
        if plain
        else header(flags=flags | 0x8000, an=counts[0], ns=counts[1], ar=counts[2])
        + question
        + tail
    )
    check_against_dnspython(wire, QNAME, rtype)


# -- 3. specific cases -----------------------------------------------------------------------


def test_truncated_reply_is_truncated_whatever_follows_the_question() -> None:
    """TC set (RFC 1035 §4.1.1): TRUNCATED, even with garbage after the question (the rest is
    not read); as dnspython (Truncated, then TCP)."""
    wire = msg(flags=0x8380, counts=(1, 5, 0, 0)) + b"\xff\xfe garbage"
    assert decode(wire, QMX, RRType.MX) is TRUNCATED
    assert dnspython_outcome(wire, QNAME, RRType.MX) is TRUNCATED
    # ... but the question is still checked: TC on a reply to another question is ignored.
    other = msg(flags=0x8380, question=QA)
    with pytest.raises(WireError):
        decode(other, QMX, RRType.MX)


@pytest.mark.parametrize(
    ("rcode", "name"), [(1, "FORMERR"), (2, "SERVFAIL"), (4, "NOTIMP"), (5, "REFUSED")]
)
def test_error_rcodes_are_returned_as_ints(rcode: int, name: str) -> None:
    """SERVFAIL, REFUSED, FORMERR, NOTIMP: the RCODE, for the caller to try the next server
    (dnspython drops the server too); records in the reply do not matter."""
    wire = msg(rr(AT_QNAME, 15, MX_RDATA), flags=0x8180 | rcode)
    assert decode(wire, QMX, RRType.MX) == rcode
    assert check_against_dnspython(wire, QNAME, RRType.MX) == rcode
    assert _wire.RCODE_TEXT[rcode] == name


def test_extended_rcode_from_opt() -> None:
    """RFC 6891 §6.1.3: the OPT record's TTL carries the upper 8 bits of the RCODE: BADVERS
    (16) is 1 << 24 there with 0 in the header."""
    opt = rr(b"\x00", 41, b"", rclass=1232, ttl=1 << 24)
    wire = msg(additional=(opt,))
    assert decode(wire, QMX, RRType.MX) == 16
    assert check_against_dnspython(wire, QNAME, RRType.MX) == 16
    assert _wire.RCODE_TEXT[16] == "BADVERS"


def test_question_matched_without_case_names_keep_the_replys_case() -> None:
    """The reply's question in mixed case (0x20, RFC 4343) is our question; the Answer's names
    are in the reply's case, as dnspython gives them."""
    question = b"\x07ExAmPlE\x03oRg\x00\x00\x0f\x00\x01"
    cname = rr(b"\xc0\x0c", 5, b"\x04Mail\xc0\x14")  # -> Mail.oRg.
    mx = rr(b"\x04MAIL\xc0\x14", 15, b"\x00\x05\x02MX\xc0\x14", ttl=100)
    wire = msg(cname, mx, question=question)
    expected = Answer.from_mx(
        [(5, "MX.oRg.")], ttl=100, canonical_name="Mail.oRg.", aliases=("ExAmPlE.oRg.",)
    )
    assert decode(wire, QMX, RRType.MX) == expected
    assert check_against_dnspython(wire, QNAME, RRType.MX) == expected


@pytest.mark.parametrize(
    ("soa_ttl", "minimum", "cname_ttl", "expected"),
    [
        (3600, 60, None, 60),  # RFC 2308 §5: MINIMUM when smaller
        (30, 60, None, 30),  # the SOA's own TTL when smaller
        (3600, 60, 10, 10),  # and never more than the CNAME's
        (3600, 60, 2**31, 0),  # a top-bit TTL counts as 0 (RFC 2181 §8)
        (2**31 + 5, 60, None, 0),
        (3600, 2**32 - 1, None, 3600),
    ],
)
def test_negative_ttl(soa_ttl: int, minimum: int, cname_ttl: int | None, expected: int) -> None:
    """NODATA/NXDOMAIN TTL: min(SOA TTL, SOA MINIMUM) and the CNAME TTLs of the chain."""
    soa = rr(AT_QNAME, 6, SOA_RDATA[:-4] + struct.pack("!I", minimum), ttl=soa_ttl)
    for rcode in (0, 3):
        answers: tuple[bytes, ...] = ()
        if cname_ttl is not None:
            answers = (rr(AT_QNAME, 5, b"\x03end\xc0\x0c", ttl=cname_ttl),)
        wire = msg(*answers, authority=(soa,), flags=0x8180 | rcode)
        result = decode(wire, QMX, RRType.MX)
        assert isinstance(result, Answer)
        assert result.ttl == expected
        assert result.status is (Status.NXDOMAIN if rcode else Status.NODATA)
        assert check_against_dnspython(wire, QNAME, RRType.MX) == result


def test_nxdomain_at_the_end_of_a_chain() -> None:
    """RFC 6604 §3: NXDOMAIN after a CNAME is about the last name: NXDOMAIN with the chain,
    canonical_name the last name."""
    wire = _message(
        "a.example.",
        RRType.AAAA,
        "a.example. 300 CNAME b.example.",
        "b.example. 200 CNAME c.test.",
        authority=("test. 900 SOA ns. host. 1 2 3 4 120",),
    )
    wire = wire[:3] + bytes([wire[3] | 3]) + wire[4:]
    expected = Answer.nxdomain(
        ttl=120, canonical_name="c.test.", aliases=("a.example.", "b.example.")
    )
    assert decode(wire, question_of("a.example.", RRType.AAAA), RRType.AAAA) == expected
    assert check_against_dnspython(wire, "a.example.", RRType.AAAA) == expected
