"""Trusted embedded data, the pure parts: field sources, what each channel may set, the signed
link's signature, channel conditions in workflow documents, QSF sources."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxloop.domain import workflow
from cxloop.domain.conditions import evaluate
from cxloop.domain.qsf import import_qsf
from cxloop.domain.signed_links import (
    SignedLinkError,
    new_signing_key,
    signed_query,
    verify,
)
from cxloop.domain.survey_content import SurveyContent, SurveyContentError, settable_embedded_data

NOW = 1_800_000_000
CONTENT = SurveyContent.from_document(
    {
        "format_version": 1,
        "embedded_data": [
            {"name": "CaseId"},
            {"name": "Campaign", "source": "query"},
            {"name": "Tier", "source": "server"},
        ],
    }
)
OFFERED = {"CaseId": "500", "Campaign": "spring", "Tier": "gold", "Unknown": "x"}


def test_a_field_without_a_source_is_a_personal_link_field() -> None:
    assert CONTENT.embedded_data_sources() == {
        "CaseId": "personal_link", "Campaign": "query", "Tier": "server",
    }  # fmt: skip
    assert "source" not in CONTENT.to_document()["embedded_data"][0]
    assert SurveyContent.from_yaml(CONTENT.to_yaml()) == CONTENT
    assert SurveyContent.from_json(CONTENT.to_json()) == CONTENT


def test_an_unknown_source_is_a_problem_with_its_path() -> None:
    with pytest.raises(SurveyContentError) as caught:
        SurveyContent.from_document(
            {"format_version": 1, "embedded_data": [{"name": "A", "source": "URL"}]}
        )
    [problem] = caught.value.problems
    assert problem.path == "embedded_data[0].source"
    assert "'URL' is not a source" in problem.message


@pytest.mark.parametrize(
    ("channel", "kept"),
    [
        ("anonymous_link", {"Campaign"}),
        ("personal_link", {"CaseId", "Campaign"}),
        ("signed_link", {"CaseId", "Campaign"}),
        ("api", {"CaseId", "Campaign", "Tier"}),
        ("import", {"CaseId", "Campaign", "Tier"}),
        ("something_else", set()),
    ],
)
def test_each_channel_sets_only_the_sources_it_may(channel: str, kept: set[str]) -> None:
    values, refused = settable_embedded_data(CONTENT, channel, OFFERED)
    assert set(values) == kept
    assert set(refused) == set(OFFERED) - kept


# -- signatures -------------------------------------------------------------------------------

KEY = new_signing_key()
names = st.text(min_size=1, max_size=20).filter(lambda n: n not in ("_exp", "_sig"))
values_ = st.dictionaries(names, st.text(max_size=40), max_size=5)


@given(values=values_)
def test_a_signed_query_verifies_to_its_values(values: dict[str, str]) -> None:
    items = signed_query(KEY, "SV_1", values, NOW + 60)
    assert verify(KEY, "SV_1", items, NOW) == values
    assert verify(KEY, "SV_1", list(reversed(items)), NOW) == values


@given(values=values_, name=names, value=st.text(max_size=40))
def test_any_change_to_a_signed_query_breaks_it(
    values: dict[str, str], name: str, value: str
) -> None:
    items = signed_query(KEY, "SV_1", values, NOW + 60)
    if values.get(name) == value:
        return
    changed = [(n, v) for n, v in items if n != name] + [(name, value)]
    with pytest.raises(SignedLinkError) as caught:
        verify(KEY, "SV_1", changed, NOW)
    assert caught.value.reason == "invalid"


@given(values=values_)
def test_another_key_or_survey_does_not_verify(values: dict[str, str]) -> None:
    items = signed_query(KEY, "SV_1", values, NOW + 60)
    for key, survey in ((new_signing_key(), "SV_1"), (KEY, "SV_2")):
        with pytest.raises(SignedLinkError):
            verify(key, survey, items, NOW)


def test_an_expired_signed_query_is_expired_and_a_missing_one_invalid() -> None:
    items = signed_query(KEY, "SV_1", {"CaseId": "500"}, NOW)
    with pytest.raises(SignedLinkError) as caught:
        verify(KEY, "SV_1", items, NOW)
    assert caught.value.reason == "expired"
    for broken in (
        [(n, v) for n, v in items if n != "_sig"],
        [*items, ("_sig", "again")],
        [*items, ("CaseId", "501")],
        [(n, "" if n == "_sig" else v) for n, v in items],
    ):
        with pytest.raises(SignedLinkError) as caught:
            verify(KEY, "SV_1", broken, NOW - 10)
        assert caught.value.reason == "invalid"


def test_the_link_parameters_cannot_be_values() -> None:
    with pytest.raises(ValueError):
        signed_query(KEY, "SV_1", {"_exp": "1"}, NOW)


# -- channel conditions -----------------------------------------------------------------------


def _workflow(condition: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "w",
        "event": {"type": "survey_response"},
        "conditions": {"join": "and", "conditions": [condition]},
        "tasks": [{"id": "m", "type": "email", "to": "a@example.com", "subject": "s", "body": "b"}],
    }


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        ({"field": "m://Channel", "operator": "equals", "value": "personal_link"}, None),
        ({"field": "m://Channel", "operator": "in_list", "value": ["api", "signed_link"]}, None),
        ({"field": "m://Channel", "operator": "equals", "value": "email"}, "not a channel"),
        ({"field": "m://Channel", "operator": "in_list", "value": ["api", "x"]}, "not a channel"),
        ({"field": "m://Channel", "operator": "contains", "value": "link"}, "equals, not_equals"),
    ],
)
def test_a_channel_condition_names_a_channel(condition: dict, problem: str | None) -> None:
    document = workflow.WorkflowDocument.model_validate(_workflow(condition))
    found = workflow.survey_problems(document, CONTENT)
    messages = " ".join(p.message for p in found)
    if problem is None:
        assert found == []
    else:
        assert problem in messages


def test_a_channel_condition_evaluates_against_the_response_channel() -> None:
    condition = workflow.WorkflowDocument.model_validate(
        _workflow({"field": "m://Channel", "operator": "equals", "value": "personal_link"})
    ).conditions
    assert condition is not None
    assert evaluate(condition, {"m://Channel": "personal_link"}.get)
    assert not evaluate(condition, {"m://Channel": "anonymous_link"}.get)


# -- QSF --------------------------------------------------------------------------------------


def _qsf(*fields: dict[str, Any]) -> str:
    return json.dumps(
        {
            "SurveyEntry": {"SurveyID": "SV_1", "SurveyName": "S"},
            "SurveyElements": [
                {"Element": "BL", "Payload": []},
                {
                    "Element": "FL",
                    "Payload": {
                        "Type": "Root",
                        "FlowID": "FL_1",
                        "Flow": [
                            {"Type": "EmbeddedData", "FlowID": "FL_2", "EmbeddedData": list(fields)}
                        ],
                    },
                },
            ],
        }
    )


def test_qsf_fields_set_from_panel_or_url_take_values_from_the_link_and_others_do_not() -> None:
    content, report = import_qsf(
        _qsf(
            {"Field": "CaseId", "Type": "Recipient", "Description": "CaseId"},
            {"Field": "Channel", "Type": "Custom", "Value": "email"},
            {"Field": "Arm", "Type": "Custom", "Value": "${rand://int/1:4}"},
        )
    )
    assert content.embedded_data_sources() == {
        "CaseId": "query", "Channel": "personal_link", "Arm": "personal_link",
    }  # fmt: skip
    assert report.embedded_data_from_link == ["CaseId"]
