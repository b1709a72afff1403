"""simple-salesforce's Bulk API 2.0 client (``sf.bulk2``), written against Salesforce, driving the
emulator's ingest and query jobs over HTTPS: insert, update, upsert, delete, the result CSVs,
a failing job and a query paged by ``Sforce-Locator``."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceOperationError

Connect = Callable[..., Salesforce]
WAIT = 0.05  # the client's first pause before polling the job (its default is 5 s)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_insert_update_upsert_delete_through_bulk2(salesforce: Connect) -> None:
    sf = salesforce("integration@example.com")
    inserted = sf.bulk2.Contact.insert(
        records=[
            {"LastName": "Bulk", "FirstName": f"N{i}", "External_Key__c": f"BK{i}"}
            for i in range(5)
        ]
        + [{"FirstName": "NoLastName"}],
        wait=WAIT,
    )
    assert len(inserted) == 1
    summary = inserted[0]
    assert summary["numberRecordsProcessed"] == 6
    assert summary["numberRecordsFailed"] == 1
    assert summary["numberRecordsTotal"] == 6
    job_id = summary["job_id"]
    good = rows(sf.bulk2.Contact.get_successful_records(job_id))
    assert len(good) == 5 and all(r["sf__Created"] == "true" for r in good)
    failed = rows(sf.bulk2.Contact.get_failed_records(job_id))
    assert failed[0]["sf__Error"].startswith("REQUIRED_FIELD_MISSING:")
    assert rows(sf.bulk2.Contact.get_unprocessed_records(job_id)) == []

    ids = [r["sf__Id"] for r in good]
    updated = sf.bulk2.Contact.update(
        records=[{"Id": rid, "Title": "Bulk updated"} for rid in ids], wait=WAIT
    )
    assert updated[0]["numberRecordsFailed"] == 0
    assert sf.Contact.get(ids[0])["Title"] == "Bulk updated"

    upserted = sf.bulk2.Contact.upsert(
        records=[
            {"External_Key__c": "BK0", "LastName": "Again"},
            {"External_Key__c": "BK9", "LastName": "New"},
        ],
        external_id_field="External_Key__c",
        wait=WAIT,
    )
    outcome = rows(sf.bulk2.Contact.get_successful_records(upserted[0]["job_id"]))
    assert {r["External_Key__c"]: r["sf__Created"] for r in outcome} == {
        "BK0": "false",
        "BK9": "true",
    }

    # The integration profile cannot delete Contacts: every record fails, as in a real org.
    refused = sf.bulk2.Contact.delete(records=[{"Id": rid} for rid in ids], wait=WAIT)
    assert refused[0]["numberRecordsFailed"] == 5
    errors = rows(sf.bulk2.Contact.get_failed_records(refused[0]["job_id"]))
    assert errors[0]["sf__Error"].startswith("INSUFFICIENT_ACCESS_OR_READONLY:")
    assert errors[0]["sf__Id"] == ids[0]
    admin = salesforce()
    deleted = admin.bulk2.Contact.delete(records=[{"Id": rid} for rid in ids], wait=WAIT)
    assert deleted[0]["numberRecordsProcessed"] == 5
    assert deleted[0]["numberRecordsFailed"] == 0
    remaining = sf.query("SELECT COUNT() FROM Contact WHERE LastName = 'Bulk'")
    assert remaining["totalSize"] == 0


def test_a_failed_job_raises_the_clients_operation_error(salesforce: Connect) -> None:
    sf = salesforce()
    with pytest.raises(SalesforceOperationError) as failed:
        sf.bulk2.Contact.insert(records=[{"LastName": "x", "Nope__c": "y"}], wait=WAIT)
    assert "InvalidBatch : Field name not found : Nope__c" in str(failed.value)


def test_query_pages_with_the_locator(salesforce: Connect) -> None:
    sf = salesforce()
    sf.bulk2.Account.insert(records=[{"Name": f"Q{i:02d}"} for i in range(12)], wait=WAIT)
    pages = list(
        sf.bulk2.Account.query(
            "SELECT Id, Name FROM Account ORDER BY Name", max_records=5, wait=WAIT
        )
    )
    assert len(pages) == 3
    names = [r["Name"] for page in pages for r in rows(page)]
    assert names == ["Acme Corp"] + [f"Q{i:02d}" for i in range(12)]


def test_query_all_sees_deleted_records(salesforce: Connect) -> None:
    sf = salesforce()
    created = sf.Account.create({"Name": "Deleted Co"})
    sf.Account.delete(created["id"])
    live = list(
        sf.bulk2.Account.query("SELECT Id FROM Account WHERE Name = 'Deleted Co'", wait=WAIT)
    )
    assert sum(len(rows(page)) for page in live) == 0
    everything = list(
        sf.bulk2.Account.query_all("SELECT Id FROM Account WHERE Name = 'Deleted Co'", wait=WAIT)
    )
    assert [r["Id"] for page in everything for r in rows(page)] == [created["id"]]
