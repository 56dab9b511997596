"""Hostile custom-field names in the SQL Server and Oracle statements a run would send,
and the statement that drops superseded staged copies, compiled without a database."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from iiqsync import entities, schema, swap
from iiqsync.dialects import MSSQLDialect, MySQLDialect, OracleDialect, PostgreSQLDialect, SQLiteDialect
from iiqsync.identifiers import allocate

from .test_dialects_compiled import (
    QUOTED,
    RUN_ID,
    SA_DIALECTS,
    CompileOnlyConnection,
    compile_ddl,
    compile_sql,
    outside_quotes,
    settings,  # noqa: F401 (fixture)
)
from .test_identifiers import hostile_names

TARGETS = {
    "mssql": (MSSQLDialect(), "mssql", "NVARCHAR(max)"),
    "oracle": (OracleDialect(), "oracle", "NCLOB"),
    "oracle-12.1": (OracleDialect(server_version=(12, 1)), "oracle", "NCLOB"),
}


@pytest.mark.parametrize("target", list(TARGETS))
def test_eighty_hostile_columns_compile_distinct_quoted_and_within_the_limit(settings, target):  # noqa: F811
    ours, sa_name, cf_type = TARGETS[target]
    limit = ours.max_identifier_bytes
    taken = {"AssetId", schema.PAGE_COLUMN}
    layout = [{"type_id": f"{i:08x}-0000-0000-0000-000000000000", "name": n, "editor": 1,
               "column": allocate(n, f"CustomField_{i:08x}", taken, limit)}
              for i, n in enumerate(hostile_names(80))]
    tables = swap.build(entities.ASSETS, settings, ours, RUN_ID, layout)
    conn = CompileOnlyConnection(SA_DIALECTS[sa_name]())
    columns = ["AssetId", *tables.cf_columns]
    texts = [compile_ddl(tables.cf, sa_name), compile_ddl(tables.cf_stage, sa_name),
             *(compile_sql(s, sa_name) for s in ours.replace_statements(
                 tables.cf, tables.cf_stage, columns)),
             ours.insert_sql(conn, tables.cf_stage, [*columns, schema.PAGE_COLUMN]),
             *(ours.add_column_sql(conn, tables.cf, tables.cf.c[c]) for c in tables.cf_columns)]
    for text in texts:
        for identifier in QUOTED[sa_name].findall(text):
            assert len(identifier[1:-1].encode()) <= limit, identifier
        rest = outside_quotes(text, sa_name)
        for word in ("DROP", "Users", ";--", "Select", "order"):
            assert word not in rest, (word, text)
    create = texts[0]
    assert len({c.lower() for c in tables.cf_columns}) == 80
    # Every custom-field column is a LOB, stored off the row: 80 of them fit any row limit.
    assert create.count(cf_type) == 80


class RecordingExecute:
    """Stands in for a connection: records statements instead of running them."""

    def __init__(self, sa_dialect):
        self.dialect = sa_dialect
        self.sent = []

    def execute(self, statement, *params):
        self.sent.append(statement)
        return SimpleNamespace(rowcount=0)

    def exec_driver_sql(self, sql, params=()):
        self.sent.append((sql, params))
        return SimpleNamespace(rowcount=0)


@pytest.mark.parametrize("name, ours", [("mssql", MSSQLDialect()), ("oracle", OracleDialect()),
                                        ("postgresql", PostgreSQLDialect()),
                                        ("sqlite", SQLiteDialect())])
def test_superseded_copies_go_in_one_statement(settings, name, ours):  # noqa: F811
    tables = swap.build(entities.ASSETS, settings, ours, RUN_ID, [])
    conn = RecordingExecute(SA_DIALECTS[name]())
    ours.delete_superseded(conn, tables.main_stage, "AssetId", schema.PAGE_COLUMN, 1 << 24)
    (statement,) = conn.sent
    text = " ".join(compile_sql(statement, name).split())
    stage = tables.main_stage.name
    assert text.startswith(f"DELETE FROM {stage} WHERE {stage}.")
    assert "IN (SELECT" in text and text.count(stage) >= 3


def test_mysql_superseded_copies_join_a_derived_table(settings):  # noqa: F811
    ours = MySQLDialect()
    tables = swap.build(entities.ASSETS, settings, ours, RUN_ID, [])
    conn = RecordingExecute(SA_DIALECTS["mysql"]())
    ours.delete_superseded(conn, tables.main_stage, "AssetId", schema.PAGE_COLUMN, 7)
    ((sql, params),) = conn.sent
    assert sql == ("DELETE s FROM iiqs_0123456789ab_main AS s INNER JOIN (SELECT DISTINCT "
                   "`AssetId` AS k FROM iiqs_0123456789ab_main WHERE iiqsync_page >= %s) AS n "
                   "ON s.`AssetId` = n.k WHERE s.iiqsync_page < %s")
    assert params == (7, 7)
