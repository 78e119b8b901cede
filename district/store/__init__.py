"""Storage: :mod:`district.store.base` (the interface), :mod:`district.store.sqlite`."""

from district.store.base import Store, StoreError

__all__ = ["Store", "StoreError", "open_store"]


def open_store(path: object) -> Store:
    """The store for a database path (SQLite today)."""
    from pathlib import Path

    from district.store.sqlite import SqliteStore

    return SqliteStore(Path(str(path)))
