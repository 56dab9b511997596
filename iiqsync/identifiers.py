"""Column names made from IIQ custom-field names.

A custom-field name is data: it may be a SQL keyword, hold quotes and semicolons,
collide with another name after normalising, be blank, be emoji, or be longer than
the database allows. Names are reduced to letters, digits and underscores, cut to
the dialect's byte limit, de-duplicated against every name already taken, and
always reach SQL through SQLAlchemy's quoting, never pasted into SQL text.
"""

from __future__ import annotations

import re
import unicodedata

_NOT_WORD = re.compile(r"[^A-Za-z0-9_]+")


def normalise(display_name: str | None, fallback: str) -> str:
    """``'Asset Tag #'`` → ``'AssetTag'``; blank or unreadable → ``fallback``.

    Spaces are dropped (as the old tool did) so names read like the entity's own
    columns; accents are folded to ASCII; anything else that is not a letter,
    digit or underscore is dropped.
    """
    text = unicodedata.normalize("NFKD", display_name or "")
    text = text.encode("ascii", "ignore").decode("ascii")
    text = _NOT_WORD.sub("", text.replace(" ", ""))
    text = text.strip("_")
    if not text:
        return fallback
    if text[0].isdigit():
        text = "F" + text  # some databases reject names that start with a digit
    return text


def fit(name: str, max_bytes: int, suffix: str = "") -> str:
    """Cut ``name`` so that ``name + suffix`` fits in ``max_bytes`` (ASCII: 1 byte each)."""
    room = max_bytes - len(suffix.encode())
    return name.encode()[:room].decode("ascii", "ignore") + suffix


def allocate(display_name: str | None, fallback: str, taken: set[str], max_bytes: int) -> str:
    """A new column name for ``display_name`` that no name in ``taken`` (compared
    case-insensitively, as most databases do) already uses. Adds it to ``taken``."""
    lowered = {t.lower() for t in taken}
    base = fit(normalise(display_name, fallback), max_bytes)
    candidate = base
    n = 2
    while candidate.lower() in lowered:
        candidate = fit(base, max_bytes, f"_{n}")
        n += 1
    taken.add(candidate)
    return candidate
