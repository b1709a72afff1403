"""Conditions: a tree of comparisons joined by and/or, evaluated against resolved fields."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from cxloop.domain.conditions import (
    OPERATORS,
    Condition,
    ConditionGroup,
    ConditionNode,
    compare,
    evaluate,
    is_empty,
    to_number,
    value_problem,
)

NODE = TypeAdapter(ConditionNode)


def resolver(values: dict[str, Any]):
    return values.get


@pytest.mark.parametrize(
    ("actual", "operator", "expected", "result"),
    [
        ("2", "equals", "2", True),
        ("2", "equals", "3", False),
        (9, "equals", "9", True),
        (9, "equals", 9.0, True),
        ("01", "equals", "1", False),  # two texts compare as texts
        (["1", "3"], "equals", "3", True),  # a list equals a value it holds (a selected choice)
        (["1", "3"], "not_equals", "3", False),
        (None, "not_equals", "1", True),
        (5, "less_than", 7, True),
        (7, "less_or_equal", 7, True),
        (8, "greater_than", "7.5", True),
        (7, "greater_or_equal", 8, False),
        ("abc", "greater_than", 1, False),  # not a number: the comparison is false
        (None, "less_than", 1, False),
        ([1, 9], "greater_than", 8, True),
        ("Refund please", "contains", "refund", True),  # text: ignoring case
        ("Refund please", "not_contains", "refund", False),
        (["10", "1"], "contains", "1", True),  # list: an item, not a substring
        (["10"], "contains", "1", False),
        (None, "is_empty", None, True),
        ("   ", "is_empty", None, True),
        ([], "is_empty", None, True),
        ({}, "is_empty", None, True),
        (0, "is_empty", None, False),
        ("x", "is_not_empty", None, True),
        ("b", "in_list", ["a", "b"], True),
        (["c", "b"], "in_list", ["a", "b"], True),
        ("c", "in_list", ["a", "b"], False),
        ("c", "not_in_list", ["a", "b"], True),
        (True, "equals", "true", True),
        ("false", "equals", False, True),
        ("x", "in_list", "not a list", False),
        ("x", "no_such_operator", "x", False),
    ],
)
def test_operators_compare_as_a_person_means(
    actual: Any, operator: str, expected: Any, result: bool
) -> None:
    assert compare(actual, operator, expected) is result


def test_groups_join_with_and_or() -> None:
    tree = ConditionGroup(
        join="or",
        conditions=[
            ConditionGroup(
                conditions=[
                    Condition(field="nps", operator="less_than", value=7),
                    Condition(field="channel", operator="equals", value="email"),
                ]
            ),
            Condition(field="vip", operator="equals", value=True),
        ],
    )
    assert evaluate(tree, resolver({"nps": 3, "channel": "email"}))
    assert not evaluate(tree, resolver({"nps": 3, "channel": "sms"}))
    assert evaluate(tree, resolver({"nps": 10, "vip": "true"}))
    assert not evaluate(tree, resolver({}))


def test_document_shape_parses_groups_and_conditions() -> None:
    node = NODE.validate_python(
        {
            "join": "and",
            "conditions": [
                {"field": "QID1", "operator": "equals", "value": "1"},
                {"join": "or", "conditions": [{"field": "QID2", "operator": "is_empty"}]},
            ],
        },
        strict=True,
    )
    assert isinstance(node, ConditionGroup)
    assert isinstance(node.conditions[1], ConditionGroup)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"field": "x", "operator": "is_empty", "value": 1}, "takes no value"),
        ({"field": "x", "operator": "equals"}, "needs a value"),
        ({"field": "x", "operator": "less_than", "value": "abc"}, "needs a number"),
        ({"field": "x", "operator": "in_list", "value": "a"}, "needs a list"),
        ({"field": "x", "operator": "equals", "value": ["a"]}, "use 'in_list'"),
        ({"field": "x", "operator": "equals", "value": {"a": 1}}, "must be text, a number"),
        ({"field": "x", "operator": "in_list", "value": [["a"]]}, "list items must be"),
    ],
)
def test_a_value_that_does_not_fit_the_operator_is_refused_with_reason(
    condition: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        NODE.validate_python(condition, strict=True)
    assert message in str(info.value)


def test_unknown_operator_and_extra_keys_are_refused() -> None:
    with pytest.raises(ValidationError):
        NODE.validate_python({"field": "x", "operator": "like", "value": "a"}, strict=True)
    with pytest.raises(ValidationError):
        NODE.validate_python({"field": "x", "operator": "equals", "value": 1, "y": 2}, strict=True)
    with pytest.raises(ValidationError):
        NODE.validate_python({"join": "xor", "conditions": []}, strict=True)


def test_trees_nested_too_deep_are_refused() -> None:
    node: dict[str, Any] = {"field": "x", "operator": "is_empty"}
    for _ in range(12):
        node = {"join": "and", "conditions": [node]}
    with pytest.raises(ValidationError) as info:
        NODE.validate_python(node, strict=True)
    assert "nested at most" in str(info.value)


def test_numbers_from_text_are_plain_decimals_only() -> None:
    assert to_number("3.5") == 3.5
    assert to_number(" -2 ") == -2
    assert to_number("1e3") == 1000
    assert to_number("1_000") is None
    assert to_number("nan") is None
    assert to_number("1,5") is None
    assert to_number(True) is None
    assert to_number(float("inf")) is None
    assert to_number(10**400) is None


def test_is_empty() -> None:
    assert is_empty(None) and is_empty("") and is_empty(" \n") and is_empty([])
    assert not is_empty(0) and not is_empty(False) and not is_empty("0")


def test_value_problem_accepts_what_fits() -> None:
    assert value_problem("equals", "x") is None
    assert value_problem("less_than", "3") is None
    assert value_problem("in_list", [1, "a"]) is None
    assert value_problem("is_not_empty", None) is None


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(actual=_values, operator=st.sampled_from(OPERATORS), expected=_values)
def test_compare_never_raises(actual: Any, operator: str, expected: Any) -> None:
    assert compare(actual, operator, expected) in (True, False)
