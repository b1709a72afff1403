"""Finding 2 of issue #12, replayed against the demo's real servers (cxloop, the Salesforce
emulator, the mail catcher): an anonymous visitor who puts another Case's Id in the survey link
must not write onto that Case; the invitation's personal link still closes the loop."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cxloop.demo import Demo, Step
from cxloop.demo.seed import ANSWERS, ORG
from tests.integration.test_closed_loop import start_demo

FORGED = {"QID1": "0", "QID2": "1", "QID3": "FORGED by an anonymous visitor"}


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = start_demo(tmp_path)
    yield running
    running.stop()


def answer_anonymously(demo: Demo, query: str) -> None:
    """What the attacker's browser does: open the public link with a query, answer, submit."""
    url = demo.seeded.survey_url
    with httpx.Client(timeout=30, trust_env=False) as browser:
        page = browser.get(f"{url}{query}")
        assert page.status_code == 200, page.text
        fields = dict(re.findall(r'<input type="hidden" name="(_\w+)" value="([^"]*)"', page.text))
        fields = {k: html.unescape(v) for k, v in fields.items()}
        done = browser.post(url, data={**FORGED, **fields, "_action": "next"})
        assert done.status_code == 200 and "Thank you" in done.text, done.text


def responses_and_case_runs(demo: Demo) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with demo.api() as api:
        responses = api.get(f"/api/v1/surveys/{demo.seeded.survey_id}/responses").json()
        runs = api.get("/api/v1/runs", params={"workflow_id": demo.seeded.response_workflow_id})
    return responses["items"], runs.json()["items"]


def the_case(demo: Demo) -> dict[str, Any]:
    with demo.emulator() as control:
        return control.get(f"/records/{ORG}/{demo.seeded.case_id}").raise_for_status().json()


def test_an_anonymous_case_id_never_reaches_the_case_and_the_invitation_still_closes_the_loop(
    demo: Demo,
) -> None:
    answer_anonymously(demo, f"?CaseId={demo.seeded.case_id}")
    [forged], runs = responses_and_case_runs(demo)
    assert "CaseId" not in forged["embedded_data"]
    assert forged["channel"] == "anonymous_link"
    assert runs == []  # runs are written with the response: none will ever come

    steps: list[Step] = []
    demo.run_loop(steps.append)  # close the Case, the invitation, its personal link, answer
    assert all(s.ok for s in steps), [s for s in steps if not s.ok]
    case = the_case(demo)
    assert case["Survey_Comment__c"] == ANSWERS["QID3"]
    _, runs = responses_and_case_runs(demo)
    assert len(runs) == 1


def test_a_case_id_taken_from_the_query_still_does_not_update_the_case(demo: Demo) -> None:
    # An editor turns CaseId into a query field (the reference product's behaviour): the
    # response workflow's channel condition keeps the open link away from the Case anyway.
    with demo.api() as api:
        path = f"/api/v1/surveys/{demo.seeded.survey_id}/content"
        content = api.get(path).json()
        for field in content["embedded_data"]:
            if field["name"] == "CaseId":
                field["source"] = "query"
        assert api.put(path, json=content).status_code == 200
    answer_anonymously(demo, f"?CaseId={demo.seeded.case_id}")
    [forged], runs = responses_and_case_runs(demo)
    assert forged["embedded_data"]["CaseId"] == demo.seeded.case_id
    assert runs == []
    with demo.api() as api:
        dry = api.post(
            f"/api/v1/surveys/{demo.seeded.survey_id}/workflows/"
            f"{demo.seeded.response_workflow_id}/test",
            json={"response_id": forged["id"]},
        ).json()
    assert dry["channel"] == "anonymous_link" and dry["would_run"] is False
    assert "conditions do not hold" in " ".join(dry["why_not"])
    assert the_case(demo).get("Survey_Comment__c") in (None, "")
