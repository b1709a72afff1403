"""Outbound messages: rules, the SOAP message, delivery, Ack, retries, horizon, duplicates."""

from __future__ import annotations

import time
from typing import Any

import defusedxml.ElementTree as SafeET
import httpx
import pytest
from fastapi import FastAPI, Request, Response

from sfemu.outbound import NotificationContent, is_ack, render_notifications
from sfemu.testing import InProcessEmulator, SyncASGITransport, in_process

from .conftest import ACK, Api, Listener, reference_file

NS = {
    "soapenv": "http://schemas.xmlsoap.org/soap/envelope/",
    "om": "http://soap.sforce.com/2005/09/outbound",
    "sf": "urn:sobject.enterprise.soap.sforce.com",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def soap_fault(reason: str) -> str:
    """A SOAP fault as a listener answers it (the layout of Salesforce's fault template; the
    conformance tests compare against the template itself)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        "<soapenv:Body><soapenv:Fault><faultcode>soapenv:Client</faultcode>"
        f"<faultstring>{reason}</faultstring><detail /></soapenv:Fault></soapenv:Body>"
        "</soapenv:Envelope>"
    )


def add_rule(client: Any, listener: Listener, **extra: Any) -> dict[str, Any]:
    spec = {
        "org": "acme",
        "name": "Case_Closed",
        "object": "Case",
        "field": "Status",
        "value": "Closed",
        "fields": ["Subject", "Status", "ContactId", "CaseNumber"],
        "endpoint_url": listener.url,
        "include_session_id": True,
        "user": "integration@example.com",
    }
    spec.update(extra)
    response = client.post("/__emulator__/outbound/rules", json=spec)
    assert response.status_code == 201, response.text
    return response.json()


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def statuses(emu: InProcessEmulator) -> list[str]:
    return [n["status"] for n in emu.emulator.outbound.messages()]


def test_closing_a_case_sends_a_notification(
    emu: InProcessEmulator, client: Any, admin: Api, listener: Listener
) -> None:
    rule = add_rule(client, listener)
    case_id = admin.create("Case", {"Subject": "Printer on fire", "Status": "Working"})
    assert admin.patch(f"/sobjects/Case/{case_id}", json={"Status": "Closed"}).status_code == 204
    message = listener.wait_for(1)[0]
    assert listener.headers[0]["content-type"].startswith("text/xml")
    assert listener.headers[0]["soapaction"] == '""'
    root = SafeET.fromstring(message)
    notifications = root.find("soapenv:Body/om:notifications", NS)
    assert notifications.findtext("om:OrganizationId", namespaces=NS) == "00D5g00000SfEmUEAV"
    assert notifications.findtext("om:ActionId", namespaces=NS) == rule["id"]
    assert (
        notifications.findtext("om:EnterpriseUrl", namespaces=NS)
        == "http://sfemu.test/services/Soap/c/62.0/00D5g00000SfEmU"
    )
    assert (
        notifications.findtext("om:PartnerUrl", namespaces=NS)
        == "http://sfemu.test/services/Soap/u/62.0/00D5g00000SfEmU"
    )
    items = notifications.findall("om:Notification", NS)
    assert len(items) == 1
    assert items[0].findtext("om:Id", namespaces=NS).startswith("04l")
    sobject = items[0].find("om:sObject", NS)
    assert sobject.get(XSI_TYPE) == "sf:Case"
    names = [child.tag.split("}")[1] for child in sobject]
    assert names == [
        "Id",
        "CaseNumber",
        "Status",
        "Subject",
    ]  # Id first, then by name; nulls left out
    assert sobject.findtext("sf:Id", namespaces=NS) == case_id
    assert sobject.findtext("sf:Status", namespaces=NS) == "Closed"
    # The session id is a working session of the rule's user.
    session_id = notifications.findtext("om:SessionId", namespaces=NS)
    assert Api(client, session_id).get(f"/sobjects/Case/{case_id}").status_code == 200
    wait_until(lambda: statuses(emu) == ["delivered"])
    queued = client.get("/__emulator__/outbound").json()["notifications"][0]
    assert queued["record_id"] == case_id and queued["attempts"] == 1 and queued["deliveries"] == 1


def test_only_a_change_to_the_value_fires(
    emu: InProcessEmulator, client: Any, admin: Api, listener: Listener
) -> None:
    add_rule(client, listener, include_session_id=False)
    created_closed = admin.create("Case", {"Subject": "Born closed", "Status": "Closed"})
    listener.wait_for(1)
    admin.patch(f"/sobjects/Case/{created_closed}", json={"Subject": "Still closed"})
    other = admin.create("Case", {"Subject": "Open"})
    admin.patch(f"/sobjects/Case/{other}", json={"Subject": "Still open"})
    time.sleep(0.2)
    assert len(listener.received) == 1
    assert b'<SessionId xsi:nil="true"/>' in listener.received[0]


def test_the_message_layout_matches_salesforce_byte_for_byte() -> None:
    expected = reference_file("outbound_message_notifications_contact.xml").read_bytes()
    rendered = render_notifications(
        organization_id="012345678901234",
        action_id="04k1I000000bmsHQAQ",
        session_id="00D1I000003qqqE!AQsAQOjGFnFJzGPA12yhUGL9Aii0N6lADjH2bNUBHRer5QjjTq3_RbIzlAqHBkfjp3vlHhlwByFY9MJQJlgz_7YaGJZzRF3t",
        enterprise_url="https://na73.salesforce.com/services/Soap/c/41.0/00D1I000003qqqE",
        partner_url="https://na73.salesforce.com/services/Soap/u/41.0/00D1I000003qqqE",
        notifications=[
            NotificationContent(
                "04l1I000000fztEQAQ",
                "Contact",
                [
                    ("Id", "0031I0000081tbPQAQ"),
                    ("CreatedDate", "2017-12-11T21:49:24.000Z"),
                    ("FirstName", "Jeraldine"),
                    ("LastName", "Black"),
                    ("Title", "White"),
                ],
            ),
            NotificationContent(
                "04l1I000000fzt9QAA",
                "Contact",
                [
                    ("Id", "0031I0000081tb0QAA"),
                    ("CreatedDate", "2017-12-11T21:44:55.000Z"),
                    ("Email", "drb24@cornell.edu"),
                    ("FirstName", "Doug"),
                    ("LastName", "Bunting"),
                    ("Title", "Supreme Being"),
                ],
            ),
        ],
    )
    assert rendered == expected


def test_field_values_are_written_as_the_soap_api_does(
    emu: InProcessEmulator, client: Any, admin: Api, listener: Listener
) -> None:
    add_rule(
        client,
        listener,
        name="Survey_Done",
        object="Survey_Response__c",
        field="Completed__c",
        value=True,
        fields=["NPS_Score__c", "Completed__c", "CreatedDate", "Comment__c", "Response_Date__c"],
    )
    admin.create(
        "Survey_Response__c",
        {
            "Completed__c": True,
            "NPS_Score__c": 9,
            "Comment__c": "a < b & c",
            "Response_Date__c": "2024-05-01",
        },
    )
    message = listener.wait_for(1)[0].decode()
    assert "<sf:NPS_Score__c>9.0</sf:NPS_Score__c>" in message
    assert "<sf:Completed__c>true</sf:Completed__c>" in message
    assert "<sf:Comment__c>a &lt; b &amp; c</sf:Comment__c>" in message
    assert "<sf:Response_Date__c>2024-05-01</sf:Response_Date__c>" in message
    created = message.split("<sf:CreatedDate>")[1].split("<")[0]
    assert created.endswith(".000Z") or created.endswith("Z")


def test_up_to_100_notifications_per_message(
    emu: InProcessEmulator, client: Any, admin: Api, listener: Listener
) -> None:
    add_rule(
        client,
        listener,
        name="Any_Contact",
        object="Contact",
        field=None,
        value=None,
        fields=["LastName"],
        events=["created"],
        include_session_id=False,
    )
    response = admin.post(
        "/composite/sobjects",
        json={
            "records": [
                {"attributes": {"type": "Contact"}, "LastName": f"L{i}"} for i in range(150)
            ]
        },
    )
    assert all(r["success"] for r in response.json())
    messages = listener.wait_for(2)
    counts = sorted(m.count(b"<Notification>") for m in messages)
    assert counts == [50, 100]


def test_failed_deliveries_are_retried_until_acknowledged(
    emu: InProcessEmulator, client: Any, admin: Api, listener: Listener
) -> None:
    listener.answers = [
        (500, soap_fault("busy")),
        (200, ACK.replace("true", "false")),
        (200, "not xml"),
        (200, ACK),
    ]
    add_rule(client, listener)
    case_id = admin.create("Case", {"Subject": "x"})
    admin.patch(f"/sobjects/Case/{case_id}", json={"Status": "Closed"})
    received = listener.wait_for(4)
    ids = {SafeET.fromstring(m).find(".//om:Notification/om:Id", NS).text for m in received}
    assert len(ids) == 1  # the same notification, again and again
    wait_until(lambda: statuses(emu) == ["delivered"])
    notification = emu.emulator.outbound.messages()[0]
    assert notification["attempts"] == 4 and notification["deliveries"] == 1


def test_undelivered_messages_are_dropped_after_the_horizon(listener: Listener) -> None:
    listener.answers = [(503, "down")]
    with (
        in_process(outbound_horizon_s=2000) as emu,
        emu.client() as client,
    ):  # 0.2 s at the test time scale
        add_rule(client, listener)
        api = Api(client, emu.token())
        case_id = api.create("Case", {"Subject": "x"})
        api.patch(f"/sobjects/Case/{case_id}", json={"Status": "Closed"})
        wait_until(lambda: statuses(emu) == ["dropped"])
        notification = emu.emulator.outbound.messages()[0]
        assert notification["attempts"] >= 2 and "HTTP 503" in notification["last_error"]
        attempts = len(listener.received)
        time.sleep(0.2)
        assert len(listener.received) == attempts


def test_retry_intervals_grow_and_are_capped() -> None:
    from sfemu.settings import EmulatorSettings

    settings = EmulatorSettings(
        outbound_retry_base_s=15, outbound_retry_cap_s=7200, outbound_time_scale=1.0
    )
    delays = [settings.retry_delay(n) for n in range(1, 12)]
    assert delays[:4] == [15, 30, 60, 120]
    assert max(delays) == 7200 and delays == sorted(delays)
    assert EmulatorSettings(outbound_time_scale=0.001).horizon == pytest.approx(86.4)


def test_a_slow_listener_times_out(listener: Listener) -> None:
    listener.delay_s = 0.5
    with (
        in_process(outbound_timeout_s=0.1, outbound_autostart=False) as emu,
        emu.client() as client,
    ):
        add_rule(client, listener)
        api = Api(client, emu.token())
        api.create("Case", {"Subject": "x", "Status": "Closed"})
        results = client.post("/__emulator__/outbound/deliver", json={}).json()["messages"]
        assert results[0]["acknowledged"] is False and "Timeout" in results[0]["error"]


def test_manual_delivery_and_redelivery(listener: Listener) -> None:
    with in_process(outbound_autostart=False) as emu, emu.client() as client:
        add_rule(client, listener)
        api = Api(client, emu.token())
        api.create("Case", {"Subject": "x", "Status": "Closed"})
        assert client.get("/__emulator__/outbound", params={"status": "pending"}).json()[
            "notifications"
        ]
        assert listener.received == []
        results = client.post("/__emulator__/outbound/deliver", json={"org": "acme"}).json()[
            "messages"
        ]
        assert results[0]["acknowledged"] is True and results[0]["status_code"] == 200
        notification_id = results[0]["notifications"][0]
        again = client.post(f"/__emulator__/outbound/{notification_id}/redeliver")
        assert again.json()["status"] == "pending"
        client.post("/__emulator__/outbound/deliver", json={})
        assert len(listener.received) == 2
        assert client.post("/__emulator__/outbound/04l000000000001AAA/redeliver").status_code == 404
        assert client.delete("/__emulator__/outbound").status_code == 204
        assert client.get("/__emulator__/outbound").json()["notifications"] == []


def test_a_duplicate_fault_delivers_an_acknowledged_message_again(
    emu: InProcessEmulator, client: Any, admin: Api, listener: Listener
) -> None:
    add_rule(client, listener)
    assert (
        client.post(
            "/__emulator__/faults", json={"target": "outbound", "mode": "duplicate", "count": 1}
        ).status_code
        == 201
    )
    admin.create("Case", {"Subject": "x", "Status": "Closed"})
    received = listener.wait_for(2)
    first, second = (
        SafeET.fromstring(m).find(".//om:Notification/om:Id", NS).text for m in received[:2]
    )
    assert first == second
    wait_until(lambda: statuses(emu) == ["delivered"])
    assert emu.emulator.outbound.messages()[0]["deliveries"] == 2


def test_org_file_rules_can_be_switched_on_and_changed(
    emu: InProcessEmulator, client: Any, admin: Api, listener: Listener
) -> None:
    rules = client.get("/__emulator__/outbound/rules", params={"org": "acme"}).json()["rules"]
    assert rules[0]["name"] == "Case_Closed_Survey" and rules[0]["active"] is False
    patched = client.patch(
        "/__emulator__/outbound/rules/Case_Closed_Survey",
        json={"active": True, "endpoint_url": listener.url},
    )
    assert patched.status_code == 200 and patched.json()["active"] is True
    admin.create("Case", {"Subject": "x", "Status": "Closed"})
    listener.wait_for(1)
    assert client.delete("/__emulator__/outbound/rules/Case_Closed_Survey").status_code == 204
    assert client.get("/__emulator__/outbound/rules").json()["rules"] == []


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"object": "Nope"}, "object 'Nope' does not exist"),
        ({"field": "Nope"}, "field 'Nope' does not exist on Case"),
        ({"fields": ["Subject", "Nope"]}, "field 'Nope' does not exist on Case"),
        ({"endpoint_url": "ftp://x"}, "endpoint_url must be an http"),
        ({"events": ["deleted"]}, "events is a list of created and/or updated"),
        ({"user": "ghost@example.com"}, "user 'ghost@example.com' does not exist"),
        ({"name": "bad name!"}, "name is required"),
    ],
)
def test_bad_rules_are_refused(
    client: Any, listener: Listener, change: dict[str, Any], needle: str
) -> None:
    spec = {
        "org": "acme",
        "name": "R",
        "object": "Case",
        "field": "Status",
        "value": "Closed",
        "fields": ["Subject"],
        "endpoint_url": listener.url,
    }
    spec.update(change)
    response = client.post("/__emulator__/outbound/rules", json=spec)
    assert response.status_code == 400
    assert needle in response.json()["detail"]


def test_is_ack_accepts_only_http_200_with_ack_true() -> None:
    ack = reference_file("outbound_message_ack_response.xml").read_bytes()
    assert is_ack(200, ack)
    assert not is_ack(500, ack)
    assert not is_ack(200, ack.replace(b"true", b"false"))
    assert not is_ack(200, b"<html>ok</html>")
    assert not is_ack(200, b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')


def test_delivery_to_an_in_process_listener_app() -> None:
    received: list[bytes] = []
    listener_app = FastAPI()

    @listener_app.post("/hooks/salesforce/outbound/{token}")
    async def hook(request: Request, token: str) -> Response:
        received.append(await request.body())
        return Response(ACK, media_type="text/xml")

    def client_factory() -> httpx.Client:
        return httpx.Client(
            transport=SyncASGITransport(listener_app), base_url="http://cxloop.test"
        )

    with in_process(outbound_client_factory=client_factory) as emu, emu.client() as client:
        url = "http://cxloop.test/hooks/salesforce/outbound/abc"
        add_rule(client, Listener(url=url))
        Api(client, emu.token()).create("Case", {"Subject": "x", "Status": "Closed"})
        wait_until(lambda: statuses(emu) == ["delivered"])
        assert b"<sf:Status>Closed</sf:Status>" in received[0]
