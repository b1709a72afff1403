"""Scaled-out benchmark: PostgreSQL + Redis, two web processes, 1, 2 and 4 workers, a scheduler,
against a Salesforce emulator with a real org's latency; then a run in which a worker and a web
process are killed with SIGKILL and restarted.

It creates a PostgreSQL database (`bench_cluster`, dropped first if it is there, and at the end)
and empties its Redis database (13 by default) before and after. The processes are those of the
scaled-out deployment (docs/deploy.md), each with its own data directory and the shared settings
in the environment: the emulator (`--latency-ms 150 --per-record-ms 5`), two
`cxloop serve --no-worker`, one `cxloop scheduler` and the workers (`cxloop worker --workers 4
--no-periodic`). A connection is linked over OAuth and a survey's workflow upserts one
`Survey_Response__c` per response, keyed on `Response_ID__c`, with the response's comment (which
names the submission) in `Comment__c`.

1. per worker count (`--workers 1,2,4`): that many workers are started, N responses are POSTed by
   concurrent clients spread over the two web processes (a load balancer's round robin), and the
   workers are stopped once every record is in Salesforce: records/s (first POST to last record)
   and API calls per 1,000 responses (the emulator's own count; the bench reads the emulator
   only through its control API, which is not counted);
2. kill (`--kill-workers 2`): the same with a worker and a web process killed with SIGKILL once
   half the responses are accepted, and both restarted. Every request is sent with an
   `Idempotency-Key` header; a client whose request got no answer, or a 5xx, sends it again with
   the same key, to the other web process, until it is accepted (`client_retries`;
   `interrupted_requests` counts those that had reached a server). Records are counted in the
   emulator by the response id external key and by the submission each record names:
   `kill_lost` (a submission without record) and `kill_duplicates` (a submission with more
   than one record, or a key with more than one) must be 0. `kill_settled_s` is the time from
   the kill until every task run has succeeded: a killed worker's rows wait for their lease.

It prints one JSON object; failure counters > 0 print no figure and exit 1 (bench/outcome.py).
Run: `make bench-cluster` or `.venv/bin/python bench/cluster_bench.py --responses 2000`.
`--smoke` runs it at a tiny size (one worker count, short leases) to check that it works.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from _support import (
    PYTHON,
    TaskRunLedger,
    api_calls,
    cpu_seconds,
    cxloop,
    drop_database,
    emulator_app,
    free_port,
    fresh_database,
    wait_until,
)
from cryptography.fernet import Fernet
from outcome import BenchFailed, failures, finish, refuse
from sqlalchemy import text
from workflow_bench import set_up

SOBJECT = "Survey_Response__c"
SMOKE = {"responses": 40, "clients": 4, "workers": "1", "kill_workers": 1, "lease_s": 5,
         "sweeper_period_s": 1, "record_timeout": 120.0}  # fmt: skip
FAILURE_COUNTERS = ("refused", "lost", "duplicates", "task_runs_not_succeeded", "kill_refused",
                    "kill_lost", "kill_duplicates", "kill_task_runs_not_succeeded")  # fmt: skip
# Facts kept when the figures are void: the sizes, and what the clients went through.
FACTS = ("responses", "clients", "worker_counts", "worker_threads", "web_processes", "database",
         "latency_ms", "per_record_ms", "lease_s", "kill_workers", "kill_client_retries",
         "kill_interrupted_requests", "kill_responses_stored_twice",
         "kill_records_without_client_id")  # fmt: skip


BEGAN = time.monotonic()


def note(what: str) -> None:
    """A progress line on stderr, with the seconds since the bench began."""
    print(f"[{time.monotonic() - BEGAN:7.1f} s] {what}", file=sys.stderr, flush=True)


class Cluster:
    """The processes of one scaled-out installation on this machine, by name."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.args: dict[str, list[str]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        """Start `cxloop ARGS` as `name`, with its own data directory and log (appended to
        when a process of that name is restarted)."""
        env = self.env | {"CXLOOP_DATA_DIR": str(self.workdir / name)}
        with (self.workdir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen([PYTHON, "-m", "cxloop", *args], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)  # fmt: skip
        self.procs[name] = proc
        self.args[name] = list(args)
        return proc

    def restart(self, name: str) -> subprocess.Popen:
        """Start `name` again with the arguments it had."""
        return self.start(name, *self.args[name])

    def kill(self, name: str) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        self.procs[name].kill()
        self.procs[name].wait()

    def stop(self, name: str, timeout: float = 90.0) -> None:
        """SIGTERM, as a deployment stops a process; SIGKILL past `timeout`."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        """SIGTERM to all at once, then wait for each."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name in list(self.procs):
            self.stop(name, timeout=30)

    def alive(self, name: str) -> None:
        """BenchFailed naming the process and its log's end when it has exited."""
        proc = self.procs[name]
        if proc.poll() is not None:
            tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-1500:]
            raise BenchFailed(f"{name} exited with {proc.returncode}: {tail}")


def connected_to_port(pid: int, port: int) -> bool:
    """Whether the process holds an established TCP connection to `port` (Linux /proc): a
    worker connects to Redis once its consumer runs, after its seconds of start-up."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                return True
    return False


def wait_for_workers(cluster: Cluster, names: list[str], redis_port: int, timeout: float) -> None:
    """Until every named worker is taking work from the queue."""
    deadline = time.monotonic() + timeout
    waiting = list(names)
    while waiting:
        for name in list(waiting):
            cluster.alive(name)
            if connected_to_port(cluster.procs[name].pid, redis_port):
                waiting.remove(name)
        if time.monotonic() > deadline:
            raise BenchFailed(f"workers {waiting} did not reach the queue within {timeout} s")
        time.sleep(0.2)


@dataclass
class Submissions:
    """What the clients saw: the response id each accepted submission got, and the rest."""

    accepted: dict[int, str] = field(default_factory=dict)
    refused: int = 0
    retries: int = 0
    interrupted: int = 0  # sent, and no answer (or a 5xx): it may have been stored
    lock: threading.Lock = field(default_factory=threading.Lock)


def submit(
    bases: list[str],
    headers: dict[str, str],
    survey_id: str,
    label: str,
    count: int,
    clients: int,
    retry_for_s: float,
    on_accepted: Any = None,
) -> Submissions:
    """POST `count` responses from `clients` threads, submission n to web process n mod 2 (a
    round-robin load balancer). Each carries an Idempotency-Key; a request that got no answer,
    a 5xx or a 409 is sent again with the same key to the next web process, for up to
    `retry_for_s`. A replay answered 201 with the stored response counts as accepted."""
    seen = Submissions()
    path = f"/api/v1/surveys/{survey_id}/responses"

    def client_loop(index: int) -> None:
        http = [httpx.Client(base_url=base, headers=headers, timeout=60) for base in bases]
        try:
            for n in range(index, count, clients):
                body = {"values": {"QID1": n % 11, "QID2": f"{label} #{n}"}}
                key = {"Idempotency-Key": f"{label}-{n}-{uuid.uuid4().hex}"}
                target, give_up_at = n % len(bases), time.monotonic() + retry_for_s
                while True:
                    try:
                        reply = http[target].post(path, json=body, headers=key)
                    except httpx.ConnectError:
                        reply, reached = None, False  # nothing was sent
                    except httpx.TransportError:
                        reply, reached = None, True
                    else:
                        reached = True
                    if reply is not None and reply.status_code == 201:
                        with seen.lock:
                            seen.accepted[n] = reply.json()["id"]
                            accepted = len(seen.accepted)
                        if on_accepted:
                            on_accepted(accepted)
                        break
                    # 409: the first request with this key may still be storing it; ask again
                    if reply is not None and reply.status_code < 500 and reply.status_code != 409:
                        with seen.lock:
                            seen.refused += 1
                        break
                    with seen.lock:
                        seen.retries += 1
                        seen.interrupted += int(reached)
                    if time.monotonic() > give_up_at:
                        with seen.lock:
                            seen.refused += 1
                        break
                    target = (target + 1) % len(bases)
                    time.sleep(0.2)
        finally:
            for client in http:
                client.close()

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    return seen


class Observer(TaskRunLedger):
    """Reads what happened: records in the emulator (control API, not counted as API calls),
    its API usage, and cxloop's ledger in PostgreSQL."""

    def __init__(self, control: httpx.Client, database_url: str) -> None:
        super().__init__(database_url)
        self.control = control

    def record_count(self) -> int:
        reply = self.control.get("/records", params={"sobject": SOBJECT, "limit": 1})
        return int(reply.raise_for_status().json()["totalSize"])

    def records(self) -> list[dict[str, Any]]:
        reply = self.control.get("/records", params={"sobject": SOBJECT, "limit": 10_000_000})
        return list(reply.raise_for_status().json()["records"])

    def api_calls(self) -> int:
        return api_calls(self.control)

    def task_runs(self) -> Counter[str]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT status, COUNT(*) FROM task_runs GROUP BY status")
            )
            return Counter({status: count for status, count in rows})

    def stored_per_submission(self, label: str) -> Counter[int]:
        """How many responses cxloop stored for each submission of the run `label`."""
        stored: Counter[int] = Counter()
        with self.engine.connect() as connection:
            for (values,) in connection.execute(text("SELECT values FROM responses")):
                values = json.loads(values) if isinstance(values, str) else values
                number = submission_number(label, str((values or {}).get("QID2", "")))
                if number is not None:
                    stored[number] += 1
        return stored


def submission_number(label: str, comment: str) -> int | None:
    match = re.fullmatch(re.escape(label) + r" #(\d+)", comment or "")
    return int(match.group(1)) if match else None


def wait_until_settled(
    observer: Observer, label: str, accepted: dict[int, str], timeout: float
) -> tuple[float, float]:
    """Until every accepted submission of `label` has its record and every task run has
    succeeded; BenchFailed when a task run failed or at `timeout`. Returns (when the last record
    arrived, when the ledger settled), as time.monotonic()."""
    started = time.monotonic()
    landed_at: float | None = None
    expected = set(accepted)
    while time.monotonic() - started < timeout:
        runs = observer.task_runs()
        if runs["failed"]:
            raise BenchFailed(f"{runs['failed']} task runs failed: {observer.first_failure()}")
        if landed_at is None:
            numbers = {submission_number(label, r.get("Comment__c")) for r in observer.records()}
            if expected <= numbers:
                landed_at = time.monotonic()
        if landed_at is not None and sum(runs.values()) == runs["succeeded"]:
            return landed_at, time.monotonic()
        time.sleep(0.5)
    runs = observer.task_runs()
    raise BenchFailed(
        f"run {label}: not settled within {timeout} s (records of every submission: "
        f"{landed_at is not None}; task runs: {dict(runs)})"
    )


def count_outcome(observer: Observer, label: str, seen: Submissions) -> dict[str, int]:
    """Lost and duplicated records of the run `label`, by the response id external key and by
    the submission each record names; and what cxloop stored."""
    records = [r for r in observer.records()
               if submission_number(label, r.get("Comment__c")) is not None]  # fmt: skip
    per_key = Counter(r.get("Response_ID__c") for r in records)
    per_submission = Counter(submission_number(label, r.get("Comment__c")) for r in records)
    client_ids = set(seen.accepted.values())
    stored = observer.stored_per_submission(label)
    return {
        "lost": len(set(seen.accepted) - set(per_submission)),
        "duplicates": sum(n - 1 for n in per_submission.values())
        + sum(n - 1 for n in per_key.values()),
        # a record whose response id no client was given: stored by a request whose answer
        # was lost, and sent again
        "records_without_client_id": sum(1 for key in per_key if key not in client_ids),
        "responses_stored_twice": sum(n - 1 for n in stored.values()),
    }


def measure(
    options: argparse.Namespace,
    cluster: Cluster,
    observer: Observer,
    bases: list[str],
    headers: dict[str, str],
    survey_id: str,
    label: str,
    workers: int,
    kill: bool,
) -> dict[str, Any]:
    """One run: start `workers` workers, submit, (kill and restart a worker and a web process
    halfway), wait until settled, stop the workers. The figures and counters of the run."""
    names = [f"worker{i + 1}" for i in range(workers)]
    for name in names:
        cluster.start(name, "worker", "--workers", str(options.worker_threads), "--no-periodic")
    wait_for_workers(cluster, names, options.redis_port, timeout=120)
    note(f"run {label}: {workers} workers take work")
    calls_before = observer.api_calls()
    killed_at: list[float] = []

    def kill_halfway(accepted: int) -> None:
        if kill and not killed_at and accepted >= options.responses // 2:
            killed_at.append(time.monotonic())
            threading.Thread(target=kill_and_restart, daemon=True).start()

    def kill_and_restart() -> None:
        cluster.kill("worker1")
        cluster.kill("web2")
        note(f"run {label}: worker1 and web2 killed")
        time.sleep(options.restart_after_s)
        cluster.restart("worker1")
        cluster.restart("web2")

    first_submit = time.monotonic()
    cpu_before = {proc.pid: cpu_seconds(proc.pid) for proc in cxloop_processes(cluster)}
    seen = submit(bases, headers, survey_id, label, options.responses, options.clients,
                  retry_for_s=options.record_timeout, on_accepted=kill_halfway)  # fmt: skip
    submitted_at = time.monotonic()
    note(f"run {label}: {len(seen.accepted)} responses accepted")
    if not seen.accepted:
        raise BenchFailed(f"run {label}: all {options.responses} responses were refused")
    landed_at, settled_at = wait_until_settled(
        observer, label, seen.accepted, options.record_timeout
    )
    calls = observer.api_calls() - calls_before
    note(f"run {label}: every record landed, every task run succeeded")
    cpu = sum(cpu_seconds(proc.pid) - cpu_before.get(proc.pid, 0.0)
              for proc in cxloop_processes(cluster))  # fmt: skip
    for name in names:
        cluster.procs[name].send_signal(signal.SIGTERM)
    for name in names:
        cluster.stop(name)
    note(f"run {label}: workers stopped")
    accepted = len(seen.accepted)
    outcome = count_outcome(observer, label, seen)
    runs = observer.task_runs()
    figures: dict[str, Any] = {
        "responses": accepted,
        "submit_seconds": round(submitted_at - first_submit, 2),
        "records_per_s": round(accepted / (landed_at - first_submit), 1),
        "api_calls_per_1000": round(calls * 1000 / accepted, 2),
        # CPU of every cxloop process (web, workers, scheduler) per response, a steadier
        # figure than the rate on a shared machine; a killed process's CPU is not counted
        "cxloop_cpu_ms_per_response": round(cpu * 1000 / accepted, 3),
        "refused": seen.refused,
        "lost": outcome["lost"],
        "duplicates": outcome["duplicates"],
        "task_runs_not_succeeded": sum(runs.values()) - runs["succeeded"],
    }
    if kill:
        figures |= {
            "records_landed_after_kill_s": round(landed_at - killed_at[0], 2),
            "settled_s": round(settled_at - killed_at[0], 2),
            "client_retries": seen.retries,
            "interrupted_requests": seen.interrupted,
            "records_without_client_id": outcome["records_without_client_id"],
            "responses_stored_twice": outcome["responses_stored_twice"],
        }
        if not killed_at:
            raise BenchFailed(f"run {label}: nothing was killed (too few responses?)")
    return figures


def cxloop_processes(cluster: Cluster) -> list[subprocess.Popen]:
    """cxloop's processes (not the emulator). A restarted one counts from its start; the CPU
    a killed one spent is not counted."""
    return [proc for name, proc in list(cluster.procs.items()) if name != "emulator"]


def empty_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    client.flushdb()
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=2000, help="Responses per run.")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", default="1,2,4",
                        help="Worker counts to measure, comma-separated "
                        "('' for none).")  # fmt: skip
    parser.add_argument("--worker-threads", type=int, default=4,
                        help="cxloop worker --workers (threads per worker).")  # fmt: skip
    parser.add_argument("--kill-workers", type=int, default=2,
                        help="Workers of the kill run (0: no kill run).")  # fmt: skip
    parser.add_argument("--restart-after-s", type=float, default=1.0,
                        help="Seconds between the kill and the restart.")  # fmt: skip
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--per-record-ms", type=float, default=5.0)
    parser.add_argument("--lease-s", type=int, default=None,
                        help="CXLOOP_LEASE_S for every process (default: cxloop's).")  # fmt: skip
    parser.add_argument("--sweeper-period-s", type=int, default=None,
                        help="CXLOOP_SWEEPER_PERIOD_S (default: cxloop's).")  # fmt: skip
    parser.add_argument("--postgres", default=os.environ.get(
                            "CXLOOP_BENCH_POSTGRES_URL",
                            "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
                        help="An admin URL of the PostgreSQL server.")  # fmt: skip
    parser.add_argument("--database", default="bench_cluster",
                        help="The database the bench creates and drops.")  # fmt: skip
    parser.add_argument("--redis", default=os.environ.get(
                            "CXLOOP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
                        help="The Redis database the bench empties and uses.")  # fmt: skip
    parser.add_argument("--record-timeout", type=float, default=600.0,
                        help="Seconds a run may take to settle.")  # fmt: skip
    parser.add_argument("--smoke", action="store_true",
                        help="A tiny run that checks the bench works.")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    options = parser.parse_args()
    if options.smoke:
        for name, value in SMOKE.items():
            setattr(options, name, value)
    options.worker_counts = [int(n) for n in options.workers.split(",") if n.strip()]
    options.redis_port = urlsplit(options.redis).port or 6379

    workdir = Path(tempfile.mkdtemp(prefix="cxloop-cluster-bench-"))
    try:
        result = run(options, workdir)
    except BenchFailed as exc:
        logs = {"logs": str(workdir)} if options.keep else {}  # --keep keeps the processes' logs
        refuse([str(exc)], {"responses": options.responses, **logs})
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    counters = {name: result[name] for name in FAILURE_COUNTERS if name in result}
    finish(result, counters, keep=FACTS)


def run(options: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Set the installation up, measure each worker count and the kill run, tear it down."""
    database_url = fresh_database(options.postgres, options.database)
    empty_redis(options.redis)
    sf_port, web_ports = free_port(), [free_port(), free_port()]
    sf = f"http://127.0.0.1:{sf_port}"
    bases = [f"http://127.0.0.1:{port}" for port in web_ports]
    env = os.environ | {
        # the settings every process of an installation must agree on (docs/deploy.md)
        "CXLOOP_DATABASE_URL": database_url,
        "CXLOOP_QUEUE_URL": options.redis,
        "CXLOOP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CXLOOP_SECRET_KEY": secrets.token_urlsafe(48),
        "CXLOOP_BASE_URL": bases[0],  # where the OAuth callback comes back to
        "CXLOOP_SALESFORCE_EXTRA_HOSTS": json.dumps([f"127.0.0.1:{sf_port}"]),
        "CXLOOP_LOG_LEVEL": "WARNING",
        "CXLOOP_LOG_JSON": "true",
        "COLUMNS": "1000",
    }
    for setting, value in (("CXLOOP_LEASE_S", options.lease_s),
                           ("CXLOOP_SWEEPER_PERIOD_S", options.sweeper_period_s)):  # fmt: skip
        if value is not None:
            env[setting] = str(value)
    cluster = Cluster(workdir, env)
    observer: Observer | None = None
    result: dict[str, Any] = {
        "responses": options.responses,
        "clients": options.clients,
        "worker_counts": options.worker_counts,
        "worker_threads": options.worker_threads,
        "web_processes": 2,
        "database": "postgresql",
        "latency_ms": options.latency_ms,
        "per_record_ms": options.per_record_ms,
        "lease_s": options.lease_s,
    }
    try:
        cluster.start("emulator", "emulator", "serve", "--port", str(sf_port),
                      "--auto-login", "admin@example.com", "--latency-ms",
                      f"{options.latency_ms:g}", "--per-record-ms",
                      f"{options.per_record_ms:g}")  # fmt: skip
        control, _info, app_settings = emulator_app(sf, bases[0])
        cluster.env |= app_settings
        setup_env = cluster.env | {"CXLOOP_DATA_DIR": str(workdir / "cli")}
        cxloop(setup_env, "db", "upgrade")
        note("database upgraded")
        for index, port in enumerate(web_ports, start=1):
            cluster.start(f"web{index}", "serve", "--no-worker", "--port", str(port))
        cluster.start("scheduler", "scheduler")
        for base in bases:
            wait_until(f"{base}/readyz", timeout=120)
        note("web processes ready")
        headers, survey_id = set_up(bases[0], sf, setup_env)
        note("connection linked, survey and workflow created")
        observer = Observer(control, database_url)
        by_workers: dict[str, Any] = {}
        for workers in options.worker_counts:
            figures = measure(options, cluster, observer, bases, headers, survey_id,
                              f"w{workers}", workers, kill=False)  # fmt: skip
            print(json.dumps({"workers": workers} | figures), file=sys.stderr, flush=True)
            by_workers[str(workers)] = figures
        if by_workers:
            result["by_workers"] = by_workers
            for counter in ("refused", "lost", "duplicates", "task_runs_not_succeeded"):
                result[counter] = sum(figures[counter] for figures in by_workers.values())
        if options.kill_workers and not failures(
            {name: result[name] for name in FAILURE_COUNTERS if name in result}
        ):
            figures = measure(options, cluster, observer, bases, headers, survey_id,
                              "kill", options.kill_workers, kill=True)  # fmt: skip
            result["kill_workers"] = options.kill_workers
            result |= {f"kill_{name}": value for name, value in figures.items()}
    finally:
        cluster.stop_all()
        note("processes stopped")
        if observer:
            observer.close()
        drop_database(options.postgres, options.database)
        empty_redis(options.redis)
    return result


if __name__ == "__main__":
    main()
