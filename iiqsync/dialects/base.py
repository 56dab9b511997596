"""What every database shares, and the hooks a dialect overrides.

A dialect decides three things: the SQL type of each column kind, the fastest
bulk path into a staging table, and how staged rows replace a final table's rows
in one transaction. The generic versions here run anywhere SQLAlchemy does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

import sqlalchemy as sa

from .. import entities as k


class Dialect:
    """Generic behaviour; subclasses override only what differs."""

    name = "generic"
    # Longest identifier the database accepts, in bytes of UTF-8.
    max_identifier_bytes = 63
    # Rows per executemany call: bounds memory and statement size.
    batch_rows = 1000
    # Table prefixes for staging tables (e.g. UNLOGGED on PostgreSQL).
    staging_prefixes: tuple[str, ...] = ()
    # Whether a column's declared type bounds what it stores (SQLite's does not).
    typed_columns = True
    # Whether an integer or decimal column takes a boolean (PostgreSQL's refuses it).
    numbers_take_booleans = True
    # Kinds whose values a text column would not keep exactly (their text form
    # depends on session settings).
    inexact_as_text: frozenset[str] = frozenset()
    # Whether DDL runs inside the transaction (and so can be rolled back to a
    # savepoint); MySQL and Oracle commit before and after each DDL statement.
    transactional_ddl = False

    # -- types ---------------------------------------------------------------
    def column_type(self, kind: str, string_length: int) -> sa.types.TypeEngine:
        if kind == k.GUID:
            return sa.String(36)
        if kind == k.TEXT:
            return sa.String(string_length)
        if kind == k.LONGTEXT:
            return sa.Text()
        if kind == k.INT:
            return sa.Integer()
        if kind == k.BOOL:
            return sa.Boolean()
        if kind == k.FLOAT:
            return sa.Float(53)
        if kind == k.MONEY:
            return sa.Numeric(19, 4)
        if kind == k.DATETIME:
            return sa.DateTime()
        raise ValueError(kind)

    def custom_field_type(self, string_length: int) -> sa.types.TypeEngine:
        """Custom-field values are free text of any length."""
        return sa.Text()

    def string_column_limit(self, column: sa.Column) -> int | None:
        """Characters a string column holds, or None when unbounded."""
        length = getattr(column.type, "length", None)
        return length if isinstance(column.type, sa.String) else None

    def widened_type(self, column: sa.Column, needed: int) -> sa.types.TypeEngine:
        """The type a bounded string column becomes when a value needs ``needed`` chars."""
        return sa.Text()

    def timestamp_digits(self, column_type: sa.DateTime) -> int | None:
        """Fraction-of-second digits a timestamp column of this (reflected) type
        keeps, or None when it cannot hold every timestamp at all."""
        precision = getattr(column_type, "precision", None)
        return 6 if precision is None else precision

    # -- engine --------------------------------------------------------------
    def engine_options(self) -> dict:
        return {}

    def on_connect(self, dbapi_connection) -> None:
        """Per-connection settings (e.g. SQLite pragmas)."""

    # -- bulk load -----------------------------------------------------------
    def insert_sql(self, conn: sa.Connection, table: sa.Table, columns: Sequence[str]) -> str:
        """``INSERT INTO t (a, b) VALUES (?, ?)`` in the driver's own parameter style."""
        prep = conn.dialect.identifier_preparer
        cols = ", ".join(prep.quote(c) for c in columns)
        style = conn.dialect.paramstyle
        if style == "qmark":
            marks = ", ".join("?" for _ in columns)
        elif style in ("format", "pyformat"):
            marks = ", ".join("%s" for _ in columns)
        elif style == "numeric":
            marks = ", ".join(f":{i + 1}" for i in range(len(columns)))
        else:  # named: positional tuples are turned into dicts below
            marks = ", ".join(f":p{i}" for i in range(len(columns)))
        return f"INSERT INTO {prep.format_table(table)} ({cols}) VALUES ({marks})"

    def adapt_rows(self, conn: sa.Connection, table: sa.Table, columns: Sequence[str],
                   rows: Sequence[tuple]) -> Sequence:
        """``rows`` with each value converted as SQLAlchemy converts it when binding to
        its column (e.g. datetimes to SQLite's text form, booleans to 0/1 where the
        database has no boolean), so a fast path stores exactly what generic_insert does."""
        processors = []
        for i, name in enumerate(columns):
            col_type = table.c[name].type.dialect_impl(conn.dialect)
            process = col_type.bind_processor(conn.dialect)
            if process is not None:
                processors.append((i, process))
        if not processors:
            return rows
        out = []
        for row in rows:
            row = list(row)
            for i, process in processors:
                row[i] = process(row[i])
            out.append(tuple(row))
        return out

    def bulk_insert(self, conn: sa.Connection, table: sa.Table, columns: Sequence[str],
                    rows: Sequence[tuple]) -> None:
        """Insert tuples (values in ``columns`` order) into ``table`` on ``conn``, in
        the caller's transaction: the driver's ``executemany`` in batches (PyMySQL
        rewrites each batch into one multi-row INSERT)."""
        if not rows:
            return
        rows = self.adapt_rows(conn, table, columns, rows)
        sql = self.insert_sql(conn, table, columns)
        named = conn.dialect.paramstyle == "named"
        for start in range(0, len(rows), self.batch_rows):
            chunk = rows[start:start + self.batch_rows]
            if named:
                chunk = [{f"p{i}": v for i, v in enumerate(r)} for r in chunk]
            conn.exec_driver_sql(sql, list(chunk))

    @contextmanager
    def staging(self, conn: sa.Connection) -> Iterator[sa.Connection]:
        """The transaction a page is staged in (its rows, its probes' rows and their
        progress records), on ``conn``, which has none open."""
        with conn.begin():
            yield conn

    def generic_insert(self, conn: sa.Connection, table: sa.Table, columns: Sequence[str],
                       rows: Sequence[tuple]) -> None:
        """The portable path through SQLAlchemy Core; the reference every fast path matches."""
        if rows:
            conn.execute(table.insert(), [dict(zip(columns, r, strict=True)) for r in rows])

    # -- swap ----------------------------------------------------------------
    def replace_statements(self, final: sa.Table, staging: sa.Table,
                           columns: Sequence[str], keep=None) -> list:
        """Statements that, run in one transaction, make ``final`` hold exactly the
        staged rows (those ``keep``, a condition on ``staging``, selects, if given).
        Deleting and inserting in place (rather than renaming tables) keeps the
        table's identity, so views, grants and foreign keys on it survive; readers
        keep seeing the old rows until the transaction commits."""
        select = sa.select(*[staging.c[c] for c in columns])
        if keep is not None:
            select = select.where(keep)
        return [
            final.delete(),
            final.insert().from_select(list(columns), select),
        ]

    def begin_swap(self, conn: sa.Connection) -> None:
        """Run first in the swap transaction (e.g. lock the tables)."""

    def sort_key(self, column: sa.ColumnElement) -> sa.ColumnElement:
        """``column`` as staged-key queries partition and sort it: here unchanged."""
        return column

    def delete_superseded(self, conn: sa.Connection, staging: sa.Table, key: str,
                          page_column: str, start: int) -> int:
        """Delete staged rows numbered below ``start`` whose key is also staged at or
        above ``start``, in one statement. Returns how many were deleted."""
        k, page = staging.c[key], staging.c[page_column]
        newer = sa.select(k).where(page >= start)
        return conn.execute(staging.delete().where(page < start, k.in_(newer))).rowcount

    # -- additive schema changes ---------------------------------------------
    def add_column_sql(self, conn: sa.Connection, table: sa.Table, column: sa.Column) -> str:
        """``ALTER TABLE t ADD <column definition>``; every supported database reads it."""
        prep = conn.dialect.identifier_preparer
        # Some compilers (SQL Server's) only render a column that belongs to a table.
        bound = sa.Column(column.name, column.type, nullable=True)
        sa.Table(table.name, sa.MetaData(), bound, schema=table.schema)
        definition = sa.schema.CreateColumn(bound).compile(dialect=conn.dialect)
        return f"ALTER TABLE {prep.format_table(table)} ADD {definition}"

    def widen_column_sql(self, conn: sa.Connection, table: sa.Table, column: sa.Column,
                         new_type: sa.types.TypeEngine) -> str:
        """The statement that makes a too-short text column ``new_type``."""
        return self.change_type_sql(conn, table, column.name, new_type)

    def change_type_sql(self, conn: sa.Connection, table: sa.Table, name: str,
                        new_type: sa.types.TypeEngine, nullable: bool = True) -> str:
        """The statement that changes column ``name`` of an existing table to
        ``new_type``, keeping its values, its nullability, its keys and indexes.
        Raises ``FatalError`` saying why where the database cannot do it in place."""
        prep = conn.dialect.identifier_preparer
        type_sql = new_type.compile(dialect=conn.dialect)
        return (f"ALTER TABLE {prep.format_table(table)} ALTER COLUMN "
                f"{prep.quote(name)} TYPE {type_sql}")

    def changing_types(self, conn: sa.Connection):
        """A context around the statements that change column types on ``conn``
        (e.g. one that makes a lossy conversion an error instead of a warning)."""
        return nullcontext()
