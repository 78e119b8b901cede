"""What staff can do and see: the one service layer behind the CLI and the web dashboard.

:class:`Console` writes what staff decide into the store (windows, schedules to publish,
commands to send, results, alerts taken) and wakes the dispatcher (``district/recorder.py``),
which hands schedules and commands to the broker and records that it did. So a window created
from the CLI while ``diemcau-district run`` is running goes out within a second, one created
while it is not goes out when it starts, and nothing depends on the broker being up at the
moment a person clicks.

Every method that changes something takes an :class:`~district.model.Actor` (who); one that
is refused raises a :class:`ServiceError` subclass whose ``problems`` say why, and changes
nothing. Listeners registered with :meth:`Console.subscribe` hear a
:class:`~district.model.Change` for each change (on the thread that made it: hand it on, do
not block).

Example::

    console = Console(cfg, SqliteStore(cfg.database.path))
    w = console.create_window(Actor("hung"), kind="test", title="Kiểm tra kết nối",
                              start=t0, end=t0 + 3600, rooms="all")
    console.operator_check(Actor("hung"), w.sites, window_id=w.id)
    console.complete_window(Actor("hung"), w.id)
    report = console.report(w.id)
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from district import contract
from district.config import ConsoleConfig
from district.model import (
    Actor,
    Alert,
    Change,
    CommandRow,
    EventRow,
    Result,
    Role,
    RoomResult,
    RoomView,
    ScheduleStatus,
    SeqGaps,
    User,
    Window,
    WindowKind,
)
from district.store.base import Store, StoreError
from district.timefmt import local

log = logging.getLogger(__name__)

RESULTS = ("good", "poor", "none")
ROLES = ("operator", "viewer")
USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
HELD_COMMANDS = 200


class P(str):
    """A problem as ``field: message``: the string is English, ``vi`` the Vietnamese."""

    vi: str

    def __new__(cls, en: str, vi: str) -> P:
        obj = super().__new__(cls, en)
        obj.vi = vi
        return obj

    def text(self, lang: str = "vi") -> str:
        """The problem in ``lang``."""
        return self.vi if lang == "vi" else str(self)


class ServiceError(ValueError):
    """A request refused; ``problems`` says why (``field: message``, English as strings, each
    with its Vietnamese; see :meth:`text`). Nothing was changed."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))

    def text(self, lang: str = "vi") -> list[str]:
        """The problems in ``lang`` (Vietnamese by default)."""
        return [p.text(lang) if isinstance(p, P) else str(p) for p in self.problems]


class UnknownWindow(ServiceError):
    """No window has this id."""


class UnknownRoom(ServiceError):
    """A site id that is not in the roster."""


class PermissionDenied(ServiceError):
    """The actor's role may not do this (viewers only look)."""


@dataclass(frozen=True)
class WindowRoom:
    """One room of a window, as the window's page shows it."""

    site: str
    name: str
    schedule: ScheduleStatus
    result: RoomResult | None
    last_check: CommandRow | None
    """The latest operator check sent for this window."""
    commands: list[CommandRow]
    """Every command sent to the room for this window, newest first."""


class Console:
    """The console's service layer over a :class:`~district.store.base.Store`."""

    def __init__(self, cfg: ConsoleConfig, store: Store,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self.wakeup = threading.Event()
        """Set when there is something for the dispatcher to publish."""
        self._listeners: list[Callable[[Change], None]] = []
        self._lock = threading.RLock()
        self._hasher = PasswordHasher()
        self._index = {r.id: r for r in cfg.rooms}
        """Site → roster entry (a province's roster is looked up per room, never scanned)."""

    # ---------------------------------------------------------------------- listeners
    def subscribe(self, listener: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``listener`` for every change; returns the function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return unsubscribe

    def notify(self, change: Change) -> None:
        """Tell every listener (a failing listener is logged, never stops the others)."""
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn(change)
            except Exception:
                log.exception("change listener failed")

    # ---------------------------------------------------------------------- roster
    def roster(self) -> list[str]:
        """Site ids in roster order."""
        return self.cfg.room_ids()

    def name_of(self, site: str) -> str:
        """The room's name from the roster (its id if it is not in the roster)."""
        r = self._index.get(site)
        return r.name if r is not None else site

    def select_rooms(self, spec: str | Sequence[str]) -> list[str]:
        """Rooms for ``all``, ``group:NAME``, ``"id,id"`` or a list of ids, in roster order.

        Raises :class:`UnknownRoom` naming every id not in the roster (or an unknown group).
        """
        ids = self.roster()
        if isinstance(spec, str):
            s = spec.strip()
            if s == "all":
                return ids
            if s.startswith("group:"):
                name = s[len("group:"):]
                groups = self.cfg.groups()
                if name not in groups:
                    known = ", ".join(sorted(groups)) or "none"
                    raise UnknownRoom(P(
                        f"rooms: no group '{name}' in the roster (groups: {known})",
                        f"rooms: danh sách không có cụm '{name}' (các cụm: {known})"))
                return groups[name]
            wanted = [p.strip() for p in s.split(",") if p.strip()]
        else:
            wanted = list(spec)
        if not wanted:
            raise UnknownRoom(P("rooms: no room selected", "rooms: chưa chọn điểm cầu nào"))
        unknown = [w for w in wanted if w not in self._index]
        if unknown:
            raise UnknownRoom([P(f"rooms: '{u}' is not in the roster",
                                 f"rooms: '{u}' không có trong danh sách điểm cầu")
                               for u in unknown])
        chosen = set(wanted)
        return [i for i in ids if i in chosen]

    def rooms(self, sites: Sequence[str] | None = None, *, gaps: bool = True,
              info: bool = True) -> list[RoomView]:
        """Every roster room (or those of ``sites`` in the roster) with its live view, in
        roster order. A few queries for all of them, whatever their number: every room's
        live view (``info=False``: without its ``info`` and ``host``), the open alerts
        counted by room, the newest schedule's digest of each room, and (``gaps``) the seqs
        held by room for ``missing_events`` (without ``gaps`` it is 0)."""
        if sites is None:
            ids = self.roster()
            lives = self.store.live_all(info=info)
        else:
            wanted = set(sites)
            ids = [s for s in self.roster() if s in wanted]
            lives = self.store.live_many(ids)
        counts = self.store.open_alert_counts()
        schedules = self.store.latest_schedules(payload=False)
        held = self.store.seq_summaries(None if sites is None else ids) if gaps else {}
        out = []
        for site in ids:
            live = lives.get(site)
            missing = missing_count(held.get(site), live.state if live else None) if gaps else 0
            out.append(self._view(site, live, counts.get(site, 0), schedules.get(site),
                                  missing))
        return out

    def room(self, site: str) -> RoomView:
        """One roster room; :class:`UnknownRoom` if it is not in the roster."""
        self.select_rooms([site])
        return self._view(site, self.store.live(site),
                          len(self.store.alerts(open_only=True, site=site)),
                          self.store.latest_schedule(site), self.store.seq_gaps(site).missing)

    def _view(self, site: str, live: Any, open_alerts: int, sched: Any,
              missing: int) -> RoomView:
        from district.model import LiveRoom

        live = live or LiveRoom(site)
        state = live.state or {}
        lock = state.get("lock") if isinstance(state.get("lock"), dict) else {}
        operator = state.get("operator") if isinstance(state.get("operator"), dict) else {}
        availability = live.availability or ("offline" if live.last_seen_at else
                                             "never_connected")
        return RoomView(
            site=site, name=self.name_of(site), group=self._group(site),
            availability=availability, availability_at=live.availability_at,
            last_seen_at=live.last_seen_at,
            power=state.get("power") if isinstance(state.get("power"), str) else None,
            locked_by=lock.get("window_id") if lock.get("locked") else None,
            help_requested=_wire(operator.get("help_requested")),
            schedule=self._schedule_status(sched, live.state),
            open_alerts=open_alerts, missing_events=missing, live=live)

    def _group(self, site: str) -> str | None:
        r = self._index.get(site)
        return r.group if r is not None else None

    def events(self, site: str | None = None, *, kinds: Sequence[str] | None = None,
               since: float | None = None, until: float | None = None,
               limit: int = 200) -> list[EventRow]:
        """The newest recorded events (of one room, of some kinds), newest first."""
        return self.store.events(site, kinds=kinds, since=since, until=until, limit=limit,
                                 newest_first=True)

    def gaps(self, site: str) -> SeqGaps:
        """Which of the room's events the console does not hold."""
        return self.store.seq_gaps(site)

    def all_gaps(self) -> dict[str, SeqGaps]:
        """:meth:`gaps` for every roster room that misses events (the holes read only for
        the rooms the per-room counts say miss some)."""
        out = {}
        for v in self.rooms():
            if v.missing_events:
                out[v.site] = self.store.seq_gaps(v.site)
        return out

    # ---------------------------------------------------------------------- schedules
    def schedule_status(self, site: str) -> ScheduleStatus:
        """Whether the room runs the schedule we last published for it."""
        return self._schedule_status(self.store.latest_schedule(site),
                                     self.store.live(site).state)

    @staticmethod
    def _schedule_status(sched: Any, state: dict[str, Any] | None) -> ScheduleStatus:
        if sched is None:
            return "none"
        if sched.published_at is None:
            return "queued"
        sc = (state or {}).get("schedule")
        if isinstance(sc, dict):
            if sc.get("digest") == sched.digest:
                return "applied"
            rej = sc.get("rejected")
            if isinstance(rej, dict) and rej.get("digest") == sched.digest:
                return "rejected"
        return "published"

    def _recent_windows(self, now: float) -> list[Window]:
        """Windows that may still be in some room's schedule."""
        keep = self.cfg.schedule.keep_h * 3600
        # A window completed late stays by its completion: read a week more than kept.
        return [w for w in self.store.windows(since=now - keep - 7 * 86400)
                if max(w.end, w.completed_at or w.end) > now - keep]

    def _reschedule(self, sites: Sequence[str], now: float) -> None:
        """Make each room's whole schedule again; queue it if it differs from the last one."""
        made = []
        with self.store.transaction():
            recent = [(w, set(w.sites)) for w in self._recent_windows(now)]
            many = len(sites) > 20
            latest = self.store.latest_schedules() if many else None
            counts = self.store.schedule_counts() if many else None
            for site in sites:
                mine = [w for w, members in recent if site in members]
                if self._reschedule_one(site, mine, now, latest, counts):
                    made.append(site)
        for site in made:
            self.notify(Change("schedule", site=site))
        self.wakeup.set()

    def _reschedule_one(self, site: str, windows: list[Window], now: float,
                        latest: dict[str, Any] | None = None,
                        counts: dict[str, int] | None = None) -> bool:
        """Queue a new schedule for one room if its windows changed; True if so (``latest``
        and ``counts``: every room's, read once for many rooms)."""
        body = contract.schedule_payload(site, "", windows, 0)
        last = latest.get(site) if latest is not None else self.store.latest_schedule(site)
        if last is not None and _windows_part(last.payload) == _windows_part(body):
            return False
        n = (counts.get(site, 0) if counts is not None else self.store.schedule_count(site)) + 1
        version = f"{local(now, self.cfg.zone).strftime('%Y-%m-%d')}#{n}"
        payload = contract.schedule_payload(site, version, windows, now)
        self.store.add_schedule(site, version, contract.digest(payload), payload, now)
        return True

    def republish(self, sites: Sequence[str] | None = None) -> None:
        """Make the schedules again (e.g. after the roster changed, or windows aged out)."""
        self._reschedule(list(sites) if sites is not None else self.roster(), self.clock())

    # ---------------------------------------------------------------------- windows
    def window(self, window_id: str) -> Window:
        """The window; :class:`UnknownWindow` if there is none."""
        w = self.store.window(window_id)
        if w is None:
            raise UnknownWindow(P(f"window: no window '{window_id}'",
                                  f"window: không có khung giờ '{window_id}'"))
        return w

    def windows(self, since: float | None = None, until: float | None = None) -> list[Window]:
        """Windows overlapping ``[since, until]``, by start."""
        return self.store.windows(since=since, until=until)

    def create_window(self, actor: Actor, *, kind: WindowKind, title: str, start: float,
                      end: float, rooms: str | Sequence[str]) -> Window:
        """Schedule a test or session window for some rooms and publish their schedules.

        ``rooms`` is ``all``, ``group:NAME``, ``"id,id"`` or a list of ids. Raises
        :class:`ServiceError` listing every problem (end before start, unknown rooms, …).
        """
        self._may_command(actor)
        problems: list[str] = []
        if kind not in ("test", "session"):
            problems.append(P("kind: must be test or session", "kind: phải là test hoặc session"))
        if not title.strip():
            problems.append(P("title: must not be empty", "title: không được để trống"))
        elif len(title) > 200:
            problems.append(P("title: at most 200 characters", "title: tối đa 200 ký tự"))
        if end <= start:
            problems.append(P("end: must be after start", "end: phải sau thời điểm bắt đầu"))
        elif end - start > 24 * 3600:
            problems.append(P("end: a window lasts at most 24 hours",
                              "end: một khung giờ dài tối đa 24 giờ"))
        now = self.clock()
        if end > start and end <= now:
            problems.append(P("end: already past", "end: đã qua"))
        sites: list[str] = []
        try:
            sites = self.select_rooms(rooms)
        except UnknownRoom as e:
            problems += e.problems
        if problems:
            raise ServiceError(problems)
        w = Window(id=self._window_id(kind, start), kind=kind, title=title.strip(),
                   start=start, end=end, sites=tuple(sites), created_by=actor.name,
                   created_at=now)
        with self.store.transaction():  # the window and its rooms' schedules, or nothing
            self.store.add_window(w)
            self._reschedule(sites, now)
        self.notify(Change("window", window_id=w.id))
        return w

    def start_window_now(self, actor: Actor, *, kind: WindowKind, title: str,
                         duration_min: float, rooms: str | Sequence[str]) -> Window:
        """A window starting now: sends each room ``start_window`` (so it locks at once, even
        before it reads its schedule) and publishes the schedules with the window in them."""
        now = self.clock()
        if not 0 < duration_min <= 24 * 60:
            raise ServiceError(P("duration_min: must be more than 0 and at most 1440",
                                 "duration_min: phải lớn hơn 0 và không quá 1440"))
        with self.store.transaction():
            w = self.create_window(actor, kind=kind, title=title, start=now,
                                   end=now + duration_min * 60, rooms=rooms)
            self._send(actor, w.sites, "start_window",
                       {"kind": w.kind, "window_id": w.id, "title": w.title,
                        "duration_min": duration_min}, window_id=w.id)
        return w

    def complete_window(self, actor: Actor, window_id: str) -> Window:
        """Mark the window complete: every room gets ``complete_window`` and a schedule whose
        window carries ``completed`` (whichever reaches it first releases its lock).
        Completing a completed window changes nothing."""
        self._may_command(actor)
        w = self.window(window_id)
        if w.completed_at is not None:
            return w
        now = self.clock()
        with self.store.transaction():
            w = self.store.update_window(window_id, completed_at=now, completed_by=actor.sender)
            self._send(actor, w.sites, "complete_window", {"window_id": w.id}, window_id=w.id)
            self._reschedule(w.sites, now)
        self.notify(Change("window", window_id=w.id))
        return w

    def window_rooms(self, window_id: str) -> list[WindowRoom]:
        """Each room of the window with its schedule, result, checks and commands."""
        w = self.window(window_id)
        results = self.store.results(window_id)
        cmds = self.store.commands(window_id=window_id)
        out = []
        for site in w.sites:
            mine = [c for c in cmds if c.site == site]
            checks = [c for c in mine if c.name == "operator_check"]
            out.append(WindowRoom(site, self.name_of(site), self.schedule_status(site),
                                  results.get(site), checks[0] if checks else None, mine))
        return out

    def _window_id(self, kind: str, start: float) -> str:
        stamp = local(start, self.cfg.zone).strftime("%Y%m%d-%H%M")
        return f"{kind}-{stamp}-{uuid.uuid4().hex[:4]}"

    # ---------------------------------------------------------------------- commands
    def _may_command(self, actor: Actor) -> None:
        if actor.role != "operator":
            raise PermissionDenied(P(
                f"{actor.name}: a {actor.role} may look but not act",
                f"{actor.name}: tài khoản {actor.role} chỉ được xem, không được thao tác"))

    def _send(self, actor: Actor, sites: Sequence[str], name: str, args: dict[str, Any],
              window_id: str | None = None, note: str = "") -> list[CommandRow]:
        self._may_command(actor)
        now = self.clock()
        rows = [CommandRow(id=contract.new_command_id(), site=s, name=name, args=dict(args),
                           sender=actor.sender, created_at=now, window_id=window_id, note=note)
                for s in sites]
        self.store.add_commands(rows)
        for r in rows:
            self.notify(Change("command", site=r.site, window_id=window_id, ref=r.id))
        self.wakeup.set()
        return rows

    def operator_check(self, actor: Actor, sites: str | Sequence[str], *,
                       window_id: str | None = None,
                       timeout_s: float | None = None) -> list[CommandRow]:
        """Ask rooms "is anyone there?" (command ``operator_check``); the LED blinks until the
        operator presses the button. Checks sent for a window count in its report."""
        self._may_command(actor)
        chosen = self.select_rooms(sites)
        if window_id is not None:
            self.window(window_id)
        t = self.cfg.schedule.default_check_timeout_s if timeout_s is None else timeout_s
        if not 5 <= t <= 3600:
            raise ServiceError(P("timeout_s: must be 5 to 3600 seconds",
                                 "timeout_s: từ 5 đến 3600 giây"))
        return self._send(actor, chosen, "operator_check", {"timeout_s": t}, window_id)

    def power(self, actor: Actor, sites: str | Sequence[str], on: bool, *,
              override: bool = False, reason: str = "", device: str | None = None,
              window_id: str | None = None) -> list[CommandRow]:
        """Switch rooms on or off (command ``power``). A locked room refuses to switch off
        unless ``override`` is set, which needs a ``reason`` (kept with the command) and is
        recorded by the room as ``lock_overridden``."""
        self._may_command(actor)
        chosen = self.select_rooms(sites)
        if override and not reason.strip():
            raise ServiceError(P("reason: an override needs a reason",
                                 "reason: ghi đè khóa phải nêu lý do"))
        args: dict[str, Any] = {"on": bool(on)}
        if device:
            args["device"] = device
        if override:
            args["override"] = True
        return self._send(actor, chosen, "power", args, window_id, note=reason.strip())

    def answer_help(self, actor: Actor, site: str, note: str = "") -> CommandRow:
        """Tell a room its help request was seen (command ``answer_help``) and take its open
        help alerts."""
        self._may_command(actor)
        chosen = self.select_rooms([site])
        args = {"note": note.strip()} if note.strip() else {}
        row = self._send(actor, chosen, "answer_help", args)[0]
        for a in self.store.alerts(open_only=True, site=site, kinds=["help"]):
            self.take_alert(actor, a.id, note or "answer_help")
        return row

    def request_state(self, actor: Actor, sites: str | Sequence[str]) -> list[CommandRow]:
        """Ask rooms to publish their state again (command ``request_state``)."""
        return self._send(actor, self.select_rooms(sites), "request_state", {})

    def command(self, command_id: str) -> CommandRow | None:
        """One command with its reply."""
        return self.store.command(command_id)

    def commands(self, site: str | None = None, window_id: str | None = None,
                 limit: int = HELD_COMMANDS) -> list[CommandRow]:
        """Commands with their replies (accepted / refused and why / no answer yet)."""
        return self.store.commands(site=site, window_id=window_id, limit=limit)

    # ---------------------------------------------------------------------- results
    def record_result(self, actor: Actor, window_id: str, site: str, *,
                      mic: Result | None = None, speaker: Result | None = None,
                      attendance: int | None = None) -> RoomResult:
        """Record a room's microphone and speaker result (good/poor/none) and attendance."""
        self._may_command(actor)
        w = self.window(window_id)
        problems = []
        if site not in w.sites:
            problems.append(P(f"site: '{site}' is not in window {window_id}",
                              f"site: '{site}' không thuộc khung giờ {window_id}"))
        for fname, v in (("mic", mic), ("speaker", speaker)):
            if v is not None and v not in RESULTS:
                problems.append(P(f"{fname}: must be good, poor or none",
                                  f"{fname}: phải là good (tốt), poor (kém) hoặc none (không có)"))
        if attendance is not None and not (isinstance(attendance, int) and
                                           0 <= attendance <= 10000):
            problems.append(P("attendance: must be a whole number from 0",
                              "attendance: phải là số nguyên từ 0"))
        if mic is None and speaker is None and attendance is None:
            problems.append(P("(result): give mic, speaker or attendance",
                              "(result): hãy nhập micrô, loa hoặc số người dự"))
        if problems:
            raise ServiceError(problems)
        r = self.store.set_result(window_id, site, mic=mic, speaker=speaker,
                                  attendance=attendance, by=actor.name, at=self.clock())
        self.notify(Change("result", site=site, window_id=window_id))
        return r

    # ---------------------------------------------------------------------- alerts
    def alerts(self, open_only: bool = True, site: str | None = None,
               limit: int | None = 500) -> list[Alert]:
        """Alerts, newest first."""
        return self.store.alerts(open_only=open_only, site=site, limit=limit)

    def take_alert(self, actor: Actor, alert_id: int, note: str = "") -> Alert:
        """A staff member takes an alert (who and when are kept)."""
        self._may_command(actor)
        a = self.store.take_alert(alert_id, actor.name, self.clock(), note)
        if a is None:
            raise ServiceError(P(f"alert: no alert {alert_id}",
                                 f"alert: không có cảnh báo {alert_id}"))
        self.notify(Change("alert", site=a.site, ref=a.id))
        return a

    def tick(self) -> list[Alert]:
        """Raise the alerts that depend on time (the run loop calls this every few seconds):
        a room without its schedule before a window, a room offline during a window."""
        from district.alerts import timed_alerts

        raised = timed_alerts(self, self.clock())
        for a in raised:
            self.notify(Change("alert", site=a.site, window_id=a.window_id, ref=a.id))
        return raised

    # ---------------------------------------------------------------------- reports
    def report(self, window_id: str, lang: str = "vi") -> dict[str, Any]:
        """The compliance report of a window (see ``docs/console.md``); computed from the
        store on demand, so late evidence is in it as soon as it is recorded."""
        from district.report import build_report

        return build_report(self.cfg, self.store, self.window(window_id), self.clock(), lang)

    def unscheduled(self, since: float, until: float, lang: str = "vi") -> dict[str, Any]:
        """Rooms powered or in a call outside every window between ``since`` and ``until``."""
        from district.report import unscheduled_use

        if until <= since:
            raise ServiceError(P("to: must be after from", "to: phải sau from"))
        return unscheduled_use(self.cfg, self.store, since, until, self.clock(), lang)

    # ---------------------------------------------------------------------- users
    def add_user(self, name: str, role: Role, password: str) -> User:
        """Create a console user (argon2 hash of the password)."""
        problems = _user_problems(name, role, password)
        if problems:
            raise ServiceError(problems)
        if self.store.user(name) is not None:
            raise ServiceError(P(f"name: user '{name}' already exists",
                                 f"name: người dùng '{name}' đã có"))
        return self.store.add_user(name, role, self._hasher.hash(password), self.clock())

    def remove_user(self, name: str) -> None:
        """Delete a user."""
        if not self.store.remove_user(name):
            raise ServiceError(P(f"name: no user '{name}'", f"name: không có người dùng '{name}'"))

    def set_password(self, name: str, password: str, role: Role | None = None) -> None:
        """Give a user a new password (and role)."""
        problems = _user_problems(name, role or "viewer", password)
        if problems:
            raise ServiceError(problems)
        if not self.store.set_user(name, role=role, password_hash=self._hasher.hash(password)):
            raise ServiceError(P(f"name: no user '{name}'", f"name: không có người dùng '{name}'"))

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is theirs, else None (same answer for unknown names)."""
        found = self.store.user(name)
        if found is None:
            # Spend the same time as a real check, so names cannot be probed by timing.
            with contextlib.suppress(VerificationError, InvalidHashError):
                self._hasher.verify(_DUMMY_HASH, password)
            return None
        user, hashed = found
        try:
            self._hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return None
        if self._hasher.check_needs_rehash(hashed):
            self.store.set_user(name, password_hash=self._hasher.hash(password))
        return user

    def users(self) -> list[User]:
        """Every console user."""
        return self.store.users()


_DUMMY_HASH = PasswordHasher().hash("not a password of anyone")


def _user_problems(name: str, role: str, password: str) -> list[str]:
    problems = []
    if not USER_NAME.match(name):
        problems.append(P("name: 1-32 characters of a-z, 0-9, '.', '_' and '-'",
                          "name: 1-32 ký tự a-z, 0-9, '.', '_' và '-'"))
    if role not in ROLES:
        problems.append(P("role: must be operator or viewer", "role: phải là operator hoặc viewer"))
    if len(password) < 8:
        problems.append(P("password: at least 8 characters", "password: ít nhất 8 ký tự"))
    return problems


def _wire(value: Any) -> float | None:
    from district.timefmt import wire_time

    return wire_time(value)


def missing_count(held: tuple[int, int, int] | None, state: dict[str, Any] | None) -> int:
    """:attr:`SeqGaps.missing` from ``(lowest, highest, count)`` held and the room's state:
    the holes between the lowest and highest held, and the tail up to its ``last_seq``."""
    lo, hi, n = held if held is not None else (None, None, 0)
    holes = (hi - lo + 1 - n) if lo is not None and hi is not None else 0
    last = (state or {}).get("last_seq")
    if isinstance(last, int) and not isinstance(last, bool) and last > (hi or 0):
        return holes + last - (hi or 0)
    return holes


def _windows_part(payload: bytes) -> Any:
    try:
        return contract.decode(payload).get("windows")
    except (contract.BadPayload, AttributeError):
        return None


__all__ = [
    "Console",
    "P",
    "PermissionDenied",
    "ServiceError",
    "StoreError",
    "UnknownRoom",
    "UnknownWindow",
    "WindowRoom",
    "missing_count",
]
