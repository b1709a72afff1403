"""The OAuth 2.0 web-server flow with PKCE, end to end over HTTP on loopback: authlib (the
library cxloop links connections with) as the client, a scripted browser filling the login and
consent forms, and Salesforce's errors for a wrong verifier, a wrong redirect_uri, a reused
code, an expired or revoked refresh token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from sfemu.testing import EmulatorServer

CALLBACK = "http://127.0.0.1:8000/oauth/salesforce/callback"


def browser_login(authorize_url: str, username: str, password: str) -> str:
    """Do what a person does in the browser; returns the callback URL Salesforce redirects to."""
    with httpx.Client(follow_redirects=False, trust_env=False) as browser:
        page = browser.get(authorize_url)
        while page.status_code == 200:
            form = re.search(
                r'<form method="post" action="([^"]+)">(.*?)</form>', page.text, re.DOTALL
            )
            assert form is not None, page.text
            fields = {
                name: html.unescape(value)
                for name, value in re.findall(
                    r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2)
                )
            }
            if 'name="password"' in form.group(2):
                fields.update(username=username, password=password)
            else:
                fields["decision"] = "allow"
            page = browser.post(urljoin(str(page.url), form.group(1)), data=fields)
        assert page.status_code == 302, page.text
        return page.headers["location"]


@pytest.fixture
def oauth(http_sfemu: EmulatorServer) -> Iterator[dict[str, Any]]:
    info = http_sfemu.info()
    app = info["connected_apps"][0]
    acme = next(org for org in info["orgs"] if org["alias"] == "acme")
    login = acme["login_url"]
    session = OAuth2Session(
        app["client_id"],
        app["client_secret"],
        scope="api refresh_token",
        redirect_uri=CALLBACK,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",
    )
    session.trust_env = False
    yield {
        "app": app,
        "login": login,
        "session": session,
        "token_url": f"{login}/services/oauth2/token",
        "authorize_url": f"{login}/services/oauth2/authorize",
        "revoke_url": f"{login}/services/oauth2/revoke",
        "server": http_sfemu,
    }
    session.close()


def start(
    oauth: dict[str, Any], username: str = "admin@example.com", password: str = "sfemu-admin"
) -> tuple[str, str, str]:
    verifier = generate_token(48)
    url, state = oauth["session"].create_authorization_url(
        oauth["authorize_url"], code_verifier=verifier
    )
    assert "code_challenge=" in url and "code_challenge_method=S256" in url
    callback = browser_login(url, username, password)
    return callback, verifier, state


def test_the_whole_flow_with_authlib(oauth: dict[str, Any]) -> None:
    session: OAuth2Session = oauth["session"]
    callback, verifier, state = start(oauth)
    assert f"state={state}" in callback
    token = session.fetch_token(
        oauth["token_url"], authorization_response=callback, code_verifier=verifier
    )
    assert token["token_type"] == "Bearer" and "expires_in" not in token and token["refresh_token"]
    expected = base64.b64encode(
        hmac.new(
            oauth["app"]["client_secret"].encode(),
            (token["id"] + token["issued_at"]).encode(),
            hashlib.sha256,
        ).digest()
    ).decode()
    assert token["signature"] == expected
    assert token["instance_url"] == oauth["server"].base_url
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    identity = httpx.get(token["id"], headers=bearer, trust_env=False).json()
    assert (
        identity["username"] == "admin@example.com"
        and identity["organization_id"] == "00D5g00000SfEmUEAV"
    )
    rest = httpx.get(
        f"{token['instance_url']}/services/data/v62.0/sobjects/Account/describe",
        headers=bearer,
        trust_env=False,
    )
    assert rest.status_code == 200
    refreshed = session.refresh_token(oauth["token_url"], refresh_token=token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]
    session.revoke_token(
        oauth["revoke_url"], token=token["refresh_token"], token_type_hint="refresh_token"
    )
    dead = httpx.get(
        f"{token['instance_url']}/services/data/v62.0/limits", headers=bearer, trust_env=False
    )
    assert dead.status_code == 401 and dead.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def token_error(oauth: dict[str, Any], **form: str) -> dict[str, str]:
    response = httpx.post(oauth["token_url"], data=form, trust_env=False)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def code_of(callback: str) -> str:
    return re.search(r"[?&]code=([^&]+)", callback).group(1)


def exchange_form(
    oauth: dict[str, Any], code: str, verifier: str, redirect_uri: str = CALLBACK
) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
        "client_id": oauth["app"]["client_id"],
        "client_secret": oauth["app"]["client_secret"],
    }


def test_wrong_verifier(oauth: dict[str, Any]) -> None:
    callback, _verifier, _state = start(oauth)
    assert token_error(oauth, **exchange_form(oauth, code_of(callback), generate_token(48))) == {
        "error": "invalid_grant",
        "error_description": "invalid code verifier",
    }
    callback, _verifier, _state = start(oauth)
    with pytest.raises(Exception) as raised:
        oauth["session"].fetch_token(
            oauth["token_url"], authorization_response=callback, code_verifier=generate_token(48)
        )
    assert getattr(raised.value, "error", None) == "invalid_grant"


def test_wrong_redirect_uri(oauth: dict[str, Any]) -> None:
    callback, verifier, _state = start(oauth)
    form = exchange_form(
        oauth,
        code_of(callback),
        verifier,
        redirect_uri="http://localhost:8000/oauth/salesforce/callback",
    )
    assert token_error(oauth, **form) == {
        "error": "redirect_uri_mismatch",
        "error_description": "redirect_uri must match configuration",
    }


def test_reused_code(oauth: dict[str, Any]) -> None:
    callback, verifier, _state = start(oauth)
    form = exchange_form(oauth, code_of(callback), verifier)
    assert httpx.post(oauth["token_url"], data=form, trust_env=False).status_code == 200
    assert token_error(oauth, **form) == {
        "error": "invalid_grant",
        "error_description": "invalid authorization code",
    }


def test_expired_refresh_token(oauth: dict[str, Any]) -> None:
    server: EmulatorServer = oauth["server"]
    server.control.patch(
        "/orgs/acme", json={"refresh_token_policy": {"kind": "expire_after", "seconds": 0.3}}
    )
    callback, verifier, _state = start(oauth)
    token = oauth["session"].fetch_token(
        oauth["token_url"], authorization_response=callback, code_verifier=verifier
    )
    time.sleep(0.4)
    error = token_error(
        oauth,
        grant_type="refresh_token",
        refresh_token=token["refresh_token"],
        client_id=oauth["app"]["client_id"],
        client_secret=oauth["app"]["client_secret"],
    )
    assert error == {"error": "invalid_grant", "error_description": "expired access/refresh token"}


def test_revoked_refresh_token(oauth: dict[str, Any]) -> None:
    callback, verifier, _state = start(oauth)
    token = oauth["session"].fetch_token(
        oauth["token_url"], authorization_response=callback, code_verifier=verifier
    )
    assert (
        httpx.post(
            oauth["revoke_url"], data={"token": token["refresh_token"]}, trust_env=False
        ).status_code
        == 200
    )
    with pytest.raises(Exception) as raised:
        oauth["session"].refresh_token(oauth["token_url"], refresh_token=token["refresh_token"])
    assert getattr(raised.value, "error", None) == "invalid_grant"
    assert getattr(raised.value, "description", None) == "expired access/refresh token"


def test_auto_login_for_scripted_use(oauth: dict[str, Any]) -> None:
    server: EmulatorServer = oauth["server"]
    server.control.patch(
        "/settings", json={"auto_login": "integration@example.com"}
    ).raise_for_status()
    verifier = generate_token(48)
    url, _state = oauth["session"].create_authorization_url(
        oauth["authorize_url"], code_verifier=verifier
    )
    redirect = httpx.get(url, follow_redirects=False, trust_env=False)
    assert redirect.status_code == 302 and redirect.headers["location"].startswith(
        CALLBACK + "?code="
    )
    token = oauth["session"].fetch_token(
        oauth["token_url"],
        authorization_response=redirect.headers["location"],
        code_verifier=verifier,
    )
    who = httpx.get(
        f"{oauth['login']}/services/oauth2/userinfo",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        trust_env=False,
    ).json()
    assert who["preferred_username"] == "integration@example.com"
