"""Prometheus metrics, served by every worker on ``[Metrics] Port`` (default 9808,
0 turns it off) at ``/metrics``.

Two sources, each chosen so that the numbers stay right with many workers on many
machines and across restarts:

* **Run figures come from the run history** (``iiqsync_runs``), read at scrape time:
  rows, duration and time of each entity's last success, runs by outcome, runs in
  progress. One run is spread over many processes (plan on one worker, pages on all
  of them, finalize on another), so no process ever sees a whole run, and whatever a
  process counted in memory is gone when it restarts. The run record is the one place
  that knows, and it survives everything. Every worker therefore reports the same run
  figures: aggregate them with ``max by (entity)``, not ``sum``.
* **Work counters are counted where the work happens** (API requests by HTTP status,
  pages fetched), in the prefork pool's child processes, through prometheus_client's
  multiprocess mode: each child writes its counts into a file in a directory that
  belongs to this worker, and the exporter in the worker's main process adds up every
  file, including those of children that have since exited or been replaced. The
  directory is emptied when the worker starts, so a restart shows as a counter reset,
  which ``rate()`` and ``increase()`` handle; ``sum`` them over workers.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from celery import bootsteps
from prometheus_client import CollectorRegistry, Counter, start_http_server, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from .entities import ENTITIES
from .runs import FAILED, RUNNING, SKIPPED, SUCCEEDED

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Labelled only: a labelled metric creates its value on first use, in the process
# that uses it, after the worker has switched prometheus_client to multiprocess mode.
API_REQUESTS = Counter(
    "iiqsync_api_requests", "Requests sent to Incident IQ, by HTTP status "
    "(429: throttled; 'timeout' and 'connection': no answer)", ["code"], registry=None)
PAGES = Counter("iiqsync_pages_fetched", "List pages fetched from IIQ and staged, by entity",
                ["entity"], registry=None)


def count_request(code: int | str) -> None:
    """One request to IIQ ended with HTTP status ``code`` (or 'timeout', 'connection')."""
    API_REQUESTS.labels(code=str(code)).inc()


def count_page(entity: str) -> None:
    PAGES.labels(entity=entity).inc()


# -- run figures from the database --------------------------------------------------
def _epoch(value: datetime | None) -> float:
    return value.replace(tzinfo=UTC).timestamp() if value else 0.0


def run_figures(books) -> dict:
    """What ``iiqsync_runs`` says about each entity, in three small queries."""
    r = books.runs
    with books.engine.connect() as conn:
        counts = conn.execute(sa.select(r.c.entity, r.c.status, sa.func.count())
                              .group_by(r.c.entity, r.c.status)).fetchall()
        last_ok = (sa.select(r.c.entity, sa.func.max(r.c.finished).label("finished"))
                   .where(r.c.status == SUCCEEDED).group_by(r.c.entity).subquery())
        ok_rows = conn.execute(
            sa.select(r.c.entity, r.c.started, r.c.finished, r.c.rows)
            .select_from(r.join(last_ok, sa.and_(r.c.entity == last_ok.c.entity,
                                                 r.c.finished == last_ok.c.finished)))
            .where(r.c.status == SUCCEEDED)).fetchall()
        ended = (r.c.status == SUCCEEDED) | (r.c.status == FAILED)
        last_end = (sa.select(r.c.entity, sa.func.max(r.c.finished).label("finished"))
                    .where(ended).group_by(r.c.entity).subquery())
        end_rows = conn.execute(
            sa.select(r.c.entity, r.c.status)
            .select_from(r.join(last_end, sa.and_(r.c.entity == last_end.c.entity,
                                                  r.c.finished == last_end.c.finished)))
            .where(ended)).fetchall()
    return {"counts": [tuple(c) for c in counts],
            "last_success": {e: (started, finished, rows) for e, started, finished, rows in ok_rows},
            "last_failed": {e: status == FAILED for e, status in end_rows}}


class RunCollector:
    """Reads the run history on every scrape (see the module's docstring for why)."""

    def __init__(self, settings):
        self.settings = settings
        self._failing = False

    def collect(self):
        from . import pipeline

        up = GaugeMetricFamily("iiqsync_database_up",
                               "1 when the run history in the target database could be read")
        try:
            figures = run_figures(pipeline.context(self.settings).books)
        except Exception as exc:  # a scrape must answer even when the database is away
            if not self._failing:
                log.warning("metrics: cannot read the run history: %s",
                            str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
            self._failing = True
            up.add_metric([], 0)
            yield up
            return
        self._failing = False
        up.add_metric([], 1)
        yield up

        runs = CounterMetricFamily("iiqsync_runs", "Runs recorded in iiqsync_runs, by outcome",
                                   labels=["entity", "status"])
        running = GaugeMetricFamily("iiqsync_runs_running", "Runs in progress",
                                    labels=["entity"])
        seen: dict[tuple[str, str], int] = {}
        for entity, status, n in figures["counts"]:
            seen[(entity, status)] = n
        for entity in ENTITIES:
            for status in (SUCCEEDED, FAILED, SKIPPED):
                runs.add_metric([entity, status], seen.get((entity, status), 0))
            running.add_metric([entity], seen.get((entity, RUNNING), 0))
        yield runs
        yield running

        when = GaugeMetricFamily(
            "iiqsync_last_success_timestamp_seconds",
            "Unix time the entity's last successful run finished (0: never)", labels=["entity"])
        rows = GaugeMetricFamily("iiqsync_last_success_rows",
                                 "Rows the entity's last successful run put in its table",
                                 labels=["entity"])
        took = GaugeMetricFamily("iiqsync_last_success_duration_seconds",
                                 "How long the entity's last successful run took",
                                 labels=["entity"])
        failed = GaugeMetricFamily("iiqsync_last_run_failed",
                                   "1 when the entity's latest finished run failed",
                                   labels=["entity"])
        for entity in ENTITIES:
            started, finished, count = figures["last_success"].get(entity, (None, None, None))
            when.add_metric([entity], _epoch(finished))
            if finished is not None:
                rows.add_metric([entity], count or 0)
                took.add_metric([entity], (finished - started).total_seconds())
            failed.add_metric([entity], 1 if figures["last_failed"].get(entity) else 0)
        yield from (when, rows, took, failed)


# -- the exporter on a worker ---------------------------------------------------------
def registry(settings, multiprocess_dir: str | None) -> CollectorRegistry:
    """Run figures, plus the work counters of every process sharing ``multiprocess_dir``."""
    reg = CollectorRegistry(auto_describe=False)
    if multiprocess_dir:
        MultiProcessCollector(reg, path=multiprocess_dir)
    reg.register(RunCollector(settings))
    return reg


def _multiprocess_dir() -> tuple[str, bool]:
    """The directory for the work counters of this worker's processes, emptied; and
    whether this worker made it (and so removes it when it stops)."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        return str(path), False
    return tempfile.mkdtemp(prefix="iiqsync-metrics-"), True


class MetricsExporter(bootsteps.StartStopStep):
    """Worker bootstep: serve ``/metrics`` on ``[Metrics] Port``.

    Multiprocess mode is switched on while the worker is being built, before the
    pool forks its children, so they inherit it; the HTTP server starts after the
    pool, in the main process. A port that cannot be bound (another worker on the
    same machine has it) is logged and the worker runs on without an exporter.
    """

    label = "iiqsync metrics exporter"
    requires = {"celery.worker.components:Pool"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        from .celery import settings

        self.settings = settings()
        self.port = self.settings.get("Metrics", "Port")
        self.server = None
        self.dir, self._own_dir = (None, False)
        if self.port:
            self.dir, self._own_dir = _multiprocess_dir()
            os.environ[MULTIPROC_ENV] = self.dir
            values.ValueClass = values.MultiProcessValue()

    def start(self, parent):
        if not self.port:
            return
        try:
            self.server, _thread = start_http_server(self.port, addr="0.0.0.0",
                                                     registry=registry(self.settings, self.dir))
        except OSError as exc:
            log.error("metrics: cannot listen on port %d (%s); this worker serves no metrics "
                      "(give each worker on a machine its own [Metrics] Port, "
                      "env IIQSYNC_METRICS_PORT)", self.port, exc)
            return
        log.info("metrics: serving Prometheus metrics on :%d/metrics", self.port)

    def stop(self, parent):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self._own_dir and self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._own_dir = False

    terminate = stop
