"""API request allocation: a rolling 24-hour counter per org, and the /limits document."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

WINDOW_S = 24 * 3600
BUCKET_S = 60

# The limits an org reports besides DailyApiRequests, as a Developer Edition org shows them
# (see reference/salesforce/limits_response_simple_salesforce_fixture.json); static here.
_STATIC_LIMITS: dict[str, tuple[int, int]] = {
    "ConcurrentAsyncGetReportInstances": (200, 200),
    "ConcurrentSyncReportRuns": (20, 20),
    "DailyAsyncApexExecutions": (250000, 250000),
    "DailyBulkApiRequests": (5000, 5000),
    "DailyDurableGenericStreamingApiEvents": (10000, 10000),
    "DailyDurableStreamingApiEvents": (10000, 10000),
    "DailyGenericStreamingApiEvents": (10000, 10000),
    "DailyStreamingApiEvents": (10000, 10000),
    "DailyWorkflowEmails": (390, 390),
    "DataStorageMB": (5, 5),
    "DurableStreamingApiConcurrentClients": (20, 20),
    "FileStorageMB": (20, 20),
    "HourlyAsyncReportRuns": (1200, 1200),
    "HourlyDashboardRefreshes": (200, 200),
    "HourlyDashboardResults": (5000, 5000),
    "HourlyDashboardStatuses": (999999999, 999999999),
    "HourlyODataCallout": (10000, 10000),
    "HourlySyncReportRuns": (500, 500),
    "HourlyTimeBasedWorkflow": (50, 50),
    "MassEmail": (10, 10),
    "SingleEmail": (15, 15),
    "StreamingApiConcurrentClients": (20, 20),
}


class ApiUsage:
    """Calls counted in per-minute buckets over a rolling 24 hours."""

    def __init__(self) -> None:
        self._buckets: deque[list[int]] = deque()  # [minute, count], oldest first
        self._total = 0

    def _expire(self, now: float) -> None:
        oldest = int(now // BUCKET_S) - WINDOW_S // BUCKET_S
        while self._buckets and self._buckets[0][0] <= oldest:
            self._total -= self._buckets.popleft()[1]

    def used(self, now: float | None = None) -> int:
        """Calls in the last 24 hours."""
        self._expire(time.time() if now is None else now)
        return self._total

    def add(self, count: int = 1, now: float | None = None) -> int:
        """Count calls; returns the new total."""
        now = time.time() if now is None else now
        self._expire(now)
        minute = int(now // BUCKET_S)
        if self._buckets and self._buckets[-1][0] == minute:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([minute, count])
        self._total += count
        return self._total

    def reset(self) -> None:
        """Forget every call."""
        self._buckets.clear()
        self._total = 0

    def snapshot(self) -> list[list[int]]:
        """The buckets, for persistence."""
        return [list(bucket) for bucket in self._buckets]

    def restore(self, buckets: list[list[int]]) -> None:
        """Load buckets saved by snapshot()."""
        self._buckets = deque([int(m), int(c)] for m, c in buckets)
        self._total = sum(c for _m, c in self._buckets)


def limit_info_header(used: int, allocation: int) -> str:
    """The Sforce-Limit-Info header value."""
    return f"api-usage={used}/{allocation}"


def limits_body(used: int, allocation: int) -> dict[str, Any]:
    """The /limits document with the org's DailyApiRequests."""
    body: dict[str, Any] = {}
    for name, (maximum, remaining) in _STATIC_LIMITS.items():
        body[name] = {"Max": maximum, "Remaining": remaining}
    body["DailyApiRequests"] = {"Max": allocation, "Remaining": max(0, allocation - used)}
    return dict(sorted(body.items()))
