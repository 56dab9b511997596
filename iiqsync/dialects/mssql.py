"""Microsoft SQL Server: pyodbc fast_executemany, bounded NVARCHAR, 2100-parameter cap."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from .base import Dialect

MAX_PARAMETERS = 2100


class MSSQLDialect(Dialect):
    name = "mssql"
    max_identifier_bytes = 128

    def column_type(self, kind, string_length):
        if kind == "guid":
            return mssql.UNIQUEIDENTIFIER(as_uuid=False)
        if kind == "text":
            return sa.NVARCHAR(min(string_length, 4000))
        if kind == "longtext":
            return sa.NVARCHAR(None)  # NVARCHAR(MAX)
        if kind == "datetime":
            return mssql.DATETIME2()
        if kind == "bool":
            return mssql.BIT()
        return super().column_type(kind, string_length)

    def custom_field_type(self, string_length):
        return sa.NVARCHAR(None)

    def widened_type(self, column, needed):
        return sa.NVARCHAR(None)

    def engine_options(self):
        return {"fast_executemany": True}

    def rows_per_batch(self, n_columns: int) -> int:
        """Keep each statement under SQL Server's 2100-parameter limit."""
        return max(1, min(self.batch_rows, (MAX_PARAMETERS - 1) // max(n_columns, 1)))

    def bulk_insert(self, conn, table, columns, rows):
        if not rows:
            return
        sql = self.insert_sql(conn, table, columns)
        step = self.rows_per_batch(len(columns))
        for start in range(0, len(rows), step):
            conn.exec_driver_sql(sql, list(rows[start:start + step]))

    def begin_swap(self, conn):
        # Readers under READ COMMITTED wait for the swap rather than see it half done.
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")

    def widen_column_sql(self, conn, table, column, new_type):
        prep = conn.dialect.identifier_preparer
        return (f"ALTER TABLE {prep.format_table(table)} ALTER COLUMN "
                f"{prep.quote(column.name)} {new_type.compile(dialect=conn.dialect)} NULL")
