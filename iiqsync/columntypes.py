"""Whether a column that already exists keeps what iiqsync stores in it.

iiqsync adopts a final table it did not create (one the old IncidentIQ-Data-Sync
tool made, or a district's own) when the table has the entity's key. Such a
table's columns may be of types that lose what iiqsync stores (a DATE drops a
timestamp's time of day, a DECIMAL(10,0) rounds the cents away) or reject it (a
CHAR(32) is four characters short of a GUID). ``shortfall`` tells, reading the
rule from the type iiqsync itself creates for the column, so that finalize can
change such a column into exactly that type before the swap.

Bounded text columns holding text are the one case decided by the data instead:
whether they are long enough depends on the run's values, and ``swap`` widens
them by the longest staged value.
"""

from __future__ import annotations

import sqlalchemy as sa

from . import entities as k
from .dialects import Dialect

# Fraction-of-second digits iiqsync keeps (IIQ sends up to 7; the 7th is dropped).
TIMESTAMP_DIGITS = 6

# Characters in the longest text form of each kind's values, for a text column
# that holds a kind that is not text (an older tool's VARCHAR ids or dates):
# '-2147483648', 'false', '-1.2345678901234567e-308', '-123456789012345.1234',
# and a timestamp with seven fraction digits (SQL Server's DATETIME2).
TEXT_WIDTH = {k.GUID: 36, k.INT: 11, k.BOOL: 5, k.FLOAT: 24, k.MONEY: 21, k.DATETIME: 27}

_TEXT_KINDS = (k.TEXT, k.LONGTEXT)

# What a column of each kind must hold, for messages ("so it holds ...").
_HOLDS = {
    k.GUID: "a 36-character GUID",
    k.TEXT: "text",
    k.LONGTEXT: "text",
    k.INT: "every 32-bit integer",
    k.BOOL: "true and false",
    k.FLOAT: "double-precision numbers",
    k.MONEY: "amounts to 4 decimal places",
    k.DATETIME: "timestamps to the microsecond",
}


def shortfall(kind: str, wanted: sa.types.TypeEngine, current: sa.types.TypeEngine,
              dialect: Dialect) -> str | None:
    """None when a column of type ``current`` keeps every value of ``kind`` that
    iiqsync stores as ``wanted`` (the type it would create for the column);
    otherwise why the column must become ``wanted``, as the end of a sentence
    ("so it keeps the time of day")."""
    if isinstance(current, sa.types.NullType):
        return None  # a type SQLAlchemy cannot read (a domain, an extension's): left alone
    if not dialect.typed_columns:
        return _affinity_shortfall(kind, current)
    if _keeps(kind, wanted, current, dialect):
        return None
    return _why(kind, wanted, current)


def _keeps(kind: str, wanted: sa.types.TypeEngine, current: sa.types.TypeEngine,
           dialect: Dialect) -> bool:
    if isinstance(current, sa.Enum):
        return False  # a list of allowed words: it rejects the rest
    if isinstance(current, sa.String):
        if kind in _TEXT_KINDS:
            return True  # its length is checked against the staged values (swap._widen)
        if kind in dialect.inexact_as_text:
            return False
        return current.length is None or current.length >= TEXT_WIDTH[kind]
    if kind in _TEXT_KINDS:
        return False
    if kind == k.GUID:
        return isinstance(current, sa.Uuid)
    if kind == k.DATETIME:
        if not isinstance(current, sa.DateTime):
            return False
        digits = dialect.timestamp_digits(current)
        return digits is not None and digits >= TIMESTAMP_DIGITS
    if kind == k.BOOL:
        if isinstance(current, sa.Boolean):
            return True
        return dialect.numbers_take_booleans and isinstance(current, (sa.Integer, sa.Numeric))
    if kind == k.INT:
        return _holds_integers(current, _integer_bits(wanted))
    if kind == k.FLOAT:
        return _is_double(current)
    if kind == k.MONEY:
        return _holds_decimals(current, wanted.precision, wanted.scale)
    return True


def _integer_bits(t: sa.types.TypeEngine) -> int:
    if isinstance(t, sa.BigInteger):
        return 64
    if isinstance(t, sa.SmallInteger):
        return 16
    return {"TINYINT": 8, "SMALLINT": 16, "MEDIUMINT": 24, "BIGINT": 64}.get(
        str(getattr(t, "__visit_name__", "")).upper(), 32)


def _holds_integers(t: sa.types.TypeEngine, bits: int) -> bool:
    if isinstance(t, sa.Boolean):
        return False
    if isinstance(t, sa.Float):
        return _is_double(t) and bits <= 53
    if isinstance(t, sa.Numeric) and t.precision is not None:  # DECIMAL(p, s), NUMBER(p)
        return t.precision - (t.scale or 0) >= len(str(2 ** (bits - 1)))
    if isinstance(t, sa.Integer):
        return not getattr(t, "unsigned", False) and _integer_bits(t) >= bits
    return isinstance(t, sa.Numeric)  # unbounded


def _is_double(t: sa.types.TypeEngine) -> bool:
    if not isinstance(t, sa.Float):
        return False
    bits = getattr(t, "binary_precision", None) or t.precision
    if bits is not None:
        return bits > 24  # FLOAT(n) up to 24 binary digits is single precision
    return isinstance(t, sa.Double)


def _holds_decimals(t: sa.types.TypeEngine, precision: int | None, scale: int | None) -> bool:
    if not isinstance(t, sa.Numeric) or isinstance(t, sa.Float):
        return False  # integers drop the fraction; binary floats cannot hold 0.1 exactly
    if t.precision is None:
        return True  # unbounded (PostgreSQL's numeric, Oracle's NUMBER)
    if precision is None:
        return False
    have_scale = t.scale or 0
    return have_scale >= (scale or 0) and t.precision - have_scale >= precision - (scale or 0)


def _why(kind: str, wanted: sa.types.TypeEngine, current: sa.types.TypeEngine) -> str:
    if kind == k.DATETIME and isinstance(current, sa.Date):
        return "so it keeps the time of day"
    if kind == k.DATETIME and isinstance(current, sa.DateTime):
        return "so it keeps fractions of a second"
    if kind == k.MONEY and isinstance(current, sa.Numeric) and not isinstance(
            current, sa.Float) and (current.scale or 0) < (wanted.scale or 0):
        return f"so it keeps {wanted.scale} decimal places"
    if kind == k.GUID and isinstance(current, sa.String):
        return f"so it holds a 36-character GUID (it holds {current.length})"
    return f"so it holds {_HOLDS[kind]}"


def _affinity_shortfall(kind: str, current: sa.types.TypeEngine) -> str | None:
    """SQLite keeps every value as it is given, whatever the column is declared as,
    except that a column of numeric affinity turns text that reads as a number into
    that number ('007' becomes 7, '1.50' becomes 1.5). GUIDs and timestamps never
    read as numbers; text may."""
    if kind in _TEXT_KINDS and not isinstance(current, sa.String):
        return "so it keeps text as written (a column of numeric affinity turns '007' into 7)"
    return None
