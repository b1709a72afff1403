"""Shapes shared by API routers: strict request bodies and paginated lists."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class RequestBody(BaseModel):
    """Base of every request body: unknown fields and loose types are errors, not guesses."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Reply(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None
