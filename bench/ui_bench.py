"""What the admin pages cost the server: p50 and p95 per page for a survey with 100 workflows and
100,000 runs.

Seeds the data through the db layer (100,000 responses through the import service, the
workflows, runs, task runs and attempts as bulk Core INSERTs: seconds, not 100,000 API calls),
then starts `cxloop serve --processes 1 --no-worker` on a free port, signs in as the survey's
owner through /login and requests each page with one keep-alive client, one request at a time:

    .venv/bin/python bench/ui_bench.py [--runs 100000] [--workflows 100] [--requests 50]
    .venv/bin/python bench/ui_bench.py --database-url postgresql://postgres@127.0.0.1:5432/x
    .venv/bin/python bench/ui_bench.py --smoke        # tiny data, a few requests: seconds

Prints one JSON object: `{"pages": {path_template: {"p50_ms", "p95_ms", "n", "cpu_ms"}},
"runs", "workflows", "load_average", ...}`. `cpu_ms` is the CPU time the server process spent
per request of the page (from /proc, Linux): on a machine shared with other work the times
measure the neighbours too, the CPU time much less so. A page of the list that does not
exist on this build (404 on the first request) is reported as "missing"; if any other request
answers anything but 200, nothing is printed and the exit status is 1. Times are measured by
the client on loopback (keep-alive, so no connection set-up), which is the server's time plus
well under a millisecond.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _support import cpu_seconds, free_port, local_env, log_in, percentile, serve, upsert_workflow
from responses_bench import CONTENT, database, response_body

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PASSWORD = "bench passphrase 1"
OWNER = "owner@example.com"
TARGET_P95_MS = 100.0
# The pages of issue 14, as path templates; {id}, {workflow_id} and {run_id} are filled in.
PAGES = (
    "/surveys",
    # A survey's tabs: Survey, Workflows, Distributions, Responses.
    "/surveys/{id}",
    "/surveys/{id}/workflows",
    "/surveys/{id}/distributions",
    "/surveys/{id}/responses",
    "/surveys/{id}/workflows/{workflow_id}",
    "/accounts",
    "/runs",
    "/runs/{run_id}",
    # The runs list as a survey's page links to it, and filtered to what needs attention.
    "/runs?survey={id}",
    "/runs?status=failed",
)


def workflow_document(n: int) -> dict[str, Any]:
    """A response workflow with one Salesforce upsert (the shape most workflows have)."""
    return upsert_workflow(f"Workflow {n:03d}", "Bench", comment_qid="QID3")


def seed(env: dict[str, str], runs: int, workflows: int) -> dict[str, Any]:
    """Migrate and fill the database (in this process, with the server's settings); returns the
    ids the pages need."""
    os.environ.update(env)
    from sqlalchemy import insert

    from cxloop.bootstrap import build_container
    from cxloop.db import migrate
    from cxloop.db.run_models import Run, TaskRun, TaskRunAttempt
    from cxloop.db.workflow_models import Workflow, WorkflowRevision
    from cxloop.services import responses, survey_content, surveys, users
    from cxloop.services.access import Actor
    from cxloop.settings import load_settings

    began = time.perf_counter()
    container = build_container(load_settings())
    try:
        migrate.upgrade(container.db.engine)
        owner = Actor.of(users.create_user(container.db, OWNER, PASSWORD))
        survey = surveys.create_survey(container.db, owner, "Support NPS")
        survey_content.put_content(container.db, owner, survey.id, CONTENT)
        surveys.update_survey(container.db, owner, survey.id, {"status": "active"})
        # Responses first, while no workflow is enabled (the matcher writes no runs for them).
        source = (responses.SourceRow(n, response_body(n)) for n in range(runs))
        imported = responses.import_responses(container.db, owner, survey.id, source)
        assert imported.failed == 0, imported.bad_rows[:3]
        with container.db.reader() as uow:
            from cxloop.db.models import Response

            response_ids = list(
                uow.session.scalars(
                    Response.__table__.select()
                    .with_only_columns(Response.id)
                    .where(Response.survey_id == survey.id)
                )
            )
        now = datetime.now(UTC)
        workflow_rows = [
            {
                "id": f"WF_bench{n:011d}",
                "survey_id": survey.id,
                "name": workflow_document(n)["name"],
                "enabled": True,
                "event_type": "survey_response",
                "document": workflow_document(n),
                "revision": 1,
                "created_by": owner.id,
                "created_at": now - timedelta(days=60),
                "updated_at": now - timedelta(days=60),
            }
            for n in range(workflows)
        ]
        revision_rows = [
            {
                "workflow_id": row["id"],
                "revision": 1,
                "document": row["document"],
                "enabled": True,
                "summary": "Created",
                "author_id": owner.id,
                "created_at": row["created_at"],
            }
            for row in workflow_rows
        ]
        with container.db.uow() as uow:
            uow.session.execute(insert(Workflow.__table__), workflow_rows)
            uow.session.execute(insert(WorkflowRevision.__table__), revision_rows)
            uow.commit()
        failed_run = _seed_runs(
            container, survey.id, workflow_rows, response_ids, runs, now, Run, TaskRun,
            TaskRunAttempt,
        )  # fmt: skip
        if container.db.engine.dialect.name == "postgresql":
            # What autovacuum does within a minute of such inserts (PostgreSQL 13 and later
            # vacuum insert-only tables too): the planner's statistics must know the tables
            # hold 100,000 rows, and the visibility map lets counts read an index only.
            from sqlalchemy import text

            with container.db.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            ) as connection:
                connection.execute(text("VACUUM ANALYZE"))
        return {
            "survey_id": survey.id,
            "workflow_id": workflow_rows[0]["id"],
            "run_id": failed_run,
            "seed_s": round(time.perf_counter() - began, 1),
            "responses": imported.stored,
        }
    finally:
        container.close()


def _seed_runs(
    container: Any,
    survey_id: str,
    workflow_rows: list[dict[str, Any]],
    response_ids: list[str],
    count: int,
    now: datetime,
    Run: Any,
    TaskRun: Any,
    TaskRunAttempt: Any,
) -> str:
    """`count` runs over the last 30 days (94 % succeeded, 5 % failed with Salesforce's error,
    1 % paused), each with one task run and its attempt; returns a failed run's id."""
    from sqlalchemy import insert

    error = {
        "kind": "permanent",
        "status": 400,
        "error_code": "REQUIRED_FIELD_MISSING",
        "message": "Required fields are missing: [LastName]",
        "fields": ["LastName"],
    }
    failed_run = ""
    chunk = 10_000
    attempt_id = 0
    for start in range(0, count, chunk):
        run_rows, task_rows, attempt_rows = [], [], []
        for n in range(start, min(count, start + chunk)):
            workflow = workflow_rows[n % len(workflow_rows)]
            created = now - timedelta(seconds=(count - n) * 30 * 86400 / count)
            status = "failed" if n % 20 == 7 else "paused" if n % 100 == 13 else "succeeded"
            run_id, task_run_id = f"RN_b{n:014d}", f"TR_b{n:014d}"
            response_id = response_ids[n % len(response_ids)]
            finished = created + timedelta(milliseconds=420)
            payload = {
                "attributes": {"type": "Survey_Response__c"},
                "Response_ID__c": response_id,
                "NPS_Score__c": n % 11,
                "Comment__c": f"Answer number {n}",
            }
            run_rows.append(
                {
                    "id": run_id,
                    "survey_id": survey_id,
                    "workflow_id": workflow["id"],
                    "workflow_name": workflow["name"],
                    "workflow_revision": 1,
                    "event_type": "survey_response",
                    "event_key": f"response:{response_id}:created",
                    "response_id": response_id,
                    "event_data": {},
                    "status": status,
                    "created_at": created,
                    "finished_at": None if status == "paused" else finished,
                }
            )
            reason = {
                "failed": "Salesforce refused the record: REQUIRED_FIELD_MISSING — Required "
                "fields are missing: [LastName] (fields: LastName). Fix the mapping of task "
                "'response' or the data, then retry the run.",
                "paused": "The connection needs to be reconnected: expired access/refresh token",
                "succeeded": "",
            }[status]
            task_rows.append(
                {
                    "id": task_run_id,
                    "run_id": run_id,
                    "task_id": "response",
                    "task_index": 0,
                    "task_type": "salesforce",
                    "status": status,
                    "status_reason": reason,
                    "batch_key": "sf|bench|Bench|Survey_Response__c|upsert|Response_ID__c",
                    "depends_on": [],
                    "attempts": 1,
                    "next_attempt_at": created,
                    "record_id": f"a00b{n:014d}" if status == "succeeded" else None,
                    "payload": payload,
                    "result": {"Id": f"a00b{n:014d}", "created": True}
                    if status == "succeeded"
                    else None,
                    "error": error if status == "failed" else None,
                    "created_at": created,
                    "first_attempt_at": created,
                    "finished_at": None if status == "paused" else finished,
                }
            )
            attempt_id += 1
            attempt_rows.append(
                {
                    "id": attempt_id,
                    "task_run_id": task_run_id,
                    "number": 1,
                    "started_at": created,
                    "finished_at": finished,
                    "outcome": status,
                    "batch_size": 1,
                    "payload": payload,
                    "reply": {"success": status == "succeeded"},
                    "error": error if status == "failed" else None,
                }
            )
            if status == "failed":
                failed_run = run_id
        with container.db.uow() as uow:
            uow.session.execute(insert(Run.__table__), run_rows)
            uow.session.execute(insert(TaskRun.__table__), task_rows)
            uow.session.execute(insert(TaskRunAttempt.__table__), attempt_rows)
            uow.commit()
    return failed_run


def measure(
    http: httpx.Client, paths: dict[str, str], requests: int, server_pid: int | None = None
) -> dict[str, Any]:
    """Each page `requests` times (after two warm-up requests); "missing" for a page that is
    not served here. Exits without figures if any request fails."""
    pages: dict[str, Any] = {}
    failures: list[str] = []
    for template, path in paths.items():
        first = http.get(path)
        if first.status_code == 404 and "?" not in template:
            pages[template] = "missing"
            continue
        timings = []
        cpu_before = None
        for n in range(requests + 2):
            if n == 2 and server_pid is not None:
                cpu_before = cpu_seconds(server_pid, children=False)
            began = time.perf_counter()
            reply = http.get(path)
            elapsed = (time.perf_counter() - began) * 1000
            if reply.status_code != 200:
                failures.append(f"{path}: {reply.status_code}")
                break
            if n >= 2:
                timings.append(elapsed)
        if failures:
            break
        pages[template] = {
            "p50_ms": round(percentile(timings, 0.50), 1),
            "p95_ms": round(percentile(timings, 0.95), 1),
            "n": len(timings),
        }
        cpu_after = cpu_seconds(server_pid, children=False) if server_pid is not None else None
        if cpu_before is not None and cpu_after is not None:
            pages[template]["cpu_ms"] = round((cpu_after - cpu_before) * 1000 / len(timings), 1)
    if failures:
        print("a request failed, so no figures: " + "; ".join(failures), file=sys.stderr)
        raise SystemExit(1)
    return pages


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="", help="postgresql://... (default SQLite)")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--workflows", type=int, default=100)
    parser.add_argument("--requests", type=int, default=50, help="per page")
    parser.add_argument("--smoke", action="store_true", help="tiny data, 3 requests per page")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.workflows, args.requests = 200, 5, 3
    if args.runs < 20 or args.workflows < 1 or args.requests < 1:
        parser.error("--runs must be at least 20, --workflows and --requests at least 1")

    with tempfile.TemporaryDirectory(prefix="cxloop-ui-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        with database(args.database_url or None, data_dir) as url:
            env = local_env(Path(tmp), url) | {"PYTHONPATH": str(ROOT / "src")}
            ids = seed(env, args.runs, args.workflows)
            paths = {
                template: template.format(
                    id=ids["survey_id"], workflow_id=ids["workflow_id"], run_id=ids["run_id"]
                )
                for template in PAGES
            }
            log = Path(tmp) / "server.log"
            port = free_port()
            # One server process and nothing else in it (the worker and scheduler would compete
            # with the pages for the process's GIL; in production they run in their own).
            with (
                serve(env, port, log, "--processes", "1", "--no-worker") as proc,
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http,
            ):
                log_in(http, OWNER, PASSWORD)
                load_before = os.getloadavg()[0]
                # CPU time comes from /proc (Linux); elsewhere the pages have no cpu_ms.
                pid = proc.pid if Path("/proc/self/stat").exists() else None
                pages = measure(http, paths, args.requests, pid)
                load_after = os.getloadavg()[0]
    measured = [p for p in pages.values() if isinstance(p, dict)]
    result = {
        "pages": pages,
        "runs": args.runs,
        "workflows": args.workflows,
        "responses": ids["responses"],
        "database": "postgresql" if url.startswith("postgres") else "sqlite",
        "requests_per_page": args.requests,
        "seed_s": ids["seed_s"],
        "cpus": os.cpu_count(),
        # 1-minute load average as the measuring began and ended: above the number of cores,
        # other work shared them (and the times grew with it).
        "load_average": [round(load_before, 1), round(load_after, 1)],
        "target_p95_ms": TARGET_P95_MS,
        "all_under_target": all(p["p95_ms"] < TARGET_P95_MS for p in measured),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
