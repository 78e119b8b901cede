"""Storage: :mod:`district.store.base` (the interface), :mod:`district.store.sqlite` and
:mod:`district.store.postgres` (the same interface and rules on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from district.store.base import Store, StoreError

if TYPE_CHECKING:
    from district.config import Database

__all__ = ["Store", "StoreError", "is_postgres_url", "open_store"]


def is_postgres_url(target: object) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def open_store(target: Database | Path | str) -> Store:
    """The store for the config's ``database`` section (``url`` for PostgreSQL, else the
    SQLite ``path``), or for a SQLite path or a ``postgresql://`` URL given directly."""
    from district.config import Database

    if isinstance(target, Database):
        target = target.url if target.url is not None else target.path
    if is_postgres_url(target):
        from district.store.postgres import PostgresStore

        return PostgresStore(str(target))
    from district.store.sqlite import SqliteStore

    return SqliteStore(Path(str(target)))
