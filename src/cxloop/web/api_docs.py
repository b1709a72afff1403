"""`/docs` (Swagger UI) and `/redoc` (ReDoc): the API reference, served from the package.

Both pages load only files of this server (`/static/vendor/...`, pinned versions with their
licences): they work offline and behind a Content-Security-Policy of `script-src 'self'`, since
the code that starts them is a static file too (`/static/docs/*.js`), not an inline script.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

SWAGGER_UI = "/static/vendor/swagger-ui-5.35.0"
REDOC = "/static/vendor/redoc-2.5.2"

router = APIRouter(include_in_schema=False)


def _page(title: str, head: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n{head}</head>\n<body>\n{body}</body>\n</html>\n"
    )


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """The API reference as Swagger UI: every operation, with "Try it out"."""
    openapi_url = escape(request.app.openapi_url or "/openapi.json")
    return _page(
        f"{request.app.title} API",
        f'<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css">\n',
        f'<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>\n'
        f'<script src="{SWAGGER_UI}/swagger-ui-bundle.js"></script>\n'
        '<script src="/static/docs/swagger-init.js"></script>\n',
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """The API reference as ReDoc: one long readable page."""
    openapi_url = escape(request.app.openapi_url or "/openapi.json")
    return _page(
        f"{request.app.title} API",
        "",
        f'<div id="redoc" data-openapi-url="{openapi_url}"></div>\n'
        f'<script src="{REDOC}/redoc.standalone.js"></script>\n'
        '<script src="/static/docs/redoc-init.js"></script>\n',
    )
