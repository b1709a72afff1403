"""The queue engine: Huey on SQLite (embedded) or Redis (scaled out), chosen by URL.

Huey only delivers ids; the database rows are the truth (see ARCHITECTURE.md, "The ledger").
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey
from huey.consumer import Consumer

from cxloop.files import private_file

QUEUE_NAME = "cxloop"


# Huey's consumer backs off to polling a database queue (SQLite) every 10 s when idle, so the
# first message after a quiet spell could wait that long; a second keeps light traffic prompt.
# (A Redis queue blocks on its list and does not poll.)
IDLE_POLL_MAX_S = 1.0
# How long a graceful stop lets running work finish (a Collections call may take the
# Salesforce timeout and its recording more).
SHUTDOWN_TIMEOUT_S = 60.0


class QueueConfigError(ValueError):
    """A queue URL cxloop cannot use, with what to set instead."""


def create_huey(queue_url: str, *, name: str = QUEUE_NAME) -> Huey:
    """A Huey instance for `queue_url`: `sqlite:///path`, `redis://...` or `memory://`."""
    scheme = urlsplit(queue_url).scheme
    if scheme == "sqlite":
        path = queue_url.removeprefix("sqlite:///")
        if not path or path == ":memory:" or path == queue_url:
            raise QueueConfigError(
                "the SQLite queue needs a file: CXLOOP_QUEUE_URL=sqlite:////path/to/queue.db"
            )
        private_file(Path(path))
        return SqliteHuey(name=name, filename=path, timeout=30, utc=True)
    if scheme in ("redis", "rediss", "unix"):
        return RedisHuey(name=name, url=queue_url, utc=True)
    if scheme == "memory":
        return MemoryHuey(name=name, utc=True)
    raise QueueConfigError(
        f"unsupported queue URL scheme {scheme!r}: use sqlite:///PATH or redis://HOST:PORT/DB"
    )


def is_process_local(huey: Huey) -> bool:
    """Whether only this process can see the queue (then separate workers cannot work)."""
    return isinstance(huey, MemoryHuey)


def queue_depth(huey: Huey) -> int:
    """Messages waiting to be picked up."""
    return int(huey.pending_count())


def ping(huey: Huey) -> None:
    """Raise if the queue storage cannot be reached."""
    huey.pending_count()


class EmbeddedConsumer(Consumer):
    """A Huey consumer living inside another process (the web server): it leaves the host
    process's signal handlers alone; the host stops it."""

    def _set_signal_handlers(self) -> None:
        return None
