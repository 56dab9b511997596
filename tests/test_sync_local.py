"""The whole job in-process (``iiqsync sync --local``) against the simulator, on
every database that runs here: every table holds exactly the simulator's data."""

from __future__ import annotations

import sqlalchemy as sa

from iiqsync import db, local
from iiqsync.entities import ENTITIES

from .conftest import make_settings
from .expect import check_custom_fields, check_entity


def sync_all(settings):
    results = local.sync(settings, list(ENTITIES))
    failed = [r for r in results if r["status"] != "succeeded"]
    assert not failed, failed
    return {r["entity"]: r for r in results}


def check_all(settings, district):
    engine = db.get_engine(settings.connection_string)
    counts = {}
    for entity in ENTITIES.values():
        items = list(district.items(entity.name))
        counts[entity.name] = check_entity(engine, entity, items, settings.table_name(entity.table_key))
        if entity.custom_fields:
            filled = check_custom_fields(engine, entity, items,
                                         settings.table_name(entity.custom_fields.table_key))
            assert filled > 0, f"no custom-field values landed for {entity.name}"
    return counts


def test_every_table_equals_the_simulator(db_url, iiq, district):
    settings = make_settings(iiq.url, db_url)
    results = sync_all(settings)
    counts = check_all(settings, district)
    for name, count in counts.items():
        assert count == district.count(name) > 0
        assert results[name]["rows"] == count


def test_second_sync_follows_inserts_and_deletes(db_url, iiq, district):
    settings = make_settings(iiq.url, db_url)
    sync_all(settings)
    district.delete("assets", 7)
    district.insert("assets", 11)
    district.insert("users", 3)
    sync_all(settings)
    counts = check_all(settings, district)
    assert counts["assets"] == district.count("assets")


def test_run_history_records_each_run(sqlite_url, iiq, district):
    settings = make_settings(iiq.url, sqlite_url)
    sync_all(settings)
    engine = db.get_engine(sqlite_url)
    with engine.connect() as conn:
        runs = conn.execute(sa.text(
            "SELECT entity, status, pages, rows, total_rows, finished FROM iiqsync_runs")).fetchall()
        leftovers = [n for n in sa.inspect(conn).get_table_names() if n.startswith("iiqs_")]
    assert {r.entity for r in runs} == set(ENTITIES)
    for r in runs:
        assert r.status == "succeeded" and r.finished is not None
        assert r.rows == r.total_rows == district.count(r.entity)
        assert r.pages == -(-r.total_rows // 50)
    assert leftovers == [], "staging tables must be dropped after a run"


def test_asset_type_filter_setting(sqlite_url, iiq, district):
    """[IncidentIQ] AssetTypes limits assets to those types (the old tool took only Devices)."""
    devices = "2a1561e5-34ff-4fcf-87de-2a146f0e1c01"
    settings = make_settings(iiq.url, sqlite_url, IIQSYNC_INCIDENTIQ_ASSETTYPES=devices)
    sync_all_of = local.sync(settings, ["assets"])
    assert sync_all_of[0]["status"] == "succeeded"
    want = list(district.items("assets", asset_types=[devices]))
    assert 0 < len(want) < district.count("assets")
    engine = db.get_engine(sqlite_url)
    check_entity(engine, ENTITIES["assets"], want, "Assets")


def test_a_page_cut_short_by_iiq_fails_loudly(sqlite_url, iiq, district):
    """IIQ quietly serves fewer users per page than asked: rows would be lost, so the
    run fails with a message that says what to change, and the table is untouched."""
    settings = make_settings(iiq.url, sqlite_url)
    sync_all(settings)
    engine = db.get_engine(sqlite_url)
    with engine.connect() as conn:
        before = conn.exec_driver_sql('SELECT COUNT(*) FROM "Users"').scalar_one()
    iiq.configure(page_caps={"users": 40})
    district.insert("users", 5)
    [result] = local.sync(settings, ["users"])
    assert result["status"] == "failed"
    assert "lower [General] PageSize" in result["error"]
    with engine.connect() as conn:
        assert conn.exec_driver_sql('SELECT COUNT(*) FROM "Users"').scalar_one() == before


def test_pages_fill_whole_rounds_of_the_threads(sqlite_url, iiq, district):
    """In-process, the slots are [General] Threads: 4 threads and 10 pages of 40 would
    leave the last round half empty, so the run reads 12 pages of 34 instead; with
    FillRounds off every page holds PageSize items."""
    size = -(-district.count("assets") // 10)
    for fill, pages in (("yes", 12), ("no", 10)):
        settings = make_settings(iiq.url, sqlite_url, IIQSYNC_GENERAL_THREADS=4,
                                 IIQSYNC_GENERAL_PAGESIZE=size, IIQSYNC_GENERAL_FILLROUNDS=fill)
        result = local.sync(settings, ["assets"])[0]
        assert result["status"] == "succeeded", result
        with db.get_engine(sqlite_url).connect() as conn:
            got = conn.execute(sa.text("SELECT pages, page_size FROM iiqsync_runs "
                                       "WHERE run_id = :r"), {"r": result["run_id"]}).one()
        assert got.pages == pages
        assert got.page_size == (size if fill == "no" else -(-district.count("assets") // 12))
        check_entity(db.get_engine(sqlite_url), ENTITIES["assets"], list(district.items("assets")),
                     settings.table_name(ENTITIES["assets"].table_key))


def test_pages_of_an_ended_run_ask_iiq_for_nothing(sqlite_url, iiq):
    """A page task looks its run up (and counts its delivery) before it asks IIQ:
    the queued pages of a run that has ended send no request."""
    from iiqsync import pipeline

    settings = make_settings(iiq.url, sqlite_url)
    run_id = pipeline.new_run_id()
    planned = pipeline.plan(settings, "assets", run_id=run_id, mode="local")
    assert planned["pages"] >= 4
    assert pipeline.fetch_page(settings, "assets", run_id, 0)["rows"] == planned["page_size"]
    pipeline.fail(settings, "assets", run_id, "stopped by the test")
    before = iiq.count("requests")
    outcomes = [pipeline.fetch_page(settings, "assets", run_id, p)
                for p in range(1, planned["pages"])]
    assert all(o["status"].startswith("ignored") for o in outcomes), outcomes
    assert iiq.count("requests") == before


def test_a_table_setting_naming_another_systems_table_is_refused(sqlite_url, iiq):
    """[Tables] Teams pointed at a table that is not a teams table (no TeamId): the
    run fails before reading a page, names the setting, and the table keeps its rows."""
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE Mine (a INTEGER)")
        conn.exec_driver_sql("INSERT INTO Mine VALUES (1), (2)")
    settings = make_settings(iiq.url, sqlite_url, IIQSYNC_TABLES_TEAMS="Mine")
    [outcome] = local.sync(settings, ["teams"])
    assert outcome["status"] == "failed"
    assert "[Tables] Teams" in outcome["error"] and "TeamId" in outcome["error"]
    # Plan's one-item read of TotalRows, and no page.
    assert iiq.count("items", "teams") <= 1
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT a FROM Mine ORDER BY a").scalars().all() == [1, 2]
        assert [c["name"] for c in sa.inspect(conn).get_columns("Mine")] == ["a"]
    engine.dispose()
