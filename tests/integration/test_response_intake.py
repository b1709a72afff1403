"""Group commit of single submissions: `responses.submit_responses` and the `ResponseIntake`
writer thread behind `POST .../responses`."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cxloop.bootstrap import Container
from cxloop.db.models import Response
from cxloop.errors import Forbidden, InvalidInput, NotFound
from cxloop.services.access import Actor
from cxloop.services.response_intake import ResponseIntake
from cxloop.services.responses import Submission, SurveyNotAccepting, submit_responses
from tests.integration.conftest import LedgerWatch
from tests.integration.survey_helpers import GOOD_VALUES, make_survey, quick_person, share


def stored_ids(container: Container) -> set[str]:
    with container.db.reader() as uow:
        return set(uow.session.scalars(select(Response.id)))


def actor_of(person: Any) -> Actor:
    return Actor(id=person.id, email=person.email, is_admin=False)


@pytest.fixture
def batches(ledger_watch: LedgerWatch) -> Any:
    """The sizes of the batches the ledger is told of, and a gate that holds the writer inside
    its transaction once."""
    gate: dict[str, threading.Event] = {}

    def hold(uow: Any, facts: Any, event: str) -> None:
        if "hold" in gate:
            gate["entered"].set()
            gate.pop("hold").wait(10)

    ledger_watch.before = hold
    return ledger_watch, gate


def test_each_submission_of_a_batch_gets_its_own_outcome(
    client: TestClient, container: Container, batches: Any
) -> None:
    alice = quick_person(container, "alice@example.com")
    viewer = quick_person(container, "vera@example.com")
    survey_id = make_survey(client, alice)
    draft_id = make_survey(client, alice, status="draft", name="Not yet")
    share(client, alice, survey_id, viewer, "viewer")
    watch, _ = batches
    good = {"values": GOOD_VALUES}
    outcomes = submit_responses(
        container.db,
        [
            Submission(actor_of(alice), survey_id, good),
            Submission(actor_of(alice), survey_id, {"values": GOOD_VALUES | {"QID1": 11}}),
            Submission(actor_of(alice), "S_nosuchsurvey00", good),
            Submission(actor_of(viewer), survey_id, good),
            Submission(actor_of(alice), draft_id, good),
            Submission(actor_of(alice), survey_id, "not an object"),
            Submission(actor_of(alice), survey_id, good),
        ],
    )
    kinds = [type(outcome) for outcome in outcomes]  # a stored response is its row (a dict)
    assert kinds == [
        dict, InvalidInput, NotFound, Forbidden, SurveyNotAccepting, InvalidInput, dict,
    ]  # fmt: skip
    assert outcomes[1].details[0]["qid"] == "QID1"  # type: ignore[union-attr]
    assert stored_ids(container) == {outcomes[0]["id"], outcomes[6]["id"]}  # type: ignore[index]
    assert watch.sizes == [2]  # one transaction: the ledger is told of both responses at once


def test_the_ledger_failing_for_one_submission_costs_the_others_nothing(
    client: TestClient, container: Container, batches: Any
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)

    watch, _ = batches

    def explode(uow: Any, facts: Any, event: str) -> None:
        if any(response.values.get("QID1") == 0 for response in facts):
            raise RuntimeError("the matcher broke")

    watch.before = explode
    outcomes = submit_responses(
        container.db,
        [
            Submission(actor_of(alice), survey_id, {"values": GOOD_VALUES | {"QID1": n}})
            for n in (7, 0, 8)
        ],
    )
    assert [type(o) for o in outcomes] == [dict, RuntimeError, dict]
    assert stored_ids(container) == {outcomes[0]["id"], outcomes[2]["id"]}  # type: ignore[index]
    assert watch.sizes == [3, 1, 1, 1]  # the shared transaction, then one each for the culprit


def test_what_arrives_while_a_transaction_runs_goes_in_the_next_one(
    client: TestClient, container: Container, batches: Any
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    watch, gate = batches
    gate["hold"], gate["entered"] = threading.Event(), threading.Event()
    release = gate["hold"]
    intake = ResponseIntake(container.db, max_batch=10)
    try:
        first = intake.submit(actor_of(alice), survey_id, {"values": GOOD_VALUES})
        assert gate["entered"].wait(10)
        more = [
            intake.submit(actor_of(alice), survey_id, {"values": GOOD_VALUES | {"QID1": n % 11}})
            for n in range(24)
        ]
        bad = intake.submit(actor_of(alice), survey_id, {"values": {"QID404": 1}})
        release.set()
        responses = [future.result(10) for future in [first, *more]]
        with pytest.raises(InvalidInput):
            bad.result(10)
    finally:
        intake.close()
    assert watch.sizes == [1, 10, 10, 4]  # at most max_batch a transaction; the bad one in the last
    assert stored_ids(container) == {response["id"] for response in responses}


def test_a_closed_intake_stores_what_was_queued_and_refuses_more(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    intake = ResponseIntake(container.db)
    queued = [intake.submit(actor_of(alice), survey_id, {"values": GOOD_VALUES}) for _ in range(5)]
    intake.close()
    assert all(future.done() for future in queued)
    assert stored_ids(container) == {future.result()["id"] for future in queued}
    with pytest.raises(RuntimeError, match="closed"):
        intake.submit(actor_of(alice), survey_id, {"values": GOOD_VALUES})


def test_concurrent_posts_are_each_stored_once(client: TestClient, container: Container) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    replies: list[Any] = []

    def post(n: int) -> None:
        body = {"values": GOOD_VALUES | {"QID1": n % 11}, "embedded_data": {"CaseId": str(n)}}
        replies.append(client.post(f"/api/v1/surveys/{survey_id}/responses", json=body,
                                   headers=alice.headers))  # fmt: skip

    threads = [threading.Thread(target=post, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status_code for r in replies) == [201] * 40
    by_id = {r.json()["id"]: r.json()["embedded_data"]["CaseId"] for r in replies}
    assert len(by_id) == 40 and sorted(by_id.values(), key=int) == [str(n) for n in range(40)]
    assert stored_ids(container) == set(by_id)
    with container.db.reader() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Response)) == 40


def test_the_reply_to_a_post_is_the_stored_response_as_get_shows_it(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    body = {"values": GOOD_VALUES, "embedded_data": {"CaseId": "5003000000001"}}
    posted = client.post(f"/api/v1/surveys/{survey_id}/responses", json=body,
                         headers=alice.headers)  # fmt: skip
    assert posted.status_code == 201, posted.text
    read = client.get(f"/api/v1/surveys/{survey_id}/responses/{posted.json()['id']}",
                      headers=alice.headers)  # fmt: skip
    # the reply is made from the row as written, the GET from the row read back: the same
    assert posted.json() == read.json()
    assert list(posted.json()) == list(read.json())  # the same fields in the same order
