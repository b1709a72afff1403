"""The control API: info, reset, seed, records, tokens, settings, and its errors."""

from __future__ import annotations

from typing import Any

import pytest

from sfemu.testing import InProcessEmulator

from .conftest import Api


def test_info_lists_orgs_users_and_the_connected_app(client: Any) -> None:
    info = client.get("/__emulator__/info").json()
    assert info["base_url"] == "http://sfemu.test"
    orgs = {org["alias"]: org for org in info["orgs"]}
    assert orgs["acme"]["id"] == "00D5g00000SfEmUEAV"
    assert orgs["acme"]["login_url"] == "http://sfemu.test"
    assert orgs["acme-sandbox"]["login_url"] == "http://sfemu.test/sandbox"
    assert orgs["acme"]["my_domain_url"] == "http://sfemu.test/domain/acme"
    assert {u["username"] for u in orgs["acme"]["users"]} == {
        "admin@example.com",
        "integration@example.com",
    }
    app = info["connected_apps"][0]
    assert app["name"] == "cxloop" and app["client_id"] and app["client_secret"]
    assert "http://127.0.0.1:8000/oauth/salesforce/callback" in app["callback_urls"]
    assert "62.0" in info["api_versions"]


def test_seed_with_references_then_records(client: Any) -> None:
    response = client.post(
        "/__emulator__/seed",
        json={
            "org": "acme",
            "records": [
                {"attributes": {"type": "Account", "referenceId": "globex"}, "Name": "Globex"},
                {
                    "attributes": {"type": "Contact"},
                    "LastName": "Simpson",
                    "AccountId": "@{globex}",
                },
            ],
        },
    )
    assert response.status_code == 201
    body = response.json()
    account_id = body["refs"]["globex"]
    assert body["records"][1]["type"] == "Contact"
    listed = client.get(
        "/__emulator__/records", params={"org": "acme", "sobject": "Contact"}
    ).json()
    assert any(
        r["LastName"] == "Simpson" and r["AccountId"] == account_id for r in listed["records"]
    )
    one = client.get(f"/__emulator__/records/acme/{account_id}").json()
    assert one["Name"] == "Globex"


def test_seed_is_all_or_nothing_with_a_reason(client: Any) -> None:
    response = client.post(
        "/__emulator__/seed",
        json={
            "org": "acme",
            "records": [
                {"attributes": {"type": "Account"}, "Name": "Fine"},
                {"attributes": {"type": "Contact"}, "FirstName": "No last name"},
            ],
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "REQUIRED_FIELD_MISSING"
    assert "records[1]" in response.json()["detail"]
    names = [
        r["Name"]
        for r in client.get("/__emulator__/records", params={"sobject": "Account"}).json()[
            "records"
        ]
    ]
    assert "Fine" not in names
    bad_ref = client.post(
        "/__emulator__/seed",
        json={
            "records": [
                {"attributes": {"type": "Contact"}, "LastName": "x", "AccountId": "@{missing}"}
            ]
        },
    )
    assert bad_ref.status_code == 400


def test_edit_a_record_as_the_administrator(client: Any, admin: Api) -> None:
    case_id = admin.create("Case", {"Subject": "x"})
    response = client.patch(f"/__emulator__/records/acme/{case_id}", json={"Status": "Closed"})
    assert response.status_code == 200 and response.json()["IsClosed"] is True
    bad = client.patch(
        f"/__emulator__/records/acme/{case_id}", json={"Status": None, "Subject": "y" * 300}
    )
    assert bad.status_code == 400 and bad.json()["error"] == "STRING_TOO_LONG"
    assert client.delete(f"/__emulator__/records/acme/{case_id}").status_code == 204
    assert client.get(f"/__emulator__/records/acme/{case_id}").json()["IsDeleted"] is True
    assert client.get("/__emulator__/records/acme/500000000000001AAA").status_code == 404


def test_reset_restores_the_org_file_state(emu: InProcessEmulator, client: Any, admin: Api) -> None:
    admin.create("Account", {"Name": "Temporary"})
    client.post("/__emulator__/faults", json={"error": "503"})
    client.patch("/__emulator__/orgs/acme", json={"session_timeout_s": 5})
    assert client.post("/__emulator__/reset", json={}).json()["reset"] == [
        "00D5g00000SfEmUEAV",
        "00D5g00000SfEmSEAV",
    ]
    assert client.get("/__emulator__/faults").json()["faults"] == []
    assert client.get("/__emulator__/orgs/acme").json()["session_timeout_s"] == 7200
    assert admin.get("/limits").status_code == 401  # tokens are gone too
    fresh = Api(client, emu.token())
    names = [r["Name"] for r in fresh.query("SELECT Name FROM Account").json()["records"]]
    assert names == ["Acme Corp"]


def test_reset_of_one_org_leaves_the_other(emu: InProcessEmulator, client: Any) -> None:
    sandbox = Api(client, emu.token("admin@example.com.dev"))
    production = Api(client, emu.token("admin@example.com"))
    sandbox.create("Account", {"Name": "Sandbox only"})
    production.create("Account", {"Name": "Production only"})
    client.post("/__emulator__/reset", json={"org": "acme-sandbox"})
    assert sandbox.get("/limits").status_code == 401
    assert (
        production.query("SELECT COUNT() FROM Account WHERE Name = 'Production only'").json()[
            "totalSize"
        ]
        == 1
    )
    sandbox = Api(client, emu.token("admin@example.com.dev"))
    assert sandbox.query("SELECT COUNT() FROM Account").json()["totalSize"] == 0


def test_issue_a_token_without_oauth(client: Any) -> None:
    response = client.post(
        "/__emulator__/tokens", json={"username": "integration@example.com", "refresh_token": True}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["refresh_token"] and body["instance_url"] == "http://sfemu.test"
    assert Api(client, body["access_token"]).get("/limits").status_code == 200
    assert (
        client.post("/__emulator__/tokens", json={"username": "ghost@example.com"}).status_code
        == 404
    )


def test_org_settings_are_validated(client: Any) -> None:
    for body in (
        {"session_timeout_s": 0},
        {"daily_api_limit": -1},
        {"permitted_users": "some"},
        {"refresh_token_policy": {"kind": "forever"}},
        {"client_credentials_user": "ghost@example.com"},
        {"admin_approved_profiles": ["Nope"]},
        {"colour": "blue"},
    ):
        response = client.patch("/__emulator__/orgs/acme", json=body)
        assert response.status_code == 400, body
        assert response.json()["detail"]
    assert client.patch("/__emulator__/orgs/nope", json={}).status_code == 404
    ok = client.patch("/__emulator__/orgs/acme", json={"permitted_users": "admin_approved"}).json()
    assert ok["connected_app_policies"]["cxloop"]["permitted_users"] == "admin_approved"


def test_callback_urls_can_be_added_at_runtime(client: Any) -> None:
    response = client.patch(
        "/__emulator__/apps/cxloop", json={"add_callback_urls": ["http://127.0.0.1:5555/cb"]}
    )
    assert "http://127.0.0.1:5555/cb" in response.json()["callback_urls"]
    assert client.patch("/__emulator__/apps/nope", json={}).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/__emulator__/faults", b"not json"),
        ("POST", "/__emulator__/faults", b"[1, 2]"),
        ("POST", "/__emulator__/seed", b""),
        ("POST", "/__emulator__/seed", b'{"records": "x"}'),
        ("GET", "/__emulator__/records?sobject=Nope", None),
        ("GET", "/__emulator__/records", None),
        ("POST", "/__emulator__/reset", b'{"org": "nope"}'),
        ("PATCH", "/__emulator__/settings", b'{"auto_login": "ghost@example.com"}'),
        ("POST", "/__emulator__/outbound/rules", b'{"name": "x"}'),
        ("DELETE", "/__emulator__/faults/fault-999", None),
        ("PATCH", "/__emulator__/users/ghost@example.com", b"{}"),
    ],
)
def test_control_errors_are_json_with_a_reason(
    client: Any, method: str, path: str, body: bytes | None
) -> None:
    response = client.request(method, path, content=body)
    assert response.status_code in (400, 404)
    payload = response.json()
    assert payload["error"] and payload["detail"]


def test_api_usage_per_org(client: Any, admin: Api) -> None:
    admin.get("/limits")
    usage = client.get("/__emulator__/api_usage").json()
    assert usage["acme"]["used"] == 1 and usage["acme-sandbox"]["used"] == 0
