"""Which index each query on runs by survey reads, with ix_runs_survey_created and without it.

Seeds a database as bench/ui_bench.py does (`--runs` runs of 20 workflows over 30 days), then
moves three quarters of the runs to three more surveys of the same owner (so a survey holds a
quarter of the runs and its owner sees four), analyses the tables, and records the statements
of the pages that read runs by survey: the run history of one survey (plain, failed only, one
workflow, and the next page of each), the owner's merged history of four surveys, and the
Workflows tab's 24-hour counts. Each statement is explained (SQLite: EXPLAIN QUERY PLAN;
PostgreSQL: EXPLAIN) with the index present, then after dropping it (and analysing again).

    .venv/bin/python bench/runs_index_plans.py [--runs 20000]
    .venv/bin/python bench/runs_index_plans.py --database-url postgresql://postgres@127.0.0.1:5432/x

Prints one JSON object: {"database", "runs", "queries": [{"sql", "with": [indexes], "without":
[indexes], "cost_with", "cost_without"}]} (costs: PostgreSQL's estimate, total of the top node;
None on SQLite). Plans do not depend on the machine's load; only the seeding time does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from _support import local_env
from responses_bench import database
from ui_bench import ROOT, seed

sys.path.insert(0, str(ROOT / "src"))

INDEX = "ix_runs_survey_created"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="", help="postgresql://... (default SQLite)")
    parser.add_argument("--runs", type=int, default=20_000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="cxloop-plans-") as tmp,
        database(args.database_url or None, Path(tmp) / "data") as url,
    ):
        env = local_env(Path(tmp), url) | {"PYTHONPATH": str(ROOT / "src")}
        os.environ.update(env)
        ids = seed(env, args.runs, 20)
        queries = explain_both(ids)
        name = "postgresql" if url.startswith("postgres") else "sqlite"
    print(json.dumps({"database": name, "runs": args.runs, "queries": queries}))


def explain_both(ids: dict[str, Any]) -> list[dict[str, Any]]:
    from sqlalchemy import event

    from cxloop.bootstrap import build_container
    from cxloop.services import run_history, surveys, users, workflow_builder
    from cxloop.services.access import Actor
    from cxloop.settings import load_settings

    container = build_container(load_settings())
    engine = container.db.engine
    sqlite = engine.dialect.name == "sqlite"
    owner = Actor.of(users.get_user_by_email(container.db, "owner@example.com"))
    others = [surveys.create_survey(container.db, owner, f"Other {k}").id for k in range(3)]
    with engine.begin() as connection:
        for k, other in enumerate(others, start=1):
            share = "rowid % 4" if sqlite else "abs(hashtext(id)) %% 4"
            connection.exec_driver_sql(f"UPDATE runs SET survey_id = '{other}' WHERE {share} = {k}")
        connection.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON runs (survey_id, created_at)"
        )
    _analyse(engine)

    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if re.search(r"runs\.survey_id (=|IN)", statement):  # reads runs by survey
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    survey_id, workflow_id = ids["survey_id"], ids["workflow_id"]
    Filter = run_history.RunFilter
    for run_filter in (Filter(survey_id=survey_id), Filter(survey_id=survey_id, status="failed"),
                       Filter(survey_id=survey_id, workflow_id=workflow_id), Filter()):  # fmt: skip
        page = run_history.list_runs(container.db, owner, run_filter, limit=50)
        if page.next_cursor:
            run_history.list_runs(container.db, owner, run_filter, limit=50,
                                  cursor=page.next_cursor)  # fmt: skip
    workflow_builder.run_stats(container.db, owner, survey_id)
    event.remove(engine, "before_cursor_execute", capture)

    with_index = _plans(engine, captured)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP INDEX {INDEX}")
    _analyse(engine)
    without_index = _plans(engine, captured)
    container.close()
    return [
        {
            "sql": " ".join(statement.split())[:400],
            "with": sorted(set(re.findall(r"ix_runs_\w+", before))),
            "without": sorted(set(re.findall(r"ix_runs_\w+", after))),
            "cost_with": _cost(before),
            "cost_without": _cost(after),
        }
        for (statement, _), before, after in zip(captured, with_index, without_index, strict=True)
    ]


def _analyse(engine: Any) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        sqlite = engine.dialect.name == "sqlite"
        connection.exec_driver_sql("ANALYZE" if sqlite else "VACUUM ANALYZE runs")


def _plans(engine: Any, statements: list[tuple[str, Any]]) -> list[str]:
    sqlite = engine.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    with engine.connect() as connection:
        return [
            " | ".join(str(row[-1] if sqlite else row[0])
                       for row in connection.exec_driver_sql(prefix + statement, parameters))
            for statement, parameters in statements
        ]  # fmt: skip


def _cost(plan: str) -> float | None:
    match = re.search(r"cost=[0-9.]+\.\.([0-9.]+)", plan)
    return float(match.group(1)) if match else None


if __name__ == "__main__":
    main()
