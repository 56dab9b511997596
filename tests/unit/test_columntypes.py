"""Which existing column types keep what iiqsync stores (iiqsync.columntypes), with the
types as SQLAlchemy reflects them from each database's catalog."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle
from sqlalchemy.dialects import postgresql as pg

from iiqsync import entities as k
from iiqsync.columntypes import shortfall
from iiqsync.dialects import REGISTRY, for_name

KEEPS = None


def check(dialect: str, kind: str, current: sa.types.TypeEngine):
    ours = for_name(dialect)
    return shortfall(kind, ours.column_type(kind, 255), current, ours)


@pytest.mark.parametrize("dialect", sorted(set(REGISTRY) - {"mariadb"}))
@pytest.mark.parametrize("kind", k.KINDS)
def test_the_type_iiqsync_creates_keeps_its_own_values(dialect, kind):
    ours = for_name(dialect)
    wanted = ours.column_type(kind, 255)
    assert shortfall(kind, wanted, wanted, ours) is None
    assert shortfall(k.LONGTEXT, ours.custom_field_type(255), ours.custom_field_type(255),
                     ours) is None


@pytest.mark.parametrize("dialect, kind, current, why", [
    # The old tool's types (sqlalchemy_utils' UUIDType(binary=False), Date, Numeric).
    ("mysql", k.GUID, mysql.CHAR(32), "so it holds a 36-character GUID (it holds 32)"),
    ("oracle", k.GUID, oracle.CHAR(32), "so it holds a 36-character GUID (it holds 32)"),
    ("postgresql", k.GUID, pg.UUID(), KEEPS),
    ("mssql", k.GUID, mssql.UNIQUEIDENTIFIER(), KEEPS),
    ("mysql", k.DATETIME, mysql.DATE(), "so it keeps the time of day"),
    ("postgresql", k.DATETIME, sa.DATE(), "so it keeps the time of day"),
    ("mssql", k.DATETIME, sa.DATE(), "so it keeps the time of day"),
    ("oracle", k.DATETIME, oracle.DATE(), "so it keeps fractions of a second"),
    ("mysql", k.MONEY, mysql.DECIMAL(10, 0), "so it keeps 4 decimal places"),
    ("mssql", k.MONEY, sa.NUMERIC(18, 0), "so it keeps 4 decimal places"),
    ("postgresql", k.MONEY, pg.NUMERIC(), KEEPS),
    ("oracle", k.MONEY, oracle.NUMBER(), KEEPS),
    ("mysql", k.TEXT, mysql.VARCHAR(255), KEEPS),
    ("mysql", k.BOOL, mysql.TINYINT(display_width=1), KEEPS),
    ("mysql", k.INT, mysql.INTEGER(display_width=11), KEEPS),
    # Text columns keep anything whose text form fits, and text of any length
    # (its length is swap's to check against the staged values).
    ("postgresql", k.GUID, sa.VARCHAR(255), KEEPS),
    ("postgresql", k.GUID, sa.VARCHAR(32), "so it holds a 36-character GUID (it holds 32)"),
    ("mysql", k.DATETIME, mysql.TEXT(), KEEPS),
    ("mysql", k.DATETIME, mysql.VARCHAR(10), "so it holds timestamps to the microsecond"),
    ("oracle", k.DATETIME, oracle.VARCHAR2(255), "so it holds timestamps to the microsecond"),
    ("postgresql", k.TEXT, sa.VARCHAR(5), KEEPS),
    ("mysql", k.TEXT, mysql.ENUM("a", "b"), "so it holds text"),
    # Timestamps to the microsecond.
    ("mysql", k.DATETIME, mysql.DATETIME(), "so it keeps fractions of a second"),
    ("mysql", k.DATETIME, mysql.DATETIME(fsp=6), KEEPS),
    ("mysql", k.DATETIME, mysql.TIMESTAMP(fsp=6), "so it keeps fractions of a second"),
    ("postgresql", k.DATETIME, pg.TIMESTAMP(precision=3), "so it keeps fractions of a second"),
    ("postgresql", k.DATETIME, pg.TIMESTAMP(timezone=True), KEEPS),
    ("mssql", k.DATETIME, sa.DATETIME(), "so it keeps fractions of a second"),
    ("mssql", k.DATETIME, mssql.SMALLDATETIME(), "so it keeps fractions of a second"),
    ("mssql", k.DATETIME, mssql.DATETIME2(precision=6), KEEPS),
    ("oracle", k.DATETIME, oracle.TIMESTAMP(), KEEPS),
    # Numbers.
    ("mysql", k.MONEY, mysql.DECIMAL(12, 4), "so it holds amounts to 4 decimal places"),
    ("mysql", k.MONEY, mysql.DECIMAL(24, 6), KEEPS),
    ("mysql", k.MONEY, mysql.DOUBLE(), "so it holds amounts to 4 decimal places"),
    ("postgresql", k.MONEY, sa.INTEGER(), "so it holds amounts to 4 decimal places"),
    ("mysql", k.INT, mysql.SMALLINT(), "so it holds every 32-bit integer"),
    ("mysql", k.INT, mysql.TINYINT(display_width=1), "so it holds every 32-bit integer"),
    ("mysql", k.INT, mysql.INTEGER(unsigned=True), "so it holds every 32-bit integer"),
    ("mysql", k.INT, mysql.BIGINT(), KEEPS),
    ("oracle", k.INT, oracle.NUMBER(10, 0), KEEPS),
    ("oracle", k.INT, oracle.NUMBER(5, 0), "so it holds every 32-bit integer"),
    ("postgresql", k.INT, pg.DOUBLE_PRECISION(precision=53), KEEPS),
    ("postgresql", k.FLOAT, sa.REAL(), "so it holds double-precision numbers"),
    ("mysql", k.FLOAT, mysql.FLOAT(), "so it holds double-precision numbers"),
    ("mssql", k.FLOAT, sa.FLOAT(precision=53), KEEPS),
    ("oracle", k.FLOAT, oracle.FLOAT(binary_precision=126), KEEPS),
    ("oracle", k.FLOAT, oracle.BINARY_FLOAT(), "so it holds double-precision numbers"),
    ("postgresql", k.FLOAT, pg.NUMERIC(9, 6), "so it holds double-precision numbers"),
    # Booleans: a number takes them, except on PostgreSQL.
    ("mysql", k.BOOL, mysql.INTEGER(), KEEPS),
    ("mssql", k.BOOL, mssql.BIT(), KEEPS),
    ("oracle", k.BOOL, sa.INTEGER(), KEEPS),
    ("postgresql", k.BOOL, sa.INTEGER(), "so it holds true and false"),
    ("postgresql", k.BOOL, sa.VARCHAR(5), KEEPS),
    # Text in a column of another type.
    ("mysql", k.TEXT, mysql.INTEGER(), "so it holds text"),
    ("postgresql", k.LONGTEXT, pg.UUID(), "so it holds text"),
    ("postgresql", k.GUID, sa.INTEGER(), "so it holds a 36-character GUID"),
    # A type SQLAlchemy cannot read is left as it is.
    ("postgresql", k.DATETIME, sa.types.NullType(), KEEPS),
])
def test_shortfall(dialect, kind, current, why):
    assert check(dialect, kind, current) == why


@pytest.mark.parametrize("kind", k.KINDS)
@pytest.mark.parametrize("current", [sa.CHAR(32), sa.DATE(), sa.NUMERIC(10, 0), sa.VARCHAR(5),
                                     sa.BOOLEAN(), sa.INTEGER(), sa.types.NullType()])
def test_sqlite_keeps_values_whatever_the_declared_type(kind, current):
    """SQLite stores each value as given; only a column of numeric affinity turns text
    that reads as a number into that number (GUIDs and timestamps never do)."""
    textual = isinstance(current, (sa.String, sa.types.NullType))
    if kind in (k.TEXT, k.LONGTEXT) and not textual:
        assert "'007' into 7" in check("sqlite", kind, current)
    else:
        assert check("sqlite", kind, current) is None
