"""Driving the OAuth web-server flow as a browser would (login form, consent), for tests."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

CALLBACK = "http://127.0.0.1:8000/oauth/salesforce/callback"


@dataclass
class Pkce:
    verifier: str
    challenge: str


def new_pkce() -> Pkce:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return Pkce(verifier, challenge)


def redirect_params(response: Any) -> dict[str, str]:
    """The query parameters of a 302 to the callback."""
    assert response.status_code == 302, (response.status_code, response.text[:500])
    location = response.headers["location"]
    assert location.startswith(CALLBACK.split("?")[0]), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize_params(
    client_id: str, *, state: str = "st-1", pkce: Pkce | None = None, **extra: str
) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "state": state,
        "scope": "api refresh_token",
    }
    if pkce is not None:
        params.update(code_challenge=pkce.challenge, code_challenge_method="S256")
    params.update(extra)
    return params


def log_in(
    client: Any,
    prefix: str,
    params: dict[str, str],
    username: str,
    password: str,
    *,
    allow: bool = True,
) -> Any:
    """GET authorize, POST the login form, POST the consent form; returns the final response."""
    page = client.get(f"{prefix}/services/oauth2/authorize", params=params, follow_redirects=False)
    if page.status_code != 200:
        return page
    assert 'action="authorize/login"' in page.text
    login = client.post(
        f"{prefix}/services/oauth2/authorize/login",
        data={**params, "username": username, "password": password},
        follow_redirects=False,
    )
    if login.status_code != 200 or 'name="ticket"' not in login.text:
        return login
    ticket = re.search(r'name="ticket" value="([^"]+)"', login.text).group(1)
    return client.post(
        f"{prefix}/services/oauth2/authorize/consent",
        data={"ticket": ticket, "decision": "allow" if allow else "deny"},
        follow_redirects=False,
    )
