"""Outbound messages: the reference sample parses; hostile or malformed bodies are one fault."""

from __future__ import annotations

import contextlib

import defusedxml.ElementTree as SafeET
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxloop.domain.outbound_message import (
    MAX_MESSAGE_BYTES,
    OutboundMessageError,
    parse_notifications,
    render_ack,
    render_fault,
    same_org,
)
from tests.conftest import reference_sample

BOM = b"\xef\xbb\xbf"


def reference(name: str) -> bytes:
    """A file of ../shared/reference/salesforce (missing: skip saying why, fail under CI)."""
    return reference_sample("salesforce", name).read_bytes()


def envelope(
    inner: str, *, notifications_ns: str = "http://soap.sforce.com/2005/09/outbound"
) -> bytes:
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        f'<notifications xmlns="{notifications_ns}">{inner}</notifications>'
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()


HEADER = (
    "<OrganizationId>00D5g00000SfEmUEAV</OrganizationId><ActionId>04k5g0000000001AAA</ActionId>"
    '<SessionId xsi:nil="true"/><EnterpriseUrl>https://x/c</EnterpriseUrl>'
    "<PartnerUrl>https://x/u</PartnerUrl>"
)


def notification(number: int, sobject: str = "Case", extra: str = "") -> str:
    return (
        f"<Notification><Id>04l5g{number:013d}</Id>"
        f'<sObject xsi:type="sf:{sobject}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"<sf:Id>5005g{number:013d}</sf:Id><sf:Status>Closed</sf:Status>{extra}</sObject>"
        "</Notification>"
    )


def fault_of(body: bytes) -> OutboundMessageError:
    with pytest.raises(OutboundMessageError) as caught:
        parse_notifications(body)
    return caught.value


def test_the_reference_sample_parses_with_its_fields_in_order() -> None:
    message = parse_notifications(reference("outbound_message_notifications_contact.xml"))
    assert message.organization_id == "012345678901234"
    assert message.action_id == "04k1I000000bmsHQAQ"
    assert message.session_id and message.session_id.startswith("00D1I000003qqqE!")
    assert message.enterprise_url.endswith("/c/41.0/00D1I000003qqqE")
    assert message.partner_url.endswith("/u/41.0/00D1I000003qqqE")
    assert [n.notification_id for n in message.notifications] == [
        "04l1I000000fztEQAQ",
        "04l1I000000fzt9QAA",
    ]
    first, second = message.notifications
    assert first.sobject_type == "Contact" and message.sobject_type == "Contact"
    assert list(first.fields) == ["Id", "CreatedDate", "FirstName", "LastName", "Title"]
    assert second.fields["Email"] == "drb24@cornell.edu"
    assert second.record_id == "0031I0000081tb0QAA"


def test_a_nil_session_id_and_nil_fields_are_absent() -> None:
    message = parse_notifications(
        envelope(HEADER + notification(1, extra='<sf:Subject xsi:nil="true"/>'))
    )
    assert message.session_id is None
    assert message.notifications[0].fields == {"Id": "5005g0000000000001", "Status": "Closed"}


def test_the_ack_is_the_reference_answer() -> None:
    ack = reference("outbound_message_ack_response.xml")
    assert render_ack() == ack.removeprefix(BOM)


def test_a_fault_follows_the_template_and_escapes_its_text() -> None:
    template = reference("outbound_message_fault_response_template.xml")
    expected = template.removeprefix(BOM).replace(b"{0}", b"org &lt;a&gt; &amp; b")
    assert render_fault("org <a> & b") == expected
    parsed = SafeET.fromstring(render_fault("bad \x00 char " + "x" * 5000))
    text = parsed.find(".//faultstring").text
    assert "\x00" not in text and len(text) <= 1000


def test_org_ids_compare_on_fifteen_characters() -> None:
    assert same_org("00D5g00000SfEmU", "00D5g00000SfEmUEAV")
    assert same_org("00D5g00000SfEmUEAV", "00D5g00000SfEmUXYZ")
    assert not same_org("00D5g00000SfEmu", "00D5g00000SfEmUEAV")  # case-sensitive
    assert not same_org("", "00D5g00000SfEmUEAV")
    assert not same_org(None, None)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty"),
        (b"\x00\xff\xfegarbage\x89PNG", "not well-formed"),
        (b"not xml at all", "not well-formed"),
        (b'{"json": true}', "not well-formed"),
        (b"<html><body>hello</body></html>", "not a SOAP 1.1 Envelope"),
        (
            b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>',
            "SOAP 1.2",
        ),
        (
            b'<s:Envelope xmlns:s="http://example.com/soap"><s:Body/></s:Envelope>',
            "not a SOAP 1.1 Envelope",
        ),
        (envelope(HEADER + notification(1), notifications_ns="urn:wrong"), "namespace"),
        (envelope(HEADER), "no Notification"),
        (envelope(HEADER.split("<ActionId>")[0].split("</OrganizationId>")[1]), "OrganizationId"),
        (envelope("<ActionId>04k5g0000000001AAA</ActionId>" + notification(1)), "OrganizationId"),
        (envelope(HEADER.replace("00D5g00000SfEmUEAV", "00D-bad")), "not a Salesforce Id"),
        (envelope(HEADER + notification(1) + notification(2, "Contact")), "mixes records"),
        (
            envelope(HEADER + notification(1).replace("<sf:Id>5005g0000000000001</sf:Id>", "")),
            "no Id",
        ),
        (envelope(HEADER + notification(1).replace(' xsi:type="sf:Case"', "")), "xsi:type"),
        (
            envelope(
                HEADER + notification(1, extra="<sf:Account><sf:Name>x</sf:Name></sf:Account>")
            ),
            "plain values",
        ),
        (envelope(HEADER + "<Surprise/>" + notification(1)), "unknown element"),
        (
            envelope(HEADER + notification(1)).replace(b"<ActionId>", b'<ActionId xmlns="urn:x">'),
            "namespace",
        ),
    ],
)
def test_malformed_messages_are_one_fault_with_a_reason(body: bytes, words: str) -> None:
    assert words in fault_of(body).faultstring


def test_101_notifications_are_refused_and_100_accepted() -> None:
    hundred = envelope(HEADER + "".join(notification(n) for n in range(100)))
    assert len(parse_notifications(hundred).notifications) == 100
    fault = fault_of(envelope(HEADER + "".join(notification(n) for n in range(101))))
    assert "more than 100" in fault.faultstring
    assert fault.reason == "too_many_notifications"


def test_xxe_is_refused() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + envelope(HEADER.replace("https://x/c", "&x;") + notification(1))
    )
    fault = fault_of(body)
    assert "DTD" in fault.faultstring and fault.reason == "forbidden_xml"
    assert "root:" not in fault.faultstring


def test_billion_laughs_is_refused_quickly() -> None:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    body = f"<?xml version='1.0'?><!DOCTYPE lolz [{entities}]><lolz>&lol9;</lolz>".encode()
    assert fault_of(body).reason == "forbidden_xml"


def test_an_external_dtd_is_refused() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE soapenv:Envelope SYSTEM "http://evil.example/x.dtd">'
    body += envelope(HEADER + notification(1))
    assert fault_of(body).reason == "forbidden_xml"


def test_a_ten_megabyte_body_is_refused_before_parsing() -> None:
    body = envelope(HEADER + notification(1, extra=f"<sf:Big>{'x' * 10_000_000}</sf:Big>"))
    assert len(body) > MAX_MESSAGE_BYTES
    fault = fault_of(body)
    assert fault.reason == "too_large" and "5 MB" in fault.faultstring


def test_deep_nesting_is_a_fault_not_a_crash() -> None:
    depth = 200_000
    body = envelope(
        HEADER + notification(1, extra="<sf:D>" + "<a>" * depth + "</a>" * depth + "</sf:D>")
    )
    assert "plain values" in fault_of(body).faultstring


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_ever_raise_the_one_error(body: bytes) -> None:
    with contextlib.suppress(OutboundMessageError):
        parse_notifications(body)


_xml_chunks = st.sampled_from(
    [
        "<",
        ">",
        "/",
        "&",
        ";",
        "<!DOCTYPE a [",
        "]>",
        "<!ENTITY e 'x'>",
        "&e;",
        "<sf:Id>",
        "</sf:Id>",
        "<Notification>",
        "</Notification>",
        HEADER,
        notification(1),
        "xsi:nil='true'",
        "<?xml version='1.0' encoding='latin-1'?>",
        "<?xml version='1.0' encoding='bogus'?>",
        "\x00",
        "\udcff",
        "é",
        "]]>",
        "<![CDATA[",
        "<!--",
        "-->",
    ]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_xml_chunks, max_size=12), st.integers(min_value=0, max_value=400))
def test_mangled_messages_only_ever_raise_the_one_error(chunks: list[str], cut: int) -> None:
    mangled = "".join(chunks).encode("utf-8", "surrogatepass")
    body = envelope(HEADER + notification(1))
    body = body[:cut] + mangled + body[cut:]
    with contextlib.suppress(OutboundMessageError):
        parse_notifications(body)
