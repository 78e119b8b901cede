"""A room driven by hand: the core plus a fake clock, for the core's tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from agent.core import room as core
from agent.core.events import DeviceReady, DeviceStandby, Event


def settings(confirm: bool = False) -> core.RoomSettings:
    """Codec (5 s to boot, 10 s grace), camera (2 s), amplifier: 15 min lead, 1 h cap."""
    return core.RoomSettings(
        devices=(
            core.DeviceSpec("amplifier", 3, on_delay_s=0, off_grace_s=0, ready_timeout_s=30,
                            confirm=confirm),
            core.DeviceSpec("codec", 1, on_delay_s=5, off_grace_s=10, ready_timeout_s=30,
                            confirm=confirm, role="codec", self_help=True),
            core.DeviceSpec("camera", 2, on_delay_s=2, off_grace_s=0, ready_timeout_s=30,
                            confirm=confirm),
        ),
        lead_s=900, hard_cap_s=3600, refusal_show_s=8, check_timeout_s=120,
        plausible_after=-1e12,  # these tests count seconds from 0 with a synchronised clock
    )


class Room:
    """The core's state and settings; ``feed`` steps it at a given time."""

    def __init__(self, s: core.RoomSettings | None = None,
                 relays: Mapping[str, bool] | None = None,
                 saved: Mapping[str, Any] | None = None) -> None:
        self.settings = s or settings()
        self.state = core.initial_state(self.settings, relays, saved)

    def feed(self, event: Event, at: float, mono: float | None = None) -> core.Outcome:
        """Step at wall time ``at``; the monotonic clock reads ``mono`` (default: ``at``, a
        clock that never jumps)."""
        out = core.step(self.settings, self.state, event, at, at if mono is None else mono)
        self.state = out.state
        return out


def for_current_step(event: Event, state: core.RoomState) -> Event:
    """A generated device answer made to answer the step the room waits for now (a script of
    random events cannot know the step numbers the core will hand out)."""
    if isinstance(event, DeviceReady | DeviceStandby) and state.sequence is not None:
        return replace(event, step=state.sequence.step)
    return event
