"""A disk-backed outbox for the room's events: nothing the room reports is lost to a restart.

The agent's main loop :meth:`Outbox.append` s an event before it tries to publish it, then
publishes :meth:`Outbox.pending` records with QoS 1 and :meth:`Outbox.ack_many` s them in
batches once the broker's PUBACKs are in. paho only queues unacknowledged publishes in
memory, so without this file a crash, a watchdog restart or a power cut during a link outage
would silently lose exactly the events the district most needs (a refused shutdown, a fault).

Durability choice: **WAL journal with ``synchronous=FULL``.** In WAL mode ``NORMAL`` keeps the
database consistent across a power cut but may roll back the last transactions committed before
it, because the WAL is only fsync'd at checkpoints; that is the wrong trade here: an event
whose :meth:`~Outbox.append` returned may already have been acted on (the LED showed a refusal,
the core moved on), so it must survive the power being pulled the next millisecond, and a
sequence number handed out must never be handed out twice. ``FULL`` fsyncs the WAL at every
commit; the room writes a few events a minute, so one fsync per event costs nothing that
matters even on an SD card. Deleting acknowledged records is the exception: it commits with
``synchronous=NORMAL`` (no sync of its own; :attr:`Outbox.synced_commits` counts the syncing
commits), because a deletion lost to a power cut only means an event is sent twice, which
readers de-duplicate by ``seq``, and the next append's sync makes it durable anyway.

Each record also keeps, for the contract 2.0 envelope (:meth:`Record.to_json`), the window that
locked the room when it was made (``window_id``) and whether the clock was trusted; an outbox
written by agent 0.1 (five columns) gets the two columns added when opened, its events kept.

Commands (exactly once): the ``commands`` table keeps each handled command id with the bytes of
its first reply (:meth:`Outbox.command_reply`), written in the same transaction as the events
of its decision (``append_many(..., command=...)``), for :data:`COMMAND_TTL_S` (7 days; at
most :data:`MAX_COMMANDS`). An outbox that has to be reset (below) forgets them too.

Sequence numbers are per site and strictly increasing for the life of the room. The next one is
kept in a ``meta`` table (so it continues after every record was acknowledged and deleted) and,
as a backstop for a database that has to be discarded, a high-water mark is written ahead in
blocks to ``<name>.seqmark`` beside it (atomically, before any number at or beyond the mark is
committed). A reset outbox therefore continues above every number it ever handed out.

Bounds: at most ``max_events`` records and nothing older than ``max_age_s`` (when the clock can
be believed, see :mod:`agent.clock`). Dropping always keeps the newest, removes the oldest and
appends, in the same transaction, exactly one ``events_dropped`` record
``{"count", "first_seq", "last_seq", "reason"}``. Pending notices for the same reason are
folded into the new one (counts added, range widened to cover them), so there is at most one
pending notice per reason and none is ever lost. For the district: every seq in
``first_seq..last_seq`` it has not received will never come; ``count`` is how many records were
dropped (a record in flight at the moment of the drop may still have been delivered). Size
drops go 1 % below the limit and age sweeps wait until the oldest record is 1 % past the
limit, so a full outbox does not write a notice for every new event.

Other events this module writes itself: ``outbox_reset`` ``{"reason": "corrupt" | "unusable" |
"behind", "error", "moved_to", "durable"}`` when stored events may have been lost (see below).

A database that cannot be read (``file is not a database``, ``malformed``, a failed quick
check) is moved aside to ``<name>.corrupt-<UTC time>``, a new one is started and an
``outbox_reset`` record says so; the same happens for corruption found while running, and an
I/O error first gets the file reopened. If no file can be used at all (read-only or failing
card) the outbox carries on in memory (``stats().durable`` is False, until the agent restarts)
rather than stopping the agent. A database found older than its ``.seqmark`` (deleted by hand,
restored from a backup) continues numbering above the mark with a ``behind`` reset record.
Numbering after a reset at start-up jumps to the mark (a gap of up to ``SEQ_BLOCK``), because
only the mark is certain to be above every number already handed out.

Example::

    box = Outbox(state_dir / "outbox.sqlite")
    rec = box.append("shutdown_refused", {"source": "button"}, window_id="t-1")
    client.publish(topic, rec.to_json(), qos=1)   # after its PUBACK: box.ack_many([rec.seq])
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from agent.clock import MIN_PLAUSIBLE_TIME, iso_ms
from agent.store import write_atomic

log = logging.getLogger(__name__)

DROPPED = "events_dropped"
RESET = "outbox_reset"
SEQ_BLOCK = 10_000
"""How far ahead the ``.seqmark`` backstop is written (one small file write per block)."""

COMMAND_TTL_S = 7 * 86400.0
"""How long a handled command's id and reply are kept (contract 2.0: 7 days)."""
MAX_COMMANDS = 20_000
"""At most this many remembered commands whatever the clock says (oldest forgotten first)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY,
    id   TEXT NOT NULL,
    ts   REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    window_id TEXT,
    trusted INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE TABLE IF NOT EXISTS commands (
    id    TEXT PRIMARY KEY,
    ts    REAL NOT NULL,
    reply BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_ts ON commands (ts);
"""
_V1_COLUMNS = ["seq", "id", "ts", "kind", "data"]
_COLUMNS = [*_V1_COLUMNS, "window_id", "trusted"]
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class New(NamedTuple):
    """An event to record: its ``kind`` and ``data``, and for the envelope the window that
    locked the room when it was made and whether the room trusted its clock then."""

    kind: str
    data: dict[str, Any]
    window_id: str | None = None
    clock_trusted: bool = True


@dataclass(frozen=True)
class Record:
    """One event as stored and as published (``to_json``); ``ts`` is epoch seconds."""

    seq: int
    id: str
    ts: float
    kind: str
    data: dict[str, Any]
    window_id: str | None = None
    clock_trusted: bool = True

    def to_json(self, sent_late_at: float | None = None) -> bytes:
        """The compact UTF-8 JSON payload published for this event (contract 2.0 envelope).

        ``sent_late_at``: when this copy goes out from the backlog (after a reconnect or a
        restart), the time it is sent; the envelope then carries ``late``."""
        env: dict[str, Any] = {"seq": self.seq, "id": self.id, "ts": iso_ms(self.ts),
                               "kind": self.kind, "clock_trusted": self.clock_trusted}
        if self.window_id is not None:
            env["window_id"] = self.window_id
        if sent_late_at is not None:
            env["late"] = {"first_due": iso_ms(self.ts), "sent": iso_ms(sent_late_at)}
        env["data"] = self.data
        return _dumps(env).encode("utf-8")


@dataclass(frozen=True)
class OutboxStats:
    """What the health snapshot reports about the outbox."""

    pending: int
    oldest_age_s: float | None
    bytes_on_disk: int
    next_seq: int
    durable: bool


class OutboxClosed(RuntimeError):
    """The outbox was used after :meth:`Outbox.close`."""


def _is_corruption(e: BaseException) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _CORRUPT_CODES
    return isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError)


class _Corrupt(Exception):
    """Internal: the database file has to be discarded."""


class Outbox:
    """A thread-safe, bounded, durable FIFO of :class:`Record` s backed by SQLite.

    ``clock`` gives wall-clock epoch seconds (record timestamps and the age bound); it is
    injectable for tests. All methods may be called from any thread.
    """

    def __init__(self, path: Path, max_events: int = 50_000, max_age_s: float = 14 * 86400,
                 clock: Callable[[], float] = time.time) -> None:
        if max_events < 2:
            raise ValueError("max_events must be at least 2 (room for a drop notice)")
        if not max_age_s > 0:
            raise ValueError("max_age_s must be positive")
        self.path = Path(path)
        self.max_events = max_events
        self.max_age_s = float(max_age_s)
        self._clock = clock
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._durable = True
        self._closed = False
        self._seq_mark = 0
        self._seq_hint = 0  # last next-seq seen, in case the file vanishes
        self.synced_commits = 0
        """Transactions committed with a disk sync (``synchronous=FULL``): appends, not acks."""
        with self._lock:
            self._open()
            self._guarded(self._enforce_bounds)

    # ------------------------------------------------------------------ public API

    def next_seq(self) -> int:
        """The sequence number the next :meth:`append` will assign."""
        with self._lock:
            return self._guarded(self._read_next_seq)

    def last_seq(self) -> int:
        """The highest sequence number handed out so far (0 before the first event)."""
        with self._lock:
            return max(0, self._seq_hint - 1)

    def append(self, kind: str, data: dict[str, Any], window_id: str | None = None,
               clock_trusted: bool = True) -> Record:
        """Store a new event durably and return it; raises ``ValueError`` for bad input only.

        ``data`` must be a JSON-serialisable dict (no NaN); it is copied, so later changes by
        the caller do not alter the record.
        """
        return self.append_many([New(kind, data, window_id, clock_trusted)])[0]

    def append_many(self, events: Sequence[New | tuple[str, dict[str, Any]]],
                    command: tuple[str, bytes] | None = None) -> list[Record]:
        """Store several events durably in one transaction (one disk sync), in order.

        ``command``: ``(command id, reply bytes)`` of the command these events decided,
        remembered in the same transaction (see :meth:`command_reply`): after a crash either
        both the decision and the command's reply are on disk, or neither is.
        """
        rows = []
        for ev in events:
            kind, data, wid, trusted = New(*ev)
            if not isinstance(kind, str) or not kind:
                raise ValueError("kind must be a non-empty string")
            if not isinstance(data, dict):
                raise ValueError("data must be a dict")
            if wid is not None and not isinstance(wid, str):
                raise ValueError("window_id must be a string or None")
            try:
                rows.append((kind, _dumps(data), wid, bool(trusted)))
            except (TypeError, ValueError) as e:
                raise ValueError(f"data is not JSON-serialisable: {e}") from None
        if command is not None and not (isinstance(command[0], str) and command[0]
                                        and isinstance(command[1], bytes)):
            raise ValueError("command must be (non-empty id, reply bytes)")
        if not rows and command is None:
            return []
        with self._lock:
            recs: list[Record] = self._guarded(lambda: self._append_txn(rows, command))
            if rows:
                self._guarded(self._enforce_bounds)
            return recs

    def command_reply(self, command_id: str) -> bytes | None:
        """The reply first given to ``command_id`` in the last :data:`COMMAND_TTL_S`, or None
        if this room has not handled that id (a repeat gets these bytes again)."""

        def read() -> bytes | None:
            row = self._conn().execute("SELECT reply FROM commands WHERE id = ?",
                                       (command_id,)).fetchone()
            return None if row is None else bytes(row[0])

        with self._lock:
            return self._guarded(read)  # type: ignore[no-any-return]

    def record_command(self, command_id: str, reply: bytes) -> None:
        """Remember a command that decided nothing but its reply (e.g. an invalid one)."""
        self.append_many([], command=(command_id, reply))

    def pending(self, limit: int | None = None, after: int = 0) -> list[Record]:
        """Unacknowledged records with ``seq`` above ``after``, lowest first (at most
        ``limit`` of them)."""
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")

        def read() -> list[Record]:
            q = ("SELECT seq, id, ts, kind, data, window_id, trusted FROM events "
                 "WHERE seq > ? ORDER BY seq")
            db = self._conn()
            rows = db.execute(q + " LIMIT ?", (after, limit)).fetchall() \
                if limit is not None else db.execute(q, (after,)).fetchall()
            return [Record(s, i, t, k, json.loads(d), w, bool(tr))
                    for s, i, t, k, d, w, tr in rows]

        with self._lock:
            return self._guarded(read)

    def ack(self, seq: int) -> None:
        """Forget ``seq`` once the broker has acknowledged it; unknown or repeated seqs are fine."""
        self.ack_many([seq])

    def ack_many(self, seqs: Sequence[int]) -> None:
        """Forget several acknowledged seqs in one transaction, without a disk sync of its own:
        a deletion lost to a power cut only means the event is sent again (readers
        de-duplicate by ``seq``), and the next append's sync makes it durable anyway."""
        if not seqs:
            return

        def delete() -> None:
            with self._txn(durable=False) as db:
                db.executemany("DELETE FROM events WHERE seq = ?", [(int(s),) for s in seqs])

        with self._lock:
            self._guarded(delete)

    def stats(self) -> OutboxStats:
        """Pending count, age of the oldest pending record, bytes used on disk."""

        def read() -> OutboxStats:
            n, oldest = self._conn().execute("SELECT count(*), min(ts) FROM events").fetchone()
            age = None if oldest is None else max(0.0, self._clock() - oldest)
            return OutboxStats(pending=n, oldest_age_s=age, bytes_on_disk=self._disk_bytes(),
                               next_seq=self._read_next_seq(), durable=self._durable)

        with self._lock:
            return self._guarded(read)

    def prune(self) -> None:
        """Apply the size and age bounds now (``append`` and opening do it anyway)."""
        with self._lock:
            self._guarded(self._enforce_bounds)

    def close(self) -> None:
        """Close the database (a WAL checkpoint leaves one tidy file). Idempotent."""
        with self._lock:
            self._closed = True
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ opening and recovery

    def _connect(self, target: str) -> sqlite3.Connection:
        db = sqlite3.connect(target, timeout=10, isolation_level=None, check_same_thread=False)
        try:
            if target != ":memory:":
                mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise sqlite3.OperationalError(f"cannot use WAL journal (got {mode})")
            db.execute("PRAGMA synchronous=FULL")
            check = db.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise _Corrupt("quick_check: " + "; ".join(str(r[0]) for r in check[:3]))
            db.executescript(_SCHEMA)
            cols = [r[1] for r in db.execute("PRAGMA table_info(events)")]
            if cols == _V1_COLUMNS:  # an outbox written by agent 0.1: keep its events
                db.execute("ALTER TABLE events ADD COLUMN window_id TEXT")
                db.execute("ALTER TABLE events ADD COLUMN trusted INTEGER NOT NULL DEFAULT 1")
                cols = _COLUMNS
            if cols != _COLUMNS:
                raise _Corrupt(f"unexpected events table columns {cols}")
        except BaseException:
            db.close()
            raise
        return db

    def _open(self) -> None:
        """Open ``path``; on corruption move it aside and start over; as a last resort, RAM."""
        self._seq_mark = self._read_mark()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect(str(self.path))
        except (_Corrupt, sqlite3.DatabaseError) as e:
            if isinstance(e, _Corrupt) or _is_corruption(e):
                self._reset(e)
            else:
                self._fall_back_to_memory(e)
            return
        except OSError as e:
            self._fall_back_to_memory(e)
            return
        start = self._read_next_seq()
        if start <= self._seq_mark - SEQ_BLOCK:
            # The database is older than its mark (deleted by hand, restored from a backup):
            # never hand out a number twice, and say that events may be missing.
            self._set_next_seq(self._seq_mark)
            self._ensure_mark(self._seq_mark)
            self._append_txn([(RESET, _dumps({
                "reason": "behind", "error": f"database starts at seq {start}, below the "
                f"sequence mark {self._seq_mark}", "moved_to": None, "durable": True}))])
        self._ensure_mark(self._read_next_seq())

    def _reset(self, err: BaseException) -> None:
        """Move the unreadable database aside, start a new one, record an ``outbox_reset``."""
        salvaged = self._salvage_next_seq()
        moved = self._move_aside()
        log.error("outbox %s unreadable (%s); moved to %s, starting a new one",
                  self.path, err, moved)
        try:
            self._db = self._connect(str(self.path))
        except (sqlite3.Error, _Corrupt, OSError) as e2:
            log.error("outbox %s cannot be recreated (%s); keeping events in memory only",
                      self.path, e2)
            self._durable = False
            self._db = self._connect(":memory:")
        start = self._resume_seq(salvaged)
        self._set_next_seq(start)
        self._ensure_mark(start)
        self._append_txn([(RESET, _dumps({
            "reason": "corrupt", "error": str(err)[:200],
            "moved_to": moved.name if moved else None, "durable": self._durable,
        }))])

    def _resume_seq(self, salvaged: int) -> int:
        """Where numbering continues in a new database.

        While running, this process knows the exact next number. At start-up only the on-disk
        mark is certain to be above every number handed out (a damaged file may hide some), so
        numbering jumps there; the ``outbox_reset`` record explains the gap.
        """
        if self._seq_hint > 0:
            return self._seq_hint
        return max(self._seq_mark, salvaged, 1)

    def _fall_back_to_memory(self, err: BaseException) -> None:
        """Keep working without a file: events survive until the agent restarts."""
        log.error("outbox %s cannot be used (%s); keeping events in memory only", self.path, err)
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._durable = False
        self._db = self._connect(":memory:")
        self._set_next_seq(self._resume_seq(0))
        self._append_txn([(RESET, _dumps({
            "reason": "unusable", "error": str(err)[:200], "moved_to": None, "durable": False,
        }))])

    def _recover(self, err: sqlite3.DatabaseError, escalate: bool) -> None:
        """After a run-time database error: reset if corrupt, else reopen, else use memory."""
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        if _is_corruption(err):
            self._reset(err)
            return
        if not escalate:
            try:
                self._db = self._connect(str(self.path))
                return
            except (sqlite3.Error, _Corrupt, OSError) as e:
                if isinstance(e, _Corrupt) or _is_corruption(e):
                    self._reset(e)
                    return
        self._fall_back_to_memory(err)

    def _move_aside(self) -> Path | None:
        stamp = datetime.fromtimestamp(max(0.0, self._clock()), UTC).strftime("%Y%m%dT%H%M%SZ")
        dest = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while dest.exists():
            n += 1
            dest = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        moved: Path | None = None
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            try:
                if src.exists():
                    os.replace(src, str(dest) + suffix)
                    moved = moved or dest
            except OSError as e:
                log.error("cannot move %s aside: %s", src, e)
                with contextlib.suppress(OSError):
                    src.unlink()
        return moved

    def _salvage_next_seq(self) -> int:
        """Best effort: the next seq recorded in a damaged database, or 0."""
        best = 0
        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=1)
            try:
                for q in ("SELECT value FROM meta WHERE key = 'next_seq'",
                          "SELECT max(seq) + 1 FROM events"):
                    with contextlib.suppress(sqlite3.Error, TypeError, ValueError):
                        row = db.execute(q).fetchone()
                        if row and row[0] is not None:
                            best = max(best, int(row[0]))
            finally:
                db.close()
        except sqlite3.Error:
            pass
        return best

    def _guarded(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; after a database error recover (reset, reopen or memory) and retry."""
        if self._closed:
            raise OutboxClosed("the outbox is closed")
        for attempt in range(3):
            try:
                return fn()
            except sqlite3.DatabaseError as e:
                if attempt == 2 or not self._durable:
                    raise
                log.warning("outbox error (%s), recovering", e)
                self._recover(e, escalate=attempt == 1)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ internals

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxClosed("the outbox is closed")
        return self._db

    @contextlib.contextmanager
    def _txn(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction; ``durable=False`` commits without a disk sync (WAL with
        ``synchronous=NORMAL``: consistent after a power cut, possibly rolled back)."""
        db = self._conn()
        if not durable:
            db.execute("PRAGMA synchronous=NORMAL")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            if not durable:
                db.execute("PRAGMA synchronous=FULL")
        if durable:
            self.synced_commits += 1

    def _read_next_seq(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
        top = self._conn().execute("SELECT max(seq) FROM events").fetchone()[0]
        value = max(row[0] if row else 1, (top or 0) + 1)
        self._seq_hint = max(self._seq_hint, value)
        return int(value)

    def _set_next_seq(self, value: int) -> None:
        with self._txn() as db:
            db.execute("INSERT INTO meta (key, value) VALUES ('next_seq', ?) "
                       "ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
                       (value,))

    def _mark_path(self) -> Path:
        return self.path.with_name(self.path.name + ".seqmark")

    def _read_mark(self) -> int:
        try:
            return max(0, int(self._mark_path().read_text().strip()))
        except (OSError, ValueError):
            return 0

    def _ensure_mark(self, seq: int) -> None:
        """Make sure the on-disk high-water mark is above ``seq`` before ``seq`` is committed."""
        if seq < self._seq_mark or not self._durable:
            return
        mark = seq + SEQ_BLOCK
        target = self._mark_path()
        try:
            write_atomic(target, f"{mark}\n".encode())
            self._seq_mark = mark
        except OSError as e:  # the database is still the authority; the mark is a backstop
            log.warning("cannot write %s: %s", target, e)

    def _append_txn(self, texts: Sequence[tuple[str, str] | tuple[str, str, str | None, bool]],
                    command: tuple[str, bytes] | None = None) -> list[Record]:
        full = [(t[0], t[1], None, True) if len(t) == 2 else t for t in texts]
        first = self._read_next_seq()
        if full:
            self._ensure_mark(first + len(full) - 1)
        ts = float(self._clock())
        rows = [(first + i, uuid.uuid4().hex, ts, kind, text, wid, int(bool(trusted)))
                for i, (kind, text, wid, trusted) in enumerate(full)]
        with self._txn() as db:
            if rows:
                db.executemany("INSERT INTO events (seq, id, ts, kind, data, window_id, "
                               "trusted) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                db.execute("INSERT INTO meta (key, value) VALUES ('next_seq', ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                           (first + len(rows),))
            if command is not None:
                self._remember_command(db, command, ts)
        if rows:
            self._seq_hint = first + len(rows)
        return [Record(seq, rid, t, kind, json.loads(text), wid, bool(trusted))
                for seq, rid, t, kind, text, wid, trusted in rows]

    def _remember_command(self, db: sqlite3.Connection, command: tuple[str, bytes],
                          ts: float) -> None:
        """Inside a transaction: keep ``command``'s reply; forget those past their time."""
        db.execute("INSERT OR IGNORE INTO commands (id, ts, reply) VALUES (?, ?, ?)",
                   (command[0], ts, command[1]))
        if ts >= MIN_PLAUSIBLE_TIME:
            db.execute("DELETE FROM commands WHERE ts >= ? AND ts < ?",
                       (MIN_PLAUSIBLE_TIME, ts - COMMAND_TTL_S))
        db.execute("DELETE FROM commands WHERE id IN (SELECT id FROM commands "
                   "ORDER BY ts DESC LIMIT -1 OFFSET ?)", (MAX_COMMANDS,))

    def _enforce_bounds(self) -> None:
        db = self._conn()
        now = float(self._clock())
        if now >= MIN_PLAUSIBLE_TIME:
            # Records stamped before the clock was plausible (1970 after a boot without any
            # saved time) have no known age: only the size bound removes them.
            oldest = db.execute("SELECT min(ts) FROM events WHERE ts >= ?",
                                (MIN_PLAUSIBLE_TIME,)).fetchone()[0]
            if oldest is not None and now - oldest > self.max_age_s * 1.01:
                cutoff = now - self.max_age_s
                rows = db.execute("SELECT seq, kind, data FROM events WHERE ts >= ? AND ts < ? "
                                  "ORDER BY seq", (MIN_PLAUSIBLE_TIME, cutoff)).fetchall()
                if rows:
                    self._drop(rows, "age")
        count = db.execute("SELECT count(*) FROM events").fetchone()[0]
        if count > self.max_events:
            slack = self.max_events // 100
            keep = self.max_events - slack - 1  # leave room for the notice itself
            rows = db.execute("SELECT seq, kind, data FROM events ORDER BY seq LIMIT ?",
                              (count - keep,)).fetchall()
            self._drop(rows, "size")

    def _drop(self, rows: list[tuple[int, str, str]], reason: str) -> None:
        """Delete ``rows`` and append one ``events_dropped`` notice, in one transaction.

        Pending notices for the same reason (dropped now or not) are folded into the new one:
        their counts are added and the range grows to cover them and their own seqs, so the
        outbox never holds more than one pending notice per reason.
        """
        doomed = {seq for seq, _, _ in rows}
        count = 0
        first = math.inf
        last = 0
        for seq, kind, _ in rows:
            first = min(first, seq)
            last = max(last, seq)
            if kind != DROPPED:
                count += 1
        notices = self._conn().execute(
            "SELECT seq, data FROM events WHERE kind = ? ORDER BY seq", (DROPPED,)).fetchall()
        for seq, text in notices:
            try:
                old = json.loads(text)
                same = old["reason"] == reason
                old_count, old_first = int(old["count"]), int(old["first_seq"])
            except (ValueError, TypeError, KeyError):
                same, old_count, old_first = seq in doomed, 1, seq
            if not same and seq not in doomed:
                continue
            doomed.add(seq)
            count += old_count
            first = min(first, old_first, seq)
            last = max(last, seq)
        seq = self._read_next_seq()
        self._ensure_mark(seq)
        notice = _dumps({"count": count, "first_seq": int(first), "last_seq": last,
                         "reason": reason})
        ts = float(self._clock())
        self._seq_hint = seq + 1
        with self._txn() as db:
            db.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s in sorted(doomed)])
            db.execute("INSERT INTO events (seq, id, ts, kind, data) VALUES (?, ?, ?, ?, ?)",
                       (seq, uuid.uuid4().hex, ts, DROPPED, notice))  # no window named
            db.execute("INSERT INTO meta (key, value) VALUES ('next_seq', ?) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (seq + 1,))
        log.warning("outbox bound (%s): %d events dropped in total, seq %d..%d", reason, count,
                    int(first), last)

    def _disk_bytes(self) -> int:
        if not self._durable:
            return 0
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                total += os.stat(str(self.path) + suffix).st_size
        return total
