"""Every event kind a room publishes, as one typed definition each (MQTT contract 2.0).

One frozen dataclass per kind: ``KIND`` is its name on the wire, the class docstring says when
it happens (one sentence: the docs' "when" column), the fields are its ``data``. Optional
fields are ``X | None = None`` and are left out of the wire when they have no value.
:func:`data` gives the JSON-ready ``data`` of an event; :data:`EVENT_TYPES` finds a kind's
class by name.

The envelope (``seq``, ``id``, ``ts``, ``window_id``, ``clock_trusted``, ``late``) is not
here: the core puts ``window_id`` and ``clock_trusted`` on its ``Emit``, the outbox adds the
rest. No pydantic here: the core stays light.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from agent.core.events import HealthStatus, LocalSource, WindowKind

StepOutcome = Literal["done", "confirmed", "timeout"]
ReleaseReason = Literal["completed", "hard_cap", "window_removed", "clock_moved_back"]
ReadyState = Literal["confirmed", "on_silent", "on", "off"]
UseWhat = Literal["in_call", "awake"]
Via = Literal["command", "schedule"]
SelftestOutcome = Literal["confirmed", "no_answer", "relay_only", "already_off", "relay_failed",
                          "not_done"]
SelftestRefusal = Literal["locked", "busy", "running"]


# --------------------------------------------------------------------------- core decisions


@dataclass(frozen=True)
class PowerRequested:
    """Someone at the room asked to switch it on or off, and the room does it."""

    KIND: ClassVar[str] = "power_requested"
    on: bool
    source: LocalSource


@dataclass(frozen=True)
class ShutdownRefused:
    """A local request to switch off was refused because a window locks the room."""

    KIND: ClassVar[str] = "shutdown_refused"
    source: LocalSource
    kind: WindowKind
    title: str


@dataclass(frozen=True)
class HelpRequested:
    """The operator asked the centre for help (a double press, or ``diemcau-agent help``)."""

    KIND: ClassVar[str] = "help_requested"
    source: LocalSource


@dataclass(frozen=True)
class PowerSequenceStarted:
    """A power sequence begins (reason ``window:<id>``, ``local:<source>``,
    ``district:<command id>``, ``override:<command id>``, ``self_help:<device>`` or
    ``after_window:<id>``)."""

    KIND: ClassVar[str] = "power_sequence_started"
    on: bool
    reason: str
    devices: tuple[str, ...]


@dataclass(frozen=True)
class PowerStep:
    """One device of a sequence is done: its relay moved and its driver answered, or not
    (``elapsed_s`` on the monotonic clock)."""

    KIND: ClassVar[str] = "power_step"
    device: str
    on: bool
    outcome: StepOutcome
    elapsed_s: float
    reason: str


@dataclass(frozen=True)
class PowerSequenceFinished:
    """Every device of a sequence is done (``elapsed_s`` on the monotonic clock)."""

    KIND: ClassVar[str] = "power_sequence_finished"
    on: bool
    reason: str
    elapsed_s: float


@dataclass(frozen=True)
class PowerSequenceCancelled:
    """A newer request, or the lock, replaced a running sequence."""

    KIND: ClassVar[str] = "power_sequence_cancelled"
    on: bool
    reason: str
    replaced_by: str
    device: str | None = None


@dataclass(frozen=True)
class WindowPowerUp:
    """The room powers itself up for a window, at ``start - lead`` (again after a restart
    that found it not on)."""

    KIND: ClassVar[str] = "window_power_up"
    kind: WindowKind
    title: str
    start: str


@dataclass(frozen=True)
class ReadyDevice:
    """One device at a window's start (part of :class:`WindowReady`)."""

    relay: bool
    state: ReadyState
    health: HealthStatus


@dataclass(frozen=True)
class WindowReady:
    """A window's start came while it locks the room: how ready each device was."""

    KIND: ClassVar[str] = "window_ready"
    start: str
    on_by_start: bool
    devices: Mapping[str, ReadyDevice]


@dataclass(frozen=True)
class LockEngaged:
    """A window locks the room: no local switch-off until it is released."""

    KIND: ClassVar[str] = "lock_engaged"
    kind: WindowKind
    title: str
    start: str
    end: str
    cap: str


@dataclass(frozen=True)
class LockMoved:
    """The window locking the room was moved by a new schedule: these are its new times."""

    KIND: ClassVar[str] = "lock_moved"
    start: str
    end: str
    cap: str


@dataclass(frozen=True)
class LockReleased:
    """The lock ended."""

    KIND: ClassVar[str] = "lock_released"
    reason: ReleaseReason


@dataclass(frozen=True)
class LockOverridden:
    """The district switched a locked room (or one device) off with ``override``."""

    KIND: ClassVar[str] = "lock_overridden"
    kind: WindowKind
    command_id: str
    by: str
    device: str | None = None


@dataclass(frozen=True)
class WindowStarted:
    """The district started a window now, by command."""

    KIND: ClassVar[str] = "window_started"
    kind: WindowKind
    title: str
    start: str
    end: str
    by: str
    command_id: str


@dataclass(frozen=True)
class WindowCompleted:
    """The district marked a window complete, by command or in the schedule."""

    KIND: ClassVar[str] = "window_completed"
    by: str
    via: Via
    command_id: str | None = None


@dataclass(frozen=True)
class AfterWindowPowerOff:
    """The room switches itself off, ``after_s`` after a window's lock was released."""

    KIND: ClassVar[str] = "after_window_power_off"
    after_s: float


@dataclass(frozen=True)
class CheckIn:
    """A short press of the button while a window locks the room."""

    KIND: ClassVar[str] = "check_in"
    kind: WindowKind


@dataclass(frozen=True)
class OperatorCheckRequested:
    """The district asked whether someone is in the room; the LED asks for a press."""

    KIND: ClassVar[str] = "operator_check_requested"
    check_id: str
    timeout_s: float
    by: str


@dataclass(frozen=True)
class OperatorCheckAcknowledged:
    """Someone pressed the button in answer (``latency_s`` on the monotonic clock)."""

    KIND: ClassVar[str] = "operator_check_acknowledged"
    check_id: str
    latency_s: float


@dataclass(frozen=True)
class OperatorCheckUnanswered:
    """Nobody pressed in time, or a newer check replaced this one."""

    KIND: ClassVar[str] = "operator_check_unanswered"
    check_id: str
    reason: Literal["timeout", "superseded"]
    waited_s: float


@dataclass(frozen=True)
class ScheduleApplied:
    """A new schedule is in force."""

    KIND: ClassVar[str] = "schedule_applied"
    version: str
    digest: str
    windows: int


@dataclass(frozen=True)
class DeviceHealth:
    """A device's health, as its driver's poller judges it, changed."""

    KIND: ClassVar[str] = "device_health"
    device: str
    status: HealthStatus
    reason: str
    power: str | None = None
    in_call: bool | None = None


@dataclass(frozen=True)
class DeviceIdentityChanged:
    """A device reports another model or serial number than the one the room knew (never on
    the first sighting)."""

    KIND: ClassVar[str] = "device_identity_changed"
    device: str
    model: str | None = None
    serial: str | None = None
    was_model: str | None = None
    was_serial: str | None = None


@dataclass(frozen=True)
class SelfHelpPowerCycle:
    """Outside every window, a faulty device with ``self_help`` is switched off and on once."""

    KIND: ClassVar[str] = "self_help_power_cycle"
    device: str
    reason: str


@dataclass(frozen=True)
class SelfHelpWithheld:
    """The same fault inside a window: nothing is cut automatically, the district decides."""

    KIND: ClassVar[str] = "self_help_withheld"
    device: str
    reason: str


@dataclass(frozen=True)
class UnscheduledUse:
    """A codec in a call, or awake, outside every window and its after-window time."""

    KIND: ClassVar[str] = "unscheduled_use"
    device: str
    what: UseWhat


@dataclass(frozen=True)
class UnscheduledUseEnded:
    """That unscheduled use stopped."""

    KIND: ClassVar[str] = "unscheduled_use_ended"
    device: str
    what: UseWhat
    duration_s: float


# --------------------------------------------------------------------------- agent shell


@dataclass(frozen=True)
class AgentStarted:
    """The agent started (after a reboot or power cut the relays are as the boot left them)."""

    KIND: ClassVar[str] = "agent_started"
    agent_version: str
    after_reboot: bool
    previous_stop: Literal["clean", "crash", "power_loss_or_reboot"]
    relays: Mapping[str, bool]
    last_alive_at: str | None = None
    locked_by: str | None = None


@dataclass(frozen=True)
class AgentStopping:
    """The agent stops cleanly (every clean stop, before ``offline``)."""

    KIND: ClassVar[str] = "agent_stopping"
    reason: Literal["signal", "system_shutdown", "reload_restart", "error"]
    system_shutdown: bool


@dataclass(frozen=True)
class LinkRestored:
    """The link to the broker came back (every reconnect after this run's first connect)."""

    KIND: ClassVar[str] = "link_restored"
    down_since: str
    down_s: float
    reconnects: int


@dataclass(frozen=True)
class ScheduleRejected:
    """A schedule message could not be used; the previous schedule stays (once per digest)."""

    KIND: ClassVar[str] = "schedule_rejected"
    digest: str
    problems: tuple[str, ...]
    version: str | None = None


@dataclass(frozen=True)
class ScheduleCacheFailed:
    """The schedule could not be saved to disk (it still applies until a restart)."""

    KIND: ClassVar[str] = "schedule_cache_failed"
    error: str


@dataclass(frozen=True)
class RelayFailed:
    """A relay did not take the level the core asked for."""

    KIND: ClassVar[str] = "relay_failed"
    device: str
    wanted: bool
    error: str
    actual: bool | None = None


@dataclass(frozen=True)
class ConfigReloaded:
    """A changed site config was taken into use without a restart."""

    KIND: ClassVar[str] = "config_reloaded"
    config_hash: str
    applied: tuple[str, ...]


@dataclass(frozen=True)
class ConfigReloadRefused:
    """A changed site config was not taken into use; the running one stays."""

    KIND: ClassVar[str] = "config_reload_refused"
    problems: tuple[str, ...]


@dataclass(frozen=True)
class EventsDropped:
    """The disk outbox hit a bound: every ``seq`` in ``first_seq..last_seq`` not yet received
    will never come."""

    KIND: ClassVar[str] = "events_dropped"
    count: int
    first_seq: int
    last_seq: int
    reason: str


@dataclass(frozen=True)
class OutboxReset:
    """The outbox file was unreadable or behind and was replaced (numbering continues above
    every number used)."""

    KIND: ClassVar[str] = "outbox_reset"
    reason: str
    error: str
    moved_to: str
    durable: bool


@dataclass(frozen=True)
class HaCommandRefused:
    """A message on a Home Assistant command topic was not taken (unknown payload, device or
    topic, or a command the room does not allow Home Assistant); nothing changed."""

    KIND: ClassVar[str] = "ha_command_refused"
    topic: str
    payload: str
    reason: str


@dataclass(frozen=True)
class SelftestStarted:
    """An operator started the room's self-test outside any window: each device in
    ``devices`` is switched off and on again, in order, and its driver asked to confirm each."""

    KIND: ClassVar[str] = "selftest_started"
    source: LocalSource
    devices: tuple[str, ...]


@dataclass(frozen=True)
class SelftestRefused:
    """A self-test was refused: a window locks the room (``kind``, ``title``), a power
    sequence is running, or a self-test already is."""

    KIND: ClassVar[str] = "selftest_refused"
    source: LocalSource
    reason: SelftestRefusal
    kind: WindowKind | None = None
    title: str | None = None


@dataclass(frozen=True)
class SelftestDevice:
    """One device of a self-test is done: how its switch-off and its switch-on were
    confirmed (``confirmed`` by its driver's power query, ``relay_only`` for a device without
    a serial link, ``no_answer``, ``relay_failed`` when its relay pin did not open), and
    whether its relay is closed at the end."""

    KIND: ClassVar[str] = "selftest_device"
    device: str
    ok: bool
    off: SelftestOutcome
    on: SelftestOutcome
    relay: bool


@dataclass(frozen=True)
class SelftestFinished:
    """A self-test ended: ``failed`` names the devices that did not pass; ``interrupted_by``
    the request or window that stopped it early, or ``restart`` when the agent stopped
    during it (told at its first step after the restart; then ``elapsed_s`` is from the wall
    clock, else from the monotonic one)."""

    KIND: ClassVar[str] = "selftest_finished"
    ok: bool
    failed: tuple[str, ...]
    elapsed_s: float
    interrupted_by: str | None = None


CORE_EVENTS: tuple[type, ...] = (
    PowerRequested, ShutdownRefused, HelpRequested, PowerSequenceStarted, PowerStep,
    PowerSequenceFinished, PowerSequenceCancelled, WindowPowerUp, WindowReady, LockEngaged,
    LockMoved, LockReleased, LockOverridden, WindowStarted, WindowCompleted,
    AfterWindowPowerOff, CheckIn, OperatorCheckRequested, OperatorCheckAcknowledged,
    OperatorCheckUnanswered, ScheduleApplied, DeviceHealth, DeviceIdentityChanged,
    SelfHelpPowerCycle, SelfHelpWithheld, UnscheduledUse, UnscheduledUseEnded,
    SelftestStarted, SelftestRefused, SelftestDevice, SelftestFinished,
)
"""The kinds the decision core (:mod:`agent.core`) makes."""

SHELL_EVENTS: tuple[type, ...] = (
    AgentStarted, AgentStopping, LinkRestored, ScheduleRejected, ScheduleCacheFailed,
    RelayFailed, ConfigReloaded, ConfigReloadRefused, EventsDropped, OutboxReset,
    HaCommandRefused,
)
"""The kinds the agent shell (:mod:`agent.runtime`, the outbox) makes."""

EVENT_TYPES: dict[str, type] = {t.KIND: t for t in (*CORE_EVENTS, *SHELL_EVENTS)}  # type: ignore[attr-defined]
"""Every event kind of the contract, by its name on the wire."""


def data(ev: Any) -> dict[str, Any]:
    """The event's ``data`` as JSON-ready values: fields without a value left out, tuples as
    lists, nested parts as objects."""
    if type(ev) not in EVENT_TYPES.values():
        raise TypeError(f"{type(ev).__name__} is not an event kind of the contract")
    return {f.name: _plain(v) for f in dataclasses.fields(ev)
            if (v := getattr(ev, f.name)) is not None}


def _plain(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(x) for f in dataclasses.fields(v)
                if (x := getattr(v, f.name)) is not None}
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return v
