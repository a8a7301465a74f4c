"""The selection plan: the driver-facing API of the pure core (h11's ``_connection`` role).

A :class:`SelectionPlan` does no I/O. It says which DNS queries it needs (a *batch*), receives
the answers, and finally returns a :class:`~mxselect.Selection` or raises a classified
:class:`~mxselect.MXSelectError`. The drivers (``select_targets``, ``aselect_targets``) and any
event loop of yours run it. It never imports ``dns``, ``asyncio``, ``socket`` or ``time`` and
never touches the global ``random`` (a test enforces this, and the layer order below).

The layers, each importing only those before it:

* ``_answers``, ``_domain``, ``_model``, ``_policy``, ``exceptions``: the values.
* ``_lookup``: the lookup engine -- CNAME chains, the memo, the query budget.
* ``_rules``: the rules, one pure function each, listed with their RFC sections in that
  module's header (rule 1: address literals ... rule 9: the classification of failure).
* ``_core`` (this module): the plan -- its API (``pending``, ``feed``, ``abandon``,
  ``result``), its advancing from batch to batch, and the glue that runs the rules in order
  and turns their outcomes into a :class:`~mxselect.Selection` or an error.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Generator
from typing import Any

from . import _rules as rules
from . import _sts as sts
from ._answers import (
    Answer,
    FetchResult,
    IPAddress,
    MXRecord,
    PolicyFetch,
    Query,
    RRType,
    Security,
    Status,
    TLSARecord,
)
from ._domain import normalize_domain
from ._lookup import Batch, Chain, Key, Lookups, Received
from ._model import (
    OPPORTUNISTIC_TLS,
    Host,
    RawStep,
    Selection,
    SelectionWarning,
    Target,
    TlsRequirement,
    Trace,
    WarningCode,
)
from ._policy import DEFAULT_POLICY, Dane, Policy
from ._rules import Candidate, Examined, Notes, Outcome
from ._sts import StsEntry, StsMode, StsPolicy, StsRecord
from .exceptions import (
    DaneRequiredError,
    DNSTemporaryError,
    MailLoopError,
    MXSelectError,
    NoPrimaryRelayError,
    NoSuchDomainError,
    NoUsableTargetsError,
    NullMXError,
    SecureDeliveryError,
    StsPolicyError,
)

__all__ = ["CNAME_CHAIN_LIMIT", "SelectionPlan"]

#: The default longest CNAME chain followed, in links (Postfix, sendmail); see
#: :attr:`Policy.cname_limit`.
CNAME_CHAIN_LIMIT = DEFAULT_POLICY.cname_limit

# Used only when the caller gives no rng: OS entropy, shared state none, so nothing another
# library does to the global ``random`` (seeding it, say) can influence or predict the order.
_SYSTEM_RANDOM = random.SystemRandom()

#: The error class of each final outcome a rule can decide.
_ERRORS: dict[Outcome, type[MXSelectError]] = {
    Outcome.TEMPORARY: DNSTemporaryError,
    Outcome.NO_SUCH_DOMAIN: NoSuchDomainError,
    Outcome.NULL_MX: NullMXError,
    Outcome.NO_USABLE_TARGETS: NoUsableTargetsError,
    Outcome.MAIL_LOOP: MailLoopError,
    Outcome.NO_PRIMARY_RELAY: NoPrimaryRelayError,
    Outcome.DANE_REQUIRED: DaneRequiredError,
    Outcome.SECURE_DELIVERY: SecureDeliveryError,
    Outcome.STS_POLICY: StsPolicyError,
}


class SelectionPlan:
    """The whole selection for one domain, as a plan that asks for DNS answers.

    Drive it from any event loop, thread or callback-based resolver::

        plan = SelectionPlan("example.org", rng=random.Random(1))
        while not plan.done:
            for query in plan.pending:          # every query of the current batch
                plan.feed(query, my_resolver(query))   # in any order, at any time
        selection = plan.result()               # or raises MXSelectError

    Answers may be fed one at a time as they arrive; the plan moves to the next batch when the
    current one is complete. ``pending`` lists the queries of the current batch still
    unanswered, so a concurrent driver sends them all at once.

    Args:
        domain: the recipient domain (U-label or A-label, any case, optional trailing dot) or
            an address literal (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``).
        rng: a :class:`random.Random` used to shuffle equal preferences; seed it for
            reproducible orders. ``None``: OS entropy, never the global ``random``.

    Raises:
        InvalidDomainError: at construction, for input that is not a mail domain.
    """

    def __init__(
        self,
        domain: object,
        *,
        rng: random.Random | None = None,
        policy: Policy | None = None,
        sts_entry: StsEntry | None = None,
        now: float | None = None,
    ) -> None:
        normalized = normalize_domain(domain)
        self._rng: random.Random = rng if rng is not None else _SYSTEM_RANDOM
        self.policy: Policy = policy if policy is not None else DEFAULT_POLICY
        self._lookups = Lookups(self.policy.cname_limit, _budget_text(self.policy))
        self._warnings: list[SelectionWarning] = []
        # Steps as recorded; formatted only if the trace is read (Trace).
        self._trace: list[RawStep] = []
        self._ttl: int | None = None
        self._batch: Batch = ()
        # The current batch's answers by position, and each query's position by the id of
        # the batch's Query object (feed); the core reads the answers by position.
        self._slots: dict[int, int] = {}
        self._answers: list[Answer | None] = []
        self._missing = 0
        self._result: Selection | None = None
        self._error: MXSelectError | None = None
        self._queries_sent = 0
        self._mx_security = Security.UNKNOWN
        # DANE (rule 10): each host's TLS requirement, and the hosts its TLSA search made
        # unusable: name -> (why, warning code, outcome when nothing is left).
        self._tls: dict[str, TlsRequirement] = {}
        self._tls_failed: dict[str, tuple[str, WarningCode, Outcome]] = {}
        self._dane = False
        # MTA-STS (RFC 8461): the cached entry and the time (both given: the core has no
        # store and no clock), the fetch asked for and its result, the policy applied.
        if self.policy.mta_sts and now is None:
            raise ValueError("Policy.mta_sts needs the current time: SelectionPlan(..., now=...)")
        self._now = now if now is not None else 0.0
        self._sts_entry = sts_entry
        self._sts_record: StsRecord | None = None
        self._fetch: PolicyFetch | None = None
        self._fetch_result: FetchResult | None = None
        self._waiting = False  # the generator waits for the fetch (no DNS pending)
        self._sts_policy: StsPolicy | None = None
        self._sts_source: str | None = None
        self._tlsrpt: tuple[str, ...] = ()
        #: The entry to put in the MTA-STS store once the plan is done (a policy fetched, or
        #: a failed fetch recorded), or ``None``: leave the store as it is.
        self.sts_update: StsEntry | None = None
        #: With :attr:`Policy.sts_background`: the fetch the plan did not wait for and the TXT
        #: record it is for -- complete it and store the result
        #: (``mxselect.mtasts.PolicyCache.fetched``); the drivers do.
        self.background_fetch: tuple[PolicyFetch, StsRecord] | None = None
        if isinstance(normalized, str):
            self.domain: str = normalized
            self.canonical_domain: str = normalized
            self._gen: Generator[Batch, Received, Selection] | None = self._run()
            self._advance(None)
        else:
            self._gen = None
            self.domain = self.canonical_domain = _literal_text(normalized)
            try:
                self._result = self._literal(normalized)
            except MXSelectError as exc:
                self._fail(exc)

    # -- driving ---------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """``True`` once :meth:`result` will return or raise without more answers."""
        return self._result is not None or self._error is not None

    @property
    def pending(self) -> tuple[Query, ...]:
        """The queries of the current batch that still need an answer."""
        if self._missing == len(self._batch):
            return self._batch
        return tuple(q for q, a in zip(self._batch, self._answers, strict=True) if a is None)

    @property
    def fetches(self) -> tuple[PolicyFetch, ...]:
        """The non-DNS requests still unanswered: the MTA-STS policy fetch, once the plan
        asks for it (right after the ``_mta-sts`` TXT answer, RFC 8461 §3.3). Start it at once:
        it runs beside the DNS batches; the plan waits for it only at the end (then
        :attr:`pending` is empty while :attr:`done` is false). Answer it with :meth:`feed`."""
        if self._fetch is None or self._fetch_result is not None or self.done:
            return ()
        return (self._fetch,)

    @property
    def queries_sent(self) -> int:
        """How many queries the plan has asked for so far."""
        return self._queries_sent

    def feed(self, query: Query | PolicyFetch, answer: Answer | FetchResult) -> None:
        """Give the answer to one pending query (an :class:`Answer`), or the result of a
        fetch of :attr:`fetches` (a :class:`FetchResult`).

        Raises:
            ValueError: ``query`` is not pending (unknown or already answered).
            TypeError: ``answer`` is not an :class:`Answer` (or :class:`FetchResult`).
        """
        if isinstance(query, PolicyFetch):
            if not isinstance(answer, FetchResult):
                raise TypeError(f"expected an mxselect FetchResult for {query}, got {answer!r}")
            if query != self._fetch or self._fetch_result is not None or self.done:
                raise ValueError(f"{query} is not a pending fetch of this plan")
            self._fetch_result = answer
            if self._waiting:
                self._waiting = False
                self._advance([])
            return
        if not isinstance(answer, Answer):
            raise TypeError(f"expected an mxselect Answer for {query}, got {answer!r}")
        # The query objects of ``pending`` are found by identity (no Python-level Query hash);
        # any other query by equality, as before.
        slot = self._slots.get(id(query))
        if slot is None or self._batch[slot] is not query:
            slot = {q: i for i, q in enumerate(self._batch)}.get(query)
        if slot is None or self._answers[slot] is not None:
            raise ValueError(f"{query} is not a pending query of this plan")
        self._answers[slot] = answer
        self._missing -= 1
        if not self._missing:
            received: Received = self._answers  # type: ignore[assignment]  # all filled now
            self._batch, self._slots, self._answers = (), {}, []
            self._advance(received)

    def abandon(self, reason: str) -> None:
        """Stop waiting: the plan ends now with a :class:`DNSTemporaryError` whose reason is
        ``reason`` followed by the queries still pending (for an overall deadline: nothing
        that was not answered established anything, so it can only be temporary;
        RFC 1123 §6.1.3.3 "give up and return a soft error"). Answers already fed keep their
        warnings and trace. No effect once :attr:`done`.
        """
        if self.done:
            return
        pending = [*map(str, self.pending), *map(str, self.fetches)]
        if pending:
            reason = f"{reason}; no answer yet for: {', '.join(pending)}"
        self._fail(self._temporary(reason))
        if self._gen is not None:
            self._gen.close()
            self._gen = None
        self._batch, self._slots, self._answers, self._missing = (), {}, [], 0

    def result(self) -> Selection:
        """The selection, once :attr:`done`.

        Raises:
            MXSelectError: the classified failure (a :class:`PermanentError` or a
                :class:`TemporaryError`).
            RuntimeError: the plan still needs answers.
        """
        error = self._error
        if error is not None:
            try:
                raise error
            finally:
                # The error's traceback holds this frame: without its locals no cycle
                # (error -> traceback -> frame -> plan -> error) is left for the garbage
                # collector, as concurrent.futures does for the same reason.
                del self, error
        if self._result is None:
            needed = [*map(str, self.pending), *map(str, self.fetches)]
            raise RuntimeError(f"the plan still needs answers for: {needed}")
        return self._result

    def _advance(self, received: Received | None) -> None:
        assert self._gen is not None
        try:
            batch = self._gen.send(received) if received is not None else next(self._gen)
        except StopIteration as stop:
            self._result = stop.value
            self._gen = None
        except MXSelectError as exc:
            self._fail(exc)
            self._gen = None
        else:
            if not batch:
                self._waiting = True  # the MTA-STS fetch is all the plan needs now
            self._batch = batch
            self._slots = {id(query): i for i, query in enumerate(batch)}
            self._answers = [None] * len(batch)
            self._missing = len(batch)
            self._queries_sent += len(batch)

    # -- recording ---------------------------------------------------------------------------

    def _note(self, notes: Notes) -> None:
        """Record what a rule noted, in order: warnings (also in the trace) and trace steps."""
        for note in notes:
            kind = note[0]
            if isinstance(kind, WarningCode):
                message = note[1]
                assert isinstance(message, str)
                if len(note) == 5:  # a warning about one address (its structured fields)
                    warning = SelectionWarning(
                        kind, message, note[2], address=note[3], listed_for=note[4]
                    )
                else:
                    warning = SelectionWarning(kind, message, note[2])
                self._warnings.append(warning)
                self._trace.append((kind.value, message, note[2]))
            else:
                self._trace.append(note)  # type: ignore[arg-type]  # kind is a str here

    def _step(self, kind: str, message: str | tuple[Any, ...], host: str | None = None) -> None:
        """Record a trace step; ``message`` is the text or ``(function, *arguments)`` that
        formats it when the trace is read (the arguments must not change afterwards)."""
        self._trace.append((kind, message, host))

    def _use_ttl(self, ttl: int | None) -> None:
        if ttl is not None:
            self._ttl = ttl if self._ttl is None else min(self._ttl, ttl)

    def _error_for(self, outcome: Outcome, reason: str) -> MXSelectError:
        """The error of a final outcome, with the warnings so far."""
        error = _ERRORS[outcome](reason, domain=self.domain, warnings=tuple(self._warnings))
        if isinstance(error, StsPolicyError):
            error.policy_id = self._sts_policy_id()
            error.sts_policy = self._sts_policy
            error.tlsrpt = self._tlsrpt
        return error

    def _sts_policy_id(self) -> str | None:
        """The id of the policy applied: the one fetched now, or the cached entry's."""
        if self._sts_policy is None:
            return None
        if self._sts_source == "fetched" and self._sts_record is not None:
            return self._sts_record.id
        return self._sts_entry.id if self._sts_entry is not None else None

    def _temporary(self, reason: str) -> DNSTemporaryError:
        return DNSTemporaryError(reason, domain=self.domain, warnings=tuple(self._warnings))

    def _fail(self, error: MXSelectError) -> None:
        """End the plan with ``error``; its trace ends with the outcome step."""
        self._step("outcome", f"{type(error).__name__} {error.reply_code} {error.status}: {error}")
        error.trace = Trace(self._trace)
        # Raised inside the core, its traceback holds the core's frames and so the plan,
        # which holds the error: a cycle only the garbage collector frees, on every failed
        # selection. The frames say nothing the error and its trace do not; result() raises
        # it afresh.
        error.__traceback__ = None
        self._error = error

    def _selection(self, **fields: Any) -> Selection:
        # The trace's messages are formatted when it is first read (Trace).
        return Selection(warnings=tuple(self._warnings), trace=Trace(self._trace), **fields)

    # -- the glue: the rules in order (``_rules`` has them, with their RFC sections) -------

    def _literal(self, address: IPAddress) -> Selection:
        """Rule 1: an address literal."""
        text = self.domain
        outcome, reason, notes = rules.literal_target(text, address, self.policy)
        self._note(notes)
        if outcome is not Outcome.CONTINUE:
            raise self._error_for(outcome, reason)
        return self._selection(
            domain=text,
            canonical_domain=text,
            targets=(Target(text, 0, address),),
            hosts=(Host(text, 0, (address,), text),),
            address_literal=True,
        )

    def _run(self) -> Generator[Batch, Received, Selection]:
        domain = self.domain
        policy = self.policy
        # Rule 2 -- RFC 5321 §5.1: "The lookup first attempts to locate an MX record". "If a
        # CNAME record is found, the resulting name is processed as if it were the initial
        # name."
        key = (domain, RRType.MX)
        keys = [key]
        # RFC 8461 §3.1, RFC 8460 §3: the policy records, asked beside the MX query.
        sts_key = (f"_mta-sts.{domain}", RRType.TXT) if policy.mta_sts else None
        rpt_key = (f"_smtp._tls.{domain}", RRType.TXT) if policy.tlsrpt else None
        keys += [k for k in (sts_key, rpt_key) if k is not None]
        first = (yield from self._lookups.resolve(keys))[0]
        mx = first[key]
        self.canonical_domain = mx.canonical
        self._mx_security = self._lookups.security(RRType.MX)
        outcome, reason, notes = rules.mx_outcome(domain, mx, policy)  # rule 3
        self._note(notes)
        if outcome is not Outcome.CONTINUE:
            raise self._error_for(outcome, reason)
        self._use_ttl(mx.ttl)
        answer = mx.answer
        assert answer is not None
        implicit = answer.status is Status.NODATA
        if sts_key is not None:
            self._sts_discover(first[sts_key])
        if rpt_key is not None:
            self._tlsrpt_record(first[rpt_key])
        if policy.dane is not Dane.OFF:
            # Rule 10 -- RFC 7672 §2.2.1: mandatory DANE needs a secure MX RRset.
            outcome, reason = rules.dane_precheck(domain, self._mx_security, policy)
            if outcome is not Outcome.CONTINUE:
                raise self._error_for(outcome, reason)
            self._dane = rules.dane_wanted(self._mx_security, policy)
            self._step("dane", rules.dane_step(self._mx_security, self._dane, policy))
        # RFC 5321 §5.1: "If an empty list of MXs is returned, the address is treated as if it
        # was associated with an implicit MX RR, with a preference of 0, pointing to that
        # host." NODATA only (RFC 3974 §3 step 1), at the CNAME-expanded name.
        if implicit:
            candidates, cut = [Candidate(self.canonical_domain, 0)], None
        else:
            candidates, cut = self._candidates(answer.mx)
        return (yield from self._resolve_hosts(candidates, cut, implicit))

    def _candidates(self, records: tuple[MXRecord, ...]) -> tuple[list[Candidate], int | None]:
        """Rules 4-6b: null MX, per-record validation, order and shuffle, this host's name;
        returns the hosts to resolve and the preference cut at this host's name (or None)."""
        domain = self.domain
        policy = self.policy
        is_null, notes = rules.null_mx(domain, records, policy)
        self._note(notes)
        if is_null:
            raise self._error_for(
                Outcome.NULL_MX,
                f"{domain} publishes a null MX (RFC 7505): it does not accept mail",
            )
        best, literals, dropped, notes = rules.valid_exchanges(domain, records, policy)
        self._note(notes)
        if not best:
            raise self._error_for(
                Outcome.NO_USABLE_TARGETS,
                f"no usable mail exchanger for {domain}: " + "; ".join(dropped),
            )
        ordered, notes = rules.ordered_hosts(best, literals, self._rng)
        self._note(notes)
        ordered, cut, loop, notes = rules.cut_at_own_name(domain, ordered, policy)
        if loop:
            raise self._error_for(Outcome.MAIL_LOOP, loop)
        self._note(notes)
        self._note(rules.capped(domain, len(ordered), policy))
        return ordered, cut

    def _resolve_hosts(
        self, candidates: list[Candidate], name_cut: int | None, implicit: bool
    ) -> Generator[Batch, Received, Selection]:
        """Rule 7: the exchanges' addresses, best first, ``max_mx_hosts`` hosts a batch, a
        further batch only while no host examined so far is usable, at most
        ``max_address_queries`` queries in all; then rules 8-9 (:meth:`_outcome`)."""
        policy = self.policy
        rtypes = rules.address_types(policy)
        budget = policy.address_query_budget
        best = candidates[0].preference
        examined: list[Examined] = []
        start = 0
        while start < len(candidates):
            if not start and len(candidates) <= policy.max_mx_hosts:
                # One batch holds every exchange (the usual case): no need to count them out,
                # unless the budget is smaller than the batch.
                batch = (
                    candidates
                    if len(candidates) * len(rtypes) <= budget
                    else rules.next_batch(candidates, start, len(rtypes), budget, policy)
                )
            else:
                batch = rules.next_batch(candidates, start, len(rtypes), budget, policy)
            if not batch:
                break  # the budget is used up
            if examined:
                self._step(
                    "more",
                    f"no usable target among the {len(examined)} host(s) resolved so far; "
                    f"resolving the next {len(batch)} (max_mx_hosts)",
                )
            start += len(batch)
            chains, sent = yield from self._lookups.resolve(
                ((c.name, rtype) for c in batch if c.literal is None for rtype in rtypes),
                budget=budget,
            )
            budget -= sent
            for candidate in batch:
                examined.append(self._examine(candidate, chains))
            if start >= len(candidates) and not self._dane:
                break  # every exchange examined (the usual case: one batch)
            hit = rules.find_self(examined, policy)
            cut = hit[0].candidate.preference if hit is not None else None
            if cut is not None and cut <= best:
                break  # this host is the best MX: a loop (_outcome raises)
            if self._dane:
                yield from self._tlsa_pass(examined, cut, implicit)
            if start >= len(candidates):
                break  # every exchange examined (the usual case: one batch)
            if any(
                rules.judge(e, policy, implicit)[0]
                for e in examined
                if (cut is None or e.candidate.preference < cut)
                and e.candidate.name not in self._tls_failed
            ):
                break  # a usable host: the rest are not needed
            if cut is not None and candidates[start].preference >= cut:
                start = len(candidates)  # the rest are no better than this host: never used
        if policy.mta_sts:
            if self._fetch is not None and self._fetch_result is None and policy.sts_background:
                # RFC 8461 §5.1 step 1 / App. B: the fetch goes on in the background; this
                # message gets the cached policy still valid, or none.
                assert self._sts_record is not None
                self.background_fetch = (self._fetch, self._sts_record)
                self._step(
                    "sts",
                    f"MTA-STS policy of {self.domain}: fetched in the background "
                    "(sts_background); "
                    + (
                        "the cached policy applies meanwhile"
                        if self._sts_policy is not None
                        else "no policy for this message"
                    ),
                )
            elif self._fetch is not None:
                if self._fetch_result is None:
                    yield ()  # wait for the policy fetch (it ran beside the DNS batches)
                self._sts_fetched()
            if self._sts_policy is not None and self._sts_apply(examined, implicit):
                hit = rules.find_self(examined, policy)
                cut = hit[0].candidate.preference if hit is not None else None
                if self._dane:
                    # Hosts the address limit now reaches instead of the dropped ones.
                    yield from self._tlsa_pass(examined, cut, implicit)
        return self._outcome(examined, candidates[start:], name_cut, implicit)

    def _tlsa_pass(
        self, examined: list[Examined], cut: int | None, implicit: bool
    ) -> Generator[Batch, Received, None]:
        """Rule 10 -- RFC 7672 §2.2.2, §2.2.3: the TLSA records of the hosts that will be
        tried, after their addresses (never before: "MUST perform any A and/or AAAA queries
        for the destination before attempting to locate the associated TLSA records"), all
        hosts at once: one batch in the usual case (3 round trips for the whole selection).
        Only hosts the address limit keeps are searched; when a search makes a host
        unusable, the hosts the limit now reaches are searched in one more pass. Records
        ``self._tls`` and ``self._tls_failed``; never reorders anything (§2.2.1)."""
        policy = self.policy
        done = self._tls.keys() | self._tls_failed.keys()
        while True:
            usable = []
            for entry in examined:
                name = entry.candidate.name
                if (cut is not None and entry.candidate.preference >= cut) or (
                    name in self._tls_failed
                ):
                    continue
                safe = rules.judge(entry, policy, implicit)[0]
                if safe:
                    usable.append((entry, safe))
            if not usable:
                return
            reached = _reached(usable, policy)
            todo = [
                e for e, _ in usable if e.candidate.name in reached and e.candidate.name not in done
            ]
            if not todo:
                return
            failed = len(self._tls_failed)
            yield from self._tlsa_search(todo)
            if len(self._tls_failed) == failed:
                # No host became unusable: the limit reaches the same hosts, all searched.
                return
            done = self._tls.keys() | self._tls_failed.keys()

    def _tlsa_search(self, hosts: list[Examined]) -> Generator[Batch, Received, None]:
        """The TLSA search of ``hosts`` (RFC 7672 §2.2.2, §2.2.3), in rounds shared by all of
        them: the CNAME queries some need (RFC 7672 §2.1.3), the first candidate base
        domains, then the second candidates of those whose first gave no secure TLSA."""
        policy = self.policy
        port = policy.tlsa_port
        searches = {e.candidate.name: (e, rules.tlsa_search(e)) for e in hosts}
        ask = [(e.candidate.name, RRType.CNAME) for e, s in searches.values() if s.ask_cname]
        if ask:
            answers = yield from self._lookups.ask(ask)
            for key, answer in answers.items():
                name = key[0]
                entry, _ = searches[name]
                verdict = rules.cname_secure(answer)
                self._use_ttl(answer.ttl)
                if verdict is None:
                    self._tls_failure(name, f"CNAME lookup failed: {answer.reason or 'failed'}")
                    del searches[name]
                    continue
                self._step(
                    "dane",
                    f"{name}: addresses insecure via CNAME; the CNAME itself is "
                    + (
                        "secure -> TLSA at the original name (RFC 7672 §2.2.2)"
                        if verdict
                        else "not secure -> no TLSA lookup (RFC 7672 §2.2.2)"
                    ),
                    name,
                )
                searches[name] = (
                    entry,
                    rules.TlsaSearch((name,), "", False)
                    if verdict
                    else rules.TlsaSearch((), rules.RULE_INSECURE_ADDRESS, False),
                )
        pending: dict[str, tuple[Examined, tuple[str, ...]]] = {}
        for name, (entry, search) in searches.items():
            if search.candidates:
                pending[name] = (entry, search.candidates)
            else:
                self._tls[name] = rules.opportunistic(search.rule)
                self._step("dane", f"{name}: no TLSA lookup -> opportunistic ({search.rule})", name)
        while pending:
            keys = {
                name: (rules.tlsa_name(c[0], port), RRType.TLSA) for name, (_, c) in pending.items()
            }
            chains, _ = yield from self._lookups.resolve(keys.values())
            following: dict[str, tuple[Examined, tuple[str, ...]]] = {}
            for name, (entry, candidates) in pending.items():
                chain = chains[keys[name]]
                self._use_ttl(chain.ttl)
                base = candidates[0]
                records, why = rules.tlsa_found(chain)
                query = rules.tlsa_name(base, port)
                if records is not None:
                    requirement, notes = rules.tls_requirement(
                        name,
                        base,
                        records,
                        self._mx_security,
                        policy,
                        (self.domain, self.canonical_domain),
                    )
                    self._tls[name] = requirement
                    # formatted when the trace is read (the records' text costs)
                    self._step("tlsa", (_tlsa_step, name, query, records, requirement), name)
                    self._note(notes)
                elif why.startswith("failed"):
                    # RFC 7672 §2.1.2; after a failed expanded-name lookup the original name
                    # is not tried (Postfix tls_dane.c: "lookup errors are distinct from
                    # success with nothing found").
                    self._tls_failure(name, f"TLSA lookup {query} {why}")
                elif len(candidates) > 1:
                    self._step(
                        "tlsa",
                        f"{name}: {query}: {why}; trying the next base domain (RFC 7672 §2.2.3)",
                        name,
                    )
                    following[name] = (entry, candidates[1:])
                else:
                    self._tls[name] = rules.opportunistic(rules.RULE_NO_TLSA)
                    self._step(
                        "tlsa",
                        f"{name}: {query}: {why} -> opportunistic ({rules.RULE_NO_TLSA})",
                        name,
                    )
            pending = following
        if policy.dane is Dane.MANDATORY:
            for entry in hosts:
                name = entry.candidate.name
                decided = self._tls.get(name)
                if decided is not None and decided.authenticate is None:
                    del self._tls[name]
                    self._tls_failed[name] = (
                        "mandatory DANE and no usable secure TLSA records (RFC 7672 §6)",
                        WarningCode.DANE_REQUIRED,
                        Outcome.DANE_REQUIRED,
                    )

    def _tls_failure(self, name: str, why: str) -> None:
        """RFC 7672 §2.1.2: a failed TLSA search makes the host unreachable."""
        self._tls_failed[name] = (
            f"{why} (RFC 7672 §2.1.2: the server MUST be treated as unreachable)",
            WarningCode.TLSA_LOOKUP_FAILED,
            Outcome.SECURE_DELIVERY,
        )

    # -- MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) ------------------------------------------

    def _sts_discover(self, chain: Chain) -> None:
        """RFC 8461 §3.1, §3.3: what the ``_mta-sts`` TXT answer and the cached entry say:
        fetch the policy (a new id), apply the cached one, or none."""
        answer = chain.answer
        if chain.error is not None or answer is None:
            answer = Answer.tempfail(chain.error or "failed")
        self._use_ttl(chain.ttl)
        found = sts.discover(self._sts_entry, answer, self._now)
        self._step("sts", f"MTA-STS for {self.domain}: {found.reason}")
        # The record discover() parsed (never parsed twice), and the entry to store when it
        # moved checked_at (the same id seen again; RFC 8461 §3.3 refresh bookkeeping).
        self._sts_record = found.record
        self.sts_update = found.entry
        if found.fetch:
            self._fetch = PolicyFetch.for_domain(self.domain, self.policy.sts_fetch_timeout)
        self._sts_policy, self._sts_source = found.apply, found.source

    def _sts_fetched(self) -> None:
        """RFC 8461 §3.3: the fetch's result: the new policy, or on failure the cached one
        still valid, or none -- never a bounce."""
        assert self._fetch_result is not None
        assert self._sts_record is not None
        done = sts.fetched(
            self._sts_entry,
            self.domain,
            self._sts_record,
            self._fetch_result,
            self._now,
            self._fetch.max_bytes if self._fetch is not None else 65536,
        )
        self._step("sts", f"MTA-STS policy of {self.domain}: {done.reason}")
        if done.failure is not None:
            self._note(
                [
                    (
                        WarningCode.STS_POLICY_STALE
                        if done.apply is not None
                        else WarningCode.STS_FETCH_FAILED,
                        f"MTA-STS policy of {self.domain}: {done.reason}",
                        None,
                    )
                ]
            )
        self._sts_policy, self._sts_source = done.apply, done.source
        self.sts_update = done.entry

    def _sts_apply(self, examined: list[Examined], implicit: bool) -> bool:
        """RFC 8461 §4.1, §5: each host's MX name (as published, not CNAME-expanded) against
        the policy's mx patterns. Enforce: a host that does not match is unusable (as an
        unreachable one, §8.4; self-pruning came first); testing: it is kept, with the
        testing posture. A matching host needs validated TLS, unless DANE already decided
        its authentication (RFC 8461 §2: MTA-STS never overrides DANE). Returns whether any
        host was made unusable."""
        policy = self._sts_policy
        assert policy is not None
        if policy.mode is StsMode.NONE:
            return False
        dropped = False
        for entry in examined:
            name = entry.candidate.name
            if name in self._tls_failed:
                continue
            matches = entry.candidate.literal is None and sts.policy_matches(policy, name)
            current = self._tls.get(name)
            if policy.mode is StsMode.ENFORCE and not matches:
                self._tls_failed[name] = (
                    f"it does not match the MTA-STS policy of {self.domain} (mx: "
                    f"{', '.join(policy.mx)}; RFC 8461 §4.1, §5 enforce: MUST NOT deliver)",
                    WarningCode.STS_MX_MISMATCH,
                    Outcome.STS_POLICY,
                )
                dropped = True
                continue
            if not matches:
                self._note(
                    [
                        (
                            WarningCode.STS_MX_MISMATCH,
                            f"{name} does not match the MTA-STS policy of {self.domain} (mx: "
                            f"{', '.join(policy.mx)}); mode testing: used anyway, report the "
                            "failure (RFC 8461 §5)",
                            name,
                        )
                    ]
                )
            if current is not None and current.authenticate == "dane":
                continue  # RFC 8461 §2: DANE validation is never overridden
            self._tls[name] = rules.sts_requirement(name, policy, matches)
        return dropped

    def _tlsrpt_record(self, chain: Chain) -> None:
        """RFC 8460 §3: the ``rua`` URIs of the ``_smtp._tls`` TXT record, if usable."""
        answer = chain.answer
        if chain.error is None and answer is not None and answer.status is Status.RECORDS:
            from ._tlsrpt import parse_record

            self._tlsrpt = parse_record(answer.txt) or ()

    def _dane_notes(self, examined: list[Examined]) -> None:
        """With DANE on: the posture of every host without a TLSA search (an insecure MX with
        ``dane_insecure_mx=may``), and one ``DNSSEC_UNAVAILABLE`` warning when no answer had a
        DNSSEC status (RFC 7672 §2.1.1; Postfix's dnssec_probe)."""
        if not self._dane:
            requirement = rules.opportunistic(rules.RULE_INSECURE_MX_MAY)
            for entry in examined:
                self._tls.setdefault(entry.candidate.name, requirement)
        if self._mx_security is Security.UNKNOWN and all(
            rules.address_status(e).security is Security.UNKNOWN for e in examined
        ):
            self._note(
                [
                    (
                        WarningCode.DNSSEC_UNAVAILABLE,
                        "DANE is on but the resolver reported no DNSSEC status for any answer "
                        "(not trusted, or it cannot say): every host is opportunistic "
                        "(RFC 7672 §2.1.1)",
                        None,
                    )
                ]
            )

    def _dane_hosts(
        self,
        examined: list[Examined],
        usable: list[tuple[Candidate, str, list[IPAddress]]],
        kept: dict[str, list[IPAddress]],
    ) -> tuple[Host, ...]:
        """The hosts with DANE on: each with its TLS requirement and address status."""
        entries = {e.candidate.name: e for e in examined}
        tls = self._tls
        return tuple(
            Host(
                c.name,
                c.preference,
                tuple(kept[c.name]),
                canonical,
                tls.get(c.name, OPPORTUNISTIC_TLS),
                rules.address_status(entries[c.name]).security,
            )
            for c, canonical, _ in usable
            if c.name in kept
        )

    def _examine(self, candidate: Candidate, chains: dict[Key, Chain]) -> Examined:
        """Rule 8a for one exchange."""
        name = candidate.name
        examined, ttls, notes, step = rules.host_addresses(
            candidate, chains.get((name, RRType.AAAA)), chains.get((name, RRType.A))
        )
        for ttl in ttls:
            if ttl is not None:
                self._ttl = ttl if self._ttl is None or ttl < self._ttl else self._ttl
        if notes:
            self._note(notes)
        if step is not None:
            self._trace.append(step)  # type: ignore[arg-type]  # a trace step: kind is a str
        return examined

    def _outcome(
        self,
        examined: list[Examined],
        unexamined: list[Candidate],
        name_cut: int | None,
        implicit: bool,
    ) -> Selection:
        """Rules 6b (over the resolved hosts), 8b, 8c and 9: usable hosts, address order, and
        the classification of failure."""
        domain = self.domain
        policy = self.policy
        cut: int | None = None
        hit = rules.find_self(examined, policy)
        if hit is not None:
            entry, match = hit
            loop, found = rules.self_found(
                domain, entry.candidate, match, examined[0].candidate.preference
            )
            if loop:
                raise self._error_for(Outcome.MAIL_LOOP, loop)
            self._note(found)
            cut = entry.candidate.preference
            examined = [e for e in examined if e.candidate.preference < cut]
            unexamined = [c for c in unexamined if c.preference < cut]
        else:
            cut = name_cut
        usable: list[tuple[Candidate, str, list[IPAddress]]] = []
        failures: list[str] = []
        temporary = False
        security_causes: set[Outcome] = set()
        tls_failed = self._tls_failed
        notes: Notes = []
        for entry in examined:
            name = entry.candidate.name
            safe, why, temp = rules.judge(entry, policy, implicit, notes=notes)
            if notes:
                self._note(notes)
                notes.clear()
            failed = self._tls_failed.get(name) if tls_failed and safe else None
            if failed is not None:
                # Rule 10: a host whose TLSA search failed, or without DANE when DANE is
                # mandatory, is never used -- not even in cleartext (RFC 7672 §2.1.2, §6).
                why, code, cause = failed
                label = f"implicit MX {name}" if implicit else name
                security_causes.add(cause)
                failures.append(f"{label}: {why}")
                self._note([(code, f"{label} is not usable: {why}", name)])
                continue
            if not safe:
                temporary = temporary or temp
                label = f"implicit MX {name}" if implicit else name
                failures.append(f"{label}: {why}")
                self._note([(WarningCode.HOST_UNUSABLE, f"{label} is not usable: {why}", name)])
                continue
            usable.append((entry.candidate, entry.canonical, safe))
        if not usable:
            outcome, reason = rules.classify_failure(
                domain,
                implicit,
                failures,
                temporary,
                cut is not None,
                len(unexamined),
                policy.address_query_budget,
            )
            if security_causes and outcome is Outcome.NO_USABLE_TARGETS:
                # Rule 10: never permanent for a security reason (RFC 7672 §2.1.2, §6).
                outcome = Outcome.TEMPORARY
            if (
                security_causes
                and outcome is Outcome.TEMPORARY
                and not temporary
                and not unexamined
            ):
                # Only security made the hosts unusable: 451 4.7.5 (Postfix).
                outcome = (
                    Outcome.STS_POLICY
                    if Outcome.STS_POLICY in security_causes
                    else Outcome.SECURE_DELIVERY
                    if Outcome.SECURE_DELIVERY in security_causes
                    else Outcome.DANE_REQUIRED
                )
            raise self._error_for(outcome, reason)
        dane = policy.dane is not Dane.OFF
        if dane:
            self._dane_notes(examined)
        dane = dane or bool(self._tls)
        targets, notes = rules.order_targets(usable, policy, self._tls if dane else None)
        self._note(notes)
        kept: dict[str, list[IPAddress]] = {}
        for target in targets:
            kept.setdefault(target.host, []).append(target.address)
        if not dane:
            hosts = tuple(
                Host(c.name, c.preference, tuple(kept[c.name]), canonical)
                for c, canonical, _ in usable
                if c.name in kept
            )
        else:
            hosts = self._dane_hosts(examined, usable, kept)
        self._step("outcome", ("{} target(s) on {} host(s)".format, len(targets), len(hosts)))
        return self._selection(
            domain=domain,
            canonical_domain=self.canonical_domain,
            targets=tuple(targets),
            hosts=hosts,
            implicit=implicit,
            ttl=self._ttl,
            mx_security=self._mx_security,
            sts_policy=self._sts_policy,
            sts_source=self._sts_source,
            sts_policy_id=self._sts_policy_id(),
            tlsrpt=self._tlsrpt,
        )


def _tlsa_step(
    name: str, query: str, records: tuple[TLSARecord, ...], requirement: TlsRequirement
) -> str:
    """The trace text of a host's secure TLSA RRset and the requirement it gave."""
    return (
        f"{name}: {query} TLSA secure: "
        + ", ".join(map(str, records))
        + f" -> {requirement} ({requirement.rule})"
    )


def _reached(usable: list[tuple[Examined, list[IPAddress]]], policy: Policy) -> set[str]:
    """The hosts of ``usable`` (in order, with their usable addresses) that keep a target
    after rule 8c: every host when their addresses are distinct and within
    ``max_addresses`` (the usual case, without ordering them), else as
    :func:`rules.order_targets` leaves them (a host whose addresses are all listed for a
    better one, or beyond the limit, has no target)."""
    limit = policy.max_addresses
    total = 0
    distinct: set[IPAddress] = set()
    for _, addresses in usable:
        total += len(addresses)
        distinct.update(addresses)
    if len(distinct) == total and (limit is None or total <= limit):
        return {e.candidate.name for e, _ in usable}
    targets, _ = rules.order_targets([(e.candidate, e.canonical, a) for e, a in usable], policy)
    return {t.host for t in targets}


def _budget_text(policy: Policy) -> str:
    """How a lookup cut off by the policy's address query budget explains itself."""
    return _budget_text_of(policy.address_query_budget)


@functools.lru_cache(maxsize=64)
def _budget_text_of(budget: int) -> str:  # (formatted once per budget, not per selection)
    return f"query budget of {budget} address queries exhausted (max_address_queries)"


def _literal_text(address: IPAddress) -> str:
    if address.version == 6:
        return f"[IPv6:{address}]"
    return f"[{address}]"
