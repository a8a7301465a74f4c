"""``mxselect check --html FILE``: the reports as one self-contained HTML page -- an inline SVG
drawing of each domain's routing (the domain, its preference levels, hosts, addresses, each
coloured by its worst finding) above the findings.

No external resource of any kind (fonts, scripts, images, style sheets): the page opens
without network access. Every piece of text comes from DNS, which an attacker controls, so
every piece is escaped (:func:`html.escape`, quotes too) -- in the SVG as in the HTML.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .check import Finding, Report, Severity

_COLOURS = {"error": "#d64545", "warning": "#e8a33d", "info": "#4a90d9", None: "#3a9d5d"}
_LABELS = {"error": "error", "warning": "warning", "info": "info", None: "ok"}
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
svg{max-width:100%;height:auto;border:1px solid #eee;background:#fcfcfc}
svg text{font-family:ui-monospace,monospace;font-size:12px}
table{border-collapse:collapse;width:100%;margin-top:1em}
th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
.sev{font-weight:bold;color:#fff;border-radius:3px;padding:0 .4em}
.error{background:#d64545}.warning{background:#e8a33d}.info{background:#4a90d9}
.ok{background:#3a9d5d}code{font-family:ui-monospace,monospace}
.legend span{margin-right:1em}
"""
_COLUMNS = (10, 230, 330, 690)  # x of: domain, preference, host, address
_WIDTHS = (210, 90, 350, 300)
_ROW = 30
_MAX_TEXT = 48


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "\u2026"


def _worst(findings: Iterable[Finding]) -> Severity | None:
    best: Severity | None = None
    for finding in findings:
        if best is None or finding.severity.rank > best.rank:
            best = finding.severity
    return best


def _about(finding: Finding, word: str) -> bool:
    """Whether the finding's subject names ``word`` (a host or an address) as a token."""
    return word in finding.subject.replace(",", " ").split()


def _box(
    column: int, row: float, rows: float, label: str, severity: Severity | None, title: str
) -> str:
    x, width = _COLUMNS[column], _WIDTHS[column]
    y, height = 10 + row * _ROW, rows * _ROW - 6
    level = None if severity is None else severity.value
    return (
        f"<g><title>{_e(title)} ({_LABELS[level]})</title>"
        f'<rect x="{x}" y="{y:g}" width="{width}" height="{height:g}" rx="4" '
        f'fill="{_COLOURS[level]}" fill-opacity="0.18" stroke="{_COLOURS[level]}"/>'
        f'<text x="{x + 6}" y="{y + height / 2 + 4:g}">{_e(_short(label))}</text></g>'
    )


def _line(column: int, row: float, rows: float, to_row: float, to_rows: float) -> str:
    x1 = _COLUMNS[column] + _WIDTHS[column]
    x2 = _COLUMNS[column + 1]
    y1 = 10 + row * _ROW + (rows * _ROW - 6) / 2
    y2 = 10 + to_row * _ROW + (to_rows * _ROW - 6) / 2
    return f'<line x1="{x1}" y1="{y1:g}" x2="{x2}" y2="{y2:g}" stroke="#999"/>'


#: Findings whose subject names an MX host that a sender does not use (drawn as "not used");
#: True: the subject is "MX <host>".
_UNUSED = {
    "exchange-nxdomain": False,
    "exchange-no-address": False,
    "exchange-lookup-failed": False,
    "invalid-exchange": True,
    "mx-is-address": True,
    "unsafe-address": False,
}


def _unused(report: Report, used: set[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(host, addresses) named by findings about MX hosts a sender does not use."""
    hosts: dict[str, list[str]] = {}
    for finding in report.findings:
        if finding.code not in _UNUSED:
            continue
        words = finding.subject.split()
        if _UNUSED[finding.code] and words[:1] == ["MX"]:
            words = words[1:]
        if not words or words[0] in used:
            continue
        addresses = hosts.setdefault(words[0], [])
        if finding.code == "unsafe-address" and len(words) > 1 and words[1] not in addresses:
            addresses.append(words[1])
    return [(name, tuple(addresses)) for name, addresses in hosts.items()]


def _drawing(report: Report) -> str:
    findings = report.findings
    selection = report.selection
    used = [] if selection is None else list(selection.hosts)
    hosts: list[tuple[str, int | None, tuple[str, ...]]] = [
        (h.name, h.preference, tuple(str(a) for a in h.addresses)) for h in used
    ]
    hosts += [(n, None, a) for n, a in _unused(report, {h.name for h in used})]
    rows = max(1, sum(max(1, len(addresses)) for _, _, addresses in hosts))
    height = 10 + rows * _ROW + 4
    width = _COLUMNS[3] + _WIDTHS[3] + 10
    parts = [
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(report.domain)} routing">'
    ]
    parts.append(_box(0, 0, rows, report.domain, report.worst, f"domain {report.domain}"))
    row = 0
    levels: dict[int | None, list[tuple[int, int, Severity | None]]] = {}
    for name, preference, addresses in hosts:
        span = max(1, len(addresses))
        about = [f for f in findings if _about(f, name)]
        severity = _worst(about)
        levels.setdefault(preference, []).append((row, span, severity))
        parts.append(_box(2, row, span, name, severity, f"host {name}"))
        for i, text in enumerate(addresses):
            mine = [f for f in about if _about(f, text)] or [f for f in findings if _about(f, text)]
            parts.append(_box(3, row + i, 1, text, _worst(mine), f"{name} {text}"))
            parts.append(_line(2, row, span, row + i, 1))
        row += span
    for preference, spans in levels.items():
        first = spans[0][0]
        last = spans[-1][0] + spans[-1][1]
        worst = None
        for _, _, severity in spans:
            if severity is not None and (worst is None or severity.rank > worst.rank):
                worst = severity
        if preference is None:
            label, title = "not used", "MX hosts senders cannot use"
        elif selection is not None and selection.implicit:
            label, title = "implicit", "implicit MX (the domain's own addresses)"
        else:
            label, title = f"MX {preference}", f"preference {preference}"
        parts.append(_box(1, first, last - first, label, worst, title))
        parts.append(_line(0, 0, rows, first, last - first))
        for start, span, _ in spans:
            parts.append(_line(1, first, last - first, start, span))
    parts.append("</svg>")
    return "".join(parts)


def _findings(report: Report) -> str:
    if not report.findings:
        return "<p>No findings.</p>"
    rows = [
        "<table><thead><tr><th>severity</th><th>code</th><th>subject</th><th>finding</th>"
        "<th>fix</th><th>RFC</th></tr></thead><tbody>"
    ]
    for f in report.findings:
        level = f.severity.value
        rows.append(
            f'<tr><td><span class="sev {level}">{_e(level)}</span></td>'
            f"<td><code>{_e(f.code)}</code></td><td>{_e(f.subject)}</td>"
            f"<td>{_e(f.message)}</td><td>{_e(f.fix)}</td><td>{_e(f.rfc)}</td></tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def render_html(reports: Iterable[Report]) -> str:
    """The reports as one self-contained HTML page (``mxselect check --html FILE``).

    For each report an inline SVG drawing -- the domain, its preference levels, its hosts and
    their addresses, each coloured by the worst finding about it (red error, amber warning,
    blue info, green none) -- and the table of its findings. Inline CSS only; no script and
    no external resource (it opens without network access); all text HTML-escaped (DNS data
    is attacker-controlled).
    """
    reports = list(reports)
    body = []
    for report in reports:
        worst = report.worst
        level = None if worst is None else worst.value
        body.append(
            f'<section><h2>{_e(report.domain)} <span class="sev {_LABELS[level]}">'
            f"{_e(_LABELS[level])}</span></h2>{_drawing(report)}{_findings(report)}</section>"
        )
    legend = "".join(
        f'<span><span class="sev {_LABELS[k]}">{_LABELS[k]}</span></span>' for k in _LABELS
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>mxselect check</title>"
        f"<style>{_CSS}</style></head><body><h1>mxselect check: mail routing</h1>"
        f'<p class="legend">{legend}</p>' + "".join(body) + "</body></html>\n"
    )
