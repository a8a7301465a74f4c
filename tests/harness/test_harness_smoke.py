"""Smoke tests of the DNS test harness itself, with plain dnspython (no mxselect).

The first half checks what dnspython sees through the harness's Unbound (the table
"What dnspython sees" in /work/shared/dns-test-harness.md, plus the extra names in
zones/example.test.zone and dualnull.test); the second half checks FaultServer.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import dns.asyncresolver
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

from harness.dnsenv import BIGMX_COUNT, DnsEnv, free_port
from harness.faultserver import FaultServer, FaultServerFactory
from harness.resolvers import make_dnspython_resolver

pytestmark = pytest.mark.e2e


def mx_set(answer: dns.resolver.Answer) -> set[tuple[int, str]]:
    return {(rr.preference, rr.exchange.to_text()) for rr in answer}


def addresses(answer: dns.resolver.Answer) -> set[str]:
    return {rr.to_text() for rr in answer}


def failure_rcodes(exc: dns.resolver.NoNameservers) -> set[dns.rcode.Rcode]:
    """The rcodes of the responses behind a NoNameservers (SERVFAIL, REFUSED...)."""
    return {
        response.rcode()
        for (_server, _tcp, _port, _error, response) in exc.kwargs["errors"]
        if response is not None
    }


def assert_servfail(resolver: dns.resolver.Resolver, name: str, rdtype: str) -> None:
    with pytest.raises(dns.resolver.NoNameservers) as info:
        resolver.resolve(name, rdtype)
    assert failure_rcodes(info.value) == {dns.rcode.SERVFAIL}


# --- Knot + Unbound: the doc's table ----------------------------------------------------


def test_env_ports_and_control(dns_env: DnsEnv) -> None:
    assert len({dns_env.auth_port, dns_env.resolver_port, dns_env.dead_port}) == 3
    assert dns_env.start_seconds is not None
    assert dns_env.start_seconds < 5
    assert dns_env.unbound_control("flush_infra", "all").strip() == "ok"


def test_example_mx_and_addresses(unbound_resolver: dns.resolver.Resolver) -> None:
    assert mx_set(unbound_resolver.resolve("example.test", "MX")) == {
        (10, "mx1.example.test."),
        (10, "mx2.example.test."),
        (20, "backup.example.test."),
    }
    assert addresses(unbound_resolver.resolve("mx1.example.test", "A")) == {"192.0.2.11"}
    assert addresses(unbound_resolver.resolve("mx1.example.test", "AAAA")) == {"2001:db8::11"}


def test_null_mx(unbound_resolver: dns.resolver.Resolver) -> None:
    assert mx_set(unbound_resolver.resolve("nullmx.test", "MX")) == {(0, ".")}


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("nomx.test", "MX"),
        ("v4only.example.test", "AAAA"),
        ("v6only.example.test", "A"),
        ("nodata-host.example.test", "A"),
        ("nodata-host.example.test", "AAAA"),
    ],
)
def test_nodata(unbound_resolver: dns.resolver.Resolver, name: str, rdtype: str) -> None:
    with pytest.raises(dns.resolver.NoAnswer):
        unbound_resolver.resolve(name, rdtype)


@pytest.mark.parametrize("name", ["nx.example.test", "nope.test", "nonexistent-host.example.test"])
def test_nxdomain(unbound_resolver: dns.resolver.Resolver, name: str) -> None:
    with pytest.raises(dns.resolver.NXDOMAIN):
        unbound_resolver.resolve(name, "A")


def test_nomx_has_addresses(unbound_resolver: dns.resolver.Resolver) -> None:
    assert addresses(unbound_resolver.resolve("nomx.test", "A")) == {"192.0.2.40"}
    assert addresses(unbound_resolver.resolve("v6only.example.test", "AAAA")) == {"2001:db8::31"}


def test_cname_exchanges(unbound_resolver: dns.resolver.Resolver) -> None:
    answer = unbound_resolver.resolve("mail.cname.test", "A")
    assert answer.canonical_name.to_text() == "real.cname.test."
    assert addresses(answer) == {"192.0.2.50"}
    answer = unbound_resolver.resolve("ext.cname.test", "AAAA")
    assert answer.canonical_name.to_text() == "mx1.example.test."
    assert addresses(answer) == {"2001:db8::11"}


def test_bigmx_truncated_over_udp(dns_env: DnsEnv) -> None:
    # Unbound, no EDNS: TC=1 and an empty answer.
    query = dns.message.make_query("bigmx.test", "MX")
    response = dns.query.udp(query, "127.0.0.1", port=dns_env.resolver_port, timeout=2)
    assert response.flags & dns.flags.TC
    assert response.answer == []
    # Knot sets TC itself at an EDNS buffer size of 1232.
    query = dns.message.make_query("bigmx.test", "MX", use_edns=0, payload=1232)
    query.flags &= ~dns.flags.RD
    response = dns.query.udp(query, "127.0.0.1", port=dns_env.auth_port, timeout=2)
    assert response.flags & dns.flags.TC
    # udp_with_fallback retries over TCP.
    query = dns.message.make_query("bigmx.test", "MX")
    response, used_tcp = dns.query.udp_with_fallback(
        query, "127.0.0.1", port=dns_env.resolver_port, timeout=2
    )
    assert used_tcp
    assert len(response.answer[0]) == BIGMX_COUNT


def test_bigmx_resolve_retries_over_tcp(unbound_resolver: dns.resolver.Resolver) -> None:
    answer = unbound_resolver.resolve("bigmx.test", "MX")
    assert len(answer) == BIGMX_COUNT
    assert (1, "mail-exchanger-01.bigmx.test.") in mx_set(answer)


def test_dead_stub_servfail(unbound_resolver: dns.resolver.Resolver) -> None:
    started = time.monotonic()
    assert_servfail(unbound_resolver, "host.dead.test", "A")
    assert time.monotonic() - started < 2  # ~200 ms, then ~1 ms while marked down
    assert_servfail(unbound_resolver, "x.dead.test", "A")


@pytest.mark.parametrize(("name", "rdtype"), [("bogus.test", "MX"), ("mx1.bogus.test", "A")])
def test_bogus_servfail(unbound_resolver: dns.resolver.Resolver, name: str, rdtype: str) -> None:
    assert_servfail(unbound_resolver, name, rdtype)


def test_bogus_ede_and_per_rrset_validation(dns_env: DnsEnv) -> None:
    query = dns.message.make_query("bogus.test", "MX", use_edns=0, payload=1232)
    response = dns.query.udp(query, "127.0.0.1", port=dns_env.resolver_port, timeout=2)
    assert response.rcode() == dns.rcode.SERVFAIL
    assert dns.edns.EDECode.DNSSEC_BOGUS in [e.code for e in response.extended_errors()]
    # mx1 AAAA was not tampered with: it still validates.
    query = dns.message.make_query("mx1.bogus.test", "AAAA", want_dnssec=True)
    response = dns.query.udp(query, "127.0.0.1", port=dns_env.resolver_port, timeout=2)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AD


def test_bogus_with_cd_returns_tampered_data(unbound_resolver: dns.resolver.Resolver) -> None:
    unbound_resolver.use_edns(0, dns.flags.DO, 1232)
    unbound_resolver.flags = dns.flags.RD | dns.flags.CD
    answer = unbound_resolver.resolve("bogus.test", "MX")
    assert mx_set(answer) == {(20, "mx1.bogus.test.")}
    assert not answer.response.flags & dns.flags.AD


def test_ad_bit(unbound_resolver: dns.resolver.Resolver) -> None:
    # no DO, no AD in the query: no AD in the answer
    assert not unbound_resolver.resolve("dnssec.test", "MX").response.flags & dns.flags.AD
    unbound_resolver.use_edns(0, dns.flags.DO, 1232)
    answer = unbound_resolver.resolve("dnssec.test", "MX")
    assert mx_set(answer) == {(10, "mx1.dnssec.test.")}
    assert answer.response.flags & dns.flags.AD
    # never for an unsigned zone
    assert not unbound_resolver.resolve("example.test", "MX").response.flags & dns.flags.AD
    unbound_resolver.use_edns(-1)
    unbound_resolver.flags = dns.flags.RD | dns.flags.AD
    assert unbound_resolver.resolve("dnssec.test", "MX").response.flags & dns.flags.AD


# --- Knot + Unbound: the extra names ------------------------------------------------------


def test_alias_domain(unbound_resolver: dns.resolver.Resolver) -> None:
    answer = unbound_resolver.resolve("alias.example.test", "MX")
    assert answer.canonical_name.to_text() == "example.test."
    assert len(answer) == 3


def test_alias_to_name_without_mx(unbound_resolver: dns.resolver.Resolver) -> None:
    with pytest.raises(dns.resolver.NoAnswer):
        unbound_resolver.resolve("alias-nomx.example.test", "MX")
    answer = unbound_resolver.resolve("alias-nomx.example.test", "A")
    assert answer.canonical_name.to_text() == "v4only.example.test."
    assert addresses(answer) == {"192.0.2.30"}


def test_alias_to_nonexistent_name(unbound_resolver: dns.resolver.Resolver) -> None:
    with pytest.raises(dns.resolver.NXDOMAIN) as info:
        unbound_resolver.resolve("alias-nx.example.test", "MX")
    assert info.value.canonical_name.to_text() == "nx-target.example.test."


@pytest.mark.parametrize("rdtype", ["MX", "A"])
def test_cname_loop(unbound_resolver: dns.resolver.Resolver, rdtype: str) -> None:
    # Unbound follows loop1 -> loop2 -> loop1 ... and gives up with SERVFAIL
    # ("request has exceeded the maximum number restarts (eg. indirections)"),
    # which dnspython raises as NoNameservers.
    assert_servfail(unbound_resolver, "loop1.example.test", rdtype)


def test_exchange_shapes(unbound_resolver: dns.resolver.Resolver) -> None:
    assert mx_set(unbound_resolver.resolve("partial.example.test", "MX")) == {
        (10, "mx1.example.test."),
        (20, "nonexistent-host.example.test."),
    }
    assert mx_set(unbound_resolver.resolve("noaddr.example.test", "MX")) == {
        (10, "nodata-host.example.test."),
    }
    assert mx_set(unbound_resolver.resolve("deadmx.example.test", "MX")) == {
        (10, "mx1.example.test."),
        (20, "host.dead.test."),
    }
    assert mx_set(unbound_resolver.resolve("onlydead.example.test", "MX")) == {
        (10, "host.dead.test."),
    }


def test_null_mx_mixed_with_real_mx(unbound_resolver: dns.resolver.Resolver) -> None:
    answer = unbound_resolver.resolve("dualnull.test", "MX")
    assert len(answer) == 2
    assert mx_set(answer) == {(0, "."), (10, "mx.dualnull.test.")}
    assert addresses(unbound_resolver.resolve("mx.dualnull.test", "A")) == {"192.0.2.80"}


def test_async_unbound_resolver(async_unbound_resolver: dns.asyncresolver.Resolver) -> None:
    async def both() -> tuple[dns.resolver.Answer, dns.resolver.Answer]:
        return await asyncio.gather(
            async_unbound_resolver.resolve("backup.example.test", "A"),
            async_unbound_resolver.resolve("backup.example.test", "AAAA"),
        )

    a, aaaa = asyncio.run(both())
    assert addresses(a) == {"192.0.2.20"}
    assert addresses(aaaa) == {"2001:db8::20"}


def test_free_port_avoids_a_busy_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        assert free_port(port) != port


# --- FaultServer ---------------------------------------------------------------------------

EXAMPLE_ZONE = """\
$ORIGIN example.
$TTL 300
@           SOA   ns hostmaster 1 3600 900 604800 60
@           MX    10 mx
mx          A     192.0.2.1
mx          AAAA  2001:db8::1
www         CNAME mx
a.b.c       A     192.0.2.2
delay-50    A     192.0.2.3
delay-1000  A     192.0.2.3
tc          A     192.0.2.4
tc-notcp    A     192.0.2.4
wrongid     A     192.0.2.5
nxdomain    A     192.0.2.6
loop1       CNAME loop2
loop2       CNAME loop1
"""
EXAMPLE_ZONE += "".join(f"delay-100.h{i} A 192.0.2.{10 + i}\n" for i in range(5))
EXAMPLE_ZONE += "".join(f"big MX {i} exchange-with-a-long-name-{i:02d}\n" for i in range(40))
OTHER_ZONE = """\
$ORIGIN other.
@           SOA   ns.example. hostmaster.example. 1 3600 900 604800 60
@           MX    0 .
alias       CNAME mx.example.
"""
ZONE = EXAMPLE_ZONE + OTHER_ZONE


@pytest.fixture
def server(fault_server: FaultServerFactory) -> FaultServer:
    return fault_server(ZONE)


def resolver_for(server: FaultServer, lifetime: float = 2.0) -> dns.resolver.Resolver:
    return make_dnspython_resolver(server.port, server.host, lifetime=lifetime)


def test_fault_server_answers_from_zone(server: FaultServer) -> None:
    resolver = resolver_for(server)
    answer = resolver.resolve("example.", "MX")
    assert mx_set(answer) == {(10, "mx.example.")}
    assert answer.response.flags & dns.flags.AA
    assert answer.response.flags & dns.flags.RA
    assert addresses(resolver.resolve("mx.example.", "AAAA")) == {"2001:db8::1"}
    answer = resolver.resolve("alias.other.", "A")  # CNAME into another domain
    assert answer.canonical_name.to_text() == "mx.example."
    assert addresses(answer) == {"192.0.2.1"}
    assert [rrset.rdtype for rrset in answer.response.answer] == [
        dns.rdatatype.CNAME,
        dns.rdatatype.A,
    ]
    assert mx_set(resolver.resolve("other.", "MX")) == {(0, ".")}


def test_fault_server_negative_answers(server: FaultServer) -> None:
    resolver = resolver_for(server)
    with pytest.raises(dns.resolver.NoAnswer) as nodata:
        resolver.resolve("mx.example.", "MX")
    authority = nodata.value.kwargs["response"].authority
    assert [(r.name.to_text(), r.rdtype) for r in authority] == [("example.", dns.rdatatype.SOA)]
    with pytest.raises(dns.resolver.NoAnswer):  # empty non-terminal
        resolver.resolve("b.c.example.", "A")
    with pytest.raises(dns.resolver.NXDOMAIN) as nxdomain:
        resolver.resolve("nx.other.", "A")
    (response,) = nxdomain.value.kwargs["responses"].values()
    authority = response.authority
    assert [(r.name.to_text(), r.rdtype) for r in authority] == [("other.", dns.rdatatype.SOA)]
    with pytest.raises(dns.resolver.NXDOMAIN):  # outside every domain of the text
        resolver.resolve("elsewhere.", "A")
    assert_servfail(resolver, "loop1.example.", "A")  # CNAME loop, like Unbound


def test_fault_server_records_queries(server: FaultServer) -> None:
    resolver = resolver_for(server)
    resolver.resolve("MX.Example.", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("www.example.", "TXT")
    assert server.queries == [("mx.example.", "A", "udp"), ("www.example.", "TXT", "udp")]
    server.clear()
    assert server.queries == []


def test_fault_server_delay(server: FaultServer) -> None:
    resolver = resolver_for(server)
    started = time.monotonic()
    resolver.resolve("delay-50.example.", "A")
    elapsed = time.monotonic() - started
    assert 0.050 <= elapsed < 0.150


def test_fault_server_default_delay(fault_server: FaultServerFactory) -> None:
    # 500 ms, not 40: the undelayed query below must come back in less than the delay, which
    # a loaded machine missed at 40 ms (it took 40 ms with no delay at all)
    server = fault_server(ZONE, default_delay_ms=500)
    resolver = resolver_for(server)
    started = time.monotonic()
    assert_servfail(resolver, "servfail.example.", "A")  # errors are delayed too
    assert time.monotonic() - started >= 0.5
    server.default_delay_ms = 0
    started = time.monotonic()
    resolver.resolve("mx.example.", "A")
    assert time.monotonic() - started < 0.5


def test_fault_server_tc_then_tcp(server: FaultServer) -> None:
    answer = resolver_for(server).resolve("tc.example.", "A")
    assert addresses(answer) == {"192.0.2.4"}
    assert server.queries == [("tc.example.", "A", "udp"), ("tc.example.", "A", "tcp")]


def test_fault_server_truncates_large_udp_answers(server: FaultServer) -> None:
    answer = resolver_for(server).resolve("big.example.", "MX")
    assert len(answer) == 40
    assert [t for (_, _, t) in server.queries] == ["udp", "tcp"]


def test_fault_server_tc_notcp(server: FaultServer) -> None:
    # UDP says TC=1, the TCP connection is closed without an answer: dnspython
    # records an EOFError for the TCP try and raises NoNameservers at once.
    with pytest.raises(dns.resolver.NoNameservers) as info:
        resolver_for(server).resolve("tc-notcp.example.", "A")
    assert any(isinstance(error, EOFError) for (_, _, _, error, _) in info.value.kwargs["errors"])
    assert server.queries == [
        ("tc-notcp.example.", "A", "udp"),
        ("tc-notcp.example.", "A", "tcp"),
    ]


@pytest.mark.parametrize("label", ["drop", "garbage", "short", "wrongid"])
def test_fault_server_no_usable_reply(server: FaultServer, label: str) -> None:
    with pytest.raises(dns.resolver.LifetimeTimeout):
        resolver_for(server, lifetime=0.3).resolve(f"{label}.example.", "A")


@pytest.mark.parametrize(
    ("label", "rcode"),
    [
        ("servfail", dns.rcode.SERVFAIL),
        ("refused", dns.rcode.REFUSED),
        ("formerr", dns.rcode.FORMERR),
    ],
)
def test_fault_server_error_rcodes(server: FaultServer, label: str, rcode: dns.rcode.Rcode) -> None:
    with pytest.raises(dns.resolver.NoNameservers) as info:
        resolver_for(server).resolve(f"{label}.example.", "A")
    assert failure_rcodes(info.value) == {rcode}


def test_fault_server_forced_nxdomain(server: FaultServer) -> None:
    with pytest.raises(dns.resolver.NXDOMAIN):  # although the data has an A record
        resolver_for(server).resolve("nxdomain.example.", "A")


def raw_udp_reply(server: FaultServer, name: str) -> tuple[int, bytes]:
    """Send an A query for ``name``; return (query ID, the raw reply)."""
    query = dns.message.make_query(name, "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(query.to_wire(), (server.host, server.port))
        return query.id, sock.recv(65535)


def test_fault_server_raw_faults(server: FaultServer) -> None:
    query_id, reply = raw_udp_reply(server, "short.example.")
    assert len(reply) == 5
    with pytest.raises(dns.message.ShortHeader):
        dns.message.from_wire(reply)
    query_id, reply = raw_udp_reply(server, "garbage.example.")
    assert len(reply) == 40
    assert reply[:2] != query_id.to_bytes(2, "big")
    query_id, reply = raw_udp_reply(server, "wrongid.example.")
    response = dns.message.from_wire(reply)
    assert response.id != query_id
    assert {rr.to_text() for rrset in response.answer for rr in rrset} == {"192.0.2.5"}


def test_fault_server_rules(server: FaultServer) -> None:
    resolver = resolver_for(server)
    server.set_rule("mx.example.", "A", "servfail")
    assert_servfail(resolver, "mx.example.", "A")
    assert addresses(resolver.resolve("mx.example.", "AAAA")) == {"2001:db8::1"}
    server.set_rule("mx.example", None, "refused")  # any type; the exact type wins
    with pytest.raises(dns.resolver.NoNameservers) as info:
        resolver.resolve("mx.example.", "AAAA")
    assert failure_rcodes(info.value) == {dns.rcode.REFUSED}
    assert_servfail(resolver, "mx.example.", "A")
    server.clear_rules()
    server.set_rule("mx.example.", "A", "nxdomain", times=1)
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("mx.example.", "A")
    assert addresses(resolver.resolve("mx.example.", "A")) == {"192.0.2.1"}
    server.set_rule("delay-1000.example.", "A", "answer")  # overrides the label
    started = time.monotonic()
    resolver.resolve("delay-1000.example.", "A")
    assert time.monotonic() - started < 0.5  # not the label's 1 s (50 ms missed under load)
    server.set_rule("mx.example.", "A", "delay", delay_ms=60)
    started = time.monotonic()
    resolver.resolve("mx.example.", "A")
    assert time.monotonic() - started >= 0.060
    with pytest.raises(ValueError, match="unknown behaviour"):
        server.set_rule("mx.example.", "A", "explode")


def test_fault_server_concurrent_delays(server: FaultServer) -> None:
    resolver = make_dnspython_resolver(server.port, asynchronous=True)

    async def all_five() -> list[dns.resolver.Answer]:
        return await asyncio.gather(
            *(resolver.resolve(f"delay-100.h{i}.example.", "A") for i in range(5))
        )

    started = time.monotonic()
    answers = asyncio.run(all_five())
    elapsed = time.monotonic() - started
    assert [addresses(a) for a in answers] == [{f"192.0.2.{10 + i}"} for i in range(5)]
    assert elapsed >= 0.100
    # the five delays ran side by side: counted, not timed (< 0.25 s failed under load)
    assert server.most_held == 5


def test_fault_server_starts_fast_and_stops_cleanly() -> None:
    server = FaultServer(ZONE)
    started = time.monotonic()
    server.start()
    startup = time.monotonic() - started
    port = server.port
    resolver_for(server).resolve("mx.example.", "A")
    # an open TCP connection and a pending delayed reply must not block stop()
    # (a timeout on the client socket: a server that failed to close it fails the test
    # instead of hanging the run)
    with socket.create_connection((server.host, port), timeout=5) as tcp:
        query = dns.message.make_query("delay-3000.h0.example.", "A").to_wire()
        tcp.sendall(len(query).to_bytes(2, "big") + query)
        time.sleep(0.01)
        stop_started = time.monotonic()
        server.stop()
        stopping = time.monotonic() - stop_started
        try:
            closed = tcp.recv(10)
        except ConnectionResetError:  # closed before it was accepted: reset, no answer either
            closed = b""
        assert closed == b""  # closed by the server, without an answer
    # fast, and without waiting for the reply delayed 3 s, with room for a loaded machine
    assert startup < 2
    assert stopping < 2
    assert not [t for t in threading.enumerate() if t.name.startswith("FaultServer")]
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):  # the port is free again
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((server.host, port))
    server.stop()  # idempotent


def test_fault_server_empty_zone_and_timeout_exception_type() -> None:
    with FaultServer("") as server:
        with pytest.raises(dns.resolver.NXDOMAIN):
            resolver_for(server).resolve("anything.", "A")
        with pytest.raises(dns.exception.Timeout):  # LifetimeTimeout subclasses it
            resolver_for(server, lifetime=0.1).resolve("drop.anything.", "A")


# --- DANE records (dnssec.test., insecure.dnssec.test., dane.bogus.test.) ----------------


def _ad_query(dns_env: DnsEnv, name: str, rdtype: str) -> dns.message.Message:
    """``name``/``rdtype`` through Unbound with RD|AD and EDNS (for EDE)."""
    query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
    query.flags = dns.flags.RD | dns.flags.AD
    return dns.query.udp(query, "127.0.0.1", port=dns_env.resolver_port, timeout=3)


@pytest.mark.parametrize(
    ("name", "rdtype", "rcode", "ad", "last"),
    [
        ("_25._tcp.mx1.dnssec.test", "TLSA", dns.rcode.NXDOMAIN, True, None),
        ("_25._tcp.mx.dane.dnssec.test", "TLSA", dns.rcode.NOERROR, True, "TLSA"),
        ("_25._tcp.mx.notlsa.dnssec.test", "TLSA", dns.rcode.NXDOMAIN, True, None),
        ("_25._tcp.mx.nodata-tlsa.dnssec.test", "TLSA", dns.rcode.NOERROR, True, None),
        ("mx.cname.dnssec.test", "A", dns.rcode.NOERROR, True, "192.0.2.74"),
        ("_25._tcp.real.cname.dnssec.test", "TLSA", dns.rcode.NOERROR, True, "TLSA"),
        ("mx.fallback.dnssec.test", "A", dns.rcode.NOERROR, True, "192.0.2.75"),
        ("_25._tcp.mx.fallback.dnssec.test", "TLSA", dns.rcode.NOERROR, True, "TLSA"),
        ("mx.a6.dnssec.test", "A", dns.rcode.NOERROR, False, "192.0.2.30"),
        ("mx.a6.dnssec.test", "CNAME", dns.rcode.NOERROR, True, "v4only.example.test."),
        ("_25._tcp.mx.a6.dnssec.test", "TLSA", dns.rcode.NOERROR, True, "TLSA"),
        ("_25._tcp.mx.shared.dnssec.test", "TLSA", dns.rcode.NOERROR, True, "TLSA"),
        ("insecure.dnssec.test", "MX", dns.rcode.NOERROR, False, "10 mx.insecure.dnssec.test."),
        ("_25._tcp.mx.insecure.dnssec.test", "TLSA", dns.rcode.NOERROR, False, "TLSA"),
        ("dane.bogus.test", "MX", dns.rcode.NOERROR, True, "10 mx.dane.bogus.test."),
        ("mx.dane.bogus.test", "A", dns.rcode.NOERROR, True, "192.0.2.77"),
        ("_25._tcp.mx.dane.bogus.test", "TLSA", dns.rcode.SERVFAIL, False, None),
    ],
)
def test_dane_records(
    dns_env: DnsEnv, name: str, rdtype: str, rcode: dns.rcode.Rcode, ad: bool, last: str | None
) -> None:
    """The DANE names of the zone files (shared/secure-delivery.md §3.3, §7 P5): rcode, AD,
    and the last record of the answer (a TLSA record: the data of TLSA_DATA at its owner)."""
    from harness.dnsenv import TLSA_DATA

    response = _ad_query(dns_env, name, rdtype)
    assert response.rcode() == rcode
    assert bool(response.flags & dns.flags.AD) is ad
    if last is None:
        assert response.answer == []
        return
    rrset = response.answer[-1]
    if last == "TLSA":
        usage, selector, mtype, data = TLSA_DATA[rrset.name.to_text()]
        assert [(r.usage, r.selector, r.mtype, r.cert.hex()) for r in rrset] == [
            (usage, selector, mtype, data)
        ]
    else:
        assert last in {r.to_text() for r in rrset}


def test_dane_bogus_tlsa_has_ede_6(dns_env: DnsEnv) -> None:
    response = _ad_query(dns_env, "_25._tcp.mx.dane.bogus.test", "TLSA")
    assert [e.code for e in response.extended_errors()] == [6]
