"""Shared fixtures: real databases, real Redis, the bundled IIQ simulator, and real
``celery worker`` processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from iiqsync import config, db

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("IIQSYNC_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
MY_ADMIN_URL = os.environ.get("IIQSYNC_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("IIQSYNC_TEST_REDIS", "redis://127.0.0.1:6379")
TOKEN = "test-token-7f3a"  # what the simulator accepts in tests


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


# -- databases ------------------------------------------------------------------------
@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'iiqsync.db'}"


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for one test."""
    if not _port_open("127.0.0.1", 5432):
        pytest.fail("PostgreSQL is not running on 127.0.0.1:5432 (.ci/run starts it)")
    name = f"iiqs_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    db.forget(url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def mysql_url():
    """A fresh MariaDB database for one test."""
    if not _port_open("127.0.0.1", 3306):
        pytest.fail("MariaDB is not running on 127.0.0.1:3306 (.ci/run starts it)")
    name = f"iiqs_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(MY_ADMIN_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = MY_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}?charset=utf8mb4"
    yield url
    db.forget(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db_url(request):
    """Each test using it runs once per database that runs here."""
    fixture = {"sqlite": "sqlite_url", "postgresql": "pg_url", "mariadb": "mysql_url"}[request.param]
    return request.getfixturevalue(fixture)


# -- redis --------------------------------------------------------------------------
@pytest.fixture
def redis_url():
    """A Redis database number of its own (flushed before and after). The number is
    claimed in database 0, so test sessions running at the same time on one Redis
    never share a broker, nor flush each other's queued tasks."""
    import redis

    if not _port_open("127.0.0.1", 6379):
        pytest.fail("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")
    claims = redis.Redis.from_url(f"{REDIS_URL}/0")
    owner = f"{os.getpid()}-{uuid.uuid4().hex}"
    first = (os.getpid() + int(time.time() * 1000)) % 15
    deadline = time.monotonic() + 120
    index = None
    while index is None:
        for i in range(15):
            candidate = 1 + (first + i) % 15
            if claims.set(f"iiqsync-test:redis-db:{candidate}", owner, nx=True, ex=1800):
                index = candidate
                break
        else:
            if time.monotonic() > deadline:
                pytest.fail("Redis databases 1-15 are all in use by other test sessions")
            time.sleep(0.5)
    url = f"{REDIS_URL}/{index}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
    claim = f"iiqsync-test:redis-db:{index}"
    if claims.get(claim) == owner.encode():
        claims.delete(claim)
    claims.close()


# -- simulator ------------------------------------------------------------------------
@pytest.fixture
def district():
    from iiqsync.simulator.district import District

    return District(seed=7, users=120, assets=230, locations=9, rooms=25, teams=5, tickets=160)


@pytest.fixture
def iiq(district):
    """The simulator serving ``district`` on a free loopback port."""
    from iiqsync.simulator.server import SimulatorServer

    with SimulatorServer(district, token=TOKEN) as server:
        yield server


def make_env(iiq_url: str, db_url: str, **extra) -> dict:
    env = {
        "IIQSYNC_INCIDENTIQ_INSTANCE": iiq_url,
        "IIQSYNC_INCIDENTIQ_TOKEN": TOKEN,
        "IIQSYNC_DATABASE_CONNECTIONSTRING": db_url,
        "IIQSYNC_GENERAL_PAGESIZE": "50",
        "IIQSYNC_GENERAL_THREADS": "4",
        "IIQSYNC_GENERAL_TIMEOUT": "10",
        "IIQSYNC_INCIDENTIQ_REQUESTSPERSECOND": "500",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def make_settings(iiq_url: str, db_url: str, **extra) -> config.Settings:
    return config.load(path=os.devnull, env=make_env(iiq_url, db_url, **extra))


# -- celery workers ---------------------------------------------------------------------
class Worker:
    """A real ``celery -A iiqsync worker`` process."""

    def __init__(self, env: dict, concurrency: int = 2, name: str | None = None,
                 log_path: Path | None = None, pool: str | None = None):
        self.name = name or f"w{uuid.uuid4().hex[:6]}@%h"
        self.pool = pool  # None: celery's default (prefork); "threads" is lighter
        # /dev/null as the config file: only the environment given here counts.
        self.env = {**os.environ, "IIQSYNC_CONFIG": os.devnull, **env, "PYTHONUNBUFFERED": "1"}
        self.concurrency = concurrency
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Worker:
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "iiqsync", "worker", "-c", str(self.concurrency),
             "-n", self.name, "--loglevel", "INFO", "--without-gossip", "--without-mingle",
             *(["-P", self.pool] if self.pool else [])],
            cwd=str(ROOT), env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        from celery import Celery

        probe = Celery(broker=self.env["IIQSYNC_CELERY_BROKERURL"])
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {self.proc.returncode}; see {self.log_path}")
                # This worker's own answer: another one already up would answer any ping.
                if probe.control.ping(destination=[self.hostname], timeout=1.0):
                    return
                time.sleep(0.3)
        finally:
            probe.close()
        raise RuntimeError(f"worker not ready after {timeout}s; see {self.log_path}")

    @property
    def hostname(self) -> str:
        return self.name.replace("%h", socket.gethostname())

    def children(self) -> list[int]:
        import psutil

        return [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            import signal

            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture
def worker_factory(tmp_path):
    started: list[Worker] = []

    def start(env: dict, concurrency: int = 2, **kw) -> Worker:
        w = Worker(env, concurrency, log_path=tmp_path / f"worker{len(started)}.log", **kw)
        started.append(w)
        return w.start()

    yield start
    for w in started:
        w.stop()


def run_cli(args: list[str], env: dict, timeout: float = 300, cwd: Path | None = None):
    """Run ``python -m iiqsync ARGS`` as a user would; returns CompletedProcess."""
    full_env = {**os.environ, "IIQSYNC_CONFIG": os.devnull, **env}
    return subprocess.run([sys.executable, "-m", "iiqsync", *args], env=full_env,
                          cwd=str(cwd or ROOT), capture_output=True, text=True, timeout=timeout)


def start_local_sync(env: dict, entity: str = "assets") -> subprocess.Popen:
    """``iiqsync sync ENTITY --local`` in a process of its own, its output kept as text."""
    return subprocess.Popen([sys.executable, "-m", "iiqsync", "sync", entity, "--local",
                             "--no-progress"], cwd=str(ROOT),
                            env={**os.environ, "IIQSYNC_CONFIG": os.devnull, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_pages_staged(db_url: str, at_least: int = 3, timeout: float = 30) -> None:
    """Until a run has staged ``at_least`` pages (or ``timeout`` passes): a sync
    caught in the middle."""
    engine = sa.create_engine(db_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            time.sleep(0.3)
            with engine.connect() as conn:
                if sa.inspect(conn).has_table("iiqsync_run_pages") and conn.exec_driver_sql(
                        "SELECT COUNT(*) FROM iiqsync_run_pages WHERE done").scalar_one() >= at_least:
                    return
    finally:
        engine.dispose()
