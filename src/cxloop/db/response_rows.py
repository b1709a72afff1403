"""Writing rows fast: the hot path of single submissions and of imports (responses), and of
the runs and task runs the ledger writes for them.

`insert_rows` hands rows to the driver with each column type's own bind processor (the
converter SQLAlchemy would apply) and an INSERT written in the driver's parameter style (COPY on
PostgreSQL). Only public SQLAlchemy API is used (a table's columns, a type's `bind_processor`, a
dialect's `paramstyle` and identifier quoting), so SQLAlchemy may float to its newest release;
`tests/integration/test_responses_bulk_import.py` holds the rows to what the plain INSERT gives.
Every row names every column of its table: the driver applies no column defaults, and a None
is SQL NULL (also in a JSON column, as when the column is left out of a Core INSERT).
The matcher reads the rows themselves (`ledger.ResponseFacts`): no ORM object is made for them.

`inserts_together` holds back the rows `insert_rows` gets inside a block and writes them at its
end, on PostgreSQL in one round trip where every table's rows are few: the intake's group
commit writes a group's responses, runs and task runs that way.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, make_transient_to_detached

from cxloop.db.models import Response

RESPONSE_INSERT = Response.__table__.insert()
# Where a dialect keeps its prepared INSERTs, by table (each engine has a dialect of its own).
_PREPARED_ATTRIBUTE = "cxloop_driver_inserts"
# Where a connection keeps the rows `inserts_together` holds back (its DBAPI connection's info).
_HELD_ROWS = "cxloop_held_rows"
# Up to this many rows of a table go as one multi-row INSERT in psycopg's pipeline; more go by
# COPY, which is cheaper per row but cannot share a round trip with anything.
PIPELINED_ROWS = 64


def _placeholders(dialect: Dialect, names: tuple[str, ...]) -> tuple[str, bool]:
    """The VALUES placeholders in the driver's parameter style, and whether it is positional."""
    style = dialect.paramstyle
    if style == "qmark":
        return ", ".join("?" for _ in names), True
    if style == "format":
        return ", ".join("%s" for _ in names), True
    if style == "numeric":
        return ", ".join(f":{n}" for n in range(1, len(names) + 1)), True
    if style == "named":
        return ", ".join(f":{name}" for name in names), False
    return ", ".join(f"%({name})s" for name in names), False  # pyformat


class _DriverInsert:
    """The INSERT of a table's rows in the driver's own terms, prepared once per dialect.

    For an executemany SQLAlchemy converts each value of each row through its column type
    (timestamps, JSON, booleans). Done here, a value given to several columns of one type is
    converted once: an imported row's four timestamps are usually one and the same datetime.
    The converters are SQLAlchemy's own (each type's bind processor for the dialect).

    psycopg (PostgreSQL) sends an executemany as one statement per row; it takes the same rows
    as one COPY FROM STDIN in a third less time here, and less on the server too. Its errors are
    raised as SQLAlchemy's, as the INSERT's would be.
    """

    def __init__(self, dialect: Dialect, table: Table) -> None:
        self.dialect = dialect
        table_columns = tuple(table.columns)
        names = tuple(column.key for column in table_columns)
        quote = dialect.identifier_preparer.quote
        table_name = dialect.identifier_preparer.format_table(table)
        columns = ", ".join(quote(column.name) for column in table_columns)
        values, self.positional = _placeholders(dialect, names)
        self.sql = f"INSERT INTO {table_name} ({columns}) VALUES ({values})"
        self.names = names
        self.pick = operator.itemgetter(*names)  # a row's values, in the statement's order
        converters = []
        for index, column in enumerate(table_columns):
            convert = column.type.dialect_impl(dialect).bind_processor(dialect)
            if convert is not None:
                converters.append((index, type(column.type), convert))
        # Columns of one type side by side: a value repeated among them is converted once.
        self.converters = tuple(sorted(converters, key=lambda c: c[1].__qualname__))
        self.copy_sql: str | None = None
        self._head = f"INSERT INTO {table_name} ({columns}) VALUES "
        self._multi_row_sql: dict[int, str] = {}
        if dialect.driver == "psycopg":
            self.copy_sql = f"COPY {table_name} ({columns}) FROM STDIN"

    def execute(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        """Insert the rows on this connection, in its transaction."""
        converted = self.values(rows)
        if self.copy_sql is None:
            if not self.positional:
                converted = [dict(zip(self.names, v, strict=True)) for v in converted]
            connection.exec_driver_sql(self.sql, converted)
            return
        with (
            driver_errors(connection, self.copy_sql),
            connection.connection.cursor() as cursor,
            cursor.copy(self.copy_sql) as copy,
        ):
            for values in converted:
                copy.write_row(values)

    def multi_row(self, rows: list[dict[str, Any]]) -> tuple[str, list[Any]]:
        """One INSERT of all the rows with PostgreSQL's own placeholders (`$1`, for psycopg's
        RawCursor): the statement and its parameters. One statement per row count, which
        psycopg prepares once it recurs; with `%s` psycopg would parse every statement of more
        than 50 parameters anew, at every execution."""
        count = len(rows)
        sql = self._multi_row_sql.get(count)
        if sql is None:
            width = len(self.names)
            sql = self._multi_row_sql[count] = self._head + ", ".join(
                "(" + ", ".join(f"${row * width + n}" for n in range(1, width + 1)) + ")"
                for row in range(count)
            )
        return sql, [value for values in self.values(rows) for value in values]

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


@contextmanager
def driver_errors(connection: Connection, statement: str) -> Iterator[None]:
    """Raise the driver's errors inside the block as SQLAlchemy's, as a statement's would be;
    a lost connection leaves the pool, as SQLAlchemy has it."""
    dialect = connection.dialect
    dbapi = dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, connection.connection.dbapi_connection, None)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            statement, None, exc, dbapi.Error, connection_invalidated=lost, dialect=dialect
        ) from exc


def _driver_insert(dialect: Dialect, table: Table) -> _DriverInsert:
    prepared: dict[str, _DriverInsert] | None = getattr(dialect, _PREPARED_ATTRIBUTE, None)
    if prepared is None:
        prepared = {}
        setattr(dialect, _PREPARED_ATTRIBUTE, prepared)
    insert = prepared.get(table.name)
    if insert is None:
        insert = prepared[table.name] = _DriverInsert(dialect, table)
    return insert


def insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """`connection.execute(table.insert(), rows)`, the rows handed to the driver directly (on a
    session's connection: `db.uow.core_connection`). Every row has every column of the table.
    Inside `inserts_together` on this connection the rows wait for the end of its block."""
    held: list[tuple[Table, list[dict[str, Any]]]] | None = connection.info.get(_HELD_ROWS)
    if held is not None:
        held.append((table, rows))
        return
    _driver_insert(connection.dialect, table).execute(connection, rows)


@contextmanager
def inserts_together(connection: Connection) -> Iterator[None]:
    """Hold back the rows `insert_rows` gets on `connection` inside the block, and write them at
    its end, in the order given (the block must not read them meanwhile). On PostgreSQL, when
    every table's rows are few (`PIPELINED_ROWS`), they go as one multi-row INSERT a table, all
    in one round trip (psycopg's pipeline mode): a COPY takes two round trips, and the intake's
    writer waits on each. Otherwise each table's rows go as `insert_rows` sends them. Nothing is
    written when the block raises. A block inside another's holds its rows for the outer one."""
    if _HELD_ROWS in connection.info:
        yield
        return
    held: list[tuple[Table, list[dict[str, Any]]]] = []
    connection.info[_HELD_ROWS] = held
    try:
        yield
    finally:
        connection.info.pop(_HELD_ROWS, None)
    inserts = [(_driver_insert(connection.dialect, table), rows) for table, rows in held if rows]
    if not inserts:
        return
    if connection.dialect.driver != "psycopg" or any(
        len(rows) > PIPELINED_ROWS for _, rows in inserts
    ):
        for insert, rows in inserts:
            insert.execute(connection, rows)
        return
    statements = [insert.multi_row(rows) for insert, rows in inserts]
    dbapi_connection = connection.connection.dbapi_connection
    raw_cursor = connection.dialect.loaded_dbapi.RawCursor
    with (
        driver_errors(connection, statements[0][0]),
        dbapi_connection.pipeline(),
        raw_cursor(dbapi_connection) as cursor,
    ):
        for sql, parameters in statements:
            cursor.execute(sql, parameters)


def insert_response_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """`session.execute(RESPONSE_INSERT, rows)`, the rows handed to the driver directly.

    Every row has every column of `responses` (as the response services make them)."""
    insert_rows(session.connection(), Response.__table__, rows)


def detached_response(row: dict[str, Any]) -> Response:
    """A `Response` for a row just stored, detached (as one loaded in a session now closed).
    Public ORM API only: made and marked as stored, in no session."""
    response = Response(**row)
    make_transient_to_detached(response)
    return response
