"""`POST .../responses` answers its busiest request (one JSON object, no id, no key) without
FastAPI's request handling (`web.api.responses.SubmitRoute`). Every request, busy or not, gets
the reply the declared endpoint gives, byte for byte: each is sent twice, the short way and
with the short way turned off."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from cxloop.services.responses import submit
from cxloop.web.api import responses as responses_api
from cxloop.web.app import create_app
from tests.integration.survey_helpers import GOOD_VALUES, make_survey, quick_person, share

NOW = datetime(2026, 12, 6, 5, 30, 0, 123456, tzinfo=UTC)
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def people(client: TestClient, container: Container, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(submit, "utcnow", lambda: NOW)  # the same times in both replies
    alice = quick_person(container, "alice@example.com")
    viewer = quick_person(container, "vera@example.com")
    survey_id = make_survey(client, alice)
    share(client, alice, survey_id, viewer, "viewer")
    return alice, viewer, survey_id


def requests_of(alice: Any, viewer: Any, survey_id: str) -> list[tuple[str, dict, bytes]]:
    """(path, headers, body) of requests of every kind: busy ones and the rest."""
    path = f"/api/v1/surveys/{survey_id}/responses"
    good = json.dumps({"values": GOOD_VALUES, "embedded_data": {"CaseId": "5003"}}).encode()
    with_null_id = json.dumps({"values": GOOD_VALUES, "id": None}).encode()
    auth = alice.headers
    return [
        (path, auth | JSON, good),
        (path, auth | JSON, b'{"values": {"QID1": 11}}'),  # refused by the survey
        (path, auth | JSON, b'{"values": {"QID404": 1}}'),
        (path, auth | JSON, with_null_id),  # a null id is no id
        (path, auth | JSON, b'"not an object"'),
        (path, auth | JSON, b"null"),
        (path, auth | JSON, b"{"),  # not JSON
        (path, auth | JSON, b"\xff\xfe"),  # not even UTF-8
        (path, auth | JSON, b'{"values": ' * 50_000),  # nested too deep to parse
        (path, auth | JSON, b""),
        (path, JSON, good),  # no token
        (path, {"Authorization": "Bearer cxl_nosuchtoken"} | JSON, good),
        (path, {"Authorization": "Basic abc"} | JSON, good),
        (path, JSON, b"{"),  # no token and not JSON: the body is looked at first
        (path, viewer.headers | JSON, good),  # may read, not write
        ("/api/v1/surveys/S_nosuchsurvey00/responses", auth | JSON, good),
        (path, auth | {"Content-Type": "application/json; charset=utf-8"}, good),
        (path, auth | {"Content-Type": "text/plain"}, good),
        (path, auth, good),  # no Content-Type
        (path, auth | JSON | {"Idempotency-Key": ""}, good),
        (path, auth | JSON | {"Idempotency-Key": "x" * 300}, good),
        (path, auth | JSON | {"Idempotency-Key": "k1"}, b"[]"),
        (path, auth | JSON, b"[]"),
        (path, auth | JSON, b'{"values": {"QID1": 9}, "id": "not a response id"}'),
    ]


def answer(client: TestClient, path: str, headers: dict, body: bytes) -> tuple[int, dict, bytes]:
    reply = client.post(path, content=body, headers=headers)
    kept = {k: v for k, v in reply.headers.items() if k != "x-request-id"}
    content = reply.content
    if reply.status_code == 201:  # a new response id each time: the rest must be the same
        content = content.replace(reply.json()["id"].encode(), b"R_THEID")
        kept.pop("content-length")
    return reply.status_code, kept, content


def test_every_request_gets_the_declared_endpoints_reply_byte_for_byte(
    client: TestClient, people: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, viewer, survey_id = people
    short: list[bool] = []
    plain_submission = responses_api._plain_submission

    async def watched(request: Any) -> Any:
        payload = await plain_submission(request)
        short.append(payload is not None)
        return payload

    monkeypatch.setattr(responses_api, "_plain_submission", watched)
    requests = requests_of(alice, viewer, survey_id)
    fast = [answer(client, *request) for request in requests]
    assert short[:4] == [True, True, True, True] and sum(short) == 9, short

    async def never(request: Any) -> None:
        return None

    monkeypatch.setattr(responses_api, "_plain_submission", never)
    declared = [answer(client, *request) for request in requests]
    for request, one, other in zip(requests, fast, declared, strict=True):
        assert one == other, request
    statuses = [status for status, _, _ in fast]
    assert statuses == [201, 422, 422, 201, 422, 422, 400, 400, 400, 422, 401, 401, 401, 400,
                        403, 404, 201, 422, 422, 422, 422, 422, 422, 422]  # fmt: skip


def test_a_body_over_the_limit_is_refused_on_the_short_way_too(
    container: Container, people: Any
) -> None:
    alice, _, survey_id = people
    container.settings.max_request_bytes = 64
    body = b'{"values": {"QID1": 9, "QID2": "' + b"x" * 100 + b'"}}'
    path = f"/api/v1/surveys/{survey_id}/responses"
    with TestClient(create_app(container), raise_server_exceptions=False) as limited:
        # chunked: no Content-Length, so the limit is found while the body is read
        reply = limited.post(path, content=iter([body]), headers=alice.headers | JSON)
    assert reply.status_code == 413, reply.text
    assert reply.json()["error"]["code"] == "body_too_large"
