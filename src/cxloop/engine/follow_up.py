"""What recorded outcomes set in motion: keys ready now go to the queue, retries at their time.

The Collections path (`worker`) and the Bulk path (`salesforce_bulk`) record outcomes alike and
follow them up alike, here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from cxloop.db.base import utcnow

if TYPE_CHECKING:
    from cxloop.engine.parts import EngineParts
    from cxloop.ledger.claims import Settled


def schedule(container: EngineParts, batch_key: str, at: datetime) -> None:
    """Dispatch `batch_key` again at `at` (the sweeper is the safety net if this is lost)."""
    delay = max((at - utcnow()).total_seconds(), 0.0)
    container.tasks.dispatch.schedule(args=(batch_key,), delay=delay)


def follow_up(container: EngineParts, settled: Settled) -> None:
    """Dispatch the keys the outcomes made ready; bring the retries back at the earliest and
    the latest retry of each key (`Settled.retry_messages`)."""
    container.ledger.dispatch(settled.ready_keys)
    for key, times in settled.retry_messages().items():
        for at in times:
            schedule(container, key, at)
