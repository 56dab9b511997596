"""pipeline.balanced_page_size: pages that fill whole rounds of the worker slots."""

from __future__ import annotations

import pytest

from iiqsync.pipeline import balanced_page_size


@pytest.mark.parametrize("total, most, slots, size, pages", [
    (100_000, 1000, 16, 893, 112),  # 100 pages = 6 rounds and 4 pages; 112 = 7 full rounds
    (100_000, 1000, 20, 1000, 100),  # 5 full rounds already
    (5_000, 1000, 16, 1000, 5),  # one round: left as it is
    (1_700, 100, 16, 100, 17),  # 17 -> 32 pages would be 88 % more requests
    (1_300, 100, 5, 87, 15),
    (1_000, 100, 3, 84, 12),
    (999, 1000, None, 1000, 1),
    (10_000, 100, 1, 100, 100),
])
def test_page_size(total, most, slots, size, pages):
    got = balanced_page_size(total, most, slots)
    assert got == size
    assert -(-total // got) == pages
    assert got <= most


@pytest.mark.parametrize("total", [1, 17, 999, 1001, 54_321, 1_000_000])
@pytest.mark.parametrize("slots", [2, 3, 8, 16, 33])
def test_rounds_are_full_or_the_size_is_kept(total, slots):
    size = balanced_page_size(total, 1000, slots)
    pages = -(-total // size)
    unbalanced = -(-total // 1000)
    assert size == 1000 or pages % slots == 0
    assert pages <= unbalanced * 1.25
    # Never more rounds than pages of the full size would take.
    assert -(-pages // slots) <= -(-unbalanced // slots)
