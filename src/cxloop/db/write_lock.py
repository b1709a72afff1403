"""The lock SQLite writers queue on, within a process and across the processes of one database.

SQLite has one writer at a time. A writer that finds the database locked waits in SQLite's busy
handler, which polls with sleeps that grow to 100 ms: under load, throughput collapses and
latency climbs. Writers queue on this lock instead, and the kernel wakes the next one the moment
the last one is done: a thread lock for the threads of a process, and an exclusive POSIX record
lock (`lockf`) on `<database>-writer.lock` for the processes (`cxloop serve --processes N`,
`cxloop worker`, the CLI) that share the file.

Each `Database` has a lock of its own (the container builds one Database). A POSIX record lock
belongs to the process, not to an open file: a second lock of the same file in the same process
(two containers in one process, as in tests) never waits on the first, so a writer nested across
them passes. Between two such locks SQLite's own busy handler is the queue, as without this lock;
SQLite alone guarantees the single writer, this lock only makes the waiting fast.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # not POSIX: the thread lock alone; other processes wait in SQLite
    fcntl = None  # type: ignore[assignment]


def sqlite_write_lock(database_path: str | None) -> SqliteWriteLock:
    """A write lock of an SQLite database file (exclusive across processes); one without a file
    for an in-memory database."""
    if database_path in (None, "", ":memory:"):
        return SqliteWriteLock(None)
    return SqliteWriteLock(os.path.abspath(database_path))


class SqliteWriteLock:
    """Re-entrant within a thread (a nested writer passes); exclusive across processes."""

    def __init__(self, database_path: str | None) -> None:
        self._thread_lock = threading.RLock()
        self._depth = 0
        usable = fcntl is not None and database_path is not None
        self._lock_path = Path(f"{database_path}-writer.lock") if usable else None
        self._fd: int | None = None
        self._fd_pid = 0

    def __enter__(self) -> SqliteWriteLock:
        self._thread_lock.acquire()
        try:
            self._depth += 1
            if self._depth == 1 and self._lock_path is not None:
                fcntl.lockf(self._file(), fcntl.LOCK_EX)  # releases the GIL while it waits
        except BaseException:
            self._depth -= 1
            self._thread_lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fcntl.lockf(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _file(self) -> int:
        # One descriptor per process: a child inherits its parent's descriptor but not its
        # record lock, and opens its own.
        if self._fd is None or self._fd_pid != os.getpid():
            assert self._lock_path is not None
            self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._fd_pid = os.getpid()
        return self._fd
