"""What Prometheus and a log search see: a real worker's /metrics after real runs (one
of them failed, some requests throttled), the same run figures from a restarted
worker, and worker log lines that carry the run's entity, run id and page."""

from __future__ import annotations

import re
import socket
import time
import urllib.request

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from .conftest import make_env, run_cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample on the worker's /metrics, keyed by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_and_logs_after_real_runs(pg_url, iiq, redis_url, worker_factory):
    port = free_port()
    env = make_env(iiq.url, pg_url, IIQSYNC_CELERY_BROKERURL=redis_url,
                   IIQSYNC_GENERAL_PAGESIZE=10, IIQSYNC_METRICS_PORT=port)
    worker = worker_factory(env, concurrency=2)
    before = time.time()

    done = run_cli(["sync", "rooms", "teams", "locations", "--wait", "--no-progress"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    rooms_run = re.search(r"enqueued rooms: run ([0-9a-f]{32})", done.stdout).group(1)

    iiq.configure(forbidden=("teams",))  # IIQ refuses the token for teams: that run fails
    failed = run_cli(["sync", "teams", "--wait", "--no-progress"], env)
    assert failed.returncode == 1 and "failed" in failed.stdout, failed.stdout + failed.stderr
    iiq.configure(forbidden=False, rate_limit=2, retry_after_seconds=0)  # now some 429s
    throttled = run_cli(["sync", "rooms", "--wait", "--no-progress"], env)
    assert throttled.returncode == 0, throttled.stdout + throttled.stderr
    iiq.configure(rate_limit=0)

    samples = scrape(port)
    assert value(samples, "iiqsync_database_up") == 1
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        counts = {t: conn.exec_driver_sql(f'SELECT COUNT(*) FROM "{t}"').scalar_one()
                  for t in ("Rooms", "Teams", "Locations")}
    engine.dispose()
    for entity, table in (("rooms", "Rooms"), ("teams", "Teams"), ("locations", "Locations")):
        assert value(samples, "iiqsync_last_success_rows", entity=entity) == counts[table] > 0
        when = value(samples, "iiqsync_last_success_timestamp_seconds", entity=entity)
        assert before - 1 <= when <= time.time() + 1, (entity, when, before)
        assert value(samples, "iiqsync_last_success_duration_seconds", entity=entity) > 0
        assert value(samples, "iiqsync_runs_running", entity=entity) == 0
    assert value(samples, "iiqsync_runs_total", entity="teams", status="failed") == 1
    assert value(samples, "iiqsync_runs_total", entity="teams", status="succeeded") == 1
    assert value(samples, "iiqsync_last_run_failed", entity="teams") == 1
    assert value(samples, "iiqsync_last_run_failed", entity="rooms") == 0
    assert value(samples, "iiqsync_runs_total", entity="rooms", status="succeeded") == 2
    # Never synced: 0, so "time() - last success > threshold" alerts for it as well.
    assert value(samples, "iiqsync_last_success_timestamp_seconds", entity="users") == 0
    # Counted in the pool's child processes, added up by the exporter in the main one.
    assert value(samples, "iiqsync_pages_fetched_total", entity="rooms") == 6  # 2 x 25 rooms / 10
    assert value(samples, "iiqsync_api_requests_total", code="200") > 0
    assert value(samples, "iiqsync_api_requests_total", code="403") >= 1
    assert value(samples, "iiqsync_api_requests_total", code="429") >= 1

    # Log lines written during a task say which run, entity and page they belong to.
    log = worker.log_path.read_text()
    assert re.search(rf"ForkPoolWorker-\d+\] entity=rooms run={rooms_run} page=1 ", log), log[-3000:]
    assert re.search(r"entity=teams run=[0-9a-f]{32} iiqsync\.pipeline: run [0-9a-f]{32} of "
                     r"teams failed: AuthError", log), log[-3000:]

    # A restarted worker reports the same run figures (they come from the database);
    # its work counters start again from zero.
    worker.stop()
    port = free_port()
    worker_factory({**env, "IIQSYNC_METRICS_PORT": str(port)}, concurrency=1)
    again = scrape(port)
    for name in ("iiqsync_last_success_rows", "iiqsync_last_success_timestamp_seconds",
                 "iiqsync_runs_total", "iiqsync_last_run_failed"):
        assert {k: v for k, v in again.items() if k[0] == name} == \
               {k: v for k, v in samples.items() if k[0] == name}, name
    assert value(again, "iiqsync_pages_fetched_total", entity="rooms") is None
