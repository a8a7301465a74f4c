"""mxselect: RFC 5321 §5.1 MX target selection.

Given the domain of a recipient address, which hosts and IP addresses does a mail server try,
in what order -- or is it a permanent bounce or a temporary deferral?

    >>> import mxselect
    >>> selection = mxselect.select_targets("example.org")   # doctest: +SKIP
    >>> [(t.host, str(t.address)) for t in selection]         # doctest: +SKIP
"""

from __future__ import annotations

from ._answers import Answer, MXRecord, Query, RRType, Security, Status
from ._core import CNAME_CHAIN_LIMIT, SelectionPlan
from ._drivers import aselect_targets, select_targets
from ._model import Host, Selection, SelectionWarning, Target, Trace, TraceStep, WarningCode
from ._policy import DEFAULT_UNSAFE_NETWORKS as DEFAULT_UNSAFE_NETWORKS
from ._policy import Families, Policy
from .cache import CacheStats, CachingResolver
from .delivery import DeliveryPlan, DeliveryStatus, HostStatus
from .exceptions import (
    DNSTemporaryError,
    InvalidDomainError,
    MailLoopError,
    MXSelectError,
    NoPrimaryRelayError,
    NoSuchDomainError,
    NoUsableTargetsError,
    NullMXError,
    PermanentError,
    TemporaryError,
)
from .typing import AsyncResolver, Resolver

__version__ = "0.1.0.dev0"

__all__ = [
    "CNAME_CHAIN_LIMIT",
    "Answer",
    "AsyncResolver",
    "CacheStats",
    "CachingResolver",
    "DNSTemporaryError",
    "DeliveryPlan",
    "DeliveryStatus",
    "Families",
    "Host",
    "HostStatus",
    "InvalidDomainError",
    "MXRecord",
    "MXSelectError",
    "MailLoopError",
    "NoPrimaryRelayError",
    "NoSuchDomainError",
    "NoUsableTargetsError",
    "NullMXError",
    "PermanentError",
    "Policy",
    "Query",
    "RRType",
    "Resolver",
    "Security",
    "Selection",
    "SelectionPlan",
    "SelectionWarning",
    "Status",
    "Target",
    "TemporaryError",
    "Trace",
    "TraceStep",
    "WarningCode",
    "aselect_targets",
    "select_targets",
]
