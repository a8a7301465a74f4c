"""``mxselect check``: a mail-routing doctor for the people who publish MX records.

:func:`check` runs an MX target selection (RFC 5321 §5.1, RFC 7505) with a policy that notices
everything, records every DNS answer it used, and turns what mxselect noticed and worked around
into :class:`Finding` objects: a stable code, a :class:`Severity`, the record or host concerned,
one sentence of explanation, the fix, and the RFC section behind it.

    >>> from mxselect.check import check
    >>> from mxselect.testing import FakeResolver
    >>> zone = '''
    ... $ORIGIN example.org.
    ... $TTL 3600
    ... @     MX 10 mail
    ... mail  CNAME real
    ... real  A 192.0.2.25
    ... '''
    >>> report = check("example.org", resolver=FakeResolver.from_zone(zone))
    >>> report.worst
    <Severity.WARNING: 'warning'>
    >>> [f.code for f in report.findings]
    ['mx-is-cname', 'dnssec-unknown', 'single-mx', 'no-ipv6']

The check turns on DANE (opportunistic), MTA-STS and TLS-RPT itself, so the secure-delivery
findings (DNSSEC, TLSA, the MTA-STS policy, the TLS-RPT record) come from the same selection a
DANE- or MTA-STS-aware sender makes. :func:`probe` (``--probe``) connects to each selected
target over SMTP and adds what it finds; :func:`render_html` (``--html FILE``) draws the
reports as a self-contained HTML page.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import random
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from ._answers import Answer, FetchResult, IPAddress, PolicyFetch, Query, RRType, Security, Status
from ._core import SelectionPlan
from ._domain import normalize_exchange
from ._lookup import norm_ttl
from ._model import Posture, Selection, SelectionWarning, TlsRequirement, WarningCode
from ._policy import Dane, Policy
from ._resolvers import async_port, sync_port
from ._sts import StsMode, StsPolicy, StsRecord, parse_policy
from ._sts import parse_record as parse_sts_record
from ._tlsrpt import parse_record as parse_tlsrpt_record
from .exceptions import (
    DNSTemporaryError,
    InvalidDomainError,
    MXSelectError,
    NoSuchDomainError,
    NoUsableTargetsError,
    NullMXError,
    SecureDeliveryError,
    StsPolicyError,
)

if TYPE_CHECKING:
    from .typing import AsyncResolver, Resolver

__all__ = [
    "CHECK_MAX_HOSTS",
    "CODES",
    "PROBE_CODES",
    "SCHEMA",
    "SENDER_MX_HOSTS",
    "STS_MAX_AGE_SHORT",
    "TTL_LONG",
    "TTL_SHORT",
    "Finding",
    "Report",
    "Severity",
    "acheck",
    "aprobe",
    "check",
    "check_policy",
    "probe",
    "render_html",
]

#: Every code a finding of :func:`check` can have, in the order of docs/check.md's table
#: (errors, warnings, info). A new finding gets its code here, a row in that table, and a
#: test of its own from a zone and end to end (tests/test_check_coverage.py checks all three).
CODES = (
    "invalid-domain",
    "no-such-domain",
    "mx-lookup-failed",
    "mail-deferred",
    "no-usable-exchange",
    "no-mx-no-address",
    "null-mx-mixed",
    "mx-is-address",
    "invalid-exchange",
    "exchange-nxdomain",
    "exchange-no-address",
    "unsafe-address",
    "private-address",
    "exchange-lookup-failed",
    "address-lookup-failed",
    "mx-is-cname",
    "domain-is-cname",
    "duplicate-host",
    "duplicate-address",
    "null-mx-preference",
    "too-many-mx-hosts",
    "no-ipv4",
    "ttl-long",
    "bad-answer",
    "mx-bogus",
    "tlsa-lookup-failed",
    "sts-mx-mismatch",
    "tlsa-unusable",
    "tlsa-ignored",
    "sts-fetch-failed",
    "sts-record-invalid",
    "sts-max-age-short",
    "sts-policy-warning",
    "tlsrpt-invalid",
    "null-mx",
    "no-mx",
    "single-mx",
    "no-ipv6",
    "ttl-short",
    "dnssec-unknown",
    "mx-unsigned",
    "dane-insecure-mx",
    "sts-testing",
    "sts-mode-none",
    "sts-not-fetched",
    "tlsrpt-missing",
)

#: Every code a finding of :func:`probe` (``--probe``) can have, in the order of docs/check.md's
#: table; checked as :data:`CODES` is (tests/test_check_coverage.py).
PROBE_CODES = (
    "probe-banner-5xx",
    "no-starttls",
    "tls-handshake-failed",
    "dane-mismatch",
    "sts-certificate-invalid",
    "probe-refused",
    "probe-timeout",
    "probe-banner-not-220",
    "probe-ehlo-refused",
    "certificate-expired",
    "probe-unsafe-address",
    "probe-ok",
)
#: The version of the JSON object of :meth:`Report.as_dict` (``"schema"``).
SCHEMA = 1
#: The most MX hosts one check resolves (every one of them is examined, up to this many).
CHECK_MAX_HOSTS = 100
#: The MX hosts a sender resolves at once (``Policy().max_mx_hosts``, 20): hosts beyond it are
#: looked up only when the first ones all fail (``too-many-mx-hosts``).
SENDER_MX_HOSTS = Policy().max_mx_hosts
#: An MX RRset TTL below this many seconds is reported (``ttl-short``, INFO): a judgement
#: call, not an RFC limit -- an outage of the zone's name servers longer than the TTL makes
#: senders' MX lookups fail (deferral) unless their resolvers serve stale data (RFC 8767).
TTL_SHORT = 300
#: A TTL above this many seconds is reported (``ttl-long``, WARNING): RFC 8767 §4 caps TTLs
#: at 7 days (604,800 s) in resolvers, so a longer one is not honoured as written, and a change
#: would take a week or more to reach every cache.
TTL_LONG = 604_800

#: An MTA-STS ``max_age`` below this many seconds (a day) is reported
#: (``sts-max-age-short``, WARNING): RFC 8461 §3.2 suggests "weeks or greater"; a short one
#: lets a DNS attacker strip the policy as soon as it expires from senders' caches.
STS_MAX_AGE_SHORT = 86_400

#: Top-level names that never exist on the public internet: RFC 2606/6761 (test, example,
#: invalid, localhost), RFC 6762 (local), RFC 8375 (home.arpa), ICANN 2024 (internal). Private
#: addresses are only INFO below them.
_INTERNAL_SUFFIXES = ("test", "example", "invalid", "localhost", "local", "internal", "home.arpa")

#: Networks reachable only inside a site: RFC 1918, RFC 6598 (shared address space, CGNAT),
#: RFC 4193 (unique local IPv6).
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


class Severity(enum.Enum):
    """How bad a :class:`Finding` is."""

    #: Mail is, or will be, lost or refused (for some or all senders) -- fix it.
    ERROR = "error"
    #: It works today but is fragile or not conformant.
    WARNING = "warning"
    #: Worth knowing; nothing is wrong.
    INFO = "info"

    @property
    def rank(self) -> int:
        """2 for ERROR, 1 for WARNING, 0 for INFO: the order of severity."""
        return _RANKS[self]

    def __str__(self) -> str:
        return self.value


_RANKS = {Severity.ERROR: 2, Severity.WARNING: 1, Severity.INFO: 0}


@attrs.frozen
class Finding:
    """One thing :func:`check` found.

    Attributes:
        code: a stable identifier, e.g. ``"mx-is-cname"`` (docs/check.md lists them).
        severity: the :class:`Severity`.
        subject: the record or host concerned, e.g. ``"MX 10 mail.example.org"``.
        message: one sentence: what is wrong, and what it does to mail.
        fix: what to change.
        rfc: the RFC section behind it, e.g. ``"RFC 2181 §10.3"``.
    """

    code: str
    severity: Severity
    subject: str
    message: str
    fix: str
    rfc: str

    def as_dict(self) -> dict[str, str]:
        """The finding as a JSON object (the ``findings`` of :meth:`Report.as_dict`)."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "subject": self.subject,
            "message": self.message,
            "fix": self.fix,
            "rfc": self.rfc,
        }


def _sorted(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: -f.severity.rank))  # stable: found order kept


@attrs.frozen
class Report:
    """What :func:`check` found for one domain.

    Attributes:
        domain: the domain checked, normalised (or as given, if it is not a domain).
        findings: every :class:`Finding`, errors first, then warnings, then info (in the order
            found within a severity).
        selection: the :class:`~mxselect.Selection` a sender would make (every address,
            no limit), or ``None`` when the selection failed.
        error: the :class:`~mxselect.MXSelectError` a sender would get, or ``None``.
        sts_id: the ``id`` of the domain's valid ``_mta-sts`` record (RFC 8461 §3.1), or
            ``None`` (no record, or none valid).
        sts_policy: the MTA-STS policy fetched (RFC 8461 §3.2): as the selection applied
            it, or -- the selection failed -- as parsed from the fetch; ``None`` without one.
        sts_source: where :attr:`sts_policy` came from: ``"fetched"`` or ``"cached"``
            (``None`` without a policy).
        tlsrpt: the reporting URIs (``rua``) of the domain's valid TLS-RPT record (RFC 8460
            §3), ``()`` without one.
    """

    domain: str
    findings: tuple[Finding, ...] = attrs.field(converter=_sorted)
    selection: Selection | None = None
    error: MXSelectError | None = attrs.field(default=None, eq=False)
    sts_id: str | None = attrs.field(default=None, kw_only=True)
    sts_policy: StsPolicy | None = attrs.field(default=None, kw_only=True)
    sts_source: str | None = attrs.field(default=None, kw_only=True)
    tlsrpt: tuple[str, ...] = attrs.field(default=(), kw_only=True)

    @property
    def worst(self) -> Severity | None:
        """The most severe finding's severity, ``None`` without findings."""
        return self.findings[0].severity if self.findings else None

    @property
    def ok(self) -> bool:
        """``True`` when there is no ERROR and no WARNING (INFO findings are fine)."""
        return self.worst in (None, Severity.INFO)

    def count(self, severity: Severity) -> int:
        """How many findings have this severity."""
        return sum(1 for f in self.findings if f.severity is severity)

    def as_dict(self) -> dict[str, Any]:
        """The report as a JSON object (schema :data:`SCHEMA`; docs/check.md)."""
        selection = self.selection
        error = self.error
        return {
            "schema": SCHEMA,
            "domain": self.domain,
            "worst": None if self.worst is None else self.worst.value,
            "counts": {s.value: self.count(s) for s in Severity},
            "findings": [f.as_dict() for f in self.findings],
            "selection": None
            if selection is None
            else {
                "canonical_domain": selection.canonical_domain,
                "implicit": selection.implicit,
                "ttl": selection.ttl,
                "mx_security": selection.mx_security.value,
                "hosts": [
                    {
                        "name": h.name,
                        "preference": h.preference,
                        "addresses": [str(a) for a in h.addresses],
                        "canonical_name": h.canonical_name,
                        "address_security": h.address_security.value,
                        "tls": _tls_json(h.tls),
                    }
                    for h in selection.hosts
                ],
            },
            "mta_sts": self._sts_json(),
            "tlsrpt": list(self.tlsrpt),
            "error": None
            if error is None
            else {
                "type": type(error).__name__,
                "reply_code": error.reply_code,
                "status": error.status,
                "permanent": error.permanent,
                "reason": error.reason,
            },
        }

    def _sts_json(self) -> dict[str, Any] | None:
        policy = self.sts_policy
        if policy is None and self.sts_id is None:
            return None
        return {
            "id": self.sts_id,
            "mode": None if policy is None else policy.mode.value,
            "mx": [] if policy is None else list(policy.mx),
            "max_age": None if policy is None else policy.max_age,
            "source": self.sts_source,
            "warnings": [] if policy is None else list(policy.warnings),
        }


def _tls_json(tls: TlsRequirement) -> dict[str, Any]:
    """A host's TLS requirement in the check's JSON: the DANE/MTA-STS posture and the usable
    TLSA records (presentation form), as in the selection JSON of ``mxselect --json``."""
    return {
        "posture": tls.posture.value,
        "required": tls.required,
        "authenticate": tls.authenticate,
        "tlsa": [str(r) for r in tls.tlsa],
        "tlsa_base_domain": tls.tlsa_base_domain,
    }


def check_policy(policy: Policy | None = None) -> Policy:
    """The policy a check selects with: ``policy`` (its families, unsafe networks, CNAME limit)
    with every exchange resolved (up to :data:`CHECK_MAX_HOSTS`), no address limit, a null MX
    beside real records and a CNAME exchange noticed rather than obeyed, the implicit MX on,
    no local names, and DANE (opportunistic: a failing TLSA lookup is noticed, never made
    mandatory), MTA-STS and TLS-RPT on, as a sender that implements them looks."""
    return attrs.evolve(
        policy if policy is not None else Policy(),
        max_mx_hosts=CHECK_MAX_HOSTS,
        max_address_queries=None,
        max_addresses=None,
        keep_one_per_preference=False,
        implicit_mx=True,
        strict_null_mx=False,
        strict_cname_exchange=False,
        allow_mx_to_ip=False,
        local_names=(),
        local_addresses=(),
        dane=Dane.OPPORTUNISTIC,
        mta_sts=True,
        tlsrpt=True,
        sts_background=False,
    )


# ------------------------------------------------------------------------------------ drivers


def _deadline(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not deadline > 0:
        raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}")
    return None if math.isinf(deadline) else float(deadline)


class _Run:
    """One check: the plan, every answer fed to it by (name without dot, type), the policy
    fetch, and the lookups the check adds after the plan (TLSA of hosts a sender skips)."""

    def __init__(
        self, domain: str, policy: Policy | None, rng: random.Random | None, fetcher: Any
    ) -> None:
        self.given = domain
        self.policy = check_policy(policy)
        self.answers: dict[tuple[str, RRType], Answer] = {}
        self.invalid: InvalidDomainError | None = None
        self.plan: SelectionPlan | None = None
        self.fetcher = _default_fetcher() if fetcher is None else fetcher
        self.fetch_result: FetchResult | None = None
        self.fetch_skipped = False
        self._fetched = False
        try:
            self.plan = SelectionPlan(
                domain, rng=rng or random.Random(0), policy=self.policy, now=time.time()
            )
        except InvalidDomainError as exc:
            self.invalid = exc

    @property
    def done(self) -> bool:
        return self.plan is None or self.plan.done

    @property
    def pending(self) -> tuple[Query, ...]:
        assert self.plan is not None
        return self.plan.pending

    def fetch(self) -> PolicyFetch | None:
        """The MTA-STS policy fetch to make now, or ``None``; without a fetcher (no httpx),
        a failed result is fed at once and :attr:`fetch_skipped` set."""
        assert self.plan is not None
        if self._fetched or not self.plan.fetches:
            return None
        self._fetched = True
        request = self.plan.fetches[0]
        if self.fetcher is None:
            self.fetch_skipped = True
            self.feed_fetch(request, FetchResult.failed("not fetched: httpx is not installed"))
            return None
        return request

    def feed_fetch(self, request: PolicyFetch, result: FetchResult) -> None:
        assert self.plan is not None
        self.fetch_result = result
        self.plan.feed(request, result)

    def feed(self, batch: tuple[Query, ...], answers: Iterable[Answer | None], why: str) -> None:
        assert self.plan is not None
        missing = False
        for query, answer in zip(batch, answers, strict=True):
            if answer is None:
                missing = True
                continue
            self.answers[(query.name.rstrip(".").lower(), query.rtype)] = answer
            self.plan.feed(query, answer)
        if missing or (not batch and not self.plan.fetches):
            self.plan.abandon(why)

    def extra(self) -> tuple[Query, ...]:
        """After the plan: the TLSA lookups a sender skips because the host's addresses are
        insecure (RFC 7672 §2.2.2), to say that its TLSA records are ignored."""
        if self.plan is None or not self.plan.done:
            return ()
        try:
            selection = self.plan.result()
        except MXSelectError:
            return ()
        if selection.mx_security is Security.UNKNOWN:
            return ()  # the resolver cannot say (dnssec-unknown)
        port = self.policy.tlsa_port
        names = dict.fromkeys(
            name
            for h in selection.hosts
            if h.address_security is Security.INSECURE
            for name in (h.name, h.canonical_name)
        )
        return tuple(Query(f"_{port}._tcp.{name}.", RRType.TLSA) for name in names)

    def record(self, batch: tuple[Query, ...], answers: Iterable[Answer | None]) -> None:
        for query, answer in zip(batch, answers, strict=True):
            if answer is not None:
                self.answers[(query.name.rstrip(".").lower(), query.rtype)] = answer

    def report(self) -> Report:
        if self.plan is None:
            assert self.invalid is not None
            return _invalid(self.given, self.invalid)
        try:
            selection: Selection | None = self.plan.result()
            error: MXSelectError | None = None
        except MXSelectError as exc:
            selection, error = None, exc
        return _Findings(self, selection, error).report()


def _default_fetcher() -> Any:
    """``mxselect.fetch.HttpxFetcher()``, or ``None`` without httpx (the ``mta-sts`` extra)."""
    try:
        from .fetch import HttpxFetcher
    except ImportError:  # pragma: no cover - depends on the extras installed
        return None
    return HttpxFetcher()


def _fetch(fetcher: Any, request: PolicyFetch) -> FetchResult:
    try:
        result: FetchResult = fetcher.fetch(request)
    except Exception as exc:  # a fetcher that raised: a failed fetch, never a crash
        return FetchResult.failed(f"the fetcher raised {type(exc).__name__}: {exc}")
    return result


def check(
    domain: str,
    *,
    resolver: Resolver | Any | None = None,
    policy: Policy | None = None,
    deadline: float | None = None,
    rng: random.Random | None = None,
    fetcher: Any = None,
) -> Report:
    """Check the mail routing of ``domain``: every finding, with the selection or the error.

    Args:
        domain: the domain (U-label or A-label, any case, optional trailing dot).
        resolver: as for :func:`mxselect.select_targets` (``None``: the system's). The
            DNSSEC findings need one that reports the DNSSEC status (a validating resolver
            the caller trusts); with any other the check says ``dnssec-unknown`` once.
        policy: the :class:`~mxselect.Policy` whose families, unsafe networks and CNAME limit
            apply; the rest is set by :func:`check_policy`.
        deadline: seconds the whole check may take; the lookups still unanswered then are
            reported as failed (``mx-lookup-failed`` or ``exchange-lookup-failed``). The
            MTA-STS fetch is bounded by its own timeout (RFC 8461 §3.3).
        rng: the shuffle of equal preferences in :attr:`Report.selection` (default seeded: a
            check is reproducible).
        fetcher: what fetches the MTA-STS policy when the domain has an ``_mta-sts`` record
            (as for :func:`mxselect.select_targets`); ``None``:
            ``mxselect.fetch.HttpxFetcher()`` when httpx is installed, else no fetch
            (``sts-not-fetched``, info).

    Returns:
        The :class:`Report`. A check never raises for what DNS says: an invalid domain is a
        finding too (``invalid-domain``).
    """
    seconds = _deadline(deadline)
    run = _Run(domain, policy, rng, fetcher)
    if run.done:
        return run.report()
    port = sync_port(resolver)
    end = None if seconds is None else time.monotonic() + seconds
    while not run.done:
        request = run.fetch()
        if request is not None:
            run.feed_fetch(request, _fetch(run.fetcher, request))
            continue
        batch = run.pending
        if end is None:
            run.feed(batch, port.answers(batch), "the check needs no more answers")
        else:
            answers = port.answers_until(batch, end) if batch else []
            run.feed(batch, answers, f"the deadline of {seconds:g} s expired")
    extra = run.extra()
    if extra and (end is None or time.monotonic() < end):
        run.record(extra, port.answers(extra) if end is None else port.answers_until(extra, end))
    return run.report()


async def acheck(
    domain: str,
    *,
    resolver: AsyncResolver | Resolver | Any | None = None,
    policy: Policy | None = None,
    deadline: float | None = None,
    rng: random.Random | None = None,
    fetcher: Any = None,
) -> Report:
    """The asyncio twin of :func:`check`: same arguments, same report; each batch of
    queries runs concurrently (``resolver`` as for :func:`mxselect.aselect_targets`;
    ``fetcher``'s ``afetch`` is awaited when it has one)."""
    import asyncio

    from ._drivers import _afetch

    seconds = _deadline(deadline)
    run = _Run(domain, policy, rng, fetcher)
    if run.done:
        return run.report()
    port = async_port(resolver)
    loop = asyncio.get_running_loop()
    end = None if seconds is None else loop.time() + seconds
    while not run.done:
        request = run.fetch()
        if request is not None:
            run.feed_fetch(request, await _afetch(run.fetcher, request))
            continue
        batch = run.pending
        if end is None:
            run.feed(batch, await port.answers(batch), "the check needs no more answers")
        else:
            answers = await port.answers_until(batch, end) if batch else []
            run.feed(batch, answers, f"the deadline of {seconds:g} s expired")
    extra = run.extra()
    if extra and (end is None or loop.time() < end):
        answers = await (port.answers(extra) if end is None else port.answers_until(extra, end))
        run.record(extra, answers)
    return run.report()


# ----------------------------------------------------------------------------------- findings


def _invalid(given: str, exc: InvalidDomainError) -> Report:
    finding = Finding(
        "invalid-domain",
        Severity.ERROR,
        str(given),
        f"{given!s} is not a mail domain: {exc.reason}.",
        "Check the spelling: a domain is dot-separated labels of letters, digits and "
        "hyphens (or a U-label), at most 253 characters.",
        "RFC 5321 §4.1.2",
    )
    return Report(exc.domain, (finding,), None, exc)


def _is_internal(domain: str) -> bool:
    return any(domain == s or domain.endswith("." + s) for s in _INTERNAL_SUFFIXES)


def _private(address: IPAddress) -> bool:
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    probe = mapped if mapped is not None else address
    return any(probe.version == n.version and probe in n for n in PRIVATE_NETWORKS)


class _Findings:
    """The findings of one finished plan, from its warnings, its outcome and its answers."""

    def __init__(self, run: _Run, selection: Selection | None, error: MXSelectError | None) -> None:
        plan = run.plan
        assert plan is not None
        self.plan = plan
        self.policy = run.policy
        self.answers = run.answers
        self.run = run
        self.selection = selection
        self.error = error
        self.domain = plan.domain
        self.canonical = plan.canonical_domain
        self.findings: list[Finding] = []
        warnings = selection.warnings if selection is not None else error.warnings if error else ()
        self.warnings: tuple[SelectionWarning, ...] = warnings
        self.mx = self.final(self.domain, RRType.MX)
        self.implicit = self.mx is not None and self.mx.status is Status.NODATA
        self.sts_txt = self.answers.get((f"_mta-sts.{self.domain}", RRType.TXT))
        self.sts_record: StsRecord | None = (
            parse_sts_record(self.sts_txt.txt)
            if self.sts_txt is not None and self.sts_txt.status is Status.RECORDS
            else None
        )
        self.sts_policy = self._sts_policy()

    def _sts_policy(self) -> StsPolicy | None:
        """The MTA-STS policy fetched: as the selection applied it, or (the selection failed)
        as parsed from the fetch, if it parses."""
        if self.selection is not None and self.selection.sts_policy is not None:
            return self.selection.sts_policy
        result = self.run.fetch_result
        if result is None or result.status != 200 or self.selection is not None:
            return None
        try:
            return parse_policy(result.body)
        except ValueError:
            return None

    def add(
        self, code: str, severity: Severity, subject: str, message: str, fix: str, rfc: str
    ) -> None:
        self.findings.append(Finding(code, severity, subject, message, fix, rfc))

    def final(self, name: str, rtype: RRType) -> Answer | None:
        """The last answer of the lookup of (name, type) through its CNAMEs, as fed."""
        for _ in range(self.policy.cname_limit + 2):
            answer = self.answers.get((name, rtype))
            if answer is None or answer.status is not Status.ALIAS or not answer.canonical_name:
                return answer
            name = answer.canonical_name.rstrip(".").lower()
        return None

    def ttls(self, name: str, rtype: RRType) -> list[int]:
        found: list[int] = []
        for _ in range(self.policy.cname_limit + 2):
            answer = self.answers.get((name, rtype))
            if answer is None:
                break
            ttl = norm_ttl(answer.ttl)
            if ttl is not None and answer.status in (Status.RECORDS, Status.ALIAS):
                found.append(ttl)
            if answer.status is not Status.ALIAS or not answer.canonical_name:
                break
            name = answer.canonical_name.rstrip(".").lower()
        return found

    def addresses(self, host: str) -> list[IPAddress]:
        found: list[IPAddress] = []
        for rtype in (RRType.AAAA, RRType.A):
            answer = self.final(host, rtype)
            if answer is not None and answer.status is Status.RECORDS:
                found.extend(answer.addresses)
        return found

    # -- the whole report ------------------------------------------------------------------

    def report(self) -> Report:
        self.domain_cname()
        self.outcome()
        for warning in self.warnings:
            self.warning(warning)
        self.mx_set()
        if self.selection is not None:
            self.hosts(self.selection)
        self.dnssec()
        self.sts()
        self.tlsrpt()
        policy = self.sts_policy
        selection = self.selection
        rua = self.answers.get((f"_smtp._tls.{self.domain}", RRType.TXT))
        return Report(
            self.domain,
            tuple(self.findings),
            selection,
            self.error,
            sts_id=None if self.sts_record is None else self.sts_record.id,
            sts_policy=policy,
            sts_source=None
            if policy is None
            else selection.sts_source
            if selection is not None and selection.sts_source
            else "fetched",
            tlsrpt=(parse_tlsrpt_record(rua.txt) or ())
            if rua is not None and rua.status is Status.RECORDS
            else (),
        )

    def domain_cname(self) -> None:
        if self.canonical == self.domain:
            return
        self.add(
            "domain-is-cname",
            Severity.WARNING,
            self.domain,
            f"{self.domain} is an alias (CNAME) of {self.canonical}: senders use the MX "
            f"records of {self.canonical}, and {self.domain} can hold no other record "
            "(no SPF TXT, no MX of its own).",
            f"Publish MX records at {self.domain} itself instead of the CNAME, or keep it "
            f"knowingly: whoever runs {self.canonical} decides where your mail goes.",
            "RFC 5321 §5.1, RFC 2181 §10.1",
        )

    def outcome(self) -> None:
        error = self.error
        domain = self.domain
        if error is None:
            if self.implicit:
                assert self.selection is not None
                addresses = ", ".join(str(a) for a in self.selection.addresses)
                self.add(
                    "no-mx",
                    Severity.INFO,
                    domain,
                    f"{domain} has no MX records: senders deliver to its own address records "
                    f"(the implicit MX, fine by RFC 5321 §5.1), here {addresses}.",
                    "Nothing to fix if that host accepts mail on port 25; an MX record says "
                    "so explicitly, and DANE (RFC 7672) and MTA-STS (RFC 8461) need one, as "
                    "do validators that refuse domains without MX. If the domain takes no "
                    "mail, publish a null MX (MX 0 .) instead.",
                    "RFC 5321 §5.1",
                )
            return
        reason = error.reason
        if isinstance(error, NoSuchDomainError):
            self.add(
                "no-such-domain",
                Severity.ERROR,
                domain,
                f"{domain} does not exist (NXDOMAIN): every sender bounces mail to it.",
                "Create the domain's records (is the zone delegated, and the name spelt "
                "right?), or stop handing out addresses at it.",
                "RFC 5321 §5.1",
            )
        elif isinstance(error, NullMXError):
            self.add(
                "null-mx",
                Severity.INFO,
                domain,
                f"{domain} publishes a null MX: it refuses mail on purpose, and senders bounce "
                "at once (556 5.1.10) instead of trying its address records.",
                "Nothing to fix if the domain takes no mail; to receive mail, replace the "
                "null MX with MX records naming your mail servers.",
                "RFC 7505 §3, §4.1",
            )
        elif isinstance(error, NoUsableTargetsError) and self.implicit:
            self.add(
                "no-mx-no-address",
                Severity.ERROR,
                domain,
                f"{domain} has no MX records and no A or AAAA records: every sender bounces "
                "mail to it.",
                "Publish MX records naming your mail servers; if the domain takes no mail, "
                "publish a null MX (MX 0 .) so senders fail at once and say why.",
                "RFC 5321 §5.1, RFC 7505 §3",
            )
        elif isinstance(error, NoUsableTargetsError):
            self.add(
                "no-usable-exchange",
                Severity.ERROR,
                domain,
                f"No MX record of {domain} leads to a usable host: every sender bounces mail "
                f"to it ({reason}).",
                "Fix the MX records the other findings name: each must name a host with A or AAAA "
                "records of public addresses.",
                "RFC 5321 §5.1",
            )
        elif isinstance(error, DNSTemporaryError) and (
            self.mx is None or self.mx.status is Status.TEMPFAIL
        ):
            why = self.mx.reason if self.mx is not None and self.mx.reason else reason
            if "bogus" in why.lower():
                self.add(
                    "mx-bogus",
                    Severity.ERROR,
                    f"MX {self.canonical}",
                    f"The MX answer of {domain} fails DNSSEC validation (bogus: {why}): every "
                    "sender behind a validating resolver gets SERVFAIL, queues the mail and "
                    "bounces it when its queue lifetime runs out.",
                    "Re-sign the zone (expired or missing signatures, a DS record at the parent "
                    "that matches no DNSKEY); check with a DNSSEC debugger; then check again.",
                    "RFC 4035 §5.5, RFC 7672 §2.1.1",
                )
                return
            self.add(
                "mx-lookup-failed",
                Severity.ERROR,
                f"MX {self.canonical}",
                f"The MX lookup of {domain} fails right now ({why}): senders queue mail to it "
                "and retry, and bounce it when their queue lifetime (days) runs out.",
                "Check that the domain's name servers answer (and, in a signed zone, that "
                "DNSSEC validates); then check again.",
                "RFC 5321 §5.1, §4.5.4.1",
            )
        elif isinstance(error, DNSTemporaryError):
            self.add(
                "mail-deferred",
                Severity.ERROR,
                domain,
                f"No MX host of {domain} can be used right now and some lookups failed "
                f"temporarily: senders queue mail and retry ({reason}).",
                "Fix the exchanges the other findings name (their name servers must answer); then "
                "check again.",
                "RFC 5321 §5.1, §4.5.4.1",
            )
        elif isinstance(error, SecureDeliveryError | StsPolicyError):
            return  # every host: tlsa-lookup-failed / sts-mx-mismatch (errors) say why
        else:  # pragma: no cover - not produced with check_policy (no local names)
            self.add(
                type(error).__name__,
                Severity.ERROR if error.permanent else Severity.WARNING,
                domain,
                f"Selection fails: {error.smtp_reply}.",
                "See the reason.",
                "RFC 5321 §5.1",
            )

    # -- what the selection noticed --------------------------------------------------------

    def warning(self, warning: SelectionWarning) -> None:
        code = warning.code
        host = warning.host or self.domain
        domain = self.domain
        text = warning.message
        if code is WarningCode.NULL_MX_MIXED:
            self.add(
                "null-mx-mixed",
                Severity.ERROR,
                f"MX 0 . at {self.canonical}",
                f"{domain} publishes a null MX beside real MX records, which RFC 7505 "
                "forbids: senders disagree -- some (Postfix) refuse all mail to the domain, "
                "others (Exim, mxselect) ignore the null record.",
                "Remove the null MX record (MX 0 .) if the domain takes mail, or every other "
                "MX record if it does not.",
                "RFC 7505 §3",
            )
        elif code is WarningCode.NULL_MX_PREFERENCE:
            self.add(
                "null-mx-preference",
                Severity.WARNING,
                f"MX . at {self.canonical}",
                f"The null MX of {domain} has a preference other than 0 ({text}); senders "
                "still read it as a null MX.",
                "Publish it as MX 0 . (preference 0).",
                "RFC 7505 §3",
            )
        elif code is WarningCode.INVALID_EXCHANGE:
            self.add(
                "invalid-exchange",
                Severity.ERROR,
                f"MX {host}",
                f"An MX record of {domain} names something that is not a host name: senders "
                f"ignore it ({text}).",
                "Name a host (letters, digits, hyphens, dots) with A or AAAA records.",
                "RFC 5321 §4.1.2, RFC 2181 §11",
            )
        elif code is WarningCode.MX_IS_ADDRESS:
            self.add(
                "mx-is-address",
                Severity.ERROR,
                f"MX {host}",
                f"An MX record of {domain} is written as an IP address ({host}): RFC 5321 "
                "requires a host name, and most senders (Exim, mxselect) ignore the record.",
                f"Give the server a name with an A/AAAA record for {host}, and put that name "
                "in the MX record.",
                "RFC 5321 §5.1",
            )
        elif code is WarningCode.DUPLICATE_HOST:
            self.add(
                "duplicate-host",
                Severity.WARNING,
                f"MX {host}",
                f"{host} is listed more than once in the MX records of {domain}: senders use "
                "it once, at its best preference, so the second record adds nothing.",
                "Remove the duplicate MX record.",
                "RFC 5321 §5.1",
            )
        elif code is WarningCode.DUPLICATE_ADDRESS:
            # One finding per host (both families): the structured fields, never the text.
            other = warning.listed_for or "another host"
            if any(f.code == "duplicate-address" and f.subject == host for f in self.findings):
                return
            shared = [
                str(w.address)
                for w in self.warnings
                if w.code is WarningCode.DUPLICATE_ADDRESS
                and w.host == warning.host
                and w.address is not None
            ]
            self.add(
                "duplicate-address",
                Severity.WARNING,
                host,
                f"The MX host {host} has the same address(es) as {other} "
                f"({', '.join(shared)}): senders try each address once, so it adds no "
                "redundancy.",
                "Give each MX host its own address (a backup on the same machine is no "
                "backup), or remove the redundant MX record.",
                "RFC 5321 §5.1",
            )
        elif code is WarningCode.EXCHANGE_IS_ALIAS:
            canonical = self._canonical_of(host)
            self.add(
                "mx-is-cname",
                Severity.WARNING,
                f"MX {host}",
                f"The MX host {host} is an alias (CNAME) of {canonical}: most senders follow "
                "it, but RFC 2181 forbids it, strict senders refuse it, and DANE looks up its "
                "TLSA records at the end of the chain.",
                f"Put {canonical} (the canonical name) in the MX record, or give {host} its "
                "own A/AAAA records.",
                "RFC 2181 §10.3, RFC 5321 §5.1",
            )
        elif code is WarningCode.HOST_UNUSABLE:
            self.unusable(host)
        elif code is WarningCode.PARTIAL_ADDRESS_FAILURE:
            self.add(
                "address-lookup-failed",
                Severity.WARNING,
                host,
                f"One address lookup of the MX host {host} fails right now ({text}): senders "
                "use its other addresses meanwhile.",
                f"Check the name servers of {host}; then check again.",
                "RFC 5321 §5.1",
            )
        elif code is WarningCode.UNSAFE_ADDRESS:
            address = str(warning.address) if warning.address is not None else host
            self.add(
                "unsafe-address",
                Severity.ERROR,
                f"{host} {address}",
                f"The MX host {host} has the address {address}, in a loopback, link-local, "
                "multicast or reserved network: careful senders drop it, others connect to "
                "themselves.",
                f"Publish the public address of {host} instead.",
                "RFC 6890, RFC 5321 §5.1",
            )
        elif code is WarningCode.BAD_ANSWER:
            self.add(
                "bad-answer",
                Severity.WARNING,
                host,
                f"The resolver answered the lookup of {host} with addresses of the wrong "
                f"family ({text}).",
                "Check the resolver (or the name servers) answering for the host.",
                "RFC 1035 §3.4.1, RFC 3596 §2.2",
            )
        elif code is WarningCode.MX_HOSTS_CAPPED:
            return  # reported by mx_set (too-many-mx-hosts)
        elif code is WarningCode.DNSSEC_UNAVAILABLE:
            self.add(
                "dnssec-unknown",
                Severity.INFO,
                domain,
                "DNSSEC status unknown: the resolver asked does not report it (not a "
                "validating resolver this check trusts), so the DNSSEC and DANE findings are "
                "not made.",
                "Check with a validating resolver on this machine (--nameserver 127.0.0.1, "
                "e.g. Unbound), or with --zone and --signed ZONE offline.",
                "RFC 7672 §2.1.1, RFC 4035 §4.9.3",
            )
        elif code is WarningCode.TLSA_LOOKUP_FAILED:
            self.add(
                "tlsa-lookup-failed",
                Severity.ERROR,
                host,
                f"The TLSA lookup of the MX host {host}, in a signed zone, fails ({text}): "
                "DANE senders must treat the host as unreachable, so their mail to it is "
                "deferred (and bounced when their queues expire).",
                "Fix the TLSA records (a bogus or missing signature) or the name servers "
                f"answering for _25._tcp.{host}: a signed zone must answer the TLSA query, "
                "with records or a signed denial.",
                "RFC 7672 §2.1.2",
            )
        elif code is WarningCode.TLSA_UNUSABLE:
            self.add(
                "tlsa-unusable",
                Severity.WARNING,
                host,
                f"The MX host {host} publishes TLSA records, but none a sender can use (only "
                "PKIX-TA/PKIX-EE usages, unknown selectors or matching types, or digests of "
                "the wrong length): DANE senders require TLS but cannot authenticate it.",
                "Publish a DANE-EE (3 1 1) or DANE-TA (2 1 1) record of the server's key, "
                "keeping the old one until the new one is in every cache.",
                "RFC 6698 §4.1, RFC 7672 §3.1.3",
            )
        elif code is WarningCode.STS_MX_MISMATCH:
            enforce = self.sts_policy is not None and self.sts_policy.mode is StsMode.ENFORCE
            patterns = ", ".join(self.sts_policy.mx) if self.sts_policy is not None else "?"
            self.add(
                "sts-mx-mismatch",
                Severity.ERROR if enforce else Severity.WARNING,
                host,
                f"The MX host {host} matches no mx pattern of the MTA-STS policy of {domain} "
                f"({patterns}): "
                + (
                    "in mode enforce, MTA-STS senders never deliver to it."
                    if enforce
                    else "in mode testing, MTA-STS senders deliver anyway but report a "
                    "failure; in mode enforce they would not deliver to it."
                ),
                f"Add an mx line matching {host} to the policy (and change the id of the "
                f"_mta-sts record), or remove the MX record.",
                "RFC 8461 §4.1, §5",
            )
        elif code in (WarningCode.STS_FETCH_FAILED, WarningCode.STS_POLICY_STALE):
            self.sts_fetch_failed(text)
        else:  # pragma: no cover - local names and mandatory DANE are off in check_policy
            self.add(code.value, Severity.WARNING, host, text, "See the message.", "")

    def _canonical_of(self, host: str) -> str:
        """The name at the end of the CNAME chain of ``host``, as the answers say."""
        for rtype in (RRType.A, RRType.AAAA):
            name = host
            for _ in range(self.policy.cname_limit + 2):
                answer = self.answers.get((name, rtype))
                if answer is None or not answer.canonical_name:
                    break
                name = answer.canonical_name.rstrip(".").lower()
                if answer.status is not Status.ALIAS:
                    break
            if name != host:
                return name
        return "its target"

    def unusable(self, host: str) -> None:
        """An exchange without a usable address: broken (NXDOMAIN, NODATA) or failing now."""
        if self.implicit:
            return  # reported as the outcome (no-mx-no-address, mail-deferred)
        answers = [self.final(host, t) for t in (RRType.AAAA, RRType.A)]
        asked = [a for a in answers if a is not None]
        found = self.addresses(host)
        if found:
            return  # every address is unsafe: reported per address (unsafe-address)
        failing = len(asked) < len(self.policy_types()) or any(
            a.status is Status.TEMPFAIL for a in asked
        )
        if failing:
            why = "; ".join(a.reason for a in asked if a.reason) or "no answer"
            self.add(
                "exchange-lookup-failed",
                Severity.WARNING,
                host,
                f"The MX host {host} cannot be resolved right now ({why}): unreachable for "
                "now, not broken -- senders skip it and try it again later.",
                f"Check that the name servers of {host} answer; then check again.",
                "RFC 5321 §5.1",
            )
        elif all(a.status is Status.NXDOMAIN for a in asked):
            self.add(
                "exchange-nxdomain",
                Severity.ERROR,
                host,
                f"The MX host {host} does not exist (NXDOMAIN): senders skip it, and mail "
                "that only it could take is refused.",
                f"Create A/AAAA records for {host}, or remove the MX record naming it.",
                "RFC 5321 §5.1",
            )
        else:
            self.add(
                "exchange-no-address",
                Severity.ERROR,
                host,
                f"The MX host {host} has no A or AAAA records: senders cannot connect to it.",
                f"Add A/AAAA records for {host}, or remove the MX record naming it.",
                "RFC 5321 §5.1",
            )

    def policy_types(self) -> list[RRType]:
        types = []
        if self.policy.wants_ipv6:
            types.append(RRType.AAAA)
        if self.policy.wants_ipv4:
            types.append(RRType.A)
        return types

    # -- what the selection does not check -------------------------------------------------

    def mx_set(self) -> None:
        mx = self.mx
        if mx is None or mx.status is not Status.RECORDS:
            return
        names = {normalize_exchange(r.exchange) for r in mx.mx} - {""}
        if len(names) > SENDER_MX_HOSTS:
            examined = min(len(names), CHECK_MAX_HOSTS)
            self.add(
                "too-many-mx-hosts",
                Severity.WARNING,
                f"MX {self.canonical}",
                f"{self.domain} lists {len(names)} MX hosts: senders resolve about "
                f"{SENDER_MX_HOSTS} at a time and try only a few addresses, so the hosts "
                "beyond them are reached only when the first ones all fail (this check "
                f"examined {examined}).",
                f"List at most {SENDER_MX_HOSTS} MX hosts; spread load with several "
                "addresses per name instead.",
                "RFC 5321 §5.1",
            )
        ttls = self.ttls(self.domain, RRType.MX)
        self.ttl(f"MX {self.canonical}", ttls, short=True)

    def ttl(self, subject: str, ttls: list[int], *, short: bool) -> None:
        if not ttls:
            return
        low, high = min(ttls), max(ttls)
        if short and low < TTL_SHORT:
            self.add(
                "ttl-short",
                Severity.INFO,
                subject,
                f"The TTL of {subject} is {low} s (under {TTL_SHORT} s): when the zone's name "
                "servers are unreachable for longer, senders cannot look it up and defer mail.",
                f"Use {TTL_SHORT} s or more unless you are about to change the records.",
                "RFC 2181 §8, RFC 8767",
            )
        if high > TTL_LONG:
            self.add(
                "ttl-long",
                Severity.WARNING,
                subject,
                f"The TTL of {subject} is {high} s (over a week): resolvers cap it at 7 days, "
                "and a change would take that long to reach every sender.",
                "Use a TTL of a day or less (3600-86400 s is usual).",
                "RFC 8767 §4",
            )

    def hosts(self, selection: Selection) -> None:
        internal = _is_internal(self.domain) or _is_internal(self.canonical)
        mx = self.mx
        names = (
            {normalize_exchange(r.exchange) for r in mx.mx} - {""}
            if mx is not None and mx.status is Status.RECORDS
            else set()
        )
        if len(names) == 1:
            (name,) = names
            self.add(
                "single-mx",
                Severity.INFO,
                name,
                f"{self.domain} has a single MX host ({name}): no redundancy, but senders "
                "queue mail for days while it is down, so that is usually fine.",
                "Add a second MX host only if it accepts mail for the domain as the first "
                "does (same recipients, same spam filtering).",
                "RFC 5321 §4.5.4.1",
            )
        seen: set[str] = set()
        every: list[IPAddress] = []
        for host in selection.hosts:
            if host.name in seen:
                continue
            seen.add(host.name)
            found = self.addresses(host.name) or list(host.addresses)
            every.extend(found)
            self.ttl(
                f"{host.name} addresses",
                self.ttls(host.name, RRType.A) + self.ttls(host.name, RRType.AAAA),
                short=False,
            )
            private = [a for a in found if _private(a) and not self.policy.is_unsafe(a)]
            if private:
                severity = (
                    Severity.INFO
                    if internal
                    else Severity.ERROR
                    if len(private) == len(found)
                    else Severity.WARNING
                )
                listed = ", ".join(map(str, private))
                self.add(
                    "private-address",
                    severity,
                    f"{host.name} {listed}",
                    f"The MX host {host.name} has addresses in private networks ({listed}): "
                    "senders outside that network cannot reach them"
                    + (" (fine for an internal domain)." if internal else "."),
                    f"Publish the public address of {host.name}; keep private addresses in an "
                    "internal view of the zone.",
                    "RFC 1918, RFC 4193, RFC 6598",
                )
        families = {a.version for a in every}
        if every and 6 not in families and self.policy.wants_ipv6:
            self.add(
                "no-ipv6",
                Severity.INFO,
                self.domain,
                f"No MX host of {self.domain} has an IPv6 address: IPv6-only senders cannot "
                "deliver (rare today).",
                "Add AAAA records to the MX hosts once they accept mail over IPv6.",
                "RFC 3974",
            )
        if every and 4 not in families and self.policy.wants_ipv4:
            self.add(
                "no-ipv4",
                Severity.WARNING,
                self.domain,
                f"No MX host of {self.domain} has an IPv4 address: the many IPv4-only senders "
                "cannot deliver.",
                "Add A records to the MX hosts.",
                "RFC 3974",
            )

    # -- DNSSEC and DANE -------------------------------------------------------------------

    def dnssec(self) -> None:
        selection = self.selection
        if selection is None or selection.mx_security is Security.UNKNOWN:
            return  # the selection failed (said why), or the resolver cannot say (dnssec-unknown)
        if selection.mx_security is Security.INSECURE:
            what = "NODATA answer (no MX)" if selection.implicit else "MX RRset"
            self.add(
                "mx-unsigned",
                Severity.INFO,
                f"MX {self.canonical}",
                f"The {what} of {self.domain} is not DNSSEC-signed: senders cannot tell a "
                "forged answer from the real one, and DANE protects delivery only to MX "
                "hosts in signed zones of their own, never as verified delivery to the domain.",
                "Sign the zone (and publish its DS record at the parent); then publish TLSA "
                "records for the MX hosts (DANE).",
                "RFC 4033 §2, RFC 7672 §2.2.1",
            )
        port = self.policy.tlsa_port
        for host in selection.hosts:
            if host.tls.posture is Posture.DANE_INSECURE_MX:
                self.add(
                    "dane-insecure-mx",
                    Severity.INFO,
                    host.name,
                    f"The MX host {host.name} has usable secure TLSA records, but the MX "
                    f"RRset of {self.domain} is not signed: DANE senders authenticate the "
                    "host, yet cannot log the delivery as verified to the domain.",
                    f"Sign the zone of {self.canonical} (the MX records) too.",
                    "RFC 7672 §2.2.1",
                )
            if host.address_security is not Security.INSECURE:
                continue
            found = [
                self.answers.get((f"_{port}._tcp.{name}", RRType.TLSA))
                for name in (host.name, host.canonical_name)
            ]
            if any(a is not None and a.status is Status.RECORDS and a.tlsa for a in found):
                self.add(
                    "tlsa-ignored",
                    Severity.WARNING,
                    host.name,
                    f"TLSA records are published for the MX host {host.name}, but its address "
                    "records are not DNSSEC-signed: senders never look the TLSA records up, so "
                    "DANE does not protect the host.",
                    f"Sign the zone holding the A/AAAA records of {host.canonical_name} (or of "
                    "the CNAMEs leading to them), or remove the TLSA records.",
                    "RFC 7672 §2.2.2",
                )

    # -- MTA-STS and TLS-RPT ----------------------------------------------------------------

    def sts_fetch_failed(self, text: str) -> None:
        if any(f.code in ("sts-fetch-failed", "sts-not-fetched") for f in self.findings):
            return
        url = f"https://mta-sts.{self.domain}/.well-known/mta-sts.txt"
        if self.run.fetch_skipped:
            self.add(
                "sts-not-fetched",
                Severity.INFO,
                url,
                f"{self.domain} publishes an _mta-sts record, but this check cannot fetch its "
                "policy (httpx is not installed), so the policy findings are not made.",
                "pip install 'mxselect[mta-sts]', or pass fetcher= (offline: --zone with "
                "--sts-policy DOMAIN=FILE).",
                "RFC 8461 §3.3",
            )
            return
        self.add(
            "sts-fetch-failed",
            Severity.WARNING,
            url,
            f"{self.domain} publishes an _mta-sts record, but no valid policy can be fetched "
            f"({text}): senders with a cached policy keep applying it until its max_age runs "
            "out, the others deliver as though there were no policy -- no mail is lost, but "
            "MTA-STS protects nothing, and a changed MX set may not match a stale cached policy.",
            f"Serve the policy at {url} over HTTPS with a valid certificate for "
            f"mta-sts.{self.domain}, status 200, text/plain, no redirect; or remove the "
            "_mta-sts record.",
            "RFC 8461 §3.3",
        )

    def sts(self) -> None:
        txt = self.sts_txt
        domain = self.domain
        subject = f"TXT _mta-sts.{domain}"
        if txt is not None and txt.status is Status.RECORDS and self.sts_record is None:
            versioned = [t for t in txt.txt if t.lower().startswith("v=sts")]
            if versioned:
                what = (
                    f"{len(versioned)} v=STSv1 records"
                    if len(versioned) > 1
                    else f"a malformed record ({versioned[0]!r})"
                )
                self.add(
                    "sts-record-invalid",
                    Severity.WARNING,
                    subject,
                    f"_mta-sts.{domain} has {what}: senders must then assume the domain has no "
                    "MTA-STS policy (a cached one still applies until it expires).",
                    'Publish exactly one record "v=STSv1; id=<1-32 letters and digits>".',
                    "RFC 8461 §3.1",
                )
        policy = self.sts_policy
        if policy is None:
            return
        if policy.mode is StsMode.TESTING:
            self.add(
                "sts-testing",
                Severity.INFO,
                f"MTA-STS policy of {domain}",
                f"The MTA-STS policy of {domain} is in mode testing: senders validate and "
                "report failures (TLS-RPT), but deliver anyway.",
                "Once the TLS-RPT reports show no failures, switch to mode: enforce (and "
                "change the id of the _mta-sts record).",
                "RFC 8461 §5",
            )
        elif policy.mode is StsMode.NONE:
            self.add(
                "sts-mode-none",
                Severity.INFO,
                f"MTA-STS policy of {domain}",
                f"The MTA-STS policy of {domain} is in mode none: senders drop any policy "
                "they cached, and apply none.",
                "Nothing to fix if MTA-STS is being withdrawn; remove the _mta-sts record "
                "once the policy's max_age has passed.",
                "RFC 8461 §5, §8.3",
            )
        if policy.max_age < STS_MAX_AGE_SHORT and policy.mode is not StsMode.NONE:
            self.add(
                "sts-max-age-short",
                Severity.WARNING,
                f"MTA-STS policy of {domain}",
                f"The MTA-STS policy's max_age is {policy.max_age} s (under a day): senders "
                "forget it that soon, and an attacker who blocks the fetch or forges DNS "
                "afterwards strips MTA-STS; RFC 8461 suggests weeks or more.",
                "Use a max_age of weeks once the policy is stable (604800 s is one week; "
                "31557600 s, a year, is the most).",
                "RFC 8461 §3.2",
            )
        for warning in policy.warnings:
            self.add(
                "sts-policy-warning",
                Severity.WARNING,
                f"MTA-STS policy of {domain}",
                f"The MTA-STS policy of {domain} is accepted only after a correction: "
                f"{warning.rstrip('.')}.",
                "Publish max_age at most 31557600 and mx patterns as A-labels "
                "(xn--...), as RFC 8461 §3.2 requires.",
                "RFC 8461 §3.2",
            )

    def tlsrpt(self) -> None:
        domain = self.domain
        txt = self.answers.get((f"_smtp._tls.{domain}", RRType.TXT))
        if txt is None or txt.status is Status.TEMPFAIL:
            return
        subject = f"TXT _smtp._tls.{domain}"
        records = txt.txt if txt.status is Status.RECORDS else ()
        versioned = [t for t in records if t.startswith("v=TLSRPT")]
        if versioned and parse_tlsrpt_record(records) is None:
            what = (
                f"{len(versioned)} v=TLSRPTv1 records"
                if len(versioned) > 1
                else f"a malformed record ({versioned[0]!r})"
            )
            self.add(
                "tlsrpt-invalid",
                Severity.WARNING,
                subject,
                f"_smtp._tls.{domain} has {what}: senders assume the domain does not "
                "implement TLS-RPT and send no reports.",
                'Publish exactly one record "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>" (or an '
                "https:// URI).",
                "RFC 8460 §3",
            )
            return
        if versioned:
            return
        dane = any(
            f.code in ("tlsa-lookup-failed", "tlsa-unusable", "dane-insecure-mx")
            for f in self.findings
        ) or (
            self.selection is not None
            and any(h.tls.posture is Posture.DANE for h in self.selection.hosts)
        )
        sts = self.sts_record is not None
        if dane or sts:
            what = " and ".join(w for w, on in (("MTA-STS", sts), ("DANE", dane)) if on)
            self.add(
                "tlsrpt-missing",
                Severity.INFO,
                subject,
                f"{domain} publishes {what} but no TLS-RPT record: senders cannot report TLS "
                "failures to you, so a broken certificate or policy goes unnoticed until mail "
                "is deferred.",
                f'Publish _smtp._tls.{domain} TXT "v=TLSRPTv1; rua=mailto:tlsrpt@{domain}".',
                "RFC 8460 §3",
            )


# The probe and the HTML report live in their own modules (re-exported here).
from ._check_html import render_html  # noqa: E402
from ._probe import aprobe, probe  # noqa: E402
