"""Document problems a person can read: pydantic's error locations as paths, its error
kinds as plain messages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# pydantic error kinds → what a person reads next to the path.
FRIENDLY_MESSAGES = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "model_type": "must be a mapping (an object)",
    "model_attributes_type": "must be a mapping (an object)",
    "dict_type": "must be a mapping (an object)",
}


def document_path(
    loc: Iterable[Any],
    *,
    union_tags: frozenset[str],
    tagged_after: str,
    keep_last: bool = False,
) -> str:
    """`("questions", 2, "single_choice", "choices", 1)` → `questions[2].choices[1]`.

    pydantic names the union member it tried (a question type, "condition") right after a list
    index or after the field `tagged_after`; the document has no such key, so the path leaves
    it out. With `keep_last`, the last item stays even if it looks like a tag: an unknown key
    the user wrote.
    """
    items = list(loc)
    parts: list[str] = []
    for position, item in enumerate(items):
        previous = items[position - 1] if position else None
        is_kept = keep_last and position == len(items) - 1
        is_tag = item in union_tags and (isinstance(previous, int) or previous == tagged_after)
        if is_tag and not is_kept:
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts)
