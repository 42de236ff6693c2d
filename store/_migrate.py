"""Schema migrations (alembic), shipped inside the package so they run from an installed tree,
and the check on opening a store that its schema is the code's.

alembic is imported where it is used: every `safeshare` command imports the store, and most
never migrate anything (it would add a fifth of a second to each).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

import database

from ._errors import SchemaOutOfDate, StoreError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    from alembic.script import ScriptDirectory

    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


async def revisions(engine: AsyncEngine) -> tuple[str | None, str]:
    """(the database's revision, the code's head revision)."""
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        current = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    return current, head()


class UnmanagedSchema(StoreError):
    """Tables exist but alembic has never run here: a store made before migrations existed."""


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    if MigrationContext.configure(connection).get_current_revision() is None and inspect(connection).has_table(
        "audit"
    ):
        raise UnmanagedSchema(
            "this store was created before schema migrations: it holds development data only; "
            "move it aside (e.g. var/safeshare.db) and start again"
        )
    command.upgrade(_config(connection), revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    # One transaction holding the write lock on SQLite: two processes opening a fresh store at
    # once (a worker and the CLI) upgrade it once between them.
    async with database.writer(engine).begin() as conn:
        await conn.run_sync(_upgrade, revision)


async def prepare(engine: AsyncEngine, *, migrate: bool) -> None:
    """Before a store is used: upgrade its schema (migrate), or else refuse one behind the code's."""
    if migrate:
        await upgrade(engine)
        return
    current, code_head = await revisions(engine)
    if current != code_head:
        raise SchemaOutOfDate(current, code_head)


async def upgrade_database(url: str) -> tuple[str | None, str]:
    """`safeshare db upgrade`: bring the database at url to the current schema; (before, after)."""
    engine = database.make_engine(url)
    try:
        before, _ = await revisions(engine)
        await upgrade(engine)
        after, _ = await revisions(engine)
    finally:
        await engine.dispose()
    assert after is not None
    return before, after
