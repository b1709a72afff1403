"""Document problems a person can read: pydantic's error locations as paths, its error
kinds as plain messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, get_args

import yaml
from pydantic import BaseModel

# pydantic error kinds → what a person reads next to the path.
FRIENDLY_MESSAGES = MappingProxyType(
    {
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
)


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


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through lists, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        for model in _models_in(arg):
            if model not in found:
                found.append(model)
    return found


def allowed_keys(
    root: type[BaseModel], loc: Sequence[Any], tagged: Mapping[str, type[BaseModel]]
) -> list[str] | None:
    """The keys the mapping at `loc` may have (the last item of `loc` is the unknown key), or
    None when the model there cannot be told. `tagged` maps the union tags pydantic puts in a
    location (a task or question type) to their models."""
    current: type[BaseModel] | None = root
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        if item in tagged and (current is None or item not in current.model_fields):
            current = tagged[item]
            continue
        field = current.model_fields.get(item) if current is not None else None
        if field is None:
            return None
        models = _models_in(field.annotation)
        current = models[0] if len(models) == 1 else None
    if current is None:
        return None
    return [field.alias or name for name, field in current.model_fields.items()]


def unknown_key_message(key: Any, allowed: Sequence[str] | None) -> str:
    """`unknown key 'on': allowed keys are type, when, ...`."""
    message = f"unknown key {str(key)!r}"
    return f"{message}: allowed keys are {', '.join(allowed)}" if allowed else message


def common_message(
    error: Mapping[str, Any],
    loc: Sequence[Any],
    root: type[BaseModel],
    tagged: Mapping[str, type[BaseModel]],
) -> str:
    """The message of a pydantic error (at `loc`, in a document of model `root`) that no
    document's own sentence covers: an unknown key with the keys allowed there, a plain message
    for a common kind, else pydantic's own words. `tagged` as for `allowed_keys`."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return unknown_key_message(loc[-1], allowed_keys(root, loc, tagged))
    if kind in FRIENDLY_MESSAGES:
        return FRIENDLY_MESSAGES[kind]
    return str(error["msg"]).removeprefix("Value error, ")


def yaml_problem(exc: BaseException) -> str:
    """What is wrong with a YAML text, with line and column, in plain words: never the
    parser's internals (`in "<byte string>"`, marks, Python reprs)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = ", ".join(part for part in (exc.context, exc.problem) if part) or "not valid YAML"
        what = what.replace("<stream end>", "the end of the text")
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"{what}{where}"[:300]
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    return " ".join(str(exc).split())[:300]


class TextKeysLoader(yaml.SafeLoader):
    """Safe YAML whose mapping keys are the text written: YAML 1.1 reads a bare `on`, `off`,
    `yes` or `no` as a boolean, which would turn the key `on:` into `True`."""

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:bool":
                key_node.tag = "tag:yaml.org,2002:str"
        return node


class NoAliasLoader(TextKeysLoader):
    """Safe YAML without anchors/aliases, which only serve to blow up a hostile document; keys
    are the text written."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def shorten(text: str, limit: int = 40) -> str:
    """`text`, cut to at most `limit` characters with an ellipsis, for a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_value(value: Any, limit: int = 40) -> str:
    """A value as a message quotes it: text as it is, anything else by its repr, shortened."""
    if isinstance(value, str):
        return shorten(value, limit)
    try:
        return shorten(repr(value), limit)
    except Exception:  # e.g. an int too long to print; the message must still be made
        return f"a {type(value).__name__}"


def contains_nul(value: Any) -> bool:
    """Whether a NUL character stands anywhere in `value`: a text, or the keys and values of
    the mappings and lists it is made of (PostgreSQL stores no NUL in text or JSON)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(v) for v in value)
    return False
