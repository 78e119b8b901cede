"""The devices as their drivers see them: health, identity, self-help and unscheduled use.

Functions of the step they run in (:class:`agent.core.step._Step`), like the commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from agent.contract import events as ev
from agent.core.events import DeviceHealthChanged
from agent.core.state import DeviceHealth, RoomState

if TYPE_CHECKING:
    from agent.core.step import _Step

SELF_HELP = "self_help:"


def health_changed(s: _Step, change: DeviceHealthChanged) -> None:
    """A device's poller judged its health: record it, and what follows from it."""
    d = change.device
    if d not in s.st.health:
        return
    s.set(health={**s.st.health, d: DeviceHealth(change.status, change.reason, change.power,
                                                 change.in_call)})
    if change.power is not None:
        awake = s.power.power.awake
        awake = awake | {d} if change.power == "on" else awake - {d}
        s.power.power = replace(s.power.power, awake=awake)
    s.emit(ev.DeviceHealth(d, change.status, change.reason, change.power, change.in_call))
    identity(s, change)
    self_help(s, d, change.status, change.reason)


def identity(s: _Step, change: DeviceHealthChanged) -> None:
    """Remember a device's model and serial; name a change (a device swapped, or a firmware
    that reports another model), never the first sighting."""
    d = change.device
    was_model, was_serial = s.st.identity.get(d, (None, None))
    model = change.model if change.model is not None else was_model
    serial = change.serial if change.serial is not None else was_serial
    if (model, serial) == (was_model, was_serial):
        return
    if ((was_model is not None and model != was_model)
            or (was_serial is not None and serial != was_serial)):
        s.emit(ev.DeviceIdentityChanged(d, model, serial, was_model, was_serial))
    s.set(identity={**s.st.identity, d: (model, serial)})


def self_help(s: _Step, device: str, status: str, reason: str) -> None:
    """A device went faulty: outside a window, power-cycle it once; inside, leave it to the
    district (DESIGN: nothing is cut automatically during a window)."""
    if status == "ok":
        s.set(cycled=s.st.cycled - {device})
        return
    spec = s.settings.spec(device)
    if status != "fault" or not spec.self_help or device in s.st.cycled:
        return
    if s.locked is not None:
        s.emit(ev.SelfHelpWithheld(device, reason))
        s.set(cycled=s.st.cycled | {device})  # once per fault, not every poll
        return
    if not s.relays[device] or s.sequence is not None:
        return
    s.set(cycled=s.st.cycled | {device})
    s.emit(ev.SelfHelpPowerCycle(device, reason))
    s.power.start(False, f"{SELF_HELP}{device}", (device,), then_on=True)


def in_call(state: RoomState, relays: Mapping[str, bool]) -> bool:
    """Whether a powered device says it is in a call."""
    return any(h.in_call and relays[n] for n, h in state.health.items())


def track_unscheduled(s: _Step) -> None:
    """Report a codec in a call, or awake, outside every window and the time after one
    (problem 5). A device whose relay is open is neither (its last report is old)."""
    now_in: dict[tuple[str, ev.UseWhat], float] = {}
    if s.locked is None and s.st.after_window is None:
        for name, h in s.st.health.items():
            if not s.relays[name]:
                continue
            if h.in_call:
                now_in[(name, "in_call")] = s.now
            elif h.power == "on" and s.settings.spec(name).role == "codec":
                now_in[(name, "awake")] = s.now
    before = s.st.unscheduled
    if set(now_in) == set(before):
        return
    # (Spans restarts, so counted on the wall clock.)
    for (device, what), since in before.items():
        if (device, what) not in now_in:
            s.emit(ev.UnscheduledUseEnded(device, what,  # type: ignore[arg-type]
                                          round(s.now - since, 3)))
    for device, what in now_in:
        if (device, what) not in before:
            s.emit(ev.UnscheduledUse(device, what))
    s.set(unscheduled={k: before.get(k, v) for k, v in now_in.items()})
