"""A respondent answers a two-page survey in Chromium, by keyboard only, on a phone-sized screen.

Uses Debian's Chromium (/usr/bin/chromium); without it the test is skipped (under CI=true it
fails). Screenshots go to tests-artifacts/ (ignored by git) for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from tests.e2e.conftest import CHROMIUM_ARGS

from cxloop.bootstrap import Container
from cxloop.db.models import Response
from cxloop.services import survey_content, surveys
from cxloop.services.access import Actor
from cxloop.services.users import create_user

ARTIFACTS = Path(__file__).resolve().parents[2] / "tests-artifacts"
PHONE = {"width": 390, "height": 844}
CONTENT = {
    "format_version": 1,
    "questions": [
        {"qid": "QID1", "type": "nps", "text": "How likely are you to recommend us to a friend?",
         "required": True},
        {"qid": "QID2", "type": "single_choice", "text": "How did you contact us?",
         "choices": [{"id": "1", "text": "Phone"}, {"id": "2", "text": "Chat"},
                     {"id": "3", "text": "Email"}]},
        {"qid": "QID3", "type": "text_entry", "page": 2, "multiline": True,
         "text": "What could we do better?"},
        {"qid": "QID4", "type": "multiple_choice", "page": 2, "text": "What went well?",
         "choices": [{"id": "1", "text": "Speed"}, {"id": "2", "text": "Friendliness"},
                     {"id": "3", "text": "Nothing", "exclusive": True}]},
    ],
}  # fmt: skip

pytestmark = pytest.mark.browser


def tab_to(page, selector: str, presses: int = 40) -> None:
    """Press Tab until the focused element matches `selector`, as a keyboard user would."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_a_two_page_survey_answered_by_keyboard_on_a_phone(
    container: Container, base_url: str, chromium_path: str, database_url: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    owner = create_user(container.db, "owner@example.com", None)
    actor = Actor.of(owner)
    survey = surveys.create_survey(container.db, actor, "Your support case")
    survey_content.put_content(container.db, actor, survey.id, CONTENT)
    surveys.update_survey(container.db, actor, survey.id, {"status": "active"})
    ARTIFACTS.mkdir(exist_ok=True)
    backend = "postgresql" if database_url.startswith("postgres") else "sqlite"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{base_url}/s/{survey.id}")
        expect(page.get_by_text("Page 1 of 2")).to_be_visible()

        # Next without answering: the problem is shown next to the question
        tab_to(page, "button[value=next]")
        page.keyboard.press("Enter")
        expect(page.locator("#QID1-error")).to_have_text("Error: This question needs an answer.")
        expect(page.get_by_role("alert")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / f"respond-phone-error-{backend}.png"), full_page=True)

        tab_to(page, "input[name=QID1]")  # the radio group takes one Tab; arrows choose
        for _ in range(9):
            page.keyboard.press("ArrowRight")
        expect(page.locator("input[name=QID1]:checked")).to_have_value("9")
        tab_to(page, "input[name=QID2]")
        page.keyboard.press("Space")
        page.keyboard.press("ArrowDown")
        expect(page.locator("input[name=QID2]:checked")).to_have_value("2")
        page.screenshot(path=str(ARTIFACTS / f"respond-phone-page1-{backend}.png"), full_page=True)
        tab_to(page, "button[value=next]")
        page.keyboard.press("Enter")

        expect(page.get_by_text("Page 2 of 2")).to_be_visible()
        tab_to(page, "textarea[name=QID3]")
        page.keyboard.type("Answer <b>faster</b>, please")
        tab_to(page, "input[name=QID4][value='1']")
        page.keyboard.press("Space")
        tab_to(page, "input[name=QID4][value='2']")
        page.keyboard.press("Space")
        page.screenshot(path=str(ARTIFACTS / f"respond-phone-page2-{backend}.png"), full_page=True)
        tab_to(page, "button[value=next]")
        expect(page.locator("button[value=next]")).to_have_text("Submit")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
        browser.close()

    with container.db.reader() as uow:
        response = uow.session.scalars(select(Response)).one()
    assert response.finished and response.source == "web"
    assert response.values == {
        "QID1": 9,
        "QID2": "2",
        "QID3": "Answer <b>faster</b>, please",
        "QID4": ["1", "2"],
    }


def flow_content(base_url: str) -> dict:
    """Consent (a branch ends a refusal at a redirect), a slider and a same-page follow-up,
    then 1 of 2 conditions from a randomizer."""
    return {
        "format_version": 1,
        "embedded_data": [{"name": "PID", "source": "query"}],
        "questions": [
            {"qid": "QID1", "type": "single_choice", "block": "consent", "required": True,
             "text": "<p>This study takes <b>five minutes</b>.</p><ul><li>Taking part is "
                     "<u>voluntary</u>.</li><li>You may stop at any time.</li></ul>"
                     "<p>Do you agree to take part?</p>",
             "choices": [{"id": "1", "text": "I agree"}, {"id": "2", "text": "I don't agree"}]},
            {"qid": "QID2", "type": "rating", "block": "main", "page": 2, "scale_min": 0,
             "scale_max": 100, "step": 10, "display": "slider", "choice_id": "1",
             "text": "How sure are you that the effect exists?",
             "labels": ["Definitely not", "Not sure", "Definitely exists"]},
            {"qid": "QID3", "type": "single_choice", "block": "main", "page": 2,
             "text": "Did you contact us before?",
             "choices": [{"id": "1", "text": "Yes"}, {"id": "2", "text": "No"}]},
            {"qid": "QID4", "type": "text_entry", "block": "main", "page": 2, "required": True,
             "text": "How did you contact us?",
             "show_if": {"field": "QID3", "operator": "equals", "value": "1"}},
            {"qid": "QID5", "type": "text_entry", "block": "main", "page": 2, "required": True,
             "text": "Why not?",
             "show_if": {"field": "QID3", "operator": "equals", "value": "2"}},
            {"qid": "QID6", "type": "descriptive", "block": "A", "page": 3,
             "text": "Condition A"},
            {"qid": "QID7", "type": "descriptive", "block": "B", "page": 4,
             "text": "Condition B"},
        ],
        "flow": [
            {"type": "block", "block": "consent"},
            {"type": "branch", "condition": {"field": "QID1", "operator": "equals", "value": "2"},
             "flow": [{"type": "end_survey", "screened_out": True,
                       "redirect_url": base_url + "/static/survey.css?pid=${e://Field/PID}"}]},
            {"type": "block", "block": "main"},
            {"type": "randomizer", "id": "Condition", "present": 1,
             "flow": [{"type": "block", "block": "A"}, {"type": "block", "block": "B"}]},
        ],
        "options": {"title": "A short study", "progress_bar": "percent"},
    }  # fmt: skip


def test_flow_same_page_logic_and_a_slider_in_chromium_with_and_without_javascript(
    container: Container, base_url: str, chromium_path: str, database_url: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    owner = create_user(container.db, "owner@example.com", None)
    actor = Actor.of(owner)
    survey = surveys.create_survey(container.db, actor, "Internal pilot name")
    survey_content.put_content(container.db, actor, survey.id, flow_content(base_url))
    surveys.update_survey(container.db, actor, survey.id, {"status": "active"})
    ARTIFACTS.mkdir(exist_ok=True)
    backend = "postgresql" if database_url.startswith("postgres") else "sqlite"
    url = f"{base_url}/s/{survey.id}"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)

        # 1. A declined consent ends at the end-of-survey element's redirect.
        page = browser.new_page(viewport=PHONE)
        page.set_default_timeout(15_000)
        page.goto(f"{url}?PID=p-1")
        expect(page.get_by_role("heading", name="A short study")).to_be_visible()
        expect(page.locator("legend b")).to_have_text("five minutes")
        page.screenshot(path=str(ARTIFACTS / f"flow-consent-390-{backend}.png"), full_page=True)
        page.get_by_label("I don't agree").check()
        page.get_by_role("button", name="Next").click()
        page.wait_for_url("**/static/survey.css?pid=p-1")
        page.close()

        # 2. With JavaScript, at 1280 px: the follow-up appears at once; the slider by keyboard.
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        page.goto(f"{url}?PID=p-2")
        page.get_by_label("I agree").check()
        page.get_by_role("button", name="Next").click()
        follow_up = page.get_by_label("How did you contact us?")
        expect(follow_up).to_be_hidden()
        page.get_by_label("Yes", exact=True).check()
        expect(follow_up).to_be_visible()  # no round trip
        expect(page.get_by_label("Why not?")).to_be_hidden()
        slider = page.locator("input[type=range][name=QID2]")
        slider.focus()
        page.keyboard.press("Home")
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        expect(slider).to_have_value("30")
        follow_up.fill("By phone")
        page.screenshot(path=str(ARTIFACTS / f"flow-main-1280-{backend}.png"), full_page=True)
        page.get_by_role("button", name="Next").click()
        expect(page.get_by_text("Condition", exact=False)).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / f"flow-condition-1280-{backend}.png"))
        page.get_by_role("button", name="Submit").click()
        expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
        page.close()

        # 3. Without JavaScript, on a phone: "Next" shows the page again with the follow-up.
        context = browser.new_context(viewport=PHONE, java_script_enabled=False)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{url}?PID=p-3")
        page.get_by_label("I agree").check()
        page.get_by_role("button", name="Next").click()
        page.get_by_label("No", exact=True).check()
        expect(page.get_by_label("Why not?")).to_be_hidden()
        page.get_by_role("button", name="Next").click()
        expect(page.get_by_label("Why not?")).to_be_visible()
        expect(page.get_by_label("How did you contact us?")).to_be_hidden()
        expect(page.get_by_role("alert")).to_have_count(0)  # no errors for hidden questions
        page.screenshot(path=str(ARTIFACTS / f"flow-nojs-390-{backend}.png"), full_page=True)
        page.get_by_label("Why not?").fill("No need")
        page.get_by_role("button", name="Next").click()
        page.get_by_role("button", name="Submit").click()
        expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
        browser.close()

    with container.db.reader() as uow:
        responses = {r.embedded_data["PID"]: r for r in uow.session.scalars(select(Response)).all()}
    assert responses["p-1"].finished and responses["p-1"].embedded_data["Q_TerminateFlag"]
    assert responses["p-2"].values == {"QID1": "1", "QID2": 30, "QID3": "1", "QID4": "By phone"}
    assert responses["p-3"].values["QID5"] == "No need" and "QID4" not in responses["p-3"].values
    assert responses["p-3"].values["QID2"] == 50  # the slider's middle, as submitted
    assert {responses[p].embedded_data["Condition"] for p in ("p-2", "p-3")} == {"A", "B"}
