"""Emulator settings: one dataclass, every knob in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

DEFAULT_PORT = 8701


@dataclass
class EmulatorSettings:
    """How an emulator instance behaves.

    ``public_url`` is the base URL clients use (it goes into ``instance_url``, identity URLs and
    outbound messages); when None, each request's own base URL is used, which is right for a
    server reached under one name and for in-process clients.
    """

    org_file: str | Path | None = None  # None: the packaged default_org.yaml
    database: str = ":memory:"  # a SQLite file path, or ":memory:"
    public_url: str | None = None
    auto_login: str | None = None  # a username: /authorize skips login and consent
    # Oldest and newest API versions served (and listed at /services/data/).
    min_api_version: int = 31
    max_api_version: int = 62
    query_batch_size: int = 2000
    # Outbound messages: Salesforce retries at growing intervals (here base * 2^n, capped) and
    # drops a message after the horizon; time_scale shrinks all three so tests run in seconds.
    outbound_retry_base_s: float = 15.0
    outbound_retry_cap_s: float = 2 * 3600.0
    outbound_horizon_s: float = 24 * 3600.0
    outbound_time_scale: float = 1.0
    outbound_timeout_s: float = 60.0
    outbound_batch_size: int = 100
    outbound_autostart: bool = True  # start the delivery thread when the first message is queued
    outbound_verify_tls: bool | str = True
    # Build the HTTP client used to deliver outbound messages (tests can route it in-process).
    outbound_client_factory: Callable[[], httpx.Client] | None = None
    random_seed: int | None = None  # makes fraction faults repeatable
    # The latency model every org starts with (the control API changes it per org).
    latency_ms: float = 0.0
    per_record_ms: float = 0.0
    # Bulk API 2.0: Salesforce takes up to 150 MB of base64-encoded CSV per upload (about
    # 100 MB raw); records are processed in chunks of this size (one transaction each).
    bulk_max_upload_base64_bytes: int = 150 * 1024 * 1024
    bulk_chunk_size: int = 200
    # Internal batches of 10,000 records a job processes at once (the per-record delay of a
    # large job is divided by this many, at most).
    bulk_parallel_batches: int = 10
    # Rows per query job results page when the client gives no maxRecords.
    bulk_query_page_size: int = 100_000

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after the given number of failed delivery attempts."""
        delay = min(
            self.outbound_retry_base_s * (2 ** max(0, attempts - 1)), self.outbound_retry_cap_s
        )
        return delay * self.outbound_time_scale

    @property
    def horizon(self) -> float:
        """Seconds after which an undelivered outbound message is dropped."""
        return self.outbound_horizon_s * self.outbound_time_scale

    @property
    def api_versions(self) -> list[str]:
        """Every served version, oldest first (``"62.0"``)."""
        return [f"{v}.0" for v in range(self.min_api_version, self.max_api_version + 1)]
