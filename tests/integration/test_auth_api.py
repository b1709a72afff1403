"""Every /api/v1 endpoint needs a token: no or bad credentials → 401, with one error shape."""

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cxloop.bootstrap import Container, build_container
from cxloop.services import users
from cxloop.web.app import create_app
from tests.conftest import Person
from tests.integration.survey_helpers import make_survey

PROTECTED = [
    ("GET", "/api/v1/surveys"),
    ("POST", "/api/v1/surveys"),
    ("GET", "/api/v1/surveys/SV_x"),
    ("PATCH", "/api/v1/surveys/SV_x"),
    ("DELETE", "/api/v1/surveys/SV_x"),
    ("POST", "/api/v1/surveys/SV_x/collaborators"),
    ("POST", "/api/v1/surveys/SV_x/transfer"),
    ("GET", "/api/v1/users/me"),
    ("GET", "/api/v1/users"),
    ("GET", "/api/v1/tokens"),
    ("GET", "/api/v1/audit"),
]


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_api_endpoint_refuses_a_request_without_token(
    client: TestClient, method: str, path: str
) -> None:
    error = assert_error(client.request(method, path, json={}), 401, "unauthenticated")
    assert "Bearer" in error["message"]


def test_openapi_marks_no_api_route_as_public(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    api_paths = [p for p in paths if p.startswith("/api/v1")]
    assert api_paths
    for path in api_paths:
        for method in paths[path]:
            response = client.request(method.upper(), path.replace("{", "").replace("}", ""))
            assert response.status_code == 401, f"{method} {path} answered without a token"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Bearer cxl_thisdoesnotexist", "bad_token"),
        ("Bearer not-even-ours", "bad_token"),
        ("Basic YWxpY2U6cGFzcw==", "bad_token"),
        ("Bearer ", "bad_token"),
    ],
)
def test_bad_credentials_get_401(client: TestClient, header: str, code: str) -> None:
    response = client.get("/api/v1/users/me", headers={"Authorization": header})
    assert_error(response, 401, code)
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_valid_token_identifies_its_user(client: TestClient, alice: Person) -> None:
    response = client.get("/api/v1/users/me", headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["email"] == "alice@example.com"
    assert "password_hash" not in response.json()


def test_revoked_token_is_refused(client: TestClient, container: Container, alice: Person) -> None:
    token_id = users.list_tokens(container.db, alice.email)[0].id
    users.revoke_token(container.db, token_id)
    assert_error(client.get("/api/v1/users/me", headers=alice.headers), 401, "token_revoked")


@pytest.fixture
def other_client(tmp_path: Path, container: Container) -> Iterator[TestClient]:
    """A second instance of the app (its own container, as another process has) on the same
    database."""
    settings = container.settings.model_copy(update={"data_dir": tmp_path / "other"})
    other = build_container(settings)
    with TestClient(create_app(other), raise_server_exceptions=False) as test_client:
        yield test_client
    other.close()


@pytest.mark.parametrize("where", ["revoked elsewhere", "revoked here"])
def test_a_revoked_token_is_refused_at_once_by_every_instance(
    client: TestClient, other_client: TestClient, alice: Person, where: str
) -> None:
    created = client.post("/api/v1/tokens", json={"name": "ci"}, headers=alice.headers).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    # Both instances have just accepted the token (and remember it for a few seconds).
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200
    assert other_client.get("/api/v1/users/me", headers=headers).status_code == 200
    revoker = client if where == "revoked here" else other_client
    revoked = revoker.delete(f"/api/v1/tokens/{created['id']}", headers=alice.headers)
    assert revoked.status_code == 204
    for instance in (client, other_client):
        assert_error(instance.get("/api/v1/users/me", headers=headers), 401, "token_revoked")
    # Other tokens, remembered before the revocation, still work (looked up again).
    assert other_client.get("/api/v1/users/me", headers=alice.headers).status_code == 200


@pytest.mark.parametrize("change", ["token revoked", "user deactivated", "another revoked"])
def test_the_intakes_group_commit_checks_a_remembered_token_against_revocations(
    client: TestClient, other_client: TestClient, container: Container, alice: Person, change: str
) -> None:
    """A plain `POST .../responses` does not read the revocation generation: the intake's
    transaction compares it with the one the token was remembered under. A revoked token or
    a deactivated user stores nothing, from the first request after the change; a token
    remembered before someone else's revocation is looked up again and stores once."""
    survey_id = make_survey(client, alice, {"format_version": 1, "questions": []})
    path = f"/api/v1/surveys/{survey_id}/responses"
    created = client.post("/api/v1/tokens", json={"name": "ci"}, headers=alice.headers).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert client.post(path, json={}, headers=headers).status_code == 201  # remembered
    if change == "token revoked":
        revoked = other_client.delete(f"/api/v1/tokens/{created['id']}", headers=alice.headers)
        assert revoked.status_code == 204
    elif change == "user deactivated":
        users.set_active(container.db, alice.email, False)
    else:
        other = client.post("/api/v1/tokens", json={"name": "other"}, headers=alice.headers)
        revoked = other_client.delete(f"/api/v1/tokens/{other.json()['id']}", headers=alice.headers)
        assert revoked.status_code == 204
    refused = {"token revoked": "token_revoked", "user deactivated": "user_inactive"}
    reply = client.post(path, json={}, headers=headers)
    if change in refused:
        assert_error(reply, 401, refused[change])
        stored = 1
    else:
        assert reply.status_code == 201, reply.text
        stored = 2
    users.set_active(container.db, alice.email, True)
    listed = client.get(path, headers=alice.headers).json()
    assert len(listed["items"]) == stored


def test_a_token_revoked_by_another_process_is_refused_on_the_next_request(
    client: TestClient, container: Container, alice: Person
) -> None:
    created = client.post("/api/v1/tokens", json={"name": "ci"}, headers=alice.headers).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200  # remembered
    env = os.environ | {
        "CXLOOP_DATA_DIR": str(container.settings.data_dir),
        "CXLOOP_DATABASE_URL": container.settings.effective_database_url,
        "CXLOOP_QUEUE_URL": container.settings.effective_queue_url,
    }
    subprocess.run(
        [sys.executable, "-m", "cxloop", "tokens", "revoke", str(created["id"])],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert_error(client.get("/api/v1/users/me", headers=headers), 401, "token_revoked")


def test_a_deactivated_users_token_is_refused_at_once_by_every_instance(
    client: TestClient, other_client: TestClient, container: Container, admin: Person,
    alice: Person,
) -> None:  # fmt: skip
    assert other_client.get("/api/v1/users/me", headers=alice.headers).status_code == 200
    users.set_active(container.db, alice.email, False)
    assert_error(other_client.get("/api/v1/users/me", headers=alice.headers), 401, "user_inactive")
    users.set_active(container.db, alice.email, True)
    assert other_client.get("/api/v1/users/me", headers=alice.headers).status_code == 200


def test_expired_token_is_refused(client: TestClient, container: Container, alice: Person) -> None:
    issued = users.create_token(container.db, alice.email, "short", expires_in=timedelta(0))
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert_error(client.get("/api/v1/users/me", headers=headers), 401, "token_expired")


def test_tokens_api_creates_shows_once_and_revokes(client: TestClient, alice: Person) -> None:
    created = client.post("/api/v1/tokens", json={"name": "ci"}, headers=alice.headers)
    assert created.status_code == 201
    token = created.json()["token"]
    listed = client.get("/api/v1/tokens", headers=alice.headers).json()
    assert {t["name"] for t in listed} == {"test", "ci"}
    assert all("token" not in t and "token_hash" not in t for t in listed)
    new_headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/users/me", headers=new_headers).status_code == 200
    revoked = client.delete(f"/api/v1/tokens/{created.json()['id']}", headers=alice.headers)
    assert revoked.status_code == 204
    assert_error(client.get("/api/v1/users/me", headers=new_headers), 401, "token_revoked")


def test_nobody_revokes_someone_elses_token(
    client: TestClient, container: Container, alice: Person, bob: Person
) -> None:
    bobs_token = users.list_tokens(container.db, bob.email)[0].id
    assert_error(client.delete(f"/api/v1/tokens/{bobs_token}", headers=alice.headers), 404)
    assert client.get("/api/v1/users/me", headers=bob.headers).status_code == 200


def test_user_administration_is_for_admins(
    client: TestClient, admin: Person, alice: Person
) -> None:
    new_user = {"email": "dave@example.com", "password": "a long enough passphrase"}
    assert_error(client.get("/api/v1/users", headers=alice.headers), 403, "forbidden")
    assert_error(client.post("/api/v1/users", json=new_user, headers=alice.headers), 403)
    assert_error(client.get("/api/v1/audit", headers=alice.headers), 403)
    created = client.post("/api/v1/users", json=new_user, headers=admin.headers)
    assert created.status_code == 201 and created.json()["is_admin"] is False
    emails = {u["email"] for u in client.get("/api/v1/users", headers=admin.headers).json()}
    assert emails == {"admin@example.com", "alice@example.com", "dave@example.com"}
    audit = client.get("/api/v1/audit", headers=admin.headers).json()["items"]
    assert any(e["action"] == "user.create" and e["details"]["email"] == "dave@example.com"
               for e in audit)  # fmt: skip
