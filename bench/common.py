"""What the benchmark settings share: a simulator, a Redis and a PostgreSQL database
of their own, real celery workers, and samplers for their memory."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("IIQSYNC_BENCH_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, grace: float = 20) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@contextmanager
def simulator(*args: str):
    """The bundled simulator in its own process: ``python -m iiqsync.simulator ARGS``.
    Yields its base URL and the process."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "iiqsync.simulator", "--port", str(port), "--token", TOKEN, *args],
        cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    url = None
    deadline = time.monotonic() + 60
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator exited with {proc.wait()}")
        found = re.search(r"listening on (\S+)", line)
        if found:
            url = found.group(1)
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain
    try:
        yield url, proc
    finally:
        _stop(proc)


@contextmanager
def redis_server():
    """A Redis of its own, so its used_memory is the benchmark's alone."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    import redis

    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        yield url, client
    finally:
        client.close()
        _stop(proc)


@contextmanager
def pg_database():
    """A fresh PostgreSQL database; yields its URL and drops it afterwards."""
    name = f"iiqs_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def iiqsync_env(iiq_url: str, db_url: str, broker: str | None, **extra) -> dict:
    env = {**os.environ, "IIQSYNC_CONFIG": os.devnull, "PYTHONUNBUFFERED": "1",
           "IIQSYNC_INCIDENTIQ_INSTANCE": iiq_url, "IIQSYNC_INCIDENTIQ_TOKEN": TOKEN,
           "IIQSYNC_DATABASE_CONNECTIONSTRING": db_url, "IIQSYNC_METRICS_PORT": "0"}
    if broker:
        env["IIQSYNC_CELERY_BROKERURL"] = broker
    env.update({k: str(v) for k, v in extra.items()})
    return env


@contextmanager
def celery_worker(env: dict, concurrency: int, pool: str = "prefork", log_path: Path | None = None,
                  loglevel: str = "WARNING"):
    """A real ``celery -A iiqsync worker``; yields its process once it answers a ping."""
    from celery import Celery

    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    name = f"bench{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "iiqsync", "worker", "-c", str(concurrency),
         "-P", pool, "-n", name, "--loglevel", loglevel, "--without-gossip", "--without-mingle"],
        cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    probe = Celery(broker=env["IIQSYNC_CELERY_BROKERURL"])
    try:
        deadline = time.monotonic() + 90
        # This worker's own answer: another one already up would answer any ping.
        while not probe.control.ping(destination=[name], timeout=1.0):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start; see {log_path}")
            time.sleep(0.3)
        yield proc
    finally:
        probe.close()
        _stop(proc, grace=30)


class Sampler:
    """Samples, every ``interval`` seconds until stopped: the RSS of each process in
    the trees rooted at ``pids`` (peak per process, and peak of their sum), Redis
    used_memory (peak) and CPU seconds of those trees."""

    def __init__(self, pids: list[int], redis_client=None, interval: float = 0.2):
        self.roots = [psutil.Process(p) for p in pids]
        self.redis = redis_client
        self.interval = interval
        self.peak_rss: dict[int, int] = {}
        self.peak_total = 0
        self.redis_peak = 0
        self.redis_start = redis_client.info("memory")["used_memory"] if redis_client else 0
        self._cpu: dict[int, float] = {}
        # CPU the processes had used before the measured run (start-up, warm-up):
        # left out, so the figure is the run's own.
        self._cpu_before: dict[int, float] = {}
        for proc in self._procs():
            try:
                times = proc.cpu_times()
                self._cpu_before[proc.pid] = times.user + times.system
            except psutil.NoSuchProcess:
                pass
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _procs(self):
        procs = []
        for root in self.roots:
            try:
                procs.append(root)
                procs.extend(root.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        return procs

    def _run(self):
        while not self._stop.is_set():
            total = 0
            for proc in self._procs():
                try:
                    rss = proc.memory_info().rss
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += rss
                self.peak_rss[proc.pid] = max(self.peak_rss.get(proc.pid, 0), rss)
                self._cpu[proc.pid] = times.user + times.system
            self.peak_total = max(self.peak_total, total)
            if self.redis is not None:
                try:
                    self.redis_peak = max(self.redis_peak, self.redis.info("memory")["used_memory"])
                except Exception:  # a sample lost while Redis is busy is not a result
                    pass
            self._stop.wait(self.interval)

    @property
    def peak_rss_each_mb(self) -> float:
        return max(self.peak_rss.values(), default=0) / 2**20

    @property
    def cpu_seconds(self) -> float:
        return sum(cpu - self._cpu_before.get(pid, 0.0) for pid, cpu in self._cpu.items())

    @property
    def roots_cpu_seconds(self) -> float:
        """The part of ``cpu_seconds`` spent by the processes started (for a Celery
        worker: its main process, not the pool's)."""
        return sum(self._cpu.get(r.pid, 0.0) - self._cpu_before.get(r.pid, 0.0)
                   for r in self.roots)

    def report(self) -> dict:
        return {"worker_peak_rss_mb_each": round(self.peak_rss_each_mb, 1),
                "worker_peak_rss_mb_total": round(self.peak_total / 2**20, 1),
                "worker_processes": len(self.peak_rss),
                "worker_cpu_seconds": round(self.cpu_seconds, 1),
                "worker_cpu_seconds_of_the_main_processes": round(self.roots_cpu_seconds, 1),
                "redis_used_memory_peak_mb": round(self.redis_peak / 2**20, 2),
                "redis_used_memory_start_mb": round(self.redis_start / 2**20, 2)}


def machine() -> dict:
    """What the figures were measured on."""
    import platform

    import celery
    import psycopg2

    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with sa.create_engine(PG_ADMIN_URL).connect() as conn:
        pg = conn.exec_driver_sql("SHOW server_version").scalar()
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                   text=True).stdout.split()[2].removeprefix("v=")
    return {"nproc": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu": cpu, "python": platform.python_version(), "celery": celery.__version__,
            "sqlalchemy": sa.__version__, "psycopg2": psycopg2.__version__.split()[0],
            "postgresql": pg, "redis": redis_version, "load_average_at_start": os.getloadavg()}


def count_rows(db_url: str, tables: list[str]) -> dict[str, int]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return {t: conn.exec_driver_sql(f'SELECT count(*) FROM "{t}"').scalar() for t in tables}
    finally:
        engine.dispose()
