"""The public error hierarchy of mxselect.

Every error says who is to blame and what an MTA should do with the message:

* :class:`PermanentError` -- bounce (a 5yz reply, a 5.x.x enhanced status).
* :class:`TemporaryError` -- keep the message queued and retry later (4yz, 4.x.x).

Each error carries the normalised ``domain``, an SMTP ``reply_code`` and an RFC 3463 enhanced
``status`` (mapping in ``rfc-checklist.md`` section O), a ``reason`` (what failed, where) and the
``warnings`` collected before the failure.

The mapping:

============================= ===== ======== ==============================================
error                         reply status   basis
============================= ===== ======== ==============================================
:class:`InvalidDomainError`   501   5.1.3    RFC 3463 §3.2 X.1.3 "syntactically invalid";
                                             501 as Postfix smtpd ("501 5.1.3 Bad recipient
                                             address syntax"): a syntax error in the argument
                                             of RCPT (RFC 5321 §4.2.2), nothing to look up.
:class:`NoSuchDomainError`    550   5.1.2    RFC 5321 §5.1 (NXDOMAIN MUST be an error),
                                             RFC 3463 §3.2 X.1.2
:class:`NullMXError`          556   5.1.10   RFC 7505 §4.1, RFC 7504 §4
:class:`NoUsableTargetsError` 550   5.4.4    RFC 5321 §5.1 (no usable MX / implicit MX),
                                             RFC 3463 §3.5 X.4.4
:class:`DNSTemporaryError`    451   4.4.3    RFC 5321 §5.1 (temporary error: queue and
                                             retry), RFC 3463 §3.5 X.4.3
:class:`MailLoopError`        554   5.4.6    RFC 5321 §5.1 (this host is the best MX: "MUST
                                             be returned as undeliverable"); Postfix
:class:`NoPrimaryRelayError`  451   4.4.4    this host is a backup MX and no better MX is
                                             usable now (Postfix)
============================= ===== ======== ==============================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._model import SelectionWarning, TraceStep
    from ._sts import StsPolicy

__all__ = [
    "DNSTemporaryError",
    "DaneRequiredError",
    "InvalidDomainError",
    "MXSelectError",
    "MailLoopError",
    "NoPrimaryRelayError",
    "NoSuchDomainError",
    "NoUsableTargetsError",
    "NullMXError",
    "PermanentError",
    "SecureDeliveryError",
    "StsPolicyError",
    "TemporaryError",
]


class MXSelectError(Exception):
    """Base class of every error mxselect raises on purpose.

    Attributes:
        domain: the recipient domain, normalised (lower-case A-label, no trailing dot); for an
            input that could not be normalised, the input as given (``repr`` if not a ``str``).
        reply_code: the SMTP reply code an MTA should use (e.g. ``550``, ``451``).
        status: the RFC 3463 enhanced status code (e.g. ``"5.1.2"``).
        reason: what failed, where, e.g. ``"MX lookup for example.org: SERVFAIL"``.
        warnings: misconfigurations noticed before the failure (see
            :class:`mxselect.SelectionWarning`).
        permanent: ``True`` for :class:`PermanentError`, ``False`` for :class:`TemporaryError`.
    """

    reply_code: int = 451
    status: str = "4.0.0"
    permanent: bool = False

    def __init__(
        self,
        reason: str,
        *,
        domain: str,
        warnings: tuple[SelectionWarning, ...] = (),
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.domain = domain
        self.warnings = warnings
        self._trace: Sequence[TraceStep] = ()

    @property
    def trace(self) -> Sequence[TraceStep]:
        """The decisions taken before the failure (set by the core; a
        :class:`~mxselect.Trace`, formatted when first read); see :meth:`explain`."""
        return self._trace

    @trace.setter
    def trace(self, value: Sequence[TraceStep]) -> None:
        self._trace = value

    def explain(self) -> str:
        """The decisions taken before the failure, as readable lines."""
        from ._model import explain

        return explain(self.trace)

    def __str__(self) -> str:
        return self.reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, domain={self.domain!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only constructor arguments: teach pickle (multiprocessing, task queues).
        # (a Trace pickles as its formatted steps)
        return (_rebuild, (type(self), self.reason, self.domain, self.warnings), self.__dict__)

    @property
    def smtp_reply(self) -> str:
        """The reply line an MTA can use as-is: ``"550 5.1.2 <reason>"``."""
        return f"{self.reply_code} {self.status} {self.reason}"


def _rebuild(
    cls: type[MXSelectError], reason: str, domain: str, warnings: tuple[SelectionWarning, ...]
) -> MXSelectError:
    return cls(reason, domain=domain, warnings=warnings)


class PermanentError(MXSelectError):
    """The message cannot be delivered to this domain: bounce it (5yz / 5.x.x)."""

    reply_code = 550
    status = "5.0.0"
    permanent = True


class TemporaryError(MXSelectError):
    """Delivery is not possible now; keep the message queued and retry (4yz / 4.x.x).

    RFC 5321 §5.1: "If a temporary error is returned, the message MUST be queued and retried
    later". mxselect never turns a temporary DNS failure into a :class:`PermanentError`.
    """

    reply_code = 451
    status = "4.0.0"
    permanent = False

    #: The default :attr:`retry_after`: RFC 5321 §4.5.4.1 "the retry interval SHOULD be at
    #: least 30 minutes".
    DEFAULT_RETRY_AFTER = 1800

    def __init__(
        self,
        reason: str,
        *,
        domain: str,
        warnings: tuple[SelectionWarning, ...] = (),
        retry_after: int | None = None,
    ) -> None:
        super().__init__(reason, domain=domain, warnings=warnings)
        #: Seconds to wait before retrying this destination: a hint for the MTA's queue
        #: (RFC 1123 §2.2: "MUST wait a reasonable interval between successive retries").
        self.retry_after = self.DEFAULT_RETRY_AFTER if retry_after is None else retry_after


class InvalidDomainError(PermanentError, ValueError):
    """The input is not a usable mail domain (syntax, length, IDNA, unsupported literal).

    Raised before any DNS query is sent. Also a :class:`ValueError`.
    """

    reply_code = 501
    status = "5.1.3"


class NoSuchDomainError(PermanentError):
    """The MX lookup answered NXDOMAIN (RFC 5321 §5.1, RFC 6604: also at the end of a CNAME
    chain). No A/AAAA fallback is tried."""

    reply_code = 550
    status = "5.1.2"


class NullMXError(PermanentError):
    """The domain publishes a null MX (RFC 7505): it accepts no mail."""

    reply_code = 556
    status = "5.1.10"


class NoUsableTargetsError(PermanentError):
    """MX records exist but none is usable, or the implicit MX has no address
    (RFC 5321 §5.1 "MUST be reported as an error"), and no lookup failed temporarily."""

    reply_code = 550
    status = "5.4.4"


class DNSTemporaryError(TemporaryError):
    """A DNS lookup needed to choose the targets failed temporarily (SERVFAIL, timeout,
    REFUSED, truncation without TCP, CNAME loop, resolver error): retry later."""

    reply_code = 451
    status = "4.4.3"


class MailLoopError(PermanentError):
    """This host is (among) the best MX of the domain, or the address literal is one of its
    own addresses: delivering would loop (RFC 5321 §5.1: "If there are no records left at that
    point, it is an error condition, and the message MUST be returned as undeliverable").

    554 5.4.6 as Postfix ("mail for X loops back to myself"); RFC 3463 calls X.4.6 transient,
    RFC 5321 §5.1 demands a bounce (checklist N9).
    """

    reply_code = 554
    status = "5.4.6"


class NoPrimaryRelayError(TemporaryError):
    """This host is a backup MX of the domain and none of the better MX hosts is usable now:
    keep the message and retry (Postfix "unable to find primary relay")."""

    reply_code = 451
    status = "4.4.4"


class DaneRequiredError(TemporaryError):
    """Mandatory DANE (:attr:`Dane.MANDATORY`) cannot be met now: the MX RRset is not
    DNSSEC-secure (RFC 7672 §2.2.1 "delivery MUST be delayed"), the resolver gives no DNSSEC
    status, or no host has usable secure TLSA records (RFC 7672 §6 "message delivery is
    delayed"). Temporary, as in Postfix (``dane-only``): never a bounce."""

    reply_code = 451
    status = "4.7.5"


class SecureDeliveryError(TemporaryError):
    """Every host that could be used was made unusable by a failed TLSA lookup (SERVFAIL,
    timeout, bogus...): RFC 7672 §2.1.2 "If no servers are reachable, delivery is delayed"
    (Postfix: "TLSA lookup error"). Temporary: never a bounce, never cleartext."""

    reply_code = 451
    status = "4.7.5"


class StsPolicyError(TemporaryError):
    """The recipient domain's MTA-STS policy is in mode enforce and no MX host matches it
    (RFC 8461 §5: "Sending MTAs MUST NOT deliver the message to hosts that fail MX matching").
    Temporary: RFC 8461 §5.1 forbids failing permanently "until the sender has first checked
    for the presence of a new policy" -- :attr:`recheck_policy` says so, and :attr:`policy_id`
    is the id of the policy that refused.

    RFC 8461 §6 asks for the failure to be reported with TLS-RPT: :attr:`sts_policy` is the
    policy that refused (for :meth:`mxselect.tlsrpt.ReportPolicy.sts`) and :attr:`tlsrpt` the
    domain's TLS-RPT ``rua`` URIs when ``Policy.tlsrpt`` asked for them (RFC 8460 §3)."""

    reply_code = 451
    status = "4.7.5"
    #: The MTA must look for a new policy (the ``_mta-sts`` TXT id) before it ever fails the
    #: message permanently (RFC 8461 §5.1).
    recheck_policy = True
    #: The id of the policy applied (its TXT record's ``id``), if known.
    policy_id: str | None = None
    #: The policy applied, if known.
    sts_policy: StsPolicy | None = None
    #: The recipient domain's TLS-RPT report URIs (``Policy.tlsrpt``; empty otherwise).
    tlsrpt: tuple[str, ...] = ()
