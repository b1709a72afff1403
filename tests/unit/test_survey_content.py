"""Survey content: the document model, its exact JSON/YAML round trip, and its validation."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxloop.domain.survey_content import (
    AnswerField,
    MatrixQuestion,
    SurveyContent,
    SurveyContentError,
    parse_answer_field,
    plain_text,
)

EXAMPLE: dict[str, Any] = {
    "format_version": 1,
    "embedded_data": [
        {"name": "CaseId"},
        {"name": "Channel", "default": "email", "description": "How the invitation went out"},
    ],
    "questions": [
        {"qid": "QID1", "type": "descriptive", "text": "<p>Thanks for your time!</p>"},
        {
            "qid": "QID2",
            "type": "nps",
            "text": "How likely are you to recommend us?",
            "required": True,
        },
        {
            "qid": "QID3",
            "type": "single_choice",
            "text": "How did you contact us?",
            "layout": "dropdown",
            "choices": [
                {"id": "1", "text": "Phone", "recode": 1},
                {"id": "2", "text": "Chat", "recode": 2.5},
                {"id": "9", "text": "Other", "allow_text_entry": True},
            ],
        },
        {
            "qid": "QID4",
            "type": "multiple_choice",
            "page": 2,
            "text": "What went well?",
            "choices": [
                {"id": "1", "text": "Speed"},
                {"id": "2", "text": "Friendliness"},
                {"id": "3", "text": "Nothing", "exclusive": True},
            ],
            "show_if": {"field": "QID2", "operator": "greater_or_equal", "value": 7},
        },
        {
            "qid": "QID5",
            "type": "matrix",
            "page": 2,
            "text": "Rate each part",
            "multiple_answers": False,
            "rows": [
                {"id": "1", "text": "Wait time"},
                {"id": "2", "text": "Other", "allow_text_entry": True},
            ],
            "scale": [
                {"id": "1", "text": "Bad", "recode": -1},
                {"id": "2", "text": "Good", "recode": 1},
            ],
        },
        {
            "qid": "QID6",
            "type": "text_entry",
            "page": 3,
            "text": "Your email, if we may follow up",
            "validation": "email",
            "show_if": {
                "join": "or",
                "conditions": [
                    {"field": "QID2", "operator": "less_or_equal", "value": 6},
                    {"field": "QID3", "operator": "in_list", "value": ["1", "9"]},
                    {"field": "QID3/text/9", "operator": "contains", "value": "letter"},
                    {"field": "QID5/row/1", "operator": "equals", "value": "1"},
                    {"field": "QID5/row/1/recode", "operator": "less_than", "value": 0},
                    {"field": "QID4/recode", "operator": "is_not_empty"},
                ],
            },
        },
        {
            "qid": "QID7",
            "type": "rating",
            "page": 3,
            "text": "Rate the checkout",
            "scale_min": 0,
            "scale_max": 10,
        },
    ],
}


def _tidy(document: dict[str, Any]) -> dict[str, Any]:
    """The example as to_document() writes it: defaults left out, qid and type first."""
    tidy = copy.deepcopy(document)
    for question in tidy["questions"]:
        if question.get("multiple_answers") is False:
            del question["multiple_answers"]
    return tidy


def problems_of(document: Any) -> list[str]:
    with pytest.raises(SurveyContentError) as info:
        SurveyContent.from_document(document)
    return [str(p) for p in info.value.problems]


def test_example_document_round_trips_exactly_through_json_and_yaml() -> None:
    content = SurveyContent.from_document(EXAMPLE)
    assert content.to_document() == _tidy(EXAMPLE)
    assert SurveyContent.from_json(content.to_json()) == content
    assert SurveyContent.from_yaml(content.to_yaml()) == content
    assert json.loads(content.to_json()) == content.to_document()


def test_document_keeps_qid_and_type_first_and_format_version_on_top() -> None:
    document = SurveyContent.from_document(EXAMPLE).to_document()
    assert next(iter(document)) == "format_version"
    assert [list(q)[:2] for q in document["questions"]] == [["qid", "type"]] * 7
    assert SurveyContent.from_document(EXAMPLE).to_yaml().startswith("format_version: 1\n")


def test_pages_group_questions_in_order() -> None:
    content = SurveyContent.from_document(EXAMPLE)
    assert content.page_numbers() == [1, 2, 3]
    assert [[q.qid for q in page] for page in content.pages()] == [
        ["QID1", "QID2", "QID3"],
        ["QID4", "QID5"],
        ["QID6", "QID7"],
    ]
    assert [q.qid for q in content.questions_on_page(2)] == ["QID4", "QID5"]
    assert isinstance(content.question("QID5"), MatrixQuestion)
    assert content.question("QID99") is None
    assert content.embedded_data_field("Channel").default == "email"


def test_empty_survey_is_valid() -> None:
    content = SurveyContent.from_document({"format_version": 1})
    assert content.questions == [] and content.to_document() == {"format_version": 1}


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    document = copy.deepcopy(EXAMPLE)
    document["questions"][2]["choices"][1]["recode"] = "high"
    document["questions"][2]["choices"].append({"id": "1", "text": "Phone again"})
    document["questions"][1]["colour"] = "red"
    document["questions"][6]["qid"] = "QID2"
    document["embedded_data"].append({"name": "CaseId"})
    problems = problems_of(document)
    assert "questions[2].choices[1].recode: a recode must be a number" in problems
    assert (
        "questions[1].colour: unknown key 'colour': allowed keys are qid, text, page, "
        "export_tag, block, show_if, required, type" in problems
    )
    assert "questions[6].qid: QID2 is used twice (also questions[1])" in problems
    assert "embedded_data[2].name: 'CaseId' is declared twice (also embedded_data[0])" in problems
    assert len(problems) == 4  # the duplicate choice id sits in a question that did not parse


def test_duplicate_choice_row_and_scale_ids_are_reported() -> None:
    document = copy.deepcopy(EXAMPLE)
    document["questions"][2]["choices"][1]["id"] = "1"
    document["questions"][4]["rows"][1]["id"] = "1"
    document["questions"][4]["scale"][1]["id"] = "1"
    problems = problems_of(document)
    assert problems == [
        "questions[2].choices[1].id: '1' is used twice in this question (also choices[0])",
        "questions[4].rows[1].id: '1' is used twice in this question (also rows[0])",
        "questions[4].scale[1].id: '1' is used twice in this question (also scale[0])",
    ]


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"field": "QID6", "operator": "is_empty"}, "QID6 comes later"),
        ({"field": "QID5", "operator": "is_empty"}, "QID5 comes later on the same page"),
        ({"field": "QID4", "operator": "is_empty"}, "refers to its own answer"),
        ({"field": "QID42", "operator": "is_empty"}, "QID42 does not exist in this survey"),
        ({"field": "QID1", "operator": "is_empty"}, "QID1 is descriptive text"),
        ({"field": "QID3", "operator": "equals", "value": "7"}, "QID3 has no choice '7'"),
        ({"field": "QID3/text/1", "operator": "is_empty"}, "choice '1' of QID3 has no text box"),
        ({"field": "QID3/row/1", "operator": "is_empty"}, "QID3 is not a matrix"),
        ({"field": "nps", "operator": "is_empty"}, "'nps' is not an answer field"),
    ],
)
def test_display_logic_must_name_answers_from_earlier_pages(
    condition: dict[str, Any], message: str
) -> None:
    document = copy.deepcopy(EXAMPLE)
    document["questions"][3]["show_if"] = condition
    problems = problems_of(document)
    assert len(problems) == 1
    assert problems[0].startswith("questions[3].show_if.field: ")
    assert message in problems[0]


def test_display_logic_problems_in_groups_have_nested_paths() -> None:
    document = copy.deepcopy(EXAMPLE)
    document["questions"][5]["show_if"]["conditions"][3]["field"] = "QID5/row/7"
    document["questions"][5]["show_if"]["conditions"][4]["field"] = "QID5"
    assert problems_of(document) == [
        "questions[5].show_if.conditions[3].field: QID5 has no row '7'",
        "questions[5].show_if.conditions[4].field: QID5 is a matrix; name a row, such as "
        "QID5/row/<row id>",
    ]


def test_condition_problem_inside_a_group_has_the_path_of_the_condition() -> None:
    document = copy.deepcopy(EXAMPLE)
    document["questions"][5]["show_if"]["conditions"][0]["value"] = "six"
    assert problems_of(document) == [
        "questions[5].show_if.conditions[0]: 'less_or_equal' needs a number to compare with"
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["questions"].append({"qid": "QID8", "type": "slider"}),
            "unknown question type 'slider'",
        ),
        (lambda d: d["questions"].append({"qid": "QID8"}), "questions[7].type: 'type' is missing"),
        (
            lambda d: d["questions"].append({"qid": "Q8", "type": "nps"}),
            "questions[7].qid: 'Q8' is not a QID",
        ),
        (lambda d: d["questions"].append("QID8"), "questions[7]: must be a mapping"),
        (
            lambda d: d["questions"][6].update(scale_min=1, scale_max=1),
            "questions[6]: scale_max must be greater than scale_min",
        ),
        (lambda d: d["questions"][6].update(scale_min=3), "questions[6].scale_min"),
        (lambda d: d["questions"][6].update(scale_min=True), "questions[6].scale_min"),
        (lambda d: d["questions"][6].update(scale_max=5.0), "questions[6].scale_max"),
        (
            lambda d: d["questions"][2]["choices"][0].update(exclusive=True),
            "only a multiple choice question",
        ),
        (lambda d: d["questions"][2]["choices"][0].update(id="a b"), "'a b' is not a usable id"),
        (lambda d: d["questions"][2].update(choices=[]), "questions[2].choices"),
        (
            lambda d: d["questions"][1].update(required="yes"),
            "questions[1].required: must be true or false",
        ),
        (lambda d: d["questions"][1].update(page=0), "questions[1].page"),
        (lambda d: d["questions"][6].update(page=1), "page 1 comes after page 3"),
        (lambda d: d["questions"][0].update(required=True), "questions[0].required: unknown key"),
        (lambda d: d["questions"][2]["choices"][0].update(recode=float("nan")), "finite number"),
        (
            lambda d: d["questions"][2]["choices"][0].update(recode=True),
            "a recode must be a number",
        ),
        (lambda d: d["questions"][2]["choices"][0].update(recode=2**60), "between -2^53 and 2^53"),
        (
            lambda d: d["embedded_data"].append({"name": "a/b"}),
            "embedded_data[2].name: 'a/b' is not a usable field name",
        ),
        (lambda d: d.update(format_version=2), "format_version: 2 is not a format"),
        (lambda d: d.update(format_version=True), "format_version: True is not a format"),
        (lambda d: d.pop("format_version"), "format_version: is missing"),
        (
            lambda d: d.update(title="x"),
            "title: unknown key 'title': allowed keys are format_version",
        ),
        (lambda d: d.update(questions={}), "questions: must be a list"),
        (lambda d: d.update(embedded_data="CaseId"), "embedded_data: must be a list"),
    ],
)
def test_document_problems_say_where_and_what(change: Any, expected: str) -> None:
    document = copy.deepcopy(EXAMPLE)
    change(document)
    problems = problems_of(document)
    assert any(expected in p for p in problems), problems


def test_non_mapping_document_is_one_problem() -> None:
    assert problems_of([1, 2]) == ["the survey content must be a mapping (an object)"]


def test_strict_types_refuse_numbers_as_text_and_text_as_numbers() -> None:
    document = copy.deepcopy(EXAMPLE)
    document["questions"][6]["scale_max"] = "10"
    document["questions"][2]["choices"][0]["id"] = 1
    problems = problems_of(document)
    assert "questions[6].scale_max: must be a whole number" in problems
    assert "questions[2].choices[0].id: must be text" in problems


def test_json_and_yaml_parse_errors_are_content_errors() -> None:
    with pytest.raises(SurveyContentError, match="not valid JSON"):
        SurveyContent.from_json("{nope")
    with pytest.raises(SurveyContentError, match="not valid JSON"):
        SurveyContent.from_json('{"format_version": NaN}')
    with pytest.raises(SurveyContentError, match="not valid YAML"):
        SurveyContent.from_yaml("a: [1, 2")
    with pytest.raises(SurveyContentError, match="not valid JSON"):
        SurveyContent.from_json("[" * 100_000 + "]" * 100_000)


def test_yaml_aliases_are_refused() -> None:
    text = "format_version: 1\nembedded_data: &e [{name: A}]\nquestions: *e\n"
    with pytest.raises(SurveyContentError, match="aliases"):
        SurveyContent.from_yaml(text)


def test_oversized_documents_are_refused_before_parsing() -> None:
    with pytest.raises(SurveyContentError, match="larger than"):
        SurveyContent.from_yaml("#" * 5_000_001)


def test_plain_text_strips_markup_and_decodes_entities() -> None:
    assert plain_text("How <b>likely</b>&nbsp;are you?") == "How likely are you?"
    assert plain_text("<div>One</div><div>Two<br>Three</div>") == "One\nTwo\nThree"
    assert plain_text("<script>alert(1)</script>Hi &lt;there&gt;") == "Hi <there>"
    assert plain_text("a < b and c > d") == "a < b and c > d"
    assert plain_text("  plain\t text ") == "plain text"
    assert plain_text(None) == ""  # type: ignore[arg-type]


def test_question_and_choice_plain_text() -> None:
    content = SurveyContent.from_document(EXAMPLE)
    assert content.questions[0].plain_text() == "Thanks for your time!"
    assert content.questions[2].choices[0].effective_recode == 1
    assert content.questions[2].choices[2].effective_recode == 9  # no recode: the numeric id


@pytest.mark.parametrize(
    ("field", "parsed"),
    [
        ("QID1", AnswerField("QID1", "value")),
        ("QID1/recode", AnswerField("QID1", "recode")),
        ("QID1/text/4", AnswerField("QID1", "text", "4")),
        ("QID5/row/2", AnswerField("QID5", "row", "2")),
        ("QID5/row/2/recode", AnswerField("QID5", "row_recode", "2")),
        ("QID0", None),
        ("QID1/", None),
        ("QID1/rows/2", None),
        ("e://Field/X", None),
    ],
)
def test_answer_fields(field: str, parsed: AnswerField | None) -> None:
    assert parse_answer_field(field) == parsed


# -- property: any valid content round-trips --------------------------------------------------

_ids = st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True)
_texts = st.text(max_size=40)
_recodes = st.one_of(
    st.none(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)


@st.composite
def _items(draw: Any, kind: str) -> list[dict[str, Any]]:
    ids = draw(st.lists(_ids, min_size=1, max_size=5, unique=True))
    items = []
    for item_id in ids:
        item: dict[str, Any] = {"id": item_id, "text": draw(_texts)}
        if kind in ("choice", "scale") and (recode := draw(_recodes)) is not None:
            item["recode"] = recode
        if kind in ("choice", "row") and draw(st.booleans()):
            item["allow_text_entry"] = True
        items.append(item)
    return items


@st.composite
def _contents(draw: Any) -> dict[str, Any]:
    count = draw(st.integers(min_value=0, max_value=6))
    questions = []
    page = 1
    for number in range(1, count + 1):
        page += draw(st.integers(min_value=0, max_value=2))
        kind = draw(
            st.sampled_from(
                [
                    "nps",
                    "rating",
                    "single_choice",
                    "multiple_choice",
                    "text_entry",
                    "matrix",
                    "descriptive",
                ]
            )
        )
        question: dict[str, Any] = {
            "qid": f"QID{number}",
            "type": kind,
            "text": draw(_texts),
            "page": page,
        }
        if kind != "descriptive" and draw(st.booleans()):
            question["required"] = True
        if kind == "rating":
            question["scale_min"] = draw(st.sampled_from([0, 1]))
            question["scale_max"] = draw(st.integers(min_value=2, max_value=100))
        elif kind in ("single_choice", "multiple_choice"):
            question["choices"] = draw(_items("choice"))
        elif kind == "text_entry":
            question["multiline"] = draw(st.booleans())
            question["validation"] = draw(st.sampled_from(["none", "email", "number"]))
        elif kind == "matrix":
            question["rows"] = draw(_items("row"))
            question["scale"] = draw(_items("scale"))
            question["multiple_answers"] = draw(st.booleans())
        earlier = [q for q in questions if q["page"] < page and q["type"] != "descriptive"]
        if earlier and draw(st.booleans()):
            target = draw(st.sampled_from(earlier))
            field = target["qid"] + (
                "/row/" + target["rows"][0]["id"] if target["type"] == "matrix" else ""
            )
            question["show_if"] = {
                "join": draw(st.sampled_from(["and", "or"])),
                "conditions": [{"field": field, "operator": "is_not_empty"}],
            }
        questions.append(question)
    names = draw(
        st.lists(
            st.from_regex(r"[A-Za-z][A-Za-z0-9 _.-]{0,20}", fullmatch=True), max_size=4, unique=True
        )
    )
    embedded = [{"name": n, "default": draw(st.one_of(st.none(), _texts))} for n in names]
    return {"format_version": 1, "embedded_data": embedded, "questions": questions}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_contents())
def test_any_valid_content_round_trips_through_json_and_yaml(document: dict[str, Any]) -> None:
    content = SurveyContent.from_document(document)
    assert SurveyContent.from_json(content.to_json()) == content
    assert SurveyContent.from_yaml(content.to_yaml()) == content
    canonical = content.to_document()
    assert SurveyContent.from_document(canonical).to_document() == canonical


_json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        _json_values,
        st.fixed_dictionaries(
            {"format_version": st.just(1), "questions": st.lists(_json_values, max_size=3)}
        ),
    )
)
def test_garbage_documents_give_problems_not_crashes(document: Any) -> None:
    try:
        SurveyContent.from_document(document)
    except SurveyContentError as exc:
        assert exc.problems


def test_display_logic_may_use_a_question_above_it_on_its_own_page() -> None:
    document = copy.deepcopy(EXAMPLE)
    document["questions"][4]["show_if"] = {"field": "QID4", "operator": "contains", "value": "1"}
    content = SurveyContent.from_document(document)
    assert content.question("QID5").show_if is not None
