"""What an operator of the scaled-out mode meets at start and while running (issue #18): every
process checks its keys, a cluster worker never makes its own, and workers and the scheduler
report heartbeats (`/readyz` of the web) and serve their own probes and metrics. Real
processes throughout (tests/integration/test_operator_cli.py has the read-only commands and
the settings' one-line errors)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from cryptography.fernet import Fernet
from tests.e2e.test_processes import CXLOOP, Processes, free_port, wait_ready

from cxloop.db.engine import create_database_engine
from cxloop.db.uow import Database
from cxloop.security import SecretBox
from cxloop.services import heartbeats, keys

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return os.environ | {
        "CXLOOP_DATA_DIR": str(tmp_path / "data"),
        "CXLOOP_DATABASE_URL": database_url,
        "CXLOOP_QUEUE_URL": f"sqlite:///{tmp_path / 'queue.db'}",
        "CXLOOP_LOG_JSON": "true",
        "CXLOOP_PROCESS_HEARTBEAT_S": "0.5",
        "CXLOOP_PROCESS_SILENT_AFTER_S": "5",
        "CXLOOP_PERIODIC_TICK_S": "0.2",
    }


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    for proc in procs.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def cxloop(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run([*CXLOOP, *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def one_line_refusal(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def write_key_check(database_url: str, key: str) -> None:
    db = Database(create_database_engine(database_url))
    keys.check_keys(db, SecretBox([key]))
    db.dispose()


def beating(database_url: str, role: str) -> bool:
    db = Database(create_database_engine(database_url))
    try:
        return any(h.role == role for h in heartbeats.role_health(db, 60) if not h.is_silent)
    finally:
        db.dispose()


# -- keys


def test_every_process_refuses_to_start_with_keys_that_do_not_decrypt_the_database(
    env: dict[str, str], database_url: str, processes: Processes
) -> None:
    write_key_check(database_url, KEY_A)
    wrong = env | {"CXLOOP_ENCRYPTION_KEYS": KEY_B}
    for command in (["worker"], ["scheduler"], ["serve", "--port", str(free_port())]):
        line = one_line_refusal(cxloop(wrong, *command))
        assert "cannot decrypt the key check" in line and "CXLOOP_ENCRYPTION_KEYS" in line
    # a new key first and the old one after it (a rotation under way) is right
    rotated = env | {"CXLOOP_ENCRYPTION_KEYS": f"{KEY_B},{KEY_A}"}
    scheduler = processes.start(rotated, "scheduler")
    wait_for(lambda: beating(database_url, "scheduler"), "the scheduler's heartbeat", processes)
    assert scheduler.poll() is None, processes.logs()
    assert processes.stop_all() == [0], processes.logs()


def test_a_database_from_before_the_key_check_is_checked_on_a_stored_secret(
    env: dict[str, str], database_url: str
) -> None:
    stored = cxloop(env | {"CXLOOP_ENCRYPTION_KEYS": KEY_A}, "salesforce", "app", "set",
                    "--client-id", "3MVG9x", "--client-secret-stdin", stdin="s3cret\n")  # fmt: skip
    assert stored.returncode == 0, stored.stderr
    line = one_line_refusal(cxloop(env | {"CXLOOP_ENCRYPTION_KEYS": KEY_B}, "worker"))
    assert "salesforce_apps.client_secret" in line and "CXLOOP_ENCRYPTION_KEYS" in line


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_a_cluster_worker_or_scheduler_never_makes_keys_of_its_own(
    env: dict[str, str], database_url: str, tmp_path: Path, command: str
) -> None:
    data_dir = tmp_path / "data"
    clustered = dict(env)
    if database_url.startswith("sqlite"):  # a Redis queue makes a cluster too
        clustered["CXLOOP_QUEUE_URL"] = "redis://127.0.0.1:6379/15"
    line = one_line_refusal(cxloop(clustered, command))
    assert "CXLOOP_ENCRYPTION_KEYS" in line and f"cxloop {command}" in line
    assert not (data_dir / "encryption_keys").exists()


# -- heartbeats, probes and metrics of separate processes


class Mail:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_for(check, what: str, processes: Processes, timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except httpx.TransportError:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}\n{processes.logs()}"
        time.sleep(0.3)


def test_a_separate_worker_heartbeats_and_serves_probes_and_metrics(
    env: dict[str, str], processes: Processes
) -> None:
    smtp_port = free_port()
    mail = Controller(Mail(), hostname="127.0.0.1", port=smtp_port)
    mail.start()
    env = env | {"CXLOOP_ENCRYPTION_KEYS": KEY_A, "CXLOOP_SECRET_KEY": "k" * 48,
                 "CXLOOP_SMTP_PORT": str(smtp_port), "CXLOOP_BATCH_LINGER_S": "0"}  # fmt: skip
    try:
        assert cxloop(env, "db", "upgrade").returncode == 0
        cxloop(env, "users", "create", "ann@example.com", "--admin", "--password-stdin",
               stdin="a long enough passphrase\n")  # fmt: skip
        token = re.search(r"cxl_\S+", cxloop(env, "tokens", "create", "--user",
                                             "ann@example.com").stdout)  # fmt: skip
        assert token
        headers = {"Authorization": f"Bearer {token.group(0)}"}
        web_port, probe_port = free_port(), free_port()
        web = processes.start(env, "serve", "--no-worker", "--port", str(web_port))
        base = f"http://127.0.0.1:{web_port}"
        wait_ready(base, web, processes)
        # no worker, no scheduler: degraded, and still 200 (intake goes on)
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200 and ready.json()["degraded"] == ["workers", "scheduler"]

        worker = processes.start(env, "worker", "--health-port", str(probe_port))
        probes = f"http://127.0.0.1:{probe_port}"
        wait_for(
            lambda: httpx.get(f"{probes}/livez").status_code == 200, "worker /livez", processes
        )
        assert worker.poll() is None
        worker_ready = httpx.get(f"{probes}/readyz")
        assert worker_ready.status_code == 200
        assert worker_ready.json() == {
            "status": "ready",
            "checks": {"database": "ok", "queue": "ok"},
        }
        wait_for(lambda: httpx.get(f"{base}/readyz").json()["status"] == "ready",
                 "web /readyz ready once the worker beats", processes)  # fmt: skip

        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            survey_id = http.post("/api/v1/surveys", json={"name": "Ops"}).json()["id"]
            question = {"qid": "QID1", "type": "nps", "text": "Recommend us?"}
            http.put(
                f"/api/v1/surveys/{survey_id}/content",
                json={"format_version": 1, "questions": [question]},
            ).raise_for_status()
            http.patch(f"/api/v1/surveys/{survey_id}", json={"status": "active"}).raise_for_status()
            workflow = {
                "name": "Mail", "event": {"type": "survey_response"},
                "tasks": [{"id": "m", "type": "email", "to": "am@example.com",
                           "subject": "s", "body": "b"}],
            }  # fmt: skip
            http.post(f"/api/v1/surveys/{survey_id}/workflows", json=workflow).raise_for_status()
            for n in range(3):
                http.post(f"/api/v1/surveys/{survey_id}/responses",
                          json={"values": {"QID1": n}}).raise_for_status()  # fmt: skip
        # the worker wrote the effects: its own /metrics counts them
        counted = wait_for(
            lambda: metric(httpx.get(f"{probes}/metrics").text,
                           "cxloop_submit_to_record_seconds_count") >= 3,
            "the worker's metrics count its records", processes,
        )  # fmt: skip
        assert counted
        # a worker stopped: gone from /readyz at once (degraded, saying so)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, processes.logs()
        body = wait_for(lambda: (b := httpx.get(f"{base}/readyz").json())["status"] == "degraded"
                        and b, "degraded after the worker stopped", processes)  # fmt: skip
        assert body["checks"]["workers"] == "no worker has sent a heartbeat: is one running?"
        assert processes.stop_all()[0] in (0, -signal.SIGTERM), processes.logs()
    finally:
        mail.stop()
