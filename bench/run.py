"""The benchmark: ``python bench/run.py cpu|api|scale|all``.

Each setting starts the bundled simulator in its own process (sizes and latency as
below), a Redis of its own, a fresh PostgreSQL database per contender, and real
``celery -A iiqsync worker`` processes; it triggers ``iiqsync sync ... --wait`` as a
user would and prints rows/s, wall time, the peak RSS of the worker processes
(sampled with psutil, children included) and Redis' used_memory peak.

  cpu    20k assets, 8k users, 20k tickets (default custom fields), no latency:
         iiqsync (1 worker, -c 2) vs the plain floor (bench/floor.py, one process)
         vs a re-creation of the old tool's method (bench/oldtool.py), same run.
  api    100k assets, 300 ms per request + 2 ms per item, concurrency 16 (16 page
         requests waiting on IIQ): wall time vs pages x per-page latency / 16, for
         2 workers x -c 8 (a slot per process) and for 1 worker x -c 16+SPARE with
         [Celery] RequestsInFlight 16 (--spare, default 8; 0 leaves it out). The
         simulator serves pages it built in an untimed warm-up sync
         (--no-page-cache: it builds each one as it is asked).
  scale  1M tickets, 1 worker -c 2: wall time, peak worker RSS, peak Redis memory.

Results are printed and written to bench/results/<setting>-<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (bench/ is not a package)

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_seconds(proc) -> float:
    """CPU time used so far by ``proc`` (the simulator) and its children."""
    import psutil

    p = psutil.Process(proc.pid)
    return sum(x.cpu_times().user + x.cpu_times().system for x in [p, *p.children(True)])


def run_iiqsync(sim, sim_url: str, entities: list[str], workers: int, concurrency: int,
                pool: str = "prefork", page_size: int = 1000, rps: int = 1000,
                timeout: float = 3600, tag: str = "iiqsync", in_flight: int = 0) -> dict:
    """Sync ``entities`` through real workers into a fresh database; measure it.
    ``in_flight``: each worker's [Celery] RequestsInFlight (0: one per process)."""
    with common.pg_database() as db_url, common.redis_server() as (redis_url, redis_client):
        env = common.iiqsync_env(sim_url, db_url, redis_url,
                                 IIQSYNC_GENERAL_PAGESIZE=page_size,
                                 IIQSYNC_INCIDENTIQ_REQUESTSPERSECOND=rps,
                                 IIQSYNC_GENERAL_TIMEOUT=300,
                                 IIQSYNC_CELERY_REQUESTSINFLIGHT=in_flight)
        RESULTS.mkdir(exist_ok=True)
        with contextlib.ExitStack() as stack:
            procs = [stack.enter_context(common.celery_worker(
                env, concurrency, pool, RESULTS / f"worker{i}.log")) for i in range(workers)]
            with common.Sampler([p.pid for p in procs], redis_client) as sampler:
                sim_cpu = cpu_seconds(sim)
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "iiqsync", "sync", *entities, "--wait", "--no-progress",
                     "--timeout", str(timeout)],
                    cwd=str(common.ROOT), env=env, capture_output=True, text=True)
                wall = time.perf_counter() - started
                sim_cpu = cpu_seconds(sim) - sim_cpu
        if done.returncode != 0:
            raise RuntimeError(f"iiqsync sync failed:\n{done.stdout}\n{done.stderr}")
        runs, span = _runs(db_url)
        counts = common.count_rows(db_url, [_table(e) for e in entities])
    rows = sum(counts.values())
    # Rows/s over the runs themselves (first plan to last finalize, from iiqsync_runs);
    # the command's wall adds Python start-up and --wait's half-second polling.
    return {"method": tag, "rows": rows, "seconds": span, "command_seconds": round(wall, 2),
            "rows_per_s": round(rows / span), "runs": runs, **sampler.report(),
            "simulator_cpu_seconds": round(sim_cpu, 1),
            "workers": workers, "concurrency": concurrency, "pool": pool,
            "page_size": page_size, "requests_per_second": rps}


def _table(entity: str) -> str:
    from iiqsync.entities import ENTITIES

    return ENTITIES[entity].default_table


def _runs(db_url: str) -> list[dict]:
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT r.entity, r.status, r.pages, r.page_size, r.rows, r.moved, r.started, "
            "r.finished, "
            "(SELECT min(p.finished) FROM iiqsync_run_pages p WHERE p.run_id = r.run_id) AS first, "
            "(SELECT max(p.finished) FROM iiqsync_run_pages p WHERE p.run_id = r.run_id) AS last, "
            "(SELECT count(*) FROM iiqsync_run_pages p WHERE p.run_id = r.run_id) AS reads "
            "FROM iiqsync_runs r ORDER BY r.started").fetchall()
    engine.dispose()
    # plan: until its page 0 was staged; finalize: from the last staged read to the end.
    out = [{"entity": r.entity, "status": r.status, "pages": r.pages, "page_size": r.page_size,
            "reads": r.reads,
            "rows": r.rows, "moved": r.moved,
            "seconds": round((r.finished - r.started).total_seconds(), 2),
            "plan_s": round((r.first - r.started).total_seconds(), 2),
            "finalize_s": round((r.finished - r.last).total_seconds(), 2)}
           for r in rows]
    span = (max(r.finished for r in rows) - min(r.started for r in rows)).total_seconds()
    return out, round(span, 2)


def run_script(sim, script: str, sim_url: str, entities: list[str], tag: str, *extra: str) -> dict:
    """bench/floor.py or bench/oldtool.py in a process of its own, sampled the same way."""
    with common.pg_database() as db_url:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve().parent / script), "--url", sim_url,
             "--token", common.TOKEN, "--db", db_url, *extra, *entities],
            cwd=str(common.ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with common.Sampler([proc.pid]) as sampler:
            sim_cpu = cpu_seconds(sim)
            started = time.perf_counter()
            out, err = proc.communicate()
            wall = time.perf_counter() - started
            sim_cpu = cpu_seconds(sim) - sim_cpu
        if proc.returncode != 0:
            raise RuntimeError(f"{script} failed:\n{err}")
        counts = common.count_rows(db_url, [_table(e) for e in entities])
    rows = sum(counts.values())
    report = sampler.report()
    # Rows/s over the load itself, as for iiqsync (the process's wall adds its start-up).
    inner = json.loads(out.strip().splitlines()[-1])
    return {"method": tag, "rows": rows, "seconds": round(inner["seconds"], 2),
            "command_seconds": round(wall, 2), "rows_per_s": round(rows / inner["seconds"]),
            "peak_rss_mb": report["worker_peak_rss_mb_total"],
            "simulator_cpu_seconds": round(sim_cpu, 1),
            "cpu_seconds": report["worker_cpu_seconds"]}


# -- settings ---------------------------------------------------------------------------
def setting_cpu(args) -> dict:
    entities = ["users", "assets", "tickets"]
    sim_args = ["--assets", str(args.assets), "--users", str(args.users),
                "--tickets", str(args.tickets)]
    with common.simulator(*sim_args) as (url, sim):
        results = [run_script(sim, "floor.py", url, entities, "floor (1 process)")]
        results.append(run_iiqsync(sim, url, entities, workers=1, concurrency=2,
                                   tag="iiqsync (1 worker, -c 2)"))
        if not args.skip_old:
            results.append(run_script(sim, "oldtool.py", url, entities,
                                      "old tool's method, re-created (8 threads)"))
    floor = results[0]["rows_per_s"]
    return {"setting": "cpu", "simulator": sim_args, "results": results,
            "ratio_iiqsync_to_floor": round(results[1]["rows_per_s"] / floor, 2),
            **({"ratio_old_to_floor": round(results[2]["rows_per_s"] / floor, 2)}
               if len(results) > 2 else {})}


def simulator_check(url: str, concurrency: int, page_size: int, nominal: float | None) -> dict:
    """Can the simulator serve ``concurrency`` pages at once at the nominal latency?
    One client with a connection per request, opened beforehand, so the figures are
    the server's and not the client's set-up."""
    times = []
    with httpx.Client(base_url=url, timeout=120,
                      limits=httpx.Limits(max_connections=concurrency),
                      headers={"Authorization": f"Bearer {common.TOKEN}",
                               "Accept-Encoding": "gzip"}) as client:
        def one(p):
            t0 = time.perf_counter()
            client.post("/api/v1.0/assets", params={"$p": p, "$s": page_size, "$o": "AssetId"},
                        json={}).raise_for_status()
            times.append(time.perf_counter() - t0)

        threads = [threading.Thread(target=one, args=(p,)) for p in range(concurrency)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done = time.perf_counter() - t0
    return {"concurrent_requests": concurrency, "nominal_s": nominal,
            "slowest_s": round(max(times), 3), "all_done_s": round(done, 3)}


def set_knobs(url: str, **knobs) -> None:
    httpx.post(url + "/_sim/knobs", json=knobs, timeout=10).raise_for_status()


def most_page_requests_in_flight(served: list[dict]) -> int:
    """The most page requests the simulator was answering at one time, from its log
    of answers; the drift probes (a few dozen items each, see iiqsync.drift) ride
    along with pages and are not counted."""
    from iiqsync.drift import PROBE_SIZES
    from iiqsync.simulator.server import most_in_flight

    return most_in_flight(served, "assets", max(PROBE_SIZES) + 1)


def setting_api(args) -> dict:
    latency, item_latency, size, conc = args.latency_ms, args.item_latency_ms, args.page_size, 16
    sim_args = ["--assets", str(args.api_assets), "--latency-ms", str(latency),
                "--item-latency-ms", str(item_latency)]
    if not args.latency_added:
        # The latency is the response time: the simulator's own work (one Python
        # process on the same two cores) counts toward it instead of adding to it.
        sim_args.append("--latency-total")
    if not args.no_page_cache:
        # A real IIQ builds its pages on its own servers; here the simulator would
        # build them on the two cores the workers need. It builds each page once, in
        # a warm-up sync without latency, and serves it again from memory after.
        sim_args.append("--cache-pages")
    per_worker = conc // 2
    workers = dict(workers=2, concurrency=per_worker, rps=100, pool=args.pool, page_size=size)
    # The same 16 requests in flight two ways: one per pool process (2 workers of
    # -c 8), and one worker whose [Celery] RequestsInFlight of 16 is shared by more
    # processes than that, so that spare ones parse and stage while 16 wait on IIQ.
    contenders = [(f"iiqsync (2 workers x -P {args.pool} -c {per_worker})", {})]
    if args.spare:
        contenders.append((f"iiqsync (1 worker x -c {conc + args.spare}, RequestsInFlight {conc})",
                           dict(workers=1, concurrency=conc + args.spare, in_flight=conc)))
    with common.simulator(*sim_args) as (url, sim):
        warm_up = None
        if not args.no_page_cache:
            set_knobs(url, latency_ms=0, item_latency_ms=0)
            warm_up = run_iiqsync(sim, url, ["assets"], tag="warm-up (no latency)", **workers)
            set_knobs(url, latency_ms=latency, item_latency_ms=item_latency)
        check = simulator_check(url, conc, warm_up["runs"][0]["page_size"] if warm_up else size,
                                None)
        timed = []
        for tag, change in contenders:
            httpx.post(url + "/_sim/reset", timeout=10).raise_for_status()
            result = run_iiqsync(sim, url, ["assets"], tag=tag, **{**workers, **change})
            # The simulator's log of answers: when each page request arrived and ended.
            result["served"] = httpx.get(url + "/_sim/served", timeout=10).json()
            result["most_page_requests_in_flight"] = most_page_requests_in_flight(result["served"])
            timed.append(result)
    run = timed[0]["runs"][0]
    # Every request waits latency, every item item_latency: spread over the 16 slots.
    ideal = (run["pages"] * latency + item_latency * run["rows"]) / 1000 / conc
    pages = math.ceil(args.api_assets / size)
    ideal_fixed = pages * (latency + item_latency * size) / 1000 / conc
    per_page = (latency + item_latency * run["page_size"]) / 1000
    check["nominal_s"] = round(per_page, 3)
    for result in timed:
        result["ratio_wall_to_ideal"] = round(result["seconds"] / ideal, 2)
        result["ratio_wall_to_ideal_at_page_size_setting"] = round(result["seconds"] / ideal_fixed, 2)
    return {"setting": "api", "simulator": sim_args, "page_size_setting": size,
            "pages": run["pages"], "page_size": run["page_size"],
            "per_page_latency_s": round(per_page, 3), "concurrency": conc,
            "ideal_s": round(ideal, 2), "whole_waves_s": round(math.ceil(run["pages"] / conc) * per_page, 2),
            "simulator_check": check, "results": [r for r in (warm_up, *timed) if r],
            "ratio_wall_to_ideal": [r["ratio_wall_to_ideal"] for r in timed],
            "ideal_at_page_size_setting_s": round(ideal_fixed, 2),
            "ratio_wall_to_ideal_at_page_size_setting":
                [r["ratio_wall_to_ideal_at_page_size_setting"] for r in timed]}


def setting_scale(args) -> dict:
    sim_args = ["--tickets", str(args.scale_tickets)]
    with common.simulator(*sim_args) as (url, sim):
        result = run_iiqsync(sim, url, ["tickets"], workers=1, concurrency=2,
                             tag="iiqsync (1 worker, -c 2)")
    return {"setting": "scale", "simulator": sim_args, "results": [result]}


SETTINGS = {"cpu": setting_cpu, "api": setting_api, "scale": setting_scale}


def show(out: dict) -> None:
    print(f"\n== {out['setting']}  (simulator {' '.join(out['simulator'])})")
    for r in out["results"]:
        line = f"  {r['method']:<50} {r['rows']:>8} rows {r['seconds']:>8.1f} s {r['rows_per_s']:>7} rows/s"
        if "worker_peak_rss_mb_each" in r:
            line += (f"  worker peak RSS {r['worker_peak_rss_mb_each']:.0f} MB each"
                     f" ({r['worker_processes']} processes)"
                     f"  Redis peak {r['redis_used_memory_peak_mb']:.1f} MB")
        else:
            line += f"  peak RSS {r['peak_rss_mb']:.0f} MB"
        cpu = r.get("worker_cpu_seconds", r.get("cpu_seconds"))
        line += f"  CPU {cpu:.1f} s (simulator {r['simulator_cpu_seconds']:.1f} s)"
        print(line)
        if "ratio_wall_to_ideal" in r:
            print(f"  {'':<50} wall / ideal {r['ratio_wall_to_ideal']:.2f}, at most "
                  f"{r['most_page_requests_in_flight']} page requests in flight")
    for key in ("ratio_iiqsync_to_floor", "ratio_old_to_floor", "pages", "page_size", "ideal_s",
                "whole_waves_s", "ratio_wall_to_ideal", "ideal_at_page_size_setting_s",
                "ratio_wall_to_ideal_at_page_size_setting", "simulator_check"):
        if key in out:
            print(f"  {key}: {out[key]}")


def main() -> int:
    p = argparse.ArgumentParser(description="iiqsync benchmark (see bench/run.py docstring)")
    p.add_argument("setting", choices=[*SETTINGS, "all"])
    p.add_argument("--assets", type=int, default=20000)
    p.add_argument("--users", type=int, default=8000)
    p.add_argument("--tickets", type=int, default=20000)
    p.add_argument("--skip-old", action="store_true", help="cpu: leave out the old tool's method")
    p.add_argument("--api-assets", type=int, default=100000)
    p.add_argument("--page-size", type=int, default=1000, help="api: page size")
    p.add_argument("--latency-ms", type=float, default=300.0, help="api: latency per request")
    p.add_argument("--item-latency-ms", type=float, default=2.0, help="api: latency per item")
    p.add_argument("--pool", default="prefork", choices=("prefork", "threads"),
                   help="api: the workers' pool")
    p.add_argument("--spare", type=int, default=8,
                   help="api: also run one worker with 16 + SPARE processes sharing "
                        "RequestsInFlight 16 (0: leave that run out)")
    p.add_argument("--no-page-cache", action="store_true",
                   help="api: the simulator builds every page it serves, on these cores")
    p.add_argument("--latency-added", action="store_true",
                   help="api: add the latency on top of the simulator's own work")
    p.add_argument("--scale-tickets", type=int, default=1_000_000)
    args = p.parse_args()
    names = list(SETTINGS) if args.setting == "all" else [args.setting]
    machine = common.machine()
    print("machine:", json.dumps(machine))
    RESULTS.mkdir(exist_ok=True)
    for name in names:
        out = SETTINGS[name](args)
        out["machine"] = machine
        out["command"] = " ".join(sys.argv)
        show(out)
        path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(out, indent=2, default=str))
        print(f"  written to {path.relative_to(common.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
