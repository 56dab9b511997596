"""Table definitions: final tables, per-run staging tables and iiqsync's own tables.

Final tables are built from the entity declaration plus the custom-field layout
of the run. Staging tables copy the final table's columns (no keys, all
nullable) and add the page number, so a page written twice replaces itself.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from .config import Settings
from .dialects import Dialect
from .entities import Entity

PAGE_COLUMN = "iiqsync_page"
STAGING_PREFIX = "iiqs_"

# Bookkeeping timestamps keep microseconds everywhere (MySQL drops them by default).
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

RUNS = "iiqsync_runs"
RUN_PAGES = "iiqsync_run_pages"
CUSTOM_FIELDS = "iiqsync_custom_fields"
LOCKS = "iiqsync_locks"


def internal_tables(metadata: sa.MetaData) -> dict[str, sa.Table]:
    """iiqsync's own bookkeeping tables."""
    runs = sa.Table(
        RUNS, metadata,
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("entity", sa.String(32), nullable=False, index=True),
        sa.Column("started", Timestamp, nullable=False),
        sa.Column("finished", Timestamp),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pages", sa.Integer()),
        sa.Column("page_size", sa.Integer()),
        sa.Column("total_rows", sa.Integer()),
        sa.Column("rows", sa.Integer()),
        sa.Column("skipped", sa.Integer()),
        sa.Column("moved", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("layout", sa.Text()),
        sa.Column("mode", sa.String(16)),
    )
    pages = sa.Table(
        RUN_PAGES, metadata,
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("page", sa.Integer(), primary_key=True),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("total_rows", sa.Integer()),
        sa.Column("deliveries", sa.Integer(), nullable=False, default=1),
        sa.Column("done", sa.Boolean(), nullable=False, default=False),
        sa.Column("finished", Timestamp),
    )
    custom_fields = sa.Table(
        CUSTOM_FIELDS, metadata,
        sa.Column("entity", sa.String(32), primary_key=True),
        sa.Column("custom_field_type_id", sa.String(36), primary_key=True),
        sa.Column("column_name", sa.String(128), nullable=False),
        sa.Column("display_name", sa.Text()),
        sa.Column("editor_type_id", sa.Integer()),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("first_seen", Timestamp, nullable=False),
        sa.Column("last_seen", Timestamp, nullable=False),
    )
    locks = sa.Table(
        LOCKS, metadata,
        sa.Column("entity", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("acquired", Timestamp, nullable=False),
        sa.Column("expires", Timestamp, nullable=False),
    )
    return {RUNS: runs, RUN_PAGES: pages, CUSTOM_FIELDS: custom_fields, LOCKS: locks}


def main_table(metadata: sa.MetaData, entity: Entity, settings: Settings,
               dialect: Dialect) -> sa.Table:
    """The final table of an entity's own columns."""
    cols = [
        sa.Column(c.name, dialect.column_type(c.kind, settings.string_length),
                  primary_key=(c.name == entity.key), nullable=(c.name != entity.key),
                  autoincrement=False)
        for c in entity.columns
    ]
    return sa.Table(settings.table_name(entity.table_key), metadata, *cols,
                    schema=settings.schema)


def custom_field_table(metadata: sa.MetaData, entity: Entity, settings: Settings,
                       dialect: Dialect, column_names: list[str]) -> sa.Table:
    """The final ``<Entity>CustomFields`` table: the entity's key, then one column per field."""
    key = entity.key_column
    cols = [sa.Column(key.name, dialect.column_type(key.kind, settings.string_length),
                      primary_key=True, autoincrement=False)]
    cols += [sa.Column(name, dialect.custom_field_type(settings.string_length))
             for name in column_names]
    return sa.Table(settings.table_name(entity.custom_fields.table_key), metadata, *cols,
                    schema=settings.schema)


def staging_name(run_id: str, suffix: str) -> str:
    """``iiqs_<run12>_<suffix>``: short enough for every dialect, owned by one run."""
    return f"{STAGING_PREFIX}{run_id[:12]}_{suffix}"


def staging_table(metadata: sa.MetaData, name: str, final: sa.Table, dialect: Dialect,
                  free_text: set[str] = frozenset()) -> sa.Table:
    """A staging copy of ``final``: same columns, no constraints, plus the page number.

    Free-text columns (``free_text``) are unbounded in staging, so an over-long value
    is staged whole and finalize can widen the final column instead of losing the
    value. Keys and GUIDs keep their type: they are grouped and compared."""
    cols = []
    for c in final.columns:
        col_type = c.type
        if c.name in free_text and dialect.string_column_limit(c) is not None:
            col_type = dialect.widened_type(c, 0)
        cols.append(sa.Column(c.name, col_type, nullable=True))
    cols.append(sa.Column(PAGE_COLUMN, sa.Integer(), nullable=False))
    return sa.Table(name, metadata, *cols, schema=final.schema,
                    prefixes=list(dialect.staging_prefixes))
