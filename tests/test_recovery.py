"""What a user meets after something went wrong: status while a run is going, a
local sync stopped with Ctrl-C or SIGTERM, tables left by an older tool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from iiqsync import db, local, pipeline

from .conftest import ROOT, make_env, make_settings, run_cli


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
    proc = subprocess.Popen([sys.executable, "-m", "iiqsync", "sync", "assets", "--local",
                             "--no-progress"], cwd=str(ROOT),
                            env={**os.environ, "IIQSYNC_CONFIG": os.devnull, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    engine = sa.create_engine(sqlite_url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.3)
        with engine.connect() as conn:
            if sa.inspect(conn).has_table("iiqsync_run_pages") and conn.exec_driver_sql(
                    "SELECT COUNT(*) FROM iiqsync_run_pages WHERE done").scalar_one() >= 3:
                break
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
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
