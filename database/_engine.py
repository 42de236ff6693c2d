"""The one way Safeshare opens a database, for the store and the history-key vault alike.

SQLite is the one-machine backend: several processes (worker, CLI, codec server) share a file,
so its settings are what make that safe. PostgreSQL needs none of them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# How long a SQLite writer waits for another's lock before failing (the store's appenders queue).
BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str) -> AsyncEngine:
    sqlite = make_url(url).get_backend_name() == "sqlite"
    # pool_pre_ping: after a database restart or a dropped connection, the pool replaces dead
    # connections on checkout instead of failing the first statement on each. A SQLite file has
    # no connection to drop: there the ping would only be one more statement per checkout.
    engine = create_async_engine(url, pool_pre_ping=not sqlite)
    if sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The engine whose transactions take SQLite's write lock at BEGIN (PostgreSQL ignores it): a
    transaction that reads first and writes second could otherwise fail at once on a busy file."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own implicit transactions are turned off so that _sqlite_begin decides how each
    # one begins (SQLAlchemy's documented recipe). WAL lets the CLI read while a worker writes;
    # busy_timeout makes a second writer wait for the first instead of failing.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the database's write lock at BEGIN: what the audit chain's appenders need,
    # since a deferred transaction that reads the head and then writes can lose the race.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")
