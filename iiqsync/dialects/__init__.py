"""The dialect registry: one small class per database, chosen by the engine's URL."""

from __future__ import annotations

from .base import Dialect
from .mssql import MSSQLDialect
from .mysql import MySQLDialect
from .oracle import OracleDialect
from .postgresql import PostgreSQLDialect
from .sqlite import SQLiteDialect

REGISTRY: dict[str, type[Dialect]] = {
    "sqlite": SQLiteDialect,
    "postgresql": PostgreSQLDialect,
    "mysql": MySQLDialect,
    "mariadb": MySQLDialect,
    "mssql": MSSQLDialect,
    "oracle": OracleDialect,
}


def for_name(name: str) -> Dialect:
    """The registry entry for a SQLAlchemy dialect name; the generic one otherwise."""
    return REGISTRY.get(name, Dialect)()


__all__ = ["Dialect", "REGISTRY", "for_name"]
