"""OAuth 2.0 as Salesforce does it: authorize (login form, consent), token, revoke, identity URL,
userinfo.

Login hosts: the base URL is the production login host, ``/sandbox`` the sandbox one (users of
sandbox orgs log in there, as at test.salesforce.com) and ``/domain/{alias}`` an org's own
"My Domain" (only that org; where client credentials find their org). The base URL is also
every org's instance URL, so refresh, revoke and userinfo work there for any org.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse

from .auth import RefreshGrant, Session, pkce_challenge, signature
from .emulator import DOMAIN_PREFIX, SANDBOX_PREFIX
from .errors import OAuthError
from .httputil import (
    drop_connection,
    json_response,
    oauth_error_response,
    request_base_url,
    revoke_error_response,
)
from .orgs import ConnectedApp, Org, User
from .web import render

if TYPE_CHECKING:
    from .emulator import Emulator

router = APIRouter()

TICKET_LIFETIME_S = 10 * 60
NO_CACHE = {"Cache-Control": "no-cache, no-store", "Pragma": "no-cache"}


@dataclass
class LoginHost:
    """Which login host a request arrived at."""

    kind: str  # production | sandbox | domain
    url: str  # absolute login URL
    base: str  # absolute base URL (the instance URL)
    org: Org | None = None

    def accepts(self, org: Org) -> bool:
        """Whether users of this org may log in here."""
        if self.kind == "domain":
            return self.org is not None and self.org.id == org.id
        return org.is_sandbox == (self.kind == "sandbox")


def login_host(request: Request) -> LoginHost:
    """The login host of a request, from its path prefix."""
    emulator: Emulator = request.app.state.emulator
    base = emulator.public_base_url(request_base_url(request))
    path = request.url.path
    if path.startswith(SANDBOX_PREFIX + "/"):
        return LoginHost("sandbox", base + SANDBOX_PREFIX, base)
    if path.startswith(DOMAIN_PREFIX + "/"):
        alias = path[len(DOMAIN_PREFIX) + 1 :].split("/", 1)[0]
        org = emulator.org(alias)
        return LoginHost("domain", f"{base}{DOMAIN_PREFIX}/{alias}", base, org)
    return LoginHost("production", base, base)


def _routes(suffix: str) -> list[str]:
    return [suffix, SANDBOX_PREFIX + suffix, DOMAIN_PREFIX + "/{alias}" + suffix]


def _route(suffix: str, methods: list[str]):
    def decorate(func):
        for path in _routes(suffix):
            router.api_route(path, methods=methods, include_in_schema=False)(func)
        return func

    return decorate


def token_response(
    emulator: Emulator,
    app: ConnectedApp | None,
    session: Session,
    base: str,
    refresh_token: str | None = None,
) -> dict[str, Any]:
    """The token endpoint's answer for a session, fields in Salesforce's order."""
    identity = f"{session.login_url}/id/{session.org_id}/{session.user_id}"
    body: dict[str, Any] = {"access_token": session.token}
    if refresh_token:
        body["refresh_token"] = refresh_token
    secret = app.client_secret if app else "sfemu"
    body["signature"] = signature(secret, identity, session.issued_at_ms)
    body["scope"] = " ".join(session.scopes)
    body["instance_url"] = base
    body["id"] = identity
    body["token_type"] = "Bearer"
    body["issued_at"] = session.issued_at_ms
    return body


# -- authorize ------------------------------------------------------------------------------

_AUTHORIZE_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "login_hint",
    "display",
    "nonce",
)


def _redirect(redirect_uri: str, params: dict[str, str | None]) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{query}", status_code=302, headers=NO_CACHE)


_ERROR_SENTENCES = {
    "invalid_client_id": "No connected app has this client id (consumer key): check the client "
    "id the application uses against the emulator's (GET /__emulator__/info).",
    "redirect_uri_mismatch": "The callback URL the application sent is not one of this connected "
    "app's callback URLs, so the emulator will not send the browser back to it.",
}


def _error_page(
    request: Request,
    error: str,
    description: str,
    status: int = 400,
    *,
    app: ConnectedApp | None = None,
    redirect_uri: str | None = None,
) -> HTMLResponse:
    """Salesforce's error page for an authorize request it will not redirect: the raw error,
    and a sentence a person can act on (with the app's callback URLs for a mismatch)."""
    sentence = _ERROR_SENTENCES.get(error) or (description[:1].upper() + description[1:] + ".")
    return render(
        request,
        "oauth_error.html",
        {
            "error": error,
            "error_description": description,
            "sentence": sentence,
            "redirect_uri": redirect_uri,
            "app_name": app.name if app else "",
            "callback_urls": list(app.callback_urls) if app else [],
        },
        status,
    )


class _Reject(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _rejects_answered(handler):
    """An authorize step that answers a _Reject with its page or redirect."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except _Reject as reject:
            return reject.response

    return wrapped


def _check_authorize(request: Request, params: dict[str, str]) -> tuple[ConnectedApp, list[str]]:
    """Validate authorize parameters; raises _Reject with the page or redirect Salesforce gives."""
    emulator: Emulator = request.app.state.emulator
    app = emulator.app(params.get("client_id") or "")
    if app is None or not params.get("client_id"):
        raise _Reject(_error_page(request, "invalid_client_id", "client identifier invalid"))
    redirect_uri = params.get("redirect_uri") or ""
    if redirect_uri not in app.callback_urls:
        raise _Reject(
            _error_page(
                request,
                "redirect_uri_mismatch",
                "redirect_uri must match configuration",
                app=app,
                redirect_uri=redirect_uri,
            )
        )
    state = params.get("state")

    def bounce(error: str, description: str) -> _Reject:
        return _Reject(
            _redirect(
                redirect_uri, {"error": error, "error_description": description, "state": state}
            )
        )

    if params.get("response_type") != "code":
        raise bounce("unsupported_response_type", "response type not supported")
    method = params.get("code_challenge_method")
    if params.get("code_challenge"):
        if method not in (None, "", "S256"):
            raise bounce("invalid_request", "invalid code_challenge_method: only S256 is supported")
    elif app.require_pkce:
        raise bounce("invalid_request", "missing required code challenge")
    requested = (params.get("scope") or "").split() or list(app.scopes)
    if any(scope not in app.scopes for scope in requested):
        raise bounce("invalid_scope", "the requested scope is not allowed")
    return app, requested


def _issue_code(
    emulator: Emulator,
    host: LoginHost,
    app: ConnectedApp,
    params: dict[str, str],
    scopes: list[str],
    org: Org,
    user: User,
) -> Response:
    redirect_uri = params["redirect_uri"]
    state = params.get("state")
    if not org.policy_for(app).allows(user.profile.name):
        return _redirect(
            redirect_uri,
            {
                "error": "OAUTH_APP_ACCESS_DENIED",
                "error_description": "user is not admin approved to access this app",
                "state": state,
            },
        )
    code = emulator.tokens.issue_code(
        org_id=org.id,
        user_id=user.id,
        client_id=app.client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        login_url=host.url,
        code_challenge=params.get("code_challenge") or None,
    )
    return _redirect(redirect_uri, {"code": code.code, "state": state})


def _login_form(
    request: Request,
    params: dict[str, str],
    host: LoginHost,
    app: ConnectedApp,
    username: str,
    error: str | None = None,
) -> Response:
    """The login page, carrying the authorize parameters on to its POST."""
    context = {"params": params, "error": error, "username": username, "host": host, "app": app}
    return render(request, "login.html", context)


@_route("/services/oauth2/authorize", ["GET"])
@_rejects_answered
async def authorize(request: Request) -> Response:
    """Start the web-server flow: the login form, or straight back with a code (--auto-login)."""
    emulator: Emulator = request.app.state.emulator
    params = {k: v for k, v in request.query_params.items() if k in _AUTHORIZE_PARAMS}
    host = login_host(request)
    with emulator.lock:
        app, scopes = _check_authorize(request, params)
        if emulator.auto_login:
            found = emulator.find_user(emulator.auto_login)
            if found is None or not found[1].active:
                return _error_page(
                    request, "invalid_grant", f"auto-login user {emulator.auto_login} cannot log in"
                )
            return _issue_code(emulator, host, app, params, scopes, *found)
    return _login_form(request, params, host, app, params.get("login_hint", ""))


@_route("/services/oauth2/authorize/login", ["POST"])
@_rejects_answered
async def authorize_login(request: Request) -> Response:
    """The login form's POST: check the password, then consent (or a code if already approved)."""
    emulator: Emulator = request.app.state.emulator
    form = await request.form()
    params = {k: str(v) for k, v in form.items() if k in _AUTHORIZE_PARAMS}
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    host = login_host(request)
    with emulator.lock:
        app, scopes = _check_authorize(request, params)
        found = emulator.find_user(username)
        if (
            found is None
            or not host.accepts(found[0])
            or found[1].password != password
            or not found[1].active
        ):
            message = (
                "Please check your username and password. If you still can't log in, contact your"
                " Salesforce administrator."
            )
            return _login_form(request, params, host, app, username, message)
        org, user = found
        if (org.id, user.id, app.client_id) in emulator.approvals:
            return _issue_code(emulator, host, app, params, scopes, org, user)
        ticket = secrets.token_urlsafe(24)
        emulator.tickets[ticket] = (time.time(), params, org.id, user.id)
    return render(
        request,
        "consent.html",
        {"ticket": ticket, "app": app, "user": user, "org": org, "scopes": scopes, "host": host},
    )


@_route("/services/oauth2/authorize/consent", ["POST"])
@_rejects_answered
async def authorize_consent(request: Request) -> Response:
    """The consent page's POST: allow (code) or deny (access_denied)."""
    emulator: Emulator = request.app.state.emulator
    form = await request.form()
    host = login_host(request)
    with emulator.lock:
        entry = emulator.tickets.pop(str(form.get("ticket", "")), None)
        if entry is None or time.time() - entry[0] > TICKET_LIFETIME_S:
            return _error_page(request, "invalid_request", "the login expired; start again")
        _created, params, org_id, user_id = entry
        app, scopes = _check_authorize(request, params)
        org = emulator.orgs[org_id]
        user = org.users_by_id[user_id]
        if form.get("decision") != "allow":
            return _redirect(
                params["redirect_uri"],
                {
                    "error": "access_denied",
                    "error_description": "end-user denied authorization",
                    "state": params.get("state"),
                },
            )
        emulator.approvals.add((org.id, user.id, app.client_id))
        return _issue_code(emulator, host, app, params, scopes, org, user)


# -- token ----------------------------------------------------------------------------------


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str | None]:
    client_id = form.get("client_id")
    secret = form.get("client_secret")
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip()).decode()
            basic_id, _, basic_secret = decoded.partition(":")
            client_id = client_id or unquote(basic_id)
            secret = secret or unquote(basic_secret)
        except (ValueError, UnicodeDecodeError):
            raise OAuthError("invalid_client", "invalid client credentials") from None
    return client_id or "", secret


def _authenticate_client(
    emulator: Emulator, client_id: str, secret: str | None, *, secret_required: bool
) -> ConnectedApp:
    app = emulator.app(client_id) if client_id else None
    if app is None:
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if secret is not None and secret != app.client_secret:
        raise OAuthError("invalid_client", "invalid client credentials")
    if secret is None and secret_required:
        raise OAuthError("invalid_client", "invalid client credentials")
    return app


def _oauth_fault(emulator: Emulator, request: Request, grant_type: str) -> Any:
    return emulator.faults.decide(
        "oauth", None, None, request.method, f"/services/oauth2/token/{grant_type}"
    )


_OAUTH_FAULT_ERRORS = {
    "SERVER_UNAVAILABLE": OAuthError("server_unavailable", "service temporarily unavailable", 503),
    "UNKNOWN_EXCEPTION": OAuthError("unknown_error", "retry your request", 500),
    "UNABLE_TO_LOCK_ROW": OAuthError("unknown_error", "retry your request", 500),
    "REQUEST_LIMIT_EXCEEDED": OAuthError("rate_limit_exceeded", "rate limit exceeded", 400),
    "INVALID_SESSION_ID": OAuthError("invalid_grant", "expired access/refresh token", 400),
}


@_route("/services/oauth2/token", ["POST"])
async def token(request: Request) -> Response:
    """Exchange a code, refresh a token, or get one with client credentials."""
    emulator: Emulator = request.app.state.emulator
    form = {k: str(v) for k, v in (await request.form()).items()}
    grant_type = form.get("grant_type", "")
    host = login_host(request)
    with emulator.lock:
        decision = _oauth_fault(emulator, request, grant_type)
    if decision.latency_ms:
        await asyncio.sleep(decision.latency_ms / 1000)
    if decision.mode == "drop":
        return await drop_connection(request)
    if decision.fault is not None and decision.mode == "error":
        return oauth_error_response(
            _OAUTH_FAULT_ERRORS[decision.fault.error or "SERVER_UNAVAILABLE"]
        )
    with emulator.lock:
        try:
            if grant_type == "authorization_code":
                body = _exchange_code(emulator, request, form, host)
            elif grant_type == "refresh_token":
                body = _refresh(emulator, request, form, host)
            elif grant_type == "client_credentials":
                body = _client_credentials_grant(emulator, request, form, host)
            else:
                raise OAuthError("unsupported_grant_type", "grant type not supported")
        except OAuthError as error:
            return oauth_error_response(error)
    if decision.mode == "commit_then_drop":
        return await drop_connection(request)
    return json_response(body, 200, NO_CACHE)


def _exchange_code(
    emulator: Emulator, request: Request, form: dict[str, str], host: LoginHost
) -> dict[str, Any]:
    client_id, secret = _client_credentials(request, form)
    app = _authenticate_client(emulator, client_id, secret, secret_required=False)
    if app.require_secret and secret is None:
        raise OAuthError("invalid_client", "invalid client credentials")
    code = emulator.tokens.take_code(form.get("code", ""))
    if code is None or code.used or code.client_id != app.client_id:
        raise OAuthError("invalid_grant", "invalid authorization code")
    if form.get("redirect_uri") != code.redirect_uri:
        raise OAuthError("redirect_uri_mismatch", "redirect_uri must match configuration")
    if code.code_challenge is not None:
        verifier = form.get("code_verifier")
        if not verifier or pkce_challenge(verifier) != code.code_challenge:
            raise OAuthError("invalid_grant", "invalid code verifier")
    code.used = True
    org = emulator.orgs[code.org_id]
    user = org.users_by_id[code.user_id]
    if not user.active:
        raise OAuthError("inactive_user", "user is inactive")
    refresh: RefreshGrant | None = None
    if "refresh_token" in code.scopes or "offline_access" in code.scopes:
        refresh = emulator.tokens.issue_refresh(
            org.id, user.id, app.client_id, code.scopes, code.login_url
        )
    session = emulator.tokens.issue_session(
        org.id,
        user.id,
        app.client_id,
        code.scopes,
        code.login_url,
        refresh.token if refresh else None,
    )
    return token_response(emulator, app, session, host.base, refresh.token if refresh else None)


def _refresh(
    emulator: Emulator, request: Request, form: dict[str, str], host: LoginHost
) -> dict[str, Any]:
    client_id, secret = _client_credentials(request, form)
    app = _authenticate_client(emulator, client_id, secret, secret_required=False)
    grant = emulator.tokens.refresh.get(form.get("refresh_token", ""))
    if grant is None or grant.revoked or grant.client_id != app.client_id:
        raise OAuthError("invalid_grant", "expired access/refresh token")
    org = emulator.orgs.get(grant.org_id)
    user = org.users_by_id.get(grant.user_id) if org else None
    if org is None or user is None:
        raise OAuthError("invalid_grant", "expired access/refresh token")
    policy = org.policy_for(app)
    if policy.refresh_token.is_expired(grant.issued_at, grant.last_used, time.time()):
        emulator.tokens.revoke(grant.token)
        raise OAuthError("invalid_grant", "expired access/refresh token")
    if not user.active:
        raise OAuthError("inactive_user", "user is inactive")
    if not policy.allows(user.profile.name):
        raise OAuthError("invalid_grant", "user hasn't approved this consumer")
    emulator.tokens.touch_refresh(grant)
    new_refresh = None
    if policy.rotate_refresh_tokens:
        new_refresh = emulator.tokens.issue_refresh(
            org.id, user.id, app.client_id, grant.scopes, grant.login_url
        )
        grant.revoked = True  # the old refresh token dies; access tokens already issued live on
        emulator.tokens.touch_refresh(grant)
    session = emulator.tokens.issue_session(
        org.id, user.id, app.client_id, grant.scopes, grant.login_url, (new_refresh or grant).token
    )
    return token_response(
        emulator, app, session, host.base, new_refresh.token if new_refresh else None
    )


def _client_credentials_grant(
    emulator: Emulator, request: Request, form: dict[str, str], host: LoginHost
) -> dict[str, Any]:
    client_id, secret = _client_credentials(request, form)
    app = _authenticate_client(emulator, client_id, secret, secret_required=True)
    candidates = (
        [host.org]
        if host.org is not None
        else [o for o in emulator.orgs.values() if host.accepts(o)]
    )
    for org in candidates:
        username = org.policy_for(app).client_credentials_user
        user = org.user(username) if username else None
        if user is None:
            continue
        if not user.active:
            raise OAuthError("inactive_user", "user is inactive")
        scopes = [s for s in app.scopes if s not in ("refresh_token", "offline_access")]
        session = emulator.tokens.issue_session(org.id, user.id, app.client_id, scopes, host.url)
        return token_response(emulator, app, session, host.base)
    raise OAuthError("invalid_grant", "no client credentials user enabled")


# -- revoke, identity, userinfo -------------------------------------------------------------


@_route("/services/oauth2/revoke", ["POST", "GET"])
async def revoke(request: Request) -> Response:
    """Revoke an access token, or a refresh token and its access tokens."""
    emulator: Emulator = request.app.state.emulator
    if request.method == "POST":
        form = {k: str(v) for k, v in (await request.form()).items()}
    else:
        form = dict(request.query_params)
    value = form.get("token", "")
    if not value:
        return revoke_error_response(
            OAuthError("unsupported_token_type", "this token type is not supported")
        )
    with emulator.lock:
        revoked = emulator.tokens.revoke(value)
    if not revoked:
        return revoke_error_response(OAuthError("invalid_token", "invalid token"))
    return Response(status_code=200, headers=NO_CACHE)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return request.query_params.get("oauth_token")


def _identity_session(request: Request) -> tuple[Org, User, Session] | Response:
    emulator: Emulator = request.app.state.emulator
    value = _bearer(request)
    if not value:
        return PlainTextResponse("Missing_OAuth_Token", status_code=403)
    found = emulator.tokens.sessions.get(value)
    org = emulator.orgs.get(found.org_id) if found else None
    session = emulator.tokens.session(value, org.session_timeout_s) if org else None
    user = org.users_by_id.get(found.user_id) if (org and found) else None
    if session is None or user is None or not user.active:
        return PlainTextResponse("Bad_OAuth_Token", status_code=403)
    return org, user, session


def _instance_urls(base: str, org: Org, user: User) -> dict[str, str]:
    return {
        "enterprise": f"{base}/services/Soap/c/{{version}}/{org.id15}",
        "metadata": f"{base}/services/Soap/m/{{version}}/{org.id15}",
        "partner": f"{base}/services/Soap/u/{{version}}/{org.id15}",
        "rest": f"{base}/services/data/v{{version}}/",
        "sobjects": f"{base}/services/data/v{{version}}/sobjects/",
        "search": f"{base}/services/data/v{{version}}/search/",
        "query": f"{base}/services/data/v{{version}}/query/",
        "recent": f"{base}/services/data/v{{version}}/recent/",
        "tooling_soap": f"{base}/services/Soap/T/{{version}}/{org.id15}",
        "tooling_rest": f"{base}/services/data/v{{version}}/tooling/",
        "profile": f"{base}/{user.id}",
        "feeds": f"{base}/services/data/v{{version}}/chatter/feeds",
        "groups": f"{base}/services/data/v{{version}}/chatter/groups",
        "users": f"{base}/services/data/v{{version}}/chatter/users",
        "feed_items": f"{base}/services/data/v{{version}}/chatter/feed-items",
        "feed_elements": f"{base}/services/data/v{{version}}/chatter/feed-elements",
        "custom_domain": f"{base}{DOMAIN_PREFIX}/{org.alias}",
    }


@_route("/id/{org_id}/{user_id}", ["GET", "POST"])
async def identity(request: Request) -> Response:
    """The identity URL (the token response's ``id``)."""
    emulator: Emulator = request.app.state.emulator
    org_id = request.path_params.get("org_id", "")
    user_id = request.path_params.get("user_id", "")
    with emulator.lock:
        found = _identity_session(request)
        if isinstance(found, Response):
            return found
        org, user, session = found
        if org_id not in (org.id, org.id15) or user_id not in (user.id, user.id[:15]):
            return PlainTextResponse("Bad_Id", status_code=403)
        base = emulator.public_base_url(request_base_url(request))
        photo = f"{base}/profilephoto/005/F"
        body = {
            "id": f"{session.login_url}/id/{org.id}/{user.id}",
            "asserted_user": True,
            "user_id": user.id,
            "organization_id": org.id,
            "username": user.username,
            "nick_name": user.username.split("@")[0],
            "display_name": user.name,
            "email": user.email,
            "email_verified": True,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "timezone": user.timezone,
            "photos": {"picture": photo, "thumbnail": photo[:-1] + "T"},
            "addr_street": None,
            "addr_city": None,
            "addr_state": None,
            "addr_country": None,
            "addr_zip": None,
            "mobile_phone": None,
            "mobile_phone_verified": False,
            "is_lightning_login_user": False,
            "status": {"created_date": None, "body": None},
            **_account_fields(base, org, user),
            "last_modified_date": "2024-01-01T00:00:00.000+0000",
            "is_app_installed": True,
        }
    return json_response(body)


def _account_fields(base: str, org: Org, user: User) -> dict[str, Any]:
    """What the identity service and OpenID userinfo both say of the user's account."""
    return {
        "urls": _instance_urls(base, org, user),
        "active": user.active,
        "user_type": "STANDARD",
        "language": user.language,
        "locale": user.locale,
        "utcOffset": -28800000 if user.timezone == "America/Los_Angeles" else 0,
    }


@_route("/services/oauth2/userinfo", ["GET", "POST"])
async def userinfo(request: Request) -> Response:
    """OpenID Connect userinfo."""
    emulator: Emulator = request.app.state.emulator
    with emulator.lock:
        found = _identity_session(request)
        if isinstance(found, Response):
            return found
        org, user, session = found
        base = emulator.public_base_url(request_base_url(request))
        photo = f"{base}/profilephoto/005/F"
        body = {
            "sub": f"{session.login_url}/id/{org.id}/{user.id}",
            "user_id": user.id,
            "organization_id": org.id,
            "preferred_username": user.username,
            "nickname": user.username.split("@")[0],
            "name": user.name,
            "email": user.email,
            "email_verified": True,
            "given_name": user.first_name,
            "family_name": user.last_name,
            "zoneinfo": user.timezone,
            "photos": {"picture": photo, "thumbnail": photo[:-1] + "T"},
            "profile": f"{base}/{user.id}",
            "picture": photo,
            "address": {"country": "US"},
            "is_salesforce_integration_user": False,
            **_account_fields(base, org, user),
            "updated_at": "2024-01-01T00:00:00Z",
            "is_app_installed": True,
        }
    return json_response(body)


@_route("/.well-known/openid-configuration", ["GET"])
async def openid_configuration(request: Request) -> Response:
    """Discovery document, so OAuth libraries can find the endpoints by themselves."""
    host = login_host(request)
    return json_response(
        {
            "issuer": host.url,
            "authorization_endpoint": f"{host.url}/services/oauth2/authorize",
            "token_endpoint": f"{host.url}/services/oauth2/token",
            "revocation_endpoint": f"{host.url}/services/oauth2/revoke",
            "userinfo_endpoint": f"{host.url}/services/oauth2/userinfo",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "client_secret_basic",
                "none",
            ],
            "scopes_supported": [
                "api",
                "refresh_token",
                "offline_access",
                "id",
                "openid",
                "web",
                "full",
            ],
            "subject_types_supported": ["public"],
        }
    )
