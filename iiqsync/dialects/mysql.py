"""MySQL and MariaDB: multi-row INSERTs (PyMySQL rewrites executemany into them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from .base import Dialect


class MySQLDialect(Dialect):
    name = "mysql"
    max_identifier_bytes = 64
    batch_rows = 2000

    def column_type(self, kind, string_length):
        if kind == "guid":
            return sa.CHAR(36)
        if kind == "datetime":
            # Without fsp MySQL drops the fraction of a second.
            return mysql.DATETIME(fsp=6)
        if kind == "longtext":
            return mysql.MEDIUMTEXT()
        if kind == "text" and string_length > 255:
            # Many wide VARCHARs would break the 65,535-byte row limit; TEXT lives off-row.
            return sa.Text()
        if kind == "text":
            return sa.String(string_length)
        if kind == "float":
            return mysql.DOUBLE()
        return super().column_type(kind, string_length)

    def engine_options(self):
        # READ COMMITTED, as on PostgreSQL. Under InnoDB's default REPEATABLE READ, a
        # statement that finds no row (a page's or a run's record looked up before it
        # is inserted) takes a gap lock, and two such transactions side by side
        # deadlock on their inserts; READ COMMITTED takes no gap locks.
        return {"isolation_level": "READ COMMITTED"}

    def delete_superseded(self, conn, staging, key, page_column, start):
        # A DELETE ... WHERE key IN (subquery) on the same table runs the subquery once
        # per row here (and MySQL refuses it); a join with a derived table, which gets
        # an index of its own, stays linear.
        prep = conn.dialect.identifier_preparer
        table, k, page = prep.format_table(staging), prep.quote(key), prep.quote(page_column)
        sql = (f"DELETE s FROM {table} AS s INNER JOIN (SELECT DISTINCT {k} AS k FROM {table} "
               f"WHERE {page} >= %s) AS n ON s.{k} = n.k WHERE s.{page} < %s")
        return conn.exec_driver_sql(sql, (start, start)).rowcount

    def custom_field_type(self, string_length):
        # TEXT is stored off-row, so 80+ custom-field columns fit the row limit.
        return mysql.MEDIUMTEXT()

    def widened_type(self, column, needed):
        return mysql.MEDIUMTEXT()

    def timestamp_digits(self, column_type):
        if isinstance(column_type, mysql.TIMESTAMP):
            return None  # 1970 to 2038 only, and shifted by the session's time zone
        return getattr(column_type, "fsp", None) or 0  # DATETIME without fsp keeps none

    def change_type_sql(self, conn, table, name, new_type, nullable=True):
        # MODIFY restates the whole column: its nullability must be said again (a key
        # column cannot be NULL). A DEFAULT or COMMENT on the column is not kept;
        # iiqsync's and the old tool's columns have neither.
        prep = conn.dialect.identifier_preparer
        return (f"ALTER TABLE {prep.format_table(table)} MODIFY COLUMN {prep.quote(name)} "
                f"{new_type.compile(dialect=conn.dialect)} {'NULL' if nullable else 'NOT NULL'}")

    @contextmanager
    def changing_types(self, conn: sa.Connection) -> Iterator[None]:
        # Outside strict mode, MODIFY turns an old value that does not convert into a
        # zero date or a cut string with only a warning; strict, the statement fails
        # and the table stays as it was. (Each ALTER TABLE commits on its own.)
        mode = conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar_one()
        conn.exec_driver_sql("SET SESSION sql_mode = %s", (_strict(mode),))
        try:
            yield
        finally:
            conn.exec_driver_sql("SET SESSION sql_mode = %s", (mode,))


def _strict(mode: str) -> str:
    modes = [m for m in mode.split(",") if m]
    return ",".join(modes + ["STRICT_ALL_TABLES"] * ("STRICT_ALL_TABLES" not in modes))
