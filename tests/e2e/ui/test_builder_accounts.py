"""A Salesforce task's accounts in the builder, in a browser, in English and German: **Add
account** goes through the emulator's login page and comes back to the same, unsaved form with
the new account chosen in the task; each of the owner's accounts has the Accounts page's ⋯ menu
(Rename, Refresh, Remove, Check setup), which comes back to the form too; editors see neither."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect
from tests.e2e.ui.conftest import UiServer, axe_check, no_horizontal_scroll, shoot, text
from tests.e2e.ui.test_accounts import log_in_at_salesforce, tab_to
from tests.e2e.ui.test_workflows import add_task, link_account, make_survey, settle

from cxloop.services import connections, workflows

pytestmark = pytest.mark.browser


def account_box(page: Any, lang: str) -> Any:
    return page.get_by_role("combobox", name=text(lang, "Account", "Benutzerkonto"), exact=True)


def menu_item(page: Any, lang: str, account: str, item: str) -> None:
    page.get_by_role(
        "button", name=text(lang, f"More actions for {account}", f"Weitere Aktionen für {account}")
    ).click()
    page.get_by_role("menuitem", name=item, exact=True).click()


def open_saved_workflow(
    ui: UiServer, page: Any, survey_id: str, name: str, tasks: list[dict[str, Any]]
) -> str:
    """Link the owner's account "Acme" in `page`, save a response workflow with `tasks` through
    the service, and open it in the builder; returns its id."""
    link_account(ui, page, "Acme")
    view = workflows.create_workflow(
        ui.container.db, ui.actor("owner"), survey_id,
        {"name": name, "event": {"type": "survey_response", "when": ["created"]}, "tasks": tasks},
    )  # fmt: skip
    page.goto(ui.url(f"/surveys/{survey_id}/workflows/{view.workflow.id}"))
    settle(page)
    return view.workflow.id


def test_add_an_account_from_a_task_and_manage_it_from_its_menu(
    ui: UiServer, signed_in: Any, lang: str
) -> None:
    """A half-built workflow (a condition, a Salesforce task with mappings, an email task)
    survives the trip through the emulator's login page and saves with the new account."""
    survey_id = make_survey(ui)
    page = signed_in("owner")
    page.goto(ui.url(f"/surveys/{survey_id}/workflows/new?kind=event&event=survey_response"))
    page.get_by_role("textbox", name="Name", exact=True).fill("Not saved yet")
    page.get_by_role("button", name=text(lang, "Add condition", "Bedingung hinzufügen")).click()
    settle(page)
    page.locator('[name="conditions.conditions[0].field"]').select_option(index=1)
    settle(page)
    page.locator('[name="conditions.conditions[0].value"]').fill("9")
    add_task(page, lang, "Salesforce")
    # No account yet: the object and field boxes are plain text boxes (nothing to pick from).
    page.locator('[name="tasks[0].object"]').fill("Case")
    page.locator('[name="tasks[0].mappings[0].field"]').fill("Description")
    page.locator('[name="tasks[0].mappings[0].value"]').fill("kept ${e://Field/CaseId}")
    page.get_by_role("button", name=text(lang, "Add field", "Feld hinzufügen")).click()
    settle(page)
    page.locator('[name="tasks[0].mappings[1].field"]').fill("Subject")
    page.locator('[name="tasks[0].mappings[1].value"]').fill("Feedback")
    add_task(page, lang, text(lang, "Email", "E-Mail"))

    page.get_by_role("button", name=text(lang, "Add account", "Benutzerkonto hinzufügen")).click()
    page.wait_for_url(re.compile(r"/accounts/new\?"))
    page.get_by_role("radio", name="My Domain (OAuth)").check()
    page.get_by_role("textbox", name=text(lang, "Login URL", "Anmelde-URL")).fill(
        ui.emulator.base_url
    )
    page.get_by_role("textbox", name=text(lang, "Account name", "Name des Benutzerkontos")).fill(
        "Acme new"
    )
    page.get_by_role(
        "button", name=text(lang, "Connect account", "Benutzerkonto verbinden")
    ).click()
    log_in_at_salesforce(ui, page)
    page.wait_for_url(re.compile(r"/workflows/drafts/BD_\w+"))

    # The same form, unsaved, with the new account chosen in the task that asked for it.
    expect(page.get_by_role("textbox", name="Name", exact=True)).to_have_value("Not saved yet")
    expect(page.locator('[name="conditions.conditions[0].value"]')).to_have_value("9")
    chosen_field = page.locator('[name="conditions.conditions[0].field"]').input_value()
    assert chosen_field
    expect(page.locator('[name="tasks[0].mappings[0].value"]')).to_have_value(
        "kept ${e://Field/CaseId}"
    )
    expect(page.locator('[name="tasks[0].mappings[1].field"]')).to_have_value("Subject")
    expect(page.locator('[name="tasks[1].type"]')).to_have_value("email")
    expect(account_box(page, lang)).to_have_value("Acme new")
    expect(account_box(page, lang)).to_be_focused()
    expect(page.get_by_role("status").first).to_contain_text("Acme new")
    expect(page.locator("#draft-notice")).to_be_visible()
    axe_check(page)
    shoot(page, "builder-account-added", lang, "desktop")

    # Check setup: the doctor's findings for this task, in the task, focused; the form stays.
    menu_item(page, lang, "Acme new", text(lang, "Check setup", "Einrichtung prüfen"))
    report = page.locator('[id="field-check-tasks[0].connection"]')
    expect(report).to_be_focused()
    expect(report).to_contain_text(
        text(lang, "The refresh token works.", "Der Refresh-Token funktioniert.")
    )
    expect(page.get_by_role("textbox", name="Name", exact=True)).to_have_value("Not saved yet")
    axe_check(page)
    shoot(page, "builder-check-setup", lang, "desktop")

    menu_item(page, lang, "Acme new", text(lang, "Rename", "Umbenennen"))
    page.wait_for_url(re.compile(r"/rename\?"))
    name = page.get_by_role("textbox", name=text(lang, "Account name", "Name des Benutzerkontos"))
    name.fill("Acme renamed")
    name.press("Enter")
    page.wait_for_url(re.compile(r"/workflows/drafts/BD_\w+"))
    expect(page.get_by_role("textbox", name="Name", exact=True)).to_have_value("Not saved yet")
    expect(account_box(page, lang)).to_have_value("Acme renamed")  # the task follows the name

    menu_item(page, lang, "Acme renamed", text(lang, "Refresh", "Aktualisieren"))
    log_in_at_salesforce(ui, page)
    page.wait_for_url(re.compile(r"/workflows/drafts/BD_\w+"))
    expect(account_box(page, lang)).to_have_value("Acme renamed")

    # Saving the restored form: the workflow, with the new account, as it was built.
    page.locator('[name="tasks[1].to"]').fill("cx@example.com")
    page.locator('[name="tasks[1].subject"]').fill("Low score")
    page.locator('[name="tasks[1].body"]').fill("Look at ${e://Field/CaseId}")
    page.get_by_role("button", name=text(lang, "Save workflow", "Workflow speichern")).click()
    page.wait_for_url(re.compile(r"/workflows/WF_\w+$"))
    expect(page.locator("input[name=draft]")).to_have_count(0)
    saved = workflows.list_workflows(ui.container.db, ui.actor("owner"), survey_id)
    assert [w.name for w in saved] == ["Not saved yet"]
    document = saved[0].document
    assert document["tasks"][0]["connection"] == "Acme renamed"
    assert document["tasks"][0]["object"] == "Case"
    assert [m["field"] for m in document["tasks"][0]["mappings"]] == ["Description", "Subject"]
    assert document["conditions"]["conditions"][0] == {
        "field": chosen_field,
        "operator": "equals",
        "value": "9",
    }
    assert document["tasks"][1]["type"] == "email"

    menu_item(page, lang, "Acme renamed", text(lang, "Remove", "Entfernen"))
    page.wait_for_url(re.compile(r"/remove\?"))
    page.get_by_role("button", name=text(lang, "Remove account", "Benutzerkonto entfernen")).click()
    page.wait_for_url(re.compile(r"/workflows/drafts/BD_\w+"))
    expect(page.get_by_role("textbox", name="Name", exact=True)).to_have_value("Not saved yet")
    expect(
        page.get_by_role("button", name=re.compile(text(lang, "More actions for", "Weitere")))
    ).to_have_count(0)
    assert connections.list_connections(ui.container.db, ui.actor("owner")) == []


def test_editors_get_no_account_menus_or_add_account_in_a_task(
    ui: UiServer, signed_in: Any, lang: str
) -> None:
    survey_id = make_survey(ui)
    owner = ui.actor("owner")
    page = signed_in("owner")
    link_account(ui, page, "Acme")
    view = workflows.create_workflow(
        ui.container.db, owner, survey_id,
        {
            "name": "Has a task",
            "event": {"type": "survey_response", "when": ["created"]},
            "tasks": [{"id": "t", "type": "salesforce", "connection": "Acme",
                       "object": "Case", "action": "insert", "mappings": []}],
        },
    )  # fmt: skip
    builder = f"/surveys/{survey_id}/workflows/{view.workflow.id}"
    page.goto(ui.url(builder))
    settle(page)
    expect(
        page.get_by_role(
            "button", name=text(lang, "More actions for Acme", "Weitere Aktionen für Acme")
        )
    ).to_be_visible()
    editor = signed_in("editor")
    editor.goto(ui.url(builder))
    expect(account_box(editor, lang)).to_be_visible()
    expect(editor.get_by_role("button", name=re.compile("Acme$"))).to_have_count(0)
    expect(
        editor.get_by_role("button", name=text(lang, "Add account", "Benutzerkonto hinzufügen"))
    ).to_have_count(0)
    expect(account_box(editor, lang)).to_have_value("Acme")


@pytest.mark.parametrize("viewport", ["phone"])
def test_check_setup_in_a_task_by_keyboard_on_a_phone(
    ui: UiServer, signed_in: Any, lang: str, viewport: str
) -> None:
    """The account's ⋯ menu in a task, opened and used with the keyboard only on a phone:
    the doctor's findings appear in the task, focused, and the page still fits the phone."""
    survey_id = make_survey(ui)
    page = signed_in("owner")
    task = {"id": "t", "type": "salesforce", "connection": "Acme", "object": "Case",
            "action": "insert", "mappings": [{"field": "Subject", "value": "phone"}]}  # fmt: skip
    open_saved_workflow(ui, page, survey_id, "Phone check", [task])
    menu = page.get_by_role(
        "button", name=text(lang, "More actions for Acme", "Weitere Aktionen für Acme")
    )
    tab_to(page, menu, presses=120)
    page.keyboard.press("Enter")
    check = page.get_by_role(
        "menuitem", name=text(lang, "Check setup", "Einrichtung prüfen"), exact=True
    )
    for _ in range(4):
        if page.evaluate("el => el === document.activeElement", check.element_handle()):
            break
        page.keyboard.press("ArrowDown")
    expect(check).to_be_focused()
    page.keyboard.press("Enter")
    report = page.locator('[id="field-check-tasks[0].connection"]')
    expect(report).to_be_focused()
    expect(report).to_contain_text(
        text(lang, "insert on Case looks right.", "insert auf Case sieht richtig aus.")
    )
    no_horizontal_scroll(page)
    axe_check(page)
    shoot(page, "builder-check-setup", lang, viewport)


MARK = """() => {
  document.getElementById('builder').dataset.mark = 'kept';
  document.querySelector('[name="tasks[1].subject"]').dataset.mark = 'kept';
}"""


def test_a_change_inside_a_task_swaps_that_task_only_and_focus_lands_on_the_change(
    ui: UiServer, signed_in: Any, lang: str
) -> None:
    """Add field and a changed object re-render the task's fieldset, not the whole form: the
    rest of the page is the same DOM (a mark set on it survives), and the focus is on the new
    row's Salesforce field, or stays on the object that changed."""
    survey_id = make_survey(ui)
    owner = ui.actor("owner")
    page = signed_in("owner")
    workflow_id = open_saved_workflow(ui, page, survey_id, "Partial", [
        {"id": "t", "type": "salesforce", "connection": "Acme", "object": "Case",
         "action": "insert", "mappings": [{"field": "Subject", "value": "x"}]},
        {"id": "mail", "type": "email", "to": "cx@example.com", "subject": "s", "body": "b"},
    ])  # fmt: skip
    page.evaluate(MARK)
    replies: list[int] = []
    page.on(
        "response", lambda r: replies.append(len(r.body())) if r.request.method == "POST" else None
    )
    page.get_by_role("button", name=text(lang, "Add field", "Feld hinzufügen")).click()
    settle(page)
    new_field = page.locator('[name="tasks[0].mappings[1].field"]')
    expect(new_field).to_be_focused()
    assert page.evaluate("() => document.getElementById('builder').dataset.mark") == "kept"
    assert (
        page.evaluate("() => document.querySelector('[name=\"tasks[1].subject\"]').dataset.mark")
        == "kept"
    )  # the email task was not re-rendered
    new_field.fill("Description")
    page.locator('[name="tasks[0].mappings[1].value"]').fill("from the new row")

    obj = page.get_by_role("combobox", name=text(lang, "Object", "Objekt"), exact=True)
    obj.fill("Account")
    obj.press("Tab")  # the change re-renders the task with Account's fields
    settle(page)
    expect(page.locator('[name="tasks[0].object"]')).to_be_focused()
    expect(page.locator('[name="tasks[0].mappings[1].value"]')).to_have_value("from the new row")
    assert (
        page.evaluate("() => document.querySelector('[name=\"tasks[1].subject\"]').dataset.mark")
        == "kept"
    )
    assert replies and max(replies) < 60_000, replies
    axe_check(page)
    with page.expect_navigation():
        page.get_by_role("button", name=text(lang, "Save workflow", "Workflow speichern")).click()
    saved = workflows.get_workflow(ui.container.db, owner, workflow_id).workflow.document
    assert saved["tasks"][0]["object"] == "Account"
    assert saved["tasks"][0]["mappings"][1] == {"field": "Description", "value": "from the new row"}
