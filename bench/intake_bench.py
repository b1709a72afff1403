"""CPU per accepted response of the intake (`POST /api/v1/surveys/{id}/responses`), in-process.

The intake of issue 18's realistic world (the workflow bench's survey and workflow) measured
where the load of the machine cannot move the figure: CPU time, not wall time, the least of
`--repeat` runs, in one process (no uvicorn, no sockets, no worker; the queue is an SQLite file
as `cxloop serve` has it). Three parts:

- **commit**: `responses.submit_responses` on batches of `--batch` submissions (the intake's
  writer thread: access check, validation, INSERT, the ledger's matching and its INSERTs, the
  commit, the queue message); the thread's CPU time per response.
- **path**: the app called as ASGI by `--clients` concurrent clients in one event loop, its
  intake answering at once with one response stored beforehand (the request path alone:
  FastAPI, the middleware, the token check, the reply); the thread's CPU time per request.
- **whole**: the same clients against the real intake (group commit in its writer thread);
  the process's CPU time per response (both threads), the mean batch size.

With `--profile`, commit and path also count Python function calls per response (cProfile's
count, in the thread measured: load cannot change it).

It prints one JSON object. Compare two trees side by side in one session, e.g.
`PYTHONPATH=/work/main/src .venv/bin/python bench/intake_bench.py` against this tree's.
`--database-url postgresql://postgres@127.0.0.1:5432/bench_intake` runs it on a scratch
PostgreSQL database (made, and dropped at the end). `--smoke` is a tiny run.
Replies other than 201, or outcomes that are errors, are counted in `refused`: then no figure.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _support import scratch_database, upsert_workflow
from sqlalchemy import make_url

from cxloop.bootstrap import Container, build_container
from cxloop.db import migrate
from cxloop.db.models import Connection
from cxloop.logs import configure_logging
from cxloop.process import tune_garbage_collector
from cxloop.services import survey_content, surveys, users, workflows
from cxloop.services.access import Actor
from cxloop.services.responses import Submission, submit_responses
from cxloop.settings import Settings

CONTENT = {  # the workflow bench's survey
    "format_version": 1,
    "embedded_data": [{"name": "CaseId"}],
    "questions": [
        {"qid": "QID1", "type": "nps", "text": "How likely are you to recommend us?"},
        {"qid": "QID2", "type": "text_entry", "text": "Why?"},
    ],
}


def response_body(n: int) -> dict[str, Any]:
    return {"values": {"QID1": n % 11, "QID2": f"response #{n}"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="", help="PostgreSQL admin URL; else SQLite")
    parser.add_argument("--responses", type=int, default=1200, help="per run of each part")
    parser.add_argument("--repeat", type=int, default=7, help="runs of each part (least kept)")
    parser.add_argument("--batch", type=int, default=6, help="submissions per commit (commit)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent requests")
    parser.add_argument("--parts", default="commit,path,whole")
    parser.add_argument("--profile", action="store_true", help="count function calls too")
    parser.add_argument("--smoke", action="store_true", help="a tiny run: does it work?")
    options = parser.parse_args()
    if options.smoke:
        options.responses, options.repeat = 24, 1
    tune_garbage_collector()  # as the server processes have it
    configure_logging("WARNING", json=True)  # as the benches run the server
    with (
        tempfile.TemporaryDirectory(prefix="cxloop-intake-") as workdir,
        database(options.database_url, Path(workdir)) as url,
    ):
        result = run(url, Path(workdir), options)
    if result["refused"]:
        print(json.dumps({"refused": result["refused"], "failed": True}))
        sys.exit(1)
    print(json.dumps(result))


@contextmanager
def database(admin_url: str, workdir: Path) -> Iterator[str]:
    if not admin_url:
        yield f"sqlite:///{workdir / 'cxloop.db'}"
        return
    name = make_url(admin_url).database or "bench_intake"
    if name == "postgres":
        name = "bench_intake"
    admin = make_url(admin_url).set(database="postgres").render_as_string(hide_password=False)
    with scratch_database(admin, name) as url:
        yield url


def run(url: str, workdir: Path, options: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(
        data_dir=workdir / "data", database_url=url, queue_url=f"sqlite:///{workdir / 'queue.db'}"
    ).with_secrets()
    container = build_container(settings)
    try:
        migrate.upgrade(container.db.engine)
        actor, token, survey_id = set_up(container)
        result: dict[str, Any] = {
            "database": container.db.engine.dialect.name,
            "responses": options.responses,
            "repeat": options.repeat,
            "refused": 0,
        }
        parts: dict[str, Callable[[], dict[str, Any]]] = {
            "commit": lambda: commit_part(container, actor, survey_id, options),
            "path": lambda: asgi_part(container, token, survey_id, options, real_intake=False),
            "whole": lambda: asgi_part(container, token, survey_id, options, real_intake=True),
        }
        for name in options.parts.split(","):
            figures = parts[name]()
            result["refused"] += figures.pop("refused")
            result |= {f"{name}_{key}": value for key, value in figures.items()}
        return result
    finally:
        container.close()


def set_up(container: Container) -> tuple[Actor, str, str]:
    """An admin with a token, a connection row named Emulator, the survey and its workflow."""
    user = users.create_user(container.db, "bench@example.com", None, is_admin=True)
    token = users.create_token(container.db, "bench@example.com", "bench").token
    actor = Actor.of(user)
    with container.db.uow() as uow:  # never called: only what saving the workflow checks
        uow.session.add(
            Connection(
                owner_id=user.id, name="Emulator", type="emulator",
                login_url="https://login.example.test", instance_url="https://na1.example.test",
                org_id="00D000000000001AAA", sf_user_id="005000000000001AAA",
                username="bench@example.test", identity_url="https://login.example.test/id",
                access_token="x", refresh_token="y",
            )
        )  # fmt: skip
        uow.commit()
    survey = surveys.create_survey(container.db, actor, "Bench NPS")
    survey_content.put_content(container.db, actor, survey.id, CONTENT)
    surveys.update_survey(container.db, actor, survey.id, {"status": "active"})
    workflow = upsert_workflow("Upsert response", "Emulator", comment_qid="QID2")
    workflows.create_workflow(container.db, actor, survey.id, workflow)
    return actor, token, survey.id


# -- commit: the writer thread's work -----------------------------------------------------------


def commit_part(
    container: Container, actor: Actor, survey_id: str, options: argparse.Namespace
) -> dict[str, Any]:
    n, size = options.responses, options.batch
    batches = [
        [Submission(actor, survey_id, response_body(i)) for i in range(start, min(n, start + size))]
        for start in range(0, n, size)
    ]
    refused = 0

    def once() -> None:
        nonlocal refused
        for batch in batches:
            refused += sum(isinstance(o, Exception) for o in submit_responses(container.db, batch))

    once()  # warm: caches filled, statements compiled
    best = min(thread_cpu(once) for _ in range(options.repeat))
    figures: dict[str, Any] = {"batch": size, "cpu_us_per_response": round(best / n * 1e6, 1)}
    if options.profile:
        figures["calls_per_response"] = round(count_calls(once) / n, 1)
    figures["refused"] = refused
    return figures


# -- path and whole: the app as ASGI -------------------------------------------------------------


class AnsweringIntake:
    """An intake that answers every submission with one outcome stored beforehand."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def submit(self, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(self.outcome)
        return future


def asgi_part(
    container: Container,
    token: str,
    survey_id: str,
    options: argparse.Namespace,
    *,
    real_intake: bool,
) -> dict[str, Any]:
    from cxloop.web.app import create_app

    app = create_app(container)
    real = container.response_intake
    if not real_intake:  # one real outcome first, whatever type this tree's intake gives
        actor = Actor.of(users.get_user_by_email(container.db, "bench@example.com"))
        outcome = real.submit(actor, survey_id, response_body(0)).result(30)
        container.response_intake = AnsweringIntake(outcome)  # type: ignore[assignment]
    path = f"/api/v1/surveys/{survey_id}/responses"
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"bench"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
    ]
    bodies = [json.dumps(response_body(i)).encode() for i in range(options.responses)]
    loop = new_event_loop()
    statuses: list[int] = []
    sizes: list[int] = []
    watch = watch_batches(container, sizes) if real_intake else None
    clock = time.process_time if real_intake else time.thread_time

    def once() -> None:
        loop.run_until_complete(drive(app, path, headers, bodies, options.clients, statuses))

    try:
        once()  # warm
        runs = []
        for _ in range(options.repeat):
            sizes.clear()
            runs.append(measured(once, clock))
        best = min(runs)
        figures: dict[str, Any] = {
            "clients": options.clients,
            "cpu_us_per_response": round(best / options.responses * 1e6, 1),
        }
        if real_intake:
            figures["mean_batch"] = round(sum(sizes) / max(len(sizes), 1), 2)
        if options.profile and not real_intake:
            figures["calls_per_response"] = round(count_calls(once) / options.responses, 1)
    finally:
        if watch is not None:
            watch()
        container.response_intake = real
        loop.close()
    figures["refused"] = sum(status != 201 for status in statuses)
    return figures


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where installed, as uvicorn picks it."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def drive(
    app: Any,
    path: str,
    headers: list[tuple[bytes, bytes]],
    bodies: list[bytes],
    clients: int,
    statuses: list[int],
) -> None:
    """Every body POSTed once, by `clients` concurrent clients, one request at a time each."""
    pending = iter(bodies)

    async def client() -> None:
        for body in pending:
            statuses.append(await post(app, path, headers, body))

    await asyncio.gather(*(client() for _ in range(clients)))


async def post(app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    sent = False
    status = 0
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body", False):
            done.set()

    await app(scope, receive, send)
    return status


def watch_batches(container: Container, sizes: list[int]) -> Callable[[], None]:
    """Note the size of every batch the ledger is told of; returns the undo."""
    ledger = container.ledger
    record = ledger.record_response_events

    def recording(uow: Any, responses: Any, event: str, *args: Any, **kwargs: Any) -> None:
        sizes.append(len(responses))
        record(uow, responses, event, *args, **kwargs)

    ledger.record_response_events = recording  # type: ignore[method-assign]
    return lambda: setattr(ledger, "record_response_events", record)


# -- measuring -----------------------------------------------------------------------------------


def thread_cpu(work: Callable[[], None]) -> float:
    return measured(work, time.thread_time)


def measured(work: Callable[[], None], clock: Callable[[], float]) -> float:
    began = clock()
    work()
    return clock() - began


def count_calls(work: Callable[[], None]) -> int:
    """Python function calls `work` makes in this thread (cProfile's count)."""
    profile = cProfile.Profile()
    profile.runcall(work)
    return pstats.Stats(profile).total_calls  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
