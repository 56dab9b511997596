"""Log lines that say which run they belong to.

While a task runs, its entity, run id and page are kept in a context variable;
every log record made meanwhile carries them as ``record.iiqsync``, rendered as
``entity=assets run=3f9c… page=7 `` (logfmt pairs, so Loki, Elastic or plain grep
can pick them out), or as an empty string outside a task. The worker's log
format puts them right after the process name (one line, folded here)::

    [2025-01-31 02:00:07,412: INFO/ForkPoolWorker-3] entity=assets run=3f9c… page=7
    celery.app.trace: Task iiqsync.fetch_page[8c1e…] succeeded in 0.41s: {'page': 7, …}

The field is added by a log record factory rather than a handler filter, so every
handler Celery sets up (the root logger's, the multiprocessing logger's) can use
the format without a record ever lacking the attribute.
"""

from __future__ import annotations

import contextlib
import logging
from contextvars import ContextVar

#: The worker's log format (Celery ``worker_log_format``).
WORKER_LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(iiqsync)s%(name)s: %(message)s"

_fields: ContextVar[dict | None] = ContextVar("iiqsync_log_fields", default=None)
_installed = False


def render(fields: dict | None) -> str:
    """``{"entity": "assets", "run": "3f9c…", "page": 7}`` → ``entity=assets run=3f9c… page=7``."""
    if not fields:
        return ""
    return " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and v != "")


def set_fields(fields: dict | None):
    """Make ``fields`` the context of the log records that follow; returns a token
    for :func:`reset`."""
    return _fields.set(fields or None)


def reset(token) -> None:
    _fields.reset(token)


@contextlib.contextmanager
def fields(**values):
    """``with logs.fields(entity="assets", run=run_id): ...``"""
    token = set_fields(values)
    try:
        yield
    finally:
        reset(token)


def current() -> dict:
    return dict(_fields.get() or {})


def install() -> None:
    """Give every log record an ``iiqsync`` attribute (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        text = render(_fields.get())
        record.iiqsync = f"{text} " if text else ""
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
