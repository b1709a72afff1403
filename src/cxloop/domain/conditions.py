"""Conditions: a small tree of comparisons joined by and/or, evaluated against named fields.

Used for a question's display logic ("show if") and meant to be reused for workflow conditions.
A condition compares one **field** with a value. What a field name means belongs to the caller:
evaluation asks a ``resolve(field)`` function for the field's current value, so display logic
resolves ``QID1`` to an answer, and a workflow may resolve ``e://Field/CaseId`` to embedded data.

Document shape (JSON / YAML)::

    {"field": "QID1", "operator": "equals", "value": "2"}
    {"join": "or", "conditions": [<condition or group>, ...]}

Operators and what they do with the resolved value (``actual``):

=====================  =========================================================================
``equals``             same value; numbers compare as numbers (``3`` equals ``"3.0"``); a list
                       equals a value when one of its items does (a selected choice)
``not_equals``         not ``equals``
``less_than`` ...      ``less_than``, ``less_or_equal``, ``greater_than``, ``greater_or_equal``:
                       both sides must be numbers (or text holding a plain decimal number),
                       otherwise the comparison is false; a list compares item by item (any)
``contains``           text: contains the value, ignoring case; list: has the value as an item
``not_contains``       not ``contains``
``is_empty``           nothing there: missing, ``None``, blank text, empty list
``is_not_empty``       not ``is_empty``
``in_list``            the value is a list; true when ``actual`` (or one of its items) equals one
``not_in_list``        not ``in_list``
=====================  =========================================================================

Evaluation never raises for odd values: a comparison that makes no sense is simply false.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    model_validator,
)

Operator = Literal[
    "equals",
    "not_equals",
    "less_than",
    "less_or_equal",
    "greater_than",
    "greater_or_equal",
    "contains",
    "not_contains",
    "is_empty",
    "is_not_empty",
    "in_list",
    "not_in_list",
]
OPERATORS: tuple[str, ...] = Operator.__args__  # type: ignore[attr-defined]

NUMERIC_OPERATORS = frozenset({"less_than", "less_or_equal", "greater_than", "greater_or_equal"})
EMPTINESS_OPERATORS = frozenset({"is_empty", "is_not_empty"})
LIST_OPERATORS = frozenset({"in_list", "not_in_list"})

MAX_DEPTH = 8
MAX_CONDITIONS = 200
MAX_LIST_VALUES = 500

# A plain decimal number as a person types it: no thousands separators, no "1_000", no "nan".
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

Scalar = str | int | float | bool


def _check_value(value: Any) -> Any:
    """Accept a scalar, a list of scalars, or None; reject anything else with a clear message."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("the value must be a finite number")
        return value
    if isinstance(value, list):
        if len(value) > MAX_LIST_VALUES:
            raise ValueError(f"a list may hold at most {MAX_LIST_VALUES} values")
        for item in value:
            if item is None or isinstance(item, list) or _check_value(item) is not item:
                raise ValueError("list items must be text, numbers or true/false")
        return list(value)
    raise ValueError("the value must be text, a number, true/false, a list of those, or null")


ConditionValue = Annotated[Scalar | list[Scalar] | None, PlainValidator(_check_value)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class Condition(_Model):
    """One comparison: ``field`` ``operator`` ``value``."""

    field: str = Field(min_length=1, max_length=500)
    operator: Operator
    value: ConditionValue = None

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Condition:
        message = value_problem(self.operator, self.value)
        if message:
            raise ValueError(message)
        return self


def _node_tag(value: Any) -> str:
    if isinstance(value, ConditionGroup) or (isinstance(value, dict) and "conditions" in value):
        return "group"
    return "condition"


ConditionNode = Annotated[
    Annotated[Condition, Tag("condition")] | Annotated["ConditionGroup", Tag("group")],
    Discriminator(_node_tag),
]


class ConditionGroup(_Model):
    """Conditions (or nested groups) joined by ``and`` (all must hold) or ``or`` (any)."""

    join: Literal["and", "or"] = "and"
    conditions: list[ConditionNode] = Field(min_length=1, max_length=MAX_CONDITIONS)

    @model_validator(mode="after")
    def _not_too_deep(self) -> ConditionGroup:
        if depth(self) > MAX_DEPTH:
            raise ValueError(f"conditions may be nested at most {MAX_DEPTH} groups deep")
        if sum(1 for _ in iter_conditions(self)) > MAX_CONDITIONS:
            raise ValueError(f"at most {MAX_CONDITIONS} conditions are allowed in one tree")
        return self


ConditionGroup.model_rebuild()

CONDITION_TAGS = frozenset({"condition", "group"})


def value_problem(operator: str, value: Any) -> str | None:
    """Say in words why ``value`` cannot be used with ``operator``, or return None if it can."""
    if operator in EMPTINESS_OPERATORS:
        return None if value is None else f"'{operator}' takes no value; remove the value"
    if value is None:
        return f"'{operator}' needs a value to compare with"
    if operator in LIST_OPERATORS:
        return None if isinstance(value, list) else f"'{operator}' needs a list of values"
    if isinstance(value, list):
        return f"'{operator}' compares with one value, not a list (use 'in_list' for a list)"
    if operator in NUMERIC_OPERATORS and to_number(value) is None:
        return f"'{operator}' needs a number to compare with"
    return None


def iter_conditions(node: Condition | ConditionGroup) -> Iterator[Condition]:
    """Yield every condition in the tree, depth first, in document order."""
    if isinstance(node, Condition):
        yield node
        return
    for child in node.conditions:
        yield from iter_conditions(child)


def conditions_with_paths(
    node: Condition | ConditionGroup, path: str
) -> Iterator[tuple[str, Condition]]:
    """Every condition in a tree with its document path (`show_if.conditions[1]`)."""
    if isinstance(node, Condition):
        yield path, node
        return
    for index, child in enumerate(node.conditions):
        yield from conditions_with_paths(child, f"{path}.conditions[{index}]")


def depth(node: Condition | ConditionGroup) -> int:
    """How many groups deep the tree goes (a lone condition is 0)."""
    if isinstance(node, Condition):
        return 0
    return 1 + max(depth(child) for child in node.conditions)


def evaluate(node: Condition | ConditionGroup, resolve: Callable[[str], Any]) -> bool:
    """Evaluate a condition tree; ``resolve`` gives the current value of a field name."""
    if isinstance(node, Condition):
        return compare(resolve(node.field), node.operator, node.value)
    if node.join == "and":
        return all(evaluate(child, resolve) for child in node.conditions)
    return any(evaluate(child, resolve) for child in node.conditions)


def compare(actual: Any, operator: str, expected: Any) -> bool:
    """Apply one operator to a resolved value. Unknown operators and odd values give False."""
    if operator == "is_empty":
        return is_empty(actual)
    if operator == "is_not_empty":
        return not is_empty(actual)
    if operator == "equals":
        return _any_item(actual, lambda item: values_equal(item, expected))
    if operator == "not_equals":
        return not compare(actual, "equals", expected)
    if operator in NUMERIC_OPERATORS:
        return _any_item(actual, lambda item: _compare_numbers(item, operator, expected))
    if operator == "contains":
        return _contains(actual, expected)
    if operator == "not_contains":
        return not _contains(actual, expected)
    if operator == "in_list":
        if not isinstance(expected, list | tuple):
            return False
        return _any_item(actual, lambda item: any(values_equal(item, e) for e in expected))
    if operator == "not_in_list":
        return not compare(actual, "in_list", expected)
    return False


def is_empty(value: Any) -> bool:
    """True for None, blank text and empty collections."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict | set | frozenset):
        return len(value) == 0
    return False


def to_number(value: Any) -> float | None:
    """The value as a finite number, or None: numbers as they are, text only if a plain decimal."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value) if not isinstance(value, int) or abs(value) < 2**1000 else None
        return number if number is not None and math.isfinite(number) else None
    if isinstance(value, str) and len(value) <= 100:
        text = value.strip()
        if _NUMBER_RE.fullmatch(text):
            number = float(text)
            return number if math.isfinite(number) else None
    return None


def values_equal(left: Any, right: Any) -> bool:
    """Equality between two scalars as a person means it: numbers by value, flags by truth."""
    if isinstance(left, bool) or isinstance(right, bool):
        return _as_bool(left) is not None and _as_bool(left) == _as_bool(right)
    left_number, right_number = to_number(left), to_number(right)
    # Numbers compare as numbers when at least one side really is a number: "01" and "1" stay
    # different texts, but 3 equals "3.0".
    both_text = isinstance(left, str) and isinstance(right, str)
    if left_number is not None and right_number is not None and not both_text:
        return left_number == right_number
    if isinstance(left, str | int | float) and isinstance(right, str | int | float):
        return str(left) == str(right)
    return False


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
    return None


def _any_item(actual: Any, test: Callable[[Any], bool]) -> bool:
    if isinstance(actual, list | tuple):
        return any(test(item) for item in actual)
    return test(actual)


def _compare_numbers(actual: Any, operator: str, expected: Any) -> bool:
    left, right = to_number(actual), to_number(expected)
    if left is None or right is None:
        return False
    if operator == "less_than":
        return left < right
    if operator == "less_or_equal":
        return left <= right
    if operator == "greater_than":
        return left > right
    return left >= right


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list | tuple):
        return any(values_equal(item, expected) for item in actual)
    if (
        isinstance(actual, str)
        and isinstance(expected, str | int | float)
        and not isinstance(expected, bool)
    ):
        return str(expected).casefold() in actual.casefold()
    return False
