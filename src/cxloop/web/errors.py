"""One JSON error shape for the whole API: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from cxloop.errors import (
    Conflict,
    CxloopError,
    Expired,
    Forbidden,
    InvalidInput,
    LimitReached,
    Misconfigured,
    NotFound,
    TooLarge,
    TooManyAttempts,
    Unauthenticated,
    Unreadable,
)
from cxloop.web.middleware import loggable_path

log = structlog.get_logger(__name__)


class UnsupportedMediaType(CxloopError):
    """The request body comes in a format this address does not read (its Content-Type)."""

    code = "unsupported_media_type"


# The one place where what went wrong becomes an HTTP status, and, where HTTP has its own word
# for it, the reply's code: error kind -> (status, code or None to keep the error's own code).
# An error takes the entry of its nearest listed ancestor (its class's method resolution order).
ERROR_STATUSES: Mapping[type[CxloopError], tuple[int, str | None]] = MappingProxyType(
    {
        CxloopError: (400, None),
        Unreadable: (400, None),
        Unauthenticated: (401, None),
        Forbidden: (403, None),
        NotFound: (404, None),
        Conflict: (409, None),
        LimitReached: (409, None),
        Expired: (410, None),
        TooLarge: (413, "body_too_large"),
        UnsupportedMediaType: (415, None),
        InvalidInput: (422, None),
        TooManyAttempts: (429, None),
        Misconfigured: (500, None),
    }
)


def status_for(exc: CxloopError) -> int:
    """The HTTP status that answers `exc`, from ERROR_STATUSES."""
    return _entry_for(exc)[0]


def code_for(exc: CxloopError) -> str:
    """The code the JSON error shape carries for `exc`."""
    return _entry_for(exc)[1] or exc.code


def _entry_for(exc: CxloopError) -> tuple[int, str | None]:
    for kind in type(exc).__mro__:
        entry = ERROR_STATUSES.get(kind)
        if entry is not None:
            return entry
    return ERROR_STATUSES[CxloopError]


_STATUS_CODES = MappingProxyType(
    {
        400: "bad_request",
        401: "unauthenticated",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        408: "request_timeout",
        409: "conflict",
        413: "body_too_large",
        415: "unsupported_media_type",
        422: "invalid_input",
        429: "too_many_requests",
    }
)


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details}},
        status_code=status,
        headers=headers,
    )


def _describe_location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def validation_problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Every problem pydantic found, as {field, problem} a person can read."""
    problems = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        kind = error.get("type", "")
        field = _describe_location(loc)
        if kind == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}"
        elif kind == "missing":
            message = "this field is required"
        else:
            message = str(error.get("msg", "is not valid"))
        problems.append({"field": field, "problem": message, "type": kind})
    return problems


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts at the request's path, found by asking the routes about
    each method in turn. (Starlette's own `Allow` names the methods of the first route at the
    path only, when several routes share it.)"""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    # None: a mounted app refused the method from inside (the static files, which only read).
    return allowed or ["GET", "HEAD"]


def install_error_handlers(app: FastAPI) -> None:
    """Make every error, expected or not, leave in the one shape, never with a stack trace."""

    @app.exception_handler(CxloopError)
    async def _cxloop_error(_request: Request, exc: CxloopError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
        if isinstance(exc, TooManyAttempts):
            headers = {"Retry-After": str(exc.retry_after_s)}
        return error_response(status_for(exc), code_for(exc), exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = validation_problems(exc)
        if any(p["type"] == "json_invalid" for p in problems):
            return error_response(
                400,
                "malformed_json",
                "The request body is not valid JSON.",
                [{"field": p["field"], "problem": p["problem"]} for p in problems],
            )
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
        return error_response(
            422,
            "invalid_input",
            f"The request is not valid: {summary}.",
            [{"field": p["field"], "problem": p["problem"]} for p in problems],
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = "There is nothing at this address."
        elif exc.status_code == 405:
            allowed = allowed_methods(request)
            message = f"This address accepts {', '.join(allowed)}, not {request.method}."
            return error_response(405, code, message, headers={"Allow": ", ".join(allowed)})
        elif exc.status_code == 400 and message == "There was an error parsing the body":
            code, message = "malformed_body", "The request body could not be read."
        return error_response(exc.status_code, code, message, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("http.unexpected_error", path=loggable_path(request.scope))
        return error_response(
            500,
            "internal_error",
            "Something went wrong on our side; the error was logged with this request's id.",
        )
