"""The web pages of the admin side: login, logout, home."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from cxloop.errors import Unauthenticated
from cxloop.services import surveys, users
from cxloop.web.deps import SESSION_USER_KEY, get_db, session_actor

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)

CSRF_KEY = "csrf"


def csrf_token(request: Request) -> str:
    token = request.session.get(CSRF_KEY)
    if not token:
        token = request.session[CSRF_KEY] = secrets.token_urlsafe(32)
    return token


def _csrf_ok(request: Request, given: str) -> bool:
    expected = request.session.get(CSRF_KEY)
    return bool(expected) and secrets.compare_digest(expected, given)


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
    error = None
    if not _csrf_ok(request, csrf):
        error = "Your login form expired. Please try again."
    else:
        try:
            user = users.authenticate_password(get_db(request), email, password)
        except Unauthenticated as exc:
            error = exc.message
    if error is not None:
        return templates.TemplateResponse(
            request,
            "login.html",
            {"next": _safe_next(next), "csrf": csrf_token(request), "error": error, "email": email},
            status_code=401,
        )
    request.session.clear()  # a fresh session on login: no fixation
    request.session[SESSION_USER_KEY] = user.id
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    if _csrf_ok(request, csrf):
        request.session.clear()
    return RedirectResponse("/login", status_code=303)


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
