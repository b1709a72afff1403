"""The app shell in a browser: login page, navigation, language switch, logout."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from tests.e2e.ui.conftest import (
    UiServer,
    axe_check,
    log_in,
    no_horizontal_scroll,
    shoot,
    text,
)

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_login_page_leads_to_the_surveys_in_the_browsers_language(
    ui: UiServer, new_page: Any, lang: str, viewport: str
) -> None:
    page = new_page()
    page.goto(ui.url("/accounts"))
    expect(page.get_by_role("heading", name=text(lang, "Log in", "Anmelden"))).to_be_visible()
    axe_check(page)
    no_horizontal_scroll(page)
    shoot(page, "login", lang, viewport)
    log_in(ui, page, "owner@example.com", lang, goto=False)
    # Back where the person was going.
    expect(page).to_have_url(ui.url("/accounts"))
    nav = page.get_by_role("navigation", name=text(lang, "Main", "Hauptnavigation"))
    expect(nav.get_by_role("link", name=text(lang, "Surveys", "Umfragen"))).to_be_visible()
    axe_check(page)
    no_horizontal_scroll(page)
    shoot(page, "accounts-empty", lang, viewport)


def test_wrong_password_is_shown_on_the_login_page(ui: UiServer, new_page: Any, lang: str) -> None:
    page = new_page()
    page.goto(ui.url("/login"))
    page.get_by_role("textbox", name=text(lang, "Email", "E-Mail")).fill("owner@example.com")
    page.get_by_label(text(lang, "Password", "Passwort"), exact=True).fill("wrong password!!")
    page.get_by_role("button", name=text(lang, "Log in", "Anmelden"), exact=True).click()
    expect(page.get_by_role("alert")).to_be_visible()
    axe_check(page)


def test_language_switch_is_kept_and_logout_ends_the_session(
    ui: UiServer, signed_in: Any, lang: str
) -> None:
    page = signed_in("owner")
    other = "Deutsch" if lang == "en" else "English"
    page.get_by_role("button", name=other).click()
    expect(page.locator("html")).to_have_attribute("lang", "de" if lang == "en" else "en")
    page.goto(ui.url("/surveys"))
    expect(page.locator("html")).to_have_attribute("lang", "de" if lang == "en" else "en")
    switched = "de" if lang == "en" else "en"
    page.get_by_role("button", name=text(switched, "Log out", "Abmelden")).click()
    expect(page).to_have_url(ui.url("/login"))
    page.goto(ui.url("/surveys"))
    expect(page).to_have_url(ui.url("/login?next=/surveys"))


def test_admin_sees_no_dead_links(ui: UiServer, signed_in: Any, lang: str) -> None:
    page = signed_in("admin")
    nav = page.get_by_role("navigation", name=text(lang, "Main", "Hauptnavigation"))
    for link in nav.get_by_role("link").all():
        href = link.get_attribute("href")
        assert page.request.get(ui.url(href)).status == 200, href


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_admin_page_lists_the_users_for_admins_only(
    ui: UiServer, signed_in: Any, lang: str, viewport: str
) -> None:
    page = signed_in("admin")
    page.get_by_role("link", name=text(lang, "Admin", "Verwaltung")).click()
    expect(page.get_by_role("row").filter(has_text="viewer@example.com")).to_be_visible()
    axe_check(page)
    no_horizontal_scroll(page)
    shoot(page, "admin", lang, viewport)
    for role in ("owner", "stranger"):
        other = signed_in(role)
        nav = other.get_by_role("navigation", name=text(lang, "Main", "Hauptnavigation"))
        expect(nav.get_by_role("link", name=text(lang, "Admin", "Verwaltung"))).to_have_count(0)
        assert other.goto(ui.url("/admin")).status == 403
        axe_check(other)


@pytest.mark.parametrize("viewport", ["phone"])
def test_the_first_tab_reaches_the_skip_link_which_jumps_to_the_content(
    ui: UiServer, signed_in: Any, lang: str, viewport: str
) -> None:
    page = signed_in("viewer")
    page.goto(ui.url("/surveys"))
    page.keyboard.press("Tab")
    skip = page.get_by_role(
        "link", name=text(lang, "Skip to main content", "Zum Hauptinhalt springen")
    )
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    # The next stop is inside the content, not the top bar again.
    expect(
        page.get_by_role(
            "link", name=text(lang, "New survey or import", "Neue Umfrage oder Import")
        )
    ).to_be_focused()


def test_what_was_not_found_is_said_in_the_pages_language(
    ui: UiServer, signed_in: Any, lang: str
) -> None:
    """A service's plain NotFound reaches a German page in German ("Umfrage nicht gefunden"),
    never in the service's English."""
    page = signed_in("owner")
    for path, english, german in (
        ("/surveys/SV_nothere", "No survey 'SV_nothere'.", "Umfrage nicht gefunden."),
        ("/runs/RN_nothere", "No run 'RN_nothere'.", "Ausführung nicht gefunden."),
    ):
        reply = page.goto(ui.url(path))
        assert reply is not None and reply.status == 404, path
        heading = text(lang, "Page not found", "Seite nicht gefunden")
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
        expect(page.get_by_text(text(lang, english, german), exact=True)).to_be_visible()
        if lang == "de":
            expect(page.get_by_text(english)).to_have_count(0)
    axe_check(page)
