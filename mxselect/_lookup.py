"""The lookup engine of the core: CNAME chains, the memo of answers, the query budget (pure).

:class:`Chain` follows one (name, type) lookup through the answers it is fed, link by link,
to an answer or an error (RFC 1034 §3.6.2: loops and over-long chains are errors).
:class:`Lookups` resolves a set of (name, type) keys as a generator: it yields one batch of
queries per CNAME step, never asks a question twice in one selection (the memo), and never
sends more queries than its budget. It knows nothing of MX rules (``_rules``) or of the plan's
API (``_core``).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable

from ._answers import Answer, Query, RRType, Security, Status, least_secure, make_query
from ._domain import check_ldh_name, normalize_exchange

__all__ = ["Batch", "Chain", "Key", "Lookups", "Received", "norm_ttl"]

Key = tuple[str, RRType]
Batch = tuple[Query, ...]
Received = list[Answer]  # the answers of a batch, in the batch's order


def norm_ttl(ttl: int | None) -> int | None:
    """RFC 2181 §8: a TTL with the most significant bit set is treated as zero."""
    if ttl is None:
        return None
    if ttl < 0 or ttl >= 2**31:
        return 0
    return ttl


class Chain:
    """One lookup (name, type) followed through its CNAME chain to an answer or an error."""

    __slots__ = (
        "aliased",
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
        # For the ALIAS answers this plan followed: (the status of the first one -- the
        # initial CNAME response of RFC 7672 §2.2.2 --, the least secure of them -- RFC 7672
        # §2.1.3: a chain is only as secure as its weakest link; see security()). None: none.
        self.aliased: tuple[Security, Security] | None = None

    @property
    def done(self) -> bool:
        return self.answer is not None or self.error is not None

    def absorb(self, answer: Answer) -> None:
        """Take one answer for ``(current, rtype)``; follow an ALIAS or finish."""
        ttl = norm_ttl(answer.ttl)
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
            # TLSA and TXT owner names have underscore labels (_25._tcp..., _mta-sts...): not
            # host names.
            why = (
                check_ldh_name(target)
                if self.rtype is not RRType.TLSA and self.rtype is not RRType.TXT
                else None
            )
            if why is not None:
                self.error = f"CNAME target {target!r} is not a valid host name: {why}"
                return
            self.canonical = target
        if answer.status is Status.ALIAS:
            assert target is not None
            aliased = self.aliased
            if aliased is None:
                self.aliased = (answer.security, answer.security)
            elif answer.security is not aliased[1]:
                self.aliased = (aliased[0], least_secure(aliased[1], answer.security))
            self.current = target
            return
        self.answer = answer

    def security(self) -> Security:
        """The DNSSEC status of the whole lookup: the least secure of its answers, the ALIAS
        answers followed included (RFC 7672 §2.1.3); ``UNKNOWN`` for a failure."""
        answer = self.answer
        final = answer.security if answer is not None else Security.UNKNOWN
        aliased = self.aliased
        if aliased is None or aliased[1] is final:
            return final
        return least_secure(aliased[1], final)

    @property
    def first_alias(self) -> Security | None:
        """The status of the first ALIAS answer followed (the initial CNAME response), or
        ``None`` when the resolver followed the CNAMEs itself (or there were none)."""
        return self.aliased[0] if self.aliased is not None else None


class Lookups:
    """The lookups of one selection: the memo of every answer fed, and the batches.

    Args:
        cname_limit: the longest CNAME chain followed (``Policy.cname_limit``).
        budget_text: how a lookup cut off by the budget explains itself.
    """

    __slots__ = ("budget_text", "cname_limit", "memo")

    def __init__(self, cname_limit: int, budget_text: str) -> None:
        self.cname_limit = cname_limit
        self.budget_text = budget_text
        self.memo: dict[Key, Answer] = {}

    def security(self, rtype: RRType) -> Security:
        """The least secure status of every answer of type ``rtype`` fed so far (RFC 7672
        §2.1.3: a CNAME chain is only as secure as its weakest link): for MX, the MX RRset and
        the CNAMEs leading to it, since the MX chain is the only MX lookup of a selection."""
        return least_secure(*(a.security for (_, t), a in self.memo.items() if t is rtype))

    def ask(self, keys: Iterable[Key]) -> Generator[Batch, Received, dict[Key, Answer]]:
        """Ask each (name, type) once, as is -- no CNAME is followed (the CNAME query of
        RFC 7672 §2.1.3 wants the record itself) -- in one batch; answers already in the memo
        are not asked again. Returns the answers by key."""
        memo = self.memo
        keys = list(dict.fromkeys(keys))
        wanted = [key for key in keys if key not in memo]
        if wanted:
            received = yield tuple([make_query(name + ".", rtype) for name, rtype in wanted])
            memo.update(zip(wanted, received, strict=True))
        return {key: memo[key] for key in keys}

    def resolve(
        self, keys: Iterable[Key], budget: int | None = None
    ) -> Generator[Batch, Received, tuple[dict[Key, Chain], int]]:
        """Resolve every (name, type) in one batch per CNAME step; never ask twice; never send
        more than ``budget`` queries (CNAME follow-ups included). Returns the chains and the
        number of queries sent."""
        limit = self.cname_limit
        chains = {(name, rtype): Chain(name, rtype, limit) for name, rtype in keys}
        memo = self.memo
        sent = 0
        # The chains not done yet (a done chain takes no more answers), in chain order.
        pending = list(chains.values())
        while True:
            # Each chain takes what is known, then asks for the rest (in chain order, once).
            wanted: dict[Key, None] = {}
            waiting: list[Chain] = []
            for chain in pending:
                while chain.answer is None and chain.error is None:
                    key = (chain.current, chain.rtype)
                    known = memo.get(key)
                    if known is None:
                        wanted[key] = None
                        waiting.append(chain)
                        break
                    chain.absorb(known)
            pending = waiting
            if budget is not None and sent + len(wanted) > budget:
                allowed = dict.fromkeys(list(wanted)[: max(0, budget - sent)])
                for chain in waiting:
                    if (chain.current, chain.rtype) not in allowed:
                        chain.error = self.budget_text
                pending = [chain for chain in waiting if chain.error is None]
                wanted = allowed
            if not wanted:
                return chains, sent
            sent += len(wanted)
            batch = tuple([make_query(name + ".", rtype) for name, rtype in wanted])
            received = yield batch
            memo.update(zip(wanted, received, strict=True))
