"""Where in a JSON/YAML document a problem is: pydantic's error locations as readable paths."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


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
