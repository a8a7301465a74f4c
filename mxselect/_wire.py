"""The DNS wire codec of :mod:`mxselect.stub`: a query out, a response in, an Answer out.

Pure: no sockets, no dnspython. It builds the one query message mxselect sends (RFC 1035 §4.1,
RD set, EDNS0 OPT with a 1232-byte payload, RFC 6891 §6.1 and the 2020 DNS flag day), and reads
exactly what a selection needs from a response: the header, the answer section (MX, A, AAAA,
TLSA, TXT and CNAME records, RFC 1035 §3.3, RFC 6698 §2.1), the SOA of the authority section for the
negative TTL (RFC 2308 §5) and the OPT record's extended RCODE (RFC 6891 §6.1.3) -- and, for an
error reply only, its extended DNS errors (RFC 8914, :func:`extended_errors`). Anything else is
skipped by its RDLENGTH.

A TLSA query (RFC 7672 §2.2.3) is answered like an address query: the CNAME chain from the
question's name is followed (``_25._tcp.mx.example`` CNAME ``_tlsa.provider.example``), the
records at its end are the answer. A CNAME query (RFC 7672 §2.1.3: is the alias itself signed?)
is answered with :meth:`Answer.alias <mxselect.Answer.alias>`: the CNAME record's target, never
followed. The AD bit covers both, as every other answer (RFC 4035 §3.2.3).

A TXT query (``_mta-sts.<domain>``, RFC 8461 §3.1; ``_smtp._tls.<domain>``, RFC 8460 §3) is
answered like the address queries too, CNAMEs followed (RFC 8461 §3.1: "senders MUST follow
the CNAME pointers"). Each record's RDATA is a sequence of <character-string>s (RFC 1035
§3.3.14: a length octet, then that many octets): their contents are concatenated without
spaces (RFC 8461 §3.1) and decoded as Latin-1 -- every octet one character, nothing lost or
merged (the records mxselect reads are ASCII, RFC 8461 §3.1 and RFC 8460 §3; a stray octet
stays visible and fails their syntax). The dnspython adapter decodes the same way. A length
octet that runs past RDLENGTH, or an empty RDATA (no string at all, which dnspython refuses),
makes the reply unreadable (:class:`WireError`).

Names come out in dnspython's presentation form (case kept, ``\\DDD`` and ``\\.`` escapes),
so both adapters hand the core the same strings.

The checks dnspython makes when it parses are made here too, for the parts read: label types,
compression pointers that only point backwards (no loops, RFC 1035 §4.1.4), names of at most
255 octets, record data that ends exactly where RDLENGTH says, and no trailing junk. A message
that fails any of them raises :class:`WireError`; the client then keeps waiting for a proper
reply, as dnspython does (a forged or damaged datagram must not end the lookup).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from ._answers import (
    Answer,
    IPAddress,
    MXRecord,
    RRType,
    Security,
    Status,
    TLSARecord,
    make_answer,
    make_mx,
    make_tlsa,
)

__all__ = [
    "EDNS_PAYLOAD",
    "TRUNCATED",
    "WireError",
    "decode",
    "describe_ede",
    "encode_name",
    "extended_errors",
    "make_query",
    "question_of",
]

#: EDNS0 UDP payload size advertised (RFC 6891 §6.2.5; DNS flag day 2020: 1232).
EDNS_PAYLOAD = 1232
#: QTYPE codes (RFC 1035 §3.2.2, RFC 3596 §2.1, RFC 6698 §7.1).
QTYPE = {
    RRType.MX: 15,
    RRType.A: 1,
    RRType.AAAA: 28,
    RRType.TLSA: 52,
    RRType.CNAME: 5,
    RRType.TXT: 16,
}
# Enum members read once (an attribute of an Enum class costs a lookup in its metaclass).
_MX, _A, _RECORDS = RRType.MX, RRType.A, Status.RECORDS
_TLSA, _CNAME_QUERY, _TXT = RRType.TLSA, RRType.CNAME, RRType.TXT
_CNAME, _SOA, _OPT, _TLSA_TYPE, _TXT_TYPE = 5, 6, 41, 52, 16
#: The EDNS0 option code of an extended DNS error (RFC 8914 §2).
_EDE_OPTION = 15
#: The names of the extended DNS error codes (RFC 8914 §4; IANA "Extended DNS Error Codes").
EDE_TEXT = {
    0: "Other Error",
    1: "Unsupported DNSKEY Algorithm",
    2: "Unsupported DS Digest Type",
    3: "Stale Answer",
    4: "Forged Answer",
    5: "DNSSEC Indeterminate",
    6: "DNSSEC Bogus",
    7: "Signature Expired",
    8: "Signature Not Yet Valid",
    9: "DNSKEY Missing",
    10: "RRSIGs Missing",
    11: "No Zone Key Bit Set",
    12: "NSEC Missing",
    13: "Cached Error",
    14: "Not Ready",
    15: "Blocked",
    16: "Censored",
    17: "Filtered",
    18: "Prohibited",
    19: "Stale NXDOMAIN Answer",
    20: "Not Authoritative",
    21: "Not Supported",
    22: "No Reachable Authority",
    23: "Network Error",
    24: "Invalid Data",
}
_CLASS_IN = 1
#: RCODEs (RFC 1035 §4.1.1, RFC 6895 §2.3).
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
RCODE_TEXT = {
    FORMERR: "FORMERR",
    NXDOMAIN: "NXDOMAIN",
    SERVFAIL: "SERVFAIL",
    NOTIMP: "NOTIMP",
    REFUSED: "REFUSED",
    6: "YXDOMAIN",
    7: "YXRRSET",
    8: "NXRRSET",
    9: "NOTAUTH",
    10: "NOTZONE",
    16: "BADVERS",
}
#: CNAME links followed inside one response: dnspython follows 15 and refuses a 16th
#: (``dns.message.MAX_CHAIN`` = 16 counts the links taken, ChainTooLong at 16).
MAX_CHAIN = 15

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
#: dnspython's negative TTL for a NODATA/NXDOMAIN reply without an SOA.
NEGATIVE_TTL_WITHOUT_SOA = 300
#: The largest TTL (RFC 2181 §8); one with the top bit set counts as 0.
_MAX_TTL = 2**31 - 1
#: Compression pointers per name (dnspython: MAX_COMPRESSION_POINTER_CHAIN).
_MAX_HOPS = 16
# RD (RFC 1035 §4.1.1): the recursive resolver chases for us; AD (RFC 6840 §5.7): a
# validating resolver then sets AD in its reply for authentic data, without DNSSEC records.
_QUERY_FLAGS = 0x0120
_AD = 0x0020
_OPT_RR = b"\x00" + _RR.pack(_OPT, EDNS_PAYLOAD, 0, 0)

# Presentation form of one label octet, as dnspython writes it: special characters escaped
# with a backslash, octets outside 0x21..0x7e as \DDD (RFC 1035 §5.1).
_ESCAPED = frozenset(b'"().;\\@$')
_OCTET = tuple(
    ("\\" + chr(b)) if b in _ESCAPED else (chr(b) if 0x20 < b < 0x7F else f"\\{b:03d}")
    for b in range(256)
)
#: The octets written as themselves (deleted by ``bytes.translate`` to test a label).
_PLAIN_OCTETS = bytes(b for b in range(0x21, 0x7F) if b not in _ESCAPED)


class WireError(ValueError):
    """A DNS message that cannot be read (truncated, bad pointer, bad record data...)."""


class _Truncated:
    """The marker :func:`decode` returns for a reply with TC set (retry over TCP)."""

    def __repr__(self) -> str:
        return "TRUNCATED"


TRUNCATED = _Truncated()


def encode_name(name: str) -> bytes:
    """Wire form of an absolute LDH/A-label name (``"mx1.example.org."``).

    Raises:
        WireError: an empty or over-long label, a name over 255 octets, a non-ASCII name.
    """
    if name in (".", ""):
        return b"\x00"
    try:
        raw = name.encode("ascii")  # once for the whole name, then split as bytes
    except UnicodeEncodeError:
        raise WireError(f"not an A-label name: {name!r}") from None
    out = bytearray()
    for label in (raw[:-1] if raw[-1:] == b"." else raw).split(b"."):
        if not 0 < len(label) < 64:
            raise WireError(f"bad label length in {name!r}")
        out.append(len(label))
        out += label
    out.append(0)
    if len(out) > 255:
        raise WireError(f"name longer than 255 octets: {name!r}")
    return bytes(out)


#: QTYPE and QCLASS IN of each question mxselect asks, packed once.
_QUESTION_TAIL = {rtype: _U16.pack(code) + _U16.pack(_CLASS_IN) for rtype, code in QTYPE.items()}


def question_of(name: str, rtype: RRType, names: dict[str, bytes] | None = None) -> bytes:
    """The question section (QNAME, QTYPE, QCLASS IN) mxselect sends for ``name``/``rtype``.

    ``names``: the names encoded so far, to encode each once (a batch asks for the A and the
    AAAA records of each exchange)."""
    if names is None:
        return encode_name(name) + _QUESTION_TAIL[rtype]
    wire = names.get(name)
    if wire is None:
        wire = names[name] = encode_name(name)
    return wire + _QUESTION_TAIL[rtype]


def make_query(qid: int, question: bytes, *, edns: bool = True) -> bytes:
    """A query message: header (ID, RD), the question, and an EDNS0 OPT record unless
    ``edns`` is false."""
    return (
        _HEADER.pack(qid, _QUERY_FLAGS, 1, 0, 0, 1 if edns else 0)
        + question
        + (_OPT_RR if edns else b"")
    )


def _name(msg: bytes, off: int, seen: dict[int, tuple[str, int, int]]) -> tuple[str, int]:
    """(presentation form, offset after the name) of the name at ``off``.

    ``seen`` maps the offsets of names already read in this message to (text, octets, end):
    compression pointers mostly point at them (RFC 1035 §4.1.4), so each is decoded once.
    Pointers follow dnspython's rules: each points below the name's start and below every
    pointer before it, what it points at ends before the part read just before (no
    overlap), and at most 16 of them per name.
    """
    start = off
    hit = seen.get(off)
    if hit is not None:
        return hit[0], hit[2]
    first = msg[off] if off < len(msg) else -1
    if first == 0:  # the root (an OPT record's owner): the loop below, for that case alone
        seen[start] = (".", 0, off + 1)
        return ".", off + 1
    if first >= 0xC0 and off + 1 < len(msg):
        # The common case, an owner name that is one pointer to a name already read (the
        # question's, RFC 1035 §4.1.4): the rules of the loop below, for that case alone.
        target = ((first & 0x3F) << 8) | msg[off + 1]
        hit = seen.get(target)
        if hit is not None and target < off and hit[2] <= off:
            seen[start] = (hit[0], hit[1], off + 2)
            return hit[0], off + 2
    parts: list[str] = []
    end = -1
    length = 0
    limit = len(msg)
    lowest = off
    hops = 0
    suffix = "."
    while True:
        if off >= limit:
            raise WireError("name runs past the end of the message")
        n = msg[off]
        if n == 0:
            off += 1
            break
        if n >= 0xC0:
            if off + 1 >= limit:
                raise WireError("truncated compression pointer")
            target = ((n & 0x3F) << 8) | msg[off + 1]
            if target >= lowest:  # only backwards: no loops (dnspython: BadPointer)
                raise WireError("compression pointer does not point backwards")
            hops += 1
            if hops > _MAX_HOPS:
                raise WireError("too many compression pointers")
            if end < 0:
                end = off + 2
            limit, lowest = lowest, target
            hit = seen.get(target)
            if hit is not None:
                if hit[2] > limit:
                    raise WireError("compression pointer into the name itself")
                suffix = hit[0]
                length += hit[1]
                if length > 254:
                    raise WireError("name longer than 255 octets")
                break
            off = target
            continue
        if n > 63:
            raise WireError("unknown label type")
        if off + 1 + n > limit:
            raise WireError("label runs past the end of the message")
        label = msg[off + 1 : off + 1 + n]
        length += n + 1
        if length > 254:
            raise WireError("name longer than 255 octets")
        if label.isalnum() or not label.translate(None, _PLAIN_OCTETS):
            parts.append(label.decode("ascii"))  # (isalnum: ASCII letters and digits only)
        else:
            parts.append("".join([_OCTET[b] for b in label]))
        off += 1 + n
    # The labels read here, then the name a pointer led to ("." when none).
    text = ".".join(parts) + ("." + suffix if suffix != "." else ".") if parts else suffix
    end = end if end >= 0 else off
    seen[start] = (text, length, end)
    return text, end


def _record(
    msg: bytes, off: int, seen: dict[int, tuple[str, int, int]]
) -> tuple[str, int, int, int, int, int]:
    """(owner, TYPE, CLASS, TTL, RDATA offset, offset after RDATA) of the record at ``off``."""
    owner, off = _name(msg, off, seen)
    if off + 10 > len(msg):
        raise WireError("record header runs past the end")
    rrtype, rrclass, ttl, rdlen = _RR.unpack_from(msg, off)
    off += 10
    rdend = off + rdlen
    if rdend > len(msg):
        raise WireError("record data runs past the end")
    return owner, rrtype, rrclass, ttl, off, rdend


def _txt_strings(msg: bytes, off: int, rdend: int) -> tuple[bytes, ...]:
    """The <character-string>s of a TXT record's RDATA (RFC 1035 §3.3.14): at least one,
    each a length octet and that many octets, ending exactly at RDLENGTH."""
    if off == rdend:
        raise WireError("TXT record without a character-string")
    strings: list[bytes] = []
    while off < rdend:
        end = off + 1 + msg[off]
        if end > rdend:
            raise WireError("TXT character-string runs past the record data")
        strings.append(msg[off + 1 : end])
        off = end
    return tuple(strings)


def decode(
    msg: bytes, question: bytes, rtype: RRType, *, dnssec: bool = False
) -> Answer | int | _Truncated:
    """Read a reply to the query whose question section is ``question``.

    Returns an :class:`Answer` (NOERROR or NXDOMAIN), :data:`TRUNCATED` (TC set: ask again
    over TCP, RFC 1123 §6.1.3.2), or the RCODE of any other reply (SERVFAIL, REFUSED,
    FORMERR...: the caller asks the next server). The caller has matched the ID. With
    ``dnssec``, answers carry the status the AD bit reports (SECURE or INSECURE); without,
    UNKNOWN.

    Raises:
        WireError: not a reply to this question, or not a readable message.
    """
    if len(msg) < 12:
        raise WireError("shorter than a DNS header")
    _qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(msg)
    if not flags & 0x8000 or flags & 0x7800:  # QR must be set, OPCODE must be QUERY
        raise WireError("not a reply to a standard query")
    end_q = 12 + len(question)
    header_rcode: int = flags & 0x000F
    if qdcount == 0 and header_rcode not in (NOERROR, NXDOMAIN):
        # An error without the question: what a server that cannot parse the query (an old
        # one, to an OPT record, RFC 6891 §7) sends. dnspython takes it as that server's
        # failure too.
        return header_rcode
    # The reply repeats our question; names compare without case (RFC 4343).
    if qdcount != 1 or msg[12:end_q].lower() != question.lower():
        raise WireError("the reply is for another question")
    if flags & 0x0200:
        return TRUNCATED
    rcode: int = flags & 0x000F
    # With ``dnssec``: what the AD bit says of every RRset in the reply (RFC 4035 §3.2.3);
    # whether it counts is the resolver's decision (StubResolver.trust_ad, RFC 7672 §2.1.1).
    if not dnssec:
        security = Security.UNKNOWN
    else:
        security = Security.SECURE if flags & _AD else Security.INSECURE
    if (
        ancount
        and not nscount
        and (rtype is _A or rtype is _AAAA or rtype is _MX)
        and msg[end_q : end_q + 2] == _POINTER_TO_QUESTION
    ):
        simple = _simple_answer(msg, end_q, ancount, arcount, rtype, rcode, security)
        if simple is not None:
            return simple
    seen: dict[int, tuple[str, int, int]] = {}
    qname, _ = _name(msg, 12, seen)
    off = end_q
    qtype = QTYPE[rtype]
    # answer section: (owner key, type) -> [(ttl, data)] for the types we read
    records: dict[tuple[str, int], list[tuple[int, Any]]] = {}
    owners: dict[str, str] = {}
    size = len(msg)
    for _ in range(ancount):
        # (_record, inline: the answer section is where the records are)
        owner, off = _name(msg, off, seen)
        if off + 10 > size:
            raise WireError("record header runs past the end")
        rrtype, rrclass, ttl, rdlen = _RR.unpack_from(msg, off)
        off += 10
        rdend = off + rdlen
        if rdend > size:
            raise WireError("record data runs past the end")
        if ttl > _MAX_TTL:  # RFC 2181 §8: the top bit set means 0 (dnspython reads it so)
            ttl = 0
        if rrclass == _CLASS_IN and rrtype in (qtype, _CNAME):
            data: Any
            if rrtype == 1:
                if rdend - off != 4:
                    raise WireError("A record of the wrong length")
                data = msg[off:rdend]
            elif rrtype == 28:
                if rdend - off != 16:
                    raise WireError("AAAA record of the wrong length")
                data = msg[off:rdend]
            elif rrtype == 15:
                if rdend - off < 3:
                    raise WireError("MX record too short")
                exchange, after = _name(msg, off + 2, seen)
                if after != rdend:
                    raise WireError("MX record of the wrong length")
                data = ((msg[off] << 8) | msg[off + 1], exchange)
            elif rrtype == _TLSA_TYPE:
                # RFC 6698 §2.1: usage, selector, matching type (one octet each), then the
                # association data (any length, even none: then unusable, RFC 6698 §4.1).
                # Shorter than 3 octets is no TLSA record: a malformed reply, never a crash.
                if rdend - off < 3:
                    raise WireError("TLSA record shorter than 3 octets")
                data = (msg[off], msg[off + 1], msg[off + 2], msg[off + 3 : rdend])
            elif rrtype == _TXT_TYPE:
                data = _txt_strings(msg, off, rdend)
            else:
                target, after = _name(msg, off, seen)
                if after != rdend:
                    raise WireError("CNAME record of the wrong length")
                data = target
            key = owner.lower()
            owners.setdefault(key, owner)
            records.setdefault((key, rrtype), []).append((ttl, data))
        off = rdend
    # SOA RRsets of the authority section: owner key -> (TTL, MINIMUM)
    soas: dict[str, tuple[int, int]] = {}
    for _ in range(nscount):
        owner, rrtype, rrclass, ttl, off, rdend = _record(msg, off, seen)
        if rrtype == _SOA:
            _mname, after = _name(msg, off, seen)
            _rname, after = _name(msg, after, seen)
            if after + 20 != rdend:
                raise WireError("SOA record of the wrong length")
            if rrclass == _CLASS_IN:
                key = owner.lower()
                ttl = ttl if ttl <= _MAX_TTL else 0
                known = soas.get(key)
                # As dnspython's RRset: the smallest TTL, the last record's data (a singleton).
                soas[key] = (
                    ttl if known is None else min(known[0], ttl),
                    _U32.unpack_from(msg, after + 16)[0],
                )
        off = rdend
    for _ in range(arcount):
        _owner, rrtype, _payload, ttl, _rdata, off = _record(msg, off, seen)
        if rrtype == _OPT:
            rcode |= (ttl >> 24) << 4  # the extended RCODE (RFC 6891 §6.1.3)
    if off != len(msg):
        raise WireError("trailing data after the last record")
    if rcode not in (NOERROR, NXDOMAIN):
        return rcode
    return _answer(rcode, rtype, qname, records, owners, soas, security)


#: An owner name that is a compression pointer to the question's name (RFC 1035 §4.1.4:
#: offset 12, right after the header), as nearly every answer record's owner is.
_POINTER_TO_QUESTION = b"\xc0\x0c"
_AAAA = RRType.AAAA


def _simple_answer(
    msg: bytes,
    off: int,
    ancount: int,
    arcount: int,
    rtype: RRType,
    rcode: int,
    security: Security,
) -> Answer | None:
    """The answer :func:`decode` gives for the usual reply to an A, AAAA or MX query, read
    without its general machinery (no answer-section dictionaries, no CNAME chase); None
    when the reply is not of that shape, and :func:`decode` reads it the general way.

    The shape: the question's name well-formed; every answer record owned by a pointer
    to the question's name (``0xC00C``), of the question's type and class IN; no authority
    section; additional records owned by the root only (the OPT record); NOERROR, with the
    extended RCODE (RFC 6891 §6.1.3); no trailing data. Every check :func:`decode` makes on
    those parts is made here (a failed one is a None, so that :func:`decode` raises its own
    WireError), and the Answer is the one it builds: the records in their order, duplicates
    dropped (RFC 2181 §5), the smallest TTL (top bit set: 0, RFC 2181 §8)."""
    # The question's name as _name reads it: labels of 1..63 octets, no pointer, at most
    # 255 octets, the root octet right before QTYPE (``off`` is the end of the question).
    last = off - 5
    i = 12
    while i < last:
        n = msg[i]
        if n == 0 or n > 63:
            return None
        i += n + 1
    if i != last or msg[last] != 0 or last - 12 > 254:
        return None
    size = len(msg)
    qtype = QTYPE[rtype]
    ttl = _MAX_TTL + 1
    mx: dict[tuple[int, str], MXRecord] = {}
    addresses: dict[bytes, IPAddress] = {}
    if rtype is _MX:
        seen: dict[int, tuple[str, int, int]] = {}
        _name(msg, 12, seen)
        for _ in range(ancount):
            if msg[off : off + 2] != _POINTER_TO_QUESTION or off + 12 > size:
                return None
            _name(msg, off, seen)  # (the owner: the question's name, remembered at ``off``)
            rrtype, rrclass, rrttl, rdlen = _RR.unpack_from(msg, off + 2)
            off += 12
            rdend = off + rdlen
            if rdend > size or rrtype != qtype or rrclass != _CLASS_IN or rdlen < 3:
                return None
            exchange, after = _name(msg, off + 2, seen)
            if after != rdend:
                return None
            pref = (msg[off] << 8) | msg[off + 1]
            key = (pref, exchange.lower())
            if key not in mx:
                mx[key] = make_mx(pref, exchange)
            ttl = min(ttl, rrttl if rrttl <= _MAX_TTL else 0)
            off = rdend
    else:
        make = ipaddress.IPv4Address if rtype is _A else ipaddress.IPv6Address
        want = 4 if rtype is _A else 16
        for _ in range(ancount):
            if msg[off : off + 2] != _POINTER_TO_QUESTION or off + 12 > size:
                return None
            rrtype, rrclass, rrttl, rdlen = _RR.unpack_from(msg, off + 2)
            off += 12
            rdend = off + rdlen
            if rdend > size or rrtype != qtype or rrclass != _CLASS_IN or rdlen != want:
                return None
            packed = msg[off:rdend]
            if packed not in addresses:
                addresses[packed] = make(packed)
            ttl = min(ttl, rrttl if rrttl <= _MAX_TTL else 0)
            off = rdend
    for _ in range(arcount):
        if off + 11 > size or msg[off] != 0:
            return None
        rrtype, _rrclass, rrttl, rdlen = _RR.unpack_from(msg, off + 1)
        off += 11 + rdlen
        if off > size:
            return None
        if rrtype == _OPT:
            rcode |= (rrttl >> 24) << 4  # the extended RCODE (RFC 6891 §6.1.3)
    if off != size or rcode != NOERROR:
        return None
    return make_answer(
        _RECORDS, tuple(mx.values()), tuple(addresses.values()), (), (), None, (), ttl, security
    )


#: The longest EXTRA-TEXT of an extended DNS error kept in a reason (server-chosen text).
_EDE_TEXT_MAX = 200


def describe_ede(code: int, extra: str | None = None) -> str:
    """``EDE 6: DNSSEC Bogus`` -- an extended DNS error as a reason names it (RFC 8914 §4),
    with the server's EXTRA-TEXT quoted after it (RFC 8914 §2: for humans; here made
    printable and cut to 200 characters, since the server chose it)."""
    text = f"EDE {code}: {EDE_TEXT.get(code, 'unknown code')}"
    if extra:
        printable = "".join(c if c.isprintable() else "?" for c in extra[:_EDE_TEXT_MAX])
        text += f' "{printable}"'
    return text


def extended_errors(msg: bytes) -> tuple[tuple[int, str], ...]:
    """The extended DNS errors (RFC 8914 §2: EDNS0 option 15, INFO-CODE then EXTRA-TEXT)
    of the OPT record of ``msg``, as ``(code, extra text)`` pairs; ``()`` if there are none or
    the message cannot be read. Called for error replies only (a validating resolver says
    why it answered SERVFAIL, e.g. 6 "DNSSEC Bogus"): it walks the message once more."""
    try:
        if len(msg) < 12:
            return ()
        _qid, _flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(msg)
        seen: dict[int, tuple[str, int, int]] = {}
        off = 12
        for _ in range(qdcount):
            _qname, off = _name(msg, off, seen)
            off += 4
        for _ in range(ancount + nscount):
            *_, off = _record(msg, off, seen)
        found: list[tuple[int, str]] = []
        for _ in range(arcount):
            _owner, rrtype, _payload, _ttl, rdata, off = _record(msg, off, seen)
            if rrtype != _OPT:
                continue
            at = rdata
            while at + 4 <= off:
                code, length = _U16.unpack_from(msg, at)[0], _U16.unpack_from(msg, at + 2)[0]
                value = msg[at + 4 : at + 4 + length]
                at += 4 + length
                if at > off:
                    break  # an option running past the record: ignore it
                if code == _EDE_OPTION and len(value) >= 2:
                    extra = value[2:].decode("utf-8", "replace").rstrip("\x00")
                    found.append((_U16.unpack_from(value)[0], extra))
        return tuple(found)
    except (WireError, IndexError, struct.error):
        return ()


def _answer(
    rcode: int,
    rtype: RRType,
    name: str,
    records: dict[tuple[str, int], list[tuple[int, Any]]],
    owners: dict[str, str],
    soas: dict[str, tuple[int, int]],
    security: Security,
) -> Answer | int:
    """Follow the CNAME chain from the question's name (as dnspython's ``resolve_chaining``)."""
    key = name.lower()
    qtype = QTYPE[rtype]
    aliases: list[str] = []
    ttl: int | None = None
    found: list[tuple[int, Any]] | None = None
    while True:
        found = records.get((key, qtype))
        if found is not None:
            break
        cname = records.get((key, _CNAME))
        if cname is None:
            break
        if len(aliases) == MAX_CHAIN:
            # Longer than dnspython takes (ChainTooLong, the server dropped): hand the rest
            # to the core, whose own limit (Policy.cname_limit) ends it.
            return Answer.alias(name, ttl=ttl, aliases=aliases, security=security)
        aliases.append(owners[key])
        link_ttl = min([t for t, _ in cname])
        ttl = link_ttl if ttl is None else min(ttl, link_ttl)
        # CNAME is a singleton type: of several, dnspython keeps the last (RFC 2181 §10.1).
        name = str(cname[-1][1])
        key = name.lower()
    canonical = name if aliases else None
    if found is not None and rtype is _CNAME_QUERY:
        # A CNAME query: the record at the question's name, its target not followed
        # (RFC 7672 §2.1.3). CNAME is a singleton type: of several, the last, as above.
        if rcode == NXDOMAIN:
            return rcode  # data with NXDOMAIN: refused, as below
        return Answer.alias(
            str(found[-1][1]),
            ttl=min([t for t, _ in found]),
            aliases=[owners[key]],
            security=security,
        )
    if found is not None and rcode == NXDOMAIN:
        # NXDOMAIN with the data: dnspython refuses the reply (AnswerForNXDOMAIN) and drops
        # the server; so does the caller, given the RCODE.
        return rcode
    if found is not None:
        rr_ttl = found[0][0] if len(found) == 1 else min([t for t, _ in found])
        ttl = rr_ttl if ttl is None else min(ttl, rr_ttl)
        if rtype is _MX:
            mx: dict[tuple[int, str], MXRecord] = {}
            for _, data in found:
                pref, exchange = data
                mx.setdefault((pref, exchange.lower()), make_mx(pref, exchange))
            return make_answer(
                _RECORDS, tuple(mx.values()), (), (), (), canonical, tuple(aliases), ttl, security
            )
        if rtype is _TLSA:
            # RFC 6698 §2.1; duplicates dropped, as dnspython's RRset does (RFC 2181 §5).
            tlsa: dict[tuple[int, int, int, bytes], TLSARecord] = {}
            for _, fields in found:
                if fields not in tlsa:
                    tlsa[fields] = make_tlsa(*fields)
            return make_answer(
                _RECORDS, (), (), tuple(tlsa.values()), (), canonical, tuple(aliases), ttl, security
            )
        if rtype is _TXT:
            # Duplicates dropped as dnspython's RRset does: by their strings, so one record
            # split in two strings and one that is not stay two records (RFC 8461 §3.1 then
            # sees two), their text joined without spaces (RFC 8461 §3.1), in Latin-1.
            txt: dict[tuple[bytes, ...], str] = {}
            for _, strings in found:
                if strings not in txt:
                    txt[strings] = b"".join(strings).decode("latin-1")
            return make_answer(
                _RECORDS, (), (), (), tuple(txt.values()), canonical, tuple(aliases), ttl, security
            )
        make = ipaddress.IPv4Address if rtype is _A else ipaddress.IPv6Address
        addresses: dict[bytes, IPAddress] = {}
        for _, packed in found:
            if packed not in addresses:
                addresses[packed] = make(packed)
        return make_answer(
            _RECORDS,
            (),
            tuple(addresses.values()),
            (),
            (),
            canonical,
            tuple(aliases),
            ttl,
            security,
        )
    if rcode == NOERROR and aliases and not soas:
        # A chain that stops without the data and without an SOA: the server did not chase
        # the target (not a recursive answer). Let the core ask for it (RFC 1034 §3.6.2).
        return Answer.alias(name, ttl=ttl, aliases=aliases, security=security)
    # RFC 2308 §5: the negative TTL is the smaller of the SOA's TTL and MINIMUM -- of the SOA
    # dnspython takes: the one owned by the last name or its nearest ancestor.
    negative = _negative_ttl(name, soas)
    ttl = negative if ttl is None else min(ttl, negative)
    # dnspython's "no TTL known" (the adapter's None) is 2^31 - 1.
    negative_ttl = ttl if ttl < _MAX_TTL else None
    if rcode == NXDOMAIN:
        # RFC 6604 §3: NXDOMAIN is about the last name of the chain.
        return make_answer(
            Status.NXDOMAIN, (), (), (), (), canonical, tuple(aliases), negative_ttl, security
        )
    return make_answer(
        Status.NODATA, (), (), (), (), canonical, tuple(aliases), negative_ttl, security
    )


def _negative_ttl(name: str, soas: dict[str, tuple[int, int]]) -> int:
    """min(TTL, MINIMUM) of the SOA owned by ``name`` or its nearest ancestor; without one,
    dnspython's default (``dns.message.NEGATIVE_TTL_WITHOUT_SOA``)."""
    key = name.lower()
    while True:
        soa = soas.get(key)
        if soa is not None:
            return min(soa)
        if key == ".":
            return NEGATIVE_TTL_WITHOUT_SOA
        key = _parent(key)


def _parent(key: str) -> str:
    """The parent of a name in presentation form (``\\.`` inside a label is no dot)."""
    i = 0
    while key[i] != ".":
        i += 2 if key[i] == "\\" else 1
    return key[i + 1 :] or "."
