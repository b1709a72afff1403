"""Database engines: SQLite (WAL, busy timeout, immediate write transactions) or PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from cxloop.files import private_file

READ_ONLY = {"cxloop_read_only": True}

# A pooled PostgreSQL connection is pinged before use only after it sat idle this long: the
# server may have closed it meanwhile (a restart, an idle timeout, a failover). One that was
# in use a moment ago is alive but for a restart in that very moment, which fails the statement
# as it would have failed mid-transaction; a ping on every checkout cost the intake's group
# commit one round trip in twelve.
PING_AFTER_IDLE_S = 1.0
_RETURNED_AT = "cxloop_returned_at"


def normalize_database_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3 here; everything else is taken as given."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def create_database_engine(
    url: str,
    *,
    sqlite_busy_timeout_ms: int = 30_000,
    pool_size: int = 10,
    max_overflow: int = 20,
    random_page_cost: float = 1.1,
    ping_after_idle_s: float = PING_AFTER_IDLE_S,
) -> Engine:
    """An engine for `url`, tuned for the backend it names. `pool_size` and `max_overflow`
    size PostgreSQL's pool per process (settings `database_pool_size`, `database_max_overflow`);
    SQLite's small pool is fixed (one writer at a time anyway). `random_page_cost` is the
    planner's cost of a random page read in PostgreSQL sessions (0: the server's own); a
    PostgreSQL connection idle for `ping_after_idle_s` is pinged before it is used again."""
    url = normalize_database_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, sqlite_busy_timeout_ms)
    if backend == "postgresql":
        # hide_parameters: an error's message quotes the statement but never the values bound
        # to it (a token's hash, an encrypted secret, an answer), on either backend.
        # With the server's default random_page_cost (4, a spinning disk's) the planner reads a
        # table of 10,000-50,000 rows whole rather than look up a batch's 200 rows by id in
        # its primary key: the ledger's every statement of a batch did, ever slower as the
        # tables grew. 1.1 is what PostgreSQL's docs suggest for SSDs and cached data.
        options = f"-c random_page_cost={random_page_cost:g}" if random_page_cost > 0 else ""
        given = make_url(url).query.get("options")  # the URL's own `?options=` stay first
        if options and given:
            options = f"{given if isinstance(given, str) else ' '.join(given)} {options}"
        engine = create_engine(
            url,
            connect_args={"options": options} if options else {},
            pool_size=pool_size,
            max_overflow=max_overflow,
            hide_parameters=True,
        )
        _ping_after_idle(engine, ping_after_idle_s)
        return engine
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def _ping_after_idle(engine: Engine, idle_s: float) -> None:
    """Ping a pooled connection at checkout when it was returned more than `idle_s` ago
    (SQLAlchemy's `pool_pre_ping` pings at every checkout). A dead one is replaced: raising
    DisconnectionError makes the pool discard it and check out another."""

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_RETURNED_AT, 0.0) < idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_connection, None):
                raise sa_exc.DisconnectionError(str(exc)) from exc
            raise


def _sqlite_engine(url: str, busy_timeout_ms: int) -> Engine:
    parsed = make_url(url)
    if not parsed.database or parsed.database == ":memory:":
        raise ValueError("an in-memory SQLite database cannot be shared: give a file path")
    private_file(Path(parsed.database))
    timeout_s = busy_timeout_ms / 1000
    # A small pool of connections, each used by one thread at a time; opening a connection per
    # unit of work would cost more than the work.
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": timeout_s},
        pool_size=8,
        max_overflow=16,
        pool_timeout=max(timeout_s, 1),
        hide_parameters=True,
    )
    _use_wal(parsed.database, timeout_s)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from pysqlite so that BEGIN IMMEDIATE can be used.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A deferred transaction that reads and then writes can fail at once with SQLITE_BUSY
        # when another writer got in between; taking the write lock up front makes writers queue
        # on the busy timeout instead. Read-only units of work keep the cheaper deferred BEGIN.
        if connection.get_execution_options().get("cxloop_read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _use_wal(path: str, timeout_s: float) -> None:
    """Switch the file to WAL once (the mode is stored in the file; later opens keep it)."""
    connection = sqlite3.connect(path, timeout=timeout_s)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()
