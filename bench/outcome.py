"""How a benchmark ends: its figures, or, when the work it timed did not all succeed, no figure.

A rate measured over work that partly failed (a refused or lost message, a missing record, a
client error) says nothing: the failed part was cheap or never done. Every benchmark here puts
its failure counters in the result and ends through `finish`: when one of them is not zero it
prints only the counters and a `failed` list saying what went wrong, and exits with status 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn


class BenchFailed(Exception):
    """The work a benchmark times went wrong in a way that voids its figures."""


def failures(counters: Mapping[str, Any]) -> list[str]:
    """The counters that show a failure: any number above 0, any True, any non-empty mapping."""
    found = []
    for name, value in counters.items():
        if isinstance(value, Mapping):
            if value:
                found.append(f"{name}: {json.dumps(value, sort_keys=True)}")
        elif value:
            found.append(f"{name}: {value}")
    return found


def finish(result: dict[str, Any], counters: Mapping[str, Any], keep: Iterable[str] = ()) -> None:
    """Print `result` (which holds `counters`) as one JSON line; when a counter shows a failure,
    print only the counters, the keys named in `keep` (sizes, settings) and `failed`, and exit 1.
    """
    failed = failures(counters)
    if not failed:
        print(json.dumps(result), flush=True)
        return
    refuse(failed, {k: result[k] for k in keep if k in result} | dict(counters))


def refuse(failed: list[str], facts: Mapping[str, Any]) -> NoReturn:
    """Print what failed (no figure) as one JSON line and exit with status 1."""
    print(json.dumps({**facts, "failed": failed}), flush=True)
    print(
        "no figures: the work did not all succeed (" + "; ".join(failed) + ")",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(1)
