"""A respondent answers a two-page survey in Chromium, by keyboard only, on a phone-sized screen.

Uses Debian's Chromium (/usr/bin/chromium); without it the test is skipped (under CI=true it
fails). Screenshots go to tests-artifacts/ (ignored by git) for a person to look at.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import select
from tests.e2e.conftest import CHROMIUM_ARGS

from cxloop.bootstrap import Container
from cxloop.db.models import Response
from cxloop.services import survey_content, surveys
from cxloop.services.access import Actor
from cxloop.services.users import create_user
from cxloop.web.app import create_app

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


@pytest.fixture
def base_url(container: Container) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(container), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


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
