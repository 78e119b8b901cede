"""The messages a room publishes under contract 2.x, as pydantic models.

The agent builds its payloads as plain dicts (``agent/link/state.py``, ``agent/link/info.py``,
``agent/link/host.py``, :meth:`agent.outbox.Record.to_json`); these models say what those
dicts must look like, so that the tests can check every message the agent really publishes
and the JSON Schemas of the contract can be generated from one place
(``Model.model_json_schema()``).

Times are ISO 8601 UTC with milliseconds (:func:`agent.clock.iso_ms`). Optional event fields
with no value are omitted (never null); the state message keeps its keys and may use null.
Each event kind's ``data`` is defined in :mod:`agent.contract.events`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ApiVersion = Annotated[str, Field(
    pattern=r"^2\.\d+$",
    description="The contract version the room speaks: any 2.x (a reader of 2.x reads every "
                "minor version: a minor version only adds)")]

Iso = Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
                           examples=["2026-11-29T02:00:00.000Z"])]
Health = Literal["ok", "degraded", "fault", "unknown"]
Power = Literal["on", "off", "partial", "powering_on", "powering_off"]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- events


class Late(_Msg):
    """On an event sent from the backlog (after a reconnect or a restart)."""

    first_due: Iso = Field(description="When the event was made")
    sent: Iso = Field(description="When this copy was sent")


class EventEnvelope(_Msg):
    """One message on ``events``: one event, numbered for the life of the room."""

    seq: int = Field(ge=1, description="Increases by one for every event the room records")
    id: str = Field(min_length=1, description="Unique id of this event")
    ts: Iso = Field(description="When the event was made (the room's clock)")
    kind: str
    clock_trusted: bool = Field(description="Whether the room trusted its clock then")
    window_id: str | None = Field(None, description="The window locking the room when the "
                                                    "event was made; omitted when none")
    late: Late | None = Field(None, description="Only on a send from the backlog")
    data: dict[str, Any]


# The ``data`` of each kind is defined once, in :mod:`agent.contract.events`.


# --------------------------------------------------------------------------- replies


class Reply(_Msg):
    """One message on ``replies``: the answer to one command (the same bytes for a repeat)."""

    command_id: str | None = Field(description="null when the command had no usable id")
    status: Literal["accepted", "refused", "invalid"]
    reason: str
    data: dict[str, Any]
    site: str
    ts: Iso


# --------------------------------------------------------------------------- info


class DeviceInfo(_Msg):
    role: str
    label: str
    driver: str | None


class SupportContact(_Msg):
    name: str
    role: str = Field(description="What they do, in Vietnamese")
    role_en: str | None = Field(default=None, description="The same in English (2.1), or null")
    phone: str


class Info(_Msg):
    """Retained ``info``: the room's static facts, published when they change."""

    api: ApiVersion
    site: str
    name: str
    centre: str = Field(description="The centre the room reports to, as operators name it")
    timezone: str
    agent_version: str
    config_hash: str
    devices: dict[str, DeviceInfo]
    support: list[SupportContact]
    ts: Iso


# --------------------------------------------------------------------------- host


class Host(_Msg):
    """Retained ``host``: the Pi's health, every ``timing.host_interval_s`` and at once when
    a threshold is crossed (either way)."""

    cpu_temp_c: float | None
    load: list[float] | None
    mem_used_pct: float | None
    disk_used_pct: float | None
    uptime_s: int | None
    alerts: list[Literal["cpu_temp", "disk", "memory"]]
    ts: Iso


# --------------------------------------------------------------------------- state


class DeviceState(_Msg):
    power: Literal["on", "off"] = Field(description="What the device's relay gives it")
    health: Health
    reason: str
    reported_power: str | None = Field(description="What the device says over RS-232")
    in_call: bool | None
    model: str | None
    serial: str | None


class SequenceState(_Msg):
    on: bool
    reason: str
    current: str | None
    remaining: list[str]
    started: Iso | None


class LockState(_Msg):
    """``{"locked": false}`` when not locked; every field when locked."""

    locked: bool
    window_id: str | None = None
    kind: Literal["test", "session"] | None = None
    since: Iso | None = Field(None, description="When the lock engaged")
    start: Iso | None = None
    end: Iso | None = None
    cap: Iso | None = Field(None, description="When the lock ends by itself if nobody marks "
                                              "the window complete")


class WindowState(_Msg):
    id: str
    kind: Literal["test", "session"]
    title: str
    start: Iso | None
    end: Iso | None


class RejectedSchedule(_Msg):
    version: str | None
    digest: str


class ScheduleState(_Msg):
    version: str
    digest: str | None
    rejected: RejectedSchedule | None


class CheckState(_Msg):
    id: str
    requested: Iso | None
    deadline: Iso | None


class AckState(_Msg):
    check_id: str
    at: Iso | None
    latency_s: float


class OperatorState(_Msg):
    check: CheckState | None
    last_check_in: Iso | None
    last_ack: AckState | None
    help_requested: Iso | None = Field(description="The last help request the centre has not "
                                                   "answered yet")


class LinkState(_Msg):
    since: Iso | None = Field(description="When this connection came up; null while down")
    reconnects: int = Field(ge=0, description="Reconnects since the agent started")


class ClockState(_Msg):
    synced: bool
    trusted: bool


class State(_Msg):
    """Retained ``state``: published when it changes, never as a heartbeat."""

    api: ApiVersion
    site: str
    power: Power
    devices: dict[str, DeviceState]
    sequence: SequenceState | None
    lock: LockState
    window: WindowState | None
    next_window: WindowState | None
    schedule: ScheduleState
    operator: OperatorState
    led: str
    link: LinkState
    clock: ClockState
    last_seq: int = Field(ge=0, description="The highest event seq the room has recorded")
    ts: Iso


MESSAGES: dict[str, type[_Msg]] = {
    "state": State, "info": Info, "host": Host, "replies": Reply, "events": EventEnvelope,
}
"""The model of each room → district topic that carries JSON."""
