"""What the benchmarks share: ports and processes, waiting for a server, the cxloop command,
CPU time from /proc, signing in through the login form, scratch PostgreSQL databases, cxloop's
ledger read beside the server, and the response workflow most benches run.

Benches import it as `from _support import ...` (bench/ is on the path of a script run from
it). Names a bench used to define itself stay importable from that bench.
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def free_port() -> int:
    """A TCP port nothing listens on now (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(url: str, timeout: float = 60.0, log: Path | None = None, **kwargs: Any) -> None:
    """Until `url` answers 200; RuntimeError after `timeout` seconds (with the end of `log`,
    the process's output, when given). `kwargs` go to httpx.get (e.g. `verify`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, **kwargs).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    said = f": {log.read_text(errors='replace')[-2000:]}" if log is not None else ""
    raise RuntimeError(f"{url} did not come up{said}")


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A process with its output in `log`, stopped as a deployment stops it (SIGTERM, then
    SIGKILL after 30 s) when the block ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def serve(env: dict[str, str], port: int, log: Path, *args: str) -> Iterator[subprocess.Popen]:
    """`cxloop serve --port PORT ARGS...`, once it answers /livez (a minute at most)."""
    command = [PYTHON, "-m", "cxloop", "serve", "--port", str(port), *args]
    with process(command, env, log) as proc:
        wait_until(f"http://127.0.0.1:{port}/livez", timeout=60, log=log)
        yield proc


def emulator_app(sf: str, cxloop_base: str) -> tuple[httpx.Client, dict[str, Any], dict[str, str]]:
    """Once the emulator at `sf` answers: its control API client, its /info, and the settings
    that make cxloop use its connected app, whose callback URLs now include cxloop's at
    `cxloop_base`."""
    wait_until(f"{sf}/__emulator__/info")
    control = httpx.Client(base_url=f"{sf}/__emulator__", timeout=60)
    info = control.get("/info").raise_for_status().json()
    app = info["connected_apps"][0]
    control.patch(
        f"/apps/{app['name']}",
        json={"add_callback_urls": [f"{cxloop_base}/oauth/salesforce/callback"]},
    ).raise_for_status()
    settings = {
        "CXLOOP_SALESFORCE_CLIENT_ID": app["client_id"],
        "CXLOOP_SALESFORCE_CLIENT_SECRET": app["client_secret"],
    }
    return control, info, settings


def local_env(tmp: Path, database_url: str) -> dict[str, str]:
    """This process's environment plus the settings of a cxloop with its data directory and
    queue under `tmp` and its database at `database_url`."""
    return os.environ | {
        "CXLOOP_DATA_DIR": str(tmp / "data"),
        "CXLOOP_DATABASE_URL": database_url,
        "CXLOOP_QUEUE_URL": f"sqlite:///{tmp / 'queue.db'}",
        "CXLOOP_LOG_LEVEL": "WARNING",  # one log line per request is not what we measure
    }


def cxloop(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """Run `cxloop ARGS` to the end; its output, or RuntimeError with what it said."""
    done = subprocess.run(
        [PYTHON, "-m", "cxloop", *args], env=env, input=stdin, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"cxloop {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system CPU time so far of a process, and of its children (`serve --processes
    N`) unless `children` is false; Linux /proc, 0 where there is none."""
    if not children:
        return (stat_cpu(Path(f"/proc/{pid}/stat")) or (0.0, ""))[0]
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        seconds, parent = stat_cpu(stat) or (0.0, "")
        if stat.parent.name == str(pid) or parent == str(pid):
            total += seconds
    return total


def stat_cpu(stat: Path) -> tuple[float, str] | None:
    """(CPU seconds, parent pid) of one /proc/PID/stat; None if it cannot be read (the process
    ended meanwhile)."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), fields[1]


def log_in(browser: httpx.Client, email: str, password: str) -> None:
    """Sign in through the login form, as a person's browser does (the form's token first);
    SystemExit when the server does not let the person in."""
    form = browser.get("/login").raise_for_status().text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    if csrf is None:
        raise SystemExit("no login form")
    reply = browser.post("/login", data={"email": email, "password": password,
                                         "csrf": csrf.group(1)})  # fmt: skip
    if reply.status_code != 303:
        raise SystemExit(f"could not sign in as {email}: {reply.status_code}")


def fresh_database(admin_url: str, name: str) -> str:
    """Drop and create the PostgreSQL database `name` on the server of `admin_url`; its URL."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    """Drop the PostgreSQL database `name` (its connections too) on the server of `admin_url`."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def scratch_database(admin_url: str, name: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for the block (its URL), dropped afterwards."""
    url = fresh_database(admin_url, name)
    try:
        yield url
    finally:
        drop_database(admin_url, name)


def percentile(values: list[float], fraction: float) -> float:
    """The value at `fraction` (0..1) of the sorted values; 0 for none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def upsert_workflow(
    name: str, connection: str, comment_qid: str, *, include_imported: bool = False
) -> dict[str, Any]:
    """A response workflow with one Salesforce task: upsert a Survey_Response__c keyed on the
    response id, with the NPS (QID1) and the comment question's text (imported responses
    too when `include_imported`: a backfill)."""
    event: dict[str, Any] = {"type": "survey_response", "when": ["created"]}
    if include_imported:
        event["include_imported"] = True
    return {
        "name": name,
        "event": event,
        "tasks": [
            {
                "id": "response",
                "type": "salesforce",
                "connection": connection,
                "object": "Survey_Response__c",
                "action": "upsert",
                "key_field": "Response_ID__c",
                "mappings": [
                    {"field": "Response_ID__c", "value": "${e://Field/ResponseID}"},
                    {"field": "NPS_Score__c", "value": "${q://QID1/ChoiceGroup/SelectedChoices}"},
                    {
                        "field": "Comment__c",
                        "value": f"${{q://{comment_qid}/ChoiceTextEntryValue}}",
                    },
                ],
            }
        ],
    }


def api_calls(control: httpx.Client) -> int:
    """The API calls the emulator counted, all orgs (its control API: not counted itself)."""
    usage = control.get("/api_usage").raise_for_status().json()
    return sum(int(org.get("calls", org.get("used", 0))) for org in _orgs(usage))


def _orgs(usage: Any) -> list[dict[str, Any]]:
    if isinstance(usage, dict) and "orgs" in usage:
        return list(usage["orgs"])
    if isinstance(usage, dict):
        return [v for v in usage.values() if isinstance(v, dict)]
    return list(usage)


class TaskRunLedger:
    """cxloop's own record of its task runs, read beside the server: a database URL, or the
    path of its SQLite file."""

    def __init__(self, database: str | Path) -> None:
        self.engine = create_engine(
            f"sqlite:///{database}" if isinstance(database, Path) else database
        )

    def failed(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(
                text("SELECT COUNT(*) FROM task_runs WHERE status = 'failed'")
            ).scalar_one()

    def first_failure(self) -> str:
        with self.engine.connect() as connection:
            reason = connection.execute(
                text("SELECT status_reason FROM task_runs WHERE status = 'failed' LIMIT 1")
            ).scalar()
        return str(reason or "")[:300]

    def not_succeeded_responses(self) -> set[str]:
        """The responses with a task run that has not succeeded."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT DISTINCT runs.response_id FROM task_runs "
                    "JOIN runs ON runs.id = task_runs.run_id WHERE task_runs.status <> 'succeeded'"
                )
            )
            return {response_id for (response_id,) in rows}

    def duplicate_writes(self, key_field: str, keys: set[str] | None = None) -> int:
        """Writes of a record beyond the one that created it, per key (of `keys`, or all),
        from the upsert results of every attempt: an attempt that wrote a key already written
        (`created` false, as every key here is new) or a second creation of one key."""
        writes: dict[str, list[bool]] = {}
        with self.engine.connect() as connection:
            rows = connection.execute(text("SELECT payload, reply FROM task_run_attempts"))
            for payload, reply in rows:
                reply = (json.loads(reply) if isinstance(reply, str) else reply) or {}
                payload = (json.loads(payload) if isinstance(payload, str) else payload) or {}
                key = str(payload.get(key_field))
                if reply.get("success") and (keys is None or key in keys):
                    writes.setdefault(key, []).append(bool(reply.get("created")))
        return sum(len(flags) - min(flags.count(True), 1) for flags in writes.values())

    def close(self) -> None:
        self.engine.dispose()
