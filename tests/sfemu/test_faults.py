"""Fault injection through the control API: errors, fractions, latency, dropped connections,
revoked tokens, API access off, the daily allocation."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from sfemu.httputil import ConnectionDropped
from sfemu.testing import run_in_thread

from .conftest import Api, error_of


def add_fault(client: Any, **spec: Any) -> dict[str, Any]:
    response = client.post("/__emulator__/faults", json=spec)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        ("UNABLE_TO_LOCK_ROW", 400, "UNABLE_TO_LOCK_ROW"),
        ("503", 503, "SERVER_UNAVAILABLE"),
        ("SERVER_UNAVAILABLE", 503, "SERVER_UNAVAILABLE"),
        ("REQUEST_LIMIT_EXCEEDED", 403, "REQUEST_LIMIT_EXCEEDED"),
        ("INVALID_SESSION_ID", 401, "INVALID_SESSION_ID"),
        ("500", 500, "UNKNOWN_EXCEPTION"),
    ],
)
def test_next_n_calls_fail_with_the_chosen_error(
    client: Any, admin: Api, error: str, status: int, code: str
) -> None:
    add_fault(client, org="acme", error=error, count=2)
    for _ in range(2):
        response = admin.post("/sobjects/Account", json={"Name": "Nope"})
        assert response.status_code == status
        assert error_of(response)["errorCode"] == code
    assert admin.post("/sobjects/Account", json={"Name": "Yes"}).status_code == 201
    assert admin.query("SELECT COUNT() FROM Account WHERE Name = 'Nope'").json()["totalSize"] == 0
    assert client.get("/__emulator__/faults").json()["faults"] == []


def test_lock_errors_on_collections_fail_each_record(client: Any, admin: Api) -> None:
    add_fault(client, org="acme", error="UNABLE_TO_LOCK_ROW", count=1, path="/composite/sobjects")
    response = admin.post(
        "/composite/sobjects",
        json={
            "records": [
                {"attributes": {"type": "Contact"}, "LastName": "A"},
                {"attributes": {"type": "Contact"}, "LastName": "B"},
            ]
        },
    )
    assert response.status_code == 200
    results = response.json()
    assert [r["errors"][0]["statusCode"] for r in results] == ["UNABLE_TO_LOCK_ROW"] * 2
    assert (
        admin.query("SELECT COUNT() FROM Contact WHERE LastName IN ('A', 'B')").json()["totalSize"]
        == 0
    )


def test_faults_only_hit_their_org_method_and_path(client: Any, admin: Api) -> None:
    add_fault(client, org="acme-sandbox", error="503", count=5)
    assert admin.get("/limits").status_code == 200
    add_fault(client, org="acme", error="503", count=1, method="POST", path="/sobjects/Contact")
    assert admin.get("/limits").status_code == 200
    assert admin.post("/sobjects/Account", json={"Name": "ok"}).status_code == 201
    assert admin.post("/sobjects/Contact", json={"LastName": "x"}).status_code == 503


def test_faults_can_target_one_user(client: Any, admin: Api, integration: Api) -> None:
    add_fault(client, user="integration@example.com", error="UNABLE_TO_LOCK_ROW", count=1)
    assert admin.get("/limits").status_code == 200
    assert integration.get("/limits").status_code == 400


def test_a_fraction_of_calls_fail(client: Any, admin: Api) -> None:
    add_fault(client, org="acme", error="503", fraction=0.5, seed=7)
    statuses = [admin.get("/limits").status_code for _ in range(100)]
    failures = statuses.count(503)
    assert 25 < failures < 75
    assert set(statuses) == {200, 503}
    client.delete("/__emulator__/faults")
    assert all(admin.get("/limits").status_code == 200 for _ in range(10))


def test_latency_is_added(client: Any, admin: Api) -> None:
    fault = add_fault(client, org="acme", latency_ms=150)
    started = time.perf_counter()
    assert admin.get("/limits").status_code == 200
    assert time.perf_counter() - started >= 0.15
    assert client.delete(f"/__emulator__/faults/{fault['id']}").status_code == 204
    started = time.perf_counter()
    admin.get("/limits")
    assert time.perf_counter() - started < 0.15


def test_commit_then_drop_in_process_raises_after_committing(client: Any, admin: Api) -> None:
    add_fault(client, org="acme", mode="commit_then_drop", count=1)
    with pytest.raises(ConnectionDropped):
        admin.post("/sobjects/Account", json={"Name": "Ambiguous"})
    assert (
        admin.query("SELECT COUNT() FROM Account WHERE Name = 'Ambiguous'").json()["totalSize"] == 1
    )
    assert isinstance(ConnectionDropped("x"), httpx.TransportError)


def test_dropped_connections_over_a_real_server() -> None:
    with run_in_thread() as sf, sf.client() as api:
        sf.control.post("/faults", json={"org": "acme", "mode": "commit_then_drop", "count": 1})
        with pytest.raises(httpx.RemoteProtocolError):
            api.post("/services/data/v62.0/sobjects/Account", json={"Name": "Committed"})
        sf.control.post("/faults", json={"org": "acme", "mode": "drop", "count": 1})
        with pytest.raises(httpx.RemoteProtocolError):
            api.post("/services/data/v62.0/sobjects/Account", json={"Name": "Never"})
        found = api.get(
            "/services/data/v62.0/query",
            params={"q": "SELECT Name FROM Account WHERE Name IN ('Committed', 'Never')"},
        ).json()
        assert [r["Name"] for r in found["records"]] == ["Committed"]


def test_oauth_faults(client: Any) -> None:
    add_fault(client, target="oauth", error="503", count=1)
    response = client.post(
        "/services/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": "x"}
    )
    assert response.status_code == 503
    assert (
        client.post(
            "/services/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": "x"}
        ).status_code
        == 400
    )


def test_revoking_a_users_tokens(client: Any, emu: Any) -> None:
    token = emu.token("integration@example.com")
    api = Api(client, token)
    assert api.get("/limits").status_code == 200
    response = client.post("/__emulator__/users/integration@example.com/revoke_tokens")
    assert response.json() == {"username": "integration@example.com", "revoked": 1}
    assert error_of(api.get("/limits"))["errorCode"] == "INVALID_SESSION_ID"


def test_turning_a_users_api_access_off_and_on(client: Any, integration: Api) -> None:
    client.patch("/__emulator__/users/integration@example.com", json={"api_enabled": False})
    response = integration.get("/limits")
    assert (
        response.status_code == 403 and error_of(response)["errorCode"] == "API_CURRENTLY_DISABLED"
    )
    client.patch("/__emulator__/users/integration@example.com", json={"api_enabled": True})
    assert integration.get("/limits").status_code == 200


def test_daily_allocation_runs_out(client: Any, admin: Api) -> None:
    client.patch("/__emulator__/orgs/acme", json={"daily_api_limit": 3})
    assert [admin.get("/limits").headers["sforce-limit-info"] for _ in range(3)] == [
        "api-usage=1/3",
        "api-usage=2/3",
        "api-usage=3/3",
    ]
    refused = admin.get("/limits")
    assert refused.status_code == 403
    assert error_of(refused) == {
        "message": "TotalRequests Limit exceeded.",
        "errorCode": "REQUEST_LIMIT_EXCEEDED",
    }
    assert refused.headers["sforce-limit-info"] == "api-usage=3/3"
    assert client.get("/services/data/").status_code == 200  # the versions list is never counted
    usage = client.get("/__emulator__/api_usage").json()
    assert usage["acme"] == {"org_id": "00D5g00000SfEmUEAV", "used": 3, "allocation": 3}
    client.delete("/__emulator__/api_usage", params={"org": "acme"})
    assert admin.get("/limits").status_code == 200


@pytest.mark.parametrize(
    "spec",
    [
        {"error": "TEAPOT", "count": 1},
        {"count": 1},
        {"error": "503", "count": 0},
        {"error": "503", "fraction": 1.5},
        {"error": "503", "count": 1, "fraction": 0.5},
        {"error": "503", "target": "everything"},
        {"mode": "duplicate"},
        {"error": "503", "colour": "red"},
        {"latency_ms": -5},
    ],
)
def test_bad_fault_specs_are_refused_with_a_reason(client: Any, spec: dict[str, Any]) -> None:
    response = client.post("/__emulator__/faults", json=spec)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_fault" and response.json()["detail"]


def test_unknown_org_or_user_in_a_fault(client: Any) -> None:
    assert (
        client.post("/__emulator__/faults", json={"org": "nope", "error": "503"}).status_code == 404
    )
    assert (
        client.post(
            "/__emulator__/faults", json={"user": "ghost@example.com", "error": "503"}
        ).status_code
        == 404
    )


def test_a_refresh_that_commits_then_drops_leaves_the_client_without_its_rotated_token(
    client: Any,
) -> None:
    client.patch("/__emulator__/orgs/acme", json={"rotate_refresh_tokens": True})
    token = client.post(
        "/__emulator__/tokens", json={"username": "admin@example.com", "refresh_token": True}
    ).json()
    app = client.get("/__emulator__/info").json()["connected_apps"][0]
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token["refresh_token"],
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
    }
    add_fault(client, target="oauth", mode="commit_then_drop", count=1)
    with pytest.raises(ConnectionDropped):
        client.post("/services/oauth2/token", data=form)
    again = client.post("/services/oauth2/token", data=form)
    assert again.json() == {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    }
