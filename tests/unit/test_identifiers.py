"""iiqsync.identifiers: column names made from hostile custom-field names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from iiqsync import config, customfields, entities, schema, swap
from iiqsync.client import FieldDefinition
from iiqsync.dialects import MSSQLDialect, MySQLDialect, OracleDialect, PostgreSQLDialect, SQLiteDialect
from iiqsync.identifiers import allocate, fit, normalise
from iiqsync.runs import Bookkeeping

OLD_CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "old-tool-config.ini"

# Limits in bytes: PostgreSQL 63, MySQL 64, SQL Server 128, Oracle 128 (30 before 12.2).
LIMITS = {
    "postgresql": PostgreSQLDialect().max_identifier_bytes,
    "mysql": MySQLDialect().max_identifier_bytes,
    "mssql": MSSQLDialect().max_identifier_bytes,
    "oracle": OracleDialect().max_identifier_bytes,
    "oracle-12.1": OracleDialect(server_version=(12, 1)).max_identifier_bytes,
}

LONG = "The serial number that the warranty provider printed on the sticker under the battery"

HOSTILE = [
    "Select", "order", "SELECT", "from", "table", "group",
    'x"; DROP TABLE Users;--', "x'; DROP TABLE Users;--", "a]b[c", "`backtick`",
    "Asset Tag #", "AssetTag#", "asset_tag", "Asset Id", "AssetId", "assetid",
    "", "   ", None, "#", "!!!",
    "Café", "Ünïcödé Straße", "资产编号", "🎉", "🎉 Party 🎉", "Ｆｕｌｌｗｉｄｔｈ",
    "123 Main", "_leading", "trailing_", "iiqsync_page", "%s", "?", ":p0", "$1",
    "tab\there", "new\nline", "nul\x00char",
    LONG, LONG + " (old)", LONG + " (new)", "ä" * 200, "x" * 129,
]


def hostile_names(n: int = 80) -> list:
    """``n`` hostile names: the list above, then long names that differ only at the end."""
    names = list(HOSTILE)
    i = 0
    while len(names) < n:
        names.append(f"{LONG} #{i}")
        i += 1
    return names[:n]


def allocate_all(names, max_bytes: int, key: str = "AssetId") -> list[str]:
    taken = {key}
    return [allocate(name, f"CustomField_{i:04d}", taken, max_bytes)
            for i, name in enumerate(names)]


# -- normalise / fit -----------------------------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("Asset Tag #", "AssetTag"),
    ("AssetTag#", "AssetTag"),
    ('x"; DROP TABLE Users;--', "xDROPTABLEUsers"),
    ("Café", "Cafe"),
    ("Ｆｕｌｌｗｉｄｔｈ", "Fullwidth"),
    ("123 Main", "F123Main"),
    ("_leading", "leading"),
    ("Select", "Select"),
    ("", "FB"),
    (None, "FB"),
    ("🎉", "FB"),
    ("资产编号", "FB"),
    ("   ", "FB"),
])
def test_normalise(name, expected):
    assert normalise(name, "FB") == expected


def test_fit_counts_suffix():
    assert fit("abcdefghij", 8) == "abcdefgh"
    assert fit("abcdefghij", 8, "_2") == "abcdef_2"
    assert fit("abc", 8, "_2") == "abc_2"


# -- allocate --------------------------------------------------------------------------------


def test_keywords_keep_their_text_but_never_collide():
    taken = {"AssetId"}
    assert allocate("Select", "f", taken, 63) == "Select"
    assert allocate("order", "f", taken, 63) == "order"
    assert allocate("SELECT", "f", taken, 63) == "SELECT_2"


def test_injection_text_loses_every_sql_character():
    name = allocate('x"; DROP TABLE Users;--', "f", set(), 63)
    assert re.fullmatch(r"[A-Za-z0-9_]+", name)
    assert name == "xDROPTABLEUsers"


def test_collision_after_normalising_gets_a_suffix():
    taken = {"AssetId"}
    first = allocate("Asset Tag #", "f", taken, 63)
    second = allocate("AssetTag#", "f", taken, 63)
    third = allocate("asset tag", "f", taken, 63)
    assert (first, second, third) == ("AssetTag", "AssetTag_2", "assettag_3")


def test_name_equal_to_key_column_gets_a_suffix():
    taken = {"AssetId"}
    assert allocate("Asset Id", "f", taken, 63) == "AssetId_2"
    assert allocate("assetid", "f", taken, 63) == "assetid_3"
    assert taken == {"AssetId", "AssetId_2", "assetid_3"}


def test_blank_names_use_distinct_fallbacks():
    taken = {"AssetId"}
    got = [allocate(n, "CustomField_1a2b3c4d", taken, 63) for n in ("", None, "   ", "🎉")]
    assert got == ["CustomField_1a2b3c4d", "CustomField_1a2b3c4d_2", "CustomField_1a2b3c4d_3",
                   "CustomField_1a2b3c4d_4"]


def test_suffix_on_a_name_at_the_limit_keeps_the_limit():
    taken = set()
    first = allocate(LONG, "f", taken, 30)
    second = allocate(LONG + " (old)", "f", taken, 30)
    assert first == "Theserialnumberthatthewarranty"
    assert second == "Theserialnumberthatthewarran_2"


@pytest.mark.parametrize("dialect", sorted(LIMITS))
def test_hostile_names_are_distinct_within_limit_and_plain(dialect):
    limit = LIMITS[dialect]
    names = allocate_all(hostile_names(), limit)
    assert len(names) == 80
    assert len({n.lower() for n in names} | {"assetid"}) == 81  # distinct, key not reused
    for name in names:
        assert 0 < len(name.encode("utf-8")) <= limit, name
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), name


def test_limits_are_the_documented_ones():
    assert LIMITS == {"postgresql": 63, "mysql": 64, "mssql": 128, "oracle": 128,
                      "oracle-12.1": 30}


@pytest.mark.parametrize("dialect", sorted(LIMITS))
def test_allocation_is_deterministic(dialect):
    assert allocate_all(hostile_names(), LIMITS[dialect]) == \
        allocate_all(hostile_names(), LIMITS[dialect])


def test_long_names_cut_differently_per_limit():
    short = allocate(LONG, "f", set(), 30)
    long = allocate(LONG, "f", set(), 128)
    assert long.startswith(short)
    assert len(short) == 30 and len(long) == len(normalise(LONG, "f"))


# -- a real table ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings():
    return config.load(OLD_CONFIG, env={})


@pytest.mark.parametrize("limit", [30, 63, 1024])
def test_eighty_hostile_columns_round_trip_in_sqlite(settings, limit):
    names = allocate_all(hostile_names(), limit)
    dialect = SQLiteDialect()
    engine = sa.create_engine("sqlite://")
    table = schema.custom_field_table(sa.MetaData(), entities.ASSETS, settings, dialect, names)
    table.create(engine)
    columns = ["AssetId", *names]
    rows = [(f"00000000-0000-0000-0000-{r:012d}",
             *(f"row {r} value of {n!r} '\"; --" for n in names)) for r in range(3)]
    with engine.begin() as conn:
        dialect.bulk_insert(conn, table, columns, rows)
    with engine.connect() as conn:
        reflected = [c["name"] for c in sa.inspect(conn).get_columns(table.name)]
        back = conn.execute(sa.select(*[table.c[c] for c in columns])
                            .order_by(table.c.AssetId)).fetchall()
    assert reflected == columns
    assert [tuple(r) for r in back] == rows
    assert back[1][names.index("xDROPTABLEUsers") + 1] == "row 1 value of 'xDROPTABLEUsers' '\"; --"
    engine.dispose()


def test_raw_hostile_names_are_quoted_not_pasted(settings):
    # Even names that never went through allocate() reach SQLite only quoted.
    names = ['x"; DROP TABLE Users;--', "order", "a b", "Select", "ä"]
    dialect = SQLiteDialect()
    engine = sa.create_engine("sqlite://")
    md = sa.MetaData()
    victim = sa.Table("Users", md, sa.Column("id", sa.Integer))
    table = sa.Table("Hostile", md, *[sa.Column(n, sa.Text) for n in names])
    md.create_all(engine)
    with engine.begin() as conn:
        dialect.bulk_insert(conn, table, names, [tuple(f"v{i}" for i in range(len(names)))])
    with engine.connect() as conn:
        assert conn.execute(sa.select(table)).fetchall() == [("v0", "v1", "v2", "v3", "v4")]
        assert sa.inspect(conn).has_table(victim.name)
    engine.dispose()


# -- through the custom-field layout -----------------------------------------------------------


def _plan(definitions):
    engine = sa.create_engine("sqlite://")
    books = Bookkeeping(engine, None)
    books.create()
    with engine.connect() as conn:
        layout = customfields.plan_layout(conn, books, entities.ASSETS, definitions, set(), 63)
    engine.dispose()
    return layout


def test_layout_keeps_key_and_names_apart():
    defs = [FieldDefinition(f"{i:08d}-0000-0000-0000-000000000000", name, 1)
            for i, name in enumerate(["Asset Id", "Asset Tag #", "AssetTag#", "", "Select"])]
    layout = _plan(defs)
    assert [e["column"] for e in layout] == ["AssetId_2", "AssetTag", "AssetTag_2",
                                             "CustomField_00000003", "Select"]
    assert all(e["new"] for e in layout)


def test_field_named_like_the_page_column_does_not_break_staging(settings):
    layout = _plan([FieldDefinition("0a0a0a0a-0000-0000-0000-000000000000", "iiqsync_page", 1)])
    assert layout[0]["column"].lower() != schema.PAGE_COLUMN
    tables = swap.build(entities.ASSETS, settings, SQLiteDialect(), "0123456789abcdef", layout)
    assert [c.name for c in tables.cf_stage.columns] == ["AssetId", layout[0]["column"],
                                                        schema.PAGE_COLUMN]
