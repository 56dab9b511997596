"""A marker in Redis for every run on the workers, so a run whose tasks Redis lost
is seen at once.

A run on the workers lives in Redis as much as in the database: its page tasks
wait in the broker's queue and its chord counts finished pages in the result
backend. A Redis without persistence that restarts, or is flushed, loses all of
that: the run would never finish, and its lock would turn away every sync of
the entity until ``[Run] LockMinutes`` ran out. So a run started by a ``plan``
task first leaves a key in Redis (it expires with the lock); a running run whose
key is gone has lost its tasks, and the sweep at the start of the next plan (or
``iiqsync sweep``) records it as failed and frees its lock.
"""

from __future__ import annotations

import logging

from .config import Settings
from .errors import RetriableError

log = logging.getLogger(__name__)

PREFIX = "iiqsync:run:"
LOST = ("abandoned: Redis lost this run's queued tasks (it restarted without its data, "
        "or was flushed) before the run finished; the next run starts afresh")


def _urls(settings: Settings) -> list[str]:
    """The Redis servers holding a run's tasks: the broker and the result backend."""
    urls = []
    for url in (settings.broker_url, settings.result_backend or settings.broker_url):
        if url and url.startswith(("redis://", "rediss://")) and url not in urls:
            urls.append(url)
    return urls


def _client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def mark(settings: Settings, run_id: str) -> None:
    """Leave the run's marker in every Redis that holds its tasks (before the run is
    recorded as running, so a sweep never sees it running without one)."""
    import redis

    ttl = settings.get("Run", "LockMinutes") * 60
    for url in _urls(settings):
        client = _client(url)
        try:
            client.set(PREFIX + run_id, "1", ex=ttl)
        except redis.exceptions.RedisError as exc:
            raise RetriableError(f"cannot reach Redis to start the run: {type(exc).__name__}") from None
        finally:
            client.close()


def lost(settings: Settings, run_ids: list[str]) -> set[str]:
    """Those of ``run_ids`` whose marker is missing from a Redis that answered. A
    Redis that cannot be reached proves nothing: its runs are left alone."""
    import redis

    gone: set[str] = set()
    if not run_ids:
        return gone
    for url in _urls(settings):
        client = _client(url)
        try:
            with client.pipeline(transaction=False) as pipe:
                for run_id in run_ids:
                    pipe.exists(PREFIX + run_id)
                gone |= {r for r, there in zip(run_ids, pipe.execute(), strict=True) if not there}
        except redis.exceptions.RedisError as exc:
            log.warning("cannot check Redis for runs that lost their tasks: %s",
                        type(exc).__name__)
        finally:
            client.close()
    return gone


# -- what waits in the queue --------------------------------------------------------
# Kombu's Redis transport keeps a queue as Redis lists: the queue's own name for
# priority 0 (iiqsync sets no priorities) and name + separator + step for the others.
QUEUE_SCAN_LIMIT = 10_000  # messages read to name what waits; the count is always whole


def waiting(settings: Settings, queue: str) -> dict | None:
    """What waits in the broker's ``queue`` for a worker to take it: ``{"plans": [entity,
    ...], "pages": n, "other": n, "total": n}``. None when the broker is not Redis.
    Raises ``redis.exceptions.RedisError`` when Redis cannot be read."""
    from kombu.transport.redis import Channel

    if not (settings.broker_url or "").startswith(("redis://", "rediss://")):
        return None
    keys = [queue] + [f"{queue}{Channel.sep}{step}" for step in Channel.priority_steps if step]
    found = {"plans": [], "pages": 0, "other": 0, "total": 0}
    client = _client(settings.broker_url)
    try:
        for key in keys:
            found["total"] += client.llen(key)
            # A worker takes from the right-hand end: read the list oldest first.
            for raw in reversed(client.lrange(key, -QUEUE_SCAN_LIMIT, -1)):
                _count(found, raw)
    finally:
        client.close()
    return found


def _count(found: dict, raw: bytes) -> None:
    import base64
    import json

    try:
        message = json.loads(raw)
        task = message.get("headers", {}).get("task", "")
        if task == "iiqsync.plan":
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args, kwargs = json.loads(body)[:2]
            entity = args[0] if args else kwargs.get("entity")
            if entity not in found["plans"]:
                found["plans"].append(entity)
        elif task == "iiqsync.fetch_page":
            found["pages"] += 1
        else:
            found["other"] += 1
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        found["other"] += 1  # not a message of iiqsync's making: counted, not named
