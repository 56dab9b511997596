"""The main job as it runs in production: a real ``celery -A iiqsync worker`` on the
real Redis, ``iiqsync sync --wait`` enqueuing plan tasks, pages fanned out in a
chord, finalize swapping the staged rows into PostgreSQL and MariaDB."""

from __future__ import annotations

import os

import pytest
import redis

from iiqsync import config, db

from .conftest import TOKEN, make_env, run_cli
from .test_sync_local import check_all


@pytest.mark.parametrize("database", ["pg_url", "mysql_url"])
def test_worker_syncs_every_entity(request, database, iiq, district, redis_url, worker_factory):
    db_url = request.getfixturevalue(database)
    env = make_env(iiq.url, db_url, IIQSYNC_CELERY_BROKERURL=redis_url)
    worker_factory(env, concurrency=3)

    done = run_cli(["sync", "--wait", "--no-progress"], env, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("users", "assets", "locations", "rooms", "teams", "tickets"):
        assert f"{name}" in done.stdout and "succeeded" in done.stdout

    settings = config.load(os.devnull, env)
    counts = check_all(settings, district)
    assert counts["assets"] == district.count("assets")

    # Task results are small counts; the token is nowhere in Redis.
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            value = client.get(key)
            assert len(value) < 4096, f"{key!r} holds {len(value)} bytes: results must be counts"
            assert TOKEN.encode() not in value
        elif kind == b"list":
            for value in client.lrange(key, 0, -1):
                assert TOKEN.encode() not in value
    client.close()

    # The run history says the same as the tables.
    done = run_cli(["status"], env)
    assert done.returncode == 0
    assert done.stdout.count("succeeded") == 6
    db.get_engine(db_url).dispose()


def test_sync_all_task_and_skip_when_locked(pg_url, iiq, district, redis_url, worker_factory):
    """sync_all fans out every entity; a second plan of an entity while the first
    holds the lock is skipped and says why."""
    env = make_env(iiq.url, pg_url, IIQSYNC_CELERY_BROKERURL=redis_url)
    settings = config.load(os.devnull, env)
    from iiqsync import pipeline

    ctx = pipeline.context(settings)
    assert ctx.books.try_lock("teams", "f" * 32, 60) is None  # someone else holds teams

    worker_factory(env, concurrency=2)
    done = run_cli(["sync", "teams", "locations", "--wait", "--no-progress"], env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "skipped" in lines["teams"] and "still in progress" in lines["teams"]
    assert "succeeded" in lines["locations"]


@pytest.mark.parametrize("setting, expected", [
    ({"IIQSYNC_INCIDENTIQ_TOKEN": ""}, "[IncidentIQ] Token is missing"),
    ({"IIQSYNC_GENERAL_PAGESIZE": "-1"}, "[General] PageSize (env IIQSYNC_GENERAL_PAGESIZE): "
                                         "-1 is below the minimum 1"),
])
def test_a_worker_with_a_bad_setting_refuses_to_start(sqlite_url, redis_url, setting, expected):
    """`celery -A iiqsync worker` ends at once with exit code 2 and the problem
    itself, not Celery's "Unable to load" tracebacks, nor a worker that starts
    and fails every task."""
    import subprocess
    import sys

    env = {**os.environ, "IIQSYNC_CONFIG": os.devnull,
           **make_env("http://127.0.0.1:9", sqlite_url, IIQSYNC_CELERY_BROKERURL=redis_url),
           **setting}
    done = subprocess.run([sys.executable, "-m", "celery", "-A", "iiqsync", "worker", "-c", "1"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("role", ["worker", "beat"])
def test_a_worker_or_beat_without_a_broker_refuses_to_start(tmp_path, sqlite_url, role):
    """Without [Celery] BrokerUrl the app points at a local Redis's database 0 (for
    `celery inspect` and the like); a worker or beat must not take or send the tasks
    of whatever else uses it."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "IIQSYNC_CELERY_BROKERURL"}
    env.update(IIQSYNC_CONFIG=os.devnull, **make_env("http://127.0.0.1:9", sqlite_url))
    done = subprocess.run([sys.executable, "-m", "celery", "-A", "iiqsync", role],
                          env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"[Celery] BrokerUrl is missing: a {role} needs the broker" in done.stderr
    assert "Traceback" not in done.stderr and "redirected" not in done.stderr
