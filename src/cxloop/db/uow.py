"""The unit of work: one SQLAlchemy session per use case, and what to do after it commits."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from cxloop.db.engine import READ_ONLY
from cxloop.db.write_lock import sqlite_write_lock

if TYPE_CHECKING:
    from cxloop.ledger import Ledger


def core_connection(session: Session) -> Connection:
    """The connection of the session's transaction, for a Core statement that loads no objects
    (a light read, an INSERT of rows): where `session.execute` would run it, after the same
    autoflush, without the session's handling of the statement, which costs more than the
    statement itself on the hot paths (submitting a response, writing its runs)."""
    if session.autoflush:
        session.flush()
    return session.connection()


class UnitOfWork:
    """A transaction of one use case.

    `with uow:` opens a session; leaving the block without `commit()` rolls back. Callbacks
    registered with `after_commit` (typically: send ids to the queue) run only once the commit
    has succeeded, so a worker never sees an id whose row is not there yet.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        read_only: bool = False,
        write_lock: AbstractContextManager[object] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._read_only = read_only
        self._write_lock = write_lock or nullcontext()
        self._after_commit: list[Callable[[], None]] = []
        self._session: Session | None = None
        self._committed = False

    @property
    def ledger(self) -> Ledger:
        """The ledger runs are written with (the container's, through the session's info)."""
        return self.session.info["ledger"]

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("the unit of work is not open: use `with uow:`")
        return self._session

    def __enter__(self) -> UnitOfWork:
        self._write_lock.__enter__()
        try:
            self._session = self._session_factory()
        except BaseException:
            self._write_lock.__exit__(None, None, None)
            raise
        if self._read_only:
            self._session.connection(execution_options=READ_ONLY)
        self._after_commit = []
        self._committed = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._session is not None
        try:
            # close() rolls back whatever was not committed and detaches the loaded objects
            # without expiring them (rollback() would), so callers can still read what they got.
            self._session.close()
        finally:
            self._session = None
            self._write_lock.__exit__(None, None, None)
        if exc_type is None and self._committed:
            callbacks, self._after_commit = self._after_commit, []
            for callback in callbacks:
                callback()

    def commit(self) -> None:
        self.session.commit()
        self._committed = True

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` after this unit of work has committed (never if it rolls back)."""
        self._after_commit.append(callback)


class Database:
    """An engine, its session factory and the ledger; hands out units of work.

    Every session carries the ledger in its `info` (`uow.ledger`), so a service reaches the
    container's ledger through the unit of work it was given, and code holding only a session
    (or an object loaded in one) through `cxloop.ledger.ledger_of(session)`.
    """

    def __init__(self, engine: Engine, ledger: Ledger | None = None) -> None:
        if ledger is None:
            from cxloop.ledger import Ledger  # a database of its own (tools, some tests)

            ledger = Ledger()
        self.engine = engine
        self.ledger = ledger
        self.session_factory = sessionmaker(engine, expire_on_commit=False, info={"ledger": ledger})
        # SQLite has one writer at a time: writers queue on a lock that wakes the next one as
        # soon as the last commits, rather than in SQLite's polling busy handler.
        self._write_lock = (
            sqlite_write_lock(engine.url.database) if engine.dialect.name == "sqlite" else None
        )

    def uow(self) -> UnitOfWork:
        """A unit of work that may write."""
        return UnitOfWork(self.session_factory, write_lock=self._write_lock)

    def reader(self) -> UnitOfWork:
        """A unit of work that only reads (cheaper on SQLite: no write lock)."""
        return UnitOfWork(self.session_factory, read_only=True)

    def dispose(self) -> None:
        self.engine.dispose()
