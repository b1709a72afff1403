"""The ASGI application: ``create_app(settings)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import bulk, control, oauth, rest, web
from .emulator import Emulator
from .errors import not_found
from .httputil import RAW_SEND_KEY, error_response, json_response
from .settings import EmulatorSettings


class EmulatorApp(FastAPI):
    """FastAPI that keeps the server's own ``send`` in the scope, so a fault can drop the
    connection without an answer (see httputil.drop_connection)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            scope[RAW_SEND_KEY] = send
        await super().__call__(scope, receive, send)


def create_app(
    settings: EmulatorSettings | None = None, *, emulator: Emulator | None = None
) -> EmulatorApp:
    """Build the emulator app. ``app.state.emulator`` is the Emulator (for direct control).

    The outbound delivery thread starts with the app's lifespan (uvicorn) or, when no lifespan
    runs (httpx.ASGITransport), when the first message is queued.
    """
    emulator = emulator or Emulator(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if (
            any(n.status == "pending" for n in emulator.outbound.queue.values())
            and emulator.settings.outbound_autostart
        ):
            emulator.outbound.start()
        yield
        emulator.outbound.stop()

    app = EmulatorApp(
        title="sfemu",
        description="A local Salesforce emulator: OAuth, REST, sObject Collections, outbound"
        " messages, faults.",
        docs_url="/__emulator__/docs",
        openapi_url="/__emulator__/openapi.json",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.emulator = emulator
    app.include_router(rest.router)
    app.include_router(bulk.router)
    app.include_router(oauth.router)
    app.include_router(control.router)
    app.include_router(web.router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/__emulator__/ui")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Paths no route matches (a newline in a path segment, /services/apexrest) still answer
        # in Salesforce's envelope under /services, and in FastAPI's form elsewhere.
        if request.url.path.startswith("/services/"):
            if exc.status_code == 405:
                return json_response(
                    [
                        {
                            "errorCode": "METHOD_NOT_ALLOWED",
                            "message": f"HTTP Method '{request.method}' not allowed",
                        }
                    ],
                    405,
                )
            return (
                error_response(not_found())
                if exc.status_code == 404
                else json_response(
                    [{"errorCode": "UNKNOWN_EXCEPTION", "message": str(exc.detail)}],
                    exc.status_code,
                )
            )
        return json_response({"detail": exc.detail}, exc.status_code, getattr(exc, "headers", None))

    return app
