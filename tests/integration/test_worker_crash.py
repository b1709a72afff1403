"""A worker killed with SIGKILL in the middle of a batch, then started again: nothing lost,
nothing duplicated (the lease runs out, the rows come back marked ambiguous, inserts are looked
up before they are sent again)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from cxloop.bootstrap import Container
from cxloop.db.run_models import TaskRun
from sfemu.testing import EmulatorServer
from tests.integration.test_engine import add_workflow, submit, upsert_workflow
from tests.integration.test_engine_reliability import contact_insert_workflow, distinct_keys

RESPONSES = 150


def worker_env(container: Container) -> dict[str, str]:
    settings = container.settings
    return os.environ | {
        "CXLOOP_DATA_DIR": str(settings.data_dir),
        "CXLOOP_DATABASE_URL": settings.effective_database_url,
        "CXLOOP_QUEUE_URL": settings.effective_queue_url,
        "CXLOOP_BASE_URL": settings.base_url,
        "CXLOOP_SALESFORCE_CLIENT_ID": settings.salesforce_client_id,
        "CXLOOP_SALESFORCE_CLIENT_SECRET": settings.salesforce_client_secret.get_secret_value(),
        "CXLOOP_SALESFORCE_EXTRA_HOSTS": json.dumps(settings.salesforce_extra_hosts),
        "CXLOOP_LEASE_S": "5",
        "CXLOOP_SWEEPER_PERIOD_S": "1",
        "CXLOOP_PERIODIC_TICK_S": "0.2",
        "CXLOOP_BATCH_LINGER_S": "0",
        "CXLOOP_RETRY_BASE_S": "0.1",
        "CXLOOP_RETRY_CAP_S": "0.5",
        "CXLOOP_LOG_JSON": "true",
    }


def counts(container: Container) -> dict[str, int]:
    with container.db.reader() as uow:
        found: dict[str, int] = {}
        for row in uow.session.query(TaskRun):
            found[row.status] = found.get(row.status, 0) + 1
        return found


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(
    linked: Container, setup: dict[str, Any], emulator: EmulatorServer, tmp_path: Any
) -> None:
    add_workflow(linked, setup, upsert_workflow("Acme"))
    add_workflow(linked, setup, contact_insert_workflow())
    for number in range(RESPONSES):
        submit(linked, setup, number % 11)
    # Salesforce answers writes slowly, so the first batches are in flight when the kill comes;
    # it still commits them, as Salesforce does when a client hangs up.
    emulator.control.post(
        "/faults", json={"latency_ms": 3000, "method": "POST", "count": 2}
    ).raise_for_status()
    emulator.control.post(
        "/faults", json={"latency_ms": 3000, "method": "PATCH", "count": 2}
    ).raise_for_status()
    env = worker_env(linked)
    command = [sys.executable, "-m", "cxloop", "worker", "--workers", "2"]
    log = (tmp_path / "worker.log").open("wb")
    first = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: counts(linked).get("running", 0) > 0, 60, "a batch in flight")
        time.sleep(1.0)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert counts(linked).get("running", 0) > 0  # left behind, leased
        second = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(
                lambda: counts(linked) == {"succeeded": 2 * RESPONSES},
                120,
                f"every task run to succeed (now {counts(linked)})",
            )
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    emulator.control.delete("/faults").raise_for_status()
    assert distinct_keys(emulator, "Survey_Response__c", "Response_ID__c") == (
        RESPONSES,
        RESPONSES,
    )
    # no Contact inserted twice, though a batch of inserts died mid-call
    assert distinct_keys(emulator, "Contact", "External_Key__c") == (RESPONSES, RESPONSES)
