"""The custom-field layout of a run: which column each custom field lands in.

Columns are keyed by ``CustomFieldTypeId`` in ``iiqsync_custom_fields``: a field
keeps its column when renamed in IIQ, a new field gets a new column, a deleted
field's column stays (NULL from then on). Names are allocated at plan time from
the mapping and the real catalog, and written to the mapping at finalize, in the
same transaction as the swap.
"""

from __future__ import annotations

import sqlalchemy as sa

from . import schema
from .client import FieldDefinition
from .entities import Entity
from .identifiers import allocate
from .runs import Bookkeeping, utcnow


def plan_layout(conn: sa.Connection, books: Bookkeeping, entity: Entity,
                definitions: list[FieldDefinition], existing_columns: set[str],
                max_identifier_bytes: int) -> list[dict]:
    """One entry per defined field, in a stable order: known fields first (in the
    order their columns were made), then new fields in definition order."""
    mapped = {row.custom_field_type_id: row for row in books.mapping(conn, entity.name)}
    taken = {entity.key, schema.PAGE_COLUMN} | {row.column_name for row in mapped.values()}
    # Columns of the table that no field owns: the old tool's (named as iiqsync names
    # them, from the field's name), or added by a run that failed before its swap
    # recorded who owns them. A new field whose column name is one of them takes it
    # over, rather than add MACAddress_2 beside a MACAddress that then stays empty.
    unowned = {c.lower(): c for c in existing_columns if c.lower() not in
               {t.lower() for t in taken}}
    known, new = [], []
    for field in definitions:
        row = mapped.get(field.type_id)
        entry = {"type_id": field.type_id, "name": field.name, "editor": field.editor_type}
        if row is not None:
            entry["column"] = row.column_name
            entry["new"] = False
            known.append((row.first_seen, row.column_name, entry))
        else:
            column = allocate(field.name, f"CustomField_{field.type_id[:8]}", taken,
                              max_identifier_bytes)
            entry["column"] = unowned.pop(column.lower(), column)  # the table's own spelling
            entry["new"] = True
            new.append(entry)
    known.sort(key=lambda t: (t[0], t[1]))
    return [e for _, _, e in known] + new


def all_columns(conn: sa.Connection, books: Bookkeeping, entity: Entity,
                layout: list[dict]) -> list[str]:
    """Every custom-field column of the final table: the layout's plus those of
    fields no longer defined (kept, additive)."""
    columns = [e["column"] for e in layout]
    seen = set(columns)
    for row in sorted(books.mapping(conn, entity.name), key=lambda r: (r.first_seen, r.column_name)):
        if row.column_name not in seen:
            columns.append(row.column_name)
            seen.add(row.column_name)
    return columns


def record_mapping(conn: sa.Connection, books: Bookkeeping, entity: Entity,
                   layout: list[dict]) -> None:
    """Write the layout into the mapping table (inside the swap transaction)."""
    table = books.custom_fields
    now = utcnow()
    in_layout = {e["type_id"] for e in layout}
    existing = {row.custom_field_type_id for row in books.mapping(conn, entity.name)}
    for entry in layout:
        # A NUL, which no target database stores in text, is the one thing dropped.
        name = entry["name"].replace("\x00", "") if entry["name"] else entry["name"]
        values = dict(display_name=name, editor_type_id=entry["editor"], active=True,
                      last_seen=now)
        if entry["type_id"] in existing:
            conn.execute(table.update()
                         .where(table.c.entity == entity.name,
                                table.c.custom_field_type_id == entry["type_id"])
                         .values(**values))
        else:
            conn.execute(table.insert().values(entity=entity.name,
                                               custom_field_type_id=entry["type_id"],
                                               column_name=entry["column"], first_seen=now,
                                               **values))
    gone = existing - in_layout
    if gone:
        conn.execute(table.update()
                     .where(table.c.entity == entity.name,
                            table.c.custom_field_type_id.in_(sorted(gone)))
                     .values(active=False))
