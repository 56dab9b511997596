"""``[Celery] RequestsInFlight`` through a real worker: a ``-c 3`` worker capped at 1
has one page request out at a time, and plan sizes the pages for that one slot; the
same worker without the cap has its three processes waiting on IIQ together."""

from __future__ import annotations

import os

from iiqsync import config, db
from iiqsync.drift import PROBE_SIZES
from iiqsync.entities import get_entity
from iiqsync.simulator.district import District
from iiqsync.simulator.server import SimulatorServer, most_in_flight

from .conftest import TOKEN, make_env, run_cli
from .expect import check_entity

# 800 teams at PageSize 100: 8 pages. On 3 slots, FillRounds reads them as 9 pages of
# 89 (three full rounds); on 1 slot there are no rounds to fill: 8 pages of 100.
TEAMS = 800
# Page answers only: the boundary and end-of-list probes read alongside a page hold at
# most max(PROBE_SIZES) items and are not page requests; the pages hold 88 or more.
PAGE_ITEMS = max(PROBE_SIZES) + 1
# The simulator notes an answer's end once its write returns, which can be a moment
# after the client read it, released its permit and the next request arrived: spans
# are cut this much short. Two page requests out together overlap by the whole latency.
WRITE_SLACK = 0.02


def page_answers(served: list[dict]) -> list[dict]:
    return [{**s, "end": s["end"] - WRITE_SLACK} for s in served
            if s["route"] == "teams" and s["items"] >= PAGE_ITEMS]


def test_requests_in_flight_caps_a_workers_page_requests(pg_url, redis_url, worker_factory):
    district = District(seed=11, users=5, assets=5, tickets=5, locations=2, rooms=3, teams=TEAMS)
    engine = db.get_engine(pg_url)
    seen = {}
    with SimulatorServer(district, token=TOKEN, latency_ms=150) as iiq:
        env = make_env(iiq.url, pg_url, IIQSYNC_CELERY_BROKERURL=redis_url,
                       IIQSYNC_GENERAL_PAGESIZE="100",
                       IIQSYNC_INCIDENTIQ_REQUESTSPERSECOND="5000")
        assert config.load(os.devnull, env).get("General", "FillRounds")
        for cap in (1, 0):
            worker = worker_factory({**env, "IIQSYNC_CELERY_REQUESTSINFLIGHT": str(cap)},
                                    concurrency=3)
            iiq.reset_stats()
            done = run_cli(["sync", "teams", "--wait", "--no-progress"], env, timeout=120)
            served = iiq.served()
            worker.stop()  # the next worker's pool must be the only one plan is told of
            assert done.returncode == 0, done.stdout + done.stderr
            with engine.connect() as conn:
                run = conn.exec_driver_sql(
                    "SELECT status, pages, page_size, rows FROM iiqsync_runs "
                    "ORDER BY started DESC LIMIT 1").one()
            assert check_entity(engine, get_entity("teams"), list(district.items("teams")),
                                "Teams") == TEAMS
            pages = page_answers(served)
            seen[cap] = tuple(run), len(pages), most_in_flight(pages, "teams")

    # Capped at 1: one page request out at a time, and pages sized for one slot.
    assert seen[1] == (("succeeded", 8, 100, TEAMS), 8, 1), seen
    # Without the cap the same worker has its three processes waiting together, and
    # plan fills whole rounds of its three slots.
    assert seen[0][:2] == (("succeeded", 9, 89, TEAMS), 9), seen
    assert seen[0][2] > 1, seen


def test_each_worker_answers_for_its_own_cap(pg_url, redis_url, worker_factory):
    """Plan sizes pages for the request slots every worker reports for itself: a
    ``-c 2`` worker without a cap (2 slots) beside a ``-c 3`` worker capped at 1
    (1 slot) make 3 slots, so 800 teams at PageSize 100 (8 pages) are read as 9 pages
    of 89, whichever of the two runs plan. (Applying the planning worker's cap to
    both would make 2 or 5 slots: 8 pages of 100, or 10 of 80.)"""
    district = District(seed=13, users=5, assets=5, tickets=5, locations=2, rooms=3, teams=TEAMS)
    with SimulatorServer(district, token=TOKEN) as iiq:
        env = make_env(iiq.url, pg_url, IIQSYNC_CELERY_BROKERURL=redis_url,
                       IIQSYNC_GENERAL_PAGESIZE="100",
                       IIQSYNC_INCIDENTIQ_REQUESTSPERSECOND="5000")
        worker_factory({**env, "IIQSYNC_CELERY_REQUESTSINFLIGHT": "0"}, concurrency=2)
        worker_factory({**env, "IIQSYNC_CELERY_REQUESTSINFLIGHT": "1"}, concurrency=3)
        done = run_cli(["sync", "teams", "--wait", "--no-progress"], env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    engine = db.get_engine(pg_url)
    with engine.connect() as conn:
        run = conn.exec_driver_sql("SELECT status, pages, page_size, rows FROM iiqsync_runs").one()
    assert tuple(run) == ("succeeded", 9, 89, TEAMS)
    assert check_entity(engine, get_entity("teams"), list(district.items("teams")),
                        "Teams") == TEAMS
