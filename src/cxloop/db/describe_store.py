"""The describes every process shares (`salesforce_describes`): the second level of each
process's `DescribeCache`.

Each process used to ask Salesforce for an object's describe once: a web process checking a
workflow at save, then every worker process before its first batch (a call of the org's
allocation each; in the cluster bench, one call in 17 for 3,000 responses). Now the first
process to ask keeps it here, and the others read it for as long as the cache's time to live.
A database that cannot be read or written is a cache miss, never an error: the describe is
then asked of Salesforce as before.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from cxloop.db.base import utcnow
from cxloop.db.batching_models import SalesforceDescribe
from cxloop.db.uow import Database

log = structlog.get_logger(__name__)

_describes = SalesforceDescribe.__table__.c


class DatabaseDescribeStore:
    """Describes kept in the database, by (connection key, sObject in lower case)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def load(self, key: tuple[str, str], max_age_s: float) -> tuple[float, dict[str, Any]] | None:
        """(age in seconds, describe) if a process kept one younger than `max_age_s`."""
        try:
            with self._db.reader() as uow:
                row = uow.session.execute(
                    select(_describes.fetched_at, _describes.describe).where(
                        _describes.connection_key == key[0], _describes.sobject == key[1]
                    )
                ).one_or_none()
        except SQLAlchemyError:
            log.warning("describe_store.unreadable", exc_info=True)
            return None
        if row is None or not isinstance(row.describe, dict):
            return None
        age = (utcnow() - row.fetched_at).total_seconds()
        return (max(age, 0.0), row.describe) if age < max_age_s else None

    def save(self, key: tuple[str, str], describe: dict[str, Any]) -> None:
        """Keep `describe` for every process (replacing what was kept)."""
        try:
            with self._db.uow() as uow:
                uow.session.execute(
                    delete(SalesforceDescribe.__table__).where(
                        _describes.connection_key == key[0], _describes.sobject == key[1]
                    )
                )
                uow.session.add(
                    SalesforceDescribe(
                        connection_key=key[0],
                        sobject=key[1],
                        fetched_at=utcnow(),
                        describe=describe,
                    )
                )
                uow.commit()
        except IntegrityError:
            pass  # another process kept the same describe at this moment
        except SQLAlchemyError:
            log.warning("describe_store.unwritable", exc_info=True)

    def forget(self, connection_key: str, sobject: str | None = None) -> None:
        """Drop one sObject's describe (any case), or all of a connection's."""
        condition = _describes.connection_key == connection_key
        if sobject is not None:
            condition = condition & (_describes.sobject == sobject.lower())
        try:
            with self._db.uow() as uow:
                uow.session.execute(delete(SalesforceDescribe.__table__).where(condition))
                uow.commit()
        except SQLAlchemyError:
            log.warning("describe_store.unwritable", exc_info=True)
