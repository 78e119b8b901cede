"""Extron SIS driver against the Extron emulator on a pty."""

from __future__ import annotations

import pytest

from agent.drivers import DeviceRefused, DeviceTimeout

from .conftest import FakeClock


@pytest.mark.parametrize("style", ["bare", "tagged"])
def test_mute_is_standby(pair_factory, style: str) -> None:
    p = pair_factory("extron_sis", {"query_style": style})
    assert p.driver.power_state() == "on"
    p.driver.standby()
    assert p.emu.muted
    assert p.driver.power_state() == "standby"
    p.driver.wake()
    assert p.driver.power_state() == "on"
    assert p.emu.received() == ["Z", "1Z", "Z", "0Z", "Z"]


@pytest.mark.parametrize("style", ["bare", "tagged"])
def test_volume(pair_factory, style: str) -> None:
    p = pair_factory("extron_sis", {"query_style": style})
    p.driver.set_volume(82)
    assert p.emu.wait_for(lambda ex: ex.command == "82V").answer == "Vol082\r\n"
    assert p.driver.volume() == 82


def test_wake_volume(pair_factory) -> None:
    p = pair_factory("extron_sis", {"muted": True}, {"wake_volume": 60})
    p.driver.wake()
    assert (p.emu.muted, p.emu.volume) == (False, 60)


def test_errors_and_ping(pair_factory) -> None:
    p = pair_factory("extron_sis")
    with pytest.raises(DeviceRefused, match="E13") as e:
        p.driver.set_volume(150)
    assert e.value.code == "E13"
    p.driver.ping()
    assert p.driver.firmware() == "1.00"
    assert p.emu.received()[-1] == "Q"


def test_banner_after_boot(pair_factory, clock: FakeClock) -> None:
    p = pair_factory("extron_sis", {"boot_s": 3})
    p.driver.open()
    p.emu.power(False)
    p.emu.power(True)
    with pytest.raises(DeviceTimeout):
        p.driver.ping()
    clock.advance(3)
    p.emu.wait_for(lambda ex: ex.answer.startswith("(c)"))
    assert p.driver.power_state() == "on"       # the power loss unmuted it
    assert "MLA VC10 PLUS" in p.driver.banner
