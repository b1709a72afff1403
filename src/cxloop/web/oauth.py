"""GET /oauth/salesforce/callback: where Salesforce sends the browser back after login."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from cxloop.services import connections
from cxloop.web.deps import SESSION_USER_KEY, get_container
from cxloop.web.pages import templates

router = APIRouter(include_in_schema=False)


@router.get("/oauth/salesforce/callback", response_class=HTMLResponse)
def salesforce_callback(
    request: Request,
    state: Annotated[str, Query(max_length=200)] = "",
    code: Annotated[str | None, Query(max_length=2000)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    container = get_container(request)
    try:
        connection = connections.complete_linking(
            container.db,
            container.settings,
            state=state,
            code=code,
            error=error,
            error_description=error_description,
            browser_user_id=request.session.get(SESSION_USER_KEY),
        )
    except connections.LinkingFailed as exc:
        return templates.TemplateResponse(
            request, "oauth_result.html", {"ok": False, "message": exc.message}, status_code=400
        )
    return templates.TemplateResponse(
        request,
        "oauth_result.html",
        {
            "ok": True,
            "message": f"Connected {connection.name}: {connection.username} in org "
            f"{connection.org_id}. You can close this window.",
        },
    )
