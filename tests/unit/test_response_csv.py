"""The response table (the reference product's CSV layout): written and read back, pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from cxloop.domain.answers import validate_response
from cxloop.domain.response_csv import (
    ResponseTable,
    distribution_channel,
    header_row_count,
    parse_date,
)
from cxloop.domain.survey_content import SurveyContent

CONTENT = SurveyContent.from_document(
    {
        "format_version": 1,
        "embedded_data": [{"name": "CaseId"}, {"name": "QID1"}],  # a field named like a column
        "questions": [
            {"qid": "QID1", "type": "nps", "text": "<b>How</b> likely?"},
            {"qid": "QID2", "type": "single_choice", "text": "Contact",
             "choices": [{"id": "a", "text": "Phone"}, {"id": "b", "text": "Yes, often"},
                         {"id": "c", "text": "Other", "allow_text_entry": True}]},
            {"qid": "QID3", "type": "multiple_choice", "text": "Went well",
             "choices": [{"id": "1", "text": "Speed", "recode": 10},
                         {"id": "2", "text": "Yes, often", "recode": 20},
                         {"id": "3", "text": "Price", "recode": 30}]},
            {"qid": "QID4", "type": "text_entry", "text": "Why?"},
            {"qid": "QID5", "type": "matrix", "text": "Agree", "multiple_answers": True,
             "rows": [{"id": "r1", "text": "Fast", "allow_text_entry": True},
                      {"id": "r2", "text": "Kind"}],
             "scale": [{"id": "1", "text": "No", "recode": 1}, {"id": "2", "text": "Yes",
                                                                 "recode": 1}]},
            {"qid": "QID6", "type": "rating", "text": "Stars", "scale_max": 5},
            {"qid": "QID7", "type": "descriptive", "text": "Bye"},
        ],
    }
)  # fmt: skip


@dataclass
class Record:
    values: dict[str, Any]
    embedded_data: dict[str, Any] = field(default_factory=dict)
    id: str = "R_aaaaaaaaaaaaaaa"
    started_at: datetime = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ended_at: datetime | None = datetime(2026, 1, 2, 3, 5, 5, tzinfo=UTC)
    duration_s: int | None = 60
    finished: bool = True
    source: str = "web"
    language: str = "en"
    distribution_id: str | None = None
    contact_id: str | None = None
    created_at: datetime = datetime(2026, 1, 2, 3, 5, 6, tzinfo=UTC)


def round_trip(values: dict[str, Any]) -> dict[str, Any]:
    table = ResponseTable(CONTENT)
    rows = table.header_rows()
    document, problems = table.reader(rows).read(table.row(Record(values)))
    assert problems == []
    return document


def test_columns_labels_and_import_ids() -> None:
    table = ResponseTable(CONTENT)
    names, labels, import_ids = table.header_rows()
    assert names[11:] == [
        "CaseId", "QID1", "QID1", "QID2", "QID2_c_TEXT", "QID3", "QID4_TEXT", "QID5_r1",
        "QID5_r1_TEXT", "QID5_r2", "QID6",
    ]  # fmt: skip
    assert labels[names.index("QID5_r2")] == "Agree - Kind"
    assert labels[13] == "How likely?"
    assert import_ids[0] == '{"ImportId":"startDate","timeZone":"UTC"}'
    assert import_ids[12] == '{"ImportId":"QID1","embeddedData":true}'
    assert header_row_count(table.header_rows()) == 3
    assert header_row_count([names, ["1", "2"]]) == 1


def test_every_type_round_trips_by_recode_or_id() -> None:
    values = {
        "QID1": 10,
        "QID2": "c",
        "QID2_c_TEXT": "By pigeon, mostly",
        "QID3": ["1", "2"],
        "QID4": "Line\nand, comma",
        "QID5": {"r1": ["1", "2"], "r2": ["2"]},
        "QID5_r1_TEXT": "fast-ish",
        "QID6": 4,
    }
    assert round_trip(values)["values"] == values
    table = ResponseTable(CONTENT)
    cells = dict(zip(table.header_rows()[2], table.row(Record(values)), strict=True))
    assert cells['{"ImportId":"QID3"}'] == "10,20"  # recodes (all set, all different)
    assert cells['{"ImportId":"QID2"}'] == "c"  # ids: these choices have no recodes
    assert cells['{"ImportId":"QID5_r1"}'] == "1,2"  # ids: two scale points share recode 1


def test_metadata_and_embedded_data_round_trip() -> None:
    table = ResponseTable(CONTENT)
    record = Record({"QID1": 3}, {"CaseId": "500x", "QID1": "shadowed"}, finished=False)
    document, problems = table.reader(table.header_rows()).read(table.row(record))
    assert problems == []
    assert document["id"] == record.id and document["finished"] is False
    assert document["started_at"] == record.started_at and document["language"] == "en"
    # an embedded data field named like a question is told apart by its ImportId (row 3)...
    assert document["values"]["QID1"] == 3
    assert document["embedded_data"] == {"CaseId": "500x", "QID1": "shadowed"}
    # ...and with a single header row, the question wins
    names = table.header_rows()[0]
    document, _ = table.reader([names]).read(table.row(record))
    assert document["values"]["QID1"] == 3 and document["embedded_data"] == {"CaseId": "500x"}
    assert distribution_channel(record) == "anonymous"
    assert distribution_channel(Record({}, contact_id="CT_1")) == "email"


def test_reading_accepts_texts_and_reports_what_it_cannot_read() -> None:
    table = ResponseTable(CONTENT)
    header = [["QID2", "QID3", "QID1", "StartDate", "Finished", "IPAddress", "QID6_1"]]
    reader = table.reader(header)
    assert reader.ignored_columns == ["IPAddress"]  # QID6_1: the slider column of QID6
    document, problems = reader.read(["Yes, often", "Speed,Yes, often,Price", "", "", "", "", "3"])
    assert problems == []
    assert document["values"] == {"QID2": "b", "QID3": ["1", "2", "3"], "QID6": 3}
    _, problems = reader.read(["Fax", "Speed,Nope", "9.5", "soon", "maybe", "", "x"])
    assert [(p.qid, p.code) for p in problems] == [
        ("QID2", "bad_cell"), ("QID3", "bad_cell"), ("QID1", "bad_cell"), (None, "bad_cell"),
        (None, "bad_cell"), ("QID6", "bad_cell"),
    ]  # fmt: skip


def test_dates_are_read_in_the_file_time_zone() -> None:
    denver = ZoneInfo("America/Denver")
    assert parse_date("2024-03-05 09:00:00", denver) == datetime(2024, 3, 5, 16, tzinfo=UTC)
    assert parse_date("2024-03-05T09:00:00+01:00") == datetime(2024, 3, 5, 8, tzinfo=UTC)
    assert parse_date("2024-03-05 09:00:00") == datetime(2024, 3, 5, 9, tzinfo=UTC)
    assert parse_date("yesterday") is None and parse_date("9" * 100) is None


@settings(max_examples=60, deadline=None)
@given(
    nps=st.integers(0, 10),
    single=st.sampled_from(["a", "b", "c"]),
    multiple=st.lists(st.sampled_from(["1", "2", "3"]), min_size=1, max_size=3, unique=True),
    text=st.text(max_size=40).filter(lambda t: t.strip() and "\x00" not in t),
)
def test_any_valid_response_survives_the_table(
    nps: int, single: str, multiple: list[str], text: str
) -> None:
    values = {"QID1": nps, "QID2": single, "QID3": multiple, "QID4": text}
    assert validate_response(CONTENT, values) == []
    assert round_trip(values)["values"] == values


def test_export_tags_name_columns_like_the_reference_and_imports_still_map() -> None:
    document = CONTENT.to_document()
    tags = {"QID2": "Contact", "QID4": "Why", "QID5": "Agree", "QID6": "Stars"}
    for question in document["questions"]:
        if question["qid"] in tags:
            question["export_tag"] = tags[question["qid"]]
    document["questions"].append(
        {"qid": "QID8", "type": "rating", "text": "Ease", "scale_max": 10, "display": "slider",
         "labels": ["Hard", "Easy"], "choice_id": "1", "export_tag": "Ease"}
    )  # fmt: skip
    document["questions"].append(
        {"qid": "QID9", "type": "rating", "text": "Joy", "scale_max": 10, "choice_id": "1"}
    )
    content = SurveyContent.from_document(document)
    table = ResponseTable(content)
    names, _, import_ids = table.header_rows()
    assert names[13:] == [
        "QID1", "Contact", "Contact_c_TEXT", "QID3", "Why", "Agree_r1", "Agree_r1_TEXT",
        "Agree_r2", "Stars", "Ease_1", "QID9_1",
    ]  # fmt: skip
    assert import_ids[names.index("Why")] == '{"ImportId":"QID4_TEXT"}'
    assert import_ids[names.index("Ease_1")] == '{"ImportId":"QID8_1"}'
    values = {"QID2": "c", "QID2_c_TEXT": "Pigeon", "QID4": "Because", "QID8": 7, "QID9": 3}
    row = table.row(Record(values))
    for headers in (table.header_rows(), [names]):  # by ImportId, and by the names alone
        document_read, problems = table.reader(headers).read(row)
        assert problems == [] and document_read["values"] == values
