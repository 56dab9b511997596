"""The generated district: shape of items, determinism, drift and scale."""

from __future__ import annotations

import re
import tracemalloc

import pytest

from iiqsync import entities as ent
from iiqsync.simulator import District, SortNotSupported

ZERO_GUID = "00000000-0000-0000-0000-000000000000"
GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{0,6}[1-9])?$")
NAMES = ("users", "assets", "locations", "rooms", "teams", "tickets")
DEVICES = ent.DEVICES_ASSET_TYPE


@pytest.fixture(scope="module")
def small():
    return District(seed=3, users=300, assets=500, locations=10, rooms=40, teams=6, tickets=400)


def walk(item, path):
    for part in path:
        if not isinstance(item, dict) or part not in item:
            return None
        item = item[part]
    return item


def all_values(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield v
            yield from all_values(v)
    elif isinstance(obj, list):
        for v in obj:
            yield v
            yield from all_values(v)


def test_every_declared_column_path_is_served(small):
    for entity in ent.ENTITIES.values():
        items = list(small.items(entity.name))
        assert items, entity.name
        for col in entity.columns:
            present = [walk(i, col.path) for i in items if walk(i, col.path) is not None]
            assert present, f"{entity.name}.{col.name} ({'.'.join(col.path)}) never served"
            if col.kind == ent.GUID:
                assert all(GUID_RE.match(v) for v in present), col.name
            elif col.kind == ent.DATETIME:
                assert all(TS_RE.match(v) for v in present), (col.name, present[:3])
            elif col.kind in (ent.TEXT, ent.LONGTEXT):
                assert all(isinstance(v, str) for v in present), col.name
            elif col.kind == ent.INT:
                assert all(type(v) is int for v in present), col.name
            elif col.kind == ent.BOOL:
                assert all(type(v) is bool for v in present), col.name
            elif col.kind in (ent.FLOAT, ent.MONEY):
                assert all(type(v) in (int, float) for v in present), col.name
        assert all(GUID_RE.match(i[entity.key]) for i in items)


def test_nulls_omitted_and_stubs_present(small):
    assets = list(small.items("assets"))
    assert not any(v is None for a in assets for v in all_values(a)), "null served"
    # optional fields are missing for a realistic share of items
    for field in ("OwnerId", "PurchasePrice", "Vendor", "WarrantyExpirationDate", "Name"):
        share = sum(field in a for a in assets) / len(assets)
        assert 0.05 < share < 0.99, (field, share)
    loc = next(a["Location"] for a in assets if "Location" in a)
    assert loc["SiteId"] == ZERO_GUID and loc["AddressId"] == ZERO_GUID
    assert loc["CreatedDate"] == "0001-01-01T00:00:00"
    assert loc["LocationType"]["ModifiedDate"] == "0001-01-01T00:00:00"
    room = next(a["LocationRoom"] for a in assets if "LocationRoom" in a)
    assert room["LocationId"] == ZERO_GUID
    assert any(a.get("AssetTag") == "" for a in assets) or any(a.get("Notes") == "" for a in assets)
    locations = list(small.items("locations"))
    assert any("Street2" not in loc["Address"] for loc in locations)
    assert all(isinstance(loc["Address"]["Zip"], str) for loc in locations)
    assert all(isinstance(loc["Address"]["Latitude"], float) for loc in locations)
    users = list(small.items("users"))
    grades = [u["Grade"] for u in users if "Grade" in u]
    assert grades and all(g == "KG" or (len(g) == 2 and g.isdigit()) for g in grades)
    assert any("Grade" not in u for u in users)
    tickets = list(small.items("tickets"))
    assert all(t["TicketNumber"].isdigit() for t in tickets)
    assert len({t["TicketNumber"] for t in tickets}) == len(tickets)
    fractions = {len(v.partition(".")[2]) for t in tickets for v in (t["CreatedDate"], t["ModifiedDate"])}
    assert {0, 3, 7} <= fractions


def test_foreign_keys_point_at_generated_rows(small):
    users = set(small.keys("users"))
    locations = set(small.keys("locations"))
    rooms = {r["LocationRoomId"]: r for r in small.items("rooms")}
    for a in small.items("assets"):
        if "OwnerId" in a:
            assert a["OwnerId"] in users and a["Owner"]["UserId"] == a["OwnerId"]
        if "LocationId" in a:
            assert a["LocationId"] in locations
        if "LocationRoomId" in a:
            assert rooms[a["LocationRoomId"]]["LocationId"] == a["LocationId"]
    teams = set(small.keys("teams"))
    for t in small.items("tickets"):
        assert t["ForId"] in users
        if "AssignedToTeamId" in t:
            assert t["AssignedToTeamId"] in teams


def test_custom_field_values_shape(small):
    defs = {d["CustomFieldTypeId"]: d for d in small.custom_field_definitions("assets")}
    assert len(defs) == 4
    rows = [v for a in small.items("assets") for v in a["CustomFieldValues"]]
    assert rows
    for v in rows:
        assert set(v) == {"CustomFieldTypeId", "EditorTypeId", "Value", "IsHidden"}
        assert isinstance(v["Value"], str) and v["Value"] != ""
        assert v["CustomFieldTypeId"] in defs
        assert v["EditorTypeId"] == defs[v["CustomFieldTypeId"]]["EditorTypeId"]
    # pick-list values are JSON-encoded text
    select = next(t for t, d in defs.items() if d["EditorTypeId"] == 9)
    assert any(v["Value"].startswith('["') for v in rows if v["CustomFieldTypeId"] == select)
    d = next(iter(defs.values()))
    assert d["EntityTypeId"] == ent.ASSET_ENTITY_TYPE
    assert d["CustomFieldType"]["CustomFieldTypeId"] == d["CustomFieldTypeId"]
    assert {"Name", "EditorType"} <= set(d["CustomFieldType"])
    assert {x["EntityTypeId"] for x in small.custom_field_definitions("users")} == {ent.USER_ENTITY_TYPE}


def test_deterministic_per_seed():
    a = District(seed=11, users=50, assets=80, tickets=60)
    b = District(seed=11, users=50, assets=80, tickets=60)
    c = District(seed=12, users=50, assets=80, tickets=60)
    for name in NAMES:
        assert list(a.items(name)) == list(b.items(name))
    assert list(a.items("assets")) != list(c.items("assets"))
    assert a.custom_field_definitions("tickets") == b.custom_field_definitions("tickets")


def test_keys_sort_in_generation_order_and_pages_tile(small):
    keys = list(small.keys("tickets"))
    assert keys == sorted(keys) and len(set(keys)) == len(keys) == 400
    tiled = []
    for p in range(9):
        total, items = small.page("tickets", p, 47)
        assert total == 400
        tiled += [i["TicketId"] for i in items]
    assert tiled == keys
    _, desc = small.page("tickets", 0, 30, descending=True)
    assert [i["TicketId"] for i in desc] == keys[::-1][:30]
    assert small.page("tickets", 100, 50) == (400, [])


def _brute_keys(d: District, entity: str, deleted: set, inserted: set) -> list[str]:
    base = {d.factory.base_key(entity, i) for i in range(d.sizes[entity])}
    return sorted((base - deleted) | inserted)


def test_drift_insert_delete_edit():
    d = District(seed=5, users=40, assets=300, tickets=200)
    before = {i["AssetId"]: i for i in d.items("assets")}
    deleted, inserted = set(), set()
    inserted |= set(d.insert("assets", 25))
    inserted |= set(d.insert("assets", 3, where="start"))
    inserted |= set(d.insert("assets", 4, where="end"))
    deleted |= set(d.delete("assets", 20))
    inserted -= deleted
    victim = sorted(inserted)[len(inserted) // 2]
    assert d.delete("assets", [victim, victim, "not-a-key"]) == [victim]
    inserted.discard(victim)
    assert d.delete("assets", [victim]) == []
    want = _brute_keys(d, "assets", deleted, inserted)
    assert list(d.keys("assets")) == want
    assert d.count("assets") == 300 - 20 + 31 == len(want)
    # inserted rows sort between existing ones, not only at the end
    positions = sorted(want.index(k) for k in inserted)
    assert positions[0] < 3 and positions[-1] > len(want) - 5
    assert any(0 < p < len(want) - 10 for p in positions)
    # pages over the drifted list, both directions
    got = []
    for p in range(8):
        got += [i["AssetId"] for i in d.page("assets", p, 40)[1]]
    assert got == want
    got = []
    for p in range(8):
        got += [i["AssetId"] for i in d.page("assets", p, 40, descending=True)[1]]
    assert got == want[::-1]
    # new rows look like the others and are stable
    new = d.get("assets", sorted(inserted)[0])
    assert new is not None and new["CreatedDate"] > max(i["CreatedDate"] for i in before.values())
    assert d.get("assets", sorted(inserted)[0]) == new
    assert d.get("assets", sorted(deleted)[0]) is None
    # edits change the row but not its key
    key = want[5]
    old = d.get("assets", key)
    assert d.edit("assets", [key]) == [key]
    changed = d.get("assets", key)
    assert changed["AssetId"] == key and changed != old
    assert changed["ModifiedDate"] > old["ModifiedDate"]
    assert d.count("assets") == len(want)
    assert len(d.edit("tickets", 5)) == 5


def test_asset_type_filter_matches_items():
    d = District(seed=9, assets=1000)
    d.insert("assets", 30)
    d.delete("assets", 40)
    items = list(d.items("assets"))
    devices = [i["AssetId"] for i in items if i["AssetTypeId"] == DEVICES]
    assert 0.5 < len(devices) / len(items) < 0.9
    assert d.count("assets", [DEVICES]) == len(devices)
    assert list(d.keys("assets", [DEVICES.upper()])) == devices
    got = []
    for p in range(5):
        got += [i["AssetId"] for i in d.page("assets", p, 200, asset_types=[DEVICES])[1]]
    assert got == devices
    other = [t["AssetTypeId"] for t in d.asset_types() if t["AssetTypeId"] != DEVICES][:2]
    both = [i["AssetId"] for i in items if i["AssetTypeId"] in other]
    assert list(d.keys("assets", other)) == both
    assert d.count("assets", ["00000000-1111-2222-3333-444444444444"]) == 0


def test_sort_by_other_fields_on_small_lists(small):
    _, items = small.page("users", 0, 300, sort="Name")
    names = [i["Name"].lower() for i in items]
    assert names == sorted(names)
    _, items = small.page("tickets", 0, 400, sort="CreatedDate", descending=True)
    dates = [i["CreatedDate"] for i in items]
    assert dates == sorted(dates, reverse=True)
    big = District(tickets=50_000, sort_limit=1000)
    with pytest.raises(SortNotSupported):
        big.page("tickets", 0, 10, sort="Subject")


def test_custom_field_definition_changes_and_hostile_names():
    d = District(seed=2, users=60, assets=120, tickets=40)
    hostile = ['x"; DROP TABLE Users;--', "Émoji 🎒 field", "L" * 200, "", "   ", "MAC Address",
               "Robert'); DROP TABLE Students;--", "tab\tnew\nline"]
    ids = [d.add_custom_field("assets", name, "Text", fill_rate=1.0) for name in hostile]
    assert len(set(ids)) == len(ids)
    defs = {x["CustomFieldTypeId"]: x for x in d.custom_field_definitions("assets")}
    assert [defs[i]["CustomFieldType"]["Name"] for i in ids] == hostile
    for item in d.items("assets"):
        assert set(ids) <= {v["CustomFieldTypeId"] for v in item["CustomFieldValues"]}

    target = ids[0]
    values = {i["AssetId"]: [v for v in i["CustomFieldValues"] if v["CustomFieldTypeId"] == target]
              for i in d.items("assets")}
    d.rename_custom_field("assets", target, "Renamed")
    assert {x["CustomFieldTypeId"]: x for x in d.custom_field_definitions("assets")}[target][
        "CustomFieldType"]["Name"] == "Renamed"
    assert values == {i["AssetId"]: [v for v in i["CustomFieldValues"] if v["CustomFieldTypeId"] == target]
                      for i in d.items("assets")}, "a rename keeps the values"

    d.set_custom_field_editor_type("assets", target, "MultiSelect", options=["A", "B", "C"])
    definition = {x["CustomFieldTypeId"]: x for x in d.custom_field_definitions("assets")}[target]
    assert definition["EditorTypeId"] == 10 and definition["CustomFieldType"]["EditorType"] == 10
    assert "Options" in definition["CustomFieldType"]
    rows = [v for i in d.items("assets") for v in i["CustomFieldValues"] if v["CustomFieldTypeId"] == target]
    assert rows and all(v["EditorTypeId"] == 10 and v["Value"].startswith("[") for v in rows)

    d.delete_custom_field("assets", target)
    assert target not in {x["CustomFieldTypeId"] for x in d.custom_field_definitions("assets")}
    assert not any(v["CustomFieldTypeId"] == target
                   for i in d.items("assets") for v in i["CustomFieldValues"])
    with pytest.raises(KeyError):
        d.delete_custom_field("assets", target)
    with pytest.raises(KeyError):
        d.add_custom_field("rooms", "x")

    none = District(custom_fields={"users": [], "tickets": [("Only", "Number")]})
    assert none.custom_field_definitions("users") == []
    assert [x["EditorTypeId"] for x in none.custom_field_definitions("tickets")] == [4]
    assert len(none.custom_field_definitions("assets")) == 4


def test_a_million_tickets_is_cheap():
    tracemalloc.start()
    try:
        d = District(tickets=1_000_000, assets=300_000, users=120_000)
        assert d.count("tickets") == 1_000_000
        total, items = d.page("tickets", 500, 1000)
        assert total == 1_000_000 and len(items) == 1000
        assert items[0]["TicketNumber"] == str(1001 + 500_000)
        d.insert("tickets", 100)
        d.delete("tickets", 100)
        assert d.count("tickets") == 1_000_000
        _, last = d.page("tickets", 999, 1000)
        assert len(last) == 1000
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, f"peak {peak / 2**20:.1f} MiB"
