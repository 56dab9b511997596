"""Every database's fast bulk path stores exactly what the generic SQLAlchemy path
stores: the same tricky rows go through ``Dialect.bulk_insert`` into one staging
table and through ``Dialect.generic_insert`` into another, and the two are compared
value by value as the database itself renders them (NULL and empty text apart)."""

from __future__ import annotations

import math
import os
from datetime import datetime

import pytest
import sqlalchemy as sa

from iiqsync import config, db, entities, swap
from iiqsync.dialects import MySQLDialect

LONG = "Lorem ipsum, \"dolor\"; sit\tamet\n" * 4000  # 120,000 characters


def tricky_text(i: int) -> str | None:
    values = [None, "", " ", "plain", 'quote " double', "quote ' single", "comma, inside",
              "line\nbreak", "crlf\r\nbreak", "cr\ronly", "\r", "tab\there", "back\\slash", "\\N", "\\.",
              "\\.\n\\.", "NULL", "null", "é ü ñ ß", "日本語のテキスト", "emoji 😀 outside the BMP",
              "  padded  ", '"', '""', ",", "\n", LONG, "'; DROP TABLE x; --"]
    return values[i % len(values)]


FLOATS = [None, 0.0, 1.5, -2.25, 1 / 3, 1e-300, 1.7976931348623157e308, 123456789.123456789,
          -0.000001]
MONEY = [None, 0.0, 12.5, 1 / 3, 99999999.9999, -5.0001, 0.00005]
INTS = [None, 0, 1, -1, 2_147_483_647, -2_147_483_648, 42]
BOOLS = [None, True, False]
DATES = [None, datetime(2024, 1, 2, 3, 4, 5), datetime(2024, 1, 2, 3, 4, 5, 123456),
         datetime(1900, 1, 1), datetime(2099, 12, 31, 23, 59, 59, 999999),
         datetime(2024, 2, 29, 12, 0, 0, 1)]


def tricky_rows(columns: list[sa.Column], n: int = 60) -> list[tuple]:
    rows = []
    for i in range(n):
        row = []
        for j, col in enumerate(columns):
            t = col.type
            k = i + j  # different columns see different values in the same row
            if col.name == "iiqsync_page":
                row.append(i % 3)
            elif j == 0:
                row.append(f"{i:08x}-abcd-4ef0-8123-{j:012x}")
            elif isinstance(t, sa.DateTime):
                row.append(DATES[k % len(DATES)])
            elif isinstance(t, sa.Boolean):
                row.append(BOOLS[k % len(BOOLS)])
            elif isinstance(t, sa.Integer):
                row.append(INTS[k % len(INTS)])
            elif isinstance(t, sa.Float):
                row.append(FLOATS[k % len(FLOATS)])
            elif isinstance(t, sa.Numeric):
                row.append(MONEY[k % len(MONEY)])
            elif isinstance(t, sa.String) and getattr(t, "length", None) == 36:
                row.append(None if k % 4 == 0 else f"{k:08x}-0000-4000-8000-{i:012x}")
            elif "uuid" in type(t).__name__.lower():
                row.append(None if k % 4 == 0 else f"{k:08x}-0000-4000-8000-{i:012x}")
            else:
                row.append(tricky_text(k))
        rows.append(tuple(row))
    return rows


def rendered(conn: sa.Connection, table: sa.Table) -> list[tuple]:
    """Every stored value as the database renders it as text, NULL as None."""
    key = table.c[next(iter(table.c.keys()))]
    name = conn.dialect.name
    if name == "sqlite":
        cols = [sa.func.typeof(c).concat(":").concat(sa.func.quote(c)) for c in table.c]
    elif name == "postgresql":
        cols = [sa.cast(c, sa.Text) for c in table.c]
    else:
        cols = [sa.func.concat(sa.func.coalesce(sa.func.hex(sa.cast(c, sa.CHAR)), "NULL"))
                for c in table.c]
    return [tuple(r) for r in conn.execute(sa.select(*cols).order_by(key, table.c.iiqsync_page))]


@pytest.mark.parametrize("entity", [entities.ASSETS, entities.LOCATIONS, entities.TICKETS],
                         ids=lambda e: e.name)
def test_fast_path_stores_what_the_generic_path_stores(db_url, entity):
    settings = config.load(os.devnull, env={"IIQSYNC_DATABASE_CONNECTIONSTRING": db_url},
                           require_iiq=False)
    engine = db.get_engine(db_url)
    dialect = db.dialect_for(engine)
    layout = [{"type_id": f"{i:08x}-0000-0000-0000-000000000000", "column": name}
              for i, name in enumerate(["Plain", "Odd name, with \"quotes\"", "Long"])]
    layout = layout if entity.custom_fields else []
    fast = swap.build(entity, settings, dialect, "a" * 32, layout)
    slow = swap.build(entity, settings, dialect, "b" * 32, layout)
    swap.create_staging(engine, fast)
    swap.create_staging(engine, slow)
    try:
        for stage_fast, stage_slow in zip(fast.stages, slow.stages, strict=True):
            columns = list(stage_fast.c)
            names = [c.name for c in columns]
            rows = tricky_rows(columns)
            with engine.begin() as conn:
                dialect.bulk_insert(conn, stage_fast, names, rows)
                dialect.generic_insert(conn, stage_slow, names, rows)
            with engine.connect() as conn:
                got_fast = rendered(conn, stage_fast)
                got_slow = rendered(conn, stage_slow)
            assert len(got_fast) == len(rows)
            assert got_fast == got_slow
            # And the values read back are the values written (floats to the last bit
            # where the column is a float).
            with engine.connect() as conn:
                raw = [sa.type_coerce(c, sa.Float()) if isinstance(c.type, sa.Float) else c
                       for c in columns]  # the driver's float, not a Decimal of 10 digits
                back = conn.execute(sa.select(*raw).order_by(*stage_fast.c[:1],
                                                             stage_fast.c.iiqsync_page)).all()
            by_key = {r[0]: r for r in rows}
            for got in back:
                want = by_key[str(got[0]).lower()]
                for col, w, g in zip(columns, want, got, strict=True):
                    if isinstance(col.type, sa.Float) and w is not None:
                        assert math.isclose(float(g), w, rel_tol=1e-15), col.name
                    elif isinstance(col.type, (sa.String, sa.Text)) and \
                            getattr(col.type, "length", None) != 36:
                        assert g == w, (col.name, w, g)
    finally:
        swap.drop_staging(engine, fast)
        swap.drop_staging(engine, slow)


def test_mysql_insert_is_rewritten_into_multi_row_inserts(mysql_url):
    """PyMySQL turns executemany into multi-row INSERTs only when the statement
    matches its pattern; the server's own counter shows how many statements ran."""
    import pymysql.cursors

    settings = config.load(os.devnull, env={"IIQSYNC_DATABASE_CONNECTIONSTRING": mysql_url},
                           require_iiq=False)
    engine = db.get_engine(mysql_url)
    dialect = db.dialect_for(engine)
    assert isinstance(dialect, MySQLDialect)
    tables = swap.build(entities.ASSETS, settings, dialect, "c" * 32, [])
    swap.create_staging(engine, tables)
    try:
        stage = tables.main_stage
        names = [c.name for c in stage.c]
        rows = [(f"{i:08x}-0000-4000-8000-000000000000", *([None] * (len(names) - 2)), 1)
                for i in range(2500)]
        with engine.begin() as conn:
            # READ COMMITTED, as on PostgreSQL: no gap locks for stagings side by side.
            assert conn.exec_driver_sql("SELECT @@tx_isolation").scalar() == "READ-COMMITTED"
            assert pymysql.cursors.RE_INSERT_VALUES.match(dialect.insert_sql(conn, stage, names))
            before = conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_insert'").one()[1]
            dialect.bulk_insert(conn, stage, names, rows)
            after = conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_insert'").one()[1]
            count = conn.execute(sa.select(sa.func.count()).select_from(stage)).scalar_one()
        assert count == 2500
        statements = int(after) - int(before)
        assert statements <= 2500 // dialect.batch_rows + 2, statements
    finally:
        swap.drop_staging(engine, tables)
