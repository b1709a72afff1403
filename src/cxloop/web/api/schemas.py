"""Shapes shared by API routers: strict request bodies and paginated lists."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

T = TypeVar("T")


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
        if _contains_nul(value):
            raise ValueError("text must not contain NUL characters")
        return value


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_contains_nul(v) for v in value)
    return False


class Reply(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None
