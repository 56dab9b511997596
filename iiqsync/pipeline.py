"""The sync itself as plain functions: plan, fetch_page, finalize.

Celery tasks (``tasks``) and the in-process runner (``local``) both call these;
they take primitive arguments, so each can be tested without a broker. All state
between steps lives in the target database: the run record, per-page progress,
the run's staging tables. Any step may run again after a crash and produce the
same staged result.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import sqlalchemy as sa

from . import broker, customfields, db, drift, holder, requestslots, schema, swap
from .client import IIQClient, Page
from .config import Settings
from .dialects import Dialect
from .entities import Entity, get_entity
from .errors import (
    INTERRUPTED,
    ApiError,
    DatabaseUnavailableError,
    FatalError,
    IIQSyncError,
    IncompleteRunError,
    RetriableError,
)
from .flatten import flatten_page
from .runs import FAILED, RUNNING, SUCCEEDED, Bookkeeping, Run, utcnow

log = logging.getLogger(__name__)

# Page numbers of repair rounds: round r re-reads page p as r * ROUND_STRIDE + p, so
# a later read of a row wins over an earlier one when staged copies are deduplicated.
ROUND_STRIDE = 1 << 24


@dataclass
class Context:
    """What every step needs: settings, engine, dialect and bookkeeping tables."""

    settings: Settings
    engine: sa.Engine
    dialect: Dialect
    books: Bookkeeping
    client: IIQClient | None = None  # page_client()


_contexts: dict[tuple[int, int], Context] = {}
_ctx_lock = threading.Lock()
_ready: set[tuple[str, str | None]] = set()


def context(settings: Settings) -> Context:
    key = (os.getpid(), id(settings))
    ctx = _contexts.get(key)
    if ctx is None:
        with _ctx_lock:
            ctx = _contexts.get(key)
            if ctx is None:
                engine = db.get_engine(settings.connection_string)
                ctx = Context(settings, engine, db.dialect_for(engine),
                              Bookkeeping(engine, settings.schema))
                # The bookkeeping tables are the database's, not the process's: a
                # child forked after its parent made sure of them need not again.
                ready_key = (settings.connection_string, settings.schema)
                if ready_key not in _ready:
                    try:
                        ctx.books.create()
                    except sa.exc.DBAPIError as exc:
                        where = engine.url.render_as_string(hide_password=True)
                        first = str(exc.orig or exc).strip().splitlines()[0][:300]
                        key = ("[Database] Schema: create the schema first"
                               if settings.schema and "schema" in first.lower()
                               else "check [Database] ConnectionString")
                        raise DatabaseUnavailableError(
                            f"cannot use the database {where}: {first} ({key})") from None
                    _ready.add(ready_key)
                _contexts[key] = ctx
    return ctx


def page_client(ctx: Context) -> IIQClient:
    """The client page tasks of this process share: its connection pool, TLS context
    and request budget are built once, not for every page."""
    if ctx.client is None:
        with _ctx_lock:
            if ctx.client is None:
                ctx.client = IIQClient(ctx.settings)
    return ctx.client


def warm(settings: Settings, connect: bool) -> None:
    """Do before the first task what it would otherwise do itself, so that a sync's
    first round of pages does not pay for it on every process at once: load the
    database driver (``connect=False``: a worker's parent, before it forks), or make
    sure of the bookkeeping tables and open a connection and the HTTP client (each
    child). Never raises: a database that is away is reported by the tasks."""
    try:
        if not connect:
            db.get_engine(settings.connection_string)
            return
        ctx = context(settings)
        with ctx.engine.connect():
            pass
        page_client(ctx)
    except Exception as exc:
        log.debug("warming up skipped: %s", exc)


def new_run_id() -> str:
    return uuid.uuid4().hex


def normalise_run_id(run_id: str) -> str:
    """Celery task ids are hyphenated UUIDs; runs use the 32 hex digits."""
    return run_id.replace("-", "").lower()


def _tables_for(ctx: Context, entity: Entity, run: Run) -> swap.RunTables:
    with ctx.engine.connect() as conn:
        cf_all = (customfields.all_columns(conn, ctx.books, entity, run.layout.get("cf", []))
                  if entity.custom_fields else None)
    return swap.build(entity, ctx.settings, ctx.dialect, run.run_id, run.layout.get("cf", []),
                      cf_all)


def ended_from_outside(reason: str) -> str:
    """What a run says when it was ended while it ran (a sweep, ``iiqsync unlock``)."""
    return f"ended from outside while it ran: {reason}"


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, IIQSyncError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:2000]


def abort(ctx: Context, entity: Entity, run_id: str, reason: str,
          level: int = logging.ERROR) -> bool:
    """Fail a run: record why, drop its staging tables, free the lock. Final tables
    are never touched on this path. The failure is logged at ``level``."""
    failed = ctx.books.fail(run_id, entity.name, reason)
    run = ctx.books.get(run_id)
    layout = run.layout.get("cf", []) if run else []
    swap.drop_staging(ctx.engine, swap.build(entity, ctx.settings, ctx.dialect, run_id, layout))
    if failed:
        log.log(level, "run %s of %s failed: %s", run_id, entity.name, reason)
    return failed


# -- plan -------------------------------------------------------------------------
# Rounding the page count up to whole rounds of the worker slots adds requests; past
# this share more, the saving in wall time no longer pays for them.
MOST_EXTRA_PAGES = 0.25


def balanced_page_size(total: int, most: int, slots: int | None) -> int:
    """The page size for ``total`` rows: at most ``most``, and such that the pages
    fill whole rounds of ``slots`` parallel page tasks.

    100,000 rows at 1,000 a page make 100 pages; on 16 slots that is 6 full rounds
    and a 7th of 4 pages, as slow as a full one. 112 pages of 893 rows make 7 full
    rounds of shorter pages, so the run ends about 11 % sooner. A list that fits in
    one round, or that would need more than MOST_EXTRA_PAGES more requests, keeps
    pages of ``most``.
    """
    pages = -(-total // most)
    if not slots or slots < 2 or pages <= slots:
        return most
    balanced = -(-pages // slots) * slots
    if balanced - pages > MOST_EXTRA_PAGES * pages:
        return most
    return -(-total // balanced)


def plan(settings: Settings, entity_name: str, run_id: str | None = None, mode: str = "celery",
         client: IIQClient | None = None, slots: Callable[[], int | None] | None = None) -> dict:
    """Start a run: lock the entity, read custom-field definitions and the list's
    TotalRows, and create the run's staging tables.

    ``slots`` tells how many page tasks can run at once (worker pool sizes summed,
    or ``[General] Threads`` in-process); pages are sized to fill whole rounds of
    them (``balanced_page_size``). Called once TotalRows is known, so the caller
    may ask the workers while IIQ is being read.

    Returns ``{"run_id", "status": "planned", "pages", "page_size", "total_rows"}``, or
    ``{"status": "skipped", "reason"}`` when another run of the entity holds the lock.
    """
    entity = get_entity(entity_name)
    ctx = context(settings)
    run_id = normalise_run_id(run_id or new_run_id())
    sweep(ctx)
    locked_by = ctx.books.try_lock(entity.name, run_id, settings.get("Run", "LockMinutes"))
    if locked_by is not None:
        reason = (f"skipped: run {locked_by} of {entity.name} is still in progress "
                  f"(one run per entity at a time)")
        ctx.books.record_skip(run_id, entity.name, reason, mode, behind=locked_by)
        log.warning("%s", reason)
        return {"run_id": run_id, "entity": entity.name, "status": "skipped", "reason": reason}
    # An in-process run records its process, so that a later run on this machine
    # frees the entity at once should this one be killed (``holder``).
    layout = {"holder": holder.this_process()} if mode == "local" else {}
    with ctx.engine.begin() as conn:
        ctx.books.start(conn, run_id, entity.name, mode, layout)
    # The process's shared client: its TLS context and connections are ready.
    client = client or page_client(ctx)
    try:
        # The field definitions and TotalRows are read at the same time. One item is
        # enough to learn TotalRows: page 0 itself is read by a page task, in
        # parallel with every other page. These are the run's first requests: an IIQ
        # that cannot be reached at all here is a wrong [IncidentIQ] Instance, said
        # within seconds (InstanceUnreachableError), not retried like an outage.
        with ThreadPoolExecutor(1, thread_name_prefix="iiqsync-plan") as side:
            asked = (side.submit(client.custom_field_definitions, entity, first_contact=True)
                     if entity.custom_fields else None)
            total = client.fetch_page(entity, 0, 1, first_contact=True).total_rows
            definitions = asked.result() if asked is not None else []
        page_size = client.page_size_for(entity)
        if total is None:
            raise ApiError(f"{entity.route}: IIQ sent no Paging.TotalRows, so the list "
                           "cannot be read page by page")
        with ctx.engine.connect() as conn:
            existing = set()
            inspector = sa.inspect(conn)
            # Before a page is read: a final table that holds something else is refused.
            cf_key = entity.custom_fields.table_key if entity.custom_fields else None
            for table_key in filter(None, (entity.table_key, cf_key)):
                name = settings.table_name(table_key)
                if inspector.has_table(name, schema=settings.schema):
                    columns = {c["name"] for c in inspector.get_columns(name, schema=settings.schema)}
                    swap.refuse_foreign(name, columns, entity, table_key)
                    if table_key == cf_key:
                        existing = columns
            layout["cf"] = customfields.plan_layout(conn, ctx.books, entity, definitions,
                                                    existing, ctx.dialect.max_identifier_bytes)
        if slots is not None and settings.get("General", "FillRounds"):
            page_size = balanced_page_size(total, page_size, slots())
        pages = max(1, -(-total // page_size))
        with ctx.engine.begin() as conn:
            ctx.books.planned(conn, run_id, pages, page_size, total, layout)
        run = ctx.books.get(run_id)
        swap.create_staging(ctx.engine, _tables_for(ctx, entity, run))
    except BaseException as exc:
        # In-process, the caller prints the outcome: logged, it would be said twice.
        # SIGTERM arrives as KeyboardInterrupt (cli), whose text is empty.
        reason = INTERRUPTED if isinstance(exc, KeyboardInterrupt) else _error_text(exc)
        abort(ctx, entity, run_id, reason, logging.INFO if mode == "local" else logging.ERROR)
        raise
    log.info("run %s of %s planned: %s rows in %d pages of %d", run_id, entity.name, total,
             pages, page_size)
    return {"run_id": run_id, "entity": entity.name, "status": "planned", "pages": pages,
            "page_size": page_size, "total_rows": total}


def pages_to_fetch(planned: dict) -> list[int]:
    """The page numbers a planned run's page tasks read: every page, 0 included."""
    return list(range(planned["pages"]))


# -- pages ------------------------------------------------------------------------
def stage_page(ctx: Context, conn: sa.Connection, tables: swap.RunTables, run_id: str, page: int,
               fetched: Page, maybe_staged: bool = True) -> dict:
    """Write one fetched page into the run's staging tables, replacing any earlier
    copy of the same page, in the caller's transaction, with its progress record.
    ``maybe_staged=False`` says no earlier copy can exist (the page task's first
    delivery), which saves looking."""
    entity = tables.entity
    rows, cf_rows, skipped, duplicates = flatten_page(entity, fetched.items, tables.cf_type_ids)
    main_cols = [c.name for c in entity.columns] + [schema.PAGE_COLUMN]
    cf_cols = [entity.key, *tables.cf_columns, schema.PAGE_COLUMN]
    # Only a page staged before has rows to replace: a first delivery skips the
    # DELETE, which scans the whole staging table.
    if maybe_staged and ctx.books.page_staged(conn, run_id, page):
        for stage in tables.stages:
            conn.execute(stage.delete().where(stage.c[schema.PAGE_COLUMN] == page))
    ctx.dialect.bulk_insert(conn, tables.main_stage, main_cols, [(*r, page) for r in rows])
    if tables.cf_stage is not None:
        ctx.dialect.bulk_insert(conn, tables.cf_stage, cf_cols, [(*r, page) for r in cf_rows])
    ctx.books.page_done(conn, run_id, page, len(fetched.items), len(rows), skipped,
                        duplicates, fetched.total_rows)
    return {"page": page, "items": len(fetched.items), "rows": len(rows), "skipped": skipped,
            "duplicates": duplicates}


def probes(tables: swap.RunTables, page: int, fetched: Page, client: IIQClient,
           ready: dict[tuple[int, int], Page] | None = None) -> list[tuple[int, Page]]:
    """The probes that tie page ``page`` to its neighbours (see ``drift``), read and
    numbered for staging: a page after the first gets a probe across the boundary
    above it; a full page that ended the list gets one across the end. ``ready``
    holds windows the caller read already, by ``(page index, page size)``."""
    index, size = page % ROUND_STRIDE, fetched.page_size
    wanted = []
    if index > 0:
        wanted.append((drift.BOUNDARY, drift.probe_window(index * size)))
    total = fetched.total_rows
    if total and len(fetched.items) == size and (index + 1) * size >= total:
        wanted.append((drift.TAIL, drift.probe_window(total)))
    read = []
    for kind, window in wanted:
        got = (ready or {}).get(window)
        if got is None:
            got = client.fetch_page(tables.entity, *window)
        tail = 0 < len(got.items) < window[1]
        read.append((drift.probe_number(page, kind, tail), got))
    return read


def probes_to_read_early(run: Run, index: int) -> list[tuple[int, int]]:
    """The probe windows a page task can ask for while its page is read, so that a
    probe adds no latency: the boundary above the page, and for the last page of
    the plan, the end of the list as planned (if the list has changed length since,
    ``probes`` reads the right window after the page)."""
    size = run.page_size or 1
    windows = [drift.probe_window(index * size)] if index > 0 else []
    if run.total_rows and (index + 1) * size >= run.total_rows and run.total_rows % size == 0:
        windows.append(drift.probe_window(run.total_rows))
    return windows


_probe_pools: dict[int, ThreadPoolExecutor] = {}


def _probe_pool() -> ThreadPoolExecutor:
    """Threads (of this process: not shared across a fork) that read boundary probes
    while the page itself is read, so a probe adds no latency to a page task."""
    pool = _probe_pools.get(os.getpid())
    if pool is None:
        with _ctx_lock:
            pool = _probe_pools.setdefault(os.getpid(), ThreadPoolExecutor(
                max_workers=16, thread_name_prefix="iiqsync-probe"))
    return pool


# A run's table objects, built once per process: its layout does not change.
_run_cache: dict[str, swap.RunTables] = {}


def _running(ctx: Context, conn: sa.Connection, entity: Entity,
             run_id: str) -> tuple[Run, swap.RunTables] | None:
    run = ctx.books.get(run_id, conn)
    if run is None or run.status != RUNNING:
        _run_cache.pop(run_id, None)
        return None
    tables = _run_cache.get(run_id)
    if tables is None:
        tables = _tables_for(ctx, entity, run)
        if len(_run_cache) > 64:
            _run_cache.clear()
        _run_cache[run_id] = tables
    return run, tables


def fetch_page(settings: Settings, entity_name: str, run_id: str, page: int, retries: int = 0,
               client: IIQClient | None = None) -> dict:
    """Fetch one page and stage it. Safe to run twice. ``retries`` is how many
    times this page was retried on purpose; deliveries beyond that mean a worker
    died while holding it, and too many fail the run instead of looping.

    The database is used twice, each time briefly, never across a request to IIQ:
    once to look the run up and count the delivery, once to stage the page and its
    probes in one transaction. IIQ is asked only once the delivery is counted, so
    a worker that dies while it waits (or parses) is always counted."""
    entity = get_entity(entity_name)
    ctx = context(settings)
    try:
        with ctx.engine.connect() as conn:
            found = _running(ctx, conn, entity, run_id)
            if found is None:
                return {"page": page, "status": "ignored: the run is no longer running"}
            run, tables = found
            deliveries = ctx.books.deliver(conn, run_id, page)
    except sa.exc.DBAPIError as exc:
        raise db.retriable(exc) from exc
    redelivered = deliveries - retries - 1
    limit = settings.get("Run", "MaxPageDeliveries")
    if redelivered >= limit:
        raise FatalError(f"page {page} of {entity.name} was delivered {deliveries} times "
                         f"without finishing (a worker died each time); giving up "
                         f"([Run] MaxPageDeliveries = {limit})")
    client = client or page_client(ctx)
    index = page % ROUND_STRIDE
    # In the task's context, so that what the client logs names the page.
    early = {window: _probe_pool().submit(contextvars.copy_context().run, client.fetch_page,
                                          entity, *window)
             for window in probes_to_read_early(run, index)}
    # A worker with [Celery] RequestsInFlight below its pool size lets only that
    # many page requests wait on IIQ; the rest decode and stage pages meanwhile.
    with requestslots.counted():
        fetched = client.fetch_page(entity, index, run.page_size)
    reads = probes(tables, page, fetched, client,
                   {window: asked.result() for window, asked in early.items()})
    try:
        with ctx.engine.connect() as conn, ctx.dialect.staging(conn):
            # A page and its probes are staged only together, after the delivery
            # was counted: on the first delivery neither can have been staged.
            again = deliveries > 1
            staged = stage_page(ctx, conn, tables, run_id, page, fetched, again)
            for number, got in reads:
                stage_page(ctx, conn, tables, run_id, number, got, again)
        return staged
    except sa.exc.DBAPIError as exc:
        # The run ended while this page was read (a sweep, `iiqsync unlock`, a failed
        # page): its staging tables went with it, which is not this page's fault.
        if _run_ended(ctx, run_id):
            return {"page": page, "status": "ignored: the run ended while the page was read"}
        raise db.retriable(exc) from exc


def _run_ended(ctx: Context, run_id: str) -> bool:
    try:
        run = ctx.books.get(run_id)
    except sa.exc.DBAPIError:
        return False
    return run is not None and run.status != RUNNING


# -- finalize ---------------------------------------------------------------------
def finalize(settings: Settings, entity_name: str, run_id: str, round_no: int = 0,
             client: IIQClient | None = None) -> dict:
    """Check completeness, apply schema changes and swap the staged rows in.

    Returns ``{"status": "succeeded", ...}``; or ``{"status": "repair", "pages": [...]}``
    when rows moved under the run and another pass over the pages is needed (the
    caller fetches those pages and calls finalize again with ``round_no + 1``).
    On any failure the run is recorded as failed and the final tables are untouched.
    """
    entity = get_entity(entity_name)
    ctx = context(settings)
    try:
        run = ctx.books.get(run_id)
    except sa.exc.DBAPIError as exc:
        raise db.retriable(exc) from exc
    if run is None or run.status != RUNNING:
        # Ended before its pages were all in (a sweep, `iiqsync unlock`, a failed page).
        error = ended_from_outside(run.error) if run and run.error else None
        return {"run_id": run_id, "entity": entity.name,
                "status": run.status if run else "unknown", "error": error}
    client = client or page_client(ctx)
    try:
        outcome = _finalize(ctx, entity, run, round_no, client)
    except RetriableError:
        # A passing fault (IIQ or the database away): the caller may try again;
        # the run stays open and the final tables are as they were.
        raise
    except sa.exc.DBAPIError as exc:
        error = db.retriable(exc)
        if isinstance(error, RetriableError):
            raise error from exc
        abort(ctx, entity, run_id, _error_text(exc))
        raise
    except BaseException as exc:
        abort(ctx, entity, run_id, _error_text(exc))
        raise
    return outcome


def _finalize(ctx: Context, entity: Entity, run: Run, round_no: int, client: IIQClient) -> dict:
    books = ctx.books
    tables = _tables_for(ctx, entity, run)
    done = books.done_pages(run.run_id)
    expected = {round_no * ROUND_STRIDE + p for p in range(run.pages)} if round_no == 0 else set()
    missing = sorted(expected - done)
    if missing:
        raise IncompleteRunError(f"{len(missing)} of {run.pages} pages never reported "
                                 f"(first: {missing[:5]}); nothing was swapped")
    with ctx.engine.connect() as conn:
        shared, moved = drift.read_links(conn, tables.main_stage, entity.key, ROUND_STRIDE,
                                         ctx.dialect.sort_key)
        # Every read of every pass counts: a later read may close a gap an earlier left.
        proved, why = drift.covered(books.items_read(run.run_id, conn), run.page_size or 1,
                                    shared, ROUND_STRIDE)
    log.info("run %s of %s pass %d: %s, %d moved", run.run_id, entity.name, round_no,
             "every row accounted for" if proved else why, moved)
    max_rounds = ctx.settings.get("Run", "DriftRounds")
    if not proved and round_no < max_rounds:
        now_total = client.fetch_page(entity, 0, 1).total_rows
        with ctx.engine.begin() as conn:
            books.update(conn, run.run_id, moved=moved)
        size = run.page_size or 1
        pages = max(1, -(-(now_total or 0) // size))
        next_round = round_no + 1
        log.warning("run %s of %s: rows moved during the run (%s); reading all %d pages "
                    "again (pass %d of at most %d)", run.run_id, entity.name, why, pages,
                    next_round + 1, max_rounds + 1)
        return {"run_id": run.run_id, "entity": entity.name, "status": "repair",
                "round": next_round,
                "pages": [next_round * ROUND_STRIDE + p for p in range(pages)]}
    if not proved:
        raise IncompleteRunError(
            f"rows kept moving while IIQ was read ({why}) through {round_no + 1} pass(es), "
            f"so a row may have been missed; nothing was swapped. The next run tries "
            f"again; raise [Run] DriftRounds (now {max_rounds}) if this repeats")
    with ctx.engine.begin() as conn:
        changes = swap.ensure_final_tables(conn, ctx.dialect, tables)
    for change in changes:
        log.info("run %s: %s", run.run_id, change)
    settled = round_no == 0 and moved == 0
    with ctx.engine.begin() as conn:
        if not settled:
            # In the swap's transaction: if it rolls back, a retry sees every read again.
            swap.dedupe(conn, ctx.dialect, tables,
                        newer_from=sorted({0, round_no * ROUND_STRIDE}))
        rows = swap.replace_all(conn, ctx.dialect, tables, pages_only=settled)
        if entity.custom_fields:
            customfields.record_mapping(conn, books, entity, run.layout.get("cf", []))
        if rows is None or rows < 0:
            rows = conn.execute(sa.select(sa.func.count()).select_from(tables.main)).scalar_one()
        skipped = books.page_summary(run.run_id, conn, pages=(0, ROUND_STRIDE))["skipped"]
        books.succeed(conn, run.run_id, finished=utcnow(), rows=rows, skipped=skipped,
                      moved=moved)
        books.unlock(conn, entity.name, run.run_id)
    swap.drop_staging(ctx.engine, tables)
    _run_cache.pop(run.run_id, None)
    log.info("run %s of %s succeeded: %d rows", run.run_id, entity.name, rows)
    return {"run_id": run.run_id, "entity": entity.name, "status": SUCCEEDED, "rows": rows,
            "skipped": skipped, "moved": moved, "schema_changes": changes}


def fail(settings: Settings, entity_name: str, run_id: str, reason: str) -> bool:
    """Record a run as failed from outside (a chord error callback). Raises
    ``RetriableError`` while the database cannot be reached."""
    entity = get_entity(entity_name)
    try:
        return abort(context(settings), entity, normalise_run_id(run_id), reason)
    except sa.exc.DBAPIError as exc:
        raise db.retriable(exc) from exc


# -- sweeping ---------------------------------------------------------------------
_STAGE_NAME = re.compile(rf"^{schema.STAGING_PREFIX}([0-9a-f]{{12}})_(main|cf)$", re.I)


def _holder_of(layout: str | None) -> dict | None:
    try:
        return json.loads(layout).get("holder") if layout else None
    except (ValueError, AttributeError):
        return None


def sweep(ctx: Context) -> list[str]:
    """Fail runs whose lock expired (their worker died) or whose tasks Redis lost
    (``broker``), and drop staging tables that belong to no running run. Returns
    the dropped table names."""
    books = ctx.books
    now = utcnow()
    with ctx.engine.begin() as conn:
        stale = conn.execute(sa.select(books.runs.c.run_id, books.runs.c.entity,
                                       books.runs.c.mode, books.runs.c.layout)
                             .where(books.runs.c.status == RUNNING)).fetchall()
        locks = {r.run_id: r.expires for r in conn.execute(sa.select(books.locks)).fetchall()}
    on_workers = {}
    for run_id, entity, mode, layout in stale:
        expires = locks.get(run_id)
        if expires is None or expires < now:
            books.fail(run_id, entity, "abandoned: its lock expired before it finished")
        elif mode == "celery":
            on_workers[run_id] = entity
        elif mode == "local":
            process = _holder_of(layout)
            if holder.is_gone(process):
                log.warning("run %s of %s: its process (%s) is gone; the run is ended and "
                            "the entity freed", run_id, entity, holder.describe(process))
                books.fail(run_id, entity, f"abandoned: its process ({holder.describe(process)}) "
                           "ended before the run did (killed, or the machine restarted)")
    for run_id in broker.lost(ctx.settings, list(on_workers)):
        books.fail(run_id, on_workers[run_id], broker.LOST)
    with ctx.engine.connect() as conn:
        names = sa.inspect(conn).get_table_names(schema=ctx.settings.schema)
        running = {r[0][:12] for r in conn.execute(
            sa.select(books.runs.c.run_id).where(books.runs.c.status == RUNNING)).fetchall()}
    dropped = []
    for name in names:
        match = _STAGE_NAME.match(name)
        if match and match.group(1).lower() not in running:
            table = sa.Table(name, sa.MetaData(), schema=ctx.settings.schema)
            try:
                table.drop(ctx.engine, checkfirst=True)
                dropped.append(name)
            except sa.exc.DBAPIError as exc:
                log.warning("could not drop leftover staging table %s: %s", name, exc)
    if dropped:
        log.info("swept %d leftover staging table(s)", len(dropped))
    return dropped


__all__ = ["plan", "fetch_page", "finalize", "fail", "sweep", "context", "FAILED"]
