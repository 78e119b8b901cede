"""The settings-driven line driver against the generic emulator on a pty."""

from __future__ import annotations

import pytest
import yaml

from agent.drivers import DeviceRefused, SettingsError, check_device_settings
from agent.drivers.generic_line import GenericLine

from .conftest import GENERIC_SETTINGS


def test_power_commands_and_query(pair_factory) -> None:
    p = pair_factory("generic_line")
    assert p.driver.power_state() == "on"
    p.driver.standby()
    assert p.driver.power_state() == "standby"
    p.driver.wake()
    p.driver.ping()
    assert p.emu.received() == ["POWER?", "POWER STANDBY", "POWER?", "POWER ON", "PING"]


def test_error_regex_is_a_refusal(pair_factory) -> None:
    p = pair_factory("generic_line")
    p.emu.fail_next()
    with pytest.raises(DeviceRefused, match="ERROR"):
        p.driver.wake()


def test_ping_only_reports_unknown_power(pair_factory) -> None:
    settings = {k: v for k, v in GENERIC_SETTINGS.items() if k != "query_power"}
    p = pair_factory("generic_line", settings={**settings, "query_power": None})
    assert p.driver.power_state() == "unknown"


def test_missing_action_is_refused(pair_factory) -> None:
    p = pair_factory("generic_line", settings={"standby": None})
    with pytest.raises(DeviceRefused, match="no 'standby' command"):
        p.driver.standby()


def test_custom_terminator_and_replies(pair_factory) -> None:
    p = pair_factory(
        "generic_line",
        {"terminator": "\r", "state_reply": "PWR {state}", "on_cmd": "PWR 1"},
        {"send_terminator": "\\r", "on": {"send": "PWR 1", "expect": "OK"},
         "query_power": {"send": "POWER?", "on_regex": "PWR ON",
                         "standby_regex": "PWR STANDBY"}})
    p.driver.wake()
    assert p.driver.power_state() == "on"
    assert p.emu.log[0].received == b"PWR 1\r"


def test_site_config_yaml_with_bare_on_key() -> None:
    text = """
send_terminator: "\\r\\n"
on: {send: "POWER ON", expect: "^OK"}
ping: {send: PING, expect: PONG}
"""
    s = GenericLine.validate_settings(yaml.safe_load(text))
    assert s.on is not None and s.on.send == "POWER ON"
    assert s.send_terminator == "\r\n"


def test_every_settings_problem_has_its_field() -> None:
    problems = check_device_settings("generic_line", {
        "on": {"send": "X", "expect": "("},
        "query_power": {"send": "P?", "on_regex": "ON"},
        "colour": "red",
    })
    assert sorted(p.split(":")[0] for p in problems) == [
        "settings.colour", "settings.on.expect", "settings.query_power.standby_regex"]
    assert any("not a valid regular expression" in p for p in problems)


def test_needs_some_liveness_check() -> None:
    with pytest.raises(SettingsError, match="give 'ping' or 'query_power'"):
        GenericLine.validate_settings({"on": {"send": "X"}})
