"""PostgreSQL's pooled connections: pinged before use only after they sat idle."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from cxloop.db.engine import create_database_engine
from tests.conftest import POSTGRES_ADMIN_URL


def _close_from_the_server(engine: Engine) -> None:
    """Close, from the server's side, the one connection `engine`'s pool holds (as a restart or
    an idle timeout would), leaving every other connection to the database alone."""
    with engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            for _ in range(100):  # the backend is gone when the server no longer lists it
                alive = connection.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                ).scalar_one()
                if not alive:
                    return
                time.sleep(0.02)
    finally:
        admin.dispose()


def test_a_connection_closed_by_the_server_while_idle_is_replaced_before_use(
    postgres_session_url: str,
) -> None:
    engine = create_database_engine(postgres_session_url, pool_size=1, ping_after_idle_s=0.05)
    try:
        _close_from_the_server(engine)
        time.sleep(0.1)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(postgres_session_url: str) -> None:
    """No round trip before a busy connection's every use: a server that closed it in that very
    moment fails the statement (as it would mid-transaction), and the pool starts afresh."""
    engine = create_database_engine(postgres_session_url, pool_size=1, ping_after_idle_s=60)
    try:
        _close_from_the_server(engine)
        with pytest.raises(OperationalError), engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()
