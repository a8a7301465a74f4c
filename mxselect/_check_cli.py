"""``mxselect check DOMAIN...``: the mail-routing doctor on the command line (a thin layer over
:mod:`mxselect.check`).

Exit codes: 0 no warning and no error (INFO findings are fine), 1 the worst finding is a
warning, 2 the worst finding is an error, 64 usage error, 130 interrupted; with several
domains the worst wins. Not sysexits (as ``mxselect DOMAIN`` is): a check reports on the
records, not on the delivery of one message.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _cli
from ._output import EX_INTERRUPTED, Item, Progress, Tally, summary
from ._probe import PROBE_DEADLINE, PROBE_TIMEOUT
from .check import Report, Severity, acheck, aprobe, render_html

if TYPE_CHECKING:
    from ._policy import Policy
    from .typing import AsyncResolver

EXIT_OK = 0
EXIT_WARNING = 1
EXIT_ERROR = 2

#: The policy flags ``check`` takes (the rest are set by :func:`mxselect.check.check_policy`).
_CHECK_FLAGS = ("families", "cname_limit", "with_unsafe", "without_unsafe")


def exit_code(report: Report) -> int:
    """0, 1 or 2 by the worst finding of ``report``."""
    worst = report.worst
    if worst is Severity.ERROR:
        return EXIT_ERROR
    if worst is Severity.WARNING:
        return EXIT_WARNING
    return EXIT_OK


def _port(text: str) -> int:
    value = _cli._positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _cli._Parser(
        prog="mxselect check",
        description="Check the mail routing of each DOMAIN (MX records, their hosts and "
        "addresses) and say what to fix, with the RFC behind each finding.",
        epilog="Exit codes: 0 no warning or error, 1 warnings, 2 errors, 64 usage, "
        "130 interrupted; with several domains the worst wins.",
    )
    parser.add_argument("domains", nargs="*", metavar="DOMAIN", help="a domain (or an address)")
    parser.add_argument(
        "-f",
        "--file",
        metavar="FILE",
        help="batch mode: one domain or e-mail address per line ('-': stdin); blank lines "
        "and # comments are skipped; reports stream as they finish",
    )
    parser.add_argument(
        "--concurrency",
        type=_cli._positive_int,
        default=_cli.DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"checks running at once (default {_cli.DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--in-order", action="store_true", help="batch mode: print reports in input order"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar and no batch summary"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per domain (JSON Lines, schema 1)"
    )
    parser.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write the reports to FILE as one self-contained HTML page (a drawing of "
        "the routing, the findings)",
    )
    smtp = parser.add_argument_group("SMTP probe (opt-in)")
    smtp.add_argument(
        "--probe",
        action="store_true",
        help="connect to each selected target on port 25: banner, EHLO, STARTTLS, the "
        "certificate against its DANE/MTA-STS requirement (never to an unsafe address)",
    )
    smtp.add_argument(
        "--probe-timeout",
        type=_cli._seconds,
        default=PROBE_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds the probe of one target may take (default {PROBE_TIMEOUT:g})",
    )
    smtp.add_argument(
        "--probe-deadline",
        type=_cli._seconds,
        default=PROBE_DEADLINE,
        metavar="SECONDS",
        help=f"seconds the probe of one domain may take (default {PROBE_DEADLINE:g})",
    )
    smtp.add_argument(
        "--probe-port", type=_port, default=25, metavar="PORT", help="the port (default 25)"
    )
    smtp.add_argument(
        "--probe-cafile",
        type=Path,
        metavar="FILE",
        help="MTA-STS targets: trust the CA certificates of this PEM file instead of the system's",
    )
    dns = parser.add_argument_group("DNS (as for mxselect DOMAIN)")
    dns.add_argument("--zone", action="append", type=Path, metavar="FILE")
    dns.add_argument("--signed", action="append", type=_cli._zone_name, metavar="ZONE")
    dns.add_argument("--nameserver", action="append", metavar="ADDR[:PORT]")
    dns.add_argument("--resolver", choices=_cli.RESOLVERS)  # default: the stub resolver
    dns.add_argument("--resolv-conf", metavar="FILE")
    dns.add_argument("--timeout", type=_cli._seconds, default=5.0, metavar="SECONDS")
    dns.add_argument("--deadline", type=_cli._seconds, metavar="SECONDS")
    dns.add_argument("--tcp", action="store_true")
    dns.add_argument("--no-cache", action="store_true")
    dns.add_argument(
        "--sts-policy",
        action="append",
        type=_cli._sts_policy,
        metavar="DOMAIN=FILE",
        help="with --zone: serve FILE as the MTA-STS policy of DOMAIN, offline (repeatable; "
        "any other policy answers 404); online the policies are fetched over HTTPS",
    )
    pol = parser.add_argument_group("policy")
    for flag in _cli._POLICY_FLAGS:
        if flag.field in _CHECK_FLAGS:
            flag.add_to(pol)
    return parser


# ------------------------------------------------------------------------------------ output


def as_text(report: Report, item: Item) -> str:
    """The human report: a head line, then the findings grouped by severity."""
    where = f"line {item.line}: " if item.line is not None else ""
    counts = [
        f"{n} {s.value}{'s' if n != 1 and s is not Severity.INFO else ''}"
        for s in Severity
        if (n := report.count(s))
    ]
    head = (
        f"{where}{report.domain}: "
        + ("ok" if report.ok else "problems found")
        + (f" ({', '.join(counts)})" if counts else " (no findings)")
    )
    lines = [head]
    for severity in Severity:
        findings = [f for f in report.findings if f.severity is severity]
        if not findings:
            continue
        lines.append(f"  {severity.value}:")
        for finding in findings:
            lines.append(f"    [{finding.code}] {finding.subject} ({finding.rfc})")
            lines.append(f"      {finding.message}")
            lines.append(f"      fix: {finding.fix}")
    return "\n".join(lines)


def as_json(report: Report, item: Item) -> str:
    """The ``--json`` line: :meth:`Report.as_dict` with the input as given and its line."""
    data: dict[str, Any] = report.as_dict()
    data["input"] = item.text
    data["line"] = item.line
    return json.dumps(data, ensure_ascii=False)


# --------------------------------------------------------------------------------------- run


def main(argv: Sequence[str]) -> int:
    """Run ``mxselect check`` on ``argv`` (the arguments after ``check``); the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        try:
            policy = _cli._policy(args)
        except ValueError as exc:
            parser.error(str(exc))
        items = _cli._items(args, parser)
        resolver = _cli._resolver(args, parser)
        fetcher = _fetcher(args, parser)
    except _cli._Exit as exc:
        return exc.code
    return _run(args, policy, items, resolver, fetcher)


def _fetcher(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    """Offline (``--zone``) the ``--sts-policy`` files (a FakeFetcher: 404 for the rest);
    online ``None``: the check's default (HttpxFetcher, or no fetch without httpx)."""
    if args.sts_policy and not args.zone:
        parser.error("--sts-policy needs --zone (online, the policies are fetched over HTTPS)")
    if not args.zone:
        return None
    from .testing import FakeFetcher

    return FakeFetcher(_cli._policies(args.sts_policy or [], parser))


def _run(
    args: argparse.Namespace,
    policy: Policy,
    items: list[Item],
    resolver: AsyncResolver,
    fetcher: Any = None,
) -> int:
    import asyncio

    batch = args.file is not None
    tally = Tally()
    progress = Progress(
        len(items), batch and not args.quiet and sys.stderr.isatty(), sys.stdout, sys.stderr
    )

    reports: list[Report] = []

    def emit(result: tuple[Item, Report]) -> None:
        item, report = result
        reports.append(report)
        code = exit_code(report)
        tally.counts[("ok", "warnings", "errors")[code]] += 1
        tally.code = max(tally.code, code)
        progress.write(as_json(report, item) if args.json else as_text(report, item))

    async def one(item: Item) -> tuple[Item, Report]:
        report = await acheck(
            item.domain, resolver=resolver, policy=policy, deadline=args.deadline, fetcher=fetcher
        )
        if args.probe:
            report = await aprobe(
                report,
                policy=policy,
                port=args.probe_port,
                timeout=args.probe_timeout,
                deadline=args.probe_deadline,
                cafile=args.probe_cafile,
            )
        return item, report

    run = _cli._run_streaming if batch and not args.in_order else _cli._run_in_order
    started = time.monotonic()
    interrupted = False
    try:
        asyncio.run(run(items, one, emit, args.concurrency))  # type: ignore[arg-type]
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
    if args.html is not None:
        try:
            args.html.write_text(render_html(reports), encoding="utf-8")
        except OSError as exc:
            print(f"mxselect check: cannot write {args.html}: {exc}", file=sys.stderr)
            tally.code = max(tally.code, EXIT_ERROR)
    if (batch or interrupted) and not args.quiet:
        elapsed = time.monotonic() - started
        text = summary(tally, len(items), elapsed, interrupted, _cli._stats(resolver))
        print(text.replace("mxselect:", "mxselect check:", 1), file=sys.stderr)
    return EX_INTERRUPTED if interrupted else tally.code
