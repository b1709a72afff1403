"""Fidelity with Salesforce's documented examples and real captures (issue 16).

Every expectation here comes from a Salesforce document, a real capture or a public client's
code, never from the emulator's own output: the fixtures under tests/sfemu/fixtures/ say where
each came from. Also: field and object names are case-insensitive wherever Salesforce treats
them so (bodies, SOQL, URLs, ``fields=``), checked with hypothesis.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import defusedxml.ElementTree as SafeET
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfemu.testing import InProcessEmulator, in_process

from .conftest import Api, error_of

FIXTURES = Path(__file__).parent / "fixtures"
BULK1_NS = "{http://www.force.com/2009/06/asyncapi/dataload}"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# -- 1. sObject Collections update with Salesforce's own body ("id", lowercase) --------------


def test_collections_update_accepts_the_documented_lowercase_id(admin: Api) -> None:
    example = fixture("collections_update_docs_example.json")
    account = admin.create("Account", {"Name": "Docs example"})
    contact = admin.create("Contact", {"LastName": "Docs example"})
    body = json.loads(json.dumps(example["request"]))
    body["records"][0]["id"] = account
    body["records"][1]["id"] = contact
    response = admin.patch("/composite/sobjects", json=body)
    assert response.status_code == 200
    results = response.json()
    assert [list(r) for r in results] == [list(r) for r in example["response"]]
    assert [r["id"] for r in results] == [account, contact]
    assert all(r["success"] is True and r["errors"] == [] for r in results)
    assert admin.get(f"/sobjects/Account/{account}").json()["NumberOfEmployees"] == 27000
    assert admin.get(f"/sobjects/Contact/{contact}").json()["Title"] == "Lead Engineer"


@pytest.mark.parametrize("key", ["id", "ID", "iD", "Id"])
def test_collections_update_and_create_see_the_id_under_any_case(admin: Api, key: str) -> None:
    account = admin.create("Account", {"Name": "Case of the Id"})
    updated = admin.patch(
        "/composite/sobjects",
        json={"records": [{"attributes": {"type": "Account"}, key: account, "Phone": "1"}]},
    ).json()
    assert updated == [{"id": account, "success": True, "errors": []}]
    created = admin.post(
        "/composite/sobjects",
        json={"records": [{"attributes": {"type": "Account"}, key: account, "Name": "x"}]},
    ).json()
    assert created[0]["success"] is False
    assert created[0]["errors"][0]["statusCode"] == "INVALID_FIELD"


# -- 2. Revoke errors are form-encoded --------------------------------------------------------


def test_revoke_errors_are_form_encoded_as_salesforce_sends_them(client: Any) -> None:
    # The body Salesforce answers (issue 16's capture); jsforce's OAuth2.revokeToken parses
    # revoke errors with querystring.parse, not JSON.parse (lib/oauth2 in jsforce).
    missing = client.post("/services/oauth2/revoke", data={})
    assert missing.status_code == 400
    assert missing.text == (
        "error=unsupported_token_type&error_description=this%20token%20type%20is%20not%20supported"
    )
    assert missing.headers["content-type"].startswith("application/x-www-form-urlencoded")
    unknown = client.post("/services/oauth2/revoke", data={"token": "nope"})
    assert unknown.status_code == 400
    assert parse_qs(unknown.text) == {
        "error": ["invalid_token"],
        "error_description": ["invalid token"],
    }
    by_get = client.get("/services/oauth2/revoke", params={"token": "nope"})
    assert by_get.status_code == 400 and parse_qs(by_get.text)["error"] == ["invalid_token"]


def test_token_endpoint_errors_stay_json(client: Any) -> None:
    # Only the revoke endpoint is form-encoded; the token endpoint answers a JSON object
    # (reference/salesforce/oauth_error_responses.txt).
    response = client.post("/services/oauth2/token", data={"grant_type": "nope"})
    assert response.status_code in (400, 401)
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()) == {"error", "error_description"}


# -- 3. Describe has the keys a real describe has ---------------------------------------------


def test_describe_fields_have_the_keys_of_an_api_61_describe(admin: Api) -> None:
    real = fixture("describe_real_captures.json")
    real_keys = set(real["field_Id"])
    for sobject in ("Account", "Contact", "Task", "Case", "Survey_Response__c"):
        for entry in admin.get(f"/sobjects/{sobject}/describe").json()["fields"]:
            assert set(entry) == real_keys, (sobject, entry["name"], set(entry) ^ real_keys)


def test_reference_fields_say_whether_they_are_polymorphic(admin: Api) -> None:
    real = fixture("describe_real_captures.json")
    task = {f["name"]: f for f in admin.get("/sobjects/Task/describe").json()["fields"]}
    assert task["WhoId"]["referenceTo"] == ["Contact", "Lead"]
    assert task["WhoId"]["polymorphicForeignKey"] is True
    contact = {f["name"]: f for f in admin.get("/sobjects/Contact/describe").json()["fields"]}
    assert contact["AccountId"]["polymorphicForeignKey"] is False
    assert contact["Id"]["polymorphicForeignKey"] is False
    owner = contact["OwnerId"]
    for key in ("polymorphicForeignKey", "namePointing", "referenceTo", "aiPredictionField"):
        assert owner[key] == real["field_OwnerId"][key], key
    for key in ("aiPredictionField", "searchPrefilterable", "formulaTreatNullNumberAsZero"):
        assert contact["Id"][key] == real["field_Id"][key], key


def test_describe_object_and_global_entries_have_the_real_keys(admin: Api) -> None:
    real = fixture("describe_real_captures.json")
    describe = admin.get("/sobjects/Survey_Response__c/describe").json()
    assert set(real["describe_object_keys"]) <= set(describe)
    # idEnabled is in jsforce's DescribeSObjectResult too; nothing else is extra.
    assert set(describe) - set(real["describe_object_keys"]) == {"idEnabled"}
    assert describe["idEnabled"] is True
    entries = admin.get("/sobjects").json()["sobjects"]
    for entry in entries:
        assert set(real["describe_global_entry_keys"]) <= set(entry), entry["name"]
        assert isinstance(entry["idEnabled"], bool)
    basic = admin.get("/sobjects/Account").json()["objectDescribe"]
    assert "idEnabled" in basic


# -- 4. /limits lists what the REST API Developer Guide lists ---------------------------------


def test_limits_have_the_keys_of_the_documented_example(admin: Api) -> None:
    example = fixture("list_org_limits_docs_example.json")
    body = admin.get("/limits").json()
    assert set(body) == set(example["body"])
    for name, entry in example["body"].items():
        assert set(body[name]) == set(entry), name
        assert isinstance(body[name]["Max"], int) and isinstance(body[name]["Remaining"], int)
    assert body["DailyBulkV2QueryJobs"] == {"Max": 10000, "Remaining": 10000}
    assert body["DailyBulkV2QueryFileStorageMB"]["Max"] == 976562
    assert body["PermissionSets"]["CreateCustom"] == {"Max": 1000, "Remaining": 1000}
    assert body["DailyApiRequests"] == {"Max": 100000, "Remaining": 100000 - 1}


def test_limits_follow_the_api_version(emu: InProcessEmulator, client: Any) -> None:
    # The "Limits" resource page: DailyBulkApiRequests (48.0 and earlier) became
    # DailyBulkApiBatches (49.0 and later); the Bulk API 2.0 query limits exist from 47.0,
    # DailyAsyncApexTests from 56.0.
    token = emu.token("admin@example.com")
    old = Api(client, token, "45.0").get("/limits").json()
    assert "DailyBulkApiRequests" in old and "DailyBulkApiBatches" not in old
    assert "DailyBulkV2QueryJobs" not in old and "DailyAsyncApexTests" not in old
    v48 = Api(client, token, "48.0").get("/limits").json()
    assert "DailyBulkV2QueryJobs" in v48 and "DailyBulkApiRequests" in v48
    new = Api(client, token, "62.0").get("/limits").json()
    assert "DailyBulkApiBatches" in new and "DailyBulkApiRequests" not in new


# -- 5. Bulk API 1.0 says it is not emulated; Bulk API 2.0 errs like REST ------------------------


def test_bulk_api_1_answers_a_bulk_error_saying_it_is_not_emulated(
    emu: InProcessEmulator, client: Any
) -> None:
    # Bulk API 1.0's error shape: <error xmlns=".../asyncapi/dataload"><exceptionCode>...
    # (Bulk API Developer Guide, "Errors"; a public client's test fixture BULK_XML_ERROR).
    job = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<jobInfo xmlns="http://www.force.com/2009/06/asyncapi/dataload">'
        "<operation>insert</operation><object>Account</object><contentType>CSV</contentType>"
        "</jobInfo>"
    )
    response = client.post(
        "/services/async/62.0/job",
        content=job,
        headers={"X-SFDC-Session": emu.token(), "Content-Type": "application/xml"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/xml")
    error = SafeET.fromstring(response.content)
    assert error.tag == f"{BULK1_NS}error"
    assert error.findtext(f"{BULK1_NS}exceptionCode") == "FeatureNotEnabled"
    assert "Bulk API 1.0 is not emulated" in error.findtext(f"{BULK1_NS}exceptionMessage")
    as_json = client.post(
        "/services/async/62.0/job",
        json={"operation": "insert", "object": "Account", "contentType": "JSON"},
        headers={"X-SFDC-Session": emu.token()},
    )
    assert as_json.status_code == 400
    assert as_json.json()["exceptionCode"] == "FeatureNotEnabled"
    assert "not emulated" in as_json.json()["exceptionMessage"]


def test_bulk_api_2_errs_in_the_rest_envelope(admin: Api) -> None:
    # Bulk API 2.0 errs in the REST envelope (reference/salesforce/bulk2_ingest_samples.txt:
    # a deleted or unknown job answers 404 NOT_FOUND); its own errors use the same shape.
    missing = admin.get("/jobs/ingest/7506g00000DhRA2AAN")
    assert missing.status_code == 404
    assert error_of(missing) == {
        "errorCode": "NOT_FOUND",
        "message": "The requested resource does not exist",
    }
    refused = admin.post("/jobs/ingest", json={"object": "Account", "operation": "merge"})
    assert refused.status_code == 400
    assert error_of(refused)["errorCode"] == "INVALIDJOB"
    # A wrong URL is still told apart: 404 NOT_FOUND.
    assert error_of(admin.get("/nothing/here"))["errorCode"] == "NOT_FOUND"


# -- Names are case-insensitive wherever Salesforce treats them so ----------------------------


def _any_case(name: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda flags: "".join(
            c.upper() if up else c.lower() for c, up in zip(name, flags, strict=True)
        )
    )


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[InProcessEmulator, Api]]:
    """One emulator for the module: hypothesis runs many examples per test."""
    with in_process() as instance, instance.client() as http:
        api = Api(http, instance.token("admin@example.com"))
        yield instance, api


CASE_SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@CASE_SETTINGS
@given(
    sobject=_any_case("Contact"),
    last_name=_any_case("LastName"),
    email=_any_case("Email"),
    field_param=_any_case("LastName"),
)
def test_body_url_and_fields_names_are_case_insensitive(
    shared: tuple[InProcessEmulator, Api],
    sobject: str,
    last_name: str,
    email: str,
    field_param: str,
) -> None:
    _emu, api = shared
    created = api.post(f"/sobjects/{sobject}", json={last_name: "Case", email: "c@example.com"})
    assert created.status_code == 201, created.text
    record_id = created.json()["id"]
    got = api.get(f"/sobjects/{sobject}/{record_id}", params={"fields": f"{field_param},{email}"})
    assert got.status_code == 200
    # Salesforce answers with the canonical names, whatever the case asked.
    assert got.json()["attributes"]["type"] == "Contact"
    assert got.json()["LastName"] == "Case" and got.json()["Email"] == "c@example.com"
    updated = api.patch(f"/sobjects/{sobject}/{record_id}", json={last_name: "Changed"})
    assert updated.status_code == 204


@CASE_SETTINGS
@given(
    select=_any_case("select"),
    name=_any_case("Name"),
    sobject=_any_case("Account"),
    where=_any_case("where"),
    order=_any_case("order by"),
)
def test_soql_keywords_fields_and_objects_are_case_insensitive(
    shared: tuple[InProcessEmulator, Api],
    select: str,
    name: str,
    sobject: str,
    where: str,
    order: str,
) -> None:
    _emu, api = shared
    soql = f"{select} Id, {name} FROM {sobject} {where} {name} = 'Acme Corp' {order} {name}"
    response = api.query(soql)
    assert response.status_code == 200, response.text
    records = response.json()["records"]
    assert records and all(r["attributes"]["type"] == "Account" for r in records)
    assert all(set(r) == {"attributes", "Id", "Name"} for r in records)


@CASE_SETTINGS
@given(
    sobject=_any_case("Survey_Response__c"),
    external=_any_case("Response_ID__c"),
    score=_any_case("NPS_Score__c"),
    id_key=_any_case("Id"),
)
def test_upsert_and_collections_names_are_case_insensitive(
    shared: tuple[InProcessEmulator, Api], sobject: str, external: str, score: str, id_key: str
) -> None:
    _emu, api = shared
    upserted = api.patch(f"/sobjects/{sobject}/{external}/case-1", json={score: 5})
    assert upserted.status_code in (200, 201), upserted.text
    record_id = upserted.json()["id"]
    updated = api.patch(
        "/composite/sobjects",
        json={"records": [{"attributes": {"type": sobject}, id_key: record_id, score: 7}]},
    ).json()
    assert updated == [{"id": record_id, "success": True, "errors": []}]
    retrieved = api.get(
        f"/composite/sobjects/{sobject}", params={"ids": record_id, "fields": score}
    ).json()
    assert retrieved[0]["NPS_Score__c"] == 7


@CASE_SETTINGS
@given(
    relationship=_any_case("Contact__r"),
    key_field=_any_case("External_Key__c"),
    parent_field=_any_case("LastName"),
    sobject=_any_case("Survey_Response__c"),
)
def test_relationship_names_in_bodies_and_soql_are_case_insensitive(
    shared: tuple[InProcessEmulator, Api],
    relationship: str,
    key_field: str,
    parent_field: str,
    sobject: str,
) -> None:
    _emu, api = shared
    if not api.query("SELECT Id FROM Contact WHERE External_Key__c = 'CASE-K'").json()["records"]:
        api.create("Contact", {"LastName": "Parent", "External_Key__c": "CASE-K"})
    created = api.post(f"/sobjects/{sobject}", json={relationship: {key_field: "CASE-K"}})
    assert created.status_code == 201, created.text
    record_id = created.json()["id"]
    rows = api.query(
        f"SELECT Id, {relationship}.{parent_field} FROM {sobject} WHERE Id = '{record_id}'"
    ).json()["records"]
    assert rows[0]["Contact__r"]["LastName"] == "Parent"
    assert rows[0]["Contact__r"]["attributes"]["type"] == "Contact"
