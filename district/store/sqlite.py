"""The console's store on SQLite (WAL), one file, safe for one writer process and readers.

The ``run`` process (recorder, dispatcher, web) and the CLI (``window create``, ``report``…)
open the same file; WAL lets them read while the other writes, and ``busy_timeout`` makes a
writer wait its turn. Within a process one connection is shared behind a lock.

The DDL is SQLite's; every statement that reads or writes data is plain SQL that PostgreSQL
runs too (placeholders aside): ``INSERT … ON CONFLICT DO NOTHING``, ``LAG() OVER``, no
``INSERT OR REPLACE``, no SQLite date functions (times are REAL epoch seconds).

Example::

    store = SqliteStore(Path("/var/lib/diemcau-district/console.db"))
    store.record_event(event, raw)   # False the second time for the same (site, seq)
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from district.model import (
    Alert,
    AlertKind,
    AvailabilityRow,
    CommandRow,
    EventRow,
    Incoming,
    LiveRoom,
    Reply,
    Result,
    Role,
    RoomResult,
    SchedulePublication,
    SeqGaps,
    User,
    Window,
)
from district.store.base import StoreError

SCHEMA_VERSION = "1"

DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS live (
    site TEXT PRIMARY KEY, availability TEXT, availability_at REAL,
    state TEXT, state_at REAL, info TEXT, info_at REAL, host TEXT, host_at REAL,
    last_seen_at REAL);
CREATE TABLE IF NOT EXISTS availability (
    id INTEGER PRIMARY KEY, site TEXT NOT NULL, value TEXT NOT NULL,
    received_at REAL NOT NULL, retained INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS availability_site ON availability (site, received_at);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY, site TEXT NOT NULL, kind TEXT NOT NULL,
    received_at REAL NOT NULL, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS snapshots_site ON snapshots (site, kind, received_at);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, site TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
    ts REAL, received_at REAL NOT NULL, window_id TEXT, clock_trusted INTEGER,
    late INTEGER NOT NULL, first_due REAL, event_id TEXT, data TEXT NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (site, seq));
CREATE INDEX IF NOT EXISTS events_site_ts ON events (site, ts);
CREATE INDEX IF NOT EXISTS events_window ON events (window_id);
CREATE INDEX IF NOT EXISTS events_kind_ts ON events (kind, ts);
CREATE TABLE IF NOT EXISTS replies (
    command_id TEXT PRIMARY KEY, site TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT NOT NULL, data TEXT NOT NULL, received_at REAL NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY, site TEXT, topic TEXT NOT NULL, received_at REAL NOT NULL,
    problem TEXT NOT NULL, payload BLOB);
CREATE TABLE IF NOT EXISTS console_link (
    id INTEGER PRIMARY KEY, up INTEGER NOT NULL, at REAL NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS windows (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL, start_at REAL NOT NULL,
    end_at REAL NOT NULL, created_by TEXT NOT NULL, created_at REAL NOT NULL,
    completed_at REAL, completed_by TEXT);
CREATE TABLE IF NOT EXISTS window_rooms (
    window_id TEXT NOT NULL REFERENCES windows (id), site TEXT NOT NULL,
    position INTEGER NOT NULL, PRIMARY KEY (window_id, site));
CREATE INDEX IF NOT EXISTS window_rooms_site ON window_rooms (site);
CREATE TABLE IF NOT EXISTS schedules (
    id INTEGER PRIMARY KEY, site TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL,
    payload BLOB NOT NULL, created_at REAL NOT NULL, published_at REAL);
CREATE INDEX IF NOT EXISTS schedules_site ON schedules (site, id);
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY, site TEXT NOT NULL, name TEXT NOT NULL, args TEXT NOT NULL,
    sender TEXT NOT NULL, created_at REAL NOT NULL, window_id TEXT, note TEXT NOT NULL,
    sent_at REAL);
CREATE INDEX IF NOT EXISTS commands_window ON commands (window_id);
CREATE INDEX IF NOT EXISTS commands_unsent ON commands (sent_at);
CREATE TABLE IF NOT EXISTS results (
    window_id TEXT NOT NULL, site TEXT NOT NULL, mic TEXT, speaker TEXT, attendance INTEGER,
    by_user TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (window_id, site));
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY, akey TEXT NOT NULL UNIQUE, site TEXT NOT NULL, kind TEXT NOT NULL,
    window_id TEXT, raised_at REAL NOT NULL, detail TEXT NOT NULL, late INTEGER NOT NULL,
    taken_by TEXT, taken_at REAL, note TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (taken_at, site);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,
    created_at REAL NOT NULL);
"""

EVENT_COLS = ("site, seq, kind, ts, received_at, window_id, clock_trusted, late, first_due, "
              "event_id, data")
WINDOW_COLS = ("id, kind, title, start_at, end_at, created_by, created_at, completed_at, "
               "completed_by")
COMMAND_COLS = ("c.id, c.site, c.name, c.args, c.sender, c.created_at, c.window_id, c.note, "
                "c.sent_at, r.status, r.reason, r.data, r.received_at")
EVENT_TYPES = (("site", "text"), ("seq", "int8"), ("kind", "text"), ("ts", "float8"),
               ("received_at", "float8"), ("window_id", "text"), ("clock_trusted", "int"),
               ("late", "int"), ("first_due", "float8"), ("event_id", "text"),
               ("data", "text"), ("payload", "text"))
"""The events' columns as :meth:`SqliteStore.record_batch` writes them, with their types."""
ALERT_COLS = "id, site, kind, raised_at, detail, window_id, late, taken_by, taken_at, note"
RETAINED = ("state", "info", "host")


def _j(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _in(values: Sequence[Any]) -> str:
    return "(" + ",".join("?" * len(values)) + ")"


class SqliteStore:
    """:class:`district.store.base.Store` on one SQLite file."""

    _NULLS_ASC = ""
    _NULLS_DESC = ""
    """How events without a time stamp sort: SQLite puts NULL first ascending, last
    descending; another engine says the same in these (after ``ASC``/``DESC``)."""

    def __init__(self, path: Path, timeout_s: float = 30.0) -> None:
        if str(path).startswith(("postgresql:", "postgres:")):
            raise StoreError("a PostgreSQL URL is not a SQLite file: open it with open_store()")
        self.path = Path(path)
        self.timeout_s = timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=timeout_s,
                                       isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            # FULL: a transaction the recorder acknowledged to the broker survives power loss.
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open the database {self.path}: {e}") from None
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self._db.executescript(DDL)
        except sqlite3.Error as e:
            raise StoreError(f"cannot set up the database {self.path}: {e}") from None
        if self.meta_get("schema_version") is None:
            self.meta_set("schema_version", SCHEMA_VERSION)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def second_connection(self) -> SqliteStore:
        return SqliteStore(self.path, self.timeout_s)

    # ------------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise StoreError(f"database {self.path}: {e}") from None
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._db.execute("ROLLBACK")
                raise
            self._depth = 0
            self._db.execute("COMMIT")

    def _q(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def _x(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Execute in the current transaction (or its own); the number of rows changed."""
        with self.transaction():
            return self._db.execute(sql, tuple(args)).rowcount

    # ------------------------------------------------------------------ meta
    def meta_get(self, key: str) -> str | None:
        rows = self._q("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def meta_prefixed(self, prefix: str) -> dict[str, str]:
        return dict(self._q("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?",
                            (len(prefix), prefix)))

    def meta_set(self, key: str, value: str) -> None:
        self._x("INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    # ------------------------------------------------------------------ recording
    def _touch(self, site: str, at: float) -> None:
        self._db.execute("INSERT INTO live (site, last_seen_at) VALUES (?, ?) "
                         "ON CONFLICT (site) DO UPDATE SET last_seen_at = excluded.last_seen_at",
                         (site, at))

    def record_availability(self, site: str, value: str, received_at: float,
                            retained: bool) -> bool:
        with self.transaction():
            self._touch(site, received_at)
            cur = self._q("SELECT availability FROM live WHERE site = ?", (site,))
            if cur and cur[0][0] == value:
                return False
            self._db.execute("INSERT INTO availability (site, value, received_at, retained) "
                             "VALUES (?, ?, ?, ?)", (site, value, received_at, int(retained)))
            self._db.execute("UPDATE live SET availability = ?, availability_at = ? "
                             "WHERE site = ?", (value, received_at, site))
            return True

    def record_retained(self, site: str, kind: str, payload: dict[str, Any], raw: bytes,
                        received_at: float) -> bool:
        if kind not in RETAINED:
            raise ValueError(f"kind must be one of {RETAINED}")
        text = raw.decode("utf-8")
        with self.transaction():
            self._touch(site, received_at)
            cur = self._q(f"SELECT {kind} FROM live WHERE site = ?", (site,))
            if cur and cur[0][0] == text:
                return False
            self._db.execute("INSERT INTO snapshots (site, kind, received_at, payload) "
                             "VALUES (?, ?, ?, ?)", (site, kind, received_at, text))
            self._db.execute(f"UPDATE live SET {kind} = ?, {kind}_at = ? WHERE site = ?",
                             (text, received_at, site))
            return True

    def record_event(self, event: EventRow, raw: bytes) -> bool:
        e = event
        with self.transaction():
            self._touch(e.site, e.received_at)
            n = self._db.execute(
                f"INSERT INTO events ({EVENT_COLS}, payload) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (site, seq) DO NOTHING",
                (e.site, e.seq, e.kind, e.ts, e.received_at, e.window_id,
                 None if e.clock_trusted is None else int(e.clock_trusted), int(e.late),
                 e.first_due, e.event_id, _j(e.data), raw.decode("utf-8"))).rowcount
            return n == 1

    def record_reply(self, reply: Reply, raw: bytes) -> bool:
        r = reply
        with self.transaction():
            self._touch(r.site, r.received_at)
            return self._db.execute(
                "INSERT INTO replies (command_id, site, status, reason, data, received_at, "
                "payload) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (command_id) DO NOTHING",
                (r.command_id, r.site, r.status, r.reason, _j(r.data), r.received_at,
                 raw.decode("utf-8", errors="replace"))).rowcount == 1

    # -- many at once -------------------------------------------------------------------
    ROWS_PER_INSERT = 250
    """Rows per multi-row ``INSERT … RETURNING`` (12 values an event: well under SQLite's
    32,766 and PostgreSQL's 65,535 parameters)."""

    def _touch_many(self, seen: dict[str, float]) -> None:
        self._db.executemany(
            "INSERT INTO live (site, last_seen_at) VALUES (?, ?) ON CONFLICT (site) DO UPDATE "
            "SET last_seen_at = excluded.last_seen_at", sorted(seen.items()))

    def _live_texts(self, sites: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(sites), 500):
            part = sites[i:i + 500]
            for site, av, st, info, host in self._q(
                    f"SELECT site, availability, state, info, host FROM live WHERE site IN "
                    f"{_in(part)}", part):
                out[site] = {"availability": av, "state": st, "info": info, "host": host}
        return out

    def _insert(self, table: str, cols: Sequence[tuple[str, str]],
                rows: Sequence[tuple[Any, ...]], tail: str = "") -> list[tuple[Any, ...]]:
        """``INSERT INTO table (cols) VALUES … tail`` for many rows (``cols``: name and SQL
        type, for a backend that sends columns as arrays); the rows of ``tail``'s RETURNING.
        Here: one statement per row (``executemany``), or multi-row statements in chunks when
        something is returned."""
        if not rows:
            return []
        names = ", ".join(c for c, _t in cols)
        one = "(" + ",".join("?" * len(cols)) + ")"
        if "RETURNING" not in tail:
            self._db.executemany(f"INSERT INTO {table} ({names}) VALUES {one} {tail}", rows)
            return []
        got: list[tuple[Any, ...]] = []
        for i in range(0, len(rows), self.ROWS_PER_INSERT):
            part = rows[i:i + self.ROWS_PER_INSERT]
            sql = f"INSERT INTO {table} ({names}) VALUES {','.join([one] * len(part))} {tail}"
            got += self._db.execute(sql, tuple(v for r in part for v in r)).fetchall()
        return got

    def record_batch(self, items: Sequence[Incoming]) -> list[bool]:
        out = [False] * len(items)
        if not items:
            return out
        with self.transaction():
            seen: dict[str, float] = {}
            for it in items:
                if it.received_at >= seen.get(it.site, it.received_at):
                    seen[it.site] = it.received_at
            self._touch_many(seen)
            held = self._live_texts(sorted({it.site for it in items
                                            if it.kind == "availability" or it.kind in RETAINED}))
            avail: list[tuple[Any, ...]] = []
            snaps: list[tuple[Any, ...]] = []
            latest: dict[tuple[str, str], tuple[Any, float]] = {}
            events: dict[tuple[str, int], int] = {}
            replies: dict[str, int] = {}
            for i, it in enumerate(items):
                if it.kind == "availability" or it.kind in RETAINED:
                    text = it.value if it.kind == "availability" else it.raw.decode("utf-8")
                    cur = held.setdefault(it.site, {})
                    if cur.get(it.kind) == text:
                        continue
                    cur[it.kind] = text
                    latest[(it.site, it.kind)] = (text, it.received_at)
                    if it.kind == "availability":
                        avail.append((it.site, text, it.received_at, int(it.retained)))
                    else:
                        snaps.append((it.site, it.kind, it.received_at, text))
                    out[i] = True
                elif it.kind == "events":
                    events.setdefault((it.site, it.value.seq), i)
                elif it.kind == "replies":
                    replies.setdefault(it.value.command_id, i)
                else:
                    raise ValueError(f"cannot record a {it.kind!r} message")
            self._insert("availability", (("site", "text"), ("value", "text"),
                                          ("received_at", "float8"), ("retained", "int")),
                         avail)
            self._insert("snapshots", (("site", "text"), ("kind", "text"),
                                       ("received_at", "float8"), ("payload", "text")), snaps)
            for col in ("availability", *RETAINED):
                rows = sorted((site, v, at) for (site, k), (v, at) in latest.items() if k == col)
                self._insert("live", (("site", "text"), (col, "text"), (f"{col}_at", "float8")),
                             rows, f"ON CONFLICT (site) DO UPDATE SET {col} = excluded.{col}, "
                             f"{col}_at = excluded.{col}_at")
            if events:
                rows = []
                for i in events.values():
                    e = items[i].value
                    rows.append((e.site, e.seq, e.kind, e.ts, e.received_at, e.window_id,
                                 None if e.clock_trusted is None else int(e.clock_trusted),
                                 int(e.late), e.first_due, e.event_id, _j(e.data),
                                 items[i].raw.decode("utf-8")))
                for site, seq in self._insert(
                        "events", EVENT_TYPES, rows,
                        "ON CONFLICT (site, seq) DO NOTHING RETURNING site, seq"):
                    out[events[(site, int(seq))]] = True
            if replies:
                rows = []
                for i in replies.values():
                    r = items[i].value
                    rows.append((r.command_id, r.site, r.status, r.reason, _j(r.data),
                                 r.received_at, items[i].raw.decode("utf-8", errors="replace")))
                for (cid,) in self._insert(
                        "replies", (("command_id", "text"), ("site", "text"),
                                    ("status", "text"), ("reason", "text"), ("data", "text"),
                                    ("received_at", "float8"), ("payload", "text")), rows,
                        "ON CONFLICT (command_id) DO NOTHING RETURNING command_id"):
                    out[replies[cid]] = True
        return out

    def record_rejected(self, site: str | None, topic: str, raw: bytes, received_at: float,
                        problem: str) -> None:
        self._x("INSERT INTO rejected (site, topic, received_at, problem, payload) "
                "VALUES (?, ?, ?, ?, ?)", (site, topic, received_at, problem, raw))

    def rejected(self, limit: int = 100) -> list[tuple[str | None, str, float, str]]:
        """The newest messages kept aside: ``(site, topic, received_at, problem)``."""
        return [tuple(r) for r in self._q(  # type: ignore[misc]
            "SELECT site, topic, received_at, problem FROM rejected ORDER BY id DESC LIMIT ?",
            (limit,))]

    def record_console_link(self, up: bool, at: float, detail: str = "") -> None:
        self._x("INSERT INTO console_link (up, at, detail) VALUES (?, ?, ?)",
                (int(up), at, detail))

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _live(row: tuple[Any, ...]) -> LiveRoom:
        site, av, av_at, st, st_at, info, info_at, host, host_at, seen = row
        return LiveRoom(site=site, availability=av, availability_at=av_at,
                        state=json.loads(st) if st else None, state_at=st_at,
                        info=json.loads(info) if info else None, info_at=info_at,
                        host=json.loads(host) if host else None, host_at=host_at,
                        last_seen_at=seen)

    _LIVE = ("SELECT site, availability, availability_at, state, state_at, info, info_at, "
             "host, host_at, last_seen_at FROM live")
    _LIVE_LIGHT = ("SELECT site, availability, availability_at, state, state_at, NULL, NULL, "
                   "NULL, NULL, last_seen_at FROM live")

    def live(self, site: str) -> LiveRoom:
        rows = self._q(f"{self._LIVE} WHERE site = ?", (site,))
        return self._live(rows[0]) if rows else LiveRoom(site)

    def live_all(self, info: bool = True) -> dict[str, LiveRoom]:
        sql = self._LIVE if info else self._LIVE_LIGHT
        return {r[0]: self._live(r) for r in self._q(sql)}

    _SITE = "site"
    """How :data:`_LIVE` names a row's site in a WHERE."""

    _STAMPS = ("SELECT site, availability, availability_at, state_at, length(state), "
               "last_seen_at FROM live")

    def live_stamps(self) -> dict[str, tuple[Any, ...]]:
        return {r[0]: tuple(r[1:]) for r in self._q(self._STAMPS)}

    def live_many(self, sites: Sequence[str]) -> dict[str, LiveRoom]:
        out: dict[str, LiveRoom] = {}
        sites = list(sites)
        for i in range(0, len(sites), 500):
            part = sites[i:i + 500]
            for r in self._q(f"{self._LIVE} WHERE {self._SITE} IN {_in(part)}", part):
                out[r[0]] = self._live(r)
        return out

    def availability_history(self, site: str, until: float | None = None
                             ) -> list[AvailabilityRow]:
        sql = "SELECT site, value, received_at, retained, id FROM availability WHERE site = ?"
        args: list[Any] = [site]
        if until is not None:
            sql += " AND received_at <= ?"
            args.append(until)
        return [AvailabilityRow(s, v, at, bool(ret), i)
                for s, v, at, ret, i in self._q(sql + " ORDER BY received_at, id", args)]

    def last_availability_ids(self) -> dict[str, int]:
        return {site: int(i) for site, i in self._q(
            "SELECT site, MAX(id) FROM availability GROUP BY site")}

    def seq_summaries(self, sites: Sequence[str] | None = None
                      ) -> dict[str, tuple[int, int, int]]:
        sql = "SELECT site, MIN(seq), MAX(seq), COUNT(*) FROM events"
        if sites is None:
            parts: list[list[str]] = [[]]
        else:
            sites = list(sites)
            parts = [sites[i:i + 500] for i in range(0, len(sites), 500)]
        out = {}
        for part in parts:
            where = f" WHERE site IN {_in(part)}" if sites is not None else ""
            for site, lo, hi, n in self._q(f"{sql}{where} GROUP BY site", part):
                out[site] = (int(lo), int(hi), int(n))
        return out

    def states(self, site: str, since: float | None = None, until: float | None = None
               ) -> list[tuple[float, dict[str, Any]]]:
        sql = "SELECT received_at, payload FROM snapshots WHERE site = ? AND kind = 'state'"
        args: list[Any] = [site]
        if since is not None:
            sql += " AND received_at >= ?"
            args.append(since)
        if until is not None:
            sql += " AND received_at <= ?"
            args.append(until)
        return [(at, json.loads(p)) for at, p in self._q(sql + " ORDER BY received_at, id", args)]

    @staticmethod
    def _event(r: tuple[Any, ...]) -> EventRow:
        site, seq, kind, ts, rec, wid, trusted, late, first_due, eid, data = r
        return EventRow(site=site, seq=seq, kind=kind, ts=ts, received_at=rec, window_id=wid,
                        clock_trusted=None if trusted is None else bool(trusted),
                        late=bool(late), first_due=first_due, data=json.loads(data),
                        event_id=eid)

    def events(self, site: str | None = None, *, kinds: Sequence[str] | None = None,
               since: float | None = None, until: float | None = None,
               window_id: str | None = None, limit: int | None = None,
               newest_first: bool = False) -> list[EventRow]:
        where, args = [], []
        if site is not None:
            where.append("site = ?")
            args.append(site)
        if kinds:
            where.append(f"kind IN {_in(kinds)}")
            args += list(kinds)
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if until is not None:
            where.append("ts <= ?")
            args.append(until)
        if window_id is not None:
            where.append("window_id = ?")
            args.append(window_id)
        sql = f"SELECT {EVENT_COLS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = "DESC" if newest_first else "ASC"
        nulls = self._NULLS_DESC if newest_first else self._NULLS_ASC
        sql += f" ORDER BY ts {order}{nulls}, seq {order}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [self._event(r) for r in self._q(sql, args)]

    def window_evidence(self, site: str, window_id: str, since: float, until: float
                        ) -> list[EventRow]:
        return [self._event(r) for r in self._q(
            f"SELECT {EVENT_COLS} FROM events WHERE site = ? AND (window_id = ? OR "
            f"(ts >= ? AND ts <= ?)) ORDER BY ts ASC{self._NULLS_ASC}, seq",
            (site, window_id, since, until))]

    def seq_gaps(self, site: str) -> SeqGaps:
        (lo, hi, n), = self._q("SELECT MIN(seq), MAX(seq), COUNT(*) FROM events WHERE site = ?",
                               (site,))
        holes = [(a, b) for a, b in self._q(
            "SELECT prev + 1, seq - 1 FROM (SELECT seq, LAG(seq) OVER (ORDER BY seq) AS prev "
            "FROM events WHERE site = ?) t WHERE prev IS NOT NULL AND seq > prev + 1 "
            "ORDER BY seq", (site,))]
        state = self.live(site).state or {}
        last = state.get("last_seq")
        last_seq = last if isinstance(last, int) and not isinstance(last, bool) else None
        tail = None
        if last_seq is not None and last_seq > (hi if hi is not None else 0):
            tail = ((hi + 1) if hi is not None else 1, last_seq)
        return SeqGaps(site, lo, hi, n, last_seq, holes, tail)

    # ------------------------------------------------------------------ windows
    def _sites_of(self, window_id: str) -> tuple[str, ...]:
        return tuple(r[0] for r in self._q(
            "SELECT site FROM window_rooms WHERE window_id = ? ORDER BY position", (window_id,)))

    def _window(self, r: tuple[Any, ...]) -> Window:
        wid, kind, title, start, end, cby, cat, done_at, done_by = r
        return Window(wid, kind, title, start, end, self._sites_of(wid), cby, cat, done_at,
                      done_by)

    def add_window(self, window: Window) -> None:
        w = window
        with self.transaction():
            self._db.execute(f"INSERT INTO windows ({WINDOW_COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
                             (w.id, w.kind, w.title, w.start, w.end, w.created_by,
                              w.created_at, w.completed_at, w.completed_by))
            self._db.executemany("INSERT INTO window_rooms (window_id, site, position) "
                                 "VALUES (?, ?, ?)",
                                 [(w.id, s, i) for i, s in enumerate(w.sites)])

    def window(self, window_id: str) -> Window | None:
        rows = self._q(f"SELECT {WINDOW_COLS} FROM windows WHERE id = ?", (window_id,))
        return self._window(rows[0]) if rows else None

    def windows(self, *, since: float | None = None, until: float | None = None,
                site: str | None = None) -> list[Window]:
        where, args = [], []
        if since is not None:
            where.append("end_at >= ?")
            args.append(since)
        if until is not None:
            where.append("start_at <= ?")
            args.append(until)
        if site is not None:
            where.append("id IN (SELECT window_id FROM window_rooms WHERE site = ?)")
            args.append(site)
        sql = f"SELECT {WINDOW_COLS} FROM windows"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [self._window(r) for r in self._q(sql + " ORDER BY start_at, id", args)]

    def update_window(self, window_id: str, **fields: Any) -> Window:
        cols = {"start": "start_at", "end": "end_at", "title": "title",
                "completed_at": "completed_at", "completed_by": "completed_by"}
        bad = set(fields) - set(cols)
        if bad:
            raise ValueError(f"cannot change {', '.join(sorted(bad))}")
        with self.transaction():
            for k, v in fields.items():
                self._db.execute(f"UPDATE windows SET {cols[k]} = ? WHERE id = ?",
                                 (v, window_id))
            w = self.window(window_id)
        if w is None:
            raise KeyError(window_id)
        return w

    # ------------------------------------------------------------------ schedules
    @staticmethod
    def _sched(r: tuple[Any, ...]) -> SchedulePublication:
        i, site, version, dig, payload, cat, pat = r
        return SchedulePublication(i, site, version, dig, b"" if payload is None
                                   else bytes(payload), cat, pat)

    _SCHED = "SELECT id, site, version, digest, payload, created_at, published_at FROM schedules"

    def add_schedule(self, site: str, version: str, digest: str, payload: bytes,
                     created_at: float) -> SchedulePublication:
        with self.transaction():
            self._db.execute("INSERT INTO schedules (site, version, digest, payload, created_at)"
                             " VALUES (?, ?, ?, ?, ?)",
                             (site, version, digest, payload, created_at))
            latest = self.latest_schedule(site)
        assert latest is not None
        return latest

    def latest_schedule(self, site: str) -> SchedulePublication | None:
        rows = self._q(f"{self._SCHED} WHERE site = ? ORDER BY id DESC LIMIT 1", (site,))
        return self._sched(rows[0]) if rows else None

    def latest_schedules(self, payload: bool = True) -> dict[str, SchedulePublication]:
        head = self._SCHED if payload else self._SCHED.replace("payload", "NULL")
        rows = self._q(f"{head} WHERE id IN (SELECT MAX(id) FROM schedules GROUP BY site)")
        return {r[1]: self._sched(r) for r in rows}

    def schedule_counts(self) -> dict[str, int]:
        return {site: int(n) for site, n in self._q(
            "SELECT site, COUNT(*) FROM schedules GROUP BY site")}

    def unpublished_schedules(self) -> dict[str, SchedulePublication]:
        rows = self._q(f"{self._SCHED} WHERE id IN (SELECT MAX(id) FROM schedules "
                       "GROUP BY site) AND published_at IS NULL")
        return {r[1]: self._sched(r) for r in rows}

    def mark_schedule_published(self, schedule_id: int, at: float) -> None:
        self.mark_schedules_published([schedule_id], at)

    def mark_schedules_published(self, schedule_ids: Sequence[int], at: float) -> None:
        if not schedule_ids:
            return
        self._stamp_once("schedules", "published_at", schedule_ids, at)

    def _stamp_once(self, table: str, column: str, ids: Sequence[Any], at: float) -> None:
        """Set ``column`` to ``at`` for the rows ``ids`` of ``table`` where it is not set yet
        (marking what the broker acknowledged: a second PUBACK changes nothing)."""
        with self.transaction():
            self._db.executemany(f"UPDATE {table} SET {column} = ? "
                                 f"WHERE id = ? AND {column} IS NULL",
                                 [(at, i) for i in ids])

    def schedule_count(self, site: str) -> int:
        return int(self._q("SELECT COUNT(*) FROM schedules WHERE site = ?", (site,))[0][0])

    # ------------------------------------------------------------------ commands
    @staticmethod
    def _command(r: tuple[Any, ...]) -> CommandRow:
        cid, site, name, args, sender, cat, wid, note, sent, status, reason, data, rat = r
        reply = (Reply(cid, site, status, reason, json.loads(data), rat)
                 if status is not None else None)
        return CommandRow(cid, site, name, json.loads(args), sender, cat, wid, note, sent, reply)

    _CMD = f"SELECT {COMMAND_COLS} FROM commands c LEFT JOIN replies r ON r.command_id = c.id"

    def add_commands(self, commands: Iterable[CommandRow]) -> None:
        with self.transaction():
            self._db.executemany(
                "INSERT INTO commands (id, site, name, args, sender, created_at, window_id, "
                "note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(c.id, c.site, c.name, _j(c.args), c.sender, c.created_at, c.window_id, c.note)
                 for c in commands])

    def unsent_commands(self) -> list[CommandRow]:
        return [self._command(r) for r in self._q(
            f"{self._CMD} WHERE c.sent_at IS NULL ORDER BY c.created_at, c.id")]

    def mark_command_sent(self, command_id: str, at: float) -> None:
        self.mark_commands_sent([command_id], at)

    def mark_commands_sent(self, command_ids: Sequence[str], at: float) -> None:
        if not command_ids:
            return
        self._stamp_once("commands", "sent_at", command_ids, at)

    def command(self, command_id: str) -> CommandRow | None:
        rows = self._q(f"{self._CMD} WHERE c.id = ?", (command_id,))
        return self._command(rows[0]) if rows else None

    def commands(self, *, site: str | None = None, window_id: str | None = None,
                 names: Sequence[str] | None = None, since: float | None = None,
                 limit: int | None = None) -> list[CommandRow]:
        where, args = [], []
        if site is not None:
            where.append("c.site = ?")
            args.append(site)
        if window_id is not None:
            where.append("c.window_id = ?")
            args.append(window_id)
        if names:
            where.append(f"c.name IN {_in(names)}")
            args += list(names)
        if since is not None:
            where.append("c.created_at >= ?")
            args.append(since)
        sql = self._CMD + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY c.created_at DESC, c.id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [self._command(r) for r in self._q(sql, args)]

    # ------------------------------------------------------------------ results
    def set_result(self, window_id: str, site: str, *, mic: Result | None,
                   speaker: Result | None, attendance: int | None, by: str,
                   at: float) -> RoomResult:
        with self.transaction():
            old = self.results(window_id).get(site)
            mic = mic if mic is not None else (old.mic if old else None)
            speaker = speaker if speaker is not None else (old.speaker if old else None)
            if attendance is None and old is not None:
                attendance = old.attendance
            self._db.execute(
                "INSERT INTO results (window_id, site, mic, speaker, attendance, by_user, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (window_id, site) DO UPDATE SET "
                "mic = excluded.mic, speaker = excluded.speaker, "
                "attendance = excluded.attendance, by_user = excluded.by_user, at = excluded.at",
                (window_id, site, mic, speaker, attendance, by, at))
        return RoomResult(window_id, site, mic, speaker, attendance, by, at)

    def results(self, window_id: str) -> dict[str, RoomResult]:
        return {r[1]: RoomResult(*r) for r in self._q(
            "SELECT window_id, site, mic, speaker, attendance, by_user, at FROM results "
            "WHERE window_id = ?", (window_id,))}

    # ------------------------------------------------------------------ alerts
    @staticmethod
    def _alert(r: tuple[Any, ...]) -> Alert:
        i, site, kind, at, detail, wid, late, tby, tat, note = r
        return Alert(i, site, kind, at, json.loads(detail), wid, bool(late), tby, tat, note)

    def raise_alert(self, key: str, site: str, kind: AlertKind, raised_at: float,
                    detail: dict[str, Any], window_id: str | None = None,
                    late: bool = False) -> Alert | None:
        with self.transaction():
            n = self._db.execute(
                "INSERT INTO alerts (akey, site, kind, window_id, raised_at, detail, late, note) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, '') ON CONFLICT (akey) DO NOTHING",
                (key, site, kind, window_id, raised_at, _j(detail), int(late))).rowcount
            if n != 1:
                return None
            rows = self._q(f"SELECT {ALERT_COLS} FROM alerts WHERE akey = ?", (key,))
        return self._alert(rows[0])

    def open_alert_counts(self) -> dict[str, int]:
        return {site: int(n) for site, n in self._q(
            "SELECT site, COUNT(*) FROM alerts WHERE taken_at IS NULL GROUP BY site")}

    def alert_keys(self, window_ids: Sequence[str]) -> set[str]:
        if not window_ids:
            return set()
        return {r[0] for r in self._q(
            f"SELECT akey FROM alerts WHERE window_id IN {_in(window_ids)}", window_ids)}

    def take_alert(self, alert_id: int, by: str, at: float, note: str = "") -> Alert | None:
        with self.transaction():
            self._db.execute("UPDATE alerts SET taken_by = ?, taken_at = ?, note = ? "
                             "WHERE id = ? AND taken_at IS NULL", (by, at, note, alert_id))
            rows = self._q(f"SELECT {ALERT_COLS} FROM alerts WHERE id = ?", (alert_id,))
        return self._alert(rows[0]) if rows else None

    def alerts(self, *, open_only: bool = True, site: str | None = None,
               kinds: Sequence[str] | None = None, limit: int | None = None) -> list[Alert]:
        where, args = [], []
        if open_only:
            where.append("taken_at IS NULL")
        if site is not None:
            where.append("site = ?")
            args.append(site)
        if kinds:
            where.append(f"kind IN {_in(kinds)}")
            args += list(kinds)
        sql = f"SELECT {ALERT_COLS} FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY raised_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [self._alert(r) for r in self._q(sql, args)]

    # ------------------------------------------------------------------ users
    def add_user(self, name: str, role: Role, password_hash: str, at: float) -> User:
        with self.transaction():
            n = self._db.execute("INSERT INTO users (name, role, password_hash, created_at) "
                                 "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                                 (name, role, password_hash, at)).rowcount
        if n != 1:
            raise StoreError(f"user '{name}' already exists")
        return User(name, role, at)

    def remove_user(self, name: str) -> bool:
        return self._x("DELETE FROM users WHERE name = ?", (name,)) == 1

    def set_user(self, name: str, *, role: Role | None = None,
                 password_hash: str | None = None) -> bool:
        with self.transaction():
            if not self._q("SELECT 1 FROM users WHERE name = ?", (name,)):
                return False
            if role is not None:
                self._db.execute("UPDATE users SET role = ? WHERE name = ?", (role, name))
            if password_hash is not None:
                self._db.execute("UPDATE users SET password_hash = ? WHERE name = ?",
                                 (password_hash, name))
        return True

    def user(self, name: str) -> tuple[User, str] | None:
        rows = self._q("SELECT name, role, created_at, password_hash FROM users WHERE name = ?",
                       (name,))
        if not rows:
            return None
        n, role, at, h = rows[0]
        return User(n, role, at), h

    def users(self) -> list[User]:
        return [User(n, r, at) for n, r, at in self._q(
            "SELECT name, role, created_at FROM users ORDER BY name")]

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"
