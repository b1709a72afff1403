"""The lock SQLite writers queue on, within a process and across the processes of one database.

SQLite has one writer at a time. A writer that finds the database locked waits in SQLite's busy
handler, which polls with sleeps that grow to 100 ms: under load, throughput collapses and
latency climbs. Writers queue on this lock instead, and the kernel wakes the next one the moment
the last one is done: a thread lock for the threads of a process, and an exclusive `flock` on
`<database>-writer.lock` for the processes (`cxloop serve --workers N`, `cxloop worker`, the
CLI) that share the file.
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
    """The write lock of an SQLite database file, one per file in a process (two `Database`s
    of one file share it, so that a writer nested across them passes instead of waiting on
    itself); a lock of its own for an in-memory database."""
    if database_path in (None, "", ":memory:"):
        return SqliteWriteLock(None)
    key = os.path.abspath(database_path)
    with _registry_lock:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = SqliteWriteLock(key)
        return lock


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
                fcntl.flock(self._file(), fcntl.LOCK_EX)  # releases the GIL while it waits
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
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _file(self) -> int:
        # One descriptor per process: a child must not share its parent's (a flock belongs
        # to the open file, so parent and child would hold it together).
        if self._fd is None or self._fd_pid != os.getpid():
            assert self._lock_path is not None
            self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._fd_pid = os.getpid()
        return self._fd


_locks: dict[str, SqliteWriteLock] = {}
_registry_lock = threading.Lock()
