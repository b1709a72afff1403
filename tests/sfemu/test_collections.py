"""sObject Collections: create, update, upsert, delete, retrieve; allOrNone; limits; bad input."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Api, error_of


def contacts(count: int, prefix: str = "C") -> list[dict[str, Any]]:
    return [{"attributes": {"type": "Contact"}, "LastName": f"{prefix}{i}"} for i in range(count)]


def test_create_mixed_types_in_request_order(admin: Api) -> None:
    response = admin.post(
        "/composite/sobjects",
        json={
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": "Account"},
                    "Name": "example.com",
                    "BillingCity": "San Francisco",
                },
                {"attributes": {"type": "Contact"}, "LastName": "Johnson", "FirstName": "Erica"},
            ],
        },
    )
    assert response.status_code == 200
    results = response.json()
    assert [r["id"][:3] for r in results] == ["001", "003"]
    assert all(r == {"id": r["id"], "success": True, "errors": []} for r in results)
    assert response.headers["sforce-limit-info"] == "api-usage=1/100000"


def test_partial_success_reports_each_record(admin: Api) -> None:
    results = admin.post(
        "/composite/sobjects",
        json={
            "records": [
                {"attributes": {"type": "Contact"}, "LastName": "Fine"},
                {"attributes": {"type": "Contact"}, "FirstName": "No last name"},
                {"attributes": {"type": "Survey_Response__c"}, "Sentiment__c": "Bad value"},
            ]
        },
    ).json()
    assert results[0]["success"] is True
    assert results[1] == {
        "success": False,
        "errors": [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [LastName]",
                "fields": ["LastName"],
            }
        ],
    }
    assert results[2]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert (
        admin.query("SELECT COUNT() FROM Contact WHERE LastName = 'Fine'").json()["totalSize"] == 1
    )


def test_all_or_none_rolls_everything_back(admin: Api) -> None:
    before = admin.query("SELECT COUNT() FROM Contact").json()["totalSize"]
    results = admin.post(
        "/composite/sobjects",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Contact"}, "LastName": "Would be fine"},
                {"attributes": {"type": "Contact"}, "FirstName": "Broken"},
            ],
        },
    ).json()
    assert results[0] == {
        "success": False,
        "errors": [
            {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the"
                " request was using AllOrNone header",
                "fields": [],
            }
        ],
    }
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert "id" not in results[0] and "id" not in results[1]
    assert admin.query("SELECT COUNT() FROM Contact").json()["totalSize"] == before


def test_duplicates_inside_one_request_are_caught(admin: Api) -> None:
    results = admin.post(
        "/composite/sobjects",
        json={
            "records": [
                {"attributes": {"type": "Survey_Response__c"}, "Response_ID__c": "same"},
                {"attributes": {"type": "Survey_Response__c"}, "Response_ID__c": "SAME"},
            ]
        },
    ).json()
    assert results[0]["success"] is True
    assert results[1]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"


def test_two_hundred_records_is_the_limit(admin: Api) -> None:
    assert all(
        r["success"]
        for r in admin.post("/composite/sobjects", json={"records": contacts(200)}).json()
    )
    response = admin.post("/composite/sobjects", json={"records": contacts(201)})
    assert response.status_code == 400
    assert error_of(response)["errorCode"] == "EXCEEDED_ID_LIMIT"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"records": [{"LastName": "no type"}]}, "INVALID_TYPE"),
        ({"records": [{"attributes": {"type": "Nope__c"}, "Name": "x"}]}, "INVALID_TYPE"),
        (
            {"records": [{"attributes": {"type": "Contact"}, "LastName": "x", "Bogus": 1}]},
            "INVALID_FIELD",
        ),
        (
            {
                "records": [
                    {"attributes": {"type": "Contact"}, "LastName": "x", "Birthdate": "soon"}
                ]
            },
            "JSON_PARSER_ERROR",
        ),
        ({"records": "nope"}, "JSON_PARSER_ERROR"),
        ({"allOrNone": "yes", "records": []}, "JSON_PARSER_ERROR"),
        ([], "JSON_PARSER_ERROR"),
    ],
)
def test_malformed_requests_fail_as_a_whole(admin: Api, body: Any, code: str) -> None:
    response = admin.post("/composite/sobjects", json=body)
    assert response.status_code == 400
    assert error_of(response)["errorCode"] == code


def test_create_with_an_id_fails_that_record(admin: Api) -> None:
    results = admin.post(
        "/composite/sobjects",
        json={
            "records": [
                {"attributes": {"type": "Contact"}, "Id": "003000000000001AAA", "LastName": "x"}
            ]
        },
    ).json()
    assert results[0]["errors"][0]["statusCode"] == "INVALID_FIELD"


def test_update(admin: Api) -> None:
    created = [
        r["id"] for r in admin.post("/composite/sobjects", json={"records": contacts(3)}).json()
    ]
    response = admin.patch(
        "/composite/sobjects",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Contact"}, "Id": created[0], "Title": "Boss"},
                {"attributes": {"type": "Contact"}, "Id": created[1], "LastName": None},
                {"attributes": {"type": "Contact"}, "Title": "No id"},
                {"attributes": {"type": "Contact"}, "Id": "003000000000001AAA", "Title": "Missing"},
                {"attributes": {"type": "Contact"}, "Id": "garbage", "Title": "Malformed"},
            ],
        },
    )
    results = response.json()
    assert results[0] == {"id": created[0], "success": True, "errors": []}
    assert (
        results[1]["id"] == created[1]
        and results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    )
    assert results[2]["errors"][0] == {
        "statusCode": "MISSING_ARGUMENT",
        "message": "Id not specified in an update call",
        "fields": [],
    }
    assert results[3]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert results[4]["errors"][0]["statusCode"] == "MALFORMED_ID"
    assert admin.get(f"/sobjects/Contact/{created[0]}").json()["Title"] == "Boss"


def test_delete(admin: Api) -> None:
    created = [
        r["id"] for r in admin.post("/composite/sobjects", json={"records": contacts(2)}).json()
    ]
    admin.delete(f"/sobjects/Contact/{created[1]}")
    results = admin.delete(
        "/composite/sobjects",
        params={"ids": f"{created[0]},{created[1]},003000000000001AAA,junk", "allOrNone": "false"},
    ).json()
    assert results[0] == {"id": created[0], "success": True, "errors": []}
    assert [r["errors"][0]["statusCode"] for r in results[1:]] == [
        "ENTITY_IS_DELETED",
        "INVALID_CROSS_REFERENCE_KEY",
        "MALFORMED_ID",
    ]
    assert error_of(admin.delete("/composite/sobjects"))["errorCode"] == "MISSING_ARGUMENT"


def test_delete_all_or_none_keeps_everything(admin: Api) -> None:
    created = [
        r["id"] for r in admin.post("/composite/sobjects", json={"records": contacts(2)}).json()
    ]
    results = admin.delete(
        "/composite/sobjects",
        params={"ids": f"{created[0]},003000000000001AAA", "allOrNone": "true"},
    ).json()
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert admin.get(f"/sobjects/Contact/{created[0]}").status_code == 200


def test_upsert_by_external_id(admin: Api) -> None:
    admin.create("Survey_Response__c", {"Response_ID__c": "U-1"})
    response = admin.patch(
        "/composite/sobjects/Survey_Response__c/Response_ID__c",
        json={
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": "Survey_Response__c"},
                    "Response_ID__c": "U-1",
                    "NPS_Score__c": 8,
                },
                {
                    "attributes": {"type": "Survey_Response__c"},
                    "Response_ID__c": "U-2",
                    "NPS_Score__c": 3,
                },
                {"attributes": {"type": "Survey_Response__c"}, "NPS_Score__c": 3},
                {
                    "attributes": {"type": "Survey_Response__c"},
                    "Response_ID__c": "U-3",
                    "Sentiment__c": "??",
                },
            ],
        },
    )
    assert response.status_code == 200
    results = response.json()
    assert results[0]["created"] is False and results[0]["success"] is True
    assert results[1]["created"] is True and list(results[1]) == [
        "id",
        "success",
        "errors",
        "created",
    ]
    assert results[2]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    assert results[3]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_upsert_duplicate_keys_in_one_request(admin: Api) -> None:
    results = admin.patch(
        "/composite/sobjects/Survey_Response__c/Response_ID__c",
        json={
            "records": [
                {"attributes": {"type": "Survey_Response__c"}, "Response_ID__c": "D"},
                {"attributes": {"type": "Survey_Response__c"}, "Response_ID__c": "d"},
            ]
        },
    ).json()
    assert [r["errors"][0]["statusCode"] for r in results] == ["DUPLICATE_EXTERNAL_ID"] * 2


def test_upsert_on_a_non_external_id_field_is_refused(admin: Api) -> None:
    response = admin.patch("/composite/sobjects/Contact/LastName", json={"records": []})
    assert response.status_code == 400 and error_of(response)["errorCode"] == "INVALID_FIELD"


def test_upsert_with_several_matches_fails_that_record(admin: Api) -> None:
    admin.create("Contact", {"LastName": "A", "External_Key__c": "twice"})
    admin.create("Contact", {"LastName": "B", "External_Key__c": "twice"})
    results = admin.patch(
        "/composite/sobjects/Contact/External_Key__c",
        json={
            "records": [
                {"attributes": {"type": "Contact"}, "External_Key__c": "twice", "Title": "x"}
            ]
        },
    ).json()
    assert results[0]["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"


def test_retrieve(admin: Api) -> None:
    created = [
        r["id"] for r in admin.post("/composite/sobjects", json={"records": contacts(2)}).json()
    ]
    body = admin.get(
        "/composite/sobjects/Contact",
        params={"ids": f"{created[0]},003000000000001AAA", "fields": "LastName,Title"},
    ).json()
    assert body[0]["LastName"] == "C0" and list(body[0]) == ["attributes", "LastName", "Title"]
    assert body[1] is None
    posted = admin.post(
        "/composite/sobjects/Contact", json={"ids": created, "fields": ["Id"]}
    ).json()
    assert [r["Id"] for r in posted] == created
    bad = admin.get("/composite/sobjects/Contact", params={"ids": created[0], "fields": "Nope"})
    assert error_of(bad)["errorCode"] == "INVALID_FIELD"


def test_a_collections_call_counts_as_one_api_call(admin: Api) -> None:
    admin.post("/composite/sobjects", json={"records": contacts(150)})
    usage = admin.get("/limits").headers["sforce-limit-info"]
    assert usage == "api-usage=2/100000"
