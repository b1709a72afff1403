"""Database engines: SQLite (WAL, busy timeout, immediate write transactions) or PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

READ_ONLY = {"cxloop_read_only": True}


def normalize_database_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3 here; everything else is taken as given."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def create_database_engine(url: str, *, sqlite_busy_timeout_ms: int = 30_000) -> Engine:
    """An engine for `url`, tuned for the backend it names."""
    url = normalize_database_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, sqlite_busy_timeout_ms)
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def _sqlite_engine(url: str, busy_timeout_ms: int) -> Engine:
    parsed = make_url(url)
    if parsed.database:
        from pathlib import Path

        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 0}}
    if not parsed.database or parsed.database == ":memory:":
        raise ValueError("an in-memory SQLite database cannot be shared: give a file path")
    # One connection per checkout: SQLite connections are cheap and this avoids cross-thread reuse.
    kwargs["poolclass"] = NullPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from pysqlite so that BEGIN IMMEDIATE can be used.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
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
