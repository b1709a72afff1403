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
from cxloop.engine import ledger, worker
from cxloop.services import connections, responses, survey_content, surveys

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
    """Wait until htmx has swapped the builder after a change."""
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-settling')")


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
        keys = ledger.overdue_keys(ui.container.db, grace_s=0)
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
