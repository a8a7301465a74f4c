"""The ``mxselect`` command: where does mail for a domain go, and if nowhere, why.

Looks up each DOMAIN (or the domain part of an e-mail address) with the asyncio API and prints
the targets in try order, or the error with its SMTP reply code and enhanced status. ``-f FILE``
reads one domain or address per line and resolves them concurrently, streaming results as they
finish, with a progress bar on a terminal and a summary at the end.

Exit codes follow sysexits(3), which MTAs understand: 0 success, 64 usage error, 65 invalid
domain (EX_DATAERR), 68 no such domain (EX_NOHOST), 69 null MX or no usable host
(EX_UNAVAILABLE), 75 temporary failure (EX_TEMPFAIL), 130 interrupted (Ctrl-C). With several
domains the worst code wins, in the order 75 > 69 > 68 > 65 > 0: a temporary failure first,
because retrying may change everything.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import attrs

from . import __version__
from ._model import Selection, explain
from ._policy import Families, Network, Policy
from .exceptions import InvalidDomainError, MXSelectError, NoSuchDomainError, TemporaryError

if TYPE_CHECKING:
    from .cache import CacheStats
    from .typing import AsyncResolver

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOHOST = 68
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
EX_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C

_SEVERITY = [EX_OK, EX_DATAERR, EX_NOHOST, EX_UNAVAILABLE, EX_TEMPFAIL]

#: Concurrent selections in batch mode (``--concurrency``). Each selection has at most a few
#: queries in flight, so 50 selections keep a local caching resolver busy without flooding it.
DEFAULT_CONCURRENCY = 50

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


# ---------------------------------------------------------------------------------- arguments


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Usage errors exit 64 (EX_USAGE), not argparse's 2."""
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _limit(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def _network(text: str) -> Network:
    return ipaddress.ip_network(text, strict=False)


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


_positive_int.__name__ = "positive integer"
_limit.__name__ = "integer or 'none'"
_network.__name__ = "network"
_seconds.__name__ = "number of seconds"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mxselect",
        description="Show the mail exchangers and addresses to try for each DOMAIN, in order "
        "(RFC 5321 §5.1, RFC 7505), or why mail to it bounces or must wait.",
        epilog="Exit codes (sysexits): 0 ok, 64 usage, 65 invalid domain, 68 no such domain, "
        "69 null MX or no usable host, 75 temporary failure, 130 interrupted; with several "
        "domains the worst wins (75 > 69 > 68 > 65 > 0).",
    )
    parser.add_argument(
        "domains",
        nargs="*",
        metavar="DOMAIN",
        help="a domain, an address literal ([192.0.2.1]) or an e-mail address (its domain is used)",
    )
    parser.add_argument(
        "-f",
        "--file",
        metavar="FILE",
        help="batch mode: read one domain or e-mail address per line from FILE ('-': stdin); "
        "blank lines and # comments are skipped; results stream as they finish",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"selections running at once (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--in-order",
        action="store_true",
        help="batch mode: print results in input order (still looked up concurrently)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar and no batch summary"
    )

    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="one JSON object per domain (JSON Lines)")
    out.add_argument(
        "--explain", action="store_true", help="also show every decision taken, in order"
    )

    dns = parser.add_argument_group("DNS")
    dns.add_argument(
        "--zone",
        action="append",
        type=Path,
        metavar="FILE",
        help="answer from this RFC 1035 master file instead of the network (repeatable)",
    )
    dns.add_argument(
        "--nameserver",
        action="append",
        metavar="ADDR[:PORT]",
        help="ask this resolver instead of the system's (repeatable; [ADDR]:PORT for IPv6)",
    )
    dns.add_argument(
        "--timeout",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="give up on one DNS query after this long: a temporary failure (default 5)",
    )
    dns.add_argument(
        "--deadline",
        type=_seconds,
        metavar="SECONDS",
        help="give up on one domain after this long, all its queries included: a temporary "
        "failure naming the queries still unanswered (default: none, --timeout bounds each query)",
    )
    dns.add_argument("--tcp", action="store_true", help="query over TCP only")
    dns.add_argument(
        "--no-cache",
        action="store_true",
        help="ask the resolver every time (default: answers are cached for their TTL during "
        "the run, so domains sharing MX hosts query them once)",
    )

    pol = parser.add_argument_group("policy (see mxselect.Policy)")
    fam = pol.add_mutually_exclusive_group()
    fam.add_argument(
        "--family",
        choices=[f.value for f in Families],
        help="address families and their order (default any: interleaved, IPv6 first)",
    )
    fam.add_argument("-4", dest="family", action="store_const", const="ipv4-only", help="IPv4 only")
    fam.add_argument("-6", dest="family", action="store_const", const="ipv6-only", help="IPv6 only")
    pol.add_argument(
        "--max-addresses",
        type=_limit,
        default=argparse.SUPPRESS,
        metavar="N",
        help="return at most N addresses, at least 2, or 'none' (default 5)",
    )
    pol.add_argument(
        "--keep-one-per-preference",
        action="store_true",
        help="also keep the first address of every preference level the limit cut off",
    )
    pol.add_argument(
        "--max-mx-hosts",
        type=_positive_int,
        metavar="N",
        help="resolve N MX hosts at a time, best first; more only while none is usable "
        "(default 20)",
    )
    pol.add_argument(
        "--max-address-queries",
        type=_positive_int,
        metavar="N",
        help="send at most N address queries per domain (default 5 x --max-mx-hosts)",
    )
    pol.add_argument(
        "--no-implicit-mx",
        action="store_true",
        help="a domain without MX records has no usable host (no A/AAAA fallback)",
    )
    pol.add_argument(
        "--strict-null-mx",
        action="store_true",
        help="any null MX record makes the domain refuse mail, even beside real records",
    )
    pol.add_argument(
        "--allow-mx-to-ip",
        action="store_true",
        help="use an MX record naming an IP address as that address",
    )
    pol.add_argument(
        "--strict-cname-exchange",
        action="store_true",
        help="an exchange that is a CNAME is unusable (RFC 2181 §10.3)",
    )
    pol.add_argument(
        "--cname-limit",
        type=_positive_int,
        metavar="N",
        help="longest CNAME chain followed (default 10)",
    )
    pol.add_argument(
        "--local-name",
        action="append",
        default=[],
        metavar="NAME",
        help="a name of this host: MX records at or after it are dropped (repeatable)",
    )
    pol.add_argument(
        "--local-address",
        action="append",
        default=[],
        metavar="ADDR",
        help="an address of this host (repeatable)",
    )
    pol.add_argument(
        "--unsafe-network",
        action="append",
        default=[],
        type=_network,
        metavar="CIDR",
        help="never return addresses in this network, e.g. 10.0.0.0/8 (repeatable)",
    )
    pol.add_argument(
        "--allow-network",
        action="append",
        default=[],
        type=_network,
        metavar="CIDR",
        help="take this network out of the unsafe ones, e.g. 127.0.0.0/8 for tests (repeatable)",
    )
    parser.add_argument("--seed", type=int, help="seed the shuffle of equal preferences")
    parser.add_argument("--version", action="version", version=f"mxselect {__version__}")
    return parser


def _policy(args: argparse.Namespace) -> Policy:
    fields: dict[str, Any] = {}
    if args.family is not None:
        fields["families"] = Families(args.family)
    if hasattr(args, "max_addresses"):  # given; None is "--max-addresses none"
        fields["max_addresses"] = args.max_addresses
    for name in ("max_mx_hosts", "max_address_queries", "cname_limit"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    for name in (
        "keep_one_per_preference",
        "strict_null_mx",
        "allow_mx_to_ip",
        "strict_cname_exchange",
    ):
        if getattr(args, name):
            fields[name] = True
    if args.no_implicit_mx:
        fields["implicit_mx"] = False
    if args.local_name:
        fields["local_names"] = args.local_name
    if args.local_address:
        fields["local_addresses"] = args.local_address
    policy = Policy(**fields)
    if args.unsafe_network:
        policy = policy.with_unsafe(*args.unsafe_network)
    if args.allow_network:
        policy = policy.without_unsafe(*args.allow_network)
    return policy


def _split_server(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    else:
        host, port = text, 53
    ipaddress.ip_address(host)  # a name would need a resolver to find the resolver
    if not 0 < port < 65536:
        raise ValueError(port)
    return host, port


def _resolver(args: argparse.Namespace, parser: argparse.ArgumentParser) -> AsyncResolver:
    if args.zone:
        if args.nameserver or args.tcp:
            parser.error("--zone answers offline: it cannot be combined with --nameserver or --tcp")
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
    import dns.asyncresolver
    import dns.nameserver

    from .dnspython import AsyncDnspythonResolver

    if args.nameserver:
        resolver = dns.asyncresolver.Resolver(configure=False)
        try:
            servers = [_split_server(s) for s in args.nameserver]
        except ValueError:
            parser.error("--nameserver takes an IP address: ADDR, ADDR:PORT or [ADDR]:PORT")
        resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in servers]
    else:
        try:
            resolver = dns.asyncresolver.Resolver()
        except Exception as exc:
            parser.exit(EX_TEMPFAIL, f"mxselect: no system resolver configuration: {exc}\n")
    resolver.lifetime = args.timeout
    resolver.timeout = min(resolver.timeout, args.timeout)
    adapter = AsyncDnspythonResolver(resolver, tcp=args.tcp)
    if args.no_cache:
        return adapter
    from .cache import CachingResolver

    # RFC 2308 rules, for this run only; concurrent identical queries are sent once.
    return CachingResolver(adapter)


# -------------------------------------------------------------------------------------- input


@attrs.frozen
class Item:
    """One thing to look up: the text given, where it came from, and the domain part."""

    index: int
    text: str
    line: int | None
    domain: str


def domain_of(text: str) -> str:
    """The domain to look up for a command-line or batch entry.

    ``user@example.org`` and ``<user@example.org>`` give ``example.org`` (the part after the
    last ``@``; a quoted local part may contain one); anything else is taken as a domain.
    """
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if "@" in text:
        return text.rpartition("@")[2]
    return text


def _strip_comment(line: str) -> str:
    # "#" starts a comment at the start of a line or after white space; inside an e-mail
    # address's local part ("a#b@example.org") it is data.
    for index, char in enumerate(line):
        if char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def read_items(stream: TextIO) -> list[Item]:
    """The entries of a batch file: one per line, blank lines and ``#`` comments skipped."""
    items: list[Item] = []
    for number, raw in enumerate(stream, 1):
        text = _strip_comment(raw).strip()
        if text:
            items.append(Item(len(items), text, number, domain_of(text)))
    return items


# ------------------------------------------------------------------------------------- output


@attrs.frozen
class Result:
    """The outcome for one item."""

    item: Item
    selection: Selection | None
    error: MXSelectError | None

    @property
    def code(self) -> int:
        return exit_code(self.error)

    @property
    def label(self) -> str:
        """The summary bucket: ``ok`` or the error class name."""
        return "ok" if self.error is None else type(self.error).__name__


def _warnings(result: Result) -> list[dict[str, Any]]:
    source = result.selection if result.selection is not None else result.error
    assert source is not None
    return [{"code": w.code.value, "message": w.message, "host": w.host} for w in source.warnings]


def as_json(result: Result, with_trace: bool) -> dict[str, Any]:
    """The ``--json`` object for one result; every key is always present (schema 1)."""
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
        "targets": []
        if selection is None
        else [
            {
                "rank": rank,
                "host": t.host,
                "preference": t.preference,
                "address": str(t.address),
                "family": t.family,
            }
            for rank, t in enumerate(selection, 1)
        ],
        "hosts": []
        if selection is None
        else [
            {
                "name": h.name,
                "preference": h.preference,
                "canonical_name": h.canonical_name,
                "addresses": [str(a) for a in h.addresses],
            }
            for h in selection.hosts
        ],
        "warnings": _warnings(result),
    }
    if with_trace:
        trace = selection.trace if selection is not None else error.trace if error else ()
        data["trace"] = [{"kind": t.kind, "message": t.message, "host": t.host} for t in trace]
    return data


def _where(item: Item) -> str:
    return item.text if item.line is None else f"line {item.line}: {item.text}"


def as_text(result: Result, with_trace: bool) -> str:
    """The readable block for one result: a target table and warnings, or the error."""
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
        lines = [f"{name}: {len(selection)} target(s) ({how}{via}{ttl})"]
        rows = [("rank", "pref", "host", "address", "family")]
        rows += [
            (str(i), str(t.preference), t.host, str(t.address), f"IPv{t.family}")
            for i, t in enumerate(selection, 1)
        ]
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        lines += [
            "  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
            for r in rows
        ]
        lines += [f"  warning: {w.message}" for w in selection.warnings]
        trace = selection.trace
    if with_trace:
        lines += ["  " + line for line in explain(trace).splitlines()]
    return "\n".join(lines)


def as_line(result: Result) -> str:
    """The compact one-line form used in batch mode."""
    selection, error = result.selection, result.error
    name = _where(result.item)
    if error is not None:
        return f"{name}  {error.reply_code} {error.status} {type(error).__name__}: {error.reason}"
    assert selection is not None
    first = next(iter(selection))
    warned = f", {len(selection.warnings)} warning(s)" if selection.warnings else ""
    return f"{name}  ok  {len(selection)} target(s), first {first.host} {first.address}{warned}"


class _Progress:
    """A progress bar on stderr: tqdm's when the ``cli`` extra is installed, else a plain one."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.done = 0
        self.enabled = enabled
        self.started = time.monotonic()
        self._last = 0.0
        self._tqdm: Any = None
        if enabled:
            try:
                from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
            except ImportError:
                self._draw(force=True)
            else:
                self._tqdm = tqdm(total=total, unit="domain", file=sys.stderr, leave=False)

    def write(self, text: str) -> None:
        """Print a result on stdout without tearing the bar."""
        if self._tqdm is not None:
            self._tqdm.write(text, file=sys.stdout)
        else:
            if self.enabled:
                sys.stderr.write("\r\x1b[K")
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
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
        sys.stderr.write(
            f"\r\x1b[K[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
            f"domains, {rate:.1f}/s"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        elif self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


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
        lines.append(f"  interrupted: {total - done} not looked up; exit 130")
    else:
        lines.append(f"  exit {tally.code}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- run


async def _select(
    item: Item, resolver: AsyncResolver, policy: Policy, seed: int | None, deadline: float | None
) -> Result:
    from ._drivers import aselect_targets

    # Each domain gets its own generator, so a seeded run gives the same order whatever order
    # the concurrent lookups finish in.
    rng = random.Random(f"{seed}\0{item.domain}") if seed is not None else None
    try:
        selection = await aselect_targets(
            item.domain, resolver=resolver, rng=rng, policy=policy, deadline=deadline
        )
    except MXSelectError as exc:
        return Result(item, None, exc)
    return Result(item, selection, None)


async def _run_in_order(
    items: Sequence[Item],
    select: Callable[[Item], Any],
    emit: Callable[[Result], None],
    concurrency: int,
) -> None:
    """Look up ``concurrency`` items at a time; emit in the order given.

    A window of at most ``concurrency`` tasks slides over the items, so memory stays bounded
    for any batch size; a slow domain holds back the output (not the lookups) after it.
    """
    import asyncio
    from collections import deque

    pending = iter(items)
    window: deque[asyncio.Future[Result]] = deque()
    try:
        for item in pending:
            window.append(asyncio.ensure_future(select(item)))
            if len(window) >= concurrency:
                emit(await window.popleft())
        while window:
            emit(await window.popleft())
    finally:
        for task in window:
            task.cancel()


async def _run_streaming(
    items: Sequence[Item],
    select: Callable[[Item], Any],
    emit: Callable[[Result], None],
    concurrency: int,
) -> None:
    """Batch mode: ``concurrency`` workers; each result is emitted as soon as it is known."""
    import asyncio

    queue: Iterator[Item] = iter(items)

    async def worker() -> None:
        for item in queue:
            emit(await select(item))

    workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(items)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()


def _items(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Item]:
    if args.file is None:
        if not args.domains:
            parser.error("give at least one DOMAIN, or -f FILE")
        return [Item(i, text, None, domain_of(text)) for i, text in enumerate(args.domains)]
    if args.domains:
        parser.error("give DOMAIN arguments or -f FILE, not both")
    if args.file == "-":
        sys.stdin.reconfigure(errors="replace")  # type: ignore[union-attr]
        return read_items(sys.stdin)
    try:
        with open(args.file, encoding="utf-8", errors="replace") as stream:
            return read_items(stream)
    except OSError as exc:
        parser.exit(EX_USAGE, f"mxselect: cannot read {args.file}: {exc}\n")


def _stats(resolver: object) -> CacheStats | None:
    from .cache import CachingResolver

    return resolver.stats if isinstance(resolver, CachingResolver) else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (Ctrl-C during the lookups: 130)."""
    import asyncio

    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        policy = _policy(args)
    except ValueError as exc:
        parser.error(str(exc))
    items = _items(args, parser)
    resolver = _resolver(args, parser)
    batch = args.file is not None
    tally = Tally()  # not the results themselves: a batch may be millions of domains
    progress = _Progress(len(items), batch and not args.quiet and sys.stderr.isatty())

    def emit(result: Result) -> None:
        tally.add(result)
        if args.json:
            text = json.dumps(as_json(result, args.explain), ensure_ascii=False)
        elif batch and not args.explain:
            text = as_line(result)
        else:
            text = as_text(result, args.explain)
        progress.write(text)

    def select(item: Item) -> Any:
        return _select(item, resolver, policy, args.seed, args.deadline)

    run = _run_streaming if batch and not args.in_order else _run_in_order
    started = time.monotonic()
    interrupted = False
    try:
        asyncio.run(run(items, select, emit, args.concurrency))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
    elapsed = time.monotonic() - started
    if (batch or interrupted) and not args.quiet:
        print(summary(tally, len(items), elapsed, interrupted, _stats(resolver)), file=sys.stderr)
    if interrupted:
        return EX_INTERRUPTED
    return tally.code


def entry_point() -> None:
    """The console script: exit with :func:`main`'s code; Ctrl-C anywhere exits 130 quietly."""
    try:
        code = main()
    except KeyboardInterrupt:
        code = EX_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``mxselect -f list | head``): stop quietly, as cat does.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 141
    raise SystemExit(code)
