"""``[Celery] RequestsInFlight``: the permits a worker's main process makes before it
forks its pool cap how many of its processes (or threads) wait on IIQ at once, and a
process killed while holding one gives it back. Real processes, forked as Celery's
prefork pool forks them, and real ``flock`` locks."""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import queue
import signal
import threading
import time

import pytest

from iiqsync import requestslots

FORK = multiprocessing.get_context("fork")
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


def _hold(name, out, seconds: float) -> None:
    """In a forked process: take a permit, say when it was taken and given back."""
    with requestslots.held():
        entered = time.monotonic()
        out.put(("in", name, entered))
        time.sleep(seconds)
        left = time.monotonic()
    out.put(("out", name, entered, left))


def _collect(out, kind: str, n: int, timeout: float) -> list[tuple]:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n:
        try:
            msg = out.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if msg[0] == kind:
            got.append(msg)
    return got


def _stop(procs) -> None:
    for p in procs:
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
        p.join(5)


def test_processes_forked_after_setup_share_the_permits():
    """Five processes forked after ``setup(2)``, each wanting a permit for 0.2 s: two,
    never more, hold one at a time; and two do at once (a cap, not a queue of one).
    The forking process has used the permits itself first: its open lock files,
    inherited, would be one lock shared by every child."""
    assert requestslots.setup(2)
    with requestslots.held():
        pass
    out = FORK.Queue()
    procs = [FORK.Process(target=_hold, args=(i, out, HOLD), daemon=True) for i in range(5)]
    try:
        started = time.monotonic()
        for p in procs:
            p.start()
        done = _collect(out, "out", 5, timeout=10)
        took = time.monotonic() - started
        for p in procs:
            p.join(5)
    finally:
        _stop(procs)
    assert len(done) == 5, f"only {len(done)} of 5 processes got a permit within 10 s"
    assert [p.exitcode for p in procs] == [0] * 5
    spans = [(entered, left) for _, _, entered, left in done]
    assert most_at_once(spans) == 2, spans
    # Three rounds of 0.2 s (2 + 2 + 1), not five one by one.
    assert took < 5 * HOLD + 0.5, took


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


def _door_taken(directory: str) -> bool:
    """Whether a waiter is past the door (holding its lock, looking for a permit)."""
    fd = os.open(os.path.join(directory, requestslots.DOOR), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_a_process_killed_holding_a_permit_frees_it():
    """A pool process SIGKILLed in the middle of a request never gives its permit back
    itself: the kernel does. So does a waiter killed while it looks for a free permit
    (past the door the others queue behind). Every holder killed, the two permits
    serve others at once."""
    directory = requestslots.setup(2)
    out = FORK.Queue()
    holders = [FORK.Process(target=_hold, args=(name, out, 60), daemon=True) for name in "ab"]
    later = []

    def start(name: str, seconds: float = 60):
        p = FORK.Process(target=_hold, args=(name, out, seconds), daemon=True)
        later.append(p)
        p.start()
        return p

    try:
        for p in holders:
            p.start()
        assert len(_collect(out, "in", 2, timeout=5)) == 2, "the two holders never got in"

        # Both permits are held: a third waits past the door, a fourth behind it.
        looking = start("c")
        deadline = time.monotonic() + 5
        while not _door_taken(directory):
            assert time.monotonic() < deadline, "the third never reached the door"
            time.sleep(0.01)
        start("d")
        assert _collect(out, "in", 1, timeout=0.5) == []

        os.kill(looking.pid, signal.SIGKILL)  # the one past the door
        looking.join(5)
        assert _collect(out, "in", 1, timeout=0.3) == []  # both permits still held
        os.kill(holders[0].pid, signal.SIGKILL)  # a holder mid-request
        holders[0].join(5)
        assert [m[1] for m in _collect(out, "in", 1, timeout=3)] == ["d"]

        _stop(holders + later)
        # Every holder is dead: both permits are free, for two processes at once.
        pair = [start(name, 1) for name in "ef"]
        assert sorted(m[1] for m in _collect(out, "in", 2, timeout=3)) == ["e", "f"]
        for p in pair:
            p.join(5)
    finally:
        _stop(holders + later)


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
