"""Bulk import (CSV in the reference product's layout, JSON lines) with bad rows reported by
line, and exports streamed in chunks (CSV, JSON, JSON lines)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from cxloop.services import responses as response_service
from cxloop.services.access import Actor
from tests.integration.survey_helpers import GOOD_VALUES, make_survey, quick_person
from tests.integration.test_auth_api import assert_error

PROMOTER = GOOD_VALUES
DETRACTOR = GOOD_VALUES | {
    "QID1": 2,
    "QID3": "2",
    "QID4": ["3"],
    "QID10": 'Say "sorry", then call back',
}
DETRACTOR.pop("QID3_4_TEXT")


def actor_of(person: Any) -> Actor:
    return Actor(id=person.id, email=person.email, is_admin=False)


def responses_url(survey_id: str, rest: str = "") -> str:
    return f"/api/v1/surveys/{survey_id}/responses{rest}"


def listed(client: TestClient, person: Any, survey_id: str) -> list[dict]:
    reply = client.get(responses_url(survey_id), params={"limit": 500}, headers=person.headers)
    return reply.json()["items"]


def test_a_csv_export_imports_back_as_the_same_responses(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    bodies = [
        {"values": PROMOTER, "embedded_data": {"CaseId": "500A"}, "contact_id": "CT_1"},
        {"values": DETRACTOR, "started_at": "2026-02-01T08:00:00Z"},
        {"values": {"QID1": 7, "QID8": "Ünïcödé, «quotes»\nand lines"}, "finished": False},
    ]
    for body in bodies:
        assert client.post(responses_url(survey_id), json=body, headers=alice.headers).is_success
    before = listed(client, alice, survey_id)

    export = client.get(responses_url(survey_id, "/export"), headers=alice.headers)
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(export.text)))
    names, labels, import_ids = rows[0], rows[1], rows[2]
    assert names[:11] == [
        "StartDate", "EndDate", "Status", "Duration (in seconds)", "Finished", "RecordedDate",
        "ResponseId", "DistributionChannel", "UserLanguage", "DistributionId", "ContactId",
    ]  # fmt: skip
    assert names[11:] == [
        "CaseId", "Channel", "QID1", "QID2", "QID3", "QID3_4_TEXT", "QID4", "QID6_TEXT",
        "QID7_TEXT", "QID8_TEXT", "QID9_1", "QID9_2", "QID10_TEXT",
    ]  # fmt: skip
    assert labels[names.index("QID9_1")] == "Do you agree? - It was fast"
    assert json.loads(import_ids[0]) == {"ImportId": "startDate", "timeZone": "UTC"}
    first = dict(zip(names, rows[3], strict=True))
    assert first["QID3"] == "40"  # the recode of choice 4
    assert first["QID4"] == "1,2" and first["QID9_1"] == "3" and first["Finished"] == "1"
    assert first["CaseId"] == "500A" and first["Channel"] == "email"
    assert first["DistributionChannel"] == "api" and first["Status"] == "0"

    for response in before:
        client.delete(responses_url(survey_id, f"/{response['id']}"), headers=alice.headers)
    result = response_service.import_file(
        container.db, actor_of(alice), survey_id, io.StringIO(export.text), "csv"
    )
    assert (result.total, result.stored, result.failed) == (3, 3, 0), result.bad_rows
    after = {r["id"]: r for r in listed(client, alice, survey_id)}
    for original in before:
        again = after[original["id"]]
        for key in ("values", "embedded_data", "finished", "contact_id"):
            assert again[key] == original[key], key
        assert again["started_at"][:19] == original["started_at"][:19]  # CSV keeps seconds
        assert again["source"] == "import"
    twice = response_service.import_file(
        container.db, actor_of(alice), survey_id, io.StringIO(export.text), "csv"
    )
    assert twice.stored == 0 and {p["code"] for r in twice.bad_rows for p in r.problems} == {
        "duplicate_id"
    }


BAD_CSV = """\
ResponseId,StartDate,EndDate,Finished,QID1,QID3,QID3_4_TEXT,QID4,QID8_TEXT,QID9_1,QID9_2,CaseId,IPAddress
,2026-01-05 10:00:00,2026-01-05 10:05:00,1,9,1,,1,,3,3,C1,10.0.0.1
,,,1,eleven,1,,,,3,3,,
,,,1,8,2,,"1,2","two
lines",2,2,,
,,,1,8,Fax,,,,2,2,,
,yesterday,,1,8,1,,,,2,2,,
,,,1,8,1,,,,2,,,

,,,1,5,Chat,,"Speed,Friendliness",,Neutral,Agree,,
,,,1,4,Other,,,,3,3,,
"""


def test_csv_rows_are_checked_one_by_one_and_bad_lines_reported(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, status="closed")  # imports take past responses
    progress: list[int] = []
    result = response_service.import_file(
        container.db, actor_of(alice), survey_id, io.StringIO(BAD_CSV), "csv",
        batch_size=2, on_progress=lambda r: progress.append(r.total),
    )  # fmt: skip
    bad = {row.position: row.problems for row in result.bad_rows}
    assert sorted(bad) == [3, 6, 7, 8]
    assert bad[3][0] == {
        "qid": "QID1", "code": "bad_cell", "message": "QID1: 'eleven' is not a whole number.",
        "field": None,
    }  # fmt: skip
    assert bad[6][0]["code"] == "bad_cell" and "'Fax'" in bad[6][0]["message"]
    assert bad[7][0]["field"] == "StartDate"
    assert bad[8][0]["code"] == "required" and bad[8][0]["qid"] == "QID9"
    assert (result.total, result.stored, result.failed) == (8, 4, 4)
    assert result.warnings == ["Columns this survey does not have were ignored: IPAddress."]
    assert progress and progress[-1] == 8
    stored = sorted(listed(client, alice, survey_id), key=lambda r: r["values"]["QID1"])
    assert [r["source"] for r in stored] == ["import"] * 4
    assert stored[0]["values"]["QID3"] == "4"  # "Other" by its text, without the optional box
    by_text = stored[1]["values"]  # choice texts are understood too, commas and all
    assert by_text["QID3"] == "2" and by_text["QID4"] == ["1", "2"]
    assert by_text["QID9"] == {"1": "2", "2": "3"}
    assert stored[2]["values"]["QID8"] == "two\nlines"
    assert stored[3]["started_at"] == "2026-01-05T10:00:00+00:00"
    assert stored[3]["duration_s"] == 300 and stored[3]["embedded_data"]["CaseId"] == "C1"


QUALTRICS_CSV = """\
StartDate,EndDate,Status,IPAddress,Progress,Duration (in seconds),Finished,RecordedDate,ResponseId,Q1,Q1_NPS_GROUP,Q3,Q9_1,Q9_2,CaseId
Start Date,End Date,Response Type,IP Address,Progress,Duration (in seconds),Finished,Recorded Date,Response ID,How likely?,How likely? - Group,Contact,Fast,Kind,CaseId
"{""ImportId"":""startDate"",""timeZone"":""America/Denver""}","{""ImportId"":""endDate"",""timeZone"":""America/Denver""}","{""ImportId"":""status""}","{""ImportId"":""ipAddress""}","{""ImportId"":""progress""}","{""ImportId"":""duration""}","{""ImportId"":""finished""}","{""ImportId"":""recordedDate"",""timeZone"":""America/Denver""}","{""ImportId"":""_recordId""}","{""ImportId"":""QID1""}","{""ImportId"":""QID1_NPS_GROUP""}","{""ImportId"":""QID3""}","{""ImportId"":""QID9_1""}","{""ImportId"":""QID9_2""}","{""ImportId"":""CaseId""}"
2024-03-05 09:00:00,2024-03-05 09:03:20,0,1.2.3.4,100,200,1,2024-03-05 09:03:21,R_1kZxQualtrics01,10,3,10,3,2,500X
2024-03-05 10:00:00,2024-03-05 10:00:30,0,1.2.3.5,40,30,0,2024-03-05 10:00:31,R_1kZxQualtrics02,4,1,,,,
"""  # noqa: E501


def test_a_reference_product_export_imports_by_its_import_ids(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    result = response_service.import_file(
        container.db, actor_of(alice), survey_id, io.StringIO(QUALTRICS_CSV), "csv"
    )
    assert (result.stored, result.failed) == (2, 0), result.bad_rows
    ignored = result.warnings[0]  # named by their ImportIds (row 3)
    assert "ipAddress" in ignored and "QID1_NPS_GROUP" in ignored and "progress" in ignored
    one = client.get(responses_url(survey_id, "/R_1kZxQualtrics01"), headers=alice.headers).json()
    assert one["values"] == {"QID1": 10, "QID3": "1", "QID9": {"1": "3", "2": "2"}}
    assert one["started_at"] == "2024-03-05T16:00:00+00:00"  # 09:00 in Denver (UTC-7)
    assert one["duration_s"] == 200 and one["embedded_data"]["CaseId"] == "500X"
    two = client.get(responses_url(survey_id, "/R_1kZxQualtrics02"), headers=alice.headers).json()
    assert two["finished"] is False and two["values"] == {"QID1": 4}


def test_json_lines_import_reports_bad_lines_and_an_export_round_trips(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    lines = [
        json.dumps({"values": PROMOTER, "id": "R_fromJsonLines01"}),
        "{not json",
        json.dumps({"values": PROMOTER | {"QID42": 1}}),
        "",
        json.dumps({"values": "nine"}),
        json.dumps({"values": DETRACTOR, "embedded_data": {"CaseId": "<b>x</b>"}}),
        json.dumps([1, 2]),
    ]
    result = response_service.import_file(
        container.db, actor_of(alice), survey_id, io.StringIO("\n".join(lines) + "\n"), "jsonl"
    )
    bad = {row.position: row.problems[0]["code"] for row in result.bad_rows}
    assert bad == {2: "bad_json", 3: "unknown_question", 5: "invalid_field", 7: "wrong_type"}
    assert (result.total, result.stored) == (6, 2)

    exported = client.get(responses_url(survey_id, "/export"), params={"format": "jsonl"},
                          headers=alice.headers)  # fmt: skip
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    documents = [json.loads(line) for line in exported.text.splitlines()]
    assert documents[0]["id"] == "R_fromJsonLines01"
    for document in documents:
        client.delete(responses_url(survey_id, f"/{document['id']}"), headers=alice.headers)
    again = response_service.import_file(
        container.db, actor_of(alice), survey_id, io.StringIO(exported.text), "jsonl"
    )
    assert again.stored == 2 and again.failed == 0, again.bad_rows
    restored = {r["id"]: r for r in listed(client, alice, survey_id)}
    for document in documents:
        assert restored[document["id"]]["values"] == document["values"]
        assert restored[document["id"]]["embedded_data"] == document["embedded_data"]


def test_exports_stream_in_chunks_and_honour_filters(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    count = 1_200
    rows = (
        response_service.SourceRow(i, {"values": PROMOTER, "finished": i % 5 != 0})
        for i in range(count)
    )
    result = response_service.import_responses(container.db, actor_of(alice), survey_id, rows)
    assert result.stored == count

    chunks = response_service.export_responses(
        container.db, actor_of(alice), survey_id, "csv", chunk_size=500
    )
    # Nothing is read before the stream is consumed: a response stored now is exported too.
    late_row = response_service.SourceRow(0, {"values": PROMOTER})
    late = response_service.import_responses(container.db, actor_of(alice), survey_id, [late_row])
    assert late.stored == 1
    count += 1
    first = next(chunks)
    assert first.startswith("StartDate,")
    pieces = list(chunks)
    # One piece per chunk read: 500 rows at a time.
    assert [len(list(csv.reader(io.StringIO(piece)))) for piece in pieces] == [500, 500, 201]
    body = first + "".join(pieces)
    assert len(list(csv.reader(io.StringIO(body)))) == count + 3

    as_json = client.get(responses_url(survey_id, "/export"), params={"format": "json"},
                         headers=alice.headers)  # fmt: skip
    assert as_json.headers["content-type"] == "application/json"
    assert len(json.loads(as_json.text)) == count
    unfinished = client.get(
        responses_url(survey_id, "/export"), params={"format": "json", "finished": "false"},
        headers=alice.headers,
    )  # fmt: skip
    assert len(json.loads(unfinished.text)) == count // 5
    with client.stream("GET", responses_url(survey_id, "/export"), headers=alice.headers) as reply:
        pieces = list(reply.iter_text())
    assert sum(piece.count("\n") for piece in pieces) >= count + 3
    assert_error(client.get(responses_url(survey_id, "/export"), params={"format": "xlsx"},
                            headers=alice.headers), 422)  # fmt: skip
    empty = make_survey(client, alice, name="Empty")
    nothing = client.get(responses_url(empty, "/export"), params={"format": "json"},
                         headers=alice.headers)  # fmt: skip
    assert json.loads(nothing.text) == []
