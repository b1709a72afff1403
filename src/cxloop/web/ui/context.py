"""What every admin page shares: who is signed in, the language, the CSRF token, rendering, and
the one place where service errors become error pages.

A page handler is as thin as an API router:

    router = ui_router()

    @router.get("/surveys/{survey_id}")
    def survey_page(survey_id: str, page: PageContext) -> Response:
        survey = surveys.get_survey(page.db, page.user, survey_id)   # 404 / 403 as in the API
        return page.render("ui/surveys/survey.html", survey=survey)
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute, APIRouter
from starlette.concurrency import run_in_threadpool

from cxloop.bootstrap import Container
from cxloop.db.uow import Database
from cxloop.errors import CxloopError, Forbidden, NotFound, Unauthenticated
from cxloop.services import web_sessions
from cxloop.services.access import Actor
from cxloop.web.deps import SESSION_ID_KEY, get_container, session_actor
from cxloop.web.errors import status_for
from cxloop.web.ui.i18n import Formats, UiLanguages, pick_language
from cxloop.web.ui.messages import service_message

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
LANGUAGE_KEY = "lang"
FLASH_KEY = "flash"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class LoginRequired(Exception):
    """Nobody is signed in in this browser: the page sends them to /login and back."""


class CsrfRejected(Exception):
    """A form or htmx request without this session's token (an old tab, or another site)."""


def ui_languages(request: Request) -> UiLanguages:
    return request.app.state.ui_languages


def language_of(request: Request) -> str:
    """The language of this browser: its choice (kept in the session), else Accept-Language."""
    return pick_language(request.session.get(LANGUAGE_KEY), request.headers.get("accept-language"))


def translate(request: Request, message: str, **values: object) -> str:
    """`message` in the request's language, for code that has no PageContext (the login page)."""
    return ui_languages(request).gettext(language_of(request), message, **values)


def error_text(request: Request, error: CxloopError) -> str:
    """A service's error in the request's language, for code that has no PageContext."""
    return service_message(
        lambda message, **values: translate(request, message, **values),
        language_of(request),
        error,
    )


def csrf_token(request: Request) -> str:
    """The form token: derived from the server-side session when signed in (it ends with the
    session), else a random one kept in the cookie (the login form's)."""
    session_id = request.session.get(SESSION_ID_KEY)
    if session_id:
        return web_sessions.csrf_token(_secret(request), str(session_id))
    token = request.session.get(CSRF_FIELD)
    if not token:
        token = request.session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return str(token)


def csrf_ok(request: Request, given: str | None) -> bool:
    """Whether `given` is this browser's form token."""
    session_id = request.session.get(SESSION_ID_KEY)
    if session_id:
        expected = web_sessions.csrf_token(_secret(request), str(session_id))
    else:
        expected = request.session.get(CSRF_FIELD) or ""
    return bool(expected) and bool(given) and secrets.compare_digest(expected, str(given))


def _secret(request: Request) -> str:
    secret = get_container(request).settings.secret_key
    assert secret is not None
    return secret.get_secret_value()


def safe_next(target: str | None, default: str = "/") -> str:
    """`target` if it is a path on this site, else `default` (no open redirects)."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not any(ord(c) < 32 for c in target)
    ):
        return target
    return default


@dataclass
class PageContext:
    """The request as a page sees it."""

    request: Request
    container: Container
    user: Actor
    lang: str
    csrf: str
    languages: UiLanguages
    fmt: Formats = field(init=False)

    def __post_init__(self) -> None:
        self.fmt = Formats(self.lang)

    @property
    def db(self) -> Database:
        return self.container.db

    @property
    def is_htmx(self) -> bool:
        """Whether htmx sent this request (it wants a fragment, not a whole page)."""
        return self.request.headers.get("hx-request") == "true"

    def _(self, message: str, **values: object) -> str:
        """`message` in the page's language (`%(name)s` placeholders filled from `values`)."""
        return self.languages.gettext(self.lang, message, **values)

    def say(self, text: object) -> str:
        """English text made as a Phrase (the doctor's findings, ...) in the page's language."""
        return self.languages.say(self.lang, text)

    def error_text(self, error: CxloopError) -> str:
        """A service's error in the page's language (by its code; see ui/messages.py)."""
        return service_message(self._, self.lang, error)

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """The template, in the page's language, with the shell's context."""
        return render(self.request, template, status_code=status_code, user=self.user, **context)

    def redirect(self, url: str, message: str | None = None) -> Response:
        """After a successful form post: go to `url` (a 303), with an optional notice there.
        An htmx request is sent there with HX-Redirect (htmx would swap a 303 in place)."""
        if message:
            flash(self.request, message)
        if self.is_htmx:
            return Response(status_code=204, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)


def flash(request: Request, message: str, kind: str = "success") -> None:
    """A one-time notice shown at the top of the next page (already translated)."""
    notices = list(request.session.get(FLASH_KEY) or [])
    notices.append({"kind": kind, "text": message[:500]})
    request.session[FLASH_KEY] = notices[-3:]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a template of the UI (or the login page) in the request's language."""
    lang = language_of(request)
    env = ui_languages(request).environment(lang)
    notices = request.session.pop(FLASH_KEY, None) or []
    values = {
        "request": request,
        "lang": lang,
        "csrf": csrf_token(request),
        "path": request.url.path,
        "current_url": _current_url(request),
        "notices": notices,
        "user": None,
        **context,
    }
    html = env.get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code)


def _current_url(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def page_context(request: Request) -> PageContext:
    """The PageContext dependency: the signed-in user (else LoginRequired), the language, and a
    checked CSRF token on every POST (form field `csrf`, or header `X-CSRF-Token` from htmx)."""
    actor = await run_in_threadpool(session_actor, request)
    if actor is None:
        raise LoginRequired()
    if request.method in _UNSAFE_METHODS:
        given = request.headers.get(CSRF_HEADER)
        if not given:
            form = await request.form()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
        if not csrf_ok(request, given):
            raise CsrfRejected()
    return PageContext(
        request=request,
        container=get_container(request),
        user=actor,
        lang=language_of(request),
        csrf=csrf_token(request),
        languages=ui_languages(request),
    )


Page = Annotated[PageContext, Depends(page_context)]


def form_errors(
    exc: CxloopError,
    fields: dict[str, str] | None = None,
    default: str = "",
    page: PageContext | None = None,
) -> dict[str, str]:
    """A service's error as {form field: problem}, for the error summary and the message beside
    each input. `details` shaped [{"field", "problem"}] name their field; `fields` maps a
    service's field name to the form's where they differ. A message without details goes to
    `default` (a field's name, or "" for the form as a whole)."""
    errors: dict[str, str] = {}
    details = exc.details if isinstance(exc.details, list) else []
    for detail in details:
        if isinstance(detail, dict) and "problem" in detail:
            name = str(detail.get("field") or "")
            name = (fields or {}).get(name, name)
            errors.setdefault(name, str(detail["problem"]))
    if not errors:
        errors[default] = page.error_text(exc) if page is not None else exc.message
    return errors


class UiRoute(APIRoute):
    """A page route: the errors a page does not handle itself become pages, in one place.

    Not signed in -> /login?next=...; NotFound -> 404 page; Forbidden -> 403 page; a stale CSRF
    token -> 403 page saying to reload; bad query or form parameters -> 400 page; any other
    service error -> its status with its message.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (LoginRequired, Unauthenticated):
                return _to_login(request)
            except CsrfRejected:
                return await run_in_threadpool(error_page, request, 403, "csrf")
            except NotFound as exc:
                detail = error_text(request, exc)
                return await run_in_threadpool(error_page, request, 404, "not_found", detail)
            except Forbidden as exc:
                detail = error_text(request, exc)
                return await run_in_threadpool(error_page, request, 403, "forbidden", detail)
            except RequestValidationError:
                return await run_in_threadpool(error_page, request, 400, "bad_request")
            except CxloopError as exc:
                detail = error_text(request, exc)
                return await run_in_threadpool(
                    error_page, request, status_for(exc), "error", detail
                )

        return handle


def _to_login(request: Request) -> Response:
    """To the login page, and back afterwards: to this page for a GET; for a form post (whose
    address answers only POST) to the page the form was on, if it is ours."""
    if request.method == "GET":
        target = _current_url(request)
    else:
        referer = urlsplit(
            request.headers.get("hx-current-url") or request.headers.get("referer") or ""
        )
        same_site = not referer.netloc or referer.netloc == request.url.netloc
        target = safe_next(referer.path + (f"?{referer.query}" if referer.query else ""))
        target = target if same_site else "/"
    next_part = "" if target == "/" else f"?next={quote(target, safe='/')}"
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": f"/login{next_part}"})
    return RedirectResponse(f"/login{next_part}", status_code=303)


def ui_router() -> APIRouter:
    """A router for admin pages: page routes (UiRoute) and kept out of the API's schema."""
    return APIRouter(route_class=UiRoute, include_in_schema=False)


def error_page(request: Request, status: int, kind: str, detail: str | None = None) -> Response:
    """The error page for `kind` (not_found, forbidden, csrf, bad_request, error)."""
    user = session_actor(request) if request.session.get(SESSION_ID_KEY) else None
    return render(request, "ui/error.html", status_code=status, user=user, kind=kind, detail=detail)
