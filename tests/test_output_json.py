"""The command's JSON line and its writer (issue 19: ``mxselect -f`` throughput).

``json_line`` writes the ``--json`` object directly; it must be, character for character, what
``json.dumps(as_json(result), ensure_ascii=False)`` gives, for every kind of outcome. The
writer (:class:`Progress` with ``coalesce``) puts the results of one event-loop turn out in one
write, in order, before the loop waits again, and reports a closed pipe to its caller."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
from pathlib import Path

import pytest

import mxselect
from mxselect import Dane, Policy
from mxselect._cli import _select, _Sts
from mxselect._model import Posture, SelectionWarning, TlsRequirement, WarningCode
from mxselect._output import Item, Progress, Result, as_json, json_line, render
from mxselect.exceptions import DNSTemporaryError, NullMXError
from mxselect.mtasts import MemoryStore
from mxselect.testing import FakeFetcher, FakeResolver

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DOMAINS = [
    "example.net",
    "alias.example.net",
    "nomail.example.net",
    "implicit.example.net",
    "cname-mx.example.net",
    "broken.example.net",
    "dead.example.net",
    "mixed-null.example.net",
    "insecure-mx.example.net",
    "dane.example.net",
    "nodane.dane.example.net",
    "sts-testing.example.net",
    "sts-mismatch.example.net",
    "nodata.example.net",
    "missing.example.net",
    "a..b",
    "[192.0.2.1]",
    "[IPv6:2001:db8::1]",
    "ünïcode.example",
]
POLICIES = [
    Policy(),
    Policy(dane=Dane.OPPORTUNISTIC),
    Policy(dane=Dane.MANDATORY),
    Policy(mta_sts=True, tlsrpt=True),
    Policy(mta_sts=True, dane=Dane.OPPORTUNISTIC, max_addresses=None),
]


def reference(result: Result, with_trace: bool) -> str:
    """What the command printed before json_line: the dictionary, dumped."""
    return json.dumps(as_json(result, with_trace), ensure_ascii=False)


def demo_results() -> list[Result]:
    resolver = FakeResolver.from_zone(
        (EXAMPLES / "demo.zone").read_text(), signed=["dane.example.net"]
    )
    fetcher = FakeFetcher(
        {
            "example.net": (EXAMPLES / "example.net.mta-sts.txt").read_bytes(),
            "sts-testing.example.net": (
                EXAMPLES / "sts-testing.example.net.mta-sts.txt"
            ).read_bytes(),
        }
    )

    async def main() -> list[Result]:
        results = []
        for policy in POLICIES:
            sts = _Sts(fetcher, MemoryStore()) if policy.mta_sts else _Sts()
            for n, domain in enumerate(DOMAINS):
                item = Item(n, f"<user@{domain}>" if n % 3 else domain, n or None, domain)
                results.append(await _select(item, resolver, policy, 5, None, sts))
        return results

    return asyncio.run(main())


def test_json_line_is_json_dumps_of_as_json_for_every_demo_outcome() -> None:
    results = demo_results()
    assert {r.error is None for r in results} == {True, False}  # successes and errors
    assert any(r.selection is not None and r.selection.sts_policy for r in results)
    for result in results:
        for with_trace in (False, True):
            assert json_line(result, with_trace) == reference(result, with_trace)
            assert render(result, json_lines=True, batch=True, explained=with_trace) == reference(
                result, with_trace
            )


def test_json_line_escapes_what_json_escapes_and_keeps_unicode() -> None:
    """Quotes, backslashes, control characters, non-ASCII and lone surrogates (the command
    reads its file with errors='replace', but an argument may hold one) in every string."""
    text = 'q"uo\\te\n\t\x00\x1f é 中 \U0001f600 \ud800 <a@b>'
    warning = SelectionWarning(
        WarningCode.UNSAFE_ADDRESS, text, text, address=ipaddress.ip_address("::1")
    )
    error = DNSTemporaryError(text, domain="example.org", warnings=(warning,), retry_after=90)
    result = Result(Item(0, text, None, text), None, error)
    line = json_line(result, True)
    assert line == reference(result, True)
    assert json.loads(line)["input"] == text
    assert json.loads(line)["retry_after"] == error.retry_after
    null = NullMXError("no mail", domain="example.org")
    assert json_line(Result(Item(1, "x", 7, "x"), None, null), False) == reference(
        Result(Item(1, "x", 7, "x"), None, null), False
    )


def test_json_line_renders_a_tls_requirement_again_when_it_is_another_object() -> None:
    """The rendering kept per requirement object follows the object, not a stale text."""
    resolver = FakeResolver.from_zone(
        "example.org. 300 IN MX 10 mx.example.org.\nmx.example.org. 300 IN A 192.0.2.1\n"
    )
    selection = mxselect.select_targets("example.org", resolver=resolver)
    for rule in ("first", "second", "first"):
        tls = TlsRequirement(posture=Posture.DANE_ENCRYPT, required=True, rule=rule)
        hosts = tuple(h.__class__(**{**vars_of(h), "tls": tls}) for h in selection.hosts)
        changed = selection.__class__(**{**vars_of(selection), "hosts": hosts})
        result = Result(Item(0, "example.org", None, "example.org"), changed, None)
        assert json_line(result, False) == reference(result, False)
        assert json.loads(json_line(result, False))["hosts"][0]["tls"]["rule"] == rule


def vars_of(obj: object) -> dict[str, object]:
    import attrs

    return {f.name: getattr(obj, f.name) for f in attrs.fields(type(obj)) if f.init}


class Recording(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.broken = False

    def write(self, text: str) -> int:
        if self.broken:
            raise BrokenPipeError(32, "Broken pipe")
        self.writes += 1
        return super().write(text)


def test_coalesced_writes_one_write_per_loop_turn_in_order_before_the_loop_waits() -> None:
    out = Recording()
    progress = Progress(5, False, out, io.StringIO(), coalesce=True)

    async def main() -> list[str]:
        seen = []
        for text in ("one", "two", "three"):
            progress.write(text)
        assert out.getvalue() == ""  # held until the loop's next turn
        await asyncio.sleep(0)
        seen.append(out.getvalue())
        progress.write("four")
        await asyncio.sleep(0)
        seen.append(out.getvalue())
        return seen

    seen = asyncio.run(main())
    assert seen == ["one\ntwo\nthree\n", "one\ntwo\nthree\nfour\n"]
    assert out.writes == 2
    progress.write("five")  # no loop running: at once
    assert out.getvalue().endswith("four\nfive\n")
    progress.close()
    assert progress.done == 5


def test_coalesced_write_error_reaches_the_caller() -> None:
    out = Recording()
    progress = Progress(3, False, out, io.StringIO(), coalesce=True)

    async def main() -> None:
        out.broken = True
        progress.write("one")
        await asyncio.sleep(0)  # the write fails in the loop's callback
        progress.write("two")

    with pytest.raises(BrokenPipeError):
        asyncio.run(main())
    out.broken = True

    async def last() -> None:
        progress.write("three")

    asyncio.run(last())
    with pytest.raises(BrokenPipeError):
        progress.close()


def test_coalesced_close_writes_what_is_held_back() -> None:
    out = Recording()
    progress = Progress(2, False, out, io.StringIO(), coalesce=True)

    async def main() -> None:
        progress.write("one")
        progress.write("two")
        progress.close()  # e.g. Ctrl-C: nothing computed is lost

    asyncio.run(main())
    assert out.getvalue() == "one\ntwo\n"
