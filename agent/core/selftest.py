"""The room's self-test: each device switched off and on again, in order, each confirmed.

``diemcau-agent selftest`` asks for it (:class:`~agent.core.events.SelfTestRequested`). Only
outside every lock, with no power sequence running: otherwise it is refused
(``selftest_refused``, saying why). Then, for each device in power-on order:

1. **off**: the ordinary switch-off step (:mod:`agent.core.sequence`, reason
   ``selftest:<device>``): standby sent and confirmed by the driver's power query, then the
   relay opens; a device already off is ``already_off``;
2. **hold**: the device stays without power for ``settings.selftest_off_s``; then its relay
   pin must read open (the shell puts what the pin reads back into the state when a relay did
   not switch), else ``relay_failed``;
3. **on**: the ordinary switch-on step: the relay closes and the driver's power query must
   answer; then (**settle**, the next step) the relay pin must read closed.

A device without a serial link is confirmed by its relay pin only (``relay_only``). Each
device ends with ``selftest_device`` (how each phase was confirmed) and the test with
``selftest_finished``; the steps themselves are the sequences' own ``power_*`` events. Any
other power request, or a window's lock, ends the test early (``interrupted_by``); the room
is left on. So does a restart of the agent (``interrupted_by: restart``, at its first step):
the test is saved with the room's state, and after the restart the device under test is
switched back on (after a reboot, the pins stay as the boot left them: only the test's own
switch-off is stopped).

Functions of the step they run in (:class:`agent.core.step._Step`), like the commands.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from agent.contract import events as ev
from agent.core.actions import Emit
from agent.core.events import LocalSource
from agent.core.state import SelfTest

if TYPE_CHECKING:
    from agent.core.step import _Step

REASON = "selftest:"
"""Reason of a self-test's power sequences: ``selftest:<device>``."""

_FROM_STEP: dict[str, ev.SelftestOutcome] = {"confirmed": "confirmed", "timeout": "no_answer",
                                             "done": "relay_only"}
_PASSED = ("confirmed", "relay_only", "already_off")


def request(s: _Step, source: LocalSource) -> None:
    """Start a self-test, or refuse it (locked, a sequence running, one already running)."""
    w = s.locked
    if w is not None:
        s.emit(ev.SelftestRefused(source, "locked", w.kind, w.title))
        return
    if s.st.selftest is not None:
        s.emit(ev.SelftestRefused(source, "running"))
        return
    if s.sequence is not None:
        s.emit(ev.SelftestRefused(source, "busy"))
        return
    names = s.settings.names
    s.emit(ev.SelftestStarted(source, names))
    s.set(selftest=SelfTest(source=source, devices=names, remaining=names,
                            started_mono=s.mono, started_at=s.now))
    _next_device(s)


def _reason(t: SelfTest) -> str:
    return f"{REASON}{t.current}"


def _next_device(s: _Step) -> None:
    """Begin the next device's switch-off (or finish when none is left)."""
    t = s.st.selftest
    assert t is not None
    if not t.remaining:
        s.emit(ev.SelftestFinished(not t.failed, t.failed, round(s.mono - t.started_mono, 3)))
        s.set(selftest=None)
        return
    t = replace(t, current=t.remaining[0], remaining=t.remaining[1:], phase="off",
                hold_until=None, off="not_done", on="not_done")
    s.set(selftest=t)
    if s.relays[t.current or ""]:
        s.power.start(False, _reason(t), (t.current or "",))
    else:
        s.set(selftest=replace(t, off="already_off"))


def _record_steps(s: _Step, seen: int) -> int:
    """Take in the ``power_step`` outcomes of the device under test emitted since ``seen``."""
    t = s.st.selftest
    for a in s.actions[seen:]:
        if (t is not None and isinstance(a, Emit) and isinstance(a.event, ev.PowerStep)
                and a.event.reason == _reason(t) and a.event.device == t.current):
            outcome = _FROM_STEP[a.event.outcome]
            t = replace(t, on=outcome) if a.event.on else replace(t, off=outcome)
    if t is not None:
        s.set(selftest=t)
    return len(s.actions)


def progress(s: _Step) -> None:
    """Go on with a running self-test: what this step's sequences did, the next phase or
    device, or the end (interrupted by another request or a lock)."""
    seen = 0
    while (t := s.st.selftest) is not None:
        if t.phase in ("restart", "reboot"):
            _restarted(s, t)
            return
        seen = _record_steps(s, seen)
        t = s.st.selftest
        assert t is not None
        seq = s.sequence
        if seq is not None and seq.reason != _reason(t):
            _interrupted(s, seq.reason)
            return
        if s.locked is not None:
            _interrupted(s, f"lock:{s.locked.id}")
            return
        if seq is not None:
            return  # its step is still waiting
        if t.phase == "off":
            if t.off == "already_off":
                s.set(selftest=replace(t, phase="on"))
                s.power.start(True, _reason(t), (t.current or "",))
                continue
            s.set(selftest=replace(t, phase="hold",
                                   hold_until=s.mono + s.settings.selftest_off_s))
            continue
        if t.phase == "hold":
            if t.hold_until is not None and s.mono < t.hold_until:
                return
            if s.relays[t.current or ""]:
                t = replace(t, off="relay_failed")   # the pin reads closed: still powered
            s.set(selftest=replace(t, phase="on"))
            s.power.start(True, _reason(t), (t.current or "",))
            continue
        if t.phase == "on":
            # The relay's read-back comes after the step that closed it: look at the next.
            s.set(selftest=replace(t, phase="settle", hold_until=s.mono))
            return
        _device_done(s, t)
        _next_device(s)


def _device_done(s: _Step, t: SelfTest) -> None:
    device = t.current or ""
    relay = s.relays[device]
    ok = t.off in _PASSED and t.on in _PASSED and relay
    s.emit(ev.SelftestDevice(device, ok, t.off, t.on, relay))  # type: ignore[arg-type]
    if not ok:
        s.set(selftest=replace(t, failed=(*t.failed, device)))


def _restarted(s: _Step, t: SelfTest) -> None:
    """The first step after a restart that cut the test short: it ends, interrupted by the
    restart (its length on the wall clock: the monotonic one began again). Its own
    switch-off does not go on; after an agent restart (not a reboot) the device under test is
    switched back on, unless a window's power-up or another request has the room."""
    seq = s.sequence
    own = seq is not None and seq.reason == _reason(t)
    _interrupted(s, "restart", max(0.0, s.now - t.started_at))
    device = t.current
    if device is None or (seq is not None and not own) or s.locked is not None:
        return
    if t.phase == "restart" and (not s.relays[device] or (seq is not None and not seq.on)):
        s.power.start(True, _reason(t), (device,))
    elif seq is not None and not seq.on:
        s.power.cancel("restart")


def _interrupted(s: _Step, by: str, elapsed: float | None = None) -> None:
    """End the test early, ``by`` what (``elapsed``: its length, else the monotonic one)."""
    t = s.st.selftest
    assert t is not None
    if t.current is not None:
        _device_done(s, t)
        t = s.st.selftest
        assert t is not None
    # The devices not reached are not tested: they count as not passed.
    failed = (*t.failed, *t.remaining)
    took = s.mono - t.started_mono if elapsed is None else elapsed
    s.emit(ev.SelftestFinished(False, failed, round(took, 3), by))
    s.set(selftest=None)


def deadline(t: SelfTest | None) -> float | None:
    """When a self-test's hold without power, or its settle, ends (monotonic), or None."""
    if t is None or t.phase not in ("hold", "settle"):
        return None
    return t.hold_until
