"""Turn IIQ items (parsed JSON) into row tuples in column order.

The rules of data fidelity live here: a missing property is NULL (IIQ omits
nulls); the zero GUID, ``0001-01-01T00:00:00`` and empty strings mean "not set"
and become NULL; timestamps keep their time of day (naive, as IIQ sends them);
GUIDs are lower case. NUL characters, which no target database stores in text,
are dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from . import entities as k

ZERO_GUID = "00000000-0000-0000-0000-000000000000"
_UNSET_DATE_PREFIX = "0001-01-01"


def _text(value):
    if value is None:
        return None
    if not isinstance(value, str):
        # A nested object or list where text was expected: keep it, as JSON.
        value = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value or None


def _guid(value):
    if not value or not isinstance(value, str):
        return None
    value = value.strip().lower()
    return None if value == ZERO_GUID or not value else value


def _datetime(value):
    if not value or not isinstance(value, str) or value.startswith(_UNSET_DATE_PREFIX):
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1]
    if "." in text:
        head, frac = text.split(".", 1)
        # Python reads at most 6 fraction digits reliably; IIQ sends 0 to 7.
        text = f"{head}.{frac[:6]}" if frac else head
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _int(value):
    if value is None or value == "" or isinstance(value, bool):
        return None if not isinstance(value, bool) else int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return None


def _float(value):
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _bool(value):
    if isinstance(value, bool):
        return value
    if value is None or value == "":
        return None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        return None
    return bool(value)


CONVERTERS: dict[str, Callable] = {
    k.GUID: _guid,
    k.TEXT: _text,
    k.LONGTEXT: _text,
    k.INT: _int,
    k.BOOL: _bool,
    k.FLOAT: _float,
    k.MONEY: _float,
    k.DATETIME: _datetime,
}


def _getter(path: tuple[str, ...]):
    if len(path) == 1:
        name = path[0]
        return lambda item: item.get(name)

    def get(item):
        value = item
        for part in path:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    return get


def row_maker(columns: Sequence[k.Column]) -> Callable[[dict], tuple]:
    """A function item → tuple of converted values, in ``columns`` order."""
    plan = [(_getter(c.path), CONVERTERS[c.kind]) for c in columns]

    def make(item: dict) -> tuple:
        return tuple(convert(get(item)) for get, convert in plan)

    return make


def custom_field_value(value) -> str | None:
    """Custom-field values arrive as strings (sometimes JSON text); keep them whole."""
    return _text(value)


def flatten_page(entity: k.Entity, items: Iterable[dict], cf_columns: Sequence[str] = ()):
    """Rows of the main table and of the custom-field table for one page.

    ``cf_columns`` lists the CustomFieldTypeIds (lower case) of the custom-field
    table's columns, in order. Items without a primary key are skipped and
    counted; an item that appears twice in a page is kept once (the last copy).

    Returns ``(rows, cf_rows, skipped, duplicates)``.
    """
    make = row_maker(entity.columns)
    key_index = next(i for i, c in enumerate(entity.columns) if c.name == entity.key)
    position = {type_id: i for i, type_id in enumerate(cf_columns)}
    rows: dict[str, tuple] = {}
    cf_rows: dict[str, tuple] = {}
    skipped = duplicates = 0
    for item in items:
        if not isinstance(item, dict):
            skipped += 1
            continue
        row = make(item)
        key = row[key_index]
        if key is None:
            skipped += 1
            continue
        if key in rows:
            duplicates += 1
        rows[key] = row
        if entity.custom_fields is not None:
            values: list = [None] * len(cf_columns)
            for cfv in item.get("CustomFieldValues") or ():
                if not isinstance(cfv, dict):
                    continue
                type_id = _guid(cfv.get("CustomFieldTypeId"))
                slot = position.get(type_id)
                if slot is not None:
                    values[slot] = custom_field_value(cfv.get("Value"))
            cf_rows[key] = (key, *values)
    return list(rows.values()), list(cf_rows.values()), skipped, duplicates
