"""A relay that does not switch is a ``relay_failed`` event, and the room's state follows what
the pin really shows: gpiozero mock pins whose writes raise or do not take."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from agent.core.events import LocalPowerRequest
from agent.hardware.pins import SteadyMockPin
from agent.runtime import Agent
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import site_config

CAMERA_PIN = 20


class FaultyPin(SteadyMockPin):
    """A mock pin that can fail as a real GPIO line does: ``raise`` (the write errors out,
    e.g. the chip is gone) or ``stuck`` (the write is accepted, the line does not move)."""

    fault: str | None = None

    def _set_state(self, value: Any) -> None:
        if self.fault == "raise":
            raise OSError(errno.EIO, "GPIO line write failed")
        if self.fault == "stuck":
            return
        super()._set_state(value)


def failed_events(agent: Agent) -> list[dict[str, Any]]:
    return [r.data for r in agent.outbox.pending() if r.kind == "relay_failed"]


@pytest.fixture
def agent(tmp_path: Path, broker: LocalBroker) -> Any:
    factory = MockFactory(pin_class=FaultyPin)
    a = Agent(site_config(broker), factory, StateDir(tmp_path / "st"), connect=False)
    a.start()
    try:
        yield a
    finally:
        a.close()


@pytest.mark.parametrize("fault", ["raise", "stuck"])
def test_a_relay_that_does_not_switch_is_reported_and_the_state_follows_the_pin(
        agent: Agent, fault: str, caplog: pytest.LogCaptureFixture) -> None:
    assert all(agent.state.relays.values())           # NC contacts: the room starts powered
    agent.board.factory.pin(CAMERA_PIN).fault = fault
    with caplog.at_level(logging.INFO):
        agent.feed(LocalPowerRequest(False, "cli"))   # amplifier, camera, codec off
    [ev] = failed_events(agent)
    assert ev["device"] == "camera" and ev["wanted"] is False and ev["actual"] is True
    assert ("GPIO line write failed" if fault == "raise" else "reads on after switching off") \
        in ev["error"]
    # The core's state, the state message and the saved state say what the pin shows.
    assert dict(agent.state.relays) == {"codec": False, "camera": True, "amplifier": False}
    assert agent.state_message()["devices"]["camera"]["power"] == "on"
    assert agent.store.load_room()["relays"]["camera"] is True
    line = next(r for r in caplog.records if "relay_failed" in r.getMessage())
    assert line.levelno == logging.ERROR and "camera" in line.getMessage()
    # The other relays went on switching: codec and amplifier are off.
    assert not agent.board.relays["codec"].power and not agent.board.relays["amplifier"].power


def test_the_pin_fixed_the_next_request_switches_it(agent: Agent) -> None:
    pin = agent.board.factory.pin(CAMERA_PIN)
    pin.fault = "stuck"
    agent.feed(LocalPowerRequest(False, "cli"))
    assert agent.state.relays["camera"] is True
    pin.fault = None
    agent.feed(LocalPowerRequest(False, "cli"))       # the core still sees it on: tries again
    assert agent.state.relays["camera"] is False and not agent.board.relays["camera"].power
    assert len(failed_events(agent)) == 1
