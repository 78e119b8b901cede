"""Alerts that need a person: raised from events as they are recorded, and from time.

Each alert has a key so that it is raised once (a replayed event, a second tick, a restart of
the console raise nothing new); it stays until a staff member takes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from district.model import Alert, EventRow
from district.store.base import Store

if TYPE_CHECKING:
    from district.service import Console

TIMED_AFTER_END_S = 12 * 3600
"""A window not marked complete keeps its rooms locked; offline alerts stop this long after its
planned end (rooms' hard caps have released them by then)."""


def event_alerts(store: Store, ev: EventRow, now: float) -> list[Alert]:
    """Alerts an event calls for (a help request, a device fault, a device swapped)."""
    found = []
    detail = {"seq": ev.seq, "ts": ev.ts, **ev.data}
    if ev.kind == "help_requested":
        found.append(store.raise_alert(f"help:{ev.site}:{ev.seq}", ev.site, "help", now,
                                       detail, ev.window_id, ev.late))
    elif ev.kind == "device_health" and ev.data.get("status") == "fault":
        found.append(store.raise_alert(f"fault:{ev.site}:{ev.seq}", ev.site, "device_fault",
                                       now, detail, ev.window_id, ev.late))
    elif ev.kind == "device_identity_changed":
        found.append(store.raise_alert(f"identity:{ev.site}:{ev.seq}", ev.site,
                                       "identity_changed", now, detail, ev.window_id, ev.late))
    return [a for a in found if a is not None]


def timed_alerts(console: Console, now: float) -> list[Alert]:
    """Rooms that have not applied their schedule shortly before (or during) a window, and
    rooms offline (or never connected) during a window."""
    cfg, store = console.cfg, console.store
    before = cfg.alerts.schedule_check_before_min * 60
    grace = cfg.alerts.offline_grace_s
    raised: list[Alert] = []
    windows = [w for w in store.windows(since=now - TIMED_AFTER_END_S, until=now + before)
               if w.completed_at is None]
    if not windows:
        return raised
    lives = store.live_all()
    schedules = store.latest_schedules()
    for w in windows:
        if now < w.start - before:
            continue
        for site in w.sites:
            status = console._schedule_status(schedules.get(site),
                                              lives[site].state if site in lives else None)
            if status != "applied":
                a = store.raise_alert(f"schedule:{w.id}:{site}", site, "schedule_not_applied",
                                      now, {"status": status, "start": w.start}, w.id)
                if a is not None:
                    raised.append(a)
            if now < w.start or now > w.end + TIMED_AFTER_END_S:
                continue
            live = lives.get(site)
            if live is not None and live.availability == "online":
                continue
            since = (live.availability_at if live is not None and live.availability_at
                     else None)
            if now - max(since or w.start, w.start) < grace:
                continue
            history = store.availability_history(site)
            mark = history[-1].id if history else "never"
            a = store.raise_alert(f"offline:{w.id}:{site}:{mark}", site, "offline_in_window",
                                  now, {"since": since, "never_connected": live is None or
                                        live.last_seen_at is None}, w.id)
            if a is not None:
                raised.append(a)
    return raised
