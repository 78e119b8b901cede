"""A room's timeline as lanes over a time range (last 24 h, or a window): link, power, lock as
bands; refusals, faults, check-ins, help requests and commands as marks. Geometry is computed
here (x in 0…1000) so the SVG template only draws, and the JSON twin carries the same data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from district.config import Lang
from district.model import CommandRow, EventRow, Window
from district.service import Console
from district.timefmt import iso_local, local, show
from district.web.text import command_name, event_kind, word

WIDTH = 1000.0
LANES = ("link", "power", "lock", "events", "commands")
MARK_KINDS = {
    "shutdown_refused": "refused",
    "help_requested": "help",
    "check_in": "checkin",
    "operator_check_acknowledged": "checkin",
    "operator_check_unanswered": "unanswered",
    "operator_check_requested": "info",
    "device_identity_changed": "fault",
    "relay_failed": "fault",
    "self_help_power_cycle": "info",
    "lock_overridden": "refused",
    "agent_started": "info",
    "agent_stopping": "info",
    "window_ready": "info",
}


@dataclass(frozen=True)
class Band:
    """A stretch of one lane in one state."""

    lane: str
    start: float
    end: float
    value: str
    x: float
    w: float
    label: str


@dataclass(frozen=True)
class Mark:
    """One moment on a lane (an event or a command)."""

    lane: str
    at: float
    cls: str
    x: float
    label: str


@dataclass
class Timeline:
    """Everything the room page draws."""

    since: float
    until: float
    bands: list[Band] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)
    windows: list[tuple[float, float, str]] = field(default_factory=list)

    def json(self, zone: Any) -> dict[str, Any]:
        """The same lanes as JSON (times in the configured zone)."""
        return {"from": iso_local(self.since, zone), "to": iso_local(self.until, zone),
                "bands": [{"lane": b.lane, "from": iso_local(b.start, zone),
                           "to": iso_local(b.end, zone), "value": b.value} for b in self.bands],
                "marks": [{"lane": m.lane, "at": iso_local(m.at, zone), "class": m.cls,
                           "label": m.label} for m in self.marks]}


def _x(t: float, lo: float, hi: float) -> float:
    return round((min(max(t, lo), hi) - lo) / (hi - lo) * WIDTH, 2)


def _bands(lane: str, changes: list[tuple[float, str]], lo: float, hi: float, lang: Lang,
           zone: Any) -> list[Band]:
    """Bands from ``(time, value)`` changes (the value before ``lo`` first, if known)."""
    out: list[Band] = []
    value: str | None = None
    since = lo
    for at, v in changes:
        if at <= lo:
            value = v
            continue
        if at >= hi:
            break
        if v == value:
            continue
        if value is not None:
            out.append(_band(lane, since, at, value, lo, hi, lang, zone))
        value, since = v, at
    if value is not None:
        out.append(_band(lane, since, hi, value, lo, hi, lang, zone))
    return out


def _band(lane: str, a: float, b: float, value: str, lo: float, hi: float, lang: Lang,
          zone: Any) -> Band:
    x1, x2 = _x(a, lo, hi), _x(b, lo, hi)
    label = f"{word(value, lang)}: {show(a, zone)} – {show(b, zone)}"
    return Band(lane, a, b, value, x1, max(x2 - x1, 0.5), label)


def _event_mark(e: EventRow, lang: Lang, zone: Any) -> tuple[str, str] | None:
    cls = MARK_KINDS.get(e.kind)
    if e.kind == "device_health":
        status = e.data.get("status")
        if status not in ("fault", "degraded"):
            return None
        cls = "fault" if status == "fault" else "degraded"
    if cls is None:
        return None
    at = e.ts if e.ts is not None else e.received_at
    bits = [show(at, zone), event_kind(e.kind, lang)]
    for k in ("device", "source", "status", "reason"):
        if e.data.get(k):
            bits.append(str(e.data[k]))
    if e.late:
        bits.append(f"({word('late', lang)})")
    return cls, " · ".join(bits)


def _command_mark(c: CommandRow, lang: Lang, zone: Any) -> tuple[str, str]:
    bits = [show(c.created_at, zone), command_name(c.name, lang), word(f"c_{c.status}", lang)]
    if c.reply is not None and c.reply.reason:
        bits.append(c.reply.reason)
    return f"cmd-{c.status}", " · ".join(bits)


def build(console: Console, site: str, since: float, until: float, lang: Lang) -> Timeline:
    """The room's timeline over ``[since, until]``."""
    store, zone = console.store, console.cfg.zone
    tl = Timeline(since, until)
    hist = [(r.received_at, r.value) for r in store.availability_history(site, until=until)]
    tl.bands += _bands("link", hist, since, until, lang, zone)
    states = store.states(site, until=until)
    power = [(at, s.get("power") if isinstance(s.get("power"), str) else "unknown")
             for at, s in states]
    tl.bands += _bands("power", power, since, until, lang, zone)
    lock = [(at, "locked" if isinstance(s.get("lock"), dict) and s["lock"].get("locked")
             else "unlocked") for at, s in states]
    tl.bands += [b for b in _bands("lock", lock, since, until, lang, zone)
                 if b.value == "locked"]
    for e in store.events(site, since=since, until=until):
        got = _event_mark(e, lang, zone)
        if got is not None:
            at = e.ts if e.ts is not None else e.received_at
            tl.marks.append(Mark("events", at, got[0], _x(at, since, until), got[1]))
    for c in store.commands(site=site, since=since):
        if c.created_at <= until:
            cls, label = _command_mark(c, lang, zone)
            tl.marks.append(Mark("commands", c.created_at, cls, _x(c.created_at, since, until),
                                 label))
    for w in store.windows(site=site, since=since, until=until):
        end = w.completed_at or w.end
        tl.windows.append((_x(w.start, since, until),
                           max(_x(end, since, until) - _x(w.start, since, until), 0.5),
                           f"{w.title} ({w.id})"))
    tl.ticks = ticks(since, until, zone)
    return tl


def ticks(since: float, until: float, zone: Any) -> list[tuple[float, str]]:
    """Hour marks in the configured zone, about eight across."""
    span_h = (until - since) / 3600
    step = next((s for s in (1, 2, 3, 4, 6, 12, 24) if span_h / s <= 12), 24)
    step_s = 900.0 if span_h <= 2 else step * 3600.0
    start = local(since, zone).replace(minute=0, second=0, microsecond=0)
    t = start
    out = []
    while t.timestamp() <= until:
        ts = t.timestamp()
        if ts >= since and (step_s < 3600 or t.hour % step == 0):
            out.append((_x(ts, since, until), t.strftime("%H:%M")))
        t += timedelta(seconds=step_s if step_s < 3600 else 3600)
    return out


HOURS = (1, 6, 24, 72)


def range_for(console: Console, window: Window | None, now: float,
              hours: float = 24) -> tuple[float, float]:
    """The last ``hours``, or the window's span (from an hour before its start)."""
    if window is None:
        return now - hours * 3600, now
    end = window.completed_at or max(min(now, window.end + 3600), window.end)
    return window.start - 3600, max(end, window.start + 60)
