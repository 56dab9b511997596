"""Proving that offset paging under drift lost no row.

IIQ lists are read by offset (``$p``, ``$s``) and sorted on their unique key. A row
inserted or deleted above a page while the run reads the list shifts that page: a
row can be read twice, or slide across a page boundary and be read by no page.
TotalRows cannot see every case (an insert and a delete cancel out), so the check
here works on the keys themselves.

Every read — a page or a small *probe* — is a window: the rows at consecutive
ranks of the sorted list at the moment it was read. A row that exists during the
whole run and whose key lies between a window's first and last key is in that
window. Two windows that share a key therefore cover, together, every such row
between the smaller first key and the larger last key. So when the windows linked
by shared keys include a *head* (a read from rank 0) and a *tail* (a short, non-empty
read: the list ended inside it), every row that existed for the whole run was read.

Pages of one pass never share keys, so each page ``p >= 1`` is followed by a probe:
a small window around rank ``p * PageSize`` that overlaps page ``p - 1`` and page
``p`` even when a few rows moved between the reads. When the last page is full, a
tail probe reads across the end of the list. Probes are staged like pages, under
negative page numbers, so a page's copy of a row wins over a probe's.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from . import schema

# Probe sizes to choose from: large enough to absorb a few moved rows, small enough
# to cost little next to a page.
PROBE_SIZES = range(16, 49)

BOUNDARY, TAIL = 0, 1


def probe_window(rank: int) -> tuple[int, int]:
    """``(page index, page size)`` of a small window holding ranks ``rank - 1`` and
    ``rank``, with ``rank`` as near its middle as the sizes allow."""
    best = None
    for size in PROBE_SIZES:
        offset = rank % size
        if offset == 0:
            continue
        margin = min(offset, size - offset)
        if best is None or margin > best[0]:
            best = (margin, size)
    size = best[1]
    return rank // size, size


def probe_number(page: int, kind: int, tail: bool) -> int:
    """The staging page number of a probe made after page ``page`` (its full
    number, pass included). ``tail``: the probe was short and not empty."""
    return -(4 * page + 2 * kind + int(tail) + 1)


def is_probe(number: int) -> bool:
    return number < 0


def probe_is_tail(number: int) -> bool:
    return bool((-number - 1) & 1)


def covered(windows: dict[int, int], page_size: int, shared: Iterable[tuple[int, int]],
            stride: int) -> tuple[bool, str]:
    """Whether the reads prove that every row that existed for the whole run was read.

    ``windows`` maps each finished read (page or probe number) to how many items IIQ
    returned; ``shared`` lists pairs of reads that returned a common key; page ``n``
    of a pass is ``pass * stride + n``. Returns ``(proved, why not)``."""
    parent = {w: w for w in windows}

    def root(w):
        while parent[w] != w:
            parent[w] = parent[parent[w]]
            w = parent[w]
        return w

    for a, b in shared:
        if a in parent and b in parent:
            parent[root(a)] = root(b)
    heads, tails = set(), set()
    for number, items in windows.items():
        if is_probe(number):
            if probe_is_tail(number) and items:
                tails.add(root(number))
        elif number % stride == 0:
            if items == 0:
                return True, ""  # the list was empty then: no row lived through the run
            heads.add(root(number))
        if not is_probe(number) and 0 < items < page_size:
            tails.add(root(number))
    if heads & tails:
        return True, ""
    if not heads:
        return False, "no read of the first page"
    if not tails:
        return False, "no read reached the end of the list"
    return False, "rows moved across a page boundary between reads"


def read_links(conn: sa.Connection, stage: sa.Table, key: str, stride: int,
               sort_key=lambda column: column) -> tuple[list[tuple[int, int]], int]:
    """What finalize needs of the staged keys, from one pass over them (one sort).

    Returns ``(shared, moved)``. ``shared`` pairs staged reads that hold a common
    key: each read with the lowest-numbered read of each of its keys. ``moved``
    counts the rows that moved under the run as its first pass saw them: copies
    that pass's pages read twice, plus rows it missed that a probe or a later pass
    found. ``sort_key`` wraps the key column for the sort (the dialect's: a
    byte-order collation where the database has one)."""
    page = stage.c[schema.PAGE_COLUMN]
    k = sort_key(stage.c[key])
    in_first_pass = sa.case((sa.and_(page >= 0, page < stride), 1), else_=0)
    per_row = sa.select(
        page.label("page"),
        sa.func.min(page).over(partition_by=k).label("first"),
        sa.func.sum(in_first_pass).over(partition_by=k).label("first_pass_copies"),
        in_first_pass.label("in_first_pass"),
    ).subquery()
    # A key's lowest-numbered copy stands for the key (a read holds a key once);
    # every other copy links its read to that one.
    linked = per_row.c.page != per_row.c.first
    linked_page = sa.case((linked, per_row.c.page))
    linked_first = sa.case((linked, per_row.c.first))
    rows = conn.execute(
        sa.select(linked_page, linked_first, sa.func.count(),
                  sa.func.sum(per_row.c.in_first_pass),
                  sa.func.sum(sa.case((per_row.c.first_pass_copies > 0, 1), else_=0)))
        .group_by(linked_page, linked_first)).fetchall()
    shared, copies, keys, keys_in_first_pass = [], 0, 0, 0
    for read, first, count, in_first, key_in_first in rows:
        copies += int(in_first or 0)
        if read is None:
            keys, keys_in_first_pass = int(count), int(key_in_first or 0)
        else:
            shared.append((int(read), int(first)))
    return shared, (copies - keys_in_first_pass) + (keys - keys_in_first_pass)
