"""Custom fields and odd items, end to end through a sync on every database here:
hostile names become distinct, stable, quoted columns; renamed, deleted and
retyped fields keep their columns; long values land whole; items missing fields,
repeated in a page or without a key cost nothing else."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from iiqsync import db, local
from iiqsync.entities import ENTITIES, get_entity

from .conftest import TOKEN, make_settings
from .expect import check_custom_fields, check_entity, table
from .unit.test_identifiers import hostile_names

LIMITS = {"sqlite": 1024, "postgresql": 63, "mysql": 64, "mariadb": 64}


def serve(district):
    from iiqsync.simulator.server import SimulatorServer

    return SimulatorServer(district, token=TOKEN)


def small_district(**custom_fields):
    from iiqsync.simulator.district import District

    return District(seed=5, users=40, assets=70, locations=3, rooms=6, teams=2, tickets=30,
                    custom_fields=custom_fields or None)


def sync(settings, *entities):
    results = local.sync(settings, list(entities or ENTITIES))
    assert all(r["status"] == "succeeded" for r in results), results
    return {r["entity"]: r for r in results}


def check_everything(settings, district, only: str | None = None):
    engine = db.get_engine(settings.connection_string)
    for entity in ENTITIES.values() if only is None else [get_entity(only)]:
        items = list(district.items(entity.name))
        check_entity(engine, entity, items, settings.table_name(entity.table_key))
        if entity.custom_fields:
            check_custom_fields(engine, entity, items,
                                settings.table_name(entity.custom_fields.table_key))


def mapping(settings, entity: str) -> dict[str, tuple]:
    engine = db.get_engine(settings.connection_string)
    t = table(engine, "iiqsync_custom_fields")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.entity == entity)).fetchall()
    return {r.custom_field_type_id: (r.column_name, r.display_name, r.editor_type_id, bool(r.active))
            for r in rows}


def scalar(db_url: str, sql: str):
    """``sql`` with "double-quoted" names, run on any of the databases here."""
    engine = db.get_engine(db_url)
    if engine.dialect.name in ("mysql", "mariadb"):
        sql = sql.replace('"', "`")
    with engine.connect() as conn:
        return conn.exec_driver_sql(sql).scalar_one()


def columns(settings, name: str) -> list[str]:
    engine = db.get_engine(settings.connection_string)
    with engine.connect() as conn:
        return [c["name"] for c in sa.inspect(conn).get_columns(name)]


INJECTION = 'x"; DROP TABLE Users;--'


def test_hostile_names_become_distinct_stable_quoted_columns(db_url):
    """80 awkward names on assets (keywords, quotes and semicolons, names that collide
    after normalising or with the key, blank, non-ASCII, emoji, longer than any limit),
    the injection name on users and tickets too. Every value lands under its field's
    column; a table of the district's own and every other table keep their rows."""
    names = hostile_names(80)
    assert INJECTION in names and "Asset Id" in names and "Select" in names
    district = small_district(
        assets=[{"name": n, "editor_type": "Text", "fill_rate": 0.8} for n in names],
        users=["Select", "order", INJECTION, "User Id", "", "🎉"],
        tickets=[INJECTION, "Asset Tag #", "AssetTag#", "Ticket Id"])
    engine = db.get_engine(db_url)
    with engine.begin() as conn:  # something of the district's own in the same database
        conn.execute(sa.text("CREATE TABLE victims (id INTEGER PRIMARY KEY, name VARCHAR(20))"))
        conn.execute(sa.text("INSERT INTO victims VALUES (1, 'a'), (2, 'b'), (3, 'c')"))
    with serve(district) as iiq:
        settings = make_settings(iiq.url, db_url)
        sync(settings)
        check_everything(settings, district)
        first = {e: mapping(settings, e) for e in ("assets", "users", "tickets")}
        cf_columns = columns(settings, "AssetCustomFields")

        assert len(cf_columns) == 81 and cf_columns[0] == "AssetId"
        assert len({c.lower() for c in cf_columns}) == 81, "columns must differ"
        limit = LIMITS[engine.dialect.name]
        assert all(len(c.encode()) <= limit for c in cf_columns)
        assert all(c.replace("_", "").isalnum() and c.isascii() for c in cf_columns)
        by_name = {display: column for column, display, _e, _a in first["assets"].values()}
        assert by_name["Asset Id"] != "AssetId" and by_name["AssetId"] != "AssetId"
        assert by_name["Asset Tag #"] != by_name["AssetTag#"]
        assert by_name["Select"] == "Select" and by_name["order"] == "order"
        assert {d for _c, d, _e, _a in first["assets"].values()} == {
            (n or "").replace("\x00", "") for n in names}

        # A second sync keeps every column where it was and adds none.
        again = sync(settings)
        assert {e: mapping(settings, e) for e in first} == first
        assert columns(settings, "AssetCustomFields") == cf_columns
        assert all(not r["schema_changes"] for r in again.values())
        check_everything(settings, district)

    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM victims")).scalar_one() == 3
        names_now = set(sa.inspect(conn).get_table_names())
    assert {"Users", "Assets", "Tickets", "UserCustomFields", "victims"} <= names_now


def test_renamed_deleted_and_retyped_fields_keep_their_columns(db_url):
    district = small_district(assets=[
        {"name": "MAC Address", "editor_type": "Text", "fill_rate": 0.9},
        {"name": "Purchase Order", "editor_type": "Text", "fill_rate": 0.9},
        {"name": "Date Issued", "editor_type": "Date", "fill_rate": 0.9},
    ])
    mac, po, issued = (d["CustomFieldTypeId"] for d in district.custom_field_definitions("assets"))
    with serve(district) as iiq:
        settings = make_settings(iiq.url, db_url)
        sync(settings, "assets")
        before = mapping(settings, "assets")
        assert [before[t][0] for t in (mac, po, issued)] == ["MACAddress", "PurchaseOrder",
                                                            "DateIssued"]

        district.rename_custom_field("assets", mac, "Wi-Fi MAC")
        district.delete_custom_field("assets", po)
        district.set_custom_field_editor_type("assets", issued, "Text")
        new_po = district.add_custom_field("assets", "Purchase Order", "Text", fill_rate=0.9)
        outcome = sync(settings, "assets")["assets"]

        after = mapping(settings, "assets")
        assert after[mac] == ("MACAddress", "Wi-Fi MAC", 1, True)
        assert after[po] == ("PurchaseOrder", "Purchase Order", 1, False)
        assert after[issued] == ("DateIssued", "Date Issued", 1, True)
        assert after[new_po][0] == "PurchaseOrder_2" and after[new_po][3]
        assert columns(settings, "AssetCustomFields") == [
            "AssetId", "MACAddress", "PurchaseOrder", "DateIssued", "PurchaseOrder_2"]
        assert any("PurchaseOrder_2" in c for c in outcome["schema_changes"])
        assert scalar(db_url, 'SELECT COUNT(*) FROM "AssetCustomFields" '
                              'WHERE "PurchaseOrder" IS NOT NULL') == 0, \
            "a deleted field's column stays, its values NULL"
        check_everything(settings, district, "assets")  # every value where its field says


def test_values_longer_than_string_length_land_whole(db_url):
    """A 5,000-character name (255 is the column's length on MariaDB, which finalize
    widens), 300 two-byte characters, and a 70,000-character custom-field value."""
    district = small_district()
    keys = list(district.keys("assets"))
    long_name = "N" * 4990 + " the end"
    umlauts = "ü" * 300
    item = district.get("assets", keys[3])
    values = [dict(v) for v in item["CustomFieldValues"]] or [
        {"CustomFieldTypeId": district.custom_field_definitions("assets")[0]["CustomFieldTypeId"],
         "EditorTypeId": 1}]
    values[0]["Value"] = "v" * 70_000
    district.override("assets", keys[3], {"Name": long_name, "CustomFieldValues": values})
    district.override("assets", keys[40], {"Name": umlauts, "Notes": "x" * 100_000})
    with serve(district) as iiq:
        settings = make_settings(iiq.url, db_url)
        outcome = sync(settings, "assets")["assets"]
        check_everything(settings, district, "assets")
        engine = db.get_engine(db_url)
        assets = table(engine, "Assets")
        with engine.connect() as conn:
            names = {str(k).lower(): v for k, v in conn.execute(
                sa.select(assets.c.AssetId, assets.c.Name)).fetchall()}
        assert names[keys[3]] == long_name and names[keys[40]] == umlauts
        if engine.dialect.name in ("mysql", "mariadb"):
            assert any("widened Assets.Name" in c for c in outcome["schema_changes"])
        # The next run, with the column already wide, changes nothing.
        assert not sync(settings, "assets")["assets"]["schema_changes"]


def test_items_missing_fields_repeated_or_without_a_key(db_url):
    """Fields the spec calls required left out of every item; the first page of assets
    repeats an item twice and carries three items without an AssetId. The run
    succeeds, every keyed item lands once, and the three are counted as skipped."""
    district = small_district()
    district.override("tickets", None, remove=["SiteId", "IsTraining", "TicketNumber"])
    district.override("assets", None, remove=["IsReadOnly", "IsTraining", "SiteId"])
    district.override("users", None, remove=["TrainingPercentComplete", "Portal"])
    district.serve_extras("assets", duplicates=2, keyless=3)
    with serve(district) as iiq:
        settings = make_settings(iiq.url, db_url)
        results = sync(settings)
        check_everything(settings, district)
    assert results["assets"]["skipped"] == 3
    assert results["assets"]["rows"] == district.count("assets")
    assert scalar(db_url, "SELECT skipped FROM iiqsync_runs WHERE entity = 'assets'") == 3
    assert scalar(db_url, 'SELECT COUNT(*) FROM "Tickets" WHERE "SiteId" IS NULL') \
        == district.count("tickets")
    assert scalar(db_url, "SELECT duplicates FROM iiqsync_run_pages WHERE page = 0 AND "
                          "run_id = (SELECT run_id FROM iiqsync_runs WHERE entity = 'assets')") == 2


@pytest.mark.parametrize("entity", ["users", "tickets"])
def test_injection_name_changes_nothing_else(sqlite_url, entity):
    """The injection name on one entity's field: afterwards every table of the
    database holds what it held, plus the synced entity's rows."""
    district = small_district(**{entity: [INJECTION]})
    with serve(district) as iiq:
        settings = make_settings(iiq.url, sqlite_url)
        sync(settings)  # everything once
        engine = db.get_engine(sqlite_url)

        def counts():
            with engine.connect() as conn:
                return {n: conn.execute(sa.text(f'SELECT COUNT(*) FROM "{n}"')).scalar_one()
                        for n in sa.inspect(conn).get_table_names()
                        if not n.startswith("iiqsync_")}

        before = counts()
        sync(settings, entity)
        assert counts() == before
        (column,) = [c for c, d, _e, _a in mapping(settings, entity).values() if d == INJECTION]
        assert column == "xDROPTABLEUsers"


def test_the_old_tools_custom_field_columns_are_taken_over(db_url):
    """An AssetCustomFields table the old tool made, with a column named as iiqsync
    names the field ("MAC Address" → MACAddress): the field fills that column, so
    views on it keep answering, instead of a new MACAddress_2 beside an empty one."""
    district = small_district()
    engine = db.get_engine(db_url)
    quote = "`" if engine.dialect.name in ("mysql", "mariadb") else '"'
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {quote}AssetCustomFields{quote} ({quote}AssetId{quote} "
                             f"VARCHAR(36) PRIMARY KEY, {quote}MACAddress{quote} VARCHAR(255))")
    with serve(district) as iiq:
        settings = make_settings(iiq.url, db_url)
        sync(settings, "assets")
        check_everything(settings, district, only="assets")
    made = columns(settings, "AssetCustomFields")
    assert "MACAddress" in made and "MACAddress_2" not in made, made
    mac = {column: name for column, name, _, _ in mapping(settings, "assets").values()}
    assert mac["MACAddress"] == "MAC Address"
    assert scalar(db_url, 'SELECT COUNT("MACAddress") FROM "AssetCustomFields"') > 0


def test_a_run_that_fails_after_adding_columns_leaves_them_to_the_next(mysql_url):
    """On MySQL/MariaDB an added column stays when the swap then fails (DDL commits
    at once). The next run takes those columns over: no MACAddress_2, _3, ... for
    each failed run."""
    district = small_district()
    engine = db.get_engine(mysql_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE `Assets` (`AssetId` CHAR(36) PRIMARY KEY, `Name` TEXT, "
                             "CONSTRAINT no_names CHECK (`Name` IS NULL))")
    with serve(district) as iiq:
        settings = make_settings(iiq.url, mysql_url)
        for _ in range(2):
            [failed] = local.sync(settings, ["assets"])
            assert failed["status"] == "failed" and "no_names" in failed["error"], failed
        before = columns(settings, "AssetCustomFields")
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE `Assets` DROP CONSTRAINT no_names")
        sync(settings, "assets")
        check_everything(settings, district, only="assets")
    after = columns(settings, "AssetCustomFields")
    assert before == after and not [c for c in after if c.endswith("_2")], after
