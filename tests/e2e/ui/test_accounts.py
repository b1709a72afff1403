"""The Accounts page in a browser: link a new Salesforce account to the emulator through its
login page (by keyboard alone), rename, refresh, check setup and remove it; bad input shown
beside its input; the reconnect banner; another person's account stays out of reach."""

from __future__ import annotations

import re
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

from cxloop.db.models import Connection
from cxloop.services import connections

pytestmark = pytest.mark.browser


def tab_to(page: Any, target: Any, presses: int = 60) -> None:
    """Press Tab until `target` (a locator) has the focus, as a keyboard user would."""
    handle = target.element_handle()
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("el => el === document.activeElement", handle):
            return
    raise AssertionError(f"Tab never reached {target}")


def log_in_at_salesforce(ui: UiServer, page: Any) -> None:
    """The emulator's login page, then its consent page if it asks, by keyboard."""
    username, password = ui.emulator_login()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")
    allow = page.get_by_role("button", name="Allow")
    back_in_cxloop = page.locator("header.shell")
    expect(allow.or_(back_in_cxloop)).to_be_visible()
    if allow.is_visible():
        allow.focus()
        page.keyboard.press("Enter")


def add_account_by_keyboard(ui: UiServer, page: Any, lang: str, name: str) -> None:
    """Accounts page -> Add account -> My Domain, login URL, name -> Connect account, with the
    keyboard only; then Salesforce's login and consent; back on the accounts page."""
    add = page.get_by_role("button", name=text(lang, "Add account", "Benutzerkonto hinzufügen"))
    tab_to(page, add)
    page.keyboard.press("Enter")
    production = page.get_by_role(
        "radio", name=text(lang, "Salesforce production (OAuth)", "Salesforce-Produktion (OAuth)")
    )
    expect(production).to_be_checked()
    axe_check(page)
    tab_to(page, production)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("radio", name="My Domain (OAuth)")).to_be_checked()
    page.keyboard.press("Tab")
    login_url = page.get_by_role("textbox", name=text(lang, "Login URL", "Anmelde-URL"))
    expect(login_url).to_be_focused()
    page.keyboard.type(ui.emulator.base_url)
    page.keyboard.press("Tab")
    expect(
        page.get_by_role("textbox", name=text(lang, "Account name", "Name des Benutzerkontos"))
    ).to_be_focused()
    page.keyboard.type(name)
    connect = page.get_by_role(
        "button", name=text(lang, "Connect account", "Benutzerkonto verbinden")
    )
    tab_to(page, connect)
    page.keyboard.press("Enter")
    log_in_at_salesforce(ui, page)
    page.wait_for_url(lambda url: url.startswith(ui.url("/accounts")))


def open_menu_item(page: Any, lang: str, account: str, item: str) -> None:
    """Open the account's ⋯ menu by keyboard and choose `item` with the arrow keys."""
    menu = page.get_by_role(
        "button", name=text(lang, f"More actions for {account}", f"Weitere Aktionen für {account}")
    )
    tab_to(page, menu)
    page.keyboard.press("Enter")
    target = page.get_by_role("menuitem", name=item, exact=True)
    for _ in range(5):
        if page.evaluate("el => el === document.activeElement", target.element_handle()):
            break
        page.keyboard.press("ArrowDown")
    expect(target).to_be_focused()
    page.keyboard.press("Enter")


def test_link_rename_refresh_check_and_remove_an_account_by_keyboard(
    ui: UiServer, signed_in: Any, lang: str
) -> None:
    page = signed_in("owner")
    page.goto(ui.url("/accounts"))
    expect(page.get_by_text(text(lang, "0 of 5 used", "0 von 5 verwendet"))).to_be_visible()
    axe_check(page)
    shoot(page, "accounts-empty", lang, "desktop")

    add_account_by_keyboard(ui, page, lang, "Acme production")
    expect(page.get_by_role("status").first).to_contain_text("Acme production")
    expect(page.get_by_text(text(lang, "1 of 5 used", "1 von 5 verwendet"))).to_be_visible()
    row = page.get_by_role("row").filter(has_text="Acme production")
    expect(row).to_contain_text(text(lang, "Connected", "Verbunden"))
    axe_check(page)
    shoot(page, "accounts-linked", lang, "desktop")
    page.get_by_role(
        "button", name=text(lang, "More actions for", "Weitere Aktionen für") + " Acme production"
    ).click()
    axe_check(page)
    shoot(page, "accounts-menu", lang, "desktop")
    page.keyboard.press("Escape")

    open_menu_item(page, lang, "Acme production", text(lang, "Rename", "Umbenennen"))
    expect(page).to_have_url(re.compile(r"/rename$"))
    name = page.get_by_role("textbox", name=text(lang, "Account name", "Name des Benutzerkontos"))
    expect(name).to_have_value("Acme production")
    axe_check(page)
    shoot(page, "accounts-rename", lang, "desktop")
    name.fill("Acme prod")
    name.press("Enter")
    expect(page).to_have_url(ui.url("/accounts"))
    expect(page.get_by_role("row").filter(has_text="Acme prod")).to_be_visible()

    (before,) = connections.list_connections(ui.container.db, ui.actor("owner"))
    open_menu_item(page, lang, "Acme prod", text(lang, "Refresh", "Aktualisieren"))
    log_in_at_salesforce(ui, page)
    page.wait_for_url(lambda url: url.startswith(ui.url("/accounts")))
    expect(page.get_by_role("status").first).to_contain_text("Acme prod")
    (after,) = connections.list_connections(ui.container.db, ui.actor("owner"))
    assert after.id == before.id and after.token_version > before.token_version

    open_menu_item(page, lang, "Acme prod", text(lang, "Check setup", "Einrichtung prüfen"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Acme prod")
    expect(page.locator(".finding").first).to_be_visible()
    axe_check(page)
    shoot(page, "accounts-check", lang, "desktop")
    back = text(lang, "Back to accounts", "Zurück zu den Benutzerkonten")
    page.get_by_role("link", name=back).click()

    open_menu_item(page, lang, "Acme prod", text(lang, "Remove", "Entfernen"))
    expect(page).to_have_url(re.compile(r"/remove$"))
    axe_check(page)
    shoot(page, "accounts-remove", lang, "desktop")
    page.get_by_role("button", name=text(lang, "Remove account", "Benutzerkonto entfernen")).click()
    expect(page.get_by_role("status").first).to_contain_text("Acme prod")
    expect(page.get_by_text(text(lang, "0 of 5 used", "0 von 5 verwendet"))).to_be_visible()
    assert connections.list_connections(ui.container.db, ui.actor("owner")) == []


def test_add_account_shows_every_problem_beside_its_input_and_stores_nothing(
    ui: UiServer, signed_in: Any, lang: str
) -> None:
    page = signed_in("owner")
    page.goto(ui.url("/accounts/new"))
    page.get_by_role("radio", name="My Domain (OAuth)").check()
    connect = text(lang, "Connect account", "Benutzerkonto verbinden")
    page.get_by_role("button", name=connect).click()
    summary = page.get_by_role("alert")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link")).to_have_count(2)
    login_url = page.get_by_role("textbox", name=text(lang, "Login URL", "Anmelde-URL"))
    expect(login_url).to_have_attribute("aria-invalid", "true")
    account_name = page.get_by_role(
        "textbox", name=text(lang, "Account name", "Name des Benutzerkontos")
    )
    expect(account_name).to_have_attribute("aria-invalid", "true")
    axe_check(page)
    shoot(page, "accounts-add-errors", lang, "desktop")

    # A host that is not Salesforce: refused by the service, shown beside the Login URL.
    login_url.fill("https://evil.example")
    account_name.fill("Acme")
    page.get_by_role("button", name=connect).click()
    expect(page.locator("#error-login_url")).to_contain_text("evil.example")
    expect(account_name).to_have_value("Acme")
    expect(page.locator("#error-account_name")).to_have_count(0)
    assert connections.list_connections(ui.container.db, ui.actor("owner")) == []


@pytest.mark.parametrize("lang", ["en"])
@pytest.mark.parametrize("viewport", ["phone"])
def test_accounts_page_on_a_phone_and_the_reconnect_banner(
    ui: UiServer, signed_in: Any, lang: str, viewport: str
) -> None:
    page = signed_in("owner")
    page.goto(ui.url("/accounts"))
    add_account_by_keyboard(ui, page, lang, "Acme production with a long name")
    with ui.container.db.uow() as uow:
        for row in uow.session.query(Connection):
            row.status, row.status_reason = "needs_reauth", "Salesforce refused the refresh token."
        uow.commit()
    page.reload()
    banner = page.get_by_role("region", name="Acme production with a long name needs a new login")
    expect(banner).to_contain_text("Salesforce refused the refresh token.")
    no_horizontal_scroll(page)
    axe_check(page)
    shoot(page, "accounts-needs-reauth", lang, viewport)
    banner.get_by_role("button", name="Reconnect Acme production with a long name").click()
    log_in_at_salesforce(ui, page)
    page.wait_for_url(lambda url: url.startswith(ui.url("/accounts")))
    expect(banner).to_have_count(0)
    (account,) = connections.list_connections(ui.container.db, ui.actor("owner"))
    assert account.status == "active"


@pytest.mark.parametrize("lang", ["en"])
def test_another_persons_account_is_out_of_reach(ui: UiServer, signed_in: Any, lang: str) -> None:
    owner = signed_in("owner")
    owner.goto(ui.url("/accounts"))
    add_account_by_keyboard(ui, owner, lang, "Acme")
    (account,) = connections.list_connections(ui.container.db, ui.actor("owner"))
    for role in ("stranger", "admin", "editor"):
        page = signed_in(role)
        page.goto(ui.url("/accounts"))
        expect(page.get_by_text("Acme")).to_have_count(0)
        for action in ("rename", "remove", "check"):
            reply = page.goto(ui.url(f"/accounts/{account.id}/{action}"))
            assert reply.status == 404, (role, action)
        axe_check(page)
        csrf = page.locator("input[name=csrf]").first.get_attribute("value")
        for action in ("rename", "remove", "refresh"):
            reply = page.request.post(
                ui.url(f"/accounts/{account.id}/{action}"),
                form={"csrf": csrf, "account_name": "Mine now"},
                max_redirects=0,
            )
            assert reply.status == 404, (role, action)
        # Without the form token nothing happens either.
        reply = page.request.post(ui.url(f"/accounts/{account.id}/remove"), max_redirects=0)
        assert reply.status == 403
    (still,) = connections.list_connections(ui.container.db, ui.actor("owner"))
    assert still.name == "Acme"
