"""The step: one event at one time in, the new state and the actions out.

``step(settings, state, event, now)`` is pure: same inputs, same outcome. It ties the parts
together: the windows and the lock (:mod:`agent.core.windows`), the power sequence
(:mod:`agent.core.sequence`), the district's commands (:mod:`agent.core.commands`) and the
operator at the room (button, CLI).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from agent.contract import events as ev
from agent.core import commands
from agent.core.actions import Action, Emit, Reply
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
from agent.core.sequence import Power, Sequence, Sequencer
from agent.core.settings import RoomSettings
from agent.core.state import DeviceHealth, RoomState
from agent.core.view import iso
from agent.core.windows import clock_trusted, lock_window, release_time

SELF_HELP = "self_help:"


class _Locking:
    """The default of :meth:`_Step.emit`: stamp the event with the window locking the room."""


LOCKING = _Locking()


def _iso(t: float) -> str:
    return iso(t) or ""


@dataclass(frozen=True)
class Outcome:
    """What a step decided: the new state and the actions to carry out, in order."""

    state: RoomState
    actions: tuple[Action, ...]


class _Step:
    """Accumulates the new state and actions while one event is handled."""

    def __init__(self, settings: RoomSettings, state: RoomState, now: float) -> None:
        self.settings = settings
        self.st = state
        self.now = now
        self.actions: list[Action] = []
        self.power = Sequencer(
            settings, Power(state.relays, _awake(state), state.sequence, state.sequences_started),
            now, self.emit, self.actions.append)

    # small helpers ------------------------------------------------------------
    def emit(self, event: Any, window_id: str | _Locking | None = LOCKING) -> None:
        """Record ``event``, stamped with the window locking the room (or ``window_id``, for
        an event about one window) and whether the clock is trusted."""
        if isinstance(window_id, _Locking):
            w = self.lock()
            window_id = w.id if w is not None else None
        self.actions.append(Emit(event, window_id,
                                 clock_trusted(self.settings, self.st, self.now)))

    def reply(self, cmd: Command, status: Literal["accepted", "refused", "invalid"],
              reason: str = "", **data: Any) -> None:
        self.actions.append(Reply(cmd.id, status, reason, data))

    def set(self, **changes: Any) -> None:
        self.st = replace(self.st, **changes)

    def lock(self) -> Window | None:
        return lock_window(self.settings, self.st, self.now)

    @property
    def relays(self) -> dict[str, bool]:
        return dict(self.power.power.relays)

    @property
    def sequence(self) -> Sequence | None:
        return self.power.sequence

    def _current(self) -> RoomState:
        p = self.power.power
        return replace(self.st, relays=p.relays, sequence=p.sequence,
                       sequences_started=p.started)

    def outcome(self) -> Outcome:
        return Outcome(self._current(), tuple(self.actions))

    # the district's schedule --------------------------------------------------
    def schedule(self, sched: ScheduleReceived) -> None:
        """A new schedule replaces the old one; ad-hoc windows stay."""
        # A schedule is applied whatever its stamp; a stamp that cannot be right is just not
        # taken as proof of the time.
        if (sched.issued_at is not None
                and commands.stamp_problem(self, sched.issued_at, "") is None):
            self.set(evidence=max(self.st.evidence, sched.issued_at))
        old_start = {w.id: w.start for w in self.st.schedule}
        moved = {w.id for w in sched.windows
                 if w.id in old_start and old_start[w.id] != w.start}
        self.set(schedule=tuple(sched.windows), schedule_version=sched.version,
                 # A window moved to a new time powers the room up again at that time.
                 powered=self.st.powered - moved)
        known = {w.id for w in self.st.windows}
        self.set(completed=frozenset(c for c in self.st.completed if c in known),
                 powered=frozenset(p for p in self.st.powered if p in known))
        self.emit(ev.ScheduleApplied(sched.version, sched.digest, len(sched.windows)))

    # local requests -----------------------------------------------------------
    def refuse_off(self, source: str, w: Window) -> None:
        self.set(refusal_until=self.now + self.settings.refusal_show_s)
        self.emit(ev.ShutdownRefused(source, w.kind, w.title), w.id)

    def local_off(self, source: str) -> None:
        w = self.lock()
        if w is not None:
            self.refuse_off(source, w)
        else:
            self.emit(ev.PowerRequested(False, source))
            self.power.start(False, f"local:{source}")

    def local_on(self, source: str) -> None:
        self.emit(ev.PowerRequested(True, source))
        self.power.start(True, f"local:{source}")

    def press(self) -> None:
        """A short press: answers a pending operator check; in a window, a check-in."""
        chk = self.st.check
        if chk is not None:
            latency = self.now - chk.requested_at
            self.emit(ev.OperatorCheckAcknowledged(chk.id, round(latency, 3)))
            self.set(check=None, last_ack=(chk.id, self.now, latency))
        w = self.lock()
        if w is not None:
            self.emit(ev.CheckIn(w.kind), w.id)
            self.set(last_check_in=self.now)

    def hold(self) -> None:
        """A long press toggles the room: off when anything is on (or going on), else on."""
        seq = self.sequence
        if any(self.relays.values()) or (seq is not None and seq.on):
            self.local_off("button")
        else:
            self.local_on("button")

    # devices -------------------------------------------------------------------
    def health_changed(self, change: DeviceHealthChanged) -> None:
        d = change.device
        if d not in self.st.health:
            return
        self.set(health={**self.st.health, d: DeviceHealth(change.status, change.reason,
                                                           change.power, change.in_call)})
        self.power.power = replace(self.power.power, awake=_awake(self.st))
        self.emit(ev.DeviceHealth(d, change.status, change.reason, change.power,
                                  change.in_call))
        self.self_help(d, change.status, change.reason)

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
            self.emit(ev.SelfHelpWithheld(device, reason), w.id)
            self.set(cycled=self.st.cycled | {device})  # once per fault, not every poll
            return
        if not self.relays[device] or self.sequence is not None:
            return
        self.set(cycled=self.st.cycled | {device})
        self.emit(ev.SelfHelpPowerCycle(device, reason))
        self.power.start(False, f"{SELF_HELP}{device}", (device,), then_on=True)

    # time-driven changes --------------------------------------------------------
    def on_time(self) -> None:
        """Everything that happens because the clock reached a deadline."""
        w = self.guard_lock()
        self.power.on_time()
        chk = self.st.check
        if chk is not None and self.now >= chk.deadline:
            self.emit(ev.OperatorCheckUnanswered(chk.id, "timeout",
                                                 round(self.now - chk.requested_at, 3)))
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
            self.emit(ev.WindowPowerUp(w.kind, w.title, _iso(w.start)), w.id)
            self.power.start(True, f"window:{w.id}")
        self.track_lock()
        self.track_unscheduled()

    def guard_lock(self) -> Window | None:
        """Stop a switch-off that began before the lock: only an override goes on into it."""
        w = self.lock()
        seq = self.sequence
        if (w is not None and seq is not None and not seq.on
                and not seq.reason.startswith("override:")):
            self.power.cancel(f"lock:{w.id}")
        return w

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
                self.emit(ev.UnscheduledUseEnded(key[0], key[1], round(self.now - since, 3)))
        for key in now_in:
            if key not in before:
                self.emit(ev.UnscheduledUse(key[0], key[1]))
        self.set(unscheduled={k: before.get(k, v) for k, v in now_in.items()})

    def track_lock(self) -> None:
        """Emit lock changes: the lock itself is derived from windows and the clock."""
        w = self.lock()
        new = w.id if w else None
        old = self.st.locked_by
        if new == old:
            return
        if old is not None:
            was = self.st.window(old)
            if old in self.st.completed:
                why = "completed"
            elif was is None:
                why = "window_removed"
            elif self.now < was.start - self.settings.lead_s:
                why = "clock_moved_back"
            else:
                why = "hard_cap"
            self.emit(ev.LockReleased(why), old)
        if w is not None:
            self.emit(ev.LockEngaged(w.kind, w.title, _iso(w.start), _iso(w.end),
                                     _iso(release_time(self.settings, w))), w.id)
        self.set(locked_by=new)


def _awake(state: RoomState) -> frozenset[str]:
    return frozenset(n for n, h in state.health.items() if h.power == "on")


def step(settings: RoomSettings, state: RoomState, event: Event, now: float) -> Outcome:
    """Decide what ``event`` at ``now`` means for the room. Pure: same inputs, same outcome."""
    s = _Step(settings, state, now)
    s.guard_lock()
    match event:
        case Tick():
            pass
        case ClockStatus(synced=synced, last_known_good=lkg):
            s.set(clock_synced=synced, last_known_good=max(lkg, s.st.last_known_good))
        case ScheduleReceived():
            s.schedule(event)
        case ButtonPressed():
            s.press()
        case ButtonHeld():
            s.hold()
        case LocalPowerRequest(on=on, source=source):
            if on:
                s.local_on(source)
            else:
                s.local_off(source)
        case Command():
            commands.handle(s, event)
        case BrokerConnection(connected=up):
            s.set(broker_up=up)
        case DeviceReady(device=d):
            s.power.answer(d, True)
        case DeviceStandby(device=d):
            s.power.answer(d, False)
        case DeviceHealthChanged():
            s.health_changed(event)
    s.on_time()
    return s.outcome()


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
