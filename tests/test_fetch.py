"""mxselect.fetch (RFC 8461 §3.3) against a real HTTPS server on loopback
(``tests/harness/https.py``), sync and async, and ``mxselect.testing.FakeFetcher``.

Scenario IDs from ``shared/secure-delivery.md`` §7: S16 (301 not followed), S17 (404/500),
S18 (content types), S19 (70 KiB body), S20 (timeout); then the certificate rules (valid for
``mta-sts.<domain>``, not expired, a trusted CA), HTTPS-only, and ``connect_to`` (no name is
ever resolved: every ``getaddrinfo`` call is recorded and must be for an IP literal).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("CI"):  # under CI=true every extra is installed: a missing one fails
    pytest.importorskip("httpx")

from harness.https import POLICY, WELL_KNOWN, PolicyServer, Site, closed_port

from mxselect import FetchResult, PolicyFetch
from mxselect.fetch import AsyncFetcher, Fetcher, HttpxFetcher
from mxselect.testing import FakeFetcher

SITES = {
    "good.test": Site(),
    "moved.test": Site(status=301, content_type="text/html", body=b"", location="https://x/"),
    "missing.test": Site(status=404, content_type="text/html", body=b"no"),
    "broken.test": Site(status=500, content_type="text/html", body=b"oops"),
    "html.test": Site(content_type="text/html"),
    "charset.test": Site(content_type="text/plain; charset=utf-8"),
    "notype.test": Site(content_type=None),
    "big.test": Site(body=b"x" * (70 * 1024)),
    "exact.test": Site(body=b"y" * 65536),
    "slow.test": Site(delay=5.0),
    "trickle.test": Site(body=b"z" * 4000, chunk=100, trickle=0.1),
    "wrongname.test": Site(cert="wrong-name"),
    "expired.test": Site(cert="expired"),
    "untrusted.test": Site(cert="untrusted"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolicyServer]:
    with PolicyServer(tmp_path_factory.mktemp("https"), SITES) as running:
        yield running


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host name given to ``socket.getaddrinfo`` during the test; each must be an IP
    literal (the tests resolve nothing)."""
    seen: list[str] = []
    real = socket.getaddrinfo

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(host))
        ipaddress.ip_address(host)  # a name: the test fails here
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    return seen


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


Fetch = Callable[..., FetchResult]


@pytest.fixture
def fetch(server: PolicyServer, api: str, lookups: list[str]) -> Fetch:
    """``fetch(domain, timeout=5, **fetcher_args)`` through HttpxFetcher (connect_to the
    server, the test CA trusted unless ``verify`` is given), sync or async."""

    def run(domain: str, timeout: float = 5.0, **kwargs: Any) -> FetchResult:
        kwargs.setdefault("connect_to", server.connect_to())
        kwargs.setdefault("verify", str(server.ca_file))
        fetcher = HttpxFetcher(**kwargs)
        request = PolicyFetch.for_domain(domain, timeout)
        if api == "sync":
            return fetcher.fetch(request)
        return asyncio.run(fetcher.afetch(request))

    return run


def requests_for(server: PolicyServer, domain: str) -> list[Any]:
    return [r for r in server.requests if r.host == f"mta-sts.{domain}"]


# -- success --------------------------------------------------------------------------------


def test_R8461_3_3_success_with_the_right_ca(
    fetch: Fetch, server: PolicyServer, lookups: list[str]
) -> None:
    """A certificate for ``mta-sts.<domain>`` from a trusted CA: the response as sent. The
    request went to the URL's host (SNI and Host), the well-known path, no compression; the
    connection went to 127.0.0.1 without resolving the name."""
    result = fetch("good.test")
    assert result == FetchResult.response(200, "text/plain", POLICY)
    request = requests_for(server, "good.test")[-1]
    assert (request.sni, request.path) == ("mta-sts.good.test", WELL_KNOWN)
    assert request.headers["Accept-Encoding"] == "identity"
    assert "mxselect" in request.headers["User-Agent"]
    # (the sync backend passes the literal to getaddrinfo, anyio does not call it at all)
    assert all(host == "127.0.0.1" for host in lookups)


# -- S16..S20 ---------------------------------------------------------------------------------


def test_S16_301_is_returned_not_followed(fetch: Fetch, server: PolicyServer) -> None:
    """RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed": the 301 is the result (the
    plan rejects it), and only one request was made."""
    before = len(server.requests)
    result = fetch("moved.test")
    assert (result.status, result.reason) == (301, "")
    assert len(server.requests) == before + 1


@pytest.mark.parametrize(("domain", "status"), [("missing.test", 404), ("broken.test", 500)])
def test_S17_404_and_500_are_responses(fetch: Fetch, domain: str, status: int) -> None:
    """Any status is a response (the plan: only 200 is a policy; never a bounce)."""
    result = fetch(domain)
    assert result == FetchResult.response(status, "text/html", SITES[domain].body)


@pytest.mark.parametrize(
    ("domain", "content_type"),
    [
        ("html.test", "text/html"),
        ("charset.test", "text/plain; charset=utf-8"),
        ("notype.test", ""),
    ],
)
def test_S18_content_type_returned_as_sent(fetch: Fetch, domain: str, content_type: str) -> None:
    """RFC 8461 §3.2 "SHOULD validate that the media type is text/plain" is the plan's
    check: the header comes back as sent, ``""`` when absent."""
    result = fetch(domain)
    assert (result.status, result.content_type, result.body) == (200, content_type, POLICY)


def test_S19_70_KiB_body_cut_at_max_bytes_plus_one(fetch: Fetch) -> None:
    """RFC 8461 §3.3 (64 kilobytes): reading stops after max_bytes + 1 octets -- one more
    shows the plan the policy is too long."""
    result = fetch("big.test")
    assert result.status == 200
    assert result.body == b"x" * (65536 + 1)


def test_S19_a_body_of_exactly_max_bytes_is_whole(fetch: Fetch) -> None:
    result = fetch("exact.test")
    assert result.body == b"y" * 65536


def test_S20_slow_server_exceeds_the_timeout(fetch: Fetch) -> None:
    """No response within the timeout: a failure naming it, in about the timeout."""
    started = time.monotonic()
    result = fetch("slow.test", timeout=0.5)
    elapsed = time.monotonic() - started
    assert result.status is None
    assert result.reason.startswith("timeout after 0.5 s"), result.reason
    assert elapsed < 2.0


def test_S20_trickled_body_exceeds_the_whole_fetchs_deadline(fetch: Fetch) -> None:
    """A body trickled in 100-octet chunks every 0.1 s (4 s in all): each read is well within
    httpx's per-phase timeout, yet the fetch as a whole must end at its 1 s deadline."""
    started = time.monotonic()
    result = fetch("trickle.test", timeout=1.0)
    elapsed = time.monotonic() - started
    assert result.status is None
    assert result.reason.startswith("timeout after 1 s"), result.reason
    assert elapsed < 2.0


# -- certificates (RFC 8461 §3.3: "valid for the "mta-sts" DNS-ID"; §4.2 via RFC 6125) -------


def test_R8461_3_3_certificate_for_another_name_fails_naming_it(fetch: Fetch) -> None:
    result = fetch("wrongname.test")
    assert result.status is None
    assert result.reason.startswith("TLS certificate error: Hostname mismatch"), result.reason
    assert "mta-sts.wrongname.test" in result.reason


def test_R8461_3_3_expired_certificate_fails_naming_it(fetch: Fetch) -> None:
    result = fetch("expired.test")
    assert result.reason == "TLS certificate error: certificate has expired"


def test_R8461_3_3_certificate_from_an_untrusted_ca_fails(fetch: Fetch) -> None:
    result = fetch("untrusted.test")
    assert result.status is None
    assert result.reason.startswith("TLS certificate error: "), result.reason
    assert "issuer" in result.reason


def test_the_default_trust_store_does_not_know_the_test_ca(fetch: Fetch) -> None:
    """``verify=True`` (the default bundle): the good site's test CA is not in it."""
    result = fetch("good.test", verify=True)
    assert result.reason.startswith("TLS certificate error: "), result.reason


def test_a_given_ssl_context_is_used_as_is(fetch: Fetch, server: PolicyServer) -> None:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    assert fetch("good.test", verify=context).status == 200


# -- transport errors, refusals, connect_to ---------------------------------------------------


def test_connection_refused_is_a_failure_naming_it(fetch: Fetch) -> None:
    port = closed_port()
    result = fetch("good.test", connect_to={"mta-sts.good.test": ("127.0.0.1", port)})
    assert result == FetchResult.failed("connection refused")


@pytest.mark.parametrize("api_", ["sync", "async"])
def test_R8461_3_3_https_to_mta_sts_only(api_: str, server: PolicyServer) -> None:
    """A request for another scheme or host is refused before anything is sent."""
    fetcher = HttpxFetcher(connect_to=server.connect_to(), verify=str(server.ca_file))
    before = len(server.requests)
    bad = [
        PolicyFetch("good.test", "http://mta-sts.good.test/.well-known/mta-sts.txt", 5.0),
        PolicyFetch("good.test", "https://www.good.test/.well-known/mta-sts.txt", 5.0),
        PolicyFetch("good.test", "not a url at all \x00", 5.0),
    ]
    for request in bad:
        result = fetcher.fetch(request) if api_ == "sync" else asyncio.run(fetcher.afetch(request))
        assert result.status is None
        assert result.reason, request
    assert "not an HTTPS URL" in fetcher.fetch(bad[0]).reason
    assert "is not 'mta-sts.good.test'" in fetcher.fetch(bad[1]).reason
    assert len(server.requests) == before


def test_with_connect_to_an_unmapped_host_is_never_resolved(
    fetch: Fetch, lookups: list[str]
) -> None:
    """connect_to given: only its hosts can be fetched; any other fails without a lookup."""
    result = fetch("elsewhere.test")
    assert result == FetchResult.failed(
        "mta-sts.elsewhere.test is not in connect_to (no name is resolved)"
    )
    assert lookups == []


def test_connect_to_takes_ip_literals_only() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        HttpxFetcher(connect_to={"mta-sts.example.org": ("localhost", 443)})


def test_fetchers_follow_the_protocols() -> None:
    for fetcher in (HttpxFetcher(), FakeFetcher()):
        assert isinstance(fetcher, Fetcher)
        assert isinstance(fetcher, AsyncFetcher)


def test_without_connect_to_a_resolution_failure_is_named(
    lookups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without connect_to the URL's host is resolved: a resolution failure is a failure
    naming it (getaddrinfo is stubbed: nothing is asked)."""

    def no_such_name(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    fetcher = HttpxFetcher()
    request = PolicyFetch.for_domain("example.invalid", 2.0)
    for result in (fetcher.fetch(request), asyncio.run(fetcher.afetch(request))):
        assert result.status is None
        assert result.reason.startswith("name resolution failed"), result.reason


# -- FakeFetcher ------------------------------------------------------------------------------


def test_fake_fetcher_answers_and_records(api: str) -> None:
    fake = FakeFetcher(
        {
            "example.org": "version: STSv1\n",
            "raw.example": b"\xff",
            "odd.example": FetchResult.failed("x"),
        },
        fail={"down.example": "connection refused"},
        redirect={"moved.example"},
    )

    def ask(domain: str, max_bytes: int = 65536) -> FetchResult:
        request = PolicyFetch.for_domain(domain, 60.0)
        if max_bytes != 65536:
            request = PolicyFetch(request.domain, request.url, request.timeout, max_bytes)
        return fake.fetch(request) if api == "sync" else asyncio.run(fake.afetch(request))

    assert ask("example.org") == FetchResult.response(200, "text/plain", b"version: STSv1\n")
    assert ask("raw.example").body == b"\xff"
    assert ask("odd.example") == FetchResult.failed("x")
    assert ask("down.example") == FetchResult.failed("connection refused")
    assert ask("moved.example").status == 301
    assert ask("nowhere.example").status == 404
    assert ask("example.org", max_bytes=4).body == b"versi"
    assert [r.domain for r in fake.fetches] == [
        "example.org",
        "raw.example",
        "odd.example",
        "down.example",
        "moved.example",
        "nowhere.example",
        "example.org",
    ]
    fake.policies["example.org"] = "version: STSv1\nmode: none\n"  # a new policy published
    assert ask("example.org").body.endswith(b"none\n")


def test_fake_fetcher_status_type_and_delay(api: str) -> None:
    fake = FakeFetcher({"example.org": "p"}, status=500, content_type="text/html", delay=0.05)
    request = PolicyFetch.for_domain("example.org", 1.0)
    started = time.monotonic()
    result = fake.fetch(request) if api == "sync" else asyncio.run(fake.afetch(request))
    assert time.monotonic() - started >= 0.05
    assert result == FetchResult.response(500, "text/html", b"p")
    slow = FakeFetcher({"example.org": "p"}, delay=10.0)
    short = PolicyFetch.for_domain("example.org", 0.05)
    result = slow.fetch(short) if api == "sync" else asyncio.run(slow.afetch(short))
    assert result == FetchResult.failed("timeout after 0.05 s")


def test_fake_fetcher_async_fetches_run_concurrently() -> None:
    fake = FakeFetcher({f"d{i}.example": "p" for i in range(5)}, delay=0.2)

    async def run() -> list[FetchResult]:
        return list(
            await asyncio.gather(
                *(fake.afetch(PolicyFetch.for_domain(f"d{i}.example", 5.0)) for i in range(5))
            )
        )

    started = time.monotonic()
    results = asyncio.run(run())
    assert time.monotonic() - started < 0.8
    assert all(r.status == 200 for r in results)
    assert len(fake.fetches) == 5


def test_policy_server_serves_by_host_and_404_elsewhere(tmp_path: Path) -> None:
    """The harness itself: an unknown path is 404."""
    with PolicyServer(tmp_path, {"a.test": Site()}) as server:
        context = ssl.create_default_context(cafile=str(server.ca_file))
        fetcher = HttpxFetcher(connect_to=server.connect_to(), verify=context)
        assert fetcher.fetch(PolicyFetch.for_domain("a.test", 5.0)).status == 200
        other = PolicyFetch("a.test", "https://mta-sts.a.test/other", 5.0)
        assert fetcher.fetch(other).status == 404
