"""Bad input gets a 4xx with the error shape and a message a person understands, never a 500."""

import pytest
from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from cxloop.services import surveys as survey_service
from cxloop.services.access import Actor
from tests.conftest import Person
from tests.integration.test_auth_api import assert_error


def test_malformed_json_is_400(client: TestClient, alice: Person) -> None:
    response = client.post(
        "/api/v1/surveys",
        content=b'{"name": "x",',
        headers=alice.headers | {"content-type": "application/json"},
    )
    assert_error(response, 400, "malformed_json")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 42}, "name"),
        ({"name": ["a"]}, "name"),
        ({"name": None}, "name"),
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "ok", "colour": "blue"}, "colour"),
        ({"name": "ok", "language": 7}, "language"),
    ],
)
def test_wrong_types_missing_and_unknown_fields_are_422_naming_the_field(
    client: TestClient, alice: Person, body: dict, field: str
) -> None:
    error = assert_error(client.post("/api/v1/surveys", json=body, headers=alice.headers), 422)
    assert error["code"] == "invalid_input"
    assert any(d["field"] == field for d in error["details"]), error
    assert field in error["message"]


def test_every_problem_is_listed_at_once(client: TestClient, alice: Person) -> None:
    body = {"name": 1, "description": 2, "extra": 3}
    error = assert_error(client.post("/api/v1/surveys", json=body, headers=alice.headers), 422)
    assert {d["field"] for d in error["details"]} == {"name", "description", "extra"}


def test_nothing_is_stored_when_the_request_is_refused(
    client: TestClient, container: Container, alice: Person
) -> None:
    client.post("/api/v1/surveys", json={"name": "ok", "bogus": 1}, headers=alice.headers)
    actor = Actor(id=alice.id, email=alice.email, is_admin=False)
    assert survey_service.list_surveys(container.db, actor).items == []


def test_oversized_body_is_413(client: TestClient, container: Container, alice: Person) -> None:
    limit = container.settings.max_request_bytes
    big = b'{"name": "' + b"x" * (limit + 10) + b'"}'
    response = client.post(
        "/api/v1/surveys", content=big, headers=alice.headers | {"content-type": "application/json"}
    )
    assert_error(response, 413, "body_too_large")


def test_oversized_body_without_content_length_is_413(client: TestClient, alice: Person) -> None:
    def chunks():
        for _ in range(12):
            yield b"x" * (1024 * 1024)

    response = client.post(
        "/api/v1/surveys",
        content=chunks(),
        headers=alice.headers | {"content-type": "application/json"},
    )
    assert_error(response, 413, "body_too_large")


def test_deeply_nested_json_is_a_clear_4xx(client: TestClient, alice: Person) -> None:
    nested = b"[" * 100_000 + b"]" * 100_000
    response = client.post(
        "/api/v1/surveys",
        content=nested,
        headers=alice.headers | {"content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500
    assert "error" in response.json()


@pytest.mark.parametrize(
    "path", ["/api/v1/surveys/nope", "/api/v1/surveys/SV_" + "x" * 500, "/api/v1/surveys/%C3%A9"]
)
def test_bad_ids_are_404(client: TestClient, alice: Person, path: str) -> None:
    assert_error(client.get(path, headers=alice.headers), 404, "not_found")


def test_bad_query_parameters_are_422(client: TestClient, alice: Person) -> None:
    for params in ({"limit": 0}, {"limit": "many"}, {"status": "deleted"}, {"cursor": "garbage"}):
        response = client.get("/api/v1/surveys", params=params, headers=alice.headers)
        assert_error(response, 422)


def test_bad_token_id_is_422(client: TestClient, alice: Person) -> None:
    assert_error(client.delete("/api/v1/tokens/abc", headers=alice.headers), 422)
    assert_error(client.delete("/api/v1/tokens/999999", headers=alice.headers), 404)


def test_duplicate_email_is_409(client: TestClient, admin: Person) -> None:
    body = {"email": "Alice@Example.com", "password": "a long enough passphrase"}
    assert client.post("/api/v1/users", json=body, headers=admin.headers).status_code == 201
    body["email"] = "alice@example.com"
    assert_error(client.post("/api/v1/users", json=body, headers=admin.headers), 409, "email_taken")


@pytest.mark.parametrize("password", ["", "short", "password123", "aaaaaaaaaaaaaaa"])
def test_weak_or_empty_password_is_422(client: TestClient, admin: Person, password: str) -> None:
    body = {"email": "new@example.com", "password": password}
    error = assert_error(client.post("/api/v1/users", json=body, headers=admin.headers), 422)
    assert error["code"] == "weak_password"


@pytest.mark.parametrize("email", ["", "not-an-email", "a@", "@b.com", "a b@c.com"])
def test_bad_email_is_422(client: TestClient, admin: Person, email: str) -> None:
    body = {"email": email, "password": "a long enough passphrase"}
    assert_error(client.post("/api/v1/users", json=body, headers=admin.headers), 422, "bad_email")


def test_unknown_route_and_method_use_the_error_shape(client: TestClient, alice: Person) -> None:
    assert_error(client.get("/api/v1/nothing-here", headers=alice.headers), 404)
    assert_error(client.put("/api/v1/surveys", headers=alice.headers), 405)


def test_no_reply_carries_a_stack_trace(client: TestClient, alice: Person) -> None:
    replies = [
        client.post("/api/v1/surveys", content=b"\xff\xfe", headers=alice.headers),
        client.post(
            "/api/v1/surveys",
            content=b"null",
            headers=alice.headers | {"content-type": "application/json"},
        ),
        client.patch(
            "/api/v1/surveys/x",
            content=b"[]",
            headers=alice.headers | {"content-type": "application/json"},
        ),
    ]
    for reply in replies:
        assert 400 <= reply.status_code < 500, reply.text
        assert "Traceback" not in reply.text


def test_nul_characters_are_refused_before_any_database_sees_them(
    client: TestClient, alice: Person
) -> None:
    error = assert_error(
        client.post("/api/v1/surveys", json={"name": "a\x00b"}, headers=alice.headers), 422
    )
    assert "NUL" in error["message"]
    assert_error(client.get("/api/v1/surveys", params={"q": "a\x00"}, headers=alice.headers), 400)
