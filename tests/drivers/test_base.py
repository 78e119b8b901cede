"""The driver contract: error tree, registry, settings validation, port handling."""

from __future__ import annotations

import pytest

from agent.config import Device
from agent.drivers import (
    DRIVERS,
    BadReply,
    DeviceError,
    DeviceRefused,
    DeviceTimeout,
    PortGone,
    SettingsError,
    build_driver,
    check_device_settings,
    get_driver_class,
)
from agent.drivers.cisco_xapi import CiscoXapi
from agent.emulators import EMULATORS, CiscoEmulator


def test_each_error_is_also_a_builtin() -> None:
    assert issubclass(DeviceTimeout, DeviceError) and issubclass(DeviceTimeout, TimeoutError)
    assert issubclass(BadReply, ValueError)
    assert issubclass(PortGone, OSError)
    assert issubclass(SettingsError, ValueError)
    assert DeviceRefused("no", code="E13").code == "E13"


def test_every_driver_has_an_emulator_and_its_own_settings() -> None:
    assert set(DRIVERS) == set(EMULATORS)
    for name, cls in DRIVERS.items():
        assert cls.name == name
        assert cls.Settings.model_config.get("extra") == "forbid"


def test_unknown_driver_names_the_choices() -> None:
    with pytest.raises(SettingsError, match="cisco_xapi, extron_sis") as e:
        get_driver_class("cisco")
    assert e.value.problems[0].startswith("driver: unknown driver 'cisco'")


def test_every_settings_problem_with_its_field() -> None:
    problems = check_device_settings("cisco_xapi", {"usrname": "a", "login_probe_s": 0,
                                                    "login": "maybe"})
    assert sorted(p.split(":")[0] for p in problems) == [
        "settings.login", "settings.login_probe_s", "settings.usrname"]
    assert check_device_settings("cisco_xapi", {}) == []
    assert check_device_settings("sony_visca", {"address": 9}) == [
        "settings.address: Input should be less than or equal to 7"]


def test_bad_serial_settings() -> None:
    with pytest.raises(SettingsError, match=r"serial\.baudrate"):
        build_driver("extron_sis", url="/dev/ttyUSB0", baudrate=5)


def test_password_never_in_repr_or_errors() -> None:
    drv = build_driver("cisco_xapi", url="/dev/null-port", settings={"password": "hunter2"})
    assert "hunter2" not in repr(drv) + repr(drv.settings)
    with pytest.raises(SettingsError) as e:
        CiscoXapi.validate_settings({"password": 5})
    assert "5" not in str(e.value).replace("settings.password", "")


def test_missing_port_is_port_gone(tmp_path) -> None:
    drv = build_driver("extron_sis", url=str(tmp_path / "ttyUSB9"), device="amplifier")
    with pytest.raises(PortGone, match="amplifier: cannot open") as e:
        drv.ping()
    assert isinstance(e.value, OSError)
    drv.close()
    drv.close()


def test_open_close_context_and_repr() -> None:
    with CiscoEmulator(login_required=False) as emu:
        drv = build_driver("cisco_xapi", url=emu.url, baudrate=115200,
                           settings={"login": False}, device="codec")
        with drv:
            assert drv.is_open and "open" in repr(drv) and emu.url in repr(drv)
            assert drv.power_state() == "on"
        assert not drv.is_open and "closed" in repr(drv)
        drv.close()


def test_port_is_opened_exclusively() -> None:
    with CiscoEmulator(login_required=False) as emu:
        first = build_driver("cisco_xapi", url=emu.url, settings={"login": False})
        second = build_driver("cisco_xapi", url=emu.url, settings={"login": False})
        with first, pytest.raises(PortGone, match="exclusively"):
            second.open()


def test_built_from_a_site_config_device() -> None:
    with CiscoEmulator(password="pw") as emu:
        dev = Device.model_validate({
            "role": "codec", "relay": {"pin": 26}, "order": 1, "driver": "cisco_xapi",
            "serial": {"url": emu.url, "baudrate": 115200},
            "settings": {"username": "admin", "password": "pw", "login_probe_s": 0.1}})
        assert dev.driver is not None and dev.serial is not None
        drv = build_driver(dev.driver, url=dev.serial.url, baudrate=dev.serial.baudrate,
                           settings=dev.settings, device="codec")
        with drv:
            assert drv.power_state() == "on"


@pytest.mark.parametrize("settings", [[1, 2], "on", 5, ["ab"]])
def test_settings_that_are_not_a_mapping(settings) -> None:
    assert check_device_settings("extron_sis", settings) == [
        "settings: must be a mapping of setting: value"]
