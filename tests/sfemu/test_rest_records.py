"""sObject create, get, update, delete and upsert over REST, with Salesforce's errors."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Api, error_of


def test_versions_list_needs_no_session_and_carries_no_limit_header(client: Any) -> None:
    response = client.get("/services/data/")
    assert response.status_code == 200
    versions = response.json()
    assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in versions
    assert {"label": "Spring '24", "url": "/services/data/v60.0", "version": "60.0"} in versions
    assert "sforce-limit-info" not in response.headers


def test_unknown_api_version_is_not_found(admin: Api) -> None:
    admin.version = "99.0"
    response = admin.get("/sobjects")
    assert response.status_code == 404
    assert error_of(response)["errorCode"] == "NOT_FOUND"


def test_create_returns_201_with_id_success_errors(admin: Api) -> None:
    response = admin.post("/sobjects/Account", json={"Name": "Globex", "NumberOfEmployees": 12})
    assert response.status_code == 201
    body = response.json()
    assert list(body) == ["id", "success", "errors"]
    assert body["success"] is True and body["errors"] == []
    assert body["id"].startswith("001") and len(body["id"]) == 18
    assert "location" not in response.headers
    assert response.headers["sforce-limit-info"].startswith("api-usage=")


def test_get_returns_attributes_and_every_visible_field(admin: Api) -> None:
    record_id = admin.create(
        "Contact", {"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"}
    )
    body = admin.get(f"/sobjects/Contact/{record_id}").json()
    assert body["attributes"] == {
        "type": "Contact",
        "url": f"/services/data/v62.0/sobjects/Contact/{record_id}",
    }
    assert body["Id"] == record_id
    assert body["Name"] == "Ada Lovelace"
    assert body["IsDeleted"] is False
    assert body["Phone"] is None
    assert body["CreatedDate"].endswith("+0000")


def test_get_with_fields_parameter_returns_only_those(admin: Api) -> None:
    record_id = admin.create("Contact", {"LastName": "Hopper"})
    body = admin.get(f"/sobjects/Contact/{record_id}", params={"fields": "LastName,Email"}).json()
    assert list(body) == ["attributes", "LastName", "Email"]
    bad = admin.get(f"/sobjects/Contact/{record_id}", params={"fields": "Nope"})
    assert bad.status_code == 400 and error_of(bad)["errorCode"] == "INVALID_FIELD"


def test_15_character_and_lower_case_18_character_ids_find_the_record(admin: Api) -> None:
    record_id = admin.create("Account", {"Name": "Initech"})
    assert admin.get(f"/sobjects/Account/{record_id[:15]}").json()["Id"] == record_id
    assert admin.get(f"/sobjects/Account/{record_id.lower()}").json()["Id"] == record_id


def test_update_returns_204_and_changes_the_record(admin: Api) -> None:
    record_id = admin.create("Account", {"Name": "Hooli"})
    response = admin.patch(f"/sobjects/Account/{record_id}", json={"Industry": "Technology"})
    assert response.status_code == 204 and response.content == b""
    body = admin.get(f"/sobjects/Account/{record_id}").json()
    assert body["Industry"] == "Technology"
    assert body["LastModifiedDate"] >= body["CreatedDate"]


def test_delete_returns_204_then_the_record_is_deleted(admin: Api) -> None:
    record_id = admin.create("Account", {"Name": "Soon gone"})
    assert admin.delete(f"/sobjects/Account/{record_id}").status_code == 204
    again = admin.get(f"/sobjects/Account/{record_id}")
    assert again.status_code == 404 and error_of(again)["errorCode"] == "ENTITY_IS_DELETED"
    twice = admin.delete(f"/sobjects/Account/{record_id}")
    assert twice.status_code == 404 and error_of(twice)["errorCode"] == "ENTITY_IS_DELETED"


def test_missing_record_and_wrong_type_ids_are_not_found(admin: Api) -> None:
    contact_id = admin.create("Contact", {"LastName": "Elsewhere"})
    missing = admin.get("/sobjects/Account/001000000000001AAA")
    assert missing.status_code == 404
    assert error_of(missing) == {
        "errorCode": "NOT_FOUND",
        "message": "The requested resource does not exist",
    }
    wrong_type = admin.get(f"/sobjects/Account/{contact_id}")
    assert wrong_type.status_code == 404
    assert (
        error_of(wrong_type)["message"]
        == f"Provided external ID field does not exist or is not accessible: {contact_id}"
    )
    for method in ("PATCH", "DELETE"):
        response = admin.request(method, "/sobjects/Account/001000000000001AAA", json={"Name": "x"})
        assert response.status_code == 404 and error_of(response)["errorCode"] == "NOT_FOUND"


def test_malformed_id_in_the_url_is_not_found(admin: Api) -> None:
    response = admin.get("/sobjects/Account/not-an-id")
    assert response.status_code == 404
    assert (
        "Provided external ID field does not exist or is not accessible: not-an-id"
        in error_of(response)["message"]
    )


def test_unknown_object_is_not_found(admin: Api) -> None:
    for method, path in (
        ("GET", "/sobjects/Nope__c/describe"),
        ("POST", "/sobjects/Nope__c"),
        ("GET", "/sobjects/Nope"),
    ):
        response = admin.request(method, path, json={})
        assert response.status_code == 404, (method, path)
        assert error_of(response)["errorCode"] == "NOT_FOUND"


def test_required_fields_missing(admin: Api) -> None:
    response = admin.post("/sobjects/Lead", json={"FirstName": "No"})
    assert response.status_code == 400
    assert error_of(response) == {
        "message": "Required fields are missing: [LastName, Company]",
        "errorCode": "REQUIRED_FIELD_MISSING",
        "fields": ["LastName", "Company"],
    }
    record_id = admin.create("Contact", {"LastName": "Keep"})
    cleared = admin.patch(f"/sobjects/Contact/{record_id}", json={"LastName": None})
    assert error_of(cleared)["errorCode"] == "REQUIRED_FIELD_MISSING"
    blank = admin.patch(f"/sobjects/Contact/{record_id}", json={"LastName": ""})
    assert error_of(blank)["fields"] == ["LastName"]


def test_unknown_field_is_invalid_field(admin: Api) -> None:
    response = admin.post("/sobjects/Account", json={"Name": "X", "Foo__c": 1})
    assert response.status_code == 400
    assert error_of(response) == {
        "message": "No such column 'Foo__c' on sobject of type Account",
        "errorCode": "INVALID_FIELD",
    }


def test_read_only_fields_cannot_be_set(admin: Api) -> None:
    response = admin.post(
        "/sobjects/Case", json={"Subject": "x", "CaseNumber": "1", "IsClosed": True}
    )
    error = error_of(response)
    assert error["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert error["fields"] == ["CaseNumber", "IsClosed"]
    with_id = admin.post("/sobjects/Account", json={"Name": "x", "Id": "001000000000001AAA"})
    assert error_of(with_id)["errorCode"] == "INVALID_FIELD"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"LastName": "x" * 81}, "STRING_TOO_LONG", "LastName"),
        ({"LastName": "x", "Email": "not an email"}, "INVALID_EMAIL_ADDRESS", "Email"),
        ({"LastName": "x", "AccountId": "garbage"}, "MALFORMED_ID", "AccountId"),
        (
            {"LastName": "x", "AccountId": "001000000000001AAA"},
            "INVALID_CROSS_REFERENCE_KEY",
            "AccountId",
        ),
    ],
)
def test_value_rules_fail_with_salesforce_codes(
    admin: Api, body: dict[str, Any], code: str, field: str
) -> None:
    response = admin.post("/sobjects/Contact", json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["errorCode"] == code
    assert error["fields"] == [field]


def test_string_too_long_message_names_label_and_limit(admin: Api) -> None:
    error = error_of(admin.post("/sobjects/Contact", json={"LastName": "y" * 81}))
    assert error["message"] == f"Last Name: data value too large: {'y' * 81} (max length=80)"


def test_restricted_picklist_refuses_other_values(admin: Api) -> None:
    response = admin.post("/sobjects/Survey_Response__c", json={"Sentiment__c": "Ecstatic"})
    assert error_of(response) == {
        "message": "Sentiment: bad value for restricted picklist field: Ecstatic",
        "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "fields": ["Sentiment__c"],
    }
    # An unrestricted picklist takes any value, as in Salesforce.
    assert (
        admin.post("/sobjects/Account", json={"Name": "x", "Industry": "Space"}).status_code == 201
    )


def test_lookup_to_the_wrong_object_or_a_deleted_record(admin: Api) -> None:
    account_id = admin.create("Account", {"Name": "Parent"})
    wrong = admin.post("/sobjects/Survey_Response__c", json={"Contact__c": account_id})
    assert error_of(wrong)["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    contact_id = admin.create("Contact", {"LastName": "Gone"})
    admin.delete(f"/sobjects/Contact/{contact_id}")
    deleted = admin.post("/sobjects/Survey_Response__c", json={"Contact__c": contact_id})
    assert error_of(deleted) == {
        "message": "entity is deleted",
        "errorCode": "ENTITY_IS_DELETED",
        "fields": ["Contact__c"],
    }


def test_lookup_by_parent_external_id(admin: Api) -> None:
    contact_id = admin.create("Contact", {"LastName": "Keyed", "External_Key__c": "K-1"})
    response = admin.post(
        "/sobjects/Survey_Response__c", json={"Contact__r": {"External_Key__c": "k-1"}}
    )
    assert response.status_code == 201, response.text
    record = admin.get(f"/sobjects/Survey_Response__c/{response.json()['id']}").json()
    assert record["Contact__c"] == contact_id
    missing = admin.post(
        "/sobjects/Survey_Response__c", json={"Contact__r": {"External_Key__c": "nope"}}
    )
    assert error_of(missing)["errorCode"] == "INVALID_FIELD"


def test_unique_field_refuses_a_duplicate(admin: Api) -> None:
    first = admin.create("Survey_Response__c", {"Response_ID__c": "R_1"})
    response = admin.post("/sobjects/Survey_Response__c", json={"Response_ID__c": "r_1"})
    assert error_of(response) == {
        "message": "duplicate value found: Response_ID__c duplicates value on record with id:"
        f" {first[:15]}",
        "errorCode": "DUPLICATE_VALUE",
        "fields": [],
    }


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            {"Name": "x", "NumberOfEmployees": "many"},
            "Cannot deserialize instance of int from VALUE_STRING value many",
        ),
        ({"Name": "x", "AnnualRevenue": True}, "Cannot deserialize instance of double"),
        ({"Name": {"nested": 1}}, "START_OBJECT"),
        ({"Name": "x", "Description": ["a"]}, "START_ARRAY"),
    ],
)
def test_wrong_json_types_are_json_parser_errors(
    admin: Api, body: dict[str, Any], needle: str
) -> None:
    response = admin.post("/sobjects/Account", json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["errorCode"] == "JSON_PARSER_ERROR"
    assert needle in error["message"]


def test_bad_dates_and_datetimes_are_json_parser_errors(admin: Api) -> None:
    for body in (
        {"LastName": "x", "Birthdate": "2024-02-30"},
        {"LastName": "x", "Birthdate": "yesterday"},
    ):
        assert (
            error_of(admin.post("/sobjects/Contact", json=body))["errorCode"] == "JSON_PARSER_ERROR"
        )
    ok = admin.post(
        "/sobjects/Opportunity",
        json={"Name": "o", "StageName": "Prospecting", "CloseDate": "2025-01-31"},
    )
    assert ok.status_code == 201


@pytest.mark.parametrize("raw", [b"{", b"{'Name': 'x'}", b"not json", b"\xff\xfe"])
def test_malformed_json_is_json_parser_error(admin: Api, raw: bytes) -> None:
    response = admin.post(
        "/sobjects/Account", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response)["errorCode"] == "JSON_PARSER_ERROR"


def test_empty_body_is_json_parser_error(admin: Api) -> None:
    response = admin.post("/sobjects/Account", content=b"")
    assert error_of(response) == {
        "message": "The HTTP entity body is required, but this request has no entity body.",
        "errorCode": "JSON_PARSER_ERROR",
    }


def test_a_json_array_body_for_a_record_is_refused(admin: Api) -> None:
    response = admin.post("/sobjects/Account", json=[{"Name": "x"}])
    assert error_of(response)["errorCode"] == "JSON_PARSER_ERROR"


def test_values_are_coerced_like_salesforce(admin: Api) -> None:
    record_id = admin.create(
        "Account", {"Name": 42, "NumberOfEmployees": "12", "AnnualRevenue": "1000.7"}
    )
    body = admin.get(f"/sobjects/Account/{record_id}").json()
    assert body["Name"] == "42"
    assert body["NumberOfEmployees"] == 12
    assert body["AnnualRevenue"] == 1001.0  # currency with scale 0


def test_defaults_auto_numbers_and_derived_fields(admin: Api) -> None:
    first = admin.create("Case", {"Subject": "One"})
    second = admin.create("Case", {"Subject": "Two", "Status": "Closed"})
    one = admin.get(f"/sobjects/Case/{first}").json()
    two = admin.get(f"/sobjects/Case/{second}").json()
    assert one["Status"] == "New" and one["Priority"] == "Medium" and one["IsClosed"] is False
    assert two["IsClosed"] is True
    assert int(two["CaseNumber"]) == int(one["CaseNumber"]) + 1 and len(one["CaseNumber"]) == 8


def test_method_not_allowed(admin: Api) -> None:
    response = admin.request("PUT", "/sobjects/Account", json={})
    assert response.status_code == 405
    assert error_of(response)["errorCode"] == "METHOD_NOT_ALLOWED"


def test_resources_and_basic_info(admin: Api) -> None:
    resources = admin.get("").json()
    assert resources["sobjects"] == "/services/data/v62.0/sobjects"
    info = admin.get("/sobjects/Account").json()
    assert info["objectDescribe"]["name"] == "Account" and info["recentItems"] == []


# -- upsert ----------------------------------------------------------------------------------


def test_upsert_creates_201_then_updates_200(admin: Api) -> None:
    created = admin.patch(
        "/sobjects/Survey_Response__c/Response_ID__c/R-100", json={"NPS_Score__c": 9}
    )
    assert created.status_code == 201
    body = created.json()
    assert body == {"id": body["id"], "success": True, "errors": [], "created": True}
    updated = admin.patch(
        "/sobjects/Survey_Response__c/Response_ID__c/R-100", json={"NPS_Score__c": 10}
    )
    assert updated.status_code == 200
    assert updated.json() == {"id": body["id"], "success": True, "errors": [], "created": False}
    record = admin.get(f"/sobjects/Survey_Response__c/{body['id']}").json()
    assert record["NPS_Score__c"] == 10.0 and record["Response_ID__c"] == "R-100"


def test_upsert_before_api_46_has_no_created_flag_and_updates_with_204(admin: Api) -> None:
    admin.version = "45.0"
    created = admin.patch(
        "/sobjects/Survey_Response__c/Response_ID__c/R-45", json={"NPS_Score__c": 1}
    )
    assert created.status_code == 201 and "created" not in created.json()
    updated = admin.patch(
        "/sobjects/Survey_Response__c/Response_ID__c/R-45", json={"NPS_Score__c": 2}
    )
    assert updated.status_code == 204


def test_upsert_with_several_matches_answers_300_with_their_urls(admin: Api) -> None:
    first = admin.create("Contact", {"LastName": "A", "External_Key__c": "dup"})
    second = admin.create("Contact", {"LastName": "B", "External_Key__c": "DUP"})
    response = admin.patch("/sobjects/Contact/External_Key__c/dup", json={"Title": "x"})
    assert response.status_code == 300
    assert sorted(response.json()) == sorted(
        f"/services/data/v62.0/sobjects/Contact/{i}" for i in (first, second)
    )
    assert admin.get("/sobjects/Contact/External_Key__c/dup").status_code == 300


def test_upsert_on_a_field_that_is_not_an_external_id_is_not_found(admin: Api) -> None:
    for field in ("Name", "Nope__c"):
        response = admin.patch(f"/sobjects/Account/{field}/x", json={})
        assert response.status_code == 404
        assert (
            error_of(response)["message"]
            == f"Provided external ID field does not exist or is not accessible: {field}"
        )


def test_upsert_body_disagreeing_with_the_url_value_is_refused(admin: Api) -> None:
    response = admin.patch(
        "/sobjects/Survey_Response__c/Response_ID__c/A", json={"Response_ID__c": "B"}
    )
    assert response.status_code == 400
    assert error_of(response)["errorCode"] == "INVALID_FIELD"


def test_upsert_validation_errors_are_reported(admin: Api) -> None:
    response = admin.patch(
        "/sobjects/Survey_Response__c/Response_ID__c/V1", json={"Sentiment__c": "Meh"}
    )
    assert error_of(response)["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_get_and_delete_by_external_id(admin: Api) -> None:
    record_id = admin.create("Survey_Response__c", {"Response_ID__c": "E-1"})
    assert admin.get("/sobjects/Survey_Response__c/Response_ID__c/E-1").json()["Id"] == record_id
    assert admin.get("/sobjects/Survey_Response__c/Response_ID__c/none").status_code == 404
    assert admin.delete("/sobjects/Survey_Response__c/Response_ID__c/E-1").status_code == 204
    assert admin.get("/sobjects/Survey_Response__c/Response_ID__c/E-1").status_code == 404


def test_upsert_by_id_updates_an_existing_record(admin: Api) -> None:
    record_id = admin.create("Account", {"Name": "By Id"})
    response = admin.patch(f"/sobjects/Account/Id/{record_id}", json={"Phone": "123"})
    assert response.status_code == 200 and response.json()["created"] is False
    assert (
        admin.patch("/sobjects/Account/Id/001000000000001AAA", json={"Phone": "1"}).status_code
        == 404
    )
