"""The minimal `mxselect` command, run as a subprocess (the full command is issue #4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.zone"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mxselect", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_readme_command_outputs_are_exact() -> None:
    """Every `$ mxselect ...` block of the README is what the command prints (seeded runs)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = readme.split("$ mxselect ")[1:]
    assert len(blocks) >= 2
    for block in blocks:
        command, _, expected = block.split("```", 1)[0].partition("\n")
        args = command.split()
        assert args[:2] == ["--zone", "examples/demo.zone"]
        result = run(*args)
        assert result.stdout == expected
        assert result.returncode in (0, 69)


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
    }
    for domain, code in cases.items():
        result = run("--zone", str(DEMO), domain)
        assert result.returncode == code, (domain, result.stdout, result.stderr)
    assert run("--zone", str(DEMO), "example.net", "missing.example.net").returncode == 68


def test_json_output() -> None:
    """--json: one object per domain with the outcome, targets and error fields."""
    result = run(
        "--zone", str(DEMO), "--seed", "3", "--json", "implicit.example.net", "nomail.example.net"
    )
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["outcome"] == "ok"
    assert first["implicit"] is True
    assert [t["address"] for t in first["targets"]] == ["2001:db8::30", "192.0.2.30"]
    assert {k: second[k] for k in ("outcome", "error", "reply_code", "status")} == {
        "outcome": "permanent",
        "error": "NullMXError",
        "reply_code": 556,
        "status": "5.1.10",
    }


def test_seed_makes_output_reproducible() -> None:
    """The same --seed gives the same order."""
    outputs = {run("--zone", str(DEMO), "--seed", "11", "example.net").stdout for _ in range(3)}
    assert len(outputs) == 1


def test_usage_error_is_64() -> None:
    """No domain, or an unreadable zone: exit 64."""
    assert run().returncode == 64
    assert run("--seed", "x", "example.net").returncode == 64
    result = run("--zone", "does-not-exist.zone", "example.net")
    assert result.returncode == 64
    assert "cannot read zone file" in result.stderr


@pytest.mark.e2e
def test_nameserver_flag_against_unbound(dns_env: object) -> None:
    """--nameserver ADDR:PORT asks that resolver (here the loopback Unbound)."""
    port = dns_env.resolver_port  # type: ignore[attr-defined]
    result = run("--nameserver", f"127.0.0.1:{port}", "--json", "example.test", "mail.dead.test")
    ok, failed = (json.loads(line) for line in result.stdout.splitlines())
    assert len(ok["targets"]) == 5  # the default address limit
    assert (failed["outcome"], failed["status"]) == ("temporary", "4.4.3")
    assert result.returncode == 75


def test_unreachable_nameserver_is_75() -> None:
    """Nothing answering on the given port: temporary failure, exit 75, a clear message."""
    result = run("--nameserver", "127.0.0.1:9", "--timeout", "0.3", "example.net")
    assert result.returncode == 75
    assert "MX lookup for example.net: timeout" in result.stdout


def test_explain_flag() -> None:
    """--explain prints the decision trace; with --json it is a 'trace' list."""
    text = run("--zone", str(DEMO), "--seed", "1", "--explain", "broken.example.net").stdout
    assert "[lookup] gone.example.net: the host does not exist (NXDOMAIN)" in text
    data = json.loads(run("--zone", str(DEMO), "--json", "--explain", "nomail.example.net").stdout)
    assert [t["kind"] for t in data["trace"]] == ["mx", "outcome"]
