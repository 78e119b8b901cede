"""What the dashboard shows, built from :meth:`~district.service.Console.rooms` (a few bulk
queries for every room, whatever their number: live views, open alert counts, schedule
digests, the seqs held), so that a page stays fast at 10,000 rooms.

The rooms page sorts, filters and counts every room but shows one page of them: every room's
tile is kept in memory (:class:`KeptTiles`, one per dashboard) and only the rooms whose
stamps (a few light columns) changed are read again, so a page view reads the changed rooms
and its own page's missing events, not every room's state.

Everything here only reads; changes go through :class:`district.service.Console`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from district.config import Contact
from district.model import Alert, CommandRow, LiveRoom, RoomResult, RoomView, Window
from district.service import Console, missing_count
from district.timefmt import iso_local, wire_time

PROBLEMS = ("problems", "offline", "alerts", "fault", "help", "refused", "schedule",
            "locked")
SORTS = ("problems", "roster", "name", "last_seen")
DEFAULT_SORT = "problems"
"""What a technician of a province looks at first: the rooms with problems, the most first."""
PER_PAGE = 100
MAX_PER_PAGE = 500
CHECK_KINDS = ("check_in", "operator_check_acknowledged")
WINDOW_EVENT_KINDS = (*CHECK_KINDS, "shutdown_refused")
LOCK_AHEAD_S = 240 * 60.0
"""A room locks for a window up to its lead time before the start (the agent's ``lead_min``
is at most 240): a window starting within this is current for the refusals on the tiles."""


@dataclass(frozen=True)
class Device:
    """One device of a room as its latest state reports it."""

    name: str
    power: str | None
    health: str | None
    reason: str
    in_call: bool
    model: str | None
    serial: str | None

    def json(self) -> dict[str, Any]:
        return {"name": self.name, "power": self.power, "health": self.health,
                "reason": self.reason, "in_call": self.in_call, "model": self.model,
                "serial": self.serial}


@dataclass(frozen=True)
class Tile:
    """A room at a glance."""

    site: str
    name: str
    group: str | None
    position: int
    availability: str
    availability_at: float | None
    last_seen_at: float | None
    power: str | None
    devices: tuple[Device, ...]
    locked_by: str | None
    lock_kind: str | None
    help_requested: float | None
    check_pending: bool
    last_check_in: float | None
    schedule: str
    open_alerts: int
    problems: tuple[str, ...]
    missing_events: int | None = None
    """Read for the rooms on the page (one query for all of them)."""
    refused: int = 0
    """Local switch-offs the room refused in the windows on now (:func:`refusals`)."""
    contact: Contact | None = None
    """Whom to phone: the roster's first contact of the room with a phone number."""

    def json(self, zone: Any) -> dict[str, Any]:
        return {"site": self.site, "name": self.name, "group": self.group,
                "availability": self.availability,
                "availability_at": iso_local(self.availability_at, zone),
                "last_seen_at": iso_local(self.last_seen_at, zone), "power": self.power,
                "devices": [d.json() for d in self.devices], "locked_by": self.locked_by,
                "lock_kind": self.lock_kind,
                "help_requested": iso_local(self.help_requested, zone),
                "check_pending": self.check_pending,
                "last_check_in": iso_local(self.last_check_in, zone),
                "schedule": self.schedule, "open_alerts": self.open_alerts,
                "problems": list(self.problems), "missing_events": self.missing_events,
                "refused": self.refused,
                "contact": None if self.contact is None else self.contact.model_dump()}


class Roster:
    """The config's rooms with O(1) look-ups (names, groups, order)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.ids = [r.id for r in console.cfg.rooms]
        self.rooms = {r.id: r for r in console.cfg.rooms}
        self.position = {s: i for i, s in enumerate(self.ids)}
        self.groups = sorted({r.group for r in console.cfg.rooms if r.group})
        self.kept = KeptTiles(self)
        """Every room's tile, read again for the rooms that changed."""

    def name(self, site: str) -> str:
        """The room's name (its id if not in the roster)."""
        r = self.rooms.get(site)
        return r.name if r else site

    def group(self, site: str) -> str | None:
        """The room's group, if any."""
        r = self.rooms.get(site)
        return r.group if r else None

    def contact(self, site: str) -> Contact | None:
        """Whom to phone at the room: its first roster contact with a phone number."""
        r = self.rooms.get(site)
        return next((c for c in r.contacts if c.phone), None) if r else None


def tel(phone: str) -> str:
    """A ``tel:`` link's target for a roster phone ("0205 3870 111" → "tel:02053870111"):
    the number as written up to its first word, so an extension written after it ("… máy lẻ
    12") is not dialled as part of the number."""
    head = re.match(r"[\s+0-9().\-]*", phone)
    number = head.group(0) if head else ""
    if not any(ch.isdigit() for ch in number):   # words first ("gọi 0205…"): every digit
        number = phone
    return "tel:" + "".join(ch for ch in number if ch.isdigit() or ch == "+")


def refusals(console: Console, now: float) -> dict[str, int]:
    """Site → local switch-offs refused in the windows on at ``now``: not completed, not
    ended, started or starting within :data:`LOCK_AHEAD_S` (a room refuses only while a
    window locks it, so a window not yet locking any room has none). One query for the
    windows and one per such window (a few), reading refusals only."""
    out: dict[str, int] = {}
    store = console.store
    for w in store.windows(since=now, until=now + LOCK_AHEAD_S):
        if w.completed_at is not None:
            continue
        for e in store.events(kinds=["shutdown_refused"], window_id=w.id):
            out[e.site] = out.get(e.site, 0) + 1
    return out


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def tile(roster: Roster, site: str, live: LiveRoom | None, open_alerts: int,
         schedule: str, missing_events: int | None = None, refused: int = 0) -> Tile:
    """One room's tile from its live view (``refused``: its refusals in the windows on now,
    from :func:`refusals`)."""
    live = live or LiveRoom(site)
    state = live.state or {}
    lock = _dict(state.get("lock"))
    op = _dict(state.get("operator"))
    avail = live.availability or ("offline" if live.last_seen_at else "never_connected")
    devices = tuple(
        Device(name, _str(d.get("power")), _str(d.get("health")), _str(d.get("reason")) or "",
               d.get("in_call") is True, _str(d.get("model")), _str(d.get("serial")))
        for name, d in sorted(_dict(state.get("devices")).items()) if isinstance(d, dict))
    locked_by = _str(lock.get("window_id")) if lock.get("locked") else None
    help_at = wire_time(op.get("help_requested"))
    problems = []
    if avail != "online":
        problems.append("offline")
    if open_alerts:
        problems.append("alerts")
    if any(d.health in ("fault", "degraded") for d in devices):
        problems.append("fault")
    if help_at is not None:
        problems.append("help")
    if refused:
        problems.append("refused")
    if schedule in ("queued", "published", "rejected") and avail == "online":
        problems.append("schedule")
    return Tile(site=site, name=roster.name(site), group=roster.group(site),
                position=roster.position.get(site, len(roster.ids)), availability=avail,
                availability_at=live.availability_at, last_seen_at=live.last_seen_at,
                power=_str(state.get("power")), devices=devices, locked_by=locked_by,
                lock_kind=_str(lock.get("kind")) if locked_by else None,
                help_requested=help_at, check_pending=bool(op.get("check")),
                last_check_in=wire_time(op.get("last_check_in")),
                schedule=schedule, open_alerts=open_alerts, problems=tuple(problems),
                missing_events=missing_events, refused=refused, contact=roster.contact(site))


def tile_of(roster: Roster, v: RoomView, gaps: bool = False, refused: int = 0) -> Tile:
    """The tile of a room's :class:`~district.model.RoomView` (``gaps``: with its missing
    events, when the view was read with them; ``refused``: as :func:`tile`)."""
    return tile(roster, v.site, v.live, v.open_alerts, v.schedule,
                v.missing_events if gaps else None, refused)


def tiles(roster: Roster, sites: Iterable[str] | None = None,
          gaps: bool = False, refused: dict[str, int] | None = None) -> list[Tile]:
    """Tiles of ``sites`` (default: the whole roster), in roster order, from one
    :meth:`~district.service.Console.rooms` (``gaps``: with each room's missing events) and
    the refusals of the windows on now (:func:`refusals`)."""
    console = roster.console
    if refused is None:
        refused = refusals(console, console.clock())
    views = console.rooms(None if sites is None else list(sites), gaps=gaps, info=False)
    return [tile_of(roster, v, gaps, refused.get(v.site, 0)) for v in views]


KEEP_S = 600.0
"""How long after a page last read the kept tiles they are read after each batch of
changes."""
REBUILD_SHARE = 4
"""More than one room in this many changed: read every room at once (a few bulk queries)
rather than the changed ones by name."""


class KeptTiles:
    """Every roster room's tile, in memory: built once, then on each read (:meth:`current`)
    only the rooms whose stamps changed are read again. A room's stamp is what changes
    whenever its tile may: its live row's times, availability and state length
    (:meth:`~district.store.base.Store.live_stamps`), its open alerts, its newest schedule
    and its refusals in the windows on now (:func:`refusals`: they change as a window
    begins or is over, with no message from the room) — light queries over every room, none
    of them reading a state. So what
    another process recorded (a second recorder, the CLI) is seen as it would be by reading
    every room."""

    def __init__(self, roster: Roster, clock: Callable[[], float] = time.monotonic) -> None:
        self.roster = roster
        self.clock = clock
        self.looked_at: float | None = None
        """When a page last read the tiles (``clock``)."""
        self._build = threading.Lock()
        """One reader at a time builds; the others wait for its tiles."""
        self._by_site: dict[str, Tile] = {}
        self._stamps: dict[str, tuple[Any, ...]] = {}
        self._refused: dict[str, int] = {}
        """The refusals read with the last stamps (the tiles built from them use the same)."""
        self.built = 0
        """How many tiles were built (tests read it)."""

    def _read_stamps(self) -> dict[str, tuple[Any, ...]]:
        store = self.roster.console.store
        live = store.live_stamps()
        alerts = store.open_alert_counts()
        scheds = store.latest_schedules(payload=False)
        refused = self._refused = refusals(self.roster.console, self.roster.console.clock())
        out = {}
        for s in self.roster.ids:
            sc = scheds.get(s)
            out[s] = (live.get(s), alerts.get(s, 0),
                      None if sc is None else (sc.id, sc.digest, sc.published_at),
                      refused.get(s, 0))
        return out

    def current(self) -> list[Tile]:
        """Every roster room's tile, in roster order, the changed rooms read again."""
        self.looked_at = self.clock()
        return self._current()

    def _current(self) -> list[Tile]:
        with self._build:
            ids = self.roster.ids
            stamps = self._read_stamps()  # before the tiles: a change after is read next time
            held = self._stamps
            changed = [s for s in ids if held.get(s) != stamps[s]] if held else ids
            if len(changed) * REBUILD_SHARE > len(ids):
                fresh = tiles(self.roster, refused=self._refused)
                self._by_site = {t.site: t for t in fresh}
            elif changed:
                fresh = tiles(self.roster, changed, refused=self._refused)
                self._by_site.update((t.site, t) for t in fresh)
            else:
                fresh = []
            self._stamps = stamps
            self.built += len(fresh)
            by_site = self._by_site
            return [by_site[s] for s in ids]

    def refresh(self) -> None:
        """Read the changed rooms now if a page read the tiles in the last :data:`KEEP_S`
        (the live hub calls this after each batch, so the next page view finds them read;
        nobody looking, a storm of changes costs the console nothing here)."""
        if self.looked_at is not None and self.clock() - self.looked_at <= KEEP_S:
            self._current()


def with_gaps(roster: Roster, items: Sequence[Tile]) -> list[Tile]:
    """The tiles with ``missing_events`` read (for the rooms shown: one query for all)."""
    from dataclasses import replace

    if not items:
        return []
    store = roster.console.store
    sites = [t.site for t in items]
    held = store.seq_summaries(sites)
    lives = store.live_many(sites)
    return [replace(t, missing_events=missing_count(held.get(t.site), lives[t.site].state
                                               if t.site in lives else None))
            for t in items]


@dataclass(frozen=True)
class Query:
    """The rooms page's filter, sort and page."""

    group: str = ""
    problem: str = ""
    q: str = ""
    sort: str = DEFAULT_SORT
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def parse(cls, params: Any, roster: Roster) -> Query:
        """From query parameters; unknown values fall back to the defaults."""
        group = params.get("group", "")
        problem = params.get("problem", "")
        sort = params.get("sort", DEFAULT_SORT)
        try:
            page = max(1, int(params.get("page", "1")))
        except ValueError:
            page = 1
        try:
            per_page = min(MAX_PER_PAGE, max(1, int(params.get("per_page", str(PER_PAGE)))))
        except ValueError:
            per_page = PER_PAGE
        return cls(group=group if group in roster.groups else "",
                   problem=problem if problem in PROBLEMS else "",
                   q=str(params.get("q", ""))[:100].strip(),
                   sort=sort if sort in SORTS else DEFAULT_SORT, page=page,
                   per_page=per_page)

    def params(self, **change: Any) -> dict[str, str]:
        """The query as URL parameters (defaults left out), with ``change`` applied."""
        values = {"group": self.group, "problem": self.problem, "q": self.q, "sort": self.sort,
                  "page": self.page, "per_page": self.per_page}
        values.update(change)
        defaults = {"sort": DEFAULT_SORT, "page": 1, "per_page": PER_PAGE}
        return {k: str(v) for k, v in values.items() if v not in ("", None, defaults.get(k))}


def _matches(t: Tile, q: Query) -> bool:
    if q.group and t.group != q.group:
        return False
    if q.problem == "problems" and not t.problems:
        return False
    if q.problem == "locked" and not t.locked_by:
        return False
    if q.problem and q.problem not in ("problems", "locked") and q.problem not in t.problems:
        return False
    if q.q:
        needle = q.q.casefold()
        return needle in t.name.casefold() or needle in t.site
    return True


@dataclass
class Page:
    """One page of the rooms list, and counts over the whole roster."""

    items: list[Tile]
    total: int
    matched: int
    page: int
    pages: int
    counts: dict[str, int] = field(default_factory=dict)


def counts_of(all_tiles: Iterable[Tile]) -> dict[str, int]:
    """How many rooms are online, offline, never connected, locked, with problems."""
    c = {"rooms": 0, "online": 0, "offline": 0, "never_connected": 0, "locked": 0,
         "problems": 0, "alerts": 0}
    for t in all_tiles:
        c["rooms"] += 1
        c[t.availability] += 1
        c["locked"] += bool(t.locked_by)
        c["problems"] += bool(t.problems)
        c["alerts"] += t.open_alerts
    return c


def rooms_page(roster: Roster, q: Query) -> Page:
    """Filter, sort and cut the roster for the rooms page (from the tiles kept in memory:
    only the rooms changed since the last read are read again)."""
    return page_of(roster, roster.kept.current(), q)


def page_of(roster: Roster, every: list[Tile], q: Query) -> Page:
    """The rooms page of the query ``q`` made from ``every`` room's tile."""
    chosen = [t for t in every if _matches(t, q)]
    if q.sort == "name":
        chosen.sort(key=lambda t: (t.name.casefold(), t.position))
    elif q.sort == "problems":
        chosen.sort(key=lambda t: (-len(t.problems), t.position))
    elif q.sort == "last_seen":
        chosen.sort(key=lambda t: (t.last_seen_at is not None, t.last_seen_at or 0, t.position))
    pages = max(1, -(-len(chosen) // q.per_page))
    page = min(q.page, pages)
    cut = chosen[(page - 1) * q.per_page: page * q.per_page]
    return Page(with_gaps(roster, cut), len(every), len(chosen), page, pages, counts_of(every))


# ------------------------------------------------------------------------------ windows
@dataclass(frozen=True)
class WindowRow:
    """One room of a window: live status, evidence so far, the technician's result."""

    tile: Tile
    locked_here: bool
    checked_in_at: float | None
    refused: int
    result: RoomResult | None
    last_command: CommandRow | None
    check: CommandRow | None
    schedule_late: bool
    """Not applied although the window starts soon (or has started)."""

    @property
    def needs_call(self) -> bool:
        """Someone at the centre should phone this room: not online, a problem on its tile,
        its schedule late, a refused switch-off, or a check nobody answered."""
        return (self.tile.availability != "online" or bool(self.tile.problems)
                or self.schedule_late or self.refused > 0
                or (self.check is not None and self.checked_in_at is None))

    def json(self, zone: Any) -> dict[str, Any]:
        r = self.result
        return {**self.tile.json(zone), "locked_here": self.locked_here,
                "needs_call": self.needs_call,
                "checked_in_at": iso_local(self.checked_in_at, zone), "refused": self.refused,
                "schedule_late": self.schedule_late,
                "result": None if r is None else {"mic": r.mic, "speaker": r.speaker,
                                                  "attendance": r.attendance, "by": r.by,
                                                  "at": iso_local(r.at, zone)},
                "last_command": command_json(self.last_command, zone),
                "check": command_json(self.check, zone)}


def command_json(c: CommandRow | None, zone: Any) -> dict[str, Any] | None:
    """A command with its reply as JSON."""
    if c is None:
        return None
    rep = c.reply
    return {"id": c.id, "site": c.site, "name": c.name, "args": c.args, "sender": c.sender,
            "window_id": c.window_id, "created_at": iso_local(c.created_at, zone),
            "sent_at": iso_local(c.sent_at, zone), "status": c.status,
            "reason": rep.reason if rep else None,
            "replied_at": iso_local(rep.received_at, zone) if rep else None}


def window_rows(roster: Roster, w: Window, sites: Sequence[str] | None = None,
                now: float = 0.0) -> list[WindowRow]:
    """The window's rooms (or some of them) with what the room and staff did in it."""
    console = roster.console
    store = console.store
    wanted = list(w.sites) if sites is None else [s for s in sites if s in w.sites]
    ts = {t.site: t for t in tiles(roster, wanted)}
    cmds = store.commands(window_id=w.id)
    checks = {c.id for c in cmds if c.name == "operator_check"}
    evs = store.events(kinds=list(WINDOW_EVENT_KINDS), window_id=w.id)
    if checks:
        evs += [e for e in store.events(kinds=["operator_check_acknowledged"],
                                        since=w.start - 3600)
                if e.data.get("check_id") in checks and e.window_id != w.id]
    checked: dict[str, float] = {}
    refused: dict[str, int] = {}
    for e in evs:
        if e.kind in CHECK_KINDS:
            at = e.ts if e.ts is not None else e.received_at
            checked[e.site] = min(checked.get(e.site, at), at)
        elif e.kind == "shutdown_refused":
            refused[e.site] = refused.get(e.site, 0) + 1
    last: dict[str, CommandRow] = {}
    last_check: dict[str, CommandRow] = {}
    for c in cmds:  # newest first
        last.setdefault(c.site, c)
        if c.name == "operator_check":
            last_check.setdefault(c.site, c)
    results = store.results(w.id)
    before = console.cfg.alerts.schedule_check_before_min * 60
    soon = w.completed_at is None and now >= w.start - before
    rows = []
    for s in wanted:
        t = ts.get(s) or tile(roster, s, None, 0, "none")
        rows.append(WindowRow(t, t.locked_by == w.id, checked.get(s), refused.get(s, 0),
                              results.get(s), last.get(s), last_check.get(s),
                              soon and t.schedule != "applied"))
    rows.sort(key=lambda r: not r.needs_call)   # the rooms to phone first, roster order kept
    return rows


def window_progress(rows: Sequence[WindowRow]) -> dict[str, int]:
    """Counts over a window's rooms: on, locked, checked in, refused, …"""
    return {
        "rooms": len(rows),
        "online": sum(r.tile.availability == "online" for r in rows),
        "on": sum(r.tile.power == "on" for r in rows),
        "locked": sum(r.locked_here for r in rows),
        "checked_in": sum(r.checked_in_at is not None for r in rows),
        "refused": sum(r.refused > 0 for r in rows),
        "schedule": sum(r.tile.schedule == "applied" for r in rows),
        "results": sum(r.result is not None for r in rows),
    }


def alert_json(a: Alert, roster: Roster, zone: Any) -> dict[str, Any]:
    """An alert as JSON."""
    return {"id": a.id, "site": a.site, "name": roster.name(a.site), "kind": a.kind,
            "raised_at": iso_local(a.raised_at, zone), "window_id": a.window_id,
            "late": a.late, "detail": a.detail, "taken_by": a.taken_by,
            "taken_at": iso_local(a.taken_at, zone), "note": a.note}


def window_json(w: Window, now: float, zone: Any) -> dict[str, Any]:
    """A window as JSON."""
    return {"id": w.id, "kind": w.kind, "title": w.title, "start": iso_local(w.start, zone),
            "end": iso_local(w.end, zone), "status": w.status(now), "rooms": len(w.sites),
            "sites": list(w.sites), "created_by": w.created_by,
            "created_at": iso_local(w.created_at, zone),
            "completed_at": iso_local(w.completed_at, zone), "completed_by": w.completed_by}
