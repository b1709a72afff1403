"""Prometheus metrics, defined once; `/metrics` serves them.

With several server processes (`cxloop serve --processes N`) every process writes its metrics
to files in `PROMETHEUS_MULTIPROC_DIR` (prometheus_client's multiprocess mode, chosen when it is
imported), and `/metrics`, whichever process answers, adds them all up.
"""

from __future__ import annotations

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def registry() -> CollectorRegistry:
    """What `/metrics` serves: this process's metrics, or every process's in multiprocess mode."""
    if not os.environ.get(MULTIPROCESS_DIR_ENV):
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    return collected


HTTP_REQUESTS = Counter(
    "cxloop_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "cxloop_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Gauges: the latest value any process set (the queue is one; an org's usage is the org's).
QUEUE_DEPTH = Gauge(
    "cxloop_queue_depth", "Messages waiting in the queue", multiprocess_mode="mostrecent"
)
PERIODIC_RUNS = Counter("cxloop_periodic_runs_total", "Periodic job executions", ["job"])
TASK_RUNS = Counter(
    "cxloop_task_runs_total", "Task run attempts by task type and outcome", ["type", "outcome"]
)
RECORD_LATENCY = Histogram(
    "cxloop_submit_to_record_seconds",
    "From the event (a response stored) to its effect done (a record written, a mail sent)",
    # Fine between 1 and 5 s, where a realistic org's latencies and the 5 s target lie.
    buckets=(0.1, 0.25, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 30, 60, 300, 3600),
)
AUTH_LOCKOUTS = Counter(
    "cxloop_auth_lockouts_total",
    "Accounts or client addresses locked out after too many failed logins or token checks",
    ["kind"],
)
THROTTLED = Counter(
    "cxloop_throttled_requests_total",
    "Requests refused with 429 by the login, token or submission limits",
    ["kind"],
)
SALESFORCE_CALLS = Counter("cxloop_salesforce_calls_total", "Salesforce API calls", ["org_id"])
SALESFORCE_API_USAGE = Gauge(
    "cxloop_salesforce_api_usage_ratio",
    "Share of the org's daily API allocation used",
    ["org_id"],
    multiprocess_mode="mostrecent",
)
OUTBOUND_NOTIFICATIONS = Counter(
    "cxloop_outbound_notifications_total",
    "Salesforce outbound-message notifications received, by outcome (accepted, duplicate)",
    ["outcome"],
)
OUTBOUND_REJECTED = Counter(
    "cxloop_outbound_messages_rejected_total",
    "Salesforce outbound messages answered with a SOAP fault, by reason",
    ["reason"],
)
OUTBOUND_ACK_LATENCY = Histogram(
    "cxloop_outbound_ack_seconds",
    "Time from receiving an outbound message's body to its answer (Ack or fault)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
