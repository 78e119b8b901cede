"""Shared fixtures: a real Mosquitto on a free port, with the project's own local config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.local import LocalBroker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A running loopback Mosquitto; tests may stop, kill and start it again."""
    b = LocalBroker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()
