"""`cxloop serve`, `cxloop worker`, `cxloop scheduler`: the processes of cxloop."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from types import FrameType
from typing import Any, NoReturn

import typer
from huey.consumer import Consumer

from cxloop import metrics
from cxloop.bootstrap import Container
from cxloop.cli.context import console, container, fail
from cxloop.cli.context import settings as load_settings
from cxloop.engine.leases import LeaseKeeper
from cxloop.engine.queue import IDLE_POLL_MAX_S, SHUTDOWN_TIMEOUT_S, is_process_local
from cxloop.logs import configure_logging
from cxloop.process import limit_malloc_arenas, tune_garbage_collector
from cxloop.services import keys, users
from cxloop.services.heartbeats import Heartbeat
from cxloop.settings import ENCRYPTION_KEYS_FILE, default_data_dir
from cxloop.web.probe_server import ProbeServer


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
    # The web app is imported by the command that serves it: the other commands (a worker,
    # the scheduler, every short command) start without FastAPI and uvicorn.
    import uvicorn

    from cxloop.web.app import EmbeddedWorker, create_app, served_app
    from cxloop.web.protocol import READ_TIMEOUT_ENV, HeaderDeadlineProtocol

    tune_garbage_collector()
    limit_malloc_arenas()
    derived = None
    if not load_settings(with_secrets=False).base_url_is_set:
        # The base URL follows the server: every process of this command (and its children,
        # through the environment) links to where it listens.
        derived = derived_base_url(host, port)
        os.environ["CXLOOP_BASE_URL"] = derived
    built = container(upgrade_sqlite=True, create=True)
    configure_logging(built.settings.log_level, built.settings.log_json)
    refuse_unless_keys_fit(built)
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


def refuse_generated_keys_in_cluster(command: str) -> None:
    """A worker or scheduler of a cluster (PostgreSQL, or a Redis queue) must share the web
    processes' keys: it never generates a key file of its own, which could decrypt nothing."""
    current = load_settings(with_secrets=False)
    clustered = not current.is_sqlite or current.effective_queue_url.startswith("redis")
    keys_file = current.data_dir / ENCRYPTION_KEYS_FILE
    if clustered and current.encryption_keys is None and not keys_file.is_file():
        fail(
            f"`cxloop {command}` shares a database with other processes but has no encryption "
            "keys: set CXLOOP_ENCRYPTION_KEYS to the keys every other process uses"
        )


def refuse_unless_keys_fit(built: Container) -> None:
    """Stop with a one-line reason unless this process's keys decrypt the database's secrets."""
    try:
        keys.check_keys(built.db, built.secret_box)
    except keys.KeysDoNotMatch as exc:
        built.close()
        fail(exc.message)


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


HealthPortOption = typer.Option(
    None,
    "--health-port",
    min=0,
    max=65535,
    help="Serve /livez, /readyz and /metrics on this port (0: not at all). Default: "
    "CXLOOP_HEALTH_PORT.",
)


def worker(
    workers: int = typer.Option(2, "--workers", min=1, max=64, help="Worker threads."),
    no_periodic: bool = typer.Option(
        False, "--no-periodic", help="Do not schedule periodic jobs (run `cxloop scheduler`)."
    ),
    health_port: int | None = HealthPortOption,
) -> None:
    """Run a worker: executes queued work; stops gracefully on SIGTERM or SIGINT."""
    built = start_process("worker")
    if is_process_local(built.huey):
        fail(
            "a separate worker cannot share an in-memory queue (CXLOOP_QUEUE_URL=memory://): "
            "set it to sqlite:///PATH or redis://HOST:PORT/DB"
        )
    scheduler = None if no_periodic else built.scheduler()
    probes = start_probes(built, health_port)
    beats = start_heartbeats(built, ["worker"] if no_periodic else ["worker", "scheduler"])
    if scheduler:
        scheduler.start_thread()
    leases = LeaseKeeper(
        built.db,
        lease_s=built.settings.lease_s,
        period_s=built.settings.effective_lease_heartbeat_s,
    )
    consumer = Consumer(
        built.huey,
        workers=workers,
        periodic=False,
        worker_type="thread",
        graceful_signal="TERM",  # a deployment's stop (SIGTERM) lets running tasks finish
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        max_delay=IDLE_POLL_MAX_S,
    )
    leases.start()
    try:
        consumer.run()
    finally:
        # Batches a driver left in flight finish too, with their leases kept to the end.
        built.engine_state.pacing.wait_for_senders(SHUTDOWN_TIMEOUT_S)
        leases.stop()  # after the consumer's graceful stop: finishing calls kept their leases
        if scheduler:
            scheduler.stop()
        stop_all(beats, probes)
        built.close()


def scheduler(health_port: int | None = HealthPortOption) -> None:
    """Run the periodic scheduler alone (one per deployment is enough; more are harmless)."""
    built = start_process("scheduler")
    sched = built.scheduler()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        sched.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    probes = start_probes(built, health_port)
    beats = start_heartbeats(built, ["scheduler"])
    try:
        sched.run_forever()
    finally:
        stop_all(beats, probes)
        built.close()


def start_process(role: str) -> Container:
    """The container of a separate worker or scheduler process, once its keys may be used."""
    refuse_generated_keys_in_cluster(role)
    tune_garbage_collector()
    limit_malloc_arenas()
    built = container()
    configure_logging(built.settings.log_level, built.settings.log_json)
    refuse_unless_keys_fit(built)
    return built


def start_heartbeats(built: Container, roles: list[str]) -> list[Heartbeat]:
    """Start noting this process's heartbeat in each role (`/readyz` of the web reads them)."""
    beats = [Heartbeat(built.db, role, built.settings.process_heartbeat_s) for role in roles]
    for beat in beats:
        beat.start()
    return beats


def start_probes(built: Container, port: int | None) -> ProbeServer | None:
    """The probe server on `port` (else CXLOOP_HEALTH_PORT), or None when that is 0."""
    port = built.settings.health_port if port is None else port
    if not port:
        return None
    try:
        probes = ProbeServer(built, port)
    except OSError as exc:
        built.close()
        fail(f"cannot serve /livez, /readyz and /metrics on port {port}: {exc.strerror}")
    probes.start()
    return probes


def stop_all(beats: list[Heartbeat], probes: ProbeServer | None) -> None:
    for beat in beats:
        beat.stop()
    if probes:
        probes.stop()
