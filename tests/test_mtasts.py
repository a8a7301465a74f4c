"""MTA-STS (RFC 8461): the pure rules of ``mxselect._sts`` and the stores of ``mxselect.mtasts``.

The scenario IDs are those of ``shared/secure-delivery.md`` §7 (S1, S7-S9, S12-S22, S25, S28
here; the plan integration tests the others). Every pure test passes ``now`` explicitly.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mxselect import Answer, FetchResult, StsEntry, StsMode, StsPolicy, StsRecord
from mxselect._sts import CHECK_INTERVAL, FAILURE_RETRY, MAX_MAX_AGE
from mxselect.mtasts import (
    SCHEMA_VERSION,
    MemoryStore,
    PolicyCache,
    PolicyStore,
    SQLiteStore,
    StsError,
    discover,
    fetched,
    mx_matches,
    parse_policy,
    parse_record,
    policy_matches,
    refresh_due,
)

ROOT = Path(__file__).resolve().parent.parent
T = 1_800_000_000.0  # "now" of the pure tests

ENFORCE = (
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
    "max_age: 86400\r\n"
)


def policy(text: str = ENFORCE) -> StsPolicy:
    return parse_policy(text)


def entry(
    domain: str = "example.com",
    *,
    id: str = "A1",
    fetched_at: float = T - 3600,
    text: str = ENFORCE,
    **kw: object,
) -> StsEntry:
    return StsEntry(
        domain=domain,
        policy=policy(text),
        id=id,
        fetched_at=fetched_at,
        checked_at=kw.pop("checked_at", fetched_at),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def ok(body: str = ENFORCE, content_type: str = "text/plain") -> FetchResult:
    return FetchResult.response(200, content_type, body.encode())


# ------------------------------------------------------------------ TXT records (§3.1)


def test_S22_two_sts_records_mean_no_record() -> None:
    assert parse_record(["v=STSv1; id=a1;", "v=STSv1; id=b2;"]) is None


def test_S22_unrelated_txt_records_are_discarded() -> None:
    assert parse_record(["v=spf1 -all", "v=STSv1; id=20160831085700Z;", "hello"]) == StsRecord(
        "20160831085700Z"
    )


def test_S22_split_strings_are_concatenated_without_spaces() -> None:
    # The resolver gives each record's strings concatenated (Answer.from_txt): "v=STSv1; i" +
    # "d=abc" is one valid record.
    answer = Answer.from_txt(["v=STSv1; i" + "d=abc"])
    assert parse_record(answer.txt) == StsRecord("abc")


def test_S22_id_of_33_characters_is_invalid() -> None:
    assert parse_record(["v=STSv1; id=" + "a" * 32]) == StsRecord("a" * 32)
    assert parse_record(["v=STSv1; id=" + "a" * 33]) is None


@pytest.mark.parametrize(
    "text",
    [
        "v=STSv1;id=x1",
        "v=STSv1; id=x1",
        "v=STSv1;\tid=x1 ;",
        "v=STSv1; id=x1; ext=value",
        "v=STSv1; ext_1.a-b=va:l/u!e; id=x1",
        "v=STSv1; id=x1; id=y2",  # duplicated: the first wins (§3.2)
        "v=STSv1; id=x1 ",  # trailing white space tolerated
    ],
)
def test_S22_valid_records(text: str) -> None:
    assert parse_record([text]) == StsRecord("x1")


@pytest.mark.parametrize(
    "text",
    [
        "v=STSv1;",  # no id
        "v=STSv1; ext=1",  # no id
        "v=STSv1; id=",  # empty id
        "v=STSv1; id=a-b",  # id is letters and digits only
        "v=STSv1; id=x1;; ext=1",  # empty field
        "v=STSv1; id=x1; ext=a=b",  # "=" in an extension value
        "v=STSv1; id=x1; ext",  # not name=value
        "v=STSv1; id=x1; _ext=1",  # the name starts with a letter or digit
        "v=STSv1; id=x1; ext=ü",  # US-ASCII only
        "v=STSv1; id=x1 y",
    ],
)
def test_S22_invalid_records(text: str) -> None:
    assert parse_record([text]) is None


def test_S22_prefix_is_case_sensitive_and_exact() -> None:
    # ABNF %s"v=STSv1" (RFC 7405): case-sensitive; records not beginning "v=STSv1;" are
    # discarded (§3.1), so these are no record at all.
    assert parse_record(["V=STSv1; id=x1"]) is None
    assert parse_record(["v=stsv1; id=x1"]) is None
    assert parse_record(["v=STSv10; id=x1"]) is None
    assert parse_record([" v=STSv1; id=x1"]) is None
    # ...and discarded ones do not count: the one valid record is used.
    assert parse_record(["v=STSv1 ; id=y2", "v=STSv1; id=x1"]) == StsRecord("x1")


def test_S22_no_records() -> None:
    assert parse_record([]) is None


# ------------------------------------------------------------------ policies (§3.2)


def test_S21_crlf_and_lf_both_parse() -> None:
    crlf = parse_policy(ENFORCE)
    lf = parse_policy(ENFORCE.replace("\r\n", "\n"))
    assert crlf.mode is lf.mode is StsMode.ENFORCE
    assert crlf.mx == lf.mx == ("mail.example.com", "*.example.net")
    assert crlf.max_age == lf.max_age == 86400
    assert crlf.text == ENFORCE  # kept as fetched (RFC 8460 policy-string)


def test_S21_unknown_keys_are_ignored_and_may_hold_colons() -> None:
    p = parse_policy(ENFORCE + "x-note: see https://example.com:8443/a\r\nfoo.bar_1: baz\r\n")
    assert p.mode is StsMode.ENFORCE
    assert p.warnings == ()


def test_S21_duplicated_mode_first_wins() -> None:
    assert parse_policy(ENFORCE + "mode: none\r\n").mode is StsMode.ENFORCE
    assert parse_policy(
        ENFORCE.replace("mode: enforce", "mode: testing") + "mode: enforce\n"
    ).mode is (StsMode.TESTING)
    assert parse_policy(ENFORCE + "max_age: 5\nversion: STSv2\n").max_age == 86400


def test_S21_mode_none_without_mx_is_valid() -> None:
    p = parse_policy("version: STSv1\nmode: none\nmax_age: 86400\n")
    assert p.mode is StsMode.NONE
    assert p.mx == ()


def test_S21_version_need_not_come_first() -> None:
    p = parse_policy("mode: testing\nmx: mx.example.org\nmax_age: 0\nversion: STSv1")
    assert p.mode is StsMode.TESTING
    assert p.max_age == 0


def test_S21_white_space_and_empty_lines_are_tolerated() -> None:
    p = parse_policy("version:STSv1\n\nmode:\tenforce  \r\nmx:   mx.example.org\t\nmax_age: 60\n\n")
    assert p.mx == ("mx.example.org",)
    assert p.mode is StsMode.ENFORCE


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("mode: enforce\nmx: a.example\nmax_age: 1\n", "version"),
        ("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "STSv1"),
        ("version: STSv1\nmx: a.example\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmode: enforce\nmx: a.example\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1.5\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmax_age: 1\n", "mx"),
        ("version: STSv1\nmode: testing\nmax_age: 1\n", "mx"),
        ("version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n", "mx pattern"),
        ("version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n", "mx pattern"),
        ("version: STSv1\nmode: enforce\nmx: **.example\nmax_age: 1\n", "mx pattern"),
        ("version: STSv1\nmode: enforce\nmx: mx_1.example\nmax_age: 1\n", "mx pattern"),
        ("version: STSv1\nmode: enforce\nmx: \nmax_age: 1\n", "mx pattern"),
        ("<html><body>hello</body></html>\n", "key: value"),
        ("version: STSv1\nmode enforce\n", "key: value"),
        ("version: STSv1\nmo de: enforce\n", "field name"),
        ("version: STSv1\x00\nmode: none\nmax_age: 1\n", "control"),
        (b"version: STSv1\nmode: none\nmax_age: 1\nx: \xff\n", "UTF-8"),
    ],
)
def test_S21_invalid_policies_raise_with_the_reason(text: str | bytes, why: str) -> None:
    with pytest.raises(StsError, match=why):
        parse_policy(text)


def test_S21_bytes_are_utf8() -> None:
    p = parse_policy((ENFORCE + "note: café\n").encode())
    assert "café" in p.text


def test_S28_max_age_is_clamped_with_a_warning() -> None:
    p = parse_policy(ENFORCE.replace("86400", "99999999999"))
    assert p.max_age == MAX_MAX_AGE == 31557600
    assert p.clamped
    assert any("clamped to 31557600" in w for w in p.warnings)
    exact = parse_policy(ENFORCE.replace("86400", "31557600"))
    assert exact.max_age == 31557600
    assert not exact.clamped
    assert exact.warnings == ()


def test_S9_a_label_pattern_matches_the_a_label_mx() -> None:
    p = parse_policy("version: STSv1\nmode: enforce\nmx: xn--bcher-kva.example\nmax_age: 1\n")
    assert p.mx == ("xn--bcher-kva.example",)
    assert p.warnings == ()
    assert policy_matches(p, "xn--bcher-kva.example.")
    assert policy_matches(p, "bücher.example")  # a U-label host is compared as its A-label


def test_S9_u_label_pattern_is_normalised_with_a_warning() -> None:
    p = parse_policy("version: STSv1\nmode: enforce\nmx: *.Bücher.Example.\nmax_age: 1\n")
    assert p.mx == ("*.xn--bcher-kva.example",)
    assert len(p.warnings) == 1
    assert "A-label" in p.warnings[0]
    assert policy_matches(p, "mx1.xn--bcher-kva.example")


def test_mx_patterns_are_lower_cased_without_trailing_dot() -> None:
    p = parse_policy("version: STSv1\nmode: enforce\nmx: MAIL.Example.COM.\nmax_age: 1\n")
    assert p.mx == ("mail.example.com",)


# ------------------------------------------------------------------ MX matching (§4.1)


def test_S8_wildcard_matches_one_label() -> None:
    assert mx_matches("*.example.com", "mail.example.com")
    assert not mx_matches("*.example.com", "example.com")
    assert not mx_matches("*.example.com", "foo.bar.example.com")


def test_S8_case_insensitive_and_trailing_dots_ignored() -> None:
    assert mx_matches("*.example.com", "MAIL.Example.COM.")
    assert mx_matches("*.Example.com.", "mail.example.com")
    assert mx_matches("mail.example.com.", "Mail.Example.Com")
    assert not mx_matches("mail.example.com", "mail.example.co")
    assert not mx_matches("mail.example.com", "xmail.example.com")


def test_S8_no_suffix_matching_of_the_postfix_kind() -> None:
    # Snawoot's ".example.com" (Postfix: any number of labels) is not what §4.1 says.
    assert not mx_matches("*.example.com", "a.b.c.example.com")
    assert not mx_matches("*.example.com", "badexample.com")
    assert not mx_matches("*.example.com", ".example.com")
    assert not mx_matches("", "example.com")
    assert not mx_matches("example.com", "")


def test_policy_matches_any_pattern() -> None:
    p = policy()
    assert policy_matches(p, "mail.example.com")
    assert policy_matches(p, "mx1.example.net")
    assert not policy_matches(p, "mx1.sub.example.net")
    assert not policy_matches(parse_policy("version: STSv1\nmode: none\nmax_age: 1\n"), "a.b")


def _app_b(mx: str, candidate: str) -> bool:
    """RFC 8461 Appendix B ``policyMatches``, for normalised names (lower case, no dot)."""
    if mx.startswith("*"):
        parts = candidate.split(".", 1)
        return len(parts) == 2 and parts[1] == mx[2:]
    return candidate == mx


#: Few labels, so that names collide often (a match needs the same suffix).
LABEL = st.sampled_from(["a", "mx", "mail", "x-1", "0", "example", "com", "net"])
NAME = st.lists(LABEL, min_size=1, max_size=4).map(".".join)


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(
    base=NAME,
    prefix=st.lists(LABEL, max_size=3),
    wildcard=st.booleans(),
    host_upper=st.booleans(),
    pattern_dot=st.booleans(),
    host_dot=st.booleans(),
    other=NAME,
)
def test_S8_property_mx_matches_agrees_with_appendix_b(
    base: str,
    prefix: list[str],
    wildcard: bool,
    host_upper: bool,
    pattern_dot: bool,
    host_dot: bool,
    other: str,
) -> None:
    pattern = ("*." if wildcard else "") + base
    for host in (".".join([*prefix, base]), other, ".".join([*prefix, other])):
        expected = _app_b(pattern, host)
        shown_host = (host.upper() if host_upper else host) + ("." if host_dot else "")
        shown_pattern = pattern + ("." if pattern_dot else "")
        assert mx_matches(shown_pattern, shown_host) is expected, (pattern, host)


# ------------------------------------------------------------------ discovery (§3.1, §3.3)


def test_S1_no_txt_record_no_policy_no_fetch() -> None:
    for answer in (Answer.nxdomain(), Answer.nodata(), Answer.from_txt(["v=spf1 -all"])):
        d = discover(None, answer, T)
        assert (d.fetch, d.apply, d.source, d.record) == (False, None, None, None)
        assert "no MTA-STS policy applies" in d.reason


def test_S1_no_usable_record_keeps_a_valid_cached_policy() -> None:
    # §3.1 note: the absence of a usable TXT record does not remove the cached policy.
    cached = entry()
    for answer in (Answer.nxdomain(), Answer.nodata(), Answer.from_txt(["v=STSv1; id="])):
        d = discover(cached, answer, T)
        assert not d.fetch
        assert d.apply == cached.policy
        assert d.source == "cached"
        assert d.entry is None  # nothing to store


def test_S14_txt_tempfail_with_and_without_valid_cache() -> None:
    cached = entry()
    d = discover(cached, Answer.tempfail("SERVFAIL"), T)
    assert (d.fetch, d.apply, d.source) == (False, cached.policy, "cached")
    assert "SERVFAIL" in d.reason
    d = discover(None, Answer.tempfail("timeout"), T)
    assert (d.fetch, d.apply, d.source) == (False, None, None)
    expired = entry(fetched_at=T - 86400)
    d = discover(expired, Answer.tempfail("SERVFAIL"), T)
    assert (d.fetch, d.apply, d.source) == (False, None, None)


def test_S14_txt_not_asked_uses_the_cache() -> None:
    cached = entry()
    d = discover(cached, None, T)
    assert (d.fetch, d.apply, d.source) == (False, cached.policy, "cached")
    assert discover(None, None, T).apply is None


def test_S12_same_id_no_fetch() -> None:
    cached = entry(id="A1")
    d = discover(cached, Answer.from_txt(["v=STSv1; id=A1"]), T)
    assert (d.fetch, d.apply, d.source, d.record) == (
        False,
        cached.policy,
        "cached",
        StsRecord("A1"),
    )
    # checked_at moves, fetched_at (the validity) does not.
    assert d.entry == attrs.evolve(cached, checked_at=T)
    assert d.entry is not None
    assert d.entry.fetched_at == cached.fetched_at


def test_S12_same_id_within_a_minute_writes_nothing() -> None:
    cached = entry(id="A1", checked_at=T - CHECK_INTERVAL + 1)
    d = discover(cached, Answer.from_txt(["v=STSv1; id=A1"]), T)
    assert not d.fetch
    assert d.apply == cached.policy
    assert d.entry is None  # no store write per message
    d = discover(cached, Answer.from_txt(["v=STSv1; id=A1"]), T + 1)
    assert d.entry == attrs.evolve(cached, checked_at=T + 1)


def test_new_id_fetches_and_keeps_the_cached_policy_meanwhile() -> None:
    cached = entry(id="A1")
    d = discover(cached, Answer.from_txt(["v=STSv1; id=B2"]), T)
    assert d.fetch
    assert d.record == StsRecord("B2")
    assert d.apply == cached.policy
    assert d.source == "cached"
    assert "A1" in d.reason
    assert "B2" in d.reason


def test_no_cache_fetches() -> None:
    d = discover(None, Answer.from_txt(["v=STSv1; id=B2"]), T)
    assert d.fetch
    assert d.apply is None
    assert d.source is None
    assert d.record == StsRecord("B2")


def test_S15_txt_checks_never_extend_max_age() -> None:
    t0 = T
    f = fetched(None, "example.com", StsRecord("A1"), ok(), t0)
    assert f.entry is not None
    assert f.source == "fetched"
    stored = f.entry
    txt = Answer.from_txt(["v=STSv1; id=A1"])
    for hours in range(1, 24):  # the TXT record seen hourly with the same id
        d = discover(stored, txt, t0 + 3600 * hours)
        assert not d.fetch
        assert d.entry is not None
        stored = d.entry
    assert stored.fetched_at == t0
    assert stored.checked_at == t0 + 23 * 3600
    assert not discover(stored, txt, t0 + 86399).fetch
    d = discover(stored, txt, t0 + 86401)
    assert d.fetch
    assert d.apply is None
    assert "expired" in d.reason


def test_S13_new_id_fetch_fails_valid_cache_applies() -> None:
    cached = entry(id="A1")
    f = fetched(cached, "example.com", StsRecord("B2"), FetchResult.failed("timeout"), T)
    assert (f.apply, f.source, f.failure) == (cached.policy, "cached", "sts-policy-fetch-error")
    assert f.entry == attrs.evolve(cached, failed_id="B2", failed_at=T)
    assert "timeout" in f.reason
    assert "cached policy" in f.reason


def test_S16_redirect_is_a_fetch_error() -> None:
    result = FetchResult.response(301, "text/html", b"")
    f = fetched(None, "example.com", StsRecord("A1"), result, T)
    assert (f.apply, f.source, f.failure) == (None, None, "sts-policy-fetch-error")
    assert "redirects are not followed" in f.reason


@pytest.mark.parametrize("status", [404, 500, 204, 203])
def test_S17_http_errors_are_fetch_errors_never_a_bounce(status: int) -> None:
    f = fetched(
        None,
        "example.com",
        StsRecord("A1"),
        FetchResult.response(status, "text/plain", ENFORCE.encode()),
        T,
    )
    assert (f.apply, f.source, f.failure) == (None, None, "sts-policy-fetch-error")
    assert f"HTTP status {status}" in f.reason
    # the failure is remembered (five-minute rule) in a placeholder that is never valid
    assert f.entry is not None
    assert f.entry.placeholder
    assert not f.entry.valid(T)
    assert (f.entry.failed_id, f.entry.failed_at, f.entry.domain) == ("A1", T, "example.com")


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("text/plain", True),
        ("text/plain; charset=utf-8", True),
        ("Text/Plain;charset=US-ASCII", True),
        ("text/plain; format=flowed; charset=latin1", True),
        ("text/html", False),
        ("text/html; charset=utf-8", False),
        ("application/octet-stream", False),
        ("", False),
    ],
)
def test_S18_media_type(content_type: str, accepted: bool) -> None:
    f = fetched(None, "example.com", StsRecord("A1"), ok(content_type=content_type), T)
    if accepted:
        assert f.source == "fetched"
        assert f.failure is None
    else:
        assert (f.apply, f.failure) == (None, "sts-policy-invalid")
        assert "text/plain" in f.reason


def test_S19_body_of_70_kib_is_rejected() -> None:
    body = (ENFORCE + "x: " + "a" * 70 * 1024 + "\n").encode()
    f = fetched(
        None, "example.com", StsRecord("A1"), FetchResult.response(200, "text/plain", body), T
    )
    assert (f.apply, f.failure) == (None, "sts-policy-fetch-error")
    assert "65536" in f.reason
    small = fetched(
        None, "example.com", StsRecord("A1"), ok(), T, max_bytes=len(ENFORCE.encode()) - 1
    )
    assert small.failure == "sts-policy-fetch-error"
    exact = fetched(None, "example.com", StsRecord("A1"), ok(), T, max_bytes=len(ENFORCE.encode()))
    assert exact.source == "fetched"


def test_S20_timeout_is_a_fetch_error() -> None:
    f = fetched(None, "example.com", StsRecord("A1"), FetchResult.failed("timed out after 60 s"), T)
    assert (f.apply, f.failure) == (None, "sts-policy-fetch-error")
    assert "timed out after 60 s" in f.reason


def test_invalid_policy_is_policy_invalid_and_cache_applies() -> None:
    cached = entry(id="A1")
    bad = ok("version: STSv1\nmode: enforce\nmax_age: 1\n")
    f = fetched(cached, "example.com", StsRecord("B2"), bad, T)
    assert (f.apply, f.source, f.failure) == (cached.policy, "cached", "sts-policy-invalid")
    assert "mx" in f.reason


def test_success_replaces_entry_and_clears_failure() -> None:
    old = entry(id="A1", failed_id="B2", failed_at=T - 600)
    body = ENFORCE.replace("mode: enforce", "mode: testing")
    f = fetched(old, "example.com", StsRecord("B2"), ok(body), T)
    assert f.source == "fetched"
    assert f.failure is None
    assert f.entry == StsEntry(
        domain="example.com", policy=parse_policy(body), id="B2", fetched_at=T, checked_at=T
    )
    assert f.apply is not None
    assert f.apply.mode is StsMode.TESTING


def test_S28_clamp_warning_reaches_the_trace() -> None:
    f = fetched(
        None, "example.com", StsRecord("A1"), ok(ENFORCE.replace("86400", "99999999999")), T
    )
    assert f.apply is not None
    assert f.apply.clamped
    assert "clamped" in f.reason


def test_S25_no_second_fetch_within_five_minutes_of_a_failure() -> None:
    txt = Answer.from_txt(["v=STSv1; id=B2"])
    for cached in (None, entry(id="A1")):
        f = fetched(cached, "example.com", StsRecord("B2"), FetchResult.failed("refused"), T)
        assert f.entry is not None
        d = discover(f.entry, txt, T + 1)
        assert not d.fetch
        assert "not retried" in d.reason
        assert d.apply == (cached.policy if cached else None)
        assert not discover(f.entry, txt, T + FAILURE_RETRY - 1).fetch
        assert discover(f.entry, txt, T + FAILURE_RETRY).fetch
        # the limit is per id: another id is fetched at once
        assert discover(f.entry, Answer.from_txt(["v=STSv1; id=C3"]), T + 1).fetch


def test_S7_mode_none_is_cached_and_applied_as_none() -> None:
    none = "version: STSv1\nmode: none\nmax_age: 86400\n"
    f = fetched(None, "example.com", StsRecord("N1"), ok(none), T)
    assert f.entry is not None
    assert f.apply is not None
    assert f.apply.mode is StsMode.NONE
    d = discover(f.entry, Answer.from_txt(["v=STSv1; id=N1"]), T + 60)
    assert not d.fetch
    assert d.apply is not None
    assert d.apply.mode is StsMode.NONE
    # listed for refresh (the caller raises no alert for it, §10.2)
    assert refresh_due([f.entry], T + 86400 - 1) == ["example.com"]


# ------------------------------------------------------------------ refresh (§3.3, §10.2)


def test_refresh_due_daily_or_expiring_soon() -> None:
    week = ENFORCE.replace("86400", "604800")
    fresh = entry("fresh.example", fetched_at=T - 3600, text=week)
    checked_long_ago = entry("old.example", fetched_at=T - 2 * 86400, text=week)
    checked_recently = entry(
        "checked.example", fetched_at=T - 2 * 86400, checked_at=T - 60, text=week
    )
    expiring = entry("expiring.example", fetched_at=T - 604800 + 3600, checked_at=T, text=week)
    expired = entry("expired.example", fetched_at=T - 604801, text=week)
    placeholder = fetched(
        None, "failed.example", StsRecord("x"), FetchResult.failed("no"), T - 1e6
    ).entry
    assert placeholder is not None
    entries = [fresh, checked_long_ago, checked_recently, expiring, expired, placeholder]
    assert refresh_due(entries, T) == ["expiring.example", "old.example"]
    assert refresh_due(entries, T, refresh=3000) == [
        "expiring.example",
        "fresh.example",
        "old.example",
    ]
    assert refresh_due(entries, T, expiring=0) == ["old.example"]


# ------------------------------------------------------------------ stores


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PolicyStore]:
    if request.param == "memory":
        yield MemoryStore()
    else:
        s = SQLiteStore(tmp_path / "sts.sqlite3")
        yield s
        s.close()


def test_store_contract_get_put_delete_entries(store: PolicyStore) -> None:
    assert isinstance(store, PolicyStore)
    assert store.get("example.com") is None
    a = entry("example.com", failed_id="Z9", failed_at=T - 5)
    b = entry("example.org", text="version: STSv1\nmode: none\nmax_age: 99999999999\n")
    store.put(a)
    store.put(b)
    assert store.get("example.com") == a
    assert store.get("example.org") == b  # warnings and all
    assert sorted(e.domain for e in store.entries()) == ["example.com", "example.org"]
    newer = attrs.evolve(a, id="B2", fetched_at=a.fetched_at + 10, failed_id=None, failed_at=None)
    store.put(newer)
    assert store.get("example.com") == newer
    store.delete("example.com")
    store.delete("nothing.example")
    assert store.get("example.com") is None
    assert [e.domain for e in store.entries()] == ["example.org"]


def test_store_contract_an_older_fetch_never_replaces_a_newer_one(store: PolicyStore) -> None:
    newer = entry(id="B2", fetched_at=T)
    store.put(newer)
    stale = attrs.evolve(entry(id="A1", fetched_at=T - 100), failed_id="B2", failed_at=T + 1)
    store.put(stale)  # computed from the older entry by another process
    assert store.get("example.com") == newer
    placeholder = fetched(None, "example.com", StsRecord("C3"), FetchResult.failed("x"), T).entry
    assert placeholder is not None
    store.put(placeholder)
    assert store.get("example.com") == newer
    same = attrs.evolve(newer, checked_at=T + 50)
    store.put(same)  # same fetch: the update is kept
    assert store.get("example.com") == same


def test_policy_cache_with_a_fake_clock(store: PolicyStore) -> None:
    now = [T]
    cache = PolicyCache(store, clock=lambda: now[0])
    txt = Answer.from_txt(["v=STSv1; id=A1"])
    d = cache.discover("Example.COM.", txt)
    assert d.fetch
    assert d.record is not None
    f = cache.fetched("example.com.", d.record, ok(ENFORCE.replace("86400", "604800")))
    assert f.source == "fetched"
    assert cache.lookup("EXAMPLE.com") == f.entry
    assert cache.policy("example.com") == f.apply
    now[0] = T + 3600
    d = cache.discover("example.com", txt)
    assert not d.fetch
    assert d.source == "cached"
    stored = cache.lookup("example.com")
    assert stored is not None
    assert stored.checked_at == T + 3600
    assert stored.fetched_at == T
    assert cache.refresh_due() == []
    assert cache.refresh_due(now=T + 3600 + 86400) == ["example.com"]  # checked a day ago
    assert cache.refresh_due(now=T + 604800 - 3600) == ["example.com"]  # expires soon
    now[0] = T + 604800
    assert cache.policy("example.com") is None
    assert cache.refresh_due() == []  # expired: nothing to protect
    assert cache.purge() == ["example.com"]
    assert cache.lookup("example.com") is None


def test_policy_cache_purge_keeps_recent_failures(store: PolicyStore) -> None:
    cache = PolicyCache(store, clock=lambda: T)
    cache.fetched("failed.example", StsRecord("A1"), FetchResult.failed("refused"))
    assert cache.purge() == []
    assert cache.purge(now=T + FAILURE_RETRY) == ["failed.example"]


def test_S_sqlite_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "sts.sqlite3"
    with SQLiteStore(path) as s:
        PolicyCache(s, clock=lambda: T).fetched("example.com", StsRecord("A1"), ok())
    with SQLiteStore(path) as s:
        again = s.get("example.com")
        assert again is not None
        assert again.id == "A1"
        assert again.valid(T + 1)
        assert again.policy == parse_policy(ENFORCE)
        version = s._connection().execute("PRAGMA user_version").fetchone()[0]
        mode = s._connection().execute("PRAGMA journal_mode").fetchone()[0]
    assert (version, mode) == (SCHEMA_VERSION, "wal")


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "sts.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        SQLiteStore(path)


def test_sqlite_threads_share_a_store(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "sts.sqlite3")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            rng = random.Random(n)
            for i in range(50):
                s.put(entry(f"d{n}-{i}.example", fetched_at=T + rng.random()))
                assert s.get(f"d{n}-{i}.example") is not None
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list(s.entries())) == 400
    s.close()


_WORKER = textwrap.dedent(
    """
    import random, sys
    sys.path.insert(0, {root!r})
    from mxselect import FetchResult, StsRecord
    from mxselect.mtasts import PolicyCache, SQLiteStore

    n = int(sys.argv[1])
    rng = random.Random(n)
    body = {body!r}.encode()
    store = SQLiteStore({path!r}, timeout=60)
    cache = PolicyCache(store, clock=lambda: 1_800_000_000.0 + rng.random())
    for i in range(60):
        domain = f"p{{n}}-{{i}}.example" if i % 3 else "shared.example"
        result = FetchResult.response(200, "text/plain", body)
        cache.fetched(domain, StsRecord(f"id{{n}}x{{i}}"), result)
        assert store.get(domain) is not None
        list(store.entries())
    print("done", n)
    """
)


def test_sqlite_several_processes_write_and_read_concurrently(tmp_path: Path) -> None:
    path = str(tmp_path / "sts.sqlite3")
    SQLiteStore(path).close()  # create it; the workers also race on opening
    script = _WORKER.format(root=str(ROOT), body=ENFORCE, path=path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(6)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _, err in results]
    with SQLiteStore(path) as s:
        domains = {e.domain for e in s.entries()}
        assert len(domains) == 6 * 40 + 1
        shared = s.get("shared.example")
        assert shared is not None
        assert shared.id.startswith("id")


def _child_puts(path: str, queue: multiprocessing.Queue[str]) -> None:
    store = _INHERITED[path]
    store.put(entry("child.example"))
    got = store.get("child.example")
    queue.put("ok" if got is not None and os.getpid() != _PARENT_PID[0] else "bad")


_INHERITED: dict[str, SQLiteStore] = {}
_PARENT_PID = [0]


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_sqlite_store_created_before_fork_reconnects_in_the_child(tmp_path: Path) -> None:
    path = str(tmp_path / "sts.sqlite3")
    store = SQLiteStore(path)
    store.put(entry("parent.example"))
    _INHERITED[path] = store
    _PARENT_PID[0] = os.getpid()
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    child = ctx.Process(target=_child_puts, args=(path, queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == "ok"
    assert store.get("child.example") is not None
    assert store.get("parent.example") is not None
    store.close()
    del _INHERITED[path]


def test_memory_store_len_and_snapshot() -> None:
    s = MemoryStore()
    s.put(entry("a.example"))
    it = s.entries()
    s.put(entry("b.example"))
    assert [e.domain for e in it] == ["a.example"]
    assert len(s) == 2
