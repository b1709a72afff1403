"""A million waiting: imported responses queue up while the org is unreachable, then drain.

Processes, all real: the Salesforce emulator and cxloop. On SQLite one `cxloop serve` (embedded
worker and scheduler); on PostgreSQL + Redis one `cxloop serve --no-worker`, one `cxloop worker`
and one `cxloop scheduler`, each a process of its own. A connection is linked over OAuth; the
survey's workflow includes imported responses and upserts one `Survey_Response__c` per response
(keyed on `Response_ID__c`).

1. The org is made unreachable: an emulator fault (`POST /__emulator__/faults`, target `rest`,
   `mode: drop`) closes every REST connection without an answer, as a dead network would.
2. `--responses` responses (default 1,000,000) are imported through the real import path, as a
   user would: the API's bulk POST (a JSON array per request, `--chunk` responses each).
   Meanwhile the workers try, fail and retry.
3. The backlog is described: task runs by status, attempts written, Huey's queue and schedule.
   On PostgreSQL `--plans FILE` writes the `EXPLAIN (ANALYZE, BUFFERS)` of the hot queries at
   this table size (claim, ready summary, overdue keys, expire leases, resume paused, run
   history, the import's insert).
4. The fault is removed, and the drain is timed from the emulator's record count (its control
   API, which the API-usage counter does not count): records/s over the first 10 %, the middle
   10 % (45-55 %) and the last 10 % of the records. A query that slows as the tables change
   shows as a falling rate.

Every process's RSS is sampled from /proc every `--sample-s` during the whole run; the result
has the largest per process (`max_rss_mb`). It prints one JSON object; a response refused, a
record missing or a task run not succeeded voids the figures (bench/outcome.py).

Run (nice it on a shared machine):
  nice -n 10 .venv/bin/python bench/backlog_bench.py --responses 100000 --database postgresql
  nice -n 10 .venv/bin/python bench/backlog_bench.py --responses 100000 --database sqlite
`--smoke` runs it at a tiny size on SQLite to check that it works.
`--latency-ms` / `--per-record-ms` set the emulator's latency model (default: none, the
emulator's own speed, so the drain measures cxloop).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from _support import upsert_workflow
from cluster_bench import Cluster, drop_database, empty_redis, fresh_database, note
from cryptography.fernet import Fernet
from outcome import BenchFailed, finish, refuse
from sqlalchemy import create_engine, text
from workflow_bench import cpu_seconds, cxloop, free_port, linked_survey, wait_until

SOBJECT = "Survey_Response__c"
FAILURE_COUNTERS = ("refused", "lost", "task_runs_not_succeeded")
FACTS = ("responses", "database", "chunk", "imported", "records")
WORKFLOW = upsert_workflow("Backfill responses", "Emulator", "QID2", include_imported=True)
UNREACHABLE = {"target": "rest", "mode": "drop"}
SMOKE = {"responses": 400, "chunk": 100, "database": "sqlite", "unreachable_after_s": 2.0,
         "drain_timeout": 200.0}  # fmt: skip


def rss_mb(pid: int) -> float:
    """Resident set size of a process and its children (MB, /proc), 0 when it is gone."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        if status.parent.name == str(pid) or fields.get("PPid", "").strip() == str(pid):
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total / 1024


class RssSampler:
    """Samples every process of the cluster until stopped; keeps the largest RSS per name."""

    def __init__(self, cluster: Cluster, every_s: float) -> None:
        self.cluster = cluster
        self.every_s = every_s
        self.max_mb: dict[str, float] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        for name, proc in list(self.cluster.procs.items()):
            if proc.poll() is None:
                mb = rss_mb(proc.pid)
                self.max_mb[name] = max(self.max_mb.get(name, 0.0), mb)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()


class Ledger:
    """cxloop's tables and queue, read from outside (what an operator's SQL would see)."""

    def __init__(self, database_url: str, queue_url: str) -> None:
        self.engine = create_engine(database_url)
        self.queue_url = queue_url

    def task_runs(self) -> Counter[str]:
        with self.engine.connect() as connection:
            rows = connection.execute(text("SELECT status, COUNT(*) FROM task_runs GROUP BY 1"))
            return Counter({status: count for status, count in rows})

    def scalar(self, sql: str) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(sql)).scalar()

    def queue(self) -> dict[str, int]:
        """Huey's messages waiting, and scheduled for later."""
        from huey import RedisHuey, SqliteHuey

        if self.queue_url.startswith("redis"):
            huey = RedisHuey(name="cxloop", url=self.queue_url)
        else:
            huey = SqliteHuey(name="cxloop", filename=self.queue_url.removeprefix("sqlite:///"))
        return {"pending": huey.pending_count(), "scheduled": huey.scheduled_count()}

    def close(self) -> None:
        self.engine.dispose()


def import_responses(
    api: httpx.Client,
    survey_id: str,
    total: int,
    chunk: int,
    label: str,
    cpu: Callable[[], float],
) -> tuple[int, int, list[tuple[float, int]], list[float]]:
    """POST `total` responses as JSON arrays of `chunk`; returns (stored, refused, the
    (seconds, stored) after each request, and cxloop's CPU seconds then)."""
    stored = refused = 0
    began = time.monotonic()
    series = [(0.0, 0)]
    spent = [cpu()]
    for start in range(0, total, chunk):
        items = [
            {"values": {"QID1": n % 11, "QID2": f"{label} #{n}"}}
            for n in range(start, min(start + chunk, total))
        ]
        reply = api.post(f"/api/v1/surveys/{survey_id}/responses", json=items, timeout=600)
        if reply.status_code not in (201, 207):
            raise BenchFailed(f"import chunk at {start}: {reply.status_code} {reply.text[:300]}")
        body = reply.json()
        stored += body["stored"]
        refused += body["refused"]
        series.append((time.monotonic() - began, stored))
        spent.append(cpu())
        if (start // chunk) % 20 == 0:
            note(f"imported {stored:,} of {total:,}")
    return stored, refused, series, spent


def record_count(control: httpx.Client) -> int:
    reply = control.get("/records", params={"sobject": SOBJECT, "limit": 1})
    return int(reply.raise_for_status().json()["totalSize"])


BUCKETS = {"first_10pct": (0.0, 0.1), "middle_10pct": (0.45, 0.55), "last_10pct": (0.9, 1.0)}


def at_count(series: list[tuple[float, int]], count: float) -> float:
    """When `count` was reached, interpolated between (x, count) samples; a bucket that
    starts at 0 starts at the first sample above 0 (not while nothing moved)."""
    for (t0, r0), (t1, r1) in itertools.pairwise(series):
        if r1 >= count and r1 > 0:
            if r0 == 0 or r1 == r0:
                return t0 if r0 > 0 else t1 if count > 0 else t0
            return t0 + (t1 - t0) * (count - r0) / (r1 - r0)
    return series[-1][0]


def rate_buckets(series: list[tuple[float, int]], total: int, name: str) -> dict[str, float]:
    """Records/s over the first 10 %, the middle 10 % (45-55 %) and the last 10 % of `total`,
    from (seconds, records) samples, interpolated at the bucket edges."""
    rates = {}
    for bucket, (low, high) in BUCKETS.items():
        seconds = at_count(series, total * high) - at_count(series, total * low)
        rates[f"{name}_{bucket}_per_s"] = round(total * (high - low) / max(seconds, 1e-6), 1)
    return rates


def cpu_buckets(
    series: list[tuple[float, int]], cpu: list[float], total: int, name: str, unit: str
) -> dict[str, float]:
    """CPU milliseconds of cxloop's processes per record in the same buckets: what a query
    that slows with the tables' size would show, whatever else runs on the machine."""
    spent = [(c, r) for c, (_, r) in zip(cpu, series, strict=True)]
    figures = {}
    for bucket, (low, high) in BUCKETS.items():
        seconds = at_count(spent, total * high) - at_count(spent, total * low)
        figures[f"{name}_{bucket}_cpu_ms_per_{unit}"] = round(
            seconds * 1000 / (total * (high - low)), 3
        )
    return figures


# Hand-written: the statements of code paths that are not functions of their own.
PLANS = {
    # the sweeper: claims.expire_leases
    "expire_leases": """SELECT * FROM task_runs WHERE status='running'
        AND lease_expires_at < now() FOR UPDATE SKIP LOCKED""",
    # run history (services/run_history): the newest page of all runs, of one survey, and of
    # its failed runs
    "runs_list": "SELECT * FROM runs ORDER BY created_at DESC, id DESC LIMIT 50",
    "runs_of_survey": """SELECT * FROM runs WHERE survey_id=:survey
        ORDER BY created_at DESC, id DESC LIMIT 50""",
    "failed_runs_of_survey": """SELECT * FROM runs WHERE survey_id=:survey AND status='failed'
        ORDER BY created_at DESC, id DESC LIMIT 50""",
}


def explain_plans(ledger: Ledger, survey_id: str) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the hot queries, each in a transaction rolled back (the
    claim changes nothing). The engine's own queries are rendered from cxloop's code
    (`cxloop.ledger.claims`), so the plan is that of the statement the workers run."""
    from sqlalchemy.dialects import postgresql

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from cxloop.ledger import claims

    def sql(statement: Any) -> str:
        return str(
            statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        )

    with ledger.engine.connect() as connection:
        key = connection.execute(text("SELECT batch_key FROM task_runs LIMIT 1")).scalar()
    queries = {
        "claim": sql(claims.claim_statement(key, limit=200, lease_s=120, worker="explain")),
        "ready_summary": sql(claims.ready_summary_statement(key)),
        "overdue_keys": sql(claims.overdue_keys_statement(1.0)),
        "resume_paused": sql(claims.PAUSED_ROWS.params(chunk=claims.RESUME_CHUNK)),
        **PLANS,
    }
    plans = {}
    with ledger.engine.connect() as connection:
        for name, query in queries.items():
            rows = connection.execute(
                text(f"EXPLAIN (ANALYZE, BUFFERS) {query}"), {"survey": survey_id}
            )
            plans[name] = "\n".join(row[0] for row in rows)
            connection.rollback()
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--chunk", type=int, default=5000, help="Responses per bulk POST.")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--per-record-ms", type=float, default=0.0)
    parser.add_argument("--worker-threads", type=int, default=4)
    parser.add_argument("--unreachable-after-s", type=float, default=10.0,
                        help="Seconds the org stays unreachable after the import.")  # fmt: skip
    parser.add_argument("--sample-s", type=float, default=0.5, help="RSS sampling period.")
    parser.add_argument("--drain-timeout", type=float, default=7200.0)
    parser.add_argument("--plans", type=Path, default=None,
                        help="PostgreSQL: write the hot queries' plans to this file.")  # fmt: skip
    parser.add_argument("--postgres", default=os.environ.get(
                            "CXLOOP_BENCH_POSTGRES_URL",
                            "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
                        help="An admin URL of the PostgreSQL server.")  # fmt: skip
    parser.add_argument("--pg-database", default="bench_backlog")
    parser.add_argument("--redis", default=os.environ.get(
                            "CXLOOP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
                        help="The Redis database the bench empties and uses.")  # fmt: skip
    parser.add_argument("--smoke", action="store_true",
                        help="A tiny run (SQLite) that checks the bench works.")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    options = parser.parse_args()
    if options.smoke:
        for name, value in SMOKE.items():
            setattr(options, name, value)
    workdir = Path(tempfile.mkdtemp(prefix="cxloop-backlog-bench-"))
    try:
        result = run(options, workdir)
    except BenchFailed as exc:
        refuse([str(exc)], {"responses": options.responses, "database": options.database})
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    finish(result, {name: result[name] for name in FAILURE_COUNTERS}, keep=FACTS)


def run(options: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Set up, import with the org unreachable, describe the backlog, drain, tear down."""
    postgres = options.database == "postgresql"
    sf_port, web_port = free_port(), free_port()
    sf, base = f"http://127.0.0.1:{sf_port}", f"http://127.0.0.1:{web_port}"
    if postgres:
        database_url = fresh_database(options.postgres, options.pg_database)
        queue_url = options.redis
        empty_redis(queue_url)
    else:
        database_url = f"sqlite:///{workdir / 'cxloop.db'}"
        queue_url = f"sqlite:///{workdir / 'queue.db'}"
    env = os.environ | {
        "CXLOOP_DATABASE_URL": database_url,
        "CXLOOP_QUEUE_URL": queue_url,
        "CXLOOP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CXLOOP_SECRET_KEY": secrets.token_urlsafe(48),
        "CXLOOP_BASE_URL": base,
        "CXLOOP_SALESFORCE_EXTRA_HOSTS": json.dumps([f"127.0.0.1:{sf_port}"]),
        "CXLOOP_LOG_LEVEL": "WARNING",
        "CXLOOP_LOG_JSON": "true",
        "COLUMNS": "1000",
    }
    cluster = Cluster(workdir, env)
    sampler = RssSampler(cluster, options.sample_s)
    ledger: Ledger | None = None
    result: dict[str, Any] = {
        "responses": options.responses,
        "database": options.database,
        "chunk": options.chunk,
        "latency_ms": options.latency_ms,
        "per_record_ms": options.per_record_ms,
        "worker_threads": options.worker_threads,
        "load_average_at_start": os.getloadavg()[0],
    }
    try:
        cluster.start("emulator", "emulator", "serve", "--port", str(sf_port),
                      "--auto-login", "admin@example.com", "--latency-ms",
                      f"{options.latency_ms:g}", "--per-record-ms",
                      f"{options.per_record_ms:g}")  # fmt: skip
        wait_until(f"{sf}/__emulator__/info")
        control = httpx.Client(base_url=f"{sf}/__emulator__", timeout=120)
        app = control.get("/info").json()["connected_apps"][0]
        control.patch(f"/apps/{app['name']}",
                      json={"add_callback_urls": [f"{base}/oauth/salesforce/callback"]},
                      ).raise_for_status()  # fmt: skip
        cluster.env |= {
            "CXLOOP_SALESFORCE_CLIENT_ID": app["client_id"],
            "CXLOOP_SALESFORCE_CLIENT_SECRET": app["client_secret"],
        }
        setup_env = cluster.env | {"CXLOOP_DATA_DIR": str(workdir / "cli")}
        cxloop(setup_env, "db", "upgrade")
        threads = str(options.worker_threads)
        if postgres:
            cluster.start("web", "serve", "--no-worker", "--port", str(web_port))
            cluster.start("worker", "worker", "--workers", threads, "--no-periodic")
            cluster.start("scheduler", "scheduler")
        else:
            cluster.env["CXLOOP_WORKER_THREADS"] = threads
            cluster.start("web", "serve", "--port", str(web_port))
        wait_until(f"{base}/readyz", timeout=120)
        note("cxloop ready")
        api, survey = linked_survey(base, sf, setup_env, "Backlog")
        survey_id = survey["id"]
        api.post(f"/api/v1/surveys/{survey_id}/workflows", json=WORKFLOW).raise_for_status()
        note("connection linked, survey and workflow created")
        ledger = Ledger(database_url, queue_url)
        sampler.start()

        control.post("/faults", json=UNREACHABLE).raise_for_status()
        began = time.monotonic()
        cxloop_pids = [proc.pid for name, proc in cluster.procs.items() if name != "emulator"]

        def cxloop_cpu() -> float:
            return sum(cpu_seconds(pid) for pid in cxloop_pids)

        stored, refused, imported, import_cpu = import_responses(
            api, survey_id, options.responses, options.chunk, "backlog", cxloop_cpu
        )
        imported_s = time.monotonic() - began
        note(f"imported {stored:,} in {imported_s:.0f} s; the org stays unreachable a while")
        time.sleep(options.unreachable_after_s)
        result |= {
            "imported": stored,
            "refused": refused,
            "import_seconds": round(imported_s, 1),
            "import_responses_per_s": round(stored / imported_s, 1),
            # the import's rate as the tables grow (whole requests: at least one per bucket)
            **rate_buckets(imported, stored, "import"),
            **cpu_buckets(imported, import_cpu, stored, "import", "response"),
        }
        waiting = ledger.task_runs()
        result |= {
            "task_runs_while_unreachable": dict(waiting),
            "attempts_while_unreachable": ledger.scalar("SELECT COUNT(*) FROM task_run_attempts"),
            "queue_while_unreachable": ledger.queue(),
        }
        note(f"backlog: {dict(waiting)}, queue {result['queue_while_unreachable']}")
        if postgres and options.plans:
            with ledger.engine.connect() as connection:
                connection.execute(text("ANALYZE"))
                connection.commit()
            plans = explain_plans(ledger, survey_id)
            options.plans.write_text(
                "".join(f"-- {name}\n{plan}\n\n" for name, plan in plans.items())
            )
            note(f"plans written to {options.plans}")

        control.delete("/faults").raise_for_status()
        drain_began = time.monotonic()
        series = [(0.0, record_count(control))]
        cpu = [cxloop_cpu()]
        while series[-1][1] < stored:
            if time.monotonic() - drain_began > options.drain_timeout:
                raise BenchFailed(f"not drained within {options.drain_timeout} s: {series[-1]}")
            for name in cluster.procs:
                cluster.alive(name)
            time.sleep(1.0)
            series.append((time.monotonic() - drain_began, record_count(control)))
            cpu.append(cxloop_cpu())
            if len(series) % 30 == 0:
                note(f"drain: {series[-1][1]:,} records after {series[-1][0]:.0f} s")
        drained_s = series[-1][0]
        first_record_s = next(t for t, records in series if records > 0)
        settle_deadline = time.monotonic() + 120
        runs = ledger.task_runs()
        while runs["succeeded"] < sum(runs.values()) and time.monotonic() < settle_deadline:
            time.sleep(1.0)
            runs = ledger.task_runs()
        sampler.sample()
        records = record_count(control)
        result |= {
            "records": records,
            "lost": max(stored - records, 0),
            "task_runs_not_succeeded": sum(runs.values()) - runs["succeeded"],
            "drain_seconds": round(drained_s, 1),
            # the org's hold (doubling while it was down, 64 s at most) ends before the first
            # record: the rate counts from that record on
            "drain_first_record_s": round(first_record_s, 1),
            "drain_records_per_s": round(stored / max(drained_s - first_record_s, 1e-6), 1),
            **rate_buckets(series, stored, "drain"),
            **cpu_buckets(series, cpu, stored, "drain", "record"),
            "drain_cxloop_cpu_ms_per_record": round((cpu[-1] - cpu[0]) * 1000 / stored, 3),
            "attempts_total": ledger.scalar("SELECT COUNT(*) FROM task_run_attempts"),
            "load_average_at_end": os.getloadavg()[0],
        }
    finally:
        sampler.stop()
        result["max_rss_mb"] = {name: round(mb, 1) for name, mb in sampler.max_mb.items()}
        result["rss_samples"] = sampler.samples
        cluster.stop_all()
        note("processes stopped")
        if ledger is not None:
            ledger.close()
        if postgres:
            drop_database(options.postgres, options.pg_database)
            empty_redis(queue_url)
    return result


if __name__ == "__main__":
    if urlsplit(os.environ.get("CXLOOP_DATABASE_URL", "")).scheme:
        print("CXLOOP_DATABASE_URL is set: the bench sets its own; unset it", file=sys.stderr)
    main()
