"""Finalize's database work: additive schema changes, then the atomic swap.

Schema changes read the real catalog and never drop: a missing table is
created, a missing column is added, a column whose type would lose or reject
what iiqsync stores (a table an older tool made: DATE for a timestamp, CHAR(32)
for a GUID) is changed to the type iiqsync creates for it, and a bounded text
column too short for a staged value is widened. The swap then replaces each
final table's rows with the staged rows in ONE transaction for all of an
entity's tables, so readers see the old rows until commit and the new rows
after, never an empty or half-filled table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import sqlalchemy as sa

from . import columntypes, db, schema
from . import entities as k
from .config import Settings
from .dialects import Dialect
from .entities import Entity
from .errors import ColumnTypeError, FatalError, ForeignTableError

log = logging.getLogger(__name__)


@dataclass
class RunTables:
    """The final and staging tables of one run of one entity."""

    entity: Entity
    main: sa.Table
    main_stage: sa.Table
    cf: sa.Table | None = None
    cf_stage: sa.Table | None = None
    cf_type_ids: list[str] = field(default_factory=list)  # layout order
    cf_columns: list[str] = field(default_factory=list)  # layout order

    @property
    def pairs(self) -> list[tuple[sa.Table, sa.Table, list[str]]]:
        """(final, staging, columns to copy) for every table of the entity."""
        out = [(self.main, self.main_stage, [c.name for c in self.entity.columns])]
        if self.cf is not None:
            out.append((self.cf, self.cf_stage, [self.entity.key, *self.cf_columns]))
        return out

    @property
    def stages(self) -> list[sa.Table]:
        return [s for _, s, _ in self.pairs]

    def kinds(self, final: sa.Table) -> dict[str, str]:
        """The column kind of each column of ``final``: custom-field values are text."""
        if final is self.cf:
            return {**{c.name: k.LONGTEXT for c in final.columns},
                    self.entity.key: self.entity.key_column.kind}
        return {c.name: c.kind for c in self.entity.columns}


def build(entity: Entity, settings: Settings, dialect: Dialect, run_id: str,
          layout: list[dict], cf_all_columns: list[str] | None = None) -> RunTables:
    """Table objects for a run from its custom-field layout."""
    md = sa.MetaData()
    main = schema.main_table(md, entity, settings, dialect)
    free_text = {c.name for c in entity.columns if c.kind == k.TEXT}
    tables = RunTables(entity, main, schema.staging_table(md, schema.staging_name(run_id, "main"),
                                                          main, dialect, free_text))
    if entity.custom_fields is not None:
        tables.cf_type_ids = [e["type_id"] for e in layout]
        tables.cf_columns = [e["column"] for e in layout]
        stage_cf = schema.custom_field_table(sa.MetaData(), entity, settings, dialect,
                                             tables.cf_columns)
        tables.cf = schema.custom_field_table(md, entity, settings, dialect,
                                              cf_all_columns or tables.cf_columns)
        tables.cf_stage = schema.staging_table(md, schema.staging_name(run_id, "cf"),
                                               stage_cf, dialect)
    return tables


def create_staging(engine: sa.Engine, tables: RunTables) -> None:
    """Fresh staging tables (dropped first: a redelivered plan starts clean)."""
    for stage in tables.stages:
        stage.drop(engine, checkfirst=True)
        stage.create(engine)


def drop_staging(engine: sa.Engine, tables: RunTables) -> None:
    for stage in tables.stages:
        try:
            stage.drop(engine, checkfirst=True)
        except sa.exc.DBAPIError as exc:  # swept again later
            log.warning("could not drop staging table %s: %s", stage.name, exc)


def dedupe(conn: sa.Connection, dialect: Dialect, tables: RunTables,
           newer_from: Sequence[int] = ()) -> int:
    """Keep one staged row per key: the copy with the highest page number.

    A row seen on two pages moved while the run read the list. ``newer_from`` lists
    page numbers at and above which every copy wins over every copy below: the first
    page of the last pass, which read every row again, and 0, above the probes. Those
    copies go in one statement each rather than key by key. Returns how many
    surplus copies were removed. (A run in which no row moved needs none of this:
    see ``replace_all``'s ``pages_only``.)"""
    removed = 0
    for _final, stage, _cols in tables.pairs:
        key = stage.c[tables.entity.key]
        page = stage.c[schema.PAGE_COLUMN]
        for start in sorted(newer_from, reverse=True):
            removed += dialect.delete_superseded(conn, stage, tables.entity.key,
                                                 schema.PAGE_COLUMN, start)
        dupes = conn.execute(sa.select(key, sa.func.max(page)).group_by(key)
                             .having(sa.func.count() > 1)).fetchall()
        by_last: dict[int, list] = {}
        for value, last in dupes:
            by_last.setdefault(last, []).append(value)
        for last, values in by_last.items():
            for i in range(0, len(values), 500):
                removed += conn.execute(stage.delete().where(
                    page < last, key.in_(values[i:i + 500]))).rowcount
    return removed


def refuse_foreign(name: str, columns: Iterable[str], entity: Entity, setting: str) -> None:
    """Raise ``ForeignTableError`` when an existing final table lacks the entity's
    key column: it holds something else (another system's table of the same name,
    or a ``[Tables]`` setting that points at the wrong one), and a sync would
    replace its rows with the entity's. A table the old tool made has the key."""
    if entity.key.lower() not in {c.lower() for c in columns}:
        raise ForeignTableError(
            f"table {name} ([Tables] {setting}) already exists and has no {entity.key} "
            f"column, so it is not a table of {entity.name}; syncing into it would "
            f"replace its rows. Name another table in [Tables] {setting}, or rename or "
            f"drop that one")


def ensure_final_tables(conn: sa.Connection, dialect: Dialect, tables: RunTables) -> list[str]:
    """Create missing final tables and add missing columns; change columns of an
    existing table whose type would lose or reject what the run stores to the type
    iiqsync creates for them; widen bounded text columns that a staged value would
    not fit. Returns what was changed.

    Raises ``ColumnTypeError`` when the database refuses a type change: on
    PostgreSQL and SQL Server every change of this call is rolled back with the
    caller's transaction; on MySQL and Oracle the changes made before it stay (each
    ALTER TABLE commits), and each keeps every value the column held."""
    changes = []
    inspector = sa.inspect(conn)
    with dialect.changing_types(conn):
        for final, stage, _cols in tables.pairs:
            kinds = tables.kinds(final)
            if not inspector.has_table(final.name, schema=final.schema):
                final.create(conn)
                changes.append(f"created table {final.name}")
                # The first run may stage a value longer than StringLength too.
                present = {c.name.lower(): {"name": c.name, "type": c.type}
                           for c in final.columns}
                changes += _widen(conn, dialect, final, stage, present, kinds)
                continue
            present = {c["name"].lower(): c for c in inspector.get_columns(final.name,
                                                                           schema=final.schema)}
            refuse_foreign(final.name, present, tables.entity, _setting_of(tables, final))
            for column in final.columns:
                if column.name.lower() not in present:
                    added = sa.Column(column.name, column.type, nullable=True)
                    conn.exec_driver_sql(dialect.add_column_sql(conn, final, added))
                    changes.append(f"added column {final.name}.{column.name}")
            changes += _retype(conn, dialect, final, stage, present, kinds)
            changes += _widen(conn, dialect, final, stage, present, kinds)
    return changes


def _setting_of(tables: RunTables, final: sa.Table) -> str:
    entity = tables.entity
    return entity.custom_fields.table_key if final is tables.cf else entity.table_key


def _retype(conn, dialect, final, stage, present, kinds) -> list[str]:
    """Change each column the run writes whose type ``columntypes`` finds short of
    what iiqsync stores into the type iiqsync creates for it. Every change is tried
    (each in a savepoint where DDL is transactional), so that one error names every
    column the database refused."""
    changes, refused = [], []
    for column in final.columns:
        reflected = present.get(column.name.lower())
        if reflected is None or column.name not in stage.c:
            continue
        why = columntypes.shortfall(kinds[column.name], column.type, reflected["type"],
                                    dialect)
        if why is None:
            continue
        was, now = _type_sql(reflected["type"], conn), _type_sql(column.type, conn)
        sql = None
        try:
            sql = dialect.change_type_sql(conn, final, reflected["name"], column.type,
                                          reflected.get("nullable", True))
            with conn.begin_nested() if dialect.transactional_ddl else nullcontext():
                conn.exec_driver_sql(sql)
        except FatalError as exc:  # the dialect cannot do it in place
            refused.append((column.name, was, now, why, str(exc), sql))
        except sa.exc.DBAPIError as exc:
            error = db.retriable(exc)  # the connection lost, a lock not granted in time
            if error is not exc:
                raise error from exc
            refused.append((column.name, was, now, why, _first_lines(exc), sql))
        else:
            reflected["type"] = column.type
            changes.append(f"changed {final.name}.{column.name} from {was} to {now} {why}")
    if refused:
        raise ColumnTypeError(_refusal(final, refused))
    return changes


def _type_sql(column_type, conn) -> str:
    try:
        return column_type.compile(dialect=conn.dialect)
    except sa.exc.SQLAlchemyError:
        return str(type(column_type).__name__)


def _first_lines(exc: sa.exc.DBAPIError) -> str:
    """The database's own words, its message and then its detail, without
    SQLAlchemy's copy of the statement or the driver's error number."""
    args = getattr(exc.orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        text = args[1]  # PyMySQL: (1292, "Incorrect datetime value ...")
    else:
        text = str(exc.orig)
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc.orig).__name__
    return (lines[0] + (f" ({'; '.join(lines[1:3])})" if len(lines) > 1 else ""))[:500]


def _refusal(final: sa.Table, refused: list[tuple]) -> str:
    one = len(refused) == 1
    told = " ".join(f"{final.name}.{name} must change from {was} to {now} {why}, and the "
                    f"database refused: {reason}."
                    for name, was, now, why, reason, _sql in refused)
    statements = [sql for *_, sql in refused if sql]
    by_hand = f"change {'it' if one else 'them'} by hand, clearing old values that do not convert"
    if statements:
        by_hand += ": " + "; ".join(statements)
    return (f"{told} Nothing was synced and {final.name} keeps its rows. To go on, drop the "
            f"views that use {'the column' if one else 'these columns'} (create them again "
            f"after the next sync), or {by_hand}; then sync again")


def _widen(conn, dialect, final, stage, present, kinds) -> list[str]:
    if not dialect.typed_columns:
        return []  # lengths bound nothing (SQLite)
    bounded = []
    for column in final.columns:
        reflected = present.get(column.name.lower())
        if reflected is None or column.name not in stage.c:
            continue
        if kinds[column.name] not in (k.TEXT, k.LONGTEXT):
            # GUIDs, numbers, timestamps: columntypes decided on their type.
            continue
        length = getattr(reflected["type"], "length", None)
        if isinstance(reflected["type"], sa.String) and length:
            bounded.append((column, length))
    if not bounded:
        return []
    longest = conn.execute(sa.select(*[sa.func.max(sa.func.char_length(stage.c[c.name]))
                                       for c, _ in bounded])).first()
    changes = []
    for (column, length), needed in zip(bounded, longest, strict=True):
        if needed and needed > length:
            new_type = dialect.widened_type(column, needed)
            conn.exec_driver_sql(dialect.widen_column_sql(conn, final, column, new_type))
            changes.append(f"widened {final.name}.{column.name} for a {needed}-character value")
    return changes


def replace_all(conn: sa.Connection, dialect: Dialect, tables: RunTables,
                pages_only: bool = False) -> int | None:
    """Inside the caller's transaction: make every final table hold its staged rows.
    ``pages_only``: leave out the probes' copies, which a run where no row moved
    (one pass, every key read once, every probe's key on a page too) holds only as
    surplus. Returns the number of rows now in the main table, or None where the
    driver does not say."""
    dialect.begin_swap(conn)
    rows = None
    for i, (final, stage, cols) in enumerate(tables.pairs):
        keep = stage.c[schema.PAGE_COLUMN] >= 0 if pages_only else None
        for statement in dialect.replace_statements(final, stage, cols, keep):
            result = conn.execute(statement)
            if i == 0 and isinstance(statement, sa.sql.dml.Insert):
                rows = result.rowcount
    return rows
