"""A RE-CREATION of the old IncidentIQ-Data-Sync tool's method, for comparison only.

It is not the old tool's code. It does what the old tool did per page, as its
source reads: drop and create every table, then a thread pool of ``Threads``
workers, one page per thread; each thread sends its own HTTP request (no shared
connection), parses the JSON into objects (``object_hook=SimpleNamespace``), builds
one SQLAlchemy ORM object per item and one per item's custom fields (attribute by
attribute, empty strings to NULL through a ``@validates`` hook), then
``session.add_all(page)`` and ``session.commit()`` in a session of its own.
Columns are the ones iiqsync copies; timestamps are DATE, as the old tool stored them.

    python bench/oldtool.py --url http://127.0.0.1:8080 --token T --db postgresql://... assets
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.orm import declarative_base, scoped_session, sessionmaker, validates

from iiqsync import entities


def find_element(obj, *path):
    for part in path:
        if not hasattr(obj, part):
            return None
        obj = getattr(obj, part)
    return obj


def _orm_class(base, table: str, columns: list[tuple[str, object]], key: str, fields: list[str]):
    attrs = {"__tablename__": table}
    for name, col_type in columns:
        attrs[name] = sa.Column(col_type, primary_key=(name == key))

    def validate_inserts(self, _key, value):
        return None if isinstance(value, str) and value == "" else value

    attrs["validate_inserts"] = validates(*fields)(validate_inserts)
    return type(table, (base,), attrs)


def load(url: str, token: str, db_url: str, names: list[str], page_size: int = 1000,
         threads: int = 8) -> dict:
    engine = sa.create_engine(db_url, pool_size=threads, max_overflow=0)
    session_factory = scoped_session(sessionmaker(bind=engine))
    base = declarative_base()
    types = {entities.GUID: sa.String(36), entities.TEXT: sa.String(255),
             entities.LONGTEXT: sa.Text(), entities.INT: sa.Integer(), entities.BOOL: sa.Boolean(),
             entities.FLOAT: sa.Float(), entities.MONEY: sa.Numeric(), entities.DATETIME: sa.Date()}
    headers = {"Authorization": f"Bearer {token}", "Client": "WebBrowser",
               "Content-Type": "application/json", "Accept-Encoding": "gzip"}
    plans = []
    for name in names:
        entity = entities.ENTITIES[name]
        cls = _orm_class(base, entity.default_table,
                         [(c.name, types[c.kind]) for c in entity.columns], entity.key,
                         [c.name for c in entity.columns])
        cf_cls, cf_ids = None, []
        if entity.custom_fields:
            defs = httpx.post(url + entities.CUSTOM_FIELDS_ROUTE, params={"$p": 0, "$s": 999999},
                              headers=headers, timeout=120,
                              content=orjson.dumps({"Strategy": entity.custom_fields.strategy})).json()
            cf_ids = sorted({d["CustomFieldTypeId"].lower() for d in defs["Items"]})
            cf_cls = _orm_class(base, entity.custom_fields.default_table,
                                [(entity.key, sa.String(36))] + [(f"cf_{i}", sa.Text()) for i in
                                                                 range(len(cf_ids))],
                                entity.key, [f"cf_{i}" for i in range(len(cf_ids))])
        plans.append((entity, cls, cf_cls, cf_ids))
    base.metadata.drop_all(engine)
    base.metadata.create_all(engine)

    def request(entity, page):
        params = {"$p": page, "$s": min(page_size, entity.max_page_size or page_size),
                  "$o": entity.key, "$d": "Ascending"}
        if entity.method == "POST":
            return httpx.post(url + entity.route, params=params, headers=headers, timeout=120,
                              content=json.dumps(entity.body or {}))
        return httpx.get(url + entity.route, params=params, headers=headers, timeout=120)

    def sync_page(entity, cls, cf_cls, cf_ids, page):
        session = session_factory()
        data = json.loads(request(entity, page).text, object_hook=lambda d: SimpleNamespace(**d))
        objects = []
        slot = {t: f"cf_{i}" for i, t in enumerate(cf_ids)}
        for item in data.Items:
            obj = cls()
            for column in entity.columns:
                setattr(obj, column.name, find_element(item, *column.path))
            objects.append(obj)
            if cf_cls is not None:
                cf = cf_cls()
                setattr(cf, entity.key, getattr(item, entity.key))
                for value in getattr(item, "CustomFieldValues", None) or ():
                    column = slot.get(value.CustomFieldTypeId.lower())
                    if column:
                        setattr(cf, column, getattr(value, "Value", None))
                objects.append(cf)
        session.add_all(objects)
        session.commit()
        session.close()
        session_factory.remove()
        return len(data.Items)

    started = time.perf_counter()
    total = 0
    for entity, cls, cf_cls, cf_ids in plans:
        first = request(entity, 0).json()
        pages = first["Paging"]["PageCount"]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for n in pool.map(lambda p, e=entity, c=cls, f=cf_cls, i=cf_ids: sync_page(e, c, f, i, p),
                              range(pages)):
                total += n
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"rows": total, "seconds": seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("entities", nargs="+")
    args = p.parse_args()
    print(orjson.dumps(load(args.url, args.token, args.db, args.entities, args.page_size,
                            args.threads)).decode())


if __name__ == "__main__":
    main()
