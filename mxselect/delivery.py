"""The delivery plan an MTA walks for one message, and the host-status memory it shares.

Pure: no sockets, no asyncio; the MTA connects and reports, the plan decides what comes next.

::

    status = HostStatus()                                # one per process, shared
    plan = DeliveryPlan(selection, status)
    for target in plan:                                  # the next target, until done
        try:
            conn = connect(target.address)
        except ConnectionRefusedError:
            plan.refused(target); continue
        except TimeoutError:
            plan.timed_out(target); continue
        try:
            handshake(conn)                              # greeting, EHLO, STARTTLS + TLS
        except HandshakeError as exc:                    # a 4xx/5xx reply, or none (code 0)
            plan.handshake_failed(target, exc.code, exc.text, stage=exc.stage); continue
        plan.connected(target)
        reply = send(conn, message)                      # (code, text) of the final reply
        if reply.code < 300:
            plan.delivered(target)
        elif reply.code < 500:
            plan.temporary(target, reply.code, reply.text)
        else:
            plan.permanent(target, reply.code, reply.text)
    outcome = plan.outcome                               # DELIVERED, DEFERRED or BOUNCED

The rules (Postfix's smtp client is the anchor):

* targets come in the selection's order, except that a target whose address the
  :class:`HostStatus` remembers as unreachable moves after its **equal-preference** peers --
  never ahead of or behind another preference level (RFC 5321 §4.5.4.1 "keep a list of hosts
  it cannot reach", §5.1 MX preference order);
* at most ``address_limit`` targets are tried (Postfix ``smtp_mx_address_limit`` = 5) and at
  most ``session_limit`` SMTP sessions are held (Postfix ``smtp_mx_session_limit`` = 2); a
  connection that failed is not a session, and neither is one that failed its **initial
  handshake** -- the greeting, EHLO/HELO, STARTTLS or the TLS handshake
  (:meth:`~mxselect.DeliveryPlan.handshake_failed`; Postfix ``smtp_connect.c``: "Don't count
  handshake errors towards the session limit", ``smtp_mx_session_limit`` "ignores sessions
  that fail to complete the SMTP initial handshake or TLS handshake");
* a 4xx reply moves on to the next target (RFC 5321 §5.1: try the next address); a 5xx reply
  bounces the message, except a 5xx *greeting*, after which the next MX is tried (Postfix
  ``smtp_skip_5xx_greeting``), and a 5xx reply to STARTTLS, which like a failed TLS handshake
  moves on (RFC 7672 §2.2, RFC 8461 §5: fall back to the next server or delay delivery);
* a failed handshake does not make the address "unreachable": the host answered, so it is not
  remembered as down (RFC 5321 §4.5.4.1 keeps the hosts it *cannot reach*);
* TLS failures are judged by the target's :class:`~mxselect.TlsRequirement`
  (:meth:`~mxselect.DeliveryPlan.tls_failed`): with opportunistic TLS the same target comes
  back once for a cleartext retry (RFC 7672 §2.2 "MAY retry in cleartext";
  :attr:`~mxselect.DeliveryPlan.cleartext_retry`); with required TLS (DANE) the next target is
  tried and, if none is left, the message is deferred with 451 4.7.5 -- never bounced, never
  sent in cleartext (RFC 7672 §2.2, §3.2, §9.1). Either way it is a failed handshake, not a
  session;
* when targets or limits run out, the message is deferred with the last 4xx reply (a 421
  greeting counts, like Postfix's "host X refused to talk to me: 421 ..."), or 451 4.4.1 when
  no host answered with one (RFC 3463 X.4.1 "No answer from host"); the message lists every
  failure, handshakes included. A temporary failure never becomes a bounce.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator

import attrs

from ._answers import IPAddress
from ._model import Posture, Selection, Target
from .tlsrpt import ResultType, TlsRptEvent

__all__ = [
    "Attempt",
    "DeliveryPlan",
    "DeliveryStatus",
    "HandshakeStage",
    "HostStatus",
    "Outcome",
]


class DeliveryStatus(enum.Enum):
    """How a delivery ended."""

    #: Still trying (the plan is not done).
    PENDING = "pending"
    #: A server accepted the message (2xx).
    DELIVERED = "delivered"
    #: Keep the message queued and retry later (RFC 5321 §4.5.4.1).
    DEFERRED = "deferred"
    #: Return the message to the sender (a 5xx reply).
    BOUNCED = "bounced"


class Attempt(enum.Enum):
    """What the MTA reports about one target."""

    #: The TCP connection was refused or the network was unreachable.
    REFUSED = "refused"
    #: The connection (or the greeting) timed out.
    TIMED_OUT = "timed-out"
    #: Connected: an SMTP session started (it counts toward the session limit unless its
    #: handshake fails).
    CONNECTED = "connected"
    #: The initial handshake failed (greeting, EHLO, STARTTLS, TLS): not a session; the next
    #: target is tried.
    HANDSHAKE_FAILED = "handshake-failed"
    #: A 4xx reply (greeting, MAIL, RCPT, DATA...): try the next target.
    TEMPORARY = "temporary"
    #: A 5xx reply: bounce.
    PERMANENT = "permanent"
    #: The session ended without delivering and without a reply to report (e.g. dropped).
    LOST = "lost"
    #: The message was accepted.
    DELIVERED = "delivered"


class HandshakeStage(enum.Enum):
    """Where the initial SMTP handshake failed (see :meth:`DeliveryPlan.handshake_failed`)."""

    #: The server's greeting was not 220 (RFC 5321 §3.1), or the connection closed before it.
    GREETING = "greeting"
    #: EHLO (and the HELO fallback, RFC 5321 §3.2) was not accepted.
    EHLO = "EHLO"
    #: STARTTLS was refused, or not offered when TLS is required (RFC 3207 §4).
    STARTTLS = "STARTTLS"
    #: The TLS handshake after STARTTLS failed (certificate, protocol, connection lost).
    TLS = "TLS handshake"


@attrs.frozen
class Outcome:
    """The result of a delivery plan.

    Attributes:
        status: delivered, deferred or bounced (``PENDING`` while the plan is not done).
        reply_code: the SMTP reply code to record (250 when delivered; the server's 4xx/5xx;
            451 when no server answered).
        enhanced_status: the RFC 3463 status (``"4.4.1"``...) if known, else ``""``.
        message: a readable reason naming the host.
        target: the target that gave the final reply, if any.
        recheck_policy: deferred after an MTA-STS (enforce) target failed TLS validation:
            check the domain's ``_mta-sts`` record for a new policy before this message may
            ever fail permanently (RFC 8461 §5.1).
    """

    status: DeliveryStatus
    reply_code: int = 0
    enhanced_status: str = ""
    message: str = ""
    target: Target | None = None
    recheck_policy: bool = False

    def __str__(self) -> str:
        status = self.enhanced_status
        if not status or self.message.startswith(status):
            return f"{self.status.value}: {self.reply_code} {self.message}".rstrip()
        return f"{self.status.value}: {self.reply_code} {status} {self.message}".rstrip()


class HostStatus:
    """The memory of hosts that could not be reached (RFC 5321 §4.5.4.1), shared by every
    delivery of the process; thread-safe.

    An address reported unreachable (refused or timed out) is remembered for
    ``retry_after`` seconds; meanwhile each :class:`DeliveryPlan` tries it after its
    equal-preference peers (and still tries it: it may be back). A successful connection
    forgets it at once.

    Args:
        retry_after: how long a failure is remembered, in seconds (default 300, Postfix's
            ``minimal_backoff_time``; RFC 5321 §4.5.4.1 says the parameters MUST be
            configurable).
        max_entries: the most addresses remembered (the oldest failures are forgotten first).
        clock: a monotonic clock in seconds (inject a fake one in tests).
    """

    def __init__(
        self,
        *,
        retry_after: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if retry_after < 0:
            raise ValueError(f"retry_after must be >= 0, got {retry_after}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if clock is None:
            import time

            clock = time.monotonic
        self.retry_after = retry_after
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._down: OrderedDict[IPAddress, tuple[float, str]] = OrderedDict()

    def mark_down(self, address: IPAddress, reason: str = "") -> None:
        """Remember that ``address`` could not be reached."""
        with self._lock:
            self._down[address] = (self.clock() + self.retry_after, reason)
            self._down.move_to_end(address)
            while len(self._down) > self.max_entries:
                self._down.popitem(last=False)

    def mark_up(self, address: IPAddress) -> None:
        """Forget a failure of ``address`` (it answered)."""
        with self._lock:
            self._down.pop(address, None)

    def is_down(self, address: IPAddress) -> bool:
        """Whether ``address`` failed less than ``retry_after`` seconds ago."""
        with self._lock:
            return self._is_down(address, self.clock())

    def _is_down(self, address: IPAddress, now: float) -> bool:
        entry = self._down.get(address)
        if entry is None:
            return False
        if entry[0] <= now:
            del self._down[address]
            return False
        return True

    def reason(self, address: IPAddress) -> str | None:
        """Why ``address`` is remembered as down, or ``None`` if it is not."""
        with self._lock:
            if not self._is_down(address, self.clock()):
                return None
            return self._down[address][1]

    def order(self, targets: tuple[Target, ...]) -> tuple[Target, ...]:
        """``targets`` with each down address moved after the others **of the same
        preference**; preference levels keep their places (RFC 5321 §5.1), and the order
        within each part is kept."""
        with self._lock:
            now = self.clock()
            down = {t.address for t in targets if self._is_down(t.address, now)}
        if not down:
            return targets
        result: list[Target] = []
        start = 0
        while start < len(targets):
            end = start
            while end < len(targets) and targets[end].preference == targets[start].preference:
                end += 1
            level = targets[start:end]
            result.extend(t for t in level if t.address not in down)
            result.extend(t for t in level if t.address in down)
            start = end
        return tuple(result)

    def __len__(self) -> int:
        with self._lock:
            now = self.clock()
            return sum(1 for a in list(self._down) if self._is_down(a, now))


class DeliveryPlan:
    """The targets to try for one message, in order, and what happened (pure, not
    thread-safe: one plan per delivery; the :class:`HostStatus` it updates is shared).

    Args:
        selection: the :class:`~mxselect.Selection` for the recipient domain.
        host_status: the shared :class:`HostStatus` (``None``: no memory).
        session_limit: the most SMTP sessions per delivery (Postfix ``smtp_mx_session_limit``,
            default 2); at least 1. A session counts once it ends with a reply (or is lost)
            after its handshake; a failed connection or handshake does not count.
        address_limit: the most targets tried (Postfix ``smtp_mx_address_limit``, default 5);
            ``None`` for every target of the selection; at least 1.
        clock: the wall clock, in seconds since the epoch, that stamps each
            :class:`~mxselect.tlsrpt.TlsRptEvent` (an RFC 8460 report covers a date range);
            inject a fake one in tests.

    Attributes:
        targets: the targets in the order they will be tried (host status applied).
        attempts: every report so far, as ``(target, Attempt, reply_code, text)``.
        sessions: how many sessions counted toward ``session_limit`` so far (a session counts
            when it ends; one that failed its handshake never does).
        tls_successes: how many TLS sessions were established (and, for DANE, authenticated):
            :meth:`tls_ok` reports (an RFC 8460 report's ``total-successful-session-count``).
        tls_failures: every :meth:`tls_failed` report, as ``(target, result_type, detail)``
            (RFC 8460 failure details).
    """

    def __init__(
        self,
        selection: Selection,
        host_status: HostStatus | None = None,
        *,
        session_limit: int = 2,
        address_limit: int | None = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if session_limit < 1:
            raise ValueError(f"session_limit must be at least 1, got {session_limit}")
        if address_limit is not None and address_limit < 1:
            raise ValueError(f"address_limit must be at least 1 or None, got {address_limit}")
        self.selection = selection
        self.host_status = host_status
        self.session_limit = session_limit
        self.address_limit = address_limit
        targets = selection.targets
        if host_status is not None:
            targets = host_status.order(targets)
        self.targets: tuple[Target, ...] = targets
        self.attempts: list[tuple[Target, Attempt, int, str]] = []
        self.sessions = 0
        self.tls_successes = 0
        self.tls_failures: list[tuple[Target, str, str]] = []
        self._clock = clock
        self._tlsrpt_events: list[TlsRptEvent] = []
        self._next = 0
        self._current: Target | None = None
        self._in_session = False
        self._reported = True
        self._outcome = Outcome(DeliveryStatus.PENDING)
        self._last_temporary: Outcome | None = None
        self._failures: list[str] = []
        self._cleartext_next = False  # the current target comes back for a cleartext retry
        self._cleartext = False  # the current target is that retry

    # -- walking -----------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True when the message was delivered, bounced, or must be deferred."""
        return self._outcome.status is not DeliveryStatus.PENDING

    @property
    def outcome(self) -> Outcome:
        """The final :class:`Outcome` (``status`` is ``PENDING`` until :attr:`done`)."""
        return self._outcome

    def next_target(self) -> Target | None:
        """The next target to try, or ``None`` when done (see :attr:`outcome`).

        Raises:
            RuntimeError: the previous target's attempt was not reported yet.
        """
        if self.done:
            return None
        if self._current is not None and (not self._reported or self._in_session):
            raise RuntimeError(f"report how the attempt on {self._current} ended first")
        if self._cleartext_next:  # the same address again, not counted toward address_limit
            self._cleartext_next = False
            self._cleartext = True
            self._reported = False
            return self._current
        self._cleartext = False
        if self._next >= len(self.targets):
            self._give_up(f"all {len(self.targets)} targets tried")
            return None
        if self.address_limit is not None and self._next >= self.address_limit:
            self._give_up(f"address limit ({self.address_limit}) reached")
            return None
        if self.sessions >= self.session_limit:
            self._give_up(f"session limit ({self.session_limit}) reached")
            return None
        self._current = self.targets[self._next]
        self._next += 1
        self._reported = False
        return self._current

    def __iter__(self) -> Iterator[Target]:
        """Yield :meth:`next_target` until done; report each target inside the loop."""
        while True:
            target = self.next_target()
            if target is None:
                return
            yield target

    @property
    def cleartext_retry(self) -> bool:
        """``True`` when the target just returned is a **cleartext retry**: the same target
        again, right after :meth:`tls_failed` on it with opportunistic TLS (RFC 7672 §2.2:
        "The MTA MAY retry in cleartext when delivery via TLS fails during the handshake").
        Connect again and do not send STARTTLS. It comes back once, and does not count
        toward ``address_limit`` (the same address)."""
        return self._cleartext

    # -- reports -----------------------------------------------------------------------------

    def refused(self, target: Target, reason: str = "connection refused") -> None:
        """The connection was refused or the network unreachable: the address is remembered
        as down and the next target is tried."""
        self._unreachable(target, Attempt.REFUSED, reason)

    def timed_out(self, target: Target, reason: str = "connection timed out") -> None:
        """The connection or the greeting timed out: remembered as down; next target."""
        self._unreachable(target, Attempt.TIMED_OUT, reason)

    def connected(self, target: Target) -> None:
        """An SMTP session started with ``target``; the address is forgotten as down. A report
        must follow: :meth:`delivered`, :meth:`temporary`, :meth:`permanent` or :meth:`lost`
        (the session then counts toward ``session_limit``), or :meth:`handshake_failed` (it
        does not). Call it on TCP connect or once the handshake is done: either works."""
        self._check(target, session_ok=False)
        self._start_session(target)
        self._log(target, Attempt.CONNECTED)

    def handshake_failed(
        self,
        target: Target,
        code: int = 0,
        text: str = "",
        *,
        stage: HandshakeStage = HandshakeStage.GREETING,
    ) -> None:
        """The initial SMTP handshake with ``target`` failed at ``stage``: a 4xx/5xx reply
        (``code``) to the greeting, EHLO/HELO or STARTTLS, or no reply at all (``code`` 0:
        the connection closed, the TLS handshake failed, STARTTLS was not offered...).

        It is not a session, with or without :meth:`connected` before it: it does not count
        toward ``session_limit`` (Postfix ``smtp_mx_session_limit`` "ignores sessions that
        fail to complete the SMTP initial handshake or TLS handshake"). The host answered, so
        its address is not remembered as down (RFC 5321 §4.5.4.1 lists hosts it *cannot
        reach*) -- it is forgotten as down, as by :meth:`connected`.

        The next target is tried -- after a 4xx or 5xx greeting (Postfix
        ``smtp_skip_5xx_greeting``), any STARTTLS or TLS failure (RFC 7672 §2.2, RFC 8461 §5)
        and a 4xx EHLO -- except that a 5xx reply to EHLO (and HELO) bounces the message, like
        Postfix (``smtp_site_fail``: "hard error: bounce all remaining recipients") and Exim.
        A 4xx reply is the deferral's reply if nothing later replaces it.

        Raises:
            ValueError: ``code`` is neither 0 nor 4xx/5xx.
        """
        if code != 0 and not 400 <= code <= 599:
            raise ValueError(f"a failed handshake has a 4xx/5xx reply or none (0), got {code}")
        self._check(target, session_ok=True)
        if not self._in_session:
            self._start_session(target)  # it answered: reachable
        self._in_session = False  # ... and not counted
        self._log(target, Attempt.HANDSHAKE_FAILED, code, text)
        if code:
            self._failures.append(f"{target}: {stage.value} {code} {text}".rstrip())
        else:
            self._failures.append(f"{target}: {stage.value}: {text or 'failed'}")
        if code >= 500 and stage is HandshakeStage.EHLO:
            self._bounce(target, code, text)
        elif 400 <= code <= 499:
            self._temporary_reply(target, code, text)

    def tls_failed(
        self,
        target: Target,
        result_type: ResultType | str,
        detail: str = "",
        *,
        sending_mta_ip: IPAddress | str | None = None,
        receiving_mx_helo: str | None = None,
    ) -> bool:
        """TLS with ``target`` failed: STARTTLS not offered or refused when TLS is required
        (``"starttls-not-supported"``), the TLS handshake failed, or the peer did not
        authenticate (:func:`mxselect.dane.verify`'s ``result_type``:
        ``"validation-failure"``, ``"certificate-host-mismatch"``...). ``result_type`` is an
        RFC 8460 result type; ``detail`` says what happened (it ends up in the outcome).

        What comes next is decided by ``target.tls`` (:class:`~mxselect.TlsRequirement`):

        * opportunistic TLS (:attr:`~mxselect.Posture.OPPORTUNISTIC`, or
          :attr:`~mxselect.Posture.MTA_STS_TESTING`, RFC 8461 §5; not ``required``): the
          same target comes back from :meth:`next_target` once, with :attr:`cleartext_retry`
          set: connect again without STARTTLS (RFC 7672 §2.2 third bullet "MAY retry in
          cleartext"). Returns ``True``. A TLS failure during that retry moves on.
        * required TLS (``tls.required``: every DANE posture, MTA-STS enforce): the next
          target (RFC 8461 §5 "MUST NOT deliver"; RFC 7672
          §2.2: "MUST result in falling back to the next SMTP server or delayed delivery";
          §3.2 "Messages MUST NOT be delivered via the SMTP server if authentication fails").
          It is a temporary failure: when the targets run out after it, the message is
          deferred with **451 4.7.5** (RFC 3463 X.7.5 "Cryptographic failure", as Postfix),
          never bounced (RFC 7672 §9.1). Returns ``False``.

        Like :meth:`handshake_failed` (which it is, at the STARTTLS or TLS stage), it is not a
        session -- with or without :meth:`connected` before it -- and the host answered, so it
        is not remembered as down (Postfix ``smtp_mx_session_limit`` "ignores sessions that
        fail to complete the ... TLS handshake"). It is recorded in :attr:`attempts` as
        :attr:`Attempt.HANDSHAKE_FAILED`, in :attr:`tls_failures`, and in
        :attr:`tlsrpt_events` as a failed session (RFC 8460 §4.4 ``failure-details``: ``detail``
        is its ``failure-reason-code``; ``sending_mta_ip`` and ``receiving_mx_helo`` are
        recorded when given).

        Raises:
            ValueError: ``result_type`` is not an RFC 8460 result type
                (:class:`~mxselect.tlsrpt.ResultType` or its value).
        """
        try:
            result_type = ResultType(result_type).value
        except ValueError:
            raise ValueError(
                f"not an RFC 8460 result type: {result_type!r} (one of "
                + ", ".join(sorted(r.value for r in ResultType))
                + ")"
            ) from None
        self._check(target, session_ok=True)
        event = TlsRptEvent.session(
            self.selection,
            target,
            self._clock(),
            result_type,
            sending_mta_ip=sending_mta_ip,
            receiving_mx_helo=receiving_mx_helo,
            failure_reason_code=detail,
        )
        self._tlsrpt_events.append(event)
        if not self._in_session:
            self._start_session(target)  # it answered: reachable
        self._in_session = False  # ... and not counted
        stage = (
            HandshakeStage.STARTTLS
            if result_type == "starttls-not-supported"
            else HandshakeStage.TLS
        )
        text = f"{result_type}: {detail}" if detail else result_type
        self._log(target, Attempt.HANDSHAKE_FAILED, 0, text)
        self.tls_failures.append((target, result_type, detail))
        # MTA-STS testing (RFC 8461 §5): "messages may be delivered as though there were no
        # MTA-STS validation failure" -- as opportunistic TLS.
        required = target.tls.required or target.tls.posture not in (
            Posture.OPPORTUNISTIC,
            Posture.MTA_STS_TESTING,
        )
        if not required and not self._cleartext:
            # Testing: the MTA may retry with TLS it does not validate, not only in cleartext.
            retry = (
                "retrying without MTA-STS validation, RFC 8461 §5"
                if target.tls.posture is Posture.MTA_STS_TESTING
                else "retrying in cleartext"
            )
            self._failures.append(f"{target}: {stage.value}: {text} ({retry})")
            self._cleartext_next = True
            return True
        self._failures.append(f"{target}: {stage.value}: {text}")
        if required:
            posture = target.tls.posture
            self._last_temporary = Outcome(
                DeliveryStatus.DEFERRED,
                451,
                "4.7.5",
                f"{target.host}: 4.7.5 TLS required ({posture}): {text}",
                target,
            )
        return False

    def tls_ok(
        self,
        target: Target,
        *,
        sending_mta_ip: IPAddress | str | None = None,
        receiving_mx_helo: str | None = None,
    ) -> None:
        """TLS with ``target`` is up -- and, with DANE, authenticated
        (:func:`mxselect.dane.verify` was ``ok``): counted in :attr:`tls_successes` and
        recorded in :attr:`tlsrpt_events` as a successful session (RFC 8460 §4.4
        ``total-successful-session-count``). Call it after the handshake, before
        ``MAIL FROM``; it changes nothing else (the session goes on: report it as usual)."""
        if self.done:
            raise RuntimeError(f"the delivery plan is done ({self._outcome.status.value})")
        if target != self._current:
            raise ValueError(f"{target} is not the current target ({self._current})")
        self.tls_successes += 1
        self._tlsrpt_events.append(
            TlsRptEvent.session(
                self.selection,
                target,
                self._clock(),
                sending_mta_ip=sending_mta_ip,
                receiving_mx_helo=receiving_mx_helo,
            )
        )

    @property
    def tlsrpt_events(self) -> tuple[TlsRptEvent, ...]:
        """The TLS sessions of this delivery so far, for an RFC 8460 report: one
        :class:`~mxselect.tlsrpt.TlsRptEvent` per :meth:`tls_ok` (a success) and per
        :meth:`tls_failed` (a failure with its result type), in order, each under the policy
        of its target (:func:`mxselect.tlsrpt.policy_for`: ``tlsa`` for DANE, ``sts`` for
        MTA-STS, else ``no-policy-found``) and stamped by ``clock``. They are recorded whether
        or not the domain asks for reports (:attr:`mxselect.Selection.tlsrpt`): feed them to a
        :class:`mxselect.tlsrpt.Aggregator`; the reporter sends only where asked."""
        return tuple(self._tlsrpt_events)

    def delivered(self, target: Target, code: int = 250, text: str = "") -> None:
        """The message was accepted (2xx): done, :attr:`DeliveryStatus.DELIVERED`."""
        self._reply(target)
        self._log(target, Attempt.DELIVERED, code, text)
        self._finish(Outcome(DeliveryStatus.DELIVERED, code, _status_of(text), text, target))

    def temporary(self, target: Target, code: int = 451, text: str = "") -> None:
        """A 4xx reply: the session is over, the next target is tried (RFC 5321 §5.1)."""
        if not 400 <= code <= 499:
            raise ValueError(f"a temporary reply is 4xx, got {code}")
        self._reply(target)
        self._log(target, Attempt.TEMPORARY, code, text)
        self._temporary_reply(target, code, text)
        self._failures.append(f"{target}: {code} {text}".rstrip())

    def permanent(
        self, target: Target, code: int = 550, text: str = "", *, at_greeting: bool = False
    ) -> None:
        """A 5xx reply: the message bounces -- unless ``at_greeting``, which is
        :meth:`handshake_failed` at the greeting: the next MX is tried (Postfix
        ``smtp_skip_5xx_greeting``) and it is not a session."""
        if not 500 <= code <= 599:
            raise ValueError(f"a permanent reply is 5xx, got {code}")
        if at_greeting:
            self.handshake_failed(target, code, text, stage=HandshakeStage.GREETING)
            return
        self._reply(target)
        self._log(target, Attempt.PERMANENT, code, text)
        self._bounce(target, code, text)

    def lost(self, target: Target, reason: str = "connection lost") -> None:
        """The session broke without a reply (dropped connection, read timeout): the
        message's fate is unknown, the next target is tried."""
        self._reply(target)
        self._log(target, Attempt.LOST, 0, reason)
        self._failures.append(f"{target}: {reason}")

    def report(
        self,
        target: Target,
        attempt: Attempt,
        code: int = 0,
        text: str = "",
        *,
        stage: HandshakeStage = HandshakeStage.GREETING,
    ) -> None:
        """Report by :class:`Attempt` kind (dispatches to the methods above; ``stage`` is for
        :attr:`Attempt.HANDSHAKE_FAILED`)."""
        if attempt is Attempt.REFUSED:
            self.refused(target, text or "connection refused")
        elif attempt is Attempt.TIMED_OUT:
            self.timed_out(target, text or "connection timed out")
        elif attempt is Attempt.CONNECTED:
            self.connected(target)
        elif attempt is Attempt.HANDSHAKE_FAILED:
            self.handshake_failed(target, code, text, stage=stage)
        elif attempt is Attempt.TEMPORARY:
            self.temporary(target, code or 451, text)
        elif attempt is Attempt.PERMANENT:
            self.permanent(target, code or 550, text)
        elif attempt is Attempt.LOST:
            self.lost(target, text or "connection lost")
        else:
            self.delivered(target, code or 250, text)

    # -- internals ---------------------------------------------------------------------------

    def _check(self, target: Target, *, session_ok: bool) -> None:
        if self.done:
            raise RuntimeError(f"the delivery plan is done ({self._outcome.status.value})")
        if target != self._current:
            raise ValueError(f"{target} is not the current target ({self._current})")
        if self._reported and not (session_ok and self._in_session):
            raise RuntimeError(f"the attempt on {target} was already reported")

    def _start_session(self, target: Target) -> None:
        self._in_session = True
        self._reported = True
        if self.host_status is not None:
            self.host_status.mark_up(target.address)

    def _reply(self, target: Target) -> None:
        """A reply ends the session, which counts toward the limit; a reply without
        ``connected`` implies the session."""
        self._check(target, session_ok=True)
        if not self._in_session:
            self._start_session(target)
        self._in_session = False
        self.sessions += 1

    def _temporary_reply(self, target: Target, code: int, text: str) -> None:
        """Remember a 4xx reply: the deferral gives the last one."""
        self._last_temporary = Outcome(
            DeliveryStatus.DEFERRED, code, _status_of(text), f"{target.host}: {text}", target
        )

    def _bounce(self, target: Target, code: int, text: str) -> None:
        self._finish(
            Outcome(
                DeliveryStatus.BOUNCED, code, _status_of(text), f"{target.host}: {text}", target
            )
        )

    def _unreachable(self, target: Target, attempt: Attempt, reason: str) -> None:
        self._check(target, session_ok=False)
        self._reported = True
        self._log(target, attempt, 0, reason)
        self._failures.append(f"{target}: {reason}")
        if self.host_status is not None:
            self.host_status.mark_down(target.address, reason)

    def _log(self, target: Target, attempt: Attempt, code: int = 0, text: str = "") -> None:
        self.attempts.append((target, attempt, code, text))

    def _finish(self, outcome: Outcome) -> None:
        if outcome.status is DeliveryStatus.DEFERRED and any(
            t.tls.posture is Posture.MTA_STS for t, _, _ in self.tls_failures
        ):
            # RFC 8461 §5.1: no permanent failure before a check for a new policy.
            outcome = attrs.evolve(outcome, recheck_policy=True)
        self._outcome = outcome
        self._current = None

    def _give_up(self, why: str) -> None:
        """Nothing more to try: defer (a temporary failure never becomes a bounce)."""
        tried = "; ".join(self._failures)
        if self._last_temporary is not None:
            last = self._last_temporary
            message = f"{why}; last reply from {last.message}"
            self._finish(attrs.evolve(last, message=f"{message} ({tried})"))
            return
        message = f"{why}: {tried}" if tried else f"{why}: no target to try"
        # RFC 3463 X.4.1: "No answer from host".
        self._finish(Outcome(DeliveryStatus.DEFERRED, 451, "4.4.1", message))


def _status_of(text: str) -> str:
    """The RFC 3463 enhanced status at the start of a reply text (``"4.2.1 busy"``), or ``""``."""
    first = text.split(" ", 1)[0]
    parts = first.split(".")
    if len(parts) == 3 and parts[0] in ("2", "4", "5") and all(p.isdigit() for p in parts[1:]):
        return first
    return ""
