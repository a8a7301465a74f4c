"""SMTP TLS Reporting (RFC 8460) values the core needs: the ``_smtp._tls`` TXT record parser
and the report's result and policy types (pure: no I/O, no clock).

The public face is :mod:`mxselect.tlsrpt`, which re-exports these names and adds the
delivery-time events and the aggregate report.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence

__all__ = ["PolicyType", "ResultType", "parse_record"]


class ResultType(enum.Enum):
    """The result types of an RFC 8460 report's ``failure-details`` (RFC 8460 §4.3; the IANA
    "STARTTLS Validation Result Types" registry, RFC 8460 §6.6). The values are the registry
    strings."""

    # RFC 8460 §4.3.1, negotiation failures.
    #: "the recipient MX did not support STARTTLS" (RFC 8460 §4.3.1).
    STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
    #: "the certificate presented did not adhere to the constraints specified in the MTA-STS or
    #: DANE policy, e.g., if the MX hostname does not match any identities listed in the
    #: subject alternative name (SAN)" (RFC 8460 §4.3.1).
    CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
    #: "the certificate has expired" (RFC 8460 §4.3.1).
    CERTIFICATE_EXPIRED = "certificate-expired"
    #: "a label that covers multiple certificate-related failures that include, but are not
    #: limited to, errors such as untrusted/unknown certification authorities (CAs),
    #: certificate name constraints, certificate chain errors, etc." (RFC 8460 §4.3.1).
    CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
    #: "a general failure for a reason not matching a category above" (RFC 8460 §4.3.1).
    VALIDATION_FAILURE = "validation-failure"
    # RFC 8460 §4.3.2, policy failures (DANE).
    #: "a validation error in the TLSA record associated with a DANE policy. None of the
    #: records in the RRset were found to be valid" (RFC 8460 §4.3.2.1).
    TLSA_INVALID = "tlsa-invalid"
    #: "no valid records were returned from the recursive resolver" (a DNSSEC failure,
    #: RFC 8460 §4.3.2.1).
    DNSSEC_INVALID = "dnssec-invalid"
    #: "the sending system is configured to require DANE TLSA records for all the MX hosts of
    #: the destination domain, but no DNSSEC-validated TLSA records were present for the MX
    #: host" (RFC 8460 §4.3.2.1).
    DANE_REQUIRED = "dane-required"
    # RFC 8460 §4.3.2.2, policy failures (MTA-STS).
    #: "a failure to retrieve an MTA-STS policy, for example, because the policy host is
    #: unreachable" (RFC 8460 §4.3.2.2).
    STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
    #: "a validation error for the overall MTA-STS Policy" (RFC 8460 §4.3.2.2).
    STS_POLICY_INVALID = "sts-policy-invalid"
    #: "the MTA-STS Policy could not be authenticated using PKIX validation"
    #: (RFC 8460 §4.3.2.2).
    STS_WEBPKI_INVALID = "sts-webpki-invalid"

    def __str__(self) -> str:
        return self.value

    __hash__ = object.__hash__


class PolicyType(enum.Enum):
    """An RFC 8460 report's ``policy-type`` (RFC 8460 §4.4)."""

    #: A DANE TLSA policy (RFC 7672, RFC 6698).
    TLSA = "tlsa"
    #: An MTA-STS policy (RFC 8461).
    STS = "sts"
    #: "neither a DANE nor MTA-STS policy could be found" (RFC 8460 §4.4).
    NO_POLICY_FOUND = "no-policy-found"

    def __str__(self) -> str:
        return self.value

    __hash__ = object.__hash__


#: A record of this version: ``v=TLSRPTv1`` then a field delimiter (``*WSP ";"``) or the end
#: (RFC 8460 §3: the version is case-sensitive, ``%s"v=TLSRPTv1"``).
_VERSION = re.compile(r"v=TLSRPTv1[ \t]*(?:;|\Z)")
#: ``tlsrpt-ext-name`` (RFC 8460 §3).
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")
#: ``tlsrpt-ext-value``: ``%x21-3A / %x3C / %x3E-7E`` (RFC 8460 §3).
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+\Z")
#: A URI of the two schemes RFC 8460 §3 defines for ``rua`` (schemes are case-insensitive,
#: RFC 3986 §3.1): ``mailto:`` with an address (RFC 6068), ``https://`` with a host.
_MAILTO = re.compile(r"mailto:[^\s@,;!]+@[^\s@,;!]+\Z", re.I)
_HTTPS = re.compile(r"https://[^\s/?#,;!]+[^\s,;!]*\Z", re.I)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+\Z")


def parse_record(txt: Sequence[str]) -> tuple[str, ...] | None:
    """The reporting URIs of a domain's TLS-RPT policy, from its ``_smtp._tls.<domain>`` TXT
    records (RFC 8460 §3), or ``None`` when the domain has no usable policy.

    ``txt`` holds each TXT record's strings already concatenated (RFC 8460 §3: "the strings
    MUST be concatenated together without adding spaces"). The rules of RFC 8460 §3:

    * records that do not begin with ``v=TLSRPTv1`` (case-sensitive, followed by ``;`` or the
      end) are discarded; "If the number of resulting records is not one, senders MUST
      assume the recipient domain does not implement TLSRPT": ``None``;
    * fields are ``key=value`` separated by ``;`` with optional spaces or tabs around it, a
      trailing ``;`` allowed (``field-delim = *WSP ";" *WSP``); empty fields are skipped;
    * ``rua`` is required, exactly once: one or more URIs separated by ``,`` (with optional
      whitespace). Only ``mailto:`` (with an address) and ``https://`` (with a host) are
      defined; a URI of another scheme is ignored (as an unknown field would be), and a
      record left without a URI is ``None``. URIs are returned as written (not
      percent-decoded), in order, duplicates removed;
    * other fields are extensions and "SHALL be ignored" -- when syntactically valid
      (``tlsrpt-ext-name "=" tlsrpt-ext-value``); a malformed field (no ``=``, a bad name, a
      space inside a value) makes the record unusable: ``None``.

    Returns:
        the ``rua`` URIs, at least one, or ``None``.
    """
    records = [t for t in txt if _VERSION.match(t)]
    if len(records) != 1:
        return None
    fields = [f.strip(" \t") for f in records[0].split(";")[1:]]
    rua: list[str] | None = None
    for field in fields:
        if not field:
            continue
        key, eq, value = field.partition("=")
        if not eq:
            return None
        if key == "rua":
            if rua is not None:  # "rua" more than once
                return None
            uris = [u.strip(" \t") for u in value.split(",")]
            if not all(_SCHEME.match(u) for u in uris):
                return None  # an empty or malformed URI
            rua = [u for u in uris if _MAILTO.match(u) or _HTTPS.match(u)]
        elif key == "v" or not _EXT_NAME.match(key) or not _EXT_VALUE.match(value):
            return None  # a second version field, or a malformed extension
    if not rua:
        return None
    return tuple(dict.fromkeys(rua))
