"""/api/v1/surveys/{id}/responses: create (one and bulk), get, list, update, delete; the
response-event hook runs inside the response's transaction."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cxloop.bootstrap import Container
from cxloop.db.models import AuditEntry, Response
from cxloop.errors import InvalidInput
from cxloop.services import responses as response_service
from cxloop.services.access import Actor
from tests.integration.conftest import LedgerWatch
from tests.integration.survey_helpers import GOOD_VALUES, make_survey, quick_person, share
from tests.integration.test_auth_api import assert_error


def path(survey_id: str, rest: str = "") -> str:
    return f"/api/v1/surveys/{survey_id}/responses{rest}"


def count_responses(container: Container) -> int:
    with container.db.reader() as uow:
        return uow.session.scalar(select(func.count()).select_from(Response)) or 0


def test_every_question_type_through_the_api(client: TestClient, container: Container) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    body = {
        # QID10 is hidden for a promoter: its answer is dropped, not refused
        "values": GOOD_VALUES | {"QID10": "hidden"},
        "embedded_data": {"CaseId": "500xx"},
        "started_at": "2026-01-31T10:00:00+01:00",
        "ended_at": "2026-01-31T09:02:30Z",
        "language": "de",
        "contact_id": "CT_1",
    }
    created = client.post(path(survey_id), json=body, headers=alice.headers)
    assert created.status_code == 201, created.text
    response = created.json()
    assert response["id"].startswith("R_") and len(response["id"]) == 17
    assert response["values"] == GOOD_VALUES
    assert response["embedded_data"] == {"CaseId": "500xx", "Channel": "email"}
    assert response["duration_s"] == 150 and response["finished"] is True
    assert response["source"] == "api" and response["language"] == "de"
    assert response["contact_id"] == "CT_1" and response["distribution_id"] is None
    got = client.get(path(survey_id, f"/{response['id']}"), headers=alice.headers)
    assert got.status_code == 200 and got.json() == response


def test_every_problem_is_listed_and_nothing_is_stored(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    values = {
        "QID2": 4,
        "QID3": "99",  # no such choice
        "QID4": ["1", "3"],  # "Nothing" is exclusive
        "QID6": "not-an-email",
        "QID9": {"1": "3"},  # row 2 missing
        "QID99": "?",  # no such question
    }  # QID1 (required) missing
    body = {"values": values, "embedded_data": {"Nope": "x"}}
    error = assert_error(client.post(path(survey_id), json=body, headers=alice.headers), 422)
    assert error["code"] == "invalid_response"
    found = {(p["qid"], p["code"]) for p in error["details"]}
    assert found == {
        (None, "unknown_question"),
        ("QID1", "required"),
        ("QID3", "unknown_choice"),
        ("QID4", "exclusive_choice"),
        ("QID6", "invalid_email"),
        ("QID9", "required"),
        (None, "unknown_embedded_data"),
    }
    assert all(set(p) == {"qid", "code", "message", "field"} for p in error["details"])
    assert "7 problem(s)" in error["message"]
    assert count_responses(container) == 0


MALFORMED = [
    ("not json at all", 400, "malformed_json"),
    ("[[[[" * 50_000, 400, None),
    ('"just a string"', 422, "invalid_response"),
    ('{"values": [1, 2]}', 422, "invalid_response"),
    ('{"values": {}, "finished": "yes"}', 422, "invalid_response"),
    ('{"values": {}, "surprise": 1}', 422, "invalid_response"),
    ('{"values": {}, "started_at": "2026-01-01T00:00:00"}', 422, "invalid_response"),
    ("[]", 422, "empty"),
    ('{"values": {"QID8": "a\\u0000b"}}', 422, "invalid_response"),
]


def test_malformed_bodies_are_clear_4xx(client: TestClient, container: Container) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, name="Malformed")
    headers = alice.headers | {"content-type": "application/json"}
    for body, status, code in MALFORMED:
        error = assert_error(client.post(path(survey_id), content=body, headers=headers), status)
        assert code is None or error["code"] == code, (body[:40], error)
    assert count_responses(container) == 0


def test_draft_and_closed_surveys_refuse_responses(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    body = {"values": GOOD_VALUES}
    draft = make_survey(client, alice, status="draft")
    error = assert_error(client.post(path(draft), json=body, headers=alice.headers), 409)
    assert error["code"] == "survey_not_open" and "not open yet" in error["message"]
    closed = make_survey(client, alice, status="closed")
    error = assert_error(client.post(path(closed), json=body, headers=alice.headers), 409)
    assert error["code"] == "survey_closed"
    assert count_responses(container) == 0


def test_viewers_read_editors_write_outsiders_see_nothing(
    client: TestClient, container: Container
) -> None:
    alice, bob, carol, dave = (
        quick_person(container, f"{n}@example.com") for n in ("alice", "bob", "carol", "dave")
    )
    survey_id = make_survey(client, alice)
    share(client, alice, survey_id, bob, "viewer")
    share(client, alice, survey_id, carol, "editor")
    body = {"values": GOOD_VALUES}
    assert_error(client.post(path(survey_id), json=body, headers=bob.headers), 403, "forbidden")
    created = client.post(path(survey_id), json=body, headers=carol.headers)
    assert created.status_code == 201
    one = path(survey_id, f"/{created.json()['id']}")
    assert client.get(one, headers=bob.headers).status_code == 200
    assert client.get(path(survey_id), headers=bob.headers).json()["items"]
    assert client.get(path(survey_id, "/export"), headers=bob.headers).status_code == 200
    assert_error(client.patch(one, json={"finished": False}, headers=bob.headers), 403)
    assert_error(client.delete(one, headers=bob.headers), 403)
    for request in (
        lambda: client.get(one, headers=dave.headers),
        lambda: client.get(path(survey_id), headers=dave.headers),
        lambda: client.post(path(survey_id), json=body, headers=dave.headers),
        lambda: client.get(path(survey_id, "/export"), headers=dave.headers),
        lambda: client.delete(one, headers=dave.headers),
    ):
        assert_error(request(), 404, "not_found")
    assert client.get(path(survey_id)).status_code == 401
    # a response of another survey is not found through this one
    other = make_survey(client, alice, name="Other")
    assert_error(client.get(path(other, f"/{created.json()['id']}"), headers=alice.headers), 404)


def test_list_filters_and_pages_with_a_cursor(client: TestClient, container: Container) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    ids = []
    for index in range(7):
        body = {"values": GOOD_VALUES | {"QID1": index}, "finished": index % 2 == 0}
        ids.append(client.post(path(survey_id), json=body, headers=alice.headers).json()["id"])
    client.post(path(survey_id), json=[{"values": GOOD_VALUES}], headers=alice.headers)
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3, "source": "api"} | (
            {"cursor": cursor} if cursor else {}
        )
        page = client.get(path(survey_id), params=params, headers=alice.headers).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    unfinished = client.get(path(survey_id), params={"finished": "false"}, headers=alice.headers)
    assert [r["id"] for r in unfinished.json()["items"]] == ids[1::2]
    imported = client.get(path(survey_id), params={"source": "import"}, headers=alice.headers)
    assert len(imported.json()["items"]) == 1
    first = client.get(path(survey_id, f"/{ids[0]}"), headers=alice.headers).json()
    later = client.get(
        path(survey_id), params={"since": first["created_at"], "until": "2999-01-01T00:00:00Z"},
        headers=alice.headers,
    )  # fmt: skip
    assert len(later.json()["items"]) == 8
    naive_cursor = "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgIlJfeCJd"  # a timestamp without a zone
    for params in (
        {"limit": 0}, {"cursor": "junk"}, {"cursor": naive_cursor}, {"source": "fax"},
        {"since": "yesterday"}, {"since": "2026-01-01T00:00:00"}, {"finished": "perhaps"},
    ):  # fmt: skip
        assert_error(client.get(path(survey_id), params=params, headers=alice.headers), 422)


def test_update_merges_checks_and_runs_the_updated_event(
    client: TestClient, container: Container, ledger_watch: LedgerWatch
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    body = {"values": {"QID1": 9, "QID3": "1"}, "finished": False}
    created = client.post(path(survey_id), json=body, headers=alice.headers).json()
    assert created["finished"] is False and created["ended_at"] is None
    one = path(survey_id, f"/{created['id']}")
    refused = client.patch(one, json={"values": {"QID3": "nope"}}, headers=alice.headers)
    assert assert_error(refused, 422)["details"][0]["code"] == "unknown_choice"
    finish = {"values": {"QID9": {"1": "1", "2": "2"}, "QID3": None, "QID1": 5}, "finished": True}
    assert_error(client.patch(one, json=finish, headers=alice.headers), 422)  # QID3 required
    finish["values"]["QID3"] = "2"
    updated = client.patch(one, json=finish | {"embedded_data": {"CaseId": "9"}},
                           headers=alice.headers)  # fmt: skip
    assert updated.status_code == 200, updated.text
    result = updated.json()
    assert result["values"] == {"QID1": 5, "QID3": "2", "QID9": {"1": "1", "2": "2"}}
    assert result["finished"] is True and result["ended_at"] is not None
    assert result["embedded_data"] == {"CaseId": "9", "Channel": "email"}
    events = [(event, r.id, r.finished) for event, facts in ledger_watch.calls for r in facts]
    assert events == [
        ("created", created["id"], False),
        ("updated", created["id"], True),
    ]
    assert_error(client.patch(one, json={"id": "R_x"}, headers=alice.headers), 422)


def test_delete_removes_the_response(client: TestClient, container: Container) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    created = client.post(path(survey_id), json={"values": GOOD_VALUES}, headers=alice.headers)
    one = path(survey_id, f"/{created.json()['id']}")
    assert client.delete(one, headers=alice.headers).status_code == 204
    assert_error(client.get(one, headers=alice.headers), 404)
    assert_error(client.delete(one, headers=alice.headers), 404)
    assert_error(client.get(path(survey_id, "/R_" + "x" * 500), headers=alice.headers), 404)


def test_bulk_array_stores_the_good_and_reports_the_bad_per_item(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, status="closed")  # imports accept past responses
    items = [
        {"values": GOOD_VALUES},
        {"values": {"QID1": 11}},
        "not an object",
        {"values": GOOD_VALUES, "id": "R_keepThisId12345", "finished": True},
        {"values": GOOD_VALUES, "id": "R_keepThisId12345"},
    ]
    reply = client.post(path(survey_id), json=items, headers=alice.headers)
    assert reply.status_code == 207, reply.text
    body = reply.json()
    assert body["stored"] == 2 and body["refused"] == 3
    statuses = [(r["index"], r["status"]) for r in body["results"]]
    assert statuses == [(0, "stored"), (1, "refused"), (2, "refused"), (3, "stored"),
                        (4, "refused")]  # fmt: skip
    assert body["results"][3]["id"] == "R_keepThisId12345"
    assert {p["code"] for p in body["results"][1]["problems"]} == {"out_of_range", "required"}
    assert body["results"][4]["problems"][0]["code"] == "duplicate_id"
    listed = client.get(path(survey_id), headers=alice.headers).json()["items"]
    assert {r["source"] for r in listed} == {"import"} and len(listed) == 2
    all_good = client.post(path(survey_id), json=[{"values": GOOD_VALUES}] * 3,
                           headers=alice.headers)  # fmt: skip
    assert all_good.status_code == 201 and all_good.json()["stored"] == 3


def test_the_ledger_runs_inside_the_transaction_and_its_failure_rolls_back(
    client: TestClient, container: Container, ledger_watch: LedgerWatch
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    actor = Actor(id=alice.id, email=alice.email, is_admin=False)
    failing: list[Any] = []

    def record(uow: Any, facts: Any, event: str) -> None:
        # Inside the transaction that stores the responses: what the ledger writes commits with
        # them or not at all (below). A single submission's row may not be in the table yet:
        # the intake's group commit writes a group's responses with their runs, in one round
        # trip (response_rows.inserts_together).
        assert uow.session.in_transaction()
        for response in facts:
            uow.session.add(AuditEntry(action=f"ledger.{event}", object_type="response",
                                       object_id=response.id, details={}))  # fmt: skip
            for fail in failing:
                fail(response)

    ledger_watch.before = record
    ledger_watch.interested = True  # imports too, though no workflow includes imported ones
    kept = response_service.submit_response(container.db, actor, survey_id, {"values": GOOD_VALUES})
    with container.db.reader() as uow:
        audited = uow.session.scalars(
            select(AuditEntry.object_id).where(AuditEntry.action == "ledger.created")
        ).all()
    assert audited == [kept.id]

    def explode(response: Any) -> None:
        if response.values.get("QID1") == 0:
            raise RuntimeError("the matcher broke")
        if response.values.get("QID1") == 1:
            raise InvalidInput("No workflow can take this response.", code="refused_by_hook")

    failing.append(explode)
    with pytest.raises(RuntimeError):
        response_service.submit_response(
            container.db, actor, survey_id, {"values": GOOD_VALUES | {"QID1": 0}}
        )
    refused = client.post(path(survey_id), json={"values": GOOD_VALUES | {"QID1": 1}},
                          headers=alice.headers)  # fmt: skip
    assert_error(refused, 422, "refused_by_hook")
    # an import whose hook fails for one row keeps the others
    items = [{"values": GOOD_VALUES | {"QID1": n}} for n in (7, 0, 8)]
    bulk = client.post(path(survey_id), json=items, headers=alice.headers).json()
    assert [r["status"] for r in bulk["results"]] == ["stored", "refused", "stored"]
    assert bulk["results"][1]["problems"][0]["code"] == "not_stored"
    assert count_responses(container) == 3
    # the ledger is told of an import batch in one call
    ledger_watch.calls.clear()
    two = [{"values": GOOD_VALUES | {"QID1": n}} for n in (9, 10)]
    assert client.post(path(survey_id), json=two, headers=alice.headers).status_code == 201
    assert ledger_watch.sizes == [2]
    with container.db.reader() as uow:
        assert (
            uow.session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "ledger.created")
            )
            == 5
        )


def test_too_many_bulk_items_are_refused(client: TestClient, container: Container) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    too_many = [{}] * (response_service.MAX_BULK_ITEMS + 1)
    error = assert_error(client.post(path(survey_id), json=too_many, headers=alice.headers), 422)
    assert error["code"] == "too_many_items"
