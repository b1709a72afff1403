"""The opt-out page, `/optout/{token}`: no login, no JavaScript, idempotent.

The token in the address is the permission: it carries the contact id signed with the app's
secret key (`security.opt_out_token`), so no cookie or CSRF token is needed, as on the
respondent's survey pages. GET shows the (masked) address and a button; POST opts the contact
out, again and again if asked. A POST whose body is `List-Unsubscribe=One-Click` (RFC 8058, sent
by mail clients) works the same way. A forged or stale token gets a 404 page, never an error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from cxloop.db.uow import Database
from cxloop.errors import CxloopError
from cxloop.services import directory
from cxloop.services.directory import OptOutView
from cxloop.web.deps import get_container

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True
router = APIRouter(include_in_schema=False)

# The token is in the address: keep it out of caches and out of other sites' Referer headers.
_HEADERS = MappingProxyType({"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
MAX_TOKEN_LENGTH = 200
DONE = "You will not receive further survey invitations."


@router.get("/optout/{token}", response_class=HTMLResponse)
async def show_opt_out(request: Request, token: str) -> Response:
    view = await _call(request, directory.opt_out_view, token)
    if view is None:
        return _not_found(request)
    if view.opted_out:
        return _page(request, token, "You have unsubscribed", DONE, view, done=True)
    return _page(request, token, "Unsubscribe from surveys", "", view, done=False)


@router.post("/optout/{token}", response_class=HTMLResponse)
async def opt_out(request: Request, token: str) -> Response:
    view = await _call(request, directory.opt_out_with_token, token)
    if view is None:
        return _not_found(request)
    return _page(request, token, "You have unsubscribed", DONE, view, done=True)


async def _call(
    request: Request, action: Callable[[Database, str, str], OptOutView], token: str
) -> OptOutView | None:
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    container = get_container(request)
    secret = container.settings.secret_key
    assert secret is not None
    try:
        return await run_in_threadpool(action, container.db, secret.get_secret_value(), token)
    except CxloopError:
        return None


def _page(
    request: Request, token: str, title: str, message: str, view: OptOutView, *, done: bool
) -> Response:
    context = {
        "title": title,
        "message": message,
        "masked_email": view.masked_email,
        "done": done,
        "action": f"/optout/{token}",
        "language": "en",
    }
    return templates.TemplateResponse(request, "optout.html", context, headers=_HEADERS)


def _not_found(request: Request) -> Response:
    context = {
        "title": "Link not valid",
        "message": "This unsubscribe link is not valid. Check that it was copied whole, or use "
        "the link in the most recent invitation you received.",
        "masked_email": "",
        "done": True,
        "action": "",
        "language": "en",
    }
    return templates.TemplateResponse(
        request, "optout.html", context, status_code=404, headers=_HEADERS
    )
