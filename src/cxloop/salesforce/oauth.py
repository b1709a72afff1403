"""Salesforce's OAuth 2.0 web-server flow (PKCE S256, client_secret_post), refresh and revoke.

authlib does the protocol; this module adds what is Salesforce's own: the token signature, the
identity URL, `issued_at` in milliseconds, and errors turned into typed exceptions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import warnings
from dataclasses import dataclass
from typing import Any

import authlib.deprecate  # noqa: F401  (it installs an "always" filter; ours must come after)
import httpx

with warnings.catch_warnings():
    # authlib nudges towards the httpx2 fork; httpx is what the rest of cxloop uses.
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.integrations.httpx_client import OAuthError as AuthlibOAuthError

from cxloop.salesforce.errors import (
    NeedsReauth,
    OAuthError,
    SalesforceUnreachable,
    error_for,
)

SCOPES = "api refresh_token offline_access"
AUTHORIZE_PATH = "/services/oauth2/authorize"
TOKEN_PATH = "/services/oauth2/token"
REVOKE_PATH = "/services/oauth2/revoke"


@dataclass(frozen=True)
class ClientApp:
    """The connected app cxloop uses at one login host."""

    client_id: str
    client_secret: str
    redirect_uri: str


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    refresh_token: str | None
    instance_url: str
    identity_url: str
    issued_at_ms: int
    signature: str
    scope: str


@dataclass(frozen=True)
class Identity:
    org_id: str
    user_id: str
    username: str
    display_name: str
    email: str


def _client(app: ClientApp, timeout: float, **kwargs: Any) -> OAuth2Client:
    return OAuth2Client(
        client_id=app.client_id,
        client_secret=app.client_secret,
        token_endpoint_auth_method="client_secret_post",
        revocation_endpoint_auth_method="client_secret_post",
        redirect_uri=app.redirect_uri,
        code_challenge_method="S256",
        timeout=timeout,
        **kwargs,
    )


def authorization_url(
    login_url: str, app: ClientApp, state: str, code_verifier: str, *, prompt: str | None = None
) -> str:
    """Where to send the browser: Salesforce's login and consent page for this app."""
    with _client(app, 10, scope=SCOPES) as client:
        extra = {"prompt": prompt} if prompt else {}
        url, _ = client.create_authorization_url(
            login_url + AUTHORIZE_PATH, state=state, code_verifier=code_verifier, **extra
        )
    return url


def exchange_code(
    login_url: str, app: ClientApp, code: str, code_verifier: str, *, timeout: float = 30
) -> TokenResponse:
    """Trade the authorization code for tokens, and check Salesforce's signature on them."""
    with _client(app, timeout) as client:
        raw = _token_call(
            lambda: client.fetch_token(
                login_url + TOKEN_PATH,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
            )
        )
    token = _parse_token(raw)
    verify_signature(token, app.client_secret)
    return token


def refresh(
    login_url: str, app: ClientApp, refresh_token: str, *, timeout: float = 30
) -> TokenResponse:
    """A new access token (and, with rotation on, a new refresh token)."""
    with _client(app, timeout) as client:
        raw = _token_call(
            lambda: client.refresh_token(login_url + TOKEN_PATH, refresh_token=refresh_token)
        )
    token = _parse_token(raw)
    verify_signature(token, app.client_secret)
    return token


def revoke(login_url: str, app: ClientApp, token: str, *, timeout: float = 15) -> None:
    """Revoke a token at Salesforce (revoking the refresh token kills its access tokens)."""
    with _client(app, timeout) as client:
        try:
            reply = client.revoke_token(login_url + REVOKE_PATH, token=token)
        except httpx.HTTPError as exc:
            raise SalesforceUnreachable(f"Salesforce could not be reached: {exc}") from exc
    # An already revoked or unknown token is as revoked as it gets.
    if reply.status_code >= 500:
        raise error_for(reply.status_code, reply.text)


def fetch_identity(identity_url: str, access_token: str, *, timeout: float = 30) -> Identity:
    """Who the token belongs to: org, user, username (the identity URL document)."""
    try:
        reply = httpx.get(
            identity_url,
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=timeout,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise SalesforceUnreachable(f"Salesforce could not be reached: {exc}") from exc
    if reply.status_code != 200:
        raise error_for(reply.status_code, reply.text)
    try:
        body = reply.json()
        return Identity(
            org_id=str(body["organization_id"]),
            user_id=str(body["user_id"]),
            username=str(body["username"]),
            display_name=str(body.get("display_name") or ""),
            email=str(body.get("email") or ""),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise OAuthError("Salesforce's identity document is not what it should be.") from exc


def verify_signature(token: TokenResponse, client_secret: str) -> None:
    """Salesforce signs `id + issued_at` with the client secret; a mismatch means tampering."""
    expected = base64.b64encode(
        hmac.new(
            client_secret.encode(),
            (token.identity_url + str(token.issued_at_ms)).encode(),
            hashlib.sha256,
        ).digest()
    ).decode()
    if not hmac.compare_digest(expected, token.signature):
        raise OAuthError(
            "The token response's signature does not match: it did not come from Salesforce "
            "with this connected app's secret. Check the client secret configured for this host."
        )


def _token_call(call: Any) -> dict[str, Any]:
    try:
        return dict(call())
    except AuthlibOAuthError as exc:
        description = exc.description or exc.error
        if exc.error == "invalid_grant":
            raise NeedsReauth(description, error_code="invalid_grant", status=400) from exc
        raise OAuthError(description, error_code=exc.error or "", status=400) from exc
    except httpx.HTTPError as exc:
        raise SalesforceUnreachable(f"Salesforce could not be reached: {exc}") from exc
    except ValueError as exc:  # not JSON: a proxy's error page, a 5xx...
        raise SalesforceUnreachable(f"Salesforce answered something unreadable: {exc}") from exc


def _parse_token(raw: dict[str, Any]) -> TokenResponse:
    try:
        return TokenResponse(
            access_token=str(raw["access_token"]),
            refresh_token=str(raw["refresh_token"]) if raw.get("refresh_token") else None,
            instance_url=str(raw["instance_url"]).rstrip("/"),
            identity_url=str(raw["id"]),
            issued_at_ms=int(raw["issued_at"]),
            signature=str(raw["signature"]),
            scope=str(raw.get("scope") or ""),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise OAuthError(f"Salesforce's token response lacks {exc}.") from exc
