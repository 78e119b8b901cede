"""What the room shows: its power, its LED and the decision half of its state message."""

from __future__ import annotations

import math
from typing import Any

from agent.clock import iso_ms
from agent.core.events import Window
from agent.core.led import LedPattern, patterns
from agent.core.settings import RoomSettings
from agent.core.state import RoomState
from agent.core.windows import clock_trusted, next_window, release_time


def room_power(settings: RoomSettings, state: RoomState) -> str:
    """``on``, ``off``, ``partial``, ``powering_on`` or ``powering_off``."""
    if state.sequence is not None:
        return "powering_on" if state.sequence.on else "powering_off"
    on = [state.relays[n] for n in settings.names]
    return "on" if all(on) else "off" if not any(on) else "partial"


def led(settings: RoomSettings, state: RoomState, now: float) -> LedPattern:
    """What the status LED shows after the last step (see :mod:`agent.core.led`), its texts
    naming the room's centre; ``now`` is not needed any more (kept for callers)."""
    return patterns(settings.centre)[_led_name(state)]


def _led_name(state: RoomState) -> str:
    if state.refusal_until is not None:  # (a step clears it when its time is over)
        return "refused"
    if state.help_until is not None:
        return "help_requested"
    if state.check is not None:
        return "check_requested"
    if any(h.status == "fault" for h in state.health.values()):
        return "fault"
    if state.sequence is not None:
        return "powering"
    if not state.broker_up:
        return "no_broker"
    if state.locked_by is not None:
        return "window_active"
    if any(state.relays.values()):
        return "on"
    return "idle"


def iso(t: float | None) -> str | None:
    """POSIX seconds as ISO 8601 UTC with milliseconds, e.g. ``2026-11-29T02:00:00.000Z``;
    None for no time or one no calendar can show."""
    if t is None or not math.isfinite(t):
        return None
    try:
        return iso_ms(t)
    except (ValueError, OverflowError, OSError):
        return None


def window_json(w: Window | None) -> dict[str, Any] | None:
    """A window as the state message shows it."""
    if w is None:
        return None
    return {"id": w.id, "kind": w.kind, "title": w.title, "start": iso(w.start), "end": iso(w.end)}


def snapshot(settings: RoomSettings, state: RoomState, now: float) -> dict[str, Any]:
    """The decision-side half of the retained state message (the agent adds host health).
    The lock is the one the last step settled."""
    lw = state.window(state.locked_by)
    seq = state.sequence
    return {
        "power": room_power(settings, state),
        "devices": {
            n: {
                "power": "on" if state.relays[n] else "off",
                "health": state.health[n].status,
                "reason": state.health[n].reason,
                "reported_power": state.health[n].power,
                "in_call": state.health[n].in_call,
            }
            for n in settings.names
        },
        "sequence": None if seq is None else {
            "on": seq.on, "reason": seq.reason, "current": seq.current,
            "remaining": list(seq.remaining), "started": iso(seq.started_at),
        },
        "lock": {
            "locked": lw is not None,
            "window_id": lw.id if lw else None,
            "kind": lw.kind if lw else None,
            "since": iso(lw.start - settings.lead_s) if lw else None,
            "released_by_cap_at": iso(release_time(settings, lw)) if lw else None,
        },
        "window": window_json(lw),
        "next_window": window_json(next_window(settings, state, now)),
        "schedule_version": state.schedule_version,
        "operator": {
            "check": None if state.check is None else {
                "id": state.check.id, "requested": iso(state.check.requested_at),
                "deadline": iso(state.check.deadline),
            },
            "last_check_in": iso(state.last_check_in),
            "last_ack": None if state.last_ack is None else {
                "check_id": state.last_ack[0], "at": iso(state.last_ack[1]),
                "latency_s": round(state.last_ack[2], 3),
            },
        },
        "led": led(settings, state, now).name,
        "broker_connected": state.broker_up,
        "clock": {"synced": state.clock_synced, "trusted": clock_trusted(settings, state, now)},
    }


def shown(settings: RoomSettings, state: RoomState, now: float) -> dict[str, Any]:
    """Everything of the core's that a state message shows (API 1.0 and 2.0): a step has
    ``changed`` the room when this differs from what it was after the step before."""
    return {
        **snapshot(settings, state, now),
        "lock_since": state.lock_since,
        "lock_span": state.lock_span,
        "schedule_digest": state.schedule_digest,
        "help_requested_at": state.help_requested_at,
        "identity": dict(state.identity),
    }
