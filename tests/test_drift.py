"""Rows inserted, deleted and edited in IIQ while a sync reads it (offset paging).

Invariant: every row that existed in IIQ for the whole run is in the final table
exactly once, and the run records how many rows moved under it. The truth is the
simulator's: the keys present when the run started minus every key deleted while
it ran.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from iiqsync import config, db, drift, local, pipeline, schema
from iiqsync.entities import get_entity

from .conftest import make_env, make_settings, run_cli

STRIDE = pipeline.ROUND_STRIDE


def run_stepwise(settings, entity: str, after_page_0=None, before_page=None) -> dict:
    """One run driven step by step, as ``local.sync_entity`` does, with hooks to
    change IIQ after page 0 was read and before each later page is read."""
    run_id = pipeline.new_run_id()
    planned = pipeline.plan(settings, entity, run_id=run_id, mode="local")
    assert planned["status"] == "planned", planned
    pages, round_no = pipeline.pages_to_fetch(planned), 0
    while True:
        for p in pages:
            if before_page:
                before_page(p)
            pipeline.fetch_page(settings, entity, run_id, p)
            if p == 0 and after_page_0:
                after_page_0()
        outcome = pipeline.finalize(settings, entity, run_id, round_no)
        if outcome["status"] != "repair":
            return outcome
        pages, round_no = outcome["pages"], outcome["round"]


def final_keys(settings, entity_name: str) -> list[str]:
    entity = get_entity(entity_name)
    engine = db.get_engine(settings.connection_string)
    table = sa.Table(settings.table_name(entity.table_key), sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        return [str(k).lower() for k in conn.execute(sa.select(table.c[entity.key])).scalars()]


def recorded_moved(settings, run_id: str) -> int | None:
    engine = db.get_engine(settings.connection_string)
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT moved FROM iiqsync_runs WHERE run_id = :r"),
                            {"r": run_id}).scalar_one()


def deleted_during(district, since: int) -> set[str]:
    return {k for op, _e, keys in district.drift_log[since:] if op == "delete" for k in keys}


def assert_invariant(keys: list[str], start: set[str], deleted: set[str], inserted=frozenset()):
    """Every row that lived through the run is there once; nothing is there twice;
    nothing is there that IIQ never held during the run."""
    assert len(keys) == len(set(keys)), "a row is in the final table twice"
    survivors = start - deleted
    missing = survivors - set(keys)
    assert not missing, f"{len(missing)} rows that existed for the whole run are missing"
    assert set(keys) <= start | set(inserted), "a row IIQ never held is in the final table"


# -- the holes, one at a time ---------------------------------------------------------------


def test_insert_and_delete_that_cancel_out_do_not_hide_a_skipped_row(db_url, iiq, district):
    """A row deleted before page 1 is read shifts page 1 left: its first row slides onto
    page 0, which was already read. An insert further down keeps TotalRows the same on
    every page, and no row is read twice, so counts alone cannot see the hole."""
    settings = make_settings(iiq.url, db_url)
    start = list(district.keys("assets"))
    assert len(start) == 230  # five pages of 50
    inserted = []

    def shift():
        district.delete("assets", [start[10]])
        inserted.extend(district.insert("assets", 1, where="end"))

    outcome = run_stepwise(settings, "assets", after_page_0=shift)
    assert outcome["status"] == "succeeded", outcome
    keys = final_keys(settings, "assets")
    assert start[50] in keys, "the row that slid from page 1 onto page 0 was skipped"
    assert_invariant(keys, set(start), {start[10]}, inserted)
    assert outcome["moved"] >= 1
    assert recorded_moved(settings, outcome["run_id"]) == outcome["moved"]


def test_a_shift_too_large_for_the_probes_is_read_again(db_url, iiq, district):
    """30 rows gone from the start and 30 new at the end after page 0 was read: every
    later page slid 30 rows, more than a probe can bridge, while TotalRows stayed the
    same. A second pass reads the list again and the run proves itself complete."""
    settings = make_settings(iiq.url, db_url)
    start = list(district.keys("assets"))
    inserted = []

    def shift():
        district.delete("assets", start[:30])
        inserted.extend(district.insert("assets", 30, where="end"))

    outcome = run_stepwise(settings, "assets", after_page_0=shift)
    assert outcome["status"] == "succeeded", outcome
    keys = final_keys(settings, "assets")
    assert_invariant(keys, set(start), set(start[:30]), inserted)
    assert set(start[30:]) | set(inserted) <= set(keys)
    assert outcome["moved"] >= 30
    assert iiq.count("200", "assets") > 2 * 9, "a second pass was read"


def test_insert_read_in_reverse_order_does_not_hide_a_skipped_row(sqlite_url, iiq, district):
    """Pages read out of order (as parallel workers do): pages 4 to 2 are read before
    page 1, then a row is inserted on page 0; page 1 then ends one row early and its
    last row slides onto page 2, already read. A delete at the end keeps TotalRows
    unchanged."""
    settings = make_settings(iiq.url, sqlite_url)
    start = list(district.keys("assets"))
    run_id = pipeline.new_run_id()
    planned = pipeline.plan(settings, "assets", run_id=run_id, mode="local")
    for p in (0, 4, 3, 2):
        pipeline.fetch_page(settings, "assets", run_id, p)
    inserted = district.insert("assets", 1, where="start")
    district.delete("assets", [start[-1]])
    pipeline.fetch_page(settings, "assets", run_id, 1)
    outcome, round_no = pipeline.finalize(settings, "assets", run_id), 0
    while outcome["status"] == "repair":
        for p in outcome["pages"]:
            pipeline.fetch_page(settings, "assets", run_id, p)
        round_no = outcome["round"]
        outcome = pipeline.finalize(settings, "assets", run_id, round_no)
    assert planned["pages"] == 5 and outcome["status"] == "succeeded", outcome
    keys = final_keys(settings, "assets")
    assert start[99] in keys, "the last row of page 1 slid onto page 2 and was skipped"
    assert_invariant(keys, set(start), {start[-1]}, inserted)
    assert outcome["moved"] >= 1


def test_no_drift_reads_each_page_once_and_moves_nothing(sqlite_url, iiq, district):
    settings = make_settings(iiq.url, sqlite_url)
    outcome = run_stepwise(settings, "assets")
    assert outcome["status"] == "succeeded" and outcome["moved"] == 0
    assert sorted(final_keys(settings, "assets")) == sorted(district.keys("assets"))
    assert iiq.count("200", "assets") <= 2 * 5 + 1, "pages plus one small probe per boundary"


def test_drift_that_never_settles_fails_the_run_and_swaps_nothing(sqlite_url, iiq, district):
    """When every pass is disturbed and [Run] DriftRounds passes are used up, the run
    fails with the reason; the final table keeps the previous run's rows."""
    settings = make_settings(iiq.url, sqlite_url, IIQSYNC_RUN_DRIFTROUNDS=1)
    assert run_stepwise(settings, "assets")["status"] == "succeeded"
    before = sorted(final_keys(settings, "assets"))

    def churn(page):
        # Before every page: 30 rows gone from the start, 30 new ones at the end, so
        # every page slides 30 rows while TotalRows stays the same.
        district.delete("assets", list(district.keys("assets"))[:30])
        district.insert("assets", 30, where="end")

    with pytest.raises(Exception, match="kept moving"):
        run_stepwise(settings, "assets", before_page=churn)
    assert sorted(final_keys(settings, "assets")) == before
    engine = db.get_engine(sqlite_url)
    with engine.connect() as conn:
        status, error = conn.execute(sa.text(
            "SELECT status, error FROM iiqsync_runs ORDER BY started DESC LIMIT 1")).one()
        leftovers = [n for n in sa.inspect(conn).get_table_names() if n.startswith("iiqs_")]
    assert status == "failed" and "DriftRounds" in error
    assert leftovers == []


# -- drift driven hard ---------------------------------------------------------------------------

HARD = dict(drift_every=1, drift_rows=5, drift_ops="insert,delete,edit", drift_entities="assets")


@pytest.fixture
def big():
    """A district with 1,200 assets: 24 pages of 50, each read moving 5 of them."""
    from iiqsync.simulator.district import District
    from iiqsync.simulator.server import SimulatorServer

    from .conftest import TOKEN

    district = District(seed=11, users=20, assets=1200, locations=3, rooms=5, teams=2,
                        tickets=20)
    with SimulatorServer(district, token=TOKEN) as server:
        yield server, district


def test_hard_drift_in_process(db_url, big):
    """Every list request inserts, deletes or edits 5 assets, in-process on 4 threads."""
    iiq, district = big
    settings = make_settings(iiq.url, db_url)
    start, since = set(district.keys("assets")), len(district.drift_log)
    iiq.configure(**HARD)
    try:
        results = local.sync(settings, ["assets"])
    finally:
        iiq.configure(drift_every=0)
    (outcome,) = results
    assert outcome["status"] == "succeeded", outcome
    log = district.drift_log[since:]
    assert len(log) >= 40, "the simulator did drift"
    inserted = {k for op, _e, keys in log if op == "insert" for k in keys}
    assert_invariant(final_keys(settings, "assets"), start, deleted_during(district, since),
                     inserted)
    assert outcome["moved"] > 0
    assert recorded_moved(settings, outcome["run_id"]) == outcome["moved"]


def test_hard_drift_with_a_worker(pg_url, big, redis_url, worker_factory):
    """The same through a real celery worker (concurrency 3) and ``iiqsync sync --wait``."""
    iiq, district = big
    env = make_env(iiq.url, pg_url, IIQSYNC_CELERY_BROKERURL=redis_url)
    worker_factory(env, concurrency=3)
    start, since = set(district.keys("assets")), len(district.drift_log)
    iiq.configure(**HARD)
    try:
        done = run_cli(["sync", "assets", "--wait", "--no-progress"], env, timeout=180)
    finally:
        iiq.configure(drift_every=0)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "moved during the run" in done.stdout
    log = district.drift_log[since:]
    inserted = {k for op, _e, keys in log if op == "insert" for k in keys}
    settings = config.load(os.devnull, env)
    assert_invariant(final_keys(settings, "assets"), start, deleted_during(district, since),
                     inserted)
    engine = db.get_engine(pg_url)
    with engine.connect() as conn:
        moved = conn.execute(sa.text("SELECT moved FROM iiqsync_runs WHERE entity = 'assets'")
                             ).scalar_one()
    assert moved > 0


@pytest.mark.parametrize("staged, shared, moved", [
    # One clean pass: every key once on a page, the probes repeat keys of pages.
    # Each link is (a read, the lowest-numbered read sharing a key with it).
    ({0: "ab", 1: "cd", -3: "bc"}, {(0, -3), (1, -3)}, 0),
    # "b" slid back onto page 1 (read twice); "e" arrived only in a probe.
    ({0: "ab", 1: "bc", -5: "e"}, {(1, 0)}, 2),
    # A repair pass (pages at the stride and above) found "z", missed by pass 0.
    ({0: "ab", 1: "cd", STRIDE: "az"}, {(STRIDE, 0)}, 1),
])
def test_read_links_pairs_reads_and_counts_moved_rows(db_url, staged, shared, moved):
    """One query over the staged keys gives the links the proof walks and the count
    of rows that moved, on every database the tests run."""
    engine = sa.create_engine(db_url)
    meta = sa.MetaData()
    stage = sa.Table("links_stage", meta, sa.Column("AssetId", sa.String(8)),
                     sa.Column(schema.PAGE_COLUMN, sa.BigInteger))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(stage.insert(), [{"AssetId": k, schema.PAGE_COLUMN: p}
                                      for p, keys in staged.items() for k in keys])
        got_shared, got_moved = drift.read_links(conn, stage, "AssetId", STRIDE,
                                                 db.dialect_for(engine).sort_key)
    engine.dispose()
    assert set(got_shared) == shared
    assert got_moved == moved
