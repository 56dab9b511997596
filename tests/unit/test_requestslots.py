"""``[Celery] RequestsInFlight``: the permits a worker's main process makes before it
forks its pool cap how many of its processes (or threads) wait on IIQ at once, and a
process killed while holding one gives it back. Real processes, forked as Celery's
prefork pool forks them, and real ``flock`` locks."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from iiqsync import requestslots

ROOT = Path(__file__).resolve().parents[2]
HOLD = 0.2  # seconds each holder keeps its permit


@pytest.fixture(autouse=True)
def _no_permits_left():
    yield
    requestslots.teardown()


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most of ``spans`` (enter, exit) that were open at one time."""
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    most = now = 0
    for _, step in events:  # at equal times an exit (-1) sorts before an enter
        now += step
        most = max(most, now)
    return most


def scenario(name: str) -> dict:
    """Run a forking scenario of ``permit_pool`` in a fresh interpreter, as a
    worker's main process forks its pool; what it saw."""
    done = subprocess.run([sys.executable, "-m", "tests.unit.permit_pool", name],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_processes_forked_after_setup_share_the_permits():
    """Five processes forked after ``setup(2)``, each wanting a permit for 0.2 s: two,
    never more, hold one at a time; and two do at once (a cap, not a queue of one).
    The forking process has used the permits itself first: its open lock files,
    inherited, would be one lock shared by every child."""
    seen = scenario("share")
    assert len(seen["spans"]) == 5, f"only {len(seen['spans'])} of 5 processes got a permit"
    assert seen["exitcodes"] == [0] * 5
    assert most_at_once([tuple(s) for s in seen["spans"]]) == 2, seen["spans"]
    # Three rounds of 0.2 s (2 + 2 + 1), not five one by one.
    assert seen["took"] < 5 * HOLD + 0.5, seen["took"]


def test_each_thread_of_a_process_takes_its_own_permit():
    """A ``-P threads`` worker: four threads of one process, two permits. Threads that
    shared the process's lock files would all get in together."""
    requestslots.setup(2)
    spans, lock = [], threading.Lock()

    def hold():
        with requestslots.held():
            entered = time.monotonic()
            time.sleep(HOLD)
            left = time.monotonic()
        with lock:
            spans.append((entered, left))

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(spans) == 4, f"only {len(spans)} of 4 threads got a permit within 10 s"
    assert most_at_once(spans) == 2, spans


def test_a_process_killed_holding_a_permit_frees_it():
    """A pool process SIGKILLed in the middle of a request never gives its permit back
    itself: the kernel does. So does a waiter killed while it looks for a free permit
    (past the door the others queue behind). Every holder killed, the two permits
    serve others at once."""
    seen = scenario("kill")
    assert seen["holders_in"] == ["a", "b"], seen
    assert seen["third_at_door"], seen
    assert seen["in_while_both_held"] == [], seen
    assert seen["in_after_door_killed"] == [], seen  # both permits still held
    assert seen["in_after_holder_killed"] == ["d"], seen
    assert seen["in_after_all_killed"] == ["e", "f"], seen


def test_only_page_requests_count():
    """``counted`` marks a page task's page read: requests on the wire inside it hold a
    permit; any other request (a probe, plan's reads) goes out without one."""
    requestslots.setup(1)
    spans = {True: [], False: []}
    lock = threading.Lock()

    def request(counted: bool):
        with requestslots.counted() if counted else contextlib.nullcontext():
            with requestslots.on_the_wire():
                entered = time.monotonic()
                time.sleep(HOLD)
                left = time.monotonic()
        with lock:
            spans[counted].append((entered, left))

    threads = [threading.Thread(target=request, args=(c,), daemon=True)
               for c in (True, False) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(spans[True]) == len(spans[False]) == 3
    assert most_at_once(spans[True]) == 1, spans
    assert most_at_once(spans[False]) == 3, spans


def test_no_cap_means_held_does_nothing():
    """``RequestsInFlight = 0``: no permits are made, and every thread (or process)
    asks IIQ at once; the permits of an earlier ``setup`` are gone."""
    earlier = requestslots.setup(2)
    assert requestslots.setup(0) is None
    assert not os.path.exists(earlier)

    spans, lock = [], threading.Lock()
    gate = threading.Barrier(5)

    def hold():
        gate.wait(5)
        with requestslots.held():
            entered = time.monotonic()
            time.sleep(HOLD)
            left = time.monotonic()
        with lock:
            spans.append((entered, left))

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(spans) == 5
    assert most_at_once(spans) == 5, spans


@pytest.mark.parametrize("pool, cap, slots", [
    (3, 1, 1),    # the cap below the pool: pages are sized for what waits on IIQ
    (10, 8, 8),
    (4, 4, 4),
    (3, 5, 3),    # a cap above the pool changes nothing
    (3, 0, 3),    # no cap
    (1, 0, 1),
])
def test_cap_slots(pool, cap, slots):
    assert requestslots.cap_slots(pool, cap) == slots


def test_teardown_removes_the_permits():
    directory = requestslots.setup(3)
    assert sorted(os.listdir(directory)) == ["0", "1", "2", requestslots.DOOR]
    with requestslots.held():
        pass
    requestslots.teardown()
    assert not os.path.exists(directory)
