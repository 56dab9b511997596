"""One SQLAlchemy engine per process, with the dialect's own settings.

Celery's prefork pool forks worker processes after the parent may have opened
connections; a connection must never be shared across a fork, so engines are
keyed by process id and a forked child builds its own.
"""

from __future__ import annotations

import os
import threading

import sqlalchemy as sa

from . import dialects
from .errors import ConfigError, RetriableError

_engines: dict[tuple[int, str], sa.Engine] = {}
_lock = threading.Lock()


def dialect_for(engine: sa.Engine) -> dialects.Dialect:
    name = engine.dialect.name
    if name == "oracle":
        if getattr(engine.dialect, "server_version_info", None) is None:
            with engine.connect():  # the version is known only once connected
                pass
        return dialects.OracleDialect(engine.dialect.server_version_info)
    return dialects.for_name(name)


def get_engine(url: str) -> sa.Engine:
    """The engine for ``url`` in this process (created on first use)."""
    key = (os.getpid(), url)
    engine = _engines.get(key)
    if engine is not None:
        return engine
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _create(url)
            _engines[key] = engine
    return engine


def _create(url: str) -> sa.Engine:
    try:
        parsed = sa.engine.make_url(url)
        dialect = dialects.for_name(parsed.get_backend_name())
        options = {"pool_pre_ping": True, **dialect.engine_options()}
        if parsed.get_backend_name() != "sqlite":
            options.setdefault("pool_recycle", 1800)
        engine = sa.create_engine(parsed, **options)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigError([f"[Database] ConnectionString cannot be used: {exc}"
                           + _driver_hint(url)]) from None
    sa.event.listen(engine, "connect", lambda conn, _rec: dialect.on_connect(conn))
    return engine


# What to write instead of the URL prefixes people most often try.
_DRIVER_HINTS = {
    "postgres": "write postgresql+psycopg2://user:pass@host/db",
    "postgresql": "",
    "mysql": "write mysql+pymysql://user:pass@host/db (PyMySQL is installed)",
    "mariadb": "write mariadb+pymysql://user:pass@host/db (PyMySQL is installed)",
    "mssql": "install the driver: pip install .[mssql] (pyodbc and an ODBC driver)",
    "oracle": "install the driver: pip install .[oracle], and write oracle+oracledb://...",
}


def _driver_hint(url: str) -> str:
    scheme = url.split("://", 1)[0].lower()
    backend, _, driver = scheme.partition("+")
    hint = _DRIVER_HINTS.get(backend, "")
    if backend in ("mysql", "mariadb") and driver == "pymysql":
        hint = ""
    return f"; {hint}" if hint else ""


def forget(url: str) -> None:
    """Close and forget this process's engine for ``url`` (e.g. before dropping its database)."""
    with _lock:
        for key in [k for k in _engines if k[1] == url]:
            _engines.pop(key).dispose()


def dispose_all() -> None:
    """Forget engines inherited from a parent process (call after fork)."""
    with _lock:
        for (pid, _url), engine in list(_engines.items()):
            if pid != os.getpid():
                engine.dispose(close=False)
                del _engines[(pid, _url)]


def is_connection_error(exc: BaseException) -> bool:
    """True for a lost or refused database connection (worth a retry)."""
    return isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)) and (
        getattr(exc, "connection_invalidated", False) or _looks_like_connection(exc)
    )


def _looks_like_connection(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("connection", "connect", "server has gone away",
                                   "lost", "timeout", "terminating", "refused"))


# Deadlock and serialisation failures: the database chose this transaction to roll
# back so that another could go on; the same work succeeds when run again.
_DEADLOCK_CODES = {1213, 1205, "40P01", "40001"}


def is_deadlock(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    if orig is None:
        return False
    code = getattr(orig, "pgcode", None) or (orig.args[0] if getattr(orig, "args", None) else None)
    return code in _DEADLOCK_CODES


def retriable(exc: BaseException) -> BaseException:
    """Wrap a lost-connection or deadlock error as RetriableError; return others unchanged."""
    if is_connection_error(exc):
        return RetriableError(f"database connection failed: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:300]}")
    if is_deadlock(exc):
        return RetriableError(f"database deadlock, will run again: "
                              f"{str(exc).splitlines()[0][:300]}")
    return exc
