"""Worker liveness without a broker round trip.

A running worker touches a heartbeat file from its own timer every few seconds
(``HeartbeatFile``, a Celery worker bootstep). A liveness probe then only has
to look at the file's age::

    python -m iiqsync.health --max-age 60

exits 0 while the file is fresh and 1 when it is missing or stale, printing why.
Pinging the worker through the broker (``celery inspect ping``) would instead
make every probe depend on Redis and on the worker's remote-control queue, and
restart healthy workers whenever Redis is slow.

The file's path comes from ``IIQSYNC_HEARTBEAT_FILE`` (default
``/tmp/iiqsync-worker-heartbeat``); the worker and the probe run in the same
container, so they see the same environment and the same file.

Register the step on the Celery app::

    app.steps["worker"].add(HeartbeatFile)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from celery import bootsteps

HEARTBEAT_FILE_ENV = "IIQSYNC_HEARTBEAT_FILE"
DEFAULT_HEARTBEAT_FILE = "/tmp/iiqsync-worker-heartbeat"

#: Seconds between two touches of the heartbeat file.
HEARTBEAT_INTERVAL = 15.0
#: Default age, in seconds, past which the probe calls the worker dead: four
#: missed beats, so one slow timer tick never restarts a worker.
DEFAULT_MAX_AGE = 60.0

logger = logging.getLogger(__name__)


def heartbeat_path() -> Path:
    """The heartbeat file named by ``IIQSYNC_HEARTBEAT_FILE``, or the default."""
    return Path(os.environ.get(HEARTBEAT_FILE_ENV) or DEFAULT_HEARTBEAT_FILE)


def touch(path: Path) -> None:
    """Create ``path`` or set its modification time to now."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)


class HeartbeatFile(bootsteps.StartStopStep):
    """Worker bootstep: touch the heartbeat file every ``interval`` seconds.

    The touch runs on the worker's own timer. With the prefork pool that timer
    is driven by the worker's event loop, so beats stop when the loop stalls or
    the worker loses its broker connection, which is what a liveness probe should
    notice. The file is removed when the worker stops, so a later worker in the
    same container never inherits a fresh-looking file.
    """

    label = "iiqsync heartbeat file"
    requires = {"celery.worker.components:Timer"}
    interval = HEARTBEAT_INTERVAL

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.path = heartbeat_path()
        self.tref = None
        self._failing = False

    def start(self, parent):
        self.beat()
        self.tref = parent.timer.call_repeatedly(self.interval, self.beat, priority=10)

    def stop(self, parent):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("could not remove heartbeat file %s: %s", self.path, exc)

    # A cold shutdown (second SIGTERM, SIGQUIT) calls terminate instead of stop.
    terminate = stop

    def beat(self) -> None:
        """Touch the file; a failure is logged once and never stops the worker."""
        try:
            touch(self.path)
        except OSError as exc:
            if not self._failing:
                logger.error(
                    "cannot write heartbeat file %s (%s): liveness probes will fail; "
                    "point %s at a writable path",
                    self.path,
                    exc,
                    HEARTBEAT_FILE_ENV,
                )
            self._failing = True
        else:
            if self._failing:
                logger.info("heartbeat file %s is being written again", self.path)
            self._failing = False


def check(path: str | os.PathLike[str], max_age_seconds: float) -> int:
    """Return 0 when ``path`` was touched within ``max_age_seconds``, else 1.

    Prints one line saying why, for the probe's log.
    """
    path = Path(path)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        print(
            f"unhealthy: heartbeat file {path} does not exist "
            "(worker not started, stopped, or writing elsewhere: check "
            f"{HEARTBEAT_FILE_ENV})",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(f"unhealthy: cannot read heartbeat file {path}: {exc}", file=sys.stderr)
        return 1
    age = time.time() - mtime
    if age > max_age_seconds:
        print(
            f"unhealthy: heartbeat file {path} is {age:.0f}s old, "
            f"older than {max_age_seconds:g}s (worker event loop stalled or "
            "disconnected from the broker)",
            file=sys.stderr,
        )
        return 1
    print(f"healthy: heartbeat file {path} is {max(age, 0.0):.0f}s old")
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m iiqsync.health",
        description="Exit 0 when the worker heartbeat file is fresh, 1 otherwise.",
    )
    parser.add_argument(
        "--max-age",
        type=_positive,
        default=DEFAULT_MAX_AGE,
        metavar="S",
        help=f"oldest acceptable heartbeat, in seconds (default {DEFAULT_MAX_AGE:g})",
    )
    parser.add_argument(
        "--file",
        type=Path,
        default=None,
        help=f"heartbeat file (default ${HEARTBEAT_FILE_ENV} or {DEFAULT_HEARTBEAT_FILE})",
    )
    args = parser.parse_args(argv)
    return check(args.file or heartbeat_path(), args.max_age)


if __name__ == "__main__":
    sys.exit(main())
