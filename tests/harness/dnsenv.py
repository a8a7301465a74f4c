"""Real DNS servers on loopback for the test suite: Knot + validating Unbound.

``DnsEnv`` follows /work/shared/dns-test-harness.md: Knot DNS serves the zones in
``tests/harness/zones/`` (plus the generated ``bigmx.test.``, and ``dnssec.test.``
and ``bogus.test.`` signed with ldns at start-up, ``bogus.test.`` then tampered
with), and a validating Unbound on another port resolves ``test.`` through a stub
to Knot and ``dead.test.`` through a stub to a port where nothing listens.

DANE (RFC 7672): ``dnssec.test.`` carries TLSA records and CNAME shapes for the
scenarios of shared/secure-delivery.md section 7, row P5 (listed in its zone file;
the TLSA data in :data:`TLSA_DATA`), ``insecure.dnssec.test.`` is an unsigned child
delegated without DS (Unbound ``domain-insecure:``), and ``dane.bogus.test.`` has
valid MX/A/AAAA RRsets and a TLSA RRset tampered after signing (bogus).

MTA-STS and TLS-RPT (RFC 8461 §3.1, RFC 8460 §3): the unsigned ``sts.test.`` carries
``_mta-sts`` / ``_smtp._tls`` TXT records -- a multi-string record, a CNAME'd ``_mta-sts``
(S23), two records at one name, a non-ASCII octet (listed in its zone file).

Everything is written under ``workdir``; nothing but 127.0.0.1 is ever queried.
Usage::

    env = DnsEnv(tmp, auth_port=free_port(5300), resolver_port=free_port(5353),
                 dead_port=free_port(5399))
    env.start()
    ...  # query 127.0.0.1@env.resolver_port (Unbound) or env.auth_port (Knot)
    env.stop()
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

__all__ = [
    "REQUIRED_PROGRAMS",
    "ZONES_DIR",
    "DnsEnv",
    "DnsEnvError",
    "find_program",
    "free_port",
    "missing_programs",
]

#: The zone files shipped with the tests (copied to the work dir at start-up).
ZONES_DIR = Path(__file__).resolve().parent / "zones"

#: Every zone Knot serves, in the order they are probed at start-up.
AUTH_ZONES = (
    "test.",
    "example.test.",
    "nullmx.test.",
    "nomx.test.",
    "cname.test.",
    "dualnull.test.",
    "bigmx.test.",
    "hugemx.test.",
    "hostile.test.",
    "dnssec.test.",
    "insecure.dnssec.test.",
    "bogus.test.",
    "mta.test.",
    "sts.test.",
)
#: Zones signed at start-up; Knot serves their ``<zone>.signed`` file.
SIGNED_ZONES = ("dnssec.test", "bogus.test")
#: Unsigned children of signed zones, delegated without DS: Unbound's ``domain-insecure``.
INSECURE_ZONES = ("insecure.dnssec.test",)

#: The TLSA records of the zones, owner -> (usage, selector, mtype, data as hex), as the zone
#: files write them. ``_25._tcp.mx.dane.bogus.test.`` is served tampered (bogus); the
#: ``insecure.dnssec.test.`` one is insecure; the others validate (secure).
TLSA_DATA = {
    "_25._tcp.mx.dane.dnssec.test.": (
        3,
        1,
        1,
        "d2185a182eaf0cc86ac664b6474e111fb4a0f8df8319da34740e2fb6dc94078d",
    ),
    "_25._tcp.real.cname.dnssec.test.": (
        3,
        1,
        1,
        "e3def29cfc136bca3029357fcbddacc0d0ec873b1d4156a71f795f0cab44ae72",
    ),
    "_25._tcp.mx.fallback.dnssec.test.": (
        3,
        1,
        1,
        "3fae5675cb2cd22a837ba8247af34b166f4a65b292c36ef186d89c7f90df4a8e",
    ),
    "_25._tcp.mx.a6.dnssec.test.": (
        3,
        1,
        1,
        "217c4627defde9413913bef097350c772cb27296968406a3c03e579553739f62",
    ),
    "_tlsa.provider.dnssec.test.": (
        3,
        1,
        1,
        "e6106c91054347fe742fb689ace1df91b213e2d12b843b4ee3858bb86e05b7ed",
    ),
    "_25._tcp.mx.insecure.dnssec.test.": (
        3,
        1,
        1,
        "a9d10fcd7c5e27c319957bcd9f7b1e36b304a82e442f83e8115f42c96b15befe",
    ),
    "_25._tcp.mx.unusable.dnssec.test.": (0, 0, 1, "77" * 32),  # PKIX-TA: unusable
    "_25._tcp.mx.dane.bogus.test.": (
        3,
        1,
        1,
        "48f8ed6ee87b7c3ea3ded5266693f4126a1bd3b6eec9d54f58c43750d0a12a46",
    ),
}

#: Programs DnsEnv runs (Debian packages knot, unbound and ldnsutils).
REQUIRED_PROGRAMS = (
    "knotd",
    "knotc",
    "unbound",
    "unbound-control",
    "ldns-keygen",
    "ldns-signzone",
)
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")  # often not on a user's PATH

READY_TIMEOUT = 10.0  # seconds a daemon gets to answer its readiness probes
PROBE_TIMEOUT = 0.01  # per probe query: UDP never reports "port unreachable"
STOP_TIMEOUT = 5.0
BIGMX_COUNT = 60

_LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


class DnsEnvError(RuntimeError):
    """A daemon could not be set up, exited early, or never became ready."""


def find_program(name: str) -> str | None:
    """The path of program ``name``: on PATH, else in the sbin directories."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *_SBIN_DIRS])
    return shutil.which(name, path=search)


def missing_programs() -> list[str]:
    """The REQUIRED_PROGRAMS that are not installed."""
    return [name for name in REQUIRED_PROGRAMS if find_program(name) is None]


def require_programs() -> None:
    """Skip the calling test when Knot/Unbound/ldns are missing -- fail it under CI
    (``CI`` set), where ``.ci/run`` installs them and a skip would hide a missing harness."""
    import pytest

    missing = missing_programs()
    if missing:
        msg = (
            f"missing {missing}: apt-get install -y --no-install-recommends knot unbound ldnsutils"
        )
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def _program(name: str) -> str:
    path = find_program(name)
    if path is None:
        raise DnsEnvError(
            f"{name} not found: apt-get install -y --no-install-recommends knot unbound ldnsutils"
        )
    return path


def _port_is_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((_LOOPBACK, port))
            except OSError:
                return False
    return True


def free_port(preferred: int) -> int:
    """Return ``preferred`` if it is free for UDP and TCP on 127.0.0.1, else a free
    port chosen by the OS (free for both protocols too)."""
    if _port_is_free(preferred):
        return preferred
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((_LOOPBACK, 0))
            port: int = sock.getsockname()[1]
        if _port_is_free(port):
            return port
    raise DnsEnvError("no free port on 127.0.0.1 for both UDP and TCP")


def _make_preexec() -> Callable[[], None]:
    """A preexec_fn that makes the child get SIGTERM when the pytest process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl() took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _run(args: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(
            [_program(args[0]), *args[1:]],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError as exc:
        raise DnsEnvError(f"cannot run {args[0]}: {exc}") from exc
    if done.returncode != 0:
        raise DnsEnvError(
            f"{' '.join(args)} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done.stdout


HUGEMX_COUNT = 1000


def hugemx_zone_text() -> str:
    """hugemx.test.: a hostile zone with 1,000 MX records (preferences 0..99, each exchange
    with an A record): the selection must stay bounded (max_mx_hosts)."""
    lines = [
        "; hugemx.test. -- generated by DnsEnv: 1,000 MX records",
        "$ORIGIN hugemx.test.",
        "$TTL 300",
        "@ SOA ns.test. hostmaster.test. 1 3600 900 604800 60",
        "@ NS ns.test.",
    ]
    lines += [f"@ MX {i % 100} mx{i}" for i in range(HUGEMX_COUNT)]
    lines += [f"mx{i} A 198.51.{100 + i // 250}.{i % 250 + 1}" for i in range(HUGEMX_COUNT)]
    return "\n".join(lines) + "\n"


def bigmx_zone_text() -> str:
    """bigmx.test.: 60 MX records with long names, each exchange with an A record.

    The answer is about 2 KB, so it is truncated over UDP at 512 bytes and at an
    EDNS buffer size of 1232 (dnspython's Resolver then retries over TCP)."""
    lines = [
        "; bigmx.test. -- generated by DnsEnv: 60 MX, answer larger than 1232 bytes",
        "$ORIGIN bigmx.test.",
        "$TTL 300",
        "@ SOA ns.test. hostmaster.test. 1 3600 900 604800 60",
        "@ NS ns.test.",
    ]
    lines += [f"@ MX {i} mail-exchanger-{i:02d}" for i in range(1, BIGMX_COUNT + 1)]
    lines += [f"mail-exchanger-{i:02d} A 192.0.2.{100 + i}" for i in range(1, BIGMX_COUNT + 1)]
    return "\n".join(lines) + "\n"


HOSTILE_WIDE = 200  # A records of each wide exchange
HOSTILE_CHAIN = 100  # links of the CNAME chains


def hostile_zone_text() -> str:
    """hostile.test.: the zones a selector must survive (issue #6).

    ``wide``: 2 exchanges with 200 A records each (answers over TCP); ``chain`` and
    ``xchain``: a 100-link CNAME chain at the domain and at its exchange; ``dloop`` and
    ``xloop``: CNAME loops at the domain and at the exchange; ``lh``: MX -> localhost.;
    ``loip``: MX -> 127.0.0.1 written as a name; ``self``: the domain is its own exchange;
    ``internal``: exchanges in 10/8, 192.168/16 and fd00::/8; ``*.wild``: a wildcard with MX
    records; ``wildmx``: an exchange that is a wildcard name; ``deadmx``: 1,000 MX records
    whose exchanges do not exist (the query budget)."""
    lines = [
        "; hostile.test. -- generated by DnsEnv",
        "$ORIGIN hostile.test.",
        "$TTL 300",
        "@ SOA ns.test. hostmaster.test. 1 3600 900 604800 60",
        "@ NS ns.test.",
        "wide MX 10 wide-a",
        "wide MX 10 wide-b",
    ]
    for host, net in (("wide-a", "198.18"), ("wide-b", "198.19")):
        lines += [f"{host} A {net}.{i // 250}.{i % 250 + 1}" for i in range(HOSTILE_WIDE)]
    lines += [f"chain{'' if i == 0 else i} CNAME chain{i + 1}" for i in range(HOSTILE_CHAIN)]
    lines += [f"chain{HOSTILE_CHAIN} MX 10 wide-a", "xchain MX 10 x0"]
    lines += [f"x{i} CNAME x{i + 1}" for i in range(HOSTILE_CHAIN)]
    lines += [
        f"x{HOSTILE_CHAIN} A 192.0.2.90",
        "dloop CNAME dloop2",
        "dloop2 CNAME dloop",
        "xloop MX 10 la",
        "la CNAME lb",
        "lb CNAME la",
        "lh MX 10 localhost.",
        "loip MX 10 127.0.0.1.",
        "self MX 10 self.hostile.test.",
        "self A 192.0.2.77",
        "internal MX 10 int1",
        "internal MX 20 int2",
        "int1 A 10.1.2.3",
        "int1 AAAA fd00::1",
        "int2 A 192.168.1.1",
        *(f"deadmx MX {i % 100} gone{i}.deadmx" for i in range(HUGEMX_COUNT)),
        "*.wild MX 10 mx.wild",
        "mx.wild A 192.0.2.88",
        "wildmx MX 10 *.wild.hostile.test.",
    ]
    return "\n".join(lines) + "\n"


# After signing, these edits make bogus.test.'s MX RRset and mx1's A RRset no
# longer match their RRSIGs; mx1 AAAA stays valid. The last one changes the last
# octet of _25._tcp.mx.dane.bogus.test.'s TLSA digest (T9: a bogus TLSA beside a valid
# MX and valid addresses).
_BOGUS_TAMPER = (
    (re.compile(r"^(bogus\.test\.\s+300\s+IN\s+MX\s+)10 ", re.M), r"\g<1>20 "),
    (
        re.compile(r"^(mx1\.bogus\.test\.\s+300\s+IN\s+A\s+)192\.0\.2\.70", re.M),
        r"\g<1>192.0.2.99",
    ),
    (
        re.compile(
            r"^(_25\._tcp\.mx\.dane\.bogus\.test\.\s+300\s+IN\s+TLSA\s+3 1 1 [0-9a-f]{62})46$",
            re.M,
        ),
        r"\g<1>47",
    ),
)


class DnsEnv:
    """Knot (authoritative, ``auth_port``) + Unbound (validating, ``resolver_port``)
    on 127.0.0.1, with every file under ``workdir``."""

    def __init__(self, workdir: Path, auth_port: int, resolver_port: int, dead_port: int) -> None:
        self.workdir = Path(workdir)
        self.auth_port = auth_port
        self.resolver_port = resolver_port
        self.dead_port = dead_port
        self.zones_dir = self.workdir / "zones"
        self.knot_dir = self.workdir / "knot"
        self.unbound_dir = self.workdir / "unbound"
        self.unbound_conf = self.unbound_dir / "unbound.conf"
        #: seconds the last start() took
        self.start_seconds: float | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    # -- public API ---------------------------------------------------------

    def start(self) -> None:
        """Prepare zones and configs, start Knot then Unbound, wait until both answer."""
        if self._procs:
            raise DnsEnvError("DnsEnv already started")
        began = time.monotonic()
        try:
            self._prepare_zones()
            anchors = self._sign_zones()
            self._start_knot()
            self._start_unbound(anchors)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """SIGTERM each daemon (Unbound first), wait up to 5 s, then SIGKILL."""
        for name in ("unbound", "knotd"):
            proc = self._procs.pop(name, None)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log = self._logs.pop(name, None)
            if log is not None:
                log.close()

    def unbound_control(self, *args: str) -> str:
        """Run ``unbound-control`` against this Unbound, e.g.
        ``unbound_control("flush_infra", "all")``; returns its stdout."""
        return _run(["unbound-control", "-c", str(self.unbound_conf), *args], cwd=self.unbound_dir)

    def __enter__(self) -> DnsEnv:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- zones ----------------------------------------------------------------

    def _prepare_zones(self) -> None:
        for directory in (self.zones_dir, self.knot_dir, self.unbound_dir):
            directory.mkdir(parents=True, exist_ok=True)
        for zone_file in ZONES_DIR.glob("*.zone"):
            shutil.copyfile(zone_file, self.zones_dir / zone_file.name)
        (self.zones_dir / "bigmx.test.zone").write_text(bigmx_zone_text())
        (self.zones_dir / "hugemx.test.zone").write_text(hugemx_zone_text())
        (self.zones_dir / "hostile.test.zone").write_text(hostile_zone_text())

    def _sign_zones(self) -> str:
        """Sign dnssec.test. and bogus.test., tamper with bogus.test.; return the
        DS records of both KSKs (Unbound's trust anchors)."""
        anchors = []
        for zone in SIGNED_ZONES:
            keygen = ["ldns-keygen", "-a", "ECDSAP256SHA256"]
            ksk = _run([*keygen, "-k", zone], cwd=self.zones_dir).strip()
            zsk = _run([*keygen, zone], cwd=self.zones_dir).strip()
            _run(
                ["ldns-signzone", "-f", f"{zone}.signed", f"{zone}.zone", zsk, ksk],
                cwd=self.zones_dir,
            )
            anchors.append((self.zones_dir / f"{ksk}.ds").read_text())
        signed = self.zones_dir / "bogus.test.signed"
        text = signed.read_text()
        for pattern, replacement in _BOGUS_TAMPER:
            text, count = pattern.subn(replacement, text)
            if count != 1:
                raise DnsEnvError(f"tampering with {signed}: {pattern.pattern!r} matched {count}x")
        signed.write_text(text)
        return "".join(anchors)

    # -- Knot -------------------------------------------------------------------

    def _knot_conf(self) -> str:
        zones = []
        for zone in AUTH_ZONES:
            zones.append(f"  - domain: {zone}")
            if zone.rstrip(".") in SIGNED_ZONES:
                zones.append(f"    file: {zone}signed")
        return (
            f"""\
server:
    rundir: "{self.knot_dir}"
    listen: {_LOOPBACK}@{self.auth_port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: notice
database:
    storage: "{self.knot_dir}"
template:
  - id: default
    storage: "{self.zones_dir}"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
"""
            + "\n".join(zones)
            + "\n"
        )

    def _start_knot(self) -> None:
        conf = self.knot_dir / "knot.conf"
        confdb = self.knot_dir / "confdb"
        conf.write_text(self._knot_conf())
        _run(["knotc", "-C", str(confdb), "conf-import", str(conf)], cwd=self.knot_dir)
        proc = self._spawn("knotd", ["knotd", "-C", str(confdb)], self.knot_dir)
        deadline = time.monotonic() + READY_TIMEOUT
        for zone in AUTH_ZONES:
            self._wait_ready("knotd", proc, self.auth_port, zone, deadline)

    # -- Unbound ------------------------------------------------------------------

    def _unbound_conf(self) -> str:
        d = self.unbound_dir
        # An unsigned child below a trust anchor, delegated without DS: insecure, not bogus
        # (shared/secure-delivery.md section 3.3).
        insecure = "".join(f'    domain-insecure: "{zone}."\n' for zone in INSECURE_ZONES)
        # The settings and why each is needed: dns-test-harness.md, sections 3 and 6.
        return f"""\
server:
    interface: {_LOOPBACK}@{self.resolver_port}
    outgoing-interface: {_LOOPBACK}
    do-ip6: no
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    log-servfail: yes
    val-log-level: 2
    num-threads: 1
    so-reuseport: no
    do-not-query-localhost: no
    module-config: "validator iterator"
    trust-anchor-file: "{d / "anchors.ds"}"
    local-zone: "test." nodefault
    discard-timeout: 0
    infra-cache-max-rtt: 200
    unknown-server-time-limit: 100
    infra-host-ttl: 1
    infra-keep-probing: yes
    val-bogus-ttl: 1
    ede: yes
{insecure}stub-zone:
    name: "test."
    stub-addr: {_LOOPBACK}@{self.auth_port}
stub-zone:
    name: "dead.test."
    stub-addr: {_LOOPBACK}@{self.dead_port}
# Safety net, not in the recipe: a name outside test. (a typo in a test) goes
# to the dead port and ends in SERVFAIL instead of reaching the root servers.
stub-zone:
    name: "."
    stub-addr: {_LOOPBACK}@{self.dead_port}
remote-control:
    control-enable: yes
    control-interface: "{d / "unbound.ctl"}"
    control-use-cert: no
"""

    def _start_unbound(self, anchors: str) -> None:
        (self.unbound_dir / "anchors.ds").write_text(anchors)
        self.unbound_conf.write_text(self._unbound_conf())
        proc = self._spawn(
            "unbound", ["unbound", "-d", "-c", str(self.unbound_conf)], self.unbound_dir
        )
        deadline = time.monotonic() + READY_TIMEOUT
        self._wait_ready("unbound", proc, self.resolver_port, "test.", deadline)

    # -- processes ---------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
        log_path = self.workdir / f"{name}.log"
        log = log_path.open("wb")
        self._logs[name] = log
        try:
            proc = subprocess.Popen(
                [_program(args[0]), *args[1:]],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_make_preexec(),
            )
        except OSError as exc:
            raise DnsEnvError(f"cannot start {name}: {exc}") from exc
        self._procs[name] = proc
        return proc

    def log_text(self, name: str) -> str:
        """The output (stdout + stderr) of daemon ``name`` ("knotd" or "unbound")."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _wait_ready(
        self,
        name: str,
        proc: subprocess.Popen[bytes],
        port: int,
        zone: str,
        deadline: float,
    ) -> None:
        """Poll ``zone SOA`` on ``port`` until it answers NOERROR with the SOA."""
        query = dns.message.make_query(zone, dns.rdatatype.SOA)
        if name == "knotd":
            query.flags &= ~dns.flags.RD
        last = "no answer"
        while True:
            code = proc.poll()
            if code is not None:
                raise DnsEnvError(f"{name} exited early with status {code}:\n{self.log_text(name)}")
            try:
                response = dns.query.udp(query, _LOOPBACK, timeout=PROBE_TIMEOUT, port=port)
            except (dns.exception.DNSException, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.rcode() == dns.rcode.NOERROR and any(
                    rrset.rdtype == dns.rdatatype.SOA for rrset in response.answer
                ):
                    return
                last = f"rcode {dns.rcode.to_text(response.rcode())}"
            if time.monotonic() > deadline:
                raise DnsEnvError(
                    f"{name} on {_LOOPBACK}@{port} not ready after {READY_TIMEOUT} s"
                    f" ({zone} SOA: {last}):\n{self.log_text(name)}"
                )
