"""iiqsync.flatten: IIQ items become rows by the data-fidelity rules."""

from __future__ import annotations

from datetime import datetime

import pytest

from iiqsync import entities
from iiqsync.entities import ASSETS, LOCATIONS, TEAMS, USERS
from iiqsync.flatten import ZERO_GUID, flatten_page, row_maker

ASSET_ID = "48e13e94-3c38-e811-80c3-0003ff685cc1"
OTHER_ID = "7385d71e-8f47-418d-905a-a2b858c3c35c"
CF_SERIAL = "0c2f1a3e-91aa-e711-80c2-0004ffa00aa1"
CF_PICKS = "0c2f1a3e-91aa-e711-80c2-0004ffa00aa2"
CF_EMPTY = "0c2f1a3e-91aa-e711-80c2-0004ffa00aa3"


def row_of(entity, item) -> dict:
    """One item through the entity's row maker, as {column: value}."""
    values = row_maker(entity.columns)(item)
    return dict(zip([c.name for c in entity.columns], values, strict=True))


def asset(**fields) -> dict:
    return {"AssetId": ASSET_ID, **fields}


# -- NULLs -------------------------------------------------------------------------------------


def test_missing_properties_are_null():
    row = row_of(ASSETS, asset())
    assert row["AssetId"] == ASSET_ID
    assert all(v is None for k, v in row.items() if k != "AssetId")


@pytest.mark.parametrize("column, value", [
    ("SiteId", ZERO_GUID),
    ("OwnerId", ZERO_GUID.upper()),
    ("CreatedDate", "0001-01-01T00:00:00"),
    ("PurchasedDate", "0001-01-01T00:00:00Z"),
    ("Name", ""),
    ("Notes", ""),
    ("OwnerId", ""),
    ("CreatedDate", ""),
    ("OpenTickets", ""),
    ("PurchasePrice", ""),
    ("HasOpenTickets", ""),
    ("Name", None),
    ("OpenTickets", None),
])
def test_not_set_values_are_null(column, value):
    assert row_of(ASSETS, asset(**{column: value}))[column] is None


def test_nul_characters_are_removed():
    row = row_of(ASSETS, asset(Name="Cart\x00 12", Notes="\x00\x00", AssetTag="A\x00B"))
    assert row["Name"] == "Cart 12"
    assert row["AssetTag"] == "AB"
    assert row["Notes"] is None


# -- timestamps --------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("2018-04-04T15:15:48", datetime(2018, 4, 4, 15, 15, 48)),
    ("2018-04-16T11:22:42.1", datetime(2018, 4, 16, 11, 22, 42, 100000)),
    ("2018-04-04T15:15:48.12", datetime(2018, 4, 4, 15, 15, 48, 120000)),
    ("2018-04-04T15:15:48.127", datetime(2018, 4, 4, 15, 15, 48, 127000)),
    ("2018-04-04T15:15:48.1275", datetime(2018, 4, 4, 15, 15, 48, 127500)),
    ("2018-04-04T15:15:48.12755", datetime(2018, 4, 4, 15, 15, 48, 127550)),
    ("2018-04-04T15:15:48.127551", datetime(2018, 4, 4, 15, 15, 48, 127551)),
    ("2026-04-17T00:44:31.1863295", datetime(2026, 4, 17, 0, 44, 31, 186329)),
    ("2026-04-17T00:44:31.1863295Z", datetime(2026, 4, 17, 0, 44, 31, 186329)),
    ("2024-05-30T10:40:00.227", datetime(2024, 5, 30, 10, 40, 0, 227000)),
    ("2024-05-30T00:00:00", datetime(2024, 5, 30)),
])
def test_timestamps_keep_their_time(text, expected):
    value = row_of(ASSETS, asset(ModifiedDate=text))["ModifiedDate"]
    assert value == expected
    assert value.tzinfo is None


def test_unreadable_timestamp_is_null():
    assert row_of(ASSETS, asset(CreatedDate="yesterday"))["CreatedDate"] is None


# -- GUIDs, nested paths, scalars ------------------------------------------------------------


def test_guids_lower_case():
    row = row_of(ASSETS, asset(AssetId=ASSET_ID.upper(), ModelId=OTHER_ID.upper()))
    assert row["AssetId"] == ASSET_ID
    assert row["ModelId"] == OTHER_ID


def test_nested_paths():
    item = asset(Model={"Name": "Chromebook 11", "Manufacturer": {"Name": "Dell"},
                        "Category": {"Name": "Laptops"}},
                 Status={"Name": "In Service"}, Owner={"Name": "Ada Lovelace", "Username": "ada"},
                 LocationRoom={"Name": "Room 101"})
    row = row_of(ASSETS, item)
    assert row["ModelName"] == "Chromebook 11"
    assert row["ManufacturerName"] == "Dell"
    assert row["CategoryName"] == "Laptops"
    assert row["StatusName"] == "In Service"
    assert (row["OwnerName"], row["OwnerUsername"]) == ("Ada Lovelace", "ada")
    assert row["LocationRoomName"] == "Room 101"


@pytest.mark.parametrize("model", [
    None, {}, {"Name": "X"}, {"Name": "X", "Manufacturer": None}, {"Manufacturer": "Dell"},
    "not an object", [],
])
def test_nested_path_with_missing_parent_is_null(model):
    item = asset() if model is None else asset(Model=model)
    assert row_of(ASSETS, item)["ManufacturerName"] is None


def test_location_address_paths():
    item = {"LocationId": OTHER_ID, "Name": "High School",
            "Address": {"Street1": "1 Main St", "City": "Springfield", "Latitude": 40.622274,
                        "Longitude": -75.1}}
    row = row_of(LOCATIONS, item)
    assert (row["Street1"], row["City"], row["Street2"]) == ("1 Main St", "Springfield", None)
    assert row["Latitude"] == pytest.approx(40.622274)
    assert row["Longitude"] == pytest.approx(-75.1)


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("true", True), ("False", False), ("1", True), (0, False),
])
def test_booleans(value, expected):
    assert row_of(ASSETS, asset(IsDeleted=value))["IsDeleted"] is expected


@pytest.mark.parametrize("value, expected", [(3, 3), ("12", 12), (0, 0), ("x", None)])
def test_ints(value, expected):
    assert row_of(ASSETS, asset(OpenTickets=value))["OpenTickets"] == expected


def test_zero_and_false_are_kept_not_null():
    row = row_of(ASSETS, asset(OpenTickets=0, HasOpenTickets=False, PurchasePrice=0))
    assert row["OpenTickets"] == 0
    assert row["HasOpenTickets"] is False
    assert row["PurchasePrice"] == 0.0


@pytest.mark.parametrize("value, expected", [(249.99, 249.99), ("12.5", 12.5), (100, 100.0)])
def test_floats(value, expected):
    got = row_of(ASSETS, asset(PurchasePrice=value))["PurchasePrice"]
    assert got == pytest.approx(expected)
    assert isinstance(got, float)


def test_int_column_from_team():
    row = row_of(TEAMS, {"TeamId": OTHER_ID, "TeamName": "Help Desk", "MembersCount": 4,
                         "Tickets": 17, "IsDeleted": False})
    assert (row["TeamName"], row["MembersCount"], row["Tickets"], row["IsDeleted"]) == \
        ("Help Desk", 4, 17, False)


def test_text_column_given_an_object_keeps_it_as_json():
    row = row_of(ASSETS, asset(LocationDetails={"Shelf": 3, "Bin": "A"}))
    assert row["LocationDetails"] == '{"Shelf": 3, "Bin": "A"}'


def test_open_tickets_read_with_their_plural_names():
    names = [c.name for c in ASSETS.columns]
    assert "HasOpenTickets" in names and "OpenTickets" in names
    assert "HasOpenTicket" not in names and "OpenTicket" not in names
    row = row_of(ASSETS, asset(HasOpenTickets=True, OpenTickets=4, HasOpenTicket=False,
                               OpenTicket=9))
    assert row["HasOpenTickets"] is True
    assert row["OpenTickets"] == 4


def test_user_role_name_and_portal():
    row = row_of(USERS, {"UserId": OTHER_ID.upper(), "Role": {"Name": "Agent"}, "Portal": 2,
                         "Email": "a@b.c", "Grade": ""})
    assert row["UserId"] == OTHER_ID
    assert row["RoleName"] == "Agent"
    assert row["Portal"] == 2
    assert row["Email"] == "a@b.c"
    assert row["Grade"] is None


# -- pages ---------------------------------------------------------------------------------------


def key_index(entity) -> int:
    return [c.name for c in entity.columns].index(entity.key)


def test_page_rows_in_column_order():
    rows, cf_rows, skipped, duplicates = flatten_page(
        ASSETS, [asset(AssetTag="T-1"), asset(AssetId=OTHER_ID, AssetTag="T-2")])
    assert (skipped, duplicates) == (0, 0)
    tag = [c.name for c in ASSETS.columns].index("AssetTag")
    assert [(r[0], r[tag]) for r in rows] == [(ASSET_ID, "T-1"), (OTHER_ID, "T-2")]
    assert all(len(r) == len(ASSETS.columns) for r in rows)
    assert cf_rows == [(ASSET_ID,), (OTHER_ID,)]


def test_custom_field_values_mapped_by_type_id_regardless_of_case():
    item = asset(CustomFieldValues=[
        {"CustomFieldTypeId": CF_PICKS.upper(), "EditorTypeId": 10,
         "Value": '["48e13e94-3c38-e811-80c3-0003ff685cc1"]', "IsHidden": False},
        {"CustomFieldTypeId": CF_SERIAL, "EditorTypeId": 1, "Value": "48-25-67-02-26-C6"},
        {"CustomFieldTypeId": "ffffffff-0000-0000-0000-000000000000", "Value": "not a column"},
        {"CustomFieldTypeId": CF_EMPTY, "Value": ""},
        "junk",
        {"Value": "no type id"},
    ])
    rows, cf_rows, skipped, _ = flatten_page(ASSETS, [item], [CF_SERIAL, CF_EMPTY, CF_PICKS])
    assert skipped == 0
    assert cf_rows == [(ASSET_ID, "48-25-67-02-26-C6", None,
                        '["48e13e94-3c38-e811-80c3-0003ff685cc1"]')]


@pytest.mark.parametrize("value", [
    '{"Id": "1", "Name": "Blue"}', '[{"Id":"1"},{"Id":"2"}]', "[]", "{}", "null", "12",
    "2018-04-04T15:15:48.127", "true",
])
def test_custom_field_values_kept_as_given_text(value):
    item = asset(CustomFieldValues=[{"CustomFieldTypeId": CF_SERIAL, "Value": value}])
    _, cf_rows, _, _ = flatten_page(ASSETS, [item], [CF_SERIAL])
    assert cf_rows == [(ASSET_ID, value)]


def test_custom_field_value_nul_removed():
    item = asset(CustomFieldValues=[{"CustomFieldTypeId": CF_SERIAL, "Value": "ab\x00c"}])
    assert flatten_page(ASSETS, [item], [CF_SERIAL])[1] == [(ASSET_ID, "abc")]


def test_custom_field_columns_without_values_are_null():
    _, cf_rows, _, _ = flatten_page(ASSETS, [asset()], [CF_SERIAL, CF_PICKS])
    assert cf_rows == [(ASSET_ID, None, None)]


def test_entity_without_custom_fields_has_no_cf_rows():
    rows, cf_rows, _, _ = flatten_page(
        LOCATIONS, [{"LocationId": OTHER_ID, "CustomFieldValues": [
            {"CustomFieldTypeId": CF_SERIAL, "Value": "x"}]}], [CF_SERIAL])
    assert len(rows) == 1 and cf_rows == []


@pytest.mark.parametrize("bad", [
    {"AssetTag": "no key"}, {"AssetId": None}, {"AssetId": ""}, {"AssetId": ZERO_GUID},
    {"AssetId": 12345}, "not an item", None,
])
def test_item_without_primary_key_is_skipped_and_counted(bad):
    rows, cf_rows, skipped, duplicates = flatten_page(ASSETS, [asset(), bad], [CF_SERIAL])
    assert [r[0] for r in rows] == [ASSET_ID]
    assert [r[0] for r in cf_rows] == [ASSET_ID]
    assert (skipped, duplicates) == (1, 0)


def test_duplicates_in_one_page_kept_once_and_counted():
    items = [
        asset(AssetTag="first", CustomFieldValues=[{"CustomFieldTypeId": CF_SERIAL, "Value": "1"}]),
        asset(AssetId=OTHER_ID, AssetTag="other"),
        asset(AssetTag="middle"),
        asset(AssetId=ASSET_ID.upper(), AssetTag="last",
              CustomFieldValues=[{"CustomFieldTypeId": CF_SERIAL, "Value": "3"}]),
    ]
    rows, cf_rows, skipped, duplicates = flatten_page(ASSETS, items, [CF_SERIAL])
    tag = [c.name for c in ASSETS.columns].index("AssetTag")
    assert sorted((r[0], r[tag]) for r in rows) == [(ASSET_ID, "last"), (OTHER_ID, "other")]
    assert sorted(cf_rows) == [(ASSET_ID, "3"), (OTHER_ID, None)]
    assert (skipped, duplicates) == (0, 2)


def test_empty_page():
    assert flatten_page(ASSETS, [], [CF_SERIAL]) == ([], [], 0, 0)


@pytest.mark.parametrize("entity", list(entities.ENTITIES.values()), ids=lambda e: e.name)
def test_every_entity_keeps_a_keyed_item(entity):
    item = {entity.key: OTHER_ID.upper()}
    rows, _, skipped, _ = flatten_page(entity, [item, {}])
    assert skipped == 1
    assert rows[0][key_index(entity)] == OTHER_ID


# -- the generated row maker follows the converters exactly ---------------------------------------


ODD_VALUES = [None, "", " ", "x", "\x00", "a\x00b", "  ABC-Def  ", ZERO_GUID, ZERO_GUID.upper(),
              f" {ZERO_GUID} ", 0, 1, -7, 2.5, True, False, "true", "0", "12", "1.5", "nan",
              "2024-01-02T03:04:05", "2024-01-02T03:04:05.1234567", "2024-01-02T03:04:05.1234567Z",
              "2024-01-02T03:04:05Z", " 2024-01-02T03:04:05.5 ", "2024-01-02T03:04:05.",
              "2024-01-02T03:04:05+05:00", "2024-01-02T03:04:05.123+05:00", "2024-01-02",
              "2024-01-02T03:04:05.1234567junk", "0001-01-01T00:00:00", "not a date",
              {"Name": "nested"}, ["a", 1], {"x": {"y": None}}]


@pytest.mark.parametrize("entity", list(entities.ENTITIES.values()), ids=lambda e: e.name)
def test_generated_row_maker_matches_the_converters(entity):
    from iiqsync.flatten import CONVERTERS, _getter

    make = row_maker(entity.columns)
    for shift in range(len(ODD_VALUES)):
        item = {}
        for i, column in enumerate(entity.columns):
            value = ODD_VALUES[(i + shift) % len(ODD_VALUES)]
            target = item
            for part in column.path[:-1]:
                target = target.setdefault(part, {}) if isinstance(target.get(part, {}), dict) else {}
            target[column.path[-1]] = value
        want = tuple(CONVERTERS[c.kind](_getter(c.path)(item)) for c in entity.columns)
        got = make(item)
        assert repr(got) == repr(want)  # repr: NaN equals NaN
        assert [type(v) for v in got] == [type(v) for v in want]
    # A nested parent that is not an object reads as NULL, as the getter reads it.
    nested = [c for c in entity.columns if len(c.path) > 1]
    if nested:
        item = {c.path[0]: "not an object" for c in nested}
        assert make(item) == tuple(CONVERTERS[c.kind](_getter(c.path)(item)) for c in entity.columns)
