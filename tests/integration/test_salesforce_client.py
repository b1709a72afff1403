"""cxloop's REST client against the emulator: every call it offers, its errors, its token care."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from cxloop.db.models import Connection
from cxloop.salesforce.client import SalesforceClient
from cxloop.salesforce.errors import (
    HostNotAllowed,
    InvalidSession,
    PermanentError,
    RequestLimitExceeded,
    TransientError,
)
from cxloop.services import connections
from cxloop.services.salesforce_clients import ConnectionUnusable, client_for
from sfemu.testing import EmulatorServer
from tests.conftest import Person
from tests.integration.conftest import link, org


@pytest.fixture
def acme(web: TestClient, emulator: EmulatorServer, owner: Person) -> dict:
    return link(web, owner, "Acme", org(emulator, "acme")["login_url"])


@pytest.fixture
def rest(linked: Container, acme: dict) -> Iterator[SalesforceClient]:
    with client_for(linked.db, linked.settings, acme["id"], linked.describe_cache) as client:
        yield client


def test_versions_limits_and_usage_recording(
    rest: SalesforceClient, linked: Container, acme: dict
) -> None:
    assert any(v["version"] == "62.0" for v in rest.versions())
    limits = rest.limits()
    assert limits["DailyApiRequests"]["Max"] == 100000
    assert rest.last_usage is not None and rest.last_usage.allocation == 100000
    usage = connections.api_usage(linked.db, acme["org_id"])
    assert usage is not None and usage.used == rest.last_usage.used


def test_single_record_crud_and_upsert_outcomes(rest: SalesforceClient) -> None:
    record_id = rest.create("Account", {"Name": "Globex"})
    assert rest.get("Account", record_id, ["Name"])["Name"] == "Globex"
    rest.update("Account", record_id, {"Name": "Globex Corp"})
    assert rest.get("Account", record_id)["Name"] == "Globex Corp"
    rest.delete("Account", record_id)
    with pytest.raises(PermanentError) as gone:
        rest.get("Account", record_id)
    assert gone.value.status == 404
    created = rest.upsert("Survey_Response__c", "Response_ID__c", "R_1", {"NPS_Score__c": 9})
    updated = rest.upsert("Survey_Response__c", "Response_ID__c", "R_1", {"NPS_Score__c": 3})
    assert (created.created, updated.created) == (True, False) and created.id == updated.id


def test_upsert_matching_several_records_is_refused_plainly(rest: SalesforceClient) -> None:
    rest.create("Contact", {"LastName": "A", "External_Key__c": "dup"})
    rest.create("Contact", {"LastName": "B", "External_Key__c": "dup"})
    with pytest.raises(PermanentError) as several:
        rest.upsert("Contact", "External_Key__c", "dup", {"LastName": "C"})
    assert several.value.status == 300 and "Several Contact records" in several.value.message


def test_query_all_follows_next_records_url(rest: SalesforceClient) -> None:
    records = [{"attributes": {"type": "Lead"}, "LastName": f"L{n}", "Company": "X"}
               for n in range(200)]  # fmt: skip
    for _ in range(11):
        assert all(r.success for r in rest.collection_create(records))
    first = rest.query("SELECT Id FROM Lead")
    assert first["done"] is False and first["totalSize"] == 2200
    assert sum(1 for _ in rest.query_all("SELECT Id FROM Lead")) == 2200


def test_collections_give_one_result_per_record(rest: SalesforceClient) -> None:
    results = rest.collection_create(
        [
            {"attributes": {"type": "Contact"}, "LastName": "Good"},
            {"attributes": {"type": "Contact"}, "FirstName": "No last name"},
        ]
    )
    assert results[0].success and results[0].id
    assert not results[1].success
    assert results[1].error is not None
    assert results[1].error.error_code == "REQUIRED_FIELD_MISSING"
    assert results[1].error.kind == "permanent" and "LastName" in results[1].error.fields
    updated = rest.collection_update(
        [{"attributes": {"type": "Contact"}, "Id": results[0].id, "Title": "Boss"}]
    )
    assert updated[0].success
    upserted = rest.collection_upsert(
        "Survey_Response__c",
        "Response_ID__c",
        [{"attributes": {"type": "Survey_Response__c"}, "Response_ID__c": f"R_{n}"}
         for n in range(3)],
    )  # fmt: skip
    assert [r.created for r in upserted] == [True, True, True]
    deleted = rest.collection_delete([results[0].id])
    assert deleted[0].success


def test_composite_passes_references(rest: SalesforceClient) -> None:
    replies = rest.composite(
        [
            {"method": "POST", "url": f"{rest.base}/sobjects/Account", "referenceId": "acct",
             "body": {"Name": "Initech"}},
            {"method": "POST", "url": f"{rest.base}/sobjects/Contact", "referenceId": "person",
             "body": {"LastName": "Lumbergh", "AccountId": "@{acct.id}"}},
        ]
    )  # fmt: skip
    assert [r["httpStatusCode"] for r in replies] == [201, 201]
    contact = rest.get("Contact", replies[1]["body"]["id"], ["AccountId"])
    assert contact["AccountId"] == replies[0]["body"]["id"]


def test_describe_is_cached_until_invalidated(rest: SalesforceClient) -> None:
    rest.describe("Case")
    calls = rest.calls
    rest.describe("case")
    assert rest.calls == calls
    rest.invalidate_describe("Case")
    rest.describe("Case")
    assert rest.calls == calls + 1


def test_errors_are_typed_by_what_to_do(rest: SalesforceClient, emulator: EmulatorServer) -> None:
    emulator.control.post("/faults", json={"error": "UNABLE_TO_LOCK_ROW", "count": 1})
    with pytest.raises(TransientError):
        rest.limits()
    emulator.control.post("/faults", json={"error": "REQUEST_LIMIT_EXCEEDED", "count": 1})
    with pytest.raises(RequestLimitExceeded):
        rest.limits()
    with pytest.raises(PermanentError) as bad:
        rest.query("SELEKT Id FROM Account")
    assert bad.value.error_code == "MALFORMED_QUERY"
    with pytest.raises(PermanentError):
        rest.create("Nope__c", {})
    with pytest.raises(PermanentError):
        rest.describe("../limits")  # not an API name: refused before anything is sent


def test_a_rotated_refresh_token_is_kept(
    linked: Container, emulator: EmulatorServer, acme: dict
) -> None:
    emulator.control.patch(
        "/orgs/acme", json={"rotate_refresh_tokens": True, "session_timeout_s": 1}
    ).raise_for_status()
    with linked.db.reader() as uow:
        before = uow.session.get(Connection, acme["id"]).refresh_token
    import time

    time.sleep(1.2)
    with client_for(linked.db, linked.settings, acme["id"]) as client:
        client.limits()
    with linked.db.reader() as uow:
        after = uow.session.get(Connection, acme["id"]).refresh_token
    assert after and after != before
    time.sleep(1.2)  # the new refresh token works for the next refresh too
    with client_for(linked.db, linked.settings, acme["id"]) as client:
        client.limits()


def test_one_retry_only_after_a_refresh(rest: SalesforceClient, emulator: EmulatorServer) -> None:
    emulator.control.post("/faults", json={"error": "INVALID_SESSION_ID", "count": 2})
    with pytest.raises(InvalidSession):
        rest.limits()
    assert rest.calls == 2


def test_hosts_that_are_not_salesforce_are_refused(linked: Container, acme: dict) -> None:
    with linked.db.uow() as uow:
        uow.session.get(Connection, acme["id"]).instance_url = "https://evil.example.com"
        uow.commit()
    with pytest.raises(ConnectionUnusable, match="not a Salesforce host"):
        client_for(linked.db, linked.settings, acme["id"])
    from cxloop.salesforce.hosts import check_url

    assert check_url("https://acme.my.salesforce.com/", []) == "https://acme.my.salesforce.com"
    with pytest.raises(HostNotAllowed):
        check_url("http://acme.my.salesforce.com", [])
    with pytest.raises(HostNotAllowed):
        check_url("https://salesforce.com.evil.example", [])
