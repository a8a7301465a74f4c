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
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from harness.askers import asker
from harness.dnsenv import DnsEnv

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


# -- 4. end to end: Knot + the validating Unbound --------------------------------------------

BACKENDS = ["stub", "stub-async", "stub-batch", "dnspython", "dnspython-async"]


@pytest.fixture(params=BACKENDS)
def ask(request: pytest.FixtureRequest, dns_env: DnsEnv) -> Callable[[Query], Answer]:
    return asker(request.param, dns_env.resolver_port, edns=True)


def tlsa(owner: str) -> tuple[TLSARecord, ...]:
    """The TLSA record the harness's zone files publish at ``owner``."""
    from harness.dnsenv import TLSA_DATA

    usage, selector, mtype, data = TLSA_DATA[owner]
    return (TLSARecord(usage, selector, mtype, bytes.fromhex(data)),)


def without_ttl(answer: Answer) -> Answer:
    """The answer with its TTL checked (1..300: Unbound counts cached TTLs down) and dropped."""
    assert answer.ttl is not None
    assert 0 < answer.ttl <= 300, answer
    return attrs.evolve(answer, ttl=None)


def q_tlsa(host: str) -> Query:
    return Query(f"_25._tcp.{host}", RRType.TLSA)


@pytest.mark.e2e
def test_T1_secure_tlsa(ask: Callable[[Query], Answer]) -> None:
    """T1: ``_25._tcp.mx.dane.dnssec.test`` TLSA 3 1 1: the record and its data, SECURE."""
    answer = ask(q_tlsa("mx.dane.dnssec.test."))
    expected = tlsa("_25._tcp.mx.dane.dnssec.test.")
    assert without_ttl(answer) == Answer.from_tlsa(expected, security=Security.SECURE)
    assert answer.tlsa[0].usable


@pytest.mark.e2e
@pytest.mark.parametrize("host", ["mx1.dnssec.test.", "mx.notlsa.dnssec.test."])
def test_D1_T3_secure_nxdomain_at_the_tlsa_name(ask: Callable[[Query], Answer], host: str) -> None:
    """D1/T3: no TLSA name at all: a secure NXDOMAIN (an answer, RFC 7672 §2.1.1), with the
    SOA's negative TTL (min(300, 60), RFC 2308 §5)."""
    answer = ask(q_tlsa(host))
    assert (answer.status, answer.security) == (Status.NXDOMAIN, Security.SECURE)
    assert answer.ttl is not None
    assert 0 < answer.ttl <= 60


@pytest.mark.e2e
def test_T4_secure_nodata_at_the_tlsa_name(ask: Callable[[Query], Answer]) -> None:
    """T4: ``_25._tcp.mx.nodata-tlsa.dnssec.test`` exists (TXT) without TLSA: secure NODATA."""
    answer = ask(q_tlsa("mx.nodata-tlsa.dnssec.test."))
    assert (answer.status, answer.security, answer.tlsa) == (Status.NODATA, Security.SECURE, ())


@pytest.mark.e2e
def test_T9_bogus_tlsa_is_a_temporary_failure_naming_dnssec_bogus(
    ask: Callable[[Query], Answer],
) -> None:
    """T9: the TLSA RRset of ``mx.dane.bogus.test`` fails validation: SERVFAIL with EDE 6 ->
    TEMPFAIL whose reason names it (RFC 7672 §2.1.1: bogus = lookup failure) -- while the
    same domain's MX and the host's addresses validate (secure)."""
    answer = ask(q_tlsa("mx.dane.bogus.test."))
    assert answer.status is Status.TEMPFAIL
    # (Unbound's EXTRA-TEXT, "... signature crypto failed ...", only when not from its cache)
    assert "SERVFAIL (EDE 6: DNSSEC Bogus" in answer.reason
    mx = ask(Query("dane.bogus.test.", RRType.MX))
    assert (mx.status, mx.security) == (Status.RECORDS, Security.SECURE)
    for rtype in (RRType.A, RRType.AAAA):
        address = ask(Query("mx.dane.bogus.test.", rtype))
        assert (address.status, address.security) == (Status.RECORDS, Security.SECURE)


@pytest.mark.e2e
def test_D6_bogus_mx_names_dnssec_bogus(ask: Callable[[Query], Answer]) -> None:
    """D6: the tampered MX RRset of ``bogus.test``: TEMPFAIL, EDE 6 in the reason."""
    answer = ask(Query("bogus.test.", RRType.MX))
    assert answer.status is Status.TEMPFAIL
    assert "EDE 6: DNSSEC Bogus" in answer.reason


@pytest.mark.e2e
def test_A9_tlsa_through_a_cname_to_a_shared_name(ask: Callable[[Query], Answer]) -> None:
    """A9: ``_25._tcp.mx.shared.dnssec.test`` CNAME ``_tlsa.provider.dnssec.test`` TLSA: the
    records, the chain (RFC 7672 §2.2.3: the base domain stays mx.shared), SECURE."""
    answer = ask(q_tlsa("mx.shared.dnssec.test."))
    assert without_ttl(answer) == Answer.from_tlsa(
        tlsa("_tlsa.provider.dnssec.test."),
        canonical_name="_tlsa.provider.dnssec.test.",
        aliases=["_25._tcp.mx.shared.dnssec.test."],
        security=Security.SECURE,
    )


@pytest.mark.e2e
def test_A4_secure_cname_then_tlsa_at_the_target(ask: Callable[[Query], Answer]) -> None:
    """A4: ``mx.cname.dnssec.test`` CNAME ``real.cname.dnssec.test`` (both signed): the A
    answer is SECURE with the chain, and the TLSA is at the expanded name."""
    address = ask(Query("mx.cname.dnssec.test.", RRType.A))
    assert without_ttl(address) == Answer.from_addresses(
        ["192.0.2.74"],
        canonical_name="real.cname.dnssec.test.",
        aliases=["mx.cname.dnssec.test."],
        security=Security.SECURE,
    )
    answer = ask(q_tlsa("real.cname.dnssec.test."))
    assert without_ttl(answer) == Answer.from_tlsa(
        tlsa("_25._tcp.real.cname.dnssec.test."), security=Security.SECURE
    )


@pytest.mark.e2e
def test_A6_cname_query_is_secure_while_the_address_is_insecure(
    ask: Callable[[Query], Answer],
) -> None:
    """A6: ``mx.a6.dnssec.test`` CNAME ``v4only.example.test`` (unsigned): the A answer is
    INSECURE (one AD bit for the response, RFC 4035 §3.2.3), the CNAME query says the alias
    itself is SECURE (RFC 7672 §2.1.3), and the TLSA at the original name is SECURE."""
    address = ask(Query("mx.a6.dnssec.test.", RRType.A))
    assert without_ttl(address) == Answer.from_addresses(
        ["192.0.2.30"],
        canonical_name="v4only.example.test.",
        aliases=["mx.a6.dnssec.test."],
        security=Security.INSECURE,
    )
    alias = ask(Query("mx.a6.dnssec.test.", RRType.CNAME))
    assert without_ttl(alias) == Answer.alias(
        "v4only.example.test.", aliases=["mx.a6.dnssec.test."], security=Security.SECURE
    )
    answer = ask(q_tlsa("mx.a6.dnssec.test."))
    assert without_ttl(answer) == Answer.from_tlsa(
        tlsa("_25._tcp.mx.a6.dnssec.test."), security=Security.SECURE
    )


@pytest.mark.e2e
def test_A6_cname_query_for_a_name_without_cname(ask: Callable[[Query], Answer]) -> None:
    """A CNAME query for a host that is no alias: secure NODATA; for a missing one: NXDOMAIN."""
    nodata = ask(Query("mx.dane.dnssec.test.", RRType.CNAME))
    assert (nodata.status, nodata.security) == (Status.NODATA, Security.SECURE)
    missing = ask(Query("nowhere.dnssec.test.", RRType.CNAME))
    assert (missing.status, missing.security) == (Status.NXDOMAIN, Security.SECURE)


@pytest.mark.e2e
def test_T5_insecure_delegation_gives_insecure_tlsa(ask: Callable[[Query], Answer]) -> None:
    """An unsigned child delegated without DS below the signed zone: its TLSA records come
    back INSECURE (RFC 6698 §4.1: unusable for DANE), its MX too."""
    answer = ask(q_tlsa("mx.insecure.dnssec.test."))
    assert without_ttl(answer) == Answer.from_tlsa(
        tlsa("_25._tcp.mx.insecure.dnssec.test."), security=Security.INSECURE
    )
    mx = ask(Query("insecure.dnssec.test.", RRType.MX))
    assert (mx.status, mx.security) == (Status.RECORDS, Security.INSECURE)


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["stub", "dnspython"])
def test_R7672_2_1_1_untrusted_tlsa_is_unknown(backend: str, dns_env: DnsEnv) -> None:
    """The trust rule covers the new types: from a resolver not trusted, the TLSA and CNAME
    answers are UNKNOWN, never SECURE (RFC 4035 §4.9.3 via RFC 7672 §2.1.1)."""
    ask = asker(backend, dns_env.resolver_port, trust=False, edns=True)
    answer = ask(q_tlsa("mx.dane.dnssec.test."))
    assert (answer.tlsa, answer.security) == (
        tlsa("_25._tcp.mx.dane.dnssec.test."),
        Security.UNKNOWN,
    )
    assert ask(Query("mx.a6.dnssec.test.", RRType.CNAME)).security is Security.UNKNOWN


@pytest.mark.e2e
def test_aiodns_cname_query_and_tlsa_refusal(aiodns_factory: Callable[[], Any]) -> None:
    """aiodns: the CNAME query works (status UNKNOWN: no AD from c-ares); TLSA is refused
    with a temporary failure before anything is sent."""

    async def run() -> tuple[Answer, Answer, Answer]:
        async with aiodns_factory() as resolver:
            alias = await resolver.aresolve(Query("mx.a6.dnssec.test.", RRType.CNAME))
            nodata = await resolver.aresolve(Query("mx.dane.dnssec.test.", RRType.CNAME))
            refused = await resolver.aresolve(q_tlsa("mx.dane.dnssec.test."))
            return alias, nodata, refused

    alias, nodata, refused = asyncio.run(run())
    assert without_ttl(alias) == Answer.alias(
        "v4only.example.test.", aliases=["mx.a6.dnssec.test."], security=Security.UNKNOWN
    )
    assert nodata.status is Status.NODATA
    assert refused.status is Status.TEMPFAIL
    assert "not supported by c-ares" in refused.reason


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["stub", "dnspython"])
def test_T21_cached_tlsa_keeps_secure_and_is_capped(backend: str, dns_env: DnsEnv) -> None:
    """Through CachingResolver: a real secure TLSA answer comes back from the cache SECURE,
    its TTL at most the 100 s cap (RFC 7671 §13), the resolver asked once."""
    from mxselect.cache import CachingResolver

    ask = asker(backend, dns_env.resolver_port, edns=True)
    calls: list[Query] = []

    class Counting:
        def resolve(self, query: Query) -> Answer:
            calls.append(query)
            return ask(query)

    cache = CachingResolver(Counting())
    query = q_tlsa("mx.dane.dnssec.test.")
    first = cache.resolve(query)
    second = cache.resolve(query)
    assert second.security is first.security is Security.SECURE
    assert second.tlsa == first.tlsa == tlsa("_25._tcp.mx.dane.dnssec.test.")
    assert second.ttl is not None
    assert second.ttl <= 100
    assert calls == [query]
