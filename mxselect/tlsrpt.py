"""SMTP TLS Reporting (RFC 8460): the policy record, delivery-time events and the aggregate
report, as pure values and functions (standard library only; no I/O, no clock: every time is
passed in, in seconds since the epoch).

::

    from mxselect.tlsrpt import Aggregator

    aggregator = Aggregator()                       # one per process (not thread-safe)
    plan = DeliveryPlan(selection)                  # records TLS events as the MTA reports
    ...                                             # tls_ok / tls_failed, see mxselect.delivery
    aggregator.add(plan.tlsrpt_events)
    ...
    # once a day, for each policy domain whose TLS-RPT record (selection.tlsrpt) asks for it:
    for domain in aggregator.policy_domains(start, end):
        body = aggregator.report_gzip(
            organization_name="Example Mail", contact_info="tlsrpt@example.net",
            report_id=f"{start:.0f}-{domain}", start=start, end=end, policy_domain=domain,
        )

The pieces:

* :func:`parse_record` reads a domain's ``_smtp._tls`` TXT record (RFC 8460 §3) into its
  ``rua`` URIs; the selection core calls it and puts them in :attr:`mxselect.Selection.tlsrpt`.
* :class:`TlsRptEvent` is one TLS session attempt, successful or failed with a
  :class:`ResultType` (RFC 8460 §4.3), under the :class:`ReportPolicy` that applied
  (RFC 8460 §4.4, :func:`policy_for`). :class:`mxselect.DeliveryPlan` records one per
  :meth:`~mxselect.DeliveryPlan.tls_ok` and :meth:`~mxselect.DeliveryPlan.tls_failed`
  (:attr:`~mxselect.DeliveryPlan.tlsrpt_events`); failures found before any connection (an
  MTA-STS policy that could not be fetched, a bogus TLSA RRset) are made with
  :meth:`TlsRptEvent.policy_failure`.
* :class:`Aggregator` keeps events and builds the aggregate report of one policy domain over a
  time range: the RFC 8460 §4 JSON object, as a ``dict``, JSON text or gzip bytes
  (RFC 8460 §5.3: ``application/tlsrpt+gzip``); :func:`report_filename` names it (§5.1).

**Out of scope**: sending reports. Delivering them to the ``rua`` URIs -- by mail
(RFC 8460 §5.3: a multipart/report message with ``report-type="tlsrpt"``, ideally
DKIM-signed) or by HTTPS POST (§5.4) -- storing events across restarts, and the daily
schedule are the MTA's (or a collector's, such as sys4's ``tlsrpt-reporter`` that Postfix
feeds); this module gives the report body, its media type and its file name.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from ._answers import IPAddress, TLSARecord
from ._model import Posture, Selection, Target
from ._sts import StsPolicy
from ._tlsrpt import PolicyType, ResultType, parse_record

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "MEDIA_TYPE_GZIP",
    "MEDIA_TYPE_JSON",
    "Aggregator",
    "PolicyType",
    "ReportPolicy",
    "ResultType",
    "TlsRptEvent",
    "parse_record",
    "policy_for",
    "report_filename",
]

#: The media type of a gzip-compressed report (RFC 8460 §5.3, §6.5): what
#: :meth:`Aggregator.report_gzip` gives.
MEDIA_TYPE_GZIP = "application/tlsrpt+gzip"
#: The media type of an uncompressed report (RFC 8460 §5.3, §6.4): what
#: :meth:`Aggregator.report_json` gives.
MEDIA_TYPE_JSON = "application/tlsrpt+json"

#: The result types found before any connection, and the policy type they belong to.
_POLICY_OF_RESULT = {
    ResultType.TLSA_INVALID: PolicyType.TLSA,
    ResultType.DNSSEC_INVALID: PolicyType.TLSA,
    ResultType.DANE_REQUIRED: PolicyType.TLSA,
    ResultType.STS_POLICY_FETCH_ERROR: PolicyType.STS,
    ResultType.STS_POLICY_INVALID: PolicyType.STS,
    ResultType.STS_WEBPKI_INVALID: PolicyType.STS,
}

_DANE = frozenset({Posture.DANE, Posture.DANE_INSECURE_MX, Posture.DANE_ENCRYPT})
_STS = frozenset({Posture.MTA_STS, Posture.MTA_STS_TESTING})


def _domain(name: str) -> str:
    return name.rstrip(".").lower()


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _ip(value: IPAddress | str | None) -> IPAddress | None:
    if value is None or isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    return ipaddress.ip_address(value)


def _result_type(value: ResultType | str | None) -> ResultType | None:
    return None if value is None else ResultType(value)


@attrs.frozen(kw_only=True)
class ReportPolicy:
    """The policy a TLS session was attempted under: an RFC 8460 §4.4 ``policy`` object. The
    report groups sessions by it (equal policies are one entry of ``policies``).

    Attributes:
        policy_type: ``tlsa``, ``sts`` or ``no-policy-found`` (:class:`PolicyType`).
        policy_string: "an encoding of the applied policy as a JSON array of strings"
            (RFC 8460 §4.4): for ``tlsa`` the TLSA records in presentation form
            (RFC 6698 §2.2), one string each, ``"_25._tcp.mx.example.org. IN TLSA 3 1 1
            <HEX>"``; for ``sts`` the lines of the policy text (RFC 8461 §3.2); ``()`` for
            ``no-policy-found`` (the key is then left out).
        policy_domain: "the Policy Domain against which the MTA-STS or DANE policy is
            defined": the recipient domain, as an A-label (RFC 8460 §4.4).
        mx_host: the MX host patterns of an ``sts`` policy (RFC 8461 §4.1); for ``tlsa`` the MX
            host whose TLSA records these are; ``()`` otherwise (the key is then left out).
    """

    policy_type: PolicyType
    policy_string: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    policy_domain: str = attrs.field(converter=_domain)
    mx_host: tuple[str, ...] = attrs.field(default=(), converter=_strings)

    @classmethod
    def tlsa(
        cls,
        domain: str,
        base_domain: str,
        records: Iterable[TLSARecord],
        *,
        mx_host: str | None = None,
        port: int = 25,
    ) -> ReportPolicy:
        """A ``tlsa`` policy: the TLSA records at ``_<port>._tcp.<base_domain>``
        (RFC 7672 §2.2.3) that applied to a host of ``domain``, each in presentation form
        with the data in upper-case hex (RFC 6698 §2.2, the form of RFC 8460 §4.4's example;
        no TTL)."""
        owner = f"_{port}._tcp.{base_domain.rstrip('.')}."
        strings = tuple(
            f"{owner} IN TLSA {r.usage} {r.selector} {r.mtype} {r.data.hex().upper()}"
            for r in records
        )
        return cls(
            policy_type=PolicyType.TLSA,
            policy_string=strings,
            policy_domain=domain,
            mx_host=(mx_host,) if mx_host else (),
        )

    @classmethod
    def sts(cls, domain: str, policy: StsPolicy) -> ReportPolicy:
        """An ``sts`` policy of ``domain``: the policy text's lines (blank ones dropped; when the
        text is not known, lines rebuilt from the fields, RFC 8461 §3.2) and its ``mx``
        patterns (RFC 8460 §4.4)."""
        lines = [line.strip() for line in policy.text.splitlines()]
        strings = [line for line in lines if line]
        if not strings:
            strings = [
                "version: STSv1",
                f"mode: {policy.mode.value}",
                *(f"mx: {mx}" for mx in policy.mx),
                f"max_age: {policy.max_age}",
            ]
        return cls(
            policy_type=PolicyType.STS,
            policy_string=strings,
            policy_domain=domain,
            mx_host=policy.mx,
        )

    @classmethod
    def none(cls, domain: str) -> ReportPolicy:
        """``no-policy-found`` for ``domain``: neither DANE nor MTA-STS applied
        (RFC 8460 §4.4)."""
        return cls(policy_type=PolicyType.NO_POLICY_FOUND, policy_domain=domain)

    def to_json(self) -> dict[str, Any]:
        """The RFC 8460 §4.4 ``policy`` object (empty ``policy-string``/``mx-host`` left out)."""
        out: dict[str, Any] = {"policy-type": self.policy_type.value}
        if self.policy_string:
            out["policy-string"] = list(self.policy_string)
        out["policy-domain"] = self.policy_domain
        if self.mx_host:
            out["mx-host"] = list(self.mx_host)
        return out


def policy_for(selection: Selection, target: Target, *, port: int = 25) -> ReportPolicy:
    """The :class:`ReportPolicy` a session with ``target`` is attempted under, by its posture
    (``target.tls.posture``), for the recipient domain ``selection.domain``:

    * a DANE posture (:attr:`~mxselect.Posture.DANE`, ``DANE_INSECURE_MX``, ``DANE_ENCRYPT``):
      ``tlsa``, with the host's usable TLSA records (``target.tls.tlsa``, after digest
      agility, RFC 7671 §9) at its TLSA base domain (``target.tls.tlsa_base_domain``, else the
      host) -- none for ``DANE_ENCRYPT`` without usable records -- and ``mx_host`` the host;
    * :attr:`~mxselect.Posture.MTA_STS` or ``MTA_STS_TESTING``: ``sts``, with
      ``selection.sts_policy`` (RFC 8460 §4.4);
    * otherwise -- and for an MTA-STS posture in a selection without ``sts_policy`` (built by
      hand) -- ``no-policy-found``.
    """
    tls = target.tls
    if tls.posture in _DANE:
        base = tls.tlsa_base_domain or target.host
        return ReportPolicy.tlsa(
            selection.domain, base, tls.tlsa, mx_host=target.host.rstrip("."), port=port
        )
    if tls.posture in _STS and selection.sts_policy is not None:
        return ReportPolicy.sts(selection.domain, selection.sts_policy)
    return ReportPolicy.none(selection.domain)


@attrs.frozen(kw_only=True)
class TlsRptEvent:
    """One TLS session attempt (or a policy failure before any), for an RFC 8460 report.

    Attributes:
        policy: the :class:`ReportPolicy` that applied.
        result_type: the failure (:class:`ResultType`, RFC 8460 §4.3), or ``None`` for a
            successful session (counted in ``total-successful-session-count``). A string of the
            registry is converted.
        time: when it happened, in seconds since the epoch (the caller's clock).
        receiving_mx_hostname: the MX host name the session was attempted with
            (``receiving-mx-hostname``); ``None`` for a failure before any connection.
        receiving_ip: the address connected to (``receiving-ip``); a string is converted.
        sending_mta_ip: the local address the session came from (``sending-mta-ip``).
        receiving_mx_helo: the name the server gave in its greeting or EHLO reply
            (``receiving-mx-helo``).
        failure_reason_code: "a text field to include a TLS-related error code or error
            message" (``failure-reason-code``, RFC 8460 §4.4).
        additional_information: "a URI ... that points to additional information around the
            relevant failure" (``additional-information``, RFC 8460 §4.4).
    """

    policy: ReportPolicy
    result_type: ResultType | None = attrs.field(default=None, converter=_result_type)
    time: float
    receiving_mx_hostname: str | None = None
    receiving_ip: IPAddress | None = attrs.field(default=None, converter=_ip)
    sending_mta_ip: IPAddress | None = attrs.field(default=None, converter=_ip)
    receiving_mx_helo: str | None = None
    failure_reason_code: str | None = None
    additional_information: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the session succeeded (no :attr:`result_type`)."""
        return self.result_type is None

    @classmethod
    def session(
        cls,
        selection: Selection,
        target: Target,
        time: float,
        result_type: ResultType | str | None = None,
        *,
        sending_mta_ip: IPAddress | str | None = None,
        receiving_mx_helo: str | None = None,
        failure_reason_code: str | None = None,
        additional_information: str | None = None,
    ) -> TlsRptEvent:
        """A session with ``target`` of ``selection``, successful (``result_type`` ``None``) or
        failed, under :func:`policy_for` ``(selection, target)``: what
        :class:`~mxselect.DeliveryPlan` records.

        Raises:
            ValueError: ``result_type`` is not an RFC 8460 result type.
        """
        return cls(
            policy=policy_for(selection, target),
            result_type=result_type,
            time=time,
            receiving_mx_hostname=target.host.rstrip("."),
            receiving_ip=target.address,
            sending_mta_ip=sending_mta_ip,
            receiving_mx_helo=receiving_mx_helo,
            failure_reason_code=failure_reason_code or None,
            additional_information=additional_information,
        )

    @classmethod
    def policy_failure(
        cls,
        result_type: ResultType | str,
        time: float,
        *,
        domain: str | None = None,
        policy: ReportPolicy | None = None,
        receiving_mx_hostname: str | None = None,
        failure_reason_code: str | None = None,
        additional_information: str | None = None,
    ) -> TlsRptEvent:
        """A failure found before any connection, for the recipient ``domain``: an MTA-STS
        policy that could not be fetched (``sts-policy-fetch-error``), parsed
        (``sts-policy-invalid``) or authenticated (``sts-webpki-invalid``); TLSA records that
        are all unusable (``tlsa-invalid``), bogus (``dnssec-invalid``) or missing under
        mandatory DANE (``dane-required``) -- RFC 8460 §4.3.2, RFC 8461 §6.

        Give ``policy`` when it is known (e.g. ``ReportPolicy.sts(domain, cached)`` for a
        failed refresh with a cached policy); otherwise a policy with no ``policy-string`` of
        the result type's kind is made for ``domain`` (``sts`` for the ``sts-*`` types,
        ``tlsa`` for the others, with ``receiving_mx_hostname`` as its ``mx-host``).

        Raises:
            ValueError: neither ``domain`` nor ``policy`` given, or both for different domains;
                ``result_type`` unknown, or with no ``policy`` a negotiation failure
                (``starttls-not-supported``, ``certificate-*``, ``validation-failure``:
                report those with :meth:`session`).
        """
        rtype = ResultType(result_type)
        if policy is None:
            if domain is None:
                raise ValueError("a policy failure needs the domain or the policy")
            kind = _POLICY_OF_RESULT.get(rtype)
            if kind is None:
                raise ValueError(f"{rtype} happens in a session: give the policy it failed")
            mx = (
                (receiving_mx_hostname,)
                if kind is PolicyType.TLSA and receiving_mx_hostname
                else ()
            )
            policy = ReportPolicy(policy_type=kind, policy_domain=domain, mx_host=mx)
        elif domain is not None and _domain(domain) != policy.policy_domain:
            raise ValueError(f"the policy is for {policy.policy_domain}, not {domain}")
        return cls(
            policy=policy,
            result_type=rtype,
            time=time,
            receiving_mx_hostname=receiving_mx_hostname,
            failure_reason_code=failure_reason_code or None,
            additional_information=additional_information,
        )

    def _detail_key(self) -> tuple[Any, ...]:
        return (
            self.result_type,
            self.sending_mta_ip,
            self.receiving_mx_hostname,
            self.receiving_mx_helo,
            self.receiving_ip,
            self.additional_information,
            self.failure_reason_code,
        )


def _datetime(seconds: float) -> str:
    """RFC 3339 UTC, to the second (``date-time`` of RFC 8460 §4.4)."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Aggregator:
    """The events of many deliveries, and the aggregate reports built from them
    (RFC 8460 §4). Pure and in memory: events stay until :meth:`prune`; not thread-safe (keep
    one per thread, or lock around it)."""

    def __init__(self, events: Iterable[TlsRptEvent] = ()) -> None:
        self._events: list[TlsRptEvent] = list(events)

    def add(self, events: Iterable[TlsRptEvent]) -> None:
        """Keep ``events`` (e.g. a :attr:`~mxselect.DeliveryPlan.tlsrpt_events`)."""
        self._events.extend(events)

    @property
    def events(self) -> tuple[TlsRptEvent, ...]:
        """Every event kept, in the order added."""
        return tuple(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def prune(self, before: float) -> int:
        """Forget the events older than ``before`` (those already reported); how many."""
        kept = [e for e in self._events if e.time >= before]
        dropped = len(self._events) - len(kept)
        self._events = kept
        return dropped

    def policy_domains(self, start: float, end: float) -> tuple[str, ...]:
        """The policy domains with events in ``[start, end)``, sorted: one report each."""
        return tuple(
            sorted({e.policy.policy_domain for e in self._events if start <= e.time < end})
        )

    def report(
        self,
        *,
        organization_name: str,
        contact_info: str,
        report_id: str,
        start: float,
        end: float,
        policy_domain: str,
    ) -> dict[str, Any]:
        """The aggregate report of ``policy_domain`` for the events in ``[start, end)``: the
        RFC 8460 §4 JSON object.

        * ``date-range`` is ``start`` and ``end`` in RFC 3339 UTC, ``YYYY-MM-DDTHH:MM:SSZ``
          (RFC 8460 §4.4); an event at exactly ``end`` belongs to the next report;
        * ``policies`` has one entry per :class:`ReportPolicy`, in the order first seen, with
          its ``summary`` -- ``total-successful-session-count`` (events without a result type)
          and ``total-failure-session-count`` (every failure, those before a connection
          included) -- and its ``failure-details``: one per distinct (result type, sending IP,
          MX host name, MX HELO, receiving IP, additional information, failure reason code),
          in the order first seen, with its ``failed-session-count``; absent fields are left
          out, as is an empty ``failure-details``;
        * with no event in range ``policies`` is empty: nothing to send.

        Args:
            organization_name: "the name of the organization responsible for the report"
                (``organization-name``).
            contact_info: an e-mail address or URI to contact the reporter (``contact-info``).
            report_id: a unique identifier of this report (``report-id``).
            start: the start of the range, seconds since the epoch (inclusive).
            end: its end (exclusive).
            policy_domain: the domain reported on (the recipient domain).

        Raises:
            ValueError: ``end`` is not after ``start``.
        """
        if not end > start:
            raise ValueError(f"the report's end ({end}) must be after its start ({start})")
        domain = _domain(policy_domain)
        sessions: dict[ReportPolicy, list[TlsRptEvent]] = {}
        for event in self._events:
            if start <= event.time < end and event.policy.policy_domain == domain:
                sessions.setdefault(event.policy, []).append(event)
        return {
            "organization-name": organization_name,
            "date-range": {"start-datetime": _datetime(start), "end-datetime": _datetime(end)},
            "contact-info": contact_info,
            "report-id": report_id,
            "policies": [_policy_entry(p, events) for p, events in sessions.items()],
        }

    def report_json(
        self,
        *,
        organization_name: str,
        contact_info: str,
        report_id: str,
        start: float,
        end: float,
        policy_domain: str,
    ) -> str:
        """:meth:`report` as JSON text (``application/tlsrpt+json``, RFC 8460 §5.3)."""
        report = self.report(
            organization_name=organization_name,
            contact_info=contact_info,
            report_id=report_id,
            start=start,
            end=end,
            policy_domain=policy_domain,
        )
        return json.dumps(report, ensure_ascii=False, separators=(",", ":"))

    def report_gzip(
        self,
        *,
        organization_name: str,
        contact_info: str,
        report_id: str,
        start: float,
        end: float,
        policy_domain: str,
    ) -> bytes:
        """:meth:`report_json` in UTF-8, gzip-compressed (``application/tlsrpt+gzip``: "the
        report SHOULD be compressed using gzip", RFC 8460 §5.3). The gzip header carries no
        time, so the same report gives the same bytes."""
        import gzip

        text = self.report_json(
            organization_name=organization_name,
            contact_info=contact_info,
            report_id=report_id,
            start=start,
            end=end,
            policy_domain=policy_domain,
        )
        return gzip.compress(text.encode("utf-8"), mtime=0)


def _policy_entry(policy: ReportPolicy, events: Sequence[TlsRptEvent]) -> dict[str, Any]:
    details: dict[tuple[Any, ...], tuple[TlsRptEvent, int]] = {}
    ok = 0
    for event in events:
        if event.result_type is None:
            ok += 1
            continue
        key = event._detail_key()
        first, count = details.get(key, (event, 0))
        details[key] = (first, count + 1)
    entry: dict[str, Any] = {
        "policy": policy.to_json(),
        "summary": {
            "total-successful-session-count": ok,
            "total-failure-session-count": len(events) - ok,
        },
    }
    if details:
        entry["failure-details"] = [_detail(e, n) for e, n in details.values()]
    return entry


def _detail(event: TlsRptEvent, count: int) -> dict[str, Any]:
    """One RFC 8460 §4.4 ``failure-details`` object (absent fields left out)."""
    assert event.result_type is not None
    out: dict[str, Any] = {"result-type": event.result_type.value}
    if event.sending_mta_ip is not None:
        out["sending-mta-ip"] = str(event.sending_mta_ip)
    if event.receiving_mx_hostname is not None:
        out["receiving-mx-hostname"] = event.receiving_mx_hostname
    if event.receiving_mx_helo is not None:
        out["receiving-mx-helo"] = event.receiving_mx_helo
    if event.receiving_ip is not None:
        out["receiving-ip"] = str(event.receiving_ip)
    out["failed-session-count"] = count
    if event.additional_information is not None:
        out["additional-information"] = event.additional_information
    if event.failure_reason_code is not None:
        out["failure-reason-code"] = event.failure_reason_code
    return out


def report_filename(
    sender: str,
    policy_domain: str,
    start: float,
    end: float,
    unique_id: str = "",
    *,
    gzip: bool = True,
) -> str:
    """The report's file name (RFC 8460 §5.1): ``sender!policy-domain!begin!end[!id].json.gz``
    (``.json`` when not ``gzip``), the times in whole seconds since the epoch; ``sender`` is
    the domain of the reporter's ``contact-info`` address.

    Raises:
        ValueError: ``unique_id`` is not letters and digits (``1*(ALPHA / DIGIT)``).
    """
    if unique_id and not (unique_id.isascii() and unique_id.isalnum()):
        raise ValueError(f"a report's unique id is letters and digits, got {unique_id!r}")
    parts = [_domain(sender), _domain(policy_domain), str(int(start)), str(int(end))]
    if unique_id:
        parts.append(unique_id)
    return "!".join(parts) + (".json.gz" if gzip else ".json")
