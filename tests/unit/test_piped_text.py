"""Piped text: parse, render (never raises) and validate ${namespace://path} references."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxloop.domain.piped_text import (
    NAMESPACES,
    Malformed,
    PipedTextContext,
    PipedTextRenderer,
    Reference,
    Text,
    format_date,
    parse,
    render,
    render_value,
    shift_date,
    to_text,
    validate,
)
from cxloop.domain.survey_content import SurveyContent

CONTENT = SurveyContent.from_document(
    {
        "format_version": 1,
        "embedded_data": [
            {"name": "CaseId"},
            {"name": "Team Member"},
            {"name": "Tier", "default": "gold"},
        ],
        "questions": [
            {"qid": "QID1", "type": "nps", "text": "How <b>likely</b>&nbsp;is it?"},
            {
                "qid": "QID2",
                "type": "multiple_choice",
                "text": "What did you like?",
                "choices": [
                    {"id": "1", "text": "<em>Speed</em>", "recode": 10},
                    {"id": "2", "text": "Price"},
                    {"id": "3", "text": "Other", "allow_text_entry": True},
                ],
            },
            {
                "qid": "QID3",
                "type": "single_choice",
                "text": "Channel",
                "choices": [
                    {"id": "1", "text": "Phone", "recode": 1.5},
                    {"id": "4", "text": "Other", "allow_text_entry": True},
                ],
            },
            {"qid": "QID4", "type": "text_entry", "text": "Comments"},
            {
                "qid": "QID5",
                "type": "matrix",
                "text": "Rate",
                "rows": [
                    {"id": "1", "text": "Staff"},
                    {"id": "2", "text": "Price"},
                    {"id": "3", "text": "Other", "allow_text_entry": True},
                ],
                "scale": [
                    {"id": "1", "text": "Bad", "recode": -1},
                    {"id": "2", "text": "Good", "recode": 1},
                ],
            },
            {"qid": "QID6", "type": "rating", "text": "Stars", "scale_max": 5},
            {
                "qid": "QID7",
                "type": "text_entry",
                "page": 2,
                "text": "Why so low?",
                "validation": "number",
                "show_if": {"field": "QID1", "operator": "less_than", "value": 7},
            },
            {"qid": "QID8", "type": "descriptive", "page": 2, "text": "Bye"},
        ],
    }
)
ANSWERS = {
    "QID1": 9,
    "QID2": ["1", "3"],
    "QID2_3_TEXT": "The <b>staff</b>",
    "QID3": "4",
    "QID3_4_TEXT": "Carrier pigeon",
    "QID4": "All good ${e://Field/CaseId}",
    "QID5": {"1": "2", "2": "1", "3": "2"},
    "QID5_3_TEXT": "Parking",
    "QID6": 4,
    "QID7": "12",  # hidden (QID1 is 9): pipes nothing
}
NOW = datetime(2024, 3, 5, 14, 7, 9, tzinfo=timezone(timedelta(hours=1)))
CONTEXT = PipedTextContext(
    survey_content=CONTENT,
    answers=ANSWERS,
    embedded_data={"CaseId": "500AB", "Team Member": "Ann", "ResponseID": "spoofed"},
    metadata={"ResponseID": "R_abc", "Finished": True, "StartDate": datetime(2024, 3, 5, 14, 0)},
    recipient={"FirstName": "Bo", "Email": "bo@example.com"},
    links={"SurveyLink": "https://cx.example/s/t?x=1&y=2", "OptOutLink": "javascript:alert(1)"},
    event_fields={"CaseNumber": "00001234"},
    task_outputs={"T1": {"Id": "003XYZ", "Nested": {"Name": "Deep"}}},
    now=NOW,
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${q://QID1/QuestionText}", "How likely is it?"),
        ("${q://QID1/ChoiceGroup/SelectedChoices}", "9"),
        ("${q://QID2/ChoiceGroup/SelectedChoices}", "Speed, Other"),
        ("${q://QID2/ChoiceGroup/SelectedChoicesRecode}", "10, 3"),
        ("${q://QID2/SelectedChoicesRecode}", "10, 3"),
        ("${q://QID2/ChoiceGroup/UnselectedChoices}", "Price"),
        ("${q://QID2/SelectedChoicesCount}", "2"),
        ("${q://QID2/ChoiceGroup/SelectedChoicesTextEntry}", "The <b>staff</b>"),
        ("${q://QID2/ChoiceTextEntryValue/3}", "The <b>staff</b>"),
        ("${q://QID3/ChoiceTextEntryValue}", "Carrier pigeon"),
        ("${q://QID3/ChoiceTextEntryValue/4}", "Carrier pigeon"),
        ("${q://QID3/SelectedChoicesRecode}", "4"),  # no recode: the id
        ("${q://QID4/ChoiceTextEntryValue}", "All good ${e://Field/CaseId}"),  # not re-parsed
        ("${q://QID5/ChoiceGroup/SelectedAnswers/1}", "Good"),
        ("${q://QID5/SelectedAnswerRecode/2}", "-1"),
        ("${q://QID5/SelectedChoicesForAnswer/2}", "Staff, Other"),
        ("${q://QID5/ChoiceTextEntryValue/3}", "Parking"),
        ("${q://QID6/ChoiceNumericEntryValue/1}", "4"),
        ("${q://QID7/ChoiceTextEntryValue}", ""),  # hidden question
        ("${q://QID9/QuestionText}", ""),
        ("${e://Field/CaseId}", "500AB"),
        ("${e://Field/Team%20Member}", "Ann"),
        ("${e://Field/Tier}", "gold"),  # the declared default
        ("${e://Field/ResponseID}", "R_abc"),  # metadata wins over embedded data
        ("${e://Field/Finished}", "1"),
        ("${e://Field/StartDate}", "2024-03-05 14:00:00"),
        ("${e://Field/RecipientEmail}", "bo@example.com"),
        ("${e://Field/Nope}", ""),
        ("${rm://Field/ResponseID}", "R_abc"),
        ("${m://FirstName}", "Bo"),
        ("${m://LastName}", ""),
        ("${l://SurveyLink}", "https://cx.example/s/t?x=1&y=2"),
        ("${l://SurveyURL}", "https://cx.example/s/t?x=1&y=2"),
        ("${l://SurveyLink?d=Take%20the%20survey}", "https://cx.example/s/t?x=1&y=2"),
        ("${event://Field/CaseNumber}", "00001234"),
        ("${task://T1/Id}", "003XYZ"),
        ("${task://T1/Nested/Name}", "Deep"),
        ("${task://T9/Id}", ""),
        ("${date://CurrentDate/SL}", "03/05/2024"),
        ("${date://CurrentDate/DS}", "2024-03-05"),
        ("${date://CurrentDate/PT}", "March 5, 2024"),
        ("${date://CurrentDate/FL}", "Tuesday, March 5, 2024"),
        ("${date://CurrentDate/DMY}", "05/03/2024"),
        ("${date://CurrentTime/MS}", "14:07:09"),
        ("${date://CurrentTime/TS}", "2:07:09 PM"),
        ("${date://CurrentDate/ISO}", "2024-03-05T14:07:09+01:00"),
        ("${date://CurrentDate/m%2Fd%2FY}", "03/05/2024"),
        ("${date://OtherDate/Y-m-d/-1 day}", "2024-03-04"),
        ("${date://OtherDate/Y-m-d/+1 month}", "2024-04-05"),
        ("${date://OtherDate/Y-m-d/-10 years}", "2014-03-05"),
        ("${date://OtherDate/Y-m-d/soon}", ""),
        ("${rand://int/1:10}", ""),
        ("Dear ${m://FirstName}, case ${e://Field/CaseId}.", "Dear Bo, case 500AB."),
    ],
)
def test_references_render_their_values(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


def test_html_rendering_escapes_values_and_builds_links() -> None:
    assert render("<p>${q://QID2/ChoiceTextEntryValue/3}</p>", CONTEXT, html=True) == (
        "<p>The &lt;b&gt;staff&lt;/b&gt;</p>"
    )
    assert render("${l://SurveyLink?d=Take the survey}", CONTEXT, html=True) == (
        '<a href="https://cx.example/s/t?x=1&amp;y=2">Take the survey</a>'
    )
    assert render("${l://SurveyLink}", CONTEXT, html=True) == (
        '<a href="https://cx.example/s/t?x=1&amp;y=2">https://cx.example/s/t?x=1&amp;y=2</a>'
    )
    assert render('<a href="${l://SurveyURL}">go</a>', CONTEXT, html=True) == (
        '<a href="https://cx.example/s/t?x=1&amp;y=2">go</a>'
    )
    assert render("${l://OptOutLink?d=Unsubscribe}", CONTEXT, html=True) == ""


def test_missing_context_renders_empty_strings() -> None:
    empty = PipedTextContext()
    template = (
        "${q://QID1/ChoiceGroup/SelectedChoices}|${e://Field/CaseId}|${date://CurrentDate/SL}"
    )
    assert render(template, empty) == "||"


def test_malformed_references_stay_as_written() -> None:
    assert render("Hi ${q://QID1 there", CONTEXT) == "Hi ${q://QID1 there"
    assert render("${foo} and ${m://FirstName}", CONTEXT) == "${foo} and Bo"
    assert render("${q://QID1 ${m://FirstName}", CONTEXT) == "${q://QID1 Bo"
    assert render("$5 and {braces}", CONTEXT) == "$5 and {braces}"


def test_parse_splits_text_references_and_malformed_pieces() -> None:
    segments = parse("Hi ${m://FirstName}! ${e://Field/Team%20Member} ${q://QID1")
    assert segments == [
        Text("Hi ", 0),
        Reference("${m://FirstName}", 3, "m", "FirstName", ("FirstName",)),
        Text("! ", 19),
        Reference(
            "${e://Field/Team%20Member}", 21, "e", "Field/Team%20Member", ("Field", "Team Member")
        ),
        Text(" ", 47),
        Malformed("${q://QID1", 48, segments[-1].reason),
    ]
    link = parse("${l://SurveyLink?d=Go%20now}")[0]
    assert (
        isinstance(link, Reference) and link.link_text == "Go now" and link.parts == ("SurveyLink",)
    )


ALL = NAMESPACES


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${q://QID9/QuestionText}", "QID9 does not exist in this survey"),
        ("${q://Q1/QuestionText}", "'Q1' is not a question ID"),
        ("${q://QID1/Nonsense}", "'Nonsense' is not something cxloop can pipe"),
        ("${q://QID1}", "'' is not something cxloop can pipe"),
        ("${q://QID4/ChoiceGroup/SelectedChoices}", "QID4 is a text entry question"),
        ("${q://QID2/ChoiceTextEntryValue/2}", "choice '2' of QID2 has no text box"),
        ("${q://QID2/ChoiceTextEntryValue/7}", "QID2 has no choice '7'"),
        ("${q://QID2/ChoiceTextEntryValue}", "name the choice whose text box"),
        ("${q://QID5/SelectedAnswers/9}", "QID5 has no row '9'"),
        ("${q://QID5/SelectedAnswers}", "SelectedAnswers needs a row id"),
        ("${q://QID5/SelectedChoicesForAnswer/7}", "QID5 has no scale point '7'"),
        ("${q://QID5/ChoiceTextEntryValue/1}", "row '1' of QID5 has no text box"),
        ("${q://QID1/QuestionText/extra}", "too many parts"),
        ("${e://Field/Unknown}", "embedded data field 'Unknown' is not declared in this survey"),
        ("${e://CaseId}", "write this as ${e://Field/<name>}"),
        ("${rm://Field/CaseId}", "'CaseId' is not a response field"),
        ("${m://Nickname}", "use one of Email, ExternalDataReference"),
        ("${l://Elsewhere}", "use one of OptOutLink"),
        ("${l://SurveyLink?x=1}", "the only option of a link is its text"),
        ("${date://Tomorrow/SL}", "use date://CurrentDate/<format>"),
        ("${date://CurrentDate}", "give a format"),
        ("${date://OtherDate/SL/next week}", "'next week' is not an offset"),
        ("${date://CurrentDate/m/d/Y}", "a slash in the format must be written %2F"),
        ("${task://T2/Id}", "task 'T2' is not an earlier task of this workflow"),
        ("${task://T1}", "write this as ${task://<task id>/<output field>}"),
        ("${event://Field/Subject}", "'Subject' is not a field of this event's outbound message"),
        ("${rand://int/1:4}", "rand:// piped text (random numbers) is not supported"),
        ("${xyz://a}", "'xyz://' is not a piped text namespace"),
        ("${q://QID1 oops", "not closed with '}'"),
        ("${name}", "this is not piped text"),
    ],
)
def test_validation_explains_each_problem(template: str, message: str) -> None:
    problems = validate(
        "Before " + template,
        CONTENT,
        ALL,
        known_task_ids={"T1"},
        known_event_fields={"CaseNumber"},
    )
    assert len(problems) == 1, problems
    assert problems[0].position == 7
    assert problems[0].reference == template
    assert message in problems[0].message


@pytest.mark.parametrize(
    "template",
    [
        "${q://QID1/QuestionText} ${q://QID1/ChoiceGroup/SelectedChoices}",
        "${q://QID2/ChoiceGroup/SelectedChoicesRecode} ${q://QID2/ChoiceTextEntryValue/3}",
        "${q://QID3/ChoiceTextEntryValue} ${q://QID5/ChoiceGroup/SelectedAnswers/1}",
        "${q://QID5/SelectedAnswerRecode/2} ${q://QID5/SelectedChoicesForAnswer/1}",
        "${q://QID6/ChoiceNumericEntryValue/1} ${q://QID7/ChoiceNumericEntryValue}",
        "${q://QID8/QuestionText} ${e://Field/Team%20Member} ${e://Field/ResponseID}",
        "${m://FirstName} ${l://SurveyLink?d=Go} ${l://OptOutLink?d=Stop here}",
        "${date://CurrentDate/PT} ${date://OtherDate/m%2Fd%2FY/-2 weeks}",
        "${event://Field/CaseNumber} ${task://T1/Id} ${rm://Field/Finished}",
        "No references at all",
    ],
)
def test_valid_references_have_no_problems(template: str) -> None:
    assert validate(template, CONTENT, ALL, known_task_ids={"T1"}) == []


def test_namespaces_not_allowed_here_are_reported() -> None:
    problems = validate("${task://T1/Id} ${e://Field/CaseId}", CONTENT, {"q", "e"}, {"T1"})
    assert [p.message for p in problems] == [
        "task:// references cannot be used here; allowed here: e://, q://"
    ]


def test_without_a_survey_question_references_are_reported() -> None:
    problems = validate("${q://QID1/QuestionText} ${e://Field/Anything}", None, ALL)
    assert [p.message for p in problems] == ["there is no survey here to look up QID1 in"]


def test_unknown_event_fields_are_accepted_when_the_fields_are_unknown() -> None:
    assert validate("${event://Field/Anything}", None, {"event"}) == []


def test_render_rejects_nothing() -> None:
    assert render(None, CONTEXT) == ""  # type: ignore[arg-type]
    assert render("${q://QID1/QuestionText}", None) == ""  # type: ignore[arg-type]
    assert validate(None, CONTENT, ALL)[0].message == "piped text must be text"  # type: ignore[arg-type]


def test_to_text() -> None:
    assert to_text(None) == "" and to_text(False) == "0" and to_text(2.0) == "2"
    assert to_text(2.5) == "2.5" and to_text([1, None, "a"]) == "1, a" and to_text({"a": 1}) == ""
    assert (
        to_text(float("nan")) == ""
        and to_text(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02 03:04:05"
    )


def test_date_formats_and_offsets() -> None:
    moment = datetime(2024, 1, 31, 0, 5, 0, tzinfo=UTC)
    assert format_date(moment, r"D, jS F Y \a\t g:i a (N w z t L O P T U)") == (
        "Wed, 31st January 2024 at 12:05 am (3 3 30 31 1 +0000 +00:00 UTC 1706659500)"
    )
    assert format_date(moment, "y-n-j h:H:G s") == "24-1-31 12:00:0 00"
    assert shift_date(moment, "+1 month") == datetime(2024, 2, 29, 0, 5, tzinfo=UTC)
    assert shift_date(moment, "-2 hours") == datetime(2024, 1, 30, 22, 5, tzinfo=UTC)
    assert shift_date(moment, "999999 years") is None
    assert shift_date(moment, "tomorrow") is None


# -- properties -------------------------------------------------------------------------------

_fragments = st.sampled_from(
    [
        "${",
        "}",
        "$",
        "{",
        "://",
        "/",
        "q",
        "e",
        "QID1",
        "QID2",
        "QID5",
        "Field",
        "ChoiceGroup",
        "SelectedChoices",
        "SelectedAnswers",
        "ChoiceTextEntryValue",
        "?d=",
        "%2F",
        "%ZZ",
        "date",
        "CurrentDate",
        "OtherDate",
        "-1 day",
        "l",
        "SurveyLink",
        "task",
        "\n",
        " ",
    ]
)
_templates = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(_fragments, st.text(max_size=5)), max_size=25).map("".join),
)
_anything = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**5000), max_value=10**5000),
        st.floats(),
        st.text(max_size=20),
        st.datetimes(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
_answer_keys = st.sampled_from(
    ["QID1", "QID2", "QID2_3_TEXT", "QID3", "QID4", "QID5", "QID6", "QID7"]
)


@settings(max_examples=200, deadline=None)
@given(
    template=_templates,
    answers=st.one_of(
        st.dictionaries(st.one_of(_answer_keys, st.text(max_size=6)), _anything, max_size=8),
        _anything,
    ),
    embedded=_anything,
    task_outputs=_anything,
    html=st.booleans(),
)
def test_render_never_raises(
    template: str, answers: Any, embedded: Any, task_outputs: Any, html: bool
) -> None:
    context = PipedTextContext(
        survey_content=CONTENT,
        answers=answers,
        embedded_data=embedded,
        metadata=embedded,
        recipient=embedded,
        links=embedded,
        event_fields=embedded,
        task_outputs=task_outputs,
        now=NOW,
    )
    assert isinstance(render(template, context, html=html), str)
    assert isinstance(validate(template, CONTENT, ALL), list)


@settings(max_examples=200, deadline=None)
@given(_templates)
def test_parse_then_reconstruct_is_identity(template: str) -> None:
    segments = parse(template)
    assert "".join(s.raw for s in segments) == template
    position = 0
    for segment in segments:
        assert segment.start == position
        position += len(segment.raw)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200).filter(lambda t: "${" not in t), st.booleans())
def test_text_without_a_reference_comes_back_unchanged(template: str, html: bool) -> None:
    assert render(template, CONTEXT, html=html) == template
    assert parse(template) == ([Text(template, 0)] if template else [])


@settings(max_examples=100, deadline=None)
@given(_templates)
def test_every_malformed_piece_is_a_validation_problem_at_its_position(template: str) -> None:
    malformed = [s for s in parse(template) if isinstance(s, Malformed)]
    problems = validate(template, CONTENT, ALL)
    positions = {p.position for p in problems}
    assert all(m.start in positions for m in malformed)
    assert all(template.startswith("${", p.position) for p in problems)


def test_hostile_context_values_render_empty() -> None:
    context = PipedTextContext(
        survey_content=CONTENT,
        answers={"QID2": {"evil": 1}, "QID1": 10**5000},
        metadata={"ResponseID": 10**5000},
        task_outputs={"T1": "not a mapping"},
        now=NOW,
    )
    template = "${q://QID2/ChoiceGroup/SelectedChoices}|${q://QID1/ChoiceGroup/SelectedChoices}|${e://Field/ResponseID}|${task://T1/Id}"
    assert render(template, context) == "|||"


# -- one renderer for many templates (what workers use per record) ----------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(_templates, min_size=1, max_size=6), st.booleans())
def test_one_renderer_renders_many_templates_as_separate_calls_would(
    templates: list[str], html: bool
) -> None:
    renderer = PipedTextRenderer(CONTEXT, html=html)
    for template in templates:
        assert renderer.text(template) == render(template, CONTEXT, html=html)
        if not html:
            assert renderer.value(template) == render_value(template, CONTEXT)
            segments = parse(template.strip())
            if not (len(segments) == 1 and isinstance(segments[0], Reference)):
                assert renderer.value(template) == render(template, CONTEXT)


def test_a_renderer_gives_raw_values_for_a_lone_reference_and_text_otherwise() -> None:
    renderer = PipedTextRenderer(CONTEXT)
    assert renderer.value(" ${q://QID2/ChoiceGroup/SelectedChoices} ") == ["Speed", "Other"]
    assert renderer.value("${q://QID1/ChoiceGroup/SelectedChoices}") == 9
    assert renderer.value("Score ${q://QID1/ChoiceGroup/SelectedChoices}") == "Score 9"
    assert renderer.value("${q://QID7/ChoiceTextEntryValue}") is None  # hidden question
    assert renderer.text("${q://QID7/ChoiceTextEntryValue}") == ""


def test_long_templates_render_the_same_without_being_remembered() -> None:
    long_template = "x" * 5000 + " ${e://Field/CaseId} " + "y" * 5000
    assert render(long_template, CONTEXT) == "x" * 5000 + " 500AB " + "y" * 5000
    assert PipedTextRenderer(CONTEXT).value(long_template) == render(long_template, CONTEXT)
