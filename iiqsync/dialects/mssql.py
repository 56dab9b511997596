"""Microsoft SQL Server: pyodbc fast_executemany, bounded NVARCHAR, 2100-parameter cap."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from .base import Dialect

MAX_PARAMETERS = 2100
# Longest NVARCHAR(n) a parameter may be declared as; longer values go as NVARCHAR(MAX).
MAX_NVARCHAR = 4000

# ODBC SQL type codes (sql.h / sqlext.h), as pyodbc's setinputsizes takes them.
SQL_WVARCHAR = -9
SQL_BIT = -7
SQL_INTEGER = 4
SQL_DOUBLE = 8
SQL_TYPE_TIMESTAMP = 93


def _utf16_length(value: str) -> int:
    """Length in UTF-16 code units, the unit of NVARCHAR(n)."""
    if value.isascii():
        return len(value)
    return len(value.encode("utf-16-le")) // 2


class MSSQLDialect(Dialect):
    name = "mssql"
    max_identifier_bytes = 128
    transactional_ddl = True

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

    def input_sizes(self, table: sa.Table, columns: Sequence[str],
                    rows: Sequence[tuple]) -> list[tuple[int, int, int]]:
        """``(SQL type, size, decimal digits)`` of each parameter for pyodbc's
        ``setinputsizes``. Text is declared NVARCHAR(n) with n the longest value in
        ``rows`` (NVARCHAR(MAX), size 0, only past 4000), so fast_executemany neither
        allocates MAX-sized buffers nor guesses a size from the first row."""
        sizes = []
        for i, name in enumerate(columns):
            col_type = table.c[name].type
            if isinstance(col_type, sa.DateTime):
                sizes.append((SQL_TYPE_TIMESTAMP, 27, 7))
            elif isinstance(col_type, sa.Boolean):
                sizes.append((SQL_BIT, 1, 0))
            elif isinstance(col_type, sa.Integer):
                sizes.append((SQL_INTEGER, 10, 0))
            elif isinstance(col_type, (sa.Float, sa.Numeric)):
                # Money is sent as a float, as the generic path sends it.
                sizes.append((SQL_DOUBLE, 53, 0))
            else:
                longest = max((_utf16_length(r[i]) for r in rows if isinstance(r[i], str)),
                              default=1)
                sizes.append((SQL_WVARCHAR, 0 if longest > MAX_NVARCHAR else max(longest, 1), 0))
        return sizes

    def bulk_insert(self, conn, table, columns, rows):
        if not rows:
            return
        rows = self.adapt_rows(conn, table, columns, rows)
        sql = self.insert_sql(conn, table, columns)
        step = self.rows_per_batch(len(columns))
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.fast_executemany = True
            for start in range(0, len(rows), step):
                chunk = list(rows[start:start + step])
                cursor.setinputsizes(self.input_sizes(table, columns, chunk))
                cursor.executemany(sql, chunk)
        finally:
            cursor.close()

    def begin_swap(self, conn):
        # Readers under READ COMMITTED wait for the swap rather than see it half done.
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")

    def timestamp_digits(self, column_type):
        if isinstance(column_type, (mssql.DATETIME2, mssql.DATETIMEOFFSET)):
            return 7 if column_type.precision is None else column_type.precision
        if isinstance(column_type, mssql.SMALLDATETIME):
            return 0  # to the minute
        return 2  # DATETIME: steps of 1/300 of a second

    def change_type_sql(self, conn, table, name, new_type, nullable=True):
        # ALTER COLUMN restates the nullability (NULL unless said otherwise). SQL
        # Server refuses it on a column in a key, an index or a schema-bound view.
        prep = conn.dialect.identifier_preparer
        return (f"ALTER TABLE {prep.format_table(table)} ALTER COLUMN {prep.quote(name)} "
                f"{new_type.compile(dialect=conn.dialect)} {'NULL' if nullable else 'NOT NULL'}")
