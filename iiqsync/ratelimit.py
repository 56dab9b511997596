"""One request budget per IIQ instance, shared by every worker.

IIQ answers 429/503 when pushed. A token bucket in Redis (one Lua call per
request, atomic across every worker on every machine) keeps the whole fleet
under ``[IncidentIQ] RequestsPerSecond``; without a broker an in-process bucket
does the same for the threads of a local run. A 429 tells every worker to pause:
the bucket is drained and refills only after the server's ``Retry-After``, and
callers already waiting for a slot queue again behind the pause, so they leave
at the budget's pace rather than all at once when it ends.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time

log = logging.getLogger(__name__)

_TAKE = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
tokens = tokens - 1
local wait = 0
if tokens < 0 then wait = -tokens / rate end
if ts > now then wait = wait + (ts - now) end
redis.call('HSET', key, 'tokens', tokens, 'ts', ts)
redis.call('EXPIRE', key, 3600)
return {tostring(wait), tonumber(redis.call('HGET', key, 'epoch')) or 0}
"""

_PAUSE = """
local key = KEYS[1]
local until_ts = tonumber(ARGV[1])
local ts = tonumber(redis.call('HGET', key, 'ts')) or 0
if until_ts > ts then
  redis.call('HSET', key, 'tokens', 0, 'ts', until_ts)
  redis.call('HINCRBY', key, 'epoch', 1)
end
redis.call('EXPIRE', key, 3600)
return 1
"""


class LocalBudget:
    """A token bucket for the threads of one process."""

    def __init__(self, rate: float, burst: float | None = None):
        self.rate = rate
        self.burst = burst or max(1.0, rate)
        self._tokens = self.burst
        self._ts = time.monotonic()
        self._epoch = 0  # bumped by every pause that moves the schedule
        self._lock = threading.Lock()

    def acquire(self) -> None:
        # Reserve a slot now and sleep until it comes: callers are served in order.
        # A pause that began meanwhile voids the slot: queue again behind it.
        while True:
            with self._lock:
                now = time.monotonic()
                if now > self._ts:
                    self._tokens = min(self.burst, self._tokens + (now - self._ts) * self.rate)
                    self._ts = now
                self._tokens -= 1
                wait = max(0.0, -self._tokens / self.rate) + max(0.0, self._ts - now)
                epoch = self._epoch
            if wait <= 0:
                return
            time.sleep(wait)
            if self._epoch == epoch:
                return

    def pause(self, seconds: float) -> None:
        with self._lock:
            until = time.monotonic() + seconds
            if until > self._ts:
                self._tokens = 0
                self._ts = until
                self._epoch += 1


# While Redis cannot be reached, a process keeps to the budget on its own for this
# long before it tries the shared one again.
ON_ITS_OWN_SECONDS = 30.0


class RedisBudget:
    """A token bucket in Redis, keyed by the IIQ instance.

    Redis out of reach does not stop a request: an in-process run (``--local``) needs
    no broker, and a worker's page is better paced by its own bucket for a while than
    failed. Each process then keeps to the whole budget by itself, so the instance may
    see up to one budget per process until Redis answers again."""

    def __init__(self, redis_url: str, instance: str, rate: float, burst: float | None = None):
        import redis

        self.rate = rate
        self.burst = burst or max(1.0, rate)
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5)
        digest = hashlib.sha1(instance.encode()).hexdigest()[:16]
        self.key = f"iiqsync:budget:{digest}"
        self._take = self._redis.register_script(_TAKE)
        self._pause = self._redis.register_script(_PAUSE)
        self._own = LocalBudget(rate, burst)
        self._own_until = 0.0  # monotonic time until which the own bucket is used

    def _now(self) -> float:
        seconds, micros = self._redis.time()
        return seconds + micros / 1e6

    def _on_its_own(self, exc: Exception) -> None:
        if time.monotonic() >= self._own_until:
            log.warning("the shared request budget in Redis cannot be reached (%s); this "
                        "process keeps to [IncidentIQ] RequestsPerSecond on its own for %.0f s",
                        type(exc).__name__, ON_ITS_OWN_SECONDS)
        self._own_until = time.monotonic() + ON_ITS_OWN_SECONDS

    def acquire(self) -> None:
        import redis

        if time.monotonic() < self._own_until:
            return self._own.acquire()
        try:
            return self._acquire_shared()
        except redis.exceptions.RedisError as exc:
            self._on_its_own(exc)
            return self._own.acquire()

    def _acquire_shared(self) -> None:
        while True:
            wait, epoch = self._take(keys=[self.key], args=[self.rate, self.burst, self._now()])
            wait = float(wait)
            if wait <= 0:
                return
            time.sleep(wait)
            # A pause that any worker began while this one slept voids the slot:
            # queue again behind the pause instead of leaving with everyone at its end.
            if int(self._redis.hget(self.key, "epoch") or 0) == int(epoch):
                return

    def pause(self, seconds: float) -> None:
        import redis

        self._own.pause(seconds)
        if time.monotonic() < self._own_until:
            return
        try:
            self._pause(keys=[self.key], args=[self._now() + seconds])
        except redis.exceptions.RedisError as exc:
            self._on_its_own(exc)


def make_budget(settings) -> LocalBudget | RedisBudget:
    """The shared budget when a Redis broker is configured, else a local one."""
    rate = settings.get("IncidentIQ", "RequestsPerSecond")
    broker = settings.broker_url
    if broker and broker.startswith(("redis://", "rediss://")):
        return RedisBudget(broker, settings.base_url or "", rate)
    return LocalBudget(rate)
