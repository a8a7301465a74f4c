"""The `mxselect` command: demo zone, Knot + Unbound, batch mode against a loopback server, the
progress bar under a pseudo-terminal, Ctrl-C, policy flags, exit codes.

Most tests call `main(argv)` in-process (`run`, `demo`), with their own stdin, stdout and
stderr; a few smoke tests run a real process (`run_subprocess`, `Popen`): `python -m mxselect`
and the console script, exit codes through `entry_point`, the progress bar on a terminal, a
broken pipe, Ctrl-C."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import pytest

from mxselect._cli import _parser, domain_of, main, read_items, worst

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.zone"
README = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")  # the command reference

#: Run the command with the `tqdm` extra made unimportable: the plain fallback.
WITHOUT_TQDM = (
    "import sys; sys.modules['tqdm'] = None; from mxselect._cli import entry_point; entry_point()"
)


@dataclass
class Ran:
    """What an in-process run gave: the fields of `subprocess.CompletedProcess` that tests use."""

    returncode: int
    stdout: str
    stderr: str


def _text_stream(data: str = "") -> io.TextIOWrapper:
    """A text stream over bytes, UTF-8 and strict, like a process's standard streams here."""
    return io.TextIOWrapper(io.BytesIO(data.encode()), encoding="utf-8")


def _written(stream: io.TextIOWrapper) -> str:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode()


@contextlib.contextmanager
def _stdin(stream: io.TextIOWrapper) -> Iterator[None]:
    saved, sys.stdin = sys.stdin, stream
    try:
        yield
    finally:
        sys.stdin = saved


def run(*args: str, stdin: str | None = None) -> Ran:
    """`mxselect ARGS` in-process: `main(argv)` in the repository root (relative paths as in the
    README) with its own stdin (empty unless given), stdout and stderr."""
    out, err = _text_stream(), _text_stream()
    with (
        contextlib.chdir(ROOT),
        _stdin(_text_stream(stdin or "")),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = main(list(args))
    return Ran(code, _written(out), _written(err))


def run_subprocess(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m mxselect ARGS` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "mxselect", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def demo(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run("--zone", str(DEMO), *args, stdin=stdin)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(autouse=True)
def _no_state_leaks() -> Iterator[None]:
    """An in-process run leaves the process as it found it: the working directory, the standard
    streams and the SIGINT handler (asyncio.run installs its own while it runs)."""

    def state() -> tuple[object, ...]:
        streams = (sys.stdin, sys.stdout, sys.stderr)
        return os.getcwd(), streams, signal.getsignal(signal.SIGINT)

    before = state()
    yield
    assert state() == before


# ------------------------------------------------------------------------ the demo zone


def test_readme_command_outputs_are_exact() -> None:
    """Every `$ mxselect ...` block of the README is what the command prints (seeded runs)."""
    blocks = README.split("$ mxselect ")[1:]
    assert len(blocks) >= 3
    for block in blocks:
        command, _, expected = block.split("```", 1)[0].partition("\n")
        args = command.split()
        assert args[:2] == ["--zone", "examples/demo.zone"]
        result = run(*args)
        assert result.stdout == expected, command
        assert result.returncode in (0, 65, 68, 69, 75), command


DEMO_LIST = "example.net\nuser@nomail.example.net\nbad_domain.example\nmissing.example.net\n"


def test_demo_zone_outcomes_and_exit_codes() -> None:
    """Each demo domain gives its documented outcome; the worst exit code wins."""
    cases = {
        "example.net": 0,
        "alias.example.net": 0,
        "implicit.example.net": 0,
        "cname-mx.example.net": 0,
        "mixed-null.example.net": 0,
        "broken.example.net": 0,
        "nomail.example.net": 69,
        "dead.example.net": 69,
        "missing.example.net": 68,
        "bad_domain.example": 65,
        "postmaster@nomail.example.net": 69,
    }
    for domain, code in cases.items():
        result = demo(domain)
        assert result.returncode == code, (domain, result.stdout, result.stderr)
    assert demo("example.net", "missing.example.net").returncode == 68
    assert demo("bad_domain.example", "nomail.example.net").returncode == 69


def test_exit_code_order() -> None:
    """75 > 69 > 68 > 65 > 0, whatever the order of the outcomes."""
    assert worst([0, 65, 68]) == 68
    assert worst([69, 75, 0]) == 75
    assert worst([65, 0]) == 65
    assert worst([]) == 0


def test_arguments_print_in_the_order_given() -> None:
    """Several DOMAIN arguments are looked up concurrently but printed in argument order."""
    domains = ["nomail.example.net", "example.net", "implicit.example.net", "missing.example.net"]
    lines = json_lines(demo("--json", *domains).stdout)
    assert [d["input"] for d in lines] == domains


def test_json_schema_is_complete_and_documented() -> None:
    """--json: every object has every documented key, for successes and errors alike."""
    section = README.split("### JSON output", 1)[1].split("\n#", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", section, re.M)
    assert documented[-1] == "trace"  # only with --explain
    result = demo("--seed", "3", "--json", "implicit.example.net", "nomail.example.net", "a..b")
    ok, null, invalid = json_lines(result.stdout)
    for obj in (ok, null, invalid):
        assert list(obj) == documented[:-1]
    explained = json_lines(demo("--json", "--explain", "example.net", "a..b").stdout)
    assert [list(obj) for obj in explained] == [documented, documented]
    assert ok["outcome"] == "ok"
    assert ok["implicit"] is True
    assert [(t["rank"], t["address"], t["family"]) for t in ok["targets"]] == [
        (1, "2001:db8::30", 6),
        (2, "192.0.2.30", 4),
    ]
    assert ok["error"] is None
    assert {k: null[k] for k in ("outcome", "error", "reply_code", "status", "exit_code")} == {
        "outcome": "permanent",
        "error": "NullMXError",
        "reply_code": 556,
        "status": "5.1.10",
        "exit_code": 69,
    }
    assert null["targets"] == []
    assert null["ttl"] is None
    assert (invalid["error"], invalid["exit_code"], invalid["status"]) == (
        "InvalidDomainError",
        65,
        "5.1.3",
    )
    assert result.returncode == 69


def test_seed_makes_output_reproducible() -> None:
    """The same --seed gives the same order; the order does not depend on other domains."""
    alone = demo("--seed", "11", "--json", "example.net").stdout
    outputs = {demo("--seed", "11", "--json", "example.net").stdout for _ in range(3)}
    assert outputs == {alone}
    with_others = json_lines(
        demo("--seed", "11", "--json", "alias.example.net", "example.net").stdout
    )
    assert with_others[1]["targets"] == json.loads(alone)["targets"]
    orders = {
        tuple(
            t["host"]
            for t in json.loads(demo("--seed", str(s), "--json", "example.net").stdout)["targets"]
        )
        for s in range(12)
    }
    assert len(orders) == 2  # the two preference-10 hosts do get shuffled


def test_explain_flag() -> None:
    """--explain prints the decision trace; with --json it is a 'trace' list."""
    text = demo("--seed", "1", "--explain", "broken.example.net").stdout
    assert "[lookup] gone.example.net: the host does not exist (NXDOMAIN)" in text
    data = json.loads(demo("--json", "--explain", "nomail.example.net").stdout)
    assert [t["kind"] for t in data["trace"]] == ["mx", "outcome"]
    assert "trace" not in json.loads(demo("--json", "nomail.example.net").stdout)


# ------------------------------------------------------------------------------ usage


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give at least one DOMAIN"),
        (("--seed", "x", "example.net"), "invalid int value"),
        (("--max-addresses", "1", "example.net"), "max_addresses must be at least 2"),
        (("--concurrency", "0", "example.net"), "invalid positive integer value"),
        (("--timeout", "0", "example.net"), "invalid number of seconds value"),
        (("--deadline", "nan", "example.net"), "invalid number of seconds value"),
        (("--family", "ipv5", "example.net"), "invalid choice"),
        (("-f", "-", "example.net"), "not both"),
        (("--nameserver", "dns.example", "example.net"), "takes an IP address"),
        (("--nameserver", "127.0.0.1:99999", "example.net"), "takes an IP address"),
        (("--unsafe-network", "10.0.0.0/33", "example.net"), "invalid network value"),
        (("--local-name", "[192.0.2.1]", "example.net"), "local_names takes host names"),
        (("--zone", str(DEMO), "--tcp", "example.net"), "cannot be combined"),
        (("--zone", "does-not-exist.zone", "example.net"), "cannot read zone file"),
        (("-f", "does-not-exist.txt"), "cannot read does-not-exist.txt"),
        (("--dane", "--dane-mandatory", "x.example"), "not allowed with argument --dane"),
        (("--dane-insecure-mx", "may", "x.example"), "--dane-insecure-mx needs --dane"),
        (("--dane-mandatory", "--dane-insecure-mx", "encrypt", "x.example"), "RFC 7672 §2.2.1"),
        (("--dane", "--dane-insecure-mx", "maybe", "x.example"), "invalid choice: 'maybe'"),
        (("--dane", "--tlsa-port", "0", "x.example"), "invalid port (1-65535) value: '0'"),
        (("--dane", "--tlsa-port", "65536", "x.example"), "invalid port (1-65535) value"),
        (("--dane", "--tlsa-port", "smtp", "x.example"), "invalid port (1-65535) value"),
        (("--tlsa-port", "587", "x.example"), "--tlsa-port needs --dane or --dane-mandatory"),
        (("--signed", "dane.example.net", "x.example"), "--signed needs --zone"),
        (("--zone", str(DEMO), "--signed", "dane.example.nt", "x.example"), "no name of the"),
        (("--zone", str(DEMO), "--signed", "a..b", "x.example"), "invalid zone name value"),
    ],
)
def test_usage_errors_exit_64(args: tuple[str, ...], message: str) -> None:
    """Bad flags, unreadable files, bad combinations: exit 64 with a clear message, no traceback."""
    result = run(*args)
    assert result.returncode == 64, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_help() -> None:
    assert run("--version").stdout.startswith("mxselect ")
    help_text = run("--help").stdout
    assert "Exit codes (sysexits)" in help_text


def test_readme_documents_every_flag() -> None:
    """Each option of the command appears in the README's command reference."""
    reference = README.split("## The `mxselect` command", 1)[1]
    options = [s for action in _parser()._actions for s in action.option_strings]
    assert len(options) > 25
    missing = [o for o in options if f"`{o}" not in reference]
    assert missing == []
    for code in ("0", "64", "65", "68", "69", "75", "130"):
        assert f"| {code} |" in reference


def test_console_script_is_the_same_as_python_m() -> None:
    """`mxselect` (the installed script) and `python -m mxselect` print the same thing."""
    script = shutil.which("mxselect")
    if script is None:
        pytest.fail("the mxselect console script is not installed (pip install -e .)")
    args = ["--zone", str(DEMO), "--seed", "5", "example.net", "nomail.example.net"]
    scripted = subprocess.run([script, *args], capture_output=True, text=True, check=False)
    assert scripted.stdout == run_subprocess(*args).stdout
    assert scripted.returncode == 69


@pytest.mark.parametrize(
    "args",
    [
        ("--seed", "x", "example.net"),
        ("--zone", "does-not-exist.zone", "example.net"),
        ("--help",),
        ("--version",),
        ("--zone", str(DEMO), "--seed", "2", "example.net", "nomail.example.net", "a..b"),
        ("--zone", str(DEMO), "--json", "--explain", "missing.example.net"),
    ],
)
def test_a_process_gives_what_main_returns(
    args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m mxselect` (main through entry_point) exits with the code main(argv) returns
    in-process, usage errors and --help included, and prints the same."""
    monkeypatch.setenv("COLUMNS", "80")  # --help's width, in the process and in here
    process = run_subprocess(*args)
    assert "Traceback" not in process.stderr
    assert (process.returncode, process.stdout, process.stderr) == astuple(run(*args))


# ------------------------------------------------------------------------------ policy flags


def targets(*args: str) -> list[tuple[str, str]]:
    result = demo("--seed", "1", "--json", *args)
    data = json.loads(result.stdout)
    return [(t["host"], t["address"]) for t in data["targets"]]


def test_family_flags() -> None:
    v4 = targets("-4", "example.net")
    assert v4
    assert all(":" not in a for _, a in v4)
    v6 = targets("--family", "ipv6-only", "example.net")
    assert v6
    assert all(":" in a for _, a in v6)
    prefer4 = targets("--family", "prefer-ipv4", "--max-addresses", "none", "example.net")
    assert [":" in a for _, a in prefer4] == [False, False, True, True, False]
    assert targets("-6", "example.net") == v6


def test_address_limit_flags() -> None:
    assert len(targets("--max-addresses", "none", "example.net")) == 5
    assert len(targets("--max-addresses", "2", "example.net")) == 2
    kept = targets("--max-addresses", "2", "--keep-one-per-preference", "example.net")
    assert [h for h, _ in kept][-1] == "backup.example.net"
    assert len(targets("--max-mx-hosts", "1", "example.net")) == 2
    # broken.example.net: gone (NXDOMAIN) at 10, backup at 20. One host a batch: the second
    # batch reaches backup; a budget of 2 queries stops after gone: temporary (75).
    assert [h for h, _ in targets("--max-mx-hosts", "1", "broken.example.net")] == [
        "backup.example.net"
    ]
    result = demo("--max-mx-hosts", "1", "--max-address-queries", "2", "broken.example.net")
    assert result.returncode == 75
    assert "not examined" in result.stdout


def test_local_name_and_address_flags() -> None:
    """This host as the backup MX: the backup and worse are dropped (RFC 5321 §5.1)."""
    hosts = {h for h, _ in targets("--local-name", "backup.example.net", "example.net")}
    assert hosts == {"mx1.example.net", "mx2.example.net"}
    loop = demo("--json", "--local-address", "192.0.2.30", "implicit.example.net")
    assert json.loads(loop.stdout)["error"] == "MailLoopError"
    assert loop.returncode == 69


def test_unsafe_network_flags() -> None:
    """--unsafe-network drops addresses; --allow-network takes a default unsafe net out."""
    dropped = targets("--unsafe-network", "192.0.2.0/24", "-4", "example.net")
    assert dropped == [("backup.example.net", "198.51.100.20")]
    data = json.loads(
        demo("--json", "--unsafe-network", "192.0.2.0/24", "-4", "example.net").stdout
    )
    assert "unsafe-address" in {w["code"] for w in data["warnings"]}


def test_null_mx_implicit_mx_and_exchange_flags() -> None:
    mixed = demo("--json", "mixed-null.example.net")
    assert json.loads(mixed.stdout)["outcome"] == "ok"
    strict = demo("--json", "--strict-null-mx", "mixed-null.example.net")
    assert json.loads(strict.stdout)["error"] == "NullMXError"
    assert strict.returncode == 69
    no_implicit = demo("--json", "--no-implicit-mx", "implicit.example.net")
    assert json.loads(no_implicit.stdout)["error"] == "NoUsableTargetsError"
    strict_cname = demo("--json", "--strict-cname-exchange", "cname-mx.example.net")
    assert json.loads(strict_cname.stdout)["error"] == "NoUsableTargetsError"
    limited = demo("--json", "--cname-limit", "1", "cname-mx.example.net")
    assert json.loads(limited.stdout)["outcome"] == "ok"


def test_allow_mx_to_ip_and_allow_network(tmp_path: Path) -> None:
    zone = tmp_path / "ip.zone"
    zone.write_text(
        "$ORIGIN ip.test.\n$TTL 60\n@ SOA ns h 1 1 1 1 60\n@ MX 10 127.0.0.2.\n"
        "lo MX 10 mx\nmx A 127.0.0.2\n",
        encoding="utf-8",
    )
    base = ("--zone", str(zone), "--json")
    refused = json.loads(run(*base, "ip.test").stdout)
    assert refused["error"] == "NoUsableTargetsError"
    allowed = json.loads(
        run(*base, "--allow-mx-to-ip", "--allow-network", "127.0.0.0/8", "ip.test").stdout
    )
    assert [t["address"] for t in allowed["targets"]] == ["127.0.0.2"]
    unsafe = json.loads(run(*base, "lo.ip.test").stdout)
    assert unsafe["error"] == "NoUsableTargetsError"
    narrow = json.loads(run(*base, "--allow-network", "127.0.0.2/32", "lo.ip.test").stdout)
    assert [t["address"] for t in narrow["targets"]] == ["127.0.0.2"]
    other = json.loads(run(*base, "--allow-network", "127.0.0.3/32", "lo.ip.test").stdout)
    assert other["error"] == "NoUsableTargetsError"


# ----------------------------------------------------------------------------- batch input


def test_domain_of_addresses() -> None:
    assert domain_of("user@Example.ORG") == "Example.ORG"
    assert domain_of(" <user@example.org> ") == "example.org"
    assert domain_of('"a@b"@example.org') == "example.org"
    assert domain_of("user@[192.0.2.1]") == "[192.0.2.1]"
    assert domain_of("example.org") == "example.org"
    assert domain_of("user@") == ""


def test_read_items_skips_blanks_and_comments() -> None:
    text = "# a list\n\nexample.org\n  a#b@example.net  # a comment\n\t\n#x\nexample.com#not\n"
    items = read_items(io.StringIO(text))
    assert [(i.index, i.line, i.text, i.domain) for i in items] == [
        (0, 3, "example.org", "example.org"),
        (1, 4, "a#b@example.net", "example.net"),
        (2, 7, "example.com#not", "example.com#not"),
    ]


def test_batch_from_stdin_with_bad_lines() -> None:
    """Bad lines are reported with their line number and the batch goes on; worst code wins."""
    text = (
        "# demo\nexample.net\n\nuser@nomail.example.net\nbad domain\nuser@\n"
        "x@implicit.example.net\nex\x01ample.net\nmissing.example.net\n"
    )
    result = demo("--json", "-f", "-", stdin=text)
    objs = {o["line"]: o for o in json_lines(result.stdout)}
    assert sorted(objs) == [2, 4, 5, 6, 7, 8, 9]
    assert {line: o["exit_code"] for line, o in objs.items()} == {
        2: 0, 4: 69, 5: 65, 6: 65, 7: 0, 8: 65, 9: 68,
    }  # fmt: skip
    assert objs[5]["reason"].endswith("contains white space")
    assert objs[7]["domain"] == "implicit.example.net"
    assert result.returncode == 69
    assert "mxselect: 7 domains in" in result.stderr
    assert "Traceback" not in result.stderr


def test_batch_file_that_is_not_utf8(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 make that line invalid (65), not the command crash."""
    listing = tmp_path / "latin1.txt"
    listing.write_bytes(b"caf\xe9.example\nexample.net\n")
    result = demo("--json", "-f", str(listing))
    objs = {o["line"]: o for o in json_lines(result.stdout)}
    assert (objs[1]["error"], objs[2]["outcome"]) == ("InvalidDomainError", "ok")
    assert result.returncode == 65


def test_batch_text_lines_and_quiet(tmp_path: Path) -> None:
    """The compact table: one line per domain; --quiet drops the summary."""
    listing = tmp_path / "list.txt"
    listing.write_text(DEMO_LIST, encoding="utf-8")
    result = demo("-f", str(listing), "--seed", "1")
    lines = sorted(result.stdout.splitlines())
    assert len(lines) == 4
    assert lines[0].startswith("line 1: example.net  ok  ")
    assert lines[1].startswith("line 2: user@nomail.example.net  556 5.1.10 NullMXError: ")
    assert "ok                  1" in result.stderr
    assert result.stderr.rstrip().endswith("exit 69")
    quiet = demo("-f", str(listing), "-q", "--seed", "1")
    assert quiet.stderr == ""
    assert sorted(quiet.stdout.splitlines()) == lines


def test_broken_pipe_is_quiet(tmp_path: Path) -> None:
    """`mxselect -f list | head -1`: no traceback when the reader goes away."""
    listing = tmp_path / "list.txt"
    listing.write_text("example.net\n" * 3000, encoding="utf-8")
    cmd = [sys.executable, "-m", "mxselect", "--zone", str(DEMO), "-q", "-f", str(listing)]
    pipe = subprocess.PIPE
    with subprocess.Popen(cmd, stdout=pipe, stderr=pipe, cwd=ROOT) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err


# ------------------------------------------------------------------- over the wire (loopback)

BATCH_KINDS = ("ok", "implicit", "null", "nxdomain", "servfail", "invalid", "address")


def batch_zone(count: int) -> tuple[str, list[tuple[str, str]]]:
    """A zone with `count` domains of mixed outcomes, and the (input line, kind) list."""
    zone = [
        "$ORIGIN batch.test.",
        "$TTL 300",
        "@ SOA ns hostmaster 1 3600 900 604800 60",
        "mx1 A 192.0.2.1",
        "mx1 AAAA 2001:db8::1",
        "mx2 A 192.0.2.2",
    ]
    entries = []
    for i in range(count):
        kind = BATCH_KINDS[i % len(BATCH_KINDS)]
        name = f"{kind}{i}"
        if kind in ("ok", "address"):
            zone += [f"{name} MX 10 mx1", f"{name} MX 20 mx2"]
        elif kind == "implicit":
            zone.append(f"{name} A 192.0.2.{i % 250 + 1}")
        elif kind == "null":
            zone.append(f"{name} MX 0 .")
        line = f"{name}.batch.test"
        if kind == "address":
            line = f"postmaster@{line}"
        elif kind == "invalid":
            line = f"{name}..batch.test"
        entries.append((line, kind))
    return "\n".join(zone) + "\n", entries


EXPECTED = {
    "ok": ("ok", None, 0),
    "address": ("ok", None, 0),
    "implicit": ("ok", None, 0),
    "null": ("permanent", "NullMXError", 69),
    "nxdomain": ("permanent", "NoSuchDomainError", 68),
    "servfail": ("temporary", "DNSTemporaryError", 75),
    "invalid": ("permanent", "InvalidDomainError", 65),
}


@pytest.mark.e2e
def test_batch_of_hundreds_against_a_loopback_server(fault_server: Any, tmp_path: Path) -> None:
    """350 generated domains, mixed outcomes: every line classified, summary counts, exit 75."""
    zone, entries = batch_zone(350)
    server = fault_server(zone)
    for line, kind in entries:
        if kind == "servfail":
            server.set_rule(line, None, "servfail")
    listing = tmp_path / "batch.txt"
    body = ["# generated"]
    for line, _ in entries:
        body += [line, ""]
    listing.write_text("\n".join(body), encoding="utf-8")
    result = run(
        "--nameserver", f"127.0.0.1:{server.port}", "--timeout", "2", "--json",
        "--concurrency", "25", "-f", str(listing),
    )  # fmt: skip
    objs = json_lines(result.stdout)
    assert len(objs) == len(entries)
    by_input = {o["input"]: o for o in objs}
    for line, kind in entries:
        obj = by_input[line]
        assert (obj["outcome"], obj["error"], obj["exit_code"]) == EXPECTED[kind], line
        if kind in ("ok", "address"):
            assert [t["host"] for t in obj["targets"]] == [
                "mx1.batch.test", "mx1.batch.test", "mx2.batch.test",
            ]  # fmt: skip
    kinds = Counter(EXPECTED[kind][1] or "ok" for _, kind in entries)
    for label, count in kinds.items():
        assert re.search(rf"^  {label} +{count}$", result.stderr, re.M), (label, result.stderr)
    assert f"mxselect: {len(entries)} domains in" in result.stderr
    assert result.returncode == 75
    invalid_queries = [q for q in server.queries if ".." in str(q[0])]
    assert invalid_queries == []
    # the run's cache: 100 domains share mx1 and mx2, whose addresses are asked once each
    shared = Counter((str(q[0]), q[1]) for q in server.queries if str(q[0]).startswith("mx"))
    assert shared == {(f"{h}.batch.test.", t): 1 for h in ("mx1", "mx2") for t in ("A", "AAAA")}
    sent = len(server.queries)
    assert f"  DNS: {sent} queries sent, " in result.stderr
    server.clear()
    uncached = run(
        "--nameserver", f"127.0.0.1:{server.port}", "--no-cache", "-q", "--json",
        "-f", str(listing),
    )  # fmt: skip

    def without_ttl(text: str) -> list[str]:  # a cached answer's TTL has counted down
        return sorted(json.dumps({**o, "ttl": None}) for o in json_lines(text))

    assert without_ttl(uncached.stdout) == without_ttl(result.stdout)
    # without the cache the stub still sends identical questions in flight together once
    # (RFC 5452 §5); the dnspython adapter asks for every domain
    mx1_a = [q for q in server.queries if (str(q[0]), q[1]) == ("mx1.batch.test.", "A")]
    users = sum(kind in ("ok", "address") for _, kind in entries)
    assert 1 <= len(mx1_a) <= users  # (how many merge depends on timing)
    server.clear()
    adapter = run(
        "--resolver", "dnspython", "--nameserver", f"127.0.0.1:{server.port}", "--no-cache",
        "-q", "--json", "-f", str(listing),
    )  # fmt: skip
    assert without_ttl(adapter.stdout) == without_ttl(result.stdout)
    mx1_a = [q for q in server.queries if (str(q[0]), q[1]) == ("mx1.batch.test.", "A")]
    assert len(mx1_a) == users


@pytest.mark.e2e
def test_batch_streams_as_finished_or_in_order(fault_server: Any, tmp_path: Path) -> None:
    """A slow first domain comes last when streaming, first with --in-order; both concurrent."""
    zone, entries = batch_zone(21)
    server = fault_server(zone, default_delay_ms=100)
    slow = entries[0][0]
    server.set_rule(slow, "MX", "delay", delay_ms=600)
    listing = tmp_path / "batch.txt"
    listing.write_text("\n".join(line for line, _ in entries), encoding="utf-8")
    base = ("--nameserver", f"127.0.0.1:{server.port}", "--json", "-q", "-f", str(listing))
    streamed = [o["input"] for o in json_lines(run(*base).stdout)]
    assert streamed[-1] == slow
    started = time.monotonic()
    ordered = [o["input"] for o in json_lines(run(*base, "--in-order").stdout)]
    assert ordered == [line for line, _ in entries]
    assert time.monotonic() - started < 3.5  # one at a time: over 21 x 2 x 100 ms + 0.6 s


@pytest.mark.e2e
def test_knot_unbound_and_tcp(dns_env: Any) -> None:
    """--nameserver ADDR:PORT asks that resolver (the loopback Unbound), over UDP or --tcp."""
    port = dns_env.resolver_port
    for extra in ((), ("--tcp",)):
        result = run(
            "--nameserver", f"127.0.0.1:{port}", *extra, "--json", "example.test", "mail.dead.test"
        )
        ok, failed = json_lines(result.stdout)
        assert len(ok["targets"]) == 5  # the default address limit
        assert (failed["outcome"], failed["status"]) == ("temporary", "4.4.3")
        assert result.returncode == 75


@pytest.mark.e2e
def test_tcp_flag_sends_tcp(fault_server: Any) -> None:
    server = fault_server("$ORIGIN t.test.\n@ SOA ns h 1 1 1 1 60\n@ MX 10 mx\nmx A 192.0.2.1\n")
    result = run("--nameserver", f"127.0.0.1:{server.port}", "--tcp", "t.test")
    assert result.returncode == 0
    assert {q[2] for q in server.queries} == {"tcp"}


@pytest.mark.e2e
def test_deadline_flag(fault_server: Any) -> None:
    """--deadline bounds a domain whose server never answers: 75 in well under --timeout.
    The other domain must be selected within the same deadline: 2 s, generous enough that a
    loaded machine cannot make it time out too."""
    zone = "$ORIGIN d.test.\n@ SOA ns h 1 1 1 1 60\n@ MX 10 mx\nmx A 192.0.2.1\nslow MX 10 mx\n"
    server = fault_server(zone)
    server.set_rule("slow.d.test", "MX", "drop")
    started = time.monotonic()
    result = run(
        "--nameserver", f"127.0.0.1:{server.port}", "--timeout", "20", "--deadline", "2",
        "--json", "slow.d.test", "d.test",
    )  # fmt: skip
    assert time.monotonic() - started < 10  # a hang guard: --timeout is 20 s
    slow, fine = json_lines(result.stdout)
    assert (slow["error"], slow["status"]) == ("DNSTemporaryError", "4.4.3")
    assert "deadline of 2 s expired" in slow["reason"]
    assert "slow.d.test" in slow["reason"]
    assert fine["outcome"] == "ok"
    assert result.returncode == 75


def test_unreachable_nameserver_is_75() -> None:
    """Nothing answering on the given port: temporary failure, exit 75, a clear message -- the
    stub reads the ICMP port unreachable on its connected socket; dnspython waits it out."""
    result = run("--nameserver", "127.0.0.1:9", "--timeout", "0.3", "example.net")
    assert result.returncode == 75
    assert "451 4.4.3" in result.stdout
    assert "MX lookup for example.net: connection refused from 127.0.0.1@9" in result.stdout
    result = run(
        "--resolver", "dnspython", "--nameserver", "127.0.0.1:9", "--timeout", "0.3",
        "example.net",
    )  # fmt: skip
    assert result.returncode == 75
    assert "451 4.4.3" in result.stdout
    assert "MX lookup for example.net: timeout after" in result.stdout
    assert "(asked 127.0.0.1@9)" in result.stdout


# ------------------------------------------------------------------ progress bar and Ctrl-C


def run_with_pty_stderr(cmd: list[str], stdin: str) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal and stdout on a pipe; return (code, out, err)."""
    master, slave = pty.openpty()
    # a real terminal has a size; a new pty has 0 columns, where tqdm draws nothing
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave, cwd=ROOT
    )
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = proc.communicate(stdin.encode(), timeout=60)
    reader.join(timeout=10)
    os.close(master)
    return proc.returncode, out.decode(), b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("bar", ["tqdm", "plain"])
def test_progress_bar_on_a_terminal_stays_out_of_stdout(bar: str) -> None:
    """With stderr a terminal, a progress bar is drawn there; stdout carries only JSON."""
    if bar == "tqdm":
        if not os.environ.get("CI"):  # in CI (.ci/run installs the cli extra) it must be there
            pytest.importorskip("tqdm", reason="the cli extra (tqdm) is not installed")
        cmd = [sys.executable, "-m", "mxselect"]
    else:
        cmd = [sys.executable, "-c", WITHOUT_TQDM]
    cmd += ["--zone", str(DEMO), "--json", "-f", "-"]
    stdin = "example.net\nimplicit.example.net\n" * 40
    code, out, err = run_with_pty_stderr(cmd, stdin)
    assert code == 0
    objs = json_lines(out)
    assert len(objs) == 80
    assert "\r" not in out
    assert "\x1b" not in out
    if bar == "tqdm":
        assert re.search(r"\d+/80 \[", err), (
            err
        )  # tqdm: "  0%|          | 0/80 [00:00<?, ?domain/s]"
        assert "domain/s" in err
    else:
        assert "[" + "." * 30 + "] 0/80 domains" in err
        assert "80/80 domains" in err
    assert "mxselect: 80 domains in" in err
    quiet_code, quiet_out, quiet_err = run_with_pty_stderr([*cmd, "-q"], stdin)
    assert quiet_code == 0
    assert len(json_lines(quiet_out)) == 80
    assert quiet_err == ""


def test_no_progress_bar_when_stderr_is_not_a_terminal() -> None:
    result = demo("--json", "-f", "-", stdin="example.net\n" * 20)
    assert "\r" not in result.stderr
    assert result.stderr.startswith("mxselect: 20 domains in")


@pytest.mark.e2e
def test_ctrl_c_prints_the_summary_and_exits_130(fault_server: Any) -> None:
    """SIGINT mid-batch: what finished was printed, the summary says so, exit 130."""
    zone, entries = batch_zone(60)
    server = fault_server(zone, default_delay_ms=150)
    cmd = [sys.executable, "-m", "mxselect", "--nameserver", f"127.0.0.1:{server.port}"]
    cmd += ["--json", "--concurrency", "2", "-f", "-"]
    pipe = subprocess.PIPE
    with subprocess.Popen(cmd, stdin=pipe, stdout=pipe, stderr=pipe, cwd=ROOT, text=True) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdin.write("\n".join(line for line, _ in entries))
        proc.stdin.close()
        first = proc.stdout.readline()
        assert json.loads(first)["schema"] == 1
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        rest = proc.stdout.read()
        err = proc.stderr.read()
        assert proc.wait(timeout=30) == 130
    printed = 1 + len(rest.splitlines())
    assert printed < len(entries)
    assert f"mxselect: {printed} of {len(entries)} domains in" in err
    assert f"interrupted: {len(entries) - printed} not looked up; exit 130" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------------ DANE (RFC 7672)

#: The demo zone's signed zone, as a validating resolver would report it.
SIGNED = ("--signed", "dane.example.net")
MX1_TLSA = "3 1 1 e8ef66791711a453e47cfc16daffe34b6d745185a7dce54534ca1677416154d5"


def table(text: str) -> list[list[str]]:
    """The rows of a target table (header included), split on runs of two spaces or more:
    the indented lines that are neither warnings nor explained steps."""
    lines = [line.strip() for line in text.splitlines() if line.startswith("  ")]
    rows = [r for r in lines if not r.startswith("warning:") and not re.match(r"\d+\. \[", r)]
    return [re.split(r"\s{2,}", row) for row in rows]


def tls_by_target(*args: str) -> list[tuple[str, str, str]]:
    data = json.loads(demo("--seed", "1", "--json", *args).stdout)
    return [(t["host"], t["address"], t["tls"]["posture"]) for t in data["targets"]]


def test_dane_offline_demo_shows_a_tls_column() -> None:
    """The demo zone's signed zone: DANE-EE, an unusable PKIX-TA record, nothing."""
    result = demo("--seed", "1", *SIGNED, "--dane", "dane.example.net")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "dane.example.net: 4 target(s) (MX, TTL 300, MX secure)"
    assert table(result.stdout) == [
        ["rank", "pref", "host", "address", "family", "tls"],
        ["1", "10", "mx1.dane.example.net", "2001:db8::40", "IPv6", "dane 3 1 1"],
        ["2", "10", "mx1.dane.example.net", "192.0.2.40", "IPv4", "dane 3 1 1"],
        ["3", "20", "mx2.dane.example.net", "192.0.2.41", "IPv4", "dane-encrypt"],
        ["4", "30", "mx3.dane.example.net", "198.51.100.42", "IPv4", "opportunistic"],
    ]
    assert lines[-1] == (
        "  warning: mx2.dane.example.net: the secure TLSA RRset at _25._tcp.mx2.dane.example.net "
        "has no usable record (RFC 6698 §4.1, RFC 7672 §3.1.3): TLS required, unauthenticated"
    )


def test_output_without_a_dane_flag_is_unchanged() -> None:
    """No tls column and no MX security without --dane, --signed or not."""
    plain = demo("--seed", "1", "example.net", "dane.example.net")
    signed = demo("--seed", "1", *SIGNED, "example.net", "dane.example.net")
    assert plain.stdout == signed.stdout
    assert "tls" not in plain.stdout
    assert "secure" not in plain.stdout
    assert plain.stdout.startswith("example.net: 5 target(s) (MX, TTL 300)\n")
    assert table(plain.stdout)[0] == ["rank", "pref", "host", "address", "family"]


def test_dane_insecure_mx_flag() -> None:
    """An unsigned MX RRset naming a signed host: DANE, TLS only, or no DANE (RFC 7672 §2.2.1)."""
    base = ("insecure-mx.example.net", *SIGNED)
    for flags, posture in [
        ((), "dane-insecure-mx"),
        (("--dane-insecure-mx", "dane"), "dane-insecure-mx"),
        (("--dane-insecure-mx", "encrypt"), "dane-encrypt"),
        (("--dane-insecure-mx", "may"), "opportunistic"),
    ]:
        assert {p for _, _, p in tls_by_target(*base, "--dane", *flags)} == {posture}, flags
    text = demo(*base, "--dane").stdout
    assert (
        text.splitlines()[0] == "insecure-mx.example.net: 2 target(s) (MX, TTL 3600, MX insecure)"
    )
    assert table(text)[1][-1] == "dane-insecure-mx 3 1 1"
    assert table(demo(*base, "--dane", "--dane-insecure-mx", "encrypt").stdout)[1][-1] == (
        "dane-encrypt"
    )
    data = json.loads(demo("--json", *base, "--dane").stdout)
    # RFC 7672 §3.2.2: with an insecure MX RRset, the MX host name is the only reference id.
    assert data["targets"][0]["tls"]["reference_ids"] == ["mx1.dane.example.net"]
    assert data["security"] == {"mx": "insecure"}


def test_dane_mandatory_defers_with_exit_75() -> None:
    """Mandatory DANE: only hosts with usable secure TLSA records; else 451 4.7.5, exit 75."""
    kept = demo("--seed", "1", *SIGNED, "--dane-mandatory", "dane.example.net")
    assert kept.returncode == 0
    assert [row[2] for row in table(kept.stdout)[1:]] == ["mx1.dane.example.net"] * 2
    assert "mx3.dane.example.net is not usable: mandatory DANE" in kept.stdout
    for domain in ("nodane.dane.example.net", "insecure-mx.example.net"):
        result = demo(*SIGNED, "--dane-mandatory", domain)
        assert result.returncode == 75, (domain, result.stdout)
        assert result.stdout.startswith(f"{domain}: DaneRequiredError 451 4.7.5\n")
        data = json.loads(demo("--json", *SIGNED, "--dane-mandatory", domain).stdout)
        assert {k: data[k] for k in ("outcome", "error", "reply_code", "status", "exit_code")} == {
            "outcome": "temporary",
            "error": "DaneRequiredError",
            "reply_code": 451,
            "status": "4.7.5",
            "exit_code": 75,
        }
        assert (data["security"], data["targets"]) == (None, [])
    insecure = demo(*SIGNED, "--dane-mandatory", "insecure-mx.example.net").stdout
    assert "its MX RRset is not DNSSEC-secure: delivery MUST be delayed (RFC 7672 §2.2.1)" in (
        insecure
    )
    # No --signed: no DNSSEC status at all, which mandatory DANE cannot work with.
    unknown = demo("--dane-mandatory", "dane.example.net")
    assert unknown.returncode == 75
    assert "reports no DNSSEC status" in unknown.stdout
    # With a usable domain beside it, the temporary failure still wins.
    assert demo(*SIGNED, "--dane-mandatory", "dane.example.net", "nodane.dane.example.net")\
        .returncode == 75  # fmt: skip


def test_tlsa_port_flag() -> None:
    """--tlsa-port 587: _587._tcp TLSA names; mx1 publishes a DANE-TA record there only."""
    result = demo("--seed", "1", "--explain", *SIGNED, "--dane", "--tlsa-port", "587",
                  "dane.example.net")  # fmt: skip
    assert [row[-1] for row in table(result.stdout)[1:]] == [
        "dane 2 0 1", "dane 2 0 1", "opportunistic", "opportunistic",
    ]  # fmt: skip
    assert "_587._tcp.mx1.dane.example.net TLSA secure: 2 0 1 " in result.stdout
    assert "_25._tcp." not in result.stdout
    default = demo("--explain", *SIGNED, "--dane", "dane.example.net").stdout
    assert "_25._tcp.mx1.dane.example.net TLSA secure: 3 1 1 " in default
    assert "_587._tcp." not in default


def test_json_dane_keys() -> None:
    """--json: security, and tls per target and per host, with real values; schema 1."""
    data = json.loads(demo("--seed", "1", "--json", *SIGNED, "--dane", "dane.example.net").stdout)
    assert data["schema"] == 1
    assert data["security"] == {"mx": "secure"}
    first = data["targets"][0]
    assert first["tls"] == {
        "posture": "dane",
        "required": True,
        "authenticate": "dane",
        "sni": "mx1.dane.example.net",
        "reference_ids": ["mx1.dane.example.net", "dane.example.net"],
        "tlsa": [MX1_TLSA],
        "tlsa_base_domain": "mx1.dane.example.net",
        "rule": 'RFC 7672 §2.2: a "secure" TLSA RRset with at least one usable record: any '
        "connection MUST employ TLS encryption and MUST authenticate the SMTP server",
    }
    encrypt = data["targets"][2]["tls"]
    assert (encrypt["posture"], encrypt["required"], encrypt["authenticate"]) == (
        "dane-encrypt", True, None,
    )  # fmt: skip
    assert (encrypt["tlsa"], encrypt["sni"]) == ([], "mx2.dane.example.net")
    hosts = {h["name"]: h for h in data["hosts"]}
    assert list(hosts["mx1.dane.example.net"]) == [
        "name", "preference", "canonical_name", "addresses", "address_security", "tls",
    ]  # fmt: skip
    assert hosts["mx1.dane.example.net"]["tls"] == first["tls"]
    assert {n: h["address_security"] for n, h in hosts.items()} == dict.fromkeys(hosts, "secure")
    assert hosts["mx3.dane.example.net"]["tls"]["posture"] == "opportunistic"
    assert [w["code"] for w in data["warnings"]] == ["tlsa-unusable"]
    assert data["warnings"][0]["host"] == "mx2.dane.example.net"


def test_json_dane_keys_are_present_without_dane() -> None:
    """Every key is always present: without --dane, opportunistic TLS and the status given."""
    plain = json.loads(demo("--json", "implicit.example.net").stdout)
    assert plain["security"] == {"mx": "unknown"}
    assert plain["targets"][0]["tls"] == {
        "posture": "opportunistic",
        "required": False,
        "authenticate": None,
        "sni": None,
        "reference_ids": [],
        "tlsa": [],
        "tlsa_base_domain": None,
        "rule": "RFC 3207 / RFC 7672 §2.2: no secure TLSA records: opportunistic TLS, "
        "cleartext allowed",
    }
    assert plain["hosts"][0]["address_security"] == "unknown"
    signed = json.loads(demo("--json", *SIGNED, "nodane.dane.example.net").stdout)
    assert signed["security"] == {"mx": "secure"}
    # Worked out with DANE on only (a selection without DANE costs what it did).
    assert signed["hosts"][0]["address_security"] == "unknown"
    assert signed["targets"][0]["tls"]["posture"] == "opportunistic"
    dane = json.loads(demo("--json", *SIGNED, "--dane", "nodane.dane.example.net").stdout)
    assert dane["hosts"][0]["address_security"] == "secure"
    unsigned = json.loads(demo("--json", *SIGNED, "example.net").stdout)
    assert unsigned["security"] == {"mx": "insecure"}
    assert json.loads(demo("--json", "nomail.example.net").stdout)["security"] is None


def test_json_schema_documents_the_dane_keys() -> None:
    """The keys of a tls object and of a host appear in the JSON section of the reference."""
    section = README.split("### JSON output", 1)[1].split("\n#", 1)[0]
    data = json.loads(demo("--json", *SIGNED, "--dane", "dane.example.net").stdout)
    for key in [*data["targets"][0]["tls"], *data["hosts"][0], *data["security"]]:
        assert f'"{key}"' in section, key


def test_dane_without_dnssec_status_warns() -> None:
    """--dane without --signed: no DNSSEC status for any answer, one warning, opportunistic."""
    result = demo("--dane", "dane.example.net")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].endswith("(MX, TTL 300, MX unknown)")
    assert {row[-1] for row in table(result.stdout)[1:]} == {"opportunistic"}
    assert "  warning: DANE is on but the resolver reported no DNSSEC status" in result.stdout
    data = json.loads(demo("--json", "--dane", "dane.example.net").stdout)
    assert [w["code"] for w in data["warnings"]] == ["dnssec-unavailable"]
    literal = demo("--dane", "[192.0.2.1]").stdout  # no MX RRset: no MX security shown
    assert literal.splitlines()[0] == "[192.0.2.1]: 1 target(s) (address literal)"


def test_tlsa_lookup_failure_is_secure_delivery_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed TLSA lookup makes its host unusable, never cleartext: 451 4.7.5, exit 75."""
    from mxselect import _cli
    from mxselect.testing import FakeResolver, Fault

    zone_resolver = _cli._zone_resolver

    def failing(*args: Any) -> Any:
        fake = zone_resolver(*args)
        assert isinstance(fake, FakeResolver)
        fake.fail("_25._tcp.mx3.dane.example.net", "TLSA", Fault.SERVFAIL)
        return fake

    monkeypatch.setattr(_cli, "_zone_resolver", failing)
    result = demo(*SIGNED, "--dane", "nodane.dane.example.net")
    assert result.returncode == 75
    assert result.stdout.startswith("nodane.dane.example.net: SecureDeliveryError 451 4.7.5\n")
    data = json.loads(demo("--json", *SIGNED, "--dane", "nodane.dane.example.net").stdout)
    assert (data["error"], data["status"], data["outcome"]) == (
        "SecureDeliveryError", "4.7.5", "temporary",
    )  # fmt: skip
    assert [w["code"] for w in data["warnings"]] == ["tlsa-lookup-failed"]
    # The other hosts of dane.example.net are unaffected: mx3 alone is dropped.
    kept = tls_by_target(*SIGNED, "--dane", "dane.example.net")
    assert kept == [
        ("mx1.dane.example.net", "2001:db8::40", "dane"),
        ("mx1.dane.example.net", "192.0.2.40", "dane"),
        ("mx2.dane.example.net", "192.0.2.41", "dane-encrypt"),
    ]


def test_explain_names_the_rfc_7672_rules() -> None:
    """--explain: the dane and tlsa steps, each naming the RFC sentence that decided."""
    text = demo("--seed", "1", "--explain", *SIGNED, "--dane", "dane.example.net").stdout
    steps = [line.strip() for line in text.splitlines() if re.match(r"^\s+\d+\. \[", line)]
    assert (
        "2. [dane] MX RRset secure: TLSA records of hosts with secure addresses "
        "(RFC 7672 §2.2.1, §2.2.2)"
    ) in steps
    tlsa = [s for s in steps if "[tlsa]" in s]
    assert len(tlsa) == 3
    assert tlsa[0].startswith(
        f"9. [tlsa] mx1.dane.example.net: _25._tcp.mx1.dane.example.net TLSA secure: {MX1_TLSA} "
        "-> dane 3 1 1 (RFC 7672 §2.2: "
    )
    assert "NXDOMAIN (secure) -> opportunistic (RFC 7672 §2.2" in tlsa[2]
    data = json.loads(
        demo("--json", "--explain", *SIGNED, "--dane", "insecure-mx.example.net").stdout
    )
    kinds = [t["kind"] for t in data["trace"]]
    assert kinds.count("dane") == 1
    assert kinds.count("tlsa") == 1
    step = next(t for t in data["trace"] if t["kind"] == "tlsa")
    assert step["host"] == "mx1.dane.example.net"
    assert "RFC 7672 §2.2.1" in step["message"]
    # Unsigned host addresses: no TLSA lookup, and the trace says why (RFC 7672 §2.2.2).
    plain = demo("--explain", *SIGNED, "--dane", "example.net").stdout
    assert "[dane] backup.example.net: no TLSA lookup -> opportunistic (RFC 7672 §2.2.2" in plain
    assert "[tlsa]" not in plain


def test_dane_batch_lines_name_the_first_targets_tls(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("dane.example.net\nnodane.dane.example.net\n", encoding="utf-8")
    lines = demo("-q", "--in-order", "--seed", "1", *SIGNED, "--dane", "-f", str(listing))
    assert lines.stdout.splitlines() == [
        "line 1: dane.example.net  ok  4 target(s), first mx1.dane.example.net 2001:db8::40 "
        "(dane 3 1 1), 1 warning(s)",
        "line 2: nodane.dane.example.net  ok  1 target(s), first mx3.dane.example.net "
        "198.51.100.42 (opportunistic)",
    ]
    plain = demo("-q", "--in-order", "--seed", "1", *SIGNED, "-f", str(listing)).stdout
    assert "(dane" not in plain
    assert "(opportunistic)" not in plain


def test_explain_does_not_call_unknown_addresses_insecure() -> None:
    """Without --signed no answer has a DNSSEC status: the per-host dane steps (and the
    rule of each tls object) should say the status is unknown, not that it is "insecure"."""
    text = demo("--explain", "--dane", "dane.example.net").stdout
    steps = [line for line in text.splitlines() if "[dane] mx" in line]
    assert len(steps) == 3
    assert not any('"insecure"' in step for step in steps), steps
