"""The web pages of the admin side: login, logout, the language switch (the admin pages
themselves are in web/ui/)."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from cxloop.errors import TooManyAttempts, Unauthenticated
from cxloop.services import throttle, users, web_sessions
from cxloop.web.deps import SESSION_ID_KEY, get_container, get_db, session_actor
from cxloop.web.ui.context import (
    LANGUAGE_KEY,
    csrf_ok,
    render,
    safe_next,
    translate,
)
from cxloop.web.ui.i18n import LANGUAGES, N_

# Only for the OAuth result page (web/oauth.py); the admin pages render through ui.context.
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)

# The login page's own words for a refused login (in the person's language).
LOGIN_ERRORS = MappingProxyType({"bad_credentials": N_("Wrong email or password.")})


def _safe_next(target: str | None) -> str:
    return safe_next(target)


_csrf_ok = csrf_ok


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    if session_actor(request) is not None:
        return RedirectResponse(_safe_next(next or "/surveys"), status_code=303)
    return render(request, "login.html", next=_safe_next(next), error=None, email="")


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
        error = translate(request, "Your login form expired. Please try again.")
    else:
        container = get_container(request)
        try:
            user = users.authenticate_password(
                container.db, email, password,
                guard=throttle.Throttle(container.db, container.settings),
                address=throttle.client_address(request.client),
            )  # fmt: skip
        except Unauthenticated as exc:
            error = translate(request, LOGIN_ERRORS.get(exc.code, exc.message))
        except TooManyAttempts as exc:
            error, status = exc.message, 429
            headers = {"Retry-After": str(exc.retry_after_s)}
    if error is not None:
        response = render(
            request, "login.html", status_code=status, next=_safe_next(next), error=error,
            email=email,
        )  # fmt: skip
        response.headers.update(headers or {})
        return response
    chosen_language = request.session.get(LANGUAGE_KEY)
    _end_session(request)  # a fresh session on login: no fixation
    if chosen_language:
        request.session[LANGUAGE_KEY] = chosen_language
    request.session[SESSION_ID_KEY] = web_sessions.start(container.db, container.settings, user.id)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    if _csrf_ok(request, csrf):
        chosen_language = request.session.get(LANGUAGE_KEY)
        _end_session(request)
        if chosen_language:
            request.session[LANGUAGE_KEY] = chosen_language
    return RedirectResponse("/login", status_code=303)


@router.post("/language")
def choose_language(
    request: Request,
    lang: Annotated[str, Form(max_length=10)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """The language switch: the choice is kept in this browser's session (signed in or not)."""
    if _csrf_ok(request, csrf) and lang in LANGUAGES:
        request.session[LANGUAGE_KEY] = lang
    return RedirectResponse(_safe_next(next), status_code=303)


def _end_session(request: Request) -> None:
    """End this browser's server-side session (a copy of the cookie dies with it)."""
    session_id = request.session.get(SESSION_ID_KEY)
    if session_id:
        web_sessions.end(get_db(request), str(session_id))
    request.session.clear()
