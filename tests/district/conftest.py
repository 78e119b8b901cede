"""The console's tests on both stores: a real PostgreSQL (Debian's package, started once for
the session in a temporary directory on a free loopback port) beside the SQLite default.

Every test of ``test_recorder.py``, and every test of ``test_service.py`` that plays through a
rig, runs twice: ``[sqlite]`` and ``[postgres]`` (a fresh database each). Other tests open
SQLite files of their own and run once.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.localpg import LocalPostgres
from tests.district import helpers

BOTH_BACKENDS = ("tests.district.test_recorder", "tests.district.test_service")


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A PostgreSQL server for the whole session (started on first use)."""
    root = Path(tempfile.mkdtemp(prefix="dc-pg-"))
    pg = LocalPostgres(root)
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if (metafunc.module.__name__ in BOTH_BACKENDS and "store_backend" in metafunc.fixturenames
            and "rig" in metafunc.function.__code__.co_names):
        metafunc.parametrize("store_backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture(autouse=True)
def store_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which store the test's rigs use (SQLite unless parametrised)."""
    backend = getattr(request, "param", "sqlite")
    if backend == "postgres":
        pg: LocalPostgres = request.getfixturevalue("postgres")
        monkeypatch.setattr(helpers, "DATABASE", lambda _tmp: pg.new_database())
    return str(backend)
