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
import enum
import ipaddress
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import attrs

from . import __version__
from ._output import (
    EX_INTERRUPTED,
    EX_TEMPFAIL,
    EX_USAGE,
    Item,
    Progress,
    Result,
    Show,
    Tally,
    render,
    summary,
)
from ._output import worst as worst  # re-exported: the rule for several outcomes' exit code
from ._policy import Dane, Families, InsecureMX, Network, Policy
from .exceptions import MXSelectError

if TYPE_CHECKING:
    from .cache import CacheStats
    from .typing import AsyncResolver

#: Concurrent selections in batch mode (``--concurrency``). Each selection has at most a few
#: queries in flight, so 50 selections keep a local caching resolver busy without flooding it.
DEFAULT_CONCURRENCY = 50


# ---------------------------------------------------------------------------------- arguments


class _Exit(Exception):
    """The command ends before any lookup (a usage error, ``--help``): :func:`main` returns
    ``code`` instead of exiting the interpreter, so that it can be called in-process."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Usage errors exit 64 (EX_USAGE), not argparse's 2."""
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        """Print the message as argparse does, then end :func:`main` with ``status``."""
        if message:
            self._print_message(message, sys.stderr)
        raise _Exit(status)


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


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError(text)
    return value


def _zone_name(text: str) -> str:
    name = text.strip().rstrip(".").lower()
    if not name or " " in name or ".." in name:
        raise ValueError(text)
    return name


def _sts_policy(text: str) -> tuple[str, Path]:
    """``DOMAIN=FILE`` of ``--sts-policy``: the policy domain, normalised, and the file."""
    from ._domain import normalize_domain

    domain, equals, file = text.partition("=")
    if not equals or not file:
        raise ValueError(text)
    try:
        name = normalize_domain(domain.strip())
    except MXSelectError:
        raise ValueError(text) from None
    if not isinstance(name, str):  # an address literal has no MTA-STS policy (RFC 8461 §3.4)
        raise ValueError(text)
    return name, Path(file)


_positive_int.__name__ = "positive integer"
_limit.__name__ = "integer or 'none'"
_network.__name__ = "network"
_seconds.__name__ = "number of seconds"
_port.__name__ = "port (1-65535)"
_zone_name.__name__ = "zone name"
_sts_policy.__name__ = "DOMAIN=FILE"


# ---------------------------------------------------------------------------- policy flags


@attrs.frozen
class _Kind:
    """How a kind of policy flag is parsed, and what its value does to the :class:`Policy`."""

    action: str = "store"
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    #: The value of a ``store_const`` switch.
    const: str | None = None
    #: The parsed value -> the value of the Policy field.
    to_field: Callable[[Any], Any] = lambda value: value
    #: The flag names a Policy method, called with the values on the constructed policy.
    method: bool = False

    def arguments(self) -> dict[str, Any]:
        """The keywords of ``add_argument`` for this kind (a switch takes no type)."""
        given = {"type": self.type, "choices": self.choices, "const": self.const}
        return {"action": self.action} | {k: v for k, v in given.items() if v is not None}


_SWITCH_ON = _Kind("store_true", to_field=lambda _: True)
_SWITCH_OFF = _Kind("store_true", to_field=lambda _: False)  # --no-X sets X to False
_COUNT = _Kind(type=_positive_int)
_LIMIT = _Kind(type=_limit)  # an integer, or 'none' for None
_REPEATED = _Kind("append")  # the list of every value given
_NETWORKS = _Kind("append", _network, method=True)
_FAMILY = _Kind(choices=tuple(f.value for f in Families), to_field=Families)
_DANE = _Kind("store_const", const=Dane.OPPORTUNISTIC.value, to_field=Dane)
_INSECURE_MX = _Kind(choices=tuple(m.value for m in InsecureMX), to_field=InsecureMX)
_PORT = _Kind(type=_port)
_SECONDS = _Kind(type=_seconds)


@attrs.frozen
class _PolicyFlag:
    """One policy flag: the option, the Policy field (or method) it sets, its kind and help.

    A flag not given leaves its field at the Policy default. ``shortcuts`` are flags that stand
    for one value (``-4``: ``--family ipv4-only``), mutually exclusive with the flag. ``needs``:
    options of which one must be given too (the flag means nothing without them), and
    ``needs_why`` the reason a usage error adds.
    """

    option: str
    field: str
    kind: _Kind
    help: str
    metavar: str | None = None
    shortcuts: tuple[tuple[str, enum.Enum, str], ...] = ()
    needs: tuple[str, ...] = ()
    needs_why: str = ""

    def given(self, args: argparse.Namespace) -> str | None:
        """The option (the flag or one of its shortcuts) that set the field, if any."""
        if not hasattr(args, self.field):
            return None
        value = getattr(args, self.field)
        return next((o for o, v, _ in self.shortcuts if v.value == value), self.option)

    def add_to(self, group: argparse._ArgumentGroup) -> None:
        """Add the flag and its shortcuts; given or not is told by the attribute's presence."""
        if self.shortcuts:
            group = group.add_mutually_exclusive_group()
        common: dict[str, Any] = {"dest": self.field, "default": argparse.SUPPRESS}
        own = self.kind.arguments() | ({} if self.metavar is None else {"metavar": self.metavar})
        group.add_argument(self.option, help=self.help, **own, **common)
        for option, value, text in self.shortcuts:
            group.add_argument(option, action="store_const", const=value.value, help=text, **common)


#: The policy flags, in the order of ``--help``; the networks are added before some are allowed.
_POLICY_FLAGS = (
    _PolicyFlag(
        "--family",
        "families",
        _FAMILY,
        "address families and their order (default any: interleaved, IPv6 first)",
        shortcuts=(
            ("-4", Families.IPV4_ONLY, "IPv4 only"),
            ("-6", Families.IPV6_ONLY, "IPv6 only"),
        ),
    ),
    _PolicyFlag(
        "--max-addresses",
        "max_addresses",
        _LIMIT,
        "return at most N addresses, at least 2, or 'none' (default 5)",
        "N",
    ),
    _PolicyFlag(
        "--keep-one-per-preference",
        "keep_one_per_preference",
        _SWITCH_ON,
        "also keep the first address of every preference level the limit cut off",
    ),
    _PolicyFlag(
        "--max-mx-hosts",
        "max_mx_hosts",
        _COUNT,
        "resolve N MX hosts at a time, best first; more only while none is usable (default 20)",
        "N",
    ),
    _PolicyFlag(
        "--max-address-queries",
        "max_address_queries",
        _COUNT,
        "send at most N address queries per domain (default 5 x --max-mx-hosts)",
        "N",
    ),
    _PolicyFlag(
        "--no-implicit-mx",
        "implicit_mx",
        _SWITCH_OFF,
        "a domain without MX records has no usable host (no A/AAAA fallback)",
    ),
    _PolicyFlag(
        "--strict-null-mx",
        "strict_null_mx",
        _SWITCH_ON,
        "any null MX record makes the domain refuse mail, even beside real records",
    ),
    _PolicyFlag(
        "--allow-mx-to-ip",
        "allow_mx_to_ip",
        _SWITCH_ON,
        "use an MX record naming an IP address as that address",
    ),
    _PolicyFlag(
        "--strict-cname-exchange",
        "strict_cname_exchange",
        _SWITCH_ON,
        "an exchange that is a CNAME is unusable (RFC 2181 §10.3)",
    ),
    _PolicyFlag(
        "--cname-limit", "cname_limit", _COUNT, "longest CNAME chain followed (default 10)", "N"
    ),
    _PolicyFlag(
        "--local-name",
        "local_names",
        _REPEATED,
        "a name of this host: MX records at or after it are dropped (repeatable)",
        "NAME",
    ),
    _PolicyFlag(
        "--local-address",
        "local_addresses",
        _REPEATED,
        "an address of this host (repeatable)",
        "ADDR",
    ),
    _PolicyFlag(
        "--unsafe-network",
        "with_unsafe",
        _NETWORKS,
        "never return addresses in this network, e.g. 10.0.0.0/8 (repeatable)",
        "CIDR",
    ),
    _PolicyFlag(
        "--allow-network",
        "without_unsafe",
        _NETWORKS,
        "take this network out of the unsafe ones, e.g. 127.0.0.0/8 for tests (repeatable)",
        "CIDR",
    ),
    _PolicyFlag(
        "--dane",
        "dane",
        _DANE,
        "DANE (RFC 7672) where published: look up TLSA records of the hosts with "
        "DNSSEC-secure addresses, and show how TLS must be used with each target",
        shortcuts=(
            (
                "--dane-mandatory",
                Dane.MANDATORY,
                "DANE or nothing: only hosts with usable secure TLSA records; otherwise a "
                "temporary failure, 451 4.7.5",
            ),
        ),
    ),
    _PolicyFlag(
        "--dane-insecure-mx",
        "dane_insecure_mx",
        _INSECURE_MX,
        "with --dane, hosts of an MX RRset that is not DNSSEC-secure: dane (use their TLSA "
        "records; default), encrypt (TLS required, unauthenticated), may (no DANE)",
        "POLICY",
        needs=("--dane",),
        needs_why=" (--dane-mandatory defers every insecure MX RRset: RFC 7672 §2.2.1)",
    ),
    _PolicyFlag(
        "--tlsa-port",
        "tlsa_port",
        _PORT,
        "with --dane or --dane-mandatory: the port of the TLSA query names, _N._tcp.HOST "
        "(default 25)",
        "N",
        needs=("--dane", "--dane-mandatory"),
    ),
    _PolicyFlag(
        "--mta-sts",
        "mta_sts",
        _SWITCH_ON,
        "MTA-STS (RFC 8461): look up the _mta-sts TXT record, fetch the policy over HTTPS "
        "(offline with --zone: --sts-policy), keep only the MX hosts it names in mode "
        "enforce, and show the policy and the tls column",
    ),
    _PolicyFlag(
        "--sts-fetch-timeout",
        "sts_fetch_timeout",
        _SECONDS,
        "with --mta-sts: seconds a policy fetch may take (default 15)",
        "SECONDS",
        needs=("--mta-sts",),
    ),
    _PolicyFlag(
        "--tlsrpt",
        "tlsrpt",
        _SWITCH_ON,
        "TLS-RPT (RFC 8460): look up the _smtp._tls TXT record and show its reporting URIs (rua)",
    ),
)


def _policy(args: argparse.Namespace) -> Policy:
    """The Policy the flags given ask for (a ValueError names a value it refuses, or a flag
    given without one it needs)."""
    options = {f.given(args) for f in _POLICY_FLAGS} - {None}
    for flag in _POLICY_FLAGS:
        if flag.needs and flag.given(args) and not options.intersection(flag.needs):
            raise ValueError(f"{flag.option} needs {' or '.join(flag.needs)}{flag.needs_why}")
    given = [(f, getattr(args, f.field)) for f in _POLICY_FLAGS if hasattr(args, f.field)]
    policy = Policy(**{f.field: f.kind.to_field(v) for f, v in given if not f.kind.method})
    for flag, values in given:
        if flag.kind.method:
            policy = getattr(policy, flag.field)(*values)
    return policy


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
        "--signed",
        action="append",
        type=_zone_name,
        metavar="ZONE",
        help="with --zone: answers at and below ZONE are DNSSEC-secure, as from a validating "
        "resolver; every other answer is then insecure (repeatable)",
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
    dns.add_argument(
        "--resolver",
        choices=RESOLVERS,
        help="what sends the queries: stub (default: mxselect's own stub resolver, "
        "mxselect.stub.StubResolver) or dnspython (the dnspython adapter)",
    )
    dns.add_argument(
        "--resolv-conf",
        metavar="FILE",
        help=f"read the servers to ask from this resolv.conf file instead of {RESOLV_CONF} "
        "(its nameserver lines and options timeout:N; the search list is never used)",
    )
    dns.add_argument("--tcp", action="store_true", help="query over TCP only")
    dns.add_argument(
        "--no-cache",
        action="store_true",
        help="ask the resolver every time (default: answers are cached for their TTL during "
        "the run, so domains sharing MX hosts query them once)",
    )

    pol = parser.add_argument_group("policy (see mxselect.Policy)")
    for flag in _POLICY_FLAGS:
        flag.add_to(pol)

    sts = parser.add_argument_group("MTA-STS policies (with --mta-sts)")
    sts.add_argument(
        "--sts-cache",
        type=Path,
        metavar="FILE",
        help="keep the MTA-STS policies in this SQLite database across runs (created if "
        "missing; mxselect.mtasts.SQLiteStore); default: no cache, policies are kept in "
        "memory for the run only",
    )
    sts.add_argument(
        "--sts-policy",
        action="append",
        type=_sts_policy,
        metavar="DOMAIN=FILE",
        help="with --zone: serve FILE as the MTA-STS policy of DOMAIN, offline (repeatable; "
        "the policy of any other domain answers 404)",
    )
    parser.add_argument("--seed", type=int, help="seed the shuffle of equal preferences")
    parser.add_argument("--version", action="version", version=f"mxselect {__version__}")
    return parser


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


def _zone_resolver(
    paths: Sequence[Path], signed: Sequence[str], parser: argparse.ArgumentParser
) -> AsyncResolver:
    """The offline resolver of ``--zone``: the master files' records, without a DNSSEC status
    (``UNKNOWN``, as from a resolver that cannot say), or with ``--signed`` the zones named
    ``SECURE`` and every other answer ``INSECURE``, as a validating resolver reports them."""
    from ._answers import Query, RRType, Security, Status
    from .testing import FakeResolver

    fake = FakeResolver(security=Security.INSECURE if signed else Security.UNKNOWN)
    for path in paths:
        try:
            fake.load_zone(path.read_text(encoding="utf-8"))
        except OSError as exc:
            parser.exit(EX_USAGE, f"mxselect: cannot read zone file {path}: {exc}\n")
        except Exception as exc:
            parser.exit(EX_USAGE, f"mxselect: bad zone file {path}: {exc}\n")
    for zone in signed:
        if fake.answer(Query(f"{zone}.", RRType.A)).status is Status.NXDOMAIN:
            parser.error(f"--signed {zone}: no name of the zone files is at or below it")
        fake.set_security(zone, Security.SECURE)
    return fake


#: ``--resolver``: the adapter that sends the queries (``stub`` is the default).
RESOLVERS = ("stub", "dnspython")
#: The system's resolver configuration, read when no ``--nameserver`` is given.
RESOLV_CONF = "/etc/resolv.conf"


def _resolver(args: argparse.Namespace, parser: argparse.ArgumentParser) -> AsyncResolver:
    """The resolver of the run: offline ``--zone``, else ``--resolver`` (the stub resolver by
    default, or the dnspython adapter) asking ``--nameserver`` or the servers of
    ``--resolv-conf`` (default ``/etc/resolv.conf``), behind a :class:`CachingResolver`
    unless ``--no-cache``."""
    if args.signed and not args.zone:
        parser.error("--signed needs --zone (a resolver reports the DNSSEC status itself)")
    if args.zone:
        for option, value in (
            ("--nameserver", args.nameserver),
            ("--tcp", args.tcp),
            ("--resolver", args.resolver),
            ("--resolv-conf", args.resolv_conf),
        ):
            if value:
                parser.error(f"--zone answers offline: it cannot be combined with {option}")
        return _zone_resolver(args.zone, args.signed or [], parser)
    if args.nameserver and args.resolv_conf:
        parser.error("--nameserver and --resolv-conf both name the servers: give one")
    servers: list[tuple[str, int]] | None = None
    if args.nameserver:
        try:
            servers = [_split_server(s) for s in args.nameserver]
        except ValueError:
            parser.error("--nameserver takes an IP address: ADDR, ADDR:PORT or [ADDR]:PORT")
    import dns.exception

    # The configuration file may be missing, unreadable, without a nameserver, or name one
    # the resolver cannot ask: no system configuration (75), or a bad --resolv-conf (64).
    try:
        if (args.resolver or "stub") == "stub":
            adapter = _stub_resolver(servers, args.resolv_conf, args)
        else:
            adapter = _dnspython_resolver(servers, args.resolv_conf, args)
    except (dns.exception.DNSException, ValueError, OSError) as exc:
        if args.resolv_conf:
            parser.exit(EX_USAGE, f"mxselect: --resolv-conf: {exc}\n")
        parser.exit(EX_TEMPFAIL, f"mxselect: no system resolver configuration: {exc}\n")
    if args.no_cache:
        return adapter
    from .cache import CachingResolver

    # RFC 2308 rules, for this run only; concurrent identical queries are sent once.
    return CachingResolver(adapter)


def _stub_resolver(
    servers: list[tuple[str, int]] | None, resolv_conf: str | None, args: argparse.Namespace
) -> AsyncResolver:
    """``--resolver stub``: :class:`~mxselect.stub.StubResolver` (its ``timeout``, the wait
    for one server, is the file's or 2 s; ``--timeout`` is its lifetime, which bounds that
    wait too). The AD bit counts only when every server is on loopback, as for dnspython."""
    from .stub import StubResolver

    if servers is not None:
        return StubResolver(servers, lifetime=args.timeout, tcp=args.tcp)
    return StubResolver.from_system(resolv_conf or RESOLV_CONF, lifetime=args.timeout, tcp=args.tcp)


def _dnspython_resolver(
    servers: list[tuple[str, int]] | None, resolv_conf: str | None, args: argparse.Namespace
) -> AsyncResolver:
    """``--resolver dnspython``: :class:`~mxselect.dnspython.AsyncDnspythonResolver` over a
    ``dns.asyncresolver.Resolver`` (the system's configuration, or the servers given)."""
    import dns.asyncresolver
    import dns.nameserver

    from .dnspython import AsyncDnspythonResolver

    if servers is not None:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in servers]
    else:  # (on Windows, dnspython reads the registry instead)
        resolver = dns.asyncresolver.Resolver(filename=resolv_conf or RESOLV_CONF)
    resolver.lifetime = args.timeout
    resolver.timeout = min(resolver.timeout, args.timeout)
    # EDNS0 with a 1232-byte payload, as the stub sends (RFC 6891; the payload of DNS Flag
    # Day 2020): large RRsets fit without TCP, and a validating resolver can say why it
    # failed (RFC 8914 extended errors need EDNS), so both resolvers give the same output.
    resolver.use_edns(0, 0, 1232)
    return AsyncDnspythonResolver(resolver, tcp=args.tcp)


@attrs.frozen
class _Sts:
    """The MTA-STS machinery of a run (``--mta-sts``): what fetches the policies and where they
    are kept; both ``None`` without ``--mta-sts``."""

    fetcher: Any = None
    store: Any = None

    def close(self) -> None:
        if hasattr(self.store, "close"):
            self.store.close()


def _sts(args: argparse.Namespace, policy: Policy, parser: argparse.ArgumentParser) -> _Sts:
    """The fetcher and the store of ``--mta-sts``: offline (``--zone``) the ``--sts-policy``
    files served by a :class:`~mxselect.testing.FakeFetcher`, online an ``HttpxFetcher``; the
    ``--sts-cache`` database, or a :class:`~mxselect.mtasts.MemoryStore` for the run."""
    if not policy.mta_sts:
        for option, value in (("--sts-cache", args.sts_cache), ("--sts-policy", args.sts_policy)):
            if value:
                parser.error(f"{option} needs --mta-sts")
        return _Sts()
    if args.sts_policy and not args.zone:
        parser.error("--sts-policy needs --zone (online, the policies are fetched over HTTPS)")
    fetcher: Any
    if args.zone:
        from .testing import FakeFetcher

        fetcher = FakeFetcher(_policies(args.sts_policy or [], parser))
    else:
        try:
            from .fetch import HttpxFetcher
        except ImportError:
            parser.error(
                "--mta-sts needs httpx to fetch the policies: pip install 'mxselect[mta-sts]' "
                "(offline: --zone with --sts-policy DOMAIN=FILE)"
            )
        fetcher = HttpxFetcher()
    if args.sts_cache is None:
        from .mtasts import MemoryStore

        return _Sts(fetcher, MemoryStore())
    import sqlite3

    from .mtasts import SQLiteStore

    try:
        return _Sts(fetcher, SQLiteStore(args.sts_cache))
    except (OSError, RuntimeError, sqlite3.Error) as exc:
        parser.exit(EX_USAGE, f"mxselect: cannot use --sts-cache {args.sts_cache}: {exc}\n")


def _policies(
    given: Sequence[tuple[str, Path]], parser: argparse.ArgumentParser
) -> dict[str, bytes]:
    """The ``--sts-policy`` files by policy domain, as bytes: served exactly as written, so a
    broken policy fails the way it would on the web (the core parses it)."""
    policies: dict[str, bytes] = {}
    for domain, path in given:
        if domain in policies:
            parser.error(f"--sts-policy {domain}: given twice")
        try:
            policies[domain] = path.read_bytes()
        except OSError as exc:
            parser.exit(EX_USAGE, f"mxselect: cannot read policy file {path}: {exc}\n")
    return policies


# -------------------------------------------------------------------------------------- input


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


# ---------------------------------------------------------------------------------------- run


async def _select(
    item: Item,
    resolver: AsyncResolver,
    policy: Policy,
    seed: int | None,
    deadline: float | None,
    sts: _Sts,
) -> Result:
    import asyncio

    from ._drivers import aselect_targets

    # Each domain gets its own generator, so a seeded run gives the same order whatever order
    # the concurrent lookups finish in.
    rng = random.Random(f"{seed}\0{item.domain}") if seed is not None else None
    try:
        selection = await aselect_targets(
            item.domain,
            resolver=resolver,
            rng=rng,
            policy=policy,
            deadline=deadline,
            fetcher=sts.fetcher,
            sts_store=sts.store,
        )
    except MXSelectError as exc:
        return Result(item, None, exc, getattr(exc, "policy_id", None))
    policy_id = None
    if selection.sts_policy is not None and sts.store is not None:
        # The Selection has the policy, not its id: the store's entry for the policy domain
        # has both (the id only if that entry still holds the policy applied).
        entry = await asyncio.to_thread(sts.store.get, selection.domain)
        if entry is not None and entry.policy == selection.sts_policy:
            policy_id = entry.id
    return Result(item, selection, None, policy_id)


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
    """Run the command on ``argv`` (default ``sys.argv[1:]``) and return its exit code: 64 after
    a usage error, 0 after ``--help``, 130 when Ctrl-C stops the lookups. It never exits the
    interpreter (:func:`entry_point` does), so it can be called in-process."""
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["check"]:  # the mail-routing doctor: mxselect.check, docs/check.md
        from ._check_cli import main as check_main

        return check_main(argv[1:])
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        policy, items, resolver, sts = _setup(args, parser)
    except _Exit as exc:
        return exc.code
    try:
        return _run(args, policy, items, resolver, sts)
    finally:
        sts.close()


def _setup(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[Policy, list[Item], AsyncResolver, _Sts]:
    """What the arguments ask for; a usage error ends the command (:class:`_Exit`)."""
    try:
        policy = _policy(args)
    except ValueError as exc:
        parser.error(str(exc))
    items, resolver = _items(args, parser), _resolver(args, parser)
    return policy, items, resolver, _sts(args, policy, parser)


def _run(
    args: argparse.Namespace,
    policy: Policy,
    items: list[Item],
    resolver: AsyncResolver,
    sts: _Sts,
) -> int:
    """Look the items up, print each result and the batch summary; the exit code."""
    import asyncio

    batch = args.file is not None
    tally = Tally()  # not the results themselves: a batch may be millions of domains
    enabled = batch and not args.quiet and sys.stderr.isatty()
    show = Show(dane=policy.dane is not Dane.OFF, mta_sts=policy.mta_sts, tlsrpt=policy.tlsrpt)
    progress = Progress(len(items), enabled, sys.stdout, sys.stderr, coalesce=True)

    def emit(result: Result) -> None:
        tally.add(result)
        progress.write(
            render(result, json_lines=args.json, batch=batch, explained=args.explain, show=show)
        )

    def select(item: Item) -> Any:
        return _select(item, resolver, policy, args.seed, args.deadline, sts)

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
