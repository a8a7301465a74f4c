"""TXT in the resolvers (MTA-STS, RFC 8461 §3.1; TLS-RPT, RFC 8460 §3): the stub's codec
(``mxselect._wire``), the stub, the dnspython adapters, the aiodns adapter and the cache.

1. Codec unit tests: QTYPE 16, <character-string>s (RFC 1035 §3.3.14) joined without spaces
   (RFC 8461 §3.1), decoded as Latin-1 (the same in every adapter), duplicates, a CNAME'd
   ``_mta-sts`` (S23), malformed length octets (a seeded fuzz loop) -- a WireError, never a
   crash. (The differential test against dnspython is ``tests/test_wire.py``.)
2. The aiodns adapter's translation of pycares TXT results.
3. ``CachingResolver`` keeps TXT answers for their TTL.
4. End to end through Knot + the validating Unbound (the harness's unsigned ``sts.test``), for
   the stub, the dnspython adapter and aiodns, sync and async.

Only loopback servers started by the tests are asked.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import attrs
import pytest
from harness.askers import asker
from harness.dnsenv import DnsEnv

from mxselect import Answer, Query, RRType, Security, Status, _wire
from mxselect._wire import WireError, decode, question_of

AT_QNAME = b"\xc0\x0c"
QR_RD_RA = 0x8180
AD = 0x0020
STS_NAME = "_mta-sts.example.org."
QTXT = question_of(STS_NAME, RRType.TXT)


def encoded(name: str) -> bytes:
    return _wire.encode_name(name)


def rr(owner: bytes, rtype: int, rdata: bytes, *, ttl: int = 300) -> bytes:
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def txt_rdata(*strings: bytes) -> bytes:
    return b"".join(bytes([len(s)]) + s for s in strings)


def reply(question: bytes, *answers: bytes, flags: int = QR_RD_RA) -> bytes:
    head = struct.pack("!HHHHHH", 0x1234, flags, 1, len(answers), 0, 0)
    return head + question + b"".join(answers)


# -- 1. the codec --------------------------------------------------------------------------


def test_R1035_3_2_2_txt_is_type_16() -> None:
    assert encoded(STS_NAME) + b"\x00\x10\x00\x01" == QTXT
    assert _wire.QTYPE[RRType.TXT] == 16


@pytest.mark.parametrize("dnssec", [True, False])
def test_R8461_3_1_strings_of_a_record_are_joined_without_spaces(dnssec: bool) -> None:
    """RFC 8461 §3.1: "If the resulting TXT record contains multiple strings, then the
    record MUST be treated as if those strings are concatenated without adding spaces." Each
    record stays one entry, in the order received; the smallest TTL; the AD bit when read."""
    wire = reply(
        QTXT,
        rr(AT_QNAME, 16, txt_rdata(b"v=STSv1; ", b"id=2026", b"0101"), ttl=600),
        rr(AT_QNAME, 16, txt_rdata(b"v=spf1 -all"), ttl=300),
        flags=QR_RD_RA | AD,
    )
    answer = decode(wire, QTXT, RRType.TXT, dnssec=dnssec)
    assert answer == Answer.from_txt(
        ["v=STSv1; id=20260101", "v=spf1 -all"],
        ttl=300,
        security=Security.SECURE if dnssec else Security.UNKNOWN,
    )


def test_txt_duplicates_are_dropped_by_their_strings_not_their_text() -> None:
    """As dnspython's RRset: the same strings twice are one record (RFC 2181 §5); one record
    in two strings and one in a single string are two records, though they read the same
    (RFC 8461 §3.1 then counts two and finds no policy)."""
    wire = reply(
        QTXT,
        rr(AT_QNAME, 16, txt_rdata(b"v=STSv1; id=1")),
        rr(AT_QNAME, 16, txt_rdata(b"v=STSv1; ", b"id=1")),
        rr(AT_QNAME, 16, txt_rdata(b"v=STSv1; id=1")),
    )
    answer = decode(wire, QTXT, RRType.TXT)
    assert isinstance(answer, Answer)
    assert answer.txt == ("v=STSv1; id=1", "v=STSv1; id=1")


def test_txt_octets_are_latin_1_and_empty_strings_allowed() -> None:
    """Every octet is one character (Latin-1): nothing replaced, nothing merged; an empty
    <character-string> is well formed (RFC 1035 §3.3.14) and adds nothing."""
    wire = reply(QTXT, rr(AT_QNAME, 16, txt_rdata(b"", b"id=\xff\x00\xc3\xa9", b"")))
    answer = decode(wire, QTXT, RRType.TXT)
    assert isinstance(answer, Answer)
    assert answer.txt == ("id=\xff\x00\xc3\xa9",)
    assert answer.txt[0].encode("latin-1") == b"id=\xff\x00\xc3\xa9"


def test_S23_mta_sts_cname_is_followed() -> None:
    """S23 (RFC 8461 §3.1: "senders MUST follow the CNAME pointers"): the records at the end
    of the chain, the chain in canonical_name/aliases, the smallest TTL."""
    target = "_mta-sts.provider.example."
    wire = reply(
        QTXT,
        rr(AT_QNAME, 5, encoded(target), ttl=120),
        rr(encoded(target), 16, txt_rdata(b"v=STSv1; id=provider"), ttl=900),
    )
    answer = decode(wire, QTXT, RRType.TXT)
    assert answer == Answer.from_txt(
        ["v=STSv1; id=provider"], ttl=120, canonical_name=target, aliases=[STS_NAME]
    )


def test_txt_records_of_another_owner_are_not_the_answer() -> None:
    wire = reply(QTXT, rr(encoded("example.org."), 16, txt_rdata(b"v=STSv1; id=1")))
    answer = decode(wire, QTXT, RRType.TXT)
    assert isinstance(answer, Answer)
    assert (answer.status, answer.txt) == (Status.NODATA, ())


@pytest.mark.parametrize(
    "rdata",
    [b"", b"\x01", b"\x05abc", b"\x02ab\x01", b"\x02ab\x03cd"],
    ids=["no string", "length only", "short", "second length only", "second short"],
)
def test_txt_malformed_length_octet_is_a_malformed_reply(rdata: bytes) -> None:
    """A length octet that runs past RDLENGTH, or no string at all: WireError (the stub
    ignores the datagram and the lookup ends in a temporary failure), never a crash."""
    with pytest.raises(WireError, match="TXT"):
        decode(reply(QTXT, rr(AT_QNAME, 16, rdata)), QTXT, RRType.TXT)


def test_fuzz_txt_rdata() -> None:
    """Seeded fuzz: random TXT RDATA (0..300 octets), with RDLENGTHs that lie now and then:
    decode returns the exact strings joined or raises WireError, nothing else."""
    rng = random.Random(8461)
    exact = malformed = 0
    for _ in range(3000):
        if rng.random() < 0.6:
            strings = [rng.randbytes(rng.randrange(0, 40)) for _ in range(rng.randrange(1, 5))]
            data = txt_rdata(*strings)
        else:
            strings, data = [], rng.randbytes(rng.randrange(0, 300))
        record = rr(AT_QNAME, 16, data)
        if rng.random() < 0.2:
            record = record[: rng.randrange(0, len(record) + 1)] + rng.randbytes(3)
        try:
            answer = decode(reply(QTXT, record), QTXT, RRType.TXT)
        except WireError:
            malformed += 1
            continue
        assert isinstance(answer, Answer)
        if strings and answer.status is Status.RECORDS and record.endswith(data):
            exact += 1
            assert answer.txt == (b"".join(strings).decode("latin-1"),)
    assert exact > 1000
    assert malformed > 300


def test_stub_classify_takes_a_txt_reply() -> None:
    from mxselect.stub import classify

    wire = reply(QTXT, rr(AT_QNAME, 16, txt_rdata(b"v=TLSRPTv1; ", b"rua=mailto:r@example")))
    assert classify(wire, QTXT, QTXT, RRType.TXT) == Answer.from_txt(
        ["v=TLSRPTv1; rua=mailto:r@example"], ttl=300, security=Security.INSECURE
    )


# -- 2. the aiodns adapter -----------------------------------------------------------------


def test_aiodns_txt_result_is_translated_like_the_others() -> None:
    """pycares 5 gives one ``data`` (bytes) per record, its strings already joined; decoded
    as Latin-1; a CNAME in the answer is followed (S23)."""
    pycares = pytest.importorskip("pycares")
    from mxselect.aiodns import answer_from_aiodns

    def record(name: str, rtype: int, data: Any, ttl: int) -> Any:
        return SimpleNamespace(name=name, type=rtype, data=data, ttl=ttl)

    result = SimpleNamespace(
        answer=[
            record(
                "_mta-sts.example.org",
                pycares.QUERY_TYPE_CNAME,
                SimpleNamespace(cname="_mta-sts.provider.example"),
                100,
            ),
            record(
                "_mta-sts.provider.example",
                pycares.QUERY_TYPE_TXT,
                SimpleNamespace(data=b"v=STSv1; id=\xff"),
                300,
            ),
            record(
                "_mta-sts.provider.example",
                pycares.QUERY_TYPE_TXT,
                SimpleNamespace(text="v=spf1 -all"),  # pycares 4
                300,
            ),
        ]
    )
    answer = answer_from_aiodns(Query(STS_NAME, RRType.TXT), result)  # type: ignore[arg-type]
    assert answer == Answer.from_txt(
        ["v=STSv1; id=\xff", "v=spf1 -all"],
        ttl=100,
        canonical_name="_mta-sts.provider.example.",
        aliases=["_mta-sts.example.org."],
    )


# -- 3. the cache --------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["sync", "async"])
def test_txt_answers_are_cached_for_their_ttl(api: str) -> None:
    """A TXT answer (records, with its chain) is kept for its TTL and comes back with the
    remaining TTL; then it is asked again."""
    from mxselect.cache import CachingResolver

    now = [1000.0]
    query = Query(STS_NAME, RRType.TXT)
    answer = Answer.from_txt(
        ["v=STSv1; id=1"], ttl=300, canonical_name="t.example.", aliases=[STS_NAME]
    )
    calls: list[Query] = []

    class Upstream:
        def resolve(self, q: Query) -> Answer:
            calls.append(q)
            return answer

        async def aresolve(self, q: Query) -> Answer:
            return self.resolve(q)

    cache = CachingResolver(Upstream(), clock=lambda: now[0])

    def ask() -> Answer:
        if api == "sync":
            return cache.resolve(query)
        return asyncio.run(cache.aresolve(query))

    assert ask() == answer
    now[0] += 100
    assert ask() == attrs.evolve(answer, ttl=200)
    now[0] += 200
    ask()
    assert calls == [query, query]


# -- 4. end to end: Knot + the validating Unbound --------------------------------------------

BACKENDS = ["stub", "stub-async", "stub-batch", "dnspython", "dnspython-async", "aiodns"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ask(backend: str, dns_env: DnsEnv) -> Callable[[Query], Answer]:
    return asker(backend, dns_env.resolver_port)


def _security(backend: str) -> Security:
    """sts.test is unsigned: INSECURE from a trusted loopback resolver, UNKNOWN from c-ares."""
    return Security.UNKNOWN if backend == "aiodns" else Security.INSECURE


def without_ttl(answer: Answer) -> Answer:
    assert answer.ttl is not None
    assert 0 < answer.ttl <= 300, answer
    return attrs.evolve(answer, ttl=None)


def txt(name: str) -> Query:
    return Query(name, RRType.TXT)


@pytest.mark.e2e
def test_R8461_3_1_one_record(ask: Callable[[Query], Answer], backend: str) -> None:
    answer = ask(txt("_mta-sts.sts.test."))
    assert without_ttl(answer) == Answer.from_txt(
        ["v=STSv1; id=20260101"], security=_security(backend)
    )


@pytest.mark.e2e
def test_R8461_3_1_multi_string_record_joined_without_spaces(
    ask: Callable[[Query], Answer], backend: str
) -> None:
    """``"v=STSv1; " "id=20260102"`` reads ``v=STSv1; id=20260102``."""
    answer = ask(txt("_mta-sts.multi.sts.test."))
    assert without_ttl(answer) == Answer.from_txt(
        ["v=STSv1; id=20260102"], security=_security(backend)
    )


@pytest.mark.e2e
def test_S23_cnamed_mta_sts_is_followed(ask: Callable[[Query], Answer], backend: str) -> None:
    answer = ask(txt("_mta-sts.alias.sts.test."))
    assert without_ttl(answer) == Answer.from_txt(
        ["v=STSv1; id=provider1"],
        canonical_name="_mta-sts.provider.sts.test.",
        aliases=["_mta-sts.alias.sts.test."],
        security=_security(backend),
    )


@pytest.mark.e2e
def test_R8461_3_1_two_records_both_returned(ask: Callable[[Query], Answer]) -> None:
    """The filtering ("records that do not begin with "v=STSv1;" are discarded") is the
    core's: the adapters return every record."""
    answer = ask(txt("_mta-sts.two.sts.test."))
    assert sorted(answer.txt) == ["v=STSv1; id=20260103", "v=spf1 -all"]


@pytest.mark.e2e
def test_non_ascii_octet_is_one_latin_1_character(ask: Callable[[Query], Answer]) -> None:
    answer = ask(txt("_mta-sts.octet.sts.test."))
    assert answer.txt == ("v=STSv1; id=\xff",)


@pytest.mark.e2e
def test_R8460_3_tlsrpt_record(ask: Callable[[Query], Answer]) -> None:
    answer = ask(txt("_smtp._tls.sts.test."))
    assert answer.txt == ("v=TLSRPTv1; rua=mailto:tlsrpt@sts.test",)


@pytest.mark.e2e
def test_no_txt_record_nxdomain_and_nodata(ask: Callable[[Query], Answer]) -> None:
    """No ``_mta-sts`` name: NXDOMAIN; a name without TXT: NODATA (no policy, RFC 8461 §3.1)."""
    assert ask(txt("_mta-sts.nodata.sts.test.")).status is Status.NXDOMAIN
    assert ask(txt("nodata.sts.test.")).status is Status.NODATA
