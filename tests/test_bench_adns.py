"""The GNU adns contestant of the bulk benchmark (``benchmarks/_adns.py``), without adns or
any DNS: its parser fed ``adnshost --asynch`` output captured from a run through the
benchmark's Unbound, its scheduling (batches in dependency order, domains in flight), and the
driver run against a stand-in ``adnshost`` that speaks the same protocol and answers out of
order."""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import pytest

from benchmarks import _adns
from benchmarks._adns import AdnsAnswer, AnswerParser, Feeder, parse_header

#: adnshost 1.6.0 (Debian 12), `adnshost +e -a -f --config 'nameserver 127.53.0.1'`, asked
#: for the MX, A and AAAA of bulk-benchmark names through its Unbound (trimmed).
CAPTURED = b"""\
1 0 permfail 301 nodata d0008.bulk.test $ "No such data"
10 1 ok 0 ok d0001.bulk.test $ "OK"
d0001.bulk.test A 11.9.0.2
7 0 permfail 300 nxdomain d0003.bulk.test $ "No such domain"
0 3 ok 0 ok d0008.bulk.test $ "OK"
d0008.bulk.test MX 10 mx0-d0008.bulk.test
d0008.bulk.test MX 10 mx1-d0008.bulk.test
d0008.bulk.test MX 20 mx2-d0008.bulk.test
2 1 ok 0 ok mx0-d0008.bulk.test $ "OK"
mx0-d0008.bulk.test AAAA 2a00:2::9
21 1 ok 0 ok d0009.bulk.test $ "OK"
d0009.bulk.test MX 0 .
30 0 remotefail 102 timeout mx9-d0009.bulk.test $ "Timed out"
"""

EXPECTED = [
    AdnsAnswer(1, 0, "permfail", "nodata", "d0008.bulk.test"),
    AdnsAnswer(10, 1, "ok", "ok", "d0001.bulk.test"),
    AdnsAnswer(7, 0, "permfail", "nxdomain", "d0003.bulk.test"),
    AdnsAnswer(0, 3, "ok", "ok", "d0008.bulk.test"),
    AdnsAnswer(2, 1, "ok", "ok", "mx0-d0008.bulk.test"),
    AdnsAnswer(21, 1, "ok", "ok", "d0009.bulk.test"),
    AdnsAnswer(30, 0, "remotefail", "timeout", "mx9-d0009.bulk.test"),
]


def test_parser_reads_captured_output() -> None:
    assert AnswerParser().feed(CAPTURED) == EXPECTED


def test_parser_any_chunking() -> None:
    """Answers complete only with their last record line, whatever the read sizes."""
    rng = random.Random(19)
    for _ in range(20):
        parser = AnswerParser()
        got: list[AdnsAnswer] = []
        data = CAPTURED
        while data:
            n = rng.randint(1, 40)
            got += parser.feed(data[:n])
            data = data[n:]
        assert got == EXPECTED
        assert parser.idle


def test_parser_waits_for_the_records() -> None:
    parser = AnswerParser()
    assert parser.feed(b'0 2 ok 0 ok d.test $ "OK"\nd.test MX 10 a.d.test\n') == []
    assert not parser.idle
    assert parser.feed(b"d.test MX 20 b.d.test\n") == [AdnsAnswer(0, 2, "ok", "ok", "d.test")]


def test_kind_as_mxselect_status() -> None:
    assert [a.kind for a in EXPECTED] == [
        "nodata",
        "records",
        "nxdomain",
        "records",
        "records",
        "records",
        "tempfail",
    ]


@pytest.mark.parametrize("line", ["", "; failed permfail 300 nxdomain", "x 0 ok 0 ok d.test $"])
def test_parse_header_rejects(line: str) -> None:
    with pytest.raises(ValueError, match="not an adnshost"):
        parse_header(line)


# -- scheduling ------------------------------------------------------------------------

RECORDED: list[list[list[tuple[str, str]]]] = [
    [[("a.test.", "MX")], [("mx1.a.test.", "A"), ("mx1.a.test.", "AAAA")]],
    [[("b.test.", "MX")], [("b.test.", "A"), ("b.test.", "AAAA")]],
    [[("c.test.", "MX")]],
    [[("d.test.", "MX")], [], [("mx.d.test.", "AAAA")]],
]


def _lines(text: str) -> list[str]:
    return text.splitlines()


def test_feeder_batches_in_order_and_concurrency() -> None:
    feeder = Feeder(RECORDED, concurrency=2)
    assert _lines(feeder.start()) == ["-tmx-", "a.test.", "b.test."]
    assert feeder.in_flight == 2
    q, text = feeder.answered(AdnsAnswer(1, 0, "ok", "ok", "b.test"))
    assert q == ("b.test.", "MX")
    assert _lines(text) == ["-ta", "b.test.", "-taaaa", "b.test."]  # ids 2, 3
    q, text = feeder.answered(AdnsAnswer(3, 0, "permfail", "nodata", "B.TEST."))
    assert (q, text) == (("b.test.", "AAAA"), "")  # id 2 still out: the batch waits
    q, text = feeder.answered(AdnsAnswer(2, 1, "ok", "ok", "b.test"))
    assert _lines(text) == ["-tmx-", "c.test."]  # b done; c (id 4) takes its place
    assert (feeder.domains_done, feeder.in_flight) == (1, 2)
    _, text = feeder.answered(AdnsAnswer(0, 1, "ok", "ok", "a.test"))
    assert _lines(text) == ["-ta", "mx1.a.test.", "-taaaa", "mx1.a.test."]  # ids 5, 6
    _, text = feeder.answered(AdnsAnswer(4, 1, "ok", "ok", "c.test"))
    assert _lines(text) == ["-tmx-", "d.test."]  # id 7
    _, text = feeder.answered(AdnsAnswer(7, 1, "ok", "ok", "d.test"))
    assert _lines(text) == ["-taaaa", "mx.d.test."]  # the empty batch skipped; id 8
    for answer_id, name in ((5, "mx1.a.test"), (6, "mx1.a.test"), (8, "mx.d.test")):
        assert not feeder.done
        feeder.answered(AdnsAnswer(answer_id, 1, "ok", "ok", name))
    assert feeder.done
    assert (feeder.domains_done, feeder.in_flight, feeder.most_in_flight) == (4, 0, 2)


def test_feeder_max_queries_holds_the_rest_in_order() -> None:
    feeder = Feeder(RECORDED, concurrency=4, max_queries=2)
    assert _lines(feeder.start()) == ["-tmx-", "a.test.", "b.test."]  # c, d wait
    _, text = feeder.answered(AdnsAnswer(0, 1, "ok", "ok", "a.test"))
    assert _lines(text) == ["c.test."]  # id 2: the oldest waiting, not a's next batch
    _, text = feeder.answered(AdnsAnswer(2, 1, "ok", "ok", "c.test"))
    assert _lines(text) == ["d.test."]  # id 3; c is done
    _, text = feeder.answered(AdnsAnswer(1, 1, "ok", "ok", "b.test"))
    assert _lines(text) == ["-ta", "mx1.a.test."]  # id 4; mx1.a.test AAAA, b's batch wait
    assert (feeder.most_outstanding, feeder.most_in_flight) == (2, 4)


def test_feeder_checks_ids_and_owners() -> None:
    feeder = Feeder(RECORDED, concurrency=1)
    feeder.start()
    with pytest.raises(RuntimeError, match="never sent"):
        feeder.answered(AdnsAnswer(5, 0, "ok", "ok", "a.test"))
    with pytest.raises(RuntimeError, match=re.escape("for b.test, sent a.test.")):
        feeder.answered(AdnsAnswer(0, 0, "ok", "ok", "b.test"))


def test_feeder_escapes_a_leading_hyphen() -> None:
    assert _lines(Feeder([[[("-x.test.", "A")]]], 1).start()) == ["-ta", "- -x.test."]


def test_port53_address_none_when_port_53_is_not_free(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_adns, "_free_for_both", lambda address, port: False)
    assert _adns.port53_address() is None
    tried: list[tuple[str, int]] = []

    def free_third(address: str, port: int) -> bool:
        tried.append((address, port))
        return len(tried) == 3

    monkeypatch.setattr(_adns, "_free_for_both", free_third)
    address = _adns.port53_address()
    assert address == tried[2][0]
    assert address.startswith("127.53.")
    assert {port for _, port in tried} == {53}
    assert len(set(tried)) == 3


# -- the driver, against a stand-in adnshost ----------------------------------------------

#: Speaks `adnshost --asynch --pipe`: reads what is there (at most BURST queries), answers it
#: in reverse order (an A/AAAA/MX record per query, none for names starting with "nx"), logs
#: every event.
FAKE = """\
import json, os, select, sys
args = sys.argv[1:]
assert args[:3] == ["+e", "--asynch", "--pipe"] and args[3] == "--config", args
log = open(os.environ["FAKE_ADNS_LOG"], "w")
log.write(json.dumps(["config", args[4]]) + "\\n")
burst = int(os.environ.get("FAKE_ADNS_BURST", "1000000"))
qtype, next_id, buf, held, eof = None, 0, b"", [], False
while not eof or held:
    if not eof and len(held) < burst and (not held or select.select([0], [], [], 0)[0]):
        data = os.read(0, 4096)
        eof = not data
        buf += data
        *lines, buf = buf.split(b"\\n")
        for line in lines:
            line = line.decode()
            if line.startswith("-t"):
                qtype = line[2:]
            else:
                name = line[2:] if line.startswith("- ") else line
                held.append((next_id, name, qtype))
                log.write(json.dumps(["Q", next_id, name, qtype]) + "\\n")
                next_id += 1
        continue
    out = []
    for qid, name, held_type in reversed(held):
        log.write(json.dumps(["A", qid]) + "\\n")
        owner = name.rstrip(".")
        if owner.startswith("nx"):
            out.append(f'{qid} 0 permfail 300 nxdomain {owner} $ "No such domain"\\n')
        else:
            rr = {"a": "A 192.0.2.1", "aaaa": "AAAA 2001:db8::1", "mx-": "MX 10 mx.test"}
            out.append(f'{qid} 1 ok 0 ok {owner} $ "OK"\\n{owner} {rr[held_type]}\\n')
    held = []
    os.write(1, "".join(out).encode())
log.close()
"""


def _recorded(count: int, rng: random.Random) -> list[list[list[tuple[str, str]]]]:
    out = []
    for i in range(count):
        domain = f"{'nx' if rng.random() < 0.2 else ''}d{i}.test."
        batches = [[(domain, "MX")]]
        for _ in range(rng.randint(0, 2)):
            hosts = [f"mx{h}.d{i}-{len(batches)}.test." for h in range(rng.randint(1, 3))]
            batches.append([(h, t) for h in hosts for t in ("A", "AAAA")])
        out.append(batches)
    return out


def _stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    program = tmp_path / "adnshost"
    program.write_text(f"#!{sys.executable}\n{FAKE}")
    program.chmod(0o755)
    log = tmp_path / "log"
    monkeypatch.setenv("FAKE_ADNS_LOG", str(log))
    return str(program), log


def test_run_against_a_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program, log = _stand_in(tmp_path, monkeypatch)
    recorded = _recorded(60, random.Random(5))
    result = _adns.run(
        recorded, "127.53.0.9", concurrency=7, max_queries=9, program=program, stall=10
    )

    questions = [q for batches in recorded for batch in batches for q in batch]
    assert result.domains == 60
    assert result.queries == len(questions)
    assert set(result.kinds) == set(questions)
    for question, kind in result.kinds.items():
        want = ("nxdomain", 0) if question[0].startswith("nx") else ("records", 1)
        assert (kind, result.counts[question]) == want
    assert 1 < result.most_in_flight <= 7
    assert result.most_outstanding == 9
    assert result.cpu > 0  # the stand-in's own CPU (wait4), a Python process

    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert events[0] == ["config", "nameserver 127.53.0.9"]
    # Every question was asked once, with its query type, under the id the driver expected.
    asked = {e[1]: (e[2], e[3]) for e in events if e[0] == "Q"}
    types = {v: k for k, v in _adns.ADNS_TYPES.items()}
    assert sorted((n, types[t]) for n, t in asked.values()) == sorted(questions)
    # Dependency order: a batch is asked only once every answer of the batch before it was
    # written; never more than 7 domains nor 9 queries out.
    where: dict[tuple[str, str], tuple[int, int]] = {}
    for d, batches in enumerate(recorded):
        for b, batch in enumerate(batches):
            for q in batch:
                where[q] = (d, b)
    answered: set[int] = set()
    out: dict[int, set[int]] = {}
    ids = {qid: where[(name, types[t])] for qid, (name, t) in asked.items()}
    for event in events[1:]:
        d, b = ids[event[1]]
        if event[0] == "Q":
            if b:
                prior = {qid for qid, (dd, bb) in ids.items() if (dd, bb) == (d, b - 1)}
                assert prior, (d, b)
                assert prior <= answered, (d, b)
            out.setdefault(d, set()).add(event[1])
            assert len([k for k, v in out.items() if v]) <= 7
            assert sum(len(v) for v in out.values()) <= 9
        else:
            answered.add(event[1])
            out[d].discard(event[1])


def test_run_a_batch_larger_than_a_pipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """4,000 queries in one batch (~100 KB of input) to a stand-in answering every 50 as it
    reads: answers fill the pipe back while the batch is still being written. Blocking writes
    dead-locked here (each side waiting for the other to read)."""
    program, _ = _stand_in(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_ADNS_BURST", "50")
    hosts = [f"mx{i}.big-domain-with-many-exchanges.test." for i in range(2000)]
    recorded = [
        [
            [("big-domain-with-many-exchanges.test.", "MX")],
            [(h, t) for h in hosts for t in ("A", "AAAA")],
            [("after.test.", "A")],
        ]
    ]
    result = _adns.run(recorded, "127.53.0.9", concurrency=1, program=program, stall=10)
    assert result.queries == 4002
    assert result.counts[("after.test.", "A")] == 1
