"""What the lease heartbeat costs a worker process (engine/leases.py), on SQLite and PostgreSQL.

Every `lease_heartbeat_s` (2.5 s by default) each worker process runs `LeaseKeeper.renew()`:
one read when it holds nothing, the read and one UPDATE when it holds task runs. This measures
one beat both ways, with `--rows` running task runs held (200: a full batch), over `--beats`
beats: the statements a beat sends (counted, not timed), its wall time and its CPU time in this
process; and, from the queries (SELECT, UPDATE; not BEGIN) and the default period, the queries
per second per process.
It prints one JSON object (one line); `wrong_renewals` counts beats that did not renew exactly
the rows held: when it is not 0 there is no figure and the exit status is 1. `--smoke` is a tiny
run.

Run: `.venv/bin/python bench/lease_bench.py` (SQLite in a temp directory), or with
`--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres` (a database
`cxloop_lease_bench` is made there, migrated, and dropped afterwards).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, insert, text

from cxloop.bootstrap import build_container
from cxloop.db import migrate
from cxloop.db.base import new_id, utcnow
from cxloop.db.engine import create_database_engine
from cxloop.db.run_models import Run, TaskRun
from cxloop.engine.leases import LeaseKeeper
from cxloop.engine.worker import WORKER_ID
from cxloop.services import surveys, users
from cxloop.services.access import Actor
from cxloop.settings import Settings

BENCH_DATABASE = "cxloop_lease_bench"
_FRAMING = frozenset({"BEGIN", "COMMIT", "ROLLBACK"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="", help="PostgreSQL admin URL; else SQLite")
    parser.add_argument("--rows", type=int, default=200, help="running task runs held")
    parser.add_argument("--beats", type=int, default=300, help="beats measured each way")
    parser.add_argument("--smoke", action="store_true", help="a tiny run: does it work?")
    options = parser.parse_args()
    if options.smoke:
        options.rows, options.beats = 20, 5
    with tempfile.TemporaryDirectory() as workdir:
        if options.database_url:
            url = fresh_postgres(options.database_url)
            try:
                result = run(url, Path(workdir), options)
            finally:
                drop_postgres(options.database_url)
        else:
            url = f"sqlite:///{Path(workdir) / 'cxloop.db'}"
            engine = create_database_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
            result = run(url, Path(workdir), options)
    if result["wrong_renewals"]:  # no figure from a beat that did not renew what it held
        print(json.dumps({"wrong_renewals": result["wrong_renewals"], "failed": True}))
        sys.exit(1)
    print(json.dumps(result))


def run(url: str, workdir: Path, options: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(
        data_dir=workdir / "data", database_url=url, queue_url="memory://"
    ).with_secrets()
    container = build_container(settings)
    try:
        keeper = LeaseKeeper(
            container.db, lease_s=settings.lease_s, period_s=settings.effective_lease_heartbeat_s
        )
        statements: list[str] = []

        def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement.lstrip().split(None, 1)[0].upper())

        event.listen(container.db.engine, "before_cursor_execute", note)
        idle = measure(keeper, statements, options.beats, expect=0)
        hold(container, options.rows)
        busy = measure(keeper, statements, options.beats, expect=options.rows)
        event.remove(container.db.engine, "before_cursor_execute", note)
    finally:
        container.close()
    period = settings.effective_lease_heartbeat_s
    for beat in (idle, busy):  # queries: what the database works on (not BEGIN)
        queries = sum(n for kind, n in beat["statements"].items() if kind not in _FRAMING)
        beat["queries_per_s"] = round(queries / period, 2)
    return {
        "database": "sqlite" if url.startswith("sqlite") else "postgresql",
        "lease_s": settings.lease_s,
        "heartbeat_s": period,
        "rows_held": options.rows,
        "beats": options.beats,
        "idle": idle,
        "busy": busy,
        "wrong_renewals": idle.pop("wrong_renewals") + busy.pop("wrong_renewals"),
    }


def measure(keeper: LeaseKeeper, statements: list[str], beats: int, expect: int) -> dict[str, Any]:
    statements.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    wrong = 0
    for _ in range(beats):
        wrong += keeper.renew() != expect
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    kinds: dict[str, int] = {}
    for kind in statements:
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "statements_per_beat": round(len(statements) / beats, 2),
        "statements": {k: round(v / beats, 2) for k, v in sorted(kinds.items())},
        "wall_ms_per_beat": round(wall * 1000 / beats, 3),
        "cpu_ms_per_beat": round(cpu * 1000 / beats, 3),
        "wrong_renewals": wrong,
    }


def hold(container: Any, rows: int) -> None:
    """A run with `rows` task runs claimed by this process (what a batch in flight leaves)."""
    user = users.create_user(container.db, "bench@example.com", None, is_admin=True)
    actor = Actor(id=user.id, email=user.email, is_admin=True)
    survey = surveys.create_survey(container.db, actor, "Lease bench")
    now = utcnow()
    with container.db.uow() as uow:
        run_id = new_id("RN_")
        uow.session.execute(
            insert(Run.__table__).values(
                id=run_id, survey_id=survey.id, workflow_name="bench", workflow_revision=1,
                event_type="survey_response", event_key="bench", event_data={}, status="running",
                created_at=now,
            )
        )  # fmt: skip
        uow.session.execute(
            insert(TaskRun.__table__),
            [
                {
                    "id": new_id("TR_"), "run_id": run_id, "task_id": "t", "task_index": 0,
                    "task_type": "salesforce", "status": "running", "status_reason": "",
                    "batch_key": "sf|bench", "depends_on": [], "attempts": 1,
                    "next_attempt_at": now, "lease_expires_at": now,
                    "claimed_by": f"{WORKER_ID}:1", "ambiguous": False, "created_at": now,
                }
                for _ in range(rows)
            ],
        )  # fmt: skip
        uow.commit()


def fresh_postgres(admin_url: str) -> str:
    drop_postgres(admin_url)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{BENCH_DATABASE}"'))
    admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + "/" + BENCH_DATABASE
    engine = create_database_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def drop_postgres(admin_url: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'))
    admin.dispose()


if __name__ == "__main__":
    main()
