"""The browser's part of linking a Salesforce connection.

GET /oauth/salesforce/start/{id}: the one-time link that `POST /api/v1/connections` (or the
CLI) hands out. Opened in a browser signed in to cxloop as the user who started linking (else
via the login page and back), it sets a one-time HttpOnly cookie bound to the attempt and
sends the browser on to Salesforce's login page.

GET /oauth/salesforce/callback: where Salesforce sends the browser back. It completes only in
the browser holding that cookie, signed in as the same user; anywhere else, nothing is stored.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cxloop.services import connections
from cxloop.web.deps import get_container, session_actor
from cxloop.web.pages import templates

router = APIRouter(include_in_schema=False)

CALLBACK_PATH = "/oauth/salesforce/callback"


@router.get("/oauth/salesforce/start/{bootstrap}", response_class=HTMLResponse)
def salesforce_start(request: Request, bootstrap: Annotated[str, Path(max_length=100)]) -> Response:
    actor = session_actor(request)
    if actor is None:
        target = quote(f"/oauth/salesforce/start/{bootstrap}", safe="/")
        return RedirectResponse(f"/login?next={target}", status_code=303)
    container = get_container(request)
    try:
        started = connections.begin_in_browser(
            container.db, container.settings, bootstrap, actor.id
        )
    except connections.LinkingFailed as exc:
        return _result(request, False, exc.message, exc.http_status)
    response = RedirectResponse(started.salesforce_url, status_code=303)
    response.set_cookie(
        started.cookie_name,
        started.cookie_value,
        max_age=started.max_age_s,
        path=CALLBACK_PATH,
        httponly=True,
        # Lax: Salesforce sends the browser back with a top-level GET, which carries it.
        samesite="lax",
        secure=container.settings.base_url.startswith("https://"),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get(CALLBACK_PATH, response_class=HTMLResponse)
def salesforce_callback(
    request: Request,
    state: Annotated[str, Query(max_length=200)] = "",
    code: Annotated[str | None, Query(max_length=2000)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    container = get_container(request)
    actor = session_actor(request)
    try:
        connection = connections.complete_linking(
            container.db,
            container.settings,
            state=state,
            code=code,
            error=error,
            error_description=error_description,
            browser_user_id=actor.id if actor else None,
            browser_cookies=request.cookies,
        )
    except connections.LinkingFailed as exc:
        return _result(request, False, exc.message, exc.http_status)
    # The attempt's one-time cookie is left to expire: it can open nothing any more.
    return _result(
        request,
        True,
        f"Connected {connection.name}: {connection.username} in org {connection.org_id}. "
        "You can close this window.",
        200,
    )


def _result(request: Request, ok: bool, message: str, status: int) -> Response:
    return templates.TemplateResponse(
        request,
        "oauth_result.html",
        {"ok": ok, "message": message},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )
