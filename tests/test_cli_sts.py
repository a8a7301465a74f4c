"""The `mxselect` command with MTA-STS (RFC 8461) and TLS-RPT (RFC 8460): `--mta-sts`,
`--sts-cache`, `--sts-policy`, `--sts-fetch-timeout`, `--tlsrpt`, offline on the demo zone.

The demo zone publishes `_mta-sts` records for `example.net` (with a `_smtp._tls` record),
`sts-testing.example.net` and `sts-mismatch.example.net`; the policies are the files in
`examples/`, served by `--sts-policy DOMAIN=FILE`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from test_cli import DEMO, ROOT, demo, run, table

from mxselect import Policy
from mxselect._cli import _parser, _policy, _sts

ENFORCE = "examples/example.net.mta-sts.txt"
TESTING = "examples/sts-testing.example.net.mta-sts.txt"
#: example.net's policy (enforce, mx: *.example.net), served offline.
NET = ("--mta-sts", "--sts-policy", f"example.net={ENFORCE}")
HEADER = (
    "example.net: 5 target(s) (MX, TTL 300), "
    "MTA-STS enforce (fetched, id 20261201, mx: *.example.net)"
)
#: Why sts-mismatch.example.net's only host is dropped.
WHY = (
    "mx1.dane.example.net: it does not match the MTA-STS policy of "
    "sts-mismatch.example.net (mx: *.example.net; RFC 8461 §4.1, §5 enforce: MUST NOT deliver)"
)
MISMATCH = (
    "mx1.dane.example.net is not usable: it does not match the MTA-STS policy of "
    "sts-mismatch.example.net (mx: *.example.net; RFC 8461 §4.1, §5 enforce: MUST NOT deliver)"
)


def one(*args: str) -> dict[str, Any]:
    """The JSON object of a run on one domain."""
    result = demo("--json", "--seed", "1", *args)
    (line,) = result.stdout.splitlines()
    data: dict[str, Any] = json.loads(line)
    return data


def test_offline_demo_enforce_policy() -> None:
    """The command of the brief: the policy in the header, mta-sts for every target."""
    result = demo("--seed", "1", *NET, "example.net")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{HEADER}\n"
        "  rank  pref  host                address        family  tls\n"
        "  1     10    mx1.example.net     2001:db8::10   IPv6    mta-sts\n"
        "  2     10    mx1.example.net     192.0.2.10     IPv4    mta-sts\n"
        "  3     10    mx2.example.net     2001:db8::11   IPv6    mta-sts\n"
        "  4     10    mx2.example.net     192.0.2.11     IPv4    mta-sts\n"
        "  5     20    backup.example.net  198.51.100.20  IPv4    mta-sts\n"
    )
    # Same order as without MTA-STS: every host matches *.example.net.
    plain = demo("--seed", "1", "example.net")
    assert [r[:5] for r in table(result.stdout)[1:]] == table(plain.stdout)[1:]


def test_output_without_the_flags_is_unchanged() -> None:
    """The demo zone's _mta-sts and _smtp._tls records change nothing without the flags."""
    plain = demo("--seed", "1", "example.net", "sts-mismatch.example.net")
    assert plain.returncode == 0
    assert "MTA-STS" not in plain.stdout
    assert "TLS-RPT" not in plain.stdout
    assert plain.stdout.startswith("example.net: 5 target(s) (MX, TTL 300)\n")
    assert table(plain.stdout)[0] == ["rank", "pref", "host", "address", "family"]


def test_a_domain_without_a_policy_says_so() -> None:
    """No _mta-sts record: "no MTA-STS policy", opportunistic TLS, no warning."""
    result = demo(*NET, "implicit.example.net")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == (
        "implicit.example.net: 2 target(s) (implicit MX, TTL 300), no MTA-STS policy"
    )
    assert {row[-1] for row in table(result.stdout)[1:]} == {"opportunistic"}
    assert "warning" not in result.stdout


def test_a_policy_not_served_is_a_failed_fetch_not_an_error() -> None:
    """An _mta-sts record and no --sts-policy for it: 404, delivery as without MTA-STS."""
    result = demo("--seed", "1", "--mta-sts", "example.net")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == (
        "example.net: 5 target(s) (MX, TTL 300), no MTA-STS policy"
    )
    assert "HTTP status 404 (only 200 is valid, RFC 8461 §3.3)" in result.stdout
    data = one("--mta-sts", "example.net")
    assert data["sts"] is None
    assert [w["code"] for w in data["warnings"]] == ["sts-fetch-failed"]


def test_a_broken_policy_file_is_served_as_is(tmp_path: Path) -> None:
    """The file is not checked by the command: the core refuses it as it would on the web."""
    broken = tmp_path / "broken.txt"
    broken.write_text("version: STSv1\nmode: enforce\n", encoding="utf-8")  # no mx
    data = one("--mta-sts", "--sts-policy", f"example.net={broken}", "example.net")
    assert data["exit_code"] == 0
    assert data["sts"] is None
    assert [w["code"] for w in data["warnings"]] == ["sts-fetch-failed"]


def test_testing_mode_keeps_every_host() -> None:
    """Mode testing: the host the policy does not name is kept; all mta-sts-testing."""
    args = ("--mta-sts", "--sts-policy", f"sts-testing.example.net={TESTING}")
    result = demo(*args, "sts-testing.example.net")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == (
        "sts-testing.example.net: 4 target(s) (MX, TTL 3600), "
        "MTA-STS testing (fetched, id 20261202, mx: mx1.example.net)"
    )
    assert [(row[2], row[-1]) for row in table(result.stdout)[1:]] == [
        ("mx1.example.net", "mta-sts-testing"),
        ("mx1.example.net", "mta-sts-testing"),
        ("mx1.dane.example.net", "mta-sts-testing"),
        ("mx1.dane.example.net", "mta-sts-testing"),
    ]
    data = one(*args, "sts-testing.example.net")
    hosts = {h["name"]: h["tls"] for h in data["hosts"]}
    assert not any(tls["required"] for tls in hosts.values())
    assert "does not match" in hosts["mx1.dane.example.net"]["rule"]
    assert "does not match" not in hosts["mx1.example.net"]["rule"]


def test_enforce_without_a_matching_mx_exits_75() -> None:
    """sts-mismatch.example.net: its only host is not in the policy: 451 4.7.5, exit 75."""
    args = ("--mta-sts", "--sts-policy", f"sts-mismatch.example.net={ENFORCE}")
    result = demo(*args, "sts-mismatch.example.net")
    assert result.returncode == 75
    assert result.stdout == (
        "sts-mismatch.example.net: StsPolicyError 451 4.7.5\n"
        f"  no usable mail exchanger for sts-mismatch.example.net: {WHY}\n"
        f"  warning: {MISMATCH}\n"
    )
    data = one(*args, "sts-mismatch.example.net")
    assert {k: data[k] for k in ("outcome", "error", "reply_code", "status", "exit_code")} == {
        "outcome": "temporary",
        "error": "StsPolicyError",
        "reply_code": 451,
        "status": "4.7.5",
        "exit_code": 75,
    }
    assert (data["sts"], data["tlsrpt"], data["targets"]) == (None, [], [])
    assert [(w["code"], w["host"]) for w in data["warnings"]] == [
        ("sts-mx-mismatch", "mx1.dane.example.net")
    ]
    # The temporary failure wins over a usable domain beside it (75 > 0).
    both = demo(*args, "--sts-policy", f"example.net={ENFORCE}", "example.net",
                "sts-mismatch.example.net")  # fmt: skip
    assert both.returncode == 75
    assert both.stdout.startswith(HEADER + "\n")
    # Without --mta-sts the same domain is delivered to, opportunistically.
    assert demo("sts-mismatch.example.net").returncode == 0


def test_tlsrpt_flag() -> None:
    """--tlsrpt: the rua URIs on a TLS-RPT line (or "no record"); none for a literal."""
    result = demo("--seed", "1", "--tlsrpt", "example.net", "implicit.example.net", "[192.0.2.1]")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "example.net: 5 target(s) (MX, TTL 300)"  # no tls column, no MTA-STS
    assert table(result.stdout)[0] == ["rank", "pref", "host", "address", "family"]
    assert [line for line in lines if "TLS-RPT" in line] == [
        "  TLS-RPT: mailto:tlsrpt@example.net",
        "  TLS-RPT: no record",
    ]
    assert lines[7] == "  TLS-RPT: mailto:tlsrpt@example.net"  # after the table
    assert one("--tlsrpt", "example.net")["tlsrpt"] == ["mailto:tlsrpt@example.net"]
    assert one("--tlsrpt", "implicit.example.net")["tlsrpt"] == []
    assert one("example.net")["tlsrpt"] == []  # not asked without the flag
    both = demo("--seed", "1", "--tlsrpt", *NET, "example.net").stdout.splitlines()
    assert both[0] == HEADER
    assert both[-1] == "  TLS-RPT: mailto:tlsrpt@example.net"


def test_json_sts_keys() -> None:
    """--json: sts with the policy's values, tlsrpt, and the targets' mta-sts TLS objects."""
    data = one("--tlsrpt", *NET, "example.net")
    assert data["schema"] == 1
    assert data["sts"] == {
        "mode": "enforce",
        "mx": ["*.example.net"],
        "max_age": 604800,
        "source": "fetched",
        "id": "20261201",
        "warnings": [],
    }
    assert data["tlsrpt"] == ["mailto:tlsrpt@example.net"]
    first = data["targets"][0]["tls"]
    assert {k: first[k] for k in ("posture", "required", "authenticate", "sni", "tlsa")} == {
        "posture": "mta-sts",
        "required": True,
        "authenticate": "pkix",
        "sni": "mx1.example.net",
        "tlsa": [],
    }
    assert first["reference_ids"] == ["mx1.example.net"]
    assert "RFC 8461" in first["rule"]
    assert {h["tls"]["posture"] for h in data["hosts"]} == {"mta-sts"}
    assert data["warnings"] == []
    keys = list(data)
    assert keys[keys.index("security") :][:5] == ["security", "sts", "tlsrpt", "targets", "hosts"]


def test_json_sts_keys_are_present_without_the_flags() -> None:
    for args in (
        ("example.net",),
        ("nomail.example.net",),
        ("[192.0.2.1]",),
        (*NET, "[192.0.2.1]"),
    ):
        data = one(*args)
        assert (data["sts"], data["tlsrpt"]) == (None, []), args


def test_json_schema_documents_the_sts_keys() -> None:
    from test_cli import README

    section = README.split("### JSON output", 1)[1].split("\n#", 1)[0]
    data = one(*NET, "example.net")
    for key in ("sts", "tlsrpt", *data["sts"]):
        assert f'"{key}"' in section or f"`{key}`" in section, key
    assert '"mta-sts"' in section
    assert '"mta-sts-testing"' in section


def test_policy_warnings_are_shown(tmp_path: Path) -> None:
    """What the parser corrected (a max_age above a year, clamped) is a warning line."""
    clamped = tmp_path / "clamped.txt"
    clamped.write_text(
        "version: STSv1\nmode: enforce\nmx: *.example.net\nmax_age: 99999999\n", encoding="utf-8"
    )
    args = ("--mta-sts", "--sts-policy", f"example.net={clamped}", "example.net")
    text = demo(*args).stdout
    assert (
        "  warning: MTA-STS policy: max_age 99999999 is above the maximum of 31557600 "
        "(RFC 8461 §3.2): clamped to 31557600"
    ) in text.splitlines()
    data = one(*args)
    assert data["sts"]["max_age"] == 31557600
    assert len(data["sts"]["warnings"]) == 1


def test_sts_cache_file_is_reused_across_runs(tmp_path: Path) -> None:
    """--sts-cache FILE: the second run applies the cached policy (same id: no fetch)."""
    cache = tmp_path / "sts.db"
    first = one(*NET, "--sts-cache", str(cache), "example.net")
    assert (first["sts"]["source"], first["sts"]["id"]) == ("fetched", "20261201")
    assert cache.exists()
    # No --sts-policy now: a fetch would answer 404 (a warning); none is made.
    again = demo("--seed", "1", "--mta-sts", "--sts-cache", str(cache), "example.net")
    assert again.returncode == 0
    assert again.stdout.splitlines()[0] == HEADER.replace("fetched", "cached")
    assert {row[-1] for row in table(again.stdout)[1:]} == {"mta-sts"}
    assert "warning" not in again.stdout
    second = one("--mta-sts", "--sts-cache", str(cache), "example.net")
    assert second["sts"] == {**first["sts"], "source": "cached"}
    assert second["warnings"] == []
    explained = demo("--explain", "--mta-sts", "--sts-cache", str(cache), "example.net").stdout
    assert (
        "[sts] MTA-STS for example.net: the _mta-sts id 20261201 is that of the cached policy "
        "(mode enforce, valid"
    ) in explained


def test_without_sts_cache_nothing_is_kept_across_runs(tmp_path: Path) -> None:
    """The default is a store in memory for the run: the next run fetches again."""
    assert one(*NET, "example.net")["sts"]["source"] == "fetched"
    assert one(*NET, "example.net")["sts"]["source"] == "fetched"
    assert one("--mta-sts", "example.net")["sts"] is None
    assert list(tmp_path.iterdir()) == []
    # Within one run, each lookup of a domain gets the id of the policy applied.
    results = demo("--json", *NET, "example.net", "example.net")
    assert {json.loads(line)["sts"]["id"] for line in results.stdout.splitlines()} == {"20261201"}


def test_a_cached_policy_applies_when_the_new_one_cannot_be_fetched(tmp_path: Path) -> None:
    """A new _mta-sts id whose fetch fails: the cached policy still valid applies, with the
    warning sts-policy-stale (RFC 8461 §3.3)."""
    cache = tmp_path / "sts.db"
    assert one(*NET, "--sts-cache", str(cache), "example.net")["sts"]["source"] == "fetched"
    zone = tmp_path / "demo.zone"
    zone.write_text(
        DEMO.read_text(encoding="utf-8").replace("id=20261201", "id=20261299"), encoding="utf-8"
    )
    result = run("--zone", str(zone), "--json", "--mta-sts", "--sts-cache", str(cache),
                 "example.net")  # fmt: skip
    data = json.loads(result.stdout)
    assert (data["sts"]["source"], data["sts"]["id"]) == ("cached", "20261201")
    assert [w["code"] for w in data["warnings"]] == ["sts-policy-stale"]


def test_explain_shows_the_sts_steps() -> None:
    text = demo("--seed", "1", "--explain", *NET, "example.net").stdout
    assert (
        "   2. [sts] MTA-STS for example.net: the _mta-sts id 20261201 is new (no cached "
        "policy): fetch"
    ) in text.splitlines()
    assert (
        "   8. [sts] MTA-STS policy of example.net: fetched the policy id 20261201: mode "
        "enforce, max_age 604800, mx *.example.net"
    ) in text.splitlines()
    args = ("--mta-sts", "--sts-policy", f"sts-mismatch.example.net={ENFORCE}")
    data = one("--explain", *args, "sts-mismatch.example.net")
    kinds = [t["kind"] for t in data["trace"]]
    assert kinds == ["mx", "sts", "order", "lookup", "sts", "sts-mx-mismatch", "outcome"]
    assert "trace" not in one(*args, "sts-mismatch.example.net")


def test_dane_and_mta_sts_together() -> None:
    """Both on: the MX security and the policy in the header; DANE hosts keep dane."""
    result = demo("--seed", "1", "--signed", "dane.example.net", "--dane", *NET,
                  "example.net", "dane.example.net")  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[0] == HEADER.replace("TTL 300)", "TTL 300, MX insecure)")
    assert "dane.example.net: 4 target(s) (MX, TTL 300, MX secure), no MTA-STS policy" in lines
    assert [row[-1] for row in table(result.stdout)[-4:]] == [
        "dane 3 1 1", "dane 3 1 1", "dane-encrypt", "opportunistic",
    ]  # fmt: skip


def test_address_literal_has_no_policy() -> None:
    """RFC 8461 §3.4: no policy for an address literal; the tls column is still shown."""
    result = demo("--tlsrpt", *NET, "[192.0.2.1]")
    assert result.stdout.splitlines()[0] == "[192.0.2.1]: 1 target(s) (address literal)"
    assert table(result.stdout)[1][-1] == "opportunistic"
    assert "TLS-RPT" not in result.stdout


def test_batch_lines_name_the_first_targets_posture(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("example.net\nsts-mismatch.example.net\n", encoding="utf-8")
    mismatch = ("--sts-policy", f"sts-mismatch.example.net={ENFORCE}")
    result = demo("-q", "--in-order", "--seed", "1", *NET, *mismatch, "-f", str(listing))
    assert result.returncode == 75
    assert result.stdout.splitlines()[0] == (
        "line 1: example.net  ok  5 target(s), first mx1.example.net 2001:db8::10 (mta-sts)"
    )
    assert result.stdout.splitlines()[1].startswith(
        "line 2: sts-mismatch.example.net  451 4.7.5 StsPolicyError: "
    )


def test_sts_fetch_timeout_flag() -> None:
    args = _parser().parse_args(["--mta-sts", "--sts-fetch-timeout", "2.5", "example.net"])
    assert _policy(args) == Policy(mta_sts=True, sts_fetch_timeout=2.5)
    assert demo(*NET, "--sts-fetch-timeout", "2.5", "example.net").returncode == 0


@pytest.mark.parametrize(
    "value",
    ["example.net", "=examples/example.net.mta-sts.txt", "example.net=", "[192.0.2.1]=x",
     "bad_domain.example=x", "a b=x"],
)  # fmt: skip
def test_sts_policy_parse_errors_are_usage_errors(value: str) -> None:
    result = demo("--mta-sts", "--sts-policy", value, "example.net")
    assert result.returncode == 64
    assert result.stdout == ""
    assert f"argument --sts-policy: invalid DOMAIN=FILE value: '{value}'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--mta-sts", "--sts-policy", "example.net=missing.txt"), "cannot read policy file"),
        (("--mta-sts", "--sts-policy", f"example.net={ENFORCE}",
          "--sts-policy", f"Example.NET.={ENFORCE}"), "--sts-policy example.net: given twice"),
        (("--sts-policy", f"example.net={ENFORCE}"), "--sts-policy needs --mta-sts"),
        (("--sts-cache", "sts.db"), "--sts-cache needs --mta-sts"),
        (("--sts-fetch-timeout", "5"), "--sts-fetch-timeout needs --mta-sts"),
        (("--mta-sts", "--sts-fetch-timeout", "0"), "invalid number of seconds value"),
        (("--mta-sts", "--sts-cache", "examples/missing/sts.db"), "cannot use --sts-cache"),
        (("--mta-sts", "--sts-cache", "examples/recipients.txt"), "file is not a database"),
    ],
)  # fmt: skip
def test_sts_usage_errors(args: tuple[str, ...], message: str) -> None:
    before = sorted(p.name for p in (ROOT / "examples").iterdir())
    result = demo(*args, "example.net")
    assert result.returncode == 64, result.stderr
    assert result.stdout == ""
    assert message in result.stderr
    assert sorted(p.name for p in (ROOT / "examples").iterdir()) == before
    assert not (ROOT / "sts.db").exists()


def test_sts_policy_needs_zone() -> None:
    """Online the policies are fetched: --sts-policy is for --zone only."""
    result = run("--nameserver", "127.0.0.1", "--mta-sts", "--sts-policy",
                 f"example.net={ENFORCE}", "example.net")  # fmt: skip
    assert result.returncode == 64
    assert "--sts-policy needs --zone" in result.stderr


def test_online_fetcher_is_httpx() -> None:
    """Online, the policies are fetched with HttpxFetcher, kept in a MemoryStore by default."""
    from mxselect.fetch import HttpxFetcher
    from mxselect.mtasts import MemoryStore

    parser = _parser()
    args = parser.parse_args(["--mta-sts", "example.net"])
    sts = _sts(args, _policy(args), parser)
    assert isinstance(sts.fetcher, HttpxFetcher)
    assert isinstance(sts.store, MemoryStore)
    off = parser.parse_args(["example.net"])
    assert _sts(off, _policy(off), parser).fetcher is None


def test_online_without_httpx_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    monkeypatch.setitem(sys.modules, "mxselect.fetch", None)
    result = run("--nameserver", "127.0.0.1", "--mta-sts", "example.net")
    assert result.returncode == 64
    assert result.stdout == ""
    assert "--mta-sts needs httpx" in result.stderr
    assert "pip install 'mxselect[mta-sts]'" in result.stderr
    # Offline nothing is fetched over HTTPS: httpx is not needed.
    assert demo("--seed", "1", *NET, "example.net").stdout.startswith(HEADER + "\n")


def test_help_names_the_flags_and_the_default_cache() -> None:
    result = run("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for flag in ("--mta-sts", "--sts-cache FILE", "--sts-policy DOMAIN=FILE", "--tlsrpt",
                 "--sts-fetch-timeout SECONDS"):  # fmt: skip
        assert flag in text, flag
    assert "default: no cache, policies are kept in memory for the run only" in text
