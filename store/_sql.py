"""Statement shapes the repositories share, each rule written once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")


async def fetch(conn: AsyncConnection, model: Callable[..., T], query: sa.Select[Any]) -> list[T]:
    """The query's rows as typed models (the selected columns are the model's fields)."""
    return [model(**r._mapping) for r in await conn.execute(query)]


def listing(table: sa.Table, order: sa.ColumnElement[Any], request_id: str | None) -> sa.Select[Any]:
    """A table's rows in order: every request's, or one request's."""
    query = sa.select(table).order_by(order)
    return query if request_id is None else query.where(table.c.request_id == request_id)


def once(table: sa.Table, key: sa.ColumnElement[bool], stamp: str, at: datetime, **values: Any) -> sa.Update:
    """Set a row's timestamp the first time only: a retry or a second call changes nothing."""
    return table.update().where(key, table.c[stamp].is_(None)).values({stamp: at, **values})
