"""Celery tasks: thin wrappers that pass primitive arguments to ``pipeline``.

Task names are explicit and pinned by a test, so messages already queued still
find their task after an upgrade. Only ``RetriableError`` is retried
automatically; fatal errors fail the run at once.
"""

from __future__ import annotations

import logging

from celery import chord

from . import pipeline
from .celery import app, settings
from .entities import ENTITIES
from .errors import RetriableError

log = logging.getLogger(__name__)

RETRY = dict(autoretry_for=(RetriableError,), retry_backoff=5, retry_backoff_max=300,
             retry_jitter=True, max_retries=8)


@app.task(name="iiqsync.plan", bind=True, **RETRY)
def plan(self, entity: str) -> dict:
    """Lock the entity, stage page 0 and fan out a chord of page tasks."""
    result = pipeline.plan(settings(), entity, run_id=self.request.id, mode="celery")
    if result["status"] == "planned":
        dispatch(entity, result["run_id"], list(range(1, result["pages"])), 0)
    return result


def dispatch(entity: str, run_id: str, pages: list[int], round_no: int) -> None:
    """A chord of page tasks whose callback is finalize; a failure fails the run."""
    on_error = fail_run.s(entity, run_id)
    body = finalize.s(entity, run_id, round_no).on_error(on_error)
    if not pages:
        body.apply_async(([],))
        return
    chord([fetch_page.s(entity, run_id, p) for p in pages], body).apply_async()


@app.task(name="iiqsync.fetch_page", bind=True, **RETRY)
def fetch_page(self, entity: str, run_id: str, page: int) -> dict:
    """Fetch one page and stage it; returns counts, never rows."""
    return pipeline.fetch_page(settings(), entity, run_id, page, retries=self.request.retries)


@app.task(name="iiqsync.finalize", bind=True, **RETRY)
def finalize(self, results: list, entity: str, run_id: str, round_no: int = 0) -> dict:
    """Check completeness, apply schema changes, swap; or start a repair pass."""
    outcome = pipeline.finalize(settings(), entity, run_id, round_no)
    if outcome["status"] == "repair":
        dispatch(entity, run_id, outcome["pages"], outcome["round"])
    return outcome


@app.task(name="iiqsync.fail_run")
def fail_run(request, exc, traceback, entity: str, run_id: str) -> None:
    """Chord error callback: record the run as failed, with the reason."""
    reason = f"{type(exc).__name__}: {exc}" if exc is not None else "a page task failed"
    pipeline.fail(settings(), entity, run_id, reason)


@app.task(name="iiqsync.sync_all")
def sync_all() -> list[str]:
    """Enqueue a plan for every entity; returns their run ids."""
    return [plan.delay(name).id for name in ENTITIES]


@app.task(name="iiqsync.sweep")
def sweep() -> list[str]:
    """Drop staging tables left by dead runs."""
    return pipeline.sweep(pipeline.context(settings()))
