"""What a user meets after something went wrong: status while a run is going, a
local sync stopped with Ctrl-C or SIGTERM, tables left by an older tool."""

from __future__ import annotations

import signal
import time
import uuid
from decimal import Decimal
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from iiqsync import db, local, pipeline
from iiqsync import entities as k
from iiqsync.entities import ASSETS

from .conftest import make_env, make_settings, run_cli, start_local_sync, wait_for_pages_staged
from .expect import check_custom_fields, check_entity, expected


def test_status_shows_a_run_in_progress(sqlite_url, iiq):
    settings = make_settings(iiq.url, sqlite_url)
    planned = pipeline.plan(settings, "assets", mode="local")
    done = run_cli(["status"], make_env(iiq.url, sqlite_url))
    assert done.returncode == 0, done.stderr
    assert "running" in done.stdout and "Traceback" not in done.stderr
    pipeline.fail(settings, "assets", planned["run_id"], "test over")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_local_sync_frees_the_entity(sig, sqlite_url, iiq, district):
    env = make_env(iiq.url, sqlite_url, IIQSYNC_GENERAL_PAGESIZE=10, IIQSYNC_GENERAL_THREADS=2)
    iiq.configure(latency_ms=150)
    proc = start_local_sync(env)
    wait_for_pages_staged(sqlite_url)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        status, error = conn.exec_driver_sql(
            "SELECT status, error FROM iiqsync_runs WHERE entity = 'assets'").one()
        leftovers = [n for n in sa.inspect(conn).get_table_names() if n.startswith("iiqs_")]
        locks = conn.exec_driver_sql("SELECT COUNT(*) FROM iiqsync_locks").scalar_one()
    engine.dispose()
    assert status == "failed" and "interrupted" in error
    assert leftovers == [] and locks == 0
    iiq.configure(latency_ms=0)
    settings = make_settings(iiq.url, sqlite_url)
    [again] = local.sync(settings, ["assets"])
    assert again["status"] == "succeeded", again


def test_sigterm_while_a_local_sync_plans_is_recorded_as_an_interruption(sqlite_url, iiq):
    """SIGTERM (a cron or systemd timeout) while plan waits on a slow IIQ, before any
    page is read: the run's record says it was interrupted, as it does for one stopped
    while reading pages, not 'KeyboardInterrupt: '."""
    env = make_env(iiq.url, sqlite_url)
    iiq.configure(latency_ms=2500)
    proc = start_local_sync(env, "users")
    engine = sa.create_engine(sqlite_url)
    deadline = time.monotonic() + 30
    started = False
    while not started and time.monotonic() < deadline:
        time.sleep(0.1)
        with engine.connect() as conn:
            started = sa.inspect(conn).has_table("iiqsync_runs") and conn.exec_driver_sql(
                "SELECT COUNT(*) FROM iiqsync_runs WHERE entity = 'users'").scalar_one() > 0
    assert started, "the run never started"
    time.sleep(0.3)  # into plan's first requests, which take 2.5 s
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    iiq.configure(latency_ms=0)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    with engine.connect() as conn:
        status, error, pages = conn.exec_driver_sql(
            "SELECT status, error, pages FROM iiqsync_runs WHERE entity = 'users'").one()
        leftovers = [n for n in sa.inspect(conn).get_table_names() if n.startswith("iiqs_")]
        locks = conn.exec_driver_sql("SELECT COUNT(*) FROM iiqsync_locks").scalar_one()
    engine.dispose()
    assert pages is None, "the signal came after plan"
    assert (status, error) == ("failed", "interrupted (Ctrl-C or SIGTERM)")
    assert leftovers == [] and locks == 0


def test_tables_made_by_an_older_tool_are_reused(pg_url, iiq, district):
    """An Assets table with VARCHAR ids and dates and a short Name column (as an older
    tool may have made it) keeps working: values fit, the short column is widened."""
    engine = db.get_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql('CREATE TABLE "Assets" ("AssetId" varchar(255) PRIMARY KEY, '
                             '"CreatedDate" varchar(255), "Name" varchar(5), "Legacy" int)')
        conn.exec_driver_sql('INSERT INTO "Assets" ("AssetId", "Legacy") VALUES (\'x\', 1)')
    settings = make_settings(iiq.url, pg_url)
    [result] = local.sync(settings, ["assets"])
    assert result["status"] == "succeeded", result
    with engine.connect() as conn:
        names = conn.exec_driver_sql('SELECT COUNT(*), MAX(length("Name")) FROM "Assets"').one()
        kinds = dict(conn.exec_driver_sql(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'Assets'").fetchall())
    assert names[0] == district.count("assets") and names[1] > 5
    assert kinds["Name"] == "text" and kinds["AssetId"] == "character varying"
    assert "ModelName" in kinds and "Legacy" in kinds  # added, and left alone
    items = list(district.items("assets"))
    with engine.connect() as conn:
        ids = {r[0] for r in conn.exec_driver_sql('SELECT "AssetId" FROM "Assets"')}
    assert ids == {i["AssetId"] for i in items}, "the old row is replaced by IIQ's rows"


# The old tool's Assets declaration (IncidentIQ-Data-Sync, asset.py): GUIDs as
# sqlalchemy_utils' UUIDType(binary=False), timestamps as Date, the price as Numeric,
# text as String(StringLength); two columns under names iiqsync does not use.
OLD_TOOL_ASSETS = [
    ("AssetId", "guid"), ("SiteId", "guid"), ("ProductId", "guid"), ("CreatedDate", "date"),
    ("ModifiedDate", "date"), ("AssetTypeId", "guid"), ("AssetTypeName", "text"),
    ("IsDeleted", "bool"), ("IsTraining", "bool"), ("StatusTypeId", "guid"), ("AssetTag", "text"),
    ("SerialNumber", "text"), ("ExternalId", "text"), ("Name", "text"), ("CanOwnerManage", "bool"),
    ("CanSubmitTicket", "bool"), ("IsFavorite", "bool"), ("ModelId", "guid"), ("ModelName", "text"),
    ("OwnerId", "guid"), ("OwnerName", "text"), ("LocationId", "guid"), ("LocationName", "text"),
    ("LocationDetails", "text"), ("LocationRoomId", "guid"), ("LocationRoomName", "text"),
    ("Notes", "text"), ("HasOpenTicket", "bool"), ("OpenTicket", "int"), ("PurchasedDate", "date"),
    ("DeployedDate", "date"), ("RetiredDate", "date"), ("PurchasePrice", "numeric"),
    ("PurchasePoNumber", "text"), ("WarrantyExpirationDate", "date"), ("WarrantyInfo", "text"),
    ("LastInventoryDate", "date"), ("InvoiceNumber", "text"), ("Vendor", "text"),
    ("InsuranceExpirationDate", "date"), ("InsuranceInfo", "text"), ("FundingSourceId", "guid"),
    ("IsReadOnly", "bool"), ("StorageUnitNumber", "text"), ("StorageSlotNumber", "int"),
    ("StorageLocationId", "guid"), ("StorageLocationName", "text"),
]
# What SQLAlchemy made of those types on each database.
OLD_TOOL_TYPES = {
    "mysql": {"guid": "CHAR(32)", "date": "DATE", "text": "VARCHAR(255)", "bool": "BOOL",
              "int": "INTEGER", "numeric": "NUMERIC"},  # NUMERIC is DECIMAL(10,0) here
    "postgresql": {"guid": "UUID", "date": "DATE", "text": "VARCHAR(255)", "bool": "BOOLEAN",
                   "int": "INTEGER", "numeric": "NUMERIC"},
    "sqlite": {"guid": "CHAR(32)", "date": "DATE", "text": "VARCHAR(255)", "bool": "BOOLEAN",
               "int": "INTEGER", "numeric": "NUMERIC"},
}
OLD_ID = "0123456789abcdef0123456789abcdef"  # how UUIDType(binary=False) wrote a GUID


def create_old_tool_assets(engine: sa.Engine, **declared: str) -> None:
    """The old tool's Assets table with one row of its own; ``declared`` gives some
    columns another type."""
    q = engine.dialect.identifier_preparer.quote
    types = OLD_TOOL_TYPES[engine.dialect.name]
    cols = ", ".join(f"{q(name)} {declared.get(name, types[kind])}"
                     + (" NOT NULL" if name == "AssetId" else "")
                     for name, kind in OLD_TOOL_ASSETS)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {q('Assets')} ({cols}, PRIMARY KEY ({q('AssetId')}))")
        conn.execute(sa.text(
            f"INSERT INTO {q('Assets')} ({q('AssetId')}, {q('Name')}, {q('CreatedDate')}, "
            f"{q('PurchasePrice')}, {q('OpenTicket')}) VALUES (:id, 'old', '2020-01-02', 12, 3)"),
            {"id": str(uuid.UUID(OLD_ID)) if engine.dialect.name == "postgresql" else OLD_ID})


def old_tool_rows(engine: sa.Engine) -> list[tuple]:
    q = engine.dialect.identifier_preparer.quote
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(
            f"SELECT {q('AssetId')}, {q('Name')}, {q('CreatedDate')}, {q('PurchasePrice')} "
            f"FROM {q('Assets')} ORDER BY {q('AssetId')}")]


def test_old_tool_tables_on_mariadb_keep_times_cents_and_guids(mysql_url, iiq, district):
    """The old tool's tables on MariaDB: CHAR(32) GUIDs (the key too, in Assets and
    in AssetCustomFields), DATE timestamps, a DECIMAL(10,0) price, and a view over
    them. The first sync changes those columns to iiqsync's own types, and then
    every row is IIQ's, with its time of day and its cents, also through the view."""
    engine = db.get_engine(mysql_url)
    create_old_tool_assets(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE AssetCustomFields (AssetId CHAR(32) NOT NULL "
                             "PRIMARY KEY)")
        conn.exec_driver_sql("CREATE VIEW asset_costs AS SELECT AssetId, CreatedDate, "
                             "PurchasePrice FROM Assets")
    settings = make_settings(iiq.url, mysql_url)
    [result] = local.sync(settings, ["assets"])
    assert result["status"] == "succeeded", result
    changes = result["schema_changes"]
    for change in ("changed Assets.AssetId from CHAR(32) to CHAR(36)",
                   "changed Assets.CreatedDate from DATE to DATETIME(6) so it keeps the time "
                   "of day",
                   "changed Assets.PurchasePrice from DECIMAL(10, 0) to NUMERIC(19, 4) so it "
                   "keeps 4 decimal places",
                   "changed AssetCustomFields.AssetId from CHAR(32) to CHAR(36)"):
        assert any(c.startswith(change) for c in changes), (change, changes)
    assert not any(".Name " in c or ".IsDeleted " in c for c in changes), \
        "VARCHAR(255) and BOOL already hold what iiqsync stores"
    items = list(district.items("assets"))
    check_entity(engine, ASSETS, items, "Assets")
    check_custom_fields(engine, ASSETS, items, "AssetCustomFields")
    with engine.connect() as conn:
        kinds = {r[0]: (r[1], r[2]) for r in conn.exec_driver_sql(
            "SELECT column_name, column_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = 'Assets'")}
        through_view = {r[0]: r[1:] for r in conn.exec_driver_sql(
            "SELECT AssetId, CreatedDate, PurchasePrice FROM asset_costs")}
    assert kinds["AssetId"] == ("char(36)", "NO"), "the key stays NOT NULL"
    assert kinds["OpenTicket"] == ("int(11)", "YES"), "a column iiqsync does not use is left alone"
    assert kinds["Name"][0] == "varchar(255)"
    priced = next(i for i in items if i.get("PurchasePrice") and i["PurchasePrice"] % 1)
    timed = next(i for i in items if i.get("CreatedDate") and "T00:00:00" not in i["CreatedDate"])
    assert through_view[priced["AssetId"]][1] == Decimal(str(priced["PurchasePrice"]))
    assert through_view[timed["AssetId"]][0] == expected(k.DATETIME, timed["CreatedDate"])
    assert len(through_view) == len(items)
    # The next run finds nothing to change.
    [again] = local.sync(settings, ["assets"])
    assert again["status"] == "succeeded" and not again["schema_changes"], again


def test_old_tool_table_on_postgresql_keeps_times(pg_url, iiq, district):
    """The old tool's Assets on PostgreSQL: uuid GUIDs and unbounded numeric hold what
    iiqsync stores and stay; DATE timestamps become timestamps. A view over the
    columns that stay keeps answering (PostgreSQL refuses to change a column a view
    uses: see the next test)."""
    engine = db.get_engine(pg_url)
    create_old_tool_assets(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql('CREATE VIEW asset_names AS SELECT "AssetId", "Name", '
                             '"PurchasePrice" FROM "Assets"')
    settings = make_settings(iiq.url, pg_url)
    [result] = local.sync(settings, ["assets"])
    assert result["status"] == "succeeded", result
    changes = result["schema_changes"]
    assert any(c.startswith("changed Assets.CreatedDate from DATE to TIMESTAMP WITHOUT TIME "
                            "ZONE so it keeps the time of day") for c in changes), changes
    assert not any(".AssetId " in c or ".PurchasePrice " in c or ".Name " in c
                   for c in changes), changes
    items = list(district.items("assets"))
    check_entity(engine, ASSETS, items, "Assets")
    with engine.connect() as conn:
        kinds = dict(conn.exec_driver_sql(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'Assets'").fetchall())
        through_view = {str(r[0]): r[1:] for r in conn.exec_driver_sql(
            'SELECT "AssetId", "Name", "PurchasePrice" FROM asset_names')}
    assert kinds["AssetId"] == "uuid" and kinds["PurchasePrice"] == "numeric"
    assert kinds["CreatedDate"] == kinds["LastInventoryDate"] == "timestamp without time zone"
    priced = next(i for i in items if i.get("PurchasePrice") and i["PurchasePrice"] % 1)
    assert through_view[priced["AssetId"]] == (priced["Name"], Decimal(str(priced["PurchasePrice"])))
    assert len(through_view) == len(items)


def test_old_tool_table_on_sqlite_is_used_as_it_is(sqlite_url, iiq, district):
    """SQLite keeps each value as it is given, whatever type its column is declared
    with: the old tool's CHAR(32), DATE and NUMERIC columns (and a VARCHAR(5), which
    bounds nothing here) hold GUIDs, timestamps and cents whole, and no column is
    changed (SQLite could not change one in place)."""
    engine = db.get_engine(sqlite_url)
    create_old_tool_assets(engine, Name="VARCHAR(5)")
    settings = make_settings(iiq.url, sqlite_url)
    [result] = local.sync(settings, ["assets"])
    assert result["status"] == "succeeded", result
    assert all(c.startswith(("added column", "created table")) for c in result["schema_changes"])
    items = {i["AssetId"]: i for i in district.items("assets")}
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            'SELECT "AssetId", "CreatedDate", "PurchasePrice", "Name" FROM "Assets"').fetchall()
    assert {r[0] for r in rows} == set(items)
    for asset_id, created, price, name in rows:
        item = items[asset_id]
        want = expected(k.DATETIME, item.get("CreatedDate"))
        assert created == (want and want.strftime("%Y-%m-%d %H:%M:%S.%f")), asset_id
        assert price == item.get("PurchasePrice") and name == item.get("Name"), asset_id
    assert any(len(name or "") > 5 for *_, name in rows)


def test_a_view_that_blocks_a_type_change_fails_the_run_and_keeps_the_rows(pg_url, iiq):
    """PostgreSQL refuses to change a column a view uses: the run fails saying which
    column, from and to what, and what to do; the table keeps its old rows and its
    types, and the view still answers."""
    engine = db.get_engine(pg_url)
    create_old_tool_assets(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql('CREATE VIEW asset_ages AS SELECT "AssetId", "CreatedDate", '
                             '"ModifiedDate" FROM "Assets"')
    before = old_tool_rows(engine)
    settings = make_settings(iiq.url, pg_url)
    [result] = local.sync(settings, ["assets"])
    assert result["status"] == "failed", result
    error = result["error"]
    for words in ("Assets.CreatedDate must change from DATE to TIMESTAMP WITHOUT TIME ZONE "
                  "so it keeps the time of day", "Assets.ModifiedDate must change from DATE",
                  "used by a view", "asset_ages", "Nothing was synced and Assets keeps its rows",
                  "drop the views that use these columns",
                  'ALTER TABLE "Assets" ALTER COLUMN "CreatedDate" TYPE TIMESTAMP'):
        assert words in error, (words, error)
    assert old_tool_rows(engine) == before
    with engine.connect() as conn:
        kinds = dict(conn.exec_driver_sql(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'Assets'").fetchall())
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM asset_ages").scalar_one() == 1
        status, recorded = conn.exec_driver_sql(
            "SELECT status, error FROM iiqsync_runs WHERE entity = 'assets'").one()
        leftovers = [n for n in sa.inspect(conn).get_table_names() if n.startswith("iiqs_")]
    assert kinds["CreatedDate"] == "date" and "ManufacturerName" not in kinds, \
        "every change of the run is rolled back, the added columns too"
    assert status == "failed" and recorded.startswith("ColumnTypeError: Assets.CreatedDate")
    assert leftovers == []


def test_an_old_value_mariadb_cannot_convert_fails_the_run_even_outside_strict_mode(
        mysql_url, iiq):
    """On a server whose sessions are not strict, MODIFY turns a value that does not
    convert into a zero date with only a warning. iiqsync changes types in strict
    mode: the run fails naming the column, and the row keeps its value."""
    url = mysql_url + "&init_command=" + quote("SET SESSION sql_mode = ''")
    engine = db.get_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar_one() == ""
        create_old_tool_assets(engine, CreatedDate="VARCHAR(20)")
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE Assets SET CreatedDate = 'last tuesday'")
        before = old_tool_rows(engine)
        [result] = local.sync(make_settings(iiq.url, url), ["assets"])
        assert result["status"] == "failed", result
        assert ("Assets.CreatedDate must change from VARCHAR(20) to DATETIME(6) so it holds "
                "timestamps to the microsecond, and the database refused: Incorrect datetime "
                "value: 'last tuesday'") in result["error"], result["error"]
        assert "MODIFY COLUMN `CreatedDate` DATETIME(6) NULL" in result["error"]
        assert old_tool_rows(engine) == before
    finally:
        db.forget(url)
