"""Token ids the service has accepted: each (issuer, jti) once, until the token expires."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ._tables import used_tokens

_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class UsedTokens:
    @staticmethod
    async def use(conn: AsyncConnection, issuer: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        """Record the token id; False if it was already used (a replay). Expired ids go first, so
        the table holds only tokens still inside their few minutes of validity."""
        await conn.execute(used_tokens.delete().where(used_tokens.c.expires_at < now))
        # One statement that cannot fail on a duplicate: two replicas racing on one jti, one wins.
        insert = _INSERT[conn.dialect.name](used_tokens).values(issuer=issuer, jti=jti, expires_at=expires_at)
        result = await conn.execute(insert.on_conflict_do_nothing())
        return result.rowcount == 1
