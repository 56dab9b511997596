"""Faults survived: real Redis, real PostgreSQL/MariaDB, real ``celery worker``
processes, and an IIQ simulator that misbehaves on purpose. Each test says what
iiqsync promises when that fault strikes, and checks every row."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest
import sqlalchemy as sa

from iiqsync import broker, config, db
from iiqsync.entities import get_entity

from .conftest import TOKEN, make_env, run_cli
from .expect import check_entity
from .test_sync_local import check_all

pytestmark = pytest.mark.timeout(240)


def worker_env(iiq_url: str, db_url: str, broker: str, **extra) -> dict:
    """Settings for workers and the command line of one test (no metrics port:
    several workers share this machine)."""
    return make_env(iiq_url, db_url, IIQSYNC_CELERY_BROKERURL=broker, IIQSYNC_METRICS_PORT=0,
                    **extra)


def sync_wait(env: dict, *entities: str, timeout: float = 180):
    done = run_cli(["sync", *entities, "--wait", "--no-progress"], env, timeout=timeout)
    return done


# -- IIQ rate limiting -------------------------------------------------------------------
@pytest.mark.parametrize("retry_after", [True, False], ids=["retry-after", "no-retry-after"])
def test_rate_limit_shared_by_every_worker(retry_after, pg_url, redis_url, worker_factory):
    """IIQ allows 25 requests a second across all clients and answers 429 beyond.
    Four workers of eight threads each (the threads pool: four prefork workers of
    eight processes are too heavy for a small test machine) share one budget of 20
    a second in Redis: a handful of 429s at most, every row lands."""
    from iiqsync.simulator.district import District
    from iiqsync.simulator.server import SimulatorServer

    limit, budget = 25, 20
    district = District(seed=11, users=200, assets=600, locations=9, rooms=40, teams=5,
                        tickets=300)
    with SimulatorServer(district, token=TOKEN, rate_limit=limit, retry_after=retry_after) as iiq:
        env = worker_env(iiq.url, pg_url, redis_url, IIQSYNC_GENERAL_PAGESIZE=10,
                         IIQSYNC_INCIDENTIQ_REQUESTSPERSECOND=budget)
        for _ in range(4):
            worker_factory(env, concurrency=8, pool="threads")
        done = sync_wait(env)
        assert done.returncode == 0, done.stdout + done.stderr
        requests, throttled = iiq.count("requests"), iiq.count("429")
        check_all(config.load(os.devnull, env), district)
    # 32 threads unpaced, or each worker on a budget of its own (80 a second), would
    # draw hundreds of 429s. A shared budget overshoots only when its burst allowance
    # (one second's worth) meets a busy second: at most 2 * 20 - 25 refusals each time,
    # and every refusal pauses every worker.
    print(f"{requests} requests, {throttled} answered 429")
    assert requests >= 110
    assert throttled <= limit
    db.get_engine(pg_url).dispose()


# -- 503s, timeouts, cut-off bodies, HTML instead of JSON -----------------------------------
@pytest.mark.parametrize("database", ["pg_url", "mysql_url"])
def test_flaky_iiq_loses_nothing(request, database, iiq, district, redis_url, worker_factory):
    """A tenth of the requests each: answered 503, hung past the client's timeout,
    cut off mid-body, or a 200 whose body is an HTML page. Every row still lands."""
    db_url = request.getfixturevalue(database)
    iiq.configure(error_rate=0.1, timeout_rate=0.1, timeout_seconds=3, truncate_rate=0.1,
                  garbage_rate=0.1, fault_seed=4)
    env = worker_env(iiq.url, db_url, redis_url, IIQSYNC_GENERAL_TIMEOUT=1,
                     IIQSYNC_GENERAL_PAGESIZE=20)
    worker_factory(env, concurrency=3)
    done = sync_wait(env)
    assert done.returncode == 0, done.stdout + done.stderr
    check_all(config.load(os.devnull, env), district)
    faults = {name: iiq.count(name) for name in ("503", "timeouts", "truncated", "garbage")}
    print(f"{iiq.count('requests')} requests; faults: {faults}")
    assert all(faults.values()), faults
    db.get_engine(db_url).dispose()


# -- a worker process killed in the middle of a page --------------------------------------
class Stall:
    """Holds the simulator's answer to one page of one list (offset and size) until
    released: the page task that asked waits, so the test can kill its process.
    ``times``: how many requests for that page are held (None: every one)."""

    def __init__(self, district, entity: str, offset: int, size: int, times: int | None = None):
        self.held = 0
        self.release = threading.Event()
        self._district = district
        self._slice = slice_ = district.slice

        def held_slice(name, at, limit, **kw):
            if (name, at, limit) == (entity, offset, size) and (times is None or self.held < times):
                self.held += 1
                self.release.wait(120)
            return slice_(name, at, limit, **kw)

        district.slice = held_slice

    def close(self) -> None:
        self.release.set()
        self._district.slice = self._slice


def page_task_pid(app, page: int, timeout: float = 30) -> int:
    """The pool process running ``fetch_page`` of ``page`` (from the workers' own
    list of active tasks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for tasks in (app.control.inspect(timeout=1).active() or {}).values():
            for task in tasks:
                if task["name"] == "iiqsync.fetch_page" and task["args"][2] == page \
                        and task.get("worker_pid"):
                    return task["worker_pid"]
        time.sleep(0.2)
    raise AssertionError(f"no fetch_page of page {page} became active in {timeout}s")


def celery_app(broker: str):
    from celery import Celery

    return Celery(broker=broker, backend=broker)


def run_record(db_url: str, run_id: str):
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("iiqsync_runs"):
                return None, {}
            run = conn.execute(sa.text("SELECT * FROM iiqsync_runs WHERE run_id = :r"),
                               {"r": run_id}).mappings().first()
            pages = {r.page: r for r in conn.execute(
                sa.text("SELECT page, deliveries, done FROM iiqsync_run_pages WHERE run_id = :r"),
                {"r": run_id})}
    finally:
        engine.dispose()
    return run, pages


def enqueue(env: dict, entity: str) -> str:
    """``iiqsync sync ENTITY`` without waiting; returns the run id."""
    done = run_cli(["sync", entity, "--no-progress"], env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split("run ")[-1].split()[0]


def wait_run(db_url: str, run_id: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run, pages = run_record(db_url, run_id)
        if run is not None and run["status"] != "running":
            return run, pages
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} still running after {timeout}s")


def test_killed_worker_page_is_redelivered_and_staged_once(pg_url, iiq, district, redis_url,
                                                            worker_factory):
    """SIGKILL of the pool process in the middle of a page: the broker hands the page to
    another process (acks late, rejected when the worker is lost), it is staged once,
    the chord still completes and the run has every row."""
    env = worker_env(iiq.url, pg_url, redis_url, IIQSYNC_GENERAL_PAGESIZE=20,
                     IIQSYNC_GENERAL_FILLROUNDS="no")
    stall = Stall(district, "assets", 3 * 20, 20, times=1)
    try:
        worker_factory(env, concurrency=2)
        run_id = enqueue(env, "assets")
        app = celery_app(redis_url)
        victim = page_task_pid(app, 3)
        os.kill(victim, signal.SIGKILL)
        stall.release.set()
        run, pages = wait_run(pg_url, run_id)
    finally:
        stall.close()
    assert run["status"] == "succeeded", run["error"]
    assert pages[3].deliveries == 2 and pages[3].done
    assert all(p.deliveries == 1 for n, p in pages.items() if n != 3 and n < 1 << 24)
    assert check_entity(db.get_engine(pg_url), get_entity("assets"), list(district.items("assets")),
                        "Assets") == run["rows"] == district.count("assets")
    db.get_engine(pg_url).dispose()


def test_page_that_kills_its_worker_every_time_fails_the_run(pg_url, iiq, district, redis_url,
                                                              worker_factory):
    """A page whose process dies on every delivery is not redelivered for ever: after
    [Run] MaxPageDeliveries losses the run fails, names the page, and the final
    tables keep the last good sync."""
    env = worker_env(iiq.url, pg_url, redis_url, IIQSYNC_GENERAL_PAGESIZE=20,
                     IIQSYNC_GENERAL_FILLROUNDS="no",
                     IIQSYNC_RUN_MAXPAGEDELIVERIES=2)
    worker_factory(env, concurrency=2)
    done = sync_wait(env, "assets")
    assert done.returncode == 0, done.stdout + done.stderr
    district.delete("assets", 5)  # what a good run would now change
    stall = Stall(district, "assets", 3 * 20, 20)
    kills = 0
    try:
        run_id = enqueue(env, "assets")
        app = celery_app(redis_url)
        while True:
            run, _pages = run_record(pg_url, run_id)
            if run is not None and run["status"] != "running":
                break
            if stall.held > kills:  # a delivery of page 3 is waiting for IIQ: kill it
                os.kill(page_task_pid(app, 3), signal.SIGKILL)
                kills += 1
            time.sleep(0.1)
    finally:
        stall.close()
    run, pages = wait_run(pg_url, run_id)
    print(run["error"])
    assert run["status"] == "failed"
    assert "page 3 of assets was delivered 3 times" in run["error"]
    assert "MaxPageDeliveries" in run["error"]
    assert kills == 2 and pages[3].deliveries == 3
    # The failed run changed nothing: the assets deleted since the first sync are still there.
    assert len(asset_keys(pg_url)) == district.count("assets") + 5
    db.get_engine(pg_url).dispose()


# -- two syncs of one entity started at once ----------------------------------------------
@pytest.mark.parametrize("database", ["pg_url", "mysql_url"])
def test_simultaneous_plans_one_runs(request, database, iiq):
    """Eight plans of one entity released at the same instant (three times, one entity
    each): the lock row lets one through; the seven others are recorded as skipped,
    naming the run that holds it, and none fails (on MariaDB, skips recorded at the
    same moment used to deadlock on each other)."""
    from iiqsync import pipeline

    from .conftest import make_settings

    db_url = request.getfixturevalue(database)
    settings = make_settings(iiq.url, db_url)
    pipeline.context(settings)
    for entity in ("teams", "locations", "rooms"):
        gate = threading.Barrier(8)
        outcomes = []

        def start(entity=entity, gate=gate, outcomes=outcomes):
            gate.wait()
            try:
                outcomes.append(pipeline.plan(settings, entity, mode="local"))
            except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
                outcomes.append({"status": "raised", "error": repr(exc)})

        threads = [threading.Thread(target=start) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        planned = [o for o in outcomes if o["status"] == "planned"]
        skipped = [o for o in outcomes if o["status"] == "skipped"]
        assert len(planned) == 1 and len(skipped) == 7, outcomes
        winner = planned[0]["run_id"]
        assert all(f"run {winner} of {entity} is still in progress" in o["reason"]
                   for o in skipped)
        assert run_record(db_url, winner)[0]["status"] == "running"
        books = pipeline.context(settings).books
        with books.engine.begin() as conn:  # an empty history again: the worst case
            for table in (books.runs, books.pages, books.locks):
                conn.execute(table.delete())
    db.get_engine(db_url).dispose()


@pytest.mark.parametrize("database", ["pg_url", "mysql_url"])
def test_skips_recorded_at_once_do_not_deadlock(request, database):
    """The losers of that race record their skips at the same moment; on MariaDB a
    delete-then-insert of each skip deadlocked on the index gap they share."""
    import uuid

    from iiqsync.runs import Bookkeeping

    db_url = request.getfixturevalue(database)
    engine = sa.create_engine(db_url, pool_size=10)
    books = Bookkeeping(engine, None)
    books.create()
    errors = []
    for _ in range(10):
        gate = threading.Barrier(8)

        def skip(gate=gate):
            gate.wait()
            try:
                books.record_skip(uuid.uuid4().hex, "teams", "skipped: test", "celery")
            except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
                errors.append(repr(exc))

        threads = [threading.Thread(target=skip) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        with engine.begin() as conn:  # an empty history again: the worst case
            conn.execute(books.runs.delete())
    engine.dispose()
    assert not errors, errors[:3]


def test_beat_and_manual_sync_at_once(pg_url, iiq, district, redis_url, worker_factory):
    """Beat's plan and a manual ``iiqsync sync`` of the same entity reach two worker
    processes at the same moment: one run syncs, the other is skipped and says why."""
    env = worker_env(iiq.url, pg_url, redis_url, IIQSYNC_GENERAL_PAGESIZE=20)
    iiq.configure(latency_ms=100)
    worker_factory(env, concurrency=2)
    app = celery_app(redis_url)
    for _ in range(2):
        # What beat sends for its schedule entry, and what `iiqsync sync` sends.
        beat = app.send_task("iiqsync.plan", ("assets",), expires=3600)
        manual = app.send_task("iiqsync.plan", ("assets",))
        ids = {pipeline_id(beat.id), pipeline_id(manual.id)}
        runs = {i: wait_run(pg_url, i)[0] for i in ids}
        statuses = sorted(r["status"] for r in runs.values())
        assert statuses == ["skipped", "succeeded"], runs
        done = next(r for r in runs.values() if r["status"] == "succeeded")
        skip = next(r for r in runs.values() if r["status"] == "skipped")
        assert skip["error"] == (f"skipped: run {done['run_id']} of assets is still in "
                                 "progress (one run per entity at a time)")
        assert skip["started"] <= done["finished"]  # they overlapped
        assert abs((skip["started"] - done["started"]).total_seconds()) < 2
    check_entity(db.get_engine(pg_url), get_entity("assets"), list(district.items("assets")),
                 "Assets")
    db.get_engine(pg_url).dispose()


def pipeline_id(task_id: str) -> str:
    return task_id.replace("-", "")


# -- Redis restarted in the middle of a run -------------------------------------------------
class OwnRedis:
    """A redis-server of the test's own on a free port, without persistence: a restart
    loses every queued task, result and chord counter, as a Redis pod without a volume
    does. (The shared Redis other tests use is never restarted.)"""

    def __init__(self, workdir):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self) -> OwnRedis:
        import subprocess

        import redis

        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path).start()
    yield server
    server.stop()


def asset_keys(db_url: str) -> set[str]:
    """The keys in the final Assets table."""
    assets = sa.table("Assets", sa.column("AssetId"))
    with db.get_engine(db_url).connect() as conn:
        return {str(k).lower() for k in conn.execute(sa.select(assets.c.AssetId)).scalars()}


def district_keys(district) -> set[str]:
    return {i["AssetId"].lower() for i in district.items("assets")}


def test_redis_restart_mid_run(pg_url, iiq, district, own_redis, worker_factory):
    """Redis (broker and results) restarts without its data while a run is half done:
    the run either finishes, or is recorded as failed once the loss is seen; the final
    tables hold either the new rows or the previous sync's, never a mix; the next run
    succeeds."""
    env = worker_env(iiq.url, pg_url, own_redis.url, IIQSYNC_GENERAL_PAGESIZE=10)
    worker_factory(env, concurrency=2)
    done = sync_wait(env, "assets")
    assert done.returncode == 0, done.stdout + done.stderr
    before = asset_keys(pg_url)
    district.delete("assets", 5)
    district.insert("assets", 3)
    iiq.configure(latency_ms=250)
    run_id = enqueue(env, "assets")
    deadline = time.monotonic() + 30
    while sum(p.done for p in run_record(pg_url, run_id)[1].values()) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    own_redis.restart()
    time.sleep(5)  # long enough for the run to finish, if it can
    run, pages = run_record(pg_url, run_id)
    print(f"after the restart: {run['status']}, {sum(p.done for p in pages.values())} pages done")
    assert asset_keys(pg_url) == (district_keys(district) if run["status"] == "succeeded"
                                  else before)
    iiq.configure(latency_ms=0)
    done = sync_wait(env, "assets", timeout=120)
    print(done.stdout)
    assert done.returncode == 0 and "succeeded" in done.stdout, done.stdout + done.stderr
    run, _ = run_record(pg_url, run_id)
    assert run["status"] in ("succeeded", "failed"), run
    if run["status"] == "failed":
        assert run["error"] == broker.LOST
    assert staging_tables(pg_url, run_id) == []
    assert asset_keys(pg_url) == district_keys(district)
    db.get_engine(pg_url).dispose()


def test_sweep_fails_only_runs_whose_tasks_redis_lost(pg_url, redis_url, iiq):
    """The sweep fails a running run on the workers whose marker is missing from Redis;
    a run whose marker is there, a run in-process (``--local``) and every run while
    Redis cannot be reached are left alone."""
    from iiqsync import pipeline

    from .conftest import make_settings

    def start(settings, run_id, entity, mode):
        books = pipeline.context(settings).books
        assert books.try_lock(entity, run_id, 60) is None
        with books.engine.begin() as conn:
            books.start(conn, run_id, entity, mode)

    settings = make_settings(iiq.url, pg_url, IIQSYNC_CELERY_BROKERURL=redis_url)
    kept, lost, in_process = "a" * 32, "b" * 32, "c" * 32
    broker.mark(settings, kept)
    start(settings, kept, "users", "celery")
    start(settings, lost, "assets", "celery")
    start(settings, in_process, "teams", "local")
    unreachable = make_settings(iiq.url, pg_url, IIQSYNC_CELERY_BROKERURL="redis://127.0.0.1:9/0")
    pipeline.sweep(pipeline.context(unreachable))
    assert {r: run_record(pg_url, r)[0]["status"] for r in (kept, lost, in_process)} == \
        {kept: "running", lost: "running", in_process: "running"}
    pipeline.sweep(pipeline.context(settings))
    runs = {r: run_record(pg_url, r)[0] for r in (kept, lost, in_process)}
    assert {r: run["status"] for r, run in runs.items()} == \
        {kept: "running", lost: "failed", in_process: "running"}
    assert runs[lost]["error"] == broker.LOST
    assert pipeline.context(settings).books.try_lock("assets", "d" * 32, 60) is None  # freed
    db.get_engine(pg_url).dispose()


# -- the database unreachable while a run is being finished ---------------------------------
class Proxy:
    """A TCP proxy on loopback in front of a database. ``cut()`` drops every
    connection and refuses new ones, as a database host that went away does;
    ``restore()`` lets connections through again on the same port."""

    def __init__(self, upstream_port: int):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.upstream = ("127.0.0.1", upstream_port)
        self._socks: set = set()
        self._lock = threading.Lock()
        self._listener = None

    def start(self) -> Proxy:
        import socket

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener) -> None:
        import socket

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst) -> None:
        import socket

        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        import socket

        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self._lock:
            socks, self._socks = self._socks, set()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self) -> None:
        if self._listener is None:
            self.start()


def wait_for(predicate, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout}s: {what}")


def staging_tables(db_url: str, run_id: str) -> list[str]:
    from iiqsync import schema

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [n for n in sa.inspect(conn).get_table_names()
                    if n.startswith(f"{schema.STAGING_PREFIX}{run_id[:12]}")]
    finally:
        engine.dispose()


def test_database_gone_during_finalize(pg_url, iiq, district, redis_url, worker_factory):
    """The database goes away while finalize swaps: the swap's transaction never
    commits, so the final tables keep the previous sync; finalize gives up after
    [Run] TaskRetries; once the database is back the run is recorded as failed with
    the reason, its staging tables are dropped, and the next run succeeds."""
    proxy = Proxy(5432).start()
    direct = pg_url
    via_proxy = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    env = worker_env(iiq.url, via_proxy, redis_url, IIQSYNC_GENERAL_PAGESIZE=20,
                     IIQSYNC_RUN_TASKRETRIES=1)
    worker_factory(env, concurrency=2)
    done = sync_wait(env, "assets")
    assert done.returncode == 0, done.stdout + done.stderr
    before = asset_keys(direct)
    district.delete("assets", 5)

    admin = sa.create_engine(direct).connect()
    try:
        # Hold the final table so finalize stops inside its swap, then take the
        # database away under it.
        admin.exec_driver_sql('LOCK TABLE "Assets" IN ACCESS EXCLUSIVE MODE')
        run_id = enqueue(env, "assets")

        def finalize_waits():
            with sa.create_engine(direct).connect() as c:
                return c.exec_driver_sql(
                    "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'").scalars().all()

        waiting = wait_for(finalize_waits, 60, "finalize waiting on the final table")
        assert any('"Assets"' in q for q in waiting), waiting
        assert staging_tables(direct, run_id)
        proxy.cut()
        admin.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        admin.rollback()
    finally:
        admin.close()

    app = celery_app(redis_url)

    def failure_pending():
        inspect = app.control.inspect(timeout=1)
        queued = [t.get("request", t) for ts in (inspect.scheduled() or {}).values() for t in ts]
        queued += [t for ts in (inspect.active() or {}).values() for t in ts]
        queued += [t for ts in (inspect.reserved() or {}).values() for t in ts]
        return any(t["name"] == "iiqsync.record_failure" for t in queued)

    wait_for(failure_pending, 60, "finalize to give up and leave the failure to record")
    run, _ = run_record(direct, run_id)
    assert run["status"] == "running"  # nothing could be written while it was away
    assert asset_keys(direct) == before
    proxy.restore()
    run, _ = wait_run(direct, run_id, timeout=60)
    print(run["error"])
    assert run["status"] == "failed"
    assert "database connection failed" in run["error"]
    assert asset_keys(direct) == before
    assert staging_tables(direct, run_id) == []
    swept = run_cli(["sweep"], env)
    assert swept.returncode == 0 and "dropped 0" in swept.stdout, swept.stdout + swept.stderr

    done = sync_wait(env, "assets")
    assert done.returncode == 0 and "succeeded" in done.stdout, done.stdout + done.stderr
    assert asset_keys(direct) == district_keys(district)
    proxy.cut()
    db.get_engine(via_proxy).dispose()


@pytest.mark.parametrize("database", ["pg_url", "mysql_url"])
def test_run_ended_elsewhere_during_its_swap_changes_nothing(request, database, iiq, district,
                                                            monkeypatch):
    """A run failed from outside while finalize is swapping (a sweep that saw its
    tasks lost, or its lock expire) must not commit its swap: the success is recorded
    in the swap's own transaction, only while the run is still running."""
    from iiqsync import local, pipeline, swap

    from .conftest import make_settings

    db_url = request.getfixturevalue(database)
    settings = make_settings(iiq.url, db_url)
    assert local.sync(settings, ["assets"])[0]["status"] == "succeeded"
    before = asset_keys(db_url)
    district.delete("assets", 5)
    replace_all = swap.replace_all

    def swept_meanwhile(conn, dialect, tables, **options):
        rows = replace_all(conn, dialect, tables, **options)
        # What a sweep in another process commits while this transaction is open.
        books = pipeline.context(settings).books
        with books.engine.connect() as other:
            run_id = other.execute(sa.select(books.runs.c.run_id)
                                   .where(books.runs.c.status == "running")).scalar_one()
        assert books.fail(run_id, "assets", "abandoned: swept while finishing")
        return rows

    monkeypatch.setattr(swap, "replace_all", swept_meanwhile)
    outcome = local.sync(settings, ["assets"])[0]
    assert outcome["status"] == "failed"
    assert outcome["error"] == "ended from outside while it ran: abandoned: swept while finishing"
    run, _ = run_record(db_url, outcome["run_id"])
    assert (run["status"], run["error"]) == ("failed", "abandoned: swept while finishing")
    assert asset_keys(db_url) == before
    db.get_engine(db_url).dispose()


# -- IIQ out of reach: a wrong instance at the start, an outage in the middle ----------------
def test_a_worker_says_at_once_that_the_instance_cannot_be_reached(pg_url, redis_url,
                                                                  worker_factory):
    """Nothing listens at [IncidentIQ] Instance: the plan task does not retry for
    minutes ([Run] TaskRetries times, each after the client's own retries) but fails
    the run within seconds, naming the setting and the URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    instance = f"http://127.0.0.1:{port}"
    env = worker_env(instance, pg_url, redis_url)
    worker_factory(env, concurrency=2)
    started = time.monotonic()
    done = run_cli(["sync", "teams", "--wait", "--timeout", "90", "--no-progress"], env,
                   timeout=180)
    took = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    assert (f"InstanceUnreachableError: cannot reach IIQ at {instance}: connection refused "
            f"(nothing listens on port {port}) — check [IncidentIQ] Instance") in done.stdout, \
        done.stdout
    assert took < 20, f"{took:.1f}s"
    assert TOKEN not in done.stdout + done.stderr
    db.get_engine(pg_url).dispose()


def first_contact_seconds() -> float:
    """How long a run's first request keeps trying an instance that does not answer."""
    from iiqsync.client import FIRST_CONTACT_DELAY, FIRST_CONTACT_RETRIES

    return sum(FIRST_CONTACT_DELAY * (n + 1) for n in range(FIRST_CONTACT_RETRIES))


def teams_through_an_outage(settings, start_outage, end_outage, outage: float):
    """Plan teams while IIQ answers, then read every page while IIQ is away for
    ``outage`` seconds (``start_outage`` now, ``end_outage`` after), and finalize:
    (finalize's outcome, seconds the page reads took, the client's retries)."""
    from iiqsync import pipeline
    from iiqsync.client import IIQClient

    with IIQClient(settings) as client:
        planned = pipeline.plan(settings, "teams", mode="local", client=client)
        assert planned["status"] == "planned"
        start_outage()
        back = threading.Timer(outage, end_outage)
        back.start()
        started = time.monotonic()
        for page in pipeline.pages_to_fetch(planned):
            pipeline.fetch_page(settings, "teams", planned["run_id"], page, client=client)
        waited = time.monotonic() - started
        back.join()
        outcome = pipeline.finalize(settings, "teams", planned["run_id"], client=client)
        return outcome, waited, client.stats["retries"]


def test_iiq_gone_during_a_run_is_an_outage_and_retried(iiq, district, sqlite_url):
    """Once plan has reached IIQ, a refused connection is an outage, not a wrong
    instance: page reads keep retrying with back-off (longer than the first request's
    quick tries) and the run succeeds once IIQ is back."""
    from urllib.parse import urlsplit

    from .conftest import make_settings

    proxy = Proxy(urlsplit(iiq.url).port).start()
    settings = make_settings(f"http://127.0.0.1:{proxy.port}", sqlite_url,
                             IIQSYNC_INCIDENTIQ_MAXRETRIES=10)
    outage = 2 * first_contact_seconds() + 1
    try:
        outcome, waited, retries = teams_through_an_outage(settings, proxy.cut, proxy.restore,
                                                           outage)
    finally:
        proxy.cut()
    assert waited >= outage - 0.5 and retries >= 1, (waited, retries)
    assert outcome["status"] == "succeeded", outcome
    assert outcome["rows"] == district.count("teams")
    db.get_engine(sqlite_url).dispose()
