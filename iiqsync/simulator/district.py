"""A deterministic, lazily generated IIQ district that can drift while it is served.

Items are never stored: item ``i`` of an entity is a pure function of (seed, entity,
i, edit version). Keys are GUIDs whose first 13 hex digits are the generation index
and a sub-slot, so ascending key order is generation order and a page sorted by key
is found in O(log n + page size). Runtime drift is a small sorted overlay per entity:
deleted base indexes and inserted keys (which take free sub-slots, so they sort
between existing rows), plus an edit-version map. The overlay is copy-on-write, so a
reader works on a consistent snapshot without holding the lock.

Truth API for tests: :meth:`District.items`, :meth:`District.count`,
:meth:`District.keys`, :meth:`District.get`, :meth:`District.custom_field_definitions`.
"""

from __future__ import annotations

import heapq
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from random import Random
from typing import NamedTuple

import orjson

from . import pools as P
from .items import (
    BASE_HI,
    BASE_LO,
    ENTITY_NAMES,
    KEY_FIELDS,
    FieldDef,
    ItemFactory,
    guid,
    hseed,
    text_salt,
)

CUSTOM_FIELD_ENTITIES = ("users", "assets", "tickets")

EDITOR_TYPES = {
    "none": 0, "text": 1, "multilinetext": 2, "richtext": 3, "number": 4, "numberrange": 5,
    "date": 6, "daterange": 7, "onoff": 8, "select": 9, "multiselect": 10, "email": 11,
    "phone": 12, "address": 13, "fileupload": 14, "scheduleselector": 15, "information": 16,
    "confirmationmessage": 17, "ipaddress": 18, "containsprotectedstudentinformation": 19,
    "detailssection": 20, "iiquser": 21, "iiqlocation": 22, "iiqasset": 23, "iiqticket": 24,
    "iiqchangerequest": 25, "assignsurvey": 26, "webhook": 27, "notificationtoggle": 28,
    "iiqmodel": 29, "assetfundingsource": 30, "assetstatus": 31, "iiqagent": 32,
    "iiqteam": 33, "iiqsla": 34,
}
SELECT_EDITORS = (9, 10, 31)

DEFAULT_CUSTOM_FIELDS: dict[str, list] = {
    "assets": [
        {"name": "MAC Address", "editor_type": "Text", "fill_rate": 0.7},
        {"name": "Purchase Order", "editor_type": "Text", "fill_rate": 0.5},
        {"name": "Insurance Plan", "editor_type": "Select",
         "options": ["Basic Coverage", "Full Coverage", "Declined"], "fill_rate": 0.4},
        {"name": "Date Issued", "editor_type": "Date", "fill_rate": 0.6},
    ],
    "users": [
        {"name": "Student ID", "editor_type": "Number", "fill_rate": 0.8},
        {"name": "Parent Email", "editor_type": "Email", "fill_rate": 0.5},
        {"name": "Device Agreement Signed", "editor_type": "OnOff", "fill_rate": 0.6,
         "is_hidden": True},
    ],
    "tickets": [
        {"name": "Asset Tag #", "editor_type": "Text", "fill_rate": 0.4},
        {"name": "Damage Type", "editor_type": "MultiSelect",
         "options": ["Cracked Screen", "Keyboard", "Liquid Damage", "Charging Port", "Other"],
         "fill_rate": 0.3},
        {"name": "Building Contact", "editor_type": "IiqUser", "fill_rate": 0.25},
    ],
}

DEFAULT_SIZES = {"users": 250, "assets": 400, "locations": 12, "rooms": 60, "teams": 8,
                 "tickets": 300}

DRIFT_OPS = ("insert", "delete", "edit")


class SortNotSupported(ValueError):
    """A sort on a non-key field was asked of a list too big to sort in memory."""


def editor_type_id(value) -> int:
    """An EditorType as its int: accepts 1, "1", "Text", "text", "MultiSelect"…"""
    if isinstance(value, bool):
        raise ValueError(f"bad editor type {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return EDITOR_TYPES[text.lower().replace(" ", "").replace("_", "")]
    except KeyError:
        raise ValueError(f"unknown editor type {value!r}; one of {', '.join(EDITOR_TYPES)}") from None


def check_entity(entity: str) -> str:
    name = str(entity).lower()
    if name not in ENTITY_NAMES:
        raise KeyError(f"unknown entity {entity!r}; choose from {', '.join(ENTITY_NAMES)}")
    return name


class _Overlay(NamedTuple):
    """Immutable drift state of one entity."""

    deleted: tuple  # sorted deleted base indexes
    dset: frozenset
    inserted: tuple  # sorted ordinals of inserted items
    parts: dict  # assets only: type index -> (deleted, inserted)
    serial: dict  # inserted ordinal -> serial (its item index is n_base + serial)
    versions: dict  # ordinal -> edit serial
    hi: int  # exclusive bound of the index space in use
    next_serial: int
    next_edit: int
    gen: int


class _AllBase:
    __slots__ = ("n",)

    def __init__(self, n: int):
        self.n = n

    def count(self, x: int) -> int:
        return x if x < self.n else self.n

    def iter(self, x: int):
        return iter(range(x, self.n))


class _TypeBase:
    __slots__ = ("f", "ti")

    def __init__(self, factory: ItemFactory, ti: int):
        self.f = factory
        self.ti = ti

    def count(self, x: int) -> int:
        return self.f.type_count_below(self.ti, x)

    def iter(self, x: int):
        return self.f.type_iter(self.ti, x)


@dataclass
class _Drift:
    every: int = 0
    rows: int = 1
    ops: tuple = DRIFT_OPS
    entities: tuple | None = None
    requests: int = 0
    log: list = field(default_factory=list)


class District:
    """A generated district. Entity names: users, assets, locations, rooms, teams, tickets.

    ``custom_fields`` maps users/assets/tickets to a list of field specs; an entity
    not in the dict keeps the default fields, ``[]`` gives it none. A spec is a name,
    a ``(name, editor_type[, options])`` tuple, or a dict with ``name``,
    ``editor_type`` (int or name such as "Text", "Select"), and optional ``options``
    (list of names), ``fill_rate`` (share of items with a value, default 0.6),
    ``is_hidden``, ``is_required``, ``is_read_only``, ``type_id``.
    """

    def __init__(self, seed: int = 1, users: int = 250, assets: int = 400,
                 locations: int = 12, rooms: int = 60, teams: int = 8, tickets: int = 300,
                 custom_fields: dict | None = None, sort_limit: int = 20000):
        sizes = {"users": users, "assets": assets, "locations": locations, "rooms": rooms,
                 "teams": teams, "tickets": tickets}
        for name, n in sizes.items():
            if not isinstance(n, int) or n < 0 or n >= 1 << 31:
                raise ValueError(f"{name} must be an int in [0, 2**31), got {n!r}")
        self.seed = int(seed)
        self.sizes = sizes
        self.sort_limit = sort_limit
        self.factory = ItemFactory(self.seed, sizes)
        self._lock = threading.RLock()
        self._rng = Random(hseed(self.seed, 0xD21F7))
        self._ov: dict[str, _Overlay] = {}
        for e in ENTITY_NAMES:
            parts = {ti: ((), ()) for ti in range(len(P.ASSET_TYPES))} if e == "assets" else {}
            self._ov[e] = _Overlay((), frozenset(), (), parts, {}, {}, sizes[e], 0, 1, 0)
        self._cf: dict[str, tuple[FieldDef, ...]] = {}
        self._cf_gen = 0
        self._cf_counter = dict.fromkeys(CUSTOM_FIELD_ENTITIES, 0)
        specs = dict(DEFAULT_CUSTOM_FIELDS)
        for key, value in (custom_fields or {}).items():
            specs[check_entity(key)] = list(value or [])
        for e in CUSTOM_FIELD_ENTITIES:
            self._cf[e] = ()
            for spec in specs.get(e, []):
                self._add_field(e, spec)
        for key in specs:
            if key not in CUSTOM_FIELD_ENTITIES:
                raise ValueError(f"{key} has no custom fields; only {CUSTOM_FIELD_ENTITIES}")
        self._drift = _Drift()
        self._sorted_cache: dict = {}
        self._overrides: dict[str, dict] = {}  # entity -> {key or None: (values, remove)}
        self._odd_serial = 0  # bumped by override() and serve_extras()
        self._extras: dict[str, tuple[int, int]] = {}  # entity -> (duplicates, keyless)

    # -- basic facts ------------------------------------------------------------
    @property
    def site_id(self) -> str:
        return self.factory.site_id

    @property
    def site_name(self) -> str:
        return self.factory.site_name

    def key_field(self, entity: str) -> str:
        return KEY_FIELDS[check_entity(entity)]

    def asset_types(self) -> list[dict]:
        """The asset types items are spread over: ``[{"AssetTypeId", "Name"}]``."""
        return [{"AssetTypeId": t[0], "Name": t[1]} for t in P.ASSET_TYPES]

    def generation(self, entity: str) -> int:
        """Changes whenever rows of ``entity`` are inserted, deleted or edited."""
        return self._ov[check_entity(entity)].gen

    @property
    def drifting(self) -> bool:
        """True while the drift knob changes rows as lists are read."""
        return self._drift.every > 0

    def serving_state(self, entity: str) -> tuple:
        """Changes whenever anything :meth:`slice` serves for ``entity`` may change:
        its rows, any custom field, or the odd-item settings."""
        with self._lock:
            return self._ov[check_entity(entity)].gen, self._cf_gen, self._odd_serial

    # -- reading -----------------------------------------------------------------
    def _views(self, entity: str, ov: _Overlay, asset_types) -> list:
        n = self.sizes[entity]
        if entity != "assets" or asset_types is None:
            return [(_AllBase(n), ov.deleted, ov.inserted)]
        wanted = {str(t).strip().lower() for t in asset_types}
        tis = [ti for ti, t in enumerate(P.ASSET_TYPES) if t[0] in wanted]
        if len(tis) == len(P.ASSET_TYPES):
            return [(_AllBase(n), ov.deleted, ov.inserted)]
        return [(_TypeBase(self.factory, ti), *ov.parts[ti]) for ti in tis]

    @staticmethod
    def _total(views, ov: _Overlay) -> int:
        return sum(b.count(ov.hi) - len(d) + len(i) for b, d, i in views)

    def _select(self, entity: str, ov: _Overlay, views, start: int, k: int) -> list[int]:
        """Ordinals of ranks [start, start + k) in ascending key order."""
        if k <= 0 or not views:
            return []

        def below(x: int) -> int:
            xo = x << 16
            return sum(b.count(x) - bisect_left(d, x) + bisect_left(i, xo) for b, d, i in views)

        lo, hi = 0, ov.hi
        while lo < hi:
            mid = (lo + hi + 1) >> 1
            if below(mid) <= start:
                lo = mid
            else:
                hi = mid - 1
        x = lo
        skip = start - below(x)
        dset = ov.dset
        base_ord = self.factory.base_ord
        streams = []
        for b, _d, ins in views:
            streams.append(base_ord(entity, i) for i in b.iter(x) if i not in dset)
            if ins:
                streams.append(islice(ins, bisect_left(ins, x << 16), None))
        merged = streams[0] if len(streams) == 1 else heapq.merge(*streams)
        return list(islice(merged, skip, skip + k))

    def _materialise(self, entity: str, ov: _Overlay, ords: list[int], defs) -> list[dict]:
        n = self.sizes[entity]
        make = self.factory.make
        serial = ov.serial
        versions = ov.versions
        out = []
        for o in ords:
            s = serial.get(o)
            idx = (o >> 16) if s is None else n + s
            out.append(make(entity, o, idx, versions.get(o, 0), defs))
        overrides = self._overrides.get(entity)
        if overrides:
            out = [self._overridden(entity, item, overrides) for item in out]
        return out

    @staticmethod
    def _overridden(entity: str, item: dict, overrides: dict) -> dict:
        changes = [c for c in (overrides.get(None), overrides.get(item.get(KEY_FIELDS[entity])))
                   if c is not None]
        if not changes:
            return item
        item = dict(item)
        for values, remove in changes:
            item.update(values)
            for name in remove:
                item.pop(name, None)
        return item

    def _snapshot(self, entity: str):
        with self._lock:
            return self._ov[entity], self._cf.get(entity, ()), self._cf_gen

    def count(self, entity: str, asset_types: Iterable[str] | None = None) -> int:
        """How many items the list holds now (with an asset-type filter for assets)."""
        entity = check_entity(entity)
        ov = self._ov[entity]
        return self._total(self._views(entity, ov, asset_types), ov)

    def slice(self, entity: str, offset: int, limit: int, *, descending: bool = False,
              sort: str | tuple | None = None, asset_types: Iterable[str] | None = None,
              ) -> tuple[int, list[dict]]:
        """``(total, items)``: up to ``limit`` items from rank ``offset``.

        Sorted by the primary key unless ``sort`` names another field (a top-level
        name or a dotted/tuple path); that is allowed only while the list holds at
        most ``sort_limit`` items (else :class:`SortNotSupported`). Rows with equal
        sort values keep key order."""
        entity = check_entity(entity)
        ov, defs, cf_gen = self._snapshot(entity)
        views = self._views(entity, ov, asset_types)
        total = self._total(views, ov)
        offset = max(0, offset)
        k = max(0, min(limit, total - offset))
        path = _sort_path(sort)
        if path is None or path == (KEY_FIELDS[entity],):
            if descending:
                ords = self._select(entity, ov, views, total - offset - k, k)[::-1]
            else:
                ords = self._select(entity, ov, views, offset, k)
        else:
            order = self._sorted_order(entity, ov, defs, cf_gen, views, total, path,
                                       descending, asset_types)
            ords = order[offset:offset + k]
        items = self._materialise(entity, ov, ords, defs)
        extras = self._extras.get(entity)
        if extras and offset == 0 and items and not descending:
            duplicates, keyless = extras
            items += [orjson.loads(orjson.dumps(items[0])) for _ in range(duplicates)]
            for i in range(keyless):
                item = orjson.loads(orjson.dumps(items[min(i + 1, len(items) - 1)]))
                item.pop(KEY_FIELDS[entity], None)
                items.append(item)
        return total, items

    def page(self, entity: str, page: int = 0, size: int = 100, **kw) -> tuple[int, list[dict]]:
        """``(total, items)`` of page ``page`` (0-based) of ``size`` items."""
        return self.slice(entity, page * size, size, **kw)

    def _sorted_order(self, entity, ov, defs, cf_gen, views, total, path, descending,
                      asset_types) -> list[int]:
        if total > self.sort_limit:
            raise SortNotSupported(
                f"sorting {entity} by {'.'.join(path)} is only simulated for lists of at "
                f"most {self.sort_limit} rows ({total} now); sort by {KEY_FIELDS[entity]}")
        types_key = None if asset_types is None else tuple(sorted(str(t).lower() for t in asset_types))
        cache_key = (entity, ov.gen, cf_gen, path, descending, types_key)
        cached = self._sorted_cache.get(cache_key)
        if cached is not None:
            return cached
        ords = self._select(entity, ov, views, 0, total)
        items = self._materialise(entity, ov, ords, defs)
        keyed = []
        for o, item in zip(ords, items, strict=True):
            v = item
            for part in path:
                v = v.get(part) if isinstance(v, dict) else None
            if isinstance(v, (dict, list)):
                v = orjson.dumps(v).decode()
            keyed.append((v is not None, _sortable(v), o))
        if descending:
            # A stable reverse sort keeps ties in ascending key order; nulls go last.
            keyed.sort(key=lambda t: (t[0], t[1]), reverse=True)
        else:
            keyed.sort()
        order = [o for _present, _v, o in keyed]
        with self._lock:
            if len(self._sorted_cache) > 32:
                self._sorted_cache.clear()
            self._sorted_cache[cache_key] = order
        return order

    def keys(self, entity: str, asset_types: Iterable[str] | None = None) -> Iterator[str]:
        """Every current key in ascending order (no items built)."""
        entity = check_entity(entity)
        ov = self._ov[entity]
        views = self._views(entity, ov, asset_types)
        key = self.factory.key
        total = self._total(views, ov)
        for start in range(0, total, 5000):
            for o in self._select(entity, ov, views, start, 5000):
                yield key(entity, o)

    def items(self, entity: str, asset_types: Iterable[str] | None = None) -> Iterator[dict]:
        """Every current item, in key order, exactly as the server would serve it
        (fresh dicts, safe to modify). Reads one snapshot: drift during iteration is
        not seen."""
        entity = check_entity(entity)
        ov, defs, _ = self._snapshot(entity)
        views = self._views(entity, ov, asset_types)
        total = self._total(views, ov)
        for start in range(0, total, 1000):
            ords = self._select(entity, ov, views, start, 1000)
            for item in self._materialise(entity, ov, ords, defs):
                yield orjson.loads(orjson.dumps(item))

    def get(self, entity: str, key: str) -> dict | None:
        """The current item with this key, or None."""
        entity = check_entity(entity)
        ov, defs, _ = self._snapshot(entity)
        o = self._live_ordinal(entity, ov, key)
        if o is None:
            return None
        return orjson.loads(orjson.dumps(self._materialise(entity, ov, [o], defs)[0]))

    def _live_ordinal(self, entity: str, ov: _Overlay, key: str) -> int | None:
        o = self.factory.parse_key(entity, key)
        if o is None:
            return None
        if o in ov.serial:
            return o
        i, sub = o >> 16, o & 0xFFFF
        if i < self.sizes[entity] and sub == self.factory.base_sub(entity, i) and i not in ov.dset:
            return o
        return None

    # -- drift -----------------------------------------------------------------------
    def _type_of(self, entity: str, ov: _Overlay, o: int) -> int:
        s = ov.serial.get(o)
        idx = (o >> 16) if s is None else self.sizes[entity] + s
        return self.factory.asset_type_of(idx)

    def insert(self, entity: str, n: int = 1, where: str = "random") -> list[str]:
        """Add ``n`` new rows; returns their keys. ``where``: "random" (between
        existing rows), "start" (before every row) or "end" (after every row)."""
        entity = check_entity(entity)
        if where not in ("random", "start", "end"):
            raise ValueError("where must be 'random', 'start' or 'end'")
        with self._lock:
            ov = self._ov[entity]
            nb = self.sizes[entity]
            rng = self._rng
            taken = set(ov.serial)
            serial = dict(ov.serial)
            hi = ov.hi
            new = []
            for j in range(n):
                while True:
                    if where == "end" or (where == "random" and nb == 0):
                        i, sub = hi, BASE_HI + rng.randrange(0x10000 - BASE_HI)
                        hi += 1
                    elif where == "start":
                        i, sub = 0, 1 + rng.randrange(BASE_LO - 1)
                    else:
                        i = rng.randrange(nb)
                        if rng.random() < 0.5:
                            sub = 1 + rng.randrange(BASE_LO - 1)
                        else:
                            sub = BASE_HI + rng.randrange(0x10000 - BASE_HI)
                    o = (i << 16) | sub
                    if o not in taken:
                        break
                taken.add(o)
                serial[o] = ov.next_serial + j
                new.append(o)
            inserted = tuple(sorted(ov.inserted + tuple(new)))
            parts = ov.parts
            if entity == "assets":
                parts = dict(parts)
                by_type: dict[int, list] = {}
                for o in new:
                    by_type.setdefault(self.factory.asset_type_of(nb + serial[o]), []).append(o)
                for ti, os_ in by_type.items():
                    d, ins = parts[ti]
                    parts[ti] = (d, tuple(sorted(ins + tuple(os_))))
            self._ov[entity] = ov._replace(
                inserted=inserted, parts=parts, serial=serial, hi=max(hi, ov.hi),
                next_serial=ov.next_serial + n, gen=ov.gen + 1)
            return [self.factory.key(entity, o) for o in new]

    def _pick_live(self, entity: str, ov: _Overlay, n: int) -> list[int]:
        views = self._views(entity, ov, None)
        total = self._total(views, ov)
        ranks = self._rng.sample(range(total), min(n, total))
        return [self._select(entity, ov, views, r, 1)[0] for r in ranks]

    def _resolve(self, entity: str, ov: _Overlay, keys_or_n) -> list[int]:
        if isinstance(keys_or_n, int) and not isinstance(keys_or_n, bool):
            return self._pick_live(entity, ov, keys_or_n)
        if isinstance(keys_or_n, str):
            keys_or_n = [keys_or_n]
        out = []
        seen = set()
        for key in keys_or_n:
            o = self._live_ordinal(entity, ov, key)
            if o is not None and o not in seen:
                seen.add(o)
                out.append(o)
        return out

    def delete(self, entity: str, keys_or_n: int | str | Iterable[str] = 1) -> list[str]:
        """Remove rows: ``n`` random live rows, or the given keys (unknown or already
        deleted keys are skipped). Returns the keys removed."""
        entity = check_entity(entity)
        with self._lock:
            ov = self._ov[entity]
            ords = self._resolve(entity, ov, keys_or_n)
            if not ords:
                return []
            base = sorted(o >> 16 for o in ords if o not in ov.serial)
            gone = {o for o in ords if o in ov.serial}
            deleted = tuple(sorted(ov.deleted + tuple(base)))
            inserted = tuple(o for o in ov.inserted if o not in gone) if gone else ov.inserted
            serial = {o: s for o, s in ov.serial.items() if o not in gone} if gone else ov.serial
            versions = ov.versions
            if any(o in versions for o in gone):
                versions = {o: v for o, v in versions.items() if o not in gone}
            parts = ov.parts
            if entity == "assets":
                parts = dict(parts)
                touched: dict[int, list] = {}
                for o in ords:
                    touched.setdefault(self._type_of(entity, ov, o), []).append(o)
                for ti, os_ in touched.items():
                    d, ins = parts[ti]
                    more = tuple(o >> 16 for o in os_ if o not in gone)
                    if more:
                        d = tuple(sorted(d + more))
                    if gone:
                        ins = tuple(x for x in ins if x not in gone)
                    parts[ti] = (d, ins)
            self._ov[entity] = ov._replace(
                deleted=deleted, dset=ov.dset.union(base), inserted=inserted, parts=parts,
                serial=serial, versions=versions, gen=ov.gen + 1)
            return [self.factory.key(entity, o) for o in ords]

    def edit(self, entity: str, keys_or_n: int | str | Iterable[str] = 1) -> list[str]:
        """Change rows in place (new ModifiedDate and some field values): ``n`` random
        live rows or the given keys. Returns the keys edited."""
        entity = check_entity(entity)
        with self._lock:
            ov = self._ov[entity]
            ords = self._resolve(entity, ov, keys_or_n)
            if not ords:
                return []
            versions = dict(ov.versions)
            v = ov.next_edit
            for o in ords:
                versions[o] = v
                v += 1
            self._ov[entity] = ov._replace(versions=versions, next_edit=v, gen=ov.gen + 1)
            return [self.factory.key(entity, o) for o in ords]

    def set_drift(self, every: int = 0, rows: int = 1, ops: Iterable[str] = DRIFT_OPS,
                  entities: Iterable[str] | None = None) -> None:
        """Drift while serving: every ``every`` list requests (0 = off), apply one of
        ``ops`` to ``rows`` rows of the requested entity (or of each of ``entities``)."""
        ops = tuple(ops)
        for op in ops:
            if op not in DRIFT_OPS:
                raise ValueError(f"unknown drift op {op!r}; one of {DRIFT_OPS}")
        with self._lock:
            self._drift.every = max(0, int(every))
            self._drift.rows = max(0, int(rows))
            self._drift.ops = ops or DRIFT_OPS
            self._drift.entities = (
                None if entities is None else tuple(check_entity(e) for e in entities))
            self._drift.requests = 0

    @property
    def drift_log(self) -> list[tuple[str, str, list[str]]]:
        """``(op, entity, keys)`` for every drift applied by :meth:`on_request`."""
        with self._lock:
            return list(self._drift.log)

    def on_request(self, entity: str) -> list[tuple[str, str, list[str]]]:
        """Count one list request; apply the drift knob when it is due."""
        with self._lock:
            dr = self._drift
            if dr.every <= 0:
                return []
            dr.requests += 1
            if dr.requests % dr.every:
                return []
            targets = dr.entities if dr.entities is not None else (check_entity(entity),)
            done = []
            for e in targets:
                op = dr.ops[self._rng.randrange(len(dr.ops))]
                if op == "insert":
                    keys = self.insert(e, dr.rows)
                elif op == "delete":
                    keys = self.delete(e, dr.rows)
                else:
                    keys = self.edit(e, dr.rows)
                done.append((op, e, keys))
            dr.log.extend(done)
            del dr.log[:-1000]
            return done

    # -- odd items (for tests) ---------------------------------------------------------
    def override(self, entity: str, key: str | None = None, values: dict | None = None,
                 remove: Iterable[str] = ()) -> None:
        """Serve items changed: top-level fields in ``values`` replaced (e.g. a value far
        longer than any column), fields in ``remove`` left out (e.g. ones the spec
        calls required). For the item ``key``, or every item when ``key`` is None.
        The truth API (:meth:`items`, :meth:`get`) shows the same items."""
        entity = check_entity(entity)
        with self._lock:
            current = dict(self._overrides.get(entity, {}))
            current[None if key is None else str(key).lower()] = (dict(values or {}), tuple(remove))
            self._overrides[entity] = current
            self._odd_serial += 1

    def serve_extras(self, entity: str, duplicates: int = 0, keyless: int = 0) -> None:
        """The first page of ``entity`` (rank 0) also carries ``duplicates`` copies of
        its first item and ``keyless`` copies of other items without their key, as a
        faulty server might send. TotalRows and the truth API are unchanged."""
        entity = check_entity(entity)
        with self._lock:
            self._extras[entity] = (max(0, int(duplicates)), max(0, int(keyless)))
            self._odd_serial += 1

    # -- custom fields --------------------------------------------------------------
    def _cf_entity(self, entity: str) -> str:
        entity = check_entity(entity)
        if entity not in CUSTOM_FIELD_ENTITIES:
            raise KeyError(f"{entity} has no custom fields; only {', '.join(CUSTOM_FIELD_ENTITIES)}")
        return entity

    def _add_field(self, entity: str, spec) -> FieldDef:
        if isinstance(spec, str):
            spec = {"name": spec}
        elif isinstance(spec, (tuple, list)):
            spec = dict(zip(("name", "editor_type", "options")[:len(spec)], spec, strict=True))
        else:
            spec = dict(spec)
        unknown = set(spec) - {"name", "editor_type", "options", "fill_rate", "is_hidden",
                               "is_required", "is_read_only", "type_id"}
        if unknown:
            raise ValueError(f"unknown custom field keys {sorted(unknown)}")
        pos = self._cf_counter[entity]
        self._cf_counter[entity] = pos + 1
        et = editor_type_id(spec.get("editor_type", 1))
        es = text_salt(entity)
        type_id = str(spec.get("type_id") or guid(hseed(self.seed, es, 0xCF7, pos))).lower()
        if any(d.type_id == type_id for d in self._cf[entity]):
            raise ValueError(f"custom field type {type_id} already exists on {entity}")
        name = spec.get("name")
        name = "" if name is None else str(name)
        d = FieldDef(
            type_id=type_id,
            field_id=guid(hseed(self.seed, es, 0xCF1, pos)),
            name=name,
            editor_type=et,
            fill=float(spec.get("fill_rate", 0.6)),
            is_hidden=bool(spec.get("is_hidden", False)),
            is_required=bool(spec.get("is_required", False)),
            is_read_only=bool(spec.get("is_read_only", False)),
            options=self._options(type_id, spec.get("options"), et),
            display_order=pos,
            salt=hseed(text_salt(type_id), 0x5A17),
            created=f"20{18 + pos % 8}-0{1 + pos % 9}-1{pos % 10}T08:30:00.{pos % 10 + 1}",
        )
        self._cf[entity] = self._cf[entity] + (d,)
        self._cf_gen += 1
        return d

    def _options(self, type_id: str, names, et: int) -> tuple:
        if names is None:
            if et not in SELECT_EDITORS:
                return ()
            names = [f"Option {i + 1}" for i in range(4)]
        salt = text_salt(type_id)
        return tuple((guid(hseed(self.seed, salt, 0x0F7, i)), str(n)) for i, n in enumerate(names))

    def add_custom_field(self, entity: str, name: str, editor_type: int | str = "Text",
                         **options) -> str:
        """Define a new custom field; returns its CustomFieldTypeId. Keyword options:
        ``options`` (pick-list names), ``fill_rate``, ``is_hidden``, ``is_required``,
        ``is_read_only``, ``type_id``. Any name is accepted (blank, duplicate, hostile)."""
        entity = self._cf_entity(entity)
        with self._lock:
            return self._add_field(entity, {"name": name, "editor_type": editor_type,
                                            **options}).type_id

    def _replace_field(self, entity: str, type_id: str, **changes) -> None:
        entity = self._cf_entity(entity)
        type_id = str(type_id).lower()
        with self._lock:
            defs = list(self._cf[entity])
            for i, d in enumerate(defs):
                if d.type_id == type_id:
                    defs[i] = d._replace(**changes)
                    break
            else:
                raise KeyError(f"no custom field {type_id} on {entity}")
            self._cf[entity] = tuple(defs)
            self._cf_gen += 1

    def rename_custom_field(self, entity: str, type_id: str, name: str) -> None:
        """Give a field a new display name (its CustomFieldTypeId stays)."""
        self._replace_field(entity, type_id, name="" if name is None else str(name))

    def set_custom_field_editor_type(self, entity: str, type_id: str,
                                     editor_type: int | str, options=None) -> None:
        """Change a field's editor type (values are then generated for the new type)."""
        et = editor_type_id(editor_type)
        entity = self._cf_entity(entity)
        type_id = str(type_id).lower()
        with self._lock:
            current = next((d for d in self._cf[entity] if d.type_id == type_id), None)
            if current is None:
                raise KeyError(f"no custom field {type_id} on {entity}")
            opts = self._options(type_id, options, et) if options is not None or not current.options \
                else current.options
            self._replace_field(entity, type_id, editor_type=et, options=opts)

    def update_custom_field(self, entity: str, type_id: str, **changes) -> None:
        """Change other attributes: ``fill_rate``, ``is_hidden``, ``is_required``,
        ``is_read_only``, ``options``."""
        mapping = {"fill_rate": "fill", "is_hidden": "is_hidden", "is_required": "is_required",
                   "is_read_only": "is_read_only"}
        out = {}
        for k, v in changes.items():
            if k == "options":
                out["options"] = self._options(str(type_id).lower(), v, 9)
            elif k in mapping:
                out[mapping[k]] = float(v) if k == "fill_rate" else bool(v)
            else:
                raise ValueError(f"cannot change {k!r}")
        self._replace_field(entity, type_id, **out)

    def delete_custom_field(self, entity: str, type_id: str) -> None:
        """Remove a field definition; its values disappear from items."""
        entity = self._cf_entity(entity)
        type_id = str(type_id).lower()
        with self._lock:
            defs = tuple(d for d in self._cf[entity] if d.type_id != type_id)
            if len(defs) == len(self._cf[entity]):
                raise KeyError(f"no custom field {type_id} on {entity}")
            self._cf[entity] = defs
            self._cf_gen += 1

    def custom_field_definitions(self, entity: str) -> list[dict]:
        """Definitions as ``POST /custom-fields`` serves them (reference §4.1)."""
        entity = self._cf_entity(entity)
        with self._lock:
            defs = self._cf[entity]
        return [self._definition(entity, d) for d in defs]

    def _definition(self, entity: str, d: FieldDef) -> dict:
        cft = {
            "CustomFieldTypeId": d.type_id,
            "Name": d.name,
            "EditorType": d.editor_type,
        }
        if d.options:
            cft["Options"] = orjson.dumps(
                [{"Id": oid, "Name": name, "SortOrder": i} for i, (oid, name) in enumerate(d.options)]
            ).decode()
        cft.update({
            "IsRequired": d.is_required,
            "IsReadOnly": d.is_read_only,
            "IsHidden": d.is_hidden,
            "IsPublic": True,
            "HasSensitiveInformation": False,
            "MaxNumberOfInstances": 1,
            "EnabledByDefault": True,
            "DisplayOrder": d.display_order,
            "ProductId": P.PRODUCT_TICKETING,
            "Scope": "Site",
            "SiteId": self.site_id,
            "CreatedDate": d.created,
        })
        return {
            "CustomFieldId": d.field_id,
            "CustomFieldTypeId": d.type_id,
            "CustomFieldType": cft,
            "EntityTypeId": P.ENTITY_TYPE_IDS[entity],
            "EditorTypeId": d.editor_type,
            "IsRequired": d.is_required,
            "IsReadOnly": d.is_read_only,
            "IsHidden": d.is_hidden,
            "DisplayOrder": d.display_order,
            "Scope": "Site",
            "SiteId": self.site_id,
            "ProductId": P.PRODUCT_TICKETING,
            "Filters": [],
        }


def _sort_path(sort) -> tuple | None:
    if sort is None or sort == "":
        return None
    if isinstance(sort, tuple):
        return sort
    return tuple(str(sort).split("."))


def _sortable(v):
    if isinstance(v, str):
        return (1, v.lower(), 0)
    if v is None:
        return (0, "", 0)
    return (0, "", v)
