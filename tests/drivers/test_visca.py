"""Sony VISCA driver against the VISCA emulator on a pty."""

from __future__ import annotations

import pytest

from agent.drivers import DeviceRefused, DeviceTimeout

from .conftest import FAST, FakeClock

ADDRESS_SET = bytes.fromhex("883001ff")
IF_CLEAR = bytes.fromhex("88010001ff")


def sent(p) -> list[bytes]:
    return [ex.received for ex in p.emu.log if ex.received]


def test_addresses_then_inquires(pair_factory) -> None:
    p = pair_factory("sony_visca", {"addressed": False})
    assert p.driver.power_state() == "on"
    assert sent(p)[:3] == [ADDRESS_SET, IF_CLEAR, bytes.fromhex("81090400ff")]
    assert p.emu.log[0].reply == bytes.fromhex("883002ff")


def test_power_on_and_standby_get_ack_and_completion(pair_factory) -> None:
    p = pair_factory("sony_visca")
    p.driver.standby()
    assert p.driver.power_state() == "standby"
    p.driver.wake()
    assert p.driver.power_state() == "on"
    assert bytes.fromhex("8101040003ff") in sent(p)
    ex = p.emu.wait_for(lambda ex: ex.received == bytes.fromhex("8101040002ff"))
    assert ex.reply == bytes.fromhex("9041ff9051ff")


def test_refused_while_initialising_then_readdressed(pair_factory, clock: FakeClock) -> None:
    p = pair_factory("sony_visca", {"boot_s": 8})
    assert p.driver.power_state() == "on"
    p.emu.power(False)
    p.emu.power(True)                           # Network Change 90 38 FF, address lost
    assert p.driver.power_state() == "booting"  # z0 60 41 FF: not executable
    with pytest.raises(DeviceRefused) as e:
        p.driver.wake()
    assert e.value.code == "41"
    clock.advance(8)
    assert p.driver.power_state() == "on"
    assert sent(p).count(ADDRESS_SET) == 2


def test_error_frames(pair_factory) -> None:
    p = pair_factory("sony_visca")
    with pytest.raises(DeviceRefused, match="syntax error") as e:
        p.driver.command("nonsense", 0x7E, 0x01)
    assert e.value.code == "02"
    p.emu.fail_next()
    with pytest.raises(DeviceRefused, match="buffer full"):
        p.driver.wake()
    with pytest.raises(DeviceRefused, match="length"):
        p.driver.command("too long", *([0x01] * 20))
    assert p.driver.power_state() == "on"


def test_no_camera_at_that_address(pair_factory) -> None:
    p = pair_factory("sony_visca", settings={"address": 3})
    with pytest.raises(DeviceRefused, match="chain has 1"):
        p.driver.power_state()


def test_unaddressed_camera_is_silent_until_addressed(pair_factory) -> None:
    p = pair_factory("sony_visca")
    p.driver.power_state()
    p.emu.call(lambda: setattr(p.emu, "address", None))   # lost without a Network Change
    with pytest.raises(DeviceTimeout):
        p.driver.power_state()
    assert p.driver.power_state() == "on"       # a timeout makes it address again


def test_network_change_during_a_command_readdresses(pair_factory) -> None:
    p = pair_factory("sony_visca")
    p.driver.power_state()
    answer = p.emu.handle

    def reboot_once(command: bytes) -> bytes:
        p.emu.handle = answer
        p.emu.address = None
        return bytes.fromhex("9038ff")          # the camera restarted as we asked

    p.emu.handle = reboot_once
    assert p.driver.power_state() == "on"
    assert sent(p).count(ADDRESS_SET) == 2


def test_network_change_right_after_an_answer_readdresses(pair_factory) -> None:
    p = pair_factory("sony_visca")
    p.driver.power_state()
    address_set = bytes([0x88, 0x30, 0x01, 0xFF])
    before = sum(ex.received == address_set for ex in p.emu.log)
    p.emu.follow_next_reply(bytes([0x90, 0x38, 0xFF]))     # another camera powered up
    p.driver.power_state()                      # the answer and the Network Change together
    p.driver.power_state()
    assert sum(ex.received == address_set for ex in p.emu.log) == before + 1


def test_ack_is_awaited_for_the_reply_timeout_only(pair_factory) -> None:
    """A silent camera fails a command after ``reply_timeout_s`` (no ACK), not after the
    long completion timeout."""
    p = pair_factory("sony_visca", settings={"completion_timeout_s": 30})
    p.driver.power_state()
    p.emu.silent = True
    with pytest.raises(DeviceTimeout, match=r"no reply to power on within 0\.15 s"):
        p.driver.wake()


def test_completion_after_the_ack_may_take_longer(pair_factory) -> None:
    p = pair_factory("sony_visca", {"completion_delay_s": FAST * 2},
                     {"completion_timeout_s": 5})
    p.driver.standby()                          # ACK at once, completion after 2 × FAST
    assert p.emu.on is False
    p.emu.completion_delay_s = 30               # the completion never comes in time
    p.driver.settings = p.driver.Settings.model_validate(
        {**p.driver.settings.model_dump(), "completion_timeout_s": FAST})
    with pytest.raises(DeviceTimeout, match="completion of power on"):
        p.driver.wake()


def test_address_set_refused_while_initialising_is_booting(pair_factory,
                                                           clock: FakeClock) -> None:
    """A camera that answers the Address Set broadcast with ``90 61 41 FF`` while it
    initialises is booting, not silent."""
    p = pair_factory("sony_visca", {"boot_s": 8, "address_set_while_booting": "refuse"})
    assert p.driver.power_state() == "on"
    p.emu.power(False)
    p.emu.power(True)                           # Network Change: the driver re-addresses
    assert p.driver.power_state() == "booting"
    assert p.emu.log[-1].reply == bytes.fromhex("906141ff")
    with pytest.raises(DeviceRefused) as e:
        p.driver.wake()
    assert e.value.code == "41"
    clock.advance(8)
    assert p.driver.power_state() == "on"
