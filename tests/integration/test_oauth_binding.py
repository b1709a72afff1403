"""Linking is bound to the browser and the cxloop user that started it (issue #12, finding 3).

The attack: someone starts linking, then gets a victim who is logged in to Salesforce to
follow the Salesforce login URL; the victim's browser lands on the callback. Before, that added
the victim's Salesforce identity to the attacker's connections. Now it stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from cxloop.db.base import utcnow
from cxloop.db.models import OAuthAttempt
from cxloop.web.app import create_app
from sfemu.testing import EmulatorServer
from tests.conftest import Person
from tests.integration.conftest import (
    CALLBACK,
    follow_login,
    open_in_browser,
    org,
    sign_in,
)
from tests.integration.test_connections import start_linking


def another_browser(linked: Container) -> TestClient:
    """A second browser: its own cookie jar, the same server."""
    return TestClient(create_app(linked), raise_server_exceptions=False)


def salesforce_login(salesforce_url: str) -> str:
    """A browser logged in to Salesforce (auto-login) follows the URL: the callback's query."""
    reply = httpx.get(salesforce_url, follow_redirects=False)
    assert reply.headers["location"].startswith(CALLBACK), reply.text
    return urlsplit(reply.headers["location"]).query


def attempt_of(web: TestClient, owner: Person, started: dict) -> dict:
    return web.get(
        f"/api/v1/connections/attempts/{started['attempt_id']}", headers=owner.headers
    ).json()


def test_a_victims_browser_following_the_salesforce_url_links_nothing(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    started = start_linking(web, owner, emulator)
    salesforce_url = open_in_browser(web, owner, started["authorize_url"])
    with another_browser(linked) as victim:
        page = victim.get(f"/oauth/salesforce/callback?{salesforce_login(salesforce_url)}")
    assert page.status_code == 403 and "not started in this browser" in page.text
    assert web.get("/api/v1/connections", headers=owner.headers).json() == []
    # Nor could the victim's browser spoil the attempt: the owner's own browser still links.
    assert attempt_of(web, owner, started)["status"] == "pending"
    done = web.get(f"/oauth/salesforce/callback?{salesforce_login(salesforce_url)}")
    assert done.status_code == 200, done.text
    assert attempt_of(web, owner, started)["status"] == "completed"


def test_a_victim_signed_in_to_cxloop_as_someone_else_links_nothing(
    web: TestClient,
    linked: Container,
    emulator: EmulatorServer,
    owner: Person,
    make_person_in: Callable[[Container, str], Person],
) -> None:
    victim_person = make_person_in(linked, "victim@example.com")
    started = start_linking(web, owner, emulator)
    salesforce_url = open_in_browser(web, owner, started["authorize_url"])
    with another_browser(linked) as victim:
        sign_in(victim, victim_person.email)
        page = victim.get(f"/oauth/salesforce/callback?{salesforce_login(salesforce_url)}")
        assert page.status_code == 403
    for person in (owner, victim_person):
        assert web.get("/api/v1/connections", headers=person.headers).json() == []


def test_the_same_browser_signed_in_as_another_user_at_the_callback_links_nothing(
    web: TestClient,
    linked: Container,
    emulator: EmulatorServer,
    owner: Person,
    make_person_in: Callable[[Container, str], Person],
) -> None:
    other = make_person_in(linked, "other@example.com")
    started = start_linking(web, owner, emulator)
    salesforce_url = open_in_browser(web, owner, started["authorize_url"])  # owner's cookie
    sign_in(web, other.email)  # then someone else signs in in this browser
    page = web.get(f"/oauth/salesforce/callback?{salesforce_login(salesforce_url)}")
    assert page.status_code == 403 and "another cxloop user" in page.text
    assert web.get("/api/v1/connections", headers=owner.headers).json() == []
    assert web.get("/api/v1/connections", headers=other.headers).json() == []


def test_the_callback_without_a_session_links_nothing(
    web: TestClient, emulator: EmulatorServer, owner: Person
) -> None:
    started = start_linking(web, owner, emulator)
    salesforce_url = open_in_browser(web, owner, started["authorize_url"])
    web.cookies.delete("cxloop_session")  # the cookie of the attempt stays, the session goes
    page = web.get(f"/oauth/salesforce/callback?{salesforce_login(salesforce_url)}")
    assert page.status_code == 403
    assert web.get("/api/v1/connections", headers=owner.headers).json() == []


def test_the_one_time_link_is_refused_to_another_user(
    web: TestClient,
    linked: Container,
    emulator: EmulatorServer,
    owner: Person,
    make_person_in: Callable[[Container, str], Person],
) -> None:
    intruder = make_person_in(linked, "intruder@example.com")
    started = start_linking(web, owner, emulator)
    with another_browser(linked) as browser:
        sign_in(browser, intruder.email)
        reply = browser.get(urlsplit(started["authorize_url"]).path, follow_redirects=False)
    assert reply.status_code == 403 and "another cxloop user" in reply.text
    assert "cxloop_oauth_" not in reply.headers.get("set-cookie", "")
    # Still usable by its owner.
    query = follow_login(web, owner, started["authorize_url"])
    assert web.get(f"/oauth/salesforce/callback?{query}").status_code == 200


def test_the_one_time_link_asks_for_sign_in_and_comes_back(
    web: TestClient, emulator: EmulatorServer, owner: Person
) -> None:
    started = start_linking(web, owner, emulator)
    path = urlsplit(started["authorize_url"]).path
    assert started["authorize_url"].startswith("http://127.0.0.1:8000/oauth/salesforce/start/")
    reply = web.get(path, follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"] == f"/login?next={path}"
    form = web.get(reply.headers["location"]).text
    assert f'value="{path}"' in form  # the login form carries it on
    sign_in(web, owner.email)
    onward = web.get(path, follow_redirects=False)
    assert onward.status_code == 303
    assert onward.headers["location"].startswith(org_login(web, started))
    cookie = onward.headers["set-cookie"].lower()
    assert f"cxloop_oauth_{started['attempt_id'].lower()}=" in cookie
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "path=/oauth/salesforce/callback" in cookie


def org_login(web: TestClient, started: dict) -> str:
    with web.app.state.container.db.reader() as uow:
        return uow.session.get(OAuthAttempt, started["attempt_id"]).login_url


def test_the_one_time_link_works_once(
    web: TestClient, emulator: EmulatorServer, owner: Person
) -> None:
    started = start_linking(web, owner, emulator)
    open_in_browser(web, owner, started["authorize_url"])
    again = web.get(urlsplit(started["authorize_url"]).path, follow_redirects=False)
    assert again.status_code == 400 and "already used" in again.text


def test_the_one_time_link_expires(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    started = start_linking(web, owner, emulator)
    with linked.db.uow() as uow:
        attempt = uow.session.get(OAuthAttempt, started["attempt_id"])
        attempt.bootstrap_expires_at = utcnow() - timedelta(seconds=1)
        uow.commit()
    sign_in(web, owner.email)
    reply = web.get(urlsplit(started["authorize_url"]).path, follow_redirects=False)
    assert reply.status_code == 400 and "expired" in reply.text


def test_bad_one_time_links_are_refused_clearly(web: TestClient, owner: Person) -> None:
    sign_in(web, owner.email)
    unknown = web.get("/oauth/salesforce/start/forged", follow_redirects=False)
    assert unknown.status_code == 400 and "unknown to cxloop" in unknown.text
    too_long = web.get("/oauth/salesforce/start/" + "x" * 500, follow_redirects=False)
    assert too_long.status_code == 422


def test_the_linking_reply_keeps_its_keys(
    web: TestClient, emulator: EmulatorServer, owner: Person
) -> None:
    started = start_linking(web, owner, emulator)
    assert set(started) == {"attempt_id", "authorize_url", "expires_at", "callback_url", "status"}
    assert "state=" not in started["authorize_url"]  # no Salesforce URL leaves the API


def test_a_refresh_is_bound_to_the_browser_too(
    web: TestClient, linked: Container, emulator: EmulatorServer, owner: Person
) -> None:
    from tests.integration.conftest import link

    connection = link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    started = web.post(
        f"/api/v1/connections/{connection['id']}/refresh", headers=owner.headers
    ).json()
    salesforce_url = open_in_browser(web, owner, started["authorize_url"])
    assert "prompt=login" in salesforce_url
    with another_browser(linked) as victim:
        page = victim.get(f"/oauth/salesforce/callback?{salesforce_login(salesforce_url)}")
    assert page.status_code == 403
    assert attempt_of(web, owner, started)["status"] == "pending"
