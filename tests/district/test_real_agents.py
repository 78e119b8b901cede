"""The recorder against a real Mosquitto and a REAL simulated agent process (``diemcau-agent run
--simulate``), not the scripted rooms: every event the agent numbers is stored exactly once,
through the agent's outbox replay (broker down while the room records events), a recorder
restart (the broker queues for its persistent session) and a broker restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.control import request
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import site_yaml, start_agent, status_when_up
from tests.district.helpers import ConsoleRig, rig

SITE = "vq-tan-doan"
SLOW = 90.0  # reconnect back-off after a broker outage


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    b = LocalBroker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


class Room:
    """One real agent process and its control socket."""

    def __init__(self, broker: LocalBroker, tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        cfg = tmp / "site.yaml"
        cfg.write_text(site_yaml(broker, site=SITE))
        self.state = tmp / "state"
        self.proc = start_agent(cfg, broker, self.state)
        status_when_up(self.state, self.proc)

    def ask(self, op: str) -> dict[str, Any]:
        assert self.proc.poll() is None, "the agent exited"
        return request(StateDir(self.state).socket_path, op)

    def last_seq(self) -> int:
        return int(self.ask("status")["state"]["last_seq"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def until(pred: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Re-check a condition of the agent process (it has no change feed) until it holds."""
    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        tick.wait(0.05)


def stored(r: ConsoleRig) -> list[int]:
    return sorted(e.seq for e in r.store.events(SITE))


def all_stored(r: ConsoleRig, room: Room, timeout: float = 30.0) -> int:
    """Wait until the console holds every seq up to (at least) the agent's last_seq, each once
    and without a gap; return the last one held. The agent may make more events while we wait
    (a link_restored, the end of a sequence): those count too."""
    last = room.last_seq()
    held: list[int] = []

    def complete() -> bool:
        held[:] = stored(r)
        return len(held) >= last and held == list(range(1, len(held) + 1))

    try:
        r.wait(complete, f"{SITE} events 1..{last} (or more) each once", timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}; stored: {held}") from None
    return len(held)


def test_every_event_of_a_real_agent_is_stored_once(broker: LocalBroker,
                                                    tmp_path: Path) -> None:
    with rig(broker, tmp_path / "console", [SITE]) as r:
        room = Room(broker, tmp_path / "room")
        try:
            r.wait_availability(SITE, "online")
            first = all_stored(r, room)
            assert first >= 1

            # 1. the broker goes away; the room records events in its outbox and replays them
            broker.stop()
            assert room.ask("on")["ok"]
            until(lambda: room.last_seq() > first, "events recorded offline")
            until(lambda: room.ask("status")["state"]["power"] == "on", "the room on")
            assert room.ask("off")["ok"]
            offline_last = room.last_seq()
            assert offline_last > first
            assert max(stored(r)) <= first  # nothing recorded offline has reached the console
            broker.start()
            after_replay = all_stored(r, room, SLOW)
            assert after_replay >= offline_last

            # 2. the recorder restarts; the broker queues for its persistent session meanwhile
            r.stop()
            assert room.ask("on")["ok"]
            until(lambda: room.last_seq() > after_replay, "events while the console is away")
            r.start()
            after_recorder = all_stored(r, room)
            assert after_recorder > after_replay

            # 3. the broker restarts under both of them
            broker.stop()
            broker.start()
            r.wait_availability(SITE, "online")
            assert room.ask("off")["ok"]
            until(lambda: room.last_seq() > after_recorder, "events after the broker restart",
                  SLOW)
            final = all_stored(r, room, SLOW)
            seqs = stored(r)
            assert seqs == list(range(1, final + 1))
            assert len(seqs) == len(set(seqs))
        finally:
            room.close()
