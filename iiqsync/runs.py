"""Run history (``iiqsync_runs``), per-page progress (``iiqsync_run_pages``) and the
per-entity lock (``iiqsync_locks``).

The lock lives in the target database, so it holds across every worker, every
beat instance and a manual ``iiqsync sync --local`` alike, and it is taken and
released in the same transaction as the run's record.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from . import schema
from .errors import RunEndedError

RUNNING, SUCCEEDED, FAILED, SKIPPED = "running", "succeeded", "failed", "skipped"


def utcnow() -> datetime:
    """Naive UTC, as every timestamp iiqsync writes to its own tables."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Run:
    run_id: str
    entity: str
    status: str
    pages: int | None
    page_size: int | None
    total_rows: int | None
    layout: dict
    started: datetime
    error: str | None = None
    rows: int | None = None
    moved: int | None = None


class Bookkeeping:
    """Reads and writes iiqsync's own tables on one engine."""

    def __init__(self, engine: sa.Engine, schema_name: str | None):
        self.engine = engine
        self.metadata = sa.MetaData(schema=schema_name)
        self.tables = schema.internal_tables(self.metadata)
        self.runs = self.tables[schema.RUNS]
        self.pages = self.tables[schema.RUN_PAGES]
        self.locks = self.tables[schema.LOCKS]
        self.custom_fields = self.tables[schema.CUSTOM_FIELDS]

    def create(self, attempts: int = 5) -> None:
        """Create iiqsync's tables if missing. Workers starting together race to
        create them; the losers see the winner's tables on the next look."""
        for attempt in range(attempts):
            try:
                self.metadata.create_all(self.engine, checkfirst=True)
                return
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError):
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    # -- lock -----------------------------------------------------------------
    def try_lock(self, entity: str, run_id: str, minutes: int, _tries: int = 3) -> str | None:
        """Take the entity's lock for ``run_id``; return None on success, else the
        run id that holds it. Re-entrant for the same run (a redelivered plan); a
        lock past its expiry is taken over. Each step is its own short transaction
        and the take-over is a compare-and-set, so two takers never both win."""
        now = utcnow()
        expires = now + timedelta(minutes=minutes)
        try:
            with self.engine.begin() as conn:
                conn.execute(self.locks.insert().values(
                    entity=entity, run_id=run_id, acquired=now, expires=expires))
            return None
        except sa.exc.IntegrityError:
            pass
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(self.locks)
                               .where(self.locks.c.entity == entity)).first()
            if row is None:
                return self.try_lock(entity, run_id, minutes, _tries - 1) if _tries else "unknown"
            if row.run_id != run_id and row.expires > now:
                return row.run_id
            done = conn.execute(self.locks.update()
                                .where(self.locks.c.entity == entity,
                                       self.locks.c.run_id == row.run_id,
                                       self.locks.c.acquired == row.acquired)
                                .values(run_id=run_id, acquired=now, expires=expires))
        return None if done.rowcount == 1 else row.run_id

    def lock_holder(self, entity: str) -> str | None:
        """The run that holds the entity's lock, if any."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(self.locks.c.run_id)
                                .where(self.locks.c.entity == entity)).scalar()

    def unlock(self, conn: sa.Connection, entity: str, run_id: str) -> None:
        conn.execute(self.locks.delete().where(self.locks.c.entity == entity,
                                               self.locks.c.run_id == run_id))

    # -- runs -----------------------------------------------------------------
    def start(self, conn: sa.Connection, run_id: str, entity: str, mode: str,
              layout: dict | None = None) -> None:
        conn.execute(self.runs.delete().where(self.runs.c.run_id == run_id))
        conn.execute(self.pages.delete().where(self.pages.c.run_id == run_id))
        conn.execute(self.runs.insert().values(
            run_id=run_id, entity=entity, started=utcnow(), status=RUNNING, mode=mode,
            layout=json.dumps(layout) if layout else None))

    def record_skip(self, run_id: str, entity: str, reason: str, mode: str,
                    behind: str | None = None) -> None:
        """``behind``: the run that holds the entity, which ``sync --wait`` follows."""
        now = utcnow()
        values = dict(entity=entity, started=now, finished=now, status=SKIPPED, error=reason,
                      mode=mode, layout=json.dumps({"behind": behind}) if behind else None)
        # Insert first, rather than delete-then-insert: on MySQL/MariaDB deleting a row
        # that is not there locks the gap around it, and plans skipped at the same
        # moment then deadlock on each other's gaps.
        try:
            with self.engine.begin() as conn:
                conn.execute(self.runs.insert().values(run_id=run_id, **values))
        except sa.exc.IntegrityError:  # a redelivered plan, recorded before
            with self.engine.begin() as conn:
                conn.execute(self.runs.update().where(self.runs.c.run_id == run_id)
                             .values(**values))

    def planned(self, conn, run_id: str, pages: int, page_size: int, total_rows: int | None,
                layout: dict) -> None:
        conn.execute(self.runs.update().where(self.runs.c.run_id == run_id).values(
            pages=pages, page_size=page_size, total_rows=total_rows, layout=json.dumps(layout)))

    def update(self, conn, run_id: str, **values) -> None:
        conn.execute(self.runs.update().where(self.runs.c.run_id == run_id).values(**values))

    def succeed(self, conn: sa.Connection, run_id: str, **values) -> None:
        """Inside the swap's transaction: record the run as succeeded. A run that was
        ended elsewhere meanwhile raises, so the swap rolls back with it."""
        done = conn.execute(self.runs.update()
                            .where(self.runs.c.run_id == run_id, self.runs.c.status == RUNNING)
                            .values(status=SUCCEEDED, **values))
        if done.rowcount != 1:
            raise RunEndedError(
                f"run {run_id} was ended elsewhere while it was being finished (failed by "
                "a sweep or by its error callback; its record says why); nothing was swapped")

    def get(self, run_id: str, conn: sa.Connection | None = None) -> Run | None:
        query = sa.select(self.runs).where(self.runs.c.run_id == run_id)
        if conn is None:
            with self.engine.connect() as own:
                row = own.execute(query).first()
        else:
            row = conn.execute(query).first()
        if row is None:
            return None
        return Run(row.run_id, row.entity, row.status, row.pages, row.page_size,
                   row.total_rows, json.loads(row.layout) if row.layout else {}, row.started,
                   row.error, row.rows, row.moved)

    def fail(self, run_id: str, entity: str, reason: str) -> bool:
        """Mark a running run failed and free its lock. False if it had already ended."""
        with self.engine.begin() as conn:
            done = conn.execute(self.runs.update()
                                .where(self.runs.c.run_id == run_id,
                                       self.runs.c.status == RUNNING)
                                .values(status=FAILED, finished=utcnow(), error=reason[:4000]))
            self.unlock(conn, entity, run_id)
        return done.rowcount == 1

    def latest(self, limit_per_entity: int = 1) -> list:
        """The newest runs of every entity, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.runs).order_by(self.runs.c.started.desc())
                                .limit(500)).fetchall()
        seen: dict[str, int] = {}
        out = []
        for row in rows:
            if seen.get(row.entity, 0) < limit_per_entity:
                seen[row.entity] = seen.get(row.entity, 0) + 1
                out.append(row)
        return out

    def last_success(self) -> dict[str, datetime]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.runs.c.entity,
                                          sa.func.max(self.runs.c.finished))
                                .where(self.runs.c.status == SUCCEEDED)
                                .group_by(self.runs.c.entity)).fetchall()
        return {r[0]: r[1] for r in rows}

    # -- pages ----------------------------------------------------------------
    def deliver(self, conn: sa.Connection, run_id: str, page: int) -> int:
        """Count one more delivery of a page task, committed on ``conn`` before the
        page is read; return how many there have been."""
        try:
            conn.execute(self.pages.insert().values(
                run_id=run_id, page=page, items=0, rows=0, skipped=0, duplicates=0,
                deliveries=1, done=False))
            conn.commit()
            return 1
        except sa.exc.IntegrityError:
            conn.rollback()
        where = (self.pages.c.run_id == run_id, self.pages.c.page == page)
        conn.execute(self.pages.update().where(*where)
                     .values(deliveries=self.pages.c.deliveries + 1))
        deliveries = conn.execute(sa.select(self.pages.c.deliveries).where(*where)).scalar_one()
        conn.commit()
        return deliveries

    def page_done(self, conn, run_id: str, page: int, items: int, rows: int, skipped: int,
                  duplicates: int, total_rows: int | None) -> None:
        values = dict(items=items, rows=rows, skipped=skipped, duplicates=duplicates,
                      total_rows=total_rows, done=True, finished=utcnow())
        done = conn.execute(self.pages.update()
                            .where(self.pages.c.run_id == run_id, self.pages.c.page == page)
                            .values(**values))
        if done.rowcount == 0:
            conn.execute(self.pages.insert().values(run_id=run_id, page=page, deliveries=1,
                                                    **values))

    def page_staged(self, conn: sa.Connection, run_id: str, page: int) -> bool:
        """Whether ``page`` was staged before (its rows and its record are committed
        together, so a page not done has no staged rows)."""
        done = conn.execute(sa.select(self.pages.c.done)
                            .where(self.pages.c.run_id == run_id,
                                   self.pages.c.page == page)).scalar()
        return bool(done)

    def page_summary(self, run_id: str, conn: sa.Connection | None = None,
                     pages: tuple[int, int] | None = None) -> dict:
        """Totals over the run's finished pages, or those numbered in [lo, hi)."""
        p = self.pages
        query = (sa.select(sa.func.count(), sa.func.sum(p.c["items"]), sa.func.sum(p.c.skipped),
                           sa.func.sum(p.c.duplicates), sa.func.min(p.c.total_rows),
                           sa.func.max(p.c.total_rows))
                 .where(p.c.run_id == run_id, p.c.done.is_(True)))
        if pages is not None:
            query = query.where(p.c.page >= pages[0], p.c.page < pages[1])
        if conn is None:
            with self.engine.connect() as own:
                row = own.execute(query).first()
        else:
            row = conn.execute(query).first()
        return {"done": row[0] or 0, "items": row[1] or 0, "skipped": row[2] or 0,
                "duplicates": row[3] or 0, "min_total": row[4], "max_total": row[5]}

    def done_pages(self, run_id: str) -> set[int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.pages.c.page)
                                .where(self.pages.c.run_id == run_id,
                                       self.pages.c.done.is_(True))).fetchall()
        return {r[0] for r in rows}

    def items_read(self, run_id: str, conn: sa.Connection) -> dict[int, int]:
        """Items IIQ returned for each finished read (page or probe) of the run."""
        rows = conn.execute(sa.select(self.pages.c.page, self.pages.c["items"])
                            .where(self.pages.c.run_id == run_id,
                                   self.pages.c.done.is_(True))).fetchall()
        return {r[0]: r[1] for r in rows}

    # -- custom-field mapping -------------------------------------------------
    def mapping(self, conn: sa.Connection, entity: str) -> list:
        return conn.execute(sa.select(self.custom_fields)
                            .where(self.custom_fields.c.entity == entity)).fetchall()
