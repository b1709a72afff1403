"""The Compose file's processes, run here as plain processes with its shared environment.

Docker does not run on this machine, so the containers cannot; but what they run can: the
commands of deploy/compose.yaml with the environment of its `x-cxloop-env` block (PostgreSQL and
Redis here instead of the compose network's), and the image's health check against the web
process. This proves the shared environment boots a whole installation.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import select

from cxloop.db.engine import create_database_engine
from cxloop.db.models import PeriodicSlot
from cxloop.db.uow import Database

ROOT = Path(__file__).resolve().parents[2]
CXLOOP = [sys.executable, "-m", "cxloop"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def substitute(value: str, given: dict[str, str]) -> str:
    """`${VAR:-default}` and `${VAR:?message}` of a Compose value (no nesting needed here)."""

    def one(match: re.Match[str]) -> str:
        name, operator, rest = match.group(1), match.group(2), match.group(3)
        if given.get(name):
            return given[name]
        assert operator != ":?", f"compose would refuse to start: {name} {rest}"
        return rest

    return re.sub(r"\$\{([A-Z_]+)(:-|:\?)?(\{\}|[^}]*)\}", one, value)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def logs(tmp_path: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(tmp_path.glob("*.log")))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("queue_url", ["redis"], indirect=True)
def test_the_compose_environment_runs_web_workers_and_scheduler(
    tmp_path: Path, database_url: str, queue_url: str, processes: list[subprocess.Popen]
) -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    given = {
        "POSTGRES_PASSWORD": "unused-here",
        "CXLOOP_SECRET_KEY": "k" * 64,
        "CXLOOP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    shared = {name: substitute(value, given) for name, value in compose["x-cxloop-env"].items()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXLOOP_")} | shared
    env |= {
        # this machine's PostgreSQL and Redis instead of the compose network's
        "CXLOOP_DATABASE_URL": database_url,
        "CXLOOP_QUEUE_URL": queue_url,
        "CXLOOP_DATA_DIR": str(tmp_path / "data"),
        "CXLOOP_CONFIG": str(tmp_path / "absent.toml"),
        # quick periods, so that the scheduler's work shows within seconds
        "CXLOOP_HEARTBEAT_PERIOD_S": "1",
        "CXLOOP_PERIODIC_TICK_S": "0.1",
    }
    services = compose["services"]

    upgrade = subprocess.run([*CXLOOP, *services["db-upgrade"]["command"]], env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert upgrade.returncode == 0, upgrade.stderr

    port = free_port()
    web_argv = list(services["web"]["command"])
    web_argv[web_argv.index("--host") + 1] = "127.0.0.1"  # not every address of this machine
    web_argv[web_argv.index("--port") + 1] = str(port)
    # In compose each container has its own 9000 for probes; on this one host each gets a port.
    probe_ports = {name: free_port() for name in ("worker", "scheduler")}
    probe_argvs = {}
    for name, probe_port in probe_ports.items():
        argv = list(services[name]["command"])
        argv[argv.index("--health-port") + 1] = str(probe_port)
        probe_argvs[name] = argv
    for name, argv, proc_env in (
        ("web", web_argv, env),
        ("worker", probe_argvs["worker"], env),
        ("scheduler", probe_argvs["scheduler"], env),
    ):
        log = (tmp_path / f"{name}.log").open("wb")
        processes.append(subprocess.Popen([*CXLOOP, *argv], env=proc_env, stdout=log,
                                          stderr=subprocess.STDOUT))  # fmt: skip

    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert all(p.poll() is None for p in processes), logs(tmp_path)
        assert time.monotonic() < deadline, logs(tmp_path)
        time.sleep(0.3)

    # The image's HEALTHCHECK, as Docker runs it, against this web process.
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    check = json.loads(re.search(r"^\s*CMD (\[\"python\".*\])$", dockerfile, re.M).group(1))
    code = check[2].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0
    broken = code.replace("/livez", "/no-such-page")
    assert subprocess.run([sys.executable, "-c", broken], capture_output=True,
                          timeout=30).returncode != 0  # fmt: skip

    # The worker's and the scheduler's health checks, as compose runs them, on their ports.
    for name, probe_port in probe_ports.items():
        check = services[name]["healthcheck"]["test"]
        code = check[-1].replace("127.0.0.1:9000", f"127.0.0.1:{probe_port}")
        deadline = time.monotonic() + 60
        while subprocess.run([sys.executable, "-c", code], capture_output=True,
                             timeout=30).returncode != 0:  # fmt: skip
            assert time.monotonic() < deadline, logs(tmp_path)
            time.sleep(0.5)

    # The scheduler claims heartbeats; the worker runs them.
    db = Database(create_database_engine(database_url))
    try:
        while True:
            with db.reader() as uow:
                ran = uow.session.scalars(
                    select(PeriodicSlot.executions).where(PeriodicSlot.job == "heartbeat")
                ).all()
            if sum(ran) >= 2:
                break
            assert time.monotonic() < deadline, logs(tmp_path)
            time.sleep(0.3)
    finally:
        db.dispose()

    for proc in processes:
        proc.send_signal(signal.SIGTERM)
    codes = [proc.wait(timeout=90) for proc in processes]
    assert all(code in (0, -signal.SIGTERM) for code in codes), logs(tmp_path)
