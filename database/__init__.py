"""Opening a database: one engine factory, SQLite's settings written once (store and key vault)."""

from ._engine import make_engine, writer

__all__ = ["make_engine", "writer"]
