"""MTA-STS (RFC 8461) as pure values and functions: the ``_mta-sts`` TXT record, the policy,
MX matching, and the cache decisions (no I/O, no clock: the time is passed in).

The plan (``_core``) uses them; the store that keeps entries across restarts and the fetcher
live outside the core (``mxselect.mtasts``, ``mxselect.fetch``).

* :func:`parse_record`: the ``_mta-sts.<domain>`` TXT records (RFC 8461 §3.1).
* :func:`parse_policy`: the policy body (RFC 8461 §3.2); raises :class:`StsError`.
* :func:`mx_matches`, :func:`policy_matches`: MX host validation (RFC 8461 §4.1, App. B).
* :func:`discover`: what to do after the TXT lookup, given the cached entry (RFC 8461 §3.1,
  §3.3, §5.1); :func:`fetched`: what to do with the result of the HTTPS fetch (§3.3).
* :func:`refresh_due`: the domains to refresh proactively (RFC 8461 §3.3, §10.2).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence

import attrs
import idna

from ._answers import MAX_POLICY_BYTES, Answer, FetchResult, Status
from ._domain import check_ldh_name

__all__ = [
    "CHECK_INTERVAL",
    "FAILURE_RETRY",
    "FETCH_ERROR",
    "MAX_MAX_AGE",
    "POLICY_INVALID",
    "Discovery",
    "Fetched",
    "StsEntry",
    "StsError",
    "StsMode",
    "StsPolicy",
    "StsRecord",
    "discover",
    "fetched",
    "mx_matches",
    "parse_policy",
    "parse_record",
    "policy_matches",
    "refresh_due",
]

#: The largest ``max_age`` (RFC 8461 §3.2: "maximum value of 31557600"); larger values are
#: clamped to it, with a warning (:attr:`~mxselect.StsPolicy.warnings`).
MAX_MAX_AGE = 31557600
#: No second fetch for the same ``id`` within this many seconds of a failed one (RFC 8461 §3.3:
#: "implementers SHOULD limit further attempts to a period of five minutes or longer per
#: version ID").
FAILURE_RETRY = 300.0
#: :func:`discover` moves an entry's ``checked_at`` (and asks for it to be stored) only when
#: it is at least this many seconds old: a busy MTA sees the same TXT id for every message,
#: and a store write per message buys nothing (``checked_at`` only schedules the daily
#: refresh, :func:`refresh_due`).
CHECK_INTERVAL = 60.0


class StsMode(enum.Enum):
    """The ``mode`` of an MTA-STS policy (RFC 8461 §5)."""

    #: Deliver only to MX hosts that match the policy, over validated TLS (RFC 8461 §5).
    ENFORCE = "enforce"
    #: Validate and report failures, but deliver anyway (RFC 8461 §5).
    TESTING = "testing"
    #: "treat the Policy Domain as though it does not have any active policy" (RFC 8461 §5).
    NONE = "none"

    def __str__(self) -> str:
        return self.value

    __hash__ = object.__hash__


@attrs.frozen
class StsRecord:
    """A usable ``_mta-sts.<domain>`` TXT record (RFC 8461 §3.1): its ``id``."""

    id: str


@attrs.frozen(kw_only=True)
class StsPolicy:
    """A parsed MTA-STS policy (RFC 8461 §3.2).

    Attributes:
        mode: the :class:`StsMode`.
        mx: the ``mx`` patterns, in order, lower-case A-labels without a trailing dot
            (``"mail.example.com"``, ``"*.example.net"``); may be empty only with mode none.
        max_age: seconds, at most 31557600 (RFC 8461 §3.2; larger values are clamped).
        text: the policy as fetched (for reports: RFC 8460 §4.4 ``policy-string``).
        warnings: what :func:`~mxselect.mtasts.parse_policy` accepted but corrected, one
            sentence each: a ``max_age`` above 31557600 clamped (RFC 8461 §3.2), a U-label
            ``mx`` pattern converted to its A-label (§3.2 requires the A-label). Empty for a
            clean policy.
    """

    mode: StsMode
    mx: tuple[str, ...] = ()
    max_age: int = 0
    text: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def clamped(self) -> bool:
        """Whether the policy's ``max_age`` was above 31557600 and was clamped to it."""
        return any(w.startswith("max_age ") for w in self.warnings)


@attrs.frozen(kw_only=True)
class StsEntry:
    """A cached policy of one policy domain (RFC 8461 §3.3, §10.2): what a store keeps.

    Attributes:
        domain: the policy domain.
        policy: the policy last fetched.
        id: the ``id`` of the TXT record it was fetched for.
        fetched_at: when it was fetched (seconds since the epoch): it is valid until
            ``fetched_at + policy.max_age`` -- TXT checks never extend it (RFC 8461 §3.2).
        checked_at: when the TXT record was last seen with this id.
        failed_id: the id of the last failed fetch, if any.
        failed_at: when it failed (no second fetch for that id within five minutes,
            RFC 8461 §3.3).

    An entry whose ``id`` is ``""`` records only a failed fetch of a domain that has no
    cached policy (a TXT ``id`` has at least one character, RFC 8461 §3.1): its policy is
    mode none with ``max_age`` 0 and ``fetched_at`` 0, so it is never valid; it exists so that
    the five-minute rule holds for domains without a cache too
    (:func:`~mxselect.mtasts.fetched`).
    """

    domain: str
    policy: StsPolicy
    id: str
    fetched_at: float
    checked_at: float
    failed_id: str | None = None
    failed_at: float | None = None

    def valid(self, now: float) -> bool:
        """Whether the cached policy is still valid at ``now`` (RFC 8461 §3.2 ``max_age``)."""
        return now < self.fetched_at + self.policy.max_age

    @property
    def expires_at(self) -> float:
        """When the cached policy stops being valid: ``fetched_at + policy.max_age``."""
        return self.fetched_at + self.policy.max_age

    @property
    def placeholder(self) -> bool:
        """Whether the entry records only a failed fetch (no policy was ever fetched)."""
        return self.id == ""

    def recently_failed(self, record_id: str, now: float) -> bool:
        """Whether a fetch for ``record_id`` failed less than five minutes before ``now``
        (RFC 8461 §3.3: "limit further attempts to a period of five minutes or longer per
        version ID")."""
        return (
            self.failed_id == record_id
            and self.failed_at is not None
            and 0 <= now - self.failed_at < FAILURE_RETRY
        )


class StsError(ValueError):
    """A TXT record or a policy that is not valid (RFC 8461 §3.1, §3.2); the message says why."""


# ---------------------------------------------------------------- the TXT record (§3.1)

#: RFC 8461 §3.1: "records that do not begin with "v=STSv1;" are discarded" (case-sensitive:
#: the ABNF's ``%s"v=STSv1"``, RFC 7405).
_TXT_PREFIX = "v=STSv1;"
#: ``sts-field-delim = *WSP ";" *WSP``.
_TXT_DELIM = re.compile(r"[ \t]*;[ \t]*")
#: ``sts-id = %s"id=" 1*32(ALPHA / DIGIT)``.
_TXT_ID = re.compile(r"id=([A-Za-z0-9]{1,32})\Z")
#: ``sts-extension = sts-ext-name "=" sts-ext-value``: a name of 1..32 characters, a value of
#: ``%x21-3A / %x3C / %x3E-7E`` (no "=", ";", space or control character).
_TXT_EXTENSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}=[\x21-\x3a\x3c\x3e-\x7e]+\Z")


def _record_fields(text: str) -> list[str] | None:
    """The fields after ``v=STSv1`` of one record, or ``None`` if its syntax is invalid."""
    if not text.isascii():  # RFC 8461 §3.1: "MTA-STS TXT records MUST be US-ASCII"
        return None
    # sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]; trailing
    # white space after the last field is tolerated (the one leniency).
    rest = text[len("v=STSv1") :].rstrip(" \t")
    if not rest.startswith((";", " ", "\t")):
        return None
    parts = _TXT_DELIM.split(rest)
    # A leading delimiter makes parts[0] == ""; a trailing one makes parts[-1] == "".
    if parts[0] != "":
        return None
    fields = parts[1:]
    if fields and fields[-1] == "":
        fields.pop()
    if not fields or "" in fields:
        return None
    return fields


def parse_record(txt: Sequence[str]) -> StsRecord | None:
    """The usable ``_mta-sts`` record among the TXT records of ``_mta-sts.<domain>``, or ``None``.

    Each record is given with its strings already concatenated (RFC 8461 §3.1: "treated as if
    those strings are concatenated without adding spaces"; :meth:`~mxselect.Answer.from_txt`).

    RFC 8461 §3.1: "records that do not begin with "v=STSv1;" are discarded" (the prefix is
    case-sensitive, ABNF ``%s``); "If the number of resulting records is not one, or if the
    resulting record is syntactically invalid, senders MUST assume the recipient domain does
    not have an available MTA-STS Policy" -- then ``None``. The syntax is the ABNF of §3.1:
    fields separated by ``;`` with optional white space, a trailing ``;`` allowed, US-ASCII,
    an ``id`` of 1 to 32 letters and digits (required), extension fields ``name=value``
    allowed and ignored; a duplicated ``id`` keeps the first (§3.2: "all entries except for
    the first SHALL be ignored").
    """
    candidates = [t for t in txt if t.startswith(_TXT_PREFIX)]
    if len(candidates) != 1:
        return None
    fields = _record_fields(candidates[0])
    if fields is None:
        return None
    record_id: str | None = None
    for field in fields:
        if field.startswith("id="):
            match = _TXT_ID.match(field)
            if match is None:
                return None  # an id of 33 characters, or with other characters
            if record_id is None:
                record_id = match.group(1)
        elif not _TXT_EXTENSION.match(field):
            return None
    return None if record_id is None else StsRecord(record_id)


# ---------------------------------------------------------------- the policy (§3.2)

#: ``sts-policy-ext-name = (sts-policy-alphanum) *31(sts-policy-alphanum / "_" / "-" / ".")``.
_POLICY_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")
#: Control characters other than the tab (white space, ``WSP``), which the ABNF excludes.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MODES = {m.value: m for m in StsMode}


def _mx_pattern(value: str, warnings: list[str]) -> str:
    """A normalised ``mx`` value (RFC 8461 §3.2: ``sts-policy-mx-value = ["*."] Domain``):
    lower case, no trailing dot, U-labels converted to A-labels (with a warning)."""
    pattern = value.lower()
    if pattern.endswith("."):
        pattern = pattern[:-1]
    wildcard = pattern.startswith("*.")
    name = pattern[2:] if wildcard else pattern
    if not name.isascii():
        try:
            ascii_name = idna.encode(name, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise StsError(f"mx pattern {value!r} is not a valid domain name: {exc}") from None
        warnings.append(
            f"mx pattern {value!r} is a U-label; RFC 8461 §3.2 requires the A-label: "
            f"matched as {('*.' if wildcard else '') + ascii_name!r}"
        )
        name = ascii_name
    why = check_ldh_name(name)
    if why is not None:
        # "*" anywhere but as the whole left-most label lands here (RFC 8461 §4.1).
        raise StsError(f"mx pattern {value!r} is not a valid pattern: {why}")
    return ("*." if wildcard else "") + name


def parse_policy(text: str | bytes) -> StsPolicy:
    """Parse an MTA-STS policy body (RFC 8461 §3.2).

    The rules, from the ABNF and the prose of §3.2:

    * ``key: value`` lines separated by CRLF or LF (``sts-policy-term = LF / CRLF``); white
      space after the colon and at the end of a line is dropped; empty lines are tolerated.
      Keys and the values of ``version`` and ``mode`` are case-sensitive (ABNF ``%s``).
    * ``version: STSv1``, ``mode`` (``enforce``, ``testing``, ``none``) and ``max_age`` are
      required, anywhere in the body (the ABNF does not order them); ``mx`` at least once
      "except when mode is "none"".
    * ``max_age`` is "plaintext non-negative integer seconds, maximum value of 31557600":
      digits only; a larger value is clamped to 31557600 with a warning rather than rejected
      (:attr:`~mxselect.StsPolicy.warnings`, :attr:`~mxselect.StsPolicy.clamped`).
    * "unknown fields SHALL be ignored" -- their values may contain ``:``; "If any
      non-repeated field -- i.e., all fields excepting "mx" -- is duplicated, all entries
      except for the first SHALL be ignored".
    * ``mx`` values are ``["*."] Domain``: lower-cased, a trailing dot dropped; a U-label is
      converted to its A-label with a warning (the RFC says the value "MUST specify the
      Punycode-encoded A-label"); ``*`` only as the whole left-most label (§4.1).

    ``bytes`` are decoded as UTF-8 (the ABNF allows UTF-8 in extension values).

    Raises:
        StsError: the body is not a valid policy; the message says why.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StsError(f"the policy is not UTF-8: {exc}") from None
    fields: dict[str, str] = {}
    mx: list[str] = []
    warnings: list[str] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip(" \t"):
            continue
        if _CONTROL.search(line):
            raise StsError(f"line {number} contains a control character")
        key, colon, value = line.partition(":")
        if not colon:
            raise StsError(f"line {number} is not 'key: value': {line[:40]!r}")
        if not _POLICY_KEY.match(key):
            raise StsError(f"line {number}: {key[:40]!r} is not a field name")
        value = value.strip(" \t")
        if key == "mx":
            mx.append(_mx_pattern(value, warnings))
        else:
            fields.setdefault(key, value)  # the first of a duplicated field wins
    if "version" not in fields:
        raise StsError("no 'version' field (RFC 8461 §3.2: required)")
    if fields["version"] != "STSv1":
        raise StsError(f"version {fields['version']!r} is not STSv1")
    if "mode" not in fields:
        raise StsError("no 'mode' field (RFC 8461 §3.2: required)")
    mode = _MODES.get(fields["mode"])
    if mode is None:
        raise StsError(f"mode {fields['mode']!r} is not enforce, testing or none")
    if "max_age" not in fields:
        raise StsError("no 'max_age' field (RFC 8461 §3.2: required)")
    age = fields["max_age"]
    if not (age.isascii() and age.isdigit()):
        raise StsError(f"max_age {age!r} is not a non-negative integer")
    max_age = int(age)
    if max_age > MAX_MAX_AGE:
        warnings.append(
            f"max_age {max_age} is above the maximum of {MAX_MAX_AGE} (RFC 8461 §3.2): "
            f"clamped to {MAX_MAX_AGE}"
        )
        max_age = MAX_MAX_AGE
    if not mx and mode is not StsMode.NONE:
        raise StsError(f"mode {mode} and no 'mx' field (RFC 8461 §3.2: required at least once)")
    return StsPolicy(mode=mode, mx=tuple(mx), max_age=max_age, text=text, warnings=tuple(warnings))


# ---------------------------------------------------------------- MX matching (§4.1)


def _match_name(name: str) -> str | None:
    """``name`` lower-cased, without a trailing dot, U-labels as A-labels (``None`` if it is not
    a valid IDN)."""
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    if name.isascii():
        return name
    wildcard = name.startswith("*.")
    try:
        ascii_name = idna.encode(name[2:] if wildcard else name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    return ("*." if wildcard else "") + ascii_name


def mx_matches(pattern: str, host: str) -> bool:
    """Whether the ``mx`` pattern matches the MX host name (RFC 8461 §4.1, Appendix B).

    A literal pattern matches the same name; ``*.example.com`` matches exactly one more
    left-most label: "the mx pattern "``*.example.com``" matches "mail.example.com" but not
    "example.com" or "foo.bar.example.com"" (§4.1). Case-insensitive; a trailing dot on either
    side is ignored; U-labels are compared as A-labels. Match the MX record's name, not the
    canonical name of a CNAME'd exchange (§4.1: "if the MX record name matches").
    """
    p = _match_name(pattern)
    h = _match_name(host)
    if not p or not h:
        return False
    if p.startswith("*."):
        label, dot, parent = h.partition(".")
        # App. B: SplitN(candidate, ".", 2)[1] == mx[2:]; the replaced label is not empty.
        return bool(label) and bool(dot) and parent == p[2:] and label != "*"
    return p == h


def policy_matches(policy: StsPolicy, host: str) -> bool:
    """Whether at least one of the policy's ``mx`` patterns matches ``host`` (RFC 8461 §4: "At
    least one of the policy's "mx" patterns matches the selected MX host"). The mode is not
    looked at: what a mismatch means (enforce, testing, none) is the caller's decision (§5)."""
    return any(mx_matches(pattern, host) for pattern in policy.mx)


# ---------------------------------------------------------------- the cache decisions (§3.3)


@attrs.frozen(kw_only=True)
class Discovery:
    """What to do after the ``_mta-sts`` TXT lookup (RFC 8461 §3.1, §3.3, §5.1): :func:`discover`.

    Attributes:
        fetch: fetch the policy over HTTPS (yield a :class:`~mxselect.PolicyFetch`), then
            pass the result to :func:`fetched` with :attr:`record`.
        apply: the policy to apply if there is no fetch, or if the fetch fails: a valid cached
            policy, or ``None`` (no policy).
        source: ``"cached"`` when ``apply`` comes from the cache, else ``None``.
        reason: one readable sentence, for the trace.
        record: the usable TXT record, if one was found.
        entry: the cache entry to store, or ``None`` to leave the store alone: the cached entry
            with ``checked_at`` moved to ``now`` when the TXT record shows the same id and
            ``checked_at`` is a minute old or more
            (:data:`~mxselect.mtasts.CHECK_INTERVAL`; ``checked_at`` never extends the
            policy's validity, RFC 8461 §3.2).
    """

    fetch: bool
    apply: StsPolicy | None
    source: str | None
    reason: str
    record: StsRecord | None = None
    entry: StsEntry | None = None


def _cached(entry: StsEntry | None, now: float) -> StsPolicy | None:
    return entry.policy if entry is not None and entry.valid(now) else None


def _fallback(entry: StsEntry | None, now: float, why: str) -> tuple[StsPolicy | None, str]:
    """The valid cached policy, if any, with the sentence that says which applies."""
    policy = _cached(entry, now)
    if policy is None:
        return None, f"{why}; no valid cached policy: no MTA-STS policy applies"
    assert entry is not None
    return policy, (
        f"{why}; the cached policy (id {entry.id}, mode {policy.mode}, valid "
        f"{entry.expires_at - now:.0f} s more) applies"
    )


def discover(entry: StsEntry | None, txt: Answer | None, now: float) -> Discovery:
    """Decide, from the TXT answer and the cached entry, whether to fetch the policy and which
    policy applies meanwhile (RFC 8461 §3.1, §3.3, §5.1).

    Args:
        entry: the domain's cached entry (valid, expired or a failure placeholder), or ``None``.
        txt: the answer to the ``_mta-sts.<domain>`` TXT query, or ``None`` if it was not asked.
        now: the time, in seconds since the epoch.

    The rules:

    * No usable record (NXDOMAIN, NODATA, no or several ``v=STSv1;`` records, invalid syntax):
      "senders MUST assume the recipient domain does not have an available MTA-STS Policy"
      (§3.1), but "the absence of a usable TXT record is not by itself sufficient to remove a
      sender's previously cached policy" -- a valid cached policy applies, else none; no fetch.
    * TXT temporary failure (or an unresolved ``ALIAS``, or not asked): "if no "live" policy
      can be discovered via DNS ..., but a valid (non-expired) policy exists in the sender's
      cache, the sender MUST apply that cached policy" (§3.3); else none; no fetch.
    * The record's id is that of a valid cached policy: the cached policy applies, no fetch
      (§3.1: the id tells "when the policy has been updated"); ``entry`` is returned with
      ``checked_at = now`` (if the last check is a minute old or more). Once the policy is no
      longer valid (``fetched_at + max_age``,
      §3.2) it is fetched again even if the id stays: TXT checks never extend it.
    * A new id, or no valid cache: fetch; meanwhile (and if the fetch fails) a valid cached
      policy applies, else none -- unless a fetch for this id failed less than five minutes
      ago (§3.3 "SHOULD limit further attempts to a period of five minutes or longer per
      version ID"): then no fetch.
    """
    if txt is None:
        policy, reason = _fallback(entry, now, "the _mta-sts TXT record was not looked up")
        return Discovery(
            fetch=False, apply=policy, source="cached" if policy else None, reason=reason
        )
    if txt.status in (Status.TEMPFAIL, Status.ALIAS):
        why = (
            f"the _mta-sts TXT lookup failed ({txt.reason or 'temporary failure'})"
            if txt.status is Status.TEMPFAIL
            else f"the _mta-sts TXT record is an unresolved alias of {txt.canonical_name}"
        )
        policy, reason = _fallback(entry, now, why)
        return Discovery(
            fetch=False, apply=policy, source="cached" if policy else None, reason=reason
        )
    record = parse_record(txt.txt) if txt.status is Status.RECORDS else None
    if record is None:
        why = {
            Status.NXDOMAIN: "no _mta-sts TXT record (NXDOMAIN)",
            Status.NODATA: "no _mta-sts TXT record (NODATA)",
        }.get(
            txt.status, "no usable _mta-sts TXT record (RFC 8461 §3.1: exactly one valid v=STSv1)"
        )
        policy, reason = _fallback(entry, now, why)
        return Discovery(
            fetch=False, apply=policy, source="cached" if policy else None, reason=reason
        )
    cached = _cached(entry, now)
    if entry is not None and cached is not None and entry.id == record.id:
        return Discovery(
            fetch=False,
            apply=cached,
            source="cached",
            reason=(
                f"the _mta-sts id {record.id} is that of the cached policy (mode "
                f"{cached.mode}, valid {entry.expires_at - now:.0f} s more): no fetch"
            ),
            record=record,
            entry=(
                attrs.evolve(entry, checked_at=now)
                if now - entry.checked_at >= CHECK_INTERVAL
                else None
            ),
        )
    if entry is not None and entry.recently_failed(record.id, now):
        assert entry.failed_at is not None
        policy, reason = _fallback(
            entry,
            now,
            f"the fetch of the policy id {record.id} failed {now - entry.failed_at:.0f} s ago: "
            f"not retried within {FAILURE_RETRY:.0f} s (RFC 8461 §3.3)",
        )
        return Discovery(
            fetch=False,
            apply=policy,
            source="cached" if policy else None,
            reason=reason,
            record=record,
        )
    if entry is None or entry.placeholder:
        why = f"the _mta-sts id {record.id} is new (no cached policy): fetch"
    elif cached is None:
        why = f"the cached policy (id {entry.id}) has expired: fetch id {record.id}"
    else:
        why = f"the _mta-sts id changed from {entry.id} to {record.id}: fetch"
    return Discovery(
        fetch=True,
        apply=cached,
        source="cached" if cached else None,
        reason=why,
        record=record,
    )


#: RFC 8460 result types (the IANA "STARTTLS Validation Result Types" registry).
FETCH_ERROR = "sts-policy-fetch-error"
POLICY_INVALID = "sts-policy-invalid"


@attrs.frozen(kw_only=True)
class Fetched:
    """What to do with the result of a policy fetch (RFC 8461 §3.3): :func:`fetched`.

    Attributes:
        apply: the policy to apply: the one fetched, the valid cached one (the fetch failed),
            or ``None``.
        source: ``"fetched"``, ``"cached"``, or ``None`` without a policy.
        entry: the entry to store (the new policy, or the old entry with the failure
            recorded), or ``None`` to leave the store alone.
        reason: one readable sentence, for the trace.
        failure: on failure, the RFC 8460 result type: ``"sts-policy-fetch-error"`` (no
            response, not status 200, a body too long) or ``"sts-policy-invalid"`` (not
            ``text/plain``, or not a valid policy); ``None`` on success.
    """

    apply: StsPolicy | None
    source: str | None
    entry: StsEntry | None
    reason: str
    failure: str | None = None


def _media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value, lower case, without parameters."""
    return content_type.partition(";")[0].strip(" \t").lower()


def _failure(
    entry: StsEntry | None,
    domain: str,
    record: StsRecord,
    now: float,
    why: str,
    failure: str,
) -> Fetched:
    """RFC 8461 §3.3: "If a valid TXT record is found but no policy can be fetched via HTTPS
    (for any reason), and there is no valid (non-expired) previously cached policy, senders
    MUST continue with delivery as though the domain has not implemented MTA-STS." The
    failure is recorded for the five-minute rule."""
    if entry is None:
        entry = StsEntry(
            domain=domain,
            policy=StsPolicy(mode=StsMode.NONE),
            id="",
            fetched_at=0.0,
            checked_at=now,
        )
    stored = attrs.evolve(entry, failed_id=record.id, failed_at=now)
    policy, reason = _fallback(entry, now, f"the policy fetch for id {record.id} failed: {why}")
    return Fetched(
        apply=policy,
        source="cached" if policy else None,
        entry=stored,
        reason=reason,
        failure=failure,
    )


def fetched(
    entry: StsEntry | None,
    domain: str,
    record: StsRecord,
    result: FetchResult,
    now: float,
    max_bytes: int = MAX_POLICY_BYTES,
) -> Fetched:
    """Judge a policy fetch and decide what applies and what to store (RFC 8461 §3.2, §3.3).

    Args:
        entry: the domain's cached entry before the fetch, or ``None``.
        domain: the policy domain.
        record: the TXT record the fetch was made for (:attr:`Discovery.record`).
        result: what the fetcher got.
        now: the time, in seconds since the epoch.
        max_bytes: the largest body accepted (RFC 8461 §3.3: "a suggested maximum policy
            size is 64 kilobytes").

    A policy is accepted only with status 200 ("Policies fetched via HTTPS are only valid if
    the HTTP response code is 200 (OK). HTTP 3xx redirects MUST NOT be followed", §3.3), the
    media type ``text/plain`` (§3.2 "senders SHOULD validate that the media type is
    "text/plain""; parameters ignored, case-insensitive), a body of at most ``max_bytes``,
    and a valid policy (:func:`parse_policy`). Then it is stored (``fetched_at = checked_at =
    now``, any recorded failure cleared) and applied, source ``"fetched"``.

    Otherwise the valid cached policy applies (source ``"cached"``: "if no "live" policy can
    be discovered via DNS or fetched via HTTPS, but a valid (non-expired) policy exists in the
    sender's cache, the sender MUST apply that cached policy"), else no policy -- never an
    error of the delivery (§3.3) -- and the entry to store records ``failed_id`` and
    ``failed_at`` (a placeholder entry if there was none, :attr:`~mxselect.StsEntry.placeholder`).
    """
    if result.status is None:
        return _failure(entry, domain, record, now, result.reason or "no response", FETCH_ERROR)
    if result.status != 200:
        why = f"HTTP status {result.status}"
        if 300 <= result.status < 400:
            why += " (redirects are not followed, RFC 8461 §3.3)"
        else:
            why += " (only 200 is valid, RFC 8461 §3.3)"
        return _failure(entry, domain, record, now, why, FETCH_ERROR)
    if len(result.body) > max_bytes:
        return _failure(
            entry,
            domain,
            record,
            now,
            f"the body is longer than {max_bytes} octets (RFC 8461 §3.3)",
            FETCH_ERROR,
        )
    media = _media_type(result.content_type)
    if media != "text/plain":
        return _failure(
            entry,
            domain,
            record,
            now,
            f"the media type is {media or 'missing'!r}, not text/plain (RFC 8461 §3.2)",
            POLICY_INVALID,
        )
    try:
        policy = parse_policy(result.body)
    except StsError as exc:
        return _failure(entry, domain, record, now, f"invalid policy: {exc}", POLICY_INVALID)
    new = StsEntry(domain=domain, policy=policy, id=record.id, fetched_at=now, checked_at=now)
    reason = (
        f"fetched the policy id {record.id}: mode {policy.mode}, max_age {policy.max_age}, "
        f"mx {', '.join(policy.mx) or '(none)'}"
    )
    if policy.warnings:
        reason += "; " + "; ".join(policy.warnings)
    return Fetched(apply=policy, source="fetched", entry=new, reason=reason)


def refresh_due(
    entries: Iterable[StsEntry],
    now: float,
    *,
    refresh: float = 86400,
    expiring: float = 86400,
) -> list[str]:
    """The domains whose cached policy should be refreshed now, sorted (RFC 8461 §3.3: "MTAs
    SHOULD proactively refresh cached policies before they expire; a suggested refresh
    frequency is once per day"; §10.2: "implementers SHOULD NOT wait until a cached policy has
    expired before checking for an update").

    Due: a valid entry whose TXT record was last checked (or policy fetched) ``refresh``
    seconds ago or more, or whose policy expires within ``expiring`` seconds. Expired entries
    and failure placeholders are not listed (nothing cached to protect: the next delivery
    discovers the domain afresh). A refresh is :func:`discover` then, if it says so,
    :func:`fetched`: the five-minute rule after a failure holds there.

    Policies in mode none are listed too (a refresh is how a domain's new policy is learnt),
    but RFC 8461 §10.2 says not to alert on their refresh failures ("they should not
    implement such alerts if the cached policy has a "none" mode"): a caller that alerts must
    skip them.
    """
    due = []
    for entry in entries:
        if entry.placeholder or not entry.valid(now):
            continue
        last = max(entry.checked_at, entry.fetched_at)
        if now - last >= refresh or entry.expires_at - now <= expiring:
            due.append(entry.domain)
    return sorted(due)
