"""Partial updates (PATCH a survey, a directory, a contact): which fields a change may name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cxloop.errors import InvalidInput


def check_changeable(changes: Mapping[str, Any], changeable: Iterable[str]) -> None:
    """InvalidInput naming every field of `changes` that is not `changeable`, before anything
    is read or written."""
    unknown = set(changes) - set(changeable)
    if unknown:
        raise InvalidInput(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
