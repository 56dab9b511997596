"""iiqsync.drift: when the reads of a run prove that no row was skipped."""

from __future__ import annotations

import pytest

from iiqsync.drift import BOUNDARY, TAIL, covered, probe_is_tail, probe_number, probe_window

STRIDE = 1 << 24


@pytest.mark.parametrize("rank", [1, 5, 15, 16, 50, 100, 1000, 4096, 99_000, 720_720])
def test_probe_window_holds_both_sides_of_the_boundary(rank):
    index, size = probe_window(rank)
    start = index * size
    assert start <= rank - 1 and rank < start + size
    assert 16 <= size <= 48
    # Room on both sides for rows that moved between the reads.
    assert min(rank - start, start + size - rank) >= min(rank, 8)


def test_probe_window_across_the_end_is_short():
    for total in (50, 100, 230, 1000, 720_720):
        index, size = probe_window(total)
        assert index * size < total < (index + 1) * size


def test_probe_numbers_are_negative_distinct_and_keep_the_tail_flag():
    numbers = {probe_number(page, kind, tail)
               for page in (0, 1, 7, STRIDE + 3) for kind in (BOUNDARY, TAIL)
               for tail in (False, True)}
    assert len(numbers) == 16 and all(n < 0 for n in numbers)
    assert probe_is_tail(probe_number(5, BOUNDARY, True))
    assert not probe_is_tail(probe_number(5, TAIL, False))


def pages(*items):
    return {p: n for p, n in enumerate(items)}


def test_one_pass_stitched_by_probes_is_proved():
    windows = pages(50, 50, 30)
    b1, b2 = probe_number(1, BOUNDARY, False), probe_number(2, BOUNDARY, False)
    windows.update({b1: 32, b2: 32})
    shared = [(b1, 0), (b1, 1), (b2, 1), (b2, 2)]
    assert covered(windows, 50, shared, STRIDE) == (True, "")


def test_a_boundary_not_stitched_is_a_gap():
    windows = pages(50, 50, 30)
    b1, b2 = probe_number(1, BOUNDARY, False), probe_number(2, BOUNDARY, False)
    windows.update({b1: 32, b2: 32})
    proved, why = covered(windows, 50, [(b1, 1), (b2, 1), (b2, 2)], STRIDE)
    assert not proved and "boundary" in why


def test_pages_alone_prove_nothing():
    proved, _ = covered(pages(50, 50, 30), 50, [], STRIDE)
    assert not proved


def test_a_full_last_page_needs_a_tail_read():
    windows = pages(50, 50)
    b1 = probe_number(1, BOUNDARY, False)
    windows[b1] = 32
    proved, why = covered(windows, 50, [(b1, 0), (b1, 1)], STRIDE)
    assert not proved and "end of the list" in why
    tail = probe_number(1, TAIL, True)
    windows[tail] = 20
    assert covered(windows, 50, [(b1, 0), (b1, 1), (tail, 1)], STRIDE)[0]


def test_a_single_short_page_is_the_whole_list():
    assert covered({0: 12}, 50, [], STRIDE) == (True, "")


def test_an_empty_first_page_means_nothing_lived_through_the_run():
    assert covered({0: 0}, 50, [], STRIDE) == (True, "")


def test_without_a_read_of_the_first_page_nothing_is_proved():
    proved, why = covered({1: 30}, 50, [], STRIDE)
    assert not proved and "first page" in why


def test_a_later_pass_closes_the_gap_an_earlier_left():
    first = {0: 50, 1: 30}  # not stitched: no probe read
    again = {STRIDE: 50, STRIDE + 1: 30}
    b = probe_number(STRIDE + 1, BOUNDARY, False)
    windows = {**first, **again, b: 32}
    assert not covered(windows, 50, [], STRIDE)[0]
    assert covered(windows, 50, [(b, STRIDE), (b, STRIDE + 1)], STRIDE)[0]
    # Pieces of different passes join too: page 0 of the first pass, page 1 of the second.
    assert covered(windows, 50, [(b, 0), (b, STRIDE + 1)], STRIDE)[0]
