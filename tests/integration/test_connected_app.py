"""The connected app as configuration: set without a restart, found in a local emulator, and a
refused callback URL explained on both sides (issue 13, items 1 and 2).

Every container here starts with no Salesforce setting at all (no client id, no extra hosts)
and a base URL on another port than the emulator's default callbacks (8000).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cxloop.bootstrap import Container, build_container
from cxloop.settings import SalesforceApp
from cxloop.web.app import create_app
from sfemu.testing import EmulatorServer
from tests.conftest import Person, make_settings
from tests.e2e.test_processes import free_port
from tests.integration.cli_helpers import cxloop
from tests.integration.conftest import open_in_browser, org

BASE = "http://127.0.0.1:8123"
CALLBACK = BASE + "/oauth/salesforce/callback"


@pytest.fixture
def bare(tmp_path: Path, database_url: str) -> Iterator[Container]:
    """cxloop with no connected app and no trusted extra host, serving on port 8123."""
    built = build_container(
        make_settings(tmp_path, database_url, f"sqlite:///{tmp_path / 'queue.db'}", base_url=BASE)
    )
    yield built
    built.close()


@pytest.fixture
def web(bare: Container) -> Iterator[TestClient]:
    with TestClient(create_app(bare), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def person(bare: Container, make_person_in: Callable[[Container, str], Person]) -> Person:
    return make_person_in(bare, "owner@example.com")


@pytest.fixture
def cli_env(bare: Container, monkeypatch: pytest.MonkeyPatch) -> Container:
    """The CLI on the same data directory and database; nothing else set."""
    for name in ("CXLOOP_SALESFORCE_CLIENT_ID", "CXLOOP_SALESFORCE_CLIENT_SECRET",
                 "CXLOOP_SALESFORCE_EXTRA_HOSTS", "CXLOOP_SALESFORCE_APPS"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CXLOOP_DATA_DIR", str(bare.settings.data_dir))
    monkeypatch.setenv("CXLOOP_DATABASE_URL", bare.settings.effective_database_url)
    monkeypatch.setenv("CXLOOP_BASE_URL", BASE)
    return bare


def finish_in_browser(web: TestClient, person: Person, link: str) -> httpx.Response:
    """The person's browser: the one-time link, the emulator's (automatic) login, the callback."""
    salesforce_url = open_in_browser(web, person, link)
    back = httpx.get(salesforce_url, follow_redirects=False)
    assert back.status_code == 302, back.text
    location = back.headers["location"]
    assert location.startswith(CALLBACK + "?"), location
    return web.get(f"/oauth/salesforce/callback?{urlsplit(location).query}")


def started_link(output: str) -> str:
    return next(line for line in output.splitlines() if "/oauth/salesforce/start/" in line)


# --- item 1: linking to the emulator in one command, the app set without a restart


def test_connections_add_emulator_links_without_any_setting_or_restart(
    cli_env: Container, web: TestClient, emulator: EmulatorServer, person: Person
) -> None:
    login_url = org(emulator, "acme")["login_url"]
    added = cxloop(
        "connections", "add", "acme", "--type", "emulator", "--login-url", login_url,
        "--no-wait", "--user", person.email,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert f"sends the browser back to {CALLBACK}" in added.output
    # The emulator's app now lists cxloop's callback, and cxloop knows the app.
    app = emulator.info()["connected_apps"][0]
    assert CALLBACK in app["callback_urls"]
    done = finish_in_browser(web, person, started_link(added.output))
    assert done.status_code == 200 and "Connected acme" in done.text, done.text
    shown = cxloop("salesforce", "app", "show")
    row = f"{urlsplit(login_url).netloc}\t{app['client_id']}\t**********\tdatabase\temulator\tyes"
    assert row in shown.output.splitlines(), shown.output
    assert app["client_secret"] not in shown.output
    as_json = json.loads(cxloop("salesforce", "app", "show", "--json").output)
    assert as_json["callback_url"] == CALLBACK
    assert as_json["apps"][1]["client_id"] == app["client_id"], as_json
    assert app["client_secret"] not in json.dumps(as_json)


def test_the_emulators_other_login_host_links_too_once_its_host_is_known(
    cli_env: Container, web: TestClient, emulator: EmulatorServer, person: Person
) -> None:
    sandbox = org(emulator, "acme-sandbox")["login_url"]  # {base}/sandbox
    added = cxloop(
        "connections", "add", "sandbox", "--type", "emulator", "--login-url", sandbox,
        "--no-wait", "--user", person.email,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    emulator.control.patch("/settings", json={"auto_login": "admin@example.com.dev"})
    done = finish_in_browser(web, person, started_link(added.output))
    assert done.status_code == 200 and "Connected sandbox" in done.text, done.text
    # A member links through the API now that the host is known (an admin's CLI added it).
    again = web.post(
        "/api/v1/connections",
        json={"name": "sandbox 2", "type": "emulator", "login_url": sandbox},
        headers=person.headers,
    )
    assert again.status_code == 201, again.text
    assert again.json()["callback_url"] == CALLBACK


def test_salesforce_app_set_takes_effect_at_the_next_linking_without_a_restart(
    cli_env: Container, web: TestClient, emulator: EmulatorServer, person: Person
) -> None:
    login_url = org(emulator, "acme")["login_url"]
    body = {"name": "Acme", "type": "custom", "login_url": login_url}
    before = web.post("/api/v1/connections", json=body, headers=person.headers)
    assert before.status_code == 422 and "not a Salesforce host" in before.text
    app = emulator.info()["connected_apps"][0]
    set_ = cxloop(
        "salesforce", "app", "set", "--client-id", app["client_id"], "--client-secret-stdin",
        "--login-url", login_url, stdin=app["client_secret"] + "\n",
    )  # fmt: skip
    assert set_.exit_code == 0, set_.output
    assert f"Register this callback URL in the app: {CALLBACK}" in set_.output
    # The Salesforce admin adds the callback to the app (here through the control API).
    emulator.control.patch("/apps/cxloop", json={"add_callback_urls": [CALLBACK]})
    started = web.post("/api/v1/connections", json=body, headers=person.headers)
    assert started.status_code == 201, started.text
    done = finish_in_browser(web, person, started.json()["authorize_url"])
    assert done.status_code == 200 and "Connected Acme" in done.text, done.text


def test_salesforce_app_set_reads_the_secret_from_stdin_only_and_refuses_bad_input(
    cli_env: Container,
) -> None:
    no_flag = cxloop("salesforce", "app", "set", "--client-id", "3MVGabc")
    assert no_flag.exit_code == 1 and "standard input only" in no_flag.output
    empty = cxloop("salesforce", "app", "set", "--client-id", "3MVGabc", "--client-secret-stdin",
                   stdin="\n")  # fmt: skip
    assert empty.exit_code == 1 and "no client secret on standard input" in empty.output
    spaced = cxloop("salesforce", "app", "set", "--client-id", "3MVG abc",
                    "--client-secret-stdin", stdin="s3cret\n")  # fmt: skip
    assert spaced.exit_code == 1 and "client id (consumer key) is one word" in spaced.output
    bad_url = cxloop("salesforce", "app", "set", "--client-id", "3MVGabc", "--login-url",
                     "ftp://x", "--client-secret-stdin", stdin="s3cret\n")  # fmt: skip
    assert bad_url.exit_code == 1 and "is not an http(s) URL" in bad_url.output
    assert "No default app: set one with" in cxloop("salesforce", "app", "show").output


def test_app_show_says_where_each_app_comes_from_and_never_shows_a_secret(
    bare: Container,
) -> None:
    from cxloop.services import salesforce_apps  # new in issue 13

    salesforce_apps.set_app(bare.db, None, "3MVGdatabase", "db-secret")
    settings = bare.settings.model_copy(
        update={
            "salesforce_client_id": "3MVGsetting",
            "salesforce_client_secret": SecretStr("setting-secret"),
            "salesforce_apps": {
                "test.salesforce.com": SalesforceApp(
                    client_id="3MVGsandbox", client_secret=SecretStr("sandbox-secret")
                )
            },
        }
    )
    views = {(v.scope, v.source): v for v in salesforce_apps.show(bare.db, settings)}
    assert views[("default", "setting")].client_id == "3MVGsetting"
    assert views[("default", "database")].overridden_by_setting
    assert views[("test.salesforce.com", "setting")].client_id == "3MVGsandbox"
    # Settings win at the same level; a host's own app wins over the default.
    with bare.db.reader() as uow:
        resolve = salesforce_apps.resolve
        assert resolve(uow.session, settings, "https://login.salesforce.com").client_id == (
            "3MVGsetting"
        )
        assert resolve(uow.session, bare.settings, "https://login.salesforce.com").client_id == (
            "3MVGdatabase"
        )
        assert resolve(uow.session, settings, "https://test.salesforce.com").client_id == (
            "3MVGsandbox"
        )


def test_the_app_api_is_for_admins_and_never_returns_a_secret(
    web: TestClient, make_person: Callable[..., Person], person: Person
) -> None:
    admin = make_person("admin@example.com", admin=True)
    put = {"client_id": "3MVGapi", "client_secret": "api-secret"}
    assert web.get("/api/v1/salesforce/app", headers=person.headers).status_code == 403
    assert web.put("/api/v1/salesforce/app", json=put, headers=person.headers).status_code == 403
    for bad in ({"client_id": "3MVGapi"}, put | {"client_secret": ""}, put | {"extra": 1},
                put | {"client_id": "with space"}, put | {"login_url": "nope"}):  # fmt: skip
        refused = web.put("/api/v1/salesforce/app", json=bad, headers=admin.headers)
        assert refused.status_code in (400, 422), (bad, refused.text)
        assert refused.json()["error"]["code"], refused.text
    stored = web.put("/api/v1/salesforce/app", json=put, headers=admin.headers)
    assert stored.status_code == 200, stored.text
    assert "api-secret" not in stored.text
    got = web.get("/api/v1/salesforce/app", headers=admin.headers).json()
    assert got["callback_url"] == CALLBACK
    assert got["apps"][0] | {"updated_at": None} == {
        "scope": "default", "client_id": "3MVGapi", "source": "database", "origin": "manual",
        "overridden_by_setting": False, "updated_at": None,
    }  # fmt: skip


def test_an_emulator_that_does_not_answer_or_is_not_trusted_is_refused_in_words(
    cli_env: Container, web: TestClient, person: Person
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    added = cxloop("connections", "add", "x", "--type", "emulator", "--login-url", nowhere,
                   "--no-wait", "--user", person.email)  # fmt: skip
    assert added.exit_code == 1
    assert f"No Salesforce emulator answers at {nowhere}" in added.output
    # A member may not make cxloop trust (and call) a new host through the API.
    refused = web.post(
        "/api/v1/connections",
        json={"name": "x", "type": "emulator", "login_url": nowhere},
        headers=person.headers,
    )
    assert refused.status_code == 422
    assert "not a host cxloop trusts yet" in refused.json()["error"]["message"]
    assert web.get("/api/v1/connections", headers=person.headers).json() == []


# --- item 2: a callback URL the app does not list, explained on both sides


def test_a_refused_callback_url_is_explained_by_the_emulator_and_by_cxloop(
    cli_env: Container, web: TestClient, emulator: EmulatorServer, person: Person
) -> None:
    login_url = org(emulator, "acme")["login_url"]
    app = emulator.info()["connected_apps"][0]
    cxloop("salesforce", "app", "set", "--client-id", app["client_id"], "--client-secret-stdin",
           "--login-url", login_url, stdin=app["client_secret"])  # fmt: skip
    started = web.post(
        "/api/v1/connections",
        json={"name": "Acme", "type": "custom", "login_url": login_url},
        headers=person.headers,
    ).json()
    assert started["callback_url"] == CALLBACK
    salesforce_url = open_in_browser(web, person, started["authorize_url"])

    # The emulator's page: a sentence, the URL sent, the URLs registered, and it wraps.
    page = httpx.get(salesforce_url, follow_redirects=False)
    assert page.status_code == 400
    assert "is not one of this connected app" in page.text
    assert f"<code>{CALLBACK}</code>" in page.text
    for registered in app["callback_urls"]:
        assert f"<li><code>{registered}</code></li>" in page.text
    assert "overflow-wrap: anywhere" in page.text
    assert "error=redirect_uri_mismatch" in page.text  # Salesforce's own words stay

    # cxloop's callback page, when Salesforce sends the error back: which URL, and the fixes.
    state = parse_qs(urlsplit(salesforce_url).query)["state"][0]
    back = web.get(
        "/oauth/salesforce/callback",
        params={
            "state": state,
            "error": "redirect_uri_mismatch",
            "error_description": "redirect_uri must match configuration",
        },
    )
    assert back.status_code == 400
    assert f"Salesforce refused the callback URL cxloop sent, {CALLBACK}" in back.text
    assert "set CXLOOP_BASE_URL" in back.text and "Callback URL" in back.text
    assert 'class="wrap error"' in back.text  # a long URL wraps in the card
    attempt = web.get(
        f"/api/v1/connections/attempts/{started['attempt_id']}", headers=person.headers
    ).json()
    assert attempt["status"] == "failed" and CALLBACK in attempt["error"]


def test_refreshing_an_emulator_connection_registers_the_callback_of_the_port_served_today(
    cli_env: Container, web: TestClient, emulator: EmulatorServer, person: Person,
    tmp_path: Path, database_url: str,
) -> None:  # fmt: skip
    login_url = org(emulator, "acme")["login_url"]
    added = cxloop("connections", "add", "acme", "--type", "emulator", "--login-url", login_url,
                   "--no-wait", "--user", person.email)  # fmt: skip
    assert finish_in_browser(web, person, started_link(added.output)).status_code == 200
    # The server now serves on another port (same database, no setting changed by hand).
    queue = f"sqlite:///{tmp_path / 'queue.db'}"
    moved = build_container(
        make_settings(tmp_path, database_url, queue, base_url="http://127.0.0.1:8124")
    )
    try:
        with TestClient(create_app(moved), raise_server_exceptions=False) as moved_web:
            connection = moved_web.get("/api/v1/connections", headers=person.headers).json()[0]
            again = moved_web.post(
                f"/api/v1/connections/{connection['id']}/refresh", headers=person.headers
            )
            assert again.status_code in (200, 201), again.text
            assert again.json()["callback_url"] == "http://127.0.0.1:8124/oauth/salesforce/callback"
    finally:
        moved.close()
    callbacks = emulator.info()["connected_apps"][0]["callback_urls"]
    assert "http://127.0.0.1:8124/oauth/salesforce/callback" in callbacks
