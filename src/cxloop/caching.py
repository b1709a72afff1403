"""The one cache type: bounded, with a time to live, safe across threads.

Every cache instance belongs to the container (`bootstrap.py`) or to a component it builds, never to
a module, so two containers in one process (as in tests) never share or clobber each other.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING = object()


class TtlCache(Generic[K, V]):
    """A least-recently-used map of at most `max_entries`, each entry kept at most `ttl_s` seconds.

    `ttl_s=None` keeps entries until they are evicted by size (for values keyed by a version, which
    never go stale). `clock` is injectable so tests need not sleep.
    """

    def __init__(
        self,
        max_entries: int,
        ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("a cache holds at least one entry")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        """The live value for `key`, or `default` if absent or expired."""
        with self._lock:
            entry = self._entries.get(key, _MISSING)
            if entry is _MISSING:
                return default
            expires_at, value = entry  # type: ignore[misc]
            if expires_at < self._clock():
                del self._entries[key]
                return default
            self._entries.move_to_end(key)
            return value

    def set(self, key: K, value: V, ttl_s: float | None = None) -> None:
        """Store `value`; evicts the least recently used entry past `max_entries`."""
        ttl = self.ttl_s if ttl_s is None else ttl_s
        expires_at = float("inf") if ttl is None else self._clock() + ttl
        with self._lock:
            self._entries[key] = (expires_at, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def get_or_set(self, key: K, make: Callable[[], V]) -> V:
        """The cached value, or `make()` stored and returned (make runs outside the lock)."""
        value = self.get(key, _MISSING)  # type: ignore[arg-type]
        if value is not _MISSING:
            return value  # type: ignore[return-value]
        value = make()
        self.set(key, value)
        return value

    def pop(self, key: K) -> V | None:
        """Forget `key`; returns its value if it was there."""
        with self._lock:
            entry = self._entries.pop(key, None)
        return None if entry is None else entry[1]

    def discard_where(self, predicate: Callable[[K], bool]) -> int:
        """Forget every key `predicate` accepts; returns how many went."""
        with self._lock:
            doomed = [key for key in self._entries if predicate(key)]
            for key in doomed:
                del self._entries[key]
        return len(doomed)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return self.get(key, _MISSING) is not _MISSING  # type: ignore[arg-type]
