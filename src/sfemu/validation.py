"""Field values: deserialising JSON into field types, and checking values as Salesforce does.

Two stages, as in Salesforce: a value of the wrong JSON type fails the whole request while the
body is being read (JSON_PARSER_ERROR); a value of the right type that breaks a rule (too long,
not in a restricted picklist, not an email address) fails only its record, with the record's
own error code.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any

from .errors import RecordError, json_parser_error
from .schema import FieldDef, FieldType

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}:?\d{2})?$"
)

# The type Salesforce's error messages name for a field's value (any other field: string).
TYPE_NAMES = MappingProxyType(
    {
        FieldType.BOOLEAN: "boolean",
        FieldType.INT: "int",
        FieldType.DOUBLE: "double",
        FieldType.CURRENCY: "double",
        FieldType.PERCENT: "double",
        FieldType.DATE: "date",
        FieldType.DATETIME: "datetime",
        FieldType.ID: "id",
        FieldType.REFERENCE: "id",
    }
)


def format_datetime(moment: datetime) -> str:
    """REST form of a datetime: ``2024-05-01T12:00:00.000+0000`` (always UTC)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def now_iso() -> str:
    """The current time in REST datetime form."""
    return format_datetime(datetime.now(UTC))


def parse_datetime(text: str) -> datetime | None:
    """Parse the ISO 8601 forms Salesforce accepts; None when it is not one."""
    match = _DATETIME.match(text)
    if not match:
        return None
    day, clock, zone = match.groups()
    if clock.count(":") == 1:
        clock += ":00"
    if zone is None or zone == "Z":
        zone = "+00:00"
    elif ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    if "." in clock:
        whole, fraction = clock.split(".")
        clock = f"{whole}.{(fraction + '000000')[:6]}"
    try:
        return datetime.fromisoformat(f"{day}T{clock}{zone}")
    except ValueError:
        return None


def is_valid_date(text: str) -> bool:
    """Whether text is a real calendar date in YYYY-MM-DD form."""
    if not _DATE.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _parser_error(fdef: FieldDef, value: Any) -> Exception:
    token = {
        str: "VALUE_STRING",
        bool: "VALUE_TRUE" if value else "VALUE_FALSE",
        dict: "START_OBJECT",
        list: "START_ARRAY",
    }.get(type(value), "VALUE_NUMBER_FLOAT" if isinstance(value, float) else "VALUE_NUMBER_INT")
    type_name = TYPE_NAMES.get(fdef.type, "string")
    shown = value if not isinstance(value, dict | list) else ""
    return json_parser_error(
        f"Cannot deserialize instance of {type_name} from {token} value {shown} or request may be"
        " missing a"
        f" required field"
    )


def coerce(fdef: FieldDef, value: Any) -> Any:
    """Deserialise one JSON value into the field's type (raises SalesforceError JSON_PARSER_ERROR).

    Empty strings become null, as Salesforce stores them.
    """
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise _parser_error(fdef, value)
    ftype = fdef.type
    if fdef.is_text:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return _number_text(value)
        return value or None
    if ftype in (FieldType.ID, FieldType.REFERENCE):
        if not isinstance(value, str):
            raise _parser_error(fdef, value)
        return value or None
    if ftype == FieldType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if value == "":
            return None
        raise _parser_error(fdef, value)
    if ftype == FieldType.INT:
        if isinstance(value, bool):
            raise _parser_error(fdef, value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            if value == "":
                return None
            try:
                return int(value)
            except ValueError:
                pass
        raise _parser_error(fdef, value)
    if ftype in (FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT):
        if isinstance(value, bool):
            raise _parser_error(fdef, value)
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            if value == "":
                return None
            try:
                number = float(value)
            except ValueError:
                raise _parser_error(fdef, value) from None
        else:
            raise _parser_error(fdef, value)
        if math.isnan(number) or math.isinf(number):
            raise _parser_error(fdef, value)
        return number
    if ftype == FieldType.DATE:
        if isinstance(value, str):
            if value == "":
                return None
            if is_valid_date(value):
                return value
        raise _parser_error(fdef, value)
    if ftype == FieldType.DATETIME:
        if isinstance(value, str):
            if value == "":
                return None
            moment = parse_datetime(value)
            if moment is not None:
                return format_datetime(moment)
        raise _parser_error(fdef, value)
    return value


def check_value(fdef: FieldDef, value: Any) -> tuple[Any, RecordError | None]:
    """Check a deserialised, non-null value against the field's rules.

    Returns the value to store (numbers are rounded to the field's scale) and the error, if any.
    """
    ftype = fdef.type
    if fdef.is_text:
        if fdef.length and len(value) > fdef.length:
            return value, RecordError(
                "STRING_TOO_LONG",
                f"{fdef.label}: data value too large: {value} (max length={fdef.length})",
                [fdef.name],
            )
        if ftype == FieldType.EMAIL and not _EMAIL.match(value):
            return value, RecordError(
                "INVALID_EMAIL_ADDRESS",
                f"{fdef.label}: invalid email address: {value}",
                [fdef.name],
            )
        if fdef.restricted_picklist:
            allowed = fdef.picklist_values
            chosen = value.split(";") if ftype == FieldType.MULTIPICKLIST else [value]
            for entry in chosen:
                if entry not in allowed:
                    return value, RecordError(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        f"{fdef.label}: bad value for restricted picklist field: {entry}",
                        [fdef.name],
                    )
        return value, None
    if ftype in (FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT):
        rounded = round(value, fdef.scale)
        integer_digits = fdef.precision - fdef.scale
        if fdef.precision and abs(rounded) >= 10**integer_digits:
            return value, RecordError(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{fdef.label}: value outside of valid range on numeric field: {value}",
                [fdef.name],
            )
        return float(rounded), None
    if ftype == FieldType.INT and fdef.digits and abs(value) >= 10**fdef.digits:
        return value, RecordError(
            "NUMBER_OUTSIDE_VALID_RANGE",
            f"{fdef.label}: value outside of valid range on numeric field: {value}",
            [fdef.name],
        )
    return value, None


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
