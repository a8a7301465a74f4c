"""What the ``mxselect`` command reports, and how it looks.

The records of one outcome (:class:`Item`, :class:`Result`), the sysexits code an outcome maps
to, and their renderings: the target table (:func:`as_text`), the batch line (:func:`as_line`),
the ``--json`` object (:func:`as_json`), the batch summary (:func:`summary`). These are pure
functions of a result; the only writer is :class:`Progress`, which puts the rendered results on
stdout and a progress bar on stderr. Argument handling and running live in ``_cli``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from ._answers import IPAddress
from ._model import OPPORTUNISTIC_TLS, Host, Selection, SelectionWarning, TlsRequirement, explain
from .exceptions import InvalidDomainError, MXSelectError, NoSuchDomainError, TemporaryError

if TYPE_CHECKING:
    from .cache import CacheStats

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOHOST = 68
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
EX_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C

_SEVERITY = [EX_OK, EX_DATAERR, EX_NOHOST, EX_UNAVAILABLE, EX_TEMPFAIL]

#: Version of the ``--json`` object layout (the ``schema`` key of every object).
JSON_SCHEMA = 1


def exit_code(error: MXSelectError | None) -> int:
    """The sysexits code for an outcome."""
    if error is None:
        return EX_OK
    if isinstance(error, TemporaryError):
        return EX_TEMPFAIL
    if isinstance(error, InvalidDomainError):
        return EX_DATAERR
    if isinstance(error, NoSuchDomainError):
        return EX_NOHOST
    return EX_UNAVAILABLE


def worst(codes: Sequence[int]) -> int:
    """The exit code that wins among several outcomes (75 > 69 > 68 > 65 > 0)."""
    return max(codes, key=_SEVERITY.index, default=EX_OK)


# ------------------------------------------------------------------------------------ records


@attrs.frozen
class Item:
    """One thing to look up: the text given, where it came from, and the domain part."""

    index: int
    text: str
    line: int | None
    domain: str


@attrs.frozen
class Result:
    """The outcome for one item; ``policy_id``: the id of the MTA-STS policy applied (or of
    the one that refused, :class:`~mxselect.StsPolicyError`), when known."""

    item: Item
    selection: Selection | None
    error: MXSelectError | None
    policy_id: str | None = None

    @property
    def code(self) -> int:
        return exit_code(self.error)

    @property
    def label(self) -> str:
        """The summary bucket: ``ok`` or the error class name."""
        return "ok" if self.error is None else type(self.error).__name__


@attrs.define
class Tally:
    """What the batch summary needs: counts per outcome and the worst exit code so far."""

    counts: Counter[str] = attrs.field(factory=Counter)
    code: int = EX_OK

    def add(self, result: Result) -> None:
        self.counts[result.label] += 1
        self.code = worst([self.code, result.code])

    @property
    def done(self) -> int:
        return sum(self.counts.values())


@attrs.frozen
class Show:
    """What the renderings add beside the targets: ``dane`` (``--dane``, ``--dane-mandatory``)
    the MX RRset's DNSSEC status and the ``tls`` column; ``mta_sts`` (``--mta-sts``) the policy
    in the header and the ``tls`` column; ``tlsrpt`` (``--tlsrpt``) the reporting URIs."""

    dane: bool = False
    mta_sts: bool = False
    tlsrpt: bool = False

    @property
    def tls(self) -> bool:
        """Whether the ``tls`` column is shown: DANE or MTA-STS decides the postures."""
        return self.dane or self.mta_sts


# ---------------------------------------------------------------------------------- renderings


def _warnings(result: Result) -> list[dict[str, Any]]:
    source = result.selection if result.selection is not None else result.error
    assert source is not None
    return [
        {
            "code": w.code.value,
            "message": w.message,
            "host": w.host,
            "address": None if w.address is None else str(w.address),
        }
        for w in source.warnings
    ]


def _tls(tls: TlsRequirement) -> dict[str, Any]:
    """A :class:`TlsRequirement` as JSON, TLSA records in presentation form (``"3 1 1 ab.."``)."""
    return {
        "posture": tls.posture.value,
        "required": tls.required,
        "authenticate": tls.authenticate,
        "sni": tls.sni,
        "reference_ids": list(tls.reference_ids),
        "tlsa": [str(r) for r in tls.tlsa],
        "tlsa_base_domain": tls.tlsa_base_domain,
        "rule": tls.rule,
    }


def _host(host: Host) -> dict[str, Any]:
    return {
        "name": host.name,
        "preference": host.preference,
        "canonical_name": host.canonical_name,
        "addresses": [str(a) for a in host.addresses],
        "address_security": host.address_security.value,
        "tls": _tls(host.tls),
    }


def _sts(result: Result) -> dict[str, Any] | None:
    """The MTA-STS policy applied, as JSON (``None``: no policy, or no selection)."""
    selection = result.selection
    if selection is None or selection.sts_policy is None:
        return None
    policy = selection.sts_policy
    return {
        "mode": policy.mode.value,
        "mx": list(policy.mx),
        "max_age": policy.max_age,
        "source": selection.sts_source,
        "id": result.policy_id,
        "warnings": list(policy.warnings),
    }


def as_json(result: Result, with_trace: bool) -> dict[str, Any]:
    """The ``--json`` object for one result; every key is always present (schema 1): the DANE
    ones too, opportunistic TLS and the DNSSEC status the resolver gave when DANE is off, and
    ``sts`` (``null``) and ``tlsrpt`` (``[]``) without ``--mta-sts`` and ``--tlsrpt``."""
    selection, error = result.selection, result.error
    data: dict[str, Any] = {
        "schema": JSON_SCHEMA,
        "input": result.item.text,
        "line": result.item.line,
        "domain": result.item.domain,
        "outcome": "ok"
        if error is None
        else "temporary"
        if isinstance(error, TemporaryError)
        else "permanent",
        "exit_code": result.code,
        "error": None if error is None else type(error).__name__,
        "reply_code": None if error is None else error.reply_code,
        "status": None if error is None else error.status,
        "reason": None if error is None else error.reason,
        "retry_after": error.retry_after if isinstance(error, TemporaryError) else None,
        "canonical_domain": None if selection is None else selection.canonical_domain,
        "implicit": None if selection is None else selection.implicit,
        "address_literal": None if selection is None else selection.address_literal,
        "ttl": None if selection is None else selection.ttl,
        "security": None if selection is None else {"mx": selection.mx_security.value},
        "sts": _sts(result),
        "tlsrpt": [] if selection is None else list(selection.tlsrpt),
        "targets": []
        if selection is None
        else [
            {
                "rank": rank,
                "host": t.host,
                "preference": t.preference,
                "address": str(t.address),
                "family": t.family,
                "tls": _tls(t.tls),
            }
            for rank, t in enumerate(selection, 1)
        ],
        "hosts": [] if selection is None else [_host(h) for h in selection.hosts],
        "warnings": _warnings(result),
    }
    if with_trace:
        trace = selection.trace if selection is not None else error.trace if error else ()
        data["trace"] = [{"kind": t.kind, "message": t.message, "host": t.host} for t in trace]
    return data


# The JSON line, written directly: the text ``json.dumps(as_json(result, with_trace),
# ensure_ascii=False)`` gives, character for character (tests/test_output_json.py checks it),
# without building the dictionaries and walking them again. Strings go through the json
# module's own (C) string encoder; any value of another type than expected, through an encoder
# made once, so that the text is json's in every case. The TLS requirement, the same object for
# every target of a host (and one shared value without DANE), is rendered once.

_ENCODER = json.JSONEncoder(ensure_ascii=False, check_circular=False)
_encode = _ENCODER.encode
_string: Callable[[str], str] = json.encoder.encode_basestring


def _j(value: object) -> str:
    """One JSON value, as ``json.dumps(value, ensure_ascii=False)`` writes it."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return _string(value)  # type: ignore[arg-type]
    if kind is int:
        return int.__repr__(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    return _encode(value)


def _strings(values: Iterable[object]) -> str:
    """A JSON array of the ``str()`` of each value."""
    return "[" + ", ".join([_string(str(v)) for v in values]) + "]"


def _tls_json_of(tls: TlsRequirement) -> str:
    return (
        f'{{"posture": {_j(tls.posture.value)}, "required": {_j(tls.required)}, '
        f'"authenticate": {_j(tls.authenticate)}, "sni": {_j(tls.sni)}, '
        f'"reference_ids": {_strings_as_is(tls.reference_ids)}, "tlsa": {_strings(tls.tlsa)}, '
        f'"tlsa_base_domain": {_j(tls.tlsa_base_domain)}, "rule": {_j(tls.rule)}}}'
    )


def _strings_as_is(values: Iterable[object]) -> str:
    """A JSON array of the values themselves (``list(values)``)."""
    return "[" + ", ".join([_j(v) for v in values]) + "]"


_OPPORTUNISTIC_JSON = _tls_json_of(OPPORTUNISTIC_TLS)
#: id -> (the requirement, its JSON): the object is kept, so its id is not reused meanwhile.
_TLS_JSON: dict[int, tuple[TlsRequirement, str]] = {}
_TLS_JSON_MAX = 4096


def _tls_json(tls: TlsRequirement) -> str:
    """:func:`_tls` as JSON text, rendered once per requirement object."""
    if tls is OPPORTUNISTIC_TLS:
        return _OPPORTUNISTIC_JSON
    known = _TLS_JSON.get(id(tls))
    if known is not None and known[0] is tls:
        return known[1]
    text = _tls_json_of(tls)
    if len(_TLS_JSON) >= _TLS_JSON_MAX:
        _TLS_JSON.clear()
    _TLS_JSON[id(tls)] = (tls, text)
    return text


#: address -> its JSON string (``str()`` of an IPv6 address costs more than the lookup).
_ADDRESS_JSON: dict[IPAddress, str] = {}
_ADDRESS_JSON_MAX = 65536


def _address_json(address: IPAddress) -> str:
    text = _ADDRESS_JSON.get(address)
    if text is None:
        if len(_ADDRESS_JSON) >= _ADDRESS_JSON_MAX:
            _ADDRESS_JSON.clear()
        text = _ADDRESS_JSON[address] = _string(str(address))
    return text


def _warnings_json(warnings: Iterable[SelectionWarning]) -> str:
    return (
        "["
        + ", ".join(
            [
                f'{{"code": {_j(w.code.value)}, "message": {_j(w.message)}, '
                f'"host": {_j(w.host)}, "address": '
                f"{'null' if w.address is None else _string(str(w.address))}}}"
                for w in warnings
            ]
        )
        + "]"
    )


def _sts_json(result: Result) -> str:
    selection = result.selection
    if selection is None or selection.sts_policy is None:
        return "null"
    policy = selection.sts_policy
    return (
        f'{{"mode": {_j(policy.mode.value)}, "mx": {_strings_as_is(policy.mx)}, '
        f'"max_age": {_j(policy.max_age)}, "source": {_j(selection.sts_source)}, '
        f'"id": {_j(result.policy_id)}, "warnings": {_strings_as_is(policy.warnings)}}}'
    )


def json_line(result: Result, with_trace: bool) -> str:
    """The ``--json`` line for one result: exactly ``json.dumps(as_json(result, with_trace),
    ensure_ascii=False)``, written without the intermediate dictionaries."""
    item, selection, error = result.item, result.selection, result.error
    head = (
        f'{{"schema": {JSON_SCHEMA}, "input": {_string(item.text)}, "line": {_j(item.line)}, '
        f'"domain": {_string(item.domain)}, '
    )
    if error is None:
        middle = (
            '"outcome": "ok", "exit_code": 0, "error": null, "reply_code": null, '
            '"status": null, "reason": null, "retry_after": null, '
        )
    else:
        if isinstance(error, TemporaryError):
            outcome, retry_after = '"temporary"', _j(error.retry_after)
        else:
            outcome, retry_after = '"permanent"', "null"
        middle = (
            f'"outcome": {outcome}, "exit_code": {_j(result.code)}, '
            f'"error": {_string(type(error).__name__)}, "reply_code": {_j(error.reply_code)}, '
            f'"status": {_j(error.status)}, "reason": {_j(error.reason)}, '
            f'"retry_after": {retry_after}, '
        )
    if selection is None:
        body = (
            '"canonical_domain": null, "implicit": null, "address_literal": null, "ttl": null, '
            '"security": null, "sts": null, "tlsrpt": [], "targets": [], "hosts": [], '
        )
    else:
        address = _address_json
        targets = ", ".join(
            [
                f'{{"rank": {rank}, "host": {_string(t.host)}, "preference": {_j(t.preference)}, '
                f'"address": {address(t.address)}, "family": {_j(t.family)}, '
                f'"tls": {_tls_json(t.tls)}}}'
                for rank, t in enumerate(selection, 1)
            ]
        )
        hosts = ", ".join(
            [
                f'{{"name": {_string(h.name)}, "preference": {_j(h.preference)}, '
                f'"canonical_name": {_j(h.canonical_name)}, '
                f'"addresses": [{", ".join([address(a) for a in h.addresses])}], '
                f'"address_security": {_j(h.address_security.value)}, '
                f'"tls": {_tls_json(h.tls)}}}'
                for h in selection.hosts
            ]
        )
        body = (
            f'"canonical_domain": {_j(selection.canonical_domain)}, '
            f'"implicit": {_j(selection.implicit)}, '
            f'"address_literal": {_j(selection.address_literal)}, "ttl": {_j(selection.ttl)}, '
            f'"security": {{"mx": {_j(selection.mx_security.value)}}}, '
            f'"sts": {_sts_json(result)}, "tlsrpt": {_strings_as_is(selection.tlsrpt)}, '
            f'"targets": [{targets}], "hosts": [{hosts}], '
        )
    source = selection if selection is not None else error
    assert source is not None
    tail = f'"warnings": {_warnings_json(source.warnings)}'
    if with_trace:
        trace = selection.trace if selection is not None else error.trace if error else ()
        steps = ", ".join(
            [
                f'{{"kind": {_j(t.kind)}, "message": {_j(t.message)}, "host": {_j(t.host)}}}'
                for t in trace
            ]
        )
        tail += f', "trace": [{steps}]'
    return head + middle + body + tail + "}"


def _where(item: Item) -> str:
    return item.text if item.line is None else f"line {item.line}: {item.text}"


def _sts_header(result: Result) -> str:
    """The MTA-STS part of the header: ``MTA-STS enforce (fetched, id 20261201, mx: *.example.net)``
    or ``no MTA-STS policy``."""
    selection = result.selection
    assert selection is not None
    policy = selection.sts_policy
    if policy is None:
        return "no MTA-STS policy"
    details = [selection.sts_source or "", f"id {result.policy_id}" if result.policy_id else ""]
    details.append(f"mx: {', '.join(policy.mx)}" if policy.mx else "")
    return f"MTA-STS {policy.mode.value} ({', '.join(d for d in details if d)})"


def as_text(result: Result, with_trace: bool, show: Show = Show()) -> str:
    """The readable block for one result: a target table and warnings, or the error. With
    ``show.dane`` the header names the MX RRset's DNSSEC status; with ``show.mta_sts`` the
    MTA-STS policy applied; with either a ``tls`` column tells how TLS must be used with each
    target (:class:`~mxselect.TlsRequirement`); ``show.tlsrpt`` adds a ``TLS-RPT`` line."""
    tls = show.tls
    selection, error = result.selection, result.error
    name = _where(result.item)
    if error is not None:
        lines = [f"{name}: {type(error).__name__} {error.reply_code} {error.status}"]
        lines.append(f"  {error.reason}")
        lines += [f"  warning: {w.message}" for w in error.warnings]
        trace = error.trace
    else:
        assert selection is not None
        how = (
            "address literal"
            if selection.address_literal
            else ("implicit MX" if selection.implicit else "MX")
        )
        ttl = f", TTL {selection.ttl}" if selection.ttl is not None else ""
        via = (
            f", via CNAME {selection.canonical_domain}"
            if selection.canonical_domain != selection.domain
            else ""
        )
        # DANE on: how secure the MX RRset was (RFC 7672 §2.2.1); a literal has none.
        literal = selection.address_literal
        security = f", MX {selection.mx_security}" if show.dane and not literal else ""
        # MTA-STS on: the policy applied; a literal has none (RFC 8461 §3.4: no DNS used).
        sts = f", {_sts_header(result)}" if show.mta_sts and not literal else ""
        lines = [f"{name}: {len(selection)} target(s) ({how}{via}{ttl}{security}){sts}"]
        rows = [("rank", "pref", "host", "address", "family", *(("tls",) if tls else ()))]
        rows += [
            (
                str(i),
                str(t.preference),
                t.host,
                str(t.address),
                f"IPv{t.family}",
                *((str(t.tls),) if tls else ()),
            )
            for i, t in enumerate(selection, 1)
        ]
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines += [
            "  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
            for r in rows
        ]
        if show.tlsrpt and not literal:
            rua = ", ".join(selection.tlsrpt) if selection.tlsrpt else "no record"
            lines.append(f"  TLS-RPT: {rua}")
        policy = selection.sts_policy
        lines += [f"  warning: MTA-STS policy: {w}" for w in (policy.warnings if policy else ())]
        lines += [f"  warning: {w.message}" for w in selection.warnings]
        trace = selection.trace
    if with_trace:
        lines += ["  " + line for line in explain(trace).splitlines()]
    return "\n".join(lines)


def as_line(result: Result, show: Show = Show()) -> str:
    """The compact one-line form used in batch mode; with ``show.tls`` (DANE or MTA-STS on) the
    first target's TLS requirement."""
    selection, error = result.selection, result.error
    name = _where(result.item)
    if error is not None:
        return f"{name}  {error.reply_code} {error.status} {type(error).__name__}: {error.reason}"
    assert selection is not None
    first = next(iter(selection))
    warned = f", {len(selection.warnings)} warning(s)" if selection.warnings else ""
    how = f" ({first.tls})" if show.tls else ""
    return (
        f"{name}  ok  {len(selection)} target(s), first {first.host} {first.address}{how}{warned}"
    )


def render(
    result: Result, *, json_lines: bool, batch: bool, explained: bool, show: Show = Show()
) -> str:
    """What the command prints for one result: a JSON line (``--json``), the batch line (batch
    mode without ``--explain``) or the readable block; ``show``: what DANE, MTA-STS and TLS-RPT
    add to the text forms (the JSON object has every key)."""
    if json_lines:
        return json_line(result, explained)
    if batch and not explained:
        return as_line(result, show)
    return as_text(result, explained, show)


def summary(
    tally: Tally, total: int, elapsed: float, interrupted: bool, cache: CacheStats | None = None
) -> str:
    """The batch summary: counts per outcome, elapsed time, rate, DNS queries, the exit code."""
    counts, done = tally.counts, tally.done
    rate = done / elapsed if elapsed > 0 else 0.0
    head = f"{done} of {total} domains" if interrupted else f"{done} domains"
    lines = [f"mxselect: {head} in {elapsed:.2f} s ({rate:.1f} domains/s)"]
    order = sorted(counts, key=lambda label: (label != "ok", -counts[label], label))
    width = max((len(label) for label in order), default=0)
    lines += [f"  {label.ljust(width)}  {counts[label]}" for label in order]
    if cache is not None:
        lines.append(
            f"  DNS: {cache.upstream} queries sent, "
            f"{cache.hits + cache.coalesced} answered by the cache"
        )
    if interrupted:
        lines.append(f"  interrupted: {total - done} not looked up; exit {EX_INTERRUPTED}")
    else:
        lines.append(f"  exit {tally.code}")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------- writer


class Progress:
    """Writes results to ``out`` and a progress bar to ``err``: tqdm's when the ``cli`` extra is
    installed, else a plain one. Disabled, it only writes the results.

    ``coalesce`` (disabled only): inside a running event loop, the results written during one
    turn of the loop go out in one write and one flush, at the start of its next turn -- before
    it waits for anything, so results still stream as they finish; outside a loop, each result
    is flushed at once. An error of that write (a closed pipe) is raised by the next
    :meth:`write`, or by :meth:`close`."""

    def __init__(
        self, total: int, enabled: bool, out: TextIO, err: TextIO, *, coalesce: bool = False
    ) -> None:
        self.total = total
        self.done = 0
        self.enabled = enabled
        self.out = out
        self.err = err
        self.started = time.monotonic()
        self._last = 0.0
        self._tqdm: Any = None
        self._coalesce = coalesce and not enabled
        self._pending: list[str] = []
        self._error: BaseException | None = None
        if enabled:
            try:
                from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
            except ImportError:
                self._draw(force=True)
            else:
                self._tqdm = tqdm(total=total, unit="domain", file=err, leave=False)

    def write(self, text: str) -> None:
        """Print a result on ``out`` without tearing the bar."""
        if self._coalesce:
            self._raise_error()
            self._pending.append(text)
            self.done += 1
            if len(self._pending) == 1:
                import asyncio

                try:
                    asyncio.get_running_loop().call_soon(self._flush_pending)
                except RuntimeError:  # no loop running: at once
                    self._flush_pending()
                    self._raise_error()
            return
        if self._tqdm is not None:
            self._tqdm.write(text, file=self.out)
        else:
            if self.enabled:
                self.err.write("\r\x1b[K")
            self.out.write(text + "\n")
            self.out.flush()
        self.done += 1
        if self._tqdm is not None:
            self._tqdm.update(1)
        elif self.enabled:
            self._draw()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1 and self.done < self.total:
            return
        self._last = now
        width = 30
        filled = width * self.done // self.total if self.total else width
        rate = self.done / max(now - self.started, 1e-9)
        self.err.write(
            f"\r\x1b[K[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
            f"domains, {rate:.1f}/s"
        )
        self.err.flush()

    def _flush_pending(self) -> None:
        """Write the results held back (one write, one flush); an error is kept for later."""
        if not self._pending:
            return
        text = "\n".join(self._pending) + "\n"
        self._pending.clear()
        try:
            self.out.write(text)
            self.out.flush()
        except Exception as exc:  # BrokenPipeError and the like: raised in the caller's path
            self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        """Write what is held back (raising its error, if any) and clear the bar."""
        self._flush_pending()
        self._raise_error()
        if self._tqdm is not None:
            self._tqdm.close()
        elif self.enabled:
            self.err.write("\r\x1b[K")
            self.err.flush()
