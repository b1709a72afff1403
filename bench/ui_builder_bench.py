"""What one change in the workflow builder costs: bytes sent back and server time, for the whole
form (as without the builder's script) and for the changed task's fieldset only (what the
script asks for: `X-Builder-Partial`).

Seeds a survey with a workflow of `--tasks` Salesforce tasks of `--mappings` mapping rows each,
starts `cxloop serve --processes 1 --no-worker`, signs in as the owner and posts the builder's
form as htmx does, one request at a time, for two changes inside the first task: **Add field**
(`add_mapping:0`) and a changed object (`refresh`, `X-Builder-Changed: tasks[0].object`):

    .venv/bin/python bench/ui_builder_bench.py [--tasks 8] [--mappings 15] [--requests 30]
    .venv/bin/python bench/ui_builder_bench.py --smoke      # tiny form, a few requests

Prints one JSON object: `{"changes": {change: {"whole": {...}, "part": {...}}}, ...}` with, per
mode, `bytes` (the reply's body), `p50_ms` / `p95_ms` (client, loopback, keep-alive) and
`cpu_ms` (the server process's CPU time per request, from /proc: on a shared machine the wall
times measure the neighbours too, the CPU time much less so). The tasks name an account the
owner does not have, so Salesforce is never asked: what is measured is rendering.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _support import cpu_seconds, free_port, local_env, log_in, percentile, serve
from responses_bench import CONTENT, database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PASSWORD = "bench passphrase 1"
OWNER = "owner@example.com"
CHANGES = {
    "add_field": ({"op": "add_mapping:0"}, {}),
    "object_changed": ({"op": "refresh"}, {"X-Builder-Changed": "tasks[0].object"}),
}


def form_of(tasks: int, mappings: int) -> dict[str, str]:
    """The builder's form for a workflow of `tasks` Salesforce tasks, as the browser posts it."""
    form = {"name": "Bench builder", "event.type": "survey_response", "event.when": "created"}
    for t in range(tasks):
        form |= {
            f"tasks[{t}].type": "salesforce", f"tasks[{t}].id": f"task{t}",
            f"tasks[{t}].connection": "Bench", f"tasks[{t}].object": "Case",
            f"tasks[{t}].action": "update", f"tasks[{t}].key_value": "${e://Field/CaseId}",
        }  # fmt: skip
        for m in range(mappings):
            form[f"tasks[{t}].mappings[{m}].field"] = f"Field_{m}__c"
            form[f"tasks[{t}].mappings[{m}].value"] = (
                f"${{q://QID{m % 3 + 1}/ChoiceTextEntryValue}}"
            )
    return form


def seed(env: dict[str, str]) -> str:
    """Migrate, create the owner and the survey; returns the survey's id."""
    os.environ.update(env)
    from cxloop.bootstrap import build_container
    from cxloop.db import migrate
    from cxloop.services import survey_content, surveys, users
    from cxloop.services.access import Actor
    from cxloop.settings import load_settings

    container = build_container(load_settings())
    try:
        migrate.upgrade(container.db.engine)
        owner = Actor.of(users.create_user(container.db, OWNER, PASSWORD))
        survey = surveys.create_survey(container.db, owner, "Builder bench")
        survey_content.put_content(container.db, owner, survey.id, CONTENT)
        return survey.id
    finally:
        container.close()


def measure(
    http: httpx.Client, url: str, form: dict[str, str], headers: dict[str, str], requests: int,
    pid: int | None,
) -> dict[str, Any]:  # fmt: skip
    """Post the change `requests` times (after two warm-ups): bytes, times, server CPU."""
    timings: list[float] = []
    size = 0
    cpu_before = None
    for n in range(requests + 2):
        if n == 2 and pid is not None:
            cpu_before = cpu_seconds(pid, children=False)
        began = time.perf_counter()
        reply = http.post(url, data=form, headers=headers)
        elapsed = (time.perf_counter() - began) * 1000
        if reply.status_code != 200:
            raise SystemExit(f"{url}: {reply.status_code} {reply.text[:300]}")
        size = len(reply.content)
        if n >= 2:
            timings.append(elapsed)
    result: dict[str, Any] = {
        "bytes": size,
        "p50_ms": round(percentile(timings, 0.50), 1),
        "p95_ms": round(percentile(timings, 0.95), 1),
        "n": len(timings),
    }
    if cpu_before is not None and pid is not None:
        cpu = cpu_seconds(pid, children=False) - cpu_before
        result["cpu_ms"] = round(cpu * 1000 / len(timings), 1)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--mappings", type=int, default=15)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--smoke", action="store_true", help="2 tasks, 3 rows, 3 requests")
    args = parser.parse_args(argv)
    if args.smoke:
        args.tasks, args.mappings, args.requests = 2, 3, 3
    if args.tasks < 1 or args.mappings < 1 or args.requests < 1:
        parser.error("--tasks, --mappings and --requests must be at least 1")
    changes: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="cxloop-builder-bench-") as tmp,
        database(None, Path(tmp) / "data") as url,
    ):
        env = local_env(Path(tmp), url) | {"PYTHONPATH": str(ROOT / "src")}
        survey_id = seed(env)
        port = free_port()
        with (
            serve(env, port, Path(tmp) / "server.log", "--processes", "1", "--no-worker")
            as proc,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http,
        ):  # fmt: skip
            log_in(http, OWNER, PASSWORD)
            new = f"/surveys/{survey_id}/workflows/new"
            page = http.get(new, params={"kind": "event", "event": "survey_response"}).text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)
            assert csrf, "no builder form"
            base = {"HX-Request": "true", "X-CSRF-Token": csrf.group(1)}
            form = form_of(args.tasks, args.mappings)
            pid = proc.pid if Path("/proc/self/stat").exists() else None
            load_before = os.getloadavg()[0]
            for change, (values, extra) in CHANGES.items():
                whole = measure(http, new, form | values, base | extra, args.requests, pid)
                part = measure(
                    http, new, form | values, base | extra | {"X-Builder-Partial": "1"},
                    args.requests, pid,
                )  # fmt: skip
                changes[change] = {
                    "whole": whole,
                    "part": part,
                    "bytes_saved": round(1 - part["bytes"] / whole["bytes"], 3),
                }
            load_after = os.getloadavg()[0]
    result = {
        "changes": changes,
        "tasks": args.tasks,
        "mappings_per_task": args.mappings,
        "requests": args.requests,
        "cpus": os.cpu_count(),
        "load_average": [round(load_before, 1), round(load_after, 1)],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
