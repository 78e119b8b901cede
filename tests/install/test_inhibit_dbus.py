"""The real ``systemd-inhibit`` against a fake logind on a private D-Bus: a lock takes logind's
*block* inhibitor on shutdown, sleep and the power and reboot keys, and its end drops it
(``agent/inhibit.py``; ``DBUS_SYSTEM_BUS_ADDRESS`` points the tool at the private bus)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.core.events import Command, ScheduleReceived, Window
from agent.hardware.pins import mock_factory
from agent.inhibit import WHAT, ShutdownInhibitor
from agent.runtime import Agent
from agent.store import StateDir
from tests.install.fake_logind import FakeLogind, private_bus

SITE = """\
site: {id: xa-thu, name: "Xã Thử"}
devices:
  codec: {role: codec, relay: {pin: 26}, order: 1, on_delay_s: 0, off_grace_s: 0}
  amplifier: {role: amplifier, relay: {pin: 21}, order: 2, on_delay_s: 0}
timing: {lead_min: 15}
"""


@pytest.fixture
def logind(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLogind]:
    assert shutil.which("systemd-inhibit"), "systemd-inhibit (package systemd) is needed"
    assert shutil.which("dbus-daemon"), "dbus-daemon (package dbus) is needed"
    with private_bus() as address:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
        fake = FakeLogind(address)
        try:
            yield fake
        finally:
            fake.close()


def test_hold_takes_a_block_inhibitor_and_release_drops_it(logind: FakeLogind) -> None:
    inh = ShutdownInhibitor(enabled=True)   # the real /usr/bin/systemd-inhibit
    assert logind.held() == []
    assert inh.hold("session s1 Họp")
    (held,) = logind.wait_for(1)
    assert held.mode == "block"
    assert held.what == WHAT == "shutdown:sleep:handle-power-key:handle-reboot-key"
    assert held.who == "diemcau" and held.why == "session s1 Họp"
    assert inh.held
    inh.release()
    assert held.released.wait(10), "logind still holds the inhibitor after release()"
    assert logind.held() == []


def test_a_new_reason_replaces_the_inhibitor(logind: FakeLogind) -> None:
    inh = ShutdownInhibitor(enabled=True)
    assert inh.hold("test t1")
    (first,) = logind.wait_for(1)
    assert inh.hold("session s2")
    assert first.released.wait(10)
    (second,) = logind.wait_for(1)
    assert second.why == "session s2"
    inh.release()
    assert second.released.wait(10)


def test_the_agent_holds_it_exactly_while_the_room_is_locked(logind: FakeLogind,
                                                             tmp_path: Path) -> None:
    agent = Agent(parse_config(SITE), mock_factory(), StateDir(tmp_path / "st"),
                  connect=False)
    agent.inhibitor = ShutdownInhibitor(enabled=True)
    agent.start()
    try:
        assert logind.held() == []
        now = time.time()
        agent.feed(ScheduleReceived((Window("s1", "session", now + 60, now + 3600, "Họp"),),
                                    "v1"))
        (held,) = logind.wait_for(1)
        assert (held.mode, held.what, held.why) == ("block", WHAT, "session s1 Họp")
        agent.feed(Command("c1", "complete_window", {"window_id": "s1"}))
        assert held.released.wait(10), "the lock ended but logind still blocks shutdown"
        assert logind.held() == []
    finally:
        agent.close()
