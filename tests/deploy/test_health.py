"""iiqsync.health: the worker heartbeat file and the probe that reads it. No broker."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from celery import Celery
from celery.utils.imports import symbol_by_name

from iiqsync import health
from iiqsync.health import HeartbeatFile, check

REPO = Path(__file__).resolve().parents[2]


def age(path: Path, seconds: float) -> None:
    """Set ``path``'s modification time to ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


class FakeTimer:
    """Stands in for the worker's timer: records what is scheduled."""

    def __init__(self):
        self.calls = []
        self.cancelled = 0

    def call_repeatedly(self, secs, fun, args=(), kwargs=None, priority=0):
        self.calls.append((secs, fun, priority))
        timer = self

        class Ref:
            def cancel(self):
                timer.cancelled += 1

        return Ref()


class FakeWorker:
    def __init__(self):
        self.timer = FakeTimer()


@pytest.fixture
def heartbeat(tmp_path, monkeypatch):
    path = tmp_path / "run" / "heartbeat"
    monkeypatch.setenv(health.HEARTBEAT_FILE_ENV, str(path))
    return path


# check() and the command line


def test_missing_file_is_unhealthy(tmp_path, capsys):
    assert check(tmp_path / "nothing", 60) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "IIQSYNC_HEARTBEAT_FILE" in err


def test_fresh_file_is_healthy(tmp_path, capsys):
    path = tmp_path / "hb"
    path.touch()
    assert check(path, 60) == 0
    assert "healthy" in capsys.readouterr().out


def test_stale_file_is_unhealthy(tmp_path, capsys):
    path = tmp_path / "hb"
    path.touch()
    age(path, 120)
    assert check(path, 60) == 1
    err = capsys.readouterr().err
    assert "120s old" in err and "older than 60s" in err


def test_file_from_the_future_counts_as_fresh(tmp_path):
    path = tmp_path / "hb"
    path.touch()
    age(path, -30)
    assert check(path, 60) == 0


def test_check_accepts_str_paths(tmp_path):
    path = tmp_path / "hb"
    path.touch()
    assert check(str(path), 1) == 0


def test_main_reads_the_path_from_the_environment(heartbeat):
    assert health.main([]) == 1
    health.touch(heartbeat)
    assert health.main([]) == 0
    age(heartbeat, 30)
    assert health.main(["--max-age", "10"]) == 1
    assert health.main(["--max-age", "45"]) == 0


def test_main_file_option_wins_over_environment(heartbeat, tmp_path):
    other = tmp_path / "other"
    other.touch()
    assert health.main(["--file", str(other)]) == 0


def test_default_path(monkeypatch):
    monkeypatch.delenv(health.HEARTBEAT_FILE_ENV, raising=False)
    assert health.heartbeat_path() == Path("/tmp/iiqsync-worker-heartbeat")
    monkeypatch.setenv(health.HEARTBEAT_FILE_ENV, "")
    assert health.heartbeat_path() == Path("/tmp/iiqsync-worker-heartbeat")


@pytest.mark.parametrize("bad", ["0", "-5", "soon"])
def test_main_rejects_a_bad_max_age(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        health.main(["--max-age", bad])
    assert exc.value.code == 2


def test_the_default_max_age_tolerates_missed_beats():
    assert health.DEFAULT_MAX_AGE >= 3 * health.HEARTBEAT_INTERVAL


def test_python_dash_m_exit_codes(tmp_path):
    path = tmp_path / "hb"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        health.HEARTBEAT_FILE_ENV: str(path),
    }

    def probe(*args):
        return subprocess.run(
            [sys.executable, "-m", "iiqsync.health", *args],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )

    missing = probe()
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
    path.touch()
    assert probe("--max-age", "60").returncode == 0
    age(path, 300)
    stale = probe("--max-age", "60")
    assert stale.returncode == 1
    assert "300s old" in stale.stderr


# The bootstep


def test_bootstep_requires_the_worker_timer():
    required = {symbol_by_name(name) for name in HeartbeatFile.requires}
    assert required == {symbol_by_name("celery.worker.components:Timer")}


def test_start_touches_and_schedules(heartbeat):
    worker = FakeWorker()
    step = HeartbeatFile(worker)
    step.start(worker)
    assert heartbeat.exists()
    [(secs, fun, priority)] = worker.timer.calls
    assert secs == HeartbeatFile.interval
    age(heartbeat, 100)
    fun()
    assert check(heartbeat, 5) == 0


def test_stop_cancels_and_removes_the_file(heartbeat):
    worker = FakeWorker()
    step = HeartbeatFile(worker)
    step.start(worker)
    step.stop(worker)
    assert worker.timer.cancelled == 1
    assert not heartbeat.exists()
    step.stop(worker)  # a second stop (shutdown after stop) is harmless
    assert worker.timer.cancelled == 1


def test_terminate_also_removes_the_file(heartbeat):
    worker = FakeWorker()
    step = HeartbeatFile(worker)
    step.start(worker)
    step.terminate(worker)
    assert not heartbeat.exists()


def test_unwritable_path_is_logged_once_and_never_raises(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(health.HEARTBEAT_FILE_ENV, str(blocker / "heartbeat"))
    worker = FakeWorker()
    step = HeartbeatFile(worker)
    with caplog.at_level(logging.ERROR, logger="iiqsync.health"):
        step.start(worker)
        step.beat()
        step.beat()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "IIQSYNC_HEARTBEAT_FILE" in errors[0].getMessage()
    step.stop(worker)


def test_real_worker_beats_and_cleans_up(heartbeat):
    """A real Celery worker (in-memory broker, solo pool) runs the step from its timer."""

    class FastHeartbeat(HeartbeatFile):
        interval = 0.05

    app = Celery("iiqsync-health-test", broker="memory://", backend="cache+memory://",
                 set_as_current=False)
    app.conf.broker_connection_retry_on_startup = False
    app.steps["worker"].add(FastHeartbeat)
    worker = app.WorkController(
        pool_cls="solo", concurrency=1, hostname="health-test@localhost",
        without_heartbeat=True, without_mingle=True, without_gossip=True,
        loglevel="WARNING",
    )
    assert any(isinstance(s, FastHeartbeat) for s in worker.steps)
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not heartbeat.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert heartbeat.exists(), "the worker never wrote its heartbeat file"
        age(heartbeat, 100)
        deadline = time.monotonic() + 10
        while check(heartbeat, 5) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert check(heartbeat, 5) == 0, "the worker's timer did not touch the file again"
    finally:
        worker.stop(in_sighandler=False)
        thread.join(15)
    assert not thread.is_alive()
    assert not heartbeat.exists()
