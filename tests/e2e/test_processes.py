"""Whole processes: `cxloop serve`, and workers + a scheduler sharing one database and queue."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from cxloop.db.engine import create_database_engine
from cxloop.db.models import PeriodicSlot
from cxloop.db.uow import Database

CXLOOP = [sys.executable, "-m", "cxloop"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return os.environ | {
        "CXLOOP_DATA_DIR": str(tmp_path / "data"),
        "CXLOOP_DATABASE_URL": database_url,
        "CXLOOP_LOG_JSON": "true",
    }


class Processes:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def start(self, env: dict[str, str], *args: str) -> subprocess.Popen:
        log = (self.tmp_path / f"proc{len(self.procs)}.log").open("wb")
        # its own process group: `serve --processes 2` has children, which a failed test must
        # not leave running (they would go on writing into the worker's database)
        proc = subprocess.Popen(
            [*CXLOOP, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def stop_all(self, timeout: float = 30) -> list[int]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        return [proc.wait(timeout=timeout) for proc in self.procs]

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp_path.glob("proc*.log")))


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    for proc in procs.procs:
        with contextlib.suppress(ProcessLookupError):  # the group is gone: all stopped
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_ready(base: str, server: subprocess.Popen, processes: Processes) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.poll() is None, processes.logs()
        assert time.monotonic() < deadline, processes.logs()
        time.sleep(0.2)


def test_serve_answers_ready_and_stops_gracefully(env: dict[str, str], processes) -> None:
    port = free_port()
    server = processes.start(env, "serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, server, processes)
    # 30 s, not httpx's 5: building the OpenAPI document took longer on a loaded machine
    assert "/api/v1/surveys" in httpx.get(f"{base}/openapi.json", timeout=30).json()["paths"]
    assert httpx.get(f"{base}/docs", timeout=30).status_code == 200
    # uvicorn finishes its graceful shutdown, then re-raises SIGTERM so the exit says why
    assert processes.stop_all() in ([0], [-signal.SIGTERM]), processes.logs()
    assert "Application shutdown complete" in processes.logs()
    assert "worker.embedded_stopped" in processes.logs()


def test_periodic_job_runs_exactly_once_per_period_with_two_workers_and_a_scheduler(
    env: dict[str, str], queue_url: str, processes
) -> None:
    env = env | {
        "CXLOOP_QUEUE_URL": queue_url,
        "CXLOOP_HEARTBEAT_PERIOD_S": "1",
        "CXLOOP_PERIODIC_TICK_S": "0.1",
    }
    subprocess.run([*CXLOOP, "db", "upgrade"], env=env, check=True, capture_output=True)
    for _ in range(2):
        processes.start(env, "worker", "--workers", "2", "--no-periodic")
    processes.start(env, "scheduler")
    db = Database(create_database_engine(env["CXLOOP_DATABASE_URL"]))

    def heartbeat_executions() -> list[int]:
        with db.reader() as uow:
            rows = uow.session.scalars(
                select(PeriodicSlot)
                .where(PeriodicSlot.job == "heartbeat")
                .order_by(PeriodicSlot.slot)
            )
            return [row.executions for row in rows]

    # Let the processes start (imports take seconds on a busy machine), then run 4 periods.
    deadline = time.monotonic() + 60
    while sum(heartbeat_executions()) < 4:
        assert time.monotonic() < deadline, processes.logs()
        time.sleep(0.2)
    assert processes.stop_all() == [0, 0, 0], processes.logs()
    executions = heartbeat_executions()
    db.dispose()
    # every period ran exactly once; the last may have been claimed just before the stop
    assert all(count == 1 for count in executions[:-1]), executions
    assert executions[-1] in (0, 1)


def test_serve_with_two_processes_stores_every_response_once(
    env: dict[str, str], processes: Processes
) -> None:
    env = env | {
        "CXLOOP_QUEUE_URL": f"sqlite:///{processes.tmp_path / 'queue.db'}",
        "CXLOOP_HEARTBEAT_PERIOD_S": "1",
        "CXLOOP_PERIODIC_TICK_S": "0.1",
    }
    subprocess.run([*CXLOOP, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([*CXLOOP, "users", "create", "ann@example.com", "--admin", "--password-stdin"],
                   input="a long enough passphrase\n", env=env, check=True, capture_output=True,
                   text=True)  # fmt: skip
    issued = subprocess.run([*CXLOOP, "tokens", "create", "--user", "ann@example.com"],
                            env=env, check=True, capture_output=True, text=True)  # fmt: skip
    token = re.search(r"cxl_\S+", issued.stdout)
    assert token, issued.stdout
    headers = {"Authorization": f"Bearer {token.group(0)}"}
    port = free_port()
    server = processes.start(env, "serve", "--port", str(port), "--processes", "2")
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, server, processes)
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        survey_id = http.post("/api/v1/surveys", json={"name": "Two"}).json()["id"]
        question = {"qid": "QID1", "type": "nps", "text": "Recommend us?"}
        content = {"format_version": 1, "questions": [question]}
        http.put(f"/api/v1/surveys/{survey_id}/content", json=content).raise_for_status()
        http.patch(f"/api/v1/surveys/{survey_id}", json={"status": "active"}).raise_for_status()

    def post(n: int) -> str:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            reply = http.post(f"/api/v1/surveys/{survey_id}/responses",
                              json={"values": {"QID1": n % 11}})  # fmt: skip
            assert reply.status_code == 201, reply.text
            return reply.json()["id"]

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(post, range(80)))
    listed = httpx.get(f"{base}/api/v1/surveys/{survey_id}/responses?limit=200",
                       headers=headers, timeout=30).json()["items"]  # fmt: skip
    assert len(set(ids)) == 80 and {item["id"] for item in listed} == set(ids)
    # /metrics adds up every process: the requests both servers took, and the periodic jobs
    # only the supervising process runs
    deadline = time.monotonic() + 30
    while True:
        text = httpx.get(f"{base}/metrics", timeout=30).text
        if 'cxloop_periodic_runs_total{job="heartbeat"}' in text:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.3)
    posted = re.findall(
        r'cxloop_http_requests_total\{method="POST",route="/api/v1/surveys/\{survey_id\}'
        r'/responses",status="201"\} ([0-9.]+)',
        text,
    )
    assert [float(n) for n in posted] == [80.0], text
    assert processes.stop_all() in ([0], [-signal.SIGTERM]), processes.logs()
    logs = processes.logs()
    assert logs.count("Started server process") == 2, logs
    assert "worker.embedded_stopped" in logs  # the worker ran in the supervising process


def test_serve_refuses_several_processes_on_an_in_memory_queue(env: dict[str, str]) -> None:
    refused = subprocess.run(
        [*CXLOOP, "serve", "--processes", "2"],
        env=env | {"CXLOOP_QUEUE_URL": "memory://"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "--processes above 1 needs a queue other processes can reach" in refused.stderr
    assert "Traceback" not in refused.stderr
