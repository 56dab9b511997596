"""The SQL each dialect would run, compiled without a database.

SQL Server and Oracle drivers are not installed here, so their statements are compiled
with SQLAlchemy's own dialect objects and asserted on as text. PostgreSQL, MySQL and
SQLite get the same CREATE TABLE checks for comparison.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql, sqlite

from iiqsync import config, db, entities, schema, swap
from iiqsync import entities as k
from iiqsync.dialects import (
    REGISTRY,
    Dialect,
    MSSQLDialect,
    MySQLDialect,
    OracleDialect,
    PostgreSQLDialect,
    SQLiteDialect,
    for_name,
)
from iiqsync.errors import FatalError
from iiqsync.identifiers import allocate

OLD_CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "old-tool-config.ini"
RUN_ID = "0123456789abcdef0123456789abcdef"
HOSTILE = 'x"; DROP TABLE Users;--'
ALL_ENTITIES = list(entities.ENTITIES.values())


class CompileOnlyConnection:
    """Stands in for a sa.Connection: Dialect.insert_sql, add_column_sql and
    widen_column_sql read nothing from the connection but ``.dialect``, so a
    SQLAlchemy dialect object that never connects is enough to see their SQL."""

    def __init__(self, dialect):
        self.dialect = dialect


class RecordingCursor:
    """A DBAPI cursor that records what bulk_insert sends to the driver."""

    def __init__(self, calls: list):
        self.calls = calls
        self.fast_executemany = False
        self.sizes = None
        self.closed = False

    def setinputsizes(self, *sizes):
        self.sizes = sizes[0] if len(sizes) == 1 and isinstance(sizes[0], list) else list(sizes)

    def executemany(self, sql, params):
        self.calls.append((sql, params, self.sizes, self.fast_executemany))

    def close(self):
        self.closed = True


class RecordingConnection(CompileOnlyConnection):
    """Also records what bulk_insert would send to the driver, through the raw DBAPI
    cursor (``conn.connection.dbapi_connection.cursor()``) as the fast paths use it."""

    def __init__(self, dialect):
        super().__init__(dialect)
        self.calls: list[tuple] = []
        self.cursors: list[RecordingCursor] = []
        self.connection = SimpleNamespace(dbapi_connection=SimpleNamespace(cursor=self._cursor))

    def _cursor(self):
        self.cursors.append(RecordingCursor(self.calls))
        return self.cursors[-1]


def sa_mssql():
    return mssql.dialect(paramstyle="qmark")  # what pyodbc uses


def sa_oracle():
    return oracle.dialect()  # named binds, as oracledb uses


SA_DIALECTS = {
    "mssql": sa_mssql,
    "oracle": sa_oracle,
    "postgresql": postgresql.dialect,
    "mysql": mysql.dialect,
    "sqlite": sqlite.dialect,
}
OURS = {
    "mssql": MSSQLDialect,
    "oracle": OracleDialect,
    "postgresql": PostgreSQLDialect,
    "mysql": MySQLDialect,
    "sqlite": SQLiteDialect,
}

# What each column kind becomes at [Database] StringLength 255.
TYPES = {
    "mssql": {k.GUID: "UNIQUEIDENTIFIER", k.TEXT: "NVARCHAR(255)", k.LONGTEXT: "NVARCHAR(max)",
              k.INT: "INTEGER", k.BOOL: "BIT", k.FLOAT: "FLOAT(53)", k.MONEY: "NUMERIC(19, 4)",
              k.DATETIME: "DATETIME2"},
    "oracle": {k.GUID: "VARCHAR2(36 CHAR)", k.TEXT: "NVARCHAR2(255)", k.LONGTEXT: "NCLOB",
               k.INT: "INTEGER", k.BOOL: "SMALLINT", k.FLOAT: "BINARY_DOUBLE",
               k.MONEY: "NUMERIC(19, 4)", k.DATETIME: "TIMESTAMP"},
    "postgresql": {k.GUID: "UUID", k.TEXT: "TEXT", k.LONGTEXT: "TEXT", k.INT: "INTEGER",
                   k.BOOL: "BOOLEAN", k.FLOAT: "DOUBLE PRECISION", k.MONEY: "NUMERIC(19, 4)",
                   k.DATETIME: "TIMESTAMP WITHOUT TIME ZONE"},
    "mysql": {k.GUID: "CHAR(36)", k.TEXT: "VARCHAR(255)", k.LONGTEXT: "MEDIUMTEXT",
              k.INT: "INTEGER", k.BOOL: "BOOL", k.FLOAT: "DOUBLE", k.MONEY: "NUMERIC(19, 4)",
              k.DATETIME: "DATETIME(6)"},
    "sqlite": {k.GUID: "VARCHAR(36)", k.TEXT: "TEXT", k.LONGTEXT: "TEXT", k.INT: "INTEGER",
               k.BOOL: "BOOLEAN", k.FLOAT: "FLOAT", k.MONEY: "NUMERIC(19, 4)",
               k.DATETIME: "DATETIME"},
}
QUOTE = {"mssql": ("[", "]"), "oracle": ('"', '"'), "postgresql": ('"', '"'),
         "mysql": ("`", "`"), "sqlite": ('"', '"')}
# A quoted identifier, with the dialect's doubled closing quote as the escape.
QUOTED = {
    "mssql": re.compile(r"\[(?:[^\]]|\]\])*\]"),
    "oracle": re.compile(r'"(?:[^"]|"")*"'),
}


@pytest.fixture(scope="module")
def settings():
    return config.load(OLD_CONFIG, env={})


def q(name: str, dialect: str) -> str:
    opening, closing = QUOTE[dialect]
    return opening + name.replace(closing, closing * 2) + closing


def compile_ddl(element, dialect: str) -> str:
    return str(sa.schema.CreateTable(element).compile(dialect=SA_DIALECTS[dialect]()))


def compile_sql(statement, dialect: str) -> str:
    return str(statement.compile(dialect=SA_DIALECTS[dialect]()))


def tables_for(entity, settings, dialect: str, cf_columns=()):
    """(final, staging) for the main table, and for the custom-field table if any,
    built the way a run builds them (swap.build)."""
    ours = OURS[dialect]()
    layout = [{"type_id": f"{i:08x}-0000-0000-0000-000000000000", "column": c, "name": c,
               "editor": 1} for i, c in enumerate(cf_columns)]
    built = swap.build(entity, settings, ours, RUN_ID, layout)
    return [(final, stage) for final, stage, _cols in built.pairs]


def outside_quotes(sql: str, dialect: str) -> str:
    return QUOTED[dialect].sub("<id>", sql)


# -- CREATE TABLE of every final table ---------------------------------------------------------


@pytest.mark.parametrize("dialect", list(OURS))
@pytest.mark.parametrize("entity", ALL_ENTITIES, ids=lambda e: e.name)
def test_final_table_ddl(settings, entity, dialect):
    (main, _), *_ = tables_for(entity, settings, dialect)
    ddl = compile_ddl(main, dialect)
    assert ddl.strip().startswith(f"CREATE TABLE {q(entity.default_table, dialect)} (")
    assert "UNLOGGED" not in ddl
    for column in entity.columns:
        name = q(column.name, dialect)
        line = next((ln.strip().rstrip(",").strip() for ln in ddl.splitlines()
                     if ln.strip().startswith(name + " ")), None)
        assert line is not None, (column.name, ddl)
        expected = f"{name} {TYPES[dialect][column.kind]}"
        if column.name == entity.key:
            assert line == expected + " NOT NULL"
        elif dialect == "mssql":
            assert line == expected + " NULL"
        else:
            assert line == expected
    assert f"PRIMARY KEY ({q(entity.key, dialect)})" in ddl


@pytest.mark.parametrize("entity", ALL_ENTITIES, ids=lambda e: e.name)
def test_mssql_final_types_by_name(settings, entity):
    ddl = compile_ddl(tables_for(entity, settings, "mssql")[0][0], "mssql")
    assert f"[{entity.key}] UNIQUEIDENTIFIER NOT NULL" in ddl
    assert "[CreatedDate] DATETIME2 NULL" in ddl
    if entity is entities.ASSETS:
        assert "[AssetTag] NVARCHAR(255) NULL" in ddl
        assert "[Notes] NVARCHAR(max) NULL" in ddl
        assert "[HasOpenTickets] BIT NULL" in ddl
        assert "[OpenTickets] INTEGER NULL" in ddl
        assert "[PurchasePrice] NUMERIC(19, 4) NULL" in ddl


@pytest.mark.parametrize("entity", ALL_ENTITIES, ids=lambda e: e.name)
def test_oracle_final_types_by_name(settings, entity):
    ddl = compile_ddl(tables_for(entity, settings, "oracle")[0][0], "oracle")
    assert re.search(rf'"{entity.key}" VARCHAR2?\(36( CHAR)?\) NOT NULL', ddl)
    assert '"CreatedDate" TIMESTAMP' in ddl
    if entity is entities.ASSETS:
        assert '"AssetTag" NVARCHAR2(255)' in ddl
        assert '"Notes" NCLOB' in ddl


def test_oracle_guid_is_varchar2(settings):
    ddl = compile_ddl(tables_for(entities.ASSETS, settings, "oracle")[0][0], "oracle")
    assert '"AssetId" VARCHAR2(36' in ddl


def test_string_length_setting_reaches_the_ddl(settings):
    wide = settings.replace(Database_StringLength=1000)
    huge = settings.replace(Database_StringLength=4000)
    assert "[AssetTag] NVARCHAR(1000) NULL" in compile_ddl(
        tables_for(entities.ASSETS, wide, "mssql")[0][0], "mssql")
    assert '"AssetTag" NVARCHAR2(1000)' in compile_ddl(
        tables_for(entities.ASSETS, wide, "oracle")[0][0], "oracle")
    # NVARCHAR2 holds at most 2000 characters; NVARCHAR(n) at most 4000.
    assert '"AssetTag" NVARCHAR2(2000)' in compile_ddl(
        tables_for(entities.ASSETS, huge, "oracle")[0][0], "oracle")
    assert "[AssetTag] NVARCHAR(4000) NULL" in compile_ddl(
        tables_for(entities.ASSETS, huge, "mssql")[0][0], "mssql")


def test_schema_qualifies_every_table(settings):
    reporting = settings.replace(Database_Schema="reporting")
    (main, stage), (cf, cf_stage) = tables_for(entities.ASSETS, reporting, "mssql", ["Color"])
    assert compile_ddl(main, "mssql").strip().startswith("CREATE TABLE reporting.[Assets] (")
    assert compile_ddl(stage, "mssql").strip().startswith(
        "CREATE TABLE reporting.iiqs_0123456789ab_main (")
    delete, insert = MSSQLDialect().replace_statements(cf, cf_stage, ["AssetId", "Color"])
    assert compile_sql(delete, "mssql") == "DELETE FROM reporting.[AssetCustomFields]"
    assert "FROM reporting.iiqs_0123456789ab_cf" in compile_sql(insert, "mssql")


# -- staging tables ----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", list(OURS))
@pytest.mark.parametrize("entity", ALL_ENTITIES, ids=lambda e: e.name)
def test_staging_table_ddl(settings, entity, dialect):
    (main, stage), *_ = tables_for(entity, settings, dialect)
    ddl = compile_ddl(stage, dialect)
    prefix = "CREATE UNLOGGED TABLE" if dialect == "postgresql" else "CREATE TABLE"
    assert ddl.strip().startswith(f"{prefix} iiqs_0123456789ab_main (")
    assert "PRIMARY KEY" not in ddl
    assert f"{q(entity.key, dialect)} " in ddl
    assert "iiqsync_page INTEGER NOT NULL" in ddl
    assert [c.name for c in stage.columns] == [c.name for c in entity.columns] + ["iiqsync_page"]
    assert all(c.nullable for c in stage.columns if c.name != "iiqsync_page")
    assert ddl.count(" NOT NULL") == 1


def test_mssql_staging_text_is_unbounded_and_keeps_other_types(settings):
    (_, stage), _ = tables_for(entities.ASSETS, settings, "mssql")
    ddl = compile_ddl(stage, "mssql")
    assert "[AssetTag] NVARCHAR(max) NULL" in ddl
    assert "[AssetId] UNIQUEIDENTIFIER NULL" in ddl
    assert "[CreatedDate] DATETIME2 NULL" in ddl
    assert "[IsDeleted] BIT NULL" in ddl
    assert "NVARCHAR(255)" not in ddl


def test_oracle_staging_text_is_a_clob(settings):
    (_, stage), _ = tables_for(entities.ASSETS, settings, "oracle")
    ddl = compile_ddl(stage, "oracle")
    assert '"AssetTag" NCLOB' in ddl
    assert '"CreatedDate" TIMESTAMP' in ddl
    assert "NVARCHAR2(255)" not in ddl


@pytest.mark.parametrize("which", ["main", "cf"])
def test_oracle_staging_key_is_not_a_lob(settings, which):
    main, cf = tables_for(entities.ASSETS, settings, "oracle", ["Color"])
    _, stage = main if which == "main" else cf
    key_ddl = str(sa.schema.CreateColumn(stage.c.AssetId).compile(dialect=sa_oracle()))
    assert "LOB" not in key_ddl


def test_mysql_datetime_keeps_microseconds(settings):
    for table in tables_for(entities.TICKETS, settings, "mysql")[0]:
        ddl = compile_ddl(table, "mysql")
        for name in ("CreatedDate", "ModifiedDate", "ClosedDate", "DueDate"):
            assert f"`{name}` DATETIME(6)" in ddl


def test_postgresql_only_staging_is_unlogged(settings):
    (main, stage), (cf, cf_stage) = tables_for(entities.USERS, settings, "postgresql", ["Color"])
    assert compile_ddl(stage, "postgresql").lstrip().startswith("CREATE UNLOGGED TABLE")
    assert compile_ddl(cf_stage, "postgresql").lstrip().startswith("CREATE UNLOGGED TABLE")
    assert compile_ddl(main, "postgresql").lstrip().startswith('CREATE TABLE "Users"')
    assert compile_ddl(cf, "postgresql").lstrip().startswith('CREATE TABLE "UserCustomFields"')


@pytest.mark.parametrize("dialect", ["mssql", "oracle"])
def test_custom_field_table_ddl(settings, dialect):
    (_, _), (cf, stage) = tables_for(entities.TICKETS, settings, dialect, ["Color", "Select"])
    ddl = compile_ddl(cf, dialect)
    value_type = {"mssql": "NVARCHAR(max) NULL", "oracle": "NCLOB"}[dialect]
    assert f"{q('Color', dialect)} {value_type}" in ddl
    assert f"{q('Select', dialect)} {value_type}" in ddl
    assert f"{q('TicketId', dialect)} {TYPES[dialect][k.GUID]} NOT NULL" in ddl
    assert compile_ddl(stage, dialect).strip().startswith("CREATE TABLE iiqs_0123456789ab_cf (")


# -- the swap ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["mssql", "oracle"])
@pytest.mark.parametrize("entity", ALL_ENTITIES, ids=lambda e: e.name)
def test_swap_statements(settings, entity, dialect):
    (main, stage), *_ = tables_for(entity, settings, dialect)
    columns = [c.name for c in entity.columns]
    statements = OURS[dialect]().replace_statements(main, stage, columns)
    assert len(statements) == 2
    delete, insert = (compile_sql(s, dialect) for s in statements)
    table = q(entity.default_table, dialect)
    assert delete == f"DELETE FROM {table}"
    quoted = ", ".join(q(c, dialect) for c in columns)
    selected = ", ".join(f"iiqs_0123456789ab_main.{q(c, dialect)}" for c in columns)
    assert " ".join(insert.split()) == (
        f"INSERT INTO {table} ({quoted}) SELECT {selected} FROM iiqs_0123456789ab_main")


def test_swap_of_mssql_assets_reads_as_expected(settings):
    (main, stage), _ = tables_for(entities.ASSETS, settings, "mssql")
    delete, insert = MSSQLDialect().replace_statements(main, stage, ["AssetId", "AssetTag"])
    assert compile_sql(delete, "mssql") == "DELETE FROM [Assets]"
    assert " ".join(compile_sql(insert, "mssql").split()) == (
        "INSERT INTO [Assets] ([AssetId], [AssetTag]) SELECT iiqs_0123456789ab_main.[AssetId], "
        "iiqs_0123456789ab_main.[AssetTag] FROM iiqs_0123456789ab_main")


@pytest.mark.parametrize("dialect", ["mssql", "oracle"])
def test_hostile_names_only_inside_quotes(settings, dialect):
    taken = {"AssetId"}
    allocated = [allocate(n, "CustomField_x", taken, OURS[dialect]().max_identifier_bytes)
                 for n in ("Select", "order", HOSTILE, "from", "Asset Id")]
    assert allocated == ["Select", "order", "xDROPTABLEUsers", "from", "AssetId_2"]
    raw = [HOSTILE, "a]b", 'c"d', "group"]  # never produced by allocate, quoted anyway
    names = allocated + raw
    _, (cf, stage) = tables_for(entities.ASSETS, settings, dialect, names)
    columns = ["AssetId", *names]
    ours = OURS[dialect]()
    conn = CompileOnlyConnection(SA_DIALECTS[dialect]())
    delete, insert = (compile_sql(s, dialect) for s in ours.replace_statements(cf, stage, columns))
    assert delete == f"DELETE FROM {q('AssetCustomFields', dialect)}"
    texts = [compile_ddl(cf, dialect), compile_ddl(stage, dialect), insert,
             ours.insert_sql(conn, stage, [*columns, "iiqsync_page"]),
             ours.add_column_sql(conn, cf, cf.c[HOSTILE])]
    for text in texts:
        assert q(HOSTILE, dialect) in text
        rest = outside_quotes(text, dialect)
        for word in ("DROP", "Users", "Select", "order", "a]b", 'c"d', "group"):
            assert word not in rest, (word, text)
    assert q("a]b", dialect) in texts[0] and q('c"d', dialect) in texts[0]


# -- inserts and additive changes -------------------------------------------------------------------


def test_mssql_insert_sql_uses_qmarks(settings):
    (_, stage), _ = tables_for(entities.ASSETS, settings, "mssql")
    columns = [c.name for c in stage.columns]
    sql = MSSQLDialect().insert_sql(CompileOnlyConnection(sa_mssql()), stage, columns)
    head, values = sql.split(" VALUES ")
    assert head.startswith("INSERT INTO iiqs_0123456789ab_main ([AssetId], [SiteId], ")
    assert head.endswith(", [StorageLocationName], iiqsync_page)")
    assert values == "(" + ", ".join("?" * len(columns)) + ")"


def test_oracle_insert_sql_uses_positional_named_binds(settings):
    (_, stage), _ = tables_for(entities.ASSETS, settings, "oracle")
    columns = [c.name for c in stage.columns]
    sql = OracleDialect().insert_sql(CompileOnlyConnection(sa_oracle()), stage, columns)
    assert sql.startswith('INSERT INTO iiqs_0123456789ab_main ("AssetId", "SiteId", ')
    assert sql.endswith("VALUES (" + ", ".join(f":p{i}" for i in range(len(columns))) + ")")


def test_mssql_add_column_as_finalize_calls_it(settings):
    _, (cf, _) = tables_for(entities.ASSETS, settings, "mssql", ["Color"])
    added = sa.Column("Bus Route", MSSQLDialect().custom_field_type(255), nullable=True)
    sql = MSSQLDialect().add_column_sql(CompileOnlyConnection(sa_mssql()), cf, added)
    assert sql == "ALTER TABLE [AssetCustomFields] ADD [Bus Route] NVARCHAR(max) NULL"


def test_oracle_add_column_as_finalize_calls_it(settings):
    _, (cf, _) = tables_for(entities.ASSETS, settings, "oracle", ["Color"])
    added = sa.Column("Bus Route", OracleDialect().custom_field_type(255), nullable=True)
    sql = OracleDialect().add_column_sql(CompileOnlyConnection(sa_oracle()), cf, added)
    assert sql == 'ALTER TABLE "AssetCustomFields" ADD "Bus Route" NCLOB'


def test_mssql_widen_column(settings):
    (main, _), _ = tables_for(entities.ASSETS, settings, "mssql")
    ours = MSSQLDialect()
    sql = ours.widen_column_sql(CompileOnlyConnection(sa_mssql()), main, main.c.AssetTag,
                                ours.widened_type(main.c.AssetTag, 300))
    assert sql == "ALTER TABLE [Assets] ALTER COLUMN [AssetTag] NVARCHAR(max) NULL"


def test_oracle_widen_column_refuses_with_advice(settings):
    (main, _), _ = tables_for(entities.ASSETS, settings, "oracle")
    ours = OracleDialect()
    with pytest.raises(FatalError) as excinfo:
        ours.widen_column_sql(CompileOnlyConnection(sa_oracle()), main, main.c.AssetTag,
                              ours.widened_type(main.c.AssetTag, 300))
    assert "Assets.AssetTag" in str(excinfo.value)
    assert "[Database] StringLength" in str(excinfo.value)


def test_mysql_widen_column(settings):
    (main, _), _ = tables_for(entities.ASSETS, settings, "mysql")
    ours = MySQLDialect()
    sql = ours.widen_column_sql(CompileOnlyConnection(mysql.dialect()), main, main.c.AssetTag,
                                ours.widened_type(main.c.AssetTag, 300))
    assert sql == "ALTER TABLE `Assets` MODIFY COLUMN `AssetTag` MEDIUMTEXT NULL"


# -- changing an adopted table's column types ------------------------------------------------------------
# The old tool's columns each dialect changes (CHAR(32) GUIDs, DATE timestamps, a scale-0
# price): what the statement says, and that a key column stays NOT NULL where the
# statement restates the column.


def test_mssql_change_column_type(settings):
    (main, _), _ = tables_for(entities.ASSETS, settings, "mssql")
    ours, conn = MSSQLDialect(), CompileOnlyConnection(sa_mssql())
    assert ours.change_type_sql(conn, main, "CreatedDate", main.c.CreatedDate.type) == (
        "ALTER TABLE [Assets] ALTER COLUMN [CreatedDate] DATETIME2 NULL")
    assert ours.change_type_sql(conn, main, "PurchasePrice", main.c.PurchasePrice.type) == (
        "ALTER TABLE [Assets] ALTER COLUMN [PurchasePrice] NUMERIC(19, 4) NULL")
    assert ours.change_type_sql(conn, main, "AssetId", main.c.AssetId.type, nullable=False) == (
        "ALTER TABLE [Assets] ALTER COLUMN [AssetId] UNIQUEIDENTIFIER NOT NULL")


def test_oracle_change_column_type(settings):
    (main, _), _ = tables_for(entities.ASSETS, settings, "oracle")
    ours, conn = OracleDialect(), CompileOnlyConnection(sa_oracle())
    assert ours.change_type_sql(conn, main, "CreatedDate", main.c.CreatedDate.type) == (
        'ALTER TABLE "Assets" MODIFY ("CreatedDate" TIMESTAMP)')
    assert ours.change_type_sql(conn, main, "AssetId", main.c.AssetId.type, nullable=False) == (
        'ALTER TABLE "Assets" MODIFY ("AssetId" VARCHAR2(36 CHAR))')
    assert ours.change_type_sql(conn, main, "PurchasePrice", main.c.PurchasePrice.type) == (
        'ALTER TABLE "Assets" MODIFY ("PurchasePrice" NUMERIC(19, 4))')


def test_mysql_and_postgresql_change_column_type(settings):
    (main, _), _ = tables_for(entities.ASSETS, settings, "mysql")
    sql = MySQLDialect().change_type_sql(CompileOnlyConnection(mysql.dialect()), main, "AssetId",
                                         main.c.AssetId.type, nullable=False)
    assert sql == "ALTER TABLE `Assets` MODIFY COLUMN `AssetId` CHAR(36) NOT NULL"
    (main, _), _ = tables_for(entities.ASSETS, settings, "postgresql")
    sql = PostgreSQLDialect().change_type_sql(CompileOnlyConnection(postgresql.dialect()), main,
                                              "CreatedDate", main.c.CreatedDate.type)
    assert sql == ('ALTER TABLE "Assets" ALTER COLUMN "CreatedDate" TYPE TIMESTAMP WITHOUT TIME '
                   'ZONE USING "CreatedDate"::TIMESTAMP WITHOUT TIME ZONE')


def test_sqlite_cannot_change_a_column_type_and_says_what_to_do(settings):
    (main, _), _ = tables_for(entities.ASSETS, settings, "sqlite")
    with pytest.raises(FatalError, match="SQLite cannot change a column's type in place"):
        SQLiteDialect().change_type_sql(CompileOnlyConnection(sqlite.dialect()), main, "Name",
                                        main.c.Name.type)


# -- identifier limits ---------------------------------------------------------------------------------


def test_oracle_version_sets_the_identifier_limit():
    assert OracleDialect().max_identifier_bytes == 128
    assert OracleDialect(server_version=(12, 2, 0, 1)).max_identifier_bytes == 128
    assert OracleDialect(server_version=(19, 0)).max_identifier_bytes == 128
    assert OracleDialect(server_version=(12, 1, 0, 2)).max_identifier_bytes == 30
    assert OracleDialect(server_version=(11, 2)).max_identifier_bytes == 30
    assert MSSQLDialect().max_identifier_bytes == 128


def test_long_custom_field_names_cut_for_oracle_12_1(settings):
    old = OracleDialect(server_version=(12, 1))
    names = ["Student device insurance policy number (2024-2025)",
             "Student device insurance policy number (2025-2026)",
             "Student device insurance policy holder name", "Short"]
    taken = {"AssetId"}
    columns = [allocate(n, "CustomField_x", taken, old.max_identifier_bytes) for n in names]
    assert columns == ["Studentdeviceinsurancepolicynu", "Studentdeviceinsurancepolicy_2",
                       "Studentdeviceinsurancepolicyho", "Short"]
    md = sa.MetaData()
    cf = schema.custom_field_table(md, entities.ASSETS, settings, old, columns)
    stage = schema.staging_table(md, schema.staging_name(RUN_ID, "cf"), cf, old, set(columns))
    for text in (compile_ddl(cf, "oracle"), compile_ddl(stage, "oracle"),
                 *(compile_sql(s, "oracle") for s in old.replace_statements(
                     cf, stage, ["AssetId", *columns]))):
        for identifier in re.findall(r'"((?:[^"]|"")*)"', text):
            assert len(identifier.encode()) <= 30, identifier
    assert len(stage.name) <= 30


def test_same_names_kept_whole_for_oracle_12_2():
    name = "Student device insurance policy number (2024-2025)"
    assert allocate(name, "f", set(), OracleDialect(server_version=(19, 3)).max_identifier_bytes) \
        == "Studentdeviceinsurancepolicynumber20242025"


def _engine_stand_in(version_after_connect):
    """An engine as db.dialect_for sees it: a SQLAlchemy Oracle dialect whose
    server_version_info is only known once a connection has been made."""
    sa_dialect = sa_oracle()
    assert sa_dialect.server_version_info is None

    class Connection:
        def __enter__(self):
            sa_dialect.server_version_info = version_after_connect
            return self

        def __exit__(self, *exc):
            return False

    return SimpleNamespace(dialect=sa_dialect, connect=Connection)


def test_dialect_for_reads_oracle_version_once_known():
    stand_in = _engine_stand_in((12, 1, 0, 2))
    stand_in.dialect.server_version_info = (12, 1, 0, 2)
    assert db.dialect_for(stand_in).max_identifier_bytes == 30


def test_dialect_for_oracle_before_first_connection():
    assert db.dialect_for(_engine_stand_in((12, 1, 0, 2))).max_identifier_bytes == 30


# -- SQL Server's 2100-parameter limit ----------------------------------------------------------------------


def test_mssql_rows_per_batch_stays_under_2100_parameters():
    ours = MSSQLDialect()
    for n_columns in range(1, 1025):  # SQL Server allows at most 1024 columns
        rows = ours.rows_per_batch(n_columns)
        assert rows >= 1
        assert rows * n_columns < 2100, n_columns
        assert rows <= ours.batch_rows
        assert (rows + 1) * n_columns >= 2100 or rows == ours.batch_rows, n_columns


def test_mssql_rows_per_batch_for_real_tables(settings):
    ours = MSSQLDialect()
    for entity in ALL_ENTITIES:
        n = len(entity.columns) + 1  # with the page column
        assert ours.rows_per_batch(n) * n < 2100
    assert ours.rows_per_batch(len(entities.ASSETS.columns) + 1) == 2099 // 52
    assert ours.rows_per_batch(1) == 1000


def test_mssql_bulk_insert_sends_batches_under_the_limit(settings):
    (_, stage), _ = tables_for(entities.ASSETS, settings, "mssql")
    columns = [c.name for c in stage.columns]
    rows = [tuple([f"{i:08d}-0000-0000-0000-000000000000"] + [None] * (len(columns) - 1))
            for i in range(500)]
    conn = RecordingConnection(sa_mssql())
    MSSQLDialect().bulk_insert(conn, stage, columns, rows)
    sizes = [len(call[1]) for call in conn.calls]
    assert sum(sizes) == 500
    assert max(sizes) * len(columns) < 2100
    assert [r for call in conn.calls for r in call[1]] == rows
    assert {call[0] for call in conn.calls} == {MSSQLDialect().insert_sql(conn, stage, columns)}
    assert all(call[3] for call in conn.calls), "fast_executemany is on for every batch"
    assert all(len(call[2]) == len(columns) for call in conn.calls)
    assert [c.closed for c in conn.cursors] == [True]


def test_mssql_bulk_insert_of_nothing_sends_nothing(settings):
    (_, stage), _ = tables_for(entities.ASSETS, settings, "mssql")
    conn = RecordingConnection(sa_mssql())
    MSSQLDialect().bulk_insert(conn, stage, ["AssetId"], [])
    assert conn.calls == []


def _tricky_asset_rows(columns, n=3):
    """Rows for the Assets staging table: NULLs first, then long and non-BMP text."""
    rows = []
    for i in range(n):
        row = dict.fromkeys(columns)
        row["AssetId"] = f"{i:08d}-0000-0000-0000-000000000000"
        row["iiqsync_page"] = 7
        if i:
            row["Name"] = "x" * (10 * i)
            row["Notes"] = "\U0001F600" * 3000 if i == 2 else "short"  # 6000 UTF-16 units
            row["CreatedDate"] = datetime(2024, 1, 2, 3, 4, 5, 123456)
            row["IsDeleted"] = bool(i % 2)
            row["OpenTickets"] = i
            row["PurchasePrice"] = 12.5
        rows.append(tuple(row[c] for c in columns))
    return rows


def test_mssql_input_sizes_are_bounded_by_the_batch(settings):
    (_, stage), _ = tables_for(entities.ASSETS, settings, "mssql")
    columns = [c.name for c in stage.columns]
    sizes = dict(zip(columns, MSSQLDialect().input_sizes(stage, columns, _tricky_asset_rows(columns)),
                     strict=True))
    assert sizes["AssetId"] == (-9, 36, 0)  # NVARCHAR(36) for a UNIQUEIDENTIFIER
    assert sizes["Name"] == (-9, 20, 0)  # the longest Name in the batch
    assert sizes["Notes"] == (-9, 0, 0)  # past 4000 UTF-16 units: NVARCHAR(MAX)
    assert sizes["AssetTag"] == (-9, 1, 0)  # only NULLs: still a bounded NVARCHAR
    assert sizes["CreatedDate"] == (93, 27, 7)  # DATETIME2(7): microseconds kept
    assert sizes["IsDeleted"] == (-7, 1, 0)
    assert sizes["OpenTickets"] == (4, 10, 0)
    assert sizes["PurchasePrice"] == (8, 53, 0)
    assert sizes["iiqsync_page"] == (4, 10, 0)
    short = _tricky_asset_rows(columns, 2)
    assert dict(zip(columns, MSSQLDialect().input_sizes(stage, columns, short), strict=True))[
        "Notes"] == (-9, 5, 0)


def test_mssql_bulk_insert_sets_sizes_per_batch(settings):
    (_, stage), _ = tables_for(entities.ASSETS, settings, "mssql")
    columns = [c.name for c in stage.columns]
    rows = _tricky_asset_rows(columns, 3) * 30  # 90 rows: three batches of at most 40
    conn = RecordingConnection(sa_mssql())
    MSSQLDialect().bulk_insert(conn, stage, columns, rows)
    assert len(conn.calls) == 3
    for _sql, params, sizes, fast in conn.calls:
        assert fast
        assert sizes == MSSQLDialect().input_sizes(stage, columns, params)
    # Booleans go as 0/1, as SQLAlchemy binds them to BIT.
    flags = {r[columns.index("IsDeleted")] for call in conn.calls for r in call[1]}
    assert flags == {None, 0, 1} and all(type(f) is not bool for f in flags)


ORACLE_TYPES = SimpleNamespace(**{name: name for name in (
    "DB_TYPE_TIMESTAMP", "DB_TYPE_BINARY_DOUBLE", "DB_TYPE_NUMBER", "DB_TYPE_NVARCHAR",
    "DB_TYPE_VARCHAR")})


def test_oracle_input_sizes_follow_the_column_types(settings):
    (_, stage), (_, cf_stage) = tables_for(entities.ASSETS, settings, "oracle", ["Color"])
    columns = [c.name for c in stage.columns]
    sizes = dict(zip(columns, OracleDialect().input_sizes(ORACLE_TYPES, stage, columns), strict=True))
    assert sizes["AssetId"] == "DB_TYPE_VARCHAR"  # VARCHAR2(36)
    assert sizes["Name"] == "DB_TYPE_NVARCHAR"  # NCLOB in staging
    assert sizes["Notes"] == "DB_TYPE_NVARCHAR"
    assert sizes["CreatedDate"] == "DB_TYPE_TIMESTAMP"  # not DATE: the fraction is kept
    assert sizes["PurchasePrice"] == "DB_TYPE_NUMBER"  # NUMERIC(19, 4)
    assert sizes["IsDeleted"] == "DB_TYPE_NUMBER"
    assert sizes["OpenTickets"] == "DB_TYPE_NUMBER"
    assert sizes["iiqsync_page"] == "DB_TYPE_NUMBER"
    loc_stage = tables_for(entities.LOCATIONS, settings, "oracle")[0][1]
    loc_cols = [c.name for c in loc_stage.columns]
    loc = dict(zip(loc_cols, OracleDialect().input_sizes(ORACLE_TYPES, loc_stage, loc_cols),
                   strict=True))
    assert loc["Latitude"] == "DB_TYPE_BINARY_DOUBLE"
    cf_cols = [c.name for c in cf_stage.columns]
    assert OracleDialect().input_sizes(ORACLE_TYPES, cf_stage, cf_cols) == [
        "DB_TYPE_VARCHAR", "DB_TYPE_NVARCHAR", "DB_TYPE_NUMBER"]


def test_oracle_bulk_insert_batches_with_input_sizes(settings):
    (_, stage), _ = tables_for(entities.ASSETS, settings, "oracle")
    columns = [c.name for c in stage.columns]
    rows = _tricky_asset_rows(columns, 3) * 700  # 2100 rows: batches of 1000, 1000, 100
    sa_dialect = sa_oracle()
    sa_dialect.dbapi = ORACLE_TYPES
    conn = RecordingConnection(sa_dialect)
    OracleDialect().bulk_insert(conn, stage, columns, rows)
    assert [len(call[1]) for call in conn.calls] == [1000, 1000, 100]
    want = OracleDialect().input_sizes(ORACLE_TYPES, stage, columns)
    assert all(call[2] == want for call in conn.calls)
    assert {call[0] for call in conn.calls} == {OracleDialect().insert_sql(conn, stage, columns)}
    flags = {r[columns.index("IsDeleted")] for call in conn.calls for r in call[1]}
    assert flags == {None, 0, 1} and all(type(f) is not bool for f in flags)


# -- registry -----------------------------------------------------------------------------------------------


def test_registry_names():
    assert type(for_name("mssql")) is MSSQLDialect
    assert type(for_name("oracle")) is OracleDialect
    assert type(for_name("mariadb")) is MySQLDialect
    assert type(for_name("postgresql")) is PostgreSQLDialect
    assert type(for_name("sqlite")) is SQLiteDialect
    assert type(for_name("firebird")) is Dialect
    assert set(REGISTRY) >= {"mssql", "oracle", "mysql", "mariadb", "postgresql", "sqlite"}
