"""Every problem of a workflow or survey document at once, in words a person can act on:
structure and references in one reply, unknown keys with the allowed ones, YAML errors
without the parser's internals (issue 13)."""

from __future__ import annotations

import pytest

from cxloop.domain.survey_content import SurveyContent, SurveyContentError
from cxloop.domain.workflow import WorkflowDocumentError, check_document, load_text

CONTENT = SurveyContent.from_document(
    {
        "format_version": 1,
        "embedded_data": [{"name": "CaseId"}],
        "questions": [
            {"qid": "QID1", "type": "nps", "text": "How likely are you to recommend us?"},
            {"qid": "QID2", "type": "text_entry", "text": "Why?"},
        ],
    }
)

WORKFLOW_WITH_EVERY_KIND_OF_PROBLEM = """
name: Detractor alert
event:
  type: survey_response
  on: [created]
conditions:
  conditions:
    - {field: "q://QID7", operator: less_or_equal, value: 6}
tasks:
  - id: alert
    type: email
    to: am@example.com
    subject: "Score ${q://QID9/ChoiceGroup/SelectedChoices}"
    body: "Said ${q://QID2/Bogus}"
    colour: red
  - id: case
    type: email
    subject: "Case ${e://Field/CaseId}"
    body: "${q://QID8/ChoiceGroup/SelectedChoices}"
"""


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(WorkflowDocumentError) as raised:
        check_document(load_text(text), CONTENT)
    return {problem.path: problem.message for problem in raised.value.problems}


def test_on_instead_of_when_names_the_key_and_the_allowed_ones() -> None:
    problems = problems_of(WORKFLOW_WITH_EVERY_KIND_OF_PROBLEM)
    assert problems["event.on"] == (
        "unknown key 'on': allowed keys are type, when, include_imported, include_incomplete"
    )
    assert not any("Keys should be strings" in message for message in problems.values())


def test_structural_and_reference_problems_come_in_one_reply() -> None:
    problems = problems_of(WORKFLOW_WITH_EVERY_KIND_OF_PROBLEM)
    # structure
    assert problems["tasks[0].colour"].startswith("unknown key 'colour': allowed keys are type, id")
    assert problems["tasks[1].to"] == "is required"
    # references, in the same reply: a task that fits the schema and one that does not
    assert "QID9 does not exist in this survey" in problems["tasks[0].subject"]
    assert "'Bogus' is not something cxloop can pipe" in problems["tasks[0].body"]
    assert "QID8 does not exist in this survey" in problems["tasks[1].body"]
    assert problems["conditions.conditions[0].field"] == "QID7 does not exist in this survey"
    assert "tasks[1].subject" not in problems  # ${e://Field/CaseId} is declared


def test_unknown_key_in_a_salesforce_mapping_names_the_allowed_keys() -> None:
    text = """
name: Record
event: {type: survey_response}
tasks:
  - id: response
    type: salesforce
    connection: Acme
    object: Survey_Response__c
    action: insert
    mappings:
      - {field: Score__c, vaule: "${q://QID1/ChoiceGroup/SelectedChoices}"}
      - {field: Reason__c, value: "${q://QID5/ChoiceGroup/SelectedChoices}"}
"""
    problems = problems_of(text)
    assert problems["tasks[0].mappings[0].vaule"].startswith(
        "unknown key 'vaule': allowed keys are field, value"
    )
    assert "QID5 does not exist" in problems["tasks[0].mappings[1].value"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            b"format_version: 1\nquestions:\n  - qid: QID1\n    text: [unclosed\n",
            "(line 5, column 1)",
        ),
        ("format_version: 1\nquestions: {a: 1\n", "(line 3, column 1)"),
        ("format_version: 1\n\tquestions: []\n", "(line 2, column 1)"),
    ],
)
def test_survey_yaml_errors_show_line_and_column_not_parser_internals(
    text: str | bytes, expected: str
) -> None:
    with pytest.raises(SurveyContentError) as raised:
        SurveyContent.from_yaml(text)
    message = str(raised.value)
    assert expected in message and message.count("\n") == 0
    assert "<byte string>" not in message and "<unicode string>" not in message
    assert "<stream end>" not in message


def test_survey_unknown_keys_name_the_allowed_ones_and_every_problem_comes_at_once() -> None:
    text = """
format_version: 1
questoins: []
questions:
  - {qid: QID1, type: nps, text: Recommend, colour: red}
  - {qid: QID2, type: rating, text: Satisfied, scale_min: 1, scale_max: 5, on: 1}
  - {qid: QID1, type: text_entry, text: Why}
"""
    with pytest.raises(SurveyContentError) as raised:
        SurveyContent.from_yaml(text)
    problems = {problem.path: problem.message for problem in raised.value.problems}
    assert problems["questoins"] == (
        "unknown key 'questoins': allowed keys are format_version, embedded_data, questions, "
        "flow, options"
    )
    assert problems["questions[0].colour"].startswith("unknown key 'colour': allowed keys are qid")
    assert "scale_min, scale_max" in problems["questions[1].on"]
    assert "QID1 is used twice" in problems["questions[2].qid"]
