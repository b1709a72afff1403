"""The survey flow on the respondent's pages: branches, randomizers, embedded data and
end-of-survey elements, and the survey options (issue 17)."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from cxloop.services import responses as response_service
from tests.integration.survey_helpers import make_survey, quick_person
from tests.integration.test_respond_pages import Respondent, stored, text_of
from tests.integration.test_responses_import_export import actor_of


def _text(qid: str, page: int, block: str, text: str) -> dict[str, Any]:
    return {"qid": qid, "type": "text_entry", "page": page, "block": block, "text": text}


def study() -> dict[str, Any]:
    """A consent page, then 2 of 4 conditions (one page each), then a last page."""
    questions: list[dict[str, Any]] = [
        {
            "qid": "QID1",
            "type": "single_choice",
            "block": "consent",
            "text": "Do you agree to take part?",
            "required": True,
            "choices": [{"id": "1", "text": "I agree"}, {"id": "2", "text": "I don't agree"}],
        }
    ]
    for number, name in enumerate("ABCD", start=2):
        questions.append(_text(f"QID{number}", number, name, f"Condition {name} question"))
    questions.append(_text("QID6", 6, "outro", "Anything else?"))
    return {
        "format_version": 1,
        "embedded_data": [{"name": "PROLIFIC_PID", "source": "query"}],
        "questions": questions,
        "flow": [
            {"type": "embedded_data", "fields": [{"name": "Arm", "value": "${rand://int/1:4}"}]},
            {"type": "block", "block": "consent"},
            {
                "type": "branch",
                "condition": {"field": "QID1", "operator": "equals", "value": "2"},
                "flow": [
                    {
                        "type": "end_survey",
                        "redirect_url": "https://panel.example.org/done?code=NOCONSENT"
                        "&pid=${e://Field/PROLIFIC_PID}",
                        "screened_out": True,
                    }
                ],
            },
            {
                "type": "randomizer",
                "id": "Conditions",
                "present": 2,
                "flow": [{"type": "block", "block": name} for name in "ABCD"],
            },
            {"type": "block", "block": "outro"},
            {"type": "end_survey", "message": "Thanks, ${e://Field/PROLIFIC_PID}!"},
        ],
        "options": {"title": "A study of choices", "back_button": False},
    }


def test_a_declined_consent_ends_at_its_end_of_survey_element_with_its_redirect(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, study(), name="Internal: pilot 3")
    you = Respondent(client, survey_id)
    first = you.open("?PROLIFIC_PID=5f/a b")
    assert "A study of choices" in first.text and "Internal: pilot 3" not in first.text
    done = client.post(
        f"/s/{survey_id}", data={"QID1": "2", **you.fields, "_action": "next"},
        follow_redirects=False,
    )  # fmt: skip
    assert done.status_code == 303
    assert done.headers["location"] == (
        "https://panel.example.org/done?code=NOCONSENT&pid=5f%2Fa%20b"
    )
    [response] = stored(client, alice, survey_id)
    assert response["finished"] is True
    assert response["values"] == {"QID1": "2"}
    assert response["embedded_data"]["Q_TerminateFlag"] == "Screened"
    # never reached the randomizer: not assigned, so not counted as presented
    assert "Conditions" not in response["embedded_data"]


def test_a_randomizer_shows_exactly_n_of_m_and_balances_them_over_respondents(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, study())
    presented: Counter[str] = Counter()
    for number in range(8):
        you = Respondent(client, survey_id)
        you.open(f"?PROLIFIC_PID=P{number}")
        page = you.submit({"QID1": "1"})
        assert "Back" not in page.text  # the option turns it off
        if number == 0:  # and a form that sends "back" anyway stays on its page
            stay = you.submit({}, action="back")
            assert "Condition" in text_of(stay.text) and "Do you agree" not in stay.text
            page = stay
        seen = []
        for _ in range(2):
            shown = [name for name in "ABCD" if f"Condition {name} question" in text_of(page.text)]
            assert len(shown) == 1, text_of(page.text)
            seen += shown
            page = you.submit({})
        assert "Anything else?" in text_of(page.text)
        done = you.submit({"QID6": "No"})
        assert f"Thanks, P{number}!" in text_of(done.text)
        assert len(set(seen)) == 2
        presented.update(seen)
    assert presented == {"A": 4, "B": 4, "C": 4, "D": 4}  # 8 respondents x 2 of 4, evenly
    responses = stored(client, alice, survey_id)
    assert len(responses) == 8 and all(r["finished"] for r in responses)
    for response in responses:
        assigned = response["embedded_data"]["Conditions"].split("|")
        assert len(assigned) == 2 and set(assigned) <= set("ABCD")
        assert response["embedded_data"]["Arm"] in {"1", "2", "3", "4"}
        assert "Q_TerminateFlag" not in response["embedded_data"]


def test_a_flow_value_drawn_at_random_stays_the_same_on_every_page(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    content = study()
    content["questions"][1]["text"] = "Your arm is ${e://Field/Arm}."
    content["flow"][3] = {"type": "block", "block": "A"}
    survey_id = make_survey(client, alice, content)
    you = Respondent(client, survey_id)
    you.open()
    page = you.submit({"QID1": "1"})
    arm = text_of(page.text).split("Your arm is ")[1][0]
    you.submit({})
    you.submit({"QID6": "x"})
    [response] = stored(client, alice, survey_id)
    assert response["embedded_data"]["Arm"] == arm


def test_the_content_api_reports_every_flow_problem_with_its_path(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    content = study()
    content["flow"] += [
        {"type": "block", "block": "nowhere"},
        {"type": "randomizer", "id": "Conditions", "present": 5, "flow": [
            {"type": "block", "block": "A"}
        ]},
        {"type": "end_survey", "redirect_url": "javascript:alert(1)"},
        {"type": "teleport"},
    ]  # fmt: skip
    content["questions"][5].pop("block")
    survey_id = make_survey(client, alice, status="draft")
    reply = client.put(f"/api/v1/surveys/{survey_id}/content", json=content, headers=alice.headers)
    assert reply.status_code == 422, reply.text
    problems = {(p["path"], p["message"].split(";")[0]) for p in reply.json()["error"]["details"]}
    paths = {path for path, _ in problems}
    assert {
        "flow[6].block",
        "flow[7].present",
        "flow[7].id",
        "flow[8].redirect_url",
        "flow[9]",
        "questions[5].block",
    } <= paths, problems
    # nothing half-stored
    kept = client.get(f"/api/v1/surveys/{survey_id}/content", headers=alice.headers)
    assert "flow" not in kept.json()


def test_the_flow_and_options_round_trip_through_the_content_api(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, study())
    kept = client.get(f"/api/v1/surveys/{survey_id}/content", headers=alice.headers).json()
    assert kept["flow"] == study()["flow"]
    assert kept["options"] == study()["options"]


def test_an_imported_qsf_ends_a_declined_consent_at_its_redirect_and_randomizes_the_rest(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, {"format_version": 1}, status="draft")
    qsf = Path(__file__).resolve().parent.parent / "fixtures" / "qsf" / "consent_randomizer_end.qsf"
    imported = client.post(
        f"/api/v1/surveys/{survey_id}/import",
        files={"file": ("study.qsf", qsf.read_bytes())}, headers=alice.headers,
    )  # fmt: skip
    assert imported.status_code == 200, imported.text
    client.patch(f"/api/v1/surveys/{survey_id}", json={"status": "active"}, headers=alice.headers)

    declined = Respondent(client, survey_id)
    first = declined.open("?PROLIFIC_PID=abc123")
    assert "Choices study" in first.text and "Back" not in first.text
    assert "Page 1 of" not in first.text  # the progress bar shows a percentage
    ended = client.post(
        f"/s/{survey_id}", data={"QID1": "2", **declined.fields, "_action": "next"},
        follow_redirects=False,
    )  # fmt: skip
    assert ended.status_code == 303
    assert ended.headers["location"].endswith("cc=NOCONSENT&pid=abc123")

    agreed = Respondent(client, survey_id)
    agreed.open("?PROLIFIC_PID=def456")
    condition = agreed.submit({"QID1": "1"})
    shown = [c for c in "ABC" if f"Condition {c}:" in text_of(condition.text)]
    assert len(shown) == 1  # 1 of 3
    agreed.submit({"QID2": "1", "QID3": "1", "QID4": "1"})
    done = client.post(
        f"/s/{survey_id}", data={**agreed.fields, "_action": "next"}, follow_redirects=False
    )
    assert done.headers["location"] == "https://app.prolific.example/submissions/complete?cc=DONE"
    responses = {r["embedded_data"]["PROLIFIC_PID"]: r for r in stored(client, alice, survey_id)}
    assert responses["abc123"]["embedded_data"]["Q_TerminateFlag"] == "Screened"
    assert (
        responses["def456"]["finished"]
        and "Q_TerminateFlag" not in responses["def456"]["embedded_data"]
    )
    assert responses["def456"]["embedded_data"]["FL_6"] in {"BL_condA", "BL_condB", "BL_condC"}

    # The export carries the assignment and the screen-out, and imports back.
    export = client.get(f"/api/v1/surveys/{survey_id}/responses/export", headers=alice.headers)
    rows = list(csv.reader(io.StringIO(export.text)))
    names = rows[0]
    assert names[11:14] == ["PROLIFIC_PID", "FL_6", "Q_TerminateFlag"]
    assert names[14:] == ["consent", "QID2", "QID3", "QID4", "QID5"]  # the export tags
    cells = {
        row[names.index("PROLIFIC_PID")]: dict(zip(names, row, strict=True)) for row in rows[3:]
    }
    assert cells["abc123"]["Q_TerminateFlag"] == "Screened"
    assert cells["def456"]["FL_6"].startswith("BL_cond")
    for response in responses.values():
        client.delete(
            f"/api/v1/surveys/{survey_id}/responses/{response['id']}", headers=alice.headers
        )
    result = response_service.import_file(
        container.db, actor_of(alice), survey_id, io.StringIO(export.text), "csv"
    )
    assert (result.stored, result.failed) == (2, 0), result.bad_rows
    again = {r["embedded_data"]["PROLIFIC_PID"]: r for r in stored(client, alice, survey_id)}
    assert again["abc123"]["embedded_data"]["Q_TerminateFlag"] == "Screened"
    assert again["def456"]["embedded_data"]["FL_6"] == cells["def456"]["FL_6"]


def same_page_follow_ups() -> dict[str, Any]:
    return {
        "format_version": 1,
        "questions": [
            {
                "qid": "QID1",
                "type": "single_choice",
                "text": "Did you contact us before?",
                "required": True,
                "choices": [{"id": "1", "text": "Yes"}, {"id": "2", "text": "No"}],
            },
            {
                "qid": "QID2",
                "type": "text_entry",
                "text": "How did you contact us?",
                "required": True,
                "show_if": {"field": "QID1", "operator": "equals", "value": "1"},
            },
            {
                "qid": "QID3",
                "type": "text_entry",
                "text": "Why not?",
                "required": True,
                "show_if": {"field": "QID1", "operator": "equals", "value": "2"},
            },
        ],
    }


def _hidden_blocks(page: str) -> set[str]:
    return set(re.findall(r'data-qid="(QID\d+)"[^>]*\shidden>', page))


def test_same_page_display_logic_hides_the_follow_up_that_does_not_apply_without_javascript(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, same_page_follow_ups())
    you = Respondent(client, survey_id)
    first = you.open()
    assert _hidden_blocks(first.text) == {"QID2", "QID3"}
    assert '<script src="/static/survey-logic.js" defer></script>' in first.text
    assert "<script>" not in first.text  # nothing inline: the CSP allows only 'self'
    again = you.submit({"QID1": "1"})
    # The page comes back with the follow-up that now applies, and no errors at all.
    assert again.status_code == 200, text_of(again.text)
    assert "Please check your answers" not in again.text
    assert _hidden_blocks(again.text) == {"QID3"}
    assert "Thank you!" in you.submit({"QID1": "1", "QID2": "By phone"}).text
    [response] = stored(client, alice, survey_id)
    assert response["values"] == {"QID1": "1", "QID2": "By phone"}


def test_a_hidden_follow_up_is_never_required_and_its_answer_is_dropped(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, same_page_follow_ups())
    you = Respondent(client, survey_id)
    you.open()
    # As the page's script leaves it: the follow-up shown at once, listed as shown.
    you.fields["_shown"] = "QID1 QID3"
    done = you.submit({"QID1": "2", "QID3": "No need", "QID2": "typed before changing"})
    assert "Thank you!" in done.text, text_of(done.text)
    [response] = stored(client, alice, survey_id)
    assert response["values"] == {"QID1": "2", "QID3": "No need"}


def test_a_slider_is_a_range_input_with_its_labels_and_a_text_box_is_prefilled(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    content = {
        "format_version": 1,
        "embedded_data": [{"name": "PROLIFIC_PID", "source": "query"}],
        "questions": [
            {"qid": "QID1", "type": "rating", "text": "Does it exist?", "scale_min": 0,
             "scale_max": 100, "display": "slider", "step": 5, "required": True,
             "labels": ["Definitely not", "Definitely exists"], "choice_id": "1"},
            {"qid": "QID2", "type": "text_entry", "text": "Your Prolific ID",
             "default": "${e://Field/PROLIFIC_PID}"},
        ],
    }  # fmt: skip
    survey_id = make_survey(client, alice, content)
    you = Respondent(client, survey_id)
    page = you.open("?PROLIFIC_PID=5f3a<b>")
    assert re.search(
        r'<input type="range" name="QID1" id="QID1-input" min="0" max="100" step="5" '
        r'value="50" aria-labelledby="QID1-legend" aria-describedby="QID1-labels"',
        page.text,
    )
    assert "<li>Definitely not</li>" in page.text and "<li>Definitely exists</li>" in page.text
    assert 'value="5f3a&lt;b&gt;"' in page.text  # prefilled, escaped
    assert "Thank you!" in you.submit({"QID1": "85", "QID2": "5f3a<b>"}).text
    [response] = stored(client, alice, survey_id)
    assert response["values"] == {"QID1": 85, "QID2": "5f3a<b>"}


def test_formatting_is_kept_safely_and_the_error_summary_uses_a_short_text(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    consent = (
        "<p>This study asks about <b>your</b> decisions and <i>takes</i> about <u>ten</u>\n"
        "minutes.</p>" + "<p>" + "More information about the study. " * 30 + "</p>"
        "<ul><li>Voluntary</li><li>Anonymous</li></ul><script>alert(1)</script>"
    )
    content = {
        "format_version": 1,
        "questions": [
            {"qid": "QID1", "type": "single_choice", "text": consent, "required": True,
             "choices": [{"id": "1", "text": "<b>I agree</b>"}]},
        ],
    }  # fmt: skip
    survey_id = make_survey(client, alice, content)
    you = Respondent(client, survey_id)
    page = you.open()
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "about <b>your</b> decisions and <i>takes</i> about <u>ten</u>\nminutes." in page.text
    assert "<b>I agree</b>" in page.text and "<script>alert" not in page.text
    refused = you.submit({})
    [link] = re.findall(r'<a href="#QID1">([^<]*)</a>', refused.text)
    assert len(link) < 140 and link.startswith("This study asks about your decisions")


def test_the_api_requires_only_the_questions_on_the_responses_route(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    content = study()
    for question in content["questions"][1:]:
        question["required"] = True
    survey_id = make_survey(client, alice, content)
    url = f"/api/v1/surveys/{survey_id}/responses"
    declined = client.post(url, json={"values": {"QID1": "2"}}, headers=alice.headers)
    assert declined.status_code == 201, declined.text  # the flow ends after the consent
    assigned = {"values": {"QID1": "1", "QID3": "x", "QID5": "y", "QID6": "z"},
                "embedded_data": {"Conditions": "B|D"}}  # fmt: skip
    assert client.post(url, json=assigned, headers=alice.headers).status_code == 201
    missing = {"values": {"QID1": "1", "QID3": "x", "QID6": "z"},
               "embedded_data": {"Conditions": "B|D"}}  # fmt: skip
    refused = client.post(url, json=missing, headers=alice.headers)
    assert refused.status_code == 422
    assert [p["qid"] for p in refused.json()["error"]["details"]] == ["QID5"]
