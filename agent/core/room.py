"""The room's decisions, as one pure function: ``step(room, state, event, now) -> Outcome``.

Nothing here touches a pin, a socket or the clock. The agent's loop feeds every event in, carries
out the returned actions, and asks :func:`next_deadline` when to come back with a ``Tick``.

The whole behaviour, at a glance:

* **Windows** (``test``/``session``) come from the district's schedule or a "start now" command.
  At ``start - lead`` the room powers up in order and **locks**.
* **The lock** lasts until the district marks the window complete, the window is removed from
  the schedule, or the hard cap (``planned end + cap``) passes. While locked, every local
  request to switch off is refused (LED ``refused`` + a ``shutdown_refused`` event); the district
  can switch off only with ``override``, which is recorded.
* **Power sequences** switch devices on in configured order (each waits for its device to
  answer, or its delay) and off in reverse order (each gets its standby command and grace time
  before its relay opens). A new request replaces a running sequence.
* **Operator**: a short press during a window is a check-in; a district operator check blinks
  the LED until a press (acknowledged, with latency) or a timeout (unanswered).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from agent.clock import MIN_PLAUSIBLE_TIME, earliest_possible_now, iso_ms, trust_wall_clock
from agent.core.events import (
    BrokerConnection,
    ButtonHeld,
    ButtonPressed,
    ClockStatus,
    Command,
    DeviceHealthChanged,
    DeviceReady,
    DeviceStandby,
    Event,
    LocalPowerRequest,
    ScheduleReceived,
    Tick,
    Window,
)
from agent.core.led import BY_NAME, LedPattern

# --------------------------------------------------------------------------- settings


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
    plausible_after: float = MIN_PLAUSIBLE_TIME  # no clock reading before this is real

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.devices, key=lambda d: d.order))
        object.__setattr__(self, "devices", ordered)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.devices)

    def spec(self, name: str) -> DeviceSpec:
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(name)


# --------------------------------------------------------------------------- state

Phase = Literal["wait_ready", "wait_delay", "wait_standby", "wait_grace"]


@dataclass(frozen=True)
class Sequence:
    """A running power sequence: ``remaining`` devices in the order they will be done."""

    id: int
    on: bool
    reason: str
    remaining: tuple[str, ...]
    started_at: float
    current: str | None = None
    phase: Phase | None = None
    step_started: float = 0.0
    deadline: float | None = None


@dataclass(frozen=True)
class OperatorCheck:
    """A pending "is anyone there?" request from the district."""

    id: str
    requested_at: float
    deadline: float
    by: str = ""


@dataclass(frozen=True)
class DeviceHealth:
    status: str = "unknown"
    reason: str = ""
    power: str | None = None
    in_call: bool | None = None


@dataclass(frozen=True)
class RoomState:
    """Everything the core remembers. Immutable: ``step`` returns a new one."""

    relays: Mapping[str, bool]
    schedule: tuple[Window, ...] = ()
    schedule_version: str = ""
    adhoc: tuple[Window, ...] = ()
    completed: frozenset[str] = frozenset()
    powered: frozenset[str] = frozenset()
    locked_by: str | None = None
    sequence: Sequence | None = None
    sequences_started: int = 0
    check: OperatorCheck | None = None
    last_check_in: float | None = None
    last_ack: tuple[str, float, float] | None = None  # (check id, at, latency)
    refusal_until: float | None = None
    broker_up: bool = False
    health: Mapping[str, DeviceHealth] = field(default_factory=dict)
    clock_synced: bool = True
    last_known_good: float = 0.0
    evidence: float = 0.0  # latest district time stamp seen on a message
    cycled: frozenset[str] = frozenset()  # power-cycled by self-help since last healthy
    unscheduled: Mapping[tuple[str, str], float] = field(default_factory=dict)

    @property
    def windows(self) -> tuple[Window, ...]:
        return tuple(sorted(self.schedule + self.adhoc, key=lambda w: (w.start, w.id)))


def initial_state(settings: RoomSettings, relays: Mapping[str, bool] | None = None,
                  saved: Mapping[str, Any] | None = None) -> RoomState:
    """A fresh state; ``relays`` is what the pins show now, ``saved`` what :func:`persistent`
    wrote before a restart (lock, completed windows, ad-hoc windows)."""
    rel = {n: bool((relays or {}).get(n, False)) for n in settings.names}
    st = RoomState(relays=rel, health={n: DeviceHealth() for n in settings.names})
    if saved:
        seq = saved.get("sequence")
        st = replace(
            st,
            completed=frozenset(str(c) for c in saved.get("completed", ())),
            powered=frozenset(str(p) for p in saved.get("powered", ())),
            adhoc=tuple(Window(**w) for w in saved.get("adhoc", ())),
            locked_by=saved.get("locked_by"),
            sequences_started=int(saved.get("sequences_started", 0)),
            check=None if not saved.get("check") else OperatorCheck(**saved["check"]),
            cycled=frozenset(str(d) for d in saved.get("cycled", ()) if d in rel),
            unscheduled={(str(d), str(w)): float(t) for d, w, t in saved.get("unscheduled", ())
                         if d in rel},
            evidence=float(saved.get("evidence", 0.0)),
            # A sequence cut short by a restart goes on from the step it was in.
            sequence=None if not seq else Sequence(
                id=int(seq["id"]), on=bool(seq["on"]), reason=str(seq["reason"]),
                remaining=tuple(n for n in seq["remaining"] if n in rel),
                started_at=float(seq["started_at"])),
        )
    return st


def resume(state: RoomState, schedule: ScheduleReceived | None, clock_synced: bool,
           last_known_good: float) -> RoomState:
    """A restarted room's state before its first step: the cached schedule and what is known
    of the clock are part of it from the start, so the first decision sees the lock as it was
    (no false release, and an untrusted clock cannot end it)."""
    if schedule is not None:
        state = replace(state, schedule=tuple(schedule.windows),
                        schedule_version=schedule.version)
    return replace(state, clock_synced=clock_synced, last_known_good=last_known_good)


def persistent(state: RoomState) -> dict[str, Any]:
    """The part of the state that must survive a restart, as JSON-ready data."""
    return {
        "relays": dict(state.relays),
        "completed": sorted(state.completed),
        "powered": sorted(state.powered),
        "adhoc": [w.__dict__ for w in state.adhoc],
        "locked_by": state.locked_by,
        "sequences_started": state.sequences_started,
        "check": None if state.check is None else state.check.__dict__,
        "cycled": sorted(state.cycled),
        "unscheduled": sorted([d, w, t] for (d, w), t in state.unscheduled.items()),
        "evidence": state.evidence,
        "sequence": None if state.sequence is None else {
            "id": state.sequence.id, "on": state.sequence.on, "reason": state.sequence.reason,
            "remaining": [n for n in (state.sequence.current, *state.sequence.remaining) if n],
            "started_at": state.sequence.started_at,
        },
    }


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class SetRelay:
    """Switch a device's power, as step of sequence ``sequence`` started for ``reason``."""

    device: str
    on: bool
    sequence: int
    reason: str = ""


@dataclass(frozen=True)
class Emit:
    """Publish an event to the district (the agent adds sequence number, id and time)."""

    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """Answer a district command: ``accepted``, ``refused`` (with reason) or ``invalid``."""

    command_id: str
    status: Literal["accepted", "refused", "invalid"]
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AwaitReady:
    """Ask the device's driver to wake it if in standby and report :class:`DeviceReady` once
    it answers."""

    device: str


@dataclass(frozen=True)
class SendStandby:
    """Send the device its standby/shutdown command and report :class:`DeviceStandby`."""

    device: str


@dataclass(frozen=True)
class PublishState:
    """Publish the state snapshot now (the district asked)."""


Action = SetRelay | Emit | Reply | AwaitReady | SendStandby | PublishState


@dataclass(frozen=True)
class Outcome:
    state: RoomState
    actions: tuple[Action, ...]


# --------------------------------------------------------------------------- queries


def release_time(settings: RoomSettings, w: Window) -> float:
    """When the lock for ``w`` ends by itself if nobody marks it complete."""
    return w.end + settings.hard_cap_s


def clock_trusted(settings: RoomSettings, state: RoomState, now: float) -> bool:
    """May ``now`` end protection? (``docs/time.md`` rule 3)"""
    return trust_wall_clock(now, state.clock_synced, state.last_known_good,
                            settings.plausible_after)


def lock_window(settings: RoomSettings, state: RoomState, now: float) -> Window | None:
    """The window that locks the room at ``now``, if any (the earliest-starting one).

    With an untrusted clock (no NTP yet), time never ends a lock (rule 4) and a lock begins
    only when the window has provably begun: the earliest the true time can be is used
    (rule 5).
    """
    t: float | None = now
    if not clock_trusted(settings, state, now):
        if state.locked_by is not None and state.locked_by not in state.completed:
            for w in state.windows:
                if w.id == state.locked_by:
                    return w
        t = earliest_possible_now(now, state.last_known_good, (state.evidence,),
                                  settings.plausible_after)
        if t is None:
            return None
    for w in state.windows:
        if (w.id not in state.completed and w.start - settings.lead_s <= t
                and t < release_time(settings, w)):
            return w
    return None


def next_window(settings: RoomSettings, state: RoomState, now: float) -> Window | None:
    """The next window whose lead time has not begun yet."""
    for w in state.windows:
        if w.id not in state.completed and w.start - settings.lead_s > now:
            return w
    return None


def room_power(settings: RoomSettings, state: RoomState) -> str:
    """``on``, ``off``, ``partial``, ``powering_on`` or ``powering_off``."""
    if state.sequence is not None:
        return "powering_on" if state.sequence.on else "powering_off"
    on = [state.relays[n] for n in settings.names]
    return "on" if all(on) else "off" if not any(on) else "partial"


def led(settings: RoomSettings, state: RoomState, now: float) -> LedPattern:
    """What the status LED shows now (see :mod:`agent.core.led`)."""
    if state.refusal_until is not None and now < state.refusal_until:
        return BY_NAME["refused"]
    if state.check is not None:
        return BY_NAME["check_requested"]
    if any(h.status == "fault" for h in state.health.values()):
        return BY_NAME["fault"]
    if state.sequence is not None:
        return BY_NAME["powering"]
    if not state.broker_up:
        return BY_NAME["no_broker"]
    if lock_window(settings, state, now) is not None:
        return BY_NAME["window_active"]
    if any(state.relays.values()):
        return BY_NAME["on"]
    return BY_NAME["idle"]


def next_deadline(settings: RoomSettings, state: RoomState, now: float) -> float | None:
    """The earliest time at which a ``Tick`` could change something."""
    times: list[float] = []
    if state.sequence is not None and state.sequence.deadline is not None:
        times.append(state.sequence.deadline)
    if state.check is not None:
        times.append(state.check.deadline)
    if state.refusal_until is not None and state.refusal_until > now:
        times.append(state.refusal_until)
    for w in state.windows:
        if w.id in state.completed:
            continue
        begin = w.start - settings.lead_s
        if begin > now:
            times.append(begin)
        end = release_time(settings, w)
        if end > now:
            times.append(end)
    return min(times) if times else None


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
    if w is None:
        return None
    return {"id": w.id, "kind": w.kind, "title": w.title, "start": iso(w.start), "end": iso(w.end)}


def snapshot(settings: RoomSettings, state: RoomState, now: float) -> dict[str, Any]:
    """The decision-side half of the retained state message (the agent adds host health)."""
    lw = lock_window(settings, state, now)
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


# --------------------------------------------------------------------------- the step


class _Step:
    """Accumulates the new state and actions while one event is handled."""

    def __init__(self, settings: RoomSettings, state: RoomState, now: float) -> None:
        self.settings = settings
        self.st = state
        self.now = now
        self.actions: list[Action] = []

    # small helpers ------------------------------------------------------------
    def emit(self, kind: str, /, **data: Any) -> None:
        self.actions.append(Emit(kind, data))

    def reply(self, cmd: Command, status: Literal["accepted", "refused", "invalid"],
              reason: str = "", **data: Any) -> None:
        self.actions.append(Reply(cmd.id, status, reason, data))

    def set(self, **changes: Any) -> None:
        self.st = replace(self.st, **changes)

    def lock(self) -> Window | None:
        return lock_window(self.settings, self.st, self.now)

    # power sequences ----------------------------------------------------------
    def start_sequence(self, on: bool, reason: str, devices: tuple[str, ...] | None = None) -> None:
        """Replace any running sequence by one that brings ``devices`` (default: all) on/off."""
        wanted = devices if devices is not None else self.settings.names
        order = self.settings.names if on else tuple(reversed(self.settings.names))
        old = self.st.sequence
        if old is not None:
            self.emit("power_sequence_cancelled", on=old.on, reason=old.reason,
                      replaced_by=reason, device=old.current)
        # A device whose relay already has the wanted state needs no step, except that "on"
        # also means awake: a device with a driver that has not said it is on gets woken.
        todo = tuple(n for n in order if n in wanted and (
            self.st.relays[n] != on
            or (on and self.settings.spec(n).confirm and self.st.health[n].power != "on")))
        seq_id = self.st.sequences_started + 1
        self.set(sequences_started=seq_id, sequence=None)
        if not todo:
            return
        self.set(sequence=Sequence(id=seq_id, on=on, reason=reason, remaining=todo,
                                   started_at=self.now))
        self.emit("power_sequence_started", on=on, reason=reason, devices=list(todo))
        self.advance()

    def advance(self) -> None:
        """Begin steps until one has to wait, or the sequence is done."""
        while (seq := self.st.sequence) is not None and seq.current is None:
            if not seq.remaining:
                self.emit("power_sequence_finished", on=seq.on, reason=seq.reason,
                          elapsed_s=round(self.now - seq.started_at, 3))
                self.set(sequence=None)
                if not seq.on and seq.reason.startswith(SELF_HELP):
                    # Second half of a self-help power cycle: the device on again.
                    self.start_sequence(True, seq.reason, (seq.reason[len(SELF_HELP):],))
                return
            name, rest = seq.remaining[0], seq.remaining[1:]
            spec = self.settings.spec(name)
            seq = replace(seq, remaining=rest, current=name, step_started=self.now)
            if seq.on:
                if not self.st.relays[name]:
                    self.relay(name, True, seq.id)
                if spec.confirm:
                    seq = replace(seq, phase="wait_ready", deadline=self.now + spec.ready_timeout_s)
                    self.actions.append(AwaitReady(name))
                elif spec.on_delay_s > 0 and rest:
                    seq = replace(seq, phase="wait_delay", deadline=self.now + spec.on_delay_s)
                else:
                    self.set(sequence=seq)
                    self.finish_step("done")
                    continue
            elif not self.st.relays[name]:
                # Already off (a sequence resumed after a restart): nothing to wait for.
                self.set(sequence=seq)
                self.finish_step("done")
                continue
            else:
                if spec.confirm:
                    seq = replace(seq, phase="wait_standby",
                                  deadline=self.now + max(spec.off_grace_s, 1.0))
                    self.actions.append(SendStandby(name))
                elif spec.off_grace_s > 0:
                    seq = replace(seq, phase="wait_grace", deadline=self.now + spec.off_grace_s)
                else:
                    self.set(sequence=seq)
                    self.relay(name, False, seq.id)
                    self.finish_step("done")
                    continue
            self.set(sequence=seq)

    def finish_step(self, outcome: str) -> None:
        """The current step ended (``done``, ``confirmed`` or ``timeout``): report, go on."""
        seq = self.st.sequence
        assert seq is not None and seq.current is not None
        if not seq.on and self.st.relays[seq.current]:
            self.relay(seq.current, False, seq.id)
        self.emit("power_step", device=seq.current, on=seq.on, outcome=outcome,
                  elapsed_s=round(self.now - seq.step_started, 3), reason=seq.reason)
        self.set(sequence=replace(seq, current=None, phase=None, deadline=None))
        self.advance()

    def relay(self, name: str, on: bool, seq_id: int) -> None:
        relays = dict(self.st.relays)
        relays[name] = on
        self.set(relays=relays)
        reason = self.st.sequence.reason if self.st.sequence is not None else ""
        self.actions.append(SetRelay(name, on, seq_id, reason))

    # refusals -----------------------------------------------------------------
    def refuse_off(self, source: str, w: Window) -> None:
        self.set(refusal_until=self.now + self.settings.refusal_show_s)
        self.emit("shutdown_refused", source=source, window_id=w.id, kind=w.kind,
                  title=w.title)

    def local_off(self, source: str) -> None:
        w = self.lock()
        if w is not None:
            self.refuse_off(source, w)
        else:
            self.emit("power_requested", on=False, source=source)
            self.start_sequence(False, f"local:{source}")

    def local_on(self, source: str) -> None:
        self.emit("power_requested", on=True, source=source)
        self.start_sequence(True, f"local:{source}")

    # time-driven changes --------------------------------------------------------
    def on_time(self) -> None:
        """Everything that happens because the clock reached a deadline."""
        w = self.guard_lock()
        if self.st.sequence is not None and self.st.sequence.current is None:
            self.advance()  # a sequence restored after a restart
        seq = self.st.sequence
        if seq is not None and seq.deadline is not None and self.now >= seq.deadline:
            self.finish_step("timeout" if seq.phase in ("wait_ready", "wait_standby") else "done")
        chk = self.st.check
        if chk is not None and self.now >= chk.deadline:
            self.emit("operator_check_unanswered", check_id=chk.id, reason="timeout",
                      waited_s=round(self.now - chk.requested_at, 3))
            self.set(check=None)
        if self.st.refusal_until is not None and self.now >= self.st.refusal_until:
            self.set(refusal_until=None)
        # Ad-hoc windows whose time is surely over are forgotten (they are not in a schedule).
        if self.st.adhoc and clock_trusted(self.settings, self.st, self.now):
            keep = tuple(a for a in self.st.adhoc if a.id == self.st.locked_by
                         or release_time(self.settings, a) > self.now)
            if keep != self.st.adhoc:
                gone = {a.id for a in self.st.adhoc} - {a.id for a in keep}
                self.set(adhoc=keep, completed=self.st.completed - gone,
                         powered=self.st.powered - gone)
        # Automatic power-up: once per window, from start - lead, while it locks the room.
        if w is not None and w.id not in self.st.powered:
            self.set(powered=self.st.powered | {w.id})
            self.emit("window_power_up", window_id=w.id, kind=w.kind, title=w.title,
                      start=iso(w.start))
            self.start_sequence(True, f"window:{w.id}")
        self.track_lock()
        self.track_unscheduled()

    def guard_lock(self) -> Window | None:
        """Stop a switch-off that began before the lock: only an override goes on into it."""
        w = self.lock()
        seq = self.st.sequence
        if (w is not None and seq is not None and not seq.on
                and not seq.reason.startswith("override:")):
            self.emit("power_sequence_cancelled", on=False, reason=seq.reason,
                      replaced_by=f"lock:{w.id}", device=seq.current)
            self.set(sequence=None)
        return w

    def self_help(self, device: str, status: str, reason: str) -> None:
        """A device went faulty: outside a window, power-cycle it once; inside, leave it to
        the district (DESIGN: nothing is cut automatically during a window)."""
        if status == "ok":
            self.set(cycled=self.st.cycled - {device})
            return
        spec = self.settings.spec(device)
        if status != "fault" or not spec.self_help or device in self.st.cycled:
            return
        w = self.lock()
        if w is not None:
            self.emit("self_help_withheld", device=device, window_id=w.id, reason=reason)
            self.set(cycled=self.st.cycled | {device})  # once per fault, not every poll
            return
        if not self.st.relays[device] or self.st.sequence is not None:
            return
        self.set(cycled=self.st.cycled | {device})
        self.emit("self_help_power_cycle", device=device, reason=reason)
        self.start_sequence(False, f"{SELF_HELP}{device}", (device,))

    def track_unscheduled(self) -> None:
        """Report a codec in a call, or a device awake, outside every window (problem 5)."""
        locked = self.lock() is not None
        now_in: dict[tuple[str, str], float] = {}
        if not locked:
            for name, h in self.st.health.items():
                if h.in_call:
                    now_in[(name, "in_call")] = self.now
                elif h.power == "on" and self.settings.spec(name).role == "codec":
                    now_in[(name, "awake")] = self.now
        before = self.st.unscheduled
        if set(now_in) == set(before):
            return
        for key, since in before.items():
            if key not in now_in:
                self.emit("unscheduled_use_ended", device=key[0], what=key[1],
                          duration_s=round(self.now - since, 3))
        for key in now_in:
            if key not in before:
                self.emit("unscheduled_use", device=key[0], what=key[1])
        self.set(unscheduled={k: before.get(k, v) for k, v in now_in.items()})

    def track_lock(self) -> None:
        """Emit lock changes: the lock itself is derived from windows and the clock."""
        w = self.lock()
        new = w.id if w else None
        old = self.st.locked_by
        if new == old:
            return
        if old is not None:
            was = next((x for x in self.st.windows if x.id == old), None)
            if old in self.st.completed:
                why = "completed"
            elif was is None:
                why = "window_removed"
            elif self.now < was.start - self.settings.lead_s:
                why = "clock_moved_back"
            else:
                why = "hard_cap"
            self.emit("lock_released", window_id=old, reason=why)
        if w is not None:
            self.emit("lock_engaged", window_id=w.id, kind=w.kind, title=w.title,
                      start=iso(w.start), end=iso(w.end),
                      hard_cap=iso(release_time(self.settings, w)))
        self.set(locked_by=new)


def step(settings: RoomSettings, state: RoomState, event: Event, now: float) -> Outcome:
    """Decide what ``event`` at ``now`` means for the room. Pure: same inputs, same outcome."""
    s = _Step(settings, state, now)
    s.guard_lock()
    match event:
        case Tick():
            pass
        case ClockStatus(synced=synced, last_known_good=lkg):
            s.set(clock_synced=synced, last_known_good=max(lkg, s.st.last_known_good))
        case ScheduleReceived(windows=windows, version=version):
            # A schedule is applied whatever its stamp; a stamp that cannot be right is just
            # not taken as proof of the time.
            if event.issued_at is not None and _stamp_problem(s, event.issued_at, "") is None:
                s.set(evidence=max(s.st.evidence, event.issued_at))
            old_start = {w.id: w.start for w in s.st.schedule}
            moved = {w.id for w in windows if w.id in old_start and old_start[w.id] != w.start}
            s.set(schedule=tuple(windows), schedule_version=version,
                  # A window moved to a new time powers the room up again at that time.
                  powered=s.st.powered - moved)
            known = {w.id for w in s.st.windows}
            s.set(completed=frozenset(c for c in s.st.completed if c in known),
                  powered=frozenset(p for p in s.st.powered if p in known))
            s.emit("schedule_applied", version=version, windows=len(windows))
        case ButtonPressed():
            _press(s)
        case ButtonHeld():
            if any(s.st.relays.values()) or (s.st.sequence is not None and s.st.sequence.on):
                s.local_off("button")
            else:
                s.local_on("button")
        case LocalPowerRequest(on=on, source=source):
            if on:
                s.local_on(source)
            else:
                s.local_off(source)
        case Command():
            problem = _stamp_problem(s, event.issued_at, event.name)
            if problem is not None:
                s.reply(event, *problem)
            else:
                if event.issued_at is not None:
                    s.set(evidence=max(s.st.evidence, event.issued_at))
                _command(s, event)
        case BrokerConnection(connected=up):
            s.set(broker_up=up)
        case DeviceReady(device=d):
            seq = s.st.sequence
            if seq is not None and seq.on and seq.current == d and seq.phase == "wait_ready":
                s.finish_step("confirmed")
        case DeviceStandby(device=d):
            seq = s.st.sequence
            if seq is not None and not seq.on and seq.current == d and seq.phase == "wait_standby":
                s.finish_step("confirmed")
        case DeviceHealthChanged(device=d, status=status, reason=reason):
            if d in s.st.health:
                health = dict(s.st.health)
                health[d] = DeviceHealth(status, reason, event.power, event.in_call)
                s.set(health=health)
                s.emit("device_health", device=d, status=status, reason=reason,
                       power=event.power, in_call=event.in_call)
                s.self_help(d, status, reason)
    s.on_time()
    return Outcome(s.st, tuple(s.actions))


SELF_HELP = "self_help:"
MAX_PLAUSIBLE_TIME = 4_102_444_800.0  # 2100-01-01: a later stamp comes from a broken clock
FUTURE_SLACK_S = 300.0
STALE_AFTER_S = 600.0
STALE_CHECKED = ("power", "start_window")


def _stamp_problem(s: _Step, ts: float | None, name: str
                   ) -> tuple[Literal["invalid", "refused"], str] | None:
    """Why a district time stamp ``ts`` makes a message unusable, or None if it is fine.

    Stamps prove to a room with an unsynchronised clock that time has come (``docs/time.md``),
    so a stamp that cannot be right must not count; with a synchronised clock, an old
    ``power``/``start_window`` (delivered late by a queue) is refused rather than obeyed.
    """
    if ts is None:
        return None
    if not s.settings.plausible_after <= ts <= MAX_PLAUSIBLE_TIME:
        return "invalid", f"ts: {iso(ts) or ts} cannot be right: the sender's clock is wrong"
    if clock_trusted(s.settings, s.st, s.now):
        if ts > s.now + FUTURE_SLACK_S:
            return "invalid", (f"ts: {round(ts - s.now)} s ahead of this room's synchronised "
                               "clock: the sender's clock is wrong")
        if name in STALE_CHECKED and ts < s.now - STALE_AFTER_S:
            return "refused", f"stale: sent {round((s.now - ts) / 60)} min ago; send it again"
    return None


def _press(s: _Step) -> None:
    chk = s.st.check
    if chk is not None:
        latency = s.now - chk.requested_at
        s.emit("operator_check_acknowledged", check_id=chk.id, latency_s=round(latency, 3))
        s.set(check=None, last_ack=(chk.id, s.now, latency))
    w = s.lock()
    if w is not None:
        s.emit("check_in", window_id=w.id, kind=w.kind)
        s.set(last_check_in=s.now)


# --------------------------------------------------------------------------- commands


def _command(s: _Step, cmd: Command) -> None:
    handler = _COMMANDS.get(cmd.name)
    if handler is None:
        s.reply(cmd, "invalid", f"unknown command '{cmd.name}'; known: {', '.join(_COMMANDS)}")
        return
    handler(s, cmd)


def _cmd_power(s: _Step, cmd: Command) -> None:
    on = cmd.args["on"]
    device = cmd.args.get("device")
    override = bool(cmd.args.get("override", False))
    if device is not None and device not in s.st.relays:
        s.reply(cmd, "invalid", f"args.device: unknown device '{device}'; this room has "
                                f"{', '.join(s.settings.names)}")
        return
    w = s.lock()
    if not on and w is not None:
        if not override:
            s.reply(cmd, "refused", f"locked by {w.kind} {w.id}; send override=true to switch "
                                    "off anyway", window_id=w.id)
            return
        s.emit("lock_overridden", window_id=w.id, kind=w.kind, device=device,
               command_id=cmd.id, by=cmd.sender)
    targets = (device,) if device else None
    s.reply(cmd, "accepted")
    s.start_sequence(on, f"{'override' if w is not None and not on else 'district'}:{cmd.id}",
                     targets)


def _cmd_start_window(s: _Step, cmd: Command) -> None:
    wid = cmd.args.get("window_id") or f"adhoc-{cmd.id}"
    if any(w.id == wid for w in s.st.windows):
        s.reply(cmd, "refused", f"window '{wid}' already exists")
        return
    w = Window(id=wid, kind=cmd.args.get("kind", "test"),
               start=s.now, end=s.now + float(cmd.args.get("duration_min", 60)) * 60.0,
               title=cmd.args.get("title", ""))
    s.set(adhoc=(*s.st.adhoc, w))
    s.emit("window_started", window_id=w.id, kind=w.kind, title=w.title, start=iso(w.start),
           end=iso(w.end), by=cmd.sender, command_id=cmd.id)
    s.reply(cmd, "accepted", window_id=w.id)


def _cmd_complete_window(s: _Step, cmd: Command) -> None:
    wid = cmd.args["window_id"]
    if all(w.id != wid for w in s.st.windows):
        s.reply(cmd, "invalid", f"args.window_id: no window '{wid}' in this room's schedule")
        return
    if wid in s.st.completed:
        s.reply(cmd, "accepted", "already complete", window_id=wid)
        return
    s.set(completed=s.st.completed | {wid})
    s.emit("window_completed", window_id=wid, by=cmd.sender, command_id=cmd.id)
    s.reply(cmd, "accepted", window_id=wid)


def _cmd_operator_check(s: _Step, cmd: Command) -> None:
    timeout = float(cmd.args.get("timeout_s", s.settings.check_timeout_s))
    old = s.st.check
    if old is not None:
        s.emit("operator_check_unanswered", check_id=old.id, reason="superseded",
               waited_s=round(s.now - old.requested_at, 3))
    s.set(check=OperatorCheck(cmd.id, s.now, s.now + timeout, cmd.sender))
    s.emit("operator_check_requested", check_id=cmd.id, timeout_s=timeout, by=cmd.sender)
    s.reply(cmd, "accepted", check_id=cmd.id)


def _cmd_request_state(s: _Step, cmd: Command) -> None:
    s.reply(cmd, "accepted")
    s.actions.append(PublishState())


_COMMANDS = {
    "power": _cmd_power,
    "start_window": _cmd_start_window,
    "complete_window": _cmd_complete_window,
    "operator_check": _cmd_operator_check,
    "request_state": _cmd_request_state,
}
COMMAND_NAMES: tuple[str, ...] = tuple(_COMMANDS)
