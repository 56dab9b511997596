"""PostgreSQL: COPY for bulk loads, UNLOGGED staging, MVCC swap in one transaction."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from .base import Dialect


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    max_identifier_bytes = 63
    # Staging rows are rebuilt if lost, so they need no write-ahead log.
    staging_prefixes = ("UNLOGGED",)

    def column_type(self, kind, string_length):
        if kind == "guid":
            return pg.UUID(as_uuid=False)
        if kind == "text":
            # TEXT and VARCHAR(n) cost the same here; TEXT never rejects a long value.
            return sa.Text()
        if kind == "float":
            return pg.DOUBLE_PRECISION()
        return super().column_type(kind, string_length)

    def bulk_insert(self, conn: sa.Connection, table: sa.Table, columns: Sequence[str],
                    rows: Sequence[tuple]) -> None:
        if not rows:
            return
        driver = conn.dialect.driver
        if driver != "psycopg2":
            return super().bulk_insert(conn, table, columns, rows)
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        buf.seek(0)
        prep = conn.dialect.identifier_preparer
        cols = ", ".join(prep.quote(c) for c in columns)
        sql = f"COPY {prep.format_table(table)} ({cols}) FROM STDIN WITH (FORMAT csv)"
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.copy_expert(sql, buf)
        finally:
            cursor.close()
