"""API request allocation: a rolling 24-hour counter per org, and the /limits document."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

WINDOW_S = 24 * 3600
BUCKET_S = 60

# The limits an org reports besides DailyApiRequests, with the maxima of the "List Org Limits"
# example of Salesforce's REST API Developer Guide (API 66.0); static here. A limit is listed
# from the API version that introduced it (and until the one that renamed it), as the
# "Limits" resource page says: DailyBulkApiRequests became DailyBulkApiBatches in 49.0, the
# Bulk API 2.0 query limits arrived in 47.0, DailyAsyncApexTests in 56.0.
_STATIC_LIMITS: tuple[tuple[str, int, float, float], ...] = (
    # (name, max, first version, first version without it)
    ("ActiveScratchOrgs", 3, 0.0, 999.0),
    ("AnalyticsExternalDataSizeMB", 40960, 0.0, 999.0),
    ("ConcurrentAsyncGetReportInstances", 200, 0.0, 999.0),
    ("ConcurrentEinsteinDataInsightsStoryCreation", 5, 0.0, 999.0),
    ("ConcurrentEinsteinDiscoveryStoryCreation", 2, 0.0, 999.0),
    ("ConcurrentSyncReportRuns", 20, 0.0, 999.0),
    ("DailyAnalyticsDataflowJobExecutions", 60, 0.0, 999.0),
    ("DailyAnalyticsUploadedFilesSizeMB", 51200, 0.0, 999.0),
    ("DailyFunctionsApiCallLimit", 235000, 0.0, 999.0),
    ("DailyAsyncApexExecutions", 250000, 0.0, 999.0),
    ("DailyAsyncApexTests", 500, 56.0, 999.0),
    ("DailyBulkApiRequests", 15000, 0.0, 49.0),
    ("DailyBulkApiBatches", 15000, 49.0, 999.0),
    ("DailyBulkV2QueryFileStorageMB", 976562, 47.0, 999.0),
    ("DailyBulkV2QueryJobs", 10000, 47.0, 999.0),
    ("DailyDeliveredPlatformEvents", 10000, 0.0, 999.0),
    ("DailyDurableGenericStreamingApiEvents", 10000, 0.0, 999.0),
    ("DailyDurableStreamingApiEvents", 10000, 0.0, 999.0),
    ("DailyEinsteinDataInsightsStoryCreation", 1000, 0.0, 999.0),
    ("DailyEinsteinDiscoveryPredictAPICalls", 50000, 0.0, 999.0),
    ("DailyEinsteinDiscoveryPredictionsByCDC", 5000000, 0.0, 999.0),
    ("DailyEinsteinDiscoveryStoryCreation", 100, 0.0, 999.0),
    ("DailyGenericStreamingApiEvents", 10000, 0.0, 999.0),
    ("DailyScratchOrgs", 6, 0.0, 999.0),
    ("DailyStandardVolumePlatformEvents", 10000, 0.0, 999.0),
    ("DailyStreamingApiEvents", 10000, 0.0, 999.0),
    ("DailyWorkflowEmails", 100000, 0.0, 999.0),
    ("DataStorageMB", 1024, 0.0, 999.0),
    ("DurableStreamingApiConcurrentClients", 20, 0.0, 999.0),
    ("FileStorageMB", 1024, 0.0, 999.0),
    ("HourlyAsyncReportRuns", 1200, 0.0, 999.0),
    ("HourlyDashboardRefreshes", 200, 0.0, 999.0),
    ("HourlyDashboardResults", 5000, 0.0, 999.0),
    ("HourlyDashboardStatuses", 999999999, 0.0, 999.0),
    ("HourlyLongTermIdMapping", 100000, 0.0, 999.0),
    ("HourlyManagedContentPublicRequests", 50000, 0.0, 999.0),
    ("HourlyODataCallout", 20000, 0.0, 999.0),
    ("HourlyPublishedPlatformEvents", 50000, 0.0, 999.0),
    ("HourlyPublishedStandardVolumePlatformEvents", 1000, 0.0, 999.0),
    ("HourlyShortTermIdMapping", 100000, 0.0, 999.0),
    ("HourlySyncReportRuns", 500, 0.0, 999.0),
    ("HourlyTimeBasedWorkflow", 1000, 0.0, 999.0),
    ("MassEmail", 5000, 0.0, 999.0),
    ("MonthlyEinsteinDiscoveryStoryCreation", 500, 0.0, 999.0),
    ("Package2VersionCreates", 6, 0.0, 999.0),
    ("Package2VersionCreatesWithoutValidation", 500, 0.0, 999.0),
    ("PermissionSets", 1500, 0.0, 999.0),
    ("PlatformEventTriggersWithParallelProcessing", 5, 0.0, 999.0),
    ("PrivateConnectOutboundCalloutHourlyLimitMB", 0, 0.0, 999.0),
    ("SingleEmail", 5000, 0.0, 999.0),
    ("StreamingApiConcurrentClients", 20, 0.0, 999.0),
)
# Sub-limits nested in a limit's entry, as in the documented example.
_NESTED: dict[str, dict[str, int]] = {"PermissionSets": {"CreateCustom": 1000}}


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


def limits_body(used: int, allocation: int, version: float = 62.0) -> dict[str, Any]:
    """The /limits document of API ``version`` with the org's live DailyApiRequests."""
    body: dict[str, Any] = {}
    for name, maximum, since, until in _STATIC_LIMITS:
        if since <= version < until:
            entry: dict[str, Any] = {"Max": maximum, "Remaining": maximum}
            for sub, sub_max in _NESTED.get(name, {}).items():
                entry[sub] = {"Max": sub_max, "Remaining": sub_max}
            body[name] = entry
    body["DailyApiRequests"] = {"Max": allocation, "Remaining": max(0, allocation - used)}
    return dict(sorted(body.items()))
