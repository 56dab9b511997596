"""What a synced table should hold, worked out from the simulator's items by rules
written out here independently of iiqsync's own flattening code."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from iiqsync import entities as k

ZERO_GUID = "00000000-0000-0000-0000-000000000000"


def walk(item: dict, path: tuple[str, ...]):
    value = item
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def expected(kind: str, raw):
    """The value a column of ``kind`` must hold for the API value ``raw``."""
    if raw is None or raw == "":
        return None
    if kind == k.GUID:
        return None if raw.lower() == ZERO_GUID else raw.lower()
    if kind == k.DATETIME:
        if raw.startswith("0001-01-01"):
            return None
        head, _, frac = raw.partition(".")
        micros = int((frac + "000000")[:6]) if frac else 0
        return datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(microsecond=micros)
    if kind in (k.TEXT, k.LONGTEXT):
        return raw
    if kind == k.INT:
        return int(raw)
    if kind == k.BOOL:
        return bool(raw)
    if kind in (k.FLOAT, k.MONEY):
        return float(raw)
    raise AssertionError(kind)


def same(kind: str, want, got) -> bool:
    if want is None or got is None:
        return want is None and got is None
    if kind in (k.FLOAT, k.MONEY):
        return math.isclose(float(want), float(got), rel_tol=1e-9, abs_tol=1e-4)
    if kind == k.GUID:
        return str(got).lower() == want
    if kind == k.BOOL:
        return bool(got) == want
    if isinstance(got, Decimal):
        got = float(got)
    return want == got


def table(engine: sa.Engine, name: str, schema: str | None = None) -> sa.Table:
    return sa.Table(name, sa.MetaData(), autoload_with=engine, schema=schema)


def check_entity(engine: sa.Engine, entity: k.Entity, items: list[dict], table_name: str,
                 schema: str | None = None) -> int:
    """Assert that ``table_name`` holds exactly ``items``, every column. Returns the count."""
    t = table(engine, table_name, schema)
    with engine.connect() as conn:
        rows = {str(r._mapping[entity.key]).lower(): r._mapping for r in conn.execute(sa.select(t))}
    want_keys = {item[entity.key].lower() for item in items}
    assert set(rows) == want_keys, (
        f"{table_name}: {len(want_keys - set(rows))} missing, {len(set(rows) - want_keys)} extra")
    problems = []
    for item in items:
        row = rows[item[entity.key].lower()]
        for col in entity.columns:
            want = expected(col.kind, walk(item, col.path))
            got = row[col.name]
            if not same(col.kind, want, got):
                problems.append(f"{table_name}.{col.name} of {item[entity.key]}: want {want!r} got {got!r}")
    assert not problems, "\n".join(problems[:20]) + f"\n({len(problems)} differences)"
    return len(rows)


def check_custom_fields(engine: sa.Engine, entity: k.Entity, items: list[dict], table_name: str,
                        schema: str | None = None) -> int:
    """Assert every custom-field value landed in the column its type id maps to."""
    mapping_t = table(engine, "iiqsync_custom_fields", schema)
    with engine.connect() as conn:
        mapping = {r.custom_field_type_id: r.column_name
                   for r in conn.execute(sa.select(mapping_t).where(mapping_t.c.entity == entity.name))}
        t = table(engine, table_name, schema)
        rows = {str(r._mapping[entity.key]).lower(): r._mapping for r in conn.execute(sa.select(t))}
    assert len(rows) == len(items)
    checked = 0
    for item in items:
        row = rows[item[entity.key].lower()]
        given = {v["CustomFieldTypeId"].lower(): v.get("Value") for v in item.get("CustomFieldValues", [])}
        for type_id, column in mapping.items():
            want = given.get(type_id)
            want = None if want in (None, "") else want
            assert row[column] == want, f"{table_name}.{column} of {item[entity.key]}"
            checked += want is not None
    return checked
