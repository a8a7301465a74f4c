"""Checklist section A (input domain: syntax, length, address literals, IDN) through the API.

Every test drives ``mxselect.select_targets`` (or ``aselect_targets``) with a
``mxselect.testing.FakeResolver`` and checks the exact DNS queries it was asked; a few also
call ``mxselect._domain.normalize_domain`` directly. Every rejection asserts that no query
was sent (checklist section O: "permanent, no DNS", 5.1.3).
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest

import mxselect
from mxselect import (
    InvalidDomainError,
    NoSuchDomainError,
    PermanentError,
    Query,
    RRType,
    Selection,
    Target,
    WarningCode,
)
from mxselect._domain import normalize_domain
from mxselect.testing import FakeResolver

MX_ADDRESS = "192.0.2.25"


def mx_zone(*domains: str, exchange: str = "mx.example.net") -> dict[str, dict[str, Any]]:
    """Records giving each A-label domain in ``domains`` one MX host with one address."""
    records: dict[str, dict[str, Any]] = {name: {"MX": [(10, exchange)]} for name in domains}
    records[exchange] = {"A": [MX_ADDRESS]}
    return records


def select(domain: object, records: dict[str, dict[str, Any]]) -> tuple[Selection, FakeResolver]:
    fake = FakeResolver(records)
    selection = mxselect.select_targets(domain, resolver=fake)  # type: ignore[arg-type]
    return selection, fake


def rejected(domain: object) -> InvalidDomainError:
    """Assert ``domain`` is rejected as invalid input with no DNS query; return the error."""
    # The fake knows the names the input might be turned into, so a lookup would succeed.
    fake = FakeResolver(mx_zone("example.com", "intranet", "a.example"))
    with pytest.raises(InvalidDomainError) as info:
        mxselect.select_targets(domain, resolver=fake)  # type: ignore[arg-type]
    assert fake.queries == []
    assert info.value.status == "5.1.3"
    assert info.value.reply_code == 501
    return info.value


def mx_query(name: str) -> Query:
    return Query(name, RRType.MX)


def label_name(total: int, label: int = 63) -> str:
    """A dotted name of exactly ``total`` characters made of labels of at most ``label``."""
    labels: list[str] = []
    letters = "abcdefghijklmnopqrstuvwxyz"
    remaining = total
    while remaining > 0:
        size = min(label, remaining)
        if remaining - size == 1:  # never leave room for only a dot
            size -= 1
        labels.append(letters[len(labels) % 26] * size)
        remaining -= size + 1
    name = ".".join(labels)
    assert len(name) == total
    return name


# -- RFC 5321 §2.3.5: absolute names, dotless TLD ------------------------------------------


def test_R5321_2_3_5_a_query_is_absolute_never_search_list() -> None:
    """R5321-2.3.5-a: 'intranet' is asked as the absolute 'intranet.' and nothing else."""
    fake = FakeResolver(mx_zone("intranet.corp.example"))
    with pytest.raises(NoSuchDomainError):
        mxselect.select_targets("intranet", resolver=fake)
    assert fake.queries == [mx_query("intranet.")]


def test_R5321_2_3_5_a_absolute_name_result_is_used() -> None:
    """R5321-2.3.5-a: the result is what the absolute name 'intranet.' yields."""
    records = mx_zone("intranet.corp.example", exchange="wrong.example.net")
    records.update(mx_zone("intranet", exchange="mx.intranet"))
    selection, fake = select("intranet", records)
    assert [h.name for h in selection.hosts] == ["mx.intranet"]
    assert fake.queries[0] == mx_query("intranet.")
    assert all(not q.name.endswith("corp.example.") for q in fake.queries)


def test_R5321_2_3_5_b_dotless_tld_accepted() -> None:
    """R5321-2.3.5-b: a dotless (TLD) domain is not rejected on syntax and gives its MX."""
    selection, fake = select(
        "tld", {"tld": {"MX": [(10, "mx.nic.tld")]}, "mx.nic.tld": {"A": ["192.0.2.1"]}}
    )
    assert selection.targets == (Target("mx.nic.tld", 10, ipaddress.ip_address("192.0.2.1")),)
    assert selection.domain == "tld"
    assert fake.queries[0] == mx_query("tld.")


# -- RFC 5321 §4.1.2: LDH syntax ---------------------------------------------------------


@pytest.mark.parametrize(
    "domain",
    [
        "ex_ample.com",
        "_dmarc.example.com",
        "-a.example",
        "a-.example",
        "example.-com",
        "a..example",
        ".example.com",
        "example.com..",
        "ex!ample.com",
        "ex/ample.com",
        "ex*ample.com",
    ],
)
def test_R5321_4_1_2_a_non_ldh_labels_rejected(domain: str) -> None:
    """R5321-4.1.2-a: underscore, leading/trailing hyphen, empty label -> 5.1.3, no query."""
    error = rejected(domain)
    assert error.permanent is True


def test_R5321_4_1_2_a_underscore_rejected_in_u_label_domain_too() -> None:
    """R5321-4.1.2-a: an underscore is rejected even next to non-ASCII labels (IDNA path)."""
    rejected("ex_ample.bücher.example")


def test_R5321_4_1_2_b_digit_leading_label_accepted() -> None:
    """R5321-4.1.2-b: sub-domain = Let-dig [Ldh-str]: '3com.example' is a valid domain."""
    selection, fake = select("3com.example", mx_zone("3com.example"))
    assert fake.queries[0] == mx_query("3com.example.")
    assert selection.domain == "3com.example"
    assert selection.addresses == (ipaddress.ip_address(MX_ADDRESS),)


@pytest.mark.parametrize("domain", ["3com.example", "a-b.example", "x1-2-3.example", "a.b.c.d"])
def test_R5321_4_1_2_b_ldh_names_normalise_to_themselves(domain: str) -> None:
    """R5321-4.1.2-b: names matching the ABNF are accepted unchanged."""
    assert normalize_domain(domain) == domain


def test_R5321_4_1_2_b_trailing_dot_stripped() -> None:
    """R5321-4.1.2-b: one trailing dot is accepted and removed from Selection.domain."""
    selection, fake = select("example.com.", mx_zone("example.com"))
    assert fake.queries[0] == mx_query("example.com.")
    assert selection.domain == "example.com"
    assert selection.canonical_domain == "example.com"


def test_R5321_4_1_2_b_trailing_dot_same_result_as_without() -> None:
    """R5321-4.1.2-b: 'example.com.' and 'example.com' give equal selections and queries."""
    with_dot, fake_dot = select("example.com.", mx_zone("example.com"))
    without, fake_plain = select("example.com", mx_zone("example.com"))
    assert with_dot == without
    assert fake_dot.queries == fake_plain.queries


def test_R5321_4_1_2_b_upper_case_lowered() -> None:
    """R5321-4.1.2-b: ASCII case is folded; the MX query and Selection.domain are lower-case."""
    selection, fake = select("ExAmPlE.CoM", mx_zone("example.com"))
    assert fake.queries[0] == mx_query("example.com.")
    assert selection.domain == "example.com"


# -- Lengths: RFC 5321 §4.5.3.1.2, RFC 1035 §3.1, RFC 2181 §11 (N16) -----------------------


def test_R1035_3_1_a_label_63_ok_64_rejected() -> None:
    """R1035-3.1-a: a 63-octet label is accepted end to end, a 64-octet label is rejected."""
    ok = "a" * 63 + ".example"
    selection, fake = select(ok, mx_zone(ok))
    assert fake.queries[0] == mx_query(ok + ".")
    assert selection.domain == ok
    rejected("a" * 64 + ".example")


@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_R2181_11_a_label_64_rejected_anywhere(position: str) -> None:
    """R2181-11-a: a label of 64 octets is rejected wherever it is in the name."""
    long = "b" * 64
    domain = {
        "first": f"{long}.example.com",
        "middle": f"mail.{long}.example",
        "last": f"example.{long}",
    }[position]
    rejected(domain)


def test_R2181_11_a_empty_label_rejected() -> None:
    """R2181-11-a: labels are 1..63 octets: 'a..b' is rejected before any query."""
    rejected("a..b")


def test_R1035_3_1_a_name_253_ok_254_rejected() -> None:
    """R1035-3.1-a: 253 characters of dotted text (255 wire octets) ok, 254 rejected."""
    ok = label_name(253)
    selection, fake = select(ok, mx_zone(ok))
    assert fake.queries[0] == mx_query(ok + ".")
    assert selection.domain == ok
    rejected(label_name(254))


def test_R5321_4_5_3_1_2_name_253_plus_trailing_dot_ok() -> None:
    """R5321-4.5.3.1.2 / N16: 253 characters plus the trailing root dot is within 255 octets."""
    ok = label_name(253)
    selection, fake = select(ok + ".", mx_zone(ok))
    assert fake.queries[0] == mx_query(ok + ".")
    assert selection.domain == ok


@pytest.mark.parametrize("length", [254, 255, 256, 300, 2000])
def test_R5321_4_5_3_1_2_overlong_names_rejected(length: int) -> None:
    """R5321-4.5.3.1.2 / N16: names over 253 characters (wire > 255 octets) are rejected."""
    rejected(label_name(length))


def test_R5321_4_5_3_1_2_overlong_idn_rejected() -> None:
    """R5321-4.5.3.1.2: the length limit applies to the A-label form of an IDN."""
    # Each 'ü'*25 U-label becomes a 31-octet A-label: 8 of them = 8*31 + 7 = 255 characters.
    domain = ".".join(["ü" * 25] * 8)
    assert len(domain) < 253
    rejected(domain)


def test_R1123_2_1_a_long_exchange_names_processed() -> None:
    """R1123-2.1-a: MX exchanges with 63-char labels and 253 characters work end to end."""
    exchange = label_name(253)
    assert max(len(label) for label in exchange.split(".")) == 63
    records: dict[str, dict[str, Any]] = {
        "example.org": {"MX": [(10, exchange + ".")]},
        exchange: {"A": ["192.0.2.7"], "AAAA": ["2001:db8::7"]},
    }
    selection, fake = select("example.org", records)
    assert [h.name for h in selection.hosts] == [exchange]
    assert selection.targets == (
        Target(exchange, 10, ipaddress.ip_address("2001:db8::7")),
        Target(exchange, 10, ipaddress.ip_address("192.0.2.7")),
    )
    assert Query(exchange + ".", RRType.A) in fake.queries
    assert Query(exchange + ".", RRType.AAAA) in fake.queries
    assert selection.warnings == ()


# -- Address literals: RFC 5321 §4.1.3, RFC 1123 §5.2.17 -----------------------------------


def assert_literal(text: str, address: str, shown: str) -> None:
    fake = FakeResolver(mx_zone("example.com"))
    selection = mxselect.select_targets(text, resolver=fake)
    assert fake.queries == []
    assert selection.targets == (Target(shown, 0, ipaddress.ip_address(address)),)
    assert selection.addresses == (ipaddress.ip_address(address),)
    assert selection.domain == shown
    assert selection.address_literal is True
    assert selection.implicit is False


def test_R5321_4_1_3_a_ipv4_literal_single_target_no_dns() -> None:
    """R5321-4.1.3-a: '[192.0.2.1]' is exactly one target 192.0.2.1 and no DNS query."""
    assert_literal("[192.0.2.1]", "192.0.2.1", "[192.0.2.1]")


def test_R1123_5_2_17_a_dotted_decimal_literal_parsed() -> None:
    """R1123-5.2.17-a: a dotted-decimal domain literal is accepted and parsed."""
    assert_literal("[198.51.100.255]", "198.51.100.255", "[198.51.100.255]")
    assert normalize_domain("[0.0.0.0]") == ipaddress.IPv4Address("0.0.0.0")


def test_R5321_4_1_3_b_ipv6_literal_single_target_no_dns() -> None:
    """R5321-4.1.3-b: '[IPv6:2001:db8::1]' is one target 2001:db8::1 and no DNS query."""
    assert_literal("[IPv6:2001:db8::1]", "2001:db8::1", "[IPv6:2001:db8::1]")


@pytest.mark.parametrize(
    "text", ["[ipv6:2001:db8::1]", "[IPV6:2001:DB8::1]", "[iPv6:2001:0db8:0000::0001]"]
)
def test_R5321_4_1_3_b_ipv6_tag_case_insensitive(text: str) -> None:
    """R5321-4.1.3-b: the "IPv6:" tag is case-insensitive; the result is normalised."""
    assert_literal(text, "2001:db8::1", "[IPv6:2001:db8::1]")


def test_R5321_4_1_3_b_ipv6v4_literal_accepted() -> None:
    """R5321-4.1.3-b: IPv6v4-comp ('::ffff:192.0.2.1') is in the ABNF and accepted."""
    assert normalize_domain("[IPv6:::ffff:192.0.2.1]") == ipaddress.IPv6Address("::ffff:c000:201")


@pytest.mark.parametrize(
    "text",
    [
        "[2001:db8::1]",
        "[::1]",
        "[IPv6:1:2:3:4:5:6:7:8:9]",
        "[IPv6:2001:db8::1::2]",
        "[IPv6:02001:db8::1]",
        "[IPv6:]",
        "[IPv6:192.0.2.1]",
        "[IPv6: 2001:db8::1]",
    ],
)
def test_R5321_4_1_3_b_bad_ipv6_literals_rejected(text: str) -> None:
    """R5321-4.1.3-b: an untagged or malformed IPv6 literal is a syntax error, no query."""
    rejected(text)


@pytest.mark.parametrize(
    "text", ["[IPv6:1:2:3:4:5:6:7::]", "[IPv6:::1:2:3:4:5:6:7]", "[IPv6:1:2:3:4:5::1.2.3.4]"]
)
def test_R5321_4_1_3_b_ipv6_comp_group_limit(text: str) -> None:
    """R5321-4.1.3-b: at most 6 groups (4 with an IPv4 tail) besides '::' may be present."""
    rejected(text)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("[IPv6:1:2:3:4:5:6::]", "1:2:3:4:5:6::"),
        ("[IPv6:::]", "::"),
        ("[IPv6:1:2:3:4::192.0.2.1]", "1:2:3:4::c000:201"),
        ("[IPv6:1:2:3:4:5:6:7:8]", "1:2:3:4:5:6:7:8"),
    ],
)
def test_R5321_4_1_3_b_ipv6_comp_group_limit_edges_accepted(text: str, address: str) -> None:
    """R5321-4.1.3-b: 6 groups + '::', 4 groups + '::' + IPv4, and IPv6-full are accepted."""
    assert normalize_domain(text) == ipaddress.IPv6Address(address)


def test_R5321_4_1_3_b_untagged_ipv6_message_names_tag() -> None:
    """R5321-4.1.3-b: '[2001:db8::1]' is rejected with a hint about the 'IPv6:' tag."""
    assert "IPv6:" in str(rejected("[2001:db8::1]"))


@pytest.mark.parametrize(
    "text",
    [
        "[256.1.1.1]",
        "[1.2.3]",
        "[1.2.3.4.5]",
        "[1.2.3.]",
        "[1..2.3]",
        "[1234.1.1.1]",
        "[-1.1.1.1]",
        "[0x7f.0.0.1]",
        "[١٩٢.0.2.1]",
        "[１９２.0.2.1]",
    ],
)
def test_R5321_4_1_3_c_bad_ipv4_literals_rejected(text: str) -> None:
    """R5321-4.1.3-c: Snum is 1*3 ASCII digits 0..255 and there are 4 of them."""
    rejected(text)


@pytest.mark.parametrize("text", ["[010.0.0.1]", "[192.0.02.1]", "[192.000.2.1]"])
def test_R5321_4_1_3_c_leading_zeros_rejected(text: str) -> None:
    """R5321-4.1.3-c: octets with leading zeros (octal ambiguity) are rejected, no query."""
    rejected(text)


@pytest.mark.parametrize("text", ["[X-foo:bar]", "[IPv4:192.0.2.1]", "[tag:value]"])
def test_R5321_4_1_3_d_unsupported_tag_rejected(text: str) -> None:
    """R5321-4.1.3-d: a General-address-literal with an unregistered tag is rejected."""
    assert "unsupported" in str(rejected(text))


@pytest.mark.parametrize("text", ["[IPv6:fe80::1%eth0]", "[IPv6:fe80::1%1]", "[IPv6:fe80::1%25]"])
def test_R5321_4_1_3_b_zone_index_rejected(text: str) -> None:
    """R5321-4.1.3-b / N23: IPv6 zone indexes are not in the ABNF and are rejected."""
    rejected(text)


@pytest.mark.parametrize(
    "text",
    ["[]", "[192.0.2.1", "192.0.2.1]", "[192.0.2.1].", "[192.0.2.1]x", "[ 192.0.2.1]", "[[1]]"],
)
def test_R5321_4_1_3_a_malformed_brackets_rejected(text: str) -> None:
    """R5321-4.1.3-a: brackets that do not enclose exactly one literal are rejected."""
    rejected(text)


@pytest.mark.parametrize(
    ("domain", "expected"),
    [("[192.0.2.1]", True), ("[IPv6:2001:db8::1]", True), ("example.com", False)],
)
def test_R5321_2_3_4_a_address_literal_flagged(domain: str, expected: bool) -> None:
    """R5321-2.3.4-a: Selection.address_literal is True for literals, False for names."""
    selection, _ = select(domain, mx_zone("example.com"))
    assert selection.address_literal is expected


# -- IDN: RFC 6531 §3.2, RFC 5891, RFC 5890, RFC 8616 (N24) --------------------------------


def test_R6531_3_2_a_u_label_queried_as_a_label() -> None:
    """R6531-3.2-a: 'bücher.example' is asked as 'xn--bcher-kva.example.'."""
    selection, fake = select("bücher.example", mx_zone("xn--bcher-kva.example"))
    assert fake.queries[0] == mx_query("xn--bcher-kva.example.")
    assert selection.domain == "xn--bcher-kva.example"
    assert selection.addresses == (ipaddress.ip_address(MX_ADDRESS),)


def test_R5891_3_2_a_every_qname_is_ascii() -> None:
    """R5891-3.2-a: every query name is ASCII, even when the MX data holds a U-label."""
    records: dict[str, dict[str, Any]] = {
        "xn--bcher-kva.example": {
            "MX": [(10, "mx.bücher.example"), (20, "mx.xn--bcher-kva.example")]
        },
        "mx.xn--bcher-kva.example": {"A": ["192.0.2.2"]},
        "mx.bücher.example": {"A": ["192.0.2.3"]},
    }
    selection, fake = select("bücher.example", records)
    assert fake.queries != []
    assert [q.name for q in fake.queries if not q.name.isascii()] == []
    assert [h.name for h in selection.hosts] == ["mx.xn--bcher-kva.example"]
    assert [w.code for w in selection.warnings] == [WarningCode.INVALID_EXCHANGE]


def test_R5891_3_2_a_idna2008_not_idna2003() -> None:
    """R5891-3.2-a / R8616-3-a / N24: 'faß.de' is asked as 'xn--fa-hia.de.', not 'fass.de.'."""
    records = mx_zone("xn--fa-hia.de", exchange="mx.idna2008.example")
    records.update(mx_zone("fass.de", exchange="mx.idna2003.example"))
    selection, fake = select("faß.de", records)
    assert fake.queries[0] == mx_query("xn--fa-hia.de.")
    assert mx_query("fass.de.") not in fake.queries
    assert [h.name for h in selection.hosts] == ["mx.idna2008.example"]
    assert normalize_domain("faß.de") == "xn--fa-hia.de"


def test_R8616_3_a_u_labels_translated_before_lookup() -> None:
    """R8616-3-a: U-labels in any position become A-labels before the lookup."""
    selection, fake = select("mail.bücher.example", mx_zone("mail.xn--bcher-kva.example"))
    assert fake.queries[0] == mx_query("mail.xn--bcher-kva.example.")
    assert selection.domain == "mail.xn--bcher-kva.example"


def test_R5891_5_2_a_decomposed_input_nfc_normalised() -> None:
    """R5891-5.2-a: decomposed 'u'+U+0308 gives the same A-label as precomposed 'ü'."""
    decomposed = "bu\u0308cher.example"
    assert normalize_domain(decomposed) == normalize_domain("b\u00fccher.example")
    assert normalize_domain(decomposed) == "xn--bcher-kva.example"
    selection, fake = select(decomposed, mx_zone("xn--bcher-kva.example"))
    assert fake.queries[0] == mx_query("xn--bcher-kva.example.")
    assert selection.domain == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "domain",
    [
        "\u0308bcher.example",  # leading combining mark
        "bücher.\u0301example",  # leading combining mark in another label
        "☃.example",  # DISALLOWED symbol
        "a\u2603b.example",  # DISALLOWED inside a label
        "\U0001f4a9.la",  # DISALLOWED emoji
        "a\u0378.example",  # unassigned code point
        "ab--ü.example",  # '--' in positions 3-4 of a U-label
        "\u0663.example",  # Arabic-Indic digit: Bidi rule
        "a\u200d.example",  # ZWJ without its CONTEXTJ context
    ],
)
def test_R5891_5_4_a_invalid_u_labels_rejected(domain: str) -> None:
    """R5891-5.4-a: putative U-labels failing IDNA2008 are rejected before any query."""
    rejected(domain)


def test_R5891_5_3_a_a_label_input_queried_as_is() -> None:
    """R5891-5.3-a: input already in A-label form is queried unchanged."""
    selection, fake = select("xn--bcher-kva.example", mx_zone("xn--bcher-kva.example"))
    assert fake.queries[0] == mx_query("xn--bcher-kva.example.")
    assert selection.domain == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "domain", ["xn--zz.example", "xn--a.example", "xn--ls8h.example", "xn--abc-.example"]
)
def test_R5891_5_3_a_fake_a_labels_rejected(domain: str) -> None:
    """R5891-5.3-a: A-labels that do not decode to valid U-labels are rejected, no query."""
    rejected(domain)


def test_R5891_5_3_a_fake_a_label_rejected_next_to_u_label() -> None:
    """R5891-5.3-a: a fake A-label is also rejected when the input holds U-labels."""
    rejected("xn--zz.bücher.example")


def test_R5891_5_5_a_japanese_u_labels() -> None:
    """R5891-5.5-a: 'ドメイン.テスト' -> 'xn--eckwd4c7c.xn--zckzah'."""
    selection, fake = select("ドメイン.テスト", mx_zone("xn--eckwd4c7c.xn--zckzah"))
    assert fake.queries[0] == mx_query("xn--eckwd4c7c.xn--zckzah.")
    assert selection.domain == "xn--eckwd4c7c.xn--zckzah"


def test_R5890_2_3_1_a_a_label_over_63_octets_rejected() -> None:
    """R5890-2.3.1-a: a U-label of <= 63 characters whose A-label exceeds 63 is rejected."""
    ulabel = "bücher" * 10
    assert len(ulabel) <= 63
    rejected(f"{ulabel}.example")


def test_R5890_2_3_1_a_a_label_at_most_63_octets_accepted() -> None:
    """R5890-2.3.1-a: a U-label whose A-label is within 63 octets is accepted."""
    alabel = normalize_domain("ü" * 25 + ".example")
    assert isinstance(alabel, str)
    assert alabel == "xn--tdaaaaaaaaaaaaaaaaaaaaaaaaa.example"


def test_R5890_2_3_1_b_a_labels_lower_case() -> None:
    """R5890-2.3.1-b: 'BÜCHER.example' and 'XN--BCHER-KVA.EXAMPLE' give lower-case A-labels."""
    selection, fake = select("BÜCHER.example", mx_zone("xn--bcher-kva.example"))
    assert fake.queries[0] == mx_query("xn--bcher-kva.example.")
    assert selection.domain == "xn--bcher-kva.example"
    assert normalize_domain("XN--BCHER-KVA.EXAMPLE") == "xn--bcher-kva.example"


def test_R5891_3_1_b_duplicate_exchange_case_insensitive() -> None:
    """R5891-3.1-b / R1035-3.1-b: {10 MX1.Example.ORG, 20 mx1.example.org} is one host at 10."""
    records: dict[str, dict[str, Any]] = {
        "example.org": {"MX": [(10, "MX1.Example.ORG"), (20, "mx1.example.org")]},
        "mx1.example.org": {"A": ["192.0.2.1"]},
    }
    selection, _ = select("example.org", records)
    assert [(h.name, h.preference) for h in selection.hosts] == [("mx1.example.org", 10)]
    assert selection.targets == (Target("mx1.example.org", 10, ipaddress.ip_address("192.0.2.1")),)
    assert [(w.code, w.host) for w in selection.warnings] == [
        (WarningCode.DUPLICATE_HOST, "mx1.example.org")
    ]


def test_R1035_3_1_b_duplicate_exchange_keeps_best_preference() -> None:
    """R1035-3.1-b: the duplicate keeps the lower preference whichever comes first."""
    records: dict[str, dict[str, Any]] = {
        "example.org": {
            "MX": [(20, "mx1.example.org."), (5, "mx2.example.org"), (10, "MX1.EXAMPLE.ORG.")]
        },
        "mx1.example.org": {"A": ["192.0.2.1"]},
        "mx2.example.org": {"A": ["192.0.2.2"]},
    }
    selection, fake = select("example.org", records)
    assert [(h.name, h.preference) for h in selection.hosts] == [
        ("mx2.example.org", 5),
        ("mx1.example.org", 10),
    ]
    assert [w.code for w in selection.warnings] == [WarningCode.DUPLICATE_HOST]
    assert fake.queries.count(Query("mx1.example.org.", RRType.A)) == 1


def test_R1035_3_1_b_mixed_case_domain_same_queries() -> None:
    """R1035-3.1-b: 'Example.ORG' and 'example.org' send the same lower-case queries."""
    _, upper = select("Example.ORG", mx_zone("example.org"))
    _, lower = select("example.org", mx_zone("example.org"))
    assert upper.queries == lower.queries
    assert upper.queries[0] == mx_query("example.org.")


# -- Other input checks ------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["user@example.com", "@example.com", "example.com@", "a@b@c"])
def test_at_sign_rejected_with_hint(domain: str) -> None:
    """Input containing '@' (a whole address) is rejected with a message naming '@'."""
    assert "@" in str(rejected(domain)).replace(domain, "")


@pytest.mark.parametrize("value", [b"example.com", None, 42, 4.2, ["example.com"], bytearray()])
def test_non_str_input_rejected(value: object) -> None:
    """Input that is not a str is an InvalidDomainError (not a TypeError), no query."""
    error = rejected(value)
    assert error.domain == repr(value)


@pytest.mark.parametrize(
    "domain",
    [
        " example.com",
        "example.com ",
        "exa mple.com",
        "example.com\t",
        "example.com\n",
        "\u00a0example.com",
        "example\u3000.com",
        "example.com\u2028",
        "example.com\r\n",
    ],
)
def test_white_space_rejected(domain: str) -> None:
    """White space anywhere in the input (ASCII or Unicode) is rejected, no query."""
    rejected(domain)


@pytest.mark.parametrize(
    "domain", ["exam\x00ple.com", "example.com\x7f", "\x1bexample.com", "ex\x01ample.com"]
)
def test_control_characters_rejected(domain: str) -> None:
    """C0 control characters and DEL are rejected, no query."""
    rejected(domain)


@pytest.mark.parametrize("domain", ["", ".", "..", "。"])
def test_empty_and_root_rejected(domain: str) -> None:
    """The empty string and the root domain are not mail domains."""
    rejected(domain)


@pytest.mark.parametrize("domain", ["192.0.2.1", "192.0.2.1.", "10.0.0.1"])
def test_bare_ipv4_rejected_with_bracket_hint(domain: str) -> None:
    """A bare IPv4 address is rejected with a message showing the [192.0.2.1] form."""
    assert "[192.0.2.1]" in str(rejected(domain))


def test_bare_ipv6_rejected() -> None:
    """A bare IPv6 address is not a domain name."""
    rejected("2001:db8::1")


def test_error_domain_attribute_is_input_as_given() -> None:
    """InvalidDomainError.domain is the input as given, and the error is a ValueError."""
    error = rejected("Ex_Ample.COM")
    assert error.domain == "Ex_Ample.COM"
    assert isinstance(error, ValueError)
    assert isinstance(error, PermanentError)
    assert error.smtp_reply.startswith("501 5.1.3 ")


@pytest.mark.parametrize(
    "domain",
    ["ex_ample.com", "user@example.com", "[2001:db8::1]", "xn--zz.example", "", b"example.com"],
)
def test_aselect_targets_rejects_the_same(domain: object) -> None:
    """aselect_targets raises the same InvalidDomainError as select_targets, no query."""
    fake = FakeResolver(mx_zone("example.com"))
    with pytest.raises(InvalidDomainError) as info:
        asyncio.run(mxselect.aselect_targets(domain, resolver=fake))  # type: ignore[arg-type]
    assert fake.queries == []
    assert (info.value.status, info.value.reply_code) == ("5.1.3", 501)
    assert str(info.value) == str(rejected(domain))


def test_aselect_targets_idn_same_queries_as_sync() -> None:
    """R6531-3.2-a: the asyncio driver sends the same A-label queries as the sync one."""
    sync_fake = FakeResolver(mx_zone("xn--bcher-kva.example"))
    async_fake = FakeResolver(mx_zone("xn--bcher-kva.example"))
    sync = mxselect.select_targets("bücher.example", resolver=sync_fake)
    asynchronous = asyncio.run(mxselect.aselect_targets("bücher.example", resolver=async_fake))
    assert sync == asynchronous
    assert sync_fake.queries == async_fake.queries


@pytest.mark.parametrize(
    "domain", ["example.com\u3002", "bücher.example\uff0e", "ドメイン.テスト\uff61"]
)
def test_R5321_4_1_2_b_trailing_ideographic_full_stop_like_trailing_dot(domain: str) -> None:
    """R5321-4.1.2-b: a trailing dot written as a UTS #46 full-stop variant is stripped too."""
    assert normalize_domain(domain) == normalize_domain(domain[:-1] + ".")


@pytest.mark.parametrize(
    "domain",
    [
        "example.com\u3002\u3002",
        "\u3002",
        "example.com..",
        "bücher.example..",
        "example.com\u3002.",
        "bücher.example\uff0e.",
    ],
)
def test_R2181_11_a_two_trailing_dots_rejected(domain: str) -> None:
    """R2181-11-a: only one trailing (possibly UTS #46-mapped) dot is dropped: '..' is empty."""
    rejected(domain)


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("r3---sn-abc.bücher.example", "r3---sn-abc.xn--bcher-kva.example"),
        ("ab--cd.bücher.example", "ab--cd.xn--bcher-kva.example"),
    ],
)
def test_N17_ascii_labels_validated_the_same_next_to_u_labels(domain: str, expected: str) -> None:
    """N17: an ASCII label accepted in an all-ASCII name is also accepted next to a U-label."""
    ascii_only = domain.replace("bücher", "xn--bcher-kva")
    assert normalize_domain(ascii_only) == expected
    selection, fake = select(domain, mx_zone(expected))
    assert fake.queries[0] == mx_query(expected + ".")
    assert selection.domain == expected
