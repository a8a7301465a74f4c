"""The aiodns adapter's error mapping (the e2e suite in test_e2e_unbound.py runs it against
Knot + Unbound): every c-ares outcome is classified like the dnspython adapter's."""

from __future__ import annotations

import asyncio
import os

import pytest

import mxselect
from mxselect import DNSTemporaryError, Query, RRType, Status

if not os.environ.get("CI"):  # in CI (.ci/run installs the extra) a missing aiodns fails
    pytest.importorskip("aiodns", reason="pip install -e '.[aiodns]'")
import aiodns.error
import pycares

from mxselect.aiodns import AiodnsResolver, answer_from_error

Q = Query("example.test.", RRType.MX)


def error(code: int) -> aiodns.error.DNSError:
    return aiodns.error.DNSError(code, pycares.errno.strerror(code))


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        (pycares.errno.ARES_ENOTFOUND, Status.NXDOMAIN, ""),
        (pycares.errno.ARES_ENODATA, Status.NODATA, ""),
        (pycares.errno.ARES_ESERVFAIL, Status.TEMPFAIL, "SERVFAIL from 127.0.0.1@53"),
        (pycares.errno.ARES_EREFUSED, Status.TEMPFAIL, "REFUSED from 127.0.0.1@53"),
        (pycares.errno.ARES_EFORMERR, Status.TEMPFAIL, "FORMERR from 127.0.0.1@53"),
        (pycares.errno.ARES_ETIMEOUT, Status.TEMPFAIL, "timeout after 4 s (127.0.0.1@53)"),
        (pycares.errno.ARES_ECONNREFUSED, Status.TEMPFAIL, "c-ares error 11: "),
    ],
)
def test_error_mapping(code: int, status: Status, reason: str) -> None:
    answer = answer_from_error(Q, error(code), servers="127.0.0.1@53", timeout=4)
    assert answer.status is status
    assert answer.reason.startswith(reason)


def test_negative_ttl_option_and_unknown_exceptions() -> None:
    nx = answer_from_error(Q, error(pycares.errno.ARES_ENOTFOUND), negative_ttl=60)
    assert (nx.status, nx.ttl) == (Status.NXDOMAIN, 60)
    other = answer_from_error(Q, RuntimeError("boom"))
    assert (other.status, other.reason) == (Status.TEMPFAIL, "RuntimeError: boom")


def test_R3463_3_5_b_nothing_listening_is_temporary() -> None:
    """No server on the port: a temporary 4.4.3, never a bounce."""

    async def run() -> None:
        async with AiodnsResolver(nameservers=["127.0.0.1"], port=9, timeout=0.2, tries=1) as r:
            await mxselect.aselect_targets("example.test", resolver=r)

    with pytest.raises(DNSTemporaryError) as info:
        asyncio.run(run())
    assert info.value.status == "4.4.3"
