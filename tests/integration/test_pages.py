"""The login page and session cookie."""

import re

from fastapi.testclient import TestClient

from tests.conftest import Person


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def login(client: TestClient, email: str, password: str, next_: str = "/"):
    csrf = _csrf(client.get("/login").text)
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf": csrf, "next": next_},
        follow_redirects=False,
    )


def test_home_needs_login(client: TestClient) -> None:
    reply = client.get("/", follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"] == "/login"


def test_login_sets_a_session_and_shows_the_surveys(client: TestClient, alice: Person) -> None:
    client.post("/api/v1/surveys", json={"name": "<b>Hello</b>"}, headers=alice.headers)
    reply = login(client, alice.email, "a long enough passphrase")
    assert reply.status_code == 303 and reply.headers["location"] == "/"
    cookie = reply.headers["set-cookie"]
    assert "cxloop_session=" in cookie and "httponly" in cookie.lower()
    home = client.get("/")
    assert home.status_code == 200 and alice.email in home.text
    assert "&lt;b&gt;Hello&lt;/b&gt;" in home.text and "<b>Hello</b>" not in home.text


def test_wrong_password_is_refused_without_saying_which_part(
    client: TestClient, alice: Person
) -> None:
    wrong = login(client, alice.email, "not the password at all")
    unknown = login(client, "nobody@example.com", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password." in wrong.text and "Wrong email or password." in unknown.text


def test_login_without_the_form_token_is_refused(client: TestClient, alice: Person) -> None:
    reply = client.post(
        "/login",
        data={"email": alice.email, "password": "a long enough passphrase", "csrf": "forged"},
        follow_redirects=False,
    )
    assert reply.status_code == 401 and "expired" in reply.text


def test_login_never_redirects_off_site(client: TestClient, alice: Person) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        reply = login(client, alice.email, "a long enough passphrase", target)
        assert reply.headers["location"] == "/"
    assert (
        login(client, alice.email, "a long enough passphrase", "/docs").headers["location"]
        == "/docs"
    )


def test_logout_ends_the_session(client: TestClient, alice: Person) -> None:
    login(client, alice.email, "a long enough passphrase")
    csrf = _csrf(client.get("/").text)
    client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_session_cookie_does_not_open_the_api(client: TestClient, alice: Person) -> None:
    login(client, alice.email, "a long enough passphrase")
    assert client.get("/api/v1/users/me").status_code == 401
