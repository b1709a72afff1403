"""The web pages of the admin side: login, logout, home."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from cxloop.errors import TooManyAttempts, Unauthenticated
from cxloop.services import surveys, throttle, users, web_sessions
from cxloop.web.deps import SESSION_ID_KEY, get_container, get_db, session_actor

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)

CSRF_KEY = "csrf"


def csrf_token(request: Request) -> str:
    """The form token: derived from the server-side session when signed in (it ends with the
    session), else a random one kept in the cookie (the login form's)."""
    session_id = request.session.get(SESSION_ID_KEY)
    if session_id:
        return web_sessions.csrf_token(_secret(request), str(session_id))
    token = request.session.get(CSRF_KEY)
    if not token:
        token = request.session[CSRF_KEY] = secrets.token_urlsafe(32)
    return str(token)


def _csrf_ok(request: Request, given: str) -> bool:
    session_id = request.session.get(SESSION_ID_KEY)
    if session_id:
        expected = web_sessions.csrf_token(_secret(request), str(session_id))
    else:
        expected = request.session.get(CSRF_KEY) or ""
    return bool(expected) and bool(given) and secrets.compare_digest(expected, given)


def _secret(request: Request) -> str:
    secret = get_container(request).settings.secret_key
    assert secret is not None
    return secret.get_secret_value()


def _safe_next(target: str | None) -> str:
    # Only same-site paths: "//evil.example" and "http://..." would be open redirects.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return templates.TemplateResponse(
        request,
        "login.html",
        {"next": _safe_next(next), "csrf": csrf_token(request), "error": None, "email": ""},
    )


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    error, status, headers = None, 401, None
    if not _csrf_ok(request, csrf):
        error = "Your login form expired. Please try again."
    else:
        container = get_container(request)
        try:
            user = users.authenticate_password(
                container.db, email, password,
                guard=throttle.Throttle(container.db, container.settings),
                address=throttle.client_address(request.client),
            )  # fmt: skip
        except Unauthenticated as exc:
            error = exc.message
        except TooManyAttempts as exc:
            error, status = exc.message, 429
            headers = {"Retry-After": str(exc.retry_after_s)}
    if error is not None:
        return templates.TemplateResponse(
            request,
            "login.html",
            {"next": _safe_next(next), "csrf": csrf_token(request), "error": error, "email": email},
            status_code=status,
            headers=headers,
        )
    _end_session(request)  # a fresh session on login: no fixation
    request.session[SESSION_ID_KEY] = web_sessions.start(container.db, container.settings, user.id)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    if _csrf_ok(request, csrf):
        _end_session(request)
    return RedirectResponse("/login", status_code=303)


def _end_session(request: Request) -> None:
    """End this browser's server-side session (a copy of the cookie dies with it)."""
    session_id = request.session.get(SESSION_ID_KEY)
    if session_id:
        web_sessions.end(get_db(request), str(session_id))
    request.session.clear()


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    actor = session_actor(request)
    if actor is None:
        return RedirectResponse("/login", status_code=303)
    page = surveys.list_surveys(get_db(request), actor, limit=100)
    return templates.TemplateResponse(
        request,
        "home.html",
        {"actor": actor, "surveys": page.items, "csrf": csrf_token(request)},
    )
