"""Yealink VC driver against the Yealink emulator on a pty."""

from __future__ import annotations

import pytest

from agent.drivers import DeviceRefused, DeviceTimeout

from .conftest import FakeClock


def test_sysstatus_maps_power_and_calls(pair_factory) -> None:
    p = pair_factory("yealink_vc")
    assert p.driver.power_state() == "on"
    assert p.driver.call_state() is None
    p.emu.start_call()
    call = p.driver.call_state()
    assert call is not None and call.status == "talking"
    p.emu.end_call()
    assert p.driver.sysstatus() == "finished"
    assert p.driver.call_state() is None


def test_standby_and_wake(pair_factory) -> None:
    p = pair_factory("yealink_vc")
    p.driver.standby()
    assert p.driver.power_state() == "standby"
    p.driver.wake()
    assert p.driver.power_state() == "on"


def test_configurable_commands(pair_factory) -> None:
    p = pair_factory("yealink_vc", {"standby_command": "sleep now"},
                     {"standby_command": "sleep now"})
    p.driver.standby()
    assert p.emu.state == "sleeping"


def test_version_line_after_boot(pair_factory, clock: FakeClock) -> None:
    p = pair_factory("yealink_vc", {"boot_s": 40})
    p.driver.open()
    p.emu.power(False)
    p.emu.power(True)
    with pytest.raises(DeviceTimeout):          # silent while booting
        p.driver.power_state()
    clock.advance(40)
    p.emu.wait_for(lambda ex: ex.answer.startswith("version"))
    assert p.driver.power_state() == "on"
    assert p.driver.version == "model:VC800 firmware:63.345.0.15"


def test_errors_are_refusals(pair_factory) -> None:
    p = pair_factory("yealink_vc", settings={"wake_command": "no such thing"})
    with pytest.raises(DeviceRefused, match="command not found"):
        p.driver.wake()
    p.emu.fail_next()
    with pytest.raises(DeviceRefused, match="illegal parameters"):
        p.driver.power_state()
