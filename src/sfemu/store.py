"""Records in memory with indexes, persisted to SQLite.

Every read is served from memory (dicts keyed by 18-character Id, value indexes on unique and
external id fields), so a Collections call costs microseconds per record. Writes go to SQLite
once per request, in one transaction (see Transaction.commit in dml.py), so a file database
survives a restart. The stdlib sqlite3 module is used on purpose: four fixed tables, batched
executemany, no migrations; an ORM would only add per-row cost.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from .schema import FieldDef, SObjectDef

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    sobject TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbound (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL, data TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;
"""


def index_key(fdef: FieldDef, value: Any) -> Any:
    """The value under which a record is indexed: text compares case-insensitively by default."""
    if isinstance(value, str) and not fdef.case_sensitive:
        return value.lower()
    return value


class Table:
    """The records of one sObject type in one org, with value indexes."""

    __slots__ = ("indexes", "rows", "sobject")

    def __init__(self, sobject: SObjectDef) -> None:
        self.sobject = sobject
        self.rows: dict[str, dict[str, Any]] = {}
        # field name -> index key -> ids of live (not deleted) records holding that value
        self.indexes: dict[str, dict[Any, set[str]]] = {f.name: {} for f in sobject.indexed_fields}

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, record_id: str) -> dict[str, Any] | None:
        """The record (deleted or not) with this 18-character Id."""
        return self.rows.get(record_id)

    def put(self, record: dict[str, Any]) -> None:
        """Insert or replace a record, keeping the indexes right."""
        record_id = record["Id"]
        old = self.rows.get(record_id)
        if old is not None:
            self._unindex(old)
        self.rows[record_id] = record
        self._index(record)

    def remove(self, record_id: str) -> None:
        """Forget a record entirely (rollback of an insert)."""
        old = self.rows.pop(record_id, None)
        if old is not None:
            self._unindex(old)

    def find(self, fdef: FieldDef, value: Any) -> list[str]:
        """Ids of live records whose indexed field holds this value."""
        index = self.indexes.get(fdef.name)
        if index is None:
            return [
                rid
                for rid, rec in self.rows.items()
                if not rec.get("IsDeleted")
                and index_key(fdef, rec.get(fdef.name)) == index_key(fdef, value)
            ]
        return sorted(index.get(index_key(fdef, value), ()))

    def live(self) -> Iterator[dict[str, Any]]:
        """The records that are not deleted, oldest first."""
        return (rec for rec in self.rows.values() if not rec.get("IsDeleted"))

    def all(self) -> Iterator[dict[str, Any]]:
        """Every record, deleted ones included (queryAll)."""
        return iter(self.rows.values())

    def clear(self) -> None:
        """Drop every record."""
        self.rows.clear()
        for index in self.indexes.values():
            index.clear()

    def _index(self, record: dict[str, Any]) -> None:
        for key, index in self._index_entries(record):
            index.setdefault(key, set()).add(record["Id"])

    def _unindex(self, record: dict[str, Any]) -> None:
        for key, index in self._index_entries(record):
            ids = index.get(key)
            if ids is not None:
                ids.discard(record["Id"])
                if not ids:
                    del index[key]

    def _index_entries(self, record: dict[str, Any]) -> Iterator[tuple[Any, dict[Any, set[str]]]]:
        """Each index that holds `record` (a deleted record is in none) with its key there."""
        if record.get("IsDeleted"):
            return
        for name, index in self.indexes.items():
            value = record.get(name)
            if value is not None:
                yield index_key(self.sobject.fields[name], value), index


class Database:
    """The SQLite side: records, tokens, outbound notifications and runtime state as JSON."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._lock = threading.Lock()
        # One connection shared by the server's threads; every use is under self._lock.
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)

    @property
    def is_memory(self) -> bool:
        """Whether nothing outlives the process."""
        return self.path == ":memory:"

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.conn.close()

    def write_records(self, rows: Iterable[tuple[str, str, str, dict[str, Any]]]) -> None:
        """Upsert (org_id, id, sobject, record) rows in one transaction."""
        payload = [
            (org_id, rid, sobject, json.dumps(record, separators=(",", ":")))
            for org_id, rid, sobject, record in rows
        ]
        if not payload:
            return
        with self._lock:
            self.conn.execute("BEGIN")
            self.conn.executemany(
                "INSERT OR REPLACE INTO records (org_id, id, sobject, data) VALUES (?, ?, ?, ?)",
                payload,
            )
            self.conn.execute("COMMIT")

    def delete_records(self, org_id: str, record_ids: Iterable[str]) -> None:
        """Remove rows (the rollback of inserts that had been persisted never happens; this is
        for resets)."""
        with self._lock:
            self.conn.executemany(
                "DELETE FROM records WHERE org_id = ? AND id = ?",
                [(org_id, rid) for rid in record_ids],
            )

    def clear_org(self, org_id: str) -> None:
        """Remove every record and notification of one org."""
        with self._lock:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM records WHERE org_id = ?", (org_id,))
            self.conn.execute("DELETE FROM outbound WHERE org_id = ?", (org_id,))
            self.conn.execute("COMMIT")

    def load_records(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Every persisted (org_id, sobject, record)."""
        with self._lock:
            rows = self.conn.execute("SELECT org_id, sobject, data FROM records").fetchall()
        for org_id, sobject, data in rows:
            yield org_id, sobject, json.loads(data)

    def put_json(
        self, table: str, key: str, value: dict[str, Any], org_id: str | None = None
    ) -> None:
        """Store one JSON document in tokens, outbound or state."""
        data = json.dumps(value, separators=(",", ":"))
        with self._lock:
            if table == "outbound":
                self.conn.execute(
                    "INSERT OR REPLACE INTO outbound (id, org_id, data) VALUES (?, ?, ?)",
                    (key, org_id or "", data),
                )
            elif table == "tokens":
                self.conn.execute(
                    "INSERT OR REPLACE INTO tokens (token, data) VALUES (?, ?)", (key, data)
                )
            else:
                self.conn.execute(
                    "INSERT OR REPLACE INTO state (key, data) VALUES (?, ?)", (key, data)
                )

    def put_many_json(self, table: str, items: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Store (key, org_id, document) rows in outbound or tokens in one transaction."""
        if not items:
            return
        with self._lock:
            self.conn.execute("BEGIN")
            if table == "outbound":
                self.conn.executemany(
                    "INSERT OR REPLACE INTO outbound (id, org_id, data) VALUES (?, ?, ?)",
                    [
                        (key, org_id, json.dumps(doc, separators=(",", ":")))
                        for key, org_id, doc in items
                    ],
                )
            else:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO tokens (token, data) VALUES (?, ?)",
                    [(key, json.dumps(doc, separators=(",", ":"))) for key, _org, doc in items],
                )
            self.conn.execute("COMMIT")

    def load_json(self, table: str) -> list[tuple[str, dict[str, Any]]]:
        """Every (key, document) of tokens, outbound or state."""
        column = {"tokens": "token", "outbound": "id", "state": "key"}[table]
        with self._lock:
            rows = self.conn.execute(f"SELECT {column}, data FROM {table}").fetchall()
        return [(key, json.loads(data)) for key, data in rows]

    def delete_json(self, table: str, keys: Iterable[str]) -> None:
        """Remove documents from tokens, outbound or state."""
        column = {"tokens": "token", "outbound": "id", "state": "key"}[table]
        with self._lock:
            self.conn.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(k,) for k in keys])

    def clear_table(self, table: str) -> None:
        """Empty tokens, outbound or state."""
        if table not in ("tokens", "outbound", "state", "records"):
            raise ValueError(table)
        with self._lock:
            self.conn.execute(f"DELETE FROM {table}")
