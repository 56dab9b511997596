"""Oracle: executemany with setinputsizes and a bounded batch."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import oracle

from .base import Dialect


class OracleDialect(Dialect):
    name = "oracle"
    # 128 bytes since 12.2; older releases allow 30 (set OracleDialect.legacy_names).
    max_identifier_bytes = 128
    batch_rows = 1000
    # A TIMESTAMP turned into text follows NLS_TIMESTAMP_FORMAT (two-digit years by
    # default): a text column does not keep it.
    inexact_as_text = frozenset({"datetime"})

    def __init__(self, server_version: tuple | None = None):
        if server_version and tuple(server_version[:2]) < (12, 2):
            self.max_identifier_bytes = 30

    def column_type(self, kind, string_length):
        if kind == "guid":
            return oracle.VARCHAR2(36)
        if kind == "text":
            return sa.NVARCHAR(min(string_length, 2000))
        if kind == "longtext":
            return oracle.NCLOB()
        if kind == "datetime":
            return oracle.TIMESTAMP()
        if kind == "bool":
            return sa.Boolean(create_constraint=False)
        if kind == "float":
            return oracle.BINARY_DOUBLE()
        return super().column_type(kind, string_length)

    def custom_field_type(self, string_length):
        return oracle.NCLOB()

    def widened_type(self, column, needed):
        return oracle.NCLOB()

    def input_sizes(self, dbapi, table: sa.Table, columns: Sequence[str]) -> list:
        """The oracledb type of each parameter for ``setinputsizes``, from its column's
        type, so a column whose first values are NULL is not bound as the wrong type
        and timestamps keep their fraction of a second. ``dbapi`` is the driver module."""
        sizes = []
        for name in columns:
            col_type = table.c[name].type
            if isinstance(col_type, sa.DateTime):
                sizes.append(dbapi.DB_TYPE_TIMESTAMP)
            elif isinstance(col_type, oracle.BINARY_DOUBLE):
                sizes.append(dbapi.DB_TYPE_BINARY_DOUBLE)
            elif isinstance(col_type, (sa.Integer, sa.Numeric, sa.Boolean)):
                sizes.append(dbapi.DB_TYPE_NUMBER)
            elif isinstance(col_type, (sa.NVARCHAR, sa.NCHAR, oracle.NCLOB)):
                # National text, and CLOB values, bound as NVARCHAR as SQLAlchemy binds them.
                sizes.append(dbapi.DB_TYPE_NVARCHAR)
            else:
                sizes.append(dbapi.DB_TYPE_VARCHAR)
        return sizes

    def bulk_insert(self, conn, table, columns, rows):
        if not rows:
            return
        rows = self.adapt_rows(conn, table, columns, rows)
        sql = self.insert_sql(conn, table, columns)
        sizes = self.input_sizes(conn.dialect.dbapi, table, columns)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            for start in range(0, len(rows), self.batch_rows):
                cursor.setinputsizes(*sizes)
                cursor.executemany(sql, list(rows[start:start + self.batch_rows]))
        finally:
            cursor.close()

    def timestamp_digits(self, column_type):
        if isinstance(column_type, oracle.DATE):
            return 0  # to the second
        return super().timestamp_digits(column_type)

    def change_type_sql(self, conn, table, name, new_type, nullable=True):
        # MODIFY without NULL or NOT NULL keeps the column's nullability. Oracle
        # changes DATE to TIMESTAMP, CHAR to VARCHAR2 and widens a NUMBER in place;
        # other changes it makes only on an empty column (ORA-01439).
        prep = conn.dialect.identifier_preparer
        return (f"ALTER TABLE {prep.format_table(table)} MODIFY ({prep.quote(name)} "
                f"{new_type.compile(dialect=conn.dialect)})")

    def widen_column_sql(self, conn, table, column, new_type):
        # Oracle cannot turn a VARCHAR2 into a CLOB in place: say so rather than truncate.
        from ..errors import FatalError

        raise FatalError(
            f"a value in {table.name}.{column.name} is longer than the column allows; "
            "raise [Database] StringLength (Oracle cannot widen it to a CLOB in place)")
