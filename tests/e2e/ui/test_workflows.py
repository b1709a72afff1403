"""The Workflows tab and the builder in a browser, by role and name, in English and German:
building workflows through the UI only, then checking what they do in the emulator."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect
from tests.e2e.ui.conftest import UiServer, axe_check, no_horizontal_scroll, shoot, text

from cxloop.db.run_models import TaskRun
from cxloop.engine import worker
from cxloop.ledger import claims
from cxloop.services import connections, responses, survey_content, surveys, workflows

pytestmark = pytest.mark.browser

CONTENT = {
    "format_version": 1,
    "embedded_data": [{"name": "CaseId"}, {"name": "Email"}],
    "questions": [
        {"qid": "QID1", "type": "nps", "text": "How likely are you to recommend us?"},
        {"qid": "QID2", "type": "text_entry", "text": "Why?"},
    ],
}


def make_survey(ui: UiServer, name: str = "Support NPS") -> str:
    """A survey of the owner with content; the editor and viewer are collaborators."""
    owner = ui.actor("owner")
    survey = surveys.create_survey(ui.container.db, owner, name)
    survey_content.put_content(ui.container.db, owner, survey.id, CONTENT)
    surveys.update_survey(ui.container.db, owner, survey.id, {"status": "active"})
    for role in ("editor", "viewer"):
        surveys.add_collaborator(ui.container.db, owner, survey.id, f"{role}@example.com", role)
    return survey.id


def link_account(ui: UiServer, page: Any, name: str = "Acme") -> None:
    """Link an account for the owner through the emulator's login page, in `page` (a browser
    signed in as the owner)."""
    acme = next(o for o in ui.emulator.info()["orgs"] if o["alias"] == "acme")
    started = connections.start_linking(
        ui.container.db, ui.container.settings, ui.actor("owner"), name, "emulator",
        acme["login_url"],
    )  # fmt: skip
    page.goto(started.authorize_url)
    username, password = ui.emulator_login()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log In").click()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(lambda url: "/oauth/salesforce/callback" in url)
    page.wait_for_load_state()
    assert any(
        c.name == name for c in connections.list_connections(ui.container.db, ui.actor("owner"))
    ), page.content()[:3000]


def settle(page: Any) -> None:
    """Wait until htmx has swapped the builder after a change (and no request is in flight:
    a form waiting for its answer is dimmed, which axe would count against its contrast)."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-settling, .htmx-swapping')"
    )
    page.wait_for_timeout(350)  # a choice's refresh waits 300 ms before it is sent
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-settling, .htmx-swapping')"
    )


def choose(page: Any, name: str, value: str, nth: int = 0) -> None:
    """Pick in a select that re-renders the builder (its choices change what is offered)."""
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.get_by_role("combobox", name=name, exact=True).nth(nth).select_option(value)
    settle(page)


def type_in(page: Any, role: str, name: str, value: str, nth: int = -1) -> None:
    """Type into a box that re-renders the builder when it changes (Object)."""
    box = page.get_by_role(role, name=name, exact=True)
    box = box.last if nth == -1 else box.nth(nth)
    with page.expect_response(lambda r: r.request.method == "POST"):
        box.fill(value)
        box.dispatch_event("change")
    settle(page)


def add_task(page: Any, lang: str, kind: str) -> None:
    page.get_by_role("radio", name=kind, exact=True).check()
    page.get_by_role("button", name=text(lang, "Add task", "Aufgabe hinzufügen")).click()
    settle(page)


def add_mapping(
    page: Any, lang: str, task: int, field: str, value: str, constant: bool = False
) -> None:
    fieldset = page.get_by_role(
        "group", name=re.compile(rf"^{text(lang, 'Task', 'Aufgabe')} {task + 1}:")
    )
    fieldset.get_by_role("button", name=text(lang, "Add field", "Feld hinzufügen")).click()
    settle(page)
    fieldset = page.get_by_role(
        "group", name=re.compile(rf"^{text(lang, 'Task', 'Aufgabe')} {task + 1}:")
    )
    fieldset.get_by_role(
        "combobox", name=text(lang, "Salesforce field", "Salesforce-Feld")
    ).last.fill(field)
    fieldset.get_by_role("textbox", name=text(lang, "Value", "Wert"), exact=True).last.fill(value)
    if constant:
        fieldset.get_by_role(
            "checkbox", name=text(lang, "The value is a constant", "Der Wert ist eine Konstante")
        ).last.check()


def drain(ui: UiServer, timeout: float = 30.0) -> None:
    """Work the queue inline until nothing is open (the UI server runs no worker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.sweep(ui.container)
        keys = claims.overdue_keys(ui.container.db, grace_s=0)
        with ui.container.db.reader() as uow:
            still = (
                uow.session.query(TaskRun)
                .filter(TaskRun.status.in_(("pending", "running", "waiting_retry", "blocked")))
                .count()
            )
        if not keys and not still:
            return
        for key in keys:
            worker.process(ui.container, key)
        time.sleep(0.05)
    raise AssertionError("work still open")


def records(ui: UiServer, sobject: str) -> list[dict[str, Any]]:
    reply = ui.emulator.control.get("/records", params={"org": "acme", "sobject": sobject})
    reply.raise_for_status()
    body = reply.json()
    return body["records"] if isinstance(body, dict) else body


def test_build_a_response_workflow_that_upserts_and_updates_the_case(
    ui: UiServer, signed_in: Any, lang: str
) -> None:
    survey_id = make_survey(ui)
    page = signed_in("owner")
    link_account(ui, page)
    page.goto(ui.url(f"/surveys/{survey_id}/workflows"))
    shoot(page, "workflows-empty", lang, "desktop")
    axe_check(page)
    page.get_by_role("button", name=text(lang, "Create workflow", "Workflow anlegen")).click()
    page.get_by_role("radio", name=text(lang, "Event-based", "Ereignisbasiert")).check()
    page.get_by_role("radio", name=text(lang, "Survey response", "Umfrageantwort")).check()
    shoot(page, "workflow-new", lang, "desktop")
    axe_check(page)
    page.get_by_role("button", name=text(lang, "Continue", "Weiter")).click()
    page.get_by_role("textbox", name="Name", exact=True).fill("Response to Salesforce")

    add_task(page, lang, "Salesforce")
    choose(page, text(lang, "Account", "Benutzerkonto"), "Acme")
    type_in(page, "combobox", text(lang, "Object", "Objekt"), "Survey_Response__c")
    choose(page, text(lang, "Action", "Aktion"), "upsert")
    key = page.get_by_role("combobox", name=text(lang, "Key field", "Schlüsselfeld"))
    expect(key.locator("option")).to_have_count(3)  # the prompt, Id, Response_ID__c
    key.select_option("Response_ID__c")
    page.get_by_role("combobox", name=text(lang, "Salesforce field", "Salesforce-Feld")).first.fill(
        "Response_ID__c"
    )
    page.get_by_role("textbox", name=text(lang, "Value", "Wert"), exact=True).first.fill(
        "${e://Field/ResponseID}"
    )
    add_mapping(page, lang, 0, "NPS_Score__c", "${q://QID1/ChoiceGroup/SelectedChoices}")
    add_mapping(page, lang, 0, "Case__c", "${e://Field/CaseId}")

    add_task(page, lang, "Salesforce")
    choose(page, text(lang, "Account", "Benutzerkonto"), "Acme", nth=1)
    type_in(page, "combobox", text(lang, "Object", "Objekt"), "Case")
    choose(page, text(lang, "Action", "Aktion"), "update", nth=1)
    page.get_by_role(
        "textbox", name=text(lang, "Record to change", "Zu ändernder Datensatz")
    ).last.fill("${e://Field/CaseId}")
    fieldset = page.get_by_role("group", name=re.compile(rf"^{text(lang, 'Task', 'Aufgabe')} 2:"))
    fieldset.get_by_role(
        "combobox", name=text(lang, "Salesforce field", "Salesforce-Feld")
    ).last.fill("Survey_NPS_Score__c")
    fieldset.get_by_role("textbox", name=text(lang, "Value", "Wert"), exact=True).last.fill(
        "${q://QID1/ChoiceGroup/SelectedChoices}"
    )
    add_mapping(page, lang, 1, "Survey_Responded__c", "true", constant=True)
    shoot(page, "builder-filled", lang, "desktop")
    axe_check(page)
    page.get_by_role("button", name=text(lang, "Save workflow", "Workflow speichern")).click()
    expect(page.get_by_role("status").first).to_be_visible()
    shoot(page, "builder-saved", lang, "desktop")
    axe_check(page)

    case = ui.emulator.control.post(
        "/seed",
        json={"org": "acme", "records": [{"attributes": {"type": "Case"}, "Subject": "Broken"}]},
    ).json()
    case_id = case["records"][0]["id"]
    owner = ui.actor("owner")
    response = responses.submit_response(
        ui.container.db, owner, survey_id,
        {"values": {"QID1": 9, "QID2": "Fine"}, "embedded_data": {"CaseId": case_id}},
    )  # fmt: skip
    drain(ui)
    [stored] = records(ui, "Survey_Response__c")
    assert stored["Response_ID__c"] == response.id and stored["NPS_Score__c"] == 9
    assert stored["Case__c"] == case_id
    [updated] = [r for r in records(ui, "Case") if r["Id"] == case_id]
    assert updated["Survey_NPS_Score__c"] == 9 and updated["Survey_Responded__c"] is True

    page.goto(ui.url(f"/surveys/{survey_id}/workflows"))
    row = page.get_by_role("row", name=re.compile("Response to Salesforce"))
    expect(row).to_contain_text("1")
    shoot(page, "workflows-list", lang, "desktop")
    axe_check(page)


def test_build_an_outbound_message_workflow_with_a_directory_task(
    ui: UiServer, signed_in: Any, lang: str
) -> None:
    from tests.integration.conftest import smtp_catcher

    survey_id = make_survey(ui, "Case closed")
    page = signed_in("owner")
    link_account(ui, page)
    page.goto(ui.url(f"/surveys/{survey_id}/workflows"))
    page.get_by_role("button", name=text(lang, "Create workflow", "Workflow anlegen")).click()
    page.get_by_role("radio", name=text(lang, "Event-based", "Ereignisbasiert")).check()
    page.get_by_role(
        "radio",
        name=text(lang, "Salesforce outbound message", "Ausgehende Nachricht von Salesforce"),
    ).check()
    page.get_by_role("button", name=text(lang, "Continue", "Weiter")).click()
    page.get_by_role("textbox", name="Name", exact=True).fill("Case closed: invite")
    choose(page, text(lang, "Account", "Benutzerkonto"), "Acme")
    type_in(page, "combobox", text(lang, "Object", "Objekt"), "Case")
    add_task(page, lang, text(lang, "Directory", "Verzeichnis"))
    task = page.get_by_role("group", name=re.compile(rf"^{text(lang, 'Task', 'Aufgabe')} 1:"))
    task.get_by_role(
        "textbox", name=text(lang, "Contact email", "E-Mail-Adresse des Kontakts")
    ).fill("${event://Field/SuppliedEmail}")
    first_name = task.get_by_role("textbox", name=text(lang, "First name", "Vorname"), exact=True)
    first_name.fill("")
    # The insert menu offers the outbound message's fields (from describe).
    task.get_by_role(
        "combobox",
        name=text(
            lang, "Piped text to insert into First name", "Piped Text zum Einfügen in Vorname"
        ),
    ).select_option("${event://Field/SuppliedName}")
    task.get_by_role(
        "button", name=text(lang, "Insert into First name", "Einfügen in Vorname")
    ).click()
    expect(first_name).to_have_value("${event://Field/SuppliedName}")
    task.get_by_role("textbox", name=text(lang, "Mailing list", "Verteilerliste")).fill(
        "Closed cases"
    )
    task.get_by_role(
        "checkbox",
        name=text(
            lang,
            "Email the contact a personal link to the survey",
            "Dem Kontakt einen persönlichen Link zur Umfrage senden",
        ),
    ).check()
    task.get_by_role("textbox", name=text(lang, "Subject", "Betreff")).fill("How did we do?")
    task.get_by_role("textbox", name=text(lang, "Message", "Nachricht")).fill(
        "Hello ${event://Field/SuppliedName}, please answer: ${l://SurveyLink}"
    )
    page.get_by_role("button", name=text(lang, "Save workflow", "Workflow speichern")).click()
    url_box = page.get_by_role("textbox", name=text(lang, "Endpoint URL", "Endpunkt-URL"))
    expect(url_box).to_be_visible()
    shoot(page, "builder-outbound-saved", lang, "desktop")
    axe_check(page)
    endpoint = url_box.input_value()
    assert "/hooks/salesforce/outbound/" in endpoint

    control = ui.emulator.control
    control.patch(
        "/outbound/rules/Case_Closed_Survey", json={"active": True, "endpoint_url": endpoint}
    ).raise_for_status()
    seeded = control.post(
        "/seed",
        json={"org": "acme", "records": [{"attributes": {"type": "Case"}, "Subject": "Late",
              "SuppliedName": "Jo", "SuppliedEmail": "jo@example.com"}]},
    ).json()  # fmt: skip
    case_id = seeded["records"][0]["id"]
    with smtp_catcher(ui.container) as mailbox:
        control.patch(f"/records/acme/{case_id}", json={"Status": "Closed"}).raise_for_status()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not mailbox:
            drain(ui)
            time.sleep(0.2)
        assert mailbox, "no invitation was sent"
        [mail] = mailbox
        assert "jo@example.com" in mail["To"] and mail["Subject"] == "How did we do?"
    page.goto(ui.url(f"/surveys/{survey_id}/workflows"))
    row = page.get_by_role("row", name=re.compile("Case closed: invite"))
    expect(row).to_contain_text(text(lang, "succeeded", "erfolgreich"))


FOCUSED_NAME = """() => {
  const el = document.activeElement;
  if (!el) return "";
  const label = el.labels && el.labels.length ? el.labels[0].textContent : "";
  return (label || el.getAttribute("aria-label") || el.textContent || "").trim();
}"""


def tab_to(page: Any, name: str, limit: int = 80) -> None:
    """Press Tab until the focused control is called `name` (keyboard only, as a person)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(FOCUSED_NAME) == name:
            return
    raise AssertionError(f"{name!r} cannot be reached with Tab")


def test_a_simple_workflow_can_be_built_with_the_keyboard_alone(
    ui: UiServer, signed_in: Any, lang: str
) -> None:
    survey_id = make_survey(ui)
    page = signed_in("editor")
    page.goto(ui.url(f"/surveys/{survey_id}/workflows"))
    tab_to(page, text(lang, "Create workflow", "Workflow anlegen"))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/workflows/new"))
    tab_to(page, text(lang, "Event-based", "Ereignisbasiert"))
    tab_to(page, text(lang, "Survey response", "Umfrageantwort"))
    page.keyboard.press("Space")
    tab_to(page, text(lang, "Continue", "Weiter"))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"event=survey_response"))
    tab_to(page, "Name")
    page.keyboard.type("Alert the account manager")
    tab_to(page, "Salesforce")  # the new task's kind: arrows move through the choices
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    tab_to(page, text(lang, "Add task", "Aufgabe hinzufügen"))
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.keyboard.press("Enter")
    settle(page)
    # Focus is on the new task (its id), so the person carries on from there.
    assert page.evaluate("() => document.activeElement.name") == "tasks[0].id"
    tab_to(page, text(lang, "To", "An"))
    page.keyboard.type("am@example.com")
    tab_to(page, text(lang, "Subject", "Betreff"))
    page.keyboard.type("A new response")
    tab_to(page, text(lang, "Message", "Nachricht"))
    page.keyboard.type("Response ${e://Field/ResponseID}")
    tab_to(page, text(lang, "Save workflow", "Workflow speichern"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Alert the account manager")).to_be_visible()
    [saved] = workflows.list_workflows(ui.container.db, ui.actor("owner"), survey_id)
    assert saved.document["tasks"][0]["to"] == "am@example.com"


@pytest.mark.parametrize("viewport", ["phone"])
def test_the_tab_and_the_builder_fit_a_phone(
    ui: UiServer, signed_in: Any, lang: str, viewport: str
) -> None:
    survey_id = make_survey(ui)
    page = signed_in("owner")
    link_account(ui, page)
    page.goto(ui.url(f"/surveys/{survey_id}/workflows/new?kind=event&event=survey_response"))
    page.get_by_role("textbox", name="Name", exact=True).fill("Phone")
    add_task(page, lang, "Salesforce")
    choose(page, text(lang, "Account", "Benutzerkonto"), "Acme")
    type_in(page, "combobox", text(lang, "Object", "Objekt"), "Case")
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.get_by_role("button", name=text(lang, "Add condition", "Bedingung hinzufügen")).click()
    settle(page)
    no_horizontal_scroll(page)
    axe_check(page)
    shoot(page, "builder", lang, viewport)
    page.get_by_role("button", name=text(lang, "Save workflow", "Workflow speichern")).click()
    expect(page.get_by_role("alert")).to_be_visible()  # the error summary
    settle(page)
    no_horizontal_scroll(page)
    axe_check(page)
    shoot(page, "builder-errors", lang, viewport)
    page.goto(ui.url(f"/surveys/{survey_id}/workflows"))
    no_horizontal_scroll(page)
    shoot(page, "workflows-empty", lang, viewport)


@pytest.mark.parametrize("role", ["viewer", "stranger"])
def test_viewers_see_read_only_and_strangers_nothing(
    ui: UiServer, signed_in: Any, lang: str, role: str
) -> None:
    survey_id = make_survey(ui)
    owner = ui.actor("owner")
    document = {
        "name": "Mail the team",
        "event": {"type": "survey_response", "when": ["created"]},
        "tasks": [{"id": "mail", "type": "email", "to": "t@example.com", "subject": "S",
                   "body": "B"}],
    }  # fmt: skip
    workflow_id = workflows.create_workflow(ui.container.db, owner, survey_id, document).workflow.id
    page = signed_in(role)
    reply = page.goto(ui.url(f"/surveys/{survey_id}/workflows/{workflow_id}"))
    if role == "stranger":
        assert reply.status == 404
        return
    expect(page.get_by_role("textbox", name="Name", exact=True)).to_be_disabled()
    expect(
        page.get_by_role("button", name=text(lang, "Save workflow", "Workflow speichern"))
    ).to_have_count(0)
    axe_check(page)
    shoot(page, "builder-read-only", lang, "desktop")
    page.goto(ui.url(f"/surveys/{survey_id}/workflows"))
    expect(page.get_by_role("switch")).to_have_count(0)
    expect(
        page.get_by_role("button", name=text(lang, "Create workflow", "Workflow anlegen"))
    ).to_have_count(0)


def test_the_enabled_switch_revisions_yaml_test_and_delete_in_the_browser(
    ui: UiServer, signed_in: Any, lang: str
) -> None:
    survey_id = make_survey(ui)
    owner = ui.actor("owner")
    document = {
        "name": "Mail the team",
        "event": {"type": "survey_response", "when": ["created"]},
        "tasks": [{"id": "mail", "type": "email", "to": "t@example.com",
                   "subject": "Score ${q://QID1/ChoiceGroup/SelectedChoices}", "body": "B"}],
    }  # fmt: skip
    workflow_id = workflows.create_workflow(ui.container.db, owner, survey_id, document).workflow.id
    response = responses.submit_response(ui.container.db, owner, survey_id, {"values": {"QID1": 4}})
    page = signed_in("editor")
    page.goto(ui.url(f"/surveys/{survey_id}/workflows"))
    switch = page.get_by_role("switch", name=text(lang, "Enabled", "Aktiviert"))
    with page.expect_response(lambda r: r.request.method == "POST"):
        switch.uncheck()
    expect(page.get_by_role("switch", name=text(lang, "Enabled", "Aktiviert"))).not_to_be_checked()
    assert not workflows.get_workflow(ui.container.db, owner, workflow_id).workflow.enabled
    shoot(page, "workflows-disabled", lang, "desktop")
    page.goto(ui.url(f"/surveys/{survey_id}/workflows/{workflow_id}/revisions?from=1&to=2"))
    axe_check(page)
    shoot(page, "revisions", lang, "desktop")
    page.goto(ui.url(f"/surveys/{survey_id}/workflows/{workflow_id}/yaml"))
    axe_check(page)
    box = page.get_by_role("textbox", name=text(lang, "Workflow document", "Workflow-Dokument"))
    box.fill("name: [broken")
    page.get_by_role("button", name=text(lang, "Save YAML", "YAML speichern")).click()
    expect(page.get_by_role("alert")).to_be_visible()
    axe_check(page)
    shoot(page, "yaml-error", lang, "desktop")
    page.goto(ui.url(f"/surveys/{survey_id}/workflows/{workflow_id}"))
    page.get_by_role("button", name=text(lang, "Test", "Testen")).click()
    page.get_by_role("combobox", name=text(lang, "Response", "Antwort")).select_option(response.id)
    page.get_by_role("button", name=text(lang, "Test", "Testen")).last.click()
    expect(page.get_by_text("Score 4")).to_be_visible()
    axe_check(page)
    shoot(page, "test-result", lang, "desktop")
    page.goto(ui.url(f"/surveys/{survey_id}/workflows"))
    page.get_by_role(
        "button",
        name=text(lang, "More actions for Mail the team", "Weitere Aktionen für Mail the team"),
    ).click()
    page.get_by_role("menuitem", name=text(lang, "Delete", "Löschen")).click()
    confirm = page.get_by_role("button", name=text(lang, "Delete workflow", "Workflow löschen"))
    expect(confirm).to_be_visible()  # the confirmation has loaded (axe needs a document)
    axe_check(page)
    shoot(page, "delete-confirm", lang, "desktop")
    confirm.click()
    expect(page.get_by_role("status").first).to_be_visible()
    assert workflows.list_workflows(ui.container.db, owner, survey_id) == []


@pytest.mark.parametrize("lang", ["en"])
def test_save_right_after_a_choice_that_refreshes_the_builder_is_not_lost(
    ui: UiServer, signed_in: Any, lang: str
) -> None:
    survey_id = make_survey(ui)
    page = signed_in("editor")
    page.goto(ui.url(f"/surveys/{survey_id}/workflows/new?kind=event&event=survey_response"))
    page.get_by_role("textbox", name="Name", exact=True).fill("Quick save")
    add_task(page, lang, "Email")
    page.get_by_role("textbox", name="To", exact=True).fill("am@example.com")
    page.get_by_role("textbox", name="Subject", exact=True).fill("New response")
    page.get_by_role("textbox", name="Message", exact=True).fill("Hello")
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.get_by_role("button", name="Add condition").click()
    settle(page)
    page.get_by_role("textbox", name="Value", exact=True).fill("6")
    # Choosing a field re-renders the builder (its operators); Save follows at once.
    page.get_by_role("combobox", name="Field", exact=True).select_option("q://QID1")
    page.get_by_role("combobox", name="Operator").select_option("less_or_equal")
    page.get_by_role("button", name="Save workflow").click()
    expect(page.get_by_role("heading", name="Quick save")).to_be_visible()
    [saved] = workflows.list_workflows(ui.container.db, ui.actor("owner"), survey_id)
    assert saved.document["conditions"]["conditions"][0]["operator"] == "less_or_equal"
