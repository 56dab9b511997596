"""Scenarios for ``tests/unit/test_requestslots.py`` that fork processes, run in a
fresh interpreter (``python -m tests.unit.permit_pool SCENARIO``) as a Celery worker's
main process forks its pool: before any thread starts. Forked from the test runner,
whose earlier tests leave threads and locks behind, a child can hang before it runs
a line of the scenario. Each prints one JSON object of what it saw."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import queue
import signal
import sys
import time

from iiqsync import requestslots

FORK = multiprocessing.get_context("fork")
HOLD = 0.2  # seconds each holder keeps its permit


def _hold(name, out, seconds: float) -> None:
    """In a forked process: take a permit, say when it was taken and given back."""
    with requestslots.held():
        entered = time.monotonic()
        out.put(("in", name, entered))
        time.sleep(seconds)
        left = time.monotonic()
    out.put(("out", name, entered, left))


def _collect(out, kind: str, n: int, timeout: float) -> list:
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


def share() -> dict:
    """Five processes forked after ``setup(2)`` each want a permit for ``HOLD`` s. The
    forking process used the permits itself first: its open lock files, inherited,
    would be one lock shared by every child."""
    requestslots.setup(2)
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
    return {"spans": [[entered, left] for _, _, entered, left in done], "took": took,
            "exitcodes": [p.exitcode for p in procs]}


def kill() -> dict:
    """Two holders; a third past the door, a fourth behind it; the third killed,
    then a holder; then every holder killed and two new processes."""
    directory = requestslots.setup(2)
    out = FORK.Queue()
    holders = [FORK.Process(target=_hold, args=(name, out, 60), daemon=True) for name in "ab"]
    later, seen = [], {}

    def start(name: str, seconds: float = 60):
        p = FORK.Process(target=_hold, args=(name, out, seconds), daemon=True)
        later.append(p)
        p.start()
        return p

    def names(msgs):
        return sorted(m[1] for m in msgs)

    try:
        for p in holders:
            p.start()
        seen["holders_in"] = names(_collect(out, "in", 2, timeout=5))
        # Both permits are held: a third waits past the door, a fourth behind it.
        looking = start("c")
        deadline = time.monotonic() + 5
        while not _door_taken(directory) and time.monotonic() < deadline:
            time.sleep(0.01)
        seen["third_at_door"] = _door_taken(directory)
        start("d")
        seen["in_while_both_held"] = names(_collect(out, "in", 1, timeout=0.5))
        os.kill(looking.pid, signal.SIGKILL)  # the one past the door
        looking.join(5)
        seen["in_after_door_killed"] = names(_collect(out, "in", 1, timeout=0.3))
        os.kill(holders[0].pid, signal.SIGKILL)  # a holder mid-request
        holders[0].join(5)
        seen["in_after_holder_killed"] = names(_collect(out, "in", 1, timeout=10))
        _stop(holders + later)
        # Every holder is dead: both permits are free, for two processes at once. Each
        # holds its permit far longer than the wait, so the second cannot get in on
        # the first one's permit; the wait is long for a loaded machine.
        for name in "ef":
            start(name, 60)
        seen["in_after_all_killed"] = names(_collect(out, "in", 2, timeout=15))
    finally:
        _stop(holders + later)
        requestslots.teardown()
    return seen


if __name__ == "__main__":
    print(json.dumps({"share": share, "kill": kill}[sys.argv[1]]()))
