"""Backfill benchmark: N imported responses that a workflow includes, into Salesforce.

Starts the Salesforce emulator and `cxloop serve` (SQLite, embedded worker) as separate
processes, links a connection over OAuth, creates a survey whose workflow (event: responses
created, imported ones included) upserts one Survey_Response__c per response, writes N
responses to a JSON-lines file and imports it with `cxloop responses import` (a third process,
as an operator would). The worker drains the backlog while the import runs: a batch key with
more than `bulk_threshold` ready task runs goes through Bulk API 2.0 ingest jobs, the rest
through Collections calls.

Figures: `records_per_s` (N over the time from the import's start until every task run has
its outcome), `import_s`, `drain_s` (from the import's end), `api_calls_per_1000` (the
emulator's counter, over N; this script's own reads are not counted), `bulk_jobs`, and the
failure counters `lost` (responses without a succeeded task run or without their record in
Salesforce), `duplicates` (records beyond one per response id) and `failed_task_runs`.

`--kill-mid-job` SIGKILLs the server (its worker) while a Bulk job is open or being processed,
starts it again, and waits: the job is found again, nothing lost, nothing written twice.
`--latency-ms` / `--per-record-ms` give the emulator's orgs a real org's latency model.

Run: `.venv/bin/python bench/backfill_bench.py --responses 100000`. It prints one JSON object;
when a failure counter is not zero it prints only the counters and exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from _support import upsert_workflow
from outcome import BenchFailed, finish, refuse
from sqlalchemy import create_engine, text
from workflow_bench import (
    PYTHON,
    api_calls,
    cpu_seconds,
    cxloop,
    free_port,
    linked_survey,
    process,
    response_ids_in_salesforce,
    wait_until,
)

WORKFLOW = upsert_workflow("Backfill", "Emulator", "QID2", include_imported=True)
OPEN = ("pending", "running", "waiting_retry", "blocked")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--per-record-ms", type=float, default=0.0)
    parser.add_argument("--kill-mid-job", action="store_true",
                        help="SIGKILL the server mid-job, then restart it.")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="Seconds to wait for the backlog to drain.")  # fmt: skip
    parser.add_argument("--smoke", action="store_true",
                        help="A tiny run (3,000 responses) to check it works.")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    options = parser.parse_args()
    if options.smoke:
        options.responses = 3000
    workdir = Path(tempfile.mkdtemp(prefix="cxloop-backfill-"))
    try:
        result = run(options, workdir)
    except BenchFailed as exc:
        refuse([str(exc)], {"responses": options.responses})
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    counters = {k: result[k] for k in ("lost", "duplicates", "failed_task_runs")}
    finish(result, counters, keep=("responses", "kill_mid_job"))


def run(options: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    sf_port, cx_port = free_port(), free_port()
    sf, base = f"http://127.0.0.1:{sf_port}", f"http://127.0.0.1:{cx_port}"
    env = os.environ | {
        "CXLOOP_DATA_DIR": str(workdir / "data"),
        "CXLOOP_BASE_URL": base,
        "CXLOOP_SALESFORCE_EXTRA_HOSTS": json.dumps([f"127.0.0.1:{sf_port}"]),
        "CXLOOP_LOG_LEVEL": "WARNING",
        "CXLOOP_WORKER_THREADS": "2",
        # A killed worker's Collections rows come back after their lease (the Bulk job's
        # rows never wait for it: the job is checked again as soon as it is due).
        "CXLOOP_LEASE_S": "15",
        "COLUMNS": "1000",
    }
    emulator_args = [PYTHON, "-m", "cxloop", "emulator", "serve", "--port", str(sf_port),
                     "--auto-login", "admin@example.com",
                     "--latency-ms", str(options.latency_ms),
                     "--per-record-ms", str(options.per_record_ms)]  # fmt: skip
    serve_args = [PYTHON, "-m", "cxloop", "serve", "--port", str(cx_port), "--processes", "1"]
    database = create_engine(f"sqlite:///{workdir / 'data' / 'cxloop.db'}")
    with process(emulator_args, env, workdir / "emulator.log"):
        wait_until(f"{sf}/__emulator__/info")
        control = httpx.Client(base_url=f"{sf}/__emulator__", timeout=60)
        app = control.get("/info").json()["connected_apps"][0]
        control.patch(
            f"/apps/{app['name']}",
            json={"add_callback_urls": [f"{base}/oauth/salesforce/callback"]},
        ).raise_for_status()
        env |= {
            "CXLOOP_SALESFORCE_CLIENT_ID": app["client_id"],
            "CXLOOP_SALESFORCE_CLIENT_SECRET": app["client_secret"],
        }
        cxloop(env, "db", "upgrade")
        file = workdir / "responses.jsonl"
        with file.open("w") as out:
            for n in range(options.responses):
                out.write(json.dumps({"values": {"QID1": n % 11, "QID2": f"backfill #{n}"}}))
                out.write("\n")
        server = subprocess.Popen(serve_args, env=env, stdout=(workdir / "serve.log").open("wb"),
                                  stderr=subprocess.STDOUT)  # fmt: skip
        killed = False
        try:
            wait_until(f"{base}/readyz", timeout=180)
            api, survey = linked_survey(base, sf, env, "Backfill NPS")
            api.post(f"/api/v1/surveys/{survey['id']}/workflows", json=WORKFLOW).raise_for_status()
            control.delete("/api_usage").raise_for_status()
            calls_before = api_calls(control)
            cpu_before = cpu_seconds(server.pid)
            started = time.monotonic()
            importer = subprocess.Popen(
                [PYTHON, "-m", "cxloop", "responses", "import", survey["id"], str(file)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            import_s: float | None = None
            deadline = started + options.timeout
            while True:
                if import_s is None and importer.poll() is not None:
                    import_s = time.monotonic() - started
                    output = importer.stdout.read() if importer.stdout else ""
                    if importer.returncode != 0:
                        raise BenchFailed(f"the import failed: {output[-500:]}")
                if options.kill_mid_job and not killed and _job_in_flight(database):
                    server.send_signal(signal.SIGKILL)
                    server.wait()
                    killed = True
                    server = subprocess.Popen(
                        serve_args, env=env, stdout=(workdir / "serve2.log").open("wb"),
                        stderr=subprocess.STDOUT,
                    )  # fmt: skip
                if import_s is not None and not _open(database):
                    break
                if time.monotonic() > deadline:
                    raise BenchFailed(f"work still open after {options.timeout} s")
                time.sleep(0.2)
            elapsed = time.monotonic() - started
            cpu_s = cpu_seconds(server.pid) - (0.0 if killed else cpu_before)
            calls = api_calls(control) - calls_before
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        token = control.post("/tokens", json={"username": "admin@example.com"}).json()
        sf_client = httpx.Client(
            base_url=sf, headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=120
        )
        in_salesforce = Counter(response_ids_in_salesforce(sf_client))
    with database.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT runs.response_id, task_runs.status FROM task_runs "
                "JOIN runs ON runs.id = task_runs.run_id"
            )
        ).all()
        jobs = connection.execute(text("SELECT state, record_count FROM bulk_jobs")).all()
        collections = connection.execute(
            text(
                "SELECT COUNT(DISTINCT started_at) FROM task_run_attempts WHERE bulk_job_id IS NULL"
            )
        ).scalar_one()
    database.dispose()
    succeeded = {response_id for response_id, status in rows if status == "succeeded"}
    lost = options.responses - len(succeeded & set(in_salesforce))
    return {
        "responses": options.responses,
        "records_per_s": round(options.responses / elapsed, 1),
        "import_s": round(import_s or 0.0, 1),
        "drain_s": round(elapsed - (import_s or 0.0), 1),
        "elapsed_s": round(elapsed, 1),
        "api_calls": calls,
        "api_calls_per_1000": round(calls / options.responses * 1000, 3),
        "bulk_jobs": len(jobs),
        "bulk_job_states": dict(Counter(state for state, _ in jobs)),
        "records_in_bulk_jobs": sum(count for _, count in jobs),
        "collections_batches": collections,
        "server_cpu_s": round(cpu_s, 1),
        "latency_ms": options.latency_ms,
        "per_record_ms": options.per_record_ms,
        "kill_mid_job": killed,
        "lost": lost,
        "duplicates": sum(n - 1 for n in in_salesforce.values() if n > 1),
        "failed_task_runs": sum(1 for _, status in rows if status == "failed"),
    }


def _open(database: Any) -> int:
    with database.connect() as connection:
        placeholders = ", ".join(f"'{s}'" for s in OPEN)
        return (
            connection.execute(
                text(f"SELECT COUNT(*) FROM task_runs WHERE status IN ({placeholders})")
            ).scalar_one()
            + connection.execute(
                text("SELECT COUNT(*) FROM bulk_jobs WHERE settled_at IS NULL")
            ).scalar_one()
        )


def _job_in_flight(database: Any) -> bool:
    try:
        with database.connect() as connection:
            return bool(
                connection.execute(
                    text(
                        "SELECT COUNT(*) FROM bulk_jobs WHERE settled_at IS NULL "
                        "AND state IN ('Open', 'UploadComplete', 'InProgress')"
                    )
                ).scalar_one()
            )
    except Exception:  # the table may be locked for a moment; ask again next time
        return False


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
