"""`cxloop connections` and `cxloop keys` against a linked emulator connection."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cxloop.bootstrap import Container, build_container
from cxloop.services import connections
from cxloop.settings import Settings
from sfemu.testing import EmulatorServer
from tests.conftest import Person
from tests.integration.cli_helpers import cxloop
from tests.integration.conftest import link, open_in_browser, org


@pytest.fixture
def cli_env(linked: Container, monkeypatch: pytest.MonkeyPatch) -> Container:
    settings = linked.settings
    monkeypatch.setenv("CXLOOP_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CXLOOP_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("CXLOOP_BASE_URL", settings.base_url)
    monkeypatch.setenv("CXLOOP_SALESFORCE_CLIENT_ID", settings.salesforce_client_id)
    monkeypatch.setenv(
        "CXLOOP_SALESFORCE_CLIENT_SECRET", settings.salesforce_client_secret.get_secret_value()
    )
    monkeypatch.setenv("CXLOOP_SALESFORCE_EXTRA_HOSTS", json.dumps(settings.salesforce_extra_hosts))
    return linked


def test_list_rename_and_remove(
    cli_env: Container, web: TestClient, emulator: EmulatorServer, owner: Person
) -> None:
    link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    listed = cxloop("connections", "list")
    assert listed.exit_code == 0 and "Acme" in listed.output and "active" in listed.output
    assert cxloop("connections", "rename", "Acme", "Acme EU").exit_code == 0
    assert "Acme EU" in cxloop("connections", "list").output
    removed = cxloop("connections", "remove", "Acme EU")
    assert removed.exit_code == 0 and "revoked its access" in removed.output
    missing = cxloop("connections", "remove", "Acme EU")
    assert missing.exit_code == 1 and "no connection named" in missing.output


def test_revoke_cuts_access_but_keeps_the_connection(
    cli_env: Container, web: TestClient, emulator: EmulatorServer, owner: Person
) -> None:
    link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    revoked = cxloop("connections", "revoke", "Acme")
    assert revoked.exit_code == 0, revoked.output
    listed = cxloop("connections", "list")
    assert "Acme" in listed.output and "revoked" in listed.output
    missing = cxloop("connections", "revoke", "Nobody")
    assert missing.exit_code == 1 and "no connection named" in missing.output


def test_add_prints_a_one_time_link_that_links_in_a_signed_in_browser(
    cli_env: Container, web: TestClient, emulator: EmulatorServer, owner: Person
) -> None:
    added = cxloop(
        "connections", "add", "Acme", "--type", "emulator",
        "--login-url", org(emulator, "acme")["login_url"], "--no-wait", "--user", owner.email,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    link_url = next(line for line in added.output.split() if "/oauth/salesforce/start/" in line)
    assert owner.email in added.output
    salesforce_url = open_in_browser(web, owner, link_url.strip())
    assert "/services/oauth2/authorize?" in salesforce_url and "code_challenge=" in salesforce_url
    back = httpx.get(salesforce_url, follow_redirects=False).headers["location"]
    assert web.get(f"/oauth/salesforce/callback?{urlsplit(back).query}").status_code == 200
    assert "Acme" in cxloop("connections", "list", "--user", owner.email).output


def test_add_refuses_a_bad_type_in_one_line(cli_env: Container, owner: Person) -> None:
    refused = cxloop("connections", "add", "Acme", "--type", "moon", "--no-wait")
    assert refused.exit_code == 1
    assert "Unknown connection type 'moon'" in refused.output


def test_keys_rotate_re_encrypts_every_token(
    cli_env: Container, web: TestClient, emulator: EmulatorServer, owner: Person
) -> None:
    connection = link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    before_token = connections.tokens_for(cli_env.db, connection["id"]).access_token
    query = text("SELECT access_token FROM connections")
    with cli_env.db.engine.connect() as raw:
        before_cipher = raw.execute(query).scalar_one()
    rotated = cxloop("keys", "rotate")
    assert rotated.exit_code == 0, rotated.output
    keys_file = cli_env.settings.data_dir / "encryption_keys"
    assert len(keys_file.read_text().strip().split(",")) == 2
    with cli_env.db.engine.connect() as raw:
        assert raw.execute(query).scalar_one() != before_cipher
    assert token_read_by_a_new_process(connection["id"]) == before_token
    assert cxloop("keys", "rotate", "--drop-old").exit_code == 0
    assert len(keys_file.read_text().strip().split(",")) == 1
    assert token_read_by_a_new_process(connection["id"]) == before_token


def token_read_by_a_new_process(connection_id: str) -> str:
    """The access token as a process started now reads it: its keys come from the keys file.

    Each container keeps the keys it was built with (no process-global box), so a running
    process sees rotated keys only after a restart, as docs/security.md says.
    """
    fresh = build_container(Settings())
    try:
        return connections.tokens_for(fresh.db, connection_id).access_token
    finally:
        fresh.close()


def test_keys_generate_prints_a_fernet_key(cli_env: Container) -> None:
    from cryptography.fernet import Fernet

    key = cxloop("keys", "generate").output.strip()
    Fernet(key.encode())
