"""What the emulator costs: per single create, per record in a 200-record Collections call, and
calls per second, over real HTTP on loopback: the emulator runs as its own process
(``python -m sfemu serve``, as cxloop's benchmarks run it) and a keep-alive httpx client calls it.

    .venv/bin/python bench/emulator_bench.py [--creates 500] [--batches 50] [--calls 1000]

Prints one JSON object. The emulator must never be what limits a cxloop benchmark: the target is
well under 1 ms per record in a Collections call. ``core`` is the same work without HTTP (the
emulator's own cost); ``sqlite_file`` repeats the Collections figure with a file database.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sfemu.dml import Dml
from sfemu.emulator import Emulator
from sfemu.settings import EmulatorSettings

V = "/services/data/v62.0"


def records(batch: int, size: int = 200) -> list[dict[str, Any]]:
    return [
        {
            "attributes": {"type": "Survey_Response__c"},
            "Response_ID__c": f"B{batch}-{i}",
            "NPS_Score__c": i % 11,
            "Survey_Name__c": "Bench",
            "Sentiment__c": "Positive",
            "Response_Date__c": "2024-05-01",
            "Comment__c": "Quick and friendly.",
        }
        for i in range(size)
    ]


@contextmanager
def emulator_process(database: str) -> Iterator[str]:
    """``python -m sfemu serve`` on a free port; yields its base URL."""
    command = [
        sys.executable,
        "-m",
        "sfemu",
        "serve",
        "--port",
        "0",
        "--db",
        database,
        "--log-level",
        "warning",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        base_url = None
        while base_url is None:
            line = process.stdout.readline() if process.stdout else ""
            if not line and process.poll() is not None:
                raise RuntimeError("the emulator did not start")
            match = re.search(r"listening at (http://\S+)", line)
            base_url = match.group(1) if match else None
        for _ in range(200):
            try:
                httpx.get(f"{base_url}/services/data/", trust_env=False)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield base_url
    finally:
        process.terminate()
        process.wait(10)


def over_http(database: str, creates: int, batches: int, calls: int) -> dict[str, Any]:
    with (
        emulator_process(database) as base_url,
        httpx.Client(base_url=base_url, timeout=30, trust_env=False) as api,
    ):
        token = api.post("/__emulator__/tokens", json={"username": "admin@example.com"}).json()[
            "access_token"
        ]
        api.headers["Authorization"] = f"Bearer {token}"
        for i in range(20):  # warm up connections and code paths
            api.post(f"{V}/sobjects/Survey_Response__c", json={"Response_ID__c": f"warm-{i}"})
        api.post(f"{V}/composite/sobjects", json={"records": records(-1)})

        started = time.perf_counter()
        for i in range(creates):
            response = api.post(
                f"{V}/sobjects/Survey_Response__c",
                json={"Response_ID__c": f"S-{i}", "NPS_Score__c": 7, "Sentiment__c": "Neutral"},
            )
            assert response.status_code == 201, response.text
        single_ms = (time.perf_counter() - started) * 1000 / creates

        started = time.perf_counter()
        for batch in range(batches):
            response = api.post(
                f"{V}/composite/sobjects", json={"allOrNone": False, "records": records(batch)}
            )
            assert response.status_code == 200 and all(r["success"] for r in response.json()), (
                response.text[:300]
            )
        batch_ms = (time.perf_counter() - started) * 1000 / batches

        started = time.perf_counter()
        for _ in range(calls):
            assert api.get(f"{V}/limits").status_code == 200
        calls_per_s = calls / (time.perf_counter() - started)

        upsert_started = time.perf_counter()
        for batch in range(min(batches, 20)):
            response = api.patch(
                f"{V}/composite/sobjects/Survey_Response__c/Response_ID__c",
                json={"records": records(batch)},
            )
            assert all(r["success"] and r["created"] is False for r in response.json())
        upsert_ms = (time.perf_counter() - upsert_started) * 1000 / min(batches, 20)
    return {
        "single_create_ms": round(single_ms, 3),
        "collections_200_call_ms": round(batch_ms, 2),
        "collections_ms_per_record": round(batch_ms / 200, 4),
        "collections_records_per_s": round(200_000 / batch_ms),
        "collections_upsert_ms_per_record": round(upsert_ms / 200, 4),
        "calls_per_s": round(calls_per_s),
    }


def core(batches: int) -> dict[str, Any]:
    """The same Collections work without HTTP: validation, indexes and the SQLite batch."""
    emulator = Emulator(EmulatorSettings())
    org = emulator.org("acme")
    caller = emulator.system_caller(org)
    sobject = org.sobject("Survey_Response__c")
    started = time.perf_counter()
    for batch in range(batches):
        txn = emulator.transaction()
        dml = Dml(emulator, caller, txn)
        for record in records(batch):
            dml.create(sobject, dml.read_body(sobject, record))
        txn.commit()
    elapsed_ms = (time.perf_counter() - started) * 1000
    emulator.close()
    return {"ms_per_record": round(elapsed_ms / (batches * 200), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--creates", type=int, default=500)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    result: dict[str, Any] = {
        "benchmark": "sfemu",
        "transport": "HTTP/1.1 on 127.0.0.1; emulator process (python -m sfemu serve)"
        " + keep-alive httpx client",
        "database": ":memory:",
    }
    result.update(over_http(":memory:", args.creates, args.batches, args.calls))
    with tempfile.TemporaryDirectory(prefix="sfemu-bench-") as directory:
        file_result = over_http(
            str(Path(directory) / "bench.sqlite3"),
            max(50, args.creates // 5),
            max(10, args.batches // 2),
            max(100, args.calls // 5),
        )
    result["sqlite_file"] = {
        k: file_result[k] for k in ("single_create_ms", "collections_ms_per_record")
    }
    result["core"] = core(args.batches)
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
