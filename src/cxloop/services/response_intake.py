"""Group commit for responses submitted one per request.

Sixteen clients posting at once would otherwise make sixteen transactions that queue on the
database's writer one after another (SQLite has exactly one), each paying its own BEGIN, COMMIT
and workflow-matching query. The intake has one writer thread that takes everything that
arrived while its last transaction ran and stores it in the next one
(`responses.submit_responses`): under load batches fill by themselves; under light load a
response goes alone and at once, since nothing waits for a batch to fill.

Each response still commits with its runs, each submission gets its own outcome, and a
refusal of one never touches the others.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any

import structlog

from cxloop.db.uow import Database
from cxloop.services.access import Actor
from cxloop.services.responses import Source, StoredRow, Submission, submit_responses

log = structlog.get_logger(__name__)

MAX_BATCH = 200
_STOP = object()


class ResponseIntake:
    """Stores submitted responses in shared transactions, from one writer thread."""

    def __init__(self, db: Database, *, max_batch: int = MAX_BATCH) -> None:
        self._db = db
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(
        self,
        actor: Actor,
        survey_id: str,
        document: Any,
        *,
        source: Source = "api",
        token_generation: int | None = None,
    ) -> Future[StoredRow]:
        """Queue one response; the future holds the stored response's row, or the error
        refusing it (`users.TokenCheckDue` when `token_generation`, the revocation generation
        the actor's token was remembered under, is not the database's: see `Submission`)."""
        future: Future[StoredRow] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the response intake is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_forever, name="cxloop-response-intake", daemon=True
                )
                self._thread.start()
            submission = Submission(actor, survey_id, document, source, token_generation)
            self._queue.put((submission, future))
        return future

    def close(self) -> None:
        """Store what is queued, then stop the writer thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()

    def _write_forever(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            stopping = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)
            if stopping:
                return

    def _write(self, batch: list[tuple[Submission, Future[StoredRow]]]) -> None:
        try:
            outcomes = submit_responses(self._db, [submission for submission, _ in batch])
        except Exception as exc:  # the thread must outlive any one batch
            log.exception("response_intake.batch_failed", size=len(batch))
            outcomes = [exc] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
