"""iiqsync.decode: reading only what the columns need gives the rows a whole parse gives."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from iiqsync.client import _parse
from iiqsync.decode import page_decoder
from iiqsync.entities import ENTITIES, TEXT
from iiqsync.flatten import flatten_page
from iiqsync.simulator import District

DISTRICT = District(seed=11, users=300, assets=300, tickets=300, locations=20, rooms=40, teams=9)


def page_bytes(entity: str, items: list | None = None) -> bytes:
    if items is None:
        total, items = DISTRICT.slice(entity, 0, 300)
    return orjson.dumps({"Items": items, "Paging": {"TotalRows": len(items), "PageCount": 1},
                         "StatusCode": 200, "UserToken": "x"})


def cf_ids(entity: str) -> list[str]:
    return [d["CustomFieldTypeId"].lower() for d in DISTRICT.custom_field_definitions(entity)] \
        if ENTITIES[entity].custom_fields else []


@pytest.mark.parametrize("name", sorted(ENTITIES))
def test_rows_are_those_of_a_whole_parse(name):
    entity, body = ENTITIES[name], page_bytes(name)
    whole = orjson.loads(body)
    kept = page_decoder(entity).decode(body)
    assert flatten_page(entity, kept["Items"], cf_ids(name)) == \
        flatten_page(entity, whole["Items"], cf_ids(name))
    assert kept["Paging"] == whole["Paging"]
    # Less was kept than sent: the point of it.
    assert len(orjson.dumps(kept)) < len(body)


def test_an_odd_shape_is_parsed_whole_and_still_flattened():
    entity = ENTITIES["assets"]
    _total, items = DISTRICT.slice("assets", 0, 5)
    items = [dict(i) for i in items]
    items[1]["Owner"] = "not an object"  # text where the columns expect an object
    items.append("not an item")
    body = page_bytes("assets", items)
    with pytest.raises(msgspec.ValidationError):
        page_decoder(entity).decode(body)
    data = _parse(body, page_decoder(entity))
    rows, _cf, skipped, _dupes = flatten_page(entity, data["Items"], cf_ids("assets"))
    assert len(rows) == 5 and skipped == 1
    assert data == orjson.loads(body)


def test_a_body_that_is_not_json_is_a_decode_error():
    with pytest.raises(msgspec.DecodeError):
        _parse(b"<html>busy</html>", page_decoder(ENTITIES["users"]))


@pytest.mark.parametrize("whole_first", [True, False])
def test_a_path_read_whole_by_one_column_is_kept_whole(whole_first):
    """One column reads Owner as JSON text, another Owner.Name: the decoder keeps all
    of Owner, so the first column's text is the same as from a whole parse."""
    import dataclasses

    base = ENTITIES["assets"]
    template = base.columns[1]
    extra = [dataclasses.replace(template, name="OwnerJson", path=("Owner",), kind=TEXT),
             dataclasses.replace(template, name="OwnerName2", path=("Owner", "Name"), kind=TEXT)]
    columns = base.columns + tuple(extra if whole_first else extra[::-1])
    entity = dataclasses.replace(base, name=f"assets_owner_{whole_first}", columns=columns)
    body = page_bytes("assets")
    rows = flatten_page(entity, orjson.loads(body)["Items"], cf_ids("assets"))[0]
    assert any(r[-2 if whole_first else -1] and "{" in r[-2 if whole_first else -1] for r in rows)
    assert flatten_page(entity, page_decoder(entity).decode(body)["Items"], cf_ids("assets")) == \
        flatten_page(entity, orjson.loads(body)["Items"], cf_ids("assets"))
