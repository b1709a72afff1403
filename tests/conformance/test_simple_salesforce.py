"""simple-salesforce, a widely used client nobody here wrote, against the emulator over HTTPS on
loopback: every call cxloop relies on behaves as it does against Salesforce."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from sfemu.testing import EmulatorServer

Connect = Callable[..., Salesforce]


def test_create_get_update_delete(salesforce: Connect) -> None:
    sf = salesforce()
    created = sf.Contact.create(
        {"FirstName": "Erica", "LastName": "Johnson", "Email": "erica@example.com"}
    )
    assert (
        created["success"] is True and created["errors"] == [] and created["id"].startswith("003")
    )
    record = sf.Contact.get(created["id"])
    assert record["attributes"]["type"] == "Contact"
    assert record["Name"] == "Erica Johnson" and record["Email"] == "erica@example.com"
    assert sf.Contact.update(created["id"], {"Title": "CTO"}) == 204
    assert sf.Contact.get(created["id"])["Title"] == "CTO"
    assert sf.Contact.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as gone:
        sf.Contact.get(created["id"])
    assert gone.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_upsert_both_outcomes(salesforce: Connect) -> None:
    sf = salesforce("integration@example.com")
    assert (
        sf.Survey_Response__c.upsert(
            "Response_ID__c/R-1", {"NPS_Score__c": 9, "Sentiment__c": "Positive"}
        )
        == 201
    )
    assert sf.Survey_Response__c.upsert("Response_ID__c/R-1", {"NPS_Score__c": 10}) == 200
    created = sf.Survey_Response__c.upsert(
        "Response_ID__c/R-2", {"NPS_Score__c": 1}, raw_response=True
    ).json()
    assert created["created"] is True
    record = sf.Survey_Response__c.get_by_custom_id("Response_ID__c", "R-1")
    assert record["NPS_Score__c"] == 10.0 and record["Sentiment__c"] == "Positive"


def test_upsert_with_several_matches_raises_more_than_one_record(salesforce: Connect) -> None:
    sf = salesforce()
    sf.Contact.create({"LastName": "One", "External_Key__c": "shared"})
    sf.Contact.create({"LastName": "Two", "External_Key__c": "shared"})
    with pytest.raises(SalesforceMoreThanOneRecord) as many:
        sf.Contact.upsert("External_Key__c/shared", {"Title": "x"})
    assert len(many.value.content) == 2


def test_query_and_query_all_with_paging(salesforce: Connect, sfemu: EmulatorServer) -> None:
    sf = salesforce()
    sfemu.emulator.settings.query_batch_size = 200
    try:
        for chunk in range(3):
            result = sf.restful(
                "composite/sobjects",
                method="POST",
                json={
                    "allOrNone": True,
                    "records": [
                        {
                            "attributes": {"type": "Lead"},
                            "LastName": f"Lead {chunk}-{i}",
                            "Company": "Initech",
                        }
                        for i in range(150)
                    ],
                },
            )
            assert all(r["success"] for r in result)
        first_page = sf.query("SELECT Id, Name, Company FROM Lead WHERE Company = 'Initech'")
        assert (
            first_page["totalSize"] == 450
            and first_page["done"] is False
            and len(first_page["records"]) == 200
        )
        everything = sf.query_all(
            "SELECT Id, Name FROM Lead WHERE Company = 'Initech' ORDER BY Name"
        )
        assert (
            everything["totalSize"] == 450 and len({r["Id"] for r in everything["records"]}) == 450
        )
        assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 450
    finally:
        sfemu.emulator.settings.query_batch_size = 2000


def test_query_with_relationship_fields(salesforce: Connect) -> None:
    sf = salesforce()
    rows = sf.query("SELECT Id, Subject, Contact.Email, Account.Name FROM Case")["records"]
    assert rows[0]["Contact"]["Email"] == "jeraldine.black@example.com"
    assert rows[0]["Account"]["Name"] == "Acme Corp"


def test_query_all_with_deleted_records(salesforce: Connect) -> None:
    sf = salesforce()
    record_id = sf.Account.create({"Name": "Recycled"})["id"]
    sf.Account.delete(record_id)
    assert sf.query("SELECT Id FROM Account WHERE Name = 'Recycled'")["totalSize"] == 0
    assert (
        sf.query_all("SELECT Id FROM Account WHERE Name = 'Recycled'", include_deleted=True)[
            "totalSize"
        ]
        == 1
    )


def test_describe_global_and_object(salesforce: Connect) -> None:
    sf = salesforce("integration@example.com")
    names = {s["name"] for s in sf.describe()["sobjects"]}
    assert {"Account", "Contact", "Case", "Survey_Response__c"} <= names
    describe = sf.Survey_Response__c.describe()
    fields = {f["name"]: f for f in describe["fields"]}
    assert (
        fields["Response_ID__c"]["externalId"] is True
        and fields["Response_ID__c"]["idLookup"] is True
    )
    assert (
        fields["Contact__c"]["referenceTo"] == ["Contact"]
        and fields["Contact__c"]["relationshipName"] == "Contact__r"
    )
    assert [v["value"] for v in fields["Sentiment__c"]["picklistValues"]] == [
        "Positive",
        "Neutral",
        "Negative",
    ]
    assert fields["Name"]["createable"] is False and fields["Name"]["autoNumber"] is True
    assert describe["keyPrefix"] == "a05" and describe["custom"] is True
    assert sf.Case.metadata()["objectDescribe"]["name"] == "Case"
    assert sf.is_sandbox() is False


def test_limits_and_api_usage(salesforce: Connect) -> None:
    sf = salesforce()
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 100000
    assert limits["DailyApiRequests"]["Remaining"] == 100000 - 1
    assert sf.api_usage["api-usage"].used == 1
    accounts = sf.Account
    accounts.create({"Name": "Counting"})
    usage = accounts.api_usage["api-usage"]
    assert usage.used == 2 and usage.total == 100000


def test_restful_collections_call(salesforce: Connect) -> None:
    sf = salesforce()
    created = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": "Account"},
                    "Name": "example.com",
                    "BillingCity": "San Francisco",
                },
                {"attributes": {"type": "Contact"}, "LastName": "Johnson", "FirstName": "Erica"},
                {"attributes": {"type": "Contact"}, "FirstName": "No last name"},
            ],
        },
    )
    assert [r["success"] for r in created] == [True, True, False]
    assert created[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    updated = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [{"attributes": {"type": "Account"}, "Id": created[0]["id"], "Phone": "555"}]
        },
    )
    assert updated == [{"id": created[0]["id"], "success": True, "errors": []}]
    upserted = sf.restful(
        "composite/sobjects/Survey_Response__c/Response_ID__c",
        method="PATCH",
        json={
            "records": [
                {
                    "attributes": {"type": "Survey_Response__c"},
                    "Response_ID__c": "C-1",
                    "NPS_Score__c": 4,
                }
            ]
        },
    )
    assert upserted[0]["created"] is True
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": created[1]["id"]})
    assert deleted == [{"id": created[1]["id"], "success": True, "errors": []}]


def test_errors_raise_the_same_exceptions_as_against_salesforce(
    salesforce: Connect, sfemu: EmulatorServer
) -> None:
    sf = salesforce("integration@example.com")
    with pytest.raises(SalesforceMalformedRequest) as required:
        sf.Contact.create({"FirstName": "No last name"})
    assert required.value.content == [
        {
            "message": "Required fields are missing: [LastName]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["LastName"],
        }
    ]
    with pytest.raises(SalesforceMalformedRequest) as malformed:
        sf.query("SELECT Id FROM Contact WHERE")
    assert malformed.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as bad_type:
        sf.query("SELECT Id FROM Nope__c")
    assert bad_type.value.content[0]["errorCode"] == "INVALID_TYPE"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Nope__c.describe()
    sfemu.control.post(
        "/faults", json={"org": "acme", "error": "503", "count": 1}
    ).raise_for_status()
    with pytest.raises(SalesforceGeneralError) as unavailable:
        sf.Account.create({"Name": "x"})
    assert unavailable.value.status == 503
    sfemu.control.post("/users/integration@example.com/revoke_tokens").raise_for_status()
    with pytest.raises(SalesforceExpiredSession):
        sf.limits()
