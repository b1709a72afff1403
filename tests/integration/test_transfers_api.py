"""Transfers of a survey are offers its receiver accepts; owners allow connections per survey.

Issue #12, finding 1 (a transfer nobody accepted lent the receiver's Salesforce org to the
sender) and finding 10 (viewers listed the owner's connections and ran the dry run).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import update

from cxloop.bootstrap import Container
from cxloop.db.base import utcnow
from cxloop.db.models import User
from cxloop.services import users
from tests.conftest import Person
from tests.integration.test_auth_api import assert_error
from tests.integration.test_workflows_api import (
    EMAIL_WORKFLOW,
    add_connection,
    new_survey,
    salesforce_workflow,
    workflows_path,
)


@pytest.fixture
def make_person(container: Container) -> Callable[..., Person]:
    """People with API tokens and no password (hashing one costs most of a second)."""

    def make(email: str, *, admin: bool = False) -> Person:
        user = users.create_user(container.db, email, None, is_admin=admin)
        issued = users.create_token(container.db, email, "test")
        return Person(id=user.id, email=user.email, token=issued.token)

    return make


def survey_path(survey_id: str) -> str:
    return f"/api/v1/surveys/{survey_id}"


def offer(client: TestClient, sender: Person, survey_id: str, to: Person | str, **body: Any) -> Any:
    email = to if isinstance(to, str) else to.email
    return client.post(
        f"{survey_path(survey_id)}/transfer",
        json={"new_owner_email": email, **body},
        headers=sender.headers,
    )


def decide(client: TestClient, person: Person, transfer_id: str, verb: str, **body: Any) -> Any:
    return client.post(
        f"/api/v1/transfers/{transfer_id}/{verb}", json=body or None, headers=person.headers
    )


def audit_actions(client: TestClient, admin: Person, object_id: str) -> list[str]:
    items = client.get(
        "/api/v1/audit", params={"object_id": object_id}, headers=admin.headers
    ).json()["items"]
    return [e["action"] for e in reversed(items)]


def test_a_transfer_is_an_offer_that_changes_nothing_until_the_receiver_accepts(
    client: TestClient, admin: Person, alice: Person, bob: Person
) -> None:
    survey_id = new_survey(client, alice)
    offered = offer(client, alice, survey_id, bob, keep_previous_owner_as_editor=True)
    assert offered.status_code == 201, offered.text
    body = offered.json()
    assert body["status"] == "pending" and body["keep_previous_owner_as_editor"] is True
    assert body["from_user"]["email"] == alice.email and body["to_user"]["email"] == bob.email
    assert body["survey_name"] == "Support NPS" and body["kept_previous_owner"] is None

    # nothing moved: alice owns the survey, bob cannot even see it
    assert client.get(survey_path(survey_id), headers=alice.headers).json()["your_role"] == "owner"
    assert_error(client.get(survey_path(survey_id), headers=bob.headers), 404)
    incoming = client.get("/api/v1/transfers", headers=bob.headers).json()
    assert [t["id"] for t in incoming] == [body["id"]]
    outgoing = client.get("/api/v1/transfers?direction=outgoing", headers=alice.headers).json()
    assert [t["id"] for t in outgoing] == [body["id"]]
    assert client.get("/api/v1/transfers", headers=alice.headers).json() == []

    # the receiver accepts and agrees that the sender stays on as editor
    accepted = decide(client, bob, body["id"], "accept", keep_previous_owner_as_editor=True)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted" and accepted.json()["kept_previous_owner"]
    assert client.get(survey_path(survey_id), headers=bob.headers).json()["your_role"] == "owner"
    assert client.get(survey_path(survey_id), headers=alice.headers).json()["your_role"] == "editor"
    assert audit_actions(client, admin, survey_id)[-3:] == [
        "survey.transfer.offer", "survey.transfer.accept", "survey.transfer",
    ]  # fmt: skip


def test_the_sender_stays_on_only_if_the_receiver_agrees(
    client: TestClient, alice: Person, bob: Person, carol: Person
) -> None:
    asked = new_survey(client, alice)
    transfer = offer(client, alice, asked, bob, keep_previous_owner_as_editor=True).json()
    accepted = decide(client, bob, transfer["id"], "accept")  # no body: the sender goes
    assert accepted.status_code == 200 and accepted.json()["kept_previous_owner"] is False
    assert_error(client.get(survey_path(asked), headers=alice.headers), 404)

    not_asked = new_survey(client, alice)
    transfer = offer(client, alice, not_asked, carol, keep_previous_owner_as_editor=False).json()
    refused = decide(client, carol, transfer["id"], "accept", keep_previous_owner_as_editor=True)
    assert_error(refused, 422, "keep_not_offered")
    assert client.get(survey_path(not_asked), headers=alice.headers).json()["your_role"] == "owner"


def test_the_receiver_declines_and_the_sender_cancels(
    client: TestClient, admin: Person, alice: Person, bob: Person, carol: Person
) -> None:
    survey_id = new_survey(client, alice)
    first = offer(client, alice, survey_id, bob).json()
    assert_error(decide(client, bob, first["id"], "cancel"), 403, "not_your_offer")
    declined = decide(client, bob, first["id"], "decline")
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert_error(decide(client, bob, first["id"], "accept"), 409, "transfer_not_pending")

    second = offer(client, alice, survey_id, carol).json()
    cancelled = decide(client, alice, second["id"], "cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert_error(decide(client, carol, second["id"], "accept"), 409, "transfer_not_pending")
    assert client.get(survey_path(survey_id), headers=alice.headers).json()["your_role"] == "owner"
    assert audit_actions(client, admin, survey_id)[-4:] == [
        "survey.transfer.offer", "survey.transfer.decline",
        "survey.transfer.offer", "survey.transfer.cancel",
    ]  # fmt: skip
    everything = client.get(
        "/api/v1/transfers", params={"direction": "all", "status": "declined"},
        headers=admin.headers,
    ).json()  # fmt: skip
    assert [t["id"] for t in everything] == [first["id"]]


def test_bad_transfer_offers_and_decisions_are_refused_with_reasons(
    client: TestClient, container: Container, alice: Person, bob: Person, carol: Person
) -> None:
    survey_id = new_survey(client, alice, (carol, "editor"))
    assert_error(offer(client, alice, survey_id, alice), 409, "already_owner")
    assert_error(offer(client, alice, survey_id, "nobody@example.com"), 404, "user_not_found")
    assert_error(offer(client, alice, survey_id, "not an email"), 422, "bad_email")
    assert_error(offer(client, carol, survey_id, bob), 403, "forbidden")  # an editor
    assert_error(offer(client, bob, survey_id, bob), 404, "not_found")  # a stranger
    with container.db.uow() as uow:
        uow.session.execute(update(User).where(User.email == bob.email).values(is_active=False))
        uow.commit()
    assert_error(offer(client, alice, survey_id, bob), 422, "user_inactive")
    with container.db.uow() as uow:
        uow.session.execute(update(User).where(User.email == bob.email).values(is_active=True))
        uow.commit()
    too_long = offer(client, alice, survey_id, bob, message="x" * 2001)
    assert_error(too_long, 422, "invalid_input")
    strict = offer(client, alice, survey_id, bob, keep_previous_owner_as_editor="yes")
    assert_error(strict, 422, "invalid_input")

    transfer = offer(client, alice, survey_id, bob).json()
    again = offer(client, alice, survey_id, carol)
    assert_error(again, 409, "transfer_pending")
    assert transfer["id"] in again.json()["error"]["message"]
    assert_error(decide(client, alice, transfer["id"], "accept"), 403, "not_your_offer")
    assert_error(decide(client, carol, transfer["id"], "accept"), 404, "transfer_not_found")
    assert_error(decide(client, bob, "TR_nope", "accept"), 404, "transfer_not_found")
    assert_error(decide(client, bob, transfer["id"], "accept", bogus=1), 422)
    assert_error(client.get("/api/v1/transfers?direction=sideways", headers=bob.headers), 422)
    assert decide(client, bob, transfer["id"], "accept").status_code == 200
    assert_error(decide(client, bob, transfer["id"], "accept"), 409, "transfer_not_pending")
    assert_error(decide(client, alice, transfer["id"], "cancel"), 409, "transfer_not_pending")


def test_an_expired_offer_cannot_be_accepted_and_its_expiry_is_recorded(
    client: TestClient, container: Container, admin: Person, alice: Person, bob: Person
) -> None:
    from cxloop.db.ownership_models import SurveyTransfer  # (new with the offers)

    survey_id = new_survey(client, alice)
    transfer = offer(client, alice, survey_id, bob).json()
    assert transfer["expires_at"] > transfer["created_at"]
    with container.db.uow() as uow:
        uow.session.execute(
            update(SurveyTransfer)
            .where(SurveyTransfer.id == transfer["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        uow.commit()
    assert_error(decide(client, bob, transfer["id"], "accept"), 410, "transfer_expired")
    assert (
        client.get(f"/api/v1/transfers/{transfer['id']}", headers=bob.headers).json()["status"]
        == "expired"
    )
    assert client.get("/api/v1/transfers", headers=bob.headers).json() == []
    assert audit_actions(client, admin, survey_id)[-1] == "survey.transfer.expire"
    assert client.get(survey_path(survey_id), headers=alice.headers).json()["your_role"] == "owner"
    # the expired offer no longer blocks a new one
    assert offer(client, alice, survey_id, bob).status_code == 201


def test_an_offer_of_a_survey_deleted_meanwhile_is_gone(
    client: TestClient, alice: Person, bob: Person
) -> None:
    survey_id = new_survey(client, alice)
    transfer = offer(client, alice, survey_id, bob).json()
    assert client.delete(survey_path(survey_id), headers=alice.headers).status_code == 204
    assert_error(decide(client, bob, transfer["id"], "accept"), 404, "transfer_not_found")


def test_an_admin_transfer_overtakes_an_open_offer(
    client: TestClient, admin: Person, alice: Person, bob: Person, carol: Person
) -> None:
    survey_id = new_survey(client, alice)
    pending = offer(client, alice, survey_id, bob).json()
    moved = offer(client, admin, survey_id, carol, keep_previous_owner_as_editor=False)
    assert moved.status_code == 200 and moved.json()["status"] == "accepted"
    assert client.get(survey_path(survey_id), headers=carol.headers).json()["your_role"] == "owner"
    assert_error(decide(client, bob, pending["id"], "accept"), 409, "transfer_not_pending")


def test_the_receivers_connections_stay_invisible_to_the_sender(
    client: TestClient, container: Container, alice: Person, bob: Person
) -> None:
    """Finding 1, at the API: an offer lends nothing; after acceptance with the sender kept
    on as editor, they see and pick only what the new owner allows for the survey."""
    add_connection(container, bob, "Bob's org")
    survey_id = new_survey(client, alice)
    base = workflows_path(survey_id)
    transfer = offer(client, alice, survey_id, bob, keep_previous_owner_as_editor=True).json()
    assert client.get(f"{base}/connections", headers=alice.headers).json() == []
    refused = client.post(base, json=salesforce_workflow("Bob's org"), headers=alice.headers)
    assert "is not one of the survey owner's" in assert_error(refused, 422)["message"]

    decide(client, bob, transfer["id"], "accept", keep_previous_owner_as_editor=True)
    assert client.get(f"{base}/connections", headers=alice.headers).json() == []
    refused = client.post(base, json=salesforce_workflow("Bob's org"), headers=alice.headers)
    error = assert_error(refused, 422, "invalid_input")
    assert error["details"][0]["path"] == "tasks[0].connection"
    assert "has not been allowed for this survey by its owner" in error["details"][0]["message"]
    assert [c["name"] for c in client.get(f"{base}/connections", headers=bob.headers).json()] == [
        "Bob's org"
    ]


def test_editors_pick_only_connections_the_owner_granted_for_the_survey(
    client: TestClient, container: Container, admin: Person, alice: Person, bob: Person,
    carol: Person,
) -> None:  # fmt: skip
    production = add_connection(container, alice, "Production")
    add_connection(container, alice, "Sandbox")
    bobs = add_connection(container, bob, "Bob's org")
    survey_id = new_survey(client, alice, (bob, "editor"), (carol, "viewer"))
    base = workflows_path(survey_id)
    grants = f"{survey_path(survey_id)}/connection-grants"
    choices = client.get(f"{base}/connections", headers=alice.headers).json()
    assert [c["name"] for c in choices] == ["Production", "Sandbox"]
    assert client.get(f"{base}/connections", headers=bob.headers).json() == []

    refused = client.post(base, json=salesforce_workflow("Production"), headers=bob.headers)
    assert "ask them to allow it" in assert_error(refused, 422)["details"][0]["message"]
    yaml_headers = bob.headers | {"content-type": "application/yaml"}
    applied = client.post(
        f"{base}/apply", content=yaml.safe_dump(salesforce_workflow("Production")),
        headers=yaml_headers,
    )  # fmt: skip
    assert_error(applied, 422, "invalid_input")

    granted = client.put(f"{grants}/Production", headers=alice.headers)
    assert granted.status_code == 200, granted.text
    assert granted.json()["connection_id"] == production
    assert client.put(f"{grants}/{production}", headers=alice.headers).status_code == 200
    assert [g["connection_name"] for g in client.get(grants, headers=bob.headers).json()] == [
        "Production"
    ]
    assert [c["name"] for c in client.get(f"{base}/connections", headers=bob.headers).json()] == [
        "Production"
    ]
    created = client.post(base, json=salesforce_workflow("Production"), headers=bob.headers)
    assert created.status_code == 201, created.text
    sandbox = salesforce_workflow("Sandbox") | {"name": "Sandbox copy"}
    assert_error(client.post(base, json=sandbox, headers=bob.headers), 422)

    # bad grants
    assert_error(client.put(f"{grants}/Sandbox", headers=bob.headers), 403, "forbidden")
    assert_error(client.put(f"{grants}/{bobs}", headers=alice.headers), 404, "connection_not_found")
    assert_error(client.put(f"{grants}/Nope", headers=alice.headers), 404, "connection_not_found")
    assert_error(client.delete(f"{grants}/Sandbox", headers=alice.headers), 404, "grant_not_found")
    assert_error(client.get(grants, headers=carol.headers), 403, "forbidden")
    by_admin = client.put(f"{grants}/Production", headers=admin.headers)
    assert by_admin.status_code == 200  # an admin may act for the owner

    assert client.delete(f"{grants}/Production", headers=alice.headers).status_code == 204
    assert client.get(f"{base}/connections", headers=bob.headers).json() == []
    assert audit_actions(client, admin, survey_id).count("survey.connection.grant") == 1
    assert audit_actions(client, admin, survey_id)[-1] == "survey.connection.revoke"


def test_viewers_get_403_on_connection_choices_and_the_dry_run(
    client: TestClient, container: Container, alice: Person, bob: Person, carol: Person
) -> None:
    """Finding 10's last clause: viewers listed the owner's connection names and ran the dry
    run, which may read Salesforce with the owner's connection."""
    add_connection(container, alice, "Production")
    survey_id = new_survey(client, alice, (bob, "viewer"), (carol, "editor"))
    base = workflows_path(survey_id)
    client.patch(survey_path(survey_id), json={"status": "active"}, headers=alice.headers)
    response = client.post(
        f"{survey_path(survey_id)}/responses", json={"values": {"QID1": 3}}, headers=alice.headers
    )
    assert response.status_code == 201, response.text
    workflow = client.post(base, json=EMAIL_WORKFLOW, headers=alice.headers).json()
    dry_run = f"{base}/{workflow['id']}/test"
    body = {"response_id": response.json()["id"]}

    assert_error(client.get(f"{base}/connections", headers=bob.headers), 403, "forbidden")
    assert_error(client.post(dry_run, json=body, headers=bob.headers), 403, "forbidden")
    assert client.post(dry_run, json=body, headers=carol.headers).status_code == 200
    assert client.post(dry_run, json=body, headers=alice.headers).json()["would_run"] is True


def test_grants_of_the_previous_owner_end_with_the_transfer(
    client: TestClient, container: Container, admin: Person, alice: Person, bob: Person
) -> None:
    add_connection(container, alice, "Production")
    survey_id = new_survey(client, alice)
    grants = f"{survey_path(survey_id)}/connection-grants"
    assert client.put(f"{grants}/Production", headers=alice.headers).status_code == 200
    transfer = offer(client, alice, survey_id, bob, keep_previous_owner_as_editor=True).json()
    decide(client, bob, transfer["id"], "accept", keep_previous_owner_as_editor=True)
    assert client.get(grants, headers=bob.headers).json() == []
    assert client.get(grants, headers=alice.headers).json() == []
    entries = client.get(
        "/api/v1/audit", params={"object_id": survey_id}, headers=admin.headers
    ).json()["items"]
    revoked = next(e for e in entries if e["action"] == "survey.connection.revoke")
    assert revoked["details"]["connection"] == "Production"
    assert revoked["details"]["reason"] == f"the survey moved to {bob.email}"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/transfers"),
        ("GET", "/api/v1/transfers/TR_x"),
        ("POST", "/api/v1/transfers/TR_x/accept"),
        ("POST", "/api/v1/transfers/TR_x/decline"),
        ("POST", "/api/v1/transfers/TR_x/cancel"),
        ("GET", "/api/v1/surveys/SV_x/connection-grants"),
        ("PUT", "/api/v1/surveys/SV_x/connection-grants/CN_x"),
        ("DELETE", "/api/v1/surveys/SV_x/connection-grants/CN_x"),
    ],
)
def test_transfer_and_grant_endpoints_need_a_token(
    client: TestClient, method: str, path: str
) -> None:
    assert_error(client.request(method, path), 401, "unauthenticated")


def test_an_editors_dry_run_never_reads_salesforce_through_an_ungranted_connection(
    client: TestClient, container: Container, alice: Person, carol: Person
) -> None:
    add_connection(container, alice, "Production")
    survey_id = new_survey(client, alice, (carol, "editor"))
    base = workflows_path(survey_id)
    client.patch(survey_path(survey_id), json={"status": "active"}, headers=alice.headers)
    response = client.post(
        f"{survey_path(survey_id)}/responses", json={"values": {"QID1": 3}}, headers=alice.headers
    ).json()
    workflow = client.post(base, json=salesforce_workflow("Production"), headers=alice.headers)
    assert workflow.status_code == 201, workflow.text
    dry_run = f"{base}/{workflow.json()['id']}/test"
    preview = client.post(dry_run, json={"response_id": response["id"]}, headers=carol.headers)
    assert preview.status_code == 200, preview.text
    [problem] = preview.json()["tasks"][0]["problems"]
    assert problem == (
        f"connection 'Production' has not been allowed for this survey by its owner "
        f"({alice.email}), so it is not used for your dry run"
    )
