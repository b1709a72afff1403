"""ResponseRules: the prepared checks of an import give exactly what validate_response and
visible_answers give, for plausible responses and hostile ones alike."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cxloop.domain.answers import (
    MAX_TEXT_LENGTH,
    ResponseRules,
    validate_response,
    visible_answers,
)
from cxloop.domain.survey_content import SurveyContent
from tests.unit.test_answers import CONTENT, HAPPY, UNHAPPY, _anything, _keys

# The same questions without display logic (the rules' quickest path), and with a required
# multiple-answer matrix and a rating.
_PLAIN_DOCUMENT = CONTENT.model_dump(mode="json")
for _question in _PLAIN_DOCUMENT["questions"]:
    _question.pop("show_if", None)
    if _question["qid"] == "QID6":
        _question["required"] = True
PLAIN = SurveyContent.from_document(_PLAIN_DOCUMENT)

RULES = {"logic": ResponseRules(CONTENT), "plain": ResponseRules(PLAIN)}
CONTENTS = {"logic": CONTENT, "plain": PLAIN}


def expected(
    content: SurveyContent, answers: Any, embedded: Any, include_required: bool
) -> list[Any]:
    problems = validate_response(content, answers, embedded)
    return problems if include_required else [p for p in problems if p.code != "required"]


def assert_same(kind: str, answers: Any, embedded: Any = None) -> None:
    rules, content = RULES[kind], CONTENTS[kind]
    for include_required in (True, False):
        got = rules.check(answers, embedded, include_required=include_required)
        assert got == expected(content, answers, embedded, include_required)
    assert rules.visible_answers(answers) == visible_answers(content, answers)


def test_the_usual_response_has_no_problems_and_keeps_the_shown_answers() -> None:
    rules = ResponseRules(CONTENT)
    assert rules.check(HAPPY, {"CaseId": "500A", "Channel": None}) == []
    assert rules.visible_answers(HAPPY) == visible_answers(CONTENT, HAPPY)
    assert list(rules.visible_answers(HAPPY)) == ["QID2", "QID3", "QID5", "QID10"]


def test_problems_are_those_of_validate_response_word_for_word() -> None:
    for kind in RULES:
        assert_same(kind, UNHAPPY, {"CaseId": ["no"], "Nope": 1})
        assert_same(kind, {"QID2": 11, "QID3": 2, "QID99": 1}, "not an object")
        assert_same(kind, {})
        assert_same(kind, None)
        assert_same(kind, ["QID2"])


def test_an_unfinished_response_may_leave_required_questions_open() -> None:
    rules = ResponseRules(PLAIN)
    answers = {"QID2": 9, "QID5": {"1": "2"}}  # QID4, QID6, QID7 and matrix row 2 left open
    assert [(p.qid, p.code) for p in rules.check(answers)] == [
        ("QID4", "required"),
        ("QID5", "required"),
        ("QID6", "required"),
        ("QID7", "required"),
    ]
    assert rules.check(answers, include_required=False) == []


def test_text_boxes_count_only_beside_their_selected_choice() -> None:
    for kind in RULES:
        assert_same(kind, HAPPY | {"QID3": "4", "QID3_4_TEXT": "A billboard"})
        assert_same(kind, HAPPY | {"QID3": "1", "QID3_4_TEXT": "A billboard"})
        assert_same(kind, HAPPY | {"QID3_4_TEXT": "  "})
        assert_same(kind, HAPPY | {"QID3": "4", "QID3_4_TEXT": "x" * (MAX_TEXT_LENGTH + 1)})
        assert_same(kind, HAPPY | {"QID5": {"1": "2", "2": "1"}, "QID5_2_TEXT": "Other"})
        assert_same(kind, HAPPY | {"QID5": {"1": "2", "2": ""}, "QID5_2_TEXT": "Other"})


# Answers close to valid ones: right and wrong ids, types, blanks and lengths.
_choice_ids = st.sampled_from(["1", "2", "3", "4", "9", "x", "y", "", " ", "0"])
_near_values = st.one_of(
    st.none(),
    st.integers(min_value=-2, max_value=12),
    st.booleans(),
    st.sampled_from([9.0, "9", "", "  ", "Great", "ann@example.com", "not an email", "3.5"]),
    _choice_ids,
    st.lists(_choice_ids, max_size=4),
    st.dictionaries(_choice_ids, st.one_of(_choice_ids, st.lists(_choice_ids, max_size=3))),
    st.just("x" * (MAX_TEXT_LENGTH + 1)),
)
_near_answers = st.dictionaries(_keys, _near_values, max_size=12)
_near_embedded = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["CaseId", "Channel", "Other"]),
        st.one_of(
            st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.lists(st.none())
        ),
        max_size=3,
    ),
)


_texts = st.sampled_from(["Great", "  Great  ", "é" * 3, "x" * MAX_TEXT_LENGTH])
_distinct = st.lists(st.sampled_from(["1", "2", "3"]), min_size=1, max_size=3, unique=True)


@st.composite
def _valid_answers(draw: st.DrawFn) -> dict[str, Any]:
    """A response that answers every question of CONTENT (and PLAIN) validly."""
    answers: dict[str, Any] = {
        "QID2": draw(st.integers(min_value=0, max_value=10)),
        "QID3": draw(st.sampled_from(["1", "2", "4"])),
        "QID4": draw(_distinct | st.just(["9"])),
        "QID5": {"1": draw(st.sampled_from(["1", "2"])), "2": draw(st.sampled_from(["1", "2"]))},
        "QID6": {"a": draw(st.lists(st.sampled_from(["x", "y"]), min_size=1, unique=True))},
        "QID7": draw(st.sampled_from(["ann@example.com", " bob@example.org "])),
    }
    if answers["QID3"] == "4" and draw(st.booleans()):
        answers["QID3_4_TEXT"] = draw(_texts)
    if "3" in answers["QID4"] and draw(st.booleans()):
        answers["QID4_3_TEXT"] = draw(_texts)
    if draw(st.booleans()):
        answers["QID5_2_TEXT"] = draw(_texts)
    optional = {
        "QID8": st.sampled_from(["42", " -3.5 ", "1e3"]),
        "QID9": st.integers(min_value=1, max_value=5),
        "QID10": _texts,
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            answers[key] = draw(values)
    return answers


_too_long = "x" * (MAX_TEXT_LENGTH + 1)
_odd_texts = ["Other", "", "  ", _too_long, 7, None, ["Great"]]
# Per answer key: values close to a valid one, each wrong (or right) in its own way.
_NEAR: dict[str, list[Any]] = {
    "QID1": ["Hello", 0, None, " "],
    "QID2": [-1, 0, 10, 11, True, 9.0, "9", " ", None, [9]],
    "QID3": ["3", "9", 2, "", " ", None, ["1"], "1", "4"],
    "QID3_4_TEXT": _odd_texts,
    "QID4": [["1", "1"], ["9", "1"], ["1", "9"], ["5"], [1], [], "1", ["9", "9"], ["3"], None],
    "QID4_3_TEXT": _odd_texts,
    "QID5": [{"1": "3"}, {"3": "1"}, {"1": ["1"]}, {"1": ""}, {"1": None}, {}, {"1": "1"}, ["1"]],
    "QID5_2_TEXT": _odd_texts,
    "QID6": [{"a": ["x", "x"]}, {"a": ["z"]}, {"a": "x"}, {"b": ["x"]}, {"a": []}, {"a": [1]}],
    "QID7": ["ann@", "@example.com", "", _too_long, 5, "a@b.c", " bob@example.org "],
    "QID8": ["1,000", "nan", "", "12", 12, " 3 ", _too_long],
    "QID9": [0, 1, 5, 6, -1, True, "3"],
    "QID10": _odd_texts,
    "QID11": ["Hello"],
    "QID3_1_TEXT": ["Hello"],
}
_BASES = [
    {  # every question answered; QID4 shows (QID2 <= 6), and so does QID7 (QID4 has "2")
        "QID2": 3,
        "QID3": "4",
        "QID3_4_TEXT": "A billboard",
        "QID4": ["2", "3"],
        "QID4_3_TEXT": "Lost my parcel",
        "QID5": {"1": "1", "2": "2"},
        "QID5_2_TEXT": "Other",
        "QID6": {"a": ["x", "y"]},
        "QID7": "ann@example.com",
        "QID8": "3",
        "QID9": 2,
        "QID10": "Great",
    },
    {  # the fewest answers PLAIN takes; in CONTENT, QID4 and QID7 are hidden
        "QID2": 9,
        "QID4": ["9"],
        "QID5": {"1": "2", "2": "2"},
        "QID6": {"a": ["y"]},
        "QID7": " bob@example.org ",
    },
]


def test_every_answer_changed_or_removed_gets_the_same_problems_and_answers() -> None:
    for base in _BASES:
        for kind in RULES:
            assert_same(kind, base)
            for key in base:
                assert_same(kind, {k: v for k, v in base.items() if k != key})
            for key, values in _NEAR.items():
                for value in values:
                    assert_same(kind, base | {key: value})


@st.composite
def _nearly_valid_answers(draw: st.DrawFn) -> dict[str, Any]:
    """A valid response, or one with a few answers changed or removed."""
    answers = draw(_valid_answers())
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        key = draw(st.sampled_from(sorted(_NEAR)))
        if draw(st.booleans()):
            answers[key] = draw(st.sampled_from(_NEAR[key]))
        else:
            answers.pop(key, None)
    return answers


_nearly_valid_embedded = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "CaseId": st.sampled_from(["500A", "", None, 7, 1.5, True, ["x"]]),
            "Channel": st.sampled_from(["email", "x" * (MAX_TEXT_LENGTH + 1)]),
        },
    ),
)


@settings(max_examples=800, deadline=None)
@given(
    kind=st.sampled_from(sorted(RULES)),
    answers=_nearly_valid_answers(),
    embedded=_nearly_valid_embedded,
)
def test_nearly_valid_responses_get_the_same_problems_and_answers(
    kind: str, answers: Any, embedded: Any
) -> None:
    assert_same(kind, answers, embedded)


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(sorted(RULES)), answers=_near_answers, embedded=_near_embedded)
def test_plausible_responses_get_the_same_problems_and_answers(
    kind: str, answers: Any, embedded: Any
) -> None:
    assert_same(kind, answers, embedded)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(sorted(RULES)),
    answers=st.one_of(st.dictionaries(_keys, _anything, max_size=12), _anything),
    embedded=st.one_of(st.none(), st.dictionaries(st.text(max_size=8), _anything, max_size=4)),
)
def test_hostile_responses_get_the_same_problems_and_answers(
    kind: str, answers: Any, embedded: Any
) -> None:
    assert_same(kind, answers, embedded)
