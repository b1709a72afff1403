"""Benchmark: responses accepted per second, one per request and in bulk.

Starts `cxloop serve --processes N` (N: `--processes`, default one per core) as a subprocess
on a free port (SQLite in a temporary data directory by
default; with `--database-url postgresql://...` a fresh `test_bench_<random>` database that is
dropped afterwards), creates an admin, an API token and an active survey, then:

1. single: `--clients` concurrent keep-alive connections (`http_load`) POST one response per
   request to `/api/v1/surveys/{id}/responses` for `--seconds`; responses/s, p50/p99 latency;
2. import: `--import-rows` responses through the bulk import service (`import_responses`, the
   code behind `cxloop responses import`), in this process against the same database;
3. import over HTTP: `--http-import-rows` rows POSTed as JSON arrays of `--array-size`, one
   upload per server process at a time.

It prints one JSON object. A response refused or not stored (`single_errors`, `import_failed`,
`http_import_errors`, `missing_responses`: the responses counted in the database afterwards
against those accepted) voids the figures: it then prints only those counters and `failed`, and
exits with status 1. `--smoke` runs it at a tiny size (seconds) to check that it works.

Run, for example:

    .venv/bin/python bench/responses_bench.py --seconds 20
    .venv/bin/python bench/responses_bench.py \
        --database-url postgresql://postgres@127.0.0.1:5432/test_bench_x --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from _support import free_port, local_env, percentile, scratch_database, serve
from http_load import post_json_requests, run_load
from outcome import finish

CONTENT = {
    "format_version": 1,
    "embedded_data": [{"name": "CaseId"}],
    "questions": [
        {"qid": "QID1", "type": "nps", "text": "How likely are you to recommend us?",
         "required": True},
        {"qid": "QID2", "type": "single_choice", "text": "How did you contact us?",
         "choices": [{"id": "1", "text": "Phone"}, {"id": "2", "text": "Chat"},
                     {"id": "3", "text": "Email"}]},
        {"qid": "QID3", "type": "text_entry", "text": "Why?", "multiline": True},
    ],
}  # fmt: skip


def response_body(n: int) -> dict[str, Any]:
    return {
        "values": {"QID1": n % 11, "QID2": str(n % 3 + 1), "QID3": f"Answer number {n}"},
        "embedded_data": {"CaseId": f"5003{n:011d}"},
    }


# -- the database --------------------------------------------------------------------------


@contextmanager
def database(url: str | None, data_dir: Path) -> Iterator[str]:
    """SQLite in the data directory, or a fresh PostgreSQL database dropped afterwards."""
    if not url:
        yield f"sqlite:///{data_dir / 'cxloop.db'}"
        return
    from sqlalchemy import make_url

    from cxloop.db.engine import normalize_database_url

    given = make_url(normalize_database_url(url))
    name = given.database or ""
    name = name if name.startswith("test_bench_") else f"test_bench_{secrets.token_hex(4)}"
    admin = given.set(database="postgres").render_as_string(hide_password=False)
    with scratch_database(admin, name) as scratch:
        yield scratch


def prepare(env: dict[str, str]) -> tuple[Any, str]:
    """Migrate, create the admin and its token (in this process, with the server's settings)."""
    os.environ.update(env)
    from cxloop.bootstrap import build_container
    from cxloop.db import migrate
    from cxloop.process import tune_garbage_collector
    from cxloop.services import users
    from cxloop.settings import load_settings

    tune_garbage_collector()  # the import runs in this process, tuned as `cxloop serve` is
    container = build_container(load_settings())
    migrate.upgrade(container.db.engine)
    users.create_user(container.db, "bench@example.com", None, is_admin=True)
    token = users.create_token(container.db, "bench@example.com", "bench").token
    return container, token


# -- the load ------------------------------------------------------------------------------


def single_load(base: str, headers: dict[str, str], path: str, clients: int, seconds: float):
    """`clients` keep-alive connections POST one response per request for `seconds`."""
    request_for = post_json_requests(base, path, headers, response_body)
    load = run_load(base, request_for, clients=clients, seconds=seconds)
    latencies = load.latencies
    return {
        "responses_per_s_single": round(len(latencies) / load.seconds, 1),
        "single_accepted": len(latencies),
        "single_errors": load.errors,
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "latency_ms_p99": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
        "clients": clients,
        "seconds": round(load.seconds, 1),
    }


def service_import(container: Any, survey_id: str, rows: int) -> dict[str, Any]:
    from cxloop.services import responses
    from cxloop.services.access import Actor
    from cxloop.services.users import get_user_by_email

    actor = Actor.of(get_user_by_email(container.db, "bench@example.com"))
    source = (responses.SourceRow(n, response_body(n)) for n in range(rows))
    began, cpu_began = time.perf_counter(), time.process_time()
    result = responses.import_responses(container.db, actor, survey_id, source)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    return {
        "responses_per_s_import": round(result.stored / elapsed, 1),
        "import_rows": rows,
        "import_stored": result.stored,
        "import_failed": result.failed,
        # This process's CPU time per row: steadier than the rate on a machine others share.
        "import_cpu_us_per_row": round(cpu / max(result.stored, 1) * 1e6, 1),
    }


def http_import(
    base: str, headers: dict[str, str], path: str, rows: int, size: int, clients: int
) -> dict:
    """`rows` responses POSTed as JSON arrays of `size`, by `clients` uploads at a time (one
    per server process: each process checks its array while the other's is written)."""
    bodies = [
        json.dumps([response_body(n) for n in range(start, min(rows, start + size))]).encode()
        for start in range(0, rows, size)
    ]  # encoded up front: the client's JSON encoding is not the server's time
    post_headers = headers | {"Content-Type": "application/json"}

    def upload(http: httpx.Client, body: bytes) -> int | None:
        """The responses stored, or None for an upload refused or unanswered."""
        try:
            reply = http.post(path, content=body, headers=post_headers)
        except httpx.HTTPError:
            return None
        return reply.json()["stored"] if reply.status_code == 201 else None

    began = time.perf_counter()
    with httpx.Client(base_url=base, timeout=300) as http, ThreadPoolExecutor(clients) as pool:
        uploads = list(pool.map(lambda body: upload(http, body), bodies))
    elapsed = time.perf_counter() - began
    stored = sum(n for n in uploads if n is not None)
    return {
        "responses_per_s_import_http": round(stored / elapsed, 1),
        "array_size": size,
        "http_import_clients": clients,
        "http_import_stored": stored,
        "http_import_errors": sum(n is None for n in uploads) + (rows - stored),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="", help="postgresql://... (default SQLite)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="cxloop serve --processes (default: one per core)")  # fmt: skip
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--array-size", type=int, default=5_000)
    parser.add_argument("--http-import-rows", type=int, default=20_000)
    parser.add_argument("--smoke", action="store_true",
                        help="A tiny run (seconds) that checks the bench works.")  # fmt: skip
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.clients, args.processes = 1.0, 2, 1
        args.import_rows, args.http_import_rows, args.array_size = 200, 200, 100

    with tempfile.TemporaryDirectory(prefix="cxloop-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        with database(args.database_url or None, data_dir) as url:
            env = local_env(Path(tmp), url)
            container, token = prepare(env)
            headers = {"Authorization": f"Bearer {token}"}
            port = free_port()
            with serve(env, port, Path(tmp) / "server.log", "--processes", str(args.processes)):
                base = f"http://127.0.0.1:{port}"
                survey = httpx.post(f"{base}/api/v1/surveys", json={"name": "Bench"},
                                    headers=headers).json()  # fmt: skip
                survey_id = survey["id"]
                api = f"/api/v1/surveys/{survey_id}"
                httpx.put(f"{base}{api}/content", json=CONTENT, headers=headers).raise_for_status()
                httpx.patch(f"{base}{api}", json={"status": "active"},
                            headers=headers).raise_for_status()  # fmt: skip
                path = f"{api}/responses"
                result: dict[str, Any] = {
                    "database": "postgresql" if url.startswith("postgres") else "sqlite",
                    "cpus": os.cpu_count(),
                    "server_processes": args.processes,
                }
                result |= single_load(base, headers, path, args.clients, args.seconds)
                result |= service_import(container, survey_id, args.import_rows)
                result |= http_import(
                    base, headers, path, args.http_import_rows, args.array_size, args.processes
                )
            result["missing_responses"] = (
                result["single_accepted"] + result["import_stored"] + result["http_import_stored"]
                - count_responses(container)
            )  # fmt: skip
            container.close()
    counters = {
        name: result[name]
        for name in ("single_errors", "import_failed", "http_import_errors", "missing_responses")
    }
    finish(result, counters, keep=("database", "server_processes"))


def count_responses(container: Any) -> int:
    """The responses in the database, as the server stored them."""
    from sqlalchemy import func, select

    from cxloop.db.models import Response

    with container.db.reader() as uow:
        return uow.session.scalar(select(func.count()).select_from(Response))


if __name__ == "__main__":
    main()
