"""Fault injection: make the next N calls (or a fraction of calls) fail the way Salesforce does.

A fault applies to calls of one org (or all), optionally of one user, one HTTP method and a
path fragment, on one target: ``rest`` (``/services/data/...``), ``oauth`` (the token endpoint),
``outbound`` (message delivery) or ``bulk`` (each record of a Bulk API 2.0 ingest job:
``method`` is the job's operation, ``path`` matches ``/jobs/ingest/{jobId}/{Object}``; the
record fails with the error, nothing of it is written). It fires for the next ``count``
matching calls, or for each call with probability ``fraction``, or for every call until
removed. What it does:

- ``error``: answer with a Salesforce error instead of doing the call (UNABLE_TO_LOCK_ROW,
  SERVER_UNAVAILABLE / 503, REQUEST_LIMIT_EXCEEDED, INVALID_SESSION_ID, UNKNOWN_EXCEPTION / 500);
- ``latency_ms``: wait before answering (alone or with an error);
- ``mode: commit_then_drop``: do the call, commit it, then close the connection without an
  answer (the ambiguous failure: the client cannot know the write happened);
- ``mode: drop``: close the connection without doing anything;
- ``mode: duplicate`` (outbound only): deliver an acknowledged message once more.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

from .errors import SalesforceError

TARGETS = ("rest", "oauth", "outbound", "bulk")
MODES = ("error", "commit_then_drop", "drop", "duplicate", "latency")

# error name -> (HTTP status, errorCode, message)
ERRORS: dict[str, tuple[int, str, str]] = {
    "UNABLE_TO_LOCK_ROW": (
        400,
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record or 1 records",
    ),
    "SERVER_UNAVAILABLE": (
        503,
        "SERVER_UNAVAILABLE",
        "Server is temporarily unavailable. Please try again later.",
    ),
    "REQUEST_LIMIT_EXCEEDED": (403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    "INVALID_SESSION_ID": (401, "INVALID_SESSION_ID", "Session expired or invalid"),
    "UNKNOWN_EXCEPTION": (
        500,
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred. Please include this ErrorId if you contact support:"
        " 1409652917-57(-1549926394)",
    ),
}
_ALIASES = {"503": "SERVER_UNAVAILABLE", "500": "UNKNOWN_EXCEPTION"}


class FaultSpecError(ValueError):
    """A fault specification that cannot work; the message says why."""


@dataclass
class Fault:
    """One active fault rule."""

    id: str
    target: str = "rest"
    org_id: str | None = None
    username: str | None = None
    method: str | None = None
    path: str | None = None
    error: str | None = None
    mode: str = "error"
    count: int | None = None
    fraction: float | None = None
    latency_ms: int = 0
    fired: int = 0

    def matches(
        self, target: str, org_id: str | None, username: str | None, method: str, path: str
    ) -> bool:
        """Whether the fault concerns this call (before deciding whether it fires)."""
        if self.target != target:
            return False
        if self.org_id is not None and org_id != self.org_id:
            return False
        if self.username is not None and (username or "").lower() != self.username.lower():
            return False
        if self.method is not None and method.upper() != self.method.upper():
            return False
        return self.path is None or self.path in path

    def as_dict(self) -> dict[str, Any]:
        """JSON form (control API)."""
        return {
            "id": self.id,
            "target": self.target,
            "org": self.org_id,
            "user": self.username,
            "method": self.method,
            "path": self.path,
            "error": self.error,
            "mode": self.mode,
            "count": self.count,
            "fraction": self.fraction,
            "latency_ms": self.latency_ms,
            "fired": self.fired,
        }

    def rest_error(self, record_hint: str = "") -> SalesforceError:
        """The REST error this fault answers with."""
        status, code, message = ERRORS[self.error or "SERVER_UNAVAILABLE"]
        if code == "UNABLE_TO_LOCK_ROW" and record_hint:
            message = f"{message}: {record_hint}"
        fields: list[str] | None = [] if code == "UNABLE_TO_LOCK_ROW" else None
        return SalesforceError(status, code, message, fields)


@dataclass
class Decision:
    """What the faults say about one call: wait this long, then maybe fail or drop."""

    latency_ms: int = 0
    fault: Fault | None = None

    @property
    def mode(self) -> str | None:
        """The firing fault's mode, if any."""
        return self.fault.mode if self.fault else None


class FaultBoard:
    """The active faults, in the order they were added."""

    def __init__(self, seed: int | None = None) -> None:
        self.faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._random = random.Random(seed)

    def add(self, spec: dict[str, Any], org_id: str | None) -> Fault:
        """Validate a fault specification (control API JSON) and activate it."""
        allowed = {
            "org",
            "user",
            "target",
            "method",
            "path",
            "error",
            "mode",
            "count",
            "fraction",
            "latency_ms",
            "seed",
        }
        unknown = set(spec) - allowed
        if unknown:
            raise FaultSpecError(
                f"unknown key(s) {', '.join(sorted(unknown))};"
                f" allowed: {', '.join(sorted(allowed))}"
            )
        target = spec.get("target", "rest")
        if target not in TARGETS:
            raise FaultSpecError(f"target must be one of {', '.join(TARGETS)}")
        error = spec.get("error")
        if error is not None:
            error = _ALIASES.get(str(error), str(error))
            if error not in ERRORS:
                raise FaultSpecError(f"error must be one of {', '.join([*ERRORS, *_ALIASES])}")
        latency = spec.get("latency_ms", 0)
        if not isinstance(latency, int | float) or latency < 0:
            raise FaultSpecError("latency_ms must be a number >= 0")
        mode = spec.get("mode")
        if mode is None:
            mode = "error" if error else "latency" if latency else None
        if mode not in MODES:
            raise FaultSpecError(
                f"say what the fault does: an error, latency_ms, or a mode among {', '.join(MODES)}"
            )
        if mode == "error" and error is None:
            raise FaultSpecError("mode error needs an error")
        if mode == "duplicate" and target != "outbound":
            raise FaultSpecError("mode duplicate is for target outbound")
        if target == "bulk" and mode != "error":
            raise FaultSpecError(
                "bulk faults fail records of Bulk API 2.0 ingest jobs: give an error"
            )
        if target == "outbound" and mode not in ("duplicate", "latency"):
            raise FaultSpecError(
                "outbound faults are duplicate (redeliver an acknowledged message) or latency"
            )
        count = spec.get("count")
        fraction = spec.get("fraction")
        if count is not None and (
            not isinstance(count, int) or isinstance(count, bool) or count < 1
        ):
            raise FaultSpecError("count must be a whole number >= 1")
        if fraction is not None and (
            not isinstance(fraction, int | float) or not 0 < fraction <= 1
        ):
            raise FaultSpecError("fraction must be a number in (0, 1]")
        if count is not None and fraction is not None:
            raise FaultSpecError("give count or fraction, not both")
        if "seed" in spec:
            self._random.seed(spec["seed"])
        fault = Fault(
            id=f"fault-{next(self._ids)}",
            target=target,
            org_id=org_id,
            username=spec.get("user"),
            method=spec.get("method"),
            path=spec.get("path"),
            error=error,
            mode=mode,
            count=count,
            fraction=float(fraction) if fraction is not None else None,
            latency_ms=int(latency),
        )
        self.faults.append(fault)
        return fault

    def decide(
        self, target: str, org_id: str | None, username: str | None, method: str, path: str
    ) -> Decision:
        """Which faults fire for this call (consuming counts); latency adds up, the first
        failing fault wins."""
        decision = Decision()
        for fault in list(self.faults):
            if not fault.matches(target, org_id, username, method, path):
                continue
            if fault.fraction is not None and self._random.random() >= fault.fraction:
                continue
            fault.fired += 1
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
            decision.latency_ms += fault.latency_ms
            if fault.mode != "latency" and decision.fault is None:
                decision.fault = fault
        return decision

    def remove(self, fault_id: str) -> bool:
        """Deactivate one fault."""
        before = len(self.faults)
        self.faults = [f for f in self.faults if f.id != fault_id]
        return len(self.faults) != before

    def clear(self, org_id: str | None = None) -> int:
        """Deactivate all faults (of one org)."""
        before = len(self.faults)
        self.faults = [f for f in self.faults if org_id is not None and f.org_id != org_id]
        return before - len(self.faults)
