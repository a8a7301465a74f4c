"""mxselect: RFC 5321 §5.1 MX target selection.

Given the domain of a recipient address, which hosts and IP addresses does a mail server try,
in what order -- or is it a permanent bounce or a temporary deferral?

    >>> import mxselect
    >>> selection = mxselect.select_targets("example.org")   # doctest: +SKIP
    >>> [(t.host, str(t.address)) for t in selection]         # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._answers import (
    Answer,
    FetchResult,
    MXRecord,
    PolicyFetch,
    Query,
    RRType,
    Security,
    Status,
    TLSARecord,
)
from ._core import CNAME_CHAIN_LIMIT, SelectionPlan
from ._drivers import aselect_targets, select_targets
from ._model import (
    OPPORTUNISTIC_TLS,
    Host,
    Posture,
    Selection,
    SelectionWarning,
    Target,
    TlsRequirement,
    Trace,
    TraceStep,
    WarningCode,
)
from ._policy import DEFAULT_UNSAFE_NETWORKS, Dane, Families, InsecureMX, Policy
from ._sts import StsEntry, StsMode, StsPolicy, StsRecord
from .cache import CacheStats, CachingResolver
from .delivery import Attempt, DeliveryPlan, DeliveryStatus, HandshakeStage, HostStatus, Outcome
from .exceptions import (
    DaneRequiredError,
    DNSTemporaryError,
    InvalidDomainError,
    MailLoopError,
    MXSelectError,
    NoPrimaryRelayError,
    NoSuchDomainError,
    NoUsableTargetsError,
    NullMXError,
    PermanentError,
    SecureDeliveryError,
    StsPolicyError,
    TemporaryError,
)
from .typing import AsyncResolver, Resolver

if TYPE_CHECKING:
    #: The installed distribution's version (``pyproject.toml`` is the one place it is set).
    __version__: str
else:

    def __getattr__(name: str) -> str:
        # The version is read from the package metadata on first use: importlib.metadata
        # costs ~25 ms and loads socket, which `import mxselect` must not.
        if name != "__version__":
            raise AttributeError(f"module 'mxselect' has no attribute {name!r}")
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("mxselect")
        except PackageNotFoundError:  # a source tree on sys.path, never installed
            value = "0+unknown"
        globals()["__version__"] = value
        return value


__all__ = [
    "CNAME_CHAIN_LIMIT",
    "DEFAULT_UNSAFE_NETWORKS",
    "OPPORTUNISTIC_TLS",
    "Answer",
    "AsyncResolver",
    "Attempt",
    "CacheStats",
    "CachingResolver",
    "DNSTemporaryError",
    "Dane",
    "DaneRequiredError",
    "DeliveryPlan",
    "DeliveryStatus",
    "Families",
    "FetchResult",
    "HandshakeStage",
    "Host",
    "HostStatus",
    "InsecureMX",
    "InvalidDomainError",
    "MXRecord",
    "MXSelectError",
    "MailLoopError",
    "NoPrimaryRelayError",
    "NoSuchDomainError",
    "NoUsableTargetsError",
    "NullMXError",
    "Outcome",
    "PermanentError",
    "Policy",
    "PolicyFetch",
    "Posture",
    "Query",
    "RRType",
    "Resolver",
    "SecureDeliveryError",
    "Security",
    "Selection",
    "SelectionPlan",
    "SelectionWarning",
    "Status",
    "StsEntry",
    "StsMode",
    "StsPolicy",
    "StsPolicyError",
    "StsRecord",
    "TLSARecord",
    "Target",
    "TemporaryError",
    "TlsRequirement",
    "Trace",
    "TraceStep",
    "WarningCode",
    "aselect_targets",
    "select_targets",
]
