"""The error hierarchy and the status-code mapping (checklist sections I and O)."""

from __future__ import annotations

import pickle
import random
import re

import pytest

import mxselect
from mxselect import (
    DNSTemporaryError,
    InvalidDomainError,
    MXSelectError,
    NoSuchDomainError,
    NoUsableTargetsError,
    NullMXError,
    PermanentError,
    TemporaryError,
)
from mxselect.testing import FakeResolver

ZONE = """
$ORIGIN example.org.
$TTL 300
@       SOA  ns hostmaster 1 3600 900 604800 60
@       MX   10 mx
mx      A    192.0.2.1
null    MX   0 .
nomx    TXT  "no mail here"
badmx   MX   10 gone
"""

MAPPING = [
    (InvalidDomainError, 501, "5.1.3", True),
    (NoSuchDomainError, 550, "5.1.2", True),
    (NullMXError, 556, "5.1.10", True),
    (NoUsableTargetsError, 550, "5.4.4", True),
    (DNSTemporaryError, 451, "4.4.3", False),
]


def outcome(domain: str, fail: str | None = None) -> MXSelectError:
    fake = FakeResolver.from_zone(ZONE)
    if fail:
        fake.fail(fail, None, "servfail")
    with pytest.raises(MXSelectError) as info:
        mxselect.select_targets(domain, resolver=fake, rng=random.Random(0))
    return info.value


@pytest.mark.parametrize(("cls", "reply", "status", "permanent"), MAPPING)
def test_section_O_mapping(
    cls: type[MXSelectError], reply: int, status: str, permanent: bool
) -> None:
    """Each error class carries the reply code and enhanced status of checklist section O."""
    assert (cls.reply_code, cls.status, cls.permanent) == (reply, status, permanent)
    assert issubclass(cls, PermanentError if permanent else TemporaryError)


def test_R5321_4_5_4_1_a_temporary_and_permanent_are_distinguishable() -> None:
    """Every outcome is either a TemporaryError (queue) or a PermanentError (bounce)."""
    cases = {
        "a_b": InvalidDomainError,
        "missing.example.org": NoSuchDomainError,
        "null.example.org": NullMXError,
        "nomx.example.org": NoUsableTargetsError,
        "badmx.example.org": NoUsableTargetsError,
    }
    for domain, cls in cases.items():
        error = outcome(domain)
        assert type(error) is cls
        assert isinstance(error, PermanentError) != isinstance(error, TemporaryError)
    assert type(outcome("example.org", fail="example.org")) is DNSTemporaryError


def test_R5321_4_2_1_a_4yz_for_retryable_5yz_for_permanent() -> None:
    """Reply class follows the error class: 4yz/4.x.x temporary, 5yz/5.x.x permanent."""
    for cls, reply, status, permanent in MAPPING:
        assert (reply // 100, status[0]) == ((5, "5") if permanent else (4, "4")), cls


def test_R3463_2_a_status_without_leading_zeros() -> None:
    """Enhanced status codes have no leading zeros in any sub-code ('5.1.10')."""
    for cls, *_ in MAPPING:
        assert re.fullmatch(r"[245]\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})", cls.status)


def test_R3463_2_b_and_R3463_2_c_class_matches_type() -> None:
    """All 4.x.x outcomes are TemporaryError, all 5.x.x PermanentError."""
    for cls, *_ in MAPPING:
        assert issubclass(cls, TemporaryError) == cls.status.startswith("4.")


def test_R3463_3_2_a_nxdomain_is_5_1_2_and_R3463_3_2_b_never_4_1_2() -> None:
    """NXDOMAIN on the recipient domain is 5.1.2; 4.1.2 is never produced."""
    assert outcome("missing.example.org").status == "5.1.2"
    assert all(cls.status != "4.1.2" for cls, *_ in MAPPING)


def test_R3463_3_2_c_syntax_error_is_5_1_3() -> None:
    """A syntax error in the domain is 5.1.3, permanent, with no DNS query."""
    fake = FakeResolver.from_zone(ZONE)
    with pytest.raises(InvalidDomainError) as info:
        mxselect.select_targets("ex_ample.org", resolver=fake)
    assert (info.value.status, fake.queries) == ("5.1.3", [])


def test_R3463_3_5_a_dns_failure_is_4_4_3_never_5_4_3() -> None:
    """SERVFAIL/timeout/REFUSED are 4.4.3; no error class uses 5.4.3."""
    assert outcome("example.org", fail="example.org").status == "4.4.3"
    assert all(cls.status != "5.4.3" for cls, *_ in MAPPING)


def test_R3463_3_5_c_and_R3463_3_5_d_no_route_is_5_4_4() -> None:
    """Only an SOA for the MX and no address for the implicit MX: 5.4.4 (unable to route)."""
    assert outcome("nomx.example.org").status == "5.4.4"


def test_R7672_2_1_2_a_mx_lookup_failure_delays_delivery() -> None:
    """An error during MX resolution delays the message (temporary)."""
    assert isinstance(outcome("example.org", fail="example.org"), TemporaryError)


def test_error_messages_say_what_failed_where() -> None:
    """The reason names the lookup and the domain: 'MX lookup for example.org: SERVFAIL'."""
    error = outcome("example.org", fail="example.org")
    assert str(error) == "MX lookup for example.org: SERVFAIL (fake)"
    assert error.domain == "example.org"
    assert error.smtp_reply == "451 4.4.3 MX lookup for example.org: SERVFAIL (fake)"


def test_R1123_2_2_a_and_R5321_4_5_4_1_b_temporary_errors_carry_a_retry_hint() -> None:
    """A temporary error carries a retry-after hint, 30 minutes by default, adjustable."""
    error = outcome("example.org", fail="example.org")
    assert isinstance(error, TemporaryError)
    assert error.retry_after == 1800
    assert DNSTemporaryError("x", domain="d", retry_after=300).retry_after == 300
    clone = pickle.loads(pickle.dumps(DNSTemporaryError("x", domain="d", retry_after=60)))
    assert clone.retry_after == 60


def test_errors_pickle_round_trip() -> None:
    """Errors survive pickling (task queues, multiprocessing) with their attributes."""
    error = outcome("null.example.org")
    clone = pickle.loads(pickle.dumps(error))
    assert (type(clone), clone.reason, clone.domain, clone.status) == (
        NullMXError,
        error.reason,
        "null.example.org",
        "5.1.10",
    )


def test_invalid_domain_error_is_also_a_value_error() -> None:
    """InvalidDomainError is a ValueError too, for callers that catch bad input generically."""
    with pytest.raises(ValueError, match="invalid domain"):
        mxselect.select_targets("a..b", resolver=FakeResolver())


def test_R6531_3_2_b_full_ordered_list_available() -> None:
    """The whole ordered list is returned, so a caller can move on to the next MX."""
    fake = FakeResolver.from_zone(ZONE + "multi MX 10 mx\nmulti MX 20 mx2\nmx2 A 192.0.2.2\n")
    selection = mxselect.select_targets("multi.example.org", resolver=fake)
    assert [h.name for h in selection.hosts] == ["mx.example.org", "mx2.example.org"]
