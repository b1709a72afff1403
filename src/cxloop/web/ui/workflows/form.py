"""The builder's form and the workflow document, both ways.

Every input of the builder is named by the document path it edits (`tasks[0].mappings[1].field`,
`conditions.conditions[0].operator`), the same path the workflow service's problems carry. So a
posted form turns into a document with `document_of(form)`, the service checks it (there is no
second validator here), and each problem lands beside the input with its path.

The builder's *state* is the document as the form holds it: strings where the document has
numbers or lists (so that a value a person typed is shown back exactly), plus keys the builder
does not edit, carried in a hidden `_extra` (JSON) so that nothing a YAML author wrote is lost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from cxloop.domain.conditions import EMPTINESS_OPERATORS, LIST_OPERATORS, NUMERIC_OPERATORS

_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d{1,3})\]|\.")
MAX_ITEMS = 200  # rows of one list a form may post (the document allows fewer anyway)

EVENT_KEYS = MappingProxyType({
    "survey_response": ("type", "when", "include_imported", "include_incomplete"),
    "salesforce_outbound_message": (
        "type", "connection", "object", "verify_session_id", "allowed_ips",
    ),
})  # fmt: skip
TASK_KEYS = MappingProxyType({
    "salesforce": (
        "type", "id", "name", "connection", "object", "action", "key_field", "key_value",
        "record_type", "mappings",
    ),
    "directory": (
        "type", "id", "name", "directory", "match_on", "contact", "mailing_list", "distribute",
        "frequency",
    ),
    "email": ("type", "id", "name", "to", "cc", "subject", "body"),
})  # fmt: skip
CONTACT_KEYS = ("email", "first_name", "last_name", "phone", "language", "external_ref")
DISTRIBUTE_KEYS = ("subject", "body", "from_name", "reply_to", "link_expiry_days")
SOURCE_TYPES = ("number", "boolean", "date", "datetime", "choice")


# --- posted form -> state


def unflatten(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form pairs named by document paths as nested dicts; list indexes stay dict keys (ints)
    until `_lists` orders them. A name that is not a path is ignored."""
    root: dict[str, Any] = {}
    for name, value in pairs:
        keys = _keys(name)
        if not keys:
            continue
        node: dict[Any, Any] = root
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        last = keys[-1]
        if last in node and not isinstance(node[last], dict):
            existing = node[last]
            node[last] = [*existing, value] if isinstance(existing, list) else [existing, value]
        elif last not in node:
            node[last] = value
    return _lists(root)


def _keys(name: str) -> list[str | int]:
    keys: list[str | int] = []
    position = 0
    while position < len(name):
        match = _TOKEN.match(name, position)
        if not match:
            return []
        if match.group(1):
            keys.append(match.group(1))
        elif match.group(2):
            index = int(match.group(2))
            if index >= MAX_ITEMS:
                return []
            keys.append(index)
        position = match.end()
    return keys


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(isinstance(k, int) for k in node):
            return [_lists(node[k]) for k in sorted(node)]
        return {k: _lists(v) for k, v in node.items() if not isinstance(k, int)}
    return node


# --- state -> document


def document_of(state: Mapping[str, Any]) -> dict[str, Any]:
    """The workflow document the form describes, for the workflow service to check."""
    document: dict[str, Any] = {"name": _text(state.get("name"))}
    if _text(state.get("description")):
        document["description"] = _text(state.get("description"))
    document["event"] = _event(_dict(state.get("event")))
    conditions = _dict(state.get("conditions"))
    if _list(conditions.get("conditions")):
        document["conditions"] = _group(conditions)
    if state.get("on_task_failure") in ("continue", "stop"):
        document["on_task_failure"] = state["on_task_failure"]
    document["tasks"] = [_task(_dict(t)) for t in _list(state.get("tasks"))]
    return document


def _event(state: dict[str, Any]) -> dict[str, Any]:
    kind = _text(state.get("type")) or "survey_response"
    event: dict[str, Any] = _extra(state) | {"type": kind}
    if kind == "salesforce_outbound_message":
        event["connection"] = _text(state.get("connection"))
        event["object"] = _text(state.get("object"))
        event["verify_session_id"] = _checked(state.get("verify_session_id"))
        event["allowed_ips"] = _lines(state.get("allowed_ips"))
    else:
        when = state.get("when")
        event["when"] = [w for w in (when if isinstance(when, list) else [when]) if w]
        event["include_imported"] = _checked(state.get("include_imported"))
        event["include_incomplete"] = _checked(state.get("include_incomplete"))
    return event


def _group(state: dict[str, Any]) -> dict[str, Any]:
    nodes = []
    for node in _list(state.get("conditions")):
        node = _dict(node)
        nodes.append(_group(node) if "join" in node else _condition(node))
    return {"join": _text(state.get("join")) or "and", "conditions": nodes}


def _condition(state: dict[str, Any]) -> dict[str, Any]:
    operator = _text(state.get("operator")) or "equals"
    condition: dict[str, Any] = {"field": _text(state.get("field")), "operator": operator}
    value = _text(state.get("value"))
    if operator in EMPTINESS_OPERATORS:
        return condition
    if operator in LIST_OPERATORS:
        condition["value"] = [v.strip() for v in re.split(r"[,\n]", value) if v.strip()]
    elif operator in NUMERIC_OPERATORS:
        condition["value"] = _number(value)
    else:
        condition["value"] = value
    return condition


def _task(state: dict[str, Any]) -> dict[str, Any]:
    kind = _text(state.get("type"))
    task: dict[str, Any] = _extra(state) | {"type": kind, "id": _text(state.get("id"))}
    if _text(state.get("name")):
        task["name"] = _text(state.get("name"))
    if kind == "salesforce":
        task["connection"] = _text(state.get("connection"))
        task["object"] = _text(state.get("object"))
        task["action"] = _text(state.get("action"))
        for key in ("key_field", "key_value", "record_type"):
            if _text(state.get(key)):
                task[key] = _text(state.get(key))
        if task["action"] == "insert":
            task.pop("key_field", None)
        task["mappings"] = [
            _mapping(_dict(m))
            for m in _list(state.get("mappings"))
            if _text(_dict(m).get("field")) or _text(_dict(m).get("value"))
        ]
    elif kind == "directory":
        task["directory"] = _text(state.get("directory")) or "Default"
        task["match_on"] = _text(state.get("match_on")) or "email"
        contact = _dict(state.get("contact"))
        task["contact"] = {k: _text(contact.get(k)) for k in CONTACT_KEYS if _text(contact.get(k))}
        task["contact"].setdefault("email", "")
        if _text(state.get("mailing_list")):
            task["mailing_list"] = _text(state.get("mailing_list"))
        distribute = _dict(state.get("distribute"))
        if _checked(distribute.get("enabled")):
            sent: dict[str, Any] = _extra(distribute)
            for key in DISTRIBUTE_KEYS:
                value = _text(distribute.get(key))
                if value:
                    sent[key] = _number(value) if key == "link_expiry_days" else value
            sent.setdefault("subject", "")
            sent.setdefault("body", "")
            carried = _pairs(distribute.get("embedded_data"))
            if carried:
                sent["embedded_data"] = carried
            task["distribute"] = sent
        frequency = _dict(state.get("frequency"))
        if _text(frequency.get("max_invitations")) or _text(frequency.get("days")):
            task["frequency"] = {
                "max_invitations": _number(_text(frequency.get("max_invitations"))),
                "days": _number(_text(frequency.get("days"))),
            }
    elif kind == "email":
        for key in ("to", "cc", "subject", "body"):
            if key != "cc" or _text(state.get(key)):
                task[key] = _text(state.get(key))
    return task


def _mapping(state: dict[str, Any]) -> dict[str, Any]:
    mapping: dict[str, Any] = _extra(state) | {
        "field": _text(state.get("field")),
        "value": _text(state.get("value")),
    }
    if _checked(state.get("constant")):
        mapping["constant"] = True
    else:
        mapping.pop("constant", None)
    source_type = _text(state.get("source_type"))
    if source_type in SOURCE_TYPES:
        mapping["source_type"] = source_type
    else:
        mapping.pop("source_type", None)
    return mapping


# --- document -> state


def state_of(document: Mapping[str, Any]) -> dict[str, Any]:
    """The form's state for a stored document: what each input shows."""
    event = dict(_dict(document.get("event")))
    kind = event.get("type", "survey_response")
    state: dict[str, Any] = {
        "name": document.get("name", ""),
        "description": document.get("description", ""),
        "on_task_failure": document.get("on_task_failure", "stop"),
        "event": _with_extra(event, EVENT_KEYS.get(kind, ("type",))),
        "conditions": _group_state(_dict(document.get("conditions"))),
        "tasks": [],
    }
    if kind == "salesforce_outbound_message":
        state["event"]["allowed_ips"] = "\n".join(event.get("allowed_ips") or [])
    for task in _list(document.get("tasks")):
        task = _dict(task)
        kind = task.get("type", "")
        shown = _with_extra(task, TASK_KEYS.get(kind, ("type", "id", "name")))
        if kind == "salesforce":
            shown["mappings"] = [
                _with_extra(_dict(m), ("field", "value", "constant", "source_type"))
                for m in _list(task.get("mappings"))
            ]
        if kind == "directory":
            distribute = _dict(task.get("distribute"))
            if distribute:
                shown["distribute"] = _with_extra(
                    distribute, (*DISTRIBUTE_KEYS, "embedded_data")
                ) | {"enabled": "on"}
                carried = _dict(distribute.get("embedded_data"))
                shown["distribute"]["embedded_data"] = "\n".join(
                    f"{k}={v}" for k, v in carried.items()
                )
        state["tasks"].append(_stringify(shown))
    return state


def _group_state(group: dict[str, Any]) -> dict[str, Any]:
    nodes = []
    for node in _list(group.get("conditions")):
        node = _dict(node)
        if "conditions" in node:
            nodes.append(_group_state(node))
        else:
            value = node.get("value")
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            nodes.append(
                {
                    "field": node.get("field", ""),
                    "operator": node.get("operator", "equals"),
                    "value": "" if value is None else _plain(value),
                }
            )
    return {"join": group.get("join", "and"), "conditions": nodes}


def _with_extra(node: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    known = set(keys)
    shown = {k: v for k, v in node.items() if k in known}
    extra = {k: v for k, v in node.items() if k not in known}
    if extra:
        shown["_extra"] = json.dumps(extra, sort_keys=True)
    return shown


def _stringify(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _stringify(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_stringify(v) for v in node]
    if isinstance(node, bool):
        return "on" if node else ""
    if isinstance(node, int | float):
        return _plain(node)
    return node


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- small conversions


def _extra(state: dict[str, Any]) -> dict[str, Any]:
    raw = state.get("_extra")
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        extra = json.loads(raw)
    except ValueError:
        return {}
    return extra if isinstance(extra, dict) else {}


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = value[-1] if value else ""
    return value.strip() if isinstance(value, str) else ""


def _checked(value: Any) -> bool:
    if isinstance(value, list):
        return any(_checked(v) for v in value)
    return value in ("on", "true", "1", True)


def _lines(value: Any) -> list[str]:
    return [line.strip() for line in re.split(r"[\n,]", _text(value)) if line.strip()]


def _pairs(value: Any) -> dict[str, str] | str:
    """`Name=value` lines as a dict; a line without `=` is returned as is for the service to
    refuse (beside the input)."""
    pairs: dict[str, str] = {}
    for line in _text(value).splitlines():
        if not line.strip():
            continue
        name, sep, text = line.partition("=")
        if not sep:
            return line.strip()
        pairs[name.strip()] = text.strip()
    return pairs


def _number(text: str) -> Any:
    if re.fullmatch(r"[+-]?\d{1,15}", text):
        return int(text)
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+)", text):
        return float(text)
    return text  # not a number: the service says so beside the input


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
