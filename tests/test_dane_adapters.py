"""DANE in the resolvers (RFC 7672): TLSA and CNAME queries through the stub's codec
(``mxselect._wire``), the stub, the dnspython adapters, the aiodns adapter and the cache.

1. Codec unit tests: TLSA RDATA (RFC 6698 §2.1) incl. malformed lengths (a seeded fuzz loop),
   TLSA via CNAME (RFC 7672 §2.2.3), a CNAME query's answer (RFC 7672 §2.1.3), the question
   check for the new types (RFC 5452 §9.1), extended DNS errors (RFC 8914).
2. The aiodns adapter refuses TLSA (no TLSA in aiodns, no AD bit from c-ares); CNAME works.
3. ``CachingResolver``: TLSA answers kept at most 100 s (RFC 7671 §13; Postfix's
   ``TLS_DANE_CACHE_TTL_MAX``), with their security status.
4. End to end through Knot + the validating Unbound (the harness's signed ``dnssec.test``, the
   scenario IDs of ``shared/secure-delivery.md`` §7, row P5), for the stub and the dnspython
   adapter, sync and async.

Only loopback servers started by the tests are asked.
"""

from __future__ import annotations

import asyncio
import random
import struct

import pytest

from mxselect import Answer, Query, RRType, Security, Status, TLSARecord, _wire
from mxselect._wire import WireError, decode, question_of

# -- building replies by hand ---------------------------------------------------------------

AT_QNAME = b"\xc0\x0c"  # a compression pointer to the question's name
DIGEST = bytes(range(32))
TLSA_311 = b"\x03\x01\x01" + DIGEST
QR_RD_RA = 0x8180
AD = 0x0020


def encoded(name: str) -> bytes:
    return _wire.encode_name(name)


def rr(owner: bytes, rtype: int, rdata: bytes, *, ttl: int = 300) -> bytes:
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def reply(
    question: bytes,
    *answers: bytes,
    authority: tuple[bytes, ...] = (),
    additional: tuple[bytes, ...] = (),
    flags: int = QR_RD_RA,
    qid: int = 0x1234,
) -> bytes:
    head = struct.pack("!HHHHHH", qid, flags, 1, len(answers), len(authority), len(additional))
    return head + question + b"".join(answers) + b"".join(authority) + b"".join(additional)


def soa(owner: bytes, minimum: int = 60) -> bytes:
    rdata = encoded("ns.test.") + encoded("hm.test.") + struct.pack("!5I", 1, 2, 3, 4, minimum)
    return rr(owner, 6, rdata, ttl=300)


def opt(*options: tuple[int, bytes]) -> bytes:
    rdata = b"".join(struct.pack("!HH", code, len(v)) + v for code, v in options)
    return b"\x00" + struct.pack("!HHIH", 41, 1232, 0, len(rdata)) + rdata


TLSA_NAME = "_25._tcp.mx.example."
QTLSA = question_of(TLSA_NAME, RRType.TLSA)


# -- 1. the codec --------------------------------------------------------------------------


def test_R6698_7_1_question_types() -> None:
    """TLSA is type 52 (RFC 6698 §7.1), CNAME type 5 (RFC 1035 §3.2.2), class IN."""
    assert encoded(TLSA_NAME) + b"\x00\x34\x00\x01" == QTLSA
    assert question_of("mx.example.", RRType.CNAME) == encoded("mx.example.") + b"\x00\x05\x00\x01"


@pytest.mark.parametrize("dnssec", [True, False])
def test_T1_tlsa_rdata_decoded_with_the_ad_bit(dnssec: bool) -> None:
    """RFC 6698 §2.1: usage, selector, matching type, data; the AD bit covers the answer
    (RFC 4035 §3.2.3) when the caller reads it; duplicates dropped (RFC 2181 §5)."""
    wire = reply(
        QTLSA,
        rr(AT_QNAME, 52, TLSA_311, ttl=3600),
        rr(AT_QNAME, 52, b"\x02\x00\x02" + b"\xee" * 64, ttl=600),
        rr(AT_QNAME, 52, TLSA_311, ttl=3600),
        flags=QR_RD_RA | AD,
    )
    answer = decode(wire, QTLSA, RRType.TLSA, dnssec=dnssec)
    assert answer == Answer.from_tlsa(
        [TLSARecord(3, 1, 1, DIGEST), TLSARecord(2, 0, 2, b"\xee" * 64)],
        ttl=600,
        security=Security.SECURE if dnssec else Security.UNKNOWN,
    )
    assert isinstance(answer, Answer)
    assert all(r.usable for r in answer.tlsa)


def test_T2_tlsa_odd_but_well_formed_records_are_kept_unusable() -> None:
    """Unknown parameters or a digest of the wrong length are RFC 6698 §4.1 "unusable"
    records, not a malformed reply: kept, with ``usable`` False (dnspython refuses such a
    reply; tests/test_wire.py difference (5)). 3 octets: empty data, unusable too."""
    records = [
        b"\x03\x01\x01" + b"\xab" * 31,
        b"\x09\x01\x01" + DIGEST,
        b"\x03\x01\x00",
        b"\x01\x01\x01" + DIGEST,
    ]
    wire = reply(QTLSA, *(rr(AT_QNAME, 52, r) for r in records))
    answer = decode(wire, QTLSA, RRType.TLSA, dnssec=True)
    assert isinstance(answer, Answer)
    assert answer.status is Status.RECORDS
    assert [(r.usage, r.selector, r.mtype, r.data) for r in answer.tlsa] == [
        (r[0], r[1], r[2], r[3:]) for r in records
    ]
    assert not any(r.usable for r in answer.tlsa)
    assert answer.security is Security.INSECURE  # no AD in the reply


@pytest.mark.parametrize("rdata", [b"", b"\x03", b"\x03\x01"])
def test_T8_tlsa_rdata_shorter_than_3_octets_is_malformed(rdata: bytes) -> None:
    """Fewer octets than the three fixed fields: an unreadable reply (WireError; the stub
    ignores it and the lookup ends in a temporary failure), never a crash."""
    with pytest.raises(WireError, match="TLSA record shorter than 3 octets"):
        decode(reply(QTLSA, rr(AT_QNAME, 52, rdata)), QTLSA, RRType.TLSA)


def test_T8_fuzz_tlsa_rdata_lengths_and_bytes() -> None:
    """Seeded fuzz: random TLSA RDATA (0..80 octets) and random RDLENGTHs that disagree with
    the data: decode returns the exact fields or raises WireError, nothing else."""
    rng = random.Random(7672)
    exact = malformed = 0
    for _ in range(3000):
        data = rng.randbytes(rng.randrange(0, 81))
        record = rr(AT_QNAME, 52, data, ttl=rng.randrange(0, 2**32))
        intact = rng.random() < 0.7
        if not intact:  # the RDLENGTH lies: the record runs short, or junk follows it
            cut = rng.randrange(0, len(record) + 1)
            record = record[:cut] + rng.randbytes(rng.randrange(0, 4))
        ad = rng.choice([0, AD])
        wire = reply(QTLSA, record, flags=QR_RD_RA | ad)
        try:
            answer = decode(wire, QTLSA, RRType.TLSA, dnssec=True)
        except WireError:
            assert not intact or len(data) < 3
            malformed += 1
            continue
        assert isinstance(answer, Answer)
        if intact:
            exact += 1
            assert answer.tlsa == (TLSARecord(data[0], data[1], data[2], data[3:]),)
            assert answer.security is (Security.SECURE if ad else Security.INSECURE)
    assert exact > 1500
    assert malformed > 200


def test_A9_tlsa_through_a_cname_chain() -> None:
    """RFC 7672 §2.2.3: ``_25._tcp.mx.example`` CNAME ``_tlsa.provider.example`` TLSA: the
    records at the end of the chain, the chain in canonical_name/aliases, the smallest TTL."""
    target = "_tlsa.provider.example."
    wire = reply(
        QTLSA,
        rr(AT_QNAME, 5, encoded(target), ttl=120),
        rr(encoded(target), 52, TLSA_311, ttl=900),
        flags=QR_RD_RA | AD,
    )
    answer = decode(wire, QTLSA, RRType.TLSA, dnssec=True)
    assert answer == Answer.from_tlsa(
        [(3, 1, 1, DIGEST)],
        ttl=120,
        canonical_name=target,
        aliases=[TLSA_NAME],
        security=Security.SECURE,
    )


@pytest.mark.parametrize(("rcode", "status"), [(0, Status.NODATA), (3, Status.NXDOMAIN)])
def test_T3_T4_tlsa_negative_answers_keep_the_ad_bit(rcode: int, status: Status) -> None:
    """Secure NXDOMAIN (T3) and NODATA (T4) are answers (RFC 7672 §2.1.1), with the SOA's
    negative TTL (RFC 2308 §5) and the AD bit."""
    wire = reply(QTLSA, authority=(soa(encoded("example.")),), flags=QR_RD_RA | AD | rcode)
    answer = decode(wire, QTLSA, RRType.TLSA, dnssec=True)
    assert isinstance(answer, Answer)
    assert (answer.status, answer.ttl, answer.security) == (status, 60, Security.SECURE)


def test_A6_cname_query_is_an_alias_never_followed() -> None:
    """RFC 7672 §2.1.3: the CNAME query tells whether the alias itself is signed: ALIAS with
    its target (not chased, even when the server added the target's records), the AD bit."""
    question = question_of("mx.Example.", RRType.CNAME)
    wire = reply(
        question,
        rr(AT_QNAME, 5, encoded("host.unsigned.example."), ttl=200),
        rr(encoded("host.unsigned.example."), 5, encoded("elsewhere.example."), ttl=50),
        flags=QR_RD_RA | AD,
    )
    answer = decode(wire, question, RRType.CNAME, dnssec=True)
    assert answer == Answer.alias(
        "host.unsigned.example.", ttl=200, aliases=["mx.Example."], security=Security.SECURE
    )


@pytest.mark.parametrize(("rcode", "status"), [(0, Status.NODATA), (3, Status.NXDOMAIN)])
def test_A6_cname_query_for_a_name_that_is_no_alias(rcode: int, status: Status) -> None:
    """No CNAME at the name: NODATA (an A record there is not the answer) or NXDOMAIN."""
    question = question_of("mx.example.", RRType.CNAME)
    records = [rr(AT_QNAME, 1, b"\xc0\x00\x02\x01")] if rcode == 0 else []
    wire = reply(question, *records, authority=(soa(encoded("example.")),), flags=QR_RD_RA | rcode)
    answer = decode(wire, question, RRType.CNAME, dnssec=True)
    assert isinstance(answer, Answer)
    assert (answer.status, answer.ttl, answer.security) == (status, 60, Security.INSECURE)


def test_R5452_9_1_a_reply_for_another_type_is_refused() -> None:
    """Strict matching holds for the new types (RFC 5452 §9.1): the reply must repeat the
    question, QTYPE included -- an A or CNAME reply is no answer to a TLSA query."""
    for other in (RRType.A, RRType.CNAME, RRType.MX):
        wrong = question_of(TLSA_NAME, other)
        with pytest.raises(WireError, match="another question"):
            decode(reply(wrong, rr(AT_QNAME, 52, TLSA_311)), QTLSA, RRType.TLSA)
    with pytest.raises(WireError, match="another question"):
        decode(reply(QTLSA), question_of(TLSA_NAME, RRType.CNAME), RRType.CNAME)


def test_R6698_records_of_the_wrong_owner_or_type_are_not_the_answer() -> None:
    """A TLSA record at another owner, or an A record at the TLSA name: NODATA, not data."""
    wire = reply(
        QTLSA,
        rr(encoded("_25._tcp.other.example."), 52, TLSA_311),
        rr(AT_QNAME, 1, b"\xc0\x00\x02\x01"),
        authority=(soa(encoded("example.")),),
    )
    answer = decode(wire, QTLSA, RRType.TLSA, dnssec=True)
    assert isinstance(answer, Answer)
    assert answer.status is Status.NODATA
    assert not answer.tlsa


def test_R8914_extended_errors_of_a_servfail() -> None:
    """EDE 6 (DNSSEC Bogus) and its EXTRA-TEXT, read from the OPT record of an error reply;
    unreadable or absent options: none."""
    ede = struct.pack("!H", 6) + b"signature crypto failed\x01"
    wire = reply(QTLSA, additional=(opt((10, b"cookie00"), (15, ede)),), flags=QR_RD_RA | 2)
    assert decode(wire, QTLSA, RRType.TLSA) == 2
    assert _wire.extended_errors(wire) == ((6, "signature crypto failed\x01"),)
    assert _wire.describe_ede(6, "signature crypto failed\x01") == (
        'EDE 6: DNSSEC Bogus "signature crypto failed?"'
    )
    assert _wire.describe_ede(99) == "EDE 99: unknown code"
    assert _wire.extended_errors(wire[:-3]) == ()
    assert _wire.extended_errors(reply(QTLSA, flags=QR_RD_RA | 2)) == ()


def test_R8914_stub_rcode_names_the_extended_error() -> None:
    from mxselect.stub import Rcode, classify

    ede = struct.pack("!H", 6) + b"validation failure"
    wire = reply(QTLSA, additional=(opt((15, ede)),), flags=QR_RD_RA | 2)
    result = classify(wire, QTLSA, QTLSA, RRType.TLSA)
    assert result == Rcode(2, ((6, "validation failure"),))
    assert isinstance(result, Rcode)
    assert result.text == 'SERVFAIL (EDE 6: DNSSEC Bogus "validation failure")'


# -- 2. the aiodns adapter -----------------------------------------------------------------


def test_aiodns_tlsa_is_a_temporary_failure_naming_the_limitation() -> None:
    """No TLSA query in aiodns, no AD bit from c-ares: a temporary failure (RFC 7672 §2.1.2:
    a TLSA lookup that cannot be made must not pass as "no records"); nothing is sent."""
    pytest.importorskip("aiodns")
    from mxselect.aiodns import AiodnsResolver

    async def run() -> Answer:
        async with AiodnsResolver(nameservers=["127.0.0.1"], port=9) as resolver:
            return await resolver.aresolve(Query(TLSA_NAME, RRType.TLSA))

    answer = asyncio.run(run())
    assert answer.status is Status.TEMPFAIL
    assert answer.reason == (
        "TLSA queries are not supported by c-ares (aiodns); use the stub or the dnspython"
        " adapter for DANE"
    )


# -- 3. the cache --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """Answers from a dict, counting the queries (sync and async)."""

    def __init__(self, answers: dict[Query, Answer]) -> None:
        self.answers = answers
        self.calls: list[Query] = []

    def resolve(self, query: Query) -> Answer:
        self.calls.append(query)
        return self.answers[query]

    async def aresolve(self, query: Query) -> Answer:
        return self.resolve(query)


TLSA_Q = Query(TLSA_NAME, RRType.TLSA)
CNAME_Q = Query("mx.example.", RRType.CNAME)
MX_Q = Query("example.", RRType.MX)


@pytest.mark.parametrize(
    "answer",
    [
        Answer.from_tlsa([(3, 1, 1, DIGEST)], ttl=3600, security=Security.SECURE),
        Answer.nodata(ttl=3600, security=Security.SECURE),
        Answer.nxdomain(ttl=3600, security=Security.SECURE),
    ],
    ids=["records", "nodata", "nxdomain"],
)
def test_T21_R7671_13_tlsa_answers_are_kept_at_most_100_s(answer: Answer) -> None:
    """RFC 7671 §13 / Postfix TLS_DANE_CACHE_TTL_MAX: a TLSA answer with a TTL of an hour is
    kept 100 s, returned with the remaining (capped) TTL and its security status; then asked
    again. An MX answer of the same TTL keeps its hour."""
    from mxselect.cache import CachingResolver

    clock = Clock()
    mx = Answer.from_mx([(10, "mx.example.")], ttl=3600, security=Security.SECURE)
    upstream = Scripted({TLSA_Q: answer, MX_Q: mx})
    cache = CachingResolver(upstream, clock=clock)
    assert cache.lifetime(answer, RRType.TLSA) == 100
    assert cache.lifetime(answer) == 3600
    first = cache.resolve(TLSA_Q)
    assert first == answer  # the first answer is the resolver's, as it came
    cache.resolve(MX_Q)
    clock.now += 60
    again = cache.resolve(TLSA_Q)
    assert again == Answer(status=answer.status, tlsa=answer.tlsa, ttl=40, security=Security.SECURE)
    clock.now += 40  # 100 s: expired
    cache.resolve(TLSA_Q)
    assert cache.resolve(MX_Q).ttl == 3600 - 100
    assert upstream.calls == [TLSA_Q, MX_Q, TLSA_Q]


def test_T21_tlsa_cap_is_configurable_and_a_short_ttl_stays_short() -> None:
    from mxselect.cache import CachingResolver

    short = Answer.from_tlsa([(3, 1, 1, DIGEST)], ttl=30, security=Security.SECURE)
    assert CachingResolver(Scripted({}), clock=Clock()).lifetime(short, RRType.TLSA) == 30
    never = CachingResolver(Scripted({}), clock=Clock(), max_tlsa_ttl=0)
    assert never.lifetime(short, RRType.TLSA) == 0
    with pytest.raises(ValueError, match="max_tlsa_ttl"):
        CachingResolver(Scripted({}), max_tlsa_ttl=-1)


def test_T21_a_cached_nxdomain_keeps_its_status_but_never_answers_tlsa() -> None:
    """An NXDOMAIN recorded for a name answers its other types with the same DNSSEC status
    (an authenticated denial covers every type) -- but not a TLSA query, which is asked again
    (the TLSA cap, RFC 7671 §13)."""
    from mxselect.cache import CachingResolver

    name = TLSA_NAME
    a_q = Query(name, RRType.A)
    denial = Answer.nxdomain(ttl=3600, security=Security.SECURE)
    upstream = Scripted({a_q: denial, TLSA_Q: denial})
    cache = CachingResolver(upstream, clock=Clock())
    cache.resolve(a_q)
    aaaa = cache.resolve(Query(name, RRType.AAAA))
    assert (aaaa.status, aaaa.security) == (Status.NXDOMAIN, Security.SECURE)
    assert cache.resolve(TLSA_Q).security is Security.SECURE
    assert upstream.calls == [a_q, TLSA_Q]


@pytest.mark.parametrize("api", ["sync", "async"])
def test_A6_cname_answers_are_cached_with_their_status(api: str) -> None:
    """A CNAME query's ALIAS answer is kept for its TTL with its security (RFC 7672 §2.1.3:
    the status is the point of the query)."""
    from mxselect.cache import CachingResolver

    clock = Clock()
    alias = Answer.alias("host.unsigned.example.", ttl=300, security=Security.SECURE)
    upstream = Scripted({CNAME_Q: alias})
    cache = CachingResolver(upstream, clock=clock)

    def ask() -> Answer:
        if api == "sync":
            return cache.resolve(CNAME_Q)
        return asyncio.run(cache.aresolve(CNAME_Q))

    ask()
    clock.now += 100
    assert ask() == Answer.alias("host.unsigned.example.", ttl=200, security=Security.SECURE)
    assert upstream.calls == [CNAME_Q]
