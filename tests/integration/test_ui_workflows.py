"""The Workflows tab and the builder over HTTP (TestClient, the real emulator): every role on
every page and action, saving through the same service as the API, every problem beside its
input, nothing half-saved, stale forms refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from cxloop.bootstrap import Container
from cxloop.db.workflow_models import BuilderDraft, Workflow
from cxloop.services import survey_content, surveys, users, workflows
from sfemu.testing import EmulatorServer
from tests.conftest import Person
from tests.integration.conftest import (
    CALLBACK,
    CONTENT,
    PASSWORD,
    actor,
    link,
    org,
    sign_in,
)
from tests.integration.survey_helpers import share


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


def _person(container: Container, email: str, *, admin: bool = False) -> Person:
    user = users.create_user(container.db, email, PASSWORD, is_admin=admin)
    issued = users.create_token(container.db, email, "test")
    return Person(id=user.id, email=user.email, token=issued.token)


@pytest.fixture
def shop(
    linked: Container, web: TestClient, emulator: EmulatorServer, owner: Person
) -> dict[str, Any]:
    """A survey owned by `owner` with an account "Acme", an editor and a viewer."""
    link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    survey = surveys.create_survey(linked.db, actor(owner), "Support NPS")
    survey_content.put_content(linked.db, actor(owner), survey.id, CONTENT)
    people = {"owner": owner}
    for role in ("editor", "viewer", "stranger"):
        people[role] = _person(linked, f"{role}@example.com")
    people["admin"] = _person(linked, "admin@example.com", admin=True)
    share(web, owner, survey.id, people["editor"], "editor")
    share(web, owner, survey.id, people["viewer"], "viewer")
    granted = web.put(  # editors pick only the connections the owner allowed for the survey
        f"/api/v1/surveys/{survey.id}/connection-grants/Acme", headers=owner.headers
    )
    assert granted.status_code == 200, granted.text
    web.cookies.clear()
    return {"survey_id": survey.id, "people": people}


CASE_FORM = {
    "name": "Case follow-up",
    "event.type": "survey_response",
    "event.when": "created",
    "tasks[0].type": "salesforce",
    "tasks[0].id": "case",
    "tasks[0].connection": "Acme",
    "tasks[0].object": "Case",
    "tasks[0].action": "update",
    "tasks[0].key_value": "${e://Field/CaseId}",
    "tasks[0].mappings[0].field": "Description",
    "tasks[0].mappings[0].value": "${q://QID2/ChoiceTextEntryValue}",
    "op": "save",
}


def _post(web: TestClient, url: str, data: dict[str, str], page: str) -> Any:
    csrf = _csrf(web.get(page).text)
    return web.post(url, data={**data, "csrf": csrf}, follow_redirects=False)


def test_the_builder_saves_a_workflow_through_the_workflow_service(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    sign_in(web, "owner@example.com")
    base = f"/surveys/{shop['survey_id']}/workflows"
    reply = _post(web, f"{base}/new", CASE_FORM, f"{base}/new?kind=event&event=survey_response")
    assert reply.status_code == 303, reply.text[:3000]
    workflow_id = reply.headers["location"].rsplit("/", 1)[1]
    view = workflows.get_workflow(linked.db, actor(shop["people"]["owner"]), workflow_id)
    assert view.workflow.document["tasks"][0]["mappings"] == [
        {"field": "Description", "value": "${q://QID2/ChoiceTextEntryValue}"}
    ]
    page = web.get(f"{base}/{workflow_id}")
    assert page.status_code == 200 and "Case follow-up" in page.text
    tab = web.get(base)
    assert tab.status_code == 200 and workflow_id in tab.text


def _saved(linked: Container, shop: dict[str, Any], document: dict[str, Any] | None = None) -> str:
    document = document or {
        "name": "Case follow-up",
        "event": {"type": "survey_response", "when": ["created"]},
        "tasks": [
            {
                "id": "case", "type": "salesforce", "connection": "Acme", "object": "Case",
                "action": "update", "key_value": "${e://Field/CaseId}",
                "mappings": [{"field": "Description", "value": "${q://QID2/ChoiceTextEntryValue}"}],
            }
        ],
    }  # fmt: skip
    owner = actor(shop["people"]["owner"])
    return workflows.create_workflow(linked.db, owner, shop["survey_id"], document).workflow.id


ROLES = ("owner", "editor", "viewer", "stranger", "admin")
CAN_SEE = {"owner": True, "editor": True, "viewer": True, "stranger": False, "admin": True}
CAN_EDIT = {"owner": True, "editor": True, "viewer": False, "stranger": False, "admin": True}


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_and_changes_what_it_may(
    web: TestClient, shop: dict[str, Any], linked: Container, role: str
) -> None:
    workflow_id = _saved(linked, shop)
    sign_in(web, f"{role}@example.com")
    base = f"/surveys/{shop['survey_id']}/workflows"
    pages = [base, f"{base}/{workflow_id}", f"{base}/{workflow_id}/revisions",
             f"{base}/{workflow_id}/yaml", f"{base}/{workflow_id}/test",
             f"{base}/{workflow_id}/export.yaml"]  # fmt: skip
    for url in pages:
        reply = web.get(url)
        assert reply.status_code == (200 if CAN_SEE[role] else 404), (url, reply.status_code)
    for url in (f"{base}/new?kind=event&event=survey_response", f"{base}/{workflow_id}/delete"):
        expected = 200 if CAN_EDIT[role] else 403 if CAN_SEE[role] else 404
        assert web.get(url).status_code == expected, url
    tab = web.get(base).text if CAN_SEE[role] else ""
    assert ("Create workflow" in tab) == CAN_EDIT[role]
    assert ('role="switch"' in tab) == CAN_EDIT[role]
    csrf = _csrf(web.get("/surveys").text)
    posts = [
        (f"{base}/{workflow_id}/enabled", {"enabled": ""}),
        (f"{base}/{workflow_id}", {**CASE_FORM, "name": "Renamed", "revision": "2"}),
        (f"{base}/{workflow_id}/duplicate", {}),
        (f"{base}/{workflow_id}/yaml", {"document": "name: x", "revision": "1"}),
        (f"{base}/{workflow_id}/delete", {}),
    ]
    for url, data in posts:
        reply = web.post(url, data={**data, "csrf": csrf}, follow_redirects=False)
        if CAN_EDIT[role]:
            assert reply.status_code in (303, 422), (url, reply.status_code, reply.text[:500])
        else:
            assert reply.status_code == (403 if CAN_SEE[role] else 404), (url, reply.status_code)
    with linked.db.reader() as uow:
        left = uow.session.get(Workflow, workflow_id)
        if CAN_EDIT[role]:
            assert left is None  # deleted at the end
        else:
            assert left is not None and left.enabled and left.name == "Case follow-up"
            assert left.revision == 1


def test_every_problem_is_shown_beside_its_input_and_nothing_is_saved(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    sign_in(web, "editor@example.com")
    base = f"/surveys/{shop['survey_id']}/workflows"
    bad = {
        **CASE_FORM,
        "name": "",
        "tasks[0].id": "1 bad id",
        "tasks[0].object": "Not an object!",
        "conditions.join": "and",
        "conditions.conditions[0].field": "q://QID1",
        "conditions.conditions[0].operator": "less_or_equal",
        "conditions.conditions[0].value": "six",
    }
    reply = _post(web, f"{base}/new", bad, f"{base}/new?kind=event&event=survey_response")
    assert reply.status_code == 422
    html = reply.text
    for name in ("name", "tasks[0].id", "tasks[0].object", "conditions.conditions[0].value"):
        assert f'id="error-{name}"' in html, name
        assert f'href="#field-{name}"' in html, name
    assert 'value="Not an object!"' in html  # what was typed stays
    # A sound document that names what the survey or the owner does not have: all at once too.
    unknown = {
        **CASE_FORM,
        "tasks[0].connection": "Someone else's",
        "tasks[0].mappings[0].value": "${q://QID9/ChoiceGroup/SelectedChoices}",
    }
    reply = _post(web, f"{base}/new", unknown, f"{base}/new?kind=event&event=survey_response")
    assert reply.status_code == 422
    for name in ("tasks[0].connection", "tasks[0].mappings[0].value"):
        assert f'id="error-{name}"' in reply.text, name
    assert (
        workflows.list_workflows(linked.db, actor(shop["people"]["owner"]), shop["survey_id"]) == []
    )


def test_a_stale_form_is_refused_not_overwritten(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    workflow_id = _saved(linked, shop)
    sign_in(web, "editor@example.com")
    base = f"/surveys/{shop['survey_id']}/workflows"
    form_page = web.get(f"{base}/{workflow_id}").text
    assert 'name="revision" value="1"' in form_page
    # Meanwhile the owner saves revision 2.
    owner = actor(shop["people"]["owner"])
    document = workflows.get_workflow(linked.db, owner, workflow_id).workflow.document
    workflows.update_workflow(linked.db, owner, workflow_id, {**document, "description": "x"})
    reply = web.post(
        f"{base}/{workflow_id}",
        data={**CASE_FORM, "name": "Mine", "revision": "1", "csrf": _csrf(form_page)},
        follow_redirects=False,
    )
    assert reply.status_code == 409
    assert "Someone saved a newer revision" in reply.text
    after = workflows.get_workflow(linked.db, owner, workflow_id).workflow
    assert after.revision == 2 and after.name == "Case follow-up"


def test_buttons_without_javascript_add_rows_conditions_and_tasks(
    web: TestClient, shop: dict[str, Any]
) -> None:
    sign_in(web, "owner@example.com")
    base = f"/surveys/{shop['survey_id']}/workflows"
    start = f"{base}/new?kind=event&event=survey_response"
    form = {k: v for k, v in CASE_FORM.items() if k != "op"}
    reply = _post(web, f"{base}/new", {**form, "op": "add_mapping:0"}, start)
    assert reply.status_code == 200 and 'name="tasks[0].mappings[1].field"' in reply.text
    assert 'value="Description"' in reply.text  # the first row is kept
    reply = _post(web, f"{base}/new", {**form, "op": "add_condition:conditions"}, start)
    assert 'name="conditions.conditions[0].field"' in reply.text
    assert "QID1" in reply.text  # questions are offered by text with their QID
    reply = _post(
        web, f"{base}/new", {**form, "op": "add_task", "new_task_type": "directory"}, start
    )
    assert 'name="tasks[1].contact.email"' in reply.text
    reply = _post(
        web,
        f"{base}/new",
        {**form, "op": "insert:tasks[0].mappings[0].value",
         "@insert:tasks[0].mappings[0].value": "${e://Field/CaseId}"},
        start,
    )  # fmt: skip
    assert "${q://QID2/ChoiceTextEntryValue}${e://Field/CaseId}" in reply.text


def test_conditions_directory_and_email_tasks_round_trip_through_the_form(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    sign_in(web, "owner@example.com")
    base = f"/surveys/{shop['survey_id']}/workflows"
    form = {
        **CASE_FORM,
        "conditions.join": "or",
        "conditions.conditions[0].field": "q://QID1",
        "conditions.conditions[0].operator": "less_or_equal",
        "conditions.conditions[0].value": "6",
        "conditions.conditions[1].join": "and",
        "conditions.conditions[1].conditions[0].field": "m://Channel",
        "conditions.conditions[1].conditions[0].operator": "in_list",
        "conditions.conditions[1].conditions[0].value": "api, import",
        "tasks[1].type": "email",
        "tasks[1].id": "alert",
        "tasks[1].to": "am@example.com",
        "tasks[1].subject": "Detractor",
        "tasks[1].body": "Case ${task://case/Id}",
    }
    reply = _post(web, f"{base}/new", form, f"{base}/new?kind=event&event=survey_response")
    assert reply.status_code == 303, reply.text[:3000]
    workflow_id = reply.headers["location"].rsplit("/", 1)[1]
    document = workflows.get_workflow(
        linked.db, actor(shop["people"]["owner"]), workflow_id
    ).workflow.document
    assert document["conditions"] == {
        "join": "or",
        "conditions": [
            {"field": "q://QID1", "operator": "less_or_equal", "value": 6},
            {"join": "and", "conditions": [
                {"field": "m://Channel", "operator": "in_list", "value": ["api", "import"]}]},
        ],
    }  # fmt: skip
    assert document["tasks"][1] == {
        "type": "email", "id": "alert", "to": "am@example.com", "subject": "Detractor",
        "body": "Case ${task://case/Id}",
    }  # fmt: skip
    # Opening and saving the form unchanged stores no new revision.
    page = web.get(f"{base}/{workflow_id}").text
    fields = dict(re.findall(r'<input[^>]*\bname="([^"@]+)"[^>]*\bvalue="([^"]*)"', page))
    assert fields["conditions.conditions[1].conditions[0].value"] == "api, import"
    # The channel's possible values are offered for its condition.
    assert '<option value="anonymous_link">' in page


def test_yaml_can_be_viewed_downloaded_and_pasted_back(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    workflow_id = _saved(linked, shop)
    sign_in(web, "editor@example.com")
    base = f"/surveys/{shop['survey_id']}/workflows/{workflow_id}"
    text = web.get(f"{base}/export.yaml").text
    assert "Case follow-up" in text
    page = web.get(f"{base}/yaml")
    reply = web.post(
        f"{base}/yaml",
        data={"document": text.replace("Case follow-up", "From YAML"), "revision": "1",
              "csrf": _csrf(page.text)},
        follow_redirects=False,
    )  # fmt: skip
    assert reply.status_code == 303
    bad = web.post(
        f"{base}/yaml",
        data={"document": "name: [unclosed", "revision": "2", "csrf": _csrf(page.text)},
        follow_redirects=False,
    )
    assert bad.status_code == 422 and "field-document" in bad.text
    view = workflows.get_workflow(linked.db, actor(shop["people"]["owner"]), workflow_id)
    assert view.workflow.name == "From YAML" and view.workflow.revision == 2


def test_revisions_show_a_diff_and_restore(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    workflow_id = _saved(linked, shop)
    owner = actor(shop["people"]["owner"])
    document = workflows.get_workflow(linked.db, owner, workflow_id).workflow.document
    workflows.update_workflow(linked.db, owner, workflow_id, {**document, "description": "v2"})
    sign_in(web, "editor@example.com")
    base = f"/surveys/{shop['survey_id']}/workflows/{workflow_id}"
    page = web.get(f"{base}/revisions?from=1&to=2")
    assert page.status_code == 200 and "+description: v2" in page.text
    reply = web.post(
        f"{base}/revisions/1/restore",
        data={"revision": "2", "csrf": _csrf(page.text)},
        follow_redirects=False,
    )
    assert reply.status_code == 303
    after = workflows.get_workflow(linked.db, owner, workflow_id).workflow
    assert after.revision == 3 and "description" not in after.document
    # A restore from a page that is out of date is refused, with the reason shown.
    stale = web.post(
        f"{base}/revisions/2/restore",
        data={"revision": "2", "csrf": _csrf(page.text)},
    )
    assert "notice-error" in stale.text and "Someone saved a newer revision" in stale.text
    assert workflows.get_workflow(linked.db, owner, workflow_id).workflow.revision == 3


def test_the_dry_run_shows_each_tasks_payload_without_sending(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    from cxloop.services import responses

    workflow_id = _saved(linked, shop)
    owner = actor(shop["people"]["owner"])
    surveys.update_survey(linked.db, owner, shop["survey_id"], {"status": "active"})
    response = responses.submit_response(
        linked.db, owner, shop["survey_id"],
        {"values": {"QID1": 3, "QID2": "Slow"}, "embedded_data": {"CaseId": "500000000000001AAA"}},
    )  # fmt: skip
    base = f"/surveys/{shop['survey_id']}/workflows/{workflow_id}"
    sign_in(web, "viewer@example.com")  # a dry run may read Salesforce: editors and up only
    page = web.get(f"{base}/test")
    refused = web.post(f"{base}/test", data={"response_id": response.id, "csrf": _csrf(page.text)})
    assert refused.status_code == 403
    web.cookies.clear()
    sign_in(web, "editor@example.com")
    page = web.get(f"{base}/test")
    assert response.id in page.text
    reply = web.post(f"{base}/test", data={"response_id": response.id, "csrf": _csrf(page.text)})
    assert reply.status_code == 200
    assert "Slow" in reply.text and "500000000000001AAA" in reply.text
    missing = web.post(f"{base}/test", data={"response_id": "", "csrf": _csrf(page.text)})
    assert missing.status_code == 422 and 'id="error-response_id"' in missing.text


def test_a_dry_run_on_an_unknown_response_says_so_in_the_pages_language(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    workflow_id = _saved(linked, shop)
    base = f"/surveys/{shop['survey_id']}/workflows/{workflow_id}"
    sign_in(web, "editor@example.com")
    page = web.get(f"{base}/test")
    reply = web.post(
        f"{base}/test",
        data={"response_id": "R_doesnotexist", "csrf": _csrf(page.text)},
        headers={"Accept-Language": "de"},
    )
    assert reply.status_code == 404
    assert "Antwort nicht gefunden." in reply.text


def test_salesforce_findings_show_beside_the_mapping_before_saving(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    sign_in(web, "editor@example.com")
    base = f"/surveys/{shop['survey_id']}/workflows"
    form = {
        **CASE_FORM,
        "tasks[0].mappings[0].field": "Not_A_Field__c",
        "tasks[0].mappings[1].field": "CaseNumber",
        "tasks[0].mappings[1].value": "123",
        "op": "refresh",
    }
    reply = _post(web, f"{base}/new", form, f"{base}/new?kind=event&event=survey_response")
    assert reply.status_code == 200
    assert 'id="flag-tasks[0].mappings[0].field"' in reply.text
    assert 'id="flag-tasks[0].mappings[1].field"' in reply.text
    assert "Not_A_Field__c is not a field of Case." in reply.text
    # The object's fields come from describe, with type, required and writable.
    assert '<option value="Survey_NPS_Score__c">' in reply.text
    assert (
        workflows.list_workflows(linked.db, actor(shop["people"]["owner"]), shop["survey_id"]) == []
    )
    # On a German page the doctor's findings and their fixes are German, the English is gone.
    web.headers["Accept-Language"] = "de"
    german = _post(web, f"{base}/new", form, f"{base}/new?kind=event&event=survey_response").text
    web.headers["Accept-Language"] = "en"
    flag = re.search(r'id="flag-tasks\[0\]\.mappings\[0\]\.field">(.*?)</p>', german, re.S)
    assert flag, german[:3000]
    assert "hat kein Feld Not_A_Field__c" in flag.group(1) and "Prüfen Sie" in flag.group(1)
    for english in ("has no field", "Check the spelling", "that the connection", "In Setup"):
        assert english not in german, english


def test_a_german_builder_says_the_owners_connection_problems_in_german(
    web: TestClient, shop: dict[str, Any]
) -> None:
    """A service problem made of the owner's accounts (not a pydantic code) is German too."""
    sign_in(web, "owner@example.com")
    web.headers["Accept-Language"] = "de"
    base = f"/surveys/{shop['survey_id']}/workflows"
    form = {**CASE_FORM, "tasks[0].connection": "Nobody"}
    reply = _post(web, f"{base}/new", form, f"{base}/new?kind=event&event=survey_response")
    web.headers["Accept-Language"] = "en"
    assert reply.status_code == 422
    assert "Benutzerkonto 'Nobody' ist keines des Eigentümers der Umfrage" in unescape(reply.text)
    assert "is not one of the survey owner" not in unescape(reply.text)


OUTBOUND = {
    "name": "Case closed",
    "event": {"type": "salesforce_outbound_message", "connection": "Acme", "object": "Case"},
    "tasks": [
        {"id": "mail", "type": "email", "to": "${event://Field/SuppliedEmail}",
         "subject": "Case ${event://Field/CaseNumber}", "body": "Closed."}
    ],
}  # fmt: skip


def test_outbound_endpoint_is_shown_to_editors_and_rotates(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    workflow_id = _saved(linked, shop, OUTBOUND)
    base = f"/surveys/{shop['survey_id']}/workflows/{workflow_id}"
    sign_in(web, "viewer@example.com")
    assert "/hooks/salesforce/outbound/" not in web.get(base).text
    web.cookies.clear()
    sign_in(web, "editor@example.com")
    page = web.get(base).text
    first = re.search(r'id="endpoint-url" value="([^"]+)"', page)
    assert first and "/hooks/salesforce/outbound/" in first.group(1)
    assert "SuppliedEmail" in page  # the fields to send
    reply = web.post(f"{base}/outbound/rotate", data={"csrf": _csrf(page)}, follow_redirects=False)
    assert reply.status_code == 303
    second = re.search(r'id="endpoint-url" value="([^"]+)"', web.get(base).text)
    assert second and second.group(1) != first.group(1)
    # The Salesforce setup steps on a German page: German, with the same URL and fields.
    web.headers["Accept-Language"] = "de"
    german = unescape(web.get(base).text)
    web.headers["Accept-Language"] = "en"
    steps = re.search(r'<ol class="steps">(.*?)</ol>', german, re.S)
    assert steps, german[:3000]
    assert "Endpunkt-URL: " + second.group(1) in steps.group(1)
    assert "Zu sendende Felder: Id, SuppliedEmail, CaseNumber." in steps.group(1)
    for english in ("In Salesforce Setup, open", "Fields to send", "Save. Then", "Keep the URL"):
        assert english not in steps.group(1), english


def test_outbound_dry_run_takes_typed_event_fields(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    workflow_id = _saved(linked, shop, OUTBOUND)
    sign_in(web, "editor@example.com")
    base = f"/surveys/{shop['survey_id']}/workflows/{workflow_id}"
    page = web.get(f"{base}/test").text
    reply = web.post(
        f"{base}/test",
        data={"event_fields": "Id=500000000000001AAA\nSuppliedEmail=jo@example.com\n"
              "CaseNumber=00001001", "csrf": _csrf(page)},
    )  # fmt: skip
    assert reply.status_code == 200 and "jo@example.com" in reply.text
    assert "Case 00001001" in reply.text
    bad = web.post(f"{base}/test", data={"event_fields": "no equals sign", "csrf": _csrf(page)})
    assert bad.status_code == 422 and 'id="error-event_fields"' in bad.text


def test_duplicate_and_the_switch_over_htmx(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    workflow_id = _saved(linked, shop)
    sign_in(web, "editor@example.com")
    base = f"/surveys/{shop['survey_id']}/workflows"
    csrf = _csrf(web.get(base).text)
    reply = web.post(
        f"{base}/{workflow_id}/enabled",
        data={"enabled": ""},
        headers={"HX-Request": "true", "X-CSRF-Token": csrf},
    )
    assert reply.status_code == 200 and reply.text.lstrip().startswith("<tr")
    assert (
        'role="switch"' in reply.text and "checked" not in reply.text.split('role="switch"')[1][:5]
    )
    reply = web.post(f"{base}/{workflow_id}/duplicate", data={"csrf": csrf}, follow_redirects=False)
    assert reply.status_code == 303
    names = sorted(w.name for w in workflows.list_workflows(
        linked.db, actor(shop["people"]["owner"]), shop["survey_id"]))  # fmt: skip
    assert names == ["Case follow-up", "Case follow-up (copy)"]


def test_the_tab_counts_runs_and_failures_of_the_last_day_and_shows_the_last_run(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    from datetime import UTC, datetime, timedelta

    from cxloop.db.run_models import Run
    from cxloop.services import workflow_builder

    busy = _saved(linked, shop)
    document = workflows.get_workflow(linked.db, actor(shop["people"]["owner"]), busy)
    quiet = workflows.create_workflow(
        linked.db, actor(shop["people"]["owner"]), shop["survey_id"],
        {**document.workflow.document, "name": "Quiet"},
    ).workflow.id  # fmt: skip
    now = datetime.now(UTC)
    rows = [
        (busy, "succeeded", now - timedelta(hours=30)),  # older than a day: not counted
        (busy, "failed", now - timedelta(hours=5)),
        (busy, "succeeded", now - timedelta(hours=1)),  # the last run
        (quiet, "failed", now - timedelta(days=3)),  # only a last run
    ]
    with linked.db.uow() as uow:
        for index, (workflow_id, status, at) in enumerate(rows):
            uow.session.add(
                Run(survey_id=shop["survey_id"], workflow_id=workflow_id, workflow_name="x",
                    workflow_revision=1, event_type="survey_response", event_key=f"k{index}",
                    status=status, created_at=at)
            )  # fmt: skip
        uow.commit()
    stats = workflow_builder.run_stats(
        linked.db, actor(shop["people"]["viewer"]), shop["survey_id"]
    )
    assert (stats[busy].runs_24h, stats[busy].failures_24h, stats[busy].last_status) == (
        2, 1, "succeeded",
    )  # fmt: skip
    assert abs((stats[busy].last_run_at - rows[2][2]).total_seconds()) < 1
    assert (stats[quiet].runs_24h, stats[quiet].last_status) == (0, "failed")
    sign_in(web, "viewer@example.com")
    tab = web.get(f"/surveys/{shop['survey_id']}/workflows").text
    assert "Quiet" in tab and "failed" in tab


def _leave(web: TestClient, survey_id: str, form: dict[str, str]) -> str:
    """Post the new-workflow builder with an account op; returns where it sends the browser."""
    new_page = f"/surveys/{survey_id}/workflows/new?kind=event&event=survey_response"
    answer = _post(web, f"/surveys/{survey_id}/workflows/new", form, new_page)
    assert answer.status_code == 303, answer.text[:2000]
    return str(answer.headers["location"])


def _return_to(location: str) -> str:
    return unquote(re.search(r"return_to=([^&]+)", location).group(1))


def _big_form(name: str) -> dict[str, str]:
    """A half-built workflow far larger than a session cookie holds (~60 mapping rows)."""
    form = {**CASE_FORM, "name": name, "tasks[0].connection": ""}
    for row in range(60):
        form[f"tasks[0].mappings[{row}].field"] = f"Field_{row}__c"
        form[f"tasks[0].mappings[{row}].value"] = f"${{e://Field/Value{row}}} and some words"
    return form


def test_a_tasks_account_menu_keeps_the_unsaved_form_on_the_server_and_comes_back_to_it(
    web: TestClient, shop: dict[str, Any], linked: Container, emulator: EmulatorServer
) -> None:
    """Add account (through Salesforce's login) and the ⋯ menu of an account in a task: the
    builder's form, not saved and larger than any cookie, is kept on the server, and the
    browser comes back to it with the new or renamed account in the task; a reload shows it
    again; saving discards it. Only the owner's own accounts have menus."""
    survey_id = shop["survey_id"]
    sign_in(web, "owner@example.com")
    new_page = f"/surveys/{survey_id}/workflows/new?kind=event&event=survey_response"
    assert "More actions for Acme" not in web.get(new_page).text  # no Salesforce task yet
    location = _leave(
        web, survey_id, {**_big_form("Unsaved"), "op": "account:add:tasks[0].connection"}
    )
    assert location.startswith("/accounts/new?return_to=")
    back = _return_to(location)
    assert re.fullmatch(
        rf"/surveys/{survey_id}/workflows/drafts/BD_\w+\?select=tasks%5B0%5D.connection", back
    ), back

    # Connect account, through the emulator's login page, then back to the kept form.
    add_page = web.get(location).text
    started = web.post(
        "/accounts/new",
        data={
            "connection_type": "custom", "login_url": org(emulator, "acme")["login_url"],
            "account_name": "Acme new", "return_to": back, "csrf": _csrf(add_page),
        },
        follow_redirects=False,
    )  # fmt: skip
    assert started.status_code == 303, started.text[:2000]
    salesforce = web.get(urlsplit(started.headers["location"]).path, follow_redirects=False)
    logged_in = httpx.get(salesforce.headers["location"], follow_redirects=False)
    assert logged_in.headers["location"].startswith(CALLBACK)
    returned = web.get(
        urlsplit(logged_in.headers["location"]).path
        + "?"
        + urlsplit(logged_in.headers["location"]).query,
        follow_redirects=False,
    )
    assert returned.status_code == 303
    assert returned.headers["location"].startswith(back + "&connected=CN_")
    page = web.get(returned.headers["location"])
    assert page.status_code == 200, page.text[:2000]
    assert 'value="Unsaved"' in page.text and "Field_59__c" in page.text
    assert re.search(r'<option value="Acme new" selected>', page.text), page.text
    assert 'data-focus="field-tasks[0].connection"' in page.text
    assert "Connected Acme new" in page.text and "it is not saved yet" in page.text
    assert 'aria-label="More actions for Acme new"' in page.text  # the owner's account's menu
    assert web.get(returned.headers["location"]).status_code == 200  # a reload: still there

    # Renaming from the task's menu: back to the form, whose task follows the new name.
    new_acme = next(
        c for c in workflows.owner_connections(linked.db, actor(shop["people"]["owner"]), survey_id)
        if c.name == "Acme new"
    )  # fmt: skip
    form = {**CASE_FORM, "name": "Unsaved", "tasks[0].connection": "Acme new",
            "op": f"account:rename:{new_acme.id}"}  # fmt: skip
    location = _leave(web, survey_id, form)
    assert location.startswith(f"/accounts/{new_acme.id}/rename?return_to=")
    renamed = _post(
        web, f"/accounts/{new_acme.id}/rename",
        {"account_name": "Acme 2", "return_to": _return_to(location)}, location,
    )  # fmt: skip
    assert renamed.status_code == 303
    page = web.get(renamed.headers["location"])
    assert 'value="Unsaved"' in page.text
    assert re.search(r'<option value="Acme 2" selected>', page.text), page.text

    # Saving the restored form saves the workflow with the account, and discards the draft.
    draft_id = re.search(r'name="draft" value="(BD_\w+)"', page.text).group(1)
    saved = web.post(
        f"/surveys/{survey_id}/workflows/new",
        data={**CASE_FORM, "name": "Unsaved", "tasks[0].connection": "Acme 2",
              "draft": draft_id, "csrf": _csrf(page.text)},
        follow_redirects=False,
    )  # fmt: skip
    assert saved.status_code == 303, saved.text[:2000]
    workflow_id = saved.headers["location"].rsplit("/", 1)[1]
    view = workflows.get_workflow(linked.db, actor(shop["people"]["owner"]), workflow_id)
    assert view.workflow.document["tasks"][0]["connection"] == "Acme 2"
    gone = web.get(renamed.headers["location"], follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"].endswith("/workflows")
    assert "not kept in this browser" in web.get(gone.headers["location"]).text

    # Editors get no menus and cannot use the owner's accounts through the builder.
    web.cookies.clear()
    sign_in(web, "editor@example.com")
    builder = web.get(new_page).text
    assert "More actions for" not in builder and "account:add:" not in builder
    seen = web.get(f"/surveys/{survey_id}/workflows/{workflow_id}").text
    assert "Acme (Connected)" in seen  # the accounts editors may pick, with their status
    assert re.search(r'<option value="Acme 2"[^>]* selected>', seen) and "More actions" not in seen
    location = _leave(web, survey_id, {**CASE_FORM, "op": f"account:remove:{new_acme.id}"})
    assert web.get(location).status_code == 404  # not their account


def test_cancelling_or_failing_at_salesforce_comes_back_to_the_kept_form_with_the_reason(
    web: TestClient, shop: dict[str, Any], emulator: EmulatorServer
) -> None:
    survey_id = shop["survey_id"]
    for lang, said in (("en", "Access was not granted at Salesforce"),
                       ("de", "Der Zugriff wurde bei Salesforce nicht erlaubt")):  # fmt: skip
        web.cookies.clear()
        sign_in(web, "owner@example.com")
        web.headers["Accept-Language"] = lang
        location = _leave(
            web, survey_id, {**_big_form("Half"), "op": "account:add:tasks[0].connection"}
        )
        back = _return_to(location)
        started = web.post(
            "/accounts/new",
            data={
                "connection_type": "custom", "login_url": org(emulator, "acme")["login_url"],
                "account_name": f"Refused {lang}", "return_to": back,
                "csrf": _csrf(web.get(location).text),
            },
            follow_redirects=False,
        )  # fmt: skip
        salesforce = web.get(urlsplit(started.headers["location"]).path, follow_redirects=False)
        state = parse_qs(urlsplit(salesforce.headers["location"]).query)["state"][0]
        refused = web.get(
            "/oauth/salesforce/callback",
            params={"state": state, "error": "access_denied", "error_description": "user denied"},
            follow_redirects=False,
        )
        assert refused.status_code == 303 and refused.headers["location"] == back
        page = web.get(back)
        assert page.status_code == 200
        assert said in page.text and 'value="Half"' in page.text and "Field_59__c" in page.text
        assert not re.search(r"<option value=\"Refused", page.text)
    web.headers["Accept-Language"] = "en"


def test_a_draft_opens_only_in_its_own_browser_for_its_own_user_and_survey_until_it_expires(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    """Bad inputs: a forged draft id, another user's draft, the same user's draft in another
    browser, a draft under another survey's address, an expired draft, a tampered way back
    (an account that is not the owner's, a path that is not an account's)."""
    survey_id = shop["survey_id"]
    owner = shop["people"]["owner"]
    sign_in(web, "owner@example.com")
    location = _leave(
        web, survey_id, {**CASE_FORM, "name": "Mine", "op": "account:add:tasks[0].connection"}
    )
    back = _return_to(location)
    draft_url = back.split("?")[0]
    assert web.get(draft_url).status_code == 200

    def refused(client: TestClient, url: str, survey: str = survey_id) -> str:
        reply = client.get(url, follow_redirects=False)
        assert reply.status_code == 303, (url, reply.status_code)
        assert reply.headers["location"] == f"/surveys/{survey}/workflows"
        return client.get(reply.headers["location"]).text

    forged = draft_url.rsplit("/", 1)[0] + "/BD_forgedforgedforg"
    assert "not kept in this browser" in refused(web, forged)
    assert refused(web, draft_url.rsplit("/", 1)[0] + "/" + "x" * 300)  # too long an id

    # The editor (who may edit the survey) cannot open the owner's draft.
    with TestClient(web.app, raise_server_exceptions=False) as other:
        sign_in(other, "editor@example.com")
        assert "not kept in this browser" in refused(other, draft_url)
        other.cookies.clear()
        # Nor can the owner from another browser (another web session).
        sign_in(other, "owner@example.com")
        assert "not kept in this browser" in refused(other, draft_url)
        other.cookies.clear()
        # A stranger or a viewer gets the survey's own answer, not the draft.
        sign_in(other, "stranger@example.com")
        assert other.get(draft_url).status_code == 404
        other.cookies.clear()
        sign_in(other, "viewer@example.com")
        assert other.get(draft_url).status_code == 403

    # Another survey's address with this draft's id: not found.
    elsewhere = surveys.create_survey(linked.db, actor(owner), "Elsewhere")
    assert "not kept" in refused(web, draft_url.replace(survey_id, elsewhere.id), elsewhere.id)

    # A tampered way back: another user's account, or a path that is no account's, is ignored.
    page = web.get(f"{back.split('?')[0]}?select=name&connected=CN_notanaccount1")
    assert page.status_code == 200 and 'value="Mine"' in page.text and "data-focus" not in page.text
    page = web.get(f"{back}&connected=CN_notanaccount1")
    assert "data-focus" not in page.text

    # Expired: said so, and gone.
    with linked.db.uow() as uow:
        uow.session.execute(
            update(BuilderDraft).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        uow.commit()
    assert "has expired" in refused(web, draft_url)
    with linked.db.reader() as uow:
        assert uow.session.scalar(select(func.count()).select_from(BuilderDraft)) == 0

    # Logging out ends the browser's drafts with its session.
    location = _leave(web, survey_id, {**CASE_FORM, "op": "account:add:tasks[0].connection"})
    _post(web, "/logout", {}, "/surveys")
    with linked.db.reader() as uow:
        assert uow.session.scalar(select(func.count()).select_from(BuilderDraft)) == 0


def test_check_setup_in_a_tasks_menu_shows_the_doctors_findings_there_and_keeps_the_form(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    survey_id = shop["survey_id"]
    sign_in(web, "owner@example.com")
    acme = workflows.owner_connections(linked.db, actor(shop["people"]["owner"]), survey_id)[0]
    new_page = f"/surveys/{survey_id}/workflows/new?kind=event&event=survey_response"
    form = {**CASE_FORM, "name": "Checked", "tasks[0].mappings[0].field": "NoSuchField__c",
            "op": f"account:check:{acme.id}:tasks[0].connection"}  # fmt: skip
    answer = _post(web, f"/surveys/{survey_id}/workflows/new", form, new_page)
    assert answer.status_code == 200, answer.text[:2000]
    html = answer.text
    assert 'value="Checked"' in html and 'data-focus="field-check-tasks[0].connection"' in html
    assert 'id="field-check-tasks[0].connection"' in html
    assert "The refresh token works." in html and "The user has API access." in html
    assert "NoSuchField__c" in html and "Fix:" in html  # the task's own finding, with its fix
    with linked.db.reader() as uow:  # nothing saved, nothing kept
        assert uow.session.scalar(select(func.count()).select_from(BuilderDraft)) == 0
    # German: the doctor's findings in German.
    web.headers["Accept-Language"] = "de"
    german = _post(web, f"/surveys/{survey_id}/workflows/new", form, new_page).text
    web.headers["Accept-Language"] = "en"
    assert "Der Refresh-Token funktioniert." in german
    assert "The refresh token works." not in german and "Check the spelling" not in german
    # Another user's account id in the op: the doctor refuses it (not found), nothing leaks.
    form["op"] = "account:check:CN_notanaccount1:tasks[0].connection"
    assert _post(web, f"/surveys/{survey_id}/workflows/new", form, new_page).status_code == 404


def test_german_builder_says_validation_and_service_problems_in_german(
    web: TestClient, shop: dict[str, Any]
) -> None:
    """pydantic's English ("String should have at least 1 character") and the services' English
    stay off German pages: problems are said by their code, with the field's label."""
    survey_id = shop["survey_id"]
    new_page = f"/surveys/{survey_id}/workflows/new?kind=event&event=survey_response"
    sign_in(web, "owner@example.com")
    web.headers["Accept-Language"] = "de-DE,de;q=0.9"
    form = {
        **CASE_FORM,
        "conditions.join": "and",
        "conditions.conditions[0].field": "",
        "conditions.conditions[0].operator": "equals",
        "conditions.conditions[0].value": "x",
        "tasks[0].mappings[0].field": "",
    }
    answer = _post(web, f"/surveys/{survey_id}/workflows/new", form, new_page)
    assert answer.status_code == 422
    assert "should have" not in answer.text and "is required" not in answer.text
    assert "Feld braucht mindestens 1 Zeichen." in answer.text  # the condition's field
    assert "Salesforce-Feld muss ein Salesforce-API-Name sein" in answer.text

    # A service's refusal (a taken name) on a German page: the sentence for its code.
    saved = _post(web, f"/surveys/{survey_id}/workflows/new", CASE_FORM, new_page)
    assert saved.status_code == 303, saved.text
    again = _post(web, f"/surveys/{survey_id}/workflows/new", CASE_FORM, new_page)
    assert again.status_code == 409
    assert "Dieser Name ist vergeben: wählen Sie einen anderen." in again.text
    assert "already" not in again.text

    # In English the same refusal keeps the service's own words.
    web.headers["Accept-Language"] = "en"
    again = _post(web, f"/surveys/{survey_id}/workflows/new", CASE_FORM, new_page)
    assert "Case follow-up" in again.text and "Dieser Name" not in again.text


def test_a_change_inside_a_task_sends_back_that_tasks_fieldset_only_when_asked(
    web: TestClient, shop: dict[str, Any]
) -> None:
    """With the builder's script (X-Builder-Partial), Add field and a changed object of a
    Salesforce task come back as that task's fieldset with where to put it; anything else
    (no script, another task's kind, a made-up or out-of-range path) gets the whole form."""
    sign_in(web, "owner@example.com")
    base = f"/surveys/{shop['survey_id']}/workflows"
    new_page = f"{base}/new?kind=event&event=survey_response"
    csrf = _csrf(web.get(new_page).text)
    form = {**CASE_FORM, "tasks[1].type": "email", "tasks[1].id": "mail", "csrf": csrf}
    htmx = {"HX-Request": "true", "X-Builder-Partial": "1"}

    def post(op: str, **headers: str) -> Any:
        return web.post(f"{base}/new", data={**form, "op": op}, headers=headers)

    added = post("add_mapping:0", **htmx)
    assert added.status_code == 200
    assert added.headers["HX-Retarget"] == '[id="field-tasks[0]"]'
    assert added.headers["HX-Reselect"] == '[id="field-tasks[0]"]'
    assert added.text.lstrip().startswith('<fieldset class="task panel-inner" id="field-tasks[0]"')
    assert 'data-focus="field-tasks[0].mappings[1].field"' in added.text
    assert 'name="tasks[0].mappings[1].field"' in added.text and "tasks[1]" not in added.text
    changed = post("refresh", **htmx, **{"X-Builder-Changed": "tasks[0].object"})
    assert changed.headers.get("HX-Retarget") == '[id="field-tasks[0]"]'
    assert len(changed.text) < len(post("refresh", **{"HX-Request": "true"}).text) / 1.5

    whole = [
        post("add_mapping:0", **{"HX-Request": "true"}),  # no script: the whole form
        post("add_mapping:0", **{"X-Builder-Partial": "1"}),  # not htmx: the whole page
        post("refresh", **htmx, **{"X-Builder-Changed": "tasks[1].subject"}),  # email task
        post("refresh", **htmx, **{"X-Builder-Changed": "name"}),
        post("refresh", **htmx, **{"X-Builder-Changed": "tasks[7].object"}),  # no such task
        post("refresh", **htmx, **{"X-Builder-Changed": "tasks[0].object<script>"}),
        post("add_mapping:9", **htmx),
        post("remove_mapping:x.0", **htmx),
    ]
    for reply in whole:
        assert reply.status_code == 200
        assert "HX-Retarget" not in reply.headers and 'id="builder"' in reply.text
