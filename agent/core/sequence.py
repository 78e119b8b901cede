"""The power sequence: a small machine of its own.

Devices are switched **on** in their configured order and **off** in the reverse order, one
step at a time:

* on: close the relay, then wait for the device's driver to say it is awake (``wait_ready``,
  bounded by its ready timeout) or, without a driver, its on-delay (``wait_delay``);
* off: send the device its standby command and wait for the confirmation (``wait_standby``,
  bounded by its grace) or, without a driver, its grace time (``wait_grace``); then open
  the relay.

A new request replaces a running sequence (``power_sequence_cancelled``). A step ends
``done`` (its wait passed), ``confirmed`` (the driver answered) or ``timeout`` (it did not);
every step is reported, none is skipped silently. Each wait for a driver has its own number
(``AwaitReady.step``/``SendStandby.step``): an answer naming another number, a late answer to a
step a newer request replaced, confirms nothing. Every wait runs on the monotonic clock. A
sequence started with ``then_on`` switches its devices on again once they are all off (a power
cycle).

:class:`Sequencer` is one use of the machine inside a core step: it changes its
:class:`Power` and hands every event and action to the step's callbacks, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from agent.contract import events as ev
from agent.core.actions import AwaitReady, SendStandby, SetRelay
from agent.core.settings import RoomSettings

Phase = Literal["wait_ready", "wait_delay", "wait_standby", "wait_grace"]


@dataclass(frozen=True)
class Sequence:
    """A running power sequence: ``remaining`` devices in the order they will be done.

    ``started_at`` is wall-clock time (shown to people); every duration (``started_mono``,
    ``step_mono``, ``deadline``) is on the monotonic clock, which a new boot restarts: a
    sequence restored after a restart begins its current step again, with fresh timers.
    """

    id: int
    on: bool
    reason: str
    remaining: tuple[str, ...]
    started_at: float
    devices: tuple[str, ...] = ()  # all it does, in order (``remaining`` is what is left)
    current: str | None = None
    phase: Phase | None = None
    started_mono: float | None = None  # None: restored after a restart, not yet going on
    step_mono: float = 0.0  # when the current step began
    deadline: float | None = None  # when the current step's wait ends (monotonic)
    step: int = 0  # the number of the current step's AwaitReady/SendStandby
    then_on: bool = False  # a power cycle: once all are off, switch them on again


@dataclass(frozen=True)
class Power:
    """What the machine works on: each device's relay, the devices whose driver has said they
    are awake, the running sequence and how many sequences were started so far (their ids).

    Switching on a device whose relay is already closed still wakes it when it has a driver
    and is not known awake.
    """

    relays: Mapping[str, bool]
    awake: frozenset[str] = frozenset()
    sequence: Sequence | None = None
    started: int = 0
    steps: int = 0  # driver steps (AwaitReady/SendStandby) numbered so far


class Sequencer:
    """The machine, used once: its methods change :attr:`power` at wall time ``now`` and
    monotonic time ``mono`` (every wait is measured on it) and pass each event
    (``emit(event)``, a contract event) and action (``act(action)``) on as it happens."""

    def __init__(self, settings: RoomSettings, power: Power, now: float, mono: float,
                 emit: Callable[[Any], None],
                 act: Callable[[SetRelay | AwaitReady | SendStandby], None]) -> None:
        self.settings = settings
        self.power = power
        self.now = now
        self.mono = mono
        self._emit = emit
        self._act = act

    @property
    def sequence(self) -> Sequence | None:
        return self.power.sequence

    # requests -------------------------------------------------------------------
    def start(self, on: bool, reason: str, devices: tuple[str, ...] | None = None,
              then_on: bool = False) -> None:
        """Replace any running sequence by one that brings ``devices`` (default: all) on/off."""
        wanted = devices if devices is not None else self.settings.names
        order = self.settings.names if on else tuple(reversed(self.settings.names))
        relays = self.power.relays
        old = self.sequence
        if old is not None:
            self._emit(ev.PowerSequenceCancelled(old.on, old.reason, reason, old.current))
        # A device whose relay already has the wanted state needs no step, except that "on"
        # also means awake: a device with a driver that has not said it is on gets woken.
        todo = tuple(n for n in order if n in wanted and (
            relays[n] != on
            or (on and self.settings.spec(n).confirm and n not in self.power.awake)))
        seq_id = self.power.started + 1
        self._set(started=seq_id, sequence=None)
        if not todo:
            return
        self._set(sequence=Sequence(id=seq_id, on=on, reason=reason, remaining=todo,
                                    started_at=self.now, started_mono=self.mono,
                                    devices=todo, then_on=then_on))
        self._emit(ev.PowerSequenceStarted(on, reason, todo))
        self.advance()

    def cancel(self, replaced_by: str) -> None:
        """Stop the running sequence where it is (its devices keep their power)."""
        seq = self.sequence
        if seq is not None:
            self._emit(ev.PowerSequenceCancelled(seq.on, seq.reason, replaced_by, seq.current))
            self._set(sequence=None)

    def answer(self, device: str, on: bool, step: int = 0) -> None:
        """The driver of ``device`` confirmed it is awake (``on``) or in standby, for the
        step numbered ``step``: an answer to another step (a late one, to a step a newer
        request replaced) confirms nothing."""
        seq = self.sequence
        phase = "wait_ready" if on else "wait_standby"
        if (seq is not None and seq.on == on and seq.current == device and seq.phase == phase
                and step == seq.step):
            if on:
                self._set(awake=self.power.awake | {device})
            self.finish_step("confirmed")

    def on_time(self) -> None:
        """Go on with a sequence restored after a restart; end a step whose wait is over."""
        if self.sequence is not None and self.sequence.current is None:
            self.advance()
        seq = self.sequence
        if seq is not None and seq.deadline is not None and self.mono >= seq.deadline:
            self.finish_step("timeout" if seq.phase in ("wait_ready", "wait_standby") else "done")

    # the machine ----------------------------------------------------------------
    def advance(self) -> None:
        """Begin steps until one has to wait, or the sequence is done."""
        while (seq := self.sequence) is not None and seq.current is None:
            if seq.started_mono is None:  # restored after a restart: its timers start now
                seq = replace(seq, started_mono=self.mono)
            if not seq.remaining:
                self._emit(ev.PowerSequenceFinished(seq.on, seq.reason,
                                                    round(self.mono - seq.started_mono, 3)))
                self._set(sequence=None)
                if seq.then_on:
                    self.start(True, seq.reason, seq.devices)
                return
            name, rest = seq.remaining[0], seq.remaining[1:]
            spec = self.settings.spec(name)
            seq = replace(seq, remaining=rest, current=name, step_mono=self.mono)
            if seq.on:
                if not self.power.relays[name]:
                    self._relay(name, True, seq)
                if spec.confirm:
                    seq = replace(seq, phase="wait_ready",
                                  deadline=self.mono + spec.ready_timeout_s, step=self._number())
                    self._act(AwaitReady(name, seq.step))
                elif spec.on_delay_s > 0 and rest:
                    seq = replace(seq, phase="wait_delay", deadline=self.mono + spec.on_delay_s)
                else:
                    self._set(sequence=seq)
                    self.finish_step("done")
                    continue
            elif not self.power.relays[name]:
                # Already off (a sequence resumed after a restart): nothing to wait for.
                self._set(sequence=seq)
                self.finish_step("done")
                continue
            elif spec.confirm:
                seq = replace(seq, phase="wait_standby",
                              deadline=self.mono + max(spec.off_grace_s, 1.0),
                              step=self._number())
                self._act(SendStandby(name, seq.step))
            elif spec.off_grace_s > 0:
                seq = replace(seq, phase="wait_grace", deadline=self.mono + spec.off_grace_s)
            else:
                self._set(sequence=seq)
                self._relay(name, False, seq)
                self.finish_step("done")
                continue
            self._set(sequence=seq)

    def finish_step(self, outcome: ev.StepOutcome) -> None:
        """The current step ended: report it, open the relay of a device going off, go on."""
        seq = self.sequence
        assert seq is not None and seq.current is not None
        if not seq.on and self.power.relays[seq.current]:
            self._relay(seq.current, False, seq)
        self._emit(ev.PowerStep(seq.current, seq.on, outcome,
                                round(self.mono - seq.step_mono, 3), seq.reason))
        self._set(sequence=replace(seq, current=None, phase=None, deadline=None, step=0))
        self.advance()

    def _number(self) -> int:
        self._set(steps=self.power.steps + 1)
        return self.power.steps

    def _relay(self, name: str, on: bool, seq: Sequence) -> None:
        self._set(relays={**self.power.relays, name: on},
                  awake=self.power.awake if on else self.power.awake - {name})
        self._act(SetRelay(name, on, seq.id, seq.reason))

    def _set(self, **changes: Any) -> None:
        self.power = replace(self.power, **changes)
