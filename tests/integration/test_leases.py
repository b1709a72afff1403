"""Leases renewed by a heartbeat; a dead worker's rows back within 15 s with the interrupted
attempt recorded; the connection's health noted on every batch (issue 18, "Why" 5 and 6)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from cxloop.bootstrap import Container
from cxloop.db.base import utcnow
from cxloop.db.models import Connection
from cxloop.db.run_models import READY_STATUSES, Run, TaskRun, TaskRunAttempt
from cxloop.engine import worker
from cxloop.engine.leases import LeaseKeeper
from cxloop.engine.worker import WORKER_ID
from cxloop.ledger import batch_owners, claims
from cxloop.web.app import EmbeddedWorker
from sfemu.testing import EmulatorServer
from tests.conftest import Person
from tests.integration.conftest import sign_in
from tests.integration.test_engine import (
    add_workflow,
    drain,
    insert_with_dedupe_workflow,
    submit,
    task_runs,
    upsert_workflow,
)
from tests.integration.test_engine_reliability import distinct_keys
from tests.integration.test_worker_crash import wait_for, worker_env

API = "/services/data/v62.0"


def attempts_of(container: Container) -> list[TaskRunAttempt]:
    with container.db.reader() as uow:
        return list(uow.session.scalars(select(TaskRunAttempt).order_by(TaskRunAttempt.id)))


def expire_now(container: Container) -> None:
    """The lease of every running row ran out a moment ago (its worker stopped beating)."""
    with container.db.uow() as uow:
        uow.session.execute(
            update(TaskRun)
            .where(TaskRun.status == "running")
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        uow.commit()


def connection_health(container: Container) -> tuple[Any, str, Any]:
    with container.db.reader() as uow:
        row = uow.session.execute(
            select(Connection.last_used_at, Connection.last_error, Connection.last_error_at)
        ).one()
    return row.last_used_at, row.last_error, row.last_error_at


# --- the sweeper records the interrupted attempt


def test_an_expired_lease_comes_back_with_an_interrupted_attempt_counted_for_backoff(
    linked: Container, setup: dict[str, Any], web: TestClient, owner: Person
) -> None:
    linked.settings.retry_base_s = linked.settings.retry_cap_s = 30.0  # a backoff to see
    add_workflow(linked, setup, insert_with_dedupe_workflow("Acme"))
    submit(linked, setup, 9)
    (row,) = task_runs(linked)
    dead = "host-a:4242:0badf00d:140001"
    claims.claim_task_runs(linked.db, row.batch_key, limit=5, lease_s=60, worker=dead)
    assert claims.expire_leases(linked.db, linked.settings).retries == []  # still leased
    expire_now(linked)

    settled = claims.expire_leases(linked.db, linked.settings)

    (row,) = task_runs(linked)
    assert (row.status, row.claimed_by, row.lease_expires_at) == ("waiting_retry", None, None)
    assert row.ambiguous  # like a timeout: an insert is looked up before it is sent again
    assert row.next_attempt_at > utcnow() + timedelta(seconds=10)  # the backoff, not at once
    assert settled.retries == [(row.batch_key, row.next_attempt_at)]
    assert dead in row.status_reason
    (attempt,) = attempts_of(linked)
    assert (attempt.number, attempt.outcome, attempt.batch_size) == (1, "interrupted", 1)
    assert attempt.error["error_code"] == "CXLOOP_WORKER_LOST"
    assert attempt.error["kind"] == "transient"
    assert f"worker {dead} stopped answering mid-attempt" in attempt.error["message"]
    assert attempt.started_at <= attempt.finished_at
    # once taken back, it is nobody's: a second sweep records nothing more
    assert claims.expire_leases(linked.db, linked.settings).retries == []
    assert len(attempts_of(linked)) == 1

    # run history shows it: the API and the Runs page
    with linked.db.reader() as uow:
        run_id = uow.session.scalar(select(Run.id))
    detail = web.get(f"/api/v1/runs/{run_id}", headers=owner.headers).json()
    (shown,) = detail["task_runs"][0]["attempt_log"]
    assert shown["outcome"] == "interrupted"
    assert dead in shown["error"]["message"]
    sign_in(web, owner.email)
    page = web.get(f"/runs/{run_id}").text
    assert "Interrupted" in page
    assert "stopped answering in the middle of it" in page


def test_a_dead_workers_batch_comes_back_as_one_retry_of_its_key(
    linked: Container, setup: dict[str, Any]
) -> None:
    add_workflow(linked, setup, upsert_workflow("Acme"))
    for score in (1, 2, 3):
        submit(linked, setup, score)
    key = task_runs(linked)[0].batch_key
    claims.claim_task_runs(linked.db, key, limit=5, lease_s=60, worker="gone:1:ab:2")
    expire_now(linked)

    settled = claims.expire_leases(linked.db, linked.settings)

    first = min(t.next_attempt_at for t in task_runs(linked))
    assert settled.retries == [(key, first)]  # one dispatch for the batch, not one per row
    assert [(a.outcome, a.batch_size) for a in attempts_of(linked)] == [("interrupted", 3)] * 3


def test_an_interrupted_attempt_past_the_retry_horizon_fails_the_run(
    linked: Container, setup: dict[str, Any]
) -> None:
    linked.settings.retry_horizon_s = 0
    add_workflow(linked, setup, upsert_workflow("Acme"))
    submit(linked, setup, 9)
    (row,) = task_runs(linked)
    claims.claim_task_runs(linked.db, row.batch_key, limit=5, lease_s=60, worker="gone:1:ab:2")
    expire_now(linked)

    assert claims.expire_leases(linked.db, linked.settings).retries == []

    (row,) = task_runs(linked)
    assert row.status == "failed" and row.finished_at is not None
    assert row.status_reason.startswith("Gave up after 1 attempts over the retry horizon")
    with linked.db.reader() as uow:
        assert uow.session.scalar(select(Run.status)) == "failed"
    assert [a.outcome for a in attempts_of(linked)] == ["interrupted"]


def test_an_interrupted_insert_that_reached_salesforce_is_found_not_sent_again(
    linked: Container, setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    add_workflow(linked, setup, insert_with_dedupe_workflow("Acme"))
    response_id = submit(linked, setup, 9)
    (row,) = task_runs(linked)
    claims.claim_task_runs(linked.db, row.batch_key, limit=5, lease_s=60, worker="gone:1:ab:2")
    # the dead worker's call did reach Salesforce
    emulator.client().post(
        f"{API}/sobjects/Survey_Response__c/", json={"Response_ID__c": response_id}
    ).raise_for_status()
    expire_now(linked)
    claims.expire_leases(linked.db, linked.settings)

    drain(linked)

    assert distinct_keys(emulator, "Survey_Response__c", "Response_ID__c") == (1, 1)
    (row,) = task_runs(linked)
    assert row.status == "succeeded"
    assert [a.outcome for a in attempts_of(linked)] == ["interrupted", "succeeded"]


# --- the heartbeat


def test_the_lease_keeper_renews_this_process_rows_only(
    linked: Container, setup: dict[str, Any]
) -> None:
    add_workflow(linked, setup, upsert_workflow("Acme"))
    for score in (1, 2, 3, 4):
        submit(linked, setup, score)
    key = task_runs(linked)[0].batch_key
    host_pid = WORKER_ID.rsplit(":", 1)[0]
    holders = {
        "ours": f"{WORKER_ID}:101",
        # the same host and pid, an earlier start of the process (a restarted container)
        "earlier start": f"{host_pid}:00000000:101",
        "a longer id": f"{WORKER_ID}0:101",
        "taken back": f"{WORKER_ID}:102",
    }
    for holder in holders.values():
        claims.claim_task_runs(linked.db, key, limit=1, lease_s=5, worker=holder)
    with linked.db.uow() as uow:  # the sweeper took one back already
        uow.session.execute(
            update(TaskRun)
            .where(TaskRun.claimed_by == holders["taken back"])
            .values(status="waiting_retry", claimed_by=None, lease_expires_at=None)
        )
        uow.commit()
    keeper = LeaseKeeper(linked.db, lease_s=600, period_s=60)

    assert keeper.renew() == 1

    with linked.db.reader() as uow:
        leases = dict(
            uow.session.execute(select(TaskRun.claimed_by, TaskRun.lease_expires_at)).all()
        )
    soon = utcnow() + timedelta(seconds=60)
    assert leases[holders["ours"]] > soon
    assert leases[holders["earlier start"]] < soon
    assert leases[holders["a longer id"]] < soon
    assert leases[None] is None


def test_the_heartbeat_keeps_this_process_org_slots_and_a_dead_ones_run_out(
    container: Container,
) -> None:
    """An org's slots are held for a lease that the process's heartbeat renews: a process that
    died frees its slots a lease after its last beat, not a call's whole timeout later (a
    killed worker that held both slots of a new org's bound stalled the org for 70 s)."""
    db, org = container.db, "00D000000000001"
    host_pid = WORKER_ID.rsplit(":", 1)[0]

    def take(worker: str) -> batch_owners.OrgSlot | None:
        return batch_owners.take_org_slot(db, org, worker, "key", max_bound=2, hold_s=1)

    assert take(f"{WORKER_ID}:7") is not None
    # an earlier start of this process (a restarted container), which nobody renews
    assert take(f"{host_pid}:00000000:7") is not None
    assert take(f"{WORKER_ID}:8") is None  # the bound of 2 is used

    LeaseKeeper(db, lease_s=600, period_s=60).renew()
    time.sleep(1.2)

    # The dead process's slot ran out; ours was renewed, so exactly one is free again.
    assert take(f"{WORKER_ID}:8") is not None
    assert take(f"{WORKER_ID}:9") is None


def test_the_lease_keeper_beats_from_its_thread_until_stopped(
    linked: Container, setup: dict[str, Any]
) -> None:
    add_workflow(linked, setup, upsert_workflow("Acme"))
    submit(linked, setup, 9)
    (row,) = task_runs(linked)
    claims.claim_task_runs(linked.db, row.batch_key, limit=1, lease_s=5, worker=f"{WORKER_ID}:7")
    keeper = LeaseKeeper(linked.db, lease_s=600, period_s=0.05)
    keeper.start()
    try:
        wait_for(
            lambda: task_runs(linked)[0].lease_expires_at > utcnow() + timedelta(seconds=60),
            10,
            "a renewal",
        )
    finally:
        keeper.stop()
    assert not any(t.name == "cxloop-lease-heartbeat" for t in threading.enumerate())


def test_a_live_worker_keeps_its_rows_through_a_call_longer_than_the_lease(
    linked: Container, setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    linked.settings.lease_s = 5
    add_workflow(linked, setup, insert_with_dedupe_workflow("Acme"))
    for score in range(5):
        submit(linked, setup, score)
    key = task_runs(linked)[0].batch_key
    # Salesforce takes 8 s to answer the insert: longer than the lease
    emulator.control.post(
        "/faults", json={"latency_ms": 8000, "method": "POST", "count": 1}
    ).raise_for_status()
    keeper = LeaseKeeper(
        linked.db, lease_s=linked.settings.lease_s, period_s=linked.settings.lease_s / 4
    )
    keeper.start()
    batch = threading.Thread(target=worker.process, args=(linked, key))
    try:
        batch.start()
        wait_for(lambda: any(t.status == "running" for t in task_runs(linked)), 10, "a claim")
        # the sweeper runs throughout the call, as it does every few seconds
        while batch.is_alive():
            worker.sweep(linked)
            assert {t.status for t in task_runs(linked)} <= {"running", "succeeded"}
            batch.join(0.5)
    finally:
        batch.join(30)
        keeper.stop()
    assert {t.status for t in task_runs(linked)} == {"succeeded"}
    assert [a.outcome for a in attempts_of(linked)] == ["succeeded"] * 5
    assert distinct_keys(emulator, "Survey_Response__c", "Response_ID__c") == (5, 5)


# --- a worker killed mid-batch


RESPONSES = 40


@pytest.mark.slow
def test_a_killed_workers_rows_are_back_within_15_s_and_land_exactly_once(
    linked: Container, setup: dict[str, Any], emulator: EmulatorServer, tmp_path: Any
) -> None:
    """`cxloop worker` killed with SIGKILL while Salesforce takes its insert: with the
    default lease and sweeper settings, a living worker (embedded here, with its scheduler)
    has the rows back within 15 s, each with the interrupted attempt, and every record lands
    once."""
    add_workflow(linked, setup, insert_with_dedupe_workflow("Acme"))
    for number in range(RESPONSES):
        submit(linked, setup, number % 11)
    # The insert takes 6 s; the emulator commits it although the caller is gone by then, as
    # Salesforce does. The rows come back later, so the retry finds the records.
    emulator.control.post(
        "/faults", json={"latency_ms": 6000, "method": "POST", "count": 1}
    ).raise_for_status()
    env = worker_env(linked)
    for name in ("CXLOOP_LEASE_S", "CXLOOP_SWEEPER_PERIOD_S", "CXLOOP_PERIODIC_TICK_S"):
        del env[name]  # the defaults are what is measured
    log = (tmp_path / "worker.log").open("wb")
    victim = subprocess.Popen(
        [sys.executable, "-m", "cxloop", "worker", "--workers", "2", "--no-periodic"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    marker = f":{victim.pid}:"

    def held_by_victim() -> list[TaskRun]:
        return [
            t for t in task_runs(linked) if t.status == "running" and marker in (t.claimed_by or "")
        ]

    rescuer = EmbeddedWorker(linked)
    try:
        wait_for(lambda: len(held_by_victim()) == RESPONSES, 90, "the victim's claim")
        rescuer.start()
        time.sleep(1.5)  # the insert is on its way
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        victim.wait(timeout=10)
        wait_for(lambda: not held_by_victim(), 30, "the victim's rows to come back")
        back_after = time.monotonic() - killed_at
        statuses = {t.status for t in task_runs(linked)}
        assert statuses <= {*READY_STATUSES, "running", "succeeded"}, statuses
        wait_for(lambda: {t.status for t in task_runs(linked)} == {"succeeded"}, 60, "the records")
    finally:
        rescuer.stop()
        if victim.poll() is None:
            victim.kill()
    emulator.control.delete("/faults").raise_for_status()
    print(f"rows of the killed worker back after {back_after:.1f} s")
    assert back_after <= 15.0, back_after
    interrupted = [a for a in attempts_of(linked) if a.outcome == "interrupted"]
    assert len(interrupted) == RESPONSES
    assert all(marker in a.error["message"] for a in interrupted)
    assert {a.batch_size for a in interrupted} == {RESPONSES}
    assert distinct_keys(emulator, "Survey_Response__c", "Response_ID__c") == (
        RESPONSES,
        RESPONSES,
    )


# --- connection health


def test_a_batch_notes_its_connection_used_and_a_failing_call_its_error(
    linked: Container, setup: dict[str, Any], emulator: EmulatorServer, web: TestClient,
    owner: Person,
) -> None:  # fmt: skip
    add_workflow(linked, setup, upsert_workflow("Acme"))
    assert connection_health(linked) == (None, "", None)
    submit(linked, setup, 9)
    drain(linked)
    used_at, error, error_at = connection_health(linked)
    assert used_at is not None and (error, error_at) == ("", None)

    emulator.control.post(
        "/faults", json={"error": "SERVER_UNAVAILABLE", "method": "PATCH", "count": 1}
    ).raise_for_status()
    submit(linked, setup, 3)
    drain(linked)

    later, error, error_at = connection_health(linked)
    assert later >= used_at
    assert error.startswith("SERVER_UNAVAILABLE: Server is temporarily unavailable")
    assert error_at is not None
    assert {t.status for t in task_runs(linked)} == {"succeeded"}  # retried, landed
    (shown,) = web.get("/api/v1/connections", headers=owner.headers).json()
    assert shown["last_error"] == error and shown["last_used_at"] is not None
    sign_in(web, owner.email)
    accounts = web.get("/accounts").text
    assert "Server is temporarily unavailable" in accounts and "Never" not in accounts


def test_successes_write_the_connection_at_most_once_per_interval(
    linked: Container, setup: dict[str, Any]
) -> None:
    health = linked.engine_state.connection_health
    connection_id = setup["connection"]["id"]
    health.note(connection_id)
    assert [u.connection_id for u in health.take_due()] == [connection_id]
    health.note(connection_id)
    assert health.take_due() == []  # written a moment ago by this process
    health.note(connection_id, "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.")
    health.note(connection_id)  # a success after the error keeps the error to write
    (due,) = health.take_due()
    assert due.error == "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded."
