"""iiqsync.ratelimit: the request budget, in-process and shared through Redis."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from iiqsync.ratelimit import LocalBudget, RedisBudget, make_budget

REDIS_URL = os.environ.get("IIQSYNC_TEST_REDIS", "redis://127.0.0.1:6379")


def timed(fn) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def run_threads(budgets, threads_each: int, window: float) -> list[float]:
    """Threads acquire from their budget until ``window`` seconds have passed; returns
    the times (from the start) at which acquisitions returned inside the window."""
    start = time.monotonic()
    deadline = start + window
    stamps: list[float] = []
    lock = threading.Lock()

    def work(budget):
        while time.monotonic() < deadline:
            budget.acquire()
            now = time.monotonic()
            if now <= deadline:
                with lock:
                    stamps.append(now - start)

    workers = [threading.Thread(target=work, args=(b,)) for b in budgets
               for _ in range(threads_each)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=10)
    assert not any(w.is_alive() for w in workers)
    return sorted(stamps)


def max_in_any_window(stamps: list[float], width: float) -> int:
    best = 0
    j = 0
    for i, t in enumerate(stamps):
        while stamps[j] < t - width:
            j += 1
        best = max(best, i - j + 1)
    return best


# -- LocalBudget ---------------------------------------------------------------------------------


def test_local_burst_is_immediate():
    budget = LocalBudget(rate=5)
    assert budget.burst == 5
    assert timed(lambda: [budget.acquire() for _ in range(5)]) < 0.1


def test_local_n_acquisitions_take_n_minus_burst_over_rate():
    budget = LocalBudget(rate=20, burst=2)
    elapsed = timed(lambda: [budget.acquire() for _ in range(12)])
    assert 0.4 <= elapsed < 1.5  # (12 - 2) / 20 = 0.5 s


def test_local_budget_holds_across_threads():
    budget = LocalBudget(rate=20, burst=2)
    stamps = run_threads([budget], threads_each=4, window=0.8)
    # 2 at once, then 20 a second: about 17 in 0.8 s, never a second's worth early.
    assert 12 <= len(stamps) <= 2 + 20 * 0.8 + 1
    assert max_in_any_window(stamps, 0.25) <= 2 + 20 * 0.25 + 1


def test_local_pause_delays_the_next_acquisition():
    budget = LocalBudget(rate=100)
    budget.acquire()
    budget.pause(0.3)
    elapsed = timed(budget.acquire)
    assert 0.28 <= elapsed < 1.2


def test_local_shorter_pause_does_not_cut_a_longer_one():
    budget = LocalBudget(rate=100)
    budget.pause(0.4)
    budget.pause(0.05)
    assert timed(budget.acquire) >= 0.38


def test_local_pacing_resumes_after_pause():
    budget = LocalBudget(rate=50, burst=1)
    budget.pause(0.2)
    elapsed = timed(lambda: [budget.acquire() for _ in range(6)])
    assert 0.2 + 5 / 50 <= elapsed + 0.03 and elapsed < 1.2


def _slot_taken_before_pause_waits_for_it(budget, pause: float) -> float:
    """A thread reserves a slot 0.2 s ahead; then a 429 pauses the budget for
    ``pause`` seconds. Returns when (from the pause) the thread's acquire returned."""
    budget.acquire()  # the burst is spent: the next slot is 1/rate ahead
    done = {}

    def waiter():
        budget.acquire()
        done["at"] = time.monotonic()

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.05)
    paused_at = time.monotonic()
    budget.pause(pause)
    thread.join(timeout=5)
    return done["at"] - paused_at


def test_local_pause_holds_back_threads_already_waiting():
    assert _slot_taken_before_pause_waits_for_it(LocalBudget(rate=5, burst=1), 0.6) >= 0.55


# -- RedisBudget ---------------------------------------------------------------------------------


@pytest.fixture
def redis_budget():
    """Makes RedisBudgets on a test-only instance name; deletes their keys afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.fail(f"Redis is not running at {REDIS_URL}")
    keys = set()

    def make(instance: str, rate: float, burst: float | None = None) -> RedisBudget:
        budget = RedisBudget(REDIS_URL, instance, rate, burst)
        keys.add(budget.key)
        return budget

    yield make
    if keys:
        client.delete(*keys)
    client.close()


def unique_instance() -> str:
    return f"https://test-{uuid.uuid4().hex}.incidentiq.com"


def test_redis_budgets_on_one_instance_share_a_key(redis_budget):
    instance = unique_instance()
    a = redis_budget(instance, rate=10)
    b = redis_budget(instance, rate=10)
    c = redis_budget(unique_instance(), rate=10)
    assert a.key == b.key != c.key
    assert a.key.startswith("iiqsync:budget:")
    assert "incidentiq" not in a.key


def test_redis_burst_then_rate(redis_budget):
    budget = redis_budget(unique_instance(), rate=20, burst=3)
    assert timed(lambda: [budget.acquire() for _ in range(3)]) < 0.15
    elapsed = timed(lambda: [budget.acquire() for _ in range(6)])
    assert 0.25 <= elapsed < 1.2  # 6 more at 20 a second: 0.3 s


def test_two_redis_budgets_together_keep_one_rate(redis_budget):
    instance = unique_instance()
    budgets = [redis_budget(instance, rate=20, burst=1), redis_budget(instance, rate=20, burst=1)]
    stamps = run_threads(budgets, threads_each=3, window=0.8)
    # Shared: 1 + 20 * 0.8 = 17. Two separate buckets would allow about 34.
    assert 10 <= len(stamps) <= 17 + 3
    assert max_in_any_window(stamps, 0.3) <= 1 + 20 * 0.3 + 2


def test_redis_budgets_on_different_instances_do_not_share(redis_budget):
    a = redis_budget(unique_instance(), rate=1, burst=3)
    b = redis_budget(unique_instance(), rate=1, burst=3)
    assert timed(lambda: [x.acquire() for x in (a, b, a, b, a, b)]) < 0.3


def test_redis_pause_from_one_budget_is_honoured_by_the_other(redis_budget):
    instance = unique_instance()
    first = redis_budget(instance, rate=100)
    second = redis_budget(instance, rate=100)
    second.acquire()
    first.pause(0.5)
    elapsed = timed(second.acquire)
    assert 0.45 <= elapsed < 1.6


def test_redis_shorter_pause_does_not_cut_a_longer_one(redis_budget):
    instance = unique_instance()
    first = redis_budget(instance, rate=100)
    second = redis_budget(instance, rate=100)
    first.pause(0.4)
    second.pause(0.05)
    assert timed(first.acquire) >= 0.35


def test_redis_pause_holds_back_threads_already_waiting(redis_budget):
    assert _slot_taken_before_pause_waits_for_it(
        redis_budget(unique_instance(), rate=5, burst=1), 0.6) >= 0.55


# -- make_budget -------------------------------------------------------------------------------------


class FakeSettings:
    def __init__(self, broker, rate=7.0):
        self.broker_url = broker
        self.base_url = "https://cps.incidentiq.com"
        self._rate = rate

    def get(self, section, name):
        assert (section, name) == ("IncidentIQ", "RequestsPerSecond")
        return self._rate


def test_make_budget_local_without_broker():
    budget = make_budget(FakeSettings(None))
    assert isinstance(budget, LocalBudget)
    assert budget.rate == 7.0


def test_make_budget_redis_with_redis_broker():
    budget = make_budget(FakeSettings(REDIS_URL + "/0"))
    assert isinstance(budget, RedisBudget)
    assert budget.rate == 7.0
    assert budget.key == RedisBudget(REDIS_URL, "https://cps.incidentiq.com", 1).key


# -- after a pause, callers that were already waiting leave at the budget's pace ---------------


def _leave_times_after_pause(budget, waiters: int, pause: float) -> list[float]:
    """``waiters`` threads queue for slots; a 429 then pauses the budget. Returns when
    (from the pause) each thread's acquire returned, sorted."""
    budget.acquire()  # the burst is spent: every waiter queues
    stamps: list[float] = []
    lock = threading.Lock()

    def waiter():
        budget.acquire()
        with lock:
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=waiter) for _ in range(waiters)]
    for t in threads:
        t.start()
    time.sleep(0.02)
    paused_at = time.monotonic()
    budget.pause(pause)
    for t in threads:
        t.join(timeout=10)
    return sorted(s - paused_at for s in stamps)


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_waiters_do_not_all_leave_when_a_pause_ends(kind, redis_budget):
    # Without re-queueing, every slot reserved before the 429 would fall due at the
    # pause's end at once: a burst that draws the next 429.
    budget = (LocalBudget(rate=20, burst=1) if kind == "local"
              else redis_budget(unique_instance(), rate=20, burst=1))
    stamps = _leave_times_after_pause(budget, waiters=8, pause=0.4)
    assert len(stamps) == 8
    assert stamps[0] >= 0.38  # nobody leaves during the pause
    assert max_in_any_window(stamps, 0.1) <= 3  # 20 a second: about 2 per 0.1 s


def test_redis_out_of_reach_keeps_the_budget_in_the_process(caplog):
    """A sync --local with a broker set that is down, or a worker during a Redis
    restart: requests go on at RequestsPerSecond, paced by the process's own bucket,
    with one warning rather than one per request."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    budget = RedisBudget(f"redis://127.0.0.1:{port}/0", unique_instance(), rate=20, burst=1)
    with caplog.at_level("WARNING", logger="iiqsync.ratelimit"):
        elapsed = timed(lambda: [budget.acquire() for _ in range(7)])
        budget.pause(0.3)
        paused = timed(budget.acquire)
    assert 0.25 <= elapsed < 1.5  # 6 after the burst at 20 a second: 0.3 s
    assert paused >= 0.25
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "cannot be reached (ConnectionError)" in warnings[0]
