"""The reference samples of ../shared/reference/salesforce checked against what the emulator
returns: same fields, statuses, error envelopes, message layouts."""

from __future__ import annotations

import json
import re
from typing import Any

import defusedxml.ElementTree as SafeET
import httpx
import pytest

from sfemu.outbound import NotificationContent, is_ack, render_notifications
from sfemu.rest import version_label
from sfemu.testing import EmulatorServer

from .conftest import loads_first_json, reference_file

V = "/services/data/v62.0"


@pytest.fixture
def api(http_sfemu: EmulatorServer) -> httpx.Client:
    client = http_sfemu.client("admin@example.com", trust_env=False)
    yield client
    client.close()


def reference_json(name: str) -> Any:
    return json.loads(reference_file(name).read_text(encoding="utf-8"))


def error_lines() -> dict[str, tuple[int, dict[str, Any]]]:
    """errorCode -> (status, first entry) of each captured body in rest_error_bodies.txt."""
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    for line in reference_file("rest_error_bodies.txt").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^(\d{3}) (\[\{.*?\}\])", line)
        if match:
            entry = json.loads(match.group(2))[0]
            found.setdefault(entry["errorCode"], (int(match.group(1)), entry))
    return found


# -- OAuth ----------------------------------------------------------------------------------


def test_token_response_has_the_documented_fields(http_sfemu: EmulatorServer) -> None:
    sample = reference_json("oauth_token_response_docs_example.json")
    ours = http_sfemu.token("admin@example.com", refresh_token=True)
    documented = {k for k in sample if not k.startswith("_")}
    assert documented <= set(ours)
    assert "expires_in" not in ours and "expires_in" not in sample
    assert re.fullmatch(r"\d{13}", sample["issued_at"]) and re.fullmatch(
        r"\d{13}", ours["issued_at"]
    )
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", sample["signature"]) and re.fullmatch(
        r"[A-Za-z0-9+/]{43}=", ours["signature"]
    )
    assert (
        sample["access_token"].split("!")[0] == sample["id"].split("/")[-2]
    )  # org id before the '!'
    assert ours["access_token"].split("!")[0] == ours["id"].split("/")[-2][:15]
    assert re.search(r"/id/00D\w+/005\w+$", ours["id"])


def test_token_response_field_order_follows_the_postman_examples(
    http_sfemu: EmulatorServer,
) -> None:
    text = reference_file("oauth_postman_collection_examples.txt").read_text(encoding="utf-8")
    code_example = loads_first_json(text, '{\n  "access_token"')
    ours = http_sfemu.token("admin@example.com", refresh_token=True)
    expected = [k for k in code_example if k != "id_token"]  # no openid id_token here (see docs)
    assert list(ours) == expected
    refresh_start = text.index("grant_type=refresh_token")
    refresh_example = loads_first_json(text[refresh_start:], '{\n  "access_token"')
    assert "refresh_token" not in refresh_example


def test_userinfo_and_identity_have_the_documented_fields(http_sfemu: EmulatorServer) -> None:
    token = http_sfemu.token("admin@example.com")
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    identity = httpx.get(token["id"], headers=bearer, trust_env=False).json()
    fixture = reference_json("identity_url_response_fixture.json")["response"]
    assert {k for k in fixture if not k.startswith("_")} <= set(identity)
    for nested in ("photos", "status", "urls"):
        assert set(fixture[nested]) <= set(identity[nested]), nested
    assert identity["urls"]["enterprise"].endswith(
        f"/services/Soap/c/{{version}}/{identity['organization_id'][:15]}"
    )
    text = reference_file("oauth_postman_collection_examples.txt").read_text(encoding="utf-8")
    userinfo_block = text[
        text.index("/services/oauth2/userinfo") : text.index("/services/oauth2/revoke")
    ]
    documented = set(re.findall(r'"(\w+)":', userinfo_block)) | set(
        re.findall(r'"(\w+)": \.\.\.', userinfo_block)
    )
    documented |= {
        "active",
        "user_type",
        "language",
        "locale",
        "utcOffset",
        "updated_at",
        "is_app_installed",
    }
    userinfo = httpx.get(
        f"{http_sfemu}/services/oauth2/userinfo", headers=bearer, trust_env=False
    ).json()
    nested = {
        "picture",
        "thumbnail",
        "country",
        "enterprise",
        "metadata",
    }  # inside photos, address, urls
    assert documented - nested <= set(userinfo)
    assert {"enterprise", "metadata"} <= set(userinfo["urls"]) and set(userinfo["photos"]) == {
        "picture",
        "thumbnail",
    }


def test_oauth_errors_match_the_captured_bodies(http_sfemu: EmulatorServer) -> None:
    text = reference_file("oauth_error_responses.txt").read_text(encoding="utf-8")
    captured = [json.loads(body) for body in re.findall(r'^(\{"error".*?\})', text, re.MULTILINE)]
    app = http_sfemu.info()["connected_apps"][0]
    form = {"client_id": app["client_id"], "client_secret": app["client_secret"]}
    response = httpx.post(
        f"{http_sfemu}/services/oauth2/token",
        data={**form, "grant_type": "refresh_token", "refresh_token": "nope"},
        trust_env=False,
    )
    assert response.status_code == 400 and response.headers["content-type"].startswith(
        "application/json"
    )
    assert (
        response.json() in captured
    )  # {"error":"invalid_grant","error_description":"expired access/refresh token"}
    assert {
        "error": "invalid_grant",
        "error_description": "invalid code verifier",
    } in captured  # see test_oauth_flow
    for body in captured:
        assert list(body) == ["error", "error_description"]
    revoke = httpx.post(
        f"{http_sfemu}/services/oauth2/revoke", data={"token": "nope"}, trust_env=False
    )
    # The revoke endpoint is the exception: its errors are form-encoded (test_fidelity).
    assert revoke.status_code == 400 and revoke.text == (
        "error=invalid_token&error_description=invalid%20token"
    )


# -- REST -----------------------------------------------------------------------------------


def test_versions_list_shape_and_labels(http_sfemu: EmulatorServer) -> None:
    text = reference_file("misc_rest_samples.txt").read_text(encoding="utf-8")
    documented = re.findall(
        r'"label" : "([^"]+)",\s*"url" : "([^"]+)",\s*"version" : "([^"]+)"', text
    )
    assert len(documented) == 3
    for label, url, version in documented:
        assert version_label(version) == label and url == f"/services/data/v{version}"
    for version, label in re.findall(r"v(\d+\.0) = \"([^\"]+)\"", text):
        assert version_label(version) == label
    response = httpx.get(f"{http_sfemu}/services/data/", trust_env=False)
    assert response.status_code == 200 and "sforce-limit-info" not in response.headers
    for entry in response.json():
        assert list(entry) == ["label", "url", "version"]


def test_limit_info_header_and_limits_body(api: httpx.Client) -> None:
    response = api.get(f"{V}/limits")
    assert re.fullmatch(r"api-usage=\d+/\d+", response.headers["sforce-limit-info"])
    # The simple-salesforce fixture is an older org's answer (DailyBulkApiRequests, renamed
    # DailyBulkApiBatches in 49.0): every key of it is there at an API version of its time.
    # The full key set of a recent version is checked in tests/sfemu/test_fidelity.py.
    fixture = reference_json("limits_response_simple_salesforce_fixture.json")
    old = api.get("/services/data/v45.0/limits").json()
    assert set(fixture) <= set(old)
    for body in (response.json(), old):
        for name, value in body.items():
            assert {"Max", "Remaining"} <= set(value), name
            assert isinstance(value["Max"], int) and isinstance(value["Remaining"], int)


def test_create_update_upsert_delete_statuses_and_bodies(api: httpx.Client) -> None:
    text = reference_file("rest_upsert_and_status_samples.txt").read_text(encoding="utf-8")
    created_sample = loads_first_json(text, '{\n"id":"0018a00001rBqb8AAC"')
    updated_sample = loads_first_json(text, '{\n"id" : "001D000000Kv3g5IAB"')
    created = api.patch(
        f"{V}/sobjects/Survey_Response__c/Response_ID__c/11999", json={"NPS_Score__c": 5}
    )
    assert created.status_code == 201 and list(created.json()) == list(created_sample)
    updated = api.patch(
        f"{V}/sobjects/Survey_Response__c/Response_ID__c/11999", json={"NPS_Score__c": 6}
    )
    assert updated.status_code == 200 and list(updated.json()) == list(updated_sample)
    assert updated.json()["created"] is False and created.json()["created"] is True
    old = api.patch(
        "/services/data/v45.0/sobjects/Survey_Response__c/Response_ID__c/11999",
        json={"NPS_Score__c": 7},
    )
    assert old.status_code == 204 and old.content == b""
    wrong_field = api.patch(f"{V}/sobjects/Survey_Response__c/Not_An_External_Id__c/1", json={})
    assert wrong_field.status_code == 404 and wrong_field.json()[0]["errorCode"] == "NOT_FOUND"
    plain = api.post(f"{V}/sobjects/Account", json={"Name": "Created"})
    assert plain.status_code == 201 and list(plain.json()) == ["id", "success", "errors"]
    assert "location" not in plain.headers
    assert (
        api.patch(f"{V}/sobjects/Account/{plain.json()['id']}", json={"Phone": "1"}).status_code
        == 204
    )
    assert api.delete(f"{V}/sobjects/Account/{plain.json()['id']}").status_code == 204


def test_error_envelopes_match_the_captured_bodies(
    http_sfemu: EmulatorServer, api: httpx.Client
) -> None:
    captured = error_lines()

    def check(response: httpx.Response, code: str, *, exact_message: bool = True) -> None:
        status, entry = captured[code]
        body = response.json()
        assert response.status_code == status, (code, response.status_code)
        assert isinstance(body, list) and len(body) == 1
        assert set(body[0]) == set(entry), (code, body[0], entry)
        assert body[0]["errorCode"] == code
        if exact_message:
            assert body[0]["message"] == entry["message"], code

    check(httpx.get(f"{http_sfemu}{V}/limits", trust_env=False), "INVALID_SESSION_ID")
    check(
        httpx.get(f"{http_sfemu}{V}/limits", headers={"Authorization": "Basic x"}, trust_env=False),
        "INVALID_AUTH_HEADER",
    )
    check(api.post(f"{V}/sobjects/Account", json={"Phone": "1"}), "REQUIRED_FIELD_MISSING")
    check(api.get(f"{V}/sobjects/Account/001000000000001AAA"), "NOT_FOUND")
    check(
        api.post(
            f"{V}/sobjects/Contact", json={"LastName": "x", "Email": "Not a real email address"}
        ),
        "INVALID_EMAIL_ADDRESS",
    )
    first = api.post(f"{V}/sobjects/Survey_Response__c", json={"Response_ID__c": "dup"}).json()[
        "id"
    ]
    duplicate = api.post(f"{V}/sobjects/Survey_Response__c", json={"Response_ID__c": "dup"})
    check(duplicate, "DUPLICATE_VALUE", exact_message=False)
    assert duplicate.json()[0]["message"] == (
        f"duplicate value found: Response_ID__c duplicates value on record with id: {first[:15]}"
    )
    http_sfemu.control.post("/faults", json={"error": "UNABLE_TO_LOCK_ROW", "count": 1})
    locked = api.patch(f"{V}/sobjects/Survey_Response__c/{first}", json={"NPS_Score__c": 1})
    check(locked, "UNABLE_TO_LOCK_ROW", exact_message=False)
    assert (
        locked.json()[0]["message"]
        == f"unable to obtain exclusive access to this record or 1 records: {first}"
    )
    query = api.get(f"{V}/query", params={"q": "SELECT Id, FullName FROM Account"})
    check(query, "INVALID_FIELD", exact_message=False)
    message = query.json()[0]["message"]
    assert "SELECT Id, FullName FROM Account\n" in message and "\n" + " " * 11 + "^\n" in message
    assert "No such column 'FullName' on entity 'Account'" in message
    http_sfemu.control.patch("/orgs/acme", json={"daily_api_limit": 0})
    check(api.get(f"{V}/limits"), "REQUEST_LIMIT_EXCEEDED")


def test_describe_fields_have_the_keys_of_a_real_describe(api: httpx.Client) -> None:
    real = {
        entry["name"]: entry
        for entry in reference_json("describe_field_samples_real_capture.json")["fields"]
    }
    describe = api.get(f"{V}/sobjects/Survey_Response__c/describe").json()
    ours = {entry["name"]: entry for entry in describe["fields"]}
    # This capture predates API 34.0 (no polymorphicForeignKey): its keys are a subset of a
    # recent describe's, whose exact key set tests/sfemu/test_fidelity.py checks.
    real_keys = set(next(iter(real.values())))
    for name, entry in ours.items():
        assert real_keys <= set(entry), name
    for key in (
        "type",
        "soapType",
        "length",
        "byteLength",
        "createable",
        "updateable",
        "nillable",
        "defaultedOnCreate",
        "idLookup",
        "externalId",
        "unique",
        "referenceTo",
        "relationshipName",
        "namePointing",
        "filterable",
        "sortable",
        "aggregatable",
        "picklistValues",
    ):
        assert ours["Id"][key] == real["Id"][key], ("Id", key)
        assert ours["OwnerId"][key] == real["OwnerId"][key], ("OwnerId", key)
    for key in (
        "autoNumber",
        "type",
        "soapType",
        "createable",
        "updateable",
        "nillable",
        "defaultedOnCreate",
        "idLookup",
        "nameField",
        "length",
        "byteLength",
        "groupable",
    ):
        assert ours["Name"][key] == real["Name"][key], ("Name", key)
    picklist = ours["Sentiment__c"]
    sample = real["CurrencyIsoCode"]
    assert picklist["restrictedPicklist"] is True and picklist["type"] == sample["type"]
    assert [set(v) for v in picklist["picklistValues"]] == [set(sample["picklistValues"][0])] * 3
    assert picklist["byteLength"] == picklist["length"] * 3


# -- Composite and Collections ----------------------------------------------------------------


def test_collections_and_composite_follow_the_documented_shapes(api: httpx.Client) -> None:
    text = reference_file("composite_and_collections_samples.txt").read_text(encoding="utf-8")
    create_request = loads_first_json(text, '{\n "allOrNone" : false')
    results = api.post(f"{V}/composite/sobjects", json=create_request)
    assert results.status_code == 200
    assert [list(r) for r in results.json()] == [["id", "success", "errors"]] * 2
    upsert_sample = json.loads(re.search(r'example 200: (\[\{"id".*?\}\])', text).group(1))
    upserted = api.patch(
        f"{V}/composite/sobjects/Survey_Response__c/Response_ID__c",
        json={"records": [{"attributes": {"type": "Survey_Response__c"}, "Response_ID__c": "S-1"}]},
    ).json()
    assert list(upserted[0]) == list(upsert_sample[0])
    rolled_back = re.search(
        r'"ALL_OR_NONE_OPERATION_ROLLED_BACK",\s*"message" : "([^"]+)"', text
    ).group(1)
    failed = api.post(
        f"{V}/composite/sobjects",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Account"}, "Name": "ok"},
                {"attributes": {"type": "Account"}},
            ],
        },
    ).json()
    assert failed[0]["errors"][0] == {
        "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "message": rolled_back,
        "fields": [],
    }
    assert failed[0].get("id") is None and failed[1]["success"] is False
    composite_request = json.loads(
        re.search(r'(\{"compositeRequest":.*?\}\]\})', text, re.DOTALL)
        .group(1)
        .replace("{{version}}", "62.0")
    )
    composite = api.post(f"{V}/composite", json=composite_request).json()["compositeResponse"]
    result_sample = loads_first_json(text, '{\n "body": {\n "id": "001R00000064wdtIAA"')
    assert list(composite[0]) == list(result_sample) and composite[0]["httpStatusCode"] == 201
    assert list(composite[0]["body"]) == list(result_sample["body"])
    assert composite[0]["httpHeaders"]["Location"].startswith(f"{V}/sobjects/Account/")
    error_sample = loads_first_json(text, '{\n  "body" : [ {')
    bad = api.post(
        f"{V}/composite",
        json={
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": f"{V}/sobjects/Contact",
                    "referenceId": "badContact",
                    "body": {"LastName": "x", "Email": "Not a real email address"},
                }
            ]
        },
    ).json()["compositeResponse"][0]
    assert bad == {**error_sample, "body": bad["body"]} and bad["body"] == error_sample["body"]


# -- Outbound messages ----------------------------------------------------------------------


def test_outbound_message_bytes_and_ack(http_sfemu: EmulatorServer) -> None:
    expected = reference_file("outbound_message_notifications_contact.xml").read_bytes()
    root = SafeET.fromstring(expected)
    ns = {
        "om": "http://soap.sforce.com/2005/09/outbound",
        "sf": "urn:sobject.enterprise.soap.sforce.com",
    }
    notifications = root.find(".//om:notifications", ns)
    items = [
        NotificationContent(
            item.findtext("om:Id", namespaces=ns),
            item.find("om:sObject", ns)
            .get("{http://www.w3.org/2001/XMLSchema-instance}type")
            .split(":")[1],
            [(child.tag.split("}")[1], child.text or "") for child in item.find("om:sObject", ns)],
        )
        for item in notifications.findall("om:Notification", ns)
    ]
    rendered = render_notifications(
        notifications.findtext("om:OrganizationId", namespaces=ns),
        notifications.findtext("om:ActionId", namespaces=ns),
        notifications.findtext("om:SessionId", namespaces=ns),
        notifications.findtext("om:EnterpriseUrl", namespaces=ns),
        notifications.findtext("om:PartnerUrl", namespaces=ns),
        items,
    )
    assert rendered == expected
    assert is_ack(200, reference_file("outbound_message_ack_response.xml").read_bytes())
    fault = (
        reference_file("outbound_message_fault_response_template.xml")
        .read_bytes()
        .replace(b"{0}", b"nope")
    )
    assert not is_ack(200, fault) and not is_ack(500, fault)
    wsdl = reference_file("outbound_message_wsdl_snippets.xml").read_text(encoding="utf-8")
    # The emulator puts in one message at most as many notifications as the WSDL allows.
    declared = re.search(r'<element name="Notification" maxOccurs="(\d+)"', wsdl)
    assert declared, "the WSDL sample declares no maxOccurs for Notification"
    assert http_sfemu.emulator.settings.outbound_batch_size == int(declared.group(1))
