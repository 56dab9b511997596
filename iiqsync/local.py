"""Run the sync in-process, without a broker: the same plan, page and finalize
functions, pages fetched on a thread pool of ``[General] Threads``."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import sqlalchemy as sa

from . import pipeline
from .client import IIQClient
from .config import Settings
from .errors import (
    INTERRUPTED,
    AuthError,
    CertificateError,
    IIQSyncError,
    InstanceUnreachableError,
    UnreachableError,
)

log = logging.getLogger(__name__)


class _NoProgress:
    def add(self, entity: str, total: int) -> None: ...
    def advance(self, entity: str, n: int = 1) -> None: ...
    def total(self, entity: str, total: int) -> None: ...
    def done(self, entity: str, text: str) -> None: ...


def sync_entity(settings: Settings, entity: str, client: IIQClient, progress=None) -> dict:
    """One run of one entity, start to finish. Never raises for a failed run: the
    outcome says what happened (and the run record says it too)."""
    progress = progress or _NoProgress()
    started = time.monotonic()
    run_id = pipeline.new_run_id()
    try:
        planned = pipeline.plan(settings, entity, run_id=run_id, mode="local", client=client,
                                slots=lambda: settings.threads)
    except Exception as exc:
        return _failed(entity, run_id, exc, started)
    if planned["status"] != "planned":
        progress.done(entity, "skipped")
        return {**planned, "seconds": time.monotonic() - started}
    pages = pipeline.pages_to_fetch(planned)
    progress.add(entity, planned["pages"])
    round_no = 0
    try:
        while True:
            _fetch_all(settings, entity, run_id, pages, client, progress)
            outcome = pipeline.finalize(settings, entity, run_id, round_no, client=client)
            if outcome["status"] != "repair":
                break
            pages, round_no = outcome["pages"], outcome["round"]
            progress.total(entity, len(pages))
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: free the entity for the next run before going.
        _record_failure(settings, entity, run_id, INTERRUPTED)
        progress.done(entity, "interrupted")
        raise
    except Exception as exc:
        ended = _ended_elsewhere(settings, run_id, exc)
        progress.done(entity, "failed")
        if ended:
            # `iiqsync unlock`, or a sweep that took this run for dead: its staging
            # tables went with it, which is the error seen here, not the cause.
            return {"run_id": run_id, "entity": entity, "status": "failed",
                    "error": pipeline.ended_from_outside(ended),
                    "seconds": time.monotonic() - started}
        _record_failure(settings, entity, run_id, pipeline._error_text(exc))
        return _failed(entity, run_id, exc, started)
    progress.done(entity, outcome["status"])
    return {**outcome, "seconds": time.monotonic() - started}


def _ended_elsewhere(settings: Settings, run_id: str, exc: Exception) -> str | None:
    """The recorded reason when the run was ended by someone else, not by ``exc``."""
    try:
        run = pipeline.context(settings).books.get(run_id)
    except Exception:  # the database is away: the failure is recorded as usual, or not
        return None
    if run is None or run.status == "running" or not run.error:
        return None
    return None if run.error.startswith(type(exc).__name__) else run.error


def _record_failure(settings: Settings, entity: str, run_id: str, reason: str) -> None:
    try:
        pipeline.fail(settings, entity, run_id, reason)
    except IIQSyncError as unrecorded:
        # The database is away: the run stays open until its lock expires and a
        # later sweep records it as abandoned. Say so rather than crash.
        log.error("run %s of %s could not be recorded as failed: %s", run_id, entity,
                  unrecorded)


def _fetch_all(settings, entity, run_id, pages, client, progress) -> None:
    if not pages:
        return
    with ThreadPoolExecutor(max_workers=settings.threads,
                            thread_name_prefix=f"iiqsync-{entity}") as pool:
        futures = [pool.submit(pipeline.fetch_page, settings, entity, run_id, p, 0, client)
                   for p in pages]
        try:
            for future in as_completed(futures):
                future.result()
                progress.advance(entity)
        except BaseException:
            for f in futures:
                f.cancel()
            raise


# Failures that every later entity would meet the same way: why the rest are not run.
STOPS_EVERY_ENTITY = ((AuthError, "the token was refused"),
                      (InstanceUnreachableError, "IIQ does not answer at that Instance"),
                      (UnreachableError, "IIQ could not be reached"),
                      (CertificateError, "IIQ's TLS certificate could not be verified"))


def _failed(entity: str, run_id: str, exc: BaseException, started: float) -> dict:
    if isinstance(exc, IIQSyncError):
        text = str(exc)
    elif isinstance(exc, sa.exc.SQLAlchemyError):
        # The database refused something: its own message says what; the statement
        # and its parameters, pages long, only with -v.
        text = pipeline._error_text(exc)
        log.debug("run %s of %s failed", run_id, entity, exc_info=exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
        log.exception("run %s of %s failed", run_id, entity)
    stop = next((why for kind, why in STOPS_EVERY_ENTITY if isinstance(exc, kind)), None)
    return {"run_id": run_id, "entity": entity, "status": "failed", "error": text,
            "stop": stop, "seconds": time.monotonic() - started}


def sync(settings: Settings, entities: list[str], progress=None) -> list[dict]:
    """Sync each entity in turn; pages of each in parallel."""
    results = []
    with IIQClient(settings) as client:
        for entity in entities:
            results.append(sync_entity(settings, entity, client, progress))
            stop = results[-1].get("stop")
            if stop:
                # A refused token or an IIQ out of reach fails every entity the same way.
                for rest in entities[len(results):]:
                    results.append({"entity": rest, "status": "not run",
                                    "error": f"not attempted: {stop}"})
                break
    return results
