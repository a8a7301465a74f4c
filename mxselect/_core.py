"""The pure core: RFC 5321 §5.1 / RFC 7505 MX target selection as a plan.

A :class:`SelectionPlan` does no I/O. It says which DNS queries it needs (a *batch*), receives
the answers, and finally returns a :class:`~mxselect.Selection` or raises a classified
:class:`~mxselect.MXSelectError`. The drivers (``select_targets``, ``aselect_targets``) and any
event loop of yours run it. It never imports ``dns``, ``asyncio``, ``socket`` or ``time`` and
never touches the global ``random`` (a test enforces this).

The rules, in the order they apply (each is cited again next to its code):

1. The input is normalised, or rejected before any query (``_domain``; RFC 5321 §4.1.2,
   RFC 1035 §3.1, RFC 5891). An address literal is the single target; no DNS (RFC 5321 §4.1.3);
   the policy applies to it: this host's address is a loop, a disabled family or an unsafe
   network makes it unusable (RFC 5321 §5.2; Exim ipliteral + ``ignore_target_hosts``).
2. Batch 1: the MX query for the absolute domain (RFC 5321 §5.1). A CNAME at the domain is
   followed and its target processed as the initial name; the caller's domain is never
   rewritten (RFC 5321 §5.1, §2.3.5). CNAME chains longer than 10 links or looping are a
   temporary failure (RFC 1034 §3.6.2; resolvers answer SERVFAIL for them too).
3. MX outcome: TEMPFAIL -> :class:`DNSTemporaryError`, never a fallback to A/AAAA
   (RFC 5321 §5.1); NXDOMAIN -> :class:`NoSuchDomainError`, no address query (RFC 5321 §5.1,
   RFC 6604 §3); NODATA -> the implicit MX: the CNAME-expanded domain at preference 0
   (RFC 5321 §5.1, RFC 3974 §3 step 1). An answer that claims records but carries none is a
   resolver fault and temporary, never read as NODATA (postal#2833).
4. Null MX (RFC 7505 §3): only root exchanges -> :class:`NullMXError` with no further query.
   Root exchanges mixed with real ones are ignored with a warning (Exim, OpenSMTPD, sendmail).
5. Each MX record is validated on its own (RFC 2181 §11, RFC 5321 §4.1.2): an exchange that is
   an IP address or not an LDH host name is dropped with a warning; one bad record never hides
   the good ones. A host listed twice keeps its best preference (RFC 1035 §3.1: names compare
   case-insensitively).
6. Hosts are sorted by preference (RFC 5321 §5.1 "MUST be used in sorting") and each group of
   equal preference is shuffled without bias with the injected ``rng`` (RFC 5321 §5.1 "MUST
   randomize"); the group is put in name order first, so a seed reproduces the order whatever
   order the resolver used. This host's names are looked for over the whole list before any
   address query (RFC 5321 §5.1 "inspect the list"): its level and worse ones are discarded;
   as the best MX, :class:`MailLoopError`.
7. Batch 2: AAAA and A for the best ``Policy.max_mx_hosts`` exchanges at once (RFC 3974 §3
   steps 3-4), so a cold selection costs two round trips; while no exchange resolved so far
   is usable, the next ``max_mx_hosts`` in a further batch, within
   ``Policy.max_address_queries`` queries in all (CNAME follow-ups included). CNAME'd
   exchanges are followed (Postfix, Exim; RFC 5321 §5.1 leaves it out of scope) with a
   warning (RFC 2181 §10.3). A family the policy disables is not queried (RFC 5321 §5.2).
8. A host is usable if either family gave an address, even if the other failed temporarily
   (RFC 3974 §5; Exim, Postfix). An MX naming an address of a disabled family is unusable
   (RFC 5321 §5.2). Addresses in the policy's unsafe networks are dropped one by
   one (Exim ignore_target_hosts; Haraka#3314). Within each preference level the addresses are
   ordered by family (``Policy.families``; default: IPv6 and IPv4 interleaved, RFC 8305 §4),
   each family in resolver order (RFC 5321 §5.1 "in the order presented"), never across
   levels (RFC 3974 §3). An address already listed for a better-placed host is not repeated.
   Then the address limit (``Policy.max_addresses``, RFC 5321 §5.1).
9. Outcome: at least one usable host -> the selection (unusable hosts become warnings; RFC 7672
   §2.1.2 "delivery may proceed via any remaining MX hosts"). None usable: if any lookup
   involved failed temporarily -> :class:`DNSTemporaryError` ("a soft error dominates",
   Postfix), and so does an exchange left unexamined when the query budget ran out;
   otherwise :class:`NoUsableTargetsError` (RFC 5321 §5.1 "MUST be reported as an error").
   Addresses of the domain itself are never used when MX records exist (RFC 5321 §5.1).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Generator, Iterable
from typing import Any, cast

from ._answers import Answer, IPAddress, MXRecord, Query, RRType, Status
from ._domain import check_ldh_name, normalize_domain, normalize_exchange
from ._model import (
    Host,
    LazyTrace,
    RawStep,
    Selection,
    SelectionWarning,
    Target,
    TraceStep,
    WarningCode,
)
from ._policy import DEFAULT_POLICY, Families, Policy
from .exceptions import (
    DNSTemporaryError,
    MailLoopError,
    MXSelectError,
    NoPrimaryRelayError,
    NoSuchDomainError,
    NoUsableTargetsError,
    NullMXError,
)

__all__ = ["CNAME_CHAIN_LIMIT", "SelectionPlan"]

#: The default longest CNAME chain followed, in links (Postfix, sendmail); see
#: :attr:`Policy.cname_limit`.
CNAME_CHAIN_LIMIT = DEFAULT_POLICY.cname_limit

# Used only when the caller gives no rng: OS entropy, shared state none, so nothing another
# library does to the global ``random`` (seeding it, say) can influence or predict the order.
_SYSTEM_RANDOM = random.SystemRandom()

_IPv4 = ipaddress.IPv4Address
_IPv6 = ipaddress.IPv6Address

_Key = tuple[str, RRType]
_Batch = tuple[Query, ...]
_Received = list[Answer]  # the answers of a batch, in the batch's order


def _norm_ttl(ttl: int | None) -> int | None:
    """RFC 2181 §8: a TTL with the most significant bit set is treated as zero."""
    if ttl is None:
        return None
    if ttl < 0 or ttl >= 2**31:
        return 0
    return ttl


class _Chain:
    """One lookup (name, type) followed through its CNAME chain to an answer or an error."""

    __slots__ = (
        "answer",
        "canonical",
        "current",
        "error",
        "limit",
        "links",
        "rtype",
        "start",
        "ttl",
    )

    def __init__(self, name: str, rtype: RRType, limit: int) -> None:
        self.limit = limit
        self.start = name
        self.rtype = rtype
        self.current = name
        self.links: list[str] = []
        self.answer: Answer | None = None
        self.error: str | None = None
        self.ttl: int | None = None
        self.canonical = name

    @property
    def done(self) -> bool:
        return self.answer is not None or self.error is not None

    def absorb(self, answer: Answer) -> None:
        """Take one answer for ``(current, rtype)``; follow an ALIAS or finish."""
        ttl = _norm_ttl(answer.ttl)
        if ttl is not None:
            self.ttl = ttl if self.ttl is None else min(self.ttl, ttl)
        if answer.status is Status.TEMPFAIL:
            self.answer = answer
            return
        if not answer.aliases and not answer.canonical_name:
            # No CNAME in the answer (the common case): what the general steps below do then.
            if answer.status is Status.ALIAS:
                self.error = "alias answer without a target"
            else:
                self.answer = answer
            return
        links = [normalize_exchange(a) for a in answer.aliases]
        target = normalize_exchange(answer.canonical_name) if answer.canonical_name else None
        if links and links[0] != self.current:
            links.insert(0, self.current)
        if target is not None and target != self.current and not links:
            links = [self.current]
        if target is None and answer.status is Status.ALIAS:
            self.error = "alias answer without a target"
            return
        self.links.extend(links)
        if target is not None and links:
            # RFC 1034 §3.6.2: CNAME loops are signalled as an error.
            seen = [*self.links, target]
            if len(set(seen)) != len(seen):
                self.error = "CNAME loop: " + " -> ".join(seen)
                return
            if len(self.links) > self.limit:
                self.error = f"CNAME chain longer than {self.limit} links"
                return
            why = check_ldh_name(target)
            if why is not None:
                self.error = f"CNAME target {target!r} is not a valid host name: {why}"
                return
            self.canonical = target
        if answer.status is Status.ALIAS:
            assert target is not None
            self.current = target
            return
        self.answer = answer


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
        self, domain: object, *, rng: random.Random | None = None, policy: Policy | None = None
    ) -> None:
        normalized = normalize_domain(domain)
        self._rng: random.Random = rng if rng is not None else _SYSTEM_RANDOM
        self.policy: Policy = policy if policy is not None else DEFAULT_POLICY
        self._memo: dict[_Key, Answer] = {}
        self._warnings: list[SelectionWarning] = []
        # Steps as recorded; formatted only if the trace is read (LazyTrace).
        self._trace: list[RawStep] = []
        self._ttl: int | None = None
        self._batch: _Batch = ()
        # The current batch's answers by position, and each query's position (feed): one
        # hash of a Query per feed; the core reads the answers by position.
        self._slots: dict[Query, int] = {}
        self._answers: list[Answer | None] = []
        self._missing = 0
        self._result: Selection | None = None
        self._error: MXSelectError | None = None
        self._queries_sent = 0
        # The preference from which MX hosts were dropped because one is this host by name.
        self._name_cut: int | None = None
        if isinstance(normalized, str):
            self.domain: str = normalized
            self.canonical_domain: str = normalized
            self._gen: Generator[_Batch, _Received, Selection] | None = self._run()
            self._advance(None)
        else:
            self._gen = None
            self.domain = self.canonical_domain = _literal_text(normalized)
            try:
                self._result = self._literal(normalized)
            except MXSelectError as exc:
                self._step("outcome", f"{type(exc).__name__} {exc.reply_code} {exc.status}: {exc}")
                exc.trace = LazyTrace(tuple(self._trace))
                self._error = exc

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
    def queries_sent(self) -> int:
        """How many queries the plan has asked for so far."""
        return self._queries_sent

    def feed(self, query: Query, answer: Answer) -> None:
        """Give the answer to one pending query.

        Raises:
            ValueError: ``query`` is not pending (unknown or already answered).
            TypeError: ``answer`` is not an :class:`Answer`.
        """
        if not isinstance(answer, Answer):
            raise TypeError(f"expected an mxselect Answer for {query}, got {answer!r}")
        slot = self._slots.get(query)
        if slot is None or self._answers[slot] is not None:
            raise ValueError(f"{query} is not a pending query of this plan")
        self._answers[slot] = answer
        self._missing -= 1
        if not self._missing:
            received = cast("_Received", self._answers)  # every slot is filled now
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
        pending = self.pending
        if pending:
            reason = f"{reason}; no answer yet for: {', '.join(map(str, pending))}"
        error = self._temporary(reason)
        self._step("outcome", f"DNSTemporaryError {error.reply_code} {error.status}: {reason}")
        error.trace = LazyTrace(tuple(self._trace))
        self._error = error
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
        if self._error is not None:
            raise self._error
        if self._result is None:
            raise RuntimeError(f"the plan still needs answers for: {list(map(str, self.pending))}")
        return self._result

    def _advance(self, received: _Received | None) -> None:
        assert self._gen is not None
        try:
            batch = self._gen.send(received) if received is not None else next(self._gen)
        except StopIteration as stop:
            self._result = stop.value
            self._gen = None
        except MXSelectError as exc:
            self._step("outcome", f"{type(exc).__name__} {exc.reply_code} {exc.status}: {exc}")
            exc.trace = LazyTrace(tuple(self._trace))
            self._error = exc
            self._gen = None
        else:
            self._batch = batch
            self._slots = {query: i for i, query in enumerate(batch)}
            self._answers = [None] * len(batch)
            self._missing = len(batch)
            self._queries_sent += len(batch)

    # -- lookups ---------------------------------------------------------------------------

    def _lookup_all(
        self, keys: Iterable[_Key], budget: int | None = None
    ) -> Generator[_Batch, _Received, tuple[dict[_Key, _Chain], int]]:
        """Resolve every (name, type) in one batch per CNAME step; never ask twice; never send
        more than ``budget`` queries (CNAME follow-ups included). Returns the chains and the
        number of queries sent."""
        limit = self.policy.cname_limit
        chains = {(name, rtype): _Chain(name, rtype, limit) for name, rtype in keys}
        memo = self._memo
        sent = 0
        while True:
            # Each chain takes what is known, then asks for the rest (in chain order, once).
            wanted: dict[_Key, None] = {}
            for chain in chains.values():
                while chain.answer is None and chain.error is None:
                    key = (chain.current, chain.rtype)
                    known = memo.get(key)
                    if known is None:
                        wanted[key] = None
                        break
                    chain.absorb(known)
            if budget is not None and sent + len(wanted) > budget:
                allowed = dict.fromkeys(list(wanted)[: max(0, budget - sent)])
                for chain in chains.values():
                    if not chain.done and (chain.current, chain.rtype) not in allowed:
                        chain.error = (
                            f"query budget of {self.policy.address_query_budget} address "
                            "queries exhausted (max_address_queries)"
                        )
                wanted = allowed
            if not wanted:
                return chains, sent
            sent += len(wanted)
            batch = tuple(Query(name + ".", rtype) for name, rtype in wanted)
            received = yield batch
            memo.update(zip(wanted, received, strict=True))

    def _use_ttl(self, ttl: int | None) -> None:
        if ttl is not None:
            self._ttl = ttl if self._ttl is None else min(self._ttl, ttl)

    def _warn(self, code: WarningCode, message: str, host: str | None = None) -> None:
        self._warnings.append(SelectionWarning(code, message, host))
        self._step(code.value, message, host)

    def _step(self, kind: str, message: str | tuple[Any, ...], host: str | None = None) -> None:
        """Record a trace step; ``message`` is the text or ``(function, *arguments)`` that
        formats it when the trace is read (the arguments must not change afterwards)."""
        self._trace.append((kind, message, host))

    def _temporary(self, reason: str) -> DNSTemporaryError:
        return DNSTemporaryError(reason, domain=self.domain, warnings=tuple(self._warnings))

    # -- the rules -------------------------------------------------------------------------

    def _run(self) -> Generator[_Batch, _Received, Selection]:
        domain = self.domain
        # Rule 2 -- RFC 5321 §5.1: "The lookup first attempts to locate an MX record".
        mx = (yield from self._lookup_all([(domain, RRType.MX)]))[0][(domain, RRType.MX)]
        # RFC 5321 §5.1: "If a CNAME record is found, the resulting name is processed as if it
        # were the initial name."
        self.canonical_domain = mx.canonical
        via = f" (via CNAME {mx.canonical})" if mx.canonical != domain else ""
        self._step("mx", (_mx_message, domain, via, mx.error, mx.answer))
        if mx.error is not None:
            raise self._temporary(f"MX lookup for {domain}: {mx.error}")
        answer = mx.answer
        assert answer is not None
        # Rule 3.
        if answer.status is Status.TEMPFAIL:
            # RFC 5321 §5.1: "If a temporary error is returned, the message MUST be queued and
            # retried later" -- and never a fallback to the domain's A/AAAA records.
            raise self._temporary(f"MX lookup for {domain}{via}: {answer.reason or 'failed'}")
        if answer.status is Status.NXDOMAIN:
            # RFC 5321 §5.1: "If a non-existent domain error is returned, this situation MUST
            # be reported as an error." RFC 6604 §3: at the end of a CNAME chain too.
            raise NoSuchDomainError(
                f"MX lookup for {domain}{via}: NXDOMAIN (the domain does not exist)",
                domain=domain,
                warnings=tuple(self._warnings),
            )
        if answer.status is Status.RECORDS and not answer.mx:
            # A resolver that claims records but gives none has established nothing: never
            # read it as NODATA (that would send mail to the implicit MX; postal#2833).
            raise self._temporary(
                f"MX lookup for {domain}{via}: the resolver answered without MX records"
            )
        self._use_ttl(mx.ttl)
        implicit = answer.status is Status.NODATA
        policy = self.policy
        if implicit and not policy.implicit_mx:
            raise NoUsableTargetsError(
                f"{domain}{via} has no MX records and the implicit MX is disabled by the policy",
                domain=domain,
                warnings=tuple(self._warnings),
            )
        # RFC 5321 §5.1: "If an empty list of MXs is returned, the address is treated as if it
        # was associated with an implicit MX RR, with a preference of 0, pointing to that
        # host." NODATA only (RFC 3974 §3 step 1), at the CNAME-expanded name.
        candidates = (
            [_Candidate(self.canonical_domain, 0)] if implicit else self._candidates(answer.mx)
        )
        return (yield from self._resolve_hosts(candidates, implicit))

    def _resolve_hosts(
        self, candidates: list[_Candidate], implicit: bool
    ) -> Generator[_Batch, _Received, Selection]:
        """Rule 7: the exchanges' addresses, best first, ``max_mx_hosts`` hosts a batch, a
        further batch only while no host examined so far is usable, at most
        ``max_address_queries`` queries in all; then rules 8-9 (:meth:`_outcome`)."""
        policy = self.policy
        # One batch for every exchange of a round, AAAA then A (RFC 8305 §3 query order); a
        # family the policy disables is not queried at all (RFC 5321 §5.2).
        rtypes = [
            t
            for t, wanted in ((RRType.AAAA, policy.wants_ipv6), (RRType.A, policy.wants_ipv4))
            if wanted
        ]
        budget = policy.address_query_budget
        best = candidates[0].preference
        examined: list[_Examined] = []
        start = 0
        while start < len(candidates):
            # The next hosts, best first: as many as max_mx_hosts and the budget allow (an MX
            # that names an address costs no query). CNAME follow-ups share the budget, so a
            # hostile zone costs at most max_address_queries address queries in all.
            batch: list[_Candidate] = []
            cost = 0
            for candidate in candidates[start : start + policy.max_mx_hosts]:
                need = 0 if candidate.literal is not None else len(rtypes)
                if cost + need > budget and (batch or budget <= 0):
                    break
                batch.append(candidate)
                cost += need
            if not batch:
                break  # the budget is used up
            if examined:
                self._step(
                    "more",
                    f"no usable target among the {len(examined)} host(s) resolved so far; "
                    f"resolving the next {len(batch)} (max_mx_hosts)",
                )
            start += len(batch)
            chains, sent = yield from self._lookup_all(
                ((c.name, rtype) for c in batch if c.literal is None for rtype in rtypes),
                budget=budget,
            )
            budget -= sent
            examined.extend(self._examine(candidate, chains) for candidate in batch)
            if start >= len(candidates):
                break  # every exchange examined (the usual case: one batch)
            hit = self._find_self(examined)
            cut = hit[0].candidate.preference if hit is not None else None
            if cut is not None and cut <= best:
                break  # this host is the best MX: a loop (_outcome raises)
            if any(
                self._judge(e, implicit, warn=False)[0]
                for e in examined
                if cut is None or e.candidate.preference < cut
            ):
                break  # a usable host: the rest are not needed
            if cut is not None and start < len(candidates) and candidates[start].preference >= cut:
                start = len(candidates)  # the rest are no better than this host: never used
        return self._outcome(examined, candidates[start:], implicit)

    def _candidates(self, records: tuple[MXRecord, ...]) -> list[_Candidate]:
        """Rules 4-6: null MX, per-record validation, de-duplication, order and shuffle."""
        domain = self.domain
        policy = self.policy
        null = [r for r in records if normalize_exchange(r.exchange) == ""]
        if null and (len(null) == len(records) or policy.strict_null_mx):
            # RFC 7505 §3: a single MX RR with "a zero-length label ... as the exchange domain"
            # means the domain accepts no mail; §4.1: 556 5.1.10; no further query. With
            # strict_null_mx any root exchange poisons the whole set (Postfix).
            if any(r.preference != 0 for r in null):
                self._warn(
                    WarningCode.NULL_MX_PREFERENCE,
                    f"null MX of {domain} has preference "
                    f"{', '.join(str(r.preference) for r in null)}; RFC 7505 §3 says 0",
                )
            if len(null) != len(records):
                self._warn(
                    WarningCode.NULL_MX_MIXED,
                    f"{domain} mixes a null MX record with {len(records) - len(null)} other MX "
                    "record(s) (RFC 7505 §3 forbids it); strict_null_mx treats it as a null MX",
                )
            raise NullMXError(
                f"{domain} publishes a null MX (RFC 7505): it does not accept mail",
                domain=domain,
                warnings=tuple(self._warnings),
            )
        if null:
            # RFC 7505 §3: "A domain that advertises a null MX MUST NOT advertise any other MX
            # RR." The sender's behaviour is unspecified: use the real records (Exim).
            self._warn(
                WarningCode.NULL_MX_MIXED,
                f"{domain} mixes a null MX record with {len(records) - len(null)} other MX "
                "record(s) (RFC 7505 §3 forbids it); the null record is ignored",
            )
        best: dict[str, int] = {}
        literals: dict[str, IPAddress] = {}
        dropped: list[str] = []
        for record in records:
            name = normalize_exchange(record.exchange)
            if name == "":
                continue
            address = _ip_address(name)
            if address is not None:
                # RFC 5321 §5.1: the data field "MUST contain a domain name" (Exim rejects;
                # Postfix accepts; RFC 7672 §2.2: DANE does not apply to it).
                accepted = policy.allow_mx_to_ip
                self._warn(
                    WarningCode.MX_IS_ADDRESS,
                    f"MX record '{record.preference} {record.exchange}' of {domain} points to an "
                    "IP address instead of a host name (RFC 5321 §5.1); "
                    + ("used as an address (allow_mx_to_ip)" if accepted else "ignored"),
                    name,
                )
                if not accepted:
                    dropped.append(f"{record.exchange} is an IP address")
                    continue
                literals[name] = address
            else:
                why = check_ldh_name(name)
                if why is not None:
                    # RFC 2181 §11: the client "is solely responsible for validating the data".
                    self._warn(
                        WarningCode.INVALID_EXCHANGE,
                        f"MX record '{record.preference} {record.exchange}' of {domain} is not "
                        f"a valid host name ({why}); ignored",
                        name,
                    )
                    dropped.append(f"'{record.exchange}' is not a valid host name")
                    continue
            if name in best:
                self._warn(
                    WarningCode.DUPLICATE_HOST,
                    f"{name} is listed more than once in the MX records of {domain}; "
                    f"kept at preference {min(best[name], record.preference)}",
                    name,
                )
                best[name] = min(best[name], record.preference)
            else:
                best[name] = record.preference
        if not best:
            raise NoUsableTargetsError(
                f"no usable mail exchanger for {domain}: " + "; ".join(dropped),
                domain=domain,
                warnings=tuple(self._warnings),
            )
        groups: dict[int, list[str]] = {}
        for name, preference in best.items():
            groups.setdefault(preference, []).append(name)
        ordered: list[_Candidate] = []
        # RFC 5321 §5.1: "Lower numbers are more preferred than higher ones." and "the
        # sender-SMTP MUST randomize them" (equal preferences): Fisher-Yates via rng.shuffle.
        for preference in sorted(groups):
            names = sorted(groups[preference])
            if len(names) > 1:
                self._rng.shuffle(names)
                self._step("order", (_shuffled_message, preference, names))
            else:
                self._step("order", ("preference {}: {}".format, preference, names[0]))
            ordered.extend(_Candidate(name, preference, literals.get(name)) for name in names)
        if policy.local_names:
            ordered = self._cut_at_own_name(ordered)
        if len(ordered) > policy.max_mx_hosts:
            # Bounded work for hostile zones: the hosts are resolved max_mx_hosts at a time and
            # only as far as needed, within max_address_queries queries (_resolve_hosts).
            self._warn(
                WarningCode.MX_HOSTS_CAPPED,
                f"{domain} lists {len(ordered)} MX hosts; they are resolved "
                f"{policy.max_mx_hosts} at a time, best first, only while none is usable "
                f"(max_mx_hosts), with at most {policy.address_query_budget} address queries "
                "(max_address_queries)",
            )
        return ordered

    def _cut_at_own_name(self, ordered: list[_Candidate]) -> list[_Candidate]:
        """Rule 6b -- RFC 5321 §5.1 loop prevention by name, over the whole MX list before any
        batch is resolved: "The relay host MUST then inspect the list for any of the names
        or addresses by which it might be known in mail transactions. If a matching record
        is found, all records at that preference level and higher-numbered ones MUST be
        discarded from consideration." Raises MailLoopError when this host is the best MX.
        (Canonical names and addresses are known only once resolved: :meth:`_find_self`.)"""
        names = self.policy.local_names
        for candidate in ordered:
            if candidate.name in names:
                self._self_named(candidate, f"its name {candidate.name}", ordered[0].preference)
                self._name_cut = candidate.preference
                return [c for c in ordered if c.preference < candidate.preference]
        return ordered

    def _self_named(self, candidate: _Candidate, match: str, best: int) -> None:
        """This host is ``candidate``: MailLoopError if it is the best MX, else the warning."""
        preference = candidate.preference
        if preference <= best:
            raise MailLoopError(
                f"mail for {self.domain} loops back to myself: MX host {candidate.name} "
                f"(preference {preference}) is this host ({match})",
                domain=self.domain,
                warnings=tuple(self._warnings),
            )
        self._warn(
            WarningCode.LOCAL_HOST,
            f"MX host {candidate.name} (preference {preference}) is this host ({match}); it "
            f"and every MX host of preference {preference} or more are dropped "
            "(RFC 5321 §5.1)",
            candidate.name,
        )

    def _examine(self, candidate: _Candidate, chains: dict[_Key, _Chain]) -> _Examined:
        """What the lookups of one exchange found (an MX naming an address: that address)."""
        if candidate.literal is not None:
            return _Examined(candidate, [candidate.literal], candidate.name, "", False)
        found, canonical, why, temp = self._host_addresses(candidate.name, chains)
        self._step(
            "lookup", (_lookup_message, candidate.name, canonical, found, why), candidate.name
        )
        return _Examined(candidate, found, canonical, why, temp)

    def _judge(
        self, examined: _Examined, implicit: bool, *, warn: bool
    ) -> tuple[list[IPAddress], str, bool]:
        """Rule 8 for one examined host: (its usable addresses, why none, temporary). With
        ``warn``, the drops are reported (warnings and trace); without, nothing is recorded
        (the batch loop asks whether any host is usable yet)."""
        policy = self.policy
        candidate = examined.candidate
        name = candidate.name
        if candidate.literal is not None:
            # RFC 5321 §5.2: the family policy applies to every target, an MX naming an
            # address (allow_mx_to_ip) included.
            refusal = _family_refusal(candidate.literal, policy)
            if refusal is not None:
                return [], refusal, False
        else:
            if not examined.found:
                return [], examined.why, examined.temporary
            if examined.canonical != name and not implicit:
                if policy.strict_cname_exchange:
                    why = f"it is an alias (CNAME) of {examined.canonical} (strict_cname_exchange)"
                    return [], why, False
                if warn:
                    self._warn(
                        WarningCode.EXCHANGE_IS_ALIAS,
                        f"MX exchange {name} is an alias (CNAME) of {examined.canonical}; RFC "
                        "2181 §10.3 says it must not be; followed",
                        name,
                    )
        found = examined.found
        safe = [a for a in found if not policy.is_unsafe(a)]
        for address in found if warn and len(safe) != len(found) else ():
            if address not in safe:
                self._warn(
                    WarningCode.UNSAFE_ADDRESS,
                    f"address {address} of {name} is in an unsafe network (loopback, "
                    "link-local, multicast, reserved or configured); dropped",
                    name,
                )
        if safe:
            return safe, "", False
        why = "all its addresses are in unsafe networks (" + ", ".join(map(str, found)) + ")"
        if examined.why:
            why += f"; {examined.why}"  # a family that failed temporarily
        return [], why, examined.temporary

    def _outcome(
        self, examined: list[_Examined], unexamined: list[_Candidate], implicit: bool
    ) -> Selection:
        """Rules 8-9: usable hosts, address order, and the classification of failure."""
        domain = self.domain
        usable: list[tuple[_Candidate, str, list[IPAddress]]] = []
        failures: list[str] = []
        temporary = False
        cut = self._prune_self(examined)
        if cut is not None:
            examined = [e for e in examined if e.candidate.preference < cut]
            unexamined = [c for c in unexamined if c.preference < cut]
        else:
            cut = self._name_cut
        for entry in examined:
            name = entry.candidate.name
            label = f"implicit MX {name}" if implicit else name
            safe, why, temp = self._judge(entry, implicit, warn=True)
            if not safe:
                temporary = temporary or temp
                failures.append(f"{label}: {why}")
                self._warn(WarningCode.HOST_UNUSABLE, f"{label} is not usable: {why}", name)
                continue
            usable.append((entry.candidate, entry.canonical, safe))
        if not usable:
            if unexamined:
                # docs/failure-semantics.md: a permanent result needs every exchange examined.
                failures.append(
                    f"{len(unexamined)} more exchange(s) not examined: the budget of "
                    f"{self.policy.address_query_budget} address queries is used up "
                    "(max_address_queries)"
                )
                temporary = True
            if implicit:
                reason = (
                    f"{domain} has no MX records and its implicit MX has no usable address: "
                    + "; ".join(failures)
                )
            else:
                reason = f"no usable mail exchanger for {domain}: " + "; ".join(failures)
            if cut is not None:
                # This host is a backup MX and no better MX is usable: defer (Postfix).
                raise NoPrimaryRelayError(
                    f"unable to find primary relay for {domain}: " + "; ".join(failures),
                    domain=domain,
                    warnings=tuple(self._warnings),
                )
            if temporary:
                # Postfix: "A soft error dominates past and future hard errors."
                raise self._temporary(reason)
            raise NoUsableTargetsError(reason, domain=domain, warnings=tuple(self._warnings))
        targets = self._order(usable)
        kept: dict[str, list[IPAddress]] = {}
        for target in targets:
            kept.setdefault(target.host, []).append(target.address)
        hosts = tuple(
            Host(c.name, c.preference, tuple(kept[c.name]), canonical)
            for c, canonical, _ in usable
            if c.name in kept
        )
        self._step("outcome", ("{} target(s) on {} host(s)".format, len(targets), len(hosts)))
        return Selection(
            domain=domain,
            canonical_domain=self.canonical_domain,
            targets=tuple(targets),
            hosts=hosts,
            implicit=implicit,
            ttl=self._ttl,
            warnings=tuple(self._warnings),
            # Formatted when first read (Selection.trace turns the LazyTrace into the tuple).
            trace=cast("tuple[TraceStep, ...]", LazyTrace(tuple(self._trace))),
        )

    def _find_self(self, examined: list[_Examined]) -> tuple[_Examined, str] | None:
        """The first examined host that is this host, by name, by canonical (CNAME-expanded)
        name (RFC 974: an alias of the local host) or by address, and how it matched."""
        names = self.policy.local_names
        addresses = self.policy.local_addresses
        if not (names or addresses):
            return None
        for entry in examined:
            if entry.candidate.name in names:
                return entry, f"its name {entry.candidate.name}"
            if entry.canonical in names:
                return entry, f"its canonical name {entry.canonical}"
            hit = next((a for a in entry.found if a in addresses), None)
            if hit is not None:
                return entry, f"its address {hit}"
        return None

    def _prune_self(self, examined: list[_Examined]) -> int | None:
        """RFC 5321 §5.1 loop prevention over the resolved hosts (see
        :meth:`_cut_at_own_name`): returns the preference from which hosts are dropped (or
        None); raises MailLoopError when this host is the best MX."""
        hit = self._find_self(examined)
        if hit is None:
            return None
        entry, match = hit
        self._self_named(entry.candidate, match, examined[0].candidate.preference)
        return entry.candidate.preference

    def _host_addresses(
        self, name: str, chains: dict[_Key, _Chain]
    ) -> tuple[list[IPAddress], str, str, bool]:
        """(addresses, canonical name, failure text, temporary) of one exchange."""
        six = chains.get((name, RRType.AAAA))
        four = chains.get((name, RRType.A))
        v6, fail6, temp6 = self._addresses(six, name) if six else ([], "not queried", False)
        v4, fail4, temp4 = self._addresses(four, name) if four else ([], "not queried", False)
        if not v6 and not v4:
            if six is None or four is None:
                only = "AAAA" if four is None else "A"
                failure = fail6 if four is None else fail4
                why = (
                    f"{only} lookup: {failure} (the policy uses {only} only)"
                    if temp6 or temp4
                    else f"no {only} records (the policy uses {only} only)"
                )
            elif fail6 == fail4 == "NXDOMAIN":
                why = "the host does not exist (NXDOMAIN)"
            elif not temp6 and not temp4:
                why = "no A or AAAA records"
            else:
                why = f"AAAA lookup: {fail6}; A lookup: {fail4}"
            return [], name, why, temp6 or temp4
        partial = ""
        if temp6 or temp4:
            failed_families = [
                (family, text)
                for family, failed, text in (("AAAA", temp6, fail6), ("A", temp4, fail4))
                if failed
            ]
            for family, text in failed_families:
                # RFC 3974 §5, Exim, Postfix: proceed with the family that answered.
                self._warn(
                    WarningCode.PARTIAL_ADDRESS_FAILURE,
                    f"{family} lookup for {name} failed ({text}); using its other addresses",
                    name,
                )
            partial = "; ".join(f"{family} lookup: {text}" for family, text in failed_families)
        chain = four if four is not None and v4 else six
        assert chain is not None
        if six is not None:
            self._use_ttl(six.ttl)
        if four is not None:
            self._use_ttl(four.ttl)
        # The temporary flag stays set: if every address found is later dropped (unsafe), the
        # family that failed might have had a usable one -- that host's failure is temporary.
        return v6 + v4, chain.canonical, partial, temp6 or temp4

    def _order(self, usable: list[tuple[_Candidate, str, list[IPAddress]]]) -> list[Target]:
        """Family order within each preference level, duplicates, then the address limit."""
        policy = self.policy
        levels: dict[int, list[Target]] = {}
        seen: dict[IPAddress, str] = {}
        for candidate, _, addresses in usable:
            level = levels.setdefault(candidate.preference, [])
            for address in addresses:
                listed = seen.get(address)  # one hash: IPv4Address.__hash__ is Python code
                if listed is not None:
                    if listed != candidate.name:
                        self._warn(
                            WarningCode.DUPLICATE_ADDRESS,
                            f"address {address} of {candidate.name} is already listed for {listed}",
                            candidate.name,
                        )
                    continue
                seen[address] = candidate.name
                level.append(Target(candidate.name, candidate.preference, address))
        ordered = [
            _family_order(levels[p], policy.families, policy.first_family_count)
            for p in sorted(levels)
            if levels[p]  # a level whose addresses were all listed already is empty
        ]
        for level in ordered:
            self._step("families", (_families_message, policy.families.value, level))
        targets = [t for level in ordered for t in level]
        limit = policy.max_addresses
        if limit is None or len(targets) <= limit:
            return targets
        self._step("limit", f"kept the first {limit} of {len(targets)} addresses (max_addresses)")
        # RFC 5321 §5.1: "there MAY also be a configurable limit on the number of alternate
        # addresses that can be tried" (Postfix smtp_mx_address_limit, Exim hosts_max_try).
        kept = targets[:limit]
        if policy.keep_one_per_preference:
            present = {t.preference for t in kept}
            kept += [level[0] for level in ordered if level[0].preference not in present]
        return kept

    def _addresses(self, chain: _Chain, host: str) -> tuple[list[IPAddress], str, bool]:
        """The addresses of one (host, family) lookup: (addresses, failure text, temporary)."""
        if chain.error is not None:
            return [], chain.error, True
        answer = chain.answer
        assert answer is not None
        if answer.status is Status.TEMPFAIL:
            return [], answer.reason or "failed", True
        if answer.status is Status.NXDOMAIN:
            return [], "NXDOMAIN", False
        if answer.status is Status.NODATA:
            return [], "NODATA", False
        version, cls = (6, _IPv6) if chain.rtype is RRType.AAAA else (4, _IPv4)
        # ``type(a) is cls``: the version test without the property call, for the usual types.
        good = [a for a in answer.addresses if type(a) is cls or a.version == version]
        if len(good) != len(answer.addresses):
            self._warn(
                WarningCode.BAD_ANSWER,
                f"the resolver answered {chain.rtype} for {host} with addresses of the wrong "
                "family; ignored",
                host,
            )
        if not good:
            # Records claimed but none usable: a resolver fault, not a DNS fact -- temporary.
            return [], f"the resolver answered without {chain.rtype} records", True
        return good, "", False

    def _literal(self, address: IPAddress) -> Selection:
        """Rule 1b -- RFC 5321 §4.1.3: an address literal is the single target; no DNS query.
        The policy still applies to it: this host's own address is a loop (OpenSMTPD#410), a
        family the policy disables is unusable (RFC 5321 §5.2), and an address in an unsafe
        network is refused like an MX host whose addresses are all unsafe (Exim's ipliteral
        router honours ``ignore_target_hosts``): a recipient ``user@[10.0.0.5]`` must not
        reach an internal host."""
        text = self.domain
        policy = self.policy
        self._step("literal", f"{text} is an address literal: the single target, no DNS query")
        if address in policy.local_addresses:
            raise MailLoopError(
                f"mail for {text} loops back to myself: the address literal is this host's address",
                domain=text,
            )
        why = _family_refusal(address, policy)
        if why is None:
            network = policy.unsafe_network_of(address)
            if network is not None:
                self._warn(
                    WarningCode.UNSAFE_ADDRESS,
                    f"address literal {text} is in the unsafe network {network} "
                    "(Policy.unsafe_networks); refused",
                    text,
                )
                why = f"it is in the unsafe network {network} (Policy.unsafe_networks)"
        if why is not None:
            raise NoUsableTargetsError(
                f"address literal {text} is not usable: {why}",
                domain=text,
                warnings=tuple(self._warnings),
            )
        host = Host(text, 0, (address,), text)
        self._step("outcome", f"1 target: {address}")
        return Selection(
            domain=text,
            canonical_domain=text,
            targets=(Target(text, 0, address),),
            hosts=(host,),
            address_literal=True,
            trace=cast("tuple[TraceStep, ...]", LazyTrace(tuple(self._trace))),
        )


class _Examined:
    """One exchange after its lookups: its addresses (all found, before any policy), its
    canonical name, why it has none, and whether that failure was temporary."""

    __slots__ = ("candidate", "canonical", "found", "temporary", "why")

    def __init__(
        self,
        candidate: _Candidate,
        found: list[IPAddress],
        canonical: str,
        why: str,
        temporary: bool,
    ) -> None:
        self.candidate = candidate
        self.found = found
        self.canonical = canonical
        self.why = why
        self.temporary = temporary


class _Candidate:
    """An exchange to resolve: its name, preference, and the address if the MX names one."""

    __slots__ = ("literal", "name", "preference")

    def __init__(self, name: str, preference: int, literal: IPAddress | None = None) -> None:
        self.name = name
        self.preference = preference
        self.literal = literal


def _ip_address(name: str) -> IPAddress | None:
    # Only digits and dots (IPv4) or a colon (IPv6) can parse: skip the exception otherwise.
    if ":" not in name and not name.replace(".", "").isdigit():
        return None
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _family_refusal(address: IPAddress, policy: Policy) -> str | None:
    """Why ``address`` cannot be used under the policy's families (RFC 5321 §5.2), or None."""
    version = 6 if type(address) is _IPv6 or address.version == 6 else 4
    if policy.wants_family(version):
        return None
    return (
        f"it is an IPv{version} address and the policy uses IPv{10 - version} only "
        f"(families={policy.families.value})"
    )


def _family_order(level: list[Target], families: Families, first_count: int) -> list[Target]:
    """Order one preference level's addresses by family; never across levels (RFC 3974 §3)."""
    six: list[Target] = []
    four: list[Target] = []
    for t in level:  # by address.version; ``type() is``: the same without the property call
        cls = type(t.address)
        if cls is _IPv6 or (cls is not _IPv4 and t.address.version == 6):
            six.append(t)
        elif cls is _IPv4 or t.address.version == 4:
            four.append(t)
    if families is Families.PREFER_IPV4:
        return four + six
    if families is not Families.ANY or not six or not four:
        return six + four
    # RFC 8305 §4: first_count addresses of the first family, then alternate.
    out = six[:first_count]
    rest6, rest4 = six[first_count:], four
    for i in range(max(len(rest6), len(rest4))):
        if i < len(rest4):
            out.append(rest4[i])
        if i < len(rest6):
            out.append(rest6[i])
    return out


# The trace messages, formatted only when a trace is read (SelectionPlan._step).


def _mx_message(domain: str, via: str, error: str | None, answer: Answer | None) -> str:
    return f"MX lookup for {domain}{via}: {_describe_mx(error, answer)}"


def _shuffled_message(preference: int, names: list[str]) -> str:
    return f"preference {preference}: shuffled to {', '.join(names)}"


def _lookup_message(name: str, canonical: str, found: list[IPAddress], why: str) -> str:
    via = f" (CNAME {canonical})" if canonical != name else ""
    shown = ", ".join(map(str, found)) if found else why
    return f"{name}{via}: {shown}"


def _families_message(families: str, level: list[Target]) -> str:
    return f"preference {level[0].preference}, families {families}: " + ", ".join(
        f"{t.host} {t.address!s}" for t in level
    )


def _describe_mx(error: str | None, answer: Answer | None) -> str:
    if error is not None:
        return error
    assert answer is not None
    if answer.status is Status.RECORDS:
        return ", ".join(f"{r.preference} {r.exchange}" for r in answer.mx) or "no records"
    if answer.status is Status.TEMPFAIL:
        return answer.reason or "failed"
    return answer.status.name


def _literal_text(address: IPAddress) -> str:
    if address.version == 6:
        return f"[IPv6:{address}]"
    return f"[{address}]"
