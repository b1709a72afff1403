"""Linking Salesforce accounts over real HTTP against the emulator (auto-login)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cxloop.bootstrap import Container
from cxloop.salesforce.errors import NeedsReauth
from cxloop.services import connections
from cxloop.services.salesforce_clients import client_for
from sfemu.testing import EmulatorServer, run_in_thread
from tests.conftest import Person
from tests.e2e.test_processes import free_port
from tests.integration.conftest import CALLBACK, follow_login, link, open_in_browser, org
from tests.integration.test_auth_api import assert_error


def test_links_a_production_like_and_a_sandbox_like_org(
    web: TestClient, emulator: EmulatorServer, owner: Person
) -> None:
    production, sandbox = org(emulator, "acme"), org(emulator, "acme-sandbox")
    first = link(web, owner, "Acme prod", production["login_url"])
    emulator.control.patch("/settings", json={"auto_login": "admin@example.com.dev"})
    second = link(web, owner, "Acme dev", sandbox["login_url"])
    assert first["org_id"] == production["id"] and first["username"] == "admin@example.com"
    assert second["org_id"] == sandbox["id"] and second["username"] == "admin@example.com.dev"
    listed = web.get("/api/v1/connections", headers=owner.headers).json()
    assert [c["name"] for c in listed] == ["Acme prod", "Acme dev"]
    for item in listed:
        assert item["status"] == "active" and item["instance_url"].startswith("http://127.0.0.1")
        assert not {"access_token", "refresh_token", "token"} & set(item)


def test_an_expired_access_token_is_refreshed_and_the_call_succeeds(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    connection = link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    emulator.control.patch("/orgs/acme", json={"session_timeout_s": 1}).raise_for_status()
    before = connections.tokens_for(linked.db, connection["id"])
    time.sleep(1.2)
    with client_for(linked.db, linked.settings, connection["id"]) as sf_client:
        limits = sf_client.limits()
        assert "DailyApiRequests" in limits
        assert sf_client.calls == 2  # refused once, refreshed, then answered
    after = connections.tokens_for(linked.db, connection["id"])
    assert after.token_version == before.token_version + 1
    assert after.access_token != before.access_token
    usage = connections.api_usage(linked.db, connection["org_id"])
    assert usage is not None and usage.allocation == org(emulator, "acme")["daily_api_limit"]


def test_revocation_pauses_the_connection_until_it_is_reconnected(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    connection = link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    emulator.control.post("/users/admin@example.com/revoke_tokens").raise_for_status()
    with (
        client_for(linked.db, linked.settings, connection["id"]) as sf_client,
        pytest.raises(NeedsReauth),
    ):
        sf_client.limits()
    broken = web.get(f"/api/v1/connections/{connection['id']}", headers=owner.headers).json()
    assert broken["status"] == "needs_reauth"
    assert "connections refresh" in broken["status_reason"]
    started = web.post(
        f"/api/v1/connections/{connection['id']}/refresh", headers=owner.headers
    ).json()
    query = follow_login(web, owner, started["authorize_url"])
    assert web.get(f"/oauth/salesforce/callback?{query}")
    healed = web.get(f"/api/v1/connections/{connection['id']}", headers=owner.headers).json()
    assert healed["status"] == "active" and healed["id"] == connection["id"]
    with client_for(linked.db, linked.settings, connection["id"]) as sf_client:
        assert sf_client.limits()


def test_no_token_is_stored_in_clear(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    connection = link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    with linked.db.engine.connect() as raw:
        row = raw.execute(
            text("SELECT access_token, refresh_token FROM connections WHERE id = :id"),
            {"id": connection["id"]},
        ).one()
        every_value = " ".join(
            str(value)
            for table in ("connections", "oauth_attempts", "audit_log")
            for result in raw.execute(text(f"SELECT * FROM {table}"))
            for value in result
        )
    tokens = connections.tokens_for(linked.db, connection["id"])
    assert tokens.access_token and tokens.access_token not in every_value
    assert row.access_token.startswith("gAAAA") and row.refresh_token.startswith("gAAAA")
    with linked.db.uow() as uow:
        from cxloop.db.models import Connection

        refresh_token = uow.session.get(Connection, connection["id"]).refresh_token
    assert refresh_token and refresh_token not in every_value
    if linked.settings.is_sqlite:
        linked.db.dispose()
        raw_bytes = b"".join(
            path.read_bytes() for path in linked.settings.data_dir.parent.rglob("cxloop.db*")
        )
        assert tokens.access_token.encode() not in raw_bytes
        assert refresh_token.encode() not in raw_bytes


def test_remove_revokes_at_salesforce(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    connection = link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    token = connections.tokens_for(linked.db, connection["id"]).access_token
    removed = web.delete(f"/api/v1/connections/{connection['id']}", headers=owner.headers)
    assert removed.json() == {
        "removed": True,
        "revoked_at_salesforce": True,
        "message": "Removed 'Acme' and revoked its access.",
    }
    refused = httpx.get(
        f"{emulator.base_url}/services/data/v62.0/limits/",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 401
    assert_error(web.get(f"/api/v1/connections/{connection['id']}", headers=owner.headers), 404)


def test_remove_still_removes_when_salesforce_is_unreachable(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    connection = link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    from cxloop.db.models import Connection

    with linked.db.uow() as uow:  # as if Salesforce had moved out of reach
        uow.session.get(Connection, connection["id"]).login_url = "http://127.0.0.1:9"
        uow.commit()
    linked.settings.salesforce_apps["127.0.0.1:9"] = linked.settings.salesforce_app_for("x")  # type: ignore[assignment]
    linked.settings.salesforce_extra_hosts.append("127.0.0.1:9")
    removed = web.delete(f"/api/v1/connections/{connection['id']}", headers=owner.headers)
    body = removed.json()
    assert body["removed"] is True and body["revoked_at_salesforce"] is False
    assert "could not be reached" in body["message"] and "Setup" in body["message"]
    assert web.get("/api/v1/connections", headers=owner.headers).json() == []


def test_sixth_connection_is_refused_with_reason(
    web: TestClient, emulator: EmulatorServer, owner: Person
) -> None:
    login_url = org(emulator, "acme")["login_url"]
    for number in range(5):
        link(web, owner, f"Acme {number}", login_url)
    refused = web.post(
        "/api/v1/connections",
        json={"name": "Acme 5", "type": "emulator", "login_url": login_url},
        headers=owner.headers,
    )
    error = assert_error(refused, 409, "too_many_connections")
    assert "5" in error["message"] and "Remove one" in error["message"]


def test_names_are_unique_per_user_and_renames_are_checked(
    web: TestClient, emulator: EmulatorServer, owner: Person, linked: Container,
    make_person_in: Callable[[Container, str], Person],
) -> None:  # fmt: skip
    login_url = org(emulator, "acme")["login_url"]
    first = link(web, owner, "Acme", login_url)
    second = link(web, owner, "Other", login_url)
    taken = web.post(
        "/api/v1/connections",
        json={"name": "Acme", "type": "emulator", "login_url": login_url},
        headers=owner.headers,
    )
    assert_error(taken, 409, "name_taken")
    assert_error(
        web.patch(f"/api/v1/connections/{second['id']}", json={"name": "Acme"},
                     headers=owner.headers), 409, "name_taken",
    )  # fmt: skip
    renamed = web.patch(
        f"/api/v1/connections/{first['id']}", json={"name": "Acme EU"}, headers=owner.headers
    )
    assert renamed.json()["name"] == "Acme EU"
    stranger = make_person_in(linked, "stranger@example.com")
    link(web, stranger, "Acme", login_url)  # another user may use the same name
    assert_error(web.get(f"/api/v1/connections/{first['id']}", headers=stranger.headers), 404)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "x", "type": "moon"}, "invalid_input"),
        ({"name": "x", "type": "custom"}, "bad_login_url"),
        ({"name": "x", "type": "custom", "login_url": "https://evil.example.com"},
         "bad_login_url"),
        ({"name": "x", "type": "custom", "login_url": "http://acme.my.salesforce.com"},
         "bad_login_url"),
        ({"name": "x", "type": "production", "login_url": "https://acme.my.salesforce.com"},
         "bad_login_url"),
        ({"name": "", "type": "production"}, "invalid_input"),
        ({"name": "x\ny", "type": "production"}, "bad_name"),
    ],
)  # fmt: skip
def test_bad_connection_requests_are_refused(
    web: TestClient, owner: Person, body: dict, code: str
) -> None:
    assert_error(web.post("/api/v1/connections", json=body, headers=owner.headers), 422, code)
    assert web.get("/api/v1/connections", headers=owner.headers).json() == []


def test_custom_my_domain_gets_an_authorize_url_at_that_domain(
    web: TestClient, owner: Person
) -> None:
    reply = web.post(
        "/api/v1/connections",
        json={"name": "x", "type": "custom", "login_url": "https://acme.my.salesforce.com"},
        headers=owner.headers,
    )
    assert reply.status_code == 201
    url = urlsplit(open_in_browser(web, owner, reply.json()["authorize_url"]))
    assert (url.scheme, url.netloc, url.path) == (
        "https", "acme.my.salesforce.com", "/services/oauth2/authorize",
    )  # fmt: skip
    params = parse_qs(url.query)
    assert params["code_challenge_method"] == ["S256"] and params["redirect_uri"] == [CALLBACK]
    assert params["scope"] == ["api refresh_token offline_access"]


def start_linking(web: TestClient, owner: Person, emulator: EmulatorServer) -> dict:
    """Start linking a connection named Acme to the production-like org; the attempt."""
    reply = web.post(
        "/api/v1/connections",
        json={"name": "Acme", "type": "emulator", "login_url": org(emulator, "acme")["login_url"]},
        headers=owner.headers,
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


def callback_error(web: TestClient, query: str) -> str:
    reply = web.get(f"/oauth/salesforce/callback?{query}")
    assert reply.status_code == 400, reply.text
    return reply.text


def test_callback_with_unknown_state_is_refused(web: TestClient) -> None:
    assert "unknown to cxloop" in callback_error(web, "code=abc&state=forged")
    assert "no valid state" in callback_error(web, "code=abc")


def test_callback_replayed_is_refused_and_changes_nothing(
    web: TestClient, emulator: EmulatorServer, owner: Person
) -> None:
    started = start_linking(web, owner, emulator)
    query = follow_login(web, owner, started["authorize_url"])
    assert web.get(f"/oauth/salesforce/callback?{query}").status_code == 200
    assert "already used" in callback_error(web, query)
    assert len(web.get("/api/v1/connections", headers=owner.headers).json()) == 1


def test_callback_after_expiry_is_refused(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    started = start_linking(web, owner, emulator)
    from datetime import timedelta

    from cxloop.db.base import utcnow
    from cxloop.db.models import OAuthAttempt

    query = follow_login(web, owner, started["authorize_url"])
    with linked.db.uow() as uow:
        uow.session.get(OAuthAttempt, started["attempt_id"]).expires_at = utcnow() - timedelta(1)
        uow.commit()
    assert "expired" in callback_error(web, query)
    attempt = web.get(
        f"/api/v1/connections/attempts/{started['attempt_id']}", headers=owner.headers
    ).json()
    assert attempt["status"] == "failed"
    assert web.get("/api/v1/connections", headers=owner.headers).json() == []


def test_access_denied_is_explained_and_nothing_is_stored(
    web: TestClient, emulator: EmulatorServer, owner: Person
) -> None:
    started = start_linking(web, owner, emulator)
    salesforce_url = open_in_browser(web, owner, started["authorize_url"])
    state = parse_qs(urlsplit(salesforce_url).query)["state"][0]
    page = callback_error(
        web, f"error=access_denied&error_description=end-user+denied+authorization&state={state}"
    )
    assert "not granted" in page
    attempt = web.get(
        f"/api/v1/connections/attempts/{started['attempt_id']}", headers=owner.headers
    ).json()
    assert attempt["status"] == "failed" and "not granted" in attempt["error"]
    assert web.get("/api/v1/connections", headers=owner.headers).json() == []


def test_salesforce_down_during_linking_stores_nothing(
    web: TestClient, emulator: EmulatorServer, owner: Person, linked: Container
) -> None:
    started = start_linking(web, owner, emulator)
    query = follow_login(web, owner, started["authorize_url"])
    emulator.control.post(
        "/faults", json={"target": "oauth", "error": "503", "count": 5}
    ).raise_for_status()
    page = callback_error(web, query)
    assert "try again" in page.lower() or "could not" in page.lower(), page
    assert web.get("/api/v1/connections", headers=owner.headers).json() == []


def test_a_non_salesforce_instance_url_is_refused(
    web: TestClient, emulator: EmulatorServer, owner: Person
) -> None:
    # An emulator that tells clients its API lives elsewhere: the login host is trusted, the
    # instance_url it hands out is not, so cxloop must not send the token there.
    port = free_port()
    with run_in_thread(
        port=port, auto_login="admin@example.com", public_url="http://evil.example.com"
    ):
        login_url = f"http://127.0.0.1:{port}"
        web.app.state.container.settings.salesforce_extra_hosts.append(urlsplit(login_url).netloc)
        started = web.post(
            "/api/v1/connections",
            json={"name": "Acme", "type": "emulator", "login_url": login_url},
            headers=owner.headers,
        ).json()
        reply = httpx.get(
            open_in_browser(web, owner, started["authorize_url"]), follow_redirects=False
        )
        page = callback_error(web, urlsplit(reply.headers["location"]).query)
    assert "does not trust" in page
    assert web.get("/api/v1/connections", headers=owner.headers).json() == []


def test_a_refresh_that_lands_in_another_org_is_refused(
    web: TestClient, owner: Person, linked: Container, tmp_path: Path
) -> None:
    # Two production orgs behind one login host: logging in as a user of the other org is
    # exactly what happens when someone refreshes with the wrong Salesforce account.
    import importlib.resources

    import yaml

    default = yaml.safe_load(
        importlib.resources.files("sfemu").joinpath("default_org.yaml").read_text()
    )
    acme = next(o for o in default["orgs"] if o["alias"] == "acme")
    other = yaml.safe_load(yaml.safe_dump(acme))
    other.update(alias="globex", name="Globex", id="00D5g00000GLoBXEAV", records=[])
    other.pop("outbound_messages", None)
    for user in other["users"]:
        user["username"] = user["username"].replace("example.com", "globex.example.com")
    default["orgs"] = [acme, other]
    org_file = tmp_path / "orgs.yaml"
    org_file.write_text(yaml.safe_dump(default))
    port = free_port()
    with run_in_thread(port=port, org_file=str(org_file), auto_login="admin@example.com") as two:
        login_url = f"http://127.0.0.1:{port}"
        web.app.state.container.settings.salesforce_extra_hosts.append(f"127.0.0.1:{port}")
        connection = link(web, owner, "Acme", login_url)
        two.control.patch("/settings", json={"auto_login": "admin@globex.example.com"})
        started = web.post(
            f"/api/v1/connections/{connection['id']}/refresh", headers=owner.headers
        ).json()
        page = callback_error(web, follow_login(web, owner, started["authorize_url"]))
    assert "another Salesforce org (00D5g00000G" in page, page
    kept = web.get(f"/api/v1/connections/{connection['id']}", headers=owner.headers).json()
    assert kept["org_id"] == connection["org_id"] and kept["status"] == "active"


def test_revoke_keeps_the_connection_and_refresh_heals_it(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    connection = link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    token = connections.tokens_for(linked.db, connection["id"]).access_token
    reply = web.post(f"/api/v1/connections/{connection['id']}/revoke", headers=owner.headers)
    assert reply.json()["revoked_at_salesforce"] is True
    revoked = web.get(f"/api/v1/connections/{connection['id']}", headers=owner.headers).json()
    assert revoked["status"] == "revoked" and "owner@example.com" in revoked["status_reason"]
    assert connections.tokens_for(linked.db, connection["id"]).access_token == ""
    limits_url = f"{emulator.base_url}/services/data/v62.0/limits/"
    assert httpx.get(limits_url, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    started = web.post(
        f"/api/v1/connections/{connection['id']}/refresh", headers=owner.headers
    ).json()
    web.get(f"/oauth/salesforce/callback?{follow_login(web, owner, started['authorize_url'])}")
    healed = web.get(f"/api/v1/connections/{connection['id']}", headers=owner.headers).json()
    assert healed["status"] == "active"


def test_stale_linking_attempts_are_forgotten(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    from datetime import timedelta

    from cxloop.db.base import utcnow
    from cxloop.db.models import OAuthAttempt

    started = start_linking(web, owner, emulator)
    assert connections.delete_stale_attempts(linked.db) == 0
    with linked.db.uow() as uow:
        uow.session.get(OAuthAttempt, started["attempt_id"]).expires_at = utcnow() - timedelta(2)
        uow.commit()
    assert connections.delete_stale_attempts(linked.db) == 1
