"""Writing response rows fast: the hot path of single submissions and of imports.

`insert_response_rows` hands rows to the driver with SQLAlchemy's own compiled INSERT and type
converters (COPY on PostgreSQL); `persistent_responses` makes the `Response` objects the hooks
get, as SQLAlchemy's loader would for rows it had read. Both rely on SQLAlchemy internals (the
version is pinned below 2.2); `tests/integration/test_responses_bulk_import.py` holds them to
what the plain INSERT and ORM objects give.
"""

from __future__ import annotations

import operator
import weakref
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state

from cxloop.db.models import Response

RESPONSE_INSERT = Response.__table__.insert()


class _DriverInsert:
    """The INSERT of response rows in the driver's own terms, prepared once per dialect.

    For an executemany SQLAlchemy converts each value of each row through its column type
    (timestamps, JSON, booleans). Done here, a value given to several columns of one type is
    converted once: an imported row's four timestamps are usually one and the same datetime.
    The statement and the converters are SQLAlchemy's own (the compiled INSERT, each type's
    bind processor).

    psycopg (PostgreSQL) sends an executemany as one statement per row; it takes the same rows
    as one COPY FROM STDIN in a third less time here, and less on the server too. Its errors are
    raised as SQLAlchemy's, as the INSERT's would be.
    """

    def __init__(self, dialect: Any) -> None:
        compiled = RESPONSE_INSERT.compile(dialect=dialect)
        self.dialect = dialect
        self.sql = str(compiled)
        self.positional = compiled.positiontup is not None
        names = compiled.positiontup if self.positional else list(compiled.binds)
        self.usable = (
            len(names) > 1 and not compiled.escaped_bind_names and set(names) == set(compiled.binds)
        )
        self.names = tuple(names)
        self.pick = operator.itemgetter(*names)  # a row's values, in the statement's order
        converters = []
        for index, name in enumerate(names):
            column_type = compiled.binds[name].type
            convert = column_type.dialect_impl(dialect).bind_processor(dialect)
            if convert is not None:
                converters.append((index, type(column_type), convert))
        # Columns of one type side by side: a value repeated among them is converted once.
        self.converters = tuple(sorted(converters, key=lambda c: c[1].__qualname__))
        self.copy_sql: str | None = None
        if dialect.driver == "psycopg":
            quote = dialect.identifier_preparer.quote
            table = dialect.identifier_preparer.format_table(Response.__table__)
            self.copy_sql = f"COPY {table} ({', '.join(map(quote, names))}) FROM STDIN"

    def execute(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        """Insert the rows on this connection, in its transaction."""
        converted = self.values(rows)
        if self.copy_sql is None:
            if not self.positional:
                converted = [dict(zip(self.names, v, strict=True)) for v in converted]
            connection.exec_driver_sql(self.sql, converted)
            return
        dbapi = self.dialect.loaded_dbapi
        try:
            with connection.connection.cursor() as cursor, cursor.copy(self.copy_sql) as copy:
                for values in converted:
                    copy.write_row(values)
        except dbapi.Error as exc:
            # What SQLAlchemy does with a statement's error: a lost connection leaves the pool.
            lost = self.dialect.is_disconnect(exc, connection.connection.dbapi_connection, None)
            if lost:
                connection.invalidate(exc)
            raise DBAPIError.instance(
                self.copy_sql,
                None,
                exc,
                dbapi.Error,
                connection_invalidated=lost,
                dialect=self.dialect,
            ) from exc

    def values(self, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Each row's values as the driver takes them, in the statement's order."""
        pick, converters = self.pick, self.converters
        converted: list[tuple[Any, ...]] = []
        for row in rows:
            values = list(pick(row))
            last_type = last_value = last_converted = None
            for index, column_type, convert in converters:
                value = values[index]
                if value is None:
                    continue
                if value is last_value and column_type is last_type:
                    values[index] = last_converted
                else:
                    last_type, last_value = column_type, value
                    values[index] = last_converted = convert(value)
            converted.append(tuple(values))  # SQLAlchemy takes tuples (or dicts) only
        return converted


_DRIVER_INSERTS: weakref.WeakKeyDictionary[Any, _DriverInsert] = weakref.WeakKeyDictionary()


def insert_response_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """`session.execute(RESPONSE_INSERT, rows)`, the rows handed to the driver directly."""
    connection = session.connection()
    dialect = connection.dialect
    insert = _DRIVER_INSERTS.get(dialect)
    if insert is None:
        insert = _DRIVER_INSERTS.setdefault(dialect, _DriverInsert(dialect))
    if insert.usable:
        insert.execute(connection, rows)
    else:
        session.execute(RESPONSE_INSERT, rows)


_RESPONSE_MAPPER = sa_inspect(Response)


def persistent_responses(session: Session, rows: list[dict[str, Any]]) -> list[Response]:
    """Responses for rows just INSERTed, in the session as persistent objects.

    What `Response(**row)`, `make_transient_to_detached` and `session.add` would make, for a
    fifth of the cost: each object is made the way SQLAlchemy's loader
    makes one for a row it has read (`orm/loading.py`), its values put in place as loaded and
    its state put in the session's identity map.
    """
    new_instance = _RESPONSE_MAPPER.class_manager.new_instance
    identity_key = _RESPONSE_MAPPER.identity_key_from_primary_key
    identity_map = session.identity_map
    session_key = session.hash_key
    responses = []
    for row in rows:
        key = identity_key([row["id"]])
        if key in identity_map:  # never in an import's own session; the long way is exact
            response = Response(**row)
            make_transient_to_detached(response)
            session.add(response)
        else:
            response = new_instance()
            state = instance_state(response)
            response.__dict__.update(row)
            state.key = key
            state.identity_token = key[2]
            state.session_id = session_key
            identity_map._add_unpresent(state, key)
        responses.append(response)
    return responses
