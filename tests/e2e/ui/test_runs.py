"""The Runs pages in a browser: the list with its filters, a run's timeline with the error in
plain words, Retry with its confirmation (by mouse and by keyboard), in English and German, on
a desktop and a phone, and what a viewer may not do.

The runs come from real flows: the owner links an account to the emulator over OAuth, two
workflows listen to the survey (one upserts Survey_Response__c, one inserts a Contact without
its required LastName), responses are submitted and the work is done against the emulator.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect
from tests.e2e.ui.conftest import (
    PASSWORD,
    UiServer,
    axe_check,
    no_horizontal_scroll,
    shoot,
    text,
)
from tests.integration.conftest import CONTENT
from tests.integration.test_engine import add_workflow, drain, submit, upsert_workflow
from tests.integration.test_ui_runs import contact_without_last_name

from cxloop.db.run_models import Run
from cxloop.services import survey_content, surveys, users

pytestmark = pytest.mark.browser


def link_account(ui: UiServer, name: str = "Acme") -> None:
    """The owner links an account to the emulator's org (its login answered automatically for
    this set-up only; the account pages' own tests go through the login page)."""
    emulator = ui.emulator
    emulator.control.patch("/settings", json={"auto_login": "admin@example.com"})
    try:
        token = users.create_token(ui.container.db, "owner@example.com", "runs-test").token
        org = next(o for o in emulator.info()["orgs"] if o["alias"] == "acme")
        with httpx.Client(base_url=ui.base_url, timeout=30) as browser:
            form = browser.get("/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form)
            assert csrf
            browser.post(
                "/login",
                data={"email": "owner@example.com", "password": PASSWORD, "csrf": csrf.group(1)},
            )
            started = browser.post(
                "/api/v1/connections",
                json={"name": name, "type": "emulator", "login_url": org["login_url"]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert started.status_code == 201, started.text
            to_salesforce = browser.get(urlsplit(started.json()["authorize_url"]).path)
            assert to_salesforce.status_code == 303, to_salesforce.text
            back = httpx.get(to_salesforce.headers["location"], follow_redirects=False)
            assert back.status_code in (302, 303), back.text
            done = browser.get(back.headers["location"])
            assert done.status_code == 200, done.text
    finally:
        emulator.control.patch("/settings", json={"auto_login": None})


def make_runs(ui: UiServer) -> dict[str, Any]:
    """A survey shared with the editor and the viewer, two workflows, two responses worked
    off: two runs succeeded, two failed (REQUIRED_FIELD_MISSING)."""
    container = ui.container
    container.settings.batch_linger_s = 0
    owner = ui.actor("owner")
    link_account(ui)
    survey = surveys.create_survey(container.db, owner, "Support NPS")
    survey_content.put_content(container.db, owner, survey.id, CONTENT)
    surveys.update_survey(container.db, owner, survey.id, {"status": "active"})
    for role in ("editor", "viewer"):
        surveys.add_collaborator(container.db, owner, survey.id, f"{role}@example.com", role)
    setup = {"actor": owner, "survey_id": survey.id}
    add_workflow(container, setup, upsert_workflow("Acme"))
    bad = add_workflow(container, setup, contact_without_last_name("Acme"))
    submit(container, setup, 9, "Quick and friendly")
    submit(container, setup, 3, "Too slow")
    drain(container)
    with container.db.reader() as uow:
        failed = [r.id for r in uow.session.query(Run).filter(Run.workflow_id == bad)]
    return {"survey_id": survey.id, "failed": failed, "bad_workflow": bad}


@pytest.fixture
def world(ui: UiServer) -> dict[str, Any]:
    return make_runs(ui)


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_an_owner_filters_the_runs_and_reads_why_one_failed(
    ui: UiServer, world: dict[str, Any], signed_in: Any, lang: str, viewport: str
) -> None:
    page = signed_in("owner")
    nav = page.get_by_role("navigation", name=text(lang, "Main", "Hauptnavigation"))
    nav.get_by_role("link", name=text(lang, "Runs", "Ausführungen")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(text(lang, "Runs", "Ausführungen"))
    expect(page.locator("tbody tr")).to_have_count(4)
    axe_check(page)
    no_horizontal_scroll(page)
    shoot(page, "runs", lang, viewport)

    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name=text(lang, "Filter", "Filtern")).click()
    expect(page.locator("tbody tr")).to_have_count(2)
    page.locator("tbody tr").first.get_by_role("link").first.click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("RN_")
    expect(
        page.get_by_text(
            text(
                lang,
                "Salesforce needs a value for LastName, and the task sent none.",
                "Salesforce braucht einen Wert für LastName, und die Aufgabe hat keinen gesendet.",
            )
        )
    ).to_be_visible()
    expect(
        page.get_by_role("link", name=text(lang, "Open the workflow", "Workflow öffnen"))
    ).to_have_attribute("href", f"/surveys/{world['survey_id']}/workflows/{world['bad_workflow']}")
    axe_check(page)
    no_horizontal_scroll(page)
    shoot(page, "run-failed", lang, viewport)


def test_an_editor_retries_a_run_after_confirming(
    ui: UiServer, world: dict[str, Any], signed_in: Any, lang: str
) -> None:
    page = signed_in("editor")
    run_id = world["failed"][0]
    page.goto(ui.url(f"/runs/{run_id}"))
    page.get_by_role("button", name=text(lang, "Retry", "Erneut versuchen"), exact=True).click()
    confirm = page.get_by_role(
        "button", name=text(lang, "Confirm retry", "Erneuten Versuch bestätigen")
    )
    expect(confirm).to_be_focused()
    axe_check(page)
    shoot(page, "run-retry-confirm", lang, "desktop")
    confirm.click()
    expect(page.get_by_role("status").first).to_contain_text(
        text(
            lang,
            "Retried: 1 task runs queued again.",
            "Erneut versucht: 1 Aufgaben wieder eingereiht.",
        )
    )
    with ui.container.db.reader() as uow:
        assert uow.session.get(Run, run_id).status == "pending"


def test_filter_open_and_retry_by_keyboard_alone(
    ui: UiServer, world: dict[str, Any], signed_in: Any, lang: str
) -> None:
    page = signed_in("owner")
    page.goto(ui.url("/runs"))
    search = page.get_by_label(text(lang, "Search", "Suche"))
    search.focus()
    page.keyboard.type("lastname")
    page.keyboard.press("Enter")  # submits the filter form
    expect(page.locator("tbody tr")).to_have_count(2)
    expect(search).to_have_value("lastname")
    # The filtered page: Tab from the top to the first run's link and open it with Enter.
    link = page.locator("tbody tr").first.get_by_role("link").first
    for _ in range(40):
        page.keyboard.press("Tab")
        if link.evaluate("element => element === document.activeElement"):
            break
    else:
        pytest.fail("the first run's link is not reachable by Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("RN_")
    retry = page.get_by_role("button", name=text(lang, "Retry", "Erneut versuchen"), exact=True)
    for _ in range(40):
        page.keyboard.press("Tab")
        if retry.evaluate("element => element === document.activeElement"):
            break
    else:
        pytest.fail("Retry is not reachable by Tab")
    page.keyboard.press("Enter")
    confirm = page.get_by_role(
        "button", name=text(lang, "Confirm retry", "Erneuten Versuch bestätigen")
    )
    expect(confirm).to_be_focused()  # the confirmation takes the focus
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text(
        text(lang, "Retried", "Erneut versucht")
    )


@pytest.mark.parametrize("lang", ["en"])
def test_a_viewer_reads_runs_but_cannot_retry(
    ui: UiServer, world: dict[str, Any], signed_in: Any, lang: str
) -> None:
    page = signed_in("viewer")
    page.goto(ui.url(f"/runs/{world['failed'][0]}"))
    expect(
        page.get_by_text("You can view this run; the survey's owner and editors can retry it.")
    ).to_be_visible()
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    expect(page.get_by_role("button", name="Replay")).to_have_count(0)
    axe_check(page)


@pytest.mark.parametrize("lang", ["en"])
def test_a_stranger_gets_page_not_found_and_no_runs(
    ui: UiServer, world: dict[str, Any], signed_in: Any, lang: str
) -> None:
    page = signed_in("stranger")
    page.goto(ui.url("/runs"))
    expect(page.get_by_text("No runs yet.", exact=False)).to_be_visible()
    axe_check(page)
    reply = page.goto(ui.url(f"/runs/{world['failed'][0]}"))
    assert reply is not None and reply.status == 404
    axe_check(page)
