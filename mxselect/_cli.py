"""The ``mxselect`` command: look up where mail for a domain goes.

Exit codes follow sysexits(3), which MTAs understand: 0 success, 64 usage error, 65 invalid
domain (EX_DATAERR), 68 no such domain (EX_NOHOST), 69 null MX or no usable host
(EX_UNAVAILABLE), 75 temporary failure (EX_TEMPFAIL). With several domains the worst code wins,
in the order 75 > 69 > 68 > 65 > 0 (a temporary failure first: retrying may change everything).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from ._drivers import select_targets
from ._model import Selection, explain
from .exceptions import (
    DNSTemporaryError,
    InvalidDomainError,
    MXSelectError,
    NoSuchDomainError,
    TemporaryError,
)

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOHOST = 68
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75

_SEVERITY = [EX_OK, EX_DATAERR, EX_NOHOST, EX_UNAVAILABLE, EX_TEMPFAIL]


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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Usage errors exit 64 (EX_USAGE), not argparse's 2."""
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mxselect",
        description="Show the mail exchangers and addresses to try for each DOMAIN, in order "
        "(RFC 5321 §5.1, RFC 7505), or why mail to it bounces or must wait.",
        epilog="Exit codes (sysexits): 0 ok, 64 usage, 65 invalid domain, 68 no such domain, "
        "69 null MX or no usable host, 75 temporary failure; the worst wins.",
    )
    parser.add_argument("domains", nargs="+", metavar="DOMAIN", help="domain or address literal")
    parser.add_argument(
        "--zone",
        action="append",
        type=Path,
        metavar="FILE",
        help="answer from this RFC 1035 master file instead of the network (repeatable)",
    )
    parser.add_argument(
        "--nameserver",
        action="append",
        metavar="ADDR[:PORT]",
        help="ask this resolver instead of the system's (repeatable; [v6addr]:port for IPv6)",
    )
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument("--seed", type=int, help="seed the shuffle of equal preferences")
    parser.add_argument("--json", action="store_true", help="one JSON object per domain")
    parser.add_argument(
        "--explain", action="store_true", help="also show every decision taken, in order"
    )
    parser.add_argument("--version", action="version", version=f"mxselect {__version__}")
    return parser


def _split_server(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, 53


def _resolver(args: argparse.Namespace, parser: argparse.ArgumentParser) -> object:
    if args.zone:
        from .testing import FakeResolver

        fake = FakeResolver()
        for path in args.zone:
            try:
                fake.load_zone(path.read_text(encoding="utf-8"))
            except OSError as exc:
                parser.exit(EX_USAGE, f"mxselect: cannot read zone file {path}: {exc}\n")
            except Exception as exc:
                parser.exit(EX_USAGE, f"mxselect: bad zone file {path}: {exc}\n")
        return fake
    import dns.resolver

    if args.nameserver:
        resolver = dns.resolver.Resolver(configure=False)
        servers = []
        try:
            servers = [_split_server(s) for s in args.nameserver]
        except ValueError:
            parser.exit(EX_USAGE, "mxselect: --nameserver takes ADDR or ADDR:PORT\n")
        resolver.nameservers = [host for host, _ in servers]
        resolver.port = servers[0][1]
    else:
        try:
            resolver = dns.resolver.Resolver()
        except Exception as exc:
            parser.exit(EX_TEMPFAIL, f"mxselect: no system resolver configuration: {exc}\n")
    resolver.lifetime = args.timeout
    return resolver


def _as_json(domain: str, selection: Selection | None, error: MXSelectError | None) -> Any:
    if selection is not None:
        return {
            "domain": domain,
            "outcome": "ok",
            "canonical_domain": selection.canonical_domain,
            "implicit": selection.implicit,
            "address_literal": selection.address_literal,
            "ttl": selection.ttl,
            "targets": [
                {"host": t.host, "preference": t.preference, "address": str(t.address)}
                for t in selection
            ],
            "hosts": [
                {
                    "name": h.name,
                    "preference": h.preference,
                    "canonical_name": h.canonical_name,
                    "addresses": [str(a) for a in h.addresses],
                }
                for h in selection.hosts
            ],
            "warnings": [{"code": w.code.value, "message": w.message} for w in selection.warnings],
        }
    assert error is not None
    return {
        "domain": domain,
        "outcome": "temporary" if isinstance(error, DNSTemporaryError) else "permanent",
        "error": type(error).__name__,
        "reply_code": error.reply_code,
        "status": error.status,
        "reason": error.reason,
        "warnings": [{"code": w.code.value, "message": w.message} for w in error.warnings],
    }


def _as_text(domain: str, selection: Selection | None, error: MXSelectError | None) -> str:
    if error is not None:
        lines = [
            f"{domain}: {type(error).__name__} {error.reply_code} {error.status}",
            f"  {error.reason}",
        ]
        lines += [f"  warning: {w.message}" for w in error.warnings]
        return "\n".join(lines)
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
    lines = [f"{domain}: {len(selection)} target(s) ({how}{via}{ttl})"]
    rows = [("rank", "pref", "host", "address", "family")]
    rows += [
        (str(i), str(t.preference), t.host, str(t.address), f"IPv{t.family}")
        for i, t in enumerate(selection, 1)
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    lines += [
        "  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    lines += [f"  warning: {w.message}" for w in selection.warnings]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    resolver = _resolver(args, parser)
    rng = random.Random(args.seed) if args.seed is not None else None
    worst = EX_OK
    for domain in args.domains:
        selection: Selection | None = None
        error: MXSelectError | None = None
        try:
            selection = select_targets(domain, resolver=resolver, rng=rng)
        except MXSelectError as exc:
            error = exc
        code = exit_code(error)
        worst = max(worst, code, key=_SEVERITY.index)
        trace = error.trace if error is not None else selection.trace if selection else ()
        if args.json:
            data = _as_json(domain, selection, error)
            if args.explain:
                data["trace"] = [{"kind": t.kind, "message": t.message} for t in trace]
            print(json.dumps(data))
        else:
            print(_as_text(domain, selection, error))
            if args.explain:
                print("\n".join("  " + line for line in explain(trace).splitlines()))
    return worst
