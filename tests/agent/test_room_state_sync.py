"""The room state's disk sync is off a command's path but before its PUBACK: saved unsynced
while the decision is carried out (a kill -9 still finds it), durable at the end of the
decision, and a torn unsynced file (a power cut before its sync) leaves the previous state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory

from agent.core.events import LocalPowerRequest
from agent.hardware.pins import SteadyMockPin
from agent.runtime import Agent
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import site_config

OLD = {"relays": {"camera": True}, "completed": ["w1"]}
NEW = {"relays": {"camera": False}, "completed": ["w1", "w2"]}


def test_an_unsynced_room_state_is_found_after_a_kill(tmp_path: Path) -> None:
    st = StateDir(tmp_path)
    st.save_room(OLD)
    st.save_room(NEW, sync=False)
    # The process dies here: the next start reads the newer state, and its sync keeps it.
    again = StateDir(tmp_path)
    assert again.load_room() == NEW
    again.sync_room()
    assert json.loads((tmp_path / "room-state.json").read_text()) == NEW
    assert not (tmp_path / ".room-state.json.tmp").exists()
    assert StateDir(tmp_path).load_room() == NEW


def test_a_torn_unsynced_room_state_leaves_the_synced_one(tmp_path: Path) -> None:
    st = StateDir(tmp_path)
    st.save_room(OLD)
    text = json.dumps(NEW).encode()
    # A power cut before the sync: the unsynced file holds part of it, or zeros.
    for torn in (text[: len(text) // 2], b"\0" * len(text), b""):
        (tmp_path / ".room-state.json.tmp").write_bytes(torn)
        assert StateDir(tmp_path).load_room() == OLD
    assert json.loads((tmp_path / "room-state.json").read_text()) == OLD


def test_sync_without_an_unsynced_save_changes_nothing(tmp_path: Path) -> None:
    st = StateDir(tmp_path)
    st.save_room(OLD)
    before = (tmp_path / "room-state.json").stat().st_mtime_ns
    st.sync_room()
    assert (tmp_path / "room-state.json").stat().st_mtime_ns == before
    assert st.load_room() == OLD


def test_a_decision_leaves_its_room_state_synced(tmp_path: Path, broker: LocalBroker) -> None:
    """The agent saves unsynced while it acts and syncs at the end of the decision: once
    ``feed`` returns (and so before any PUBACK) the state file is whole and durable, and no
    unsynced file is left."""
    a = Agent(site_config(broker), MockFactory(pin_class=SteadyMockPin),
              StateDir(tmp_path / "st"), connect=False)
    unsynced_while_acting: list[bool] = []
    real_set_power = a.board.set_power

    def set_power(device: str, on: bool) -> Any:
        unsynced_while_acting.append((tmp_path / "st" / ".room-state.json.tmp").exists())
        return real_set_power(device, on)

    a.board.set_power = set_power  # type: ignore[method-assign]
    a.start()
    try:
        a.feed(LocalPowerRequest(False, "cli"))
        assert unsynced_while_acting and all(unsynced_while_acting)
        assert not (tmp_path / "st" / ".room-state.json.tmp").exists()
        saved = json.loads((tmp_path / "st" / "room-state.json").read_text())
        assert saved["relays"] == dict(a.state.relays)
        assert not any(saved["relays"].values())
    finally:
        a.close()
