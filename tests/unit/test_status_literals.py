"""Statuses are compared through the StrEnums of domain/statuses.py, never as string literals:
a literal with a typo ("succeded") is always false and nothing says so."""

from __future__ import annotations

import ast
from enum import StrEnum
from pathlib import Path

from cxloop.domain import statuses

SRC = Path(__file__).resolve().parents[2] / "src" / "cxloop"
STATUS_VALUES = frozenset(
    member.value
    for kind in vars(statuses).values()
    if isinstance(kind, type) and issubclass(kind, StrEnum) and kind is not StrEnum
    for member in kind
)


def _names_a_status(node: ast.expr) -> bool:
    """`x.status`, `status`, `run_status`...: an expression that holds a status."""
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return "status" in name


def _literals(node: ast.expr) -> list[ast.Constant]:
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return [i for i in items if isinstance(i, ast.Constant) and i.value in STATUS_VALUES]


def status_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, value) of each status literal compared with a status, or given to `.in_()` of
    a status column."""
    found: list[ast.Constant] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_names_a_status(side) for side in sides):
                found += [c for side in sides for c in _literals(side)]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("in_", "not_in")
            and _names_a_status(node.func.value)
        ):
            found += [c for arg in node.args for c in _literals(arg)]
    return sorted((c.lineno, c.value) for c in found)


def test_the_checker_finds_literals_and_passes_enums() -> None:
    code = (
        'if run.status == "failed": pass\n'
        'if status not in ("active", "closed"): pass\n'
        'q = Run.status.in_(("paused", "skipped"))\n'
        "if run.status == RunStatus.FAILED: pass\n"
        'if kind == "failed": pass\n'  # not a status: left alone
    )
    assert status_literals(ast.parse(code)) == [
        (1, "failed"), (2, "active"), (2, "closed"), (3, "paused"), (3, "skipped")
    ]  # fmt: skip


def test_services_web_and_cli_compare_statuses_through_their_enums() -> None:
    # engine/ and ledger/ are being changed on other branches: they join this check once merged.
    places = [
        f"{path.relative_to(SRC)}:{line}: {value!r}"
        for area in ("services", "web", "cli", "db", "demo", "mail")
        for path in sorted((SRC / area).rglob("*.py"))
        if "migrations" not in path.parts
        for line, value in status_literals(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not places, "use the StrEnums of domain/statuses.py:\n" + "\n".join(places)
