"""The workflow document: schema, exact YAML/JSON round trip, and the checks a save runs."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxloop.domain.survey_content import SurveyContent
from cxloop.domain.workflow import (
    MAX_DOCUMENT_BYTES,
    ConditionField,
    DocumentTextError,
    WorkflowDocumentError,
    check_document,
    dump_yaml,
    load_text,
    parse_condition_field,
    parse_document,
    task_references,
    task_templates,
    to_document,
)

CONTENT = SurveyContent.from_document(
    {
        "format_version": 1,
        "embedded_data": [{"name": "CaseId"}],
        "questions": [
            {"qid": "QID1", "type": "nps", "text": "How likely?"},
            {
                "qid": "QID2",
                "type": "single_choice",
                "text": "Channel",
                "choices": [
                    {"id": "1", "text": "Phone"},
                    {"id": "9", "text": "Other", "allow_text_entry": True},
                ],
            },
            {"qid": "QID3", "type": "text_entry", "text": "Why?"},
            {
                "qid": "QID4",
                "type": "matrix",
                "text": "Rate",
                "rows": [{"id": "speed", "text": "Speed"}],
                "scale": [{"id": "1", "text": "Bad"}, {"id": "2", "text": "Good"}],
            },
            {"qid": "QID5", "type": "descriptive", "text": "Thanks"},
        ],
    }
)

DOCUMENT: dict[str, Any] = {
    "name": "Detractor follow-up",
    "description": "Upsert the response, then tell the account manager.",
    "event": {
        "type": "survey_response",
        "when": ["created", "updated"],
        "include_imported": False,
    },
    "conditions": {
        "join": "and",
        "conditions": [
            {"field": "q://QID1", "operator": "less_or_equal", "value": 6},
            {
                "join": "or",
                "conditions": [
                    {"field": "e://Field/CaseId", "operator": "is_not_empty"},
                    {"field": "q://QID2", "operator": "in_list", "value": ["1", "9"]},
                    {"field": "q://QID4/row/speed", "operator": "equals", "value": "1"},
                    {"field": "m://Finished", "operator": "equals", "value": True},
                ],
            },
        ],
    },
    "on_task_failure": "stop",
    "tasks": [
        {
            "type": "salesforce",
            "id": "response",
            "connection": "Acme production",
            "object": "Survey_Response__c",
            "action": "upsert",
            "key_field": "Response_ID__c",
            "mappings": [
                {"field": "Response_ID__c", "value": "${e://Field/ResponseID}"},
                {"field": "Source__c", "value": "cxloop", "constant": True},
                {"field": "NPS__c", "value": "${q://QID1/ChoiceGroup/SelectedChoices}"},
            ],
        },
        {
            "type": "email",
            "id": "alert",
            "to": "am@example.com",
            "subject": "Detractor on case ${e://Field/CaseId}",
            "body": "Score ${q://QID1/ChoiceGroup/SelectedChoices}\n\nRecord: ${task://response/Id}\n",
        },
    ],
}


def problems_of(document: Any, content: SurveyContent | None = CONTENT) -> list[tuple[str, str]]:
    with pytest.raises(WorkflowDocumentError) as caught:
        check_document(document, content)
    return [(p.path, p.message) for p in caught.value.problems]


def changed(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(DOCUMENT)
    document.update(changes)
    return document


def test_a_valid_document_round_trips_exactly() -> None:
    parsed = check_document(DOCUMENT, CONTENT)
    assert to_document(parsed) == DOCUMENT
    text = dump_yaml(DOCUMENT)
    assert load_text(text) == DOCUMENT
    assert dump_yaml(load_text(text)) == text
    assert list(load_text(text)) == list(DOCUMENT)  # keys keep their order
    assert "  body: |\n" in text  # multi-line text reads (and diffs) as a block
    assert load_text(json.dumps(DOCUMENT)) == DOCUMENT


def test_defaults_left_out_stay_out() -> None:
    minimal = {
        "name": "Minimal",
        "event": {"type": "survey_response"},
        "tasks": [{"type": "email", "id": "a", "to": "x@example.com", "subject": "s", "body": "b"}],
    }
    assert to_document(parse_document(minimal)) == minimal


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")))
def test_any_text_survives_yaml_export_and_reload(text: str) -> None:
    document = {"name": text, "tasks": [{"body": text, "to": [text]}]}
    exported = dump_yaml(document)
    assert load_text(exported) == document
    assert dump_yaml(load_text(exported)) == exported


def test_schema_problems_are_all_reported_with_readable_paths() -> None:
    document = changed(on_task_failure="retry", colour="blue")
    document["event"]["include_imported"] = "yes"  # strict: no guessing "yes" means true
    document["tasks"][0]["mappings"][0]["field"] = "Response ID"
    document["tasks"][1]["subject"] = 42
    document["tasks"].append({"type": "fax", "id": "fax"})
    document["tasks"].append({"id": "untyped"})
    assert problems_of(document) == [
        ("event.include_imported", "must be true or false"),
        ("on_task_failure", "Input should be 'continue' or 'stop'"),
        ("tasks[0].mappings[0].field",
         "'Response ID' is not a Salesforce API name: a letter, then letters, digits or '_' "
         "(at most 80)"),
        ("tasks[1].subject", "must be text"),
        ("tasks[2]", "unknown task type 'fax'; use one of: salesforce, email, directory"),
        ("tasks[3].type", "'type' is missing; use one of: salesforce, email, directory"),
        ("colour", "unknown key 'colour': allowed keys are format_version, name, description, "
         "event, conditions, on_task_failure, tasks"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([], ("", "the workflow document must be a mapping (an object)")),
        (changed(name="   "), ("name", "the workflow needs a name that is not blank")),
        (changed(name="two\nlines"), ("name", "the workflow name must be one line")),
        (changed(name="a\x00b"), ("name", "text must not contain NUL characters")),
        (changed(event={"when": ["created"]}),
         ("event.type", "'type' is missing; use one of: survey_response, "
          "salesforce_outbound_message")),
        (changed(tasks=[]), ("tasks", "List should have at least 1 item after validation, not 0")),
        (changed(format_version=2), ("format_version", "Input should be 1")),
        (changed(description="x" * MAX_DOCUMENT_BYTES),
         ("", "the document is larger than 1000 kB; split the workflow")),
    ],
)  # fmt: skip
def test_bad_documents_are_refused_with_a_reason(document: Any, problem: tuple[str, str]) -> None:
    assert problems_of(document) == [problem]


def test_references_to_later_tasks_and_duplicate_ids_are_refused() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["tasks"].reverse()  # the email now uses the output of a task that runs after it
    document["tasks"].append({**document["tasks"][0], "body": "${task://copy/Id}"})
    expected_without_survey = [
        ("tasks[2].id", "two tasks have the id 'alert'; task ids must be unique"),
        ("tasks[0].body",
         "task 'alert' uses the output of 'response', which is not an earlier task"),
        ("tasks[2].body", "task 'alert' uses the output of 'copy', which is not an earlier task"),
    ]  # fmt: skip
    assert problems_of(document, None) == expected_without_survey
    # with the survey, a reference problem says where in the text it is
    with_survey = problems_of(document)
    assert with_survey[0] == expected_without_survey[0]
    assert with_survey[1] == (
        "tasks[0].body",
        "task 'alert', body, character 56: ${task://response/Id}: task 'response' is not an "
        "earlier task of this workflow",
    )
    # the engine's parse refuses the same document outright
    with pytest.raises(ValueError, match="which is not an earlier task"):
        parse_document(document)


def test_a_task_cannot_use_its_own_output() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["tasks"][0]["key_value"] = "${task://response/Id}"
    assert problems_of(document, None) == [
        ("tasks[0].key_value", "task 'response' refers to its own output")
    ]


def test_piped_text_is_checked_against_the_survey_and_the_event() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["tasks"][1]["to"] = "${m://Email}, ${event://Field/Owner}"
    document["tasks"][1]["subject"] = "${q://QID1/ChoiceTextEntryValue/4} ${e://Field/Region}"
    assert problems_of(document) == [
        ("tasks[1].to",
         "task 'alert', to, character 15: ${event://Field/Owner}: event:// references cannot be "
         "used here; allowed here: date://, e://, m://, q://, task://"),
        ("tasks[1].subject",
         "task 'alert', subject, character 1: ${q://QID1/ChoiceTextEntryValue/4}: QID1 is a "
         "nps question; ChoiceTextEntryValue does not apply to it"),
        ("tasks[1].subject",
         "task 'alert', subject, character 36: ${e://Field/Region}: embedded data field "
         "'Region' is not declared in this survey"),
    ]  # fmt: skip
    outbound = copy.deepcopy(DOCUMENT)
    outbound.pop("conditions")
    outbound["event"] = {"type": "salesforce_outbound_message", "connection": "Acme",
                         "object": "Case"}  # fmt: skip
    outbound["tasks"][1]["subject"] = (
        "Case ${event://Field/CaseNumber} closed ${date://CurrentDate/SL}"
    )
    assert [path for path, _ in problems_of(outbound)] == [
        "tasks[0].mappings[2].value", "tasks[1].body"
    ]  # fmt: skip


def test_condition_fields_must_name_what_the_survey_has() -> None:
    conditions = [
        {"field": "q://QID8", "operator": "is_empty"},
        {"field": "e://Field/Region", "operator": "is_empty"},
        {"field": "m://Colour", "operator": "is_empty"},
        {"field": "q://QID2", "operator": "equals", "value": "Phone"},
        {"field": "q://QID4", "operator": "is_empty"},
        {"field": "q://QID3/recode", "operator": "is_empty"},
        {"field": "q://QID2/text/1", "operator": "is_empty"},
        {"field": "q://QID5", "operator": "is_empty"},
        {"field": "event://Field/Status", "operator": "is_empty"},
        {"field": "QID1", "operator": "is_empty"},
    ]
    document = changed(conditions={"join": "or", "conditions": conditions})
    messages = dict(problems_of(document))
    assert messages == {
        "conditions.conditions[0].field": "QID8 does not exist in this survey",
        "conditions.conditions[1].field":
            "embedded data field 'Region' is not declared in this survey",
        "conditions.conditions[2].field": "'Colour' is not response metadata; use one of: "
            "ResponseID, SurveyID, Finished, Source, Channel, Duration, Language, StartDate, "
                "EndDate, "
            "DistributionID, ContactID",
        "conditions.conditions[3].field":
            "QID2 has no choice 'Phone' (compare with choice ids: 1, 9)",
        "conditions.conditions[4].field":
            "QID4 is a matrix; name a row, such as q://QID4/row/<row id>",
        "conditions.conditions[5].field": "QID3 is a text entry question and has no recode",
        "conditions.conditions[6].field": "choice '1' of QID2 has no text box",
        "conditions.conditions[7].field": "QID5 is descriptive text and has no answer",
        "conditions.conditions[8].field":
            "a survey_response workflow cannot test event:// fields; use q://, e://, m://",
        "conditions.conditions[9].field": "'QID1' is not a condition field; use q://QID1, "
            "q://QID1/recode, q://QID1/text, q://QID1/text/<choice id>, q://QID1/row/<row id>, "
            "e://Field/<name>, m://<name> or event://Field/<name>",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("field", "parsed"),
    [
        ("q://QID1", ConditionField("q", "QID1")),
        ("q://QID1/recode", ConditionField("q", "QID1", "recode")),
        ("q://QID3/text", ConditionField("q", "QID3", "text")),
        ("q://QID2/text/9", ConditionField("q", "QID2", "text", "9")),
        ("q://QID4/row/speed", ConditionField("q", "QID4", "row", "speed")),
        ("q://QID4/row/speed/recode", ConditionField("q", "QID4", "row_recode", "speed")),
        ("e://Field/Team Member", ConditionField("e", "Team Member")),
        ("m://Finished", ConditionField("m", "Finished")),
        ("event://Field/CaseNumber", ConditionField("event", "CaseNumber")),
        ("q://QID0", None),
        ("q://QID1/row", None),
        ("e://CaseId", None),
        ("", None),
    ],
)
def test_condition_fields_parse(field: str, parsed: ConditionField | None) -> None:
    assert parse_condition_field(field) == parsed


def test_templates_and_references_of_a_task() -> None:
    parsed = parse_document(DOCUMENT)
    assert task_templates(parsed.tasks[0]) == [
        ("mappings[0].value", "${e://Field/ResponseID}"),
        ("mappings[2].value", "${q://QID1/ChoiceGroup/SelectedChoices}"),
    ]
    assert task_references(parsed.tasks[1]) == {"response"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("name: [unclosed", "not valid YAML or JSON: while parsing a flow sequence, expected "
         "',' or ']', but got 'the end of the text' (line 1, column 16)"),
        ("a: &x 1\nb: *x\n", "aliases (*name) are not allowed (line 2, column 4)"),
        ("a: 1\na: 2\n", "the key 'a' appears twice (line 2, column 1)"),
        ("a: !!python/object/apply:os.system [ls]", "could not determine a constructor"),
        ("  \n", "the document is empty"),
        (b"\xff\xfe", "the document is not UTF-8 text"),
        ("- " * 2_000, "not valid YAML or JSON: it is nested too deeply"),
    ],
)  # fmt: skip
def test_text_that_is_no_document_says_why(text: str | bytes, reason: str) -> None:
    with pytest.raises(DocumentTextError) as caught:
        load_text(text)
    assert reason in caught.value.problems[0].message


def test_json_is_strict_json() -> None:
    with pytest.raises(DocumentTextError, match="NaN is not a number JSON allows"):
        load_text('{"a": NaN}', "json")
    with pytest.raises(DocumentTextError, match="appears twice"):
        load_text('{"a": 1, "a": 2}', "json")
    with pytest.raises(WorkflowDocumentError, match="larger than"):
        load_text("x" * (MAX_DOCUMENT_BYTES + 1))


OUTBOUND_DIRECTORY: dict[str, Any] = {
    "name": "Closed case survey",
    "event": {"type": "salesforce_outbound_message", "connection": "Acme", "object": "Case"},
    "tasks": [
        {
            "id": "invite",
            "type": "directory",
            "contact": {"email": "${event://Field/SuppliedEmail}"},
            "distribute": {
                "subject": "How did we do, ${m://FirstName}?",
                "body": "Tell us: ${l://SurveyLink}\nUnsubscribe: ${l://OptOutLink}",
                "embedded_data": {"CaseId": "${event://Field/Id}"},
            },
        }
    ],
}


def directory_document(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(OUTBOUND_DIRECTORY)
    document["tasks"][0].update(changes)
    return document


def test_a_directory_task_with_declared_link_embedded_data_is_accepted() -> None:
    parsed = check_document(directory_document(), CONTENT)
    assert parsed.tasks[0].distribute.embedded_data == {"CaseId": "${event://Field/Id}"}


def test_link_embedded_data_the_survey_does_not_declare_is_refused_with_its_path() -> None:
    document = directory_document()
    document["tasks"][0]["distribute"]["embedded_data"]["Region"] = "${event://Field/Region}"
    [(path, message)] = problems_of(document)
    assert path == "tasks[0].distribute.embedded_data.Region"
    assert "embedded data field 'Region' is not declared in this survey" in message


def test_a_blank_contact_email_is_refused() -> None:
    problems = problems_of(directory_document(contact={"email": "   "}), None)
    assert problems == [
        (
            "tasks[0].contact.email",
            "the contact's email is empty: give an address or piped text such as "
            "${event://Field/SuppliedEmail}",
        )
    ]
