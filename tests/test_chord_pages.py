"""A chord of hundreds of page tasks through a real worker: every page reports,
finalize runs once, and what the run leaves in Redis is small counts, not rows.
(``python bench/run.py scale`` runs a chord of a thousand pages of a million tickets.)"""

from __future__ import annotations

import os

import redis
import sqlalchemy as sa

from iiqsync import config, db

from .conftest import make_env, run_cli


def test_a_chord_of_200_pages(pg_url, redis_url, worker_factory):
    from iiqsync.simulator.district import District
    from iiqsync.simulator.server import SimulatorServer

    district = District(seed=3, users=5, assets=5, tickets=5, locations=2, rooms=3, teams=400)
    with SimulatorServer(district, token="test-token-7f3a") as iiq:
        env = make_env(iiq.url, pg_url, IIQSYNC_CELERY_BROKERURL=redis_url,
                       IIQSYNC_GENERAL_PAGESIZE="2", IIQSYNC_INCIDENTIQ_REQUESTSPERSECOND="5000")
        worker_factory(env, concurrency=2)
        done = run_cli(["sync", "teams", "--wait", "--no-progress"], env, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr

    settings = config.load(os.devnull, env)
    engine = db.get_engine(settings.connection_string)
    with engine.connect() as conn:
        run = conn.exec_driver_sql("SELECT status, pages, rows FROM iiqsync_runs").one()
        teams = conn.exec_driver_sql('SELECT count(DISTINCT "TeamId") FROM "Teams"').scalar()
    assert tuple(run) == ("succeeded", 200, 400)
    assert teams == 400

    client = redis.Redis.from_url(redis_url)
    used = sum(client.memory_usage(key) or 0 for key in client.scan_iter(count=1000))
    client.close()
    # ~200 task results and one chord counter: a few hundred bytes each, never rows.
    assert used < 1_000_000, used
    with engine.connect() as conn:
        left = [n for n in sa.inspect(conn).get_table_names() if n.startswith("iiqs_")]
    assert left == []


def test_pages_fill_whole_rounds_of_the_workers_slots(pg_url, redis_url, worker_factory):
    """Plan asks the workers for their pool sizes (a broadcast each worker answers): two
    workers of -c 2 and -c 3 make 5 slots, so 1,300 teams at PageSize 100 (13 pages:
    two full rounds and 3 pages) are read as 15 pages of 87, three full rounds."""
    from iiqsync.simulator.district import District
    from iiqsync.simulator.server import SimulatorServer

    district = District(seed=5, users=5, assets=5, tickets=5, locations=2, rooms=3, teams=1300)
    with SimulatorServer(district, token="test-token-7f3a") as iiq:
        env = make_env(iiq.url, pg_url, IIQSYNC_CELERY_BROKERURL=redis_url,
                       IIQSYNC_GENERAL_PAGESIZE="100", IIQSYNC_INCIDENTIQ_REQUESTSPERSECOND="5000")
        worker_factory(env, concurrency=2)
        worker_factory(env, concurrency=3)
        done = run_cli(["sync", "teams", "--wait", "--no-progress"], env, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr

    engine = db.get_engine(config.load(os.devnull, env).connection_string)
    with engine.connect() as conn:
        run = conn.exec_driver_sql("SELECT status, pages, page_size, rows FROM iiqsync_runs").one()
        teams = conn.exec_driver_sql('SELECT count(DISTINCT "TeamId") FROM "Teams"').scalar()
    assert tuple(run) == ("succeeded", 15, 87, 1300)
    assert teams == 1300
