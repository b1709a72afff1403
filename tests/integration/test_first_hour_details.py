"""The smaller points of the first hour (issue 13): end labels of a rating scale, and numbers
shown the same way in the response list as in the record."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from cxloop.demo.seed import SURVEY_CONTENT
from tests.integration.survey_helpers import make_survey, quick_person
from tests.integration.test_respond_pages import Respondent, text_of

CSAT = {
    "format_version": 1,
    "questions": [
        {"qid": "QID1", "type": "nps", "text": "Recommend us?"},
        {"qid": "QID2", "type": "rating", "text": "How satisfied are you?", "scale_min": 1,
         "scale_max": 5, "low_label": "Very dissatisfied", "high_label": "Very satisfied"},
    ],
}  # fmt: skip


def test_a_rating_scale_shows_its_end_labels_like_nps(
    client: TestClient, container: Container
) -> None:
    owner = quick_person(container, "owner@example.com")
    survey_id = make_survey(client, owner, CSAT)
    page = text_of(Respondent(client, survey_id).open().text)
    assert "Not at all likely" in page and "Extremely likely" in page
    assert "Very dissatisfied" in page and "Very satisfied" in page
    assert "1 means Very dissatisfied, 5 means Very satisfied." in page
    assert "0 means Not at all likely, 10 means Extremely likely." in page


def test_the_demo_csat_question_has_end_labels() -> None:
    [csat] = [q for q in SURVEY_CONTENT["questions"] if q["type"] == "rating"]
    assert csat["low_label"] and csat["high_label"]


def test_rating_labels_round_trip_and_are_checked(client: TestClient, container: Container) -> None:
    owner = quick_person(container, "owner@example.com")
    survey_id = make_survey(client, owner, CSAT, status="draft")
    content = client.get(f"/api/v1/surveys/{survey_id}/content", headers=owner.headers).json()
    assert content["questions"][1]["low_label"] == "Very dissatisfied"
    bad = json.loads(json.dumps(CSAT))
    bad["questions"][1]["low_label"] = 5
    refused = client.put(f"/api/v1/surveys/{survey_id}/content", json=bad, headers=owner.headers)
    assert refused.status_code == 422
    assert "questions[1].low_label" in refused.text
