"""The step: one event at one time in, the new state and the actions out.

``step(settings, state, event, now, mono)`` is pure: same inputs, same outcome. Every step runs the
same four phases, in this order, so nothing depends on which helper happens to run first:

1. **facts** — what the event says about the world the lock depends on: the clock, the
   schedule, a district time stamp, a window started or completed by command;
2. **the lock** — settled once from those facts (:mod:`agent.core.windows`): engaged, moved or
   released, recorded before anything it causes; the rest of the step uses it as it is;
3. **the request** — what the event asks for, judged against that lock: the button, the CLI,
   the district's other commands (:mod:`agent.core.commands`), the devices' answers and
   health (:mod:`agent.core.devices`);
4. **time** — what is due: sequence steps (:mod:`agent.core.sequence`), check timeouts, the
   window's power-up and readiness, the switch-off after a window, unscheduled use
   (:mod:`agent.core.devices`).

The :class:`Outcome` says what changed, so the shell asks the core nothing back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from agent.contract import events as ev
from agent.core import commands, devices, selftest
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
    HelpRequested,
    LocalPowerRequest,
    LocalSource,
    ScheduleReceived,
    SelfTestRequested,
    Window,
)
from agent.core.led import LedPattern
from agent.core.sequence import Power, Sequence, Sequencer
from agent.core.settings import RoomSettings
from agent.core.state import AfterWindow, OperatorCheck, RoomState
from agent.core.view import iso, led, shown
from agent.core.windows import clock_trusted, lock_window, proven_now, release_time


@dataclass(frozen=True)
class Outcome:
    """What a step decided.

    ``state`` is the new state and ``actions`` what to carry out, in order; ``lock`` is the
    window locking the room after the step (or None), ``led`` the pattern the LED shows, and
    ``changed`` whether anything the state message shows is different from after the step
    before.
    """

    state: RoomState
    actions: tuple[Action, ...]
    lock: Window | None
    led: LedPattern
    changed: bool


class _Locking:
    """The default of :meth:`_Step.emit`: stamp the event with the window locking the room."""


LOCKING = _Locking()


class _Step:
    """One step: the state as it becomes, the actions so far, and the lock once settled."""

    def __init__(self, settings: RoomSettings, state: RoomState, now: float,
                 mono: float) -> None:
        self.settings = settings
        self.st = state
        self.now = now
        self.mono = mono
        self.actions: list[Action] = []
        self.locked: Window | None = state.window(state.locked_by)  # until settled
        self.admitted = False  # whether the command (if the event is one) may run
        self.power = Sequencer(
            settings, Power(state.relays, state.awake, state.sequence, state.sequences_started,
                            state.steps_started),
            now, mono, self.emit, self.actions.append)
        # Timers restored after a restart start again now (no monotonic time survives one).
        if state.check is not None and state.check.requested_mono is None:
            self.set(check=replace(state.check, requested_mono=mono))
        if state.after_window is not None and state.after_window.since_mono is None:
            self.set(after_window=replace(state.after_window, since_mono=mono))

    # small helpers ------------------------------------------------------------
    def emit(self, event: Any, window_id: str | _Locking | None = LOCKING) -> None:
        """Record ``event``, stamped with the window locking the room (or ``window_id``, for
        an event about one window) and whether the clock is trusted."""
        if isinstance(window_id, _Locking):
            window_id = self.st.locked_by
        self.actions.append(Emit(event, window_id,
                                 clock_trusted(self.settings, self.st, self.now)))

    def reply(self, cmd: Command, status: Literal["accepted", "refused", "invalid"],
              reason: str = "", **data: Any) -> None:
        self.actions.append(Reply(cmd.id, status, reason, data))

    def set(self, **changes: Any) -> None:
        self.st = replace(self.st, **changes)

    def waited(self, chk: OperatorCheck) -> float:
        """How long ``chk`` has been waiting for a press (monotonic)."""
        return self.mono - (chk.requested_mono if chk.requested_mono is not None else self.mono)

    @property
    def relays(self) -> dict[str, bool]:
        return dict(self.power.power.relays)

    @property
    def sequence(self) -> Sequence | None:
        return self.power.sequence

    def outcome(self, before: RoomState) -> Outcome:
        p = self.power.power
        st = replace(self.st, relays=p.relays, awake=p.awake, sequence=p.sequence,
                     sequences_started=p.started, steps_started=p.steps, stepped_at=self.now)
        changed = (before.stepped_at is None or shown(self.settings, before, before.stepped_at)
                   != shown(self.settings, st, self.now))
        return Outcome(st, tuple(self.actions), self.locked, led(self.settings, st, self.now),
                       changed)

    # 1. facts -------------------------------------------------------------------
    def facts(self, event: Event) -> None:
        match event:
            case ClockStatus(synced=synced, last_known_good=lkg):
                self.set(clock_synced=synced, last_known_good=max(lkg, self.st.last_known_good))
            case ScheduleReceived():
                self.schedule(event)
            case Command():
                self.admitted = commands.admit(self, event)
                if self.admitted:
                    commands.facts(self, event)

    def schedule(self, sched: ScheduleReceived) -> None:
        """A new schedule replaces the old one; ad-hoc windows stay, unless the schedule names
        one: then the schedule's window takes it over (the centre's "start now" sends the
        command first, then the schedule with the same id)."""
        # A schedule is applied whatever its stamp; a stamp that cannot be right is just not
        # taken as proof of the time.
        if (sched.issued_at is not None
                and commands.stamp_problem(self, sched.issued_at, "") is None):
            self.set(evidence=max(self.st.evidence, sched.issued_at))
        old_start = {w.id: w.start for w in self.st.schedule}
        moved = {w.id for w in sched.windows
                 if w.id in old_start and old_start[w.id] != w.start}
        named = {w.id for w in sched.windows}
        if any(a.id in named for a in self.st.adhoc):
            self.set(adhoc=tuple(a for a in self.st.adhoc if a.id not in named))
        self.set(schedule=tuple(sched.windows), schedule_version=sched.version,
                 schedule_digest=sched.digest,
                 # A window moved to a new time powers the room up again at that time.
                 powered=self.st.powered - moved, ready_reported=self.st.ready_reported - moved)
        known = {w.id for w in self.st.windows}
        self.set(completed=frozenset(c for c in self.st.completed if c in known),
                 powered=frozenset(p for p in self.st.powered if p in known),
                 ready_reported=frozenset(p for p in self.st.ready_reported if p in known))
        self.emit(ev.ScheduleApplied(sched.version, sched.digest, len(sched.windows)))
        # Windows the schedule marks complete: as the command does (never undone by a later
        # schedule that no longer says so; only a window gone from the schedule is forgotten).
        for wid, _at, by in sched.completed:
            if wid in known and wid not in self.st.completed:
                self.set(completed=self.st.completed | {wid})
                self.emit(ev.WindowCompleted(by, "schedule"), wid)

    # 2. the lock ----------------------------------------------------------------
    def settle_lock(self) -> None:
        """Engage, move or release the lock from the facts; stop a switch-off it forbids."""
        w = lock_window(self.settings, self.st, self.now)
        old = self.st.locked_by
        if old is not None and (w is None or w.id != old):
            why = self._release_reason(old)
            self.emit(ev.LockReleased(why), old)
            self.set(locked_by=None, lock_since=None, lock_span=None)
            if why != "clock_moved_back" and any(self.relays.values()):
                # The window is over: the room switches itself off a while later.
                self.set(after_window=AfterWindow(old, self.settings.off_after_release_s,
                                                  self.mono))
        if w is not None:
            span = (w.start, w.end, release_time(self.settings, w))
            start, end, cap = (iso(t) or "" for t in span)
            if w.id != old:
                self.set(locked_by=w.id, lock_since=self.now, lock_span=span, after_window=None)
                self.emit(ev.LockEngaged(w.kind, w.title, start, end, cap), w.id)
            elif span != self.st.lock_span:
                if self.st.lock_span is not None:  # (None: saved before the span was kept)
                    self.emit(ev.LockMoved(start, end, cap), w.id)
                self.set(lock_span=span)
        self.locked = w
        seq = self.sequence
        if (w is not None and seq is not None and not seq.on
                and not seq.reason.startswith("override:")):
            # A switch-off that began before the lock: only an override goes on into it.
            self.power.cancel(f"lock:{w.id}")

    def _release_reason(self, old: str) -> ev.ReleaseReason:
        was = self.st.window(old)
        if old in self.st.completed:
            return "completed"
        if was is None:
            return "window_removed"
        if self.now < was.start - self.settings.lead_s:
            return "clock_moved_back"
        return "hard_cap"

    # 3. the request -------------------------------------------------------------
    def request(self, event: Event) -> None:
        if _uses_the_room(event):
            self.keep_on()
        match event:
            case ButtonPressed():
                self.press()
            case ButtonHeld():
                self.hold()
            case LocalPowerRequest(on=on, source=source):
                if on:
                    self.local_on(source)
                else:
                    self.local_off(source)
            case SelfTestRequested(source=source):
                selftest.request(self, source)
            case HelpRequested(source=source):
                self.emit(ev.HelpRequested(source))
                self.set(help_requested_at=self.now,
                         help_until=self.mono + self.settings.refusal_show_s)
            case Command() if self.admitted:
                commands.request(self, event)
            case BrokerConnection(connected=up):
                self.set(broker_up=up)
            case DeviceReady(device=d, step=n):
                self.power.answer(d, True, n)
            case DeviceStandby(device=d, step=n):
                self.power.answer(d, False, n)
            case DeviceHealthChanged():
                devices.health_changed(self, event)

    def local_off(self, source: LocalSource) -> None:
        w = self.locked
        if w is not None:
            self.set(refusal_until=self.mono + self.settings.refusal_show_s)
            self.emit(ev.ShutdownRefused(source, w.kind, w.title))
        else:
            self.emit(ev.PowerRequested(False, source))
            self.power.start(False, f"local:{source}")

    def local_on(self, source: LocalSource) -> None:
        self.emit(ev.PowerRequested(True, source))
        self.power.start(True, f"local:{source}")

    def press(self) -> None:
        """A short press: answers a pending operator check; in a window, a check-in."""
        chk = self.st.check
        if chk is not None:
            latency = self.waited(chk)
            self.emit(ev.OperatorCheckAcknowledged(chk.id, round(latency, 3)))
            self.set(check=None, last_ack=(chk.id, self.now, latency))
        if self.locked is not None:
            self.emit(ev.CheckIn(self.locked.kind))
            self.set(last_check_in=self.now)

    def hold(self) -> None:
        """A long press toggles the room: off when anything is on (or going on), else on."""
        seq = self.sequence
        if any(self.relays.values()) or (seq is not None and seq.on):
            self.local_off("button")
        else:
            self.local_on("button")

    # 4. time --------------------------------------------------------------------
    def on_time(self) -> None:
        """Everything that happens because the clock reached a deadline."""
        self.power.on_time()
        chk = self.st.check
        if chk is not None and self.waited(chk) >= chk.timeout_s:
            self.emit(ev.OperatorCheckUnanswered(chk.id, "timeout", round(self.waited(chk), 3)))
            self.set(check=None)
        if self.st.refusal_until is not None and self.mono >= self.st.refusal_until:
            self.set(refusal_until=None)
        if self.st.help_until is not None and self.mono >= self.st.help_until:
            self.set(help_until=None)
        # Ad-hoc windows whose time is surely over are forgotten (they are not in a schedule).
        if self.st.adhoc and clock_trusted(self.settings, self.st, self.now):
            keep = tuple(a for a in self.st.adhoc if a.id == self.st.locked_by
                         or release_time(self.settings, a) > self.now)
            if keep != self.st.adhoc:
                gone = {a.id for a in self.st.adhoc} - {a.id for a in keep}
                self.set(adhoc=keep, completed=self.st.completed - gone,
                         powered=self.st.powered - gone,
                         ready_reported=self.st.ready_reported - gone)
        # Automatic power-up: once per window, from start - lead, while it locks the room.
        w = self.locked
        if w is not None and w.id not in self.st.powered:
            self.set(powered=self.st.powered | {w.id})
            self.emit(ev.WindowPowerUp(w.kind, w.title, iso(w.start) or ""))
            self.power.start(True, f"window:{w.id}")
        self.window_ready()
        self.after_window()
        selftest.progress(self)
        devices.track_unscheduled(self)

    def window_ready(self) -> None:
        """At the start of the window locking the room: how ready each device was."""
        w = self.locked
        if w is None or w.id in self.st.ready_reported:
            return
        t = proven_now(self.settings, self.st, self.now)
        if t is None or t < w.start:
            return
        relays, awake = self.relays, self.power.power.awake
        devices = {}
        for spec in self.settings.devices:
            n = spec.name
            state: ev.ReadyState = ("off" if not relays[n] else "on" if not spec.confirm
                                    else "confirmed" if n in awake else "on_silent")
            devices[n] = ev.ReadyDevice(relays[n], state,
                                        self.st.health[n].status)  # type: ignore[arg-type]
        on_by_start = all(d.state in ("confirmed", "on") for d in devices.values())
        self.set(ready_reported=self.st.ready_reported | {w.id})
        self.emit(ev.WindowReady(iso(w.start) or "", on_by_start, devices))

    def keep_on(self) -> None:
        """Someone uses the room after a window: it does not switch itself off."""
        aw = self.st.after_window
        if aw is not None and not aw.switching_off:
            self.set(after_window=None)

    def after_window(self) -> None:
        """Switch the room off, in order, once the time after a window is over (not under a
        call still going on); the after-window time ends with that sequence."""
        aw = self.st.after_window
        if aw is None:
            return
        reason = f"after_window:{aw.window_id}"
        if aw.switching_off:
            seq = self.sequence
            if seq is None or seq.reason != reason:
                self.set(after_window=None)  # done, or replaced by another request
            return
        due = aw.due(self.mono)
        if due is None or self.mono < due or devices.in_call(self.st, self.relays):
            return
        self.emit(ev.AfterWindowPowerOff(aw.after_s or 0.0), aw.window_id)
        self.set(after_window=replace(aw, switching_off=True))
        self.power.start(False, reason)
        if self.sequence is None:
            self.set(after_window=None)  # nothing was on

def _uses_the_room(event: Event) -> bool:
    """Whether ``event`` is someone at the room using it (a district ``power`` command
    counts too: :func:`agent.core.commands.power`)."""
    return isinstance(event, ButtonPressed | ButtonHeld | HelpRequested | LocalPowerRequest
                      | SelfTestRequested)


def step(settings: RoomSettings, state: RoomState, event: Event, now: float,
         mono: float) -> Outcome:
    """Decide what ``event`` means for the room at wall-clock time ``now`` (POSIX seconds,
    which may jump) and monotonic time ``mono`` (seconds, never jumps; every duration and
    timeout is measured on it). Pure: same inputs, same outcome."""
    s = _Step(settings, state, now, mono)
    s.facts(event)
    s.settle_lock()
    s.request(event)
    s.on_time()
    return s.outcome(state)


def next_deadline(settings: RoomSettings, state: RoomState, now: float,
                  mono: float) -> float | None:
    """In how many seconds a ``Tick`` could change something (None: nothing is due).

    Windows begin and end at wall-clock times (``now``); waits and timeouts end at monotonic
    times (``mono``): both kinds are turned into seconds from now, so the caller simply
    sleeps that long (and wakes early for any other event).
    """
    mono_due: list[float] = []
    seq = state.sequence
    if seq is not None and seq.current is None:
        mono_due.append(mono)  # restored after a restart: go on at once
    elif seq is not None and seq.deadline is not None:
        mono_due.append(seq.deadline)
    chk = state.check
    if chk is not None:
        mono_due.append((chk.requested_mono if chk.requested_mono is not None else mono)
                        + chk.timeout_s)
    mono_due += [t for t in (state.refusal_until, state.help_until,
                             selftest.deadline(state.selftest)) if t is not None]
    aw = state.after_window
    if (aw is not None and (due := aw.due(mono)) is not None
            and not devices.in_call(state, state.relays)):
        mono_due.append(due)  # (under a call: when the call ends, a health change says so)
    wall_due: list[float] = []
    locked = state.window(state.locked_by)
    if locked is not None and locked.id not in state.ready_reported and locked.start > now:
        wall_due.append(locked.start)  # window_ready
    for w in state.windows:
        if w.id in state.completed:
            continue
        wall_due += [t for t in (w.start - settings.lead_s, release_time(settings, w))
                     if t > now]
    waits = [t - mono for t in mono_due] + [t - now for t in wall_due]
    return max(0.0, min(waits)) if waits else None
