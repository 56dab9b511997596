"""The swap invariants on every database that runs here: a reader sees the old rows
or the new, never an empty or half-filled table; views and grants on a final table
survive a sync; a run that fails leaves every final table exactly as it was."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from iiqsync import db, local, pipeline
from iiqsync.entities import ASSETS
from iiqsync.errors import AuthError

from .conftest import make_settings


def count_rows(engine, table="Assets"):
    q = engine.dialect.identifier_preparer.quote(table)
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT COUNT(*) FROM {q}").scalar_one()


def snapshot(engine, table="Assets"):
    t = sa.Table(table, sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        return sorted(tuple(str(v) for v in r) for r in conn.execute(sa.select(t)))


def synced(settings, *names):
    results = local.sync(settings, list(names))
    assert all(r["status"] == "succeeded" for r in results), results
    return results


def test_reader_sees_old_or_new_never_empty(db_url, iiq, district):
    settings = make_settings(iiq.url, db_url, IIQSYNC_GENERAL_PAGESIZE=20)
    synced(settings, "assets")
    old = district.count("assets")
    district.insert("assets", 60)
    new = district.count("assets")
    reader = sa.create_engine(db_url)  # its own connections, like a report tool
    seen: list[int] = []
    stop = threading.Event()

    def read():
        while not stop.is_set():
            seen.append(count_rows(reader))

    thread = threading.Thread(target=read)
    thread.start()
    try:
        synced(settings, "assets")
    finally:
        stop.set()
        thread.join()
    seen.append(count_rows(reader))
    reader.dispose()
    assert len(seen) > 5
    assert set(seen) <= {old, new}, f"a reader saw {sorted(set(seen) - {old, new})}"
    assert seen[0] == old and seen[-1] == new


def test_view_survives_sync(db_url, iiq, district):
    settings = make_settings(iiq.url, db_url)
    synced(settings, "assets")
    engine = db.get_engine(db_url)
    q = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE VIEW asset_tags AS SELECT {q('AssetId')}, {q('AssetTag')} "
                             f"FROM {q('Assets')}")
    district.insert("assets", 5)
    synced(settings, "assets")
    with engine.connect() as conn:
        n = conn.exec_driver_sql("SELECT COUNT(*) FROM asset_tags").scalar_one()
    assert n == district.count("assets")


def test_grant_survives_sync_postgresql(pg_url, iiq, district):
    settings = make_settings(iiq.url, pg_url)
    synced(settings, "assets")
    engine = db.get_engine(pg_url)
    role = "iiqsync_reporter"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DO $$ BEGIN CREATE ROLE {role}; EXCEPTION WHEN duplicate_object "
                             "THEN NULL; END $$")
        conn.exec_driver_sql(f'GRANT SELECT ON "Assets" TO {role}')
    synced(settings, "assets")
    with engine.connect() as conn:
        allowed = conn.exec_driver_sql(
            f"SELECT has_table_privilege('{role}', '\"Assets\"', 'SELECT')").scalar_one()
    assert allowed is True


def test_grant_survives_sync_mariadb(mysql_url, iiq, district):
    settings = make_settings(iiq.url, mysql_url)
    synced(settings, "assets")
    engine = db.get_engine(mysql_url)
    database = engine.url.database
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE USER IF NOT EXISTS 'iiqsync_reporter'@'localhost'")
        conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.`Assets` TO 'iiqsync_reporter'@'localhost'")
    synced(settings, "assets")
    with engine.connect() as conn:
        grants = [r[0] for r in conn.exec_driver_sql("SHOW GRANTS FOR 'iiqsync_reporter'@'localhost'")]
    assert any("`Assets`" in g and "SELECT" in g for g in grants), grants


def _fail_inserts_trigger(engine, dialect_name):
    """A trigger that makes every INSERT into Assets fail: finalize's swap breaks
    after its DELETE has run, inside the transaction."""
    if dialect_name == "sqlite":
        sql = ('CREATE TRIGGER no_insert BEFORE INSERT ON "Assets" '
               "BEGIN SELECT RAISE(ABORT, 'inserts refused'); END")
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    elif dialect_name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                                 "RAISE EXCEPTION 'inserts refused'; END $$ LANGUAGE plpgsql")
            conn.exec_driver_sql('CREATE TRIGGER no_insert BEFORE INSERT ON "Assets" '
                                 "FOR EACH ROW EXECUTE FUNCTION refuse()")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TRIGGER no_insert BEFORE INSERT ON `Assets` FOR EACH ROW "
                                 "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'inserts refused'")


def _last_run(engine, entity="assets"):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT status, error FROM iiqsync_runs WHERE entity = :e "
                                    "ORDER BY started DESC, finished DESC"), {"e": entity}).first()


def test_failure_in_finalize_leaves_tables_untouched(db_url, iiq, district):
    settings = make_settings(iiq.url, db_url)
    synced(settings, "assets")
    engine = db.get_engine(db_url)
    before = snapshot(engine)
    _fail_inserts_trigger(engine, engine.dialect.name)
    district.delete("assets", 10)
    district.insert("assets", 10)

    [result] = local.sync(settings, ["assets"])

    assert result["status"] == "failed"
    assert "inserts refused" in result["error"]
    assert snapshot(engine) == before
    status, error = _last_run(engine)
    assert status == "failed" and "inserts refused" in error
    with engine.connect() as conn:
        assert not [n for n in sa.inspect(conn).get_table_names() if n.startswith("iiqs_")]


def test_failure_in_a_page_leaves_tables_untouched(db_url, iiq, district):
    """The token is revoked after plan: every page task is refused, the run fails
    with the reason, the final tables are as they were and the lock is free."""
    settings = make_settings(iiq.url, db_url, IIQSYNC_GENERAL_PAGESIZE=25)
    synced(settings, "assets")
    engine = db.get_engine(db_url)
    before = snapshot(engine)
    district.insert("assets", 30)

    planned = pipeline.plan(settings, "assets", mode="local")
    assert planned["pages"] > 2
    iiq.token = "revoked"
    with pytest.raises(AuthError) as refused:
        pipeline.fetch_page(settings, "assets", planned["run_id"], 1)
    assert "test-token" not in str(refused.value)
    pipeline.fail(settings, "assets", planned["run_id"], f"AuthError: {refused.value}")

    assert snapshot(engine) == before
    status, error = _last_run(engine)
    assert status == "failed" and "refused the token" in error
    ctx = pipeline.context(settings)
    assert ctx.books.try_lock(ASSETS.name, "e" * 32, 1) is None, "the lock must be released"
