"""The room's decisions, as one pure function:
``step(settings, state, event, now, mono) -> Outcome``.

Nothing in :mod:`agent.core` touches a pin, a socket or the clock. The agent's loop feeds every
event in with the wall-clock and monotonic times, carries out the returned actions, updates the
LED, the shutdown inhibitor and the state message from the outcome, and asks
:func:`next_deadline` how long until it comes back with a ``Tick``. This module is the core's
front door: everything the shell uses is importable from here. Where each part lives:

* :mod:`~agent.core.settings` — the room's fixed facts (devices in order, timing);
* :mod:`~agent.core.state` — what the room remembers, and what of it survives a restart;
* :mod:`~agent.core.windows` — windows and the lock;
* :mod:`~agent.core.sequence` — the power sequence, a small machine of its own;
* :mod:`~agent.core.commands` — the district's commands;
* :mod:`~agent.core.devices` — device health, identity, self-help, unscheduled use;
* :mod:`~agent.core.step` — the step that ties them together;
* :mod:`~agent.core.view` — what the room shows (power, LED, state snapshot).

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
* **After a window** the room switches itself off, in order, ``off_after_release_s`` after
  the lock ended, unless someone uses it or another window begins.
* **Operator**: a short press during a window is a check-in; a district operator check blinks
  the LED until a press (acknowledged, with latency) or a timeout (unanswered); a double press
  asks the centre for help until the centre answers.
* **Evidence**: every event is a typed event of the contract (:mod:`agent.contract.events`)
  naming the window that locked the room and whether the clock was trusted.
"""

from __future__ import annotations

from agent.core.actions import (
    Action,
    AwaitReady,
    Emit,
    PublishState,
    Reply,
    SendStandby,
    SetRelay,
)
from agent.core.commands import COMMAND_NAMES
from agent.core.devices import SELF_HELP
from agent.core.led import patterns as led_patterns
from agent.core.sequence import Phase, Sequence
from agent.core.settings import DeviceSpec, RoomSettings
from agent.core.state import (
    DeviceHealth,
    OperatorCheck,
    RoomState,
    initial_state,
    persistent,
    resume,
)
from agent.core.step import Outcome, next_deadline, step
from agent.core.view import iso, led, room_power, shown, snapshot, window_json
from agent.core.windows import clock_trusted, lock_window, next_window, release_time

__all__ = [
    "COMMAND_NAMES",
    "SELF_HELP",
    "Action",
    "AwaitReady",
    "DeviceHealth",
    "DeviceSpec",
    "Emit",
    "OperatorCheck",
    "Outcome",
    "Phase",
    "PublishState",
    "Reply",
    "RoomSettings",
    "RoomState",
    "SendStandby",
    "Sequence",
    "SetRelay",
    "clock_trusted",
    "initial_state",
    "iso",
    "led",
    "led_patterns",
    "lock_window",
    "next_deadline",
    "next_window",
    "persistent",
    "release_time",
    "resume",
    "room_power",
    "shown",
    "snapshot",
    "step",
    "window_json",
]
