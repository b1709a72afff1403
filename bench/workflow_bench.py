"""End-to-end benchmark of response → Salesforce, against a naive one-call-per-response script.

Starts the Salesforce emulator and `cxloop serve` (SQLite, embedded worker; or PostgreSQL with
`--database-url`) as separate processes, links a connection over OAuth, creates a survey whose
workflow upserts one Survey_Response__c per response, then:

1. full load: N responses POSTed over HTTP by concurrent clients; measures records/s until the
   last record is in Salesforce, and API calls per 1,000 responses (the emulator's counter);
2. half load: responses paced at half the full-load record rate; submit-to-record latency
   p50/p99 from cxloop's own histogram (`cxloop_submit_to_record_seconds`);
3. naive: simple-salesforce upserting one record per response from the same number of threads.

It does the full and half loads twice on the same processes: against the emulator as it is
(about 2 ms a call), then with every org's latency model set to a real org's through the control
API (what `cxloop emulator serve --latency-ms 150 --per-record-ms 5` sets at start: every REST
call waits 150 ms, plus 5 ms per record of a Collections call); then the naive part in both.
The realistic world's keys are the fast world's with the prefix `realistic_`
(`realistic_records_per_s`, `realistic_api_calls_per_1000`, `realistic_p50_s`,
`realistic_p99_s`, `realistic_naive_records_per_s`, ...). `--world fast|realistic` measures one.

It prints one JSON object. Run: `make bench` or
`.venv/bin/python bench/workflow_bench.py --responses 5000 --clients 16`.

`--database-url postgresql://postgres@127.0.0.1:5432/bench_workflow` runs the same on
PostgreSQL: the database the URL names is a scratch database, dropped if it is there, created,
and dropped at the end (`database` in the output says which one ran; the queue stays the
embedded SQLite one, as `cxloop serve` has it by default).

No figure comes out of work that failed: a refused response, a task run that failed, a response
whose record is missing (`lost`), a record written more than once (`duplicates`), a naive upsert
that failed. Then it prints only those counters and `failed`, and exits with status 1.
`--smoke` runs it at a tiny size (seconds) to check that it works; `--fault JSON` injects an
emulator fault (POST /__emulator__/faults) before the full load, to see a failure counted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _support import (
    PYTHON,
    TaskRunLedger,
    api_calls,
    cpu_seconds,
    cxloop,
    emulator_app,
    free_port,
    log_in,
    process,
    scratch_database,
    upsert_workflow,
    wait_until,
)
from http_load import post_json_requests, run_load
from outcome import BenchFailed, failures, finish, refuse
from sqlalchemy import make_url

CONTENT = {
    "format_version": 1,
    "embedded_data": [{"name": "CaseId"}],
    "questions": [
        {"qid": "QID1", "type": "nps", "text": "How likely are you to recommend us?"},
        {"qid": "QID2", "type": "text_entry", "text": "Why?"},
    ],
}


BENCH_PASSWORD = "bench passphrase 1"


def link_in_browser(base: str, email: str, password: str, authorize_url: str) -> None:
    """What a person's browser does with the linking link: sign in to cxloop, open the one-time
    link (which sets its cookie), log in at Salesforce (the emulator's auto-login), come back."""
    with httpx.Client(base_url=base, timeout=60) as browser:
        log_in(browser, email, password)
        at_salesforce = browser.get(authorize_url)
        assert at_salesforce.status_code == 303, at_salesforce.text
        back = httpx.get(at_salesforce.headers["location"], follow_redirects=False, timeout=60)
        browser.get(back.headers["location"]).raise_for_status()


def linked_survey(
    base: str, sf: str, env: dict[str, str], name: str
) -> tuple[httpx.Client, dict[str, Any]]:
    """An admin with a token (the API client), a connection "Emulator" linked over OAuth, and
    an active survey of CONTENT named `name`."""
    cxloop(env, "users", "create", "bench@example.com", "--admin", "--password-stdin",
           stdin=f"{BENCH_PASSWORD}\n")  # fmt: skip
    token = cxloop(env, "tokens", "create", "--user", "bench@example.com").strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    api = httpx.Client(base_url=base, headers=headers, timeout=60)
    started = (
        api.post(
            "/api/v1/connections", json={"name": "Emulator", "type": "emulator", "login_url": sf}
        )
        .raise_for_status()
        .json()
    )
    link_in_browser(base, "bench@example.com", BENCH_PASSWORD, started["authorize_url"])
    survey = api.post("/api/v1/surveys", json={"name": name}).raise_for_status().json()
    api.put(f"/api/v1/surveys/{survey['id']}/content", json=CONTENT).raise_for_status()
    api.patch(f"/api/v1/surveys/{survey['id']}", json={"status": "active"}).raise_for_status()
    return api, survey


def set_up(base: str, sf: str, env: dict[str, str]) -> tuple[dict[str, str], str]:
    """An admin with a token, a linked connection, an active survey with the workflow."""
    api, survey = linked_survey(base, sf, env, "Bench NPS")
    headers = {"Authorization": api.headers["Authorization"]}
    workflow = upsert_workflow("Upsert response", "Emulator", comment_qid="QID2")
    api.post(f"/api/v1/surveys/{survey['id']}/workflows", json=workflow).raise_for_status()
    return headers, survey["id"]


def sf_count(sf_client: httpx.Client, soql: str) -> int:
    return sf_client.get("/services/data/v62.0/query/", params={"q": soql}).json()["totalSize"]


def response_ids_in_salesforce(sf_client: httpx.Client) -> list[str]:
    values: list[str] = []
    url: str | None = "/services/data/v62.0/query/"
    params: dict[str, str] | None = {"q": "SELECT Response_ID__c FROM Survey_Response__c"}
    while url:
        page = sf_client.get(url, params=params).json()
        values += [r["Response_ID__c"] for r in page["records"]]
        url, params = page.get("nextRecordsUrl"), None
    return values


def response_body(n: int) -> dict[str, Any]:
    return {"values": {"QID1": n % 11, "QID2": f"response #{n}"}}


def submit_all(
    base: str, headers: dict[str, str], survey_id: str, count: int, clients: int, rate: float = 0
) -> tuple[list[str], float, int]:
    """POST `count` responses from `clients` concurrent clients (threads paced to `rate`/s
    when given; else the lean keep-alive clients of `http_load`, which leave the CPU to the
    server). Returns the ids of the accepted responses, the seconds taken and how many were
    refused (any answer but 201, or none)."""
    if not rate:
        request_for = post_json_requests(
            base, f"/api/v1/surveys/{survey_id}/responses", headers, response_body
        )
        load = run_load(base, request_for, clients=clients, total=count, keep_bodies=True)
        ids = [json.loads(body)["id"] for body in load.bodies]
        return ids, load.seconds, count - len(ids)
    ids: list[str] = []
    refused = [0]
    lock = threading.Lock()
    started = time.monotonic()
    per_client = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]

    def client_loop(index: int) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            for n in range(per_client[index]):
                if rate:
                    due = started + (n * clients + index) / rate
                    time.sleep(max(0.0, due - time.monotonic()))
                body = response_body(n * clients + index)
                try:
                    reply = http.post(f"/api/v1/surveys/{survey_id}/responses", json=body)
                except httpx.HTTPError:
                    reply = None
                with lock:
                    if reply is not None and reply.status_code == 201:
                        ids.append(reply.json()["id"])
                    else:
                        refused[0] += 1

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    return ids, time.monotonic() - started, refused[0]


def wait_for_records(
    sf_client: httpx.Client, ledger: TaskRunLedger, expected: int, timeout: float
) -> float:
    """When the `expected`-th record is in Salesforce; BenchFailed as soon as a task run has
    failed (its record will never come) or when `timeout` passes."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if sf_count(sf_client, "SELECT COUNT() FROM Survey_Response__c") >= expected:
            return time.monotonic()
        failed = ledger.failed()
        if failed:
            raise BenchFailed(f"{failed} task runs failed: {ledger.first_failure()}")
        time.sleep(0.1)
    in_salesforce = sf_count(sf_client, "SELECT COUNT() FROM Survey_Response__c")
    raise BenchFailed(f"{in_salesforce} of the {expected} records arrived within {timeout} s")


def latency_quantiles(metrics_text: str) -> tuple[dict[float, int], int]:
    buckets: dict[float, int] = {}
    for match in re.finditer(
        r'cxloop_submit_to_record_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)', metrics_text
    ):
        le = float("inf") if match.group(1) == "+Inf" else float(match.group(1))
        buckets[le] = int(float(match.group(2)))
    return buckets, buckets.get(float("inf"), 0)


def wait_for_observations(base: str, expected: int, timeout: float) -> dict[float, int]:
    """The submit-to-record histogram's buckets once it holds `expected` observations (one a
    response: every response of the run so far has its record and its outcome recorded);
    BenchFailed when `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        buckets, count = latency_quantiles(httpx.get(f"{base}/metrics", timeout=60).text)
        if count >= expected:
            return buckets
        if time.monotonic() >= deadline:
            raise BenchFailed(f"{count} of {expected} submit-to-record latencies were recorded")
        time.sleep(0.1)


def quantile(before: dict[float, int], after: dict[float, int], q: float) -> float | None:
    """A quantile of the observations between two scrapes, interpolated inside its bucket."""
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0) for e in edges]
    total = counts[-1] if counts else 0
    if not total:
        return None
    target, lower_edge, lower_count = q * total, 0.0, 0
    for edge, cumulative in zip(edges, counts, strict=True):
        if cumulative >= target:
            if edge == float("inf"):
                return lower_edge
            share = (target - lower_count) / max(cumulative - lower_count, 1)
            return round(lower_edge + (edge - lower_edge) * share, 3)
        lower_edge, lower_count = edge, cumulative
    return None


def naive(
    sf: str, ca_file: str, token: str, count: int, threads: int, key_prefix: str = "NAIVE_"
) -> dict[str, Any]:
    """What most home-grown integrations do: one simple-salesforce upsert per response."""
    import requests
    from simple_salesforce import Salesforce
    from simple_salesforce.exceptions import SalesforceError

    errors = [0]

    def worker(index: int) -> None:
        session = requests.Session()
        session.verify = ca_file
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        client = Salesforce(instance_url=sf, session_id=token, session=session, version="62.0")
        for n in range(index, count, threads):
            try:
                client.Survey_Response__c.upsert(
                    f"Response_ID__c/{key_prefix}{n}",
                    {"NPS_Score__c": n % 11, "Comment__c": "naive"},
                )
            except (SalesforceError, requests.RequestException):
                errors[0] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    elapsed = time.monotonic() - started
    return {
        "naive_records_per_s": round(count / elapsed, 1),
        "naive_seconds": round(elapsed, 2),
        "naive_errors": errors[0],
    }


SMOKE = {"responses": 40, "clients": 4, "naive_responses": 20, "half_load_seconds": 1.0,
         "processes": 1, "record_timeout": 60.0}  # fmt: skip
# The counters that void the figures when they are not 0 (see outcome.finish).
FAILURE_COUNTERS = ("refused", "lost", "duplicates", "task_runs_not_succeeded", "naive_errors")
# The realistic world's keys are the fast world's with this prefix, except the shared settings.
REALISTIC = "realistic_"
SHARED_KEYS = ("clients", "server_processes", "database")
ALL_FAILURE_COUNTERS = FAILURE_COUNTERS + tuple(REALISTIC + name for name in FAILURE_COUNTERS)


@dataclass(frozen=True)
class World:
    """One run of the full and half loads and the naive part: the emulator's latency model
    and the sizes."""

    latency_ms: float
    per_record_ms: float
    responses: int
    naive_responses: int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--naive-responses", type=int, default=1000)
    parser.add_argument("--half-load-seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="cxloop serve --processes (default: one per core)")  # fmt: skip
    parser.add_argument("--record-timeout", type=float, default=600.0,
                        help="Seconds to wait for the records before giving up.")  # fmt: skip
    parser.add_argument("--world", choices=("both", "fast", "realistic"), default="both",
                        help="Which emulator to measure against: the fast one (about 2 ms a "
                        "call), the realistic one (--latency-ms, --per-record-ms), or both "
                        "(default).")  # fmt: skip
    parser.add_argument("--latency-ms", type=float, default=150.0,
                        help="The realistic world: every REST call waits this long.")  # fmt: skip
    parser.add_argument("--per-record-ms", type=float, default=5.0,
                        help="The realistic world: plus this long per record of a "
                        "Collections call.")  # fmt: skip
    parser.add_argument("--realistic-responses", type=int, default=None,
                        help="Responses of the realistic world "
                        "(default: --responses).")  # fmt: skip
    parser.add_argument("--realistic-naive-responses", type=int, default=None,
                        help="Naive upserts of the realistic world "
                        "(default: --naive-responses).")  # fmt: skip
    parser.add_argument("--smoke", action="store_true",
                        help="A tiny run (seconds) that checks the bench works.")  # fmt: skip
    parser.add_argument("--fault", type=json.loads, action="append", default=[],
                        help="An emulator fault (JSON, as POST /__emulator__/faults) injected "
                        "before the full load of the first world measured; "
                        "repeatable.")  # fmt: skip
    parser.add_argument("--database-url", default=None,
                        help="Run on PostgreSQL: the URL of a scratch database, which the "
                        "bench drops if it is there, creates, and drops at the end "
                        "(default: SQLite in the temporary directory).")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    options = parser.parse_args()
    if options.database_url is not None:
        try:
            options.database_url = postgres_url(options.database_url)
        except ValueError as exc:
            parser.error(str(exc))
    if options.smoke:
        for name, value in SMOKE.items():
            setattr(options, name, value)
        options.realistic_responses = options.realistic_naive_responses = None

    workdir = Path(tempfile.mkdtemp(prefix="cxloop-bench-"))
    try:
        with database_for(options, workdir) as database_url:
            result = run(options, workdir, database_url)
    except BenchFailed as exc:
        refuse([str(exc)], {"responses": options.responses, "database": database_name(options)})
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    counters = {name: result[name] for name in ALL_FAILURE_COUNTERS if name in result}
    finish(result, counters, keep=("responses", "clients", "server_processes", "database"))


def postgres_url(url: str) -> str:
    """`url` with psycopg 3 as its driver; ValueError unless it names a PostgreSQL database
    (the scratch database the bench makes)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        raise ValueError(f"--database-url must name a PostgreSQL database, not {url!r}")
    if parsed.database in ("postgres", "template0", "template1"):
        raise ValueError(f"--database-url names {parsed.database!r}: the bench drops it; name a "
                         "scratch database")  # fmt: skip
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def database_name(options: argparse.Namespace) -> str:
    """The `database` the output names: sqlite or postgresql."""
    return "postgresql" if options.database_url else "sqlite"


@contextmanager
def database_for(options: argparse.Namespace, workdir: Path) -> Iterator[str]:
    """The database cxloop runs on for the block: SQLite in `workdir`, or the scratch
    PostgreSQL database of `--database-url`, made fresh and dropped afterwards."""
    if not options.database_url:
        yield f"sqlite:///{workdir / 'data' / 'cxloop.db'}"
        return
    url = make_url(options.database_url)
    admin = url.set(database="postgres").render_as_string(hide_password=False)
    assert url.database is not None
    with scratch_database(admin, url.database) as database_url:
        yield database_url


def run(options: argparse.Namespace, workdir: Path, database_url: str) -> dict[str, Any]:
    """Measure the fast world, then the realistic one (or only one of them, `--world`): the
    same three parts against the emulator as it is (about 2 ms a call), then with every org's
    latency model set to a real org's. The realistic world's keys carry the prefix
    `realistic_`."""
    worlds: dict[str, World] = {}
    if options.world in ("both", "fast"):
        worlds[""] = World(0.0, 0.0, options.responses, options.naive_responses)
    if options.world in ("both", "realistic"):
        worlds[REALISTIC] = World(
            options.latency_ms,
            options.per_record_ms,
            options.realistic_responses or options.responses,
            options.realistic_naive_responses or options.naive_responses,
        )
    measured = run_worlds(options, list(worlds.values()), workdir, database_url)
    result: dict[str, Any] = {}
    for (prefix, world), figures in zip(worlds.items(), measured, strict=True):
        if not prefix:
            result |= figures
            continue
        result |= {key: figures[key] for key in SHARED_KEYS if key not in result}
        result |= {prefix + key: value for key, value in figures.items() if key not in SHARED_KEYS}
        result[prefix + "latency_ms"] = world.latency_ms
        result[prefix + "per_record_ms"] = world.per_record_ms
    return result


def set_latency(control: httpx.Client, world: World) -> None:
    """Give every org of the emulator the world's latency model: what `cxloop emulator serve
    --latency-ms N --per-record-ms M` gives them at start (docs/emulator.md)."""
    model = {"latency_ms": world.latency_ms, "per_record_ms": world.per_record_ms}
    for org in control.get("/info").raise_for_status().json()["orgs"]:
        control.patch(f"/orgs/{org['alias']}", json=model).raise_for_status()


def run_worlds(
    options: argparse.Namespace, worlds: list[World], workdir: Path, database_url: str
) -> list[dict[str, Any]]:
    """Start the processes once; for each world in turn, set the emulator's latency model and
    run the full and the half load; stop the server and count; then the naive part of each
    world against a second emulator. Every figure and counter per world (the fast world's key
    names). `--fault`s are injected before the first world's full load."""
    sf_port, cx_port, tls_port = free_port(), free_port(), free_port()
    sf, base = f"http://127.0.0.1:{sf_port}", f"http://127.0.0.1:{cx_port}"
    env = os.environ | {
        "CXLOOP_DATA_DIR": str(workdir / "data"),
        "CXLOOP_DATABASE_URL": database_url,
        "CXLOOP_BASE_URL": base,
        "CXLOOP_SALESFORCE_EXTRA_HOSTS": json.dumps([f"127.0.0.1:{sf_port}"]),
        "CXLOOP_LOG_LEVEL": "WARNING",
        "CXLOOP_WORKER_THREADS": "2",
        "COLUMNS": "1000",  # keep Rich from wrapping the emulator's CA path
    }
    emulator_args = [PYTHON, "-m", "cxloop", "emulator", "serve", "--port", str(sf_port),
                     "--auto-login", "admin@example.com"]  # fmt: skip
    ledger = TaskRunLedger(database_url)
    results: list[dict[str, Any]] = []
    loads: list[tuple[list[str], list[str]]] = []  # per world: full-load ids, half-load ids
    with process(emulator_args, env, workdir / "emulator.log"):
        control, _info, app_settings = emulator_app(sf, base)
        env |= app_settings
        cxloop(env, "db", "upgrade")
        with process(
            [PYTHON, "-m", "cxloop", "serve", "--port", str(cx_port),
             "--processes", str(options.processes)],
            env, workdir / "serve.log",
        ) as server:  # fmt: skip
            wait_until(f"{base}/readyz", timeout=180)  # minutes on a loaded machine
            headers, survey_id = set_up(base, sf, env)
            token = control.post("/tokens", json={"username": "admin@example.com"}).json()[
                "access_token"
            ]
            for fault in options.fault:
                control.post("/faults", json=fault).raise_for_status()
            own_calls = [0]  # this script's own API calls (polls), kept out of cxloop's count

            def count_own(_request: httpx.Request) -> None:
                own_calls[0] += 1

            sf_client = httpx.Client(
                base_url=sf,
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
                event_hooks={"request": [count_own]},
            )
            landed = 0  # records in Salesforce before this world
            for world in worlds:
                set_latency(control, world)
                calls_before, own_before = api_calls(control), own_calls[0]

                # 1. full load
                first_submit = time.monotonic()
                cpu_before = cpu_seconds(server.pid)
                ids, submit_s, refused = submit_all(
                    base, headers, survey_id, world.responses, options.clients
                )
                if not ids:
                    raise BenchFailed(f"all {world.responses} responses were refused")
                landed_at = wait_for_records(
                    sf_client, ledger, landed + len(ids), options.record_timeout
                )
                server_cpu = cpu_seconds(server.pid) - cpu_before
                elapsed = landed_at - first_submit
                calls = api_calls(control) - calls_before - (own_calls[0] - own_before)
                if calls < 0:
                    raise BenchFailed(f"the API call count went wrong ({calls}): own polls")
                records_per_s = len(ids) / elapsed

                # 2. half load, for latency (from after the full load's last observation: a
                # record is in Salesforce a moment before its outcome, and its latency, are
                # recorded; counted in the half load, the full load's last batches were its p99)
                observed = landed + len(ids)
                before = wait_for_observations(base, observed, options.record_timeout)
                half_rate = records_per_s / 2
                half_count = max(1, int(half_rate * options.half_load_seconds))
                half_ids, _, half_refused = submit_all(
                    base, headers, survey_id, half_count, options.clients, rate=half_rate
                )
                landed += len(ids) + len(half_ids)
                wait_for_records(sf_client, ledger, landed, options.record_timeout)
                after = wait_for_observations(base, landed, options.record_timeout)
                loads.append((ids, half_ids))
                results.append({
                    "responses": len(ids),
                    "clients": options.clients,
                    "server_processes": options.processes,
                    "database": database_name(options),
                    "submit_seconds": round(submit_s, 2),
                    "responses_per_s": round(len(ids) / submit_s, 1),
                    "records_per_s": round(records_per_s, 1),
                    "api_calls_per_1000": round(calls * 1000 / len(ids), 2),
                    # CPU the server process (web + embedded worker) spent per response at full
                    # load: on a shared machine a steadier figure than the rates above.
                    "server_cpu_ms_per_response": round(server_cpu * 1000 / len(ids), 3),
                    "half_load_responses_per_s": round(half_rate, 1),
                    "p50_s": quantile(before, after, 0.5),
                    "p99_s": quantile(before, after, 0.99),
                    "refused": refused + half_refused,
                })  # fmt: skip
            in_salesforce = Counter(response_ids_in_salesforce(sf_client))
    # Read once the server has stopped: nothing is still being written.
    not_succeeded = ledger.not_succeeded_responses()
    for result, (ids, half_ids) in zip(results, loads, strict=True):
        accepted = set(ids + half_ids)
        result |= {
            # Responses accepted (both loads) whose record is not in Salesforce.
            "lost": len(accepted - set(in_salesforce)),
            # Records written more than once for one response: a second record with its key in
            # Salesforce, or a write the upsert results show landed on a key already written.
            "duplicates": sum(in_salesforce[key] - 1 for key in accepted if in_salesforce[key])
            + ledger.duplicate_writes("Response_ID__c", accepted),
            "task_runs_not_succeeded": len(accepted & not_succeeded),
        }
    ledger.close()
    if any(failures({name: r[name] for name in FAILURE_COUNTERS if name in r}) for r in results):
        return results  # no figure will be printed: the naive part would be time lost
    # 3. the naive integration, over HTTPS (simple-salesforce insists on https)
    tls_args = [PYTHON, "-m", "cxloop", "emulator", "serve", "--port", str(tls_port), "--tls"]
    with process(tls_args, env, workdir / "emulator-tls.log") as _tls:
        time.sleep(0.5)
        ca_file = _ca_file(workdir / "emulator-tls.log")
        wait_until(f"https://127.0.0.1:{tls_port}/__emulator__/info", verify=ca_file)
        tls_control = httpx.Client(
            base_url=f"https://127.0.0.1:{tls_port}/__emulator__", verify=ca_file, timeout=60
        )
        token = tls_control.post("/tokens", json={"username": "admin@example.com"}).json()[
            "access_token"
        ]
        for number, (world, result) in enumerate(zip(worlds, results, strict=True)):
            set_latency(tls_control, world)
            before_calls = api_calls(tls_control)
            result |= naive(
                f"https://127.0.0.1:{tls_port}",
                ca_file,
                token,
                world.naive_responses,
                options.clients,
                key_prefix=f"NAIVE{number}_",
            )
            naive_calls = api_calls(tls_control) - before_calls
            result["naive_api_calls_per_1000"] = round(
                naive_calls * 1000 / world.naive_responses, 1
            )
    return results


def _ca_file(log: Path, timeout: float = 60.0) -> str:
    """The CA file the TLS emulator says to trust, from its log. It may take a while on a busy
    machine (the emulator makes its CA at start-up); without it nothing can be verified."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"trust the CA certificate (\S+)", log.read_text(errors="replace"))
        if match:
            return match.group(1)
        time.sleep(0.1)
    raise BenchFailed(f"the TLS emulator named no CA file within {timeout} s (see {log})")


if __name__ == "__main__":
    main()
