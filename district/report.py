"""The compliance report of a window, and the unscheduled-use report (a public interface:
``docs/console.md`` describes every field; JSON, CSV and the printable page are one
computation).

The report is computed on demand from the store, so it is ready the moment a window is marked
complete and it takes in late evidence as soon as that is recorded. Evidence is of two kinds:

* the console's own: when it received ``availability`` changes and any message at all (its
  receive times, on its clock);
* the room's: events it made (on its clock, ``clock_trusted`` says whether it trusted it),
  possibly delivered later from its backlog (``late``).

Late evidence refines a row (a room "offline" becomes "link down" when its own events show it
powered up locally) and is marked as delivered late; it never makes a room that the console did
not hear during the window count as connected.

Example::

    rep = build_report(cfg, store, window, now=time.time())
    rep["summary"]["not_switched_on"]   # [{"site": ..., "name": ..., "cause": "offline"}]
    to_csv(rep)                        # UTF-8 text with a BOM, one line per room
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from district.config import ConsoleConfig, Lang
from district.i18n import t
from district.model import AvailabilityRow, CommandRow, EventRow, RoomResult, Window
from district.store.base import Store
from district.timefmt import iso_local, show, wire_time

LOOKBACK_S = 12 * 3600
"""Room events this long before a window's start are read for it (power-up during the lead)."""
WINDOW_MARGIN_S = 3600
"""Unscheduled use: this long before a window's start counts as the window (its lead time)."""
LISTS = ("not_switched_on", "unstaffed", "switched_off_early")
POWER_LOSS_STOPS = ("crash", "power_loss_or_reboot")
TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class _Gap:
    start: float
    end: float
    sources: set[str] = field(default_factory=set)
    late: bool = False


def _clip(a: float, b: float, lo: float, hi: float) -> tuple[float, float] | None:
    a, b = max(a, lo), min(b, hi)
    return (a, b) if b > a else None


def _merge(gaps: list[_Gap]) -> list[_Gap]:
    out: list[_Gap] = []
    for g in sorted(gaps, key=lambda g: g.start):
        if out and g.start <= out[-1].end:
            last = out[-1]
            last.end = max(last.end, g.end)
            last.sources |= g.sources
            last.late = last.late or g.late
        else:
            out.append(_Gap(g.start, g.end, set(g.sources), g.late))
    return out


def _console_offline(history: list[AvailabilityRow], lo: float, hi: float) -> list[_Gap]:
    """Intervals of ``[lo, hi]`` in which the console's last word on the room was not online."""
    gaps: list[_Gap] = []
    value: str | None = None
    since = lo
    for row in history:
        if row.received_at <= lo:
            value = row.value
            continue
        if row.received_at >= hi:
            break
        if value != "online" and row.value == "online":
            gaps.append(_Gap(since, row.received_at, {"console"}))
        elif value == "online" and row.value != "online":
            since = row.received_at
        value = row.value
    if value != "online":
        gaps.append(_Gap(since, hi, {"console"}))
    return [g for g in gaps if g.end > g.start]


def _in_window(e: EventRow, w: Window, lo: float, hi: float) -> bool:
    return e.window_id == w.id or (e.ts is not None and lo <= e.ts <= hi)


class _Room:
    """The evidence of one room for one window, and the conclusions drawn from it."""

    def __init__(self, cfg: ConsoleConfig, store: Store, w: Window, site: str, now: float,
                 lang: Lang, results: dict[str, RoomResult],
                 checks: dict[str, dict[str, CommandRow]]) -> None:
        self.cfg, self.w, self.site, self.lang = cfg, w, site, lang
        self.zone = cfg.zone
        self.start = w.start
        self.begun = now >= w.start
        self.release = w.completed_at if w.completed_at is not None else now
        self.hi = max(self.release, self.start)
        self.events = sorted(store.window_evidence(site, w.id, w.start - LOOKBACK_S,
                                                   max(self.hi, now)),
                             key=lambda e: (e.ts or e.received_at, e.seq))
        self._gaps: list[_Gap] | None = None
        self.live = store.live(site)
        self.history = store.availability_history(site)
        self.states = store.states(site, until=self.start)
        self.result = results.get(site)
        self.checks = checks.get(site, {})
        self.gaps_info = store.seq_gaps(site)
        self.late_kinds: set[str] = set()

    def iso(self, ts: float | None) -> str | None:
        return iso_local(ts, self.zone)

    def of(self, *kinds: str) -> list[EventRow]:
        return [e for e in self.events if e.kind in kinds]

    def used(self, e: EventRow) -> EventRow:
        if e.late:
            self.late_kinds.add(e.kind)
        return e

    # -- contact ------------------------------------------------------------------------
    @property
    def ever_connected(self) -> bool:
        return self.live.last_seen_at is not None

    def contact(self) -> bool:
        """Whether the console heard the room during the window (its own receive times)."""
        if any(self.start <= e.received_at <= self.hi for e in self.events):
            return True
        offline = _console_offline(self.history, self.start, self.hi)
        covered = sum(g.end - g.start for g in offline)
        return self.hi > self.start and covered < self.hi - self.start - 1e-6

    def gaps(self) -> list[_Gap]:
        """Offline intervals inside the window, from both sides."""
        if self._gaps is None:
            self._gaps = self._find_gaps()
        return self._gaps

    def _find_gaps(self) -> list[_Gap]:
        lo, hi = self.start, self.hi
        gaps = _console_offline(self.history, lo, hi) if self.hi > lo else []
        for e in self.of("link_restored"):
            down = e.data.get("down_since")
            a = wire_time(down)
            if a is None and isinstance(e.data.get("down_s"), int | float) and e.ts:
                a = e.ts - float(e.data["down_s"])
            if a is None or e.ts is None:
                continue
            c = _clip(a, e.ts, lo, hi)
            if c:
                self.used(e)
                gaps.append(_Gap(c[0], c[1], {"room_link"}, e.late))
        for e in self.of("agent_started"):
            a = wire_time(e.data.get("last_alive_at"))
            if a is None or e.ts is None:
                continue
            c = _clip(a, e.ts, lo, hi)
            if c:
                self.used(e)
                gaps.append(_Gap(c[0], c[1], {"agent_down"}, e.late))
        return _merge(gaps)

    # -- columns ------------------------------------------------------------------------
    def on_by_start(self) -> dict[str, Any]:
        ready = [e for e in self.of("window_ready") if e.window_id == self.w.id]
        if ready:
            e = self.used(ready[0])
            devices = e.data.get("devices") if isinstance(e.data.get("devices"), dict) else {}
            finished = [p for p in self.of("power_sequence_finished")
                        if p.data.get("on") is True and p.ts is not None and e.ts is not None
                        and p.ts <= e.ts]
            on_at = finished[-1].ts if finished else e.ts
            return {"value": bool(e.data.get("on_by_start")), "at": self.iso(on_at),
                    "ready_at": self.iso(e.ts), "source": "window_ready",
                    "devices": {n: (d.get("state") if isinstance(d, dict) else None)
                                for n, d in devices.items()},
                    "confirmed": sorted(n for n, d in devices.items()
                                        if isinstance(d, dict) and d.get("state") == "confirmed"),
                    "late": e.late}
        if self.states:
            _at, st = self.states[-1]
            return {"value": st.get("power") == "on", "at": None, "ready_at": None,
                    "source": "state", "devices": {
                        n: (d.get("power") if isinstance(d, dict) else None)
                        for n, d in (st.get("devices") or {}).items()},
                    "confirmed": [], "late": False}
        return {"value": None, "at": None, "ready_at": None, "source": None, "devices": {},
                "confirmed": [], "late": False}

    def powered_locally(self) -> bool:
        """The room's own events say it powered up for this window."""
        ready = [e for e in self.of("window_ready") if e.window_id == self.w.id]
        if ready and ready[0].data.get("on_by_start"):
            self.used(ready[0])
            return True
        for e in self.of("power_sequence_finished"):
            if e.data.get("on") is True and _in_window(e, self.w, self.start - LOOKBACK_S,
                                                       self.hi):
                self.used(e)
                return True
        return False

    def operator(self) -> dict[str, Any]:
        lo, hi = self.start, self.hi
        check_ins = [self.used(e) for e in self.of("check_in") if _in_window(e, self.w, lo, hi)]
        acks = [e for e in self.of("operator_check_acknowledged")
                if e.data.get("check_id") in self.checks or _in_window(e, self.w, lo, hi)]
        unanswered = [e for e in self.of("operator_check_unanswered")
                      if e.data.get("check_id") in self.checks or _in_window(e, self.w, lo, hi)]
        for e in acks:
            self.used(e)
        first = min(check_ins + acks, key=lambda e: e.ts or e.received_at, default=None)
        checks = []
        for cid, c in sorted(self.checks.items(), key=lambda kv: kv[1].created_at):
            ack = next((e for e in acks if e.data.get("check_id") == cid), None)
            miss = next((e for e in unanswered if e.data.get("check_id") == cid), None)
            checks.append({"id": cid, "sent_at": self.iso(c.sent_at or c.created_at),
                           "reply": c.reply.status if c.reply else None,
                           "acknowledged_at": self.iso(ack.ts) if ack else None,
                           "latency_s": ack.data.get("latency_s") if ack else None,
                           "unanswered": miss.data.get("reason") if miss else None})
        tested = self.result is not None and (self.result.mic in ("good", "poor") or
                                              self.result.speaker in ("good", "poor"))
        by = None
        if first is not None:
            by = "check_in" if first.kind == "check_in" else "check_acknowledged"
        elif tested:
            by = "mic_speaker_test"
        return {"present": first is not None or tested, "by": by,
                "at": self.iso(first.ts) if first is not None else None,
                "latency_s": first.data.get("latency_s") if first is not None and
                first.kind == "operator_check_acknowledged" else None,
                "check_ins": [self.iso(e.ts) for e in check_ins], "checks": checks,
                "late": bool(first is not None and first.late)}

    def refused(self) -> dict[str, Any]:
        evs = [self.used(e) for e in self.of("shutdown_refused")
               if _in_window(e, self.w, self.start, self.hi)]
        return {"count": len(evs), "times": [self.iso(e.ts) for e in evs],
                "sources": [e.data.get("source") for e in evs],
                "late": any(e.late for e in evs)}

    def overrides(self) -> list[dict[str, Any]]:
        return [{"at": self.iso(e.ts), "by": e.data.get("by"), "device": e.data.get("device"),
                 "command_id": e.data.get("command_id"), "late": e.late}
                for e in self.of("lock_overridden") if _in_window(e, self.w, self.start, self.hi)]

    def effective_release(self) -> float:
        """The release, or earlier when the centre overrode the lock or the room's hard cap
        released it: what the room does after that flags nothing."""
        end = self.release
        for e in self.of("lock_overridden"):
            if _in_window(e, self.w, self.start, self.hi) and e.ts is not None:
                end = min(end, e.ts)
        for e in self.of("lock_released"):
            if e.window_id == self.w.id and e.data.get("reason") == "hard_cap" and e.ts:
                end = min(end, e.ts)
        return end

    def losses(self) -> tuple[list[dict[str, Any]], bool, bool]:
        """``(losses, power_lost, link_lost)`` before the (effective) release."""
        lo, end = self.start, self.effective_release()
        out: list[dict[str, Any]] = []
        power = False
        for e in self.of("agent_started"):
            stop = e.data.get("previous_stop")
            if stop not in POWER_LOSS_STOPS:
                continue
            at = wire_time(e.data.get("last_alive_at")) or e.ts
            if at is not None and lo <= at <= end:
                self.used(e)
                power = True
                out.append({"what": "power", "at": self.iso(at), "detail": stop,
                            "back_at": self.iso(e.ts), "late": e.late})
        for e in self.of("agent_stopping"):
            if e.ts is not None and lo <= e.ts <= end:
                self.used(e)
                power = True
                out.append({"what": "agent_stopped", "at": self.iso(e.ts),
                            "detail": e.data.get("reason"), "late": e.late})
        link = False
        for g in self.gaps():
            if g.start < end <= g.end + 1e-6 and g.start > lo:
                link = True
                out.append({"what": "link", "at": self.iso(g.start),
                            "detail": "+".join(sorted(g.sources)), "late": g.late})
        if self.hi >= end:
            last = [r for r in self.history if r.received_at <= end]
            if last and last[-1].value == "offline" and last[-1].received_at > lo and not link:
                link = True
                out.append({"what": "link", "at": self.iso(last[-1].received_at),
                            "detail": "console", "late": False})
        out.sort(key=lambda d: d["at"] or "")
        return out, power, link

    def released(self) -> dict[str, Any]:
        rel = [e for e in self.of("lock_released") if e.window_id == self.w.id]
        done = [e for e in self.of("window_completed") if e.window_id == self.w.id]
        r = self.used(rel[0]) if rel else None
        d = self.used(done[0]) if done else None
        return {"at": self.iso(r.ts) if r else None,
                "reason": r.data.get("reason") if r else None,
                "completed_seen_at": self.iso(d.ts) if d else None,
                "via": d.data.get("via") if d else None,
                "late": bool((r and r.late) or (d and d.late))}

    # -- the row --------------------------------------------------------------------------
    def row(self) -> dict[str, Any]:
        on = self.on_by_start()
        contact = self.contact()
        gaps = self.gaps()
        op = self.operator()
        refused = self.refused()
        losses, power_lost, link_lost = self.losses()
        released = self.released()
        cause_list, cause = None, None
        if not self.ever_connected:
            cause_list, cause = "not_switched_on", "never_connected"
        elif not contact:
            cause_list = "not_switched_on"
            cause = "link_down" if self.powered_locally() else "offline"
        elif not on["value"]:
            cause_list, cause = "not_switched_on", "not_powered"
        elif not op["present"]:
            cause_list, cause = "unstaffed", "no_response"
        elif refused["count"]:
            cause_list, cause = "switched_off_early", "refused_attempt"
        elif power_lost:
            cause_list, cause = "switched_off_early", "power_lost"
        elif link_lost:
            cause_list, cause = "switched_off_early", "link_lost"
        if not self.begun and cause != "never_connected":
            # Before the start nothing can have been missed yet: only a room no one has
            # ever heard from is worth a phone call now.
            cause_list, cause = None, None
        r = self.result
        room = self.cfg.room(self.site) if self.site in self.cfg.room_ids() else None
        return {
            "site": self.site,
            "name": room.name if room else self.site,
            "group": room.group if room else None,
            "list": cause_list,
            "cause": cause,
            "ever_connected": self.ever_connected,
            "on_by_start": on,
            "online": {
                "contact": contact,
                "throughout": contact and not gaps,
                "gaps": [{"from": self.iso(g.start), "to": self.iso(g.end),
                          "seconds": round(g.end - g.start, 3),
                          "sources": sorted(g.sources), "late": g.late} for g in gaps],
            },
            "operator": op,
            "mic_speaker": {"mic": r.mic if r else None, "speaker": r.speaker if r else None,
                            "by": r.by if r else None, "at": self.iso(r.at) if r else None},
            "attendance": {"count": r.attendance if r else None, "by": r.by if r else None},
            "refused_attempts": refused,
            "lost_before_release": losses,
            "released": released,
            "overrides": self.overrides(),
            "late_evidence": sorted(self.late_kinds),
            "missing_events": self.gaps_info.missing,
        }


def build_report(cfg: ConsoleConfig, store: Store, window: Window, now: float,
                 lang: Lang = "vi") -> dict[str, Any]:
    """``{"window": {...}, "summary": {...}, "rooms": [...]}`` for one window."""
    w = window
    zone = cfg.zone
    results = store.results(w.id)
    checks: dict[str, dict[str, CommandRow]] = {}
    for c in store.commands(window_id=w.id, names=["operator_check"]):
        checks.setdefault(c.site, {})[c.id] = c
    rows = [_Room(cfg, store, w, site, now, lang, results, checks).row() for site in w.sites]
    summary: dict[str, Any] = {k: [] for k in LISTS}
    for r in rows:
        if r["list"]:
            summary[r["list"]].append({"site": r["site"], "name": r["name"],
                                       "cause": r["cause"]})
    summary["rooms"] = len(rows)
    summary["ok"] = sum(1 for r in rows if r["list"] is None)
    summary["late_evidence"] = any(r["late_evidence"] for r in rows)
    summary["final"] = w.completed_at is not None
    summary["started"] = now >= w.start
    win = {"id": w.id, "kind": w.kind, "title": w.title, "start": iso_local(w.start, zone),
           "end": iso_local(w.end, zone), "completed_at": iso_local(w.completed_at, zone),
           "completed_by": w.completed_by, "rooms": len(w.sites), "timezone": cfg.timezone,
           "organisation": cfg.organisation.name.get(lang),
           "level": cfg.organisation.level.get(lang), "generated_at": iso_local(now, zone)}
    summary["text"] = summary_text(cfg, w, summary, lang)
    return {"window": win, "summary": summary, "rooms": rows}


def summary_text(cfg: ConsoleConfig, w: Window, summary: dict[str, Any], lang: Lang) -> str:
    """The letter's summary in plain words (Vietnamese by default)."""
    zone = cfg.zone
    org = cfg.organisation.name.get(lang)
    when = f"{show(w.start, zone)}–{show(w.end, zone, with_date=False)}"
    head = (f"{org} — {t('report', lang)} {t(w.kind, lang)} «{w.title}», {when} "
            f"({cfg.timezone}): {summary['rooms']} {t('rooms', lang)}.")
    if not summary["started"]:
        head += " " + t("not_started", lang)
    elif not summary["final"]:
        head += " " + t("provisional", lang)
    lines = [head]
    for n, key in enumerate(LISTS, 1):
        items = summary[key]
        if not items:
            continue
        names = "; ".join(f"{i['name']} ({t(i['cause'], lang)})" for i in items)
        lines.append(f"{n}. {t(key, lang)}: {len(items)} {t('rooms', lang)} — {names}.")
    if len(lines) == 1:
        lines.append(t("all_ok", lang))
    if summary["late_evidence"]:
        lines.append(t("late_note", lang))
    return "\n".join(lines)


# ------------------------------------------------------------------------------ exports
CSV_COLUMNS: list[tuple[str, str, str]] = [
    ("site", "Mã điểm cầu", "Site"),
    ("name", "Tên", "Name"),
    ("group", "Cụm", "Group"),
    ("list", "Nhóm vi phạm", "List"),
    ("cause", "Nguyên nhân", "Cause"),
    ("on_by_start", "Bật lúc bắt đầu", "On by the start"),
    ("on_at", "Bật lúc", "On at"),
    ("confirmed", "Thiết bị xác nhận", "Devices confirmed"),
    ("online_throughout", "Kết nối suốt buổi", "Online throughout"),
    ("gaps", "Mất kết nối", "Gaps"),
    ("operator_present", "Có người trực", "Operator present"),
    ("operator_at", "Người trực xác nhận lúc", "Operator at"),
    ("operator_latency_s", "Độ trễ phản hồi (s)", "Latency (s)"),
    ("mic", "Micrô", "Microphone"),
    ("speaker", "Loa", "Speakers"),
    ("attendance", "Số người dự", "Attendance"),
    ("refused_count", "Lần tắt bị từ chối", "Refused switch-offs"),
    ("refused_times", "Thời điểm tắt bị từ chối", "Refused at"),
    ("lost", "Mất điện/kết nối trước khi kết thúc", "Lost before the release"),
    ("released_at", "Mở khóa lúc", "Released at"),
    ("overrides", "Trung tâm ghi đè", "Overrides"),
    ("late_evidence", "Số liệu gửi muộn", "Late evidence"),
    ("missing_events", "Sự kiện còn thiếu", "Missing events"),
]


def short_time(iso: str | None) -> str:
    """``2026-11-29T09:00:05+07:00`` → ``29/11 09:00:05`` (the page is read by people; the
    zone is in its heading)."""
    if not iso:
        return ""
    try:
        d = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return d.strftime("%d/%m %H:%M:%S")


def flat_row(r: dict[str, Any], lang: Lang = "vi", human: bool = False) -> dict[str, Any]:
    """One report row as flat cells: ISO times for the CSV, short local times for the
    printable page (``human``)."""
    def yn(v: bool | None) -> str:
        return "" if v is None else t("yes" if v else "no", lang)

    def tm(iso: str | None) -> str:
        return short_time(iso) if human else (iso or "")

    return {
        "site": r["site"], "name": r["name"], "group": r["group"] or "",
        "list": t(r["list"], lang) if r["list"] else "",
        "cause": t(r["cause"], lang) if r["cause"] else "",
        "on_by_start": yn(r["on_by_start"]["value"]),
        "on_at": tm(r["on_by_start"]["at"]),
        "confirmed": ", ".join(r["on_by_start"]["confirmed"]),
        "online_throughout": yn(r["online"]["throughout"]),
        "gaps": "; ".join(f"{tm(g['from'])}–{tm(g['to'])} ({g['seconds']:.0f} s)"
                          for g in r["online"]["gaps"]),
        "operator_present": yn(r["operator"]["present"]),
        "operator_at": tm(r["operator"]["at"]),
        "operator_latency_s": "" if r["operator"]["latency_s"] is None
        else r["operator"]["latency_s"],
        "mic": t(r["mic_speaker"]["mic"], lang) if r["mic_speaker"]["mic"] else "",
        "speaker": t(r["mic_speaker"]["speaker"], lang) if r["mic_speaker"]["speaker"] else "",
        "attendance": "" if r["attendance"]["count"] is None else r["attendance"]["count"],
        "refused_count": r["refused_attempts"]["count"],
        "refused_times": "; ".join(tm(x) for x in r["refused_attempts"]["times"]),
        "lost": "; ".join(f"{t('loss_' + x['what'], lang)} {tm(x['at'])}"
                          for x in r["lost_before_release"]),
        "released_at": tm(r["released"]["at"]),
        "overrides": "; ".join(f"{tm(o['at'])} {o['by'] or ''}".strip()
                               for o in r["overrides"]),
        "late_evidence": ", ".join(r["late_evidence"]),
        "missing_events": r["missing_events"],
    }


def to_csv(report: dict[str, Any], lang: Lang = "vi") -> str:
    """The rows as CSV text beginning with a BOM (so spreadsheet programs read UTF-8)."""
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\r\n")
    wr.writerow([vi if lang == "vi" else en for _, vi, en in CSV_COLUMNS])
    for r in report["rooms"]:
        f = flat_row(r, lang)
        wr.writerow([f[k] for k, _, _ in CSV_COLUMNS])
    return "\ufeff" + buf.getvalue()


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(str(TEMPLATES)),
                       autoescape=select_autoescape(["html"]), trim_blocks=True,
                       lstrip_blocks=True)


def to_html(report: dict[str, Any], lang: Lang = "vi") -> str:
    """The printable page (``district/templates/report.html``)."""
    rows = [(r, flat_row(r, lang, human=True)) for r in report["rooms"]]
    return _env().get_template("report.html").render(
        report=report, rows=rows, lang=lang, t=lambda k: t(k, lang), short=short_time,
        columns=[(k, vi if lang == "vi" else en) for k, vi, en in CSV_COLUMNS])


# ------------------------------------------------------------------------------ unscheduled use
def _windows_cover(windows: Iterable[Window], now: float) -> list[tuple[float, float]]:
    return [(w.start - WINDOW_MARGIN_S, w.completed_at or max(w.end, min(now, w.end + 3600)))
            for w in windows]


def _subtract(a: float, b: float, cover: list[tuple[float, float]]) -> list[tuple[float, float]]:
    parts = [(a, b)]
    for lo, hi in cover:
        nxt = []
        for x, y in parts:
            if hi <= x or lo >= y:
                nxt.append((x, y))
                continue
            if x < lo:
                nxt.append((x, lo))
            if hi < y:
                nxt.append((hi, y))
        parts = nxt
    return [(x, y) for x, y in parts if y > x]


def unscheduled_use(cfg: ConsoleConfig, store: Store, since: float, until: float, now: float,
                    lang: Lang = "vi") -> dict[str, Any]:
    """Rooms whose devices were awake or in a call (``unscheduled_use`` …
    ``unscheduled_use_ended``) or powered (power sequences not made for a window) outside
    every window, between ``since`` and ``until``, with durations."""
    zone = cfg.zone
    rows: list[dict[str, Any]] = []
    names = {r.id: r.name for r in cfg.rooms}
    end_all = min(until, now)
    sites = sorted({e.site for e in store.events(
        kinds=["unscheduled_use", "unscheduled_use_ended", "power_sequence_finished"],
        since=since - 86400, until=until)})
    for site in sites:
        evs = store.events(site, kinds=["unscheduled_use", "unscheduled_use_ended",
                                        "power_sequence_finished"],
                           since=since - 86400, until=until)
        open_: dict[tuple[str, str], EventRow] = {}
        spans: list[tuple[str, str, float, float, bool, bool]] = []
        power_on: EventRow | None = None
        for e in evs:
            if e.ts is None:
                continue
            if e.kind == "unscheduled_use":
                key = (str(e.data.get("device")), str(e.data.get("what")))
                open_.setdefault(key, e)
            elif e.kind == "unscheduled_use_ended":
                key = (str(e.data.get("device")), str(e.data.get("what")))
                began = open_.pop(key, None)
                dur = e.data.get("duration_s")
                a = began.ts if began is not None and began.ts is not None else (
                    e.ts - float(dur) if isinstance(dur, int | float) else e.ts)
                spans.append((*key, a, e.ts, False, e.late or bool(began and began.late)))
            elif e.kind == "power_sequence_finished":
                reason = str(e.data.get("reason", ""))
                if e.data.get("on") is True and not reason.startswith("window:"):
                    power_on = power_on or e
                elif e.data.get("on") is False and power_on is not None:
                    spans.append(("*", "powered", power_on.ts or e.ts, e.ts, False,
                                  e.late or power_on.late))
                    power_on = None
        for (dev, what), e in open_.items():
            spans.append((dev, what, e.ts or end_all, end_all, True, e.late))
        if power_on is not None:
            spans.append(("*", "powered", power_on.ts or end_all, end_all, True, power_on.late))
        cover = _windows_cover(store.windows(site=site, since=since - 86400), now)
        for dev, what, a, b, ongoing, late in spans:
            for x, y in _subtract(max(a, since), min(b, until), cover):
                rows.append({"site": site, "name": names.get(site, site), "device": dev,
                             "what": what, "from": iso_local(x, zone), "to": iso_local(y, zone),
                             "duration_s": round(y - x, 3), "ongoing": ongoing and y >= end_all,
                             "late": late})
    rows.sort(key=lambda r: (r["site"], r["from"]))
    totals: dict[str, float] = {}
    for r in rows:
        totals[r["site"]] = totals.get(r["site"], 0.0) + r["duration_s"]
    return {"from": iso_local(since, zone), "to": iso_local(until, zone),
            "rooms": [{"site": s, "name": names.get(s, s), "total_s": round(v, 3)}
                      for s, v in sorted(totals.items())], "uses": rows}
