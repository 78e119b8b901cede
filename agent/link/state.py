"""The retained ``state`` message (contract 2.0), built from the core's state and queries.

Wire formatting lives here, not in the core: the core decides, this module writes what it
decided the way the contract says (``agent.contract.messages.State``). What the core does not
know (the link, the schedule's digest, the last event number) the shell passes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.core import room as core
from agent.core.events import Window
from agent.link.topics import API_VERSION


@dataclass(frozen=True)
class LinkStatus:
    """The MQTT link as the state reports it: ``since`` (wall clock) is None while down."""

    since: float | None
    reconnects: int


@dataclass(frozen=True)
class ScheduleStatus:
    """The schedule in force (its digest) and the last one rejected since, if any."""

    digest: str | None = None
    rejected_version: str | None = None
    rejected_digest: str | None = None


def window_json(w: Window | None) -> dict[str, Any] | None:
    """A window as the state shows it."""
    if w is None:
        return None
    return {"id": w.id, "kind": w.kind, "title": w.title, "start": core.iso(w.start),
            "end": core.iso(w.end)}


def lock_json(settings: core.RoomSettings, state: core.RoomState,
              w: Window | None) -> dict[str, Any]:
    """``{"locked": false}``, or the locking window with when the lock engaged and its span
    (start, end, cap) as the core announced it."""
    if w is None:
        return {"locked": False}
    start, end, cap = state.lock_span or (w.start, w.end, core.release_time(settings, w))
    return {"locked": True, "window_id": w.id, "kind": w.kind,
            "since": core.iso(state.lock_since), "start": core.iso(start),
            "end": core.iso(end), "cap": core.iso(cap)}


def devices_json(settings: core.RoomSettings, state: core.RoomState) -> dict[str, Any]:
    out = {}
    for n in settings.names:
        h = state.health[n]
        model, serial = state.identity.get(n, (None, None))
        out[n] = {"power": "on" if state.relays[n] else "off", "health": h.status,
                  "reason": h.reason, "reported_power": h.power, "in_call": h.in_call,
                  "model": model, "serial": serial}
    return out


def operator_json(state: core.RoomState) -> dict[str, Any]:
    chk = state.check
    ack = state.last_ack
    return {
        "check": None if chk is None else {"id": chk.id, "requested": core.iso(chk.requested_at),
                                           "deadline": core.iso(chk.deadline)},
        "last_check_in": core.iso(state.last_check_in),
        "last_ack": None if ack is None else {"check_id": ack[0], "at": core.iso(ack[1]),
                                              "latency_s": round(ack[2], 3)},
        "help_requested": core.iso(state.help_requested_at),
    }


def state_message(settings: core.RoomSettings, state: core.RoomState, now: float, *,
                  site: str, link: LinkStatus, schedule: ScheduleStatus,
                  last_seq: int) -> dict[str, Any]:
    """The whole state message at ``now`` (see ``agent.contract.messages.State``); the lock
    is the one the core's last step settled."""
    lw = state.window(state.locked_by)
    seq = state.sequence
    rejected = None if schedule.rejected_digest is None else {
        "version": schedule.rejected_version, "digest": schedule.rejected_digest}
    return {
        "api": API_VERSION,
        "site": site,
        "power": core.room_power(settings, state),
        "devices": devices_json(settings, state),
        "sequence": None if seq is None else {
            "on": seq.on, "reason": seq.reason, "current": seq.current,
            "remaining": list(seq.remaining), "started": core.iso(seq.started_at)},
        "lock": lock_json(settings, state, lw),
        "window": window_json(lw),
        "next_window": window_json(core.next_window(settings, state, now)),
        "schedule": {"version": state.schedule_version, "digest": schedule.digest,
                     "rejected": rejected},
        "operator": operator_json(state),
        "led": core.led(settings, state, now).name,
        "link": {"since": core.iso(link.since), "reconnects": link.reconnects},
        "clock": {"synced": state.clock_synced,
                  "trusted": core.clock_trusted(settings, state, now)},
        "last_seq": last_seq,
        "ts": core.iso(now),
    }


CHANGE_IGNORES = ("ts", "last_seq")
"""Fields that do not make a new state worth publishing by themselves: the time it was
built, and the event counter (every event would otherwise publish the state again; the
counter rides along with the next real change)."""


def comparable(msg: dict[str, Any]) -> dict[str, Any]:
    """The part of a state message whose change means it is published again."""
    return {k: v for k, v in msg.items() if k not in CHANGE_IGNORES}
