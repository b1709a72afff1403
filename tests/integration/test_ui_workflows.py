"""The Workflows tab and the builder over HTTP (TestClient, the real emulator): every role on
every page and action, saving through the same service as the API, every problem beside its
input, nothing half-saved, stale forms refused."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from cxloop.db.workflow_models import Workflow
from cxloop.services import survey_content, surveys, users, workflows
from sfemu.testing import EmulatorServer
from tests.conftest import Person
from tests.integration.conftest import CONTENT, PASSWORD, actor, link, org, sign_in
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


def test_a_tasks_account_menu_keeps_the_unsaved_form_and_comes_back_to_it(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    """Add account / the ⋯ menu of an account in a task: the builder's form (not saved) is kept
    in the session, and the browser comes back to it with the new or renamed account in the
    task; only the owner's own accounts have menus, and only the owner can use them."""
    survey_id = shop["survey_id"]
    new_page = f"/surveys/{survey_id}/workflows/new?kind=event&event=survey_response"
    sign_in(web, "owner@example.com")
    builder = web.get(new_page).text
    assert "More actions for Acme" not in builder  # no Salesforce task yet
    form = {
        **CASE_FORM,
        "name": "Unsaved",
        "tasks[0].connection": "",
        "op": "account:add:tasks[0].connection",
    }
    answer = _post(web, f"/surveys/{survey_id}/workflows/new", form, new_page)
    assert answer.status_code == 303
    target = answer.headers["location"]
    assert target.startswith("/accounts/new?return_to=")
    back = re.search(r"return_to=([^&]+)", target).group(1)
    from urllib.parse import unquote

    back = unquote(back)
    assert back == f"/surveys/{survey_id}/workflows/draft?select=tasks%5B0%5D.connection"
    acme = next(
        c for c in workflows.owner_connections(linked.db, actor(shop["people"]["owner"]), survey_id)
    )
    # As the OAuth callback sends the browser back: with the new account's id.
    page = web.get(f"{back}&connected={acme.id}")
    assert page.status_code == 200, page.text[:2000]
    assert 'value="Unsaved"' in page.text
    assert re.search(r'<option value="Acme" selected>', page.text), page.text
    assert 'data-focus="field-tasks[0].connection"' in page.text
    assert 'aria-label="More actions for Acme"' in page.text  # the owner's account's menu
    # The kept form is used once.
    assert web.get(f"{back}&connected={acme.id}", follow_redirects=False).status_code == 303

    # Renaming from the task's menu: back to the form, whose task follows the new name.
    form = {**CASE_FORM, "name": "Unsaved", "op": f"account:rename:{acme.id}"}
    answer = _post(web, f"/surveys/{survey_id}/workflows/new", form, new_page)
    assert answer.headers["location"].startswith(f"/accounts/{acme.id}/rename?return_to=")
    rename_page = answer.headers["location"]
    renamed = _post(
        web, f"/accounts/{acme.id}/rename",
        {"account_name": "Acme 2", "return_to": f"/surveys/{survey_id}/workflows/draft"},
        rename_page,
    )  # fmt: skip
    assert renamed.status_code == 303
    page = web.get(renamed.headers["location"])
    assert 'value="Unsaved"' in page.text
    assert re.search(r'<option value="Acme 2" selected>', page.text), page.text

    # Editors get no menus and cannot use the owner's accounts through the builder.
    web.cookies.clear()
    sign_in(web, "editor@example.com")
    builder = web.get(new_page).text
    assert "More actions for Acme" not in builder and "account:add:" not in builder
    form = {**CASE_FORM, "op": f"account:remove:{acme.id}"}
    answer = _post(web, f"/surveys/{survey_id}/workflows/new", form, new_page)
    assert answer.status_code == 303
    assert web.get(answer.headers["location"]).status_code == 404  # not their account


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
