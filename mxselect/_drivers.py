"""The drivers: one short loop each that runs a :class:`SelectionPlan` against a resolver.

Both feed the same core, so they cannot disagree, and mirror each other line for line (as
dnspython's ``resolver.py`` and ``asyncresolver.py`` do). What a resolver can do, and how a
batch runs on it (threads or tasks, a batch method, the deadline), is the business of
``_resolvers``: a driver only asks its *port* for a batch's answers. ``asyncio`` and the
dnspython adapter are imported only when needed, keeping ``import mxselect`` light.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from ._core import SelectionPlan
from ._resolvers import async_port, sync_port

if TYPE_CHECKING:
    import random
    from collections.abc import Sequence

    from ._answers import Answer, Query
    from ._model import Selection
    from ._policy import Policy
    from .typing import AsyncResolver, Resolver

__all__ = ["aselect_targets", "select_targets"]


def _check_deadline(deadline: object) -> float | None:
    """The deadline in seconds (None: no deadline); bad values raise before any query."""
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, int | float):
        raise TypeError(f"deadline must be a number of seconds or None, got {deadline!r}")
    if not deadline > 0:  # also NaN
        raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}")
    return None if math.isinf(deadline) else float(deadline)


def _feed(
    plan: SelectionPlan,
    batch: Sequence[Query],
    answers: Sequence[Answer | None],
    deadline: float | None = None,
) -> None:
    """Feed what arrived; with answers missing (the deadline expired), end the plan: only
    temporary (nothing unanswered established anything)."""
    missing = False
    for query, answer in zip(batch, answers, strict=True):
        if answer is None:
            missing = True
        else:
            plan.feed(query, answer)
    if missing:
        plan.abandon(f"the deadline of {deadline:g} s expired before DNS answered")


def select_targets(
    domain: str,
    *,
    resolver: Resolver | Any | None = None,
    rng: random.Random | None = None,
    policy: Policy | None = None,
    deadline: float | None = None,
) -> Selection:
    """Select the hosts and addresses to try for mail to ``domain`` (RFC 5321 §5.1).

    Args:
        domain: the domain part of the recipient address: a U-label or A-label domain in any
            case, with or without a trailing dot, or an address literal (``[192.0.2.1]``,
            ``[IPv6:2001:db8::1]``).
        resolver: a :class:`mxselect.typing.Resolver`; a ``dns.resolver.Resolver``, used as is
            through the dnspython adapter; or ``None`` for the system configuration (absolute
            names, never the search list).
        rng: shuffles equal-preference hosts; seed it for reproducible results. ``None``: OS
            entropy (never the global ``random``).
        policy: the :class:`~mxselect.Policy` (families, limits, unsafe targets...); ``None``
            for the defaults.
        deadline: seconds the whole selection may take, all queries included; ``None``: no
            overall bound (each query is still bounded by the resolver's own timeouts). When
            it expires, :class:`DNSTemporaryError` names the queries still unanswered. Each
            query of the dnspython adapter gets the time left as its lifetime; the driver
            stops waiting at the deadline in any case.

    Returns:
        The :class:`~mxselect.Selection`; iterate over it for the targets in try order.

    Raises:
        InvalidDomainError: bad input (no DNS query is sent).
        NoSuchDomainError, NullMXError, NoUsableTargetsError: permanent -- bounce.
        DNSTemporaryError: temporary -- defer and retry (also: the deadline expired).
        ValueError, TypeError: ``deadline`` is not a positive number (no query is sent).
    """
    seconds = _check_deadline(deadline)
    plan = SelectionPlan(domain, rng=rng, policy=policy)
    if plan.done:
        return plan.result()
    port = sync_port(resolver)
    end = None if seconds is None else time.monotonic() + seconds
    while not plan.done:
        batch = plan.pending
        if end is None:
            _feed(plan, batch, port.answers(batch))
        else:
            _feed(plan, batch, port.answers_until(batch, end), seconds)
    return plan.result()


async def aselect_targets(
    domain: str,
    *,
    resolver: AsyncResolver | Resolver | Any | None = None,
    rng: random.Random | None = None,
    policy: Policy | None = None,
    deadline: float | None = None,
) -> Selection:
    """The asyncio twin of :func:`select_targets`: same arguments, same results.

    Each batch of queries (MX; then AAAA and A of every exchange) runs concurrently, so a cold
    selection costs two DNS round trips.

    Args:
        domain: as for :func:`select_targets`.
        resolver: a :class:`mxselect.typing.AsyncResolver`; a ``dns.asyncresolver.Resolver``
            (used as is); a synchronous resolver (run in threads); or ``None`` for the system
            configuration.
        rng, policy: as for :func:`select_targets`.
        deadline: as for :func:`select_targets`; at the deadline the queries still running
            are cancelled. Cancelling the task running ``aselect_targets`` cancels its
            queries too; nothing is left running.
    """
    import asyncio

    seconds = _check_deadline(deadline)
    plan = SelectionPlan(domain, rng=rng, policy=policy)
    if plan.done:
        return plan.result()
    port = async_port(resolver)
    end = None if seconds is None else asyncio.get_running_loop().time() + seconds
    while not plan.done:
        batch = plan.pending
        if end is None:
            _feed(plan, batch, await port.answers(batch))
        else:
            _feed(plan, batch, await port.answers_until(batch, end), seconds)
    return plan.result()
