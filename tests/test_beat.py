"""``celery -A iiqsync beat`` runs the schedule table: an entity whose [Schedule] line
says every few seconds gets synced by the workers without anyone asking."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import sqlalchemy as sa

from .conftest import ROOT, make_env


def test_beat_enqueues_scheduled_syncs(tmp_path, iiq, district, pg_url, redis_url, worker_factory):
    env = make_env(iiq.url, pg_url, IIQSYNC_CELERY_BROKERURL=redis_url,
                   IIQSYNC_SCHEDULE_DEFAULT="0 0 1 1 *",  # everything else: once a year
                   IIQSYNC_SCHEDULE_TEAMS="2")  # teams: every 2 seconds
    worker_factory(env, concurrency=2)
    log = open(tmp_path / "beat.log", "wb")
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "iiqsync", "beat", "--loglevel", "INFO",
         "-s", str(tmp_path / "beat-schedule")],
        cwd=str(ROOT), env={**os.environ, "IIQSYNC_CONFIG": os.devnull, **env},
        stdout=log, stderr=subprocess.STDOUT)
    engine = sa.create_engine(pg_url)
    try:
        deadline = time.monotonic() + 60
        runs = []
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if sa.inspect(conn).has_table("iiqsync_runs"):
                    runs = conn.exec_driver_sql(
                        "SELECT entity, status FROM iiqsync_runs").fetchall()
            if sum(1 for r in runs if r.status == "succeeded") >= 2:
                break
            time.sleep(1)
    finally:
        beat.terminate()
        beat.wait(20)
        log.close()
    assert {r.entity for r in runs} == {"teams"}, runs
    assert sum(1 for r in runs if r.status == "succeeded") >= 2, (tmp_path / "beat.log").read_text()
    with engine.connect() as conn:
        assert conn.exec_driver_sql('SELECT COUNT(*) FROM "Teams"').scalar_one() == district.count("teams")
    engine.dispose()
