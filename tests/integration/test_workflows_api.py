"""/api/v1/surveys/{id}/workflows: documents checked against the survey and the owner's
connections, a revision per change, export and apply that round-trip byte for byte."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from cxloop.db.models import Connection
from cxloop.services import users
from tests.conftest import Person
from tests.integration.test_auth_api import assert_error

CONTENT = {
    "format_version": 1,
    "embedded_data": [{"name": "CaseId"}],
    "questions": [
        {"qid": "QID1", "type": "nps", "text": "How likely are you to recommend us?"},
        {
            "qid": "QID2",
            "type": "single_choice",
            "text": "How did you contact us?",
            "choices": [{"id": "1", "text": "Phone"}, {"id": "2", "text": "Chat"}],
        },
    ],
}

EMAIL_WORKFLOW: dict[str, Any] = {
    "name": "Detractor alert",
    "event": {"type": "survey_response", "when": ["created"]},
    "conditions": {
        "join": "and",
        "conditions": [{"field": "q://QID1", "operator": "less_or_equal", "value": 6}],
    },
    "tasks": [
        {
            "type": "email",
            "id": "alert",
            "to": "am@example.com",
            "subject": "Detractor on case ${e://Field/CaseId}",
            "body": "Score ${q://QID1/ChoiceGroup/SelectedChoices}\nSee the case.\n",
        }
    ],
}


@pytest.fixture
def make_person(container: Container) -> Callable[..., Person]:
    """People with API tokens and no password: hashing one takes most of a second, and these
    tests never log in with one."""

    def make(email: str, *, admin: bool = False) -> Person:
        user = users.create_user(container.db, email, None, is_admin=admin)
        issued = users.create_token(container.db, email, "test")
        return Person(id=user.id, email=user.email, token=issued.token)

    return make


def salesforce_workflow(connection: str) -> dict[str, Any]:
    document = copy.deepcopy(EMAIL_WORKFLOW)
    document["name"] = "Response to Salesforce"
    document["tasks"].insert(
        0,
        {
            "type": "salesforce",
            "id": "response",
            "connection": connection,
            "object": "Survey_Response__c",
            "action": "upsert",
            "key_field": "Response_ID__c",
            "mappings": [
                {"field": "Response_ID__c", "value": "${e://Field/ResponseID}"},
                {"field": "NPS__c", "value": "${q://QID1/ChoiceGroup/SelectedChoices}"},
            ],
        },
    )
    document["tasks"][1]["body"] = "Record ${task://response/Id}"
    return document


def new_survey(client: TestClient, owner: Person, *collaborators: tuple[Person, str]) -> str:
    survey = client.post("/api/v1/surveys", json={"name": "Support NPS"}, headers=owner.headers)
    assert survey.status_code == 201, survey.text
    survey_id = survey.json()["id"]
    content = client.put(
        f"/api/v1/surveys/{survey_id}/content", json=CONTENT, headers=owner.headers
    )
    assert content.status_code == 200, content.text
    for person, role in collaborators:
        added = client.post(
            f"/api/v1/surveys/{survey_id}/collaborators",
            json={"email": person.email, "role": role},
            headers=owner.headers,
        )
        assert added.status_code == 201, added.text
    return survey_id


def add_connection(container: Container, person: Person, name: str, status: str = "active") -> str:
    """A linked connection as the OAuth callback leaves it (no Salesforce needed to save)."""
    with container.db.uow() as uow:
        connection = Connection(
            owner_id=person.id, name=name, type="production",
            login_url="https://login.salesforce.com", instance_url="https://acme.my.salesforce.com",
            org_id="00D000000000001EAA", sf_user_id="005000000000001AAA",
            username=f"{person.email}.sf", identity_url="https://login.salesforce.com/id/x/y",
            status=status, status_reason="" if status == "active" else "Refresh refused.",
        )  # fmt: skip
        uow.session.add(connection)
        uow.commit()
        return connection.id


def workflows_path(survey_id: str) -> str:
    return f"/api/v1/surveys/{survey_id}/workflows"


def test_owner_creates_updates_disables_and_deletes_with_a_revision_each_time(
    client: TestClient, alice: Person, bob: Person
) -> None:
    base = workflows_path(new_survey(client, alice, (bob, "editor")))
    created = client.post(base, json=EMAIL_WORKFLOW, headers=alice.headers)
    assert created.status_code == 201, created.text
    workflow = created.json()
    assert workflow["id"].startswith("WF_") and len(workflow["id"]) == 18
    assert (workflow["revision"], workflow["enabled"], workflow["outcome"]) == (1, True, "created")
    assert workflow["document"] == EMAIL_WORKFLOW and workflow["warnings"] == []
    path = f"{base}/{workflow['id']}"
    assert client.get(path, headers=alice.headers).json()["document"] == EMAIL_WORKFLOW
    listed = client.get(base, headers=alice.headers).json()
    assert [w["name"] for w in listed] == ["Detractor alert"] and "document" not in listed[0]

    changed = copy.deepcopy(EMAIL_WORKFLOW)
    changed["tasks"][0]["subject"] = "Detractor!"
    changed["on_task_failure"] = "continue"
    updated = client.put(path, json=changed, headers=bob.headers | {"If-Match": '"1"'})
    assert updated.status_code == 200, updated.text
    assert updated.json()["revision"] == 2 and updated.headers["etag"] == '"2"'
    # the same document again stores nothing; a stale If-Match is refused
    same = client.put(path, json=changed, headers=alice.headers)
    assert (same.json()["revision"], same.json()["outcome"]) == (2, "unchanged")
    stale = client.put(path, json=EMAIL_WORKFLOW, headers=alice.headers | {"If-Match": '"1"'})
    assert_error(stale, 409, "revision_changed")
    assert client.post(f"{path}/disable", headers=alice.headers).json()["enabled"] is False
    assert client.post(f"{path}/disable", headers=alice.headers).json()["revision"] == 3
    assert client.post(f"{path}/enable", headers=alice.headers).json()["revision"] == 4

    revisions = client.get(f"{path}/revisions", headers=alice.headers).json()
    assert [(r["revision"], r["author"]["email"], r["enabled"]) for r in revisions] == [
        (1, alice.email, True), (2, bob.email, True), (3, alice.email, False),
        (4, alice.email, True),
    ]  # fmt: skip
    assert revisions[0]["summary"] == "created"
    assert revisions[1]["summary"] == "changed on_task_failure; changed task alert"
    assert [r["summary"] for r in revisions[2:]] == ["disabled", "enabled"]
    first = client.get(f"{path}/revisions/1", headers=alice.headers).json()
    assert first["document"] == EMAIL_WORKFLOW and first["author"]["id"] == alice.id
    assert_error(client.get(f"{path}/revisions/5", headers=alice.headers), 404, "no_such_revision")

    diff = client.get(f"{path}/diff", params={"from": 1, "to": 3}, headers=alice.headers)
    assert diff.status_code == 200 and diff.headers["content-type"].startswith("text/x-diff")
    assert f"--- {workflow['id']} revision 1\n+++ {workflow['id']} revision 3\n" in diff.text
    assert "-  subject: Detractor on case ${e://Field/CaseId}\n+  subject: Detractor!\n" in (
        diff.text
    )
    assert "+on_task_failure: continue\n" in diff.text
    assert client.get(f"{path}/diff", params={"from": 3, "to": 4}, headers=alice.headers).text == ""

    # names are unique within a survey
    assert_error(client.post(base, json=changed, headers=alice.headers), 409, "name_taken")
    other = client.post(base, json={**changed, "name": "Second"}, headers=alice.headers)
    renamed = client.put(f"{base}/{other.json()['id']}", json=changed, headers=alice.headers)
    assert_error(renamed, 409, "name_taken")

    assert client.delete(path, headers=bob.headers).status_code == 204
    assert_error(client.get(path, headers=alice.headers), 404, "not_found")
    assert [w["name"] for w in client.get(base, headers=alice.headers).json()] == ["Second"]


def test_editor_picks_the_owners_connection_never_their_own(
    client: TestClient, container: Container, alice: Person, bob: Person, carol: Person
) -> None:
    acme = add_connection(container, alice, "Acme production")
    add_connection(container, alice, "Acme sandbox", status="needs_reauth")
    carols = add_connection(container, carol, "Carol's org")
    bobs = add_connection(container, bob, "Bob's org")
    survey_id = new_survey(client, alice, (carol, "editor"))
    base = workflows_path(survey_id)
    # the owner allows both of their connections for this survey (editors see no others)
    for name in ("Acme production", "Acme sandbox"):
        granted = client.put(
            f"/api/v1/surveys/{survey_id}/connection-grants/{name}", headers=alice.headers
        )
        assert granted.status_code == 200, granted.text

    # the editor sees the owner's connections to pick from (never a token)
    choices = client.get(f"{base}/connections", headers=carol.headers).json()
    assert [c["name"] for c in choices] == ["Acme production", "Acme sandbox"]
    assert all(set(c) == {"id", "name", "type", "status", "status_reason"} for c in choices)

    for own in ("Carol's org", carols, bobs):
        refused = client.post(base, json=salesforce_workflow(own), headers=carol.headers)
        error = assert_error(refused, 422, "invalid_input")
        assert error["details"] == [
            {
                "path": "tasks[0].connection",
                "message": f"connection {own!r} is not one of the survey owner's "
                f"({alice.email}) connections; use one of: 'Acme production', 'Acme sandbox'",
            }
        ]
    created = client.post(base, json=salesforce_workflow(acme), headers=carol.headers)
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] == carol.id
    # the made-up org cannot be reached: saved all the same, with the checks' warning
    assert [w["code"] for w in created.json()["warnings"]] == ["not_checked"]

    # a connection that needs a new login is saved, with a warning that says what will happen
    document = salesforce_workflow("Acme sandbox")
    path = f"{base}/{created.json()['id']}"
    saved = client.put(path, json=document, headers=carol.headers)
    assert saved.status_code == 200 and saved.json()["revision"] == 2
    [warning] = saved.json()["warnings"]
    assert warning["path"] == "tasks[0].connection"
    assert "'Acme sandbox' needs a new login (Refresh refused.)" in warning["message"]
    assert client.get(path, headers=carol.headers).json()["warnings"] == [warning]

    # an outbound message event's connection resolves the same way; q:// has no answers there
    outbound = salesforce_workflow(acme)
    outbound["event"] = {"type": "salesforce_outbound_message", "connection": carols,
                         "object": "Case"}  # fmt: skip
    outbound.pop("conditions")
    error = assert_error(client.post(base, json=outbound, headers=carol.headers), 422)
    assert [d["path"] for d in error["details"]] == [
        "tasks[0].mappings[1].value", "event.connection"
    ]  # fmt: skip
    assert "q:// references cannot be used here" in error["details"][0]["message"]


def test_viewer_reads_but_changes_nothing_and_outsiders_get_404(
    client: TestClient, alice: Person, bob: Person, carol: Person
) -> None:
    survey_id = new_survey(client, alice, (bob, "viewer"))
    base = workflows_path(survey_id)
    path = f"{base}/{client.post(base, json=EMAIL_WORKFLOW, headers=alice.headers).json()['id']}"
    yaml_headers = {"content-type": "application/yaml"}
    assert client.get(path, headers=bob.headers).status_code == 200
    assert client.get(f"{path}/export", headers=bob.headers).status_code == 200
    assert client.get(f"{path}/revisions", headers=bob.headers).status_code == 200
    changes = [
        client.post(base, json={**EMAIL_WORKFLOW, "name": "x"}, headers=bob.headers),
        client.put(path, json={**EMAIL_WORKFLOW, "name": "x"}, headers=bob.headers),
        client.post(f"{path}/disable", headers=bob.headers),
        client.delete(path, headers=bob.headers),
        client.post(f"{base}/apply", content=yaml.safe_dump(EMAIL_WORKFLOW),
                    headers=bob.headers | yaml_headers),
    ]  # fmt: skip
    for reply in changes:
        assert_error(reply, 403, "forbidden")

    for method, url in [
        ("GET", base), ("GET", path), ("GET", f"{path}/revisions"), ("GET", f"{path}/revisions/1"),
        ("GET", f"{path}/export"), ("GET", f"{path}/diff"), ("POST", f"{path}/enable"),
        ("DELETE", path), ("GET", f"{base}/connections"),
    ]:  # fmt: skip
        assert_error(client.request(method, url, headers=carol.headers), 404, "not_found")
    assert_error(client.put(path, json=EMAIL_WORKFLOW, headers=carol.headers), 404)
    # a workflow is only found under its own survey
    other = workflows_path(new_survey(client, carol))
    assert_error(client.get(f"{other}/{path.rsplit('/', 1)[1]}", headers=carol.headers), 404)
    assert client.get(path, headers=alice.headers).json()["revision"] == 1


def test_export_apply_export_is_byte_identical_and_apply_is_idempotent(
    client: TestClient, alice: Person
) -> None:
    base = workflows_path(new_survey(client, alice))
    yaml_headers = alice.headers | {"content-type": "application/yaml"}
    document = copy.deepcopy(EMAIL_WORKFLOW)
    document["description"] = "Zürich team: détracteurs → call back"
    document["tasks"][0]["body"] = "Line one\n  indented: yes\n\nScore: 7 # not a comment\n"
    created = client.post(f"{base}/apply", content=yaml.safe_dump(document), headers=yaml_headers)
    assert created.status_code == 201 and created.json()["outcome"] == "created"
    path = f"{base}/{created.json()['id']}"

    exported = client.get(f"{path}/export", headers=alice.headers)
    assert exported.headers["content-type"].startswith("text/yaml")
    assert yaml.safe_load(exported.text) == document
    again = client.post(f"{base}/apply", content=exported.content, headers=yaml_headers)
    assert again.status_code == 200 and again.json()["outcome"] == "unchanged"
    assert client.get(f"{path}/export", headers=alice.headers).content == exported.content
    assert len(client.get(f"{path}/revisions", headers=alice.headers).json()) == 1
    # JSON applies too, and a change is an update with a new revision
    document["tasks"][0]["cc"] = "lead@example.com"
    updated = client.post(f"{base}/apply", json=document, headers=alice.headers)
    assert (updated.json()["outcome"], updated.json()["revision"]) == ("updated", 2)
    old = client.get(f"{path}/export", params={"revision": 1}, headers=alice.headers)
    assert old.content == exported.content


def test_every_problem_is_reported_at_once_and_nothing_is_stored(
    client: TestClient, alice: Person
) -> None:
    base = workflows_path(new_survey(client, alice))
    document = copy.deepcopy(EMAIL_WORKFLOW)
    document["tasks"][0]["subject"] = "Case ${e://Field/CaseId}: ${q://QID9/QuestionText}"
    document["tasks"][0]["body"] = "${e://Field/Region} ${task://later/Id}"
    document["conditions"]["conditions"] += [
        {"field": "q://QID7", "operator": "is_not_empty"},
        {"field": "q://QID2", "operator": "equals", "value": "Phone"},
    ]
    error = assert_error(client.post(base, json=document, headers=alice.headers), 422)
    assert error["details"] == [
        {
            "path": "tasks[0].subject",
            "message": "task 'alert', subject, character 27: ${q://QID9/QuestionText}: "
            "QID9 does not exist in this survey",
            "character": 27,
        },
        {
            "path": "tasks[0].body",
            "message": "task 'alert', body, character 1: ${e://Field/Region}: embedded data "
            "field 'Region' is not declared in this survey",
            "character": 1,
        },
        {
            "path": "tasks[0].body",
            "message": "task 'alert', body, character 21: ${task://later/Id}: task 'later' is "
            "not an earlier task of this workflow",
            "character": 21,
        },
        {"path": "conditions.conditions[1].field",
         "message": "QID7 does not exist in this survey"},
        {"path": "conditions.conditions[2].field",
         "message": "QID2 has no choice 'Phone' (compare with choice ids: 1, 2)"},
    ]  # fmt: skip
    assert error["message"].startswith("The workflow has 5 problems: tasks[0].subject: ")
    assert client.get(base, headers=alice.headers).json() == []


def test_malformed_wrong_unknown_and_oversized_documents_are_4xx(
    client: TestClient, container: Container, alice: Person
) -> None:
    base = workflows_path(new_survey(client, alice))
    as_yaml = alice.headers | {"content-type": "application/yaml"}
    as_json = alice.headers | {"content-type": "application/json"}
    wrong = copy.deepcopy(EMAIL_WORKFLOW)
    wrong["event"]["include_imported"] = "yes"
    wrong["tasks"][0]["colour"] = "red"
    wrong["tasks"].append({"type": "fax", "id": "fax"})
    later = copy.deepcopy(EMAIL_WORKFLOW)
    later["tasks"] = [
        {**later["tasks"][0], "id": "first", "body": "${task://second/Id}"},
        {**later["tasks"][0], "id": "first"},
    ]
    replies = {
        "malformed YAML": client.post(base, content="name: [unclosed", headers=as_yaml),
        "YAML alias": client.post(base, content="a: &x 1\nb: *x\n", headers=as_yaml),
        "malformed JSON": client.post(base, content='{"name": ', headers=as_json),
        "not a mapping": client.post(base, json=["a list"], headers=alice.headers),
        "wrong types": client.post(base, json=wrong, headers=alice.headers),
        "later task": client.post(base, json=later, headers=alice.headers),
        "NUL": client.post(base, json={**EMAIL_WORKFLOW, "name": "a\x00"}, headers=alice.headers),
        "too large": client.post(
            base, json={**EMAIL_WORKFLOW, "description": "x" * 1_100_000}, headers=alice.headers
        ),
        "body too large": client.post(
            f"{base}/apply", content=b"x" * (container.settings.max_request_bytes + 1),
            headers=as_yaml,
        ),
        "media type": client.post(base, content="name: x", headers=alice.headers
                                  | {"content-type": "text/plain"}),
    }  # fmt: skip
    expected = {
        "malformed YAML": (400, "malformed_yaml"), "YAML alias": (400, "malformed_yaml"),
        "malformed JSON": (400, "malformed_json"), "not a mapping": (422, "invalid_input"),
        "wrong types": (422, "invalid_input"), "later task": (422, "invalid_input"),
        "NUL": (422, "invalid_input"), "too large": (413, "body_too_large"),
        "body too large": (413, "body_too_large"), "media type": (415, "unsupported_media_type"),
    }  # fmt: skip
    for what, reply in replies.items():
        status, code = expected[what]
        assert (reply.status_code, reply.json()["error"]["code"]) == (status, code), (what, reply)
    assert "(line 1, column 16)" in replies["malformed YAML"].json()["error"]["message"]
    assert replies["wrong types"].json()["error"]["details"] == [
        {"path": "event.include_imported", "message": "must be true or false"},
        {
            "path": "tasks[0].colour",
            "message": "unknown key 'colour': allowed keys are type, id, name, to, cc, subject, "
            "body",
        },
        {
            "path": "tasks[1]",
            "message": "unknown task type 'fax'; use one of: salesforce, email, directory",
        },
    ]
    assert replies["later task"].json()["error"]["details"] == [
        {"path": "tasks[1].id",
         "message": "two tasks have the id 'first'; task ids must be unique"},
        {"path": "tasks[0].body", "character": 1,
         "message": "task 'first', body, character 1: ${task://second/Id}: task 'second' is "
         "not an earlier task of this workflow"},
    ]  # fmt: skip
    assert client.get(base, headers=alice.headers).json() == []
