"""Bulk API 2.0 in the emulator: ingest and query jobs, their states, results and errors.

Reference shapes come from ../shared/reference/salesforce/bulk2_ingest_samples.txt and
fixtures/bulk2_docs_examples.json (each entry says where it was taken from).
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from sfemu.testing import InProcessEmulator, in_process

from .conftest import Api, error_of, reference_file

FIXTURES = Path(__file__).parent / "fixtures"
DOCS = json.loads((FIXTURES / "bulk2_docs_examples.json").read_text())
FINISHED = ("JobComplete", "Failed", "Aborted")


def wait_for(api: Api, kind: str, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll Get Job Info until the job is finished (as a client does)."""
    deadline = time.monotonic() + timeout
    while True:
        info = api.get(f"/jobs/{kind}/{job_id}").json()
        if info["state"] in FINISHED:
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.01)


def create_job(api: Api, **spec: Any) -> dict[str, Any]:
    response = api.post("/jobs/ingest", json=spec)
    assert response.status_code == 200, response.text
    return response.json()


def upload(api: Api, job_id: str, data: str | bytes) -> Any:
    content = data.encode() if isinstance(data, str) else data
    return api.request(
        "PUT",
        f"/jobs/ingest/{job_id}/batches",
        content=content,
        headers={"Content-Type": "text/csv"},
    )


def close(api: Api, job_id: str) -> Any:
    return api.patch(f"/jobs/ingest/{job_id}", json={"state": "UploadComplete"})


def run_ingest(api: Api, data: str, timeout: float = 30.0, **spec: Any) -> dict[str, Any]:
    """Create, upload, close and wait (at most `timeout` s); returns the final job info."""
    job = create_job(api, **spec)
    assert upload(api, job["id"], data).status_code == 201
    assert close(api, job["id"]).status_code == 200
    return wait_for(api, "ingest", job["id"], timeout)


def results(api: Api, job_id: str, which: str) -> list[dict[str, str]]:
    response = api.get(f"/jobs/ingest/{job_id}/{which}/")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


# -- the documented shapes ------------------------------------------------------------------


def test_create_and_job_info_have_the_keys_of_the_documented_examples(admin: Api) -> None:
    sample = reference_file("bulk2_ingest_samples.txt").read_text()
    documented_info = json.loads(sample[sample.index("{") : sample.index("}") + 1])
    upsert_start = sample.index('{\n  "id" : "7502M')
    documented_create = json.loads(sample[upsert_start : sample.index("}", upsert_start) + 1])

    created = create_job(
        admin, object="Contact", operation="upsert", externalIdFieldName="External_Key__c"
    )
    assert list(created) == list(documented_create)
    assert created["state"] == "Open"
    assert created["externalIdFieldName"] == "External_Key__c"
    assert created["id"].startswith("750") and len(created["id"]) == 18
    assert isinstance(created["apiVersion"], float)
    assert created["contentUrl"] == f"services/data/v62.0/jobs/ingest/{created['id']}/batches"

    info = admin.get(f"/jobs/ingest/{created['id']}").json()
    documented_keys = [k for k in documented_info if k in info]
    assert documented_keys == list(documented_info), set(documented_info) - set(info)
    assert [k for k in info if k in documented_info] == list(documented_info)
    assert info["jobType"] == "V2Ingest"
    assert info["numberRecordsProcessed"] == 0 and info["numberRecordsFailed"] == 0


def test_insert_end_to_end_writes_through_the_dml_path(integration: Api, admin: Api) -> None:
    data = (
        "LastName,FirstName,Email\n"
        "Simpson,Homer,homer@example.com\n"
        ",Nameless,nobody@example.com\n"
        "Flanders,Ned,not-an-email\n"
        'Lovejoy,"Tim, Rev.",tim@example.com\n'
    )
    info = run_ingest(integration, data, object="Contact", operation="insert")
    assert info["state"] == "JobComplete"
    assert info["numberRecordsProcessed"] == 4
    assert info["numberRecordsFailed"] == 2

    good = results(integration, info["id"], "successfulResults")
    assert [r["LastName"] for r in good] == ["Simpson", "Lovejoy"]
    assert all(r["sf__Created"] == "true" and r["sf__Id"].startswith("003") for r in good)
    stored = admin.get(f"/sobjects/Contact/{good[1]['sf__Id']}").json()
    assert stored["FirstName"] == "Tim, Rev." and stored["Email"] == "tim@example.com"

    bad = results(integration, info["id"], "failedResults")
    assert list(bad[0])[:2] == DOCS["failed_results_columns"]
    assert bad[0]["sf__Error"] == (
        "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"
    )
    assert bad[1]["sf__Error"].startswith("INVALID_EMAIL_ADDRESS:")
    assert bad[0]["sf__Id"] == "" and bad[0]["Email"] == "nobody@example.com"
    # Collections would have said the same for these records.
    collection = admin.post(
        "/composite/sobjects",
        json={"records": [{"attributes": {"type": "Contact"}, "FirstName": "Nameless"}]},
    ).json()
    assert collection[0]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert results(integration, info["id"], "unprocessedrecords") == []


def test_successful_results_are_quoted_like_the_documented_example(admin: Api) -> None:
    info = run_ingest(
        admin, "LastName,Email\nx,contact1@example.com\n", object="Contact", operation="insert"
    )
    body = admin.get(f"/jobs/ingest/{info['id']}/successfulResults/").text
    documented_header = DOCS["successful_results"].splitlines()[0]
    assert documented_header.startswith('"sf__Id","sf__Created",')
    header, row = body.splitlines()
    assert header == '"sf__Id","sf__Created","LastName","Email"'
    assert row.endswith(',"true","x","contact1@example.com"')


def test_update_upsert_and_delete_end_to_end(admin: Api) -> None:
    inserted = run_ingest(
        admin,
        "LastName,External_Key__c\nOne,K1\nTwo,K2\n",
        object="Contact",
        operation="insert",
    )
    ids = {
        r["External_Key__c"]: r["sf__Id"]
        for r in results(admin, inserted["id"], "successfulResults")
    }

    updated = run_ingest(
        admin,
        f"Id,LastName\n{ids['K1']},Uno\n003000000000000AAA,Ghost\n,NoId\n",
        object="Contact",
        operation="update",
    )
    assert (updated["numberRecordsProcessed"], updated["numberRecordsFailed"]) == (3, 2)
    assert admin.get(f"/sobjects/Contact/{ids['K1']}").json()["LastName"] == "Uno"
    failed = results(admin, updated["id"], "failedResults")
    assert failed[0]["sf__Error"].startswith("INVALID_CROSS_REFERENCE_KEY:")
    assert failed[1]["sf__Error"].startswith("MISSING_ARGUMENT:")
    assert [r["sf__Created"] for r in results(admin, updated["id"], "successfulResults")] == [
        "false"
    ]

    upserted = run_ingest(
        admin,
        "External_Key__c,LastName,Email\nK2,Dos,#N/A\nK3,Tres,tres@example.com\n",
        object="Contact",
        operation="upsert",
        externalIdFieldName="External_Key__c",
    )
    assert upserted["numberRecordsFailed"] == 0
    rows = {r["External_Key__c"]: r for r in results(admin, upserted["id"], "successfulResults")}
    assert rows["K2"]["sf__Created"] == "false" and rows["K2"]["sf__Id"] == ids["K2"]
    assert rows["K3"]["sf__Created"] == "true"
    assert admin.get(f"/sobjects/Contact/{ids['K2']}").json()["LastName"] == "Dos"

    deleted = run_ingest(
        admin, f"Id\n{ids['K1']}\n{ids['K2']}\n", object="Contact", operation="delete"
    )
    assert (deleted["numberRecordsProcessed"], deleted["numberRecordsFailed"]) == (2, 0)
    assert admin.get(f"/sobjects/Contact/{ids['K1']}").status_code == 404
    again = run_ingest(admin, f"Id\n{ids['K1']}\n", object="Contact", operation="delete")
    assert results(admin, again["id"], "failedResults")[0]["sf__Error"].startswith(
        "ENTITY_IS_DELETED:"
    )


def test_upsert_reports_duplicate_keys_in_one_upload(admin: Api) -> None:
    info = run_ingest(
        admin,
        "Response_ID__c,Survey_Name__c\nR1,A\nr1,B\nR2,C\n",
        object="Survey_Response__c",
        operation="upsert",
        externalIdFieldName="Response_ID__c",
    )
    failed = results(admin, info["id"], "failedResults")
    assert [r["sf__Error"].split(":")[0] for r in failed] == ["DUPLICATE_EXTERNAL_ID"] * 2
    assert [r["Response_ID__c"] for r in results(admin, info["id"], "successfulResults")] == ["R2"]


def test_relationship_columns_and_other_delimiters(admin: Api) -> None:
    run_ingest(
        admin,
        "LastName|External_Key__c\nParent|PK1\n",
        object="Contact",
        operation="insert",
        columnDelimiter="PIPE",
    )
    info = run_ingest(
        admin,
        "Response_ID__c;Contact__r.External_Key__c;NPS_Score__c\r\nR9;PK1;9\r\nR10;NOPE;7\r\n",
        object="Survey_Response__c",
        operation="insert",
        columnDelimiter="SEMICOLON",
        lineEnding="CRLF",
    )
    assert info["numberRecordsFailed"] == 1
    good = admin.get(f"/jobs/ingest/{info['id']}/successfulResults/")
    assert good.text.splitlines()[0] == (
        '"sf__Id";"sf__Created";"Response_ID__c";"Contact__r.External_Key__c";"NPS_Score__c"'
    )
    record_id = good.text.splitlines()[1].split(";")[0].strip('"')
    contact = admin.query("SELECT Id FROM Contact WHERE External_Key__c = 'PK1'").json()
    stored = admin.get(f"/sobjects/Survey_Response__c/{record_id}").json()
    assert stored["Contact__c"] == contact["records"][0]["Id"]
    assert stored["NPS_Score__c"] == 9


def test_permissions_apply_per_record(integration: Api, admin: Api) -> None:
    record_id = admin.create("Survey_Response__c", {"Response_ID__c": "P1"})
    info = run_ingest(
        integration, f"Id\n{record_id}\n", object="Survey_Response__c", operation="delete"
    )
    error = results(integration, info["id"], "failedResults")[0]["sf__Error"]
    assert error.startswith("INSUFFICIENT_ACCESS_OR_READONLY:")
    assert admin.get(f"/sobjects/Survey_Response__c/{record_id}").status_code == 200


# -- bad CSV ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "spec", "message"),
    [
        ("LastName,Nope__c\nx,y\n", {}, "InvalidBatch : Field name not found : Nope__c"),
        ('LastName\n"unterminated\n', {}, "ClientInputError : Failed to parse the CSV data"),
        ("LastName,Email\nx\n", {}, "ClientInputError : Row 2 has 1 columns"),
        (
            "LastName\r\nx\r\n",
            {},
            "LineEnding is invalid on user data. Current LineEnding setting is LF",
        ),
        ("LastName\nx\n", {"lineEnding": "CRLF"}, "Current LineEnding setting is CRLF"),
        ("LastName,lastname\nx,y\n", {}, "InvalidBatch : Duplicate field name: lastname"),
        (
            "Id,LastName\n003000000000001AAA,x\n",
            {"operation": "delete"},
            "must contain only the 'Id' field",
        ),
        (b"LastName\n\xff\xfe\n", {}, "ClientInputError : The CSV data is not UTF-8"),
    ],
)
def test_a_csv_the_job_cannot_read_fails_the_job_with_an_error_message(
    admin: Api, data: str | bytes, spec: dict[str, Any], message: str
) -> None:
    job = create_job(admin, object="Contact", operation=spec.pop("operation", "insert"), **spec)
    assert upload(admin, job["id"], data).status_code == 201
    assert close(admin, job["id"]).status_code == 200
    info = wait_for(admin, "ingest", job["id"])
    assert info["state"] == "Failed"
    assert message in info["errorMessage"]
    assert info["numberRecordsProcessed"] == 0
    unprocessed = admin.get(f"/jobs/ingest/{job['id']}/unprocessedrecords/")
    assert unprocessed.status_code == 200
    assert admin.query("SELECT COUNT() FROM Contact").json()["totalSize"] == 1


def test_upsert_csv_without_the_key_column_fails_the_job(admin: Api) -> None:
    job = create_job(
        admin, object="Contact", operation="upsert", externalIdFieldName="External_Key__c"
    )
    upload(admin, job["id"], "LastName\nx\n")
    close(admin, job["id"])
    info = wait_for(admin, "ingest", job["id"])
    assert info["state"] == "Failed" and "External_Key__c" in info["errorMessage"]
    assert results(admin, job["id"], "unprocessedrecords") == [{"LastName": "x"}]


# -- job creation and state transitions -------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"object": "Contact", "operation": "merge"}, "Invalid operation"),
        ({"object": "Nope__c", "operation": "insert"}, "Unable to find object: Nope__c"),
        ({"operation": "insert"}, "object is required"),
        ({"object": "Contact", "operation": "upsert"}, "externalIdFieldName is required"),
        (
            {"object": "Contact", "operation": "upsert", "externalIdFieldName": "LastName"},
            "is not an External ID",
        ),
        (
            {"object": "Contact", "operation": "insert", "externalIdFieldName": "Id"},
            "only for upsert",
        ),
        ({"object": "Contact", "operation": "insert", "lineEnding": "CR"}, "Invalid lineEnding"),
        (
            {"object": "Contact", "operation": "insert", "columnDelimiter": "DASH"},
            "Invalid columnDelimiter",
        ),
        ({"object": "Contact", "operation": "insert", "contentType": "JSON"}, "only CSV"),
    ],
)
def test_bad_job_specifications_are_refused(
    admin: Api, spec: dict[str, Any], fragment: str
) -> None:
    response = admin.post("/jobs/ingest", json=spec)
    assert response.status_code == 400
    entry = error_of(response)
    assert entry["errorCode"] == "INVALIDJOB"
    assert fragment in entry["message"]
    assert admin.get("/jobs/ingest").json()["records"] == []


def test_bad_bodies_and_unknown_jobs_answer_the_rest_envelope(admin: Api) -> None:
    assert error_of(admin.post("/jobs/ingest", content=b"{"))["errorCode"] == "JSON_PARSER_ERROR"
    missing = admin.get("/jobs/ingest/7506g00000DhRA2AAN")
    assert missing.status_code == 404
    assert missing.json() == [
        {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}
    ]
    assert admin.get("/jobs/ingest/not-an-id").status_code == 404
    assert admin.get("/jobs/elsewhere").status_code == 404
    assert error_of(admin.delete("/jobs/ingest"))["errorCode"] == "METHOD_NOT_ALLOWED"


def test_hard_delete_needs_the_permission(integration: Api) -> None:
    response = integration.post(
        "/jobs/ingest", json={"object": "Contact", "operation": "hardDelete"}
    )
    assert response.status_code == 400 and "Hard Delete" in error_of(response)["message"]


def test_wrong_state_transitions_are_refused(admin: Api) -> None:
    job = create_job(admin, object="Contact", operation="insert")
    job_id = job["id"]
    # Results and deletion need a closed job.
    assert error_of(admin.get(f"/jobs/ingest/{job_id}/successfulResults/"))["errorCode"] == (
        "INVALIDJOBSTATE"
    )
    assert error_of(admin.delete(f"/jobs/ingest/{job_id}"))["errorCode"] == "INVALIDJOBSTATE"
    # Data must be text/csv, and only once.
    wrong_type = admin.request("PUT", f"/jobs/ingest/{job_id}/batches", json={"a": 1})
    assert error_of(wrong_type)["errorCode"] == "INVALIDCONTENTTYPE"
    assert error_of(upload(admin, job_id, ""))["errorCode"] == "INVALIDBATCH"
    assert upload(admin, job_id, "LastName\nx\n").status_code == 201
    assert error_of(upload(admin, job_id, "LastName\ny\n"))["errorCode"] == "INVALIDJOBSTATE"
    bad_state = admin.patch(f"/jobs/ingest/{job_id}", json={"state": "JobComplete"})
    assert error_of(bad_state)["errorCode"] == "INVALIDJOBSTATE"
    assert close(admin, job_id).json()["state"] == "UploadComplete"
    assert error_of(close(admin, job_id))["errorCode"] == "INVALIDJOBSTATE"
    assert wait_for(admin, "ingest", job_id)["state"] == "JobComplete"
    assert error_of(upload(admin, job_id, "LastName\nz\n"))["errorCode"] == "INVALIDJOBSTATE"
    aborted = admin.patch(f"/jobs/ingest/{job_id}", json={"state": "Aborted"})
    assert aborted.status_code == 400
    assert aborted.json() == DOCS["abort_completed_job_error"]
    assert admin.delete(f"/jobs/ingest/{job_id}").status_code == 204
    assert admin.get(f"/jobs/ingest/{job_id}").status_code == 404


def test_closing_a_job_without_data_fails_it(admin: Api) -> None:
    job = create_job(admin, object="Contact", operation="insert")
    close(admin, job["id"])
    info = wait_for(admin, "ingest", job["id"])
    assert info["state"] == "Failed" and info["errorMessage"]


def test_the_upload_limit_is_150_mb_base64(admin: Api) -> None:
    with in_process(bulk_max_upload_base64_bytes=40) as small, small.client() as http:
        api = Api(http, small.token())
        job = create_job(api, object="Contact", operation="insert")
        fits = "LastName\n" + "x" * 20 + "\n"  # 30 bytes: 40 once base64-encoded
        too_big = "LastName\n" + "x" * 21 + "\n"
        refused = upload(api, job["id"], too_big)
        assert refused.status_code == 413
        assert "150 MB" in error_of(refused)["message"] or "limit" in error_of(refused)["message"]
        assert upload(api, job["id"], fits).status_code == 201


def test_abort_stops_processing_and_leaves_unprocessed_records() -> None:
    with in_process(bulk_chunk_size=10) as emu, emu.client() as http:
        api = Api(http, emu.token())
        api.client.patch("/__emulator__/orgs/acme", json={"per_record_ms": 20})
        rows = "".join(f"Row{i}\n" for i in range(100))
        job = create_job(api, object="Contact", operation="insert")
        upload(api, job["id"], "LastName\n" + rows)
        close(api, job["id"])
        deadline = time.monotonic() + 10
        while api.get(f"/jobs/ingest/{job['id']}").json()["numberRecordsProcessed"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert (
            api.patch(f"/jobs/ingest/{job['id']}", json={"state": "Aborted"}).json()["state"]
            == "Aborted"
        )
        time.sleep(0.5)
        info = api.get(f"/jobs/ingest/{job['id']}").json()
        assert info["state"] == "Aborted"
        done = len(results(api, job["id"], "successfulResults"))
        left = results(api, job["id"], "unprocessedrecords")
        assert 0 < done < 100 and done + len(left) == 100
        assert left[0]["LastName"] == f"Row{done}"
        count = api.query("SELECT COUNT() FROM Contact WHERE LastName LIKE 'Row%'").json()
        assert count["totalSize"] == done


def test_jobs_are_listed_per_user_and_dropped_by_a_reset(
    emu: InProcessEmulator, admin: Api, integration: Api
) -> None:
    mine = create_job(integration, object="Contact", operation="insert")
    create_job(admin, object="Account", operation="insert")
    listed = integration.get("/jobs/ingest").json()
    assert listed["done"] is True and listed["nextRecordsUrl"] is None
    assert [j["id"] for j in listed["records"]] == [mine["id"]]
    assert listed["records"][0]["jobType"] == "V2Ingest"
    assert len(admin.get("/jobs/ingest").json()["records"]) == 2  # Modify All Data sees all
    emu.emulator.reset("acme")
    admin.token = emu.token()
    assert admin.get("/jobs/ingest").json()["records"] == []


# -- query jobs -------------------------------------------------------------------------------


def create_query(api: Api, soql: str, **spec: Any) -> dict[str, Any]:
    response = api.post("/jobs/query", json={"operation": "query", "query": soql, **spec})
    assert response.status_code == 200, response.text
    return response.json()


def test_query_job_create_answer_has_the_documented_keys(admin: Api) -> None:
    created = create_query(admin, "SELECT Id, Name FROM Account")
    documented = DOCS["query_job_create_response"]
    assert list(created) == list(documented)
    assert created["state"] == "UploadComplete" and created["object"] == "Account"
    info = wait_for(admin, "query", created["id"])
    assert info["state"] == "JobComplete" and info["jobType"] == "V2Query"
    assert info["numberRecordsProcessed"] == 1


def test_query_results_are_paged_with_sforce_locator(admin: Api) -> None:
    rows = "".join(f"Name{i:03d},K{i}\n" for i in range(25))
    run_ingest(admin, "LastName,External_Key__c\n" + rows, object="Contact", operation="insert")
    job = create_query(admin, "SELECT Id, LastName, Account.Name FROM Contact ORDER BY LastName")
    wait_for(admin, "query", job["id"])
    seen: list[dict[str, str]] = []
    locator = ""
    pages = 0
    while True:
        params = {"maxRecords": "10"}
        if locator:
            params["locator"] = locator
        page = admin.get(f"/jobs/query/{job['id']}/results", params=params)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/csv")
        for name in DOCS["query_results"]["headers"]:
            assert name.lower() in page.headers
        chunk = list(csv.DictReader(io.StringIO(page.text)))
        assert int(page.headers["Sforce-NumberOfRecords"]) == len(chunk)
        seen.extend(chunk)
        pages += 1
        locator = page.headers["Sforce-Locator"]
        if locator == DOCS["query_results"]["last_locator"]:
            break
    assert pages == 3 and len(seen) == 26
    assert list(seen[0]) == ["Id", "LastName", "Account.Name"]
    black = next(r for r in seen if r["LastName"] == "Black")
    assert black["Account.Name"] == "Acme Corp"
    assert next(r for r in seen if r["LastName"] == "Name000")["Account.Name"] == ""
    # A locator can be used again; the whole set comes in one page without maxRecords.
    whole = admin.get(f"/jobs/query/{job['id']}/results")
    assert whole.headers["Sforce-Locator"] == "null"
    assert whole.headers["Sforce-NumberOfRecords"] == "26"


def test_query_results_quote_every_value_like_the_documented_example(admin: Api) -> None:
    job = create_query(admin, "SELECT Id, Name FROM Account")
    wait_for(admin, "query", job["id"])
    body = admin.get(f"/jobs/query/{job['id']}/results").text
    documented = DOCS["query_results"]["body"].splitlines()
    lines = body.splitlines()
    assert lines[0] == documented[0]
    assert lines[1].startswith('"001') and lines[1].endswith('","Acme Corp"')


def test_query_job_errors(admin: Api) -> None:
    bad_field = admin.post(
        "/jobs/query", json={"operation": "query", "query": "SELECT Nope FROM Account"}
    )
    assert bad_field.status_code == 400 and error_of(bad_field)["errorCode"] == "INVALID_FIELD"
    assert error_of(admin.post("/jobs/query", json={"operation": "query"}))["errorCode"] == (
        "INVALIDJOB"
    )
    assert (
        error_of(
            admin.post(
                "/jobs/query", json={"operation": "insert", "query": "SELECT Id FROM Account"}
            )
        )["errorCode"]
        == "INVALIDJOB"
    )
    counted = admin.post("/jobs/query", json={"query": "SELECT COUNT() FROM Account"})
    assert counted.status_code == 400
    job = create_query(admin, "SELECT Id FROM Account")
    wait_for(admin, "query", job["id"])
    for params in (
        {"maxRecords": "0"},
        {"maxRecords": "ten"},
        {"locator": "%%%"},
        {"locator": "OTk5"},
    ):
        response = admin.get(f"/jobs/query/{job['id']}/results", params=params)
        assert response.status_code == 400, params
    other_version = Api(admin.client, admin.token, "61.0")
    assert other_version.get(f"/jobs/query/{job['id']}/results").status_code == 409
    assert admin.get(f"/jobs/ingest/{job['id']}").status_code == 404  # not an ingest job
    upload_complete = admin.patch(f"/jobs/query/{job['id']}", json={"state": "UploadComplete"})
    assert error_of(upload_complete)["errorCode"] == "INVALIDJOBSTATE"
    assert admin.delete(f"/jobs/query/{job['id']}").status_code == 204


def test_query_all_includes_deleted_records(admin: Api) -> None:
    record_id = admin.create("Account", {"Name": "Gone"})
    assert admin.delete(f"/sobjects/Account/{record_id}").status_code == 204
    live = create_query(admin, "SELECT Id FROM Account WHERE Name = 'Gone'")
    everything = create_query(
        admin, "SELECT Id, IsDeleted FROM Account WHERE Name = 'Gone'", operation="queryAll"
    )
    assert wait_for(admin, "query", live["id"])["numberRecordsProcessed"] == 0
    assert wait_for(admin, "query", everything["id"])["numberRecordsProcessed"] == 1
    body = admin.get(f"/jobs/query/{everything['id']}/results").text
    assert body.splitlines()[1].endswith('"true"')


def test_query_results_write_datetimes_in_utc_with_z(admin: Api) -> None:
    job = create_query(admin, "SELECT CreatedDate, Account.CreatedDate FROM Contact")
    wait_for(admin, "query", job["id"])
    row = rows_of(admin.get(f"/jobs/query/{job['id']}/results").text)[0]
    for value in row.values():
        assert value.endswith("Z") and "+0000" not in value, value


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# -- scale ------------------------------------------------------------------------------------


def test_one_hundred_thousand_records_in_seconds() -> None:
    with in_process() as emu, emu.client() as http:
        api = Api(http, emu.token())
        rows = "".join(f"R{i},S{i % 7},{i % 11}\n" for i in range(100_000))
        started = time.monotonic()
        info = run_ingest(  # the bound is the assertion below, not wait_for's default 30 s
            api,
            "Response_ID__c,Survey_Name__c,NPS_Score__c\n" + rows,
            timeout=120,
            object="Survey_Response__c",
            operation="insert",
        )
        elapsed = time.monotonic() - started
        assert info["numberRecordsProcessed"] == 100_000
        assert info["numberRecordsFailed"] == 0
        assert elapsed < 120, elapsed  # seconds, not minutes (measured: see docs/emulator.md)
        count = api.query("SELECT COUNT() FROM Survey_Response__c").json()["totalSize"]
        assert count == 100_000


def test_an_unexpected_error_fails_the_job_instead_of_leaving_it_in_progress(
    admin: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sfemu import dml

    def broken(*_args: Any, **_kwargs: Any) -> str:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(dml.Dml, "create", broken)
    info = run_ingest(admin, "LastName\nx\n", object="Contact", operation="insert")
    assert info["state"] == "Failed"
    assert info["errorMessage"].startswith("UNKNOWN_EXCEPTION")
    monkeypatch.undo()
    assert run_ingest(admin, "LastName\ny\n", object="Contact", operation="insert")["state"] == (
        "JobComplete"
    )


def test_a_bulk_fault_fails_records_like_a_locked_row(emu: InProcessEmulator, admin: Api) -> None:
    control = admin.client
    added = control.post(
        "/__emulator__/faults",
        json={
            "org": "acme",
            "target": "bulk",
            "error": "UNABLE_TO_LOCK_ROW",
            "count": 2,
            "method": "insert",
            "path": "/Contact",
        },
    )
    assert added.status_code == 201, added.text
    info = run_ingest(admin, "LastName\na\nb\nc\n", object="Contact", operation="insert")
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (3, 2)
    failed = results(admin, info["id"], "failedResults")
    assert [r["LastName"] for r in failed] == ["a", "b"]
    assert failed[0]["sf__Error"] == (
        "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record or 1 records:--"
    )
    names = admin.query("SELECT LastName FROM Contact WHERE LastName IN ('a','b','c')").json()
    assert [r["LastName"] for r in names["records"]] == ["c"]
    for bad in ({"target": "bulk", "latency_ms": 5}, {"target": "bulk", "mode": "drop"}):
        assert control.post("/__emulator__/faults", json=bad).status_code == 400
