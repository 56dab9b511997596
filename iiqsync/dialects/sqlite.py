"""SQLite: one file, one writer; WAL lets readers keep reading during a swap."""

from __future__ import annotations

import sqlalchemy as sa

from .base import Dialect


class SQLiteDialect(Dialect):
    name = "sqlite"
    max_identifier_bytes = 1024
    batch_rows = 5000
    # A column's declared type and length bound nothing: values keep their own type.
    typed_columns = False
    transactional_ddl = True

    def column_type(self, kind, string_length):
        # SQLite does not enforce lengths; a plain TEXT column never truncates.
        if kind == "text":
            return sa.Text()
        return super().column_type(kind, string_length)

    def change_type_sql(self, conn, table, name, new_type, nullable=True):
        from ..errors import FatalError

        raise FatalError("SQLite cannot change a column's type in place; create the table "
                         "again with the column as TEXT (and copy its rows), or name a new "
                         "table in [Tables] and let iiqsync create it")

    def engine_options(self):
        # Writers from several threads wait for each other instead of failing.
        return {"connect_args": {"timeout": 120, "check_same_thread": False}}

    def on_connect(self, dbapi_connection):
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=120000")
        cur.close()
