"""The room's state: everything the core remembers, and the part of it that survives a restart.

:class:`RoomState` is immutable; a step returns a new one. :func:`persistent` is what the shell
writes to disk after each step, :func:`initial_state` reads it back at start and
:func:`resume` adds what the shell knows before the first step (cached schedule, clock).

Times are wall-clock POSIX seconds, except durations, which run on the monotonic clock
(``docs/time.md`` rule 6; fields say ``mono``, or say so). A new boot restarts the monotonic
clock, so no monotonic time is saved: after a restart a running sequence begins its current
step again and a pending check or after-window switch-off starts its timer again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agent.core.events import ScheduleReceived, Window
from agent.core.sequence import Sequence
from agent.core.settings import RoomSettings


@dataclass(frozen=True)
class OperatorCheck:
    """A pending "is anyone there?" request from the district.

    ``requested_at`` and ``deadline`` are wall-clock times, shown to people; the timeout and
    the latency run on the monotonic clock from ``requested_mono`` (None after a restart
    until the first step, which starts the check's timeout again).
    """

    id: str
    requested_at: float
    deadline: float
    by: str = ""
    requested_mono: float | None = None

    @property
    def timeout_s(self) -> float:
        return self.deadline - self.requested_at


@dataclass(frozen=True)
class AfterWindow:
    """The time after a window's lock ended, until the room switches itself off.

    ``after_s`` (None: never) counts on the monotonic clock from ``since_mono`` (None after a
    restart until the first step, which starts the wait again). ``switching_off`` once its
    power-off sequence runs.
    """

    window_id: str
    after_s: float | None
    since_mono: float | None = None
    switching_off: bool = False

    def due(self, mono: float) -> float | None:
        """When the room switches itself off (monotonic), or None."""
        if self.after_s is None or self.switching_off:
            return None
        return (self.since_mono if self.since_mono is not None else mono) + self.after_s


@dataclass(frozen=True)
class SelfTest:
    """A running self-test (``agent.core.selftest``): the device being tested, the phase it
    is in (``off``, ``hold`` without power until ``hold_until``, ``on``, ``settle`` until its
    relay's read-back is in), what its phases gave, and the devices still to come. Saved:
    after a restart it comes back in phase ``restart`` (``reboot`` after a reboot) and its
    first step ends it as interrupted (``started_at``, the wall clock, gives its length)."""

    source: str
    devices: tuple[str, ...]
    remaining: tuple[str, ...]
    started_mono: float
    current: str | None = None
    phase: str = "off"
    hold_until: float | None = None
    off: str = "not_done"
    on: str = "not_done"
    failed: tuple[str, ...] = ()
    started_at: float = 0.0


@dataclass(frozen=True)
class DeviceHealth:
    """A device's health as its driver's poller last reported it."""

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
    schedule_digest: str = ""  # of the schedule message as received
    adhoc: tuple[Window, ...] = ()
    completed: frozenset[str] = frozenset()
    powered: frozenset[str] = frozenset()  # windows whose automatic power-up has run
    ready_reported: frozenset[str] = frozenset()  # windows whose window_ready was sent
    locked_by: str | None = None  # the window locking the room (settled by each step)
    lock_since: float | None = None  # when that lock engaged
    lock_span: tuple[float, float, float] | None = None  # its start, end, cap as announced
    sequence: Sequence | None = None
    sequences_started: int = 0
    steps_started: int = 0  # driver steps numbered so far (AwaitReady/SendStandby.step)
    check: OperatorCheck | None = None
    last_check_in: float | None = None
    last_ack: tuple[str, float, float] | None = None  # (check id, at, latency)
    refusal_until: float | None = None  # monotonic: the LED shows the refusal until then
    help_requested_at: float | None = None  # the last help request the centre has not answered
    help_until: float | None = None  # monotonic: the LED confirms the help request until then
    broker_up: bool = False
    health: Mapping[str, DeviceHealth] = field(default_factory=dict)
    # Each device's own model and serial number as last reported (None where never told).
    identity: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)
    # Devices whose driver said they are awake since their relay last closed (not saved:
    # after a restart nobody has said so yet).
    awake: frozenset[str] = frozenset()
    clock_synced: bool = True
    last_known_good: float = 0.0
    evidence: float = 0.0  # latest district time stamp seen on a message
    cycled: frozenset[str] = frozenset()  # power-cycled by self-help since last healthy
    unscheduled: Mapping[tuple[str, str], float] = field(default_factory=dict)  # wall since
    after_window: AfterWindow | None = None
    selftest: SelfTest | None = None
    # When the last step ran (None: none yet): bookkeeping for Outcome.changed, not part of
    # what the room is, so not compared.
    stepped_at: float | None = field(default=None, compare=False)

    @property
    def windows(self) -> tuple[Window, ...]:
        """Scheduled and ad-hoc windows, by start."""
        return tuple(sorted(self.schedule + self.adhoc, key=lambda w: (w.start, w.id)))

    def window(self, window_id: str | None) -> Window | None:
        """The window called ``window_id``, if the room has it."""
        return next((w for w in self.windows if w.id == window_id), None)


def initial_state(settings: RoomSettings, relays: Mapping[str, bool] | None = None,
                  saved: Mapping[str, Any] | None = None, rebooted: bool = False) -> RoomState:
    """A fresh state; ``relays`` is what the pins show now, ``saved`` what :func:`persistent`
    wrote before a restart (lock, completed windows, ad-hoc windows, a self-test running),
    ``rebooted`` whether the machine booted since (the pins were reset: the boot id changed).

    After any restart, a window locking the room gets its power-up again unless every device
    is surely on: its relay closed and, for a device with a driver, awake, which nobody can
    have confirmed yet. After a reboot a sequence cut short starts again from its first device
    (the devices it had done may have lost their power); after a restart of the agent alone it
    goes on from the step it was in.
    """
    rel = {n: bool((relays or {}).get(n, False)) for n in settings.names}
    st = RoomState(relays=rel, health={n: DeviceHealth() for n in settings.names})
    if not saved:
        return st
    powered = frozenset(str(p) for p in saved.get("powered", ()))
    surely_on = all(rel.values()) and not any(d.confirm for d in settings.devices)
    if not surely_on:
        powered -= {saved.get("locked_by")}
    started = int(saved.get("sequences_started", 0))
    sequence = _saved_sequence(saved.get("sequence"), rel)
    if sequence is not None and rebooted:
        # Started again from its first device: a new run of it, under a new number.
        started += 1
        sequence = replace(sequence, id=started, remaining=sequence.devices or sequence.remaining)
    return replace(
        st,
        completed=frozenset(str(c) for c in saved.get("completed", ())),
        powered=powered,
        ready_reported=frozenset(str(p) for p in saved.get("ready_reported", ())),
        adhoc=tuple(Window(**w) for w in saved.get("adhoc", ())),
        locked_by=saved.get("locked_by"),
        lock_since=_float_or_none(saved.get("lock_since")),
        lock_span=None if not saved.get("lock_span") else (
            float(saved["lock_span"][0]), float(saved["lock_span"][1]),
            float(saved["lock_span"][2])),
        sequences_started=started,
        steps_started=int(saved.get("steps_started", 0)),
        check=None if not saved.get("check") else OperatorCheck(
            id=str(saved["check"]["id"]), requested_at=float(saved["check"]["requested_at"]),
            deadline=float(saved["check"]["deadline"]), by=str(saved["check"].get("by", ""))),
        cycled=frozenset(str(d) for d in saved.get("cycled", ()) if d in rel),
        unscheduled={(str(d), str(w)): float(t) for d, w, t in saved.get("unscheduled", ())
                     if d in rel},
        evidence=float(saved.get("evidence", 0.0)),
        help_requested_at=_float_or_none(saved.get("help_requested_at")),
        identity={str(d): (None if m is None else str(m), None if n is None else str(n))
                  for d, (m, n) in dict(saved.get("identity", {})).items() if d in rel},
        sequence=sequence,
        after_window=None if not saved.get("after_window") else AfterWindow(
            window_id=str(saved["after_window"]["window_id"]),
            after_s=_float_or_none(saved["after_window"]["after_s"]),
            switching_off=bool(saved["after_window"].get("switching_off", False))),
        selftest=_saved_selftest(saved.get("selftest"), rel, rebooted),
    )


def _float_or_none(v: Any) -> float | None:
    return None if v is None else float(v)


def _saved_sequence(seq: Mapping[str, Any] | None, relays: Mapping[str, bool]
                    ) -> Sequence | None:
    """A sequence cut short by a restart, to go on from the step it was in."""
    if not seq:
        return None
    remaining = tuple(n for n in seq["remaining"] if n in relays)
    reason = str(seq["reason"])
    return Sequence(
        id=int(seq["id"]), on=bool(seq["on"]), reason=reason, remaining=remaining,
        started_at=float(seq["started_at"]),
        devices=tuple(n for n in seq.get("devices", remaining) if n in relays),
        # Older saves name a power cycle by its reason only.
        then_on=bool(seq.get("then_on", not seq["on"] and reason.startswith("self_help:"))))


def _saved_selftest(t: Mapping[str, Any] | None, relays: Mapping[str, bool], rebooted: bool
                    ) -> SelfTest | None:
    """A self-test a restart cut short: in phase ``restart`` (or ``reboot``), for its first
    step to end it as interrupted (:mod:`agent.core.selftest`)."""
    if not t:
        return None
    current = t.get("current")
    return SelfTest(
        source=str(t.get("source", "")),
        devices=tuple(str(n) for n in t.get("devices", ()) if n in relays),
        remaining=tuple(str(n) for n in t.get("remaining", ()) if n in relays),
        started_mono=0.0, current=str(current) if current in relays else None,
        phase="reboot" if rebooted else "restart", off=str(t.get("off", "not_done")),
        on=str(t.get("on", "not_done")),
        failed=tuple(str(n) for n in t.get("failed", ()) if n in relays),
        started_at=float(t.get("started_at", 0.0)))


def resume(state: RoomState, schedule: ScheduleReceived | None, clock_synced: bool,
           last_known_good: float) -> RoomState:
    """A restarted room's state before its first step: the cached schedule and what is known
    of the clock are part of it from the start, so the first decision sees the lock as it was
    (no false release, and an untrusted clock cannot end it)."""
    if schedule is not None:
        # A completion the district put in the schedule holds even if the room stopped
        # before its step recorded it.
        known = {w.id for w in (*schedule.windows, *state.adhoc)}
        done = {c[0] for c in schedule.completed if c[0] in known}
        state = replace(state, schedule=tuple(schedule.windows),
                        schedule_version=schedule.version, schedule_digest=schedule.digest,
                        completed=state.completed | done)
    return replace(state, clock_synced=clock_synced, last_known_good=last_known_good)


def persistent(state: RoomState) -> dict[str, Any]:
    """The part of the state that must survive a restart, as JSON-ready data."""
    seq = state.sequence
    return {
        "relays": dict(state.relays),
        "completed": sorted(state.completed),
        "powered": sorted(state.powered),
        "ready_reported": sorted(state.ready_reported),
        "adhoc": [w.__dict__ for w in state.adhoc],
        "locked_by": state.locked_by,
        "lock_since": state.lock_since,
        "lock_span": None if state.lock_span is None else list(state.lock_span),
        "sequences_started": state.sequences_started,
        "steps_started": state.steps_started,
        "check": None if state.check is None else {
            "id": state.check.id, "requested_at": state.check.requested_at,
            "deadline": state.check.deadline, "by": state.check.by},
        "cycled": sorted(state.cycled),
        "unscheduled": sorted([d, w, t] for (d, w), t in state.unscheduled.items()),
        "evidence": state.evidence,
        "help_requested_at": state.help_requested_at,
        "identity": {d: list(mn) for d, mn in sorted(state.identity.items())},
        "after_window": None if state.after_window is None else {
            "window_id": state.after_window.window_id, "after_s": state.after_window.after_s,
            "switching_off": state.after_window.switching_off},
        "sequence": None if seq is None else {
            "id": seq.id, "on": seq.on, "reason": seq.reason,
            "remaining": [n for n in (seq.current, *seq.remaining) if n],
            "started_at": seq.started_at, "devices": list(seq.devices), "then_on": seq.then_on,
        },
        "selftest": None if state.selftest is None else {
            "source": state.selftest.source, "devices": list(state.selftest.devices),
            "remaining": list(state.selftest.remaining), "current": state.selftest.current,
            "off": state.selftest.off, "on": state.selftest.on,
            "failed": list(state.selftest.failed), "started_at": state.selftest.started_at,
        },
    }
