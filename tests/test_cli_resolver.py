"""The resolver of the `mxselect` command (issue 19, item 2): the stub resolver by default,
built from resolv.conf by `StubResolver.from_system` (dnspython's parser), `--resolver
dnspython` for the adapter, `--resolv-conf FILE`; and the same for `mxselect check`.

Every resolv.conf here is written in `tmp_path`; nothing reads the machine's own (the tests
of the default point `_cli.RESOLV_CONF` at a file of their own). Queries go only to loopback:
the Knot + Unbound harness (`dns_env`), and a fault server on 127.0.0.153 port 53 (skipped
where port 53 cannot be bound), the one place a resolv.conf line, which has no port, can name.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
from harness.faultserver import FaultServer

from mxselect import Query, RRType, Status, _check_cli, _cli
from mxselect.cache import CachingResolver
from mxselect.dnspython import AsyncDnspythonResolver
from mxselect.stub import Server, StubResolver

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.zone"


def write(tmp_path: Path, text: str, name: str = "resolv.conf") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ StubResolver.from_system


def test_from_system_reads_servers_in_order_ipv6_and_timeout(tmp_path: Path) -> None:
    conf = write(
        tmp_path,
        "# a comment\n"
        "; another\n"
        "domain corp.example\n"
        "nameserver 127.0.0.1\n"
        "nameserver ::1\n"
        "nameserver 192.0.2.53\n"
        "nameserver fe80::53%lo\n"
        "search corp.example example.org\n"
        "options timeout:3 attempts:4 rotate ndots:2 edns0\n",
    )
    stub = StubResolver.from_system(conf)
    assert stub.nameservers == (
        Server("127.0.0.1", 53, socket.AF_INET),
        Server("::1", 53, socket.AF_INET6),
        Server("192.0.2.53", 53, socket.AF_INET),
        Server("fe80::53%lo", 53, socket.AF_INET6),
    )
    assert stub.timeout == 3.0  # options timeout:N
    assert stub.lifetime == 5.0  # the constructor's default: resolv.conf has no lifetime
    assert stub.trust_ad is False  # 192.0.2.53 is not on loopback
    # search, domain, ndots, rotate: nothing of them reaches the stub (absolute names only)
    assert not any(hasattr(stub, name) for name in ("search", "domain", "ndots", "rotate"))


def test_from_system_keywords_override_the_file(tmp_path: Path) -> None:
    conf = write(tmp_path, "nameserver 127.0.0.1\nnameserver ::1\noptions timeout:3\n")
    stub = StubResolver.from_system(
        str(conf), port=5353, timeout=0.5, lifetime=9, tcp=True, trust_ad=False
    )
    assert [s.where for s in stub.nameservers] == ["127.0.0.1@5353", "::1@5353"]
    assert (stub.timeout, stub.lifetime, stub.tcp, stub.trust_ad) == (0.5, 9.0, True, False)
    loopback = StubResolver.from_system(conf)
    assert loopback.trust_ad is True  # every server on loopback, as the constructor decides
    assert loopback.timeout == 3.0


@pytest.mark.parametrize(
    ("options", "timeout"),
    [("", 2.0), ("options timeout:0\n", 2.0), ("options timeout:7\n", 7.0)],
)
def test_from_system_timeout_option(tmp_path: Path, options: str, timeout: float) -> None:
    """``timeout:N`` is the wait for one server; below 1 it is no usable wait, and the stub
    keeps its default rather than refusing a system file."""
    conf = write(tmp_path, f"nameserver 127.0.0.1\n{options}")
    assert StubResolver.from_system(conf).timeout == timeout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "names no nameserver"),
        ("search example.org\noptions timeout:1\n", "names no nameserver"),
        ("nameserver\n", "names no nameserver"),  # a line without a value is skipped
        ("nameserver https://dns.example/dns-query\n", "is not a plain DNS server"),
        ("nameserver 127.0.0.1\nnameserver https://dns.example/q\n", "not DNS over HTTPS"),
        ("nameserver dns.example\n", "nameserver dns.example is not"),
    ],
)
def test_from_system_refuses_an_unusable_file(tmp_path: Path, text: str, message: str) -> None:
    conf = write(tmp_path, text)
    with pytest.raises(dns.resolver.NoResolverConfiguration) as caught:
        StubResolver.from_system(conf)
    assert message in str(caught.value)
    assert str(conf) in str(caught.value)  # the message names the file


def test_from_system_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(dns.resolver.NoResolverConfiguration, match="No such file"):
        StubResolver.from_system(tmp_path / "absent.conf")
    with pytest.raises(dns.resolver.NoResolverConfiguration, match="cannot be read"):
        StubResolver.from_system(tmp_path)


def test_from_system_bad_keyword_is_the_constructors_error(tmp_path: Path) -> None:
    conf = write(tmp_path, "nameserver 127.0.0.1\n")
    with pytest.raises(ValueError, match="lifetime must be a positive number"):
        StubResolver.from_system(conf, lifetime=0)
    with pytest.raises(ValueError, match=r"port must be 1\.\.65535"):
        StubResolver.from_system(conf, port=0)


# ------------------------------------------------------------ the command's resolver builder


def build(*argv: str, check: bool = False) -> Any:
    """What `_cli._resolver` builds for these arguments (of `mxselect check` with check)."""
    parser = _check_cli._parser() if check else _cli._parser()
    args = parser.parse_args([*argv, "example.org"])
    return _cli._resolver(args, parser)


def exit_of(*argv: str) -> tuple[int, str]:
    """The exit code and stderr of `mxselect ARGV` in-process (no query is sent: every case
    here ends before the lookups)."""
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8") for _ in range(2))
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = _cli.main(list(argv))
    err.flush()
    buffer = err.buffer
    assert isinstance(buffer, io.BytesIO)
    return code, buffer.getvalue().decode()


@pytest.fixture
def system_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The command's default configuration file, pointed at one written here."""
    conf = write(tmp_path, "nameserver 127.0.0.1\nnameserver ::1\noptions timeout:1\n", "sys")
    monkeypatch.setattr(_cli, "RESOLV_CONF", str(conf))
    return conf


@pytest.mark.parametrize("check", [False, True])
def test_default_is_the_stub_on_the_system_servers(system_conf: Path, check: bool) -> None:
    cached = build(check=check)
    assert isinstance(cached, CachingResolver)
    stub = cached.resolver
    assert isinstance(stub, StubResolver)
    assert stub.nameservers == StubResolver.from_system(system_conf).nameservers
    assert (stub.timeout, stub.lifetime, stub.tcp) == (1.0, 5.0, False)
    assert stub.trust_ad is True


@pytest.mark.parametrize("check", [False, True])
def test_resolver_options_reach_the_stub(tmp_path: Path, check: bool) -> None:
    stub = build("--nameserver", "127.0.0.1:5353", "--nameserver", "[::1]:54", "--tcp",
                 "--timeout", "3", "--no-cache", check=check)  # fmt: skip
    assert isinstance(stub, StubResolver)
    assert [s.where for s in stub.nameservers] == ["127.0.0.1@5353", "::1@54"]
    assert (stub.tcp, stub.lifetime, stub.timeout) == (True, 3.0, 2.0)
    conf = write(tmp_path, "nameserver 192.0.2.1\noptions timeout:4\n")
    other = build("--resolv-conf", str(conf), "--timeout", "0.5", check=check).resolver
    assert isinstance(other, StubResolver)
    assert [s.where for s in other.nameservers] == ["192.0.2.1@53"]
    assert (other.timeout, other.lifetime, other.trust_ad) == (4.0, 0.5, False)


@pytest.mark.parametrize("check", [False, True])
def test_resolver_dnspython_is_the_adapter(system_conf: Path, check: bool) -> None:
    adapter = build("--resolver", "dnspython", check=check).resolver
    assert isinstance(adapter, AsyncDnspythonResolver)
    assert [str(n) for n in adapter.resolver.nameservers] == ["127.0.0.1", "::1"]
    assert adapter.resolver.lifetime == 5.0
    assert (adapter.resolver.edns, adapter.resolver.payload) == (0, 1232)  # as the stub
    assert adapter.trust_ad is True  # the same rule as the stub's: all on loopback
    given = build("--resolver", "dnspython", "--nameserver", "127.0.0.1:5353", "--tcp",
                  "--timeout", "0.5", "--no-cache", check=check)  # fmt: skip
    assert isinstance(given, AsyncDnspythonResolver)
    assert [(n.address, n.port) for n in given.resolver.nameservers] == [("127.0.0.1", 5353)]
    assert (given.resolver.lifetime, given.resolver.timeout) == (0.5, 0.5)
    assert given.tcp is True
    stub = build("--resolver", "stub", "--nameserver", "127.0.0.1", check=check).resolver
    assert isinstance(stub, StubResolver)


@pytest.mark.parametrize("name", ["stub", "dnspython"])
def test_ad_bit_trusted_from_loopback_only_with_either(tmp_path: Path, name: str) -> None:
    """RFC 7672 §2.1.1 (via RFC 4035 §4.9.3): the AD bit counts only from a resolver reached
    safely -- by default, every server on loopback -- whichever resolver sends the queries,
    so --dane decides the same with the stub default as with dnspython."""
    cases = {
        "nameserver 127.0.0.1\nnameserver ::1\n": True,
        "nameserver 127.0.0.1\nnameserver 192.0.2.1\n": False,
        "nameserver 10.0.0.53\n": False,
    }
    for text, trusted in cases.items():
        conf = write(tmp_path, text)
        built = build("--resolver", name, "--resolv-conf", str(conf), "--no-cache")
        assert built.trust_ad is trusted, text
    built = build("--resolver", name, "--nameserver", "192.0.2.1", "--no-cache")
    assert built.trust_ad is False


def test_no_system_configuration_exits_75(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for text in (None, "search example.org\n", "nameserver https://dns.example/q\n"):
        conf = tmp_path / "missing"
        if text is not None:
            conf = write(tmp_path, text, "sys")
        monkeypatch.setattr(_cli, "RESOLV_CONF", str(conf))
        code, err = exit_of("example.org")
        assert code == 75
        assert err.startswith(f"mxselect: no system resolver configuration: {conf}")
        assert len(err.splitlines()) == 1
        assert exit_of("check", "example.org")[0] == 75


def test_resolv_conf_that_cannot_be_used_is_a_usage_error(tmp_path: Path) -> None:
    for argv in (
        ("--resolv-conf", str(tmp_path / "absent")),
        ("--resolv-conf", str(write(tmp_path, "nameserver dns.example\n"))),
        ("--resolver", "dnspython", "--resolv-conf", str(tmp_path / "absent")),
    ):
        code, err = exit_of(*argv, "example.org")
        assert code == 64, argv
        assert err.startswith("mxselect: --resolv-conf: "), err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--zone", str(DEMO), "--resolver", "stub"), "cannot be combined with --resolver"),
        (("--zone", str(DEMO), "--resolv-conf", "x"), "cannot be combined with --resolv-conf"),
        (("--zone", str(DEMO), "--tcp"), "cannot be combined with --tcp"),
        (("--nameserver", "127.0.0.1", "--resolv-conf", "x"), "give one"),
        (("--resolver", "aiodns"), "invalid choice"),
    ],
)
def test_resolver_usage_errors(argv: tuple[str, ...], message: str) -> None:
    for prefix in ((), ("check",)):
        code, err = exit_of(*prefix, *argv, "example.org")
        assert code == 64
        assert message in err


# ------------------------------------------------------------------ end to end, over loopback


def mxselect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mxselect", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


#: Every outcome of a selection through the harness: targets, implicit MX, null MX, NXDOMAIN,
#: a CNAME, a temporary failure, DNSSEC secure, insecure and bogus, DANE postures.
E2E_DOMAINS = (
    "example.test", "nomx.test", "nullmx.test", "nope.test", "alias.example.test",
    "mail.dead.test", "dnssec.test", "dane.dnssec.test", "insecure.dnssec.test",
    "notlsa.dnssec.test", "shared.dnssec.test", "bogus.test", "dane.bogus.test",
)  # fmt: skip


def _no_ede_text(value: Any) -> Any:
    if isinstance(value, str):  # `(EDE 6: DNSSEC Bogus "validation failure ...")`
        return re.sub(r'(\(EDE \d+: [^")]*) "[^"]*"\)', r"\1)", value)
    if isinstance(value, list):
        return [_no_ede_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _no_ede_text(v) for k, v in value.items()}
    return value


def without_ttl(text: str) -> list[dict[str, Any]]:
    """The JSON lines, with the TTLs out (Unbound's cached answers count down between runs)
    and the EXTRA-TEXT of extended DNS errors (RFC 8914 §2) too: Unbound sends it with the
    reply that validated, not with the bogus answer it serves from its cache to the next run
    -- whichever resolver runs first gets it."""
    return [_no_ede_text({**json.loads(line), "ttl": None}) for line in text.splitlines()]


@pytest.mark.e2e
def test_both_resolvers_give_the_same_json(dns_env: Any) -> None:
    server = f"127.0.0.1:{dns_env.resolver_port}"
    runs = {
        name: mxselect("--resolver", name, "--nameserver", server, "--json", "--seed", "1",
                       "--dane", "--timeout", "5", *E2E_DOMAINS)
        for name in ("stub", "dnspython")
    }  # fmt: skip
    stub, adapter = runs["stub"], runs["dnspython"]
    assert stub.returncode == adapter.returncode == 75  # mail.dead.test, dane.bogus.test...
    assert stub.stderr == adapter.stderr == ""
    results = without_ttl(stub.stdout)
    assert [r["input"] for r in results] == list(E2E_DOMAINS)
    assert results == without_ttl(adapter.stdout)
    by_domain = {r["input"]: r for r in results}
    # the loopback Unbound is trusted by both: DNSSEC statuses and DANE are there
    assert by_domain["dane.dnssec.test"]["security"]["mx"] == "secure"
    assert by_domain["dane.dnssec.test"]["targets"][0]["tls"]["posture"] == "dane"
    assert by_domain["insecure.dnssec.test"]["security"]["mx"] == "insecure"
    assert by_domain["nope.test"]["error"] == "NoSuchDomainError"
    assert by_domain["mail.dead.test"]["outcome"] == "temporary"
    assert "(EDE 6: DNSSEC Bogus) from" in by_domain["bogus.test"]["reason"]  # EDNS0 in both


@pytest.mark.e2e
def test_the_default_resolver_over_tcp_and_check(dns_env: Any) -> None:
    """No --resolver: the stub (UDP or --tcp) gives what the adapter gives; `mxselect check`
    too."""
    server = f"127.0.0.1:{dns_env.resolver_port}"
    domains = ("example.test", "dnssec.test", "nullmx.test")
    default = mxselect("--nameserver", server, "--json", "--seed", "2", "--tcp", *domains)
    adapter = mxselect("--resolver", "dnspython", "--nameserver", server, "--json", "--seed",
                       "2", "--tcp", *domains)  # fmt: skip
    assert default.returncode == adapter.returncode == 69
    assert without_ttl(default.stdout) == without_ttl(adapter.stdout)
    checked = {
        name: mxselect("check", "--resolver", name, "--nameserver", server, "--json",
                       "dane.dnssec.test")
        for name in ("stub", "dnspython")
    }  # fmt: skip
    stub, dnspython = (json.loads(checked[n].stdout) for n in ("stub", "dnspython"))
    assert checked["stub"].returncode == checked["dnspython"].returncode
    assert {f["code"] for f in stub["findings"]} == {f["code"] for f in dnspython["findings"]}


@pytest.mark.e2e
def test_a_resolv_conf_pointing_at_the_harness(dns_env: Any, tmp_path: Path) -> None:
    """resolv.conf names no port, so the command cannot be pointed at the harness's Unbound
    (on a high port) with one; the library can: ``from_system(port=...)``, sync and asyncio,
    the search line read and never used (the names are absolute)."""
    conf = write(tmp_path, "search example.test\nnameserver 127.0.0.1\noptions timeout:1\n")
    stub = StubResolver.from_system(conf, port=dns_env.resolver_port)
    query = Query("example.test", RRType.MX)
    found = asyncio.run(stub.aresolve(query))
    assert found.status is Status.RECORDS
    assert "mx1.example.test." in {r.exchange for r in found.mx}
    assert set(stub.resolve(query).mx) == set(found.mx)  # (Unbound rotates the RRset)
    secure = stub.resolve(Query("dane.dnssec.test", RRType.MX))
    assert secure.security.value == "secure"  # loopback: the AD bit counts


class _OnPort53(FaultServer):
    """The fault server on port 53 of another loopback address, where a resolv.conf line can
    name it (resolv.conf has no port). Needs the privilege to bind port 53."""

    def __init__(self, zone_text: str) -> None:
        super().__init__(zone_text)
        self.host = PORT53_HOST

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            udp.bind((self.host, 53))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((self.host, 53))
            tcp.listen(64)
        except OSError:
            udp.close()
            tcp.close()
            raise
        udp.setblocking(False)
        tcp.setblocking(False)
        return udp, tcp


#: An address of 127.0.0.0/8 that nothing else here uses (Linux answers on all of it).
PORT53_HOST = "127.0.0.153"


@pytest.mark.e2e
def test_resolv_conf_option_end_to_end(tmp_path: Path) -> None:
    """`--resolv-conf FILE` naming a loopback server on port 53: both resolvers ask it, give
    the same JSON, and neither ever appends the search list."""
    zone = (
        "$ORIGIN r.test.\n@ SOA ns h 1 1 1 1 60\n@ MX 10 mx\nmx A 192.0.2.7\nmx AAAA 2001:db8::7\n"
    )
    server = _OnPort53(zone)
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"cannot serve on {PORT53_HOST}:53 here: {exc}")
    try:
        conf = write(tmp_path, f"search example.org\nnameserver {PORT53_HOST}\noptions timeout:1\n")
        runs = [
            mxselect("--resolver", name, "--resolv-conf", str(conf), "--json", "--seed", "3",
                     "--allow-network", "192.0.2.0/24", "--allow-network", "2001:db8::/32",
                     "r.test", "nx.r.test")
            for name in ("stub", "dnspython")
        ]  # fmt: skip
    finally:
        server.stop()
    stub, adapter = runs
    assert stub.returncode == adapter.returncode == 68, stub.stderr  # nx.r.test: NXDOMAIN
    assert without_ttl(stub.stdout) == without_ttl(adapter.stdout)
    ok = without_ttl(stub.stdout)[0]
    assert sorted(t["address"] for t in ok["targets"]) == ["192.0.2.7", "2001:db8::7"]
    names = {str(q[0]) for q in server.queries}
    assert names == {"r.test.", "mx.r.test.", "nx.r.test."}  # never *.example.org.


def test_help_names_the_resolver_options() -> None:
    text = _cli._parser().format_help()
    assert "--resolver {stub,dnspython}" in text
    assert "--resolv-conf FILE" in text
    assert isinstance(_cli._parser(), argparse.ArgumentParser)
