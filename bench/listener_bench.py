"""Ack latency of the outbound-message listener under load, for messages of 100 notifications.

Starts the Salesforce emulator and `cxloop serve` (SQLite, embedded worker unless --no-worker)
as separate processes, links a connection, creates a survey whose workflow starts on Case
outbound messages and upserts one Survey_Response__c per record (so the worker has real work
meanwhile), then has N concurrent clients POST `messages` distinct outbound messages of 100
notifications each to the workflow's URL, as Salesforce would. Each POST's round trip is timed
on the client. Every message must be acknowledged and every notification must start one run.

It prints one JSON object. Run:
`.venv/bin/python bench/listener_bench.py --messages 300 --clients 4`.

Only acknowledged messages are timed and counted in `acks_per_s`. A message refused (a fault, or
an answer without `<Ack>true</Ack>`) or lost (no answer), or runs and inbox rows other than one per
notification, void the figures: it then prints only the counters and `failed`, and exits with
status 1. `--smoke` runs it at a tiny size (seconds) to check that it works.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import PYTHON, cxloop, emulator_app, free_port, process, scratch_database, wait_until
from outcome import finish
from workflow_bench import linked_survey, quantile

NOTIFICATIONS = 100


def set_up(base: str, sf: str, env: dict[str, str]) -> str:
    """An admin, a linked connection, a survey with an outbound workflow; returns its URL."""
    api, survey = linked_survey(base, sf, env, "Bench CSAT")
    workflow = {
        "name": "Closed cases",
        "event": {
            "type": "salesforce_outbound_message",
            "connection": "Emulator",
            "object": "Case",
        },
        "conditions": {
            "join": "and",
            "conditions": [
                {"field": "event://Field/Status", "operator": "equals", "value": "Closed"}
            ],
        },
        "tasks": [
            {
                "id": "response",
                "type": "salesforce",
                "connection": "Emulator",
                "object": "Survey_Response__c",
                "action": "upsert",
                "key_field": "Response_ID__c",
                "mappings": [
                    {"field": "Response_ID__c", "value": "${event://Field/Id}"},
                    {"field": "Comment__c", "value": "${event://Field/Subject}"},
                ],
            }
        ],
    }
    created = api.post(f"/api/v1/surveys/{survey['id']}/workflows", json=workflow)
    workflow_id = created.raise_for_status().json()["id"]
    endpoint = api.get(f"/api/v1/surveys/{survey['id']}/workflows/{workflow_id}/outbound")
    return endpoint.raise_for_status().json()["url"]


def message(org_id: str, number: int) -> bytes:
    """An outbound message of 100 Case notifications, laid out as Salesforce's."""
    items = []
    for n in range(NOTIFICATIONS):
        serial = number * NOTIFICATIONS + n
        items.append(
            "   <Notification>\n"
            f"    <Id>04l5g{serial:013d}</Id>\n"
            '    <sObject xsi:type="sf:Case" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">\n'
            f"     <sf:Id>5005g{serial:013d}</sf:Id>\n"
            f"     <sf:CaseNumber>{serial:08d}</sf:CaseNumber>\n"
            "     <sf:Status>Closed</sf:Status>\n"
            f"     <sf:Subject>Printer number {serial} on fire</sf:Subject>\n"
            f"     <sf:SuppliedEmail>customer{serial}@example.com</sf:SuppliedEmail>\n"
            "    </sObject>\n"
            "   </Notification>\n"
        )
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n <soapenv:Body>\n'
        '  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">\n'
        f"   <OrganizationId>{org_id}</OrganizationId>\n"
        "   <ActionId>04k5g0000000001AAA</ActionId>\n"
        '   <SessionId xsi:nil="true"/>\n'
        "   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/62.0</EnterpriseUrl>\n"
        "   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/62.0</PartnerUrl>\n"
        + "".join(items)
        + "  </notifications>\n </soapenv:Body>\n</soapenv:Envelope>\n"
    ).encode()


@dataclass
class Sent:
    """What the clients saw: the round trip of each acknowledged message, and the others."""

    latencies: list[float] = field(default_factory=list)  # acknowledged messages only
    seconds: float = 0.0
    refused: int = 0  # answered, but not HTTP 200 with <Ack>true</Ack>
    lost: int = 0  # no answer at all (connection refused, reset, timeout)

    @property
    def acked(self) -> int:
        return len(self.latencies)


def send_all(url: str, bodies: list[bytes], clients: int, timeout: float = 60) -> Sent:
    """POST every body from `clients` threads, as Salesforce would."""
    sent = Sent()
    lock = threading.Lock()
    queue = list(enumerate(bodies))

    def client_loop(_index: int) -> None:
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
        with httpx.Client(timeout=timeout) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    _, body = queue.pop()
                started = time.perf_counter()
                try:
                    reply = http.post(url, content=body, headers=headers)
                except httpx.HTTPError:
                    with lock:
                        sent.lost += 1
                    continue
                took = time.perf_counter() - started
                with lock:
                    if reply.status_code == 200 and b"<Ack>true</Ack>" in reply.content:
                        sent.latencies.append(took)
                    else:
                        sent.refused += 1

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    sent.seconds = time.monotonic() - started
    return sent


def ack_buckets(base: str) -> dict[float, int]:
    """cxloop's own histogram of the listener's time per message (body read to answer)."""
    buckets: dict[float, int] = {}
    for match in re.finditer(
        r'cxloop_outbound_ack_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)',
        httpx.get(f"{base}/metrics").text,
    ):
        le = float("inf") if match.group(1) == "+Inf" else float(match.group(1))
        buckets[le] = int(float(match.group(2)))
    return buckets


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=10, help="Messages sent first, not timed.")
    parser.add_argument(
        "--no-worker", action="store_true", help="Serve without the embedded worker."
    )
    parser.add_argument(
        "--separate-worker",
        action="store_true",
        help="Serve without the embedded worker and run `cxloop worker` as its own process.",
    )
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        help="Use a fresh PostgreSQL database made through this server URL "
        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) instead of SQLite.",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    parser.add_argument("--smoke", action="store_true",
                        help="A tiny run (seconds) that checks the bench works.")  # fmt: skip
    options = parser.parse_args()
    if options.smoke:
        options.messages, options.warmup, options.clients = 4, 1, 2
    with fresh_database(options.postgres) as database_url:
        run(options, database_url)


@contextmanager
def fresh_database(admin_url: str | None) -> Iterator[str | None]:
    """None (SQLite in the data directory), or a new PostgreSQL database dropped afterwards."""
    if admin_url is None:
        yield None
        return
    with scratch_database(admin_url, f"cxloop_bench_{os.getpid()}") as url:
        yield url


def run(options: argparse.Namespace, database_url: str | None) -> None:
    """Start the processes, send the messages, print the figures."""

    workdir = Path(tempfile.mkdtemp(prefix="cxloop-listener-bench-"))
    sf_port, cx_port = free_port(), free_port()
    sf, base = f"http://127.0.0.1:{sf_port}", f"http://127.0.0.1:{cx_port}"
    env = os.environ | {
        "CXLOOP_DATA_DIR": str(workdir / "data"),
        "CXLOOP_BASE_URL": base,
        "CXLOOP_SALESFORCE_EXTRA_HOSTS": json.dumps([f"127.0.0.1:{sf_port}"]),
        "CXLOOP_LOG_LEVEL": "WARNING",
        "CXLOOP_WORKER_THREADS": "2",
        "COLUMNS": "1000",
    }
    if database_url:
        env["CXLOOP_DATABASE_URL"] = database_url
    emulator_args = [PYTHON, "-m", "cxloop", "emulator", "serve", "--port", str(sf_port),
                     "--auto-login", "admin@example.com"]  # fmt: skip
    serve_args = [PYTHON, "-m", "cxloop", "serve", "--port", str(cx_port)]
    if options.no_worker or options.separate_worker:
        serve_args.append("--no-worker")
    with process(emulator_args, env, workdir / "emulator.log"):
        _control, info, app_settings = emulator_app(sf, base)
        org_id = next(o["id"] for o in info["orgs"] if o["alias"] == "acme")
        env |= app_settings
        cxloop(env, "db", "upgrade")
        with ExitStack() as processes:
            processes.enter_context(process(serve_args, env, workdir / "serve.log"))
            if options.separate_worker:
                worker_args = [PYTHON, "-m", "cxloop", "worker"]
                processes.enter_context(process(worker_args, env, workdir / "worker.log"))
            wait_until(f"{base}/readyz")
            url = set_up(base, sf, env)
            total = options.warmup + options.messages
            bodies = [message(org_id, n) for n in range(total)]
            warmup = send_all(url, bodies[: options.warmup], options.clients)
            before = ack_buckets(base)
            timed = send_all(url, bodies[options.warmup :], options.clients)
            after = ack_buckets(base)
            replay = send_all(url, bodies[:20], options.clients)
    database = create_engine(database_url or f"sqlite:///{workdir / 'data' / 'cxloop.db'}")
    with database.connect() as connection:
        runs = connection.execute(
            text("SELECT COUNT(*) FROM runs WHERE event_type = 'salesforce_outbound_message'")
        ).scalar_one()
        inbox = connection.execute(text("SELECT COUNT(*) FROM outbound_notifications")).scalar_one()
    database.dispose()
    expected = total * NOTIFICATIONS
    counters = {
        "refused": warmup.refused + timed.refused + replay.refused,
        "lost": warmup.lost + timed.lost + replay.lost,
        "runs_off_by": runs - expected,  # runs minus notifications: 0 when each started one
        "inbox_off_by": inbox - expected,
    }
    latencies = timed.latencies
    result: dict[str, Any] = {
        "messages": options.messages,
        "notifications": options.messages * NOTIFICATIONS,
        "clients": options.clients,
        "database": "postgresql" if database_url else "sqlite",
        "worker": "separate"
        if options.separate_worker
        else ("none" if options.no_worker else "embedded"),
        "cpus": os.cpu_count(),
        "p50_ms": _ms(percentile(latencies, 0.5)),
        "p99_ms": _ms(percentile(latencies, 0.99)),
        "max_ms": _ms(max(latencies, default=None)),
        "mean_ms": _ms(statistics.fmean(latencies) if latencies else None),
        # Acknowledged messages only, over the time all the timed messages took.
        "acks_per_s": round(timed.acked / timed.seconds, 1),
        "notifications_per_s": round(timed.acked * NOTIFICATIONS / timed.seconds, 1),
        "server_p50_ms": _ms(quantile(before, after, 0.5)),
        "server_p99_ms": _ms(quantile(before, after, 0.99)),
        "replay_p50_ms": _ms(percentile(replay.latencies, 0.5)),
        "runs": runs,
        "inbox": inbox,
        "runs_as_expected": runs == inbox == expected,
        **counters,
    }
    if not options.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    keep = ("messages", "notifications", "clients", "database", "worker", "runs", "inbox",
            "runs_as_expected")  # fmt: skip
    finish(result, counters, keep=keep)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


if __name__ == "__main__":
    main()
