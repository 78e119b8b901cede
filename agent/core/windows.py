"""Windows and the lock: which window locks the room, from when, and until when.

A window (``test``/``session``) locks the room from ``start - lead`` until the district marks
it complete, removes it from the schedule, or its hard cap (``end + cap``) passes. Time may end
a lock only while the clock is trusted (``docs/time.md`` rules 4 and 5).
"""

from __future__ import annotations

from agent.clock import earliest_possible_now, trust_wall_clock
from agent.core.events import Window
from agent.core.settings import RoomSettings
from agent.core.state import RoomState


def release_time(settings: RoomSettings, w: Window) -> float:
    """When the lock for ``w`` ends by itself if nobody marks it complete."""
    return w.end + settings.hard_cap_s


def clock_trusted(settings: RoomSettings, state: RoomState, now: float) -> bool:
    """May ``now`` end protection? (``docs/time.md`` rule 3)"""
    return trust_wall_clock(now, state.clock_synced, state.last_known_good,
                            settings.plausible_after)


def proven_now(settings: RoomSettings, state: RoomState, now: float) -> float | None:
    """A time the room may act on as having come: ``now`` with a trusted clock, otherwise
    the earliest the true time can be (``docs/time.md`` rule 5; None: nothing is proven)."""
    if clock_trusted(settings, state, now):
        return now
    return earliest_possible_now(now, state.last_known_good, (state.evidence,),
                                 settings.plausible_after)


def lock_window(settings: RoomSettings, state: RoomState, now: float) -> Window | None:
    """The window that locks the room at ``now``, if any (the earliest-starting one).

    With an untrusted clock (no NTP yet), time never ends a lock (rule 4) and a lock begins
    only when the window has provably begun: the earliest the true time can be is used
    (rule 5).
    """
    if (not clock_trusted(settings, state, now) and state.locked_by is not None
            and state.locked_by not in state.completed):
        held = state.window(state.locked_by)
        if held is not None:
            return held
    t = proven_now(settings, state, now)
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
