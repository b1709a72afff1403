"""No module holds mutable state at import time, and the layers import in one direction.

A static check of the source: a module-level name bound to a dict, list, set, OrderedDict,
TtlCache (or a comprehension of one) is state every container of the process would share.
Caches, clients and dispatchers belong to the container (`bootstrap.py`) and what it builds.
Constant tables are frozen (`MappingProxyType`, `frozenset`, tuples) or listed in ALLOWED with
the reason they must stay what they are.

The whole code base is checked (`test_no_module_anywhere_holds_mutable_state`).
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "cxloop"

MUTABLE_CALLS = {
    "dict", "list", "set", "OrderedDict", "defaultdict", "deque", "TtlCache",
    "WeakKeyDictionary", "WeakValueDictionary", "WeakSet",
}  # fmt: skip
MUTABLE_NODES = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)

# (module path under src/cxloop, name): why it stays a module-level mutable object.
ALLOWED = {
    ("bootstrap.py", "*"): "the composition root: what it holds is the container's",
    ("db/base.py", "NAMING_CONVENTION"): "SQLAlchemy's MetaData takes a dict; never changed",
    ("db/engine.py", "READ_ONLY"): "execution options SQLAlchemy takes as a dict; never changed",
}

# The ledger's area (issue #15, part A): held to the rule now.
LEDGER_AREA = (
    "bootstrap.py", "caching.py", "process.py", "ledger/", "engine/", "db/",
    "services/run_history.py", "services/outbound.py", "services/survey_content.py",
    "services/respondent.py", "services/transfers.py", "services/workflows.py",
    "services/doctor.py",
)  # fmt: skip


def _is_mutable(value: ast.expr, collections_names: set[str]) -> bool:
    if isinstance(value, MUTABLE_NODES):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        if isinstance(func, ast.Attribute):
            # collections.Counter, threading-free containers by attribute: weakref.WeakSet, ...
            name = func.attr
            return name in MUTABLE_CALLS or (
                name == "Counter"
                and isinstance(func.value, ast.Name)
                and func.value.id == "collections"
            )
        if isinstance(func, ast.Name):
            return func.id in MUTABLE_CALLS or func.id in collections_names
    return False


def module_state(path: Path) -> list[str]:
    """The module-level names of `path` bound to a mutable container."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # Counter is mutable only as collections' (prometheus_client has a Counter too).
    from_collections = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module == "collections"
        for alias in node.names
        if alias.name == "Counter"
    }
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if not _is_mutable(value, from_collections):
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id != "__all__":
                found.append(target.id)
    return found


def offenders(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        relative = path.relative_to(SOURCE).as_posix()
        if (relative, "*") in ALLOWED:
            continue
        for name in module_state(path):
            if (relative, name) not in ALLOWED:
                found.append(f"{relative}: {name}")
    return found


def source_files() -> list[Path]:
    return sorted(p for p in SOURCE.rglob("*.py") if "migrations" not in p.parts)


def in_ledger_area(path: Path) -> bool:
    relative = path.relative_to(SOURCE).as_posix()
    return any(relative == a or (a.endswith("/") and relative.startswith(a)) for a in LEDGER_AREA)


def test_the_check_finds_module_level_mutable_containers(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from collections import OrderedDict\n"
        "from prometheus_client import Counter\n"
        "from types import MappingProxyType\n"
        "_cache = {}\n"
        "_seen: set[str] = set()\n"
        "_lru = OrderedDict()\n"
        "_plans = TtlCache(10)\n"
        "_squares = [n * n for n in range(3)]\n"
        "CALLS = Counter('calls', 'Calls.')\n"
        "LABELS = MappingProxyType({'a': 'A'})\n"
        "KINDS = frozenset({'a'})\n"
        "ORDER = ('a', 'b')\n"
        "__all__ = ['x']\n"
        "def f():\n    local = {}\n    return local\n"
    )
    assert module_state(sample) == ["_cache", "_seen", "_lru", "_plans", "_squares"]


def test_the_ledger_area_holds_no_module_level_mutable_state() -> None:
    assert offenders([p for p in source_files() if in_ledger_area(p)]) == []


def test_no_module_anywhere_holds_mutable_state() -> None:
    assert offenders(source_files()) == []


def test_engine_and_bootstrap_do_not_import_each_other_and_domain_imports_nothing_of_ours() -> None:
    def imports(path: Path) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        return names

    for path in (SOURCE / "engine").rglob("*.py"):
        assert not any(n.startswith("cxloop.bootstrap") for n in imports(path)), path
    for path in (SOURCE / "domain").rglob("*.py"):
        ours = {n for n in imports(path) if n.startswith(("cxloop", "sfemu"))}
        assert all(n.startswith("cxloop.domain") for n in ours), (path, ours)
