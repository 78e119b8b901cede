"""RS-232 device drivers, chosen by name from the site config.

Example (what the runtime does for each device with a ``driver:``)::

    from agent.drivers import build_driver
    drv = build_driver(dev.driver, url=dev.serial.url, baudrate=dev.serial.baudrate,
                       settings=dev.settings, device="codec")

``build_driver`` raises :class:`~agent.drivers.base.SettingsError` listing every problem as
``settings.field: message``; :func:`check_device_settings` returns the same list without
raising, for config validation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from agent.drivers.base import (
    BadReply,
    CallInfo,
    DeviceError,
    DeviceIdentity,
    DeviceRefused,
    DeviceTimeout,
    Driver,
    DriverSettings,
    PortGone,
    PowerState,
    SerialSettings,
    SettingsError,
    settings_problems,
)
from agent.drivers.cisco_xapi import CiscoXapi
from agent.drivers.extron_sis import ExtronSis
from agent.drivers.generic_line import GenericLine
from agent.drivers.poly_group import PolyGroup
from agent.drivers.sony_visca import SonyVisca
from agent.drivers.yealink_vc import YealinkVc

DRIVERS: dict[str, type[Driver]] = {
    cls.name: cls for cls in (CiscoXapi, PolyGroup, YealinkVc, SonyVisca, ExtronSis, GenericLine)
}

__all__ = [
    "DRIVERS", "BadReply", "CallInfo", "DeviceError", "DeviceIdentity", "DeviceRefused",
    "DeviceTimeout",
    "Driver", "DriverSettings", "PortGone", "PowerState", "SerialSettings", "SettingsError",
    "build_driver", "check_device_settings", "get_driver_class",
]


def get_driver_class(name: str) -> type[Driver]:
    """The driver class registered under ``name``; SettingsError naming the choices if none."""
    try:
        return DRIVERS[name]
    except KeyError:
        raise SettingsError([f"driver: unknown driver {name!r}; choose one of "
                             f"{', '.join(sorted(DRIVERS))}"]) from None


def check_device_settings(name: str, settings: Mapping[str, Any] | None) -> list[str]:
    """Every problem with a device's ``driver`` and ``settings`` (empty list: fine)."""
    try:
        get_driver_class(name).validate_settings(settings or {})
    except SettingsError as e:
        return e.problems
    return []


def build_driver(name: str, *, url: str, baudrate: int = 9600,
                 settings: Mapping[str, Any] | None = None, device: str = "",
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None) -> Driver:
    """A (closed) driver for one device of the site config; raises SettingsError."""
    cls = get_driver_class(name)
    kw: dict[str, Any] = {}
    if clock is not None:
        kw["clock"] = clock
    if sleep is not None:
        kw["sleep"] = sleep
    try:
        serial_settings = SerialSettings(url=url, baudrate=baudrate)
    except ValidationError as e:
        raise SettingsError(settings_problems(e, "serial")) from None
    return cls(serial_settings, settings or {}, device=device, **kw)
