"""The plain floor: one process, no broker, no staging, no bookkeeping. It reads the
same pages iiqsync reads (httpx, one keep-alive connection), parses them with orjson,
flattens the same columns with the same rules (iiqsync's row maker) and COPYs them
straight into PostgreSQL tables, one transaction per entity. Anything iiqsync
spends on top of this is the price of its guarantees and of its distribution.

    python bench/floor.py --url http://127.0.0.1:8080 --token T --db postgresql://... assets
"""

from __future__ import annotations

import argparse
import csv
import io
import time

import httpx
import orjson
import psycopg2
import sqlalchemy as sa

from iiqsync import entities
from iiqsync.flatten import custom_field_value, row_maker


def _ddl(entity: entities.Entity, cf_ids: list[str]) -> list[str]:
    types = {entities.GUID: "uuid", entities.TEXT: "text", entities.LONGTEXT: "text",
             entities.INT: "integer", entities.BOOL: "boolean", entities.FLOAT: "double precision",
             entities.MONEY: "numeric(19,4)", entities.DATETIME: "timestamp"}
    cols = ", ".join(f'"{c.name}" {types[c.kind]}' for c in entity.columns)
    out = [f'CREATE TABLE "{entity.default_table}" ({cols})']
    if entity.custom_fields:
        cf_cols = ", ".join(f'"cf_{i}" text' for i in range(len(cf_ids)))
        out.append(f'CREATE TABLE "{entity.custom_fields.default_table}" '
                   f'("{entity.key}" uuid{", " + cf_cols if cf_cols else ""})')
    return out


def _copy(cursor, table: str, rows: list) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    buf.seek(0)
    cursor.copy_expert(f'COPY "{table}" FROM STDIN WITH (FORMAT csv)', buf)


def load(url: str, token: str, db_url: str, names: list[str], page_size: int = 1000) -> dict:
    """Load ``names`` and return ``{"rows": entity rows, "seconds": wall}``."""
    dsn = sa.engine.make_url(db_url).set(drivername="postgresql").render_as_string(False)
    conn = psycopg2.connect(dsn)
    http = httpx.Client(base_url=url, timeout=120,
                        headers={"Authorization": f"Bearer {token}", "Client": "ApiClient",
                                 "Accept-Encoding": "gzip"})
    started = time.perf_counter()
    total = 0
    for name in names:
        entity = entities.ENTITIES[name]
        size = min(page_size, entity.max_page_size or page_size)
        cf_ids: list[str] = []
        if entity.custom_fields:
            defs = orjson.loads(http.post(entities.CUSTOM_FIELDS_ROUTE, params={"$p": 0, "$s": 999999},
                                          content=orjson.dumps({"Strategy": entity.custom_fields.strategy}))
                                .content)["Items"]
            cf_ids = sorted({d["CustomFieldTypeId"].lower() for d in defs})
        slot = {t: i for i, t in enumerate(cf_ids)}
        make = row_maker(entity.columns)
        with conn.cursor() as cur:
            for statement in _ddl(entity, cf_ids):
                cur.execute(statement)
            page = pages = 0
            while page == 0 or page < pages:
                params = {"$p": page, "$s": size, "$o": entity.key, "$d": "Ascending"}
                if entity.method == "POST":
                    response = http.post(entity.route, params=params,
                                         content=orjson.dumps(entity.body or {}))
                else:
                    response = http.get(entity.route, params=params)
                data = orjson.loads(response.content)
                pages = data["Paging"]["PageCount"]
                items = data["Items"]
                _copy(cur, entity.default_table, [make(item) for item in items])
                if entity.custom_fields:
                    cf_rows = []
                    for item in items:
                        values = [None] * len(cf_ids)
                        for cfv in item.get("CustomFieldValues") or ():
                            i = slot.get(cfv["CustomFieldTypeId"].lower())
                            if i is not None:
                                values[i] = custom_field_value(cfv.get("Value"))
                        cf_rows.append((item[entity.key], *values))
                    _copy(cur, entity.custom_fields.default_table, cf_rows)
                total += len(items)
                page += 1
        conn.commit()
    seconds = time.perf_counter() - started
    http.close()
    conn.close()
    return {"rows": total, "seconds": seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument("entities", nargs="+")
    args = p.parse_args()
    print(orjson.dumps(load(args.url, args.token, args.db, args.entities, args.page_size)).decode())


if __name__ == "__main__":
    main()
