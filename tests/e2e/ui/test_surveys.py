"""The Surveys pages in a browser: list with search and paging, create, import with its report,
open and close, a survey's tabs, and what each role may do there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from tests.e2e.ui.conftest import (
    UiServer,
    axe_check,
    no_horizontal_scroll,
    shoot,
    text,
)

from cxloop.services import surveys

pytestmark = pytest.mark.browser

QSF = Path(__file__).resolve().parents[2] / "fixtures" / "qsf" / "nps.qsf"


def shared_survey(ui: UiServer, name: str = "Customer feedback") -> str:
    """A survey of the owner's, shared with the editor and the viewer."""
    owner = ui.actor("owner")
    survey = surveys.create_survey(ui.container.db, owner, name)
    surveys.add_collaborator(ui.container.db, owner, survey.id, "editor@example.com", "editor")
    surveys.add_collaborator(ui.container.db, owner, survey.id, "viewer@example.com", "viewer")
    return survey.id


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_survey_list_searches_and_pages(
    ui: UiServer, signed_in: Any, lang: str, viewport: str
) -> None:
    owner = ui.actor("owner")
    for number in range(1, 28):
        surveys.create_survey(ui.container.db, owner, f"Pulse {number:02d}")
    surveys.create_survey(ui.container.db, owner, "Onboarding feedback with a rather long name")
    page = signed_in("owner")
    page.goto(ui.url("/surveys"))
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(25)
    expect(page.get_by_role("link", name="Pulse 01")).to_be_visible()
    axe_check(page)
    no_horizontal_scroll(page)
    shoot(page, "surveys-list", lang, viewport)

    page.get_by_role("link", name=text(lang, "Next page", "Nächste Seite")).click()
    expect(rows).to_have_count(3)
    expect(
        page.get_by_role("link", name="Onboarding feedback with a rather long name")
    ).to_be_visible()
    page.get_by_role("link", name=text(lang, "First page", "Erste Seite")).click()
    expect(rows).to_have_count(25)

    search = page.get_by_role("searchbox", name=text(lang, "Search by name", "Nach Name suchen"))
    search.fill("onboarding")  # the list follows the typing (htmx), no Enter needed
    expect(rows).to_have_count(1)
    expect(page).to_have_url(ui.url("/surveys?q=onboarding"))
    expect(rows.first).to_contain_text("0")
    search = page.get_by_role("searchbox", name=text(lang, "Search by name", "Nach Name suchen"))
    search.fill("nothing like this")
    search.press("Enter")
    expect(rows).to_have_count(0)
    expect(page.get_by_text("nothing like this")).to_be_visible()
    axe_check(page)
    shoot(page, "surveys-search-empty", lang, viewport)


def test_create_a_survey_then_open_and_close_it(ui: UiServer, signed_in: Any, lang: str) -> None:
    page = signed_in("owner")
    page.goto(ui.url("/surveys"))
    create = page.get_by_role("button", name=text(lang, "Create survey", "Umfrage anlegen"))
    name = page.get_by_role("textbox", name=text(lang, "Survey name", "Name der Umfrage"))
    name.fill("   ")
    create.click()
    expect(page.get_by_role("alert")).to_be_focused()
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#error-name")).to_be_visible()
    axe_check(page)
    shoot(page, "surveys-create-error", lang, "desktop")
    assert surveys.list_surveys(ui.container.db, ui.actor("owner")).items == []

    name.fill("Customer feedback")
    create.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Customer feedback")
    expect(page.get_by_role("status").first).to_contain_text("Customer feedback")
    tabs = page.get_by_role("navigation", name=text(lang, "Sections", "Bereiche"))
    survey_id = page.url.rsplit("/", 1)[1]
    expect(tabs.get_by_role("link", name="Workflows")).to_have_attribute(
        "href", f"/surveys/{survey_id}/workflows"
    )
    expect(page.get_by_text("owner@example.com").first).to_be_visible()
    axe_check(page)
    shoot(page, "survey-page", lang, "desktop")

    page.get_by_role("button", name=text(lang, "Open survey", "Umfrage öffnen")).click()
    expect(page.get_by_role("status").first).to_be_visible()
    expect(page.locator("#public-link")).to_have_attribute("href", ui.url(f"/s/{survey_id}"))
    assert surveys.get_survey(ui.container.db, ui.actor("owner"), survey_id).status == "active"
    page.get_by_role("button", name=text(lang, "Close survey", "Umfrage schließen")).click()
    expect(
        page.get_by_role("button", name=text(lang, "Open survey", "Umfrage öffnen"))
    ).to_be_visible()
    assert surveys.get_survey(ui.container.db, ui.actor("owner"), survey_id).status == "closed"

    for tab, en, de in (
        ("distributions", "Distributions", "Verteilungen"),
        ("responses", "Responses", "Antworten"),
    ):
        tabs.get_by_role("link", name=text(lang, en, de)).click()
        expect(page).to_have_url(ui.url(f"/surveys/{survey_id}/{tab}"))
        expect(tabs.get_by_role("link", name=text(lang, en, de))).to_have_attribute(
            "aria-current", "page"
        )
        axe_check(page)
        shoot(page, f"survey-{tab}", lang, "desktop")


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_import_a_qsf_file_shows_the_report(
    ui: UiServer, signed_in: Any, lang: str, viewport: str
) -> None:
    page = signed_in("owner")
    page.goto(ui.url("/surveys"))
    upload = page.get_by_label(text(lang, "Survey file", "Umfragedatei"))
    importing = page.get_by_role("button", name=text(lang, "Import survey", "Umfrage importieren"))

    importing.click()  # no file chosen
    expect(page.locator("#error-file")).to_be_visible()
    upload = page.get_by_label(text(lang, "Survey file", "Umfragedatei"))
    upload.set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
    )
    page.get_by_role("button", name=text(lang, "Import survey", "Umfrage importieren")).click()
    expect(page.locator("#error-file")).to_contain_text("notes.txt")
    page.get_by_label(text(lang, "Survey file", "Umfragedatei")).set_input_files(
        files=[{"name": "broken.json", "mimeType": "application/json", "buffer": b"{nope"}]
    )
    page.get_by_role("button", name=text(lang, "Import survey", "Umfrage importieren")).click()
    expect(page.locator("#error-file")).to_be_visible()
    axe_check(page)
    shoot(page, "surveys-import-error", lang, viewport)
    assert surveys.list_surveys(ui.container.db, ui.actor("owner")).items == []

    page.get_by_label(text(lang, "Survey file", "Umfragedatei")).set_input_files(str(QSF))
    page.get_by_role(
        "textbox", name=text(lang, "Name of the new survey", "Name der neuen Umfrage")
    ).fill("NPS imported")
    page.get_by_role("button", name=text(lang, "Import survey", "Umfrage importieren")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        text(lang, "Survey imported", "Umfrage importiert")
    )
    expect(page.get_by_text("QSF")).to_be_visible()
    axe_check(page)
    no_horizontal_scroll(page)
    shoot(page, "surveys-import-report", lang, viewport)
    page.get_by_role("link", name=text(lang, "Open the survey", "Umfrage öffnen")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("NPS imported")
    (survey,) = surveys.list_surveys(ui.container.db, ui.actor("owner")).items
    assert survey.name == "NPS imported"


@pytest.mark.parametrize("lang", ["en"])
@pytest.mark.parametrize(
    ("role", "sees", "may_change"),
    [
        ("owner", True, True),
        ("editor", True, True),
        ("viewer", True, False),
        ("stranger", False, False),
        ("admin", True, True),
    ],
)
def test_role_matrix_on_a_survey(
    ui: UiServer, signed_in: Any, lang: str, role: str, sees: bool, may_change: bool
) -> None:
    survey_id = shared_survey(ui)
    page = signed_in(role)
    page.goto(ui.url("/surveys"))
    expect(page.get_by_role("link", name="Customer feedback")).to_have_count(1 if sees else 0)
    for path in ("", "/distributions", "/responses"):
        reply = page.goto(ui.url(f"/surveys/{survey_id}{path}"))
        assert reply.status == (200 if sees else 404), path
        axe_check(page)
    open_button = page.get_by_role("button", name="Open survey")
    expect(open_button).to_have_count(1 if may_change else 0)
    if sees:
        expect(page.get_by_text("owner@example.com").first).to_be_visible()
        expect(page.locator(".notice-info")).to_contain_text("owner@example.com")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    reply = page.request.post(
        ui.url(f"/surveys/{survey_id}/status"),
        form={"csrf": csrf, "status": "active"},
        max_redirects=0,
    )
    assert reply.status == (303 if may_change else 403 if sees else 404)
    status = surveys.get_survey(ui.container.db, ui.actor("owner"), survey_id).status
    assert status == ("active" if may_change else "draft")
    shoot(page, f"survey-as-{role}", lang, "desktop")
