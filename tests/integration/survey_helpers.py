"""Shared by the survey content, response and respondent page tests: a survey with every
question type, and helpers to make one through the API."""

from __future__ import annotations

import copy
import re
from typing import Any

from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from cxloop.services import users
from tests.conftest import Person

# Every question type, over three pages, with piped text, "other" boxes, an exclusive choice,
# email and number validation, embedded data with a default, and display logic (QID10).
ALL_TYPES: dict[str, Any] = {
    "format_version": 1,
    # CaseId may come from the open link's query string here: these surveys test questions,
    # not trust (tests/integration/test_trusted_embedded_data.py does that).
    "embedded_data": [
        {"name": "CaseId", "source": "query"},
        {"name": "Channel", "default": "email"},
    ],
    "questions": [
        {
            "qid": "QID1",
            "type": "nps",
            "text": "How likely are you to recommend us, case ${e://Field/CaseId}?",
            "required": True,
        },
        {"qid": "QID2", "type": "rating", "text": "Rate the agent", "scale_max": 5},
        {
            "qid": "QID3",
            "type": "single_choice",
            "text": "How did you contact us?",
            "required": True,
            "choices": [
                {"id": "1", "text": "Phone", "recode": 10},
                {"id": "2", "text": "Chat", "recode": 20},
                {"id": "4", "text": "Other", "recode": 40, "allow_text_entry": True},
            ],
        },
        {
            "qid": "QID4",
            "type": "multiple_choice",
            "text": "What went well?",
            "choices": [
                {"id": "1", "text": "Speed"},
                {"id": "2", "text": "Friendliness"},
                {"id": "3", "text": "Nothing", "exclusive": True},
            ],
        },
        {
            "qid": "QID5",
            "type": "descriptive",
            "page": 2,
            "text": "<p>You gave us ${q://QID1/ChoiceNumericEntryValue}.</p>",
        },
        {
            "qid": "QID6",
            "type": "text_entry",
            "page": 2,
            "text": "Your email",
            "validation": "email",
        },
        {
            "qid": "QID7",
            "type": "text_entry",
            "page": 2,
            "text": "How many calls?",
            "validation": "number",
        },
        {
            "qid": "QID8",
            "type": "text_entry",
            "page": 2,
            "text": "Anything else?",
            "multiline": True,
        },
        {
            "qid": "QID9",
            "type": "matrix",
            "page": 3,
            "text": "Do you agree?",
            "required": True,
            "rows": [{"id": "1", "text": "It was fast"}, {"id": "2", "text": "It was kind"}],
            "scale": [
                {"id": "1", "text": "Disagree", "recode": 1},
                {"id": "2", "text": "Neutral", "recode": 2},
                {"id": "3", "text": "Agree", "recode": 3},
            ],
        },
        {
            "qid": "QID10",
            "type": "text_entry",
            "page": 3,
            "text": "What should we do better, after your ${q://QID3/ChoiceGroup/SelectedChoices}?",
            "show_if": {"field": "QID1", "operator": "less_or_equal", "value": 6},
        },
    ],
}

# A complete, valid set of answers to ALL_TYPES (a promoter, so QID10 stays hidden).
GOOD_VALUES: dict[str, Any] = {
    "QID1": 9,
    "QID2": 4,
    "QID3": "4",
    "QID3_4_TEXT": "A letter",
    "QID4": ["1", "2"],
    "QID6": "ann@example.com",
    "QID7": "3",
    "QID8": "Line one\nLine two",
    "QID9": {"1": "3", "2": "2"},
}


def quick_person(container: Container, email: str, *, admin: bool = False) -> Person:
    """A user with an API token and no password: hashing one costs half a second a user."""
    user = users.create_user(container.db, email, None, is_admin=admin)
    issued = users.create_token(container.db, email, "test")
    return Person(id=user.id, email=user.email, token=issued.token)


def all_types() -> dict[str, Any]:
    return copy.deepcopy(ALL_TYPES)


def make_survey(
    client: TestClient,
    person: Person,
    content: dict[str, Any] | None = None,
    *,
    status: str = "active",
    name: str = "Case follow-up",
) -> str:
    """A survey owned by `person` with this content (default: every type) and status."""
    created = client.post("/api/v1/surveys", json={"name": name}, headers=person.headers)
    assert created.status_code == 201, created.text
    survey_id = created.json()["id"]
    put = client.put(
        f"/api/v1/surveys/{survey_id}/content",
        json=content if content is not None else all_types(),
        headers=person.headers,
    )
    assert put.status_code == 200, put.text
    if status != "draft":
        patched = client.patch(
            f"/api/v1/surveys/{survey_id}", json={"status": status}, headers=person.headers
        )
        assert patched.status_code == 200, patched.text
    return survey_id


def share(client: TestClient, owner: Person, survey_id: str, person: Person, role: str) -> None:
    added = client.post(
        f"/api/v1/surveys/{survey_id}/collaborators",
        json={"email": person.email, "role": role},
        headers=owner.headers,
    )
    assert added.status_code == 201, added.text


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a respondent page (the signed state and the page number)."""
    return dict(re.findall(r'<input type="hidden" name="(_\w+)" value="([^"]*)"', html))
