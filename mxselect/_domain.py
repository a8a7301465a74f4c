"""Domain and address-literal normalisation (pure; no I/O).

Rules implemented here:

* RFC 5321 §2.3.5 / §5.1: names are absolute; a dotless (TLD) domain is allowed; one trailing
  dot is accepted and removed (the canonical internal form has none).
* RFC 5321 §4.1.2 (LDH: letters, digits, hyphen; no underscore), RFC 1035 §3.1 / RFC 2181 §11:
  labels of 1..63 octets, at most 253 characters of dotted text (255 octets on the wire).
* RFC 6531 §3.2, RFC 5891: U-labels are converted to lower-case A-labels with IDNA2008 (the
  ``idna`` package), after UTS #46 non-transitional mapping (case folding, NFC, full-width
  forms: RFC 5891 §5.2 leaves mapping to local policy). A-labels given as input are validated
  (RFC 5891 §5.3: decoded and re-encoded; ``xn--zz`` is rejected).
* RFC 5321 §4.1.3: address literals ``[192.0.2.1]`` and ``[IPv6:2001:db8::1]``; the ``IPv6:``
  tag is case-insensitive (RFC 5234 quoted strings); other tags are rejected (no registered
  Standardized-tag is supported). IPv4 octets with leading zeros and IPv6 zone indexes are
  rejected (ambiguous, not in the ABNF).
* A bare IP address (``192.0.2.1`` without brackets) is rejected with a hint: a name whose last
  label is all-numeric is not a valid host name.
"""

from __future__ import annotations

import ipaddress
import re

import idna

from .exceptions import InvalidDomainError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_NAME_LENGTH = 253  # characters of dotted text = 255 octets on the wire (RFC 1035 §3.1)
MAX_LABEL_LENGTH = 63

_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_NUMERIC_TLD = re.compile(r"[0-9]+\Z")
# Fast paths (the checks below decide; tests/test_fast_paths.py compares them): a whole name
# of LDH labels in one match, and input of only ASCII letters, digits, dots and hyphens.
_LDH_NAME = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z"
)
_PLAIN_INPUT = re.compile(r"[A-Za-z0-9.-]+\Z")


def _fail(domain: object, why: str) -> InvalidDomainError:
    shown = domain if isinstance(domain, str) else repr(domain)
    return InvalidDomainError(f"invalid domain {shown!r}: {why}", domain=shown)


def check_ldh_name(name: str) -> str | None:
    """Return why the lower-case ASCII ``name`` (no trailing dot) is not an LDH host name.

    Returns ``None`` for a valid name. Used for the recipient domain after IDNA and for MX
    exchanges, which must already be A-labels in the DNS (RFC 5891 §3.2).
    """
    if (
        len(name) <= MAX_NAME_LENGTH
        and _LDH_NAME.match(name)
        and not _NUMERIC_TLD.match(name, name.rfind(".") + 1)
    ):
        return None  # valid: what the label by label checks below conclude
    if not name:
        return "empty name"
    if len(name) > MAX_NAME_LENGTH:
        return f"name is {len(name)} characters long, the limit is {MAX_NAME_LENGTH}"
    labels = presentation_labels(name) if "\\" in name else name.split(".")
    for label in labels:
        if not label:
            return "empty label"
        octets = _label_octets(label) if "\\" in label else len(label)
        if octets > MAX_LABEL_LENGTH:
            return f"label '{label[:20]}'... is {octets} octets long, the limit is 63"
        if not _LDH_LABEL.match(label):
            # The label as it is in DNS presentation format (RFC 1035 §5.1: ``\.`` is a dot
            # inside a label, ``\DDD`` an octet), not a Python repr of it.
            return (
                f"label '{label}' is not letters, digits and hyphens "
                "(RFC 5321 §4.1.2; no leading or trailing hyphen, no underscore)"
            )
    if _NUMERIC_TLD.match(labels[-1]):
        return "the last label is all-numeric (an IP address must be written as [192.0.2.1])"
    return None


def presentation_labels(name: str) -> list[str]:
    """The labels of a name in DNS presentation format (RFC 1035 §5.1), split at the dots
    that are not escaped; each label keeps its escapes (``mx\\.x.example`` is the two labels
    ``mx\\.x`` and ``example``)."""
    labels: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(name):
        char = name[i]
        if char == "\\":
            width = 4 if name[i + 1 : i + 4].isdigit() and len(name[i + 1 : i + 4]) == 3 else 2
            current.append(name[i : i + width])
            i += width
            continue
        if char == ".":
            labels.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    labels.append("".join(current))
    return labels


def _label_octets(label: str) -> int:
    """How many octets a presentation-format label stands for (an escape is one octet)."""
    count = i = 0
    while i < len(label):
        if label[i] == "\\":
            i += 4 if label[i + 1 : i + 4].isdigit() and len(label[i + 1 : i + 4]) == 3 else 2
        else:
            i += 1
        count += 1
    return count


def parse_address_literal(text: str) -> IPAddress:
    """Parse an RFC 5321 §4.1.3 address literal (with its brackets) into an address.

    Raises:
        InvalidDomainError: malformed literal or an unsupported tag.
    """
    inner = text[1:-1]
    tag, sep, rest = inner.partition(":")
    if sep and tag.lower() == "ipv6":
        if "%" in rest:
            raise _fail(text, "IPv6 zone indexes are not allowed in an address literal")
        try:
            address = ipaddress.IPv6Address(rest)
        except ValueError:
            raise _fail(text, "malformed IPv6 address literal") from None
        if "::" in rest:
            # RFC 5321 §4.1.3 IPv6-comp / IPv6v4-comp: '"::" represents at least 2 16-bit
            # groups of zeros'; at most 6 (4 before an IPv4 part) other groups.
            groups = [g for g in rest.split(":") if g]
            limit = 5 if groups and "." in groups[-1] else 6
            if len(groups) > limit:
                raise _fail(text, '"::" must stand for at least two groups (RFC 5321 §4.1.3)')
        return address
    if sep:
        # Could be an untagged IPv6 address ("[2001:db8::1]") or another tag.
        if all(c in "0123456789abcdefABCDEF:." for c in inner):
            raise _fail(text, 'an IPv6 address literal needs the "IPv6:" tag (RFC 5321 §4.1.3)')
        raise _fail(text, f"unsupported address literal tag {tag!r} (RFC 5321 §4.1.3)")
    try:
        return ipaddress.IPv4Address(inner)
    except ValueError:
        raise _fail(text, "malformed IPv4 address literal (four numbers 0-255)") from None


def normalize_domain(domain: object) -> str | IPAddress:
    """Normalise a recipient domain to a lower-case A-label without a trailing dot.

    Address literals return the parsed address instead.

    Raises:
        InvalidDomainError: the input is not a usable mail domain. No DNS query was made.
    """
    if not isinstance(domain, str):
        raise _fail(domain, f"expected a str, got {type(domain).__name__}")
    if not domain:
        raise _fail(domain, "empty domain")
    if "@" in domain:
        raise _fail(
            domain, "contains '@': pass the domain part of the address, not the whole address"
        )
    if len(domain) <= 4 * MAX_NAME_LENGTH and _PLAIN_INPUT.match(domain):
        # ASCII letters, digits, dots, hyphens: no '@', literal, white space or control
        # character to reject, nothing for IDNA to map.
        name = domain.lower()
        return _finish(domain, name[:-1] if name.endswith(".") else name)
    if domain[0] == "[" and domain[-1] == "]" and len(domain) > 2:
        return parse_address_literal(domain)
    if domain != domain.strip() or any(c.isspace() for c in domain):
        raise _fail(domain, "contains white space")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in domain):
        raise _fail(domain, "contains control characters")
    if len(domain) > 4 * MAX_NAME_LENGTH:
        # No valid name is this long even before IDNA; do not feed huge strings to idna.
        raise _fail(domain, f"name is {len(domain)} characters long, the limit is 253")
    if domain.isascii():
        name = domain.lower()
    else:
        try:
            # UTS #46 mapping (case folding, NFC, full-width forms; it may also turn a
            # trailing U+3002 or U+FF0E into the trailing dot).
            name = idna.uts46_remap(domain, std3_rules=True, transitional=False)
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise _fail(domain, f"not a valid internationalized domain name: {exc}") from None
    name = name[:-1] if name.endswith(".") else name  # exactly one trailing dot
    if not name.isascii():
        try:
            # IDNA2008 for the U-labels only; ASCII labels follow the LDH rules below, the
            # same whether or not a U-label stands beside them (checklist N17).
            name = ".".join(
                label if label.isascii() else idna.alabel(label).decode("ascii")
                for label in name.split(".")
            )
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise _fail(
                domain, f"not a valid internationalized domain name (IDNA2008): {exc}"
            ) from None
    return _finish(domain, name)


def _finish(domain: str, name: str) -> str:
    """The checks of the ASCII name (trailing dot removed) of ``domain``."""
    if not name:
        raise _fail(domain, "the root domain is not a mail domain")
    why = check_ldh_name(name)
    if why is None and "xn--" in name:
        why = _check_a_labels(name)
    if why is not None:
        raise _fail(domain, why)
    return name


def _check_a_labels(name: str) -> str | None:
    """RFC 5891 §5.3: an A-label must decode to a valid U-label that encodes back to itself."""
    for label in name.split("."):
        if not label.startswith("xn--"):
            continue
        try:
            ulabel = idna.decode(label)
            back = idna.encode(ulabel).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            return f"label {label!r} is not a valid A-label: {exc}"
        if back != label:
            return f"label {label!r} is not a valid A-label (does not round-trip)"
    return None


def normalize_exchange(text: str) -> str:
    """Lower-case an exchange/owner name from the DNS and drop one trailing dot.

    ``"."`` and ``""`` both become ``""`` (the root name, i.e. a null MX exchange).
    """
    name = text.lower()
    if name.endswith("."):
        name = name[:-1]
    return name
