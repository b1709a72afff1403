"""The latency model and Salesforce's concurrency rule for long-running requests.

A real org answers a REST call in tens to hundreds of milliseconds and spends time on every
record of a Collections, Composite or Bulk call (triggers, flows, validation). The model gives
each org a fixed delay per call (``latency_ms``) plus a delay per record (``per_record_ms``).
Delays are awaited (REST calls) or slept in the Bulk worker thread, never on the event loop's
thread, so a slow call does not hold up the others.

Salesforce also limits concurrent inbound requests that have run for 20 seconds or longer
(Developer Edition and trial orgs: 5; production orgs and sandboxes: 25). Past the limit a new
call is refused with 403 ``REQUEST_LIMIT_EXCEEDED`` ("ConcurrentPerOrgLongTxn Limit exceeded.")
until fewer long requests run. ``long_request_s`` and ``concurrent_long_limit`` are settings of
the model, so tests can use a threshold of 0.2 s.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from .errors import SalesforceError

DEFAULT_LONG_REQUEST_S = 20.0
DEVELOPER_LONG_LIMIT = 5
PRODUCTION_LONG_LIMIT = 25


def default_long_limit(kind: str, edition: str) -> int:
    """Salesforce's limit on concurrent long requests for an org: 5 for Developer Edition and
    trial orgs, 25 for production orgs and sandboxes."""
    if kind == "sandbox":
        return PRODUCTION_LONG_LIMIT
    lowered = edition.lower()
    if "developer" in lowered or "trial" in lowered:
        return DEVELOPER_LONG_LIMIT
    return PRODUCTION_LONG_LIMIT


@dataclass
class LatencyModel:
    """How slow one org is, and how many long requests it tolerates at once."""

    latency_ms: float = 0.0
    per_record_ms: float = 0.0
    long_request_s: float = DEFAULT_LONG_REQUEST_S
    concurrent_long_limit: int = PRODUCTION_LONG_LIMIT

    KEYS = ("latency_ms", "per_record_ms", "long_request_s", "concurrent_long_limit")

    def call_delay_s(self) -> float:
        """Seconds every REST call waits."""
        return self.latency_ms / 1000.0

    def records_delay_s(self, records: int) -> float:
        """Seconds a call that handles this many records waits on top of the call's delay."""
        return self.per_record_ms * records / 1000.0

    def as_dict(self) -> dict[str, Any]:
        """The model as JSON."""
        return asdict(self)

    def update(self, values: dict[str, Any]) -> None:
        """Change some settings; raises ValueError naming the first bad one (nothing changed)."""
        checked: dict[str, Any] = {}
        for key in ("latency_ms", "per_record_ms"):
            if key in values:
                checked[key] = _number(key, values[key], minimum=0.0)
        if "long_request_s" in values:
            checked["long_request_s"] = _number("long_request_s", values["long_request_s"])
            if checked["long_request_s"] <= 0:
                raise ValueError("long_request_s must be a number of seconds > 0")
        if "concurrent_long_limit" in values:
            value = values["concurrent_long_limit"]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError("concurrent_long_limit must be a whole number >= 1")
            checked["concurrent_long_limit"] = value
        for key, value in checked.items():
            setattr(self, key, value)


def _number(key: str, value: Any, minimum: float | None = None) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{key} must be a number")
    if minimum is not None and value < minimum:
        raise ValueError(f"{key} must be >= {minimum:g}")
    return float(value)


def concurrent_limit_exceeded() -> SalesforceError:
    """403 REQUEST_LIMIT_EXCEEDED for too many concurrent long-running requests."""
    return SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")


class InFlight:
    """The REST calls running now, per org, with their start times."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets = itertools.count(1)
        self._running: dict[str, dict[int, float]] = {}

    def enter(self, org_id: str, model: LatencyModel) -> int:
        """Register a call; raises REQUEST_LIMIT_EXCEEDED when the org already runs as many
        long requests as its limit allows. Returns the ticket to give to ``leave``."""
        now = time.monotonic()
        with self._lock:
            running = self._running.setdefault(org_id, {})
            long_ones = sum(
                1 for started in running.values() if now - started >= model.long_request_s
            )
            if long_ones >= model.concurrent_long_limit:
                raise concurrent_limit_exceeded()
            ticket = next(self._tickets)
            running[ticket] = now
            return ticket

    def leave(self, org_id: str, ticket: int) -> None:
        """Unregister a finished call."""
        with self._lock:
            self._running.get(org_id, {}).pop(ticket, None)

    def long_running(self, org_id: str, model: LatencyModel) -> int:
        """How many of the org's calls have run for at least the model's threshold."""
        now = time.monotonic()
        with self._lock:
            return sum(
                1
                for started in self._running.get(org_id, {}).values()
                if now - started >= model.long_request_s
            )

    def running(self, org_id: str) -> int:
        """How many of the org's calls are running."""
        with self._lock:
            return len(self._running.get(org_id, {}))
