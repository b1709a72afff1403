"""Throttling: failed logins and API token checks, and public survey submissions.

Counters live in the database (`throttle_counters`), so every server process, and every host
on a shared PostgreSQL, sees the same counts. Only failures are counted for logins and tokens:
a valid token costs nothing here, and a valid login only clears its account's counter.

Failures per key (an account, a client address): the first `auth_free_failures` cost nothing;
each further one makes the next attempt wait `auth_backoff_base_s`, doubling each time; at the
lockout threshold the key is locked for `auth_lockout_s` (an audit entry and a metric say so).
While a key waits or is locked, every attempt is refused (TooManyAttempts: when to retry), the
right password included, without being checked.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from cxloop import metrics
from cxloop.db.base import utcnow
from cxloop.db.models import ThrottleCounter
from cxloop.db.uow import Database
from cxloop.domain.emails import comparable_email
from cxloop.errors import TooManyAttempts
from cxloop.services import audit
from cxloop.settings import Settings

log = structlog.get_logger(__name__)

SUBMISSION_WINDOW_S = 60


@dataclass(frozen=True)
class Subject:
    """What failures are counted against: an account (an email) or a client address."""

    kind: str  # "login_account", "login_address", "token_address"
    value: str
    lockout_after: int

    @property
    def key(self) -> str:
        # Hashed: emails can be longer than the key column, and the table need not name them.
        return f"{self.kind}:{hashlib.sha256(self.value.encode()).hexdigest()}"


def client_address(scope_client: tuple[str, int] | None) -> str:
    """The client address of an ASGI request (behind a proxy, the server's own
    `--forwarded-allow-ips` handling puts the real client there)."""
    return scope_client[0] if scope_client else "unknown"


class Throttle:
    """The limits of one deployment (from settings) over its database."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    # --- subjects

    def login_subjects(self, email: str, address: str) -> list[Subject]:
        s = self._settings
        return [
            Subject("login_account", comparable_email(email), s.auth_lockout_failures_per_account),
            Subject("login_address", address, s.auth_lockout_failures_per_address),
        ]

    def token_subjects(self, address: str) -> list[Subject]:
        # Per address only: a wrong token names no account (and tokens carry 256 random bits:
        # what is throttled here is someone trying many, from one place).
        return [Subject("token_address", address, self._settings.auth_lockout_failures_per_address)]

    # --- failures

    def check(self, subjects: Sequence[Subject]) -> None:
        """TooManyAttempts if any subject must still wait; reads only."""
        now = utcnow()
        with self._db.reader() as uow:
            until = uow.session.scalar(
                select(func.max(ThrottleCounter.blocked_until)).where(
                    ThrottleCounter.key.in_([s.key for s in subjects]),
                    ThrottleCounter.blocked_until > now,
                )
            )
        if until is not None:
            kind = subjects[0].kind.split("_")[0]
            metrics.THROTTLED.labels(kind).inc()
            wait = _seconds_until(until, now)
            raise TooManyAttempts(
                f"Too many failed attempts for this account or from this address: try again in "
                f"{_in_words(wait)}.",
                retry_after_s=wait,
            )

    def failed(self, subjects: Sequence[Subject], *, actor_id: str | None = None) -> None:
        """Count one failure against each subject; back off or lock out as the counts say."""
        for attempt in range(3):
            try:
                locked = self._count_failure(subjects, actor_id)
                break
            except IntegrityError:  # two processes created the same counter at once
                if attempt == 2:
                    raise
        for subject in locked:
            metrics.AUTH_LOCKOUTS.labels(subject.kind).inc()
            log.warning("auth.lockout", kind=subject.kind, seconds=self._settings.auth_lockout_s)

    def succeeded(self, subjects: Sequence[Subject]) -> None:
        """Forget the failures of these subjects (an account after its right password)."""
        with self._db.uow() as uow:
            uow.session.execute(
                delete(ThrottleCounter).where(ThrottleCounter.key.in_([s.key for s in subjects]))
            )
            uow.commit()

    def _count_failure(self, subjects: Sequence[Subject], actor_id: str | None) -> list[Subject]:
        s = self._settings
        now = utcnow()
        window = timedelta(seconds=s.auth_failure_window_s)
        locked: list[Subject] = []
        with self._db.uow() as uow:
            for subject in subjects:
                counter = uow.session.scalar(
                    select(ThrottleCounter)
                    .where(ThrottleCounter.key == subject.key)
                    .with_for_update()
                )
                if counter is None:
                    counter = ThrottleCounter(key=subject.key, hits=0, window_started_at=now)
                    uow.session.add(counter)
                elif now - counter.window_started_at > window:
                    counter.hits, counter.window_started_at = 0, now
                counter.hits += 1
                counter.updated_at = now
                wait = self._wait_after(counter.hits, subject.lockout_after)
                counter.blocked_until = now + timedelta(seconds=wait) if wait else None
                if counter.hits >= subject.lockout_after:
                    # Every failure past the threshold comes after a lockout ended: a new one.
                    locked.append(subject)
                    audit.record(
                        uow.session, actor_id, "auth.lockout",
                        "user" if subject.kind == "login_account" else "client_address",
                        subject.value[:64],
                        kind=subject.kind, failures=counter.hits, seconds=s.auth_lockout_s,
                    )  # fmt: skip
                uow.session.flush()
            uow.commit()
        return locked

    def _wait_after(self, hits: int, lockout_after: int) -> float:
        s = self._settings
        if hits >= lockout_after:
            return float(s.auth_lockout_s)
        if hits < s.auth_free_failures:
            return 0.0
        return min(s.auth_backoff_base_s * 2 ** (hits - s.auth_free_failures), s.auth_lockout_s)

    # --- public submissions

    def submission(self, survey_id: str, address: str) -> None:
        """Count one public submission; TooManyAttempts past the per-address or per-survey limit
        of the current minute."""
        s = self._settings
        limits = [
            (f"submit_address:{hashlib.sha256(address.encode()).hexdigest()}",
             s.submissions_per_address_per_minute),
            (f"submit_survey:{survey_id}", s.submissions_per_survey_per_minute),
        ]  # fmt: skip
        limits = [(key, limit) for key, limit in limits if limit > 0]
        if not limits:
            return
        for attempt in range(3):
            try:
                wait = self._count_submission(limits)
                break
            except IntegrityError:
                if attempt == 2:
                    raise
        if wait:
            metrics.THROTTLED.labels("submission").inc()
            raise TooManyAttempts(
                f"Too many submissions right now: please try again in {_in_words(wait)}.",
                retry_after_s=wait,
                code="too_many_submissions",
            )

    def _count_submission(self, limits: list[tuple[str, int]]) -> int:
        now = utcnow()
        window = timedelta(seconds=SUBMISSION_WINDOW_S)
        wait = 0
        with self._db.uow() as uow:
            for key, limit in limits:
                counter = uow.session.scalar(
                    select(ThrottleCounter).where(ThrottleCounter.key == key).with_for_update()
                )
                if counter is None:
                    counter = ThrottleCounter(key=key, hits=0, window_started_at=now)
                    uow.session.add(counter)
                elif now - counter.window_started_at >= window:
                    counter.hits, counter.window_started_at = 0, now
                counter.hits += 1
                counter.updated_at = now
                if counter.hits > limit:
                    wait = max(wait, _seconds_until(counter.window_started_at + window, now))
                uow.session.flush()
            uow.commit()
        return wait

    # --- upkeep

    def forget_old(self) -> int:
        """Delete counters nobody has touched for a window and that block nothing any more."""
        horizon = utcnow() - timedelta(
            seconds=max(self._settings.auth_failure_window_s, SUBMISSION_WINDOW_S)
        )
        with self._db.uow() as uow:
            deleted = uow.session.execute(
                delete(ThrottleCounter).where(
                    ThrottleCounter.updated_at < horizon,
                    (ThrottleCounter.blocked_until.is_(None))
                    | (ThrottleCounter.blocked_until < utcnow()),
                )
            ).rowcount
            uow.commit()
        return int(deleted or 0)


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"
