"""Answers: checking a submitted response, display logic, pages and what "finished" means."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxloop.domain.answers import (
    MAX_PROBLEMS,
    MAX_TEXT_LENGTH,
    AnswerProblem,
    is_finished,
    is_number_text,
    is_shown,
    next_page,
    parse_answer_key,
    previous_page,
    resolve_answer_field,
    shown_qids,
    shown_questions,
    text_key,
    validate_page,
    validate_response,
    visible_answers,
)
from cxloop.domain.survey_content import SurveyContent

CONTENT = SurveyContent.from_document(
    {
        "format_version": 1,
        "embedded_data": [{"name": "CaseId"}, {"name": "Channel", "default": "email"}],
        "questions": [
            {"qid": "QID1", "type": "descriptive", "text": "Welcome"},
            {"qid": "QID2", "type": "nps", "text": "Recommend us?", "required": True},
            {
                "qid": "QID3",
                "type": "single_choice",
                "text": "How did you hear about us?",
                "choices": [
                    {"id": "1", "text": "Search", "recode": 10},
                    {"id": "2", "text": "Friend", "recode": 20},
                    {"id": "4", "text": "Other", "allow_text_entry": True},
                ],
            },
            {
                "qid": "QID4",
                "type": "multiple_choice",
                "page": 2,
                "text": "What went wrong?",
                "required": True,
                "choices": [
                    {"id": "1", "text": "Slow", "recode": 1},
                    {"id": "2", "text": "Rude", "recode": 2},
                    {"id": "3", "text": "Else", "allow_text_entry": True},
                    {"id": "9", "text": "Nothing", "exclusive": True},
                ],
                "show_if": {"field": "QID2", "operator": "less_or_equal", "value": 6},
            },
            {
                "qid": "QID5",
                "type": "matrix",
                "page": 2,
                "text": "Rate",
                "required": True,
                "rows": [
                    {"id": "1", "text": "Speed"},
                    {"id": "2", "text": "Other", "allow_text_entry": True},
                ],
                "scale": [
                    {"id": "1", "text": "Bad", "recode": -1},
                    {"id": "2", "text": "Good", "recode": 1},
                ],
            },
            {
                "qid": "QID6",
                "type": "matrix",
                "page": 2,
                "text": "Which apply?",
                "multiple_answers": True,
                "rows": [{"id": "a", "text": "Phone"}],
                "scale": [{"id": "x", "text": "Fast"}, {"id": "y", "text": "Cheap"}],
            },
            {
                "qid": "QID7",
                "type": "text_entry",
                "page": 3,
                "text": "Email?",
                "validation": "email",
                "required": True,
                "show_if": {
                    "join": "or",
                    "conditions": [
                        {"field": "QID4", "operator": "contains", "value": "2"},
                        {"field": "QID5/row/1/recode", "operator": "less_than", "value": 0},
                    ],
                },
            },
            {
                "qid": "QID8",
                "type": "text_entry",
                "page": 3,
                "text": "Calls",
                "validation": "number",
            },
            {"qid": "QID9", "type": "rating", "page": 3, "text": "Rate", "scale_max": 5},
            {
                "qid": "QID10",
                "type": "text_entry",
                "page": 4,
                "text": "Anything else?",
                "multiline": True,
            },
        ],
    }
)

HAPPY = {"QID2": 9, "QID3": "2", "QID5": {"1": "2", "2": "2"}, "QID10": "Great"}
UNHAPPY = {
    "QID2": 3,
    "QID3": "4",
    "QID3_4_TEXT": "A billboard",
    "QID4": ["2", "3"],
    "QID4_3_TEXT": "Lost my parcel",
    "QID5": {"1": "1", "2": "2"},
    "QID6": {"a": ["x", "y"]},
    "QID7": "ann@example.com",
    "QID8": "3",
    "QID9": 2,
}


def codes(problems: list[AnswerProblem]) -> list[tuple[str | None, str]]:
    return [(p.qid, p.code) for p in problems]


def test_complete_answers_have_no_problems() -> None:
    assert validate_response(CONTENT, HAPPY) == []
    assert validate_response(CONTENT, UNHAPPY, {"CaseId": "500x", "Channel": None}) == []


def test_required_questions_that_are_shown_must_be_answered() -> None:
    problems = validate_response(CONTENT, {})
    assert codes(problems) == [("QID2", "required"), ("QID5", "required")]
    assert problems[0].message == "This question needs an answer."
    # A low score shows QID4 (required); a bad rating shows QID7 (required).
    problems = validate_response(CONTENT, {"QID2": 2, "QID5": {"1": "1", "2": "2"}})
    assert codes(problems) == [("QID4", "required"), ("QID7", "required")]


def test_hidden_questions_are_not_required_and_their_answers_are_ignored() -> None:
    answers = {**HAPPY, "QID4": ["nonsense"], "QID7": 42}
    assert validate_response(CONTENT, answers) == []
    assert visible_answers(CONTENT, answers) == HAPPY
    assert not is_shown(CONTENT, "QID4", answers)
    assert is_shown(CONTENT, "QID4", {"QID2": 6})


def test_a_matrix_needs_every_row_when_required() -> None:
    problems = validate_response(CONTENT, {"QID2": 9, "QID5": {"1": "2"}})
    assert codes(problems) == [("QID5", "required")]
    assert problems[0].message == "Every row needs an answer; missing: '2'."


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"QID2": "9"}, ("QID2", "wrong_type")),
        ({"QID2": True}, ("QID2", "wrong_type")),
        ({"QID2": 9.0}, ("QID2", "wrong_type")),
        ({"QID2": 11}, ("QID2", "out_of_range")),
        ({"QID2": -1}, ("QID2", "out_of_range")),
        ({"QID9": 6}, ("QID9", "out_of_range")),
        ({"QID9": 0}, ("QID9", "out_of_range")),
        ({"QID3": 2}, ("QID3", "wrong_type")),
        ({"QID3": "3"}, ("QID3", "unknown_choice")),
        ({"QID3": ["2"]}, ("QID3", "wrong_type")),
        ({"QID8": "three"}, ("QID8", "invalid_number")),
        ({"QID8": "1,000"}, ("QID8", "invalid_number")),
        ({"QID8": 3}, ("QID8", "wrong_type")),
        ({"QID10": "x" * (MAX_TEXT_LENGTH + 1)}, ("QID10", "too_long")),
        ({"QID1": "hello"}, ("QID1", "not_answerable")),
        ({"QID5": ["1"]}, ("QID5", "wrong_type")),
        ({"QID5": {"1": "2", "2": "2", "7": "1"}}, ("QID5", "unknown_row")),
        ({"QID5": {"1": "2", "2": "5"}}, ("QID5", "unknown_scale_point")),
        ({"QID5": {"1": "2", "2": ["2"]}}, ("QID5", "wrong_type")),
        ({"QID6": {"a": "x"}}, ("QID6", "wrong_type")),
        ({"QID6": {"a": ["x", "x"]}}, ("QID6", "duplicate_choice")),
        ({"QID6": {"a": ["z"]}}, ("QID6", "unknown_scale_point")),
        ({"QID99": 1}, (None, "unknown_question")),
        ({"Q2": 1}, (None, "unknown_question")),
        ({"QID2_1_TEXT": "x"}, ("QID2", "text_not_allowed")),
        ({"QID3": "1", "QID3_1_TEXT": "x"}, ("QID3", "text_not_allowed")),
        ({"QID3": "1", "QID3_4_TEXT": "x"}, ("QID3", "text_without_choice")),
        ({"QID3_4_TEXT": "x"}, ("QID3", "text_without_choice")),
        ({"QID3": "4", "QID3_4_TEXT": 5}, ("QID3", "wrong_type")),
        ({"QID5": {"1": "2", "2": "2"}, "QID5_2_TEXT": "y" * 20_001}, ("QID5", "too_long")),
    ],
)
def test_bad_values_are_reported_per_question(answers: dict[str, Any], expected: tuple) -> None:
    base = {"QID2": 9, "QID5": {"1": "2", "2": "2"}}
    problems = validate_response(CONTENT, {**base, **answers})
    assert codes(problems) == [expected]
    assert problems[0].message and len(problems[0].message) < 200


def test_multiple_choice_problems() -> None:
    base = {"QID2": 1, "QID5": {"1": "2", "2": "2"}}
    problems = validate_response(CONTENT, {**base, "QID4": ["1", "1", "7", "9"]})
    assert codes(problems) == [
        ("QID4", "duplicate_choice"),
        ("QID4", "unknown_choice"),
        ("QID4", "exclusive_choice"),
    ]
    assert problems[2].message == "'Nothing' cannot be combined with other choices."
    assert codes(validate_response(CONTENT, {**base, "QID4": "1"})) == [("QID4", "wrong_type")]
    assert codes(validate_response(CONTENT, {**base, "QID4": [1]})) == [("QID4", "wrong_type")]
    assert validate_response(CONTENT, {**base, "QID4": ["9"]}) == []


@pytest.mark.parametrize(
    ("email", "ok"),
    [
        ("ann@example.com", True),
        ("  ann.lee+cx@mail.example.org ", True),
        ("ann@", False),
        ("@example.com", False),
        ("ann example.com", False),
        ("<script>@x.com", False),
        ("a" * 400 + "@example.com", False),
    ],
)
def test_email_validation(email: str, ok: bool) -> None:
    answers = {"QID2": 2, "QID4": ["2"], "QID5": {"1": "2", "2": "2"}, "QID7": email}
    problems = validate_response(CONTENT, answers)
    assert (problems == []) is ok
    if not ok:
        assert codes(problems) == [("QID7", "invalid_email")]


def test_html_and_script_are_just_text() -> None:
    answers = {**HAPPY, "QID10": "<script>alert('x')</script> ${e://Field/CaseId}"}
    assert validate_response(CONTENT, answers) == []


def test_embedded_data_must_be_declared_and_simple() -> None:
    problems = validate_response(
        CONTENT, HAPPY, {"CaseId": {"nested": 1}, "Nope": "x", "Channel": "z" * 20_001}
    )
    assert [(p.field, p.code) for p in problems] == [
        ("CaseId", "wrong_type"),
        ("Nope", "unknown_embedded_data"),
        ("Channel", "too_long"),
    ]
    assert all(p.qid is None for p in problems)
    assert codes(validate_response(CONTENT, HAPPY, ["CaseId"])) == [(None, "wrong_type")]


def test_answers_that_are_not_a_mapping_are_one_problem() -> None:
    problems = validate_response(CONTENT, ["QID2", 9])
    assert codes(problems)[0] == (None, "wrong_type")
    assert "keyed by question ID" in problems[0].message


def test_problem_lists_are_capped() -> None:
    problems = validate_response(CONTENT, {f"QID{n}": 1 for n in range(100, 400)})
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1].code == "too_many_problems"


def test_problem_as_dict() -> None:
    problem = validate_response(CONTENT, {})[0]
    assert problem.as_dict() == {
        "qid": "QID2",
        "code": "required",
        "message": "This question needs an answer.",
        "field": None,
    }


def test_pages_show_what_display_logic_allows() -> None:
    assert [q.qid for q in shown_questions(CONTENT, 1, {})] == ["QID1", "QID2", "QID3"]
    assert [q.qid for q in shown_questions(CONTENT, 2, HAPPY)] == ["QID5", "QID6"]
    assert [q.qid for q in shown_questions(CONTENT, 2, UNHAPPY)] == ["QID4", "QID5", "QID6"]
    assert [q.qid for q in shown_questions(CONTENT, 3, HAPPY)] == ["QID8", "QID9"]
    assert "QID7" in shown_qids(CONTENT, UNHAPPY)


def test_next_and_previous_page_skip_pages_with_nothing_shown() -> None:
    content = SurveyContent.from_document(
        {
            "format_version": 1,
            "questions": [
                {"qid": "QID1", "type": "nps"},
                {
                    "qid": "QID2",
                    "type": "text_entry",
                    "page": 2,
                    "show_if": {"field": "QID1", "operator": "less_than", "value": 7},
                },
                {"qid": "QID3", "type": "text_entry", "page": 3},
            ],
        }
    )
    assert next_page(content, {}) == 1
    assert next_page(content, {"QID1": 9}, after=1) == 3
    assert next_page(content, {"QID1": 3}, after=1) == 2
    assert next_page(content, {"QID1": 9}, after=3) is None
    assert previous_page(content, {"QID1": 9}, before=3) == 1
    assert previous_page(content, {"QID1": 3}, before=3) == 2
    assert previous_page(content, {}, before=1) is None


def test_display_logic_only_sees_answers_of_shown_questions() -> None:
    # QID7 depends on QID4, which is hidden for a promoter: its stale answer must not count.
    answers = {"QID2": 10, "QID4": ["2"], "QID5": {"1": "2", "2": "2"}}
    assert not is_shown(CONTENT, "QID7", answers)
    assert validate_response(CONTENT, answers) == []


def test_finished_means_nothing_missing_and_the_last_shown_page_submitted() -> None:
    assert is_finished(CONTENT, HAPPY)
    assert not is_finished(CONTENT, {"QID2": 9})
    assert not is_finished(CONTENT, HAPPY, last_submitted_page=3)
    assert is_finished(CONTENT, HAPPY, last_submitted_page=4)
    assert not is_finished(CONTENT, {**HAPPY, "QID2": 12}, last_submitted_page=4)


def test_validate_page_checks_only_that_page() -> None:
    assert codes(validate_page(CONTENT, 1, {})) == [("QID2", "required")]
    assert codes(validate_page(CONTENT, 2, {"QID2": 3})) == [
        ("QID4", "required"),
        ("QID5", "required"),
    ]
    assert validate_page(CONTENT, 2, {"QID2": 9, "QID5": {"1": "1", "2": "1"}}) == []


def test_resolve_answer_field() -> None:
    assert resolve_answer_field(CONTENT, UNHAPPY, "QID2") == 3
    assert resolve_answer_field(CONTENT, UNHAPPY, "QID2/recode") == 3
    assert resolve_answer_field(CONTENT, UNHAPPY, "QID3/recode") == 4  # no recode: the id
    assert resolve_answer_field(CONTENT, HAPPY, "QID3/recode") == 20
    assert resolve_answer_field(CONTENT, UNHAPPY, "QID4/recode") == [2, 3]
    assert resolve_answer_field(CONTENT, UNHAPPY, "QID3/text/4") == "A billboard"
    assert resolve_answer_field(CONTENT, UNHAPPY, "QID5/row/1") == "1"
    assert resolve_answer_field(CONTENT, UNHAPPY, "QID5/row/1/recode") == -1
    assert resolve_answer_field(CONTENT, UNHAPPY, "QID6/row/a/recode") == []  # no numeric ids
    assert resolve_answer_field(CONTENT, {"QID2": "9"}, "QID2") is None  # wrong shape
    assert resolve_answer_field(CONTENT, UNHAPPY, "QID99") is None
    assert resolve_answer_field(CONTENT, UNHAPPY, "garbage") is None


def test_answer_keys() -> None:
    assert text_key("QID3", "4") == "QID3_4_TEXT"
    assert parse_answer_key("QID3") == ("QID3", None)
    assert parse_answer_key("QID3_4_TEXT") == ("QID3", "4")
    assert parse_answer_key("QID3_a_b_TEXT") == ("QID3", "a_b")
    assert parse_answer_key("QID03") is None
    assert parse_answer_key("QID3_TEXT") is None
    assert parse_answer_key(3) is None


def test_number_text() -> None:
    assert is_number_text("42") and is_number_text(" -3.5 ") and is_number_text("1e3")
    assert not is_number_text("") and not is_number_text("1_000") and not is_number_text("nan")


_anything = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**6000), max_value=10**6000),
        st.floats(),
        st.text(max_size=30),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)
_keys = st.one_of(
    st.sampled_from(
        [
            "QID1",
            "QID2",
            "QID3",
            "QID3_4_TEXT",
            "QID4",
            "QID4_3_TEXT",
            "QID5",
            "QID5_2_TEXT",
            "QID6",
            "QID7",
            "QID8",
            "QID9",
            "QID10",
        ]
    ),
    st.text(max_size=12),
    st.integers(),
)


@settings(max_examples=150, deadline=None)
@given(
    answers=st.one_of(st.dictionaries(_keys, _anything, max_size=12), _anything),
    embedded=st.one_of(st.none(), st.dictionaries(st.text(max_size=8), _anything, max_size=4)),
)
def test_hostile_responses_never_raise(answers: Any, embedded: Any) -> None:
    problems = validate_response(CONTENT, answers, embedded)
    assert all(isinstance(p, AnswerProblem) and p.message for p in problems)
    visible_answers(CONTENT, answers)
    next_page(CONTENT, answers, after=1)
    is_finished(CONTENT, answers, last_submitted_page=2)
