"""GNU adns (``adnshost``, Debian's ``adns-tools``) as a contestant of the bulk benchmark.

The C anchor of issue 19: exactly the queries a selection sends (recorded per domain, batch
by batch, by ``bulk.record_batches``), resolved by one long-running ``adnshost --asynch
--pipe`` process through the benchmark's Unbound, ``concurrency`` domains in flight, a
domain's next batch sent only once every answer of its previous batch has been read (the
order a selection needs them in). What the transport costs without Python.

adns takes ``nameserver`` addresses without a port: it always asks port 53 (``--config
'nameserver 127.0.0.1:5353'`` is rejected: "invalid nameserver address"). So the benchmark
gives its Unbound a second listening address on port 53, on a loopback address of its own
(:func:`port53_address`: 127.53.x.y, free for UDP and TCP; binding port 53 needs root or
``CAP_NET_BIND_SERVICE``). Nothing leaves the machine: adns is configured with that one
nameserver and no search list (``+e``: no environment variables, ``--config``: not
``/etc/resolv.conf``), and Unbound forwards only to the benchmark's Knot.

The asynch protocol (``adnshost --help``): on stdin, lines holding an option (``-ta``: the
query type, which stays set until changed) or a domain; each domain is a query whose id is
the decimal sequence number of the queries sent so far, starting at 0. On stdout, for every
answer, in the order they arrive::

    <id> <nrrs> <statustype> <statusnum> <statusabbrev> <owner> <cname> "<status string>"

followed by ``<nrrs>`` lines of records. This module is stdlib only (``tests/test_bench_adns.py``
imports it).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

#: A query as ``bulk.record_batches`` records it: (absolute name, RRType value).
Question = tuple[str, str]
#: One domain's queries, batch by batch.
Batches = Sequence[Sequence[Question]]

#: adnshost's query type for each record type mxselect asks: the ``_raw`` versions (``mx-``
#: returns the MX records only; ``mx`` would also look up every exchange's addresses).
ADNS_TYPES = {
    "MX": "mx-",
    "A": "a",
    "AAAA": "aaaa",
    "TXT": "txt",
    "CNAME": "cname",
    "TLSA": "type52",  # RFC 6698 §7.1; adns has no TLSA type of its own (RFC 3597 form)
}

#: adns status types that mean "try again later" (the others are answers or permanent).
TEMPORARY = frozenset({"localfail", "remotefail", "tempfail"})


def adnshost() -> str | None:
    """The path of ``adnshost``, or None when ``adns-tools`` is not installed."""
    return shutil.which("adnshost")


def _free_for_both(address: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


def port53_address(tries: int = 32) -> str | None:
    """A loopback address (127.53.x.y) whose port 53 is free for UDP and TCP, or None.

    None when port 53 cannot be bound at all (not root, no ``CAP_NET_BIND_SERVICE``). The
    first candidate depends on the process id, so that two benchmark runs on one machine
    start from different addresses."""
    pid = os.getpid()
    for i in range(tries):
        n = (pid + i * 257) % (254 * 254)
        address = f"127.53.{1 + n // 254}.{1 + n % 254}"
        if _free_for_both(address, 53):
            return address
    return None


@dataclass(frozen=True)
class AdnsAnswer:
    """One answer of ``adnshost --asynch``: its header line and how many records followed."""

    id: int
    count: int
    statustype: str  # ok, nodata/nxdomain are "permfail", SERVFAIL/timeouts "remotefail"...
    status: str  # the status abbreviation: ok, nodata, nxdomain, timeout, ...
    owner: str

    @property
    def kind(self) -> str:
        """The answer as an ``mxselect.Status`` value: records, nodata, nxdomain or tempfail."""
        if self.statustype in TEMPORARY:
            return "tempfail"
        if self.status in ("nodata", "nxdomain"):
            return self.status
        return "records" if self.status == "ok" else self.status


class AnswerParser:
    """Splits ``adnshost --asynch`` output (fed in chunks of any size) into answers."""

    def __init__(self) -> None:
        self._buffer = b""
        self._records_left = 0
        self._answer: AdnsAnswer | None = None

    def feed(self, data: bytes) -> list[AdnsAnswer]:
        """The answers completed by ``data`` (header and all its records read), in order."""
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        done: list[AdnsAnswer] = []
        for line in lines:
            if self._records_left:
                self._records_left -= 1
            else:
                self._answer = parse_header(line.decode("ascii", "replace"))
                self._records_left = self._answer.count
            if not self._records_left and self._answer is not None:
                done.append(self._answer)
                self._answer = None
        return done

    @property
    def idle(self) -> bool:
        """No partial line nor an answer waiting for its records."""
        return not self._buffer and self._answer is None


def parse_header(line: str) -> AdnsAnswer:
    """One ``--fmt-asynch`` header line: ``id nrrs statustype statusnum abbrev owner ...``."""
    fields = line.split(" ", 6)
    if len(fields) < 6 or not fields[0].isdigit() or not fields[1].isdigit():
        raise ValueError(f"not an adnshost --asynch answer header: {line!r}")
    return AdnsAnswer(
        id=int(fields[0]),
        count=int(fields[1]),
        statustype=fields[2],
        status=fields[4],
        owner=fields[5],
    )


def same_name(a: str, b: str) -> bool:
    """DNS names equal, case and the final dot aside."""
    return a.rstrip(".").lower() == b.rstrip(".").lower()


class Feeder:
    """What to write to ``adnshost`` when: every domain's batches in order, ``concurrency``
    domains in flight, a domain's next batch once all answers of its current one are in, at
    most ``max_queries`` queries outstanding (more wait their turn, in order).

    ``max_queries`` is what ``mxselect.stub.StubResolver(max_in_flight=...)`` does for its
    own queries: adns has no such limit, and a burst beyond what Unbound's socket buffer
    holds is dropped by the kernel and costs adns a 2 s retransmission (seen in
    ``/proc/net/snmp`` RcvbufErrors; warm runs went from ~4,500 to ~245 domains/s).

    Query ids are adnshost's default, the sequence number of the query; :meth:`answered`
    checks each answer's owner against the query sent under its id."""

    def __init__(
        self, recorded: Sequence[Batches], concurrency: int, max_queries: int | None = None
    ) -> None:
        self._recorded = recorded
        self._concurrency = concurrency
        self._max_queries = max_queries if max_queries is not None else sys.maxsize
        self._next_domain = 0
        self._next_id = 0
        self._type: str | None = None  # the query type adnshost has set (it is sticky)
        self._waiting: deque[tuple[int, Question]] = deque()  # due, held by max_queries
        self._pending: dict[int, tuple[int, Question]] = {}  # id -> (domain, question)
        self._batch = [0] * len(recorded)  # per domain: the batch in flight
        self._left = [0] * len(recorded)  # per domain: its answers still to come
        self.domains_done = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.most_outstanding = 0

    @property
    def done(self) -> bool:
        return self.domains_done == len(self._recorded)

    def start(self) -> str:
        """The lines for the first ``concurrency`` domains."""
        out: list[str] = []
        while self.in_flight < self._concurrency and self._next_domain < len(self._recorded):
            self._start_domain()
        self._write(out)
        return "".join(out)

    def answered(self, answer: AdnsAnswer) -> tuple[Question, str]:
        """Take ``answer``; return the question it answers and the lines to send now."""
        try:
            domain, question = self._pending.pop(answer.id)
        except KeyError:
            raise RuntimeError(f"adnshost answered id {answer.id}, never sent") from None
        if not same_name(answer.owner, question[0]):
            raise RuntimeError(
                f"adnshost answered id {answer.id} for {answer.owner}, sent {question[0]}"
            )
        self._left[domain] -= 1
        if not self._left[domain]:
            self._batch[domain] += 1
            if not self._queue_batch(domain):
                self.domains_done += 1
                self.in_flight -= 1
                if self._next_domain < len(self._recorded):
                    self._start_domain()
        out: list[str] = []
        self._write(out)
        return question, "".join(out)

    def _start_domain(self) -> None:
        domain = self._next_domain
        self._next_domain += 1
        if self._queue_batch(domain):
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        else:  # no query at all (not something a selection does)
            self.domains_done += 1

    def _queue_batch(self, domain: int) -> bool:
        """Queue the domain's current batch (empty ones skipped); False when none is left."""
        batches = self._recorded[domain]
        while self._batch[domain] < len(batches) and not batches[self._batch[domain]]:
            self._batch[domain] += 1
        if self._batch[domain] >= len(batches):
            return False
        batch = batches[self._batch[domain]]
        self._waiting.extend((domain, question) for question in batch)
        self._left[domain] = len(batch)
        return True

    def _write(self, out: list[str]) -> None:
        """The lines of the waiting queries that ``max_queries`` lets out now."""
        while self._waiting and len(self._pending) < self._max_queries:
            domain, question = self._waiting.popleft()
            name, rtype = question
            adns_type = ADNS_TYPES[rtype]
            if adns_type != self._type:
                out.append(f"-t{adns_type}\n")
                self._type = adns_type
            out.append(f"- {name}\n" if name.startswith("-") else f"{name}\n")
            self._pending[self._next_id] = (domain, question)
            self._next_id += 1
        self.most_outstanding = max(self.most_outstanding, len(self._pending))


@dataclass
class AdnsRun:
    """What one run of :func:`run` measured."""

    wall: float  #: seconds from the first query written to the last answer read
    cpu: float  #: adnshost's CPU seconds (user + system, from ``wait4``)
    driver_cpu: float  #: this process's CPU seconds (writing queries, reading answers)
    domains: int
    queries: int
    kinds: dict[Question, str] = field(default_factory=dict)  #: the last answer per question
    counts: dict[Question, int] = field(default_factory=dict)
    most_in_flight: int = 0  #: domains
    most_outstanding: int = 0  #: queries


def run(
    recorded: Sequence[Batches],
    address: str,
    concurrency: int,
    max_queries: int | None = None,
    program: str = "adnshost",
    stall: float = 60.0,
) -> AdnsRun:
    """Resolve ``recorded`` (every domain's batches) with one ``adnshost --asynch`` process
    asking the nameserver at ``address`` port 53, ``concurrency`` domains and at most
    ``max_queries`` queries in flight (:class:`Feeder`).

    Raises RuntimeError when adnshost exits early, answers a query never sent, or writes
    nothing for ``stall`` seconds while answers are due (a stuck run fails, it does not hang)."""
    proc = subprocess.Popen(
        [program, "+e", "--asynch", "--pipe", "--config", f"nameserver {address}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    stdin, stdout = proc.stdin.fileno(), proc.stdout.fileno()
    feeder = Feeder(recorded, concurrency, max_queries)
    parser = AnswerParser()
    result = AdnsRun(0.0, 0.0, 0.0, len(recorded), 0)
    try:
        # Writes never block: a batch of many queries must not wait on a full pipe while
        # adnshost waits for us to read its answers.
        os.set_blocking(stdin, False)
        cpu, wall = time.process_time(), time.perf_counter()
        unsent = feeder.start().encode("ascii")
        while not feeder.done:
            readable, writable, _ = select.select([stdout], [stdin] if unsent else [], [], stall)
            if not readable and not writable:
                raise RuntimeError(f"adnshost took nothing and wrote nothing for {stall:g} s")
            if writable:
                with contextlib.suppress(BlockingIOError):
                    unsent = unsent[os.write(stdin, unsent) :]
            if not readable:
                continue
            data = os.read(stdout, 1 << 16)
            if not data:
                raise RuntimeError(f"adnshost exited with {proc.wait()} before the last answer")
            out: list[str] = []
            for answer in parser.feed(data):
                question, text = feeder.answered(answer)
                result.kinds[question] = answer.kind
                result.counts[question] = answer.count
                result.queries += 1
                out.append(text)
            unsent += "".join(out).encode("ascii")
        result.wall = time.perf_counter() - wall
        result.driver_cpu = time.process_time() - cpu
        result.most_in_flight = feeder.most_in_flight
        result.most_outstanding = feeder.most_outstanding
    finally:
        proc.stdin.close()
        if not feeder.done:
            proc.kill()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
    result.cpu = usage.ru_utime + usage.ru_stime
    return result


__all__ = [
    "ADNS_TYPES",
    "AdnsAnswer",
    "AdnsRun",
    "AnswerParser",
    "Feeder",
    "adnshost",
    "parse_header",
    "port53_address",
    "run",
    "same_name",
]
