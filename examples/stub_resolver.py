"""A complete custom resolver for mxselect in about twenty lines (shown in docs/howto/resolver.md).

It asks one DNS server directly with dnspython's low-level ``dns.query`` (UDP, then TCP when
the answer is truncated) and reports each outcome as an ``mxselect.Answer``. Any DNS client
your MTA already has can be wrapped the same way.
"""

from __future__ import annotations

import dns.message
import dns.query
import dns.rcode

from mxselect import Answer, Query, RRType


class StubResolver:
    def __init__(self, server: str, port: int = 53, timeout: float = 3.0) -> None:
        self.server, self.port, self.timeout = server, port, timeout

    def resolve(self, query: Query) -> Answer:
        request = dns.message.make_query(query.name, query.rtype.value)
        try:
            response, _ = dns.query.udp_with_fallback(
                request, self.server, timeout=self.timeout, port=self.port
            )
        except Exception as exc:  # timeout, unreachable, TCP refused: try again later
            return Answer.tempfail(f"{type(exc).__name__}: {exc}")
        assert isinstance(response, dns.message.QueryMessage)
        if response.rcode() == dns.rcode.NXDOMAIN:
            return Answer.nxdomain()
        if response.rcode() != dns.rcode.NOERROR:  # SERVFAIL, REFUSED, FORMERR...
            return Answer.tempfail(dns.rcode.to_text(response.rcode()))
        chain = response.resolve_chaining()
        rrset, name = chain.answer, chain.canonical_name.to_text()
        if rrset is None:
            return Answer.nodata(canonical_name=name, ttl=chain.minimum_ttl)
        if query.rtype is RRType.MX:
            mx = [(r.preference, r.exchange.to_text()) for r in rrset]
            return Answer.from_mx(mx, canonical_name=name, ttl=chain.minimum_ttl)
        addresses = [r.address for r in rrset]
        return Answer.from_addresses(addresses, canonical_name=name, ttl=chain.minimum_ttl)


if __name__ == "__main__":
    import sys

    import mxselect

    server, _, port = sys.argv[2].partition(":") if len(sys.argv) > 2 else ("127.0.0.1", "", "")
    resolver = StubResolver(server, int(port or 53))
    for target in mxselect.select_targets(sys.argv[1], resolver=resolver):
        print(target)
