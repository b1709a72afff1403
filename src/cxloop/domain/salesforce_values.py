"""Turn rendered piped text into the JSON value a Salesforce field takes. Pure.

Numbers become numbers, booleans booleans, dates `YYYY-MM-DD`, datetimes ISO 8601 in UTC,
multi-select picklists `A;B`. A value that cannot be what the field needs is a `ValueProblem`
with a message the survey owner can act on, found before anything is sent.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

_NUMBER_TYPES = frozenset({"int", "double", "currency", "percent", "long"})
_TRUE = frozenset({"true", "1", "yes", "y", "on", "checked"})
_FALSE = frozenset({"false", "0", "no", "n", "off", "unchecked", ""})


class ValueProblem(ValueError):
    """A value that does not fit its field; the message names both."""


def to_field_value(value: Any, field: dict[str, Any] | None) -> Any:
    """The value for `field` (a describe entry; None: send as text). Empty text is null."""
    if isinstance(value, list):
        items = [str(v) for v in value if v not in (None, "")]
        if field is not None and field.get("type") == "multipicklist":
            return ";".join(items) or None
        value = ", ".join(items)
    if value is None:
        return None
    text = str(value).strip() if not isinstance(value, bool | int | float) else value
    if text == "":
        return None
    field_type = str(field.get("type", "string")) if field else "string"
    name = field.get("name", "the field") if field else "the field"
    if field_type in _NUMBER_TYPES:
        return _number(text, field_type, name)
    if field_type == "boolean":
        return _boolean(text, name)
    if field_type == "date":
        return _date(text, name)
    if field_type == "datetime":
        return _datetime(text, name)
    if field_type == "multipicklist":
        parts = [p.strip() for p in str(text).replace(",", ";").split(";")]
        return ";".join(p for p in parts if p) or None
    text = str(text)
    length = int(field.get("length") or 0) if field else 0
    if (
        length
        and len(text) > length
        and field_type in ("string", "textarea", "email", "phone", "url")
    ):
        raise ValueProblem(f"{len(text)} characters do not fit {name}, which holds {length}")
    return text


def _number(text: Any, field_type: str, name: str) -> int | float:
    if isinstance(text, bool):
        raise ValueProblem(f"{name} is a number field; a yes/no value does not fit it")
    try:
        number = float(text)
    except ValueError:
        raise ValueProblem(
            f"{text!r} is not a number, but {name} is a {field_type} field"
        ) from None
    if math.isnan(number) or math.isinf(number):
        raise ValueProblem(f"{text!r} is not a number {name} can hold")
    if field_type in ("int", "long"):
        if not number.is_integer():
            raise ValueProblem(f"{text!r} is not a whole number, but {name} takes whole numbers")
        return int(number)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _boolean(text: Any, name: str) -> bool:
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueProblem(f"{text!r} is not yes/no, but {name} is a checkbox")


def _date(text: Any, name: str) -> str:
    raw = str(text)
    for parse in (date.fromisoformat, lambda s: _parse_datetime(s).date()):
        try:
            return parse(raw).isoformat()
        except ValueError:
            continue
    raise ValueProblem(f"{raw!r} is not a date (YYYY-MM-DD), but {name} is a date field")


def _datetime(text: Any, name: str) -> str:
    raw = str(text)
    try:
        moment = _parse_datetime(raw)
    except ValueError:
        raise ValueProblem(
            f"{raw!r} is not a date and time (ISO 8601), but {name} is a date/time field"
        ) from None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _parse_datetime(raw: str) -> datetime:
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    # Piped dates without a zone (StartDate, EndDate) are stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
