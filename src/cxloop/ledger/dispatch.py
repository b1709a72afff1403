"""Dispatch: batch keys to the queue, a key sent moments ago not sent again."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cxloop.caching import TtlCache

COALESCE_S = 0.1  # a key sent this recently is not sent again
RECENT_KEYS = 10_000  # keys remembered as recently sent

Send = Callable[[str], object]


class Dispatcher:
    """Sends batch keys to the queue; without a queue (tools, some tests) the sweeper finds them.

    A key sent moments ago is not sent again: the message already on its way claims every row
    of that key that is ready when it runs, and a worker that has finished a batch looks again
    before it leaves. This keeps the queue at a few messages a second per key under load,
    instead of one per response. What slips through that window is found by the sweeper.
    """

    def __init__(self, send: Send | None = None, *, coalesce_s: float = COALESCE_S) -> None:
        self._send = send
        self._recently_sent: TtlCache[str, bool] = TtlCache(RECENT_KEYS, ttl_s=coalesce_s)

    def connect(self, send: Send) -> None:
        """Where keys go from now on (the container's queue, once its tasks are registered)."""
        self._send = send

    def __call__(self, batch_keys: Iterable[str]) -> None:
        keys = []
        recent = self._recently_sent
        for key in set(batch_keys):
            if recent.get(key) is None:
                recent.set(key, True)
                keys.append(key)
        if keys and self._send is not None:
            for key in sorted(keys):
                self._send(key)
