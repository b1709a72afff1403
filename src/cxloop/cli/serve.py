"""`cxloop serve`, `cxloop worker`, `cxloop scheduler`: the processes of cxloop."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from types import FrameType
from typing import Any, NoReturn

import typer
import uvicorn
from huey.consumer import Consumer

from cxloop import metrics
from cxloop.bootstrap import Container
from cxloop.cli.context import console, container, fail
from cxloop.cli.context import settings as load_settings
from cxloop.engine.queue import IDLE_POLL_MAX_S, is_process_local
from cxloop.logs import configure_logging
from cxloop.process import tune_garbage_collector
from cxloop.services import users
from cxloop.settings import default_data_dir
from cxloop.web.app import EmbeddedWorker, create_app, served_app
from cxloop.web.protocol import READ_TIMEOUT_ENV, HeaderDeadlineProtocol


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    no_worker: bool = typer.Option(
        False, "--no-worker", help="Serve HTTP only; separate `cxloop worker`s do the work."
    ),
    processes: int = typer.Option(
        1,
        "--processes",
        min=1,
        max=64,
        help="HTTP server processes on the one port (one per core). With more than one, the "
        "worker and scheduler run in this supervising process.",
    ),
) -> None:
    """Run the web server, with the worker and scheduler inside unless --no-worker."""
    tune_garbage_collector()
    derived = None
    if not load_settings(with_secrets=False).base_url_is_set:
        # The base URL follows the server: every process of this command (and its children,
        # through the environment) links to where it listens.
        derived = derived_base_url(host, port)
        os.environ["CXLOOP_BASE_URL"] = derived
    built = container(upgrade_sqlite=True, create=True)
    configure_logging(built.settings.log_level, built.settings.log_json)
    if derived:
        built.settings.note_served_base_url()
    if (no_worker or processes > 1) and is_process_local(built.huey):
        why = "--no-worker" if no_worker else "--processes above 1"
        fail(
            f"{why} needs a queue other processes can reach, but CXLOOP_QUEUE_URL is "
            "memory://: set it to sqlite:///PATH or redis://HOST:PORT/DB"
        )
    if processes > 1 and not os.environ.get(metrics.MULTIPROCESS_DIR_ENV):
        _restart_with_shared_metrics(built, port)
    if users.count_users(built.db) == 0:
        # Another terminal finds this data directory by itself only when it is the default.
        data_dir = built.settings.data_dir
        where = "" if data_dir == default_data_dir() else f" --data-dir {data_dir}"
        console.print(
            "No users yet. In another terminal create one and an API token:\n"
            f"  .venv/bin/cxloop{where} users create you@example.com --admin\n"
            f"  .venv/bin/cxloop{where} tokens create --user you@example.com",
            highlight=False,
        )
    console.print(
        f"cxloop on http://{host}:{port}  (API docs: /docs, health: /readyz; "
        f"data directory: {built.settings.data_dir})",
        highlight=False,
    )
    # Every server process gives a request's headers the same time (web/protocol.py).
    os.environ[READ_TIMEOUT_ENV] = str(built.settings.request_read_timeout_s)
    if derived:
        console.print(
            f"base URL {derived} (from --host and --port, as CXLOOP_BASE_URL is not set): "
            "links in emails and the Salesforce callback "
            f"{built.settings.oauth_callback_url} use it. Browsers on other machines, or "
            "behind a proxy, need CXLOOP_BASE_URL set to the address they reach.",
            highlight=False,
            soft_wrap=True,
        )
    # uvicorn finishes in-flight requests on SIGTERM/SIGINT, then the lifespan stops the worker.
    options = {
        "host": host,
        "port": port,
        "log_config": None,
        "timeout_graceful_shutdown": 30,
        "http": HeaderDeadlineProtocol,
    }
    options |= proxy_options(built.settings.trusted_proxies)
    if processes == 1:
        uvicorn.run(create_app(built, embedded_worker=not no_worker), **options)
        return
    # Several processes: each builds its own app (`served_app`) from the same settings; the
    # worker and scheduler run here, where they compete with no request for the GIL.
    worker = None if no_worker else EmbeddedWorker(built)
    if worker:
        worker.start()
    try:
        uvicorn.run(f"{served_app.__module__}:served_app", factory=True, workers=processes,
                    **options)  # fmt: skip
    finally:
        if worker:
            worker.stop()
        built.close()


def derived_base_url(host: str, port: int) -> str:
    """The base URL of a server listening on host:port, as this machine's browser reaches it:
    a wildcard address (0.0.0.0, ::) is not one to browse to, so 127.0.0.1 stands for it."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address in a URL
    return f"http://{host}:{port}"


def proxy_options(trusted_proxies: list[str]) -> dict[str, Any]:
    """uvicorn's X-Forwarded-For handling: only from the named proxies, and off without any
    (uvicorn's own default would believe any client on 127.0.0.1). The client address it
    yields is what throttling counts and logs show."""
    if not trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(trusted_proxies)}


def _restart_with_shared_metrics(built: Container, port: int) -> NoReturn:
    """Start this command again with a fresh metrics directory for all its processes: the
    Prometheus client reads it when first imported, which has happened here already."""
    directory = built.settings.data_dir / f"metrics-{port}"
    shutil.rmtree(directory, ignore_errors=True)  # counts of an earlier run are not ours
    directory.mkdir(mode=0o700, parents=True)
    built.close()
    os.environ[metrics.MULTIPROCESS_DIR_ENV] = str(directory)
    os.execv(sys.executable, [sys.executable, "-m", "cxloop", *sys.argv[1:]])


def worker(
    workers: int = typer.Option(2, "--workers", min=1, max=64, help="Worker threads."),
    no_periodic: bool = typer.Option(
        False, "--no-periodic", help="Do not schedule periodic jobs (run `cxloop scheduler`)."
    ),
) -> None:
    """Run a worker: executes queued work; stops gracefully on SIGTERM or SIGINT."""
    tune_garbage_collector()
    built = container()
    configure_logging(built.settings.log_level, built.settings.log_json)
    if is_process_local(built.huey):
        fail(
            "a separate worker cannot share an in-memory queue (CXLOOP_QUEUE_URL=memory://): "
            "set it to sqlite:///PATH or redis://HOST:PORT/DB"
        )
    scheduler = None if no_periodic else built.scheduler()
    if scheduler:
        scheduler.start_thread()
    consumer = Consumer(
        built.huey,
        workers=workers,
        periodic=False,
        worker_type="thread",
        graceful_signal="TERM",  # a deployment's stop (SIGTERM) lets running tasks finish
        shutdown_timeout=60,
        max_delay=IDLE_POLL_MAX_S,
    )
    try:
        consumer.run()
    finally:
        if scheduler:
            scheduler.stop()
        built.close()


def scheduler() -> None:
    """Run the periodic scheduler alone (one per deployment is enough; more are harmless)."""
    tune_garbage_collector()
    built = container()
    configure_logging(built.settings.log_level, built.settings.log_json)
    sched = built.scheduler()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        sched.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sched.run_forever()
    built.close()
