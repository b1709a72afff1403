"""Batching across worker processes and several batches in flight per org, against the emulator
with its latency model set (issue 18).

Two containers on one database stand for two worker processes (each container is its own batch
key owner, as a process is). The emulator counts the calls and reports how many of an org's
requests run at a moment; cxloop's ledger keeps every attempt.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cxloop.bootstrap import Container, build_container
from cxloop.db.run_models import TaskRun, TaskRunAttempt
from cxloop.engine import worker
from cxloop.ledger import batch_owners, claims
from sfemu.testing import EmulatorServer
from tests.integration.test_engine import add_workflow, drain, sf_records, submit, upsert_workflow


@pytest.fixture
def second(linked: Container) -> Iterator[Container]:
    """Another worker process on the same database (and queue)."""
    other = build_container(linked.settings.model_copy())
    yield other
    other.close()


@pytest.fixture
def slow_org(emulator: EmulatorServer) -> Iterator[dict[str, Any]]:
    """Set the org's latency model (and put it back: the emulator outlives the test)."""
    changed: dict[str, Any] = {}

    def set_model(**model: Any) -> None:
        emulator.control.patch("/orgs/acme", json=model).raise_for_status()
        changed.update(model)

    yield {"set": set_model}
    emulator.control.patch(
        "/orgs/acme",
        json={"latency_ms": 0, "per_record_ms": 0, "long_request_s": 20.0,
              "concurrent_long_limit": 25},
    ).raise_for_status()  # fmt: skip


@pytest.fixture
def acme_workflow(linked: Container, setup: dict[str, Any]) -> None:
    """The survey's workflow that upserts each response into the Acme org."""
    add_workflow(linked, setup, upsert_workflow("Acme"))


def submit_many(container: Container, setup: dict[str, Any], count: int) -> None:
    """`count` responses, their scores 0-10 in turn."""
    for number in range(count):
        submit(container, setup, number % 11)


def learn_the_describe(container: Container, setup: dict[str, Any]) -> None:
    """One response sent through, so that the object's describe is known: the calls counted
    after it are Collections calls, and a latency model set after it does not slow it."""
    submit(container, setup, 1)
    drain(container)


class PeakInFlight:
    """Polls the emulator for the org's requests running now; keeps the highest count."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        client = self.emulator.control
        while not self._stop.is_set():
            running = client.get("/orgs/acme").json()["concurrent_requests"]
            self.peak = max(self.peak, running)
            time.sleep(0.02)

    def __enter__(self) -> PeakInFlight:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def api_calls(emulator: EmulatorServer) -> int:
    return emulator.control.get("/api_usage").json()["acme"]["used"]


def org_id(setup: dict[str, Any]) -> str:
    return setup["connection"]["org_id"]


def assert_exactly_once(container: Container, emulator: EmulatorServer, expected: int) -> None:
    """Every response has one record in Salesforce, written once (one success per task run)."""
    records = sf_records(emulator, "Survey_Response__c")
    keys = [r["Response_ID__c"] for r in records]
    assert len(keys) == expected and len(set(keys)) == expected
    with container.db.reader() as uow:
        statuses = [t.status for t in uow.session.query(TaskRun)]
        successes = [
            a.task_run_id
            for a in uow.session.query(TaskRunAttempt).filter(TaskRunAttempt.outcome == "succeeded")
        ]
    assert statuses == ["succeeded"] * expected
    assert len(successes) == len(set(successes)) == expected


def the_key(container: Container) -> str:
    (key,) = claims.overdue_keys(container.db, grace_s=0)
    return key


# --- one owner per key


def test_a_key_owned_by_a_live_process_is_left_to_it(
    linked: Container,
    acme_workflow: None,
    second: Container,
    setup: dict[str, Any],
    emulator: EmulatorServer,
) -> None:
    for number in range(5):
        submit(linked, setup, number)
    key = the_key(linked)
    lease = linked.settings.batch_key_lease_s
    assert batch_owners.own_batch_key(linked.db, key, linked.engine_state.worker_id, lease)
    # The other process's message leaves at once and claims nothing: the owner takes the rows.
    started = time.monotonic()
    worker.process(second, key)
    assert time.monotonic() - started < 1.0
    with linked.db.reader() as uow:
        assert {t.status for t in uow.session.query(TaskRun)} == {"pending"}
    assert sf_records(emulator, "Survey_Response__c") == []
    # The owner's own message batches them, and gives the key up when nothing is left.
    worker.process(linked, key)
    assert_exactly_once(linked, emulator, 5)
    assert batch_owners.batch_key_owner(linked.db, key) is None


def test_a_dead_owners_key_is_free_again_within_seconds(
    linked: Container,
    acme_workflow: None,
    second: Container,
    setup: dict[str, Any],
    emulator: EmulatorServer,
) -> None:
    for number in range(3):
        submit(linked, setup, number)
    key = the_key(linked)
    second.settings.batch_key_lease_s = linked.settings.batch_key_lease_s = 1.0
    # The owner takes the key and dies (it never renews nor gives it up).
    assert batch_owners.own_batch_key(linked.db, key, linked.engine_state.worker_id, 1.0)
    assert not batch_owners.own_batch_key(second.db, key, second.engine_state.worker_id, 1.0)
    worker.process(second, key)
    assert sf_records(emulator, "Survey_Response__c") == []
    died_at = time.monotonic()
    while not batch_owners.own_batch_key(second.db, key, second.engine_state.worker_id, 1.0):
        assert time.monotonic() - died_at < 3.0, "the dead owner's key never came free"
        time.sleep(0.1)
    batch_owners.release_batch_key(second.db, key, second.engine_state.worker_id)
    worker.process(second, key)  # what the sweeper's message does
    assert_exactly_once(linked, emulator, 3)


def test_bad_leases_and_strangers_cannot_take_or_free_a_key(
    linked: Container, second: Container, setup: dict[str, Any]
) -> None:
    key = "sf|owner|Acme|Survey_Response__c|upsert|Response_ID__c"
    mine, theirs = linked.engine_state.worker_id, second.engine_state.worker_id
    assert mine != theirs
    assert batch_owners.own_batch_key(linked.db, key, mine, 30)
    batch_owners.release_batch_key(second.db, key, theirs)  # not theirs to free
    owner = batch_owners.batch_key_owner(linked.db, key)
    assert owner is not None and owner.worker == mine
    assert batch_owners.own_batch_key(linked.db, key, mine, 30)  # renewing is fine
    assert not batch_owners.own_batch_key(second.db, key, theirs, 30)
    batch_owners.release_batch_key(linked.db, key, mine)
    assert batch_owners.own_batch_key(second.db, key, theirs, 30)


def test_two_worker_processes_on_one_key_do_not_split_its_batches(
    linked: Container,
    acme_workflow: None,
    second: Container,
    setup: dict[str, Any],
    emulator: EmulatorServer,
    slow_org: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Responses trickle in while both processes get the key's messages (as Huey hands them to
    whichever worker is free): one process at a time owns the key, so the two never send
    batches of it at the same moment, and a batch goes beside another only when it is full.
    (Before owners, each process lingered and claimed on its own: partial batches of both
    processes went out side by side, 9-12 calls here instead of 3-5.)"""
    responses = 600
    for container in (linked, second):
        container.settings.batch_linger_s, container.settings.batch_quiet_s = 2.0, 0.0
    # The object's describe is learnt first (and shared), so the count below is Collections calls.
    learn_the_describe(linked, setup)
    submit(linked, setup, 2)
    drain(second)
    slow_org["set"](latency_ms=100, per_record_ms=1)
    sent: list[tuple[int, int, float, float]] = []  # process, records, start, end
    real_execute = worker.salesforce_batch.execute

    def watched(container: Container, claimed: Any, target: Any) -> Any:
        started = time.monotonic()
        try:
            return real_execute(container, claimed, target)
        finally:
            sent.append((id(container), len(claimed), started, time.monotonic()))

    monkeypatch.setattr(worker.salesforce_batch, "execute", watched)
    before = api_calls(emulator)
    done = threading.Event()
    key = the_key_of(linked)

    def messages(container: Container) -> None:  # a dispatch message every 20 ms per process
        while not done.is_set():
            worker.process(container, key)
            time.sleep(0.02)

    threads = [
        threading.Thread(target=messages, args=(c,), daemon=True)
        for c in (linked, second, linked, second)
    ]
    for thread in threads:
        thread.start()
    try:
        for number in range(responses):
            submit(linked, setup, number % 11)
        deadline = time.monotonic() + 60
        while open_task_runs(linked):  # (asking the emulator would count as API calls)
            assert time.monotonic() < deadline, "records did not all land"
            time.sleep(0.2)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    calls = api_calls(emulator) - before
    for a, b in itertools.combinations(sent, 2):
        if a[2] < b[3] and b[2] < a[3]:  # in flight at the same time
            assert a[0] == b[0], f"two processes sent batches of one key at once: {a} {b}"
            assert a[1] == b[1] == 200, f"a partial batch went beside another: {a} {b}"
    # Three full batches, and a few more when the machine is so loaded that 200 responses take
    # longer than the linger (2 s) to come in.
    assert calls == len(sent) <= 8, (calls, sent)
    assert_exactly_once(linked, emulator, responses + 2)


def open_task_runs(container: Container) -> int:
    with container.db.reader() as uow:
        return uow.session.query(TaskRun).filter(TaskRun.status != "succeeded").count()


def the_key_of(container: Container) -> str:
    with container.db.reader() as uow:
        return uow.session.query(TaskRun.batch_key).limit(1).scalar()


# --- several batches in flight per org


def test_full_batches_of_one_org_go_side_by_side_never_more_than_the_bound(
    linked: Container,
    acme_workflow: None,
    setup: dict[str, Any],
    emulator: EmulatorServer,
    slow_org: dict[str, Any],
) -> None:
    linked.settings.salesforce_max_concurrent_batches = 3
    learn_the_describe(linked, setup)
    # 200 records take 0.2 + 200 x 0.004 = 1 s a call
    slow_org["set"](latency_ms=200, per_record_ms=4)
    submit_many(linked, setup, 1200)
    with PeakInFlight(emulator) as peak:
        drain(linked, timeout=60)
    # Six calls of a second each: 2 at once, then 3 once the bound grew (never above 3). The
    # peak, not the wall time, is the evidence: the time depends on the machine's load.
    assert peak.peak >= 2, peak.peak
    assert peak.peak <= 3, peak.peak
    assert batch_owners.org_bound(linked.db, org_id(setup)) == 3
    assert_exactly_once(linked, emulator, 1201)


def test_a_driver_that_used_its_rounds_hands_the_key_on_with_its_batches_still_in_flight(
    linked: Container,
    acme_workflow: None,
    setup: dict[str, Any],
    emulator: EmulatorServer,
    slow_org: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After its rounds a driver gives the key up without waiting for its calls: waiting
    emptied the org's pipeline every `MAX_ROUNDS` batches. The next message drives on beside
    them, and a graceful stop still waits for them."""
    monkeypatch.setattr(worker, "MAX_ROUNDS", 2)
    learn_the_describe(linked, setup)
    slow_org["set"](latency_ms=1000, per_record_ms=0)  # a call of a second, whatever its size
    submit_many(linked, setup, 600)
    key = the_key_of(linked)
    pacing = linked.engine_state.pacing

    worker.process(linked, key)  # two batches: the org's first bound (2)

    assert pacing.in_flight.get(key) == 2  # left in flight, not waited for
    assert len(pacing.senders) == 2
    assert key not in pacing.driving  # the key is free for the next message
    assert batch_owners.batch_key_owner(linked.db, key) is None
    assert claims.ready_summary(linked.db, key).count == 200
    assert pacing.wait_for_senders(timeout_s=30)
    assert not pacing.senders and not pacing.in_flight
    drain(linked, timeout=60)
    assert_exactly_once(linked, emulator, 601)


def test_the_bound_never_exceeds_the_setting(
    linked: Container,
    acme_workflow: None,
    setup: dict[str, Any],
    emulator: EmulatorServer,
    slow_org: dict[str, Any],
) -> None:
    linked.settings.salesforce_max_concurrent_batches = 1
    learn_the_describe(linked, setup)
    slow_org["set"](latency_ms=150, per_record_ms=2)
    submit_many(linked, setup, 800)
    with PeakInFlight(emulator) as peak:
        drain(linked, timeout=60)
    assert peak.peak == 1
    assert_exactly_once(linked, emulator, 801)


def test_the_bound_shrinks_on_request_limit_exceeded(
    linked: Container,
    acme_workflow: None,
    setup: dict[str, Any],
    emulator: EmulatorServer,
    slow_org: dict[str, Any],
) -> None:
    """Salesforce answers REQUEST_LIMIT_EXCEEDED: the org's bound halves and stays down, and
    the work still lands once."""
    linked.settings.limit_backoff_s = 0.5
    learn_the_describe(linked, setup)
    assert batch_owners.org_bound(linked.db, org_id(setup)) == 2
    slow_org["set"](latency_ms=100, per_record_ms=1)
    emulator.control.post(
        "/faults", json={"error": "REQUEST_LIMIT_EXCEEDED", "count": 1}
    ).raise_for_status()
    submit_many(linked, setup, 1000)
    drain(linked, timeout=90)
    with linked.db.reader() as uow:
        refused = [
            a
            for a in uow.session.query(TaskRunAttempt)
            if (a.error or {}).get("error_code") == "REQUEST_LIMIT_EXCEEDED"
        ]
    assert refused, "the emulator never refused a call: the test did not test anything"
    assert batch_owners.org_bound(linked.db, org_id(setup)) == 1
    assert_exactly_once(linked, emulator, 1001)


def test_too_many_long_requests_at_once_shrink_the_bound_too(
    linked: Container,
    acme_workflow: None,
    setup: dict[str, Any],
    emulator: EmulatorServer,
    slow_org: dict[str, Any],
) -> None:
    """Salesforce's rule on concurrent long requests (here: 1 request running 0.01 s or more)
    refuses a call beside a long one: the bound halves, the org is held 2 s (not the daily
    limit's backoff), and the work lands once."""
    learn_the_describe(linked, setup)
    slow_org["set"](latency_ms=300, per_record_ms=2, long_request_s=0.01, concurrent_long_limit=1)
    submit_many(linked, setup, 1000)
    drain(linked, timeout=90)
    with linked.db.reader() as uow:
        refused = [
            a
            for a in uow.session.query(TaskRunAttempt)
            if "ConcurrentPerOrgLongTxn" in ((a.error or {}).get("message") or "")
        ]
    if refused:  # two calls may start within 10 ms of each other: then nothing was refused
        assert batch_owners.org_bound(linked.db, org_id(setup)) == 1
    assert_exactly_once(linked, emulator, 1001)


def test_the_bound_doubles_once_per_round_trip_of_slow_calls(linked: Container) -> None:
    # Growing by one per call back took a burst 4-5 s to reach 8 batches in flight at a real
    # org's latency: the records piled up behind a bound of 2 meanwhile.
    db, org = linked.db, "00D000000000001"
    first = batch_owners.take_org_slot(db, org, "a", "k", max_bound=6, hold_s=30)
    second = batch_owners.take_org_slot(db, org, "a", "k", max_bound=6, hold_s=30)
    assert first is not None and second is not None and second.saturated
    batch_owners.give_back_org_slot(db, first, grow=True, max_bound=6)
    assert batch_owners.org_bound(db, org) == 4  # doubled at the first call back
    batch_owners.give_back_org_slot(db, second, grow=True, max_bound=6)
    assert batch_owners.org_bound(db, org) == 4  # the same round trip: no more
    slots = [batch_owners.take_org_slot(db, org, "a", "k", max_bound=6, hold_s=30) for _ in "abcd"]
    assert all(slot is not None and slot.bound == 4 for slot in slots)
    batch_owners.give_back_org_slot(db, slots[0], grow=True, max_bound=6)  # type: ignore[arg-type]
    assert batch_owners.org_bound(db, org) == 6  # doubled again, up to the setting
    batch_owners.give_back_org_slot(db, slots[1], grow=False, max_bound=6)  # type: ignore[arg-type]
    assert batch_owners.org_bound(db, org) == 6
    assert batch_owners.shrink_org_bound(db, org) == 3  # REQUEST_LIMIT_EXCEEDED still halves
    batch_owners.give_back_org_slot(db, slots[2], grow=True, max_bound=6)  # type: ignore[arg-type]
    assert batch_owners.org_bound(db, org) == 3  # and stays down a while


def test_an_org_slot_of_a_dead_process_frees_itself(linked: Container) -> None:
    db = linked.db
    first = batch_owners.take_org_slot(db, "00D000000000001", "a", "k", max_bound=2, hold_s=0.3)
    second = batch_owners.take_org_slot(db, "00D000000000001", "b", "k", max_bound=2, hold_s=30)
    assert first is not None and second is not None and second.saturated
    assert (
        batch_owners.take_org_slot(db, "00D000000000001", "c", "k", max_bound=2, hold_s=30) is None
    )
    time.sleep(0.4)  # the first holder died: its slot runs out
    third = batch_owners.take_org_slot(db, "00D000000000001", "c", "k", max_bound=2, hold_s=30)
    assert third is not None
    batch_owners.give_back_org_slot(db, third, grow=True, max_bound=2)  # already at the setting
    assert batch_owners.org_bound(db, "00D000000000001") == 2
    assert batch_owners.shrink_org_bound(db, "00D000000000001") == 1
    assert batch_owners.shrink_org_bound(db, "00D000000000001") == 1  # never below 1


# --- describes shared by every process


def test_a_describe_one_process_asked_for_is_not_asked_again_by_another(
    linked: Container, second: Container, setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    # Bug: each process asked Salesforce for the object's describe before its first batch: a
    # web process at save, then every worker process (one call in 17 of the cluster bench).
    add_workflow(linked, setup, upsert_workflow("Acme"))
    submit(linked, setup, 1)
    before = api_calls(emulator)
    drain(linked)  # the describe, then one Collections call
    assert api_calls(emulator) - before == 2
    submit(linked, setup, 2)
    before = api_calls(emulator)
    drain(second)  # another process: the Collections call only
    assert api_calls(emulator) - before == 1
    assert_exactly_once(linked, emulator, 2)


def test_a_forgotten_describe_is_asked_again_and_an_old_one_is_not_used(
    linked: Container, second: Container, setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    add_workflow(linked, setup, upsert_workflow("Acme"))
    submit(linked, setup, 1)
    drain(linked)
    connection_id = claims.batch_target(linked.db, setup["actor"].id, "Acme").connection_id
    assert connection_id is not None
    key = (connection_id, "survey_response__c")
    assert second.describe_cache.get(key) is not None  # from the database
    linked.describe_cache.invalidate(connection_id, "Survey_Response__c")  # the doctor's refresh
    third = build_container(linked.settings)
    try:
        assert third.describe_cache.get(key) is None
        linked.describe_cache.put(key, {"name": "Survey_Response__c", "fields": []})
        assert third.describe_cache.get(key) == {"name": "Survey_Response__c", "fields": []}
        fourth = build_container(
            linked.settings.model_copy(update={"salesforce_describe_ttl_s": 1})
        )
        try:
            time.sleep(1.1)  # older than the fourth process's time to live
            assert fourth.describe_cache.get(key) is None
        finally:
            fourth.close()
    finally:
        third.close()


def test_a_database_without_the_describes_is_a_miss_not_an_error(tmp_path: Any) -> None:
    from cxloop.db.describe_store import DatabaseDescribeStore
    from cxloop.db.engine import create_database_engine
    from cxloop.db.uow import Database
    from cxloop.salesforce.client import DescribeCache

    db = Database(create_database_engine(f"sqlite:///{tmp_path / 'empty.db'}"))  # no tables
    try:
        cache = DescribeCache(60, store=DatabaseDescribeStore(db))
        cache.put(("CN1", "account"), {"name": "Account"})  # kept in memory; the store failed
        assert cache.get(("CN1", "account")) == {"name": "Account"}
        assert DescribeCache(60, store=DatabaseDescribeStore(db)).get(("CN1", "account")) is None
        cache.invalidate("CN1")
        assert cache.get(("CN1", "account")) is None
    finally:
        db.dispose()
