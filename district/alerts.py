"""Alerts that need a person: raised from events as they are recorded, and from time.

Each alert has a key so that it is raised once (a replayed event, a second tick, a restart of
the console raise nothing new); it stays until a staff member takes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from district.model import Alert, AlertKind, EventRow
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
    rooms offline (or never connected) during a window.

    One transaction for all of them; every room's live view, schedule, latest availability
    change and the alerts already raised are each read once for all rooms (a tick at 10,000
    rooms is a handful of queries, not one per room)."""
    cfg, store = console.cfg, console.store
    before = cfg.alerts.schedule_check_before_min * 60
    grace = cfg.alerts.offline_grace_s
    raised: list[Alert] = []
    windows = [w for w in store.windows(since=now - TIMED_AFTER_END_S, until=now + before)
               if w.completed_at is None and now >= w.start - before]
    if not windows:
        return raised
    with store.transaction():
        lives = store.live_all(info=False)
        schedules = store.latest_schedules(payload=False)
        known = store.alert_keys([w.id for w in windows])
        marks: dict[str, int] | None = None

        def alert(key: str, site: str, kind: AlertKind, detail: dict[str, Any],
                  window_id: str) -> None:
            if key in known:
                return
            known.add(key)
            a = store.raise_alert(key, site, kind, now, detail, window_id)
            if a is not None:
                raised.append(a)

        for w in windows:
            for site in w.sites:
                live = lives.get(site)
                status = console._schedule_status(schedules.get(site),
                                                  live.state if live is not None else None)
                if status != "applied":
                    alert(f"schedule:{w.id}:{site}", site, "schedule_not_applied",
                          {"status": status, "start": w.start}, w.id)
                if now < w.start or now > w.end + TIMED_AFTER_END_S:
                    continue
                if live is not None and live.availability == "online":
                    continue
                since = (live.availability_at if live is not None and live.availability_at
                         else None)
                if now - max(since or w.start, w.start) < grace:
                    continue
                if marks is None:
                    marks = store.last_availability_ids()
                mark = marks.get(site, "never")
                alert(f"offline:{w.id}:{site}:{mark}", site, "offline_in_window",
                      {"since": since, "never_connected": live is None or
                       live.last_seen_at is None}, w.id)
    return raised
