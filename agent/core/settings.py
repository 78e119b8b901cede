"""The room's fixed facts, as the core sees them: devices in power-on order and timing rules.

Built once from the site config by the shell (``agent.runtime.settings_from_config``).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.clock import MIN_PLAUSIBLE_TIME
from agent.core.led import DEFAULT_CENTRE


@dataclass(frozen=True)
class DeviceSpec:
    """What the core needs to know of one device (from the site config)."""

    name: str
    order: int
    on_delay_s: float = 0.0
    off_grace_s: float = 0.0
    ready_timeout_s: float = 90.0
    confirm: bool = False  # True when a serial driver confirms power on / standby
    role: str = "other"
    self_help: bool = False  # power-cycle once when it stops answering outside a window


@dataclass(frozen=True)
class RoomSettings:
    """The room's fixed facts: devices in power-on order and the timing rules."""

    devices: tuple[DeviceSpec, ...]
    lead_s: float = 900.0
    hard_cap_s: float = 4 * 3600.0
    refusal_show_s: float = 8.0
    check_timeout_s: float = 120.0
    off_after_release_s: float | None = None  # switch off this long after a lock ends; None: never
    centre: tuple[str, str] = DEFAULT_CENTRE  # who the room answers to (vi, en), for the LED
    plausible_after: float = MIN_PLAUSIBLE_TIME  # no clock reading before this is real
    selftest_off_s: float = 2.0  # a self-test leaves each device without power this long

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.devices, key=lambda d: d.order))
        object.__setattr__(self, "devices", ordered)

    @property
    def names(self) -> tuple[str, ...]:
        """Device names in power-on order."""
        return tuple(d.name for d in self.devices)

    def spec(self, name: str) -> DeviceSpec:
        """The device called ``name``; ``KeyError`` if the room has none."""
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(name)
