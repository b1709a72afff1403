"""Nobody's Salesforce credentials run for someone else: transfers, grants and the engine,
against the emulator (issue #12, finding 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import update

from cxloop.bootstrap import Container
from cxloop.db.models import Survey
from cxloop.services import audit, responses
from sfemu.testing import EmulatorServer
from tests.conftest import Person
from tests.integration.conftest import CONTENT, link, org
from tests.integration.test_auth_api import assert_error
from tests.integration.test_engine import add_workflow, drain, task_runs, upsert_workflow

SANDBOX_USER = "admin@example.com.dev"


def records_in(emulator: EmulatorServer, username: str) -> list[dict[str, Any]]:
    """The Survey_Response__c records of the org `username` belongs to."""
    client: httpx.Client = emulator.client(username)
    reply = client.get(
        "/services/data/v62.0/query/",
        params={"q": "SELECT Id, Response_ID__c FROM Survey_Response__c"},
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["records"]


def link_sandbox(web: TestClient, emulator: EmulatorServer, person: Person, name: str) -> dict:
    """A connection of `person` to the emulator's other org (acme-sandbox)."""
    emulator.control.patch("/settings", json={"auto_login": SANDBOX_USER}).raise_for_status()
    try:
        return link(web, person, name, org(emulator, "acme-sandbox")["login_url"])
    finally:
        emulator.control.patch(
            "/settings", json={"auto_login": "admin@example.com"}
        ).raise_for_status()


def new_active_survey(web: TestClient, person: Person) -> str:
    created = web.post("/api/v1/surveys", json={"name": "Mine"}, headers=person.headers)
    survey_id = created.json()["id"]
    path = f"/api/v1/surveys/{survey_id}"
    assert web.put(f"{path}/content", json=CONTENT, headers=person.headers).status_code == 200
    assert web.patch(path, json={"status": "active"}, headers=person.headers).status_code == 200
    return survey_id


def respond(web: TestClient, person: Person, survey_id: str, score: int) -> str:
    reply = web.post(
        f"/api/v1/surveys/{survey_id}/responses",
        json={"values": {"QID1": score}},
        headers=person.headers,
    )
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def test_the_attack_of_finding_1_fails_at_every_step(
    linked: Container,
    web: TestClient,
    emulator: EmulatorServer,
    owner: Person,
    make_person_in: Callable[[Container, str], Person],
) -> None:
    """A sender transfers their survey, asks to stay on as editor, and tries to write into
    the receiver's org with the receiver's connection."""
    linked.settings.batch_linger_s = 0
    receiver = owner
    link(web, receiver, "Acme", org(emulator, "acme")["login_url"])
    sender = make_person_in(linked, "mallory@example.com")
    survey_id = new_active_survey(web, sender)
    workflows = f"/api/v1/surveys/{survey_id}/workflows"

    offered = web.post(
        f"/api/v1/surveys/{survey_id}/transfer",
        json={"new_owner_email": receiver.email, "keep_previous_owner_as_editor": True},
        headers=sender.headers,
    )
    # not accepted: the sender still owns the survey, and sees none of the receiver's things
    assert offered.status_code == 201 and offered.json()["status"] == "pending"
    assert web.get(f"{workflows}/connections", headers=sender.headers).json() == []
    refused = web.post(workflows, json=upsert_workflow("Acme"), headers=sender.headers)
    assert_error(refused, 422, "invalid_input")

    accepted = web.post(
        f"/api/v1/transfers/{offered.json()['id']}/accept",
        json={"keep_previous_owner_as_editor": True},
        headers=receiver.headers,
    )
    assert accepted.status_code == 200, accepted.text
    # kept on as editor: still no connection of the new owner to pick, none to save
    assert web.get(f"{workflows}/connections", headers=sender.headers).json() == []
    refused = web.post(workflows, json=upsert_workflow("Acme"), headers=sender.headers)
    error = assert_error(refused, 422, "invalid_input")
    assert "has not been allowed for this survey by its owner" in error["details"][0]["message"]
    respond(web, sender, survey_id, 9)
    drain(linked)
    assert records_in(emulator, "admin@example.com") == []
    assert task_runs(linked) == []

    # only the new owner's explicit grant lets an editor use their connection
    granted = web.put(
        f"/api/v1/surveys/{survey_id}/connection-grants/Acme", headers=receiver.headers
    )
    assert granted.status_code == 200, granted.text
    saved = web.post(workflows, json=upsert_workflow("Acme"), headers=sender.headers)
    assert saved.status_code == 201, saved.text
    response_id = respond(web, sender, survey_id, 10)
    drain(linked)
    assert [r["Response_ID__c"] for r in records_in(emulator, "admin@example.com")] == [response_id]


def test_a_transfer_pauses_tasks_on_the_previous_owners_connection_until_the_new_owner_rebinds(
    linked: Container,
    web: TestClient,
    emulator: EmulatorServer,
    owner: Person,
    setup: dict[str, Any],
    make_person_in: Callable[[Container, str], Person],
) -> None:
    survey_id = setup["survey_id"]
    workflows = f"/api/v1/surveys/{survey_id}/workflows"
    created = web.post(workflows, json=upsert_workflow("Acme"), headers=owner.headers)
    assert created.status_code == 201, created.text
    workflow_path = f"{workflows}/{created.json()['id']}"
    newcomer = make_person_in(linked, "neo@example.com")
    link_sandbox(web, emulator, newcomer, "Neo sandbox")
    before = respond(web, owner, survey_id, 6)  # queued with the previous owner's connection

    offered = web.post(
        f"/api/v1/surveys/{survey_id}/transfer",
        json={"new_owner_email": newcomer.email, "keep_previous_owner_as_editor": False},
        headers=owner.headers,
    ).json()
    accepted = web.post(f"/api/v1/transfers/{offered['id']}/accept", headers=newcomer.headers)
    assert accepted.status_code == 200, accepted.text
    [paused] = accepted.json()["paused_tasks"]
    assert (paused["task_id"], paused["connection"]) == ("response", "Acme")
    assert "of owner@example.com, which neo@example.com cannot use" in paused["reason"]
    assert "pick one of your connections for this task and save the workflow" in paused["reason"]

    after = respond(web, newcomer, survey_id, 7)
    drain(linked)
    assert records_in(emulator, "admin@example.com") == []
    assert records_in(emulator, SANDBOX_USER) == []
    rows = task_runs(linked)
    assert [r.status for r in rows] == ["paused", "paused"]
    assert all(r.connection_id is None and r.payload is None for r in rows)
    warnings = web.get(workflow_path, headers=newcomer.headers).json()["warnings"]
    assert any(w["message"].startswith("paused: Task 'Salesforce task'") for w in warnings)
    entries, _ = audit.list_entries(linked.db, object_id=created.json()["id"])
    assert "workflow.task.pause" in [e.action for e in entries]

    # the new owner picks one of their connections: the task resumes, its runs go out
    choices = web.get(f"{workflows}/connections", headers=newcomer.headers).json()
    assert [c["name"] for c in choices] == ["Neo sandbox"]
    rebound = web.put(workflow_path, json=upsert_workflow("Neo sandbox"), headers=newcomer.headers)
    assert rebound.status_code == 200, rebound.text
    assert not any(w["message"].startswith("paused:") for w in rebound.json()["warnings"])
    drain(linked)
    assert sorted(r["Response_ID__c"] for r in records_in(emulator, SANDBOX_USER)) == sorted(
        [before, after]
    )
    assert records_in(emulator, "admin@example.com") == []
    assert [r.status for r in task_runs(linked)] == ["succeeded", "succeeded"]


def test_the_engine_never_sends_with_a_connection_of_someone_other_than_the_survey_owner(
    linked: Container,
    setup: dict[str, Any],
    emulator: EmulatorServer,
    make_person_in: Callable[[Container, str], Person],
) -> None:
    """Defence in depth: whatever put a task run in the queue, a connection works only for a
    survey its user owns now."""
    add_workflow(linked, setup, upsert_workflow("Acme"))
    responses.submit_response(
        linked.db, setup["actor"], setup["survey_id"], {"values": {"QID1": 8}}
    )
    stranger = make_person_in(linked, "stranger@example.com")
    with linked.db.uow() as uow:  # the owner changes behind the services' back
        uow.session.execute(
            update(Survey).where(Survey.id == setup["survey_id"]).values(owner_id=stranger.id)
        )
        uow.commit()
    drain(linked)
    assert records_in(emulator, "admin@example.com") == []
    [row] = task_runs(linked)
    assert row.status == "paused" and row.connection_id is None
    assert row.status_reason.startswith("Not sent: task 'response' would have run with a")
    assert "(stranger@example.com)" in row.status_reason


def test_runs_that_waited_go_out_when_the_survey_comes_back_to_the_connections_owner(
    linked: Container,
    web: TestClient,
    emulator: EmulatorServer,
    owner: Person,
    setup: dict[str, Any],
    make_person_in: Callable[[Container, str], Person],
) -> None:
    survey_id = setup["survey_id"]
    workflows = f"/api/v1/surveys/{survey_id}/workflows"
    assert web.post(workflows, json=upsert_workflow("Acme"), headers=owner.headers).is_success
    newcomer = make_person_in(linked, "neo@example.com")

    def hand(survey_from: Person, survey_to: Person) -> dict[str, Any]:
        offered = web.post(
            f"/api/v1/surveys/{survey_id}/transfer",
            json={"new_owner_email": survey_to.email, "keep_previous_owner_as_editor": False},
            headers=survey_from.headers,
        ).json()
        accepted = web.post(f"/api/v1/transfers/{offered['id']}/accept", headers=survey_to.headers)
        assert accepted.status_code == 200, accepted.text
        return accepted.json()

    assert [p["task_id"] for p in hand(owner, newcomer)["paused_tasks"]] == ["response"]
    waiting = respond(web, newcomer, survey_id, 5)
    drain(linked)
    assert [r.status for r in task_runs(linked)] == ["paused"]
    assert records_in(emulator, "admin@example.com") == []

    assert hand(newcomer, owner)["paused_tasks"] == []  # back with the connection's owner
    drain(linked)
    assert [r["Response_ID__c"] for r in records_in(emulator, "admin@example.com")] == [waiting]
    assert [r.status for r in task_runs(linked)] == ["succeeded"]
