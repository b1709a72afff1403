"""The latency model (a delay per call plus a delay per record, per org) and Salesforce's
concurrency rule for long-running requests, on a real server.

Elapsed times are checked loosely: at least the configured delay, never a tight upper bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from sfemu.app import create_app
from sfemu.cli import main
from sfemu.emulator import Emulator
from sfemu.latency import default_long_limit
from sfemu.settings import EmulatorSettings
from sfemu.testing import EmulatorServer, in_process, run_in_thread, temporary_database

from .test_server import PROJECT_ROOT, wait_for_line

DOCS = json.loads((Path(__file__).parent / "fixtures" / "bulk2_docs_examples.json").read_text())
V = "/services/data/v62.0"


@pytest.fixture
def server() -> Any:
    with run_in_thread() as url:
        yield url


def timed(call: Any) -> tuple[float, Any]:
    started = time.monotonic()
    result = call()
    return time.monotonic() - started, result


def test_defaults_follow_salesforce_limits(server: EmulatorServer) -> None:
    documented = DOCS["concurrent_limit"]
    model = server.control.get("/orgs/acme").json()["latency"]
    assert model == {
        "latency_ms": 0.0,
        "per_record_ms": 0.0,
        "long_request_s": documented["long_request_s"],
        "concurrent_long_limit": documented["production"],
    }
    assert (
        server.control.get("/orgs/acme-sandbox").json()["latency"]["concurrent_long_limit"]
        == (documented["production"])
    )
    assert default_long_limit("production", "Developer Edition") == documented["developer_edition"]
    assert default_long_limit("production", "Enterprise Edition") == documented["production"]


def test_fixed_delay_per_call_applies_to_one_org_only(server: EmulatorServer) -> None:
    changed = server.control.patch("/orgs/acme", json={"latency_ms": 300})
    assert changed.status_code == 200 and changed.json()["latency"]["latency_ms"] == 300
    assert server.control.get("/orgs/acme-sandbox").json()["latency"]["latency_ms"] == 0
    with server.client() as api:
        elapsed, response = timed(lambda: api.get(f"{V}/limits"))
    assert response.status_code == 200
    assert elapsed >= 0.3


def test_per_record_delay_for_collections_and_composite(server: EmulatorServer) -> None:
    server.control.patch("/orgs/acme", json={"per_record_ms": 15})
    records = [{"attributes": {"type": "Account"}, "Name": f"A{i}"} for i in range(20)]
    with server.client() as api:
        elapsed, response = timed(
            lambda: api.post(f"{V}/composite/sobjects", json={"records": records})
        )
        assert response.status_code == 200 and all(r["success"] for r in response.json())
        assert elapsed >= 20 * 0.015
        subrequests = [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Account",
                "referenceId": f"r{i}",
                "body": {"Name": f"C{i}"},
            }
            for i in range(10)
        ]
        elapsed, response = timed(
            lambda: api.post(f"{V}/composite", json={"compositeRequest": subrequests})
        )
        assert response.status_code == 200
        assert elapsed >= 10 * 0.015


def test_a_slow_call_does_not_hold_up_other_calls(server: EmulatorServer) -> None:
    server.control.patch("/orgs/acme", json={"latency_ms": 1500})
    done = threading.Event()

    def slow() -> None:
        with server.client() as api:
            api.get(f"{V}/limits")
        done.set()

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.1)
    with server.client("admin@example.com.dev") as other:  # acme-sandbox: no delay
        assert other.get(f"{V}/limits").status_code == 200
    assert not done.is_set(), "the fast call waited for the slow one"
    thread.join()
    assert done.is_set()


def test_bulk_jobs_wait_per_record(server: EmulatorServer) -> None:
    server.control.patch("/orgs/acme", json={"per_record_ms": 5})
    with server.client() as api:
        job = api.post(f"{V}/jobs/ingest", json={"object": "Account", "operation": "insert"})
        job_id = job.json()["id"]
        rows = "".join(f"B{i}\n" for i in range(100))
        put = api.put(
            f"{V}/jobs/ingest/{job_id}/batches",
            content=("Name\n" + rows).encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert put.status_code == 201
        started = time.monotonic()
        api.patch(f"{V}/jobs/ingest/{job_id}", json={"state": "UploadComplete"})
        seen_in_progress = False
        while True:
            state = api.get(f"{V}/jobs/ingest/{job_id}").json()["state"]
            seen_in_progress = seen_in_progress or state == "InProgress"
            if state == "JobComplete":
                break
            time.sleep(0.02)
        assert time.monotonic() - started >= 100 * 0.005
        assert seen_in_progress


def test_concurrent_long_requests_past_the_limit_are_refused(server: EmulatorServer) -> None:
    documented = DOCS["concurrent_limit"]
    server.control.patch(
        "/orgs/acme",
        json={"latency_ms": 1500, "long_request_s": 0.2, "concurrent_long_limit": 2},
    )
    statuses: list[int] = []

    def slow() -> None:
        with server.client() as api:
            statuses.append(api.get(f"{V}/limits").status_code)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.6)  # both have now run longer than 0.2 s
    assert server.control.get("/orgs/acme").json()["concurrent_requests"] == 2
    with server.client() as api:
        refused = api.get(f"{V}/limits")
    assert refused.status_code == 403
    assert refused.json() == [
        {"message": documented["message"], "errorCode": documented["errorCode"]}
    ]
    # The other org has its own count.
    with server.client("admin@example.com.dev") as other:
        assert other.get(f"{V}/limits").status_code == 200
    for thread in threads:
        thread.join()
    assert statuses == [200, 200]
    server.control.patch("/orgs/acme", json={"latency_ms": 0})
    with server.client() as api:
        assert api.get(f"{V}/limits").status_code == 200


def test_short_requests_do_not_count_against_the_limit(server: EmulatorServer) -> None:
    server.control.patch(
        "/orgs/acme", json={"latency_ms": 800, "long_request_s": 5, "concurrent_long_limit": 1}
    )
    statuses: list[int] = []

    def call() -> None:
        with server.client() as api:
            statuses.append(api.get(f"{V}/limits").status_code)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4


@pytest.mark.parametrize(
    "body",
    [
        {"latency_ms": -1},
        {"per_record_ms": "fast"},
        {"latency_ms": True},
        {"long_request_s": 0},
        {"concurrent_long_limit": 0},
        {"concurrent_long_limit": 2.5},
        {"latency_ms": 100, "concurrent_long_limit": -3},
    ],
)
def test_bad_latency_settings_are_refused_and_change_nothing(
    server: EmulatorServer, body: dict[str, Any]
) -> None:
    before = server.control.get("/orgs/acme").json()["latency"]
    response = server.control.patch("/orgs/acme", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert server.control.get("/orgs/acme").json()["latency"] == before


def test_start_settings_apply_to_every_org_and_survive_a_reset() -> None:
    with in_process(latency_ms=25, per_record_ms=2) as emu:
        emulator = emu.emulator
        for org in emulator.orgs.values():
            assert (org.latency.latency_ms, org.latency.per_record_ms) == (25, 2)
        emulator.orgs[emulator.org("acme").id].latency.latency_ms = 500
        emulator.reset("acme")
        assert emulator.org("acme").latency.latency_ms == 25


def test_the_latency_model_is_kept_in_the_database() -> None:
    with temporary_database() as path:
        first = Emulator(EmulatorSettings(database=path))
        with TestClient(create_app(emulator=first)) as control:
            patched = control.patch("/__emulator__/orgs/acme", json={"per_record_ms": 7})
            assert patched.status_code == 200
        first.close()
        second = Emulator(EmulatorSettings(database=path))
        try:
            assert second.org("acme").latency.per_record_ms == 7
        finally:
            second.close()


def test_negative_start_delays_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0", "--latency-ms", "-5"]) == 2
    assert "--latency-ms must be >= 0" in capsys.readouterr().err
    assert main(["serve", "--port", "0", "--per-record-ms", "-1"]) == 2
    assert "--per-record-ms must be >= 0" in capsys.readouterr().err
    refused = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cxloop.cli.main import app; app()",
            "emulator",
            "serve",
            "--latency-ms",
            "-5",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "--latency-ms" in refused.stderr


@pytest.mark.parametrize(
    "prefix",
    [
        [sys.executable, "-m", "sfemu", "serve"],
        [sys.executable, "-c", "from cxloop.cli.main import app; app()", "emulator", "serve"],
    ],
    ids=["python -m sfemu", "cxloop emulator serve"],
)
def test_serve_takes_the_latency_options(prefix: list[str]) -> None:
    env = {**os.environ, "COLUMNS": "250", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*prefix, "--port", "0", "--latency-ms", "150", "--per-record-ms", "5"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        base, _printed = wait_for_line(process, r"(http://127\.0\.0\.1:\d+)")
        model = None
        deadline = time.monotonic() + 15
        while model is None and time.monotonic() < deadline:
            try:
                model = httpx.get(f"{base}/__emulator__/orgs/acme", timeout=1).json()["latency"]
            except httpx.HTTPError:
                time.sleep(0.1)
        assert model is not None
        assert (model["latency_ms"], model["per_record_ms"]) == (150, 5)
    finally:
        process.terminate()
        if process.stdout:
            process.stdout.read()
        process.wait(timeout=10)
