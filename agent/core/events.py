"""Everything that can happen to a room, as small immutable values.

Button callbacks, paho's network thread, serial pollers and the clock only ever create one of
these and put it on the agent's single event queue; the core decides what it means.
Times are POSIX seconds (UTC), as given by the injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

WindowKind = Literal["test", "session"]
LocalSource = Literal["button", "cli", "system"]
HealthStatus = Literal["ok", "degraded", "fault", "unknown"]


@dataclass(frozen=True)
class Window:
    """A scheduled test or session: the room must be on and attended from ``start - lead``."""

    id: str
    kind: WindowKind
    start: float
    end: float
    title: str = ""


@dataclass(frozen=True)
class Tick:
    """Time has passed; deadlines may be due."""


@dataclass(frozen=True)
class ScheduleReceived:
    """The district's schedule for this room (replaces the previous one). ``issued_at`` is the
    district's own time stamp on it, if any: proof that at least that time has come."""

    windows: tuple[Window, ...]
    version: str = ""
    issued_at: float | None = None
    digest: str = ""  # sha256 of the payload as received, first 16 hex digits
    # Windows the district has marked complete, carried by the retained schedule so a room
    # whose link was down when ``complete_window`` was sent still learns it: (id, at, by).
    completed: tuple[tuple[str, float, str], ...] = ()


@dataclass(frozen=True)
class ClockStatus:
    """What the agent knows of its wall clock (``docs/time.md``): whether NTP synchronised it,
    and the latest trusted time saved on disk."""

    synced: bool
    last_known_good: float = 0.0


@dataclass(frozen=True)
class ButtonPressed:
    """A short press of the operator button."""


@dataclass(frozen=True)
class ButtonHeld:
    """The operator button held past its hold time: toggles room power."""


@dataclass(frozen=True)
class HelpRequested:
    """The operator asks the centre for help (a double press of the button, or the CLI)."""

    source: LocalSource


@dataclass(frozen=True)
class LocalPowerRequest:
    """Someone at the room asked to switch it on or off (CLI, or the Pi's own shutdown)."""

    on: bool
    source: LocalSource


@dataclass(frozen=True)
class SelfTestRequested:
    """Someone at the room asked for a self-test: every device switched off and on again,
    in order, each confirmed by its driver (``diemcau-agent selftest``)."""

    source: LocalSource


@dataclass(frozen=True)
class Command:
    """A validated command from the district; ``name`` picks the action, ``args`` its fields."""

    id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    sender: str = ""
    issued_at: float | None = None


@dataclass(frozen=True)
class BrokerConnection:
    """The link to the district broker went up or down."""

    connected: bool


@dataclass(frozen=True)
class DeviceReady:
    """A device answered after its relay closed (serial confirmation of power on).

    ``step`` is the :class:`~agent.core.room.AwaitReady` it answers: a late answer to a step
    a newer request replaced confirms nothing."""

    device: str
    step: int = 0


@dataclass(frozen=True)
class DeviceStandby:
    """A device confirmed it is in standby / shut down and may lose power. ``step``: as for
    :class:`DeviceReady`."""

    device: str
    step: int = 0


@dataclass(frozen=True)
class DeviceHealthChanged:
    """A device's health as judged by its driver's poller."""

    device: str
    status: HealthStatus
    reason: str = ""
    power: str | None = None      # e.g. "on", "standby", "off" as the device reports it
    in_call: bool | None = None
    model: str | None = None      # the device's own model name, where its protocol tells it
    serial: str | None = None     # the device's own serial number, where its protocol tells it


Event = (Tick | ScheduleReceived | ClockStatus | ButtonPressed | ButtonHeld | HelpRequested
         | LocalPowerRequest | SelfTestRequested | Command | BrokerConnection | DeviceReady
         | DeviceStandby | DeviceHealthChanged)
