"""The Celery application: ``celery -A iiqsync worker|beat|flower`` finds ``app`` here.

Settings come from the same config.ini / IIQSYNC_* environment as the command
line. Page tasks are acknowledged late and rejected when their worker dies, so a
killed worker's page is delivered again; one task at a time per process keeps a
worker's memory at one page.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from celery import Celery, signals
from celery.worker.control import inspect_command

from . import config, db, logs, requestslots
from .errors import ConfigError
from .health import HeartbeatFile
from .metrics import MetricsExporter
from .schedule import beat_schedule

log = logging.getLogger(__name__)

TASK_SOFT_LIMIT = 540
TASK_HARD_LIMIT = 600

_settings: config.Settings | None = None


def settings() -> config.Settings:
    """The settings of this process, loaded and checked once."""
    global _settings
    if _settings is None:
        _settings = config.load(require_iiq=False)
    return _settings


def make_app(conf: config.Settings) -> Celery:
    app = Celery("iiqsync", include=["iiqsync.tasks"])
    broker = conf.broker_url or "redis://127.0.0.1:6379/0"
    app.conf.update(
        broker_url=broker,
        result_backend=conf.result_backend or broker,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=TASK_SOFT_LIMIT,
        task_time_limit=TASK_HARD_LIMIT,
        result_expires=24 * 3600,
        result_extended=True,
        task_track_started=True,
        task_send_sent_event=True,
        worker_send_task_events=True,
        broker_connection_retry_on_startup=True,
        # A message whose worker vanished (not just a child process) comes back
        # after this long; it must exceed the longest task.
        broker_transport_options={"visibility_timeout": 3 * TASK_HARD_LIMIT},
        result_backend_transport_options={"visibility_timeout": 3 * TASK_HARD_LIMIT},
        beat_schedule=beat_schedule(conf),
        timezone="UTC",
        worker_hijack_root_logger=False,
        # Lines written during a task carry its entity, run id and page (logs.py).
        worker_log_format=logs.WORKER_LOG_FORMAT,
    )
    return app


SLOTS_COMMAND = "iiqsync_slots"


@inspect_command(name=SLOTS_COMMAND)
def _slots_reply(state, **kwargs) -> dict:
    """A worker's answer to ``SLOTS_COMMAND``: how many page tasks it can have
    waiting on IIQ at once, its pool size capped by its own ``[Celery]
    RequestsInFlight`` (each worker answers for its own settings)."""
    pool = getattr(state.consumer, "pool", None)
    size = int((pool.info if pool is not None else {}).get("max-concurrency") or 0)
    return {"slots": requestslots.cap_slots(size, requestslots.permits())}


def ask_pool_slots(timeout: float = 0.5, quiet: float = 0.1) -> Callable[[], int | None]:
    """Start asking the workers on this broker how many page tasks they can have
    waiting on IIQ at once (``SLOTS_COMMAND``: each its pool size, capped by its
    ``[Celery] RequestsInFlight``) and return a function that gives the sum.

    The broadcast collects replies until none has come for ``timeout`` seconds;
    the answer is ready sooner, once ``quiet`` seconds pass after a reply with no
    other (every worker answers within milliseconds of the others). None when no
    worker answers within ``timeout`` (a ``-P solo`` worker busy with the asking
    task cannot). Remembered for a minute per process."""
    now = time.monotonic()
    if _slots_seen and now - _slots_seen[0] < SLOTS_FOR_SECONDS:
        known = _slots_seen[1]
        return lambda: known
    return _SlotsAnswer(timeout, quiet)


class _SlotsAnswer:
    def __init__(self, timeout: float, quiet: float):
        self._quiet = quiet
        self._replies: dict = {}
        self._last_reply: float | None = None
        self._finished = False
        self._changed = threading.Condition()
        # A daemon thread: the broadcast may go on collecting after the answer was
        # taken, and the task need not wait for it.
        threading.Thread(target=self._ask, args=(timeout,), name="iiqsync-slots",
                         daemon=True).start()

    def _ask(self, timeout: float) -> None:
        try:
            app.control.broadcast(SLOTS_COMMAND, reply=True, timeout=timeout,
                                  callback=self._on_reply)
        except Exception as exc:  # an answer to an optimisation is not worth failing a run
            log.warning("could not ask the workers for their pool sizes: %s", exc)
        finally:
            with self._changed:
                self._finished = True
                self._changed.notify_all()

    def _on_reply(self, reply) -> None:
        with self._changed:
            if isinstance(reply, dict):
                self._replies.update(reply)
            self._last_reply = time.monotonic()
            self._changed.notify_all()

    def __call__(self) -> int | None:
        with self._changed:
            while not self._finished:
                if self._last_reply is None:
                    self._changed.wait()
                    continue
                left = self._last_reply + self._quiet - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            slots = sum(int(r.get("slots") or 0) for r in self._replies.values()
                        if isinstance(r, dict)) or None
        if slots is not None:
            _slots_seen[:] = [time.monotonic(), slots]
        return slots


SLOTS_FOR_SECONDS = 60.0
_slots_seen: list = []


def _exit_with(problems: ConfigError):
    """End the process with the problems alone: Celery would bury them under "Unable
    to load celery application" and three chained tracebacks, or (raised from a
    signal handler) log them and start the worker anyway."""
    # The real stderr: beat has already sent sys.stderr to its log by now.
    print(f"iiqsync: {problems}", file=sys.__stderr__ or sys.stderr)
    raise SystemExit(2) from None


def _settings_for_the_app() -> config.Settings:
    try:
        return settings()
    except ConfigError as exc:
        if Path(sys.argv[0]).name in ("celery", "__main__.py") and "celery" in sys.argv[0]:
            _exit_with(exc)
        raise  # imported by iiqsync's own command line, which reports it itself


logs.install()
app = make_app(_settings_for_the_app())
# Liveness without a broker round trip: the worker touches a file on its own timer.
app.steps["worker"].add(HeartbeatFile)
# Prometheus metrics on [Metrics] Port (metrics.py says what and why from where).
app.steps["worker"].add(MetricsExporter)


@signals.worker_process_init.connect
def _after_fork(**_):
    from . import pipeline

    # Connections opened by the parent must not be used by a forked child.
    db.dispose_all()
    if settings().connection_string:
        # In the background: a child must report ready within seconds, however
        # slowly the database answers. Its first task waits for this if need be.
        threading.Thread(target=pipeline.warm, args=(settings(), True), daemon=True,
                         name="iiqsync-warm").start()


@signals.worker_init.connect
def _check_settings(sender=None, **_):
    from . import pipeline

    if getattr(sender, "app", app) is not app:
        return  # another Celery app's worker in this process (the signal is global)

    # A worker with no token or instance would fail every task: refuse to start.
    try:
        config.load(require_iiq=True)
    except ConfigError as exc:
        _exit_with(exc)
    _require_broker("worker")
    if settings().connection_string:
        # The driver, loaded once here, serves every child forked after.
        pipeline.warm(settings(), connect=False)
    # Before the pool forks: its processes share these permits.
    requestslots.setup(settings().get("Celery", "RequestsInFlight"))


# Without a broker setting the app still points at a local Redis, so that commands
# such as `celery -A iiqsync inspect` have something to ask; a worker or beat must not
# quietly take or send the tasks of whatever else uses that Redis.
def _require_broker(role: str) -> None:
    if not settings().broker_url:
        _exit_with(ConfigError([
            f"[Celery] BrokerUrl is missing: a {role} needs the broker the workers share "
            "(e.g. redis://redis:6379/0); env IIQSYNC_CELERY_BROKERURL"]))


@signals.beat_init.connect
def _check_beat_settings(sender=None, **_):
    if getattr(sender, "app", app) is app:
        _require_broker("beat")


@signals.worker_shutdown.connect
def _remove_permits(sender=None, **_):
    if getattr(sender, "app", app) is app:
        requestslots.teardown()
