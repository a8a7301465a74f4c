"""A fault-injecting DNS server for tests: asyncio + dnspython in a background thread.

It answers from zone text like a recursive resolver that already knows every answer
(AA and RA set, CNAME chains inside the data followed into the answer) and misbehaves
on demand, either because of a rule (``set_rule``) or because of the FIRST LABEL of
the query name:

============  =====================================================================
label         behaviour
============  =====================================================================
``delay-N``   answer after N ms (instead of the default delay)
``drop``      never answer
``tc``        over UDP: TC=1 and an empty answer section; over TCP: the real answer
``tc-notcp``  over UDP: TC=1; over TCP: close the connection without answering
``garbage``   40 random bytes (never starting with the query's ID)
``short``     a 5-byte packet (the query's ID + 3 bytes)
``wrongid``   the correct answer with a wrong message ID
``servfail``  SERVFAIL (``refused``: REFUSED, ``formerr``: FORMERR)
``nxdomain``  NXDOMAIN, whatever the data says
anything      the answer from the zone data
============  =====================================================================

Every reply except ``drop`` is sent after ``default_delay_ms`` (settable at run time)
unless a ``delay-N`` label or a rule's ``delay_ms`` says otherwise. The records
answered for a behaviour name (when it answers properly, e.g. ``tc``) are the zone
data of that exact name, so put them in the zone text.

Answers from the data: records -> NOERROR with the RRset (after the CNAME chain);
existing name, no such type -> NOERROR/NODATA; unknown name (not an empty
non-terminal) -> NXDOMAIN; negative answers carry the SOA of the enclosing zone in
the authority section when the data has one. A CNAME loop or a chain longer than
16 gives SERVFAIL, as Unbound does. UDP answers larger than 512 bytes (or the
query's EDNS size) are truncated (TC=1), so dnspython retries over TCP.

Usage::

    with FaultServer(ZONE, default_delay_ms=20) as srv:
        r = make_dnspython_resolver(srv.port)
        r.resolve("delay-50.example.", "A")
        assert srv.queries == [("delay-50.example.", "A", "udp")]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tokenizer
import dns.zonefile

__all__ = ["BEHAVIORS", "FaultServer", "FaultServerFactory", "QueryRecord", "parse_zone_text"]

#: (query name in lower case with the trailing dot, type as text, "udp" or "tcp")
QueryRecord = tuple[str, str, str]

#: The behaviours ``set_rule`` accepts ("delay-N" too, or "delay" with delay_ms=N).
#: "answer" forces a normal answer (e.g. for a name whose first label is a keyword).
BEHAVIORS = frozenset(
    {
        "answer",
        "delay",
        "drop",
        "tc",
        "tc-notcp",
        "garbage",
        "short",
        "wrongid",
        "servfail",
        "refused",
        "formerr",
        "nxdomain",
    }
)
_LABEL_BEHAVIORS = BEHAVIORS - {"answer", "delay"}
_DELAY_LABEL = re.compile(r"delay-(\d+(?:\.\d+)?)\Z")
_FORCED_RCODES = {
    "servfail": dns.rcode.SERVFAIL,
    "refused": dns.rcode.REFUSED,
    "formerr": dns.rcode.FORMERR,
}
MAX_CNAME_CHAIN = 16
_IN = dns.rdataclass.IN

RRsetKey = tuple[dns.rdatatype.RdataType, dns.rdatatype.RdataType]
ZoneData = dict[dns.name.Name, dict[RRsetKey, dns.rrset.RRset]]


class _CollectingTransaction(dns.zonefile.RRsetsReaderTransaction):
    """Receives the records read by ``dns.zonefile.Reader``.

    ``dns.zone.from_text(..., origin=dns.name.root)`` rejects any SOA that is not
    at the root ("non-origin SOA"), and ``dns.zonefile.read_rrsets`` refuses
    ``$ORIGIN``; collecting the records ourselves allows several domains, each
    with its SOA, in one text."""

    def __init__(self) -> None:
        manager = dns.zonefile.RRSetsReaderManager(dns.name.root, False, _IN)
        super().__init__(manager, True, False)  # type: ignore[no-untyped-call]
        self.data: ZoneData = {}

    def add(self, *args: Any) -> None:
        name, ttl, rdata = args
        assert isinstance(name, dns.name.Name)
        assert isinstance(rdata, dns.rdata.Rdata)
        rrsets = self.data.setdefault(name, {})
        key = (rdata.rdtype, rdata.covers())
        rrset = rrsets.get(key)
        if rrset is None:
            rrset = rrsets[key] = dns.rrset.RRset(name, _IN, *key)
        rrset.add(rdata, ttl)


def parse_zone_text(text: str, default_ttl: int = 300) -> ZoneData:
    """Parse RFC 1035 zone text that may hold several domains ($ORIGIN sections,
    several SOAs, absolute names). Relative names before any $ORIGIN are relative
    to the root. Returns {owner: {(type, covers): RRset}}."""
    txn = _CollectingTransaction()
    reader = dns.zonefile.Reader(
        dns.tokenizer.Tokenizer(text, "<zone_text>"),
        _IN,
        txn,
        allow_directives={"$ORIGIN", "$TTL", "$GENERATE"},
        default_ttl=default_ttl,
    )
    reader.read()
    txn.rollback()
    return txn.data


@dataclass
class _Rule:
    behavior: str
    delay_ms: float | None
    times: int | None  # None: forever


class _Close:
    """Sentinel reply: close the TCP connection without answering."""


_CLOSE = _Close()
_Reply = bytes | _Close | None


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: FaultServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (in 3.11 the selector transport does not subclass DatagramTransport)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        assert self.transport is not None
        self.server._spawn(self.server._serve_udp(data, addr, self.transport))

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP unreachable
        pass


class FaultServer:
    """DNS server on 127.0.0.1 (UDP and TCP, same port) that answers from zone text
    and injects faults. See the module docstring for the behaviours."""

    def __init__(self, zone_text: str, default_delay_ms: float = 0) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        #: delay before every reply (ms) unless a delay-N label or rule overrides it
        self.default_delay_ms = default_delay_ms
        self.data = parse_zone_text(zone_text)
        self._names = self._existing_names(self.data)
        self._lock = threading.Lock()
        self._queries: list[QueryRecord] = []
        self._held = 0  # queries received whose reply is not yet sent
        self._most_held = 0
        self._rules: dict[tuple[dns.name.Name, int | None], _Rule] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    # -- public API -----------------------------------------------------------

    @property
    def queries(self) -> list[QueryRecord]:
        """A snapshot of the queries received so far, in order of arrival."""
        with self._lock:
            return list(self._queries)

    @property
    def most_held(self) -> int:
        """The most queries the server held at once (received, reply not yet sent) since the
        start or ``clear()``: with a delay, how many a client had in flight together --
        concurrency counted, not timed."""
        with self._lock:
            return self._most_held

    def clear(self) -> None:
        """Forget the queries received so far (and ``most_held``)."""
        with self._lock:
            self._queries.clear()
            self._most_held = self._held

    def set_rule(
        self,
        name: str | dns.name.Name,
        rdtype: str | int | None,
        behavior: str,
        *,
        delay_ms: float | None = None,
        times: int | None = None,
    ) -> None:
        """Force ``behavior`` for queries of (``name``, ``rdtype``); ``rdtype`` None
        means any type (a rule for the exact type wins). ``behavior`` is one of
        BEHAVIORS or "delay-N". ``delay_ms`` replaces the delay before the reply
        ("delay" requires it); ``times`` limits the rule to that many queries,
        after which the normal behaviour applies again. A later rule for the same
        (name, rdtype) replaces the earlier one. A rule also applies to queries whose
        CNAME chain (in the zone data) passes through ``name``."""
        behavior = behavior.lower()
        label_delay = _DELAY_LABEL.match(behavior)
        if label_delay:
            behavior, delay_ms = "delay", float(label_delay.group(1))
        if behavior not in BEHAVIORS:
            raise ValueError(f"unknown behaviour {behavior!r}; use one of {BEHAVIORS}")
        if behavior == "delay" and delay_ms is None:
            raise ValueError("behaviour 'delay' needs delay_ms (or use 'delay-N')")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        key = (self._name(name), self._rdtype(rdtype))
        with self._lock:
            self._rules[key] = _Rule(behavior, delay_ms, times)

    def clear_rules(self) -> None:
        """Remove every rule set by set_rule."""
        with self._lock:
            self._rules.clear()

    def start(self) -> FaultServer:
        """Bind a free port (UDP + TCP) and serve from a background thread."""
        if self._thread is not None:
            raise RuntimeError("FaultServer already started")
        udp, tcp = self._bind()
        self.port = udp.getsockname()[1]
        self._started.clear()
        self._start_error = None
        self._thread = threading.Thread(
            target=self._run,
            args=(udp, tcp),
            name=f"FaultServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError("FaultServer failed to start") from self._start_error
        return self

    def stop(self) -> None:
        """Stop serving, close every socket, cancel pending replies, join the thread."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(10)
        if thread.is_alive():
            raise RuntimeError("FaultServer thread did not stop")
        self._thread = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- sockets and the event loop -----------------------------------------------

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        for _ in range(100):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, 0))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, udp.getsockname()[1]))
                tcp.listen(64)
            except OSError:
                udp.close()
                tcp.close()
                continue
            udp.setblocking(False)
            tcp.setblocking(False)
            return udp, tcp
        raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")

    def _run(self, udp: socket.socket, tcp: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(udp, tcp))
        except BaseException as exc:
            if self._started.is_set():
                raise
            self._start_error = exc  # start() raises it
        finally:
            udp.close()  # no-ops when asyncio already closed them
            tcp.close()
            self._started.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    async def _main(self, udp: socket.socket, tcp: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), sock=udp)
        try:
            server = await asyncio.start_server(self._serve_tcp, sock=tcp)
        except BaseException:
            transport.close()
            raise
        self._started.set()
        try:
            await self._stop_event.wait()
        finally:
            server.close()
            transport.close()
            for writer in list(self._writers):
                writer.close()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()
            await asyncio.sleep(0)  # let the transports finish closing

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _serve_udp(
        self,
        data: bytes,
        addr: tuple[str | Any, int],
        transport: asyncio.DatagramTransport,
    ) -> None:
        reply = await self._reply(data, "udp")
        if isinstance(reply, bytes) and not transport.is_closing():
            transport.sendto(reply, addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        current = asyncio.current_task()
        if current is not None:  # cancelled by stop() like the reply tasks
            self._tasks.add(current)
        self._writers.add(writer)
        pending: set[asyncio.Task[None]] = set()
        try:
            while not writer.is_closing():
                try:
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    data = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                task = self._spawn(self._answer_tcp(data, writer))
                pending.add(task)
                task.add_done_callback(pending.discard)
            # the client may half-close after its queries: finish answering them
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            self._writers.discard(writer)
            writer.close()
            if current is not None:
                self._tasks.discard(current)

    async def _answer_tcp(self, data: bytes, writer: asyncio.StreamWriter) -> None:
        reply = await self._reply(data, "tcp")
        if writer.is_closing():
            return
        if isinstance(reply, _Close):
            writer.close()
        elif reply is not None:
            writer.write(struct.pack("!H", len(reply)) + reply)

    # -- behaviour ----------------------------------------------------------------

    async def _reply(self, data: bytes, transport: str) -> _Reply:
        with self._lock:
            self._held += 1
            self._most_held = max(self._most_held, self._held)
        try:
            return await self._reply_to(data, transport)
        finally:
            with self._lock:
                self._held -= 1

    async def _reply_to(self, data: bytes, transport: str) -> _Reply:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return None  # not a DNS message: ignore it
        if not query.question:
            return self._rcode_reply(query, dns.rcode.FORMERR)
        question = query.question[0]
        with self._lock:
            self._queries.append(
                (
                    question.name.to_text().lower(),
                    dns.rdatatype.to_text(question.rdtype),
                    transport,
                )
            )
        behavior, delay_ms = self._behavior(question.name, question.rdtype)
        if behavior == "drop":
            return None
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        if behavior == "garbage":
            garbage = bytearray(os.urandom(40))
            if garbage[:2] == query.id.to_bytes(2, "big"):
                garbage[0] ^= 0xFF
            return bytes(garbage)
        if behavior == "short":
            return query.id.to_bytes(2, "big") + b"\x81\x80\x00"
        if behavior in _FORCED_RCODES:
            return self._rcode_reply(query, _FORCED_RCODES[behavior])
        if behavior in ("tc", "tc-notcp") and transport == "udp":
            response = self._response(query)
            response.flags |= dns.flags.TC
            return response.to_wire()
        if behavior == "tc-notcp":
            return _CLOSE
        if query.opcode() != dns.opcode.QUERY:
            return self._rcode_reply(query, dns.rcode.NOTIMP)
        if behavior == "nxdomain":
            response = self._response(query)
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority = self._soa_authority(question.name)
        else:
            response = self._answer(query, question.name, question.rdtype)
        if behavior == "wrongid":
            response.id = (query.id + 1) % 0x10000
        return self._to_wire(query, response, transport)

    def _behavior(self, qname: dns.name.Name, rdtype: int) -> tuple[str, float]:
        """(behaviour, delay in ms) for a query; the behaviour "delay" is "answer"."""
        delay_ms = self.default_delay_ms
        # A rule on a name further down the CNAME chain applies too, as if a recursive
        # resolver had met the fault while chasing the chain (the first rule on the way wins).
        keys = [(name, t) for name in self._chain_names(qname, rdtype) for t in (rdtype, None)]
        with self._lock:
            for key in keys:
                rule = self._rules.get(key)
                if rule is None:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times == 0:
                        del self._rules[key]
                if rule.delay_ms is not None:
                    delay_ms = rule.delay_ms
                behavior = "answer" if rule.behavior == "delay" else rule.behavior
                return behavior, delay_ms
        label = qname[0].decode("ascii", "replace").lower() if len(qname) > 1 else ""
        label_delay = _DELAY_LABEL.match(label)
        if label_delay:
            return "answer", float(label_delay.group(1))
        if label in _LABEL_BEHAVIORS:
            return label, delay_ms
        return "answer", delay_ms

    def _chain_names(self, qname: dns.name.Name, rdtype: int) -> list[dns.name.Name]:
        """``qname`` and the CNAME targets the data leads to for ``rdtype``, in order."""
        names = [qname]
        while len(names) <= MAX_CNAME_CHAIN:
            rrsets = self.data.get(names[-1], {})
            if any(t == rdtype for t, _ in rrsets):
                break
            cname = rrsets.get((dns.rdatatype.CNAME, dns.rdatatype.NONE))
            if cname is None:
                break
            target: dns.name.Name = next(iter(cname)).target
            if target in names:
                break
            names.append(target)
        return names

    # -- answers from the data ----------------------------------------------------

    @staticmethod
    def _existing_names(data: ZoneData) -> set[dns.name.Name]:
        """Owner names plus empty non-terminals (ancestors of owners below the
        nearest zone apex, or below the root when there is no SOA above)."""
        apexes = {
            name
            for name, rrsets in data.items()
            if (dns.rdatatype.SOA, dns.rdatatype.NONE) in rrsets
        }
        names = set(data)
        for name in data:
            parent = name
            while parent not in apexes and len(parent) > 2:
                parent = parent.parent()
                names.add(parent)
        return names

    def _soa_authority(self, name: dns.name.Name) -> list[dns.rrset.RRset]:
        """The SOA RRset of the zone enclosing ``name``, if the data has one."""
        while True:
            soa = self.data.get(name, {}).get((dns.rdatatype.SOA, dns.rdatatype.NONE))
            if soa is not None:
                return [soa]
            if len(name) <= 1:
                return []
            name = name.parent()

    def _response(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query, recursion_available=True)
        response.flags |= dns.flags.AA
        return response

    def _rcode_reply(self, query: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
        response = self._response(query)
        response.set_rcode(rcode)
        return response.to_wire()

    def _answer(
        self, query: dns.message.Message, qname: dns.name.Name, rdtype: int
    ) -> dns.message.Message:
        """The answer the data gives, following CNAMEs like a recursive resolver."""
        response = self._response(query)
        name, seen = qname, set()
        while True:
            rrsets = self.data.get(name)
            if rrsets is None:
                if name not in self._names:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority = self._soa_authority(name)
                return response
            if rdtype == dns.rdatatype.ANY:
                response.answer.extend(rrsets.values())
                return response
            wanted = [rrset for (t, _), rrset in rrsets.items() if t == rdtype]
            if wanted:
                response.answer.extend(wanted)
                return response
            cname = rrsets.get((dns.rdatatype.CNAME, dns.rdatatype.NONE))
            if cname is None:  # NODATA
                response.authority = self._soa_authority(name)
                return response
            response.answer.append(cname)
            seen.add(name)
            target: dns.name.Name = next(iter(cname)).target
            if target in seen or len(seen) > MAX_CNAME_CHAIN:
                # what Unbound does: "exceeded the maximum number restarts"
                failed = self._response(query)
                failed.set_rcode(dns.rcode.SERVFAIL)
                return failed
            name = target

    def _to_wire(
        self,
        query: dns.message.Message,
        response: dns.message.Message,
        transport: str,
    ) -> bytes:
        if transport == "tcp":
            return response.to_wire(max_size=65535)  # not the query's EDNS size
        limit = max(512, query.payload) if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = self._response(query)
            truncated.set_rcode(response.rcode())
            truncated.flags |= dns.flags.TC
            return truncated.to_wire()

    # -- helpers --------------------------------------------------------------------

    @staticmethod
    def _name(name: str | dns.name.Name) -> dns.name.Name:
        if isinstance(name, dns.name.Name):
            return name if name.is_absolute() else name.concatenate(dns.name.root)
        return dns.name.from_text(name)

    @staticmethod
    def _rdtype(rdtype: str | int | None) -> int | None:
        if rdtype is None:
            return None
        return dns.rdatatype.RdataType.make(rdtype)


class FaultServerFactory(Protocol):
    """The type of the ``fault_server`` fixture: returns a started FaultServer."""

    def __call__(self, zone_text: str, default_delay_ms: float = 0) -> FaultServer: ...
