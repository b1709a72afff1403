"""Bulk import, row by row: reading a document the short way (without pydantic) gives exactly
what pydantic gives, refusals word for word included; and a row imported through the response
plan becomes exactly what the same document submitted through the API becomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxloop.domain.answers import validate_response, visible_answers
from cxloop.domain.survey_flow import without_off_route_requirements
from cxloop.errors import InvalidInput
from cxloop.services.responses import (
    ImportedDocument,
    ResponsePlan,
    parse_document,
    read_document,
)
from tests.unit.test_answers import CONTENT, HAPPY
from tests.unit.test_response_rules import _anything, _nearly_valid_answers

FIELDS = [
    "values", "embedded_data", "finished", "started_at", "ended_at", "language",
    "distribution_id", "contact_id", "id",
]  # fmt: skip


def read(reader: Any, raw: Any) -> Any:
    """What reading a document gives: its fields, or the refusal."""
    try:
        doc = reader(raw)
    except InvalidInput as exc:
        return ("refused", exc.code, exc.message, exc.details)
    return {name: getattr(doc, name) for name in FIELDS}


def assert_read_alike(raw: Any) -> None:
    assert read(read_document, raw) == read(lambda r: parse_document(ImportedDocument, r), raw)


def test_a_plain_document_is_read_as_pydantic_reads_it() -> None:
    raw = {"values": HAPPY, "embedded_data": {"CaseId": "5"}, "language": "de", "id": None}
    assert isinstance(read_document(raw), tuple)  # the short way
    assert_read_alike(raw)
    assert_read_alike({})


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        "text",
        {"values": None},
        {"values": [1]},
        {"values": {1: 2}},
        {"values": {"QID1": "a\x00b"}},
        {"values": {"QID\x001": 1}},
        {"embedded_data": {"x": {"y": ["\x00"]}}},
        {"finished": None},
        {"finished": 1},
        {"finished": "true"},
        {"language": ""},
        {"language": "x" * 17},
        {"language": "ü" * 16},
        {"language": "\ud800"},
        {"contact_id": "x" * 21},
        {"distribution_id": 5},
        {"id": "R_abcdefghijklmno"},
        {"id": "R_abcdefghijklmno\n"},
        {"id": "R_abcdefghijklmn"},
        {"id": "R_abcdefghijklmn١"},
        {"id": 5},
        {"started_at": "2026-02-01T08:00:00Z", "ended_at": "2026-02-01T07:00:00+02:00"},
        {"started_at": "2026-02-01T08:00:00"},
        {"started_at": "yesterday"},
        {"started_at": 1_700_000_000},
        {"started_at": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=3)))},
        {"ended_at": datetime(2026, 1, 1)},  # naive
        {"source": "web", "survey_id": 3, "duration_s": "x", "created_at": [], "updated_at": {}},
        {"unknown": 1, "values": {"QID1": 1}},
    ],
)
def test_odd_and_wrong_documents_are_read_or_refused_as_pydantic_does(raw: Any) -> None:
    assert_read_alike(raw)


_dates = st.one_of(
    st.none(),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])),
    st.datetimes(),
    st.sampled_from(["2026-02-01T08:00:00Z", "2026-02-01 08:00:00", "soon", "", 0]),
)
_short_texts = st.one_of(st.none(), st.text(max_size=22), st.integers(), st.booleans())
_documents = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "values": st.one_of(_nearly_valid_answers(), _anything),
            "embedded_data": st.one_of(
                st.dictionaries(st.sampled_from(["CaseId", "Channel", "X"]), _anything), _anything
            ),
            "finished": st.one_of(st.booleans(), st.none(), st.integers(0, 1)),
            "started_at": _dates,
            "ended_at": _dates,
            "language": _short_texts,
            "distribution_id": _short_texts,
            "contact_id": _short_texts,
            "id": st.one_of(
                st.none(),
                st.from_regex(r"R_[A-Za-z0-9]{15}", fullmatch=True),
                st.text(max_size=18),
            ),
            "source": _anything,
            "unknown": _anything,
        },
    ),
    _anything,
)


@settings(max_examples=500, deadline=None)
@given(raw=_documents)
def test_any_document_is_read_or_refused_as_pydantic_does(raw: Any) -> None:
    assert_read_alike(raw)


NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
PLAN = ResponsePlan("SV_1", CONTENT, "fr")


def imported(raw: Any) -> tuple[Any, Any]:
    """What the import makes of a document: its columns, or its problems."""
    try:
        doc = read_document(raw)
    except InvalidInput as exc:
        return None, exc.details
    problems = PLAN.problems(doc)
    if problems:
        return None, problems
    return PLAN.row(doc, source="import", now=NOW, response_id=doc.id or "R_new000000000000"), []


def by_the_general_checks(raw: Any) -> tuple[Any, Any]:
    """The same document read by pydantic and checked by the general functions of the domain
    (`validate_response`, `visible_answers`), as a stored response must come out."""
    try:
        doc = parse_document(ImportedDocument, raw)
    except InvalidInput as exc:
        return None, exc.details
    found = validate_response(CONTENT, doc.values, doc.embedded_data)
    found = without_off_route_requirements(CONTENT, found, doc.values, doc.embedded_data)
    if not doc.finished:
        found = [p for p in found if p.code != "required"]
    problems = [p.as_dict() for p in found]
    if doc.started_at and doc.ended_at and doc.ended_at < doc.started_at:
        problems.append(
            {"qid": None, "code": "bad_dates", "message": "ended_at is before started_at.",
             "field": "ended_at"}
        )  # fmt: skip
    if problems:
        return None, problems
    ended = doc.ended_at.astimezone(UTC) if doc.ended_at else (NOW if doc.finished else None)
    started = doc.started_at.astimezone(UTC) if doc.started_at else (ended or NOW)
    embedded = dict(doc.embedded_data)
    for declared in CONTENT.embedded_data:
        if declared.default is not None and embedded.get(declared.name) in (None, ""):
            embedded[declared.name] = declared.default
    return {
        "id": doc.id or "R_new000000000000",
        "survey_id": "SV_1",
        "values": visible_answers(CONTENT, doc.values),
        "embedded_data": embedded,
        "started_at": started,
        "ended_at": ended,
        "duration_s": None if ended is None else max(0, int((ended - started).total_seconds())),
        "finished": doc.finished,
        "source": "import",
        "channel": "import",
        "language": doc.language or "fr",
        "distribution_id": doc.distribution_id,
        "contact_id": doc.contact_id,
        "created_at": NOW,
        "updated_at": NOW,
    }, []


def assert_checked_as_before(raw: Any) -> None:
    assert imported(raw) == by_the_general_checks(raw)


EARLY, LATE = "2026-02-01T08:00:00Z", "2026-02-01T09:30:00+01:00"


@pytest.mark.parametrize(
    "raw",
    [
        {"values": HAPPY},
        {"values": HAPPY, "id": "R_abcdefghijklmno", "language": "de", "contact_id": "CT_1"},
        {"values": {"QID2": 9}},  # required questions left open
        {"values": {"QID2": 9}, "finished": False},  # ... which an unfinished one may
        {"values": {"QID2": 9, "QID3": "7"}, "finished": False},
        {"values": HAPPY, "started_at": EARLY, "ended_at": LATE},
        {"values": HAPPY, "started_at": LATE, "ended_at": EARLY},  # ends before it starts
        {"values": HAPPY, "started_at": EARLY},
        {"values": HAPPY, "ended_at": EARLY},
        {"values": HAPPY, "finished": False, "started_at": EARLY},
        {"values": HAPPY, "finished": False},
        {"values": HAPPY, "embedded_data": {"Channel": ""}},  # the default fills blanks
        {"values": HAPPY, "embedded_data": {"Channel": None, "CaseId": ""}},
        {"values": HAPPY, "embedded_data": {"Channel": "sms", "CaseId": 5}},
        {"values": HAPPY | {"QID10": "  "}},  # blank answers are not kept
        {"values": HAPPY | {"QID4": ["1"]}},  # hidden for a promoter: not kept
    ],
)
def test_a_row_is_checked_and_made_as_before(raw: Any) -> None:
    assert_checked_as_before(raw)


_aware = st.datetimes(
    min_value=datetime(2000, 1, 1), timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))])
)
_likely_good_documents = st.fixed_dictionaries(
    {"values": _nearly_valid_answers()},
    optional={
        "embedded_data": st.dictionaries(
            st.sampled_from(["CaseId", "Channel"]),
            st.sampled_from([None, "", " ", "500A", 5, True]),
        ),
        "finished": st.booleans(),
        "started_at": _aware.map(datetime.isoformat),
        "ended_at": _aware,
        "language": st.sampled_from(["de", "pt-BR"]),
        "contact_id": st.sampled_from(["CT_1", None]),
        "id": st.from_regex(r"R_[A-Za-z0-9]{15}", fullmatch=True),
    },
)


@settings(max_examples=500, deadline=None)
@given(raw=st.one_of(_likely_good_documents, _documents))
def test_any_row_is_checked_and_made_as_before(raw: Any) -> None:
    assert_checked_as_before(raw)
