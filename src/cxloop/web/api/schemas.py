"""Shapes shared by API routers: strict request bodies and paginated lists."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from types import MappingProxyType
from typing import Any, Generic, TypeVar, get_type_hints

from fastapi import Response
from pydantic import BaseModel, ConfigDict, create_model, field_validator

from cxloop.domain.document_paths import contains_nul
from cxloop.errors import InvalidInput

T = TypeVar("T")
# The largest integer a row id can be (SQLite's INTEGER, PostgreSQL's BIGINT): a larger one in
# a query would make the driver fail rather than find nothing.
MAX_ROW_ID = 2**63 - 1


class RequestBody(BaseModel):
    """Base of every request body: unknown fields and loose types are errors, not guesses.

    A field a change may leave out but not clear is declared `name: str = Field(default=None)`:
    the default (left out) is not validated, an explicit null is refused like any other value
    of the wrong type, and the OpenAPI schema says `string`, not "string or null".
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*")
    @classmethod
    def _no_nul_characters(cls, value: Any) -> Any:
        if contains_nul(value):
            raise ValueError("text must not contain NUL characters")
        return value


class OwnMediaType(Response):
    """`response_class` of an endpoint that answers in a media type of its own (text, YAML, a
    stream) and says which in `responses`. For the OpenAPI document only (the endpoint returns
    its own Response): with no media type here, its error replies stay documented as JSON."""

    media_type = None


class Reply(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def reply_model(
    name: str, view: type[Any], module: str, *, omit: Collection[str] = ()
) -> type[Reply]:
    """A reply named `name` (declared in `module`, as OpenAPI names it) that carries exactly the
    fields of a service's dataclass `view`, in its order and with its types, every one required:
    for a reply that is the view as it stands, so the two cannot drift apart. `omit` names the
    view's fields the reply leaves out (a list's items, without what only the detail shows)."""
    types = get_type_hints(view)
    names = [f.name for f in dataclasses.fields(view)]
    if unknown := set(omit) - set(names):
        raise TypeError(f"{view.__name__} has no field {', '.join(sorted(unknown))}")
    fields: dict[str, Any] = {n: (types[n], ...) for n in names if n not in omit}
    return create_model(name, __base__=Reply, __module__=module, **fields)


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    """Every error of the API: `{"error": {"code", "message", "details"}}`."""

    error: ErrorBody


_ERROR_MEANINGS = MappingProxyType(
    {
        400: "Malformed: the body is not valid JSON, or a value cannot be read",
        401: "No API token, or one that is unknown, expired or revoked",
        403: "The token's user may not do this (e.g. admin only)",
        404: "Not found, or not visible to the token's user",
        409: "In conflict with what is stored (a name taken, a stale version, a limit reached)",
        413: "The body is larger than the server accepts",
        415: "The body's Content-Type is not one this endpoint reads",
        422: "Invalid input; `details` lists every problem",
        429: "Too many attempts; `Retry-After` says when to try again",
    }
)
API_ERRORS = (400, 401, 403, 404, 409, 413, 422, 429)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with our error shape."""
    return {
        status: {"model": ErrorOut, "description": _ERROR_MEANINGS[status]} for status in statuses
    }


def if_match_number(if_match: str | None, what: str, *, max_digits: int) -> int | None:
    """The number an If-Match header gives back from our ETag (`"3"`, or weak `W/"3"`), or
    None without the header. `what` names it in the error: "a workflow revision"."""
    if if_match is None:
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdecimal() or len(text) > max_digits:
        raise InvalidInput(
            f'If-Match must be {what} from an ETag, such as "3".', code="bad_if_match"
        )
    return int(text)
