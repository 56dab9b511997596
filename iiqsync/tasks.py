"""Celery tasks: thin wrappers that pass primitive arguments to ``pipeline``.

Task names are explicit and pinned by a test, so messages already queued still
find their task after an upgrade. Only ``RetriableError`` is retried
automatically; fatal errors fail the run at once.
"""

from __future__ import annotations

import inspect
import logging

from celery import chord, signals
from celery.utils import uuid

from . import broker, logs, metrics, pipeline
from .celery import app, ask_pool_slots, settings
from .entities import ENTITIES
from .errors import FatalError, RetriableError

log = logging.getLogger(__name__)

RETRY = dict(autoretry_for=(RetriableError,), retry_backoff=5, retry_backoff_max=300,
             retry_jitter=True, max_retries=settings().get("Run", "TaskRetries"))


def run_fields(task, args=None, kwargs=None, task_id: str | None = None) -> dict:
    """Entity, run id and page of one call of ``task``, read from its arguments by
    name: ``{"entity": "assets", "run": "3f9c…", "page": 7}``. Empty for tasks that
    belong to no run."""
    try:
        given = inspect.signature(task.run).bind_partial(*(args or ()), **(kwargs or {})).arguments
    except (TypeError, ValueError):
        return {}
    if "entity" not in given:
        return {}
    fields = {"entity": given["entity"]}
    run_id = given.get("run_id") or (task_id if task.name == plan.name else None)
    if run_id:
        fields["run"] = pipeline.normalise_run_id(str(run_id))
    page = given.get("page")
    if isinstance(page, int):
        fields["page"] = page % pipeline.ROUND_STRIDE
        if page >= pipeline.ROUND_STRIDE:  # a repair pass re-reading the page
            fields["pass"] = page // pipeline.ROUND_STRIDE + 1
    if given.get("round_no"):
        fields["pass"] = given["round_no"] + 1
    return fields


def describe(fields: dict) -> str:
    """How Flower shows a task's arguments: ``assets run=3f9c0e1b2a4d… page=7``. The
    run id is cut to its first 12 digits (as in staging table names) so the page
    number stays in sight in Flower's narrow column; searching Flower for
    ``run=3f9c0e1b2a4d`` lists every task of that run."""
    if not fields:
        return ""
    parts = [str(fields["entity"])]
    if fields.get("run"):
        parts.append(f"run={fields['run'][:12]}…")
    parts += [f"{k}={v}" for k, v in fields.items() if k not in ("entity", "run")]
    return " ".join(parts)


class RunTask(app.Task):
    """A task that Flower shows by its run, ``assets run=3f9c0e1b2a4d… page=7``, instead
    of ``('assets', '3f9c…', 7)``. Arguments are entity names, run ids and page
    numbers only; settings and the token are never task arguments."""

    # A refused token, a bad setting, a changed API: the run is recorded as failed
    # with the reason (logged once, by the pipeline); Celery need not add a traceback.
    throws = (FatalError,)

    def apply_async(self, args=None, kwargs=None, task_id=None, **options):
        if options.get("argsrepr") is None:
            task_id = task_id or uuid()
            shown = describe(run_fields(self, args, kwargs, task_id))
            if shown:
                options["argsrepr"] = shown
        return super().apply_async(args, kwargs, task_id=task_id, **options)


@signals.task_prerun.connect
def _log_fields(task_id=None, task=None, args=None, kwargs=None, **_):
    # Log lines written while the task runs carry its entity, run id and page.
    if task is not None and task.name.startswith("iiqsync."):
        logs.set_fields(run_fields(task, args, kwargs, task_id))


@signals.task_postrun.connect
def _clear_log_fields(**_):
    logs.set_fields(None)


@app.task(name="iiqsync.plan", base=RunTask, bind=True, **RETRY)
def plan(self, entity: str) -> dict:
    """Lock the entity, read the list's size and fan out a chord of page tasks."""
    broker.mark(settings(), pipeline.normalise_run_id(self.request.id))
    # The workers are asked for their pool sizes while IIQ is read.
    result = pipeline.plan(settings(), entity, run_id=self.request.id, mode="celery",
                           slots=ask_pool_slots())
    if result["status"] == "planned":
        dispatch(entity, result["run_id"], pipeline.pages_to_fetch(result), 0)
    return result


def dispatch(entity: str, run_id: str, pages: list[int], round_no: int) -> None:
    """A chord of page tasks whose callback is finalize; a failure fails the run."""
    on_error = fail_run.s(entity, run_id)
    body = finalize.s(entity, run_id, round_no).on_error(on_error)
    if not pages:
        body.apply_async(([],))
        return
    chord([fetch_page.s(entity, run_id, p) for p in pages], body).apply_async()


@app.task(name="iiqsync.fetch_page", base=RunTask, bind=True, **RETRY)
def fetch_page(self, entity: str, run_id: str, page: int) -> dict:
    """Fetch one page and stage it; returns counts, never rows."""
    result = pipeline.fetch_page(settings(), entity, run_id, page, retries=self.request.retries)
    if "rows" in result:
        metrics.count_page(entity)
    return result


@app.task(name="iiqsync.finalize", base=RunTask, bind=True, **RETRY)
def finalize(self, results: list, entity: str, run_id: str, round_no: int = 0) -> dict:
    """Check completeness, apply schema changes, swap; or start a repair pass."""
    outcome = pipeline.finalize(settings(), entity, run_id, round_no)
    if outcome["status"] == "repair":
        dispatch(entity, run_id, outcome["pages"], outcome["round"])
    return outcome


@app.task(name="iiqsync.fail_run", base=RunTask)
def fail_run(request, exc, traceback, entity: str, run_id: str) -> None:
    """Chord error callback: record the run as failed, with the reason."""
    reason = f"{type(exc).__name__}: {exc}" if exc is not None else "a page task failed"
    try:
        pipeline.fail(settings(), entity, run_id, reason)
    except RetriableError as error:
        # The database is away, most likely why the run failed: record the failure
        # once it is back, rather than leave the run open until its lock expires.
        log.warning("run %s of %s failed (%s) but cannot be recorded yet: %s; trying again "
                    "in the background", run_id, entity, reason, error)
        record_failure.apply_async((entity, run_id, reason), countdown=5)


@app.task(name="iiqsync.record_failure", base=RunTask, bind=True, autoretry_for=(RetriableError,),
          retry_backoff=5, retry_backoff_max=300, retry_jitter=True, max_retries=100)
def record_failure(self, entity: str, run_id: str, reason: str) -> None:
    """Record a failed run whose failure could not be written when it happened: tries
    until the database answers (up to hours), then fails the run with its reason and
    drops its staging tables."""
    pipeline.fail(settings(), entity, run_id, reason)


@app.task(name="iiqsync.sync_all")
def sync_all() -> list[str]:
    """Enqueue a plan for every entity; returns their run ids."""
    return [plan.delay(name).id for name in ENTITIES]


@app.task(name="iiqsync.sweep")
def sweep() -> list[str]:
    """Drop staging tables left by dead runs."""
    return pipeline.sweep(pipeline.context(settings()))
