"""The simulator's hooks for odd items: changed or stripped items, extra items on the
first page."""

from __future__ import annotations

from iiqsync.simulator.district import District


def test_override_changes_served_items_and_the_truth_alike():
    d = District(seed=3, assets=30, users=5, tickets=5)
    keys = list(d.keys("assets"))
    d.override("assets", keys[2], {"Name": "x" * 5000})
    d.override("assets", None, remove=["SiteId"])
    _, page = d.page("assets", 0, 10)
    assert page[2]["Name"] == "x" * 5000 and d.get("assets", keys[2])["Name"] == "x" * 5000
    assert all("SiteId" not in item for item in page)
    assert all("SiteId" not in item for item in d.items("assets"))
    assert page[3].get("Name") != "x" * 5000


def test_extras_come_on_the_first_page_only_and_leave_the_totals():
    d = District(seed=3, assets=30, users=5, tickets=5)
    d.serve_extras("assets", duplicates=2, keyless=1)
    total, first = d.page("assets", 0, 10)
    _, second = d.page("assets", 1, 10)
    assert total == 30 and len(first) == 13 and len(second) == 10
    assert first[10] == first[0] == first[11]
    assert "AssetId" not in first[12]
    assert len(list(d.items("assets"))) == 30
