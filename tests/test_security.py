"""What docs/security.md says mxselect never does, checked: no search list, no query type
but MX/A/AAAA, no additional-section data."""

from __future__ import annotations

from typing import Any

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest

import mxselect
from mxselect import NoSuchDomainError, RRType
from mxselect.dnspython import DnspythonResolver

ZONE = """
$ORIGIN corp.test.
$TTL 300
@         SOA ns hostmaster 1 3600 900 604800 60
intranet  MX  10 mx.corp.test.
mx        A   192.0.2.25
"""


@pytest.mark.e2e
def test_R5321_5_1_b_never_the_search_list(fault_server) -> None:  # type: ignore[no-untyped-def]
    """A resolver configured with a search list and a high ndots: a dotless domain is asked
    as the absolute name only ("intranet." -> NXDOMAIN), never as intranet.corp.test."""
    from harness.resolvers import make_dnspython_resolver

    server = fault_server(ZONE)
    resolver = make_dnspython_resolver(server.port, lifetime=5.0)  # the NXDOMAIN comes at once
    resolver.search = [dns.name.from_text("corp.test.")]
    resolver.use_search_by_default = True
    resolver.ndots = 5
    with pytest.raises(NoSuchDomainError):
        mxselect.select_targets("intranet", resolver=resolver)
    assert server.queries == [("intranet.", "MX", "udp")]


def test_only_mx_a_and_aaaa_are_ever_asked() -> None:
    """The query types mxselect knows: MX, A, AAAA, with DANE TLSA and CNAME, with MTA-STS and
    TLS-RPT TXT -- never ANY, WKS or PTR (RFC 1123 §5.2.12)."""
    assert {t.value for t in RRType} == {"MX", "A", "AAAA", "TLSA", "CNAME", "TXT"}


class AdditionalStuffer(dns.resolver.Resolver):
    """Answers MX with a hostile additional section (an address for the exchange that its A
    record does not have); answers A and AAAA from the data."""

    def __init__(self) -> None:
        super().__init__(configure=False)
        self.nameservers = ["127.0.0.1"]
        self.asked: list[tuple[str, str]] = []

    def resolve(self, qname: Any, rdtype: Any = None, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        name = qname if isinstance(qname, dns.name.Name) else dns.name.from_text(qname)
        rdtype = dns.rdatatype.RdataType.make(rdtype)
        self.asked.append((name.to_text(), dns.rdatatype.to_text(rdtype)))
        response = dns.message.make_response(dns.message.make_query(name, rdtype))
        if rdtype == dns.rdatatype.MX:
            response.answer.append(dns.rrset.from_text(name, 300, "IN", "MX", "10 mx.evil.test."))
            response.additional.append(
                dns.rrset.from_text("mx.evil.test.", 300, "IN", "A", "10.9.9.9")
            )
        elif rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(name, 300, "IN", "A", "192.0.2.44"))
        else:
            raise dns.resolver.NoAnswer(response=response)
        received = dns.message.from_wire(response.to_wire())
        return dns.resolver.Answer(name, rdtype, dns.rdataclass.IN, received, "127.0.0.1", 53)


def test_additional_section_is_never_used() -> None:
    """The MX response carries an A record for the exchange in its additional section: it is
    ignored; the exchange's address comes from mxselect's own A query."""
    stuffer = AdditionalStuffer()
    selection = mxselect.select_targets("evil.test", resolver=DnspythonResolver(stuffer))
    assert [str(a) for a in selection.addresses] == ["192.0.2.44"]
    assert ("mx.evil.test.", "A") in stuffer.asked
