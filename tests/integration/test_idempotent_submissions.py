"""Safe retries of POST /api/v1/surveys/{id}/responses: `Idempotency-Key` and a client-chosen
response `id` (issue #18, "a client cannot retry safely"), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cxloop.bootstrap import Container
from cxloop.db.base import utcnow
from cxloop.db.models import Response
from cxloop.db.operations_models import IdempotencyKey
from cxloop.db.run_models import Run
from cxloop.engine.jobs import periodic_jobs
from cxloop.services import idempotency, responses
from cxloop.services.access import Actor
from cxloop.web.app import create_app
from cxloop.web.background import BackgroundServer
from tests.conftest import Person
from tests.integration.survey_helpers import GOOD_VALUES, make_survey, quick_person
from tests.integration.test_auth_api import assert_error

ANSWERS = {"values": GOOD_VALUES}
MAIL_WORKFLOW = {
    "name": "Tell the account manager",
    "event": {"type": "survey_response"},
    "tasks": [{"id": "mail", "type": "email", "to": "am@example.com", "subject": "s", "body": "b"}],
}


def path(survey_id: str) -> str:
    return f"/api/v1/surveys/{survey_id}/responses"


def count(container: Container, model: type) -> int:
    with container.db.reader() as uow:
        return uow.session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def alice(container: Container) -> Person:
    return quick_person(container, "alice@example.com")


@pytest.fixture
def survey_id(client: TestClient, alice: Person) -> str:
    survey_id = make_survey(client, alice)
    created = client.post(
        f"/api/v1/surveys/{survey_id}/workflows", json=MAIL_WORKFLOW, headers=alice.headers
    )
    assert created.status_code == 201, created.text
    return survey_id


def keyed(person: Person, key: str) -> dict[str, str]:
    return person.headers | {"Idempotency-Key": key}


def test_a_retry_with_the_key_gets_the_first_answer_and_stores_nothing_again(
    client: TestClient, container: Container, alice: Person, survey_id: str
) -> None:
    first = client.post(path(survey_id), json=ANSWERS, headers=keyed(alice, "order-1"))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = client.post(path(survey_id), json=ANSWERS, headers=keyed(alice, "order-1"))
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    # the answer is the first one even after the response was edited
    client.patch(f"{path(survey_id)}/{first.json()['id']}", json={"values": {"QID2": 1}},
                 headers=alice.headers).raise_for_status()  # fmt: skip
    assert client.post(path(survey_id), json=ANSWERS, headers=keyed(alice, "order-1")).json() == (
        first.json()
    )
    assert count(container, Response) == 1 and count(container, Run) == 1
    # another key is another request
    other = client.post(path(survey_id), json=ANSWERS, headers=keyed(alice, "order-2"))
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert count(container, Response) == 2


def test_the_same_key_with_another_body_is_refused_saying_why(
    client: TestClient, container: Container, alice: Person, survey_id: str
) -> None:
    client.post(path(survey_id), json=ANSWERS, headers=keyed(alice, "k1")).raise_for_status()
    changed = {"values": GOOD_VALUES | {"QID1": 3}}
    error = assert_error(
        client.post(path(survey_id), json=changed, headers=keyed(alice, "k1")), 422
    )
    assert error["code"] == "idempotency_key_reused"
    assert "another body" in error["message"] and "new key" in error["message"]
    assert count(container, Response) == 1


def test_a_refused_submission_frees_its_key(
    client: TestClient, container: Container, alice: Person, survey_id: str
) -> None:
    bad = client.post(path(survey_id), json={"values": {}}, headers=keyed(alice, "k2"))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_response"
    fixed = client.post(path(survey_id), json=ANSWERS, headers=keyed(alice, "k2"))
    assert fixed.status_code == 201 and "idempotent-replayed" not in fixed.headers


def test_keys_belong_to_one_user_and_one_survey(
    client: TestClient, container: Container, alice: Person, survey_id: str
) -> None:
    other_survey = make_survey(client, alice, name="Other")
    one = client.post(path(survey_id), json=ANSWERS, headers=keyed(alice, "same"))
    two = client.post(path(other_survey), json=ANSWERS, headers=keyed(alice, "same"))
    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]


def test_a_client_chosen_response_id_is_stored_once(
    client: TestClient, container: Container, alice: Person, survey_id: str
) -> None:
    body = ANSWERS | {"id": "R_abcdefghijklmno"}
    first = client.post(path(survey_id), json=body, headers=alice.headers)
    assert first.status_code == 201, first.text
    assert first.json()["id"] == "R_abcdefghijklmno"
    again = client.post(path(survey_id), json=body, headers=alice.headers)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert count(container, Response) == 1 and count(container, Run) == 1


def test_a_response_id_of_another_survey_is_refused(
    client: TestClient, container: Container, alice: Person, survey_id: str
) -> None:
    other_survey = make_survey(client, alice, name="Other")
    body = ANSWERS | {"id": "R_abcdefghijklmno"}
    client.post(path(other_survey), json=body, headers=alice.headers).raise_for_status()
    error = assert_error(client.post(path(survey_id), json=body, headers=alice.headers), 409)
    assert error["code"] == "response_id_taken" and "another survey" in error["message"]
    assert count(container, Response) == 1


@pytest.mark.parametrize(
    "response_id", ["R_short", "X_abcdefghijklmno", "R_abcdefghijklm-o", 17, "", ["R_a"]]
)
def test_a_malformed_response_id_is_refused(
    client: TestClient, container: Container, alice: Person, survey_id: str, response_id: Any
) -> None:
    reply = client.post(path(survey_id), json=ANSWERS | {"id": response_id}, headers=alice.headers)
    error = assert_error(reply, 422)
    assert error["code"] == "invalid_response"
    assert error["details"][0]["field"] == "id"
    assert count(container, Response) == 0


@pytest.mark.parametrize("key", ["", "with space", "x" * 256, "tab\there", "naïve"])
def test_a_malformed_key_is_refused(
    client: TestClient, container: Container, alice: Person, survey_id: str, key: str
) -> None:
    headers = {**alice.headers, "Idempotency-Key": key.encode()}  # as bytes: UTF-8 too
    reply = client.post(path(survey_id), json=ANSWERS, headers=headers)
    assert assert_error(reply, 422)["code"] == "invalid_idempotency_key"
    assert count(container, Response) == 0


def test_a_key_on_a_bulk_array_is_refused(
    client: TestClient, container: Container, alice: Person, survey_id: str
) -> None:
    reply = client.post(path(survey_id), json=[ANSWERS], headers=keyed(alice, "bulk"))
    error = assert_error(reply, 422)
    assert error["code"] == "invalid_idempotency_key" and "`id`" in error["message"]
    assert count(container, Response) == 0


def test_keys_expire_and_the_scheduler_sweeps_them(
    client: TestClient, container: Container, alice: Person, survey_id: str
) -> None:
    container.settings.idempotency_key_ttl_s = 60
    first = client.post(path(survey_id), json=ANSWERS, headers=keyed(alice, "old"))
    assert count(container, IdempotencyKey) == 1
    # Half a minute of margin either side of the 60 s: a loaded machine takes seconds per request.
    assert idempotency.forget_expired(container.db, utcnow() + timedelta(seconds=30)) == 0
    assert idempotency.forget_expired(container.db, utcnow() + timedelta(seconds=90)) == 1
    # once forgotten, the key names a new request
    again = client.post(path(survey_id), json=ANSWERS, headers=keyed(alice, "old"))
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]
    assert "forget_expired_idempotency_keys" in {job.name for job in periodic_jobs(container)}


def test_an_expired_key_not_yet_swept_is_a_new_request(
    client: TestClient, container: Container, alice: Person, survey_id: str
) -> None:
    first = client.post(path(survey_id), json=ANSWERS, headers=keyed(alice, "stale"))
    with container.db.uow() as uow:
        for row in uow.session.scalars(select(IdempotencyKey)):
            row.expires_at = utcnow() - timedelta(seconds=1)
        uow.commit()
    changed = {"values": GOOD_VALUES | {"QID1": 3}}
    again = client.post(path(survey_id), json=changed, headers=keyed(alice, "stale"))
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]


# -- an interrupted request, retried


@pytest.mark.parametrize("died", ["after_storing", "before_storing"])
def test_an_interrupted_request_retried_with_its_key_gives_one_response_and_one_run(
    client: TestClient, container: Container, alice: Person, survey_id: str, died: str
) -> None:
    """The client sent, the web process began (and maybe stored the response), then died
    before answering; the client retries with its key."""
    actor = Actor(id=alice.id, email=alice.email, is_admin=False)
    claim = idempotency.begin(container.db, actor, survey_id, ANSWERS, "retry-me", ttl_s=3600)
    assert isinstance(claim, idempotency.Claim)
    if died == "after_storing":
        stored = responses.submit_response(container.db, actor, survey_id, claim.document)
        assert stored.id == claim.response_id
    # ... the process dies here: no answer, the key row has no reply yet
    retry = client.post(path(survey_id), json=ANSWERS, headers=keyed(alice, "retry-me"))
    assert retry.status_code == 201, retry.text
    assert retry.json()["id"] == claim.response_id
    assert count(container, Response) == 1 and count(container, Run) == 1
    # and a further retry replays the stored answer
    last = client.post(path(survey_id), json=ANSWERS, headers=keyed(alice, "retry-me"))
    assert last.headers["idempotent-replayed"] == "true" and last.json() == retry.json()


# -- concurrent duplicates, over real HTTP


@pytest.fixture
def served(container: Container) -> Iterator[str]:
    server = BackgroundServer(name="idempotency")
    server.start(create_app(container))
    yield server.url
    server.stop()


@pytest.mark.parametrize("kind", ["key", "id"])
def test_concurrent_duplicates_store_exactly_one_response(
    client: TestClient, container: Container, alice: Person, survey_id: str, served: str,
    kind: str,
) -> None:  # fmt: skip
    rounds, threads = 5, 8
    for n in range(rounds):
        key = f"race-{n}"
        body = ANSWERS | ({"id": f"R_race{n:011d}"} if kind == "id" else {})
        headers = keyed(alice, key) if kind == "key" else alice.headers
        start = threading.Barrier(threads)
        replies: list[httpx.Response] = []

        def post(
            body: dict[str, Any] = body,
            headers: dict[str, str] = headers,
            start: threading.Barrier = start,
            replies: list[httpx.Response] = replies,
        ) -> None:
            with httpx.Client(base_url=served, timeout=30) as http:
                start.wait()
                replies.append(http.post(path(survey_id), json=body, headers=headers))

        workers = [threading.Thread(target=post) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert [r.status_code for r in replies] == [201] * threads, [r.text for r in replies]
        assert len({r.json()["id"] for r in replies}) == 1
        assert sum("idempotent-replayed" not in r.headers for r in replies) <= 1
    assert count(container, Response) == rounds and count(container, Run) == rounds
