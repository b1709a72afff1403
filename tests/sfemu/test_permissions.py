"""Profiles: API Enabled, object permissions, field-level security, record types, sharing."""

from __future__ import annotations

from typing import Any

from sfemu.testing import InProcessEmulator

from .conftest import Api, error_of


def test_integration_user_without_delete_permission_cannot_delete(
    admin: Api, integration: Api
) -> None:
    record_id = integration.create("Survey_Response__c", {"Response_ID__c": "P-1"})
    response = integration.delete(f"/sobjects/Survey_Response__c/{record_id}")
    assert response.status_code == 400
    assert error_of(response) == {
        "message": "insufficient access rights on object id",
        "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY",
        "fields": [],
    }
    assert admin.delete(f"/sobjects/Survey_Response__c/{record_id}").status_code == 204


def test_integration_user_without_create_permission_on_case_cannot_create(integration: Api) -> None:
    response = integration.post("/sobjects/Case", json={"Subject": "x"})
    assert response.status_code == 400
    assert error_of(response)["errorCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"


def test_hidden_field_does_not_exist_for_the_user(admin: Api, integration: Api) -> None:
    record_id = admin.create("Contact", {"LastName": "Born", "Birthdate": "1990-01-01"})
    body = integration.get(f"/sobjects/Contact/{record_id}").json()
    assert "Birthdate" not in body
    write = integration.post("/sobjects/Contact", json={"LastName": "x", "Birthdate": "1990-01-01"})
    assert error_of(write)["errorCode"] == "INVALID_FIELD"
    query = integration.query("SELECT Id, Birthdate FROM Contact")
    assert error_of(query)["errorCode"] == "INVALID_FIELD"
    fields = {f["name"] for f in integration.get("/sobjects/Contact/describe").json()["fields"]}
    assert "Birthdate" not in fields and "LastName" in fields


def test_read_only_field_refuses_writes(admin: Api, integration: Api) -> None:
    case_id = admin.create("Case", {"Subject": "Printer"})
    response = integration.patch(f"/sobjects/Case/{case_id}", json={"Priority": "High"})
    error = error_of(response)
    assert error["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert error["fields"] == ["Priority"]
    assert (
        integration.patch(f"/sobjects/Case/{case_id}", json={"Status": "Closed"}).status_code == 204
    )
    priority = next(
        f
        for f in integration.get("/sobjects/Case/describe").json()["fields"]
        if f["name"] == "Priority"
    )
    assert priority["updateable"] is False and priority["createable"] is False


def test_object_without_read_permission_is_invisible(emu: InProcessEmulator, client: Any) -> None:
    # A profile with no access to Opportunity sees it nowhere.
    org = emu.emulator.org("acme")
    profile = org.profiles["cxloop Integration"]
    del profile.objects["opportunity"]
    profile.invalidate()
    api = Api(client, emu.token("integration@example.com"))
    assert api.get("/sobjects/Opportunity/describe").status_code == 404
    names = {s["name"] for s in api.get("/sobjects").json()["sobjects"]}
    assert "Opportunity" not in names and "Contact" in names
    query = api.query("SELECT Id FROM Opportunity")
    assert query.status_code == 400 and error_of(query)["errorCode"] == "INVALID_TYPE"


def test_record_type_not_available_to_the_profile(admin: Api, integration: Api) -> None:
    infos = {
        rt["developerName"]: rt
        for rt in integration.get("/sobjects/Case/describe").json()["recordTypeInfos"]
    }
    assert infos["Internal"]["available"] is False and infos["Support"]["available"] is True
    assert infos["Support"]["defaultRecordTypeMapping"] is True
    internal_id = infos["Internal"]["recordTypeId"]
    case_id = admin.create("Case", {"Subject": "x"})
    response = integration.patch(f"/sobjects/Case/{case_id}", json={"RecordTypeId": internal_id})
    assert error_of(response) == {
        "message": f"Record Type ID: this ID value isn't valid for the user: {internal_id}",
        "errorCode": "INVALID_CROSS_REFERENCE_KEY",
        "fields": ["RecordTypeId"],
    }
    assert (
        admin.patch(f"/sobjects/Case/{case_id}", json={"RecordTypeId": internal_id}).status_code
        == 204
    )
    assert admin.get(f"/sobjects/Case/{case_id}").json()["RecordTypeId"] == internal_id


def test_new_records_get_the_profile_default_record_type(admin: Api) -> None:
    case_id = admin.create("Case", {"Subject": "x"})
    support = next(
        rt
        for rt in admin.get("/sobjects/Case/describe").json()["recordTypeInfos"]
        if rt["developerName"] == "Support"
    )
    assert admin.get(f"/sobjects/Case/{case_id}").json()["RecordTypeId"] == support["recordTypeId"]


def test_private_sharing_hides_other_users_records_without_view_all(
    admin: Api, integration: Api
) -> None:
    theirs = admin.create(
        "Opportunity", {"Name": "Big deal", "StageName": "Prospecting", "CloseDate": "2030-01-01"}
    )
    assert integration.get(f"/sobjects/Opportunity/{theirs}").status_code == 404
    assert integration.query("SELECT Id FROM Opportunity").json()["totalSize"] == 0
    assert admin.query("SELECT Id FROM Opportunity").json()["totalSize"] == 1


def test_lookup_to_an_invisible_record_is_refused(admin: Api, integration: Api) -> None:
    deal = admin.create(
        "Opportunity", {"Name": "Secret", "StageName": "Prospecting", "CloseDate": "2030-01-01"}
    )
    response = integration.post("/sobjects/Task", json={"Subject": "Call", "WhatId": deal})
    assert error_of(response)["errorCode"] == "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"


def test_api_disabled_profile_gets_api_currently_disabled(
    emu: InProcessEmulator, client: Any
) -> None:
    org = emu.emulator.org("acme")
    org.profiles["cxloop Integration"].api_enabled = False
    api = Api(client, emu.token("integration@example.com"))
    response = api.get("/sobjects")
    assert response.status_code == 403
    assert error_of(response) == {
        "message": "API is disabled for this user",
        "errorCode": "API_CURRENTLY_DISABLED",
    }


def test_describe_reflects_object_permissions(integration: Api, admin: Api) -> None:
    case = integration.get("/sobjects/Case/describe").json()
    assert case["createable"] is False and case["updateable"] is True and case["deletable"] is False
    assert admin.get("/sobjects/Case/describe").json()["createable"] is True
    user = admin.get("/sobjects/User/describe").json()
    assert user["createable"] is False
