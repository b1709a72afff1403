"""The survey flow at run time, as pure functions (issue 17)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from cxloop.domain.piped_text import PipedTextContext
from cxloop.domain.survey_content import (
    FlowRandomizer,
    SurveyContent,
    SurveyContentError,
    check_document,
)
from cxloop.domain.survey_flow import (
    choose_evenly,
    next_route_page,
    previous_route_page,
    render_url,
    route,
)


def content(flow: list[dict[str, Any]], **extra: Any) -> SurveyContent:
    questions = [
        {"qid": "QID1", "type": "single_choice", "block": "consent", "text": "Agree?",
         "choices": [{"id": "1", "text": "Yes"}, {"id": "2", "text": "No"}]},
    ] + [
        {"qid": f"QID{n}", "type": "text_entry", "block": name, "page": n, "text": name}
        for n, name in enumerate("ABCDEFGHIJ", start=2)
    ]  # fmt: skip
    return SurveyContent.from_document(
        {"format_version": 1, "questions": questions, "flow": flow, **extra}
    )


def never(randomizer: FlowRandomizer, keys: list[str]) -> list[str]:
    raise AssertionError("no assignment expected")


RANDOMIZER = {
    "type": "randomizer", "id": "Arm", "present": 3,
    "flow": [{"type": "block", "block": name} for name in "ABCDEFGHIJ"],
}  # fmt: skip


def test_present_n_of_m_least_presented_first_balances_exactly() -> None:
    randomizer = content([RANDOMIZER]).flow[0]  # type: ignore[index]
    keys = list("ABCDEFGHIJ")
    counts: Counter[str] = Counter()
    rng = random.Random(7)
    for _ in range(100):
        chosen = choose_evenly(randomizer, keys, counts, rng)
        assert len(chosen) == 3 and len(set(chosen)) == 3
        counts.update(chosen)
    assert set(counts.values()) == {30}  # 300 presentations over 10 elements


def test_a_route_keeps_its_assignment_and_stops_at_an_end_of_survey() -> None:
    survey = content(
        [
            {"type": "block", "block": "consent"},
            {"type": "branch", "condition": {"field": "QID1", "operator": "equals", "value": "2"},
             "flow": [{"type": "end_survey", "screened_out": True}]},
            RANDOMIZER,
        ]
    )  # fmt: skip
    first = route(survey, {}, {}, lambda r, keys: ["C", "A", "J"])
    assert first.pages == (1, 4, 2, 11) and first.data == {"Arm": "C|A|J"}
    assert first.assigned == {"Arm": ["C", "A", "J"]}
    again = route(survey, {"QID1": "1"}, first.data, never)
    assert again.pages == first.pages and not again.assigned
    assert next_route_page(survey, again, {}, after=4) == 2
    assert previous_route_page(survey, again, {}, before=4) == 1
    declined = route(survey, {"QID1": "2"}, first.data, never)
    assert declined.pages == (1,) and declined.end is not None and declined.end.screened_out
    assert next_route_page(survey, declined, {"QID1": "2"}, after=1) is None


def test_a_random_value_in_the_flow_is_the_same_on_every_walk_of_a_response() -> None:
    survey = content(
        [{"type": "embedded_data", "fields": [{"name": "N", "value": "${rand://int/1:1000}"}]},
         {"type": "block", "block": "consent"}]
    )  # fmt: skip
    values = {route(survey, {}, {}, never, seed="s1").data["N"] for _ in range(5)}
    assert len(values) == 1 and 1 <= int(values.pop()) <= 1000


def test_a_redirect_url_encodes_piped_values_and_refuses_other_schemes() -> None:
    context = PipedTextContext(embedded_data={"PID": "a&b c/?"})
    assert render_url("https://x.example/done?pid=${e://Field/PID}", context) == (
        "https://x.example/done?pid=a%26b%20c%2F%3F"
    )
    assert (
        render_url("${e://Field/PID}", PipedTextContext(embedded_data={"PID": "javascript:x"}))
        is None
    )


@pytest.mark.parametrize(
    ("flow", "options", "expected"),
    [
        ([{"type": "block", "block": "nope"}], {}, "flow[0].block: no question belongs to"),
        ([{**RANDOMIZER, "present": 11}], {}, "flow[0].present: presents 11 of 10 elements"),
        ([{"type": "branch", "condition": {"field": "e://Field/X", "operator": "bogus"}}], {},
         "flow[0].condition.operator"),
        ([{"type": "end_survey", "redirect_url": "ftp://x"}], {},
         "flow[0].redirect_url: must be a web address"),
        ([{"type": "randomizer", "id": "R", "present": 1, "flow": [{"type": "nope"}]}], {},
         "flow[0].flow[0]: unknown flow element type"),
        ([], {"progress_bar": "bars"}, "options.progress_bar"),
        ([], {"end_redirect_url": "javascript:alert(1)"}, "options.end_redirect_url: must be"),
        ([], {"back_button": "no"}, "options.back_button: must be true or false"),
        ("blocks", {}, "flow: must be a list"),
    ],
)  # fmt: skip
def test_bad_flows_and_options_are_reported_with_their_paths(
    flow: Any, options: dict[str, Any], expected: str
) -> None:
    document = content([]).to_document() | {"flow": flow, "options": options}
    problems = [str(p) for p in check_document(document)]
    assert any(p.startswith(expected) for p in problems), problems
    with pytest.raises(SurveyContentError):
        SurveyContent.from_document(document)


def test_a_lazy_walk_assigns_a_randomizer_only_when_the_respondent_reaches_it() -> None:
    survey = content([{"type": "block", "block": "consent"}, RANDOMIZER])
    opened = route(survey, {}, {}, never, lazy=True)
    assert opened.pages == (1,) and opened.pending and "Arm" not in opened.data
    reached = route(survey, {"QID1": "1"}, {}, lambda r, keys: ["B", "A", "C"], lazy=True,
                    submitted=1)  # fmt: skip
    assert reached.pages == (1, 3, 2, 4) and not reached.pending
    assert reached.assigned == {"Arm": ["B", "A", "C"]}
