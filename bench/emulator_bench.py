"""What the emulator costs: per single create, per record in a 200-record Collections call, and
calls per second, over real HTTP on loopback: the emulator runs as its own process
(``python -m sfemu serve``, as cxloop's benchmarks run it) and a keep-alive httpx client calls it.

    .venv/bin/python bench/emulator_bench.py [--creates 500] [--batches 50] [--calls 1000]

Prints one JSON object. The emulator must never be what limits a cxloop benchmark: the target is
well under 1 ms per record in a Collections call. ``core`` is the same work without HTTP (the
emulator's own cost); ``sqlite_file`` repeats the Collections figure with a file database.

Every call must succeed and every record must be there afterwards (counted through the control
API, and in the emulator's table for ``core``): a client error or a missing record voids the
figures, and it prints only ``client_errors``, ``missing_records`` and ``failed``, exiting with
status 1. ``--smoke`` runs it at a tiny size (seconds); ``--fault JSON`` injects an emulator
fault (POST /__emulator__/faults) after the warm-up, to see a failure counted.
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from outcome import finish

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


def over_http(
    database: str, creates: int, batches: int, calls: int, faults: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """The figures over HTTP, with `client_errors` (calls that did not succeed, per part) and
    `missing_records` (records that should be in the emulator and are not)."""
    errors = {"create": 0, "collections": 0, "calls": 0, "upsert": 0}
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
        stored_before = stored(api)
        for fault in faults:
            api.post("/__emulator__/faults", json=fault).raise_for_status()

        started = time.perf_counter()
        for i in range(creates):
            response = api.post(
                f"{V}/sobjects/Survey_Response__c",
                json={"Response_ID__c": f"S-{i}", "NPS_Score__c": 7, "Sentiment__c": "Neutral"},
            )
            errors["create"] += response.status_code != 201
        single_ms = (time.perf_counter() - started) * 1000 / creates

        started = time.perf_counter()
        for batch in range(batches):
            response = api.post(
                f"{V}/composite/sobjects", json={"allOrNone": False, "records": records(batch)}
            )
            errors["collections"] += response.status_code != 200 or not all(
                r["success"] for r in response.json()
            )
        batch_ms = (time.perf_counter() - started) * 1000 / batches

        started = time.perf_counter()
        for _ in range(calls):
            errors["calls"] += api.get(f"{V}/limits").status_code != 200
        calls_per_s = calls / (time.perf_counter() - started)

        upsert_started = time.perf_counter()
        for batch in range(min(batches, 20)):
            response = api.patch(
                f"{V}/composite/sobjects/Survey_Response__c/Response_ID__c",
                json={"records": records(batch)},
            )
            errors["upsert"] += response.status_code != 200 or not all(
                r["success"] and r["created"] is False for r in response.json()
            )
        upsert_ms = (time.perf_counter() - upsert_started) * 1000 / min(batches, 20)
        # The upserts found the batches' records: they add none.
        missing = stored_before + creates + batches * 200 - stored(api)
    return {
        "single_create_ms": round(single_ms, 3),
        "collections_200_call_ms": round(batch_ms, 2),
        "collections_ms_per_record": round(batch_ms / 200, 4),
        "collections_records_per_s": round(200_000 / batch_ms),
        "collections_upsert_ms_per_record": round(upsert_ms / 200, 4),
        "calls_per_s": round(calls_per_s),
        "client_errors": {part: n for part, n in errors.items() if n},
        "missing_records": missing,
    }


def stored(api: httpx.Client) -> int:
    """How many Survey_Response__c records the emulator holds (its control API)."""
    reply = api.get("/__emulator__/records", params={"sobject": "Survey_Response__c", "limit": 0})
    return reply.raise_for_status().json()["totalSize"]


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
    made = sum(1 for _ in emulator.table(org, sobject).live())
    emulator.close()
    return {
        "ms_per_record": round(elapsed_ms / (batches * 200), 4),
        "missing_records": batches * 200 - made,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--creates", type=int, default=500)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true",
                        help="A tiny run (seconds) that checks the bench works.")  # fmt: skip
    parser.add_argument("--fault", type=json.loads, action="append", default=[],
                        help="An emulator fault (JSON, as POST /__emulator__/faults) injected "
                        "after the warm-up; repeatable.")  # fmt: skip
    args = parser.parse_args()
    file_sizes = (max(50, args.creates // 5), max(10, args.batches // 2), max(100, args.calls // 5))
    if args.smoke:
        args.creates, args.batches, args.calls = 10, 2, 10
        file_sizes = (5, 1, 5)
    result: dict[str, Any] = {
        "benchmark": "sfemu",
        "transport": "HTTP/1.1 on 127.0.0.1; emulator process (python -m sfemu serve)"
        " + keep-alive httpx client",
        "database": ":memory:",
    }
    memory = over_http(":memory:", args.creates, args.batches, args.calls, args.fault)
    result.update(memory)
    with tempfile.TemporaryDirectory(prefix="sfemu-bench-") as directory:
        file_result = over_http(str(Path(directory) / "bench.sqlite3"), *file_sizes, args.fault)
    result["sqlite_file"] = {
        k: file_result[k] for k in ("single_create_ms", "collections_ms_per_record")
    }
    result["core"] = core(args.batches)
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    counters = {
        "client_errors": {
            f"{where}.{part}": n
            for where, errors in (("memory", memory["client_errors"]),
                                  ("sqlite_file", file_result["client_errors"]))
            for part, n in errors.items()
        },
        "missing_records": memory["missing_records"] + file_result["missing_records"]
        + result["core"]["missing_records"],
    }  # fmt: skip
    result.update(counters)
    finish(result, counters, keep=("benchmark", "database"))


if __name__ == "__main__":
    main()
