"""Every benchmark at a tiny size (`--smoke`), so that a broken bench is caught; and a bench whose
work failed prints no figure and exits non-zero.

The figures of these runs mean nothing (tiny sizes, a busy machine) and are not looked at: only
the JSON keys, and that every failure counter is 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"

# bench -> (keys its JSON must have, its failure counters: all must be 0 or empty)
BENCHES: dict[str, tuple[set[str], set[str]]] = {
    "workflow_bench.py": (
        {"responses", "clients", "server_processes", "database", "submit_seconds",
         "responses_per_s", "records_per_s", "api_calls_per_1000", "server_cpu_ms_per_response",
         "half_load_responses_per_s", "p50_s", "p99_s", "naive_records_per_s", "naive_seconds",
         "naive_api_calls_per_1000",
         # the same run against an emulator with a real org's latency (150 ms + 5 ms a record)
         "realistic_latency_ms", "realistic_per_record_ms", "realistic_responses",
         "realistic_records_per_s", "realistic_api_calls_per_1000", "realistic_p50_s",
         "realistic_p99_s", "realistic_naive_records_per_s"},
        {"lost", "duplicates", "refused", "task_runs_not_succeeded", "naive_errors",
         "realistic_lost", "realistic_duplicates", "realistic_refused",
         "realistic_task_runs_not_succeeded", "realistic_naive_errors"},
    ),
    "listener_bench.py": (
        {"messages", "notifications", "clients", "database", "worker", "cpus", "p50_ms",
         "p99_ms", "max_ms", "mean_ms", "acks_per_s", "notifications_per_s", "server_p50_ms",
         "server_p99_ms", "replay_p50_ms", "runs", "inbox", "runs_as_expected"},
        {"refused", "lost", "runs_off_by", "inbox_off_by"},
    ),
    "emulator_bench.py": (
        {"benchmark", "transport", "database", "single_create_ms", "collections_200_call_ms",
         "collections_ms_per_record", "collections_records_per_s",
         "collections_upsert_ms_per_record", "calls_per_s", "sqlite_file", "core", "machine"},
        {"client_errors", "missing_records"},
    ),
    "backlog_bench.py": (
        {"responses", "database", "imported", "import_responses_per_s",
         "import_first_10pct_per_s", "import_last_10pct_per_s", "task_runs_while_unreachable",
         "attempts_while_unreachable", "queue_while_unreachable", "records", "drain_seconds",
         "drain_records_per_s", "drain_first_10pct_per_s", "drain_middle_10pct_per_s",
         "drain_last_10pct_per_s", "max_rss_mb"},
        {"refused", "lost", "task_runs_not_succeeded"},
    ),
    "backfill_bench.py": (
        {"responses", "records_per_s", "import_s", "drain_s", "api_calls_per_1000", "bulk_jobs",
         "records_in_bulk_jobs", "server_cpu_s", "latency_ms", "per_record_ms"},
        {"lost", "duplicates", "failed_task_runs"},
    ),
    "responses_bench.py": (
        {"database", "cpus", "server_processes", "responses_per_s_single", "single_accepted",
         "latency_ms_p50", "latency_ms_p99", "clients", "seconds", "responses_per_s_import",
         "import_rows", "import_cpu_us_per_row", "responses_per_s_import_http", "array_size",
         "http_import_clients"},
        {"single_errors", "import_failed", "http_import_errors", "missing_responses"},
    ),
    "intake_bench.py": (
        {"database", "responses", "repeat", "commit_batch", "commit_cpu_us_per_response",
         "path_clients", "path_cpu_us_per_response", "whole_clients",
         "whole_cpu_us_per_response", "whole_mean_batch"},
        {"refused"},
    ),
    "lease_bench.py": (
        {"database", "lease_s", "heartbeat_s", "rows_held", "beats", "idle", "busy"},
        {"wrong_renewals"},
    ),
}  # fmt: skip


def run_bench(script: str, *args: str) -> tuple[int, dict[str, Any], str]:
    """Run a bench as `make bench` would; (exit status, its JSON line, its stderr)."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=280,  # under pytest-timeout's 300 s
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing: {done.stderr[-2000:]}"
    return done.returncode, json.loads(lines[-1]), done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(BENCHES))
def test_each_bench_runs_at_a_tiny_size_with_nothing_failed(script: str) -> None:
    status, result, stderr = run_bench(script, "--smoke")
    assert status == 0, (result, stderr[-2000:])
    keys, counters = BENCHES[script]
    assert keys | counters <= set(result), sorted(keys | counters - set(result))
    assert "failed" not in result
    assert {name: result[name] for name in counters if result[name]} == {}


@pytest.mark.slow
def test_a_dropped_upsert_shows_as_duplicates_and_the_workflow_bench_prints_no_figure() -> None:
    # The emulator writes the first upsert batch, then drops the connection: cxloop cannot know
    # the batch landed and sends it again. Each record is then written twice.
    fault = {"mode": "commit_then_drop", "method": "PATCH", "path": "/composite/sobjects",
             "count": 1}  # fmt: skip
    status, result, stderr = run_bench("workflow_bench.py", "--smoke", "--fault", json.dumps(fault))
    assert status == 1, result
    assert result["duplicates"] > 0 and result["lost"] == 0
    assert any(reason.startswith("duplicates:") for reason in result["failed"])
    keys, _ = BENCHES["workflow_bench.py"]
    figures = keys - {"responses", "clients", "server_processes", "database"}
    assert not figures & set(result), sorted(figures & set(result))
    assert "no figures" in stderr


@pytest.mark.slow
def test_the_workflow_bench_runs_on_a_scratch_postgresql_database_and_drops_it() -> None:
    from sqlalchemy import create_engine, make_url, text
    from tests.conftest import POSTGRES_ADMIN_URL

    name = f"bench_smoke_workflow_{os.getpid()}"
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    status, result, stderr = run_bench(
        "workflow_bench.py", "--smoke", "--world", "realistic", "--database-url", url
    )
    assert status == 0, (result, stderr[-2000:])
    assert result["database"] == "postgresql"
    assert result["realistic_lost"] == result["realistic_duplicates"] == 0
    assert result["realistic_records_per_s"] > 0
    admin = create_engine(POSTGRES_ADMIN_URL)
    try:
        with admin.connect() as connection:
            left = connection.execute(
                text("SELECT count(*) FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar_one()
    finally:
        admin.dispose()
    assert left == 0  # dropped at the end


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/cxloop-bench.db",  # not PostgreSQL
        "postgresql://postgres@127.0.0.1:5432",  # no database to make
        "postgresql://postgres@127.0.0.1:5432/postgres",  # the bench would drop it
    ],
)
def test_the_workflow_bench_refuses_a_database_url_it_must_not_drop(url: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "workflow_bench.py"), "--database-url", url],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout
    assert "--database-url" in done.stderr
    assert done.stdout == ""


@pytest.mark.slow
def test_a_failing_emulator_call_leaves_the_emulator_bench_without_figures() -> None:
    fault = {"error": "SERVER_UNAVAILABLE", "method": "POST", "path": "/sobjects/", "count": 2}
    status, result, _ = run_bench("emulator_bench.py", "--smoke", "--fault", json.dumps(fault))
    assert status == 1, result
    assert result["client_errors"]["memory.create"] == 2
    assert result["missing_records"] == 2 * 2  # both runs (memory, file) miss two records
    assert "single_create_ms" not in result and "core" not in result


# -- the listener bench's accounting, against a listener that refuses and drops messages


class Flaky(BaseHTTPRequestHandler):
    """Acks the first message, answers a SOAP fault to the second, drops the third."""

    answered = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with Flaky.lock:
            Flaky.answered += 1
            number = Flaky.answered
        if number == 3:
            self.close_connection = True  # no answer at all
            self.connection.close()
            return
        ack = b"<Ack>true</Ack>" if number == 1 else b"<faultstring>busy</faultstring>"
        self.send_response(200 if number == 1 else 500)
        self.send_header("Content-Length", str(len(ack)))
        self.end_headers()
        self.wfile.write(ack)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def flaky_listener() -> Iterator[str]:
    Flaky.answered = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/salesforce/outbound/x"
    server.shutdown()
    server.server_close()


def test_the_listener_bench_times_only_acknowledged_messages(
    flaky_listener: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    from listener_bench import send_all

    sent = send_all(flaky_listener, [b"<m/>"] * 3, clients=1, timeout=5)
    assert (sent.acked, sent.refused, sent.lost) == (1, 1, 1)
    assert len(sent.latencies) == 1  # the refused and the lost message are not timed


# -- the cluster bench's clients, against two web processes of which one drops a request


class WebProcess(BaseHTTPRequestHandler):
    """Answers 201 with a new response id; the server named `drops` reads its first request
    and closes the connection without an answer (a web process killed mid-request)."""

    seen: list[tuple[int, str, str]] = []  # (port, Idempotency-Key, comment)
    drops = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        port = self.server.server_address[1]
        with WebProcess.lock:
            WebProcess.seen.append(
                (port, self.headers.get("Idempotency-Key", ""), body["values"]["QID2"])
            )
            drop = port == WebProcess.drops
            if drop:
                WebProcess.drops = 0  # only the first request
            number = len(WebProcess.seen)
        if drop:
            self.close_connection = True
            self.connection.close()
            return
        reply = json.dumps({"id": f"R_{number}"}).encode()
        self.send_response(201)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def two_web_processes() -> Iterator[list[str]]:
    WebProcess.seen = []
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), WebProcess) for _ in range(2)]
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    WebProcess.drops = servers[0].server_address[1]
    yield [f"http://127.0.0.1:{server.server_address[1]}" for server in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_cluster_bench_sends_an_unanswered_request_again_with_its_key_to_the_other_web(
    two_web_processes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    from cluster_bench import submit

    seen = submit(two_web_processes, {}, "SV_1", "t", count=2, clients=1, retry_for_s=10)
    assert set(seen.accepted) == {0, 1} and seen.refused == 0
    assert (seen.retries, seen.interrupted) == (1, 1)
    first, second, third = WebProcess.seen
    ports = [int(base.rsplit(":", 1)[1]) for base in two_web_processes]
    # submission 0 went to the first web process, which dropped it; sent again to the other,
    # with the same key; submission 1 went to the second web process, with a key of its own
    assert (first[0], first[2]) == (ports[0], "t #0")
    assert (second[0], second[1], second[2]) == (ports[1], first[1], "t #0")
    assert (third[0], third[2]) == (ports[1], "t #1") and third[1] != first[1]
