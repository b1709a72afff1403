"""The browser's part of linking a Salesforce connection.

GET /oauth/salesforce/start/{id}: the one-time link that `POST /api/v1/connections` (or the
CLI) hands out. Opened in a browser signed in to cxloop as the user who started linking (else
via the login page and back), it sets a one-time HttpOnly cookie bound to the attempt and
sends the browser on to Salesforce's login page.

GET /oauth/salesforce/callback: where Salesforce sends the browser back. It completes only in
the browser holding that cookie, signed in as the same user; anywhere else, nothing is stored.
When the linking was started from an admin page, the browser goes back to that page with the
outcome as a notice; otherwise the result page says it.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cxloop.services import connections
from cxloop.web.deps import get_container, session_actor
from cxloop.web.errors import status_for
from cxloop.web.pages import templates
from cxloop.web.ui.accounts import take_return_to
from cxloop.web.ui.context import error_text, flash, translate

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
        return _result(request, False, error_text(request, exc), status_for(exc))
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
    return_to = take_return_to(request, connections.attempt_id_for_state(container.db, state))
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
        if return_to:
            flash(request, error_text(request, exc), kind="error")
            return RedirectResponse(return_to, status_code=303)
        return _result(request, False, error_text(request, exc), status_for(exc))
    # The attempt's one-time cookie is left to expire: it can open nothing any more.
    if return_to:
        flash(
            request,
            translate(
                request,
                "Connected %(name)s: %(user)s in org %(org)s.",
                name=connection.name, user=connection.username, org=connection.org_id,
            ),
        )  # fmt: skip
        separator = "&" if "?" in return_to else "?"
        return RedirectResponse(f"{return_to}{separator}connected={connection.id}", status_code=303)
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
