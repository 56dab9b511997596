"""Turn IIQ items (parsed JSON) into row tuples in column order.

The rules of data fidelity live here: a missing property is NULL (IIQ omits
nulls); the zero GUID, ``0001-01-01T00:00:00`` and empty strings mean "not set"
and become NULL; timestamps keep their time of day (naive, as IIQ sends them);
GUIDs are lower case. NUL characters, which no target database stores in text,
are dropped.
"""

from __future__ import annotations

import functools
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
    try:
        # The common shapes (0 to 7 fraction digits, no zone) in one C call; the
        # 7th digit is dropped, as below.
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            return parsed
    except ValueError:
        pass
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


# The same rules as _text and _guid, written as expressions for the common case so a
# row costs no call per plain value; anything unusual goes through the function.
_INLINE = {
    k.TEXT: "(v if (v := {get}).__class__ is str and v and '\\x00' not in v "
            "else None if v is None else _text(v))",
    k.LONGTEXT: "(v if (v := {get}).__class__ is str and v and '\\x00' not in v "
                "else None if v is None else _text(v))",
    k.GUID: "((g if (g := v.strip().lower()) and g != _ZERO else None) "
            "if (v := {get}).__class__ is str else None if v is None else _guid(v))",
}


def row_maker(columns: Sequence[k.Column]) -> Callable[[dict], tuple]:
    """A function item → tuple of converted values, in ``columns`` order."""
    return _row_maker(tuple(columns))


@functools.lru_cache(maxsize=64)
def _row_maker(columns: tuple[k.Column, ...]) -> Callable[[dict], tuple]:
    """Build :func:`row_maker`'s function (once per column list).

    Pages are flattened row by row, so the function is generated once per column
    list as one straight-line expression per column (no generator, getter or
    converter call per plain value). Only entity declarations reach the generated
    text, never data from IIQ."""
    namespace: dict = {"_text": _text, "_guid": _guid, "_ZERO": ZERO_GUID}
    parts = []
    for i, column in enumerate(columns):
        get = f"item.get({column.path[0]!r})"
        for depth, name in enumerate(column.path[1:]):
            get = f"(m{depth}.get({name!r}) if isinstance(m{depth} := {get}, dict) else None)"
        if column.kind in _INLINE:
            parts.append(_INLINE[column.kind].format(get=get))
        else:
            # Every converter maps a missing value to NULL; only present ones are called.
            namespace[f"_c{i}"] = CONVERTERS[column.kind]
            parts.append(f"(None if (v := {get}) is None else _c{i}(v))")
    source = "def make(item):\n    return (" + ", ".join(parts) + ",)\n"
    exec(compile(source, f"<row_maker {len(columns)} columns>", "exec"), namespace)
    return namespace["make"]


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
