"""MTA-STS (RFC 8461) as pure values and functions: the ``_mta-sts`` TXT record, the policy,
MX matching, and the cache decisions (no I/O, no clock: the time is passed in).

The plan (``_core``) uses them; the store that keeps entries across restarts and the fetcher
live outside the core (``mxselect.mtasts``, ``mxselect.fetch``).
"""

from __future__ import annotations

import enum

import attrs

__all__ = ["StsEntry", "StsMode", "StsPolicy", "StsRecord"]


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
    """

    mode: StsMode
    mx: tuple[str, ...] = ()
    max_age: int = 0
    text: str = ""


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
