"""PostgreSQL: COPY for bulk loads, UNLOGGED staging, MVCC swap in one transaction."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from .base import Dialect


class _Null:
    """Written by the csv module as an unquoted empty field, which COPY reads as
    NULL: it counts as a number (``__index__``), so ``QUOTE_NONNUMERIC`` leaves it
    unquoted while it quotes every string, the empty one included."""

    __slots__ = ()

    def __index__(self) -> int:
        return 0

    def __str__(self) -> str:
        return ""


NULL = _Null()
# Characters handed to the driver per read of the CSV buffer (its default is 8 KB).
COPY_CHUNK = 1 << 20


def write_csv(buf: io.StringIO, rows: Sequence[tuple]) -> None:
    """``rows`` as CSV for ``COPY ... (FORMAT csv)``, where an unquoted empty field
    is NULL and a quoted one is the empty string.

    The csv module writes None as an unquoted empty field and quotes only what
    needs it, so most rows go through it as they are. It quotes a field holding a
    character of its line terminator, and COPY refuses a carriage return or a
    newline outside quotes: rows end with ``\r\n`` so that both are quoted. Only
    a row holding an empty string (rare: the flattening rules make IIQ's empty
    strings NULL) is written with every string quoted and NULL spelled as
    ``_Null``."""
    plain = csv.writer(buf, lineterminator="\r\n")
    if not any("" in row for row in rows):
        plain.writerows(rows)
        return
    quoted = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_NONNUMERIC)
    for row in rows:
        if "" in row:
            quoted.writerow([NULL if v is None else v for v in row])
        else:
            plain.writerow(row)


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    max_identifier_bytes = 63
    # Staging rows are rebuilt if lost, so they need no write-ahead log.
    staging_prefixes = ("UNLOGGED",)
    # No assignment cast turns a boolean into a number.
    numbers_take_booleans = False
    transactional_ddl = True

    def sort_key(self, column):
        # Byte order instead of the database's collation: grouping staged copies by
        # key only needs equal keys together, and PostgreSQL's collations are
        # deterministic (equal means equal bytes), so the groups are the same while
        # the sort costs a fraction of a locale's (a third less even under C.UTF-8).
        if isinstance(column.type, sa.String):
            return column.collate("C")
        return column

    def column_type(self, kind, string_length):
        if kind == "guid":
            return pg.UUID(as_uuid=False)
        if kind == "text":
            # TEXT and VARCHAR(n) cost the same here; TEXT never rejects a long value.
            return sa.Text()
        if kind == "float":
            return pg.DOUBLE_PRECISION()
        return super().column_type(kind, string_length)

    def change_type_sql(self, conn, table, name, new_type, nullable=True):
        # USING casts the old values explicitly: without it PostgreSQL refuses types
        # it has no assignment cast between (text to timestamp). Every type iiqsync
        # changes a column to is unbounded or wider than the old one, so the cast
        # cannot cut a value short. NOT NULL, keys and indexes are kept.
        prep = conn.dialect.identifier_preparer
        type_sql = new_type.compile(dialect=conn.dialect)
        column = prep.quote(name)
        return (f"ALTER TABLE {prep.format_table(table)} ALTER COLUMN {column} "
                f"TYPE {type_sql} USING {column}::{type_sql}")

    @contextmanager
    def staging(self, conn: sa.Connection) -> Iterator[sa.Connection]:
        with conn.begin():
            # A staged page lives in an UNLOGGED table, which a server crash empties
            # anyway: waiting for its commit record to reach the disk buys nothing.
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            yield conn

    def bulk_insert(self, conn: sa.Connection, table: sa.Table, columns: Sequence[str],
                    rows: Sequence[tuple]) -> None:
        if not rows:
            return
        driver = conn.dialect.driver
        if driver != "psycopg2":
            return super().bulk_insert(conn, table, columns, rows)
        buf = io.StringIO()
        write_csv(buf, rows)
        buf.seek(0)
        prep = conn.dialect.identifier_preparer
        cols = ", ".join(prep.quote(c) for c in columns)
        sql = (f"COPY {prep.format_table(table)} ({cols}) FROM STDIN "
               "WITH (FORMAT csv)")
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.copy_expert(sql, buf, size=COPY_CHUNK)
        finally:
            cursor.close()
