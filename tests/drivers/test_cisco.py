"""Cisco xAPI driver against the Cisco emulator on a pty."""

from __future__ import annotations

import pytest

from agent.drivers import BadReply, DeviceRefused, DeviceTimeout
from agent.drivers.base import CallInfo

from .conftest import FakeClock


def test_login_echo_off_and_standby_state(pair_factory) -> None:
    p = pair_factory("cisco_xapi")
    assert p.driver.power_state() == "on"
    assert p.emu.received()[:5] == ["", "admin", "s3cret", "Echo off", "xStatus Standby State"]


def test_standby_and_wake(pair_factory) -> None:
    p = pair_factory("cisco_xapi")
    p.driver.standby()
    assert p.driver.power_state() == "standby"
    p.driver.power_on()
    assert p.driver.power_state() == "on"
    assert "xCommand Standby Activate" in p.emu.received()
    assert "xCommand Standby Deactivate" in p.emu.received()


def test_entering_standby_is_not_yet_standby(pair_factory, clock: FakeClock) -> None:
    p = pair_factory("cisco_xapi", {"entering_standby_s": 10})
    p.driver.standby()
    assert p.emu.standby_state == "EnteringStandby"
    assert p.driver.power_state() == "unknown"
    clock.advance(10)
    assert p.emu.standby_state == "Standby"
    assert p.driver.power_state() == "standby"


def test_halfwake_is_not_awake(pair_factory) -> None:
    p = pair_factory("cisco_xapi", {"standby": True})
    p.emu.halfwake()
    assert p.emu.standby_state == "Halfwake"
    assert p.driver.power_state() == "unknown"
    p.driver.xapi("xCommand Standby Activate")
    p.driver.xapi("xCommand Standby Halfwake")
    assert p.driver.power_state() == "unknown"
    p.driver.wake()
    assert p.driver.power_state() == "on"


@pytest.mark.parametrize("firmware", ["ce", "tc"])
def test_both_ok_placements(pair_factory, firmware: str) -> None:
    p = pair_factory("cisco_xapi", {"firmware": firmware, "standby": True})
    assert p.driver.power_state() == "standby"
    assert p.driver.call_state() is None
    p.emu.start_call(remote="UBND xã Tân Đoàn")
    assert p.driver.call_state() == CallInfo("1", "Connected", "UBND xã Tân Đoàn", "incoming")


def test_no_login_required(pair_factory) -> None:
    p = pair_factory("cisco_xapi", {"login_required": False}, {"login": False})
    assert p.driver.power_state() == "on"
    assert p.emu.received()[0] == "Echo off"


def test_already_logged_in_after_reconnect(pair_factory) -> None:
    p = pair_factory("cisco_xapi")
    p.driver.power_state()
    p.driver.close()
    p.emu.clear_log()
    assert p.driver.power_state() == "on"       # probe finds no prompt, carries on
    assert p.emu.received() == ["", "Echo off", "xStatus Standby State"]


def test_wrong_password_is_refused(pair_factory) -> None:
    p = pair_factory("cisco_xapi", settings={"password": "wrong"})
    with pytest.raises(DeviceRefused) as e:
        p.driver.power_state()
    assert e.value.code == "login"


def test_logs_in_again_after_a_reboot(pair_factory) -> None:
    p = pair_factory("cisco_xapi")
    p.driver.standby()
    p.emu.power(False)
    p.emu.power(True)                           # boot_s=0: up at once, logged out, awake
    assert p.driver.power_state() == "on"
    assert p.emu.received().count("s3cret") == 2


def test_standby_refused_in_call(pair_factory) -> None:
    p = pair_factory("cisco_xapi")
    p.emu.start_call()
    with pytest.raises(DeviceRefused, match="Not allowed while in call"):
        p.driver.standby()
    assert p.driver.power_state() == "on"       # the session survives a refusal


def test_unknown_command_is_refused(pair_factory) -> None:
    p = pair_factory("cisco_xapi")
    with pytest.raises(DeviceRefused) as e:
        p.driver.xapi("xStatus Nonsense")
    assert e.value.code == "not-recognized"
    p.emu.fail_next()
    with pytest.raises(DeviceRefused):
        p.driver.power_state()
    assert p.driver.power_state() == "on"


def test_silent_while_booting(pair_factory, clock: FakeClock) -> None:
    p = pair_factory("cisco_xapi", {"boot_s": 60, "boot_noise": True})
    p.emu.power(False)
    p.emu.power(True)
    with pytest.raises((DeviceTimeout, BadReply)):   # silence, or the boot noise
        p.driver.power_state()
    clock.advance(60)
    assert p.driver.power_state() == "on"


def test_restart_command(pair_factory, clock: FakeClock) -> None:
    p = pair_factory("cisco_xapi", {"boot_s": 30})
    p.driver.restart()
    assert p.emu.booting
    clock.advance(30)
    assert p.driver.power_state() == "on"


@pytest.mark.parametrize("firmware", ["ce", "tc"])
@pytest.mark.parametrize("lines", [(0, 4), (4, 4), (1, 1)])
def test_garbage_inside_the_call_block_is_a_bad_reply(pair_factory, firmware: str,
                                                      lines: tuple[int, int]) -> None:
    """Noise over status lines of ``xStatus Call`` (between the block's start and its end):
    a BadReply, never "not in a call" nor a call missing what the lost line said. The next
    try reads the call."""
    p = pair_factory("cisco_xapi", {"firmware": firmware})
    p.emu.start_call(remote="UBND xã Tân Đoàn")
    first, last = lines
    if firmware == "tc":                        # OK comes first: the statuses are one down
        first, last = first + 1, last + 1
    p.emu.garble_next_reply(b"xStatus Call", first, last)
    with pytest.raises(BadReply):
        p.driver.call_state()
    assert p.driver.call_state() == CallInfo("1", "Connected", "UBND xã Tân Đoàn", "incoming")


def test_garbage_inside_the_standby_block_is_a_bad_reply(pair_factory) -> None:
    p = pair_factory("cisco_xapi")
    p.driver.power_state()
    p.emu.garble_next_reply(b"xStatus Standby", 0)
    with pytest.raises(BadReply):
        p.driver.power_state()
    assert p.driver.power_state() == "on"
