"""The console's storage interface.

:class:`Store` is all the recorder, the service and the reports need; ``district/store/
sqlite.py`` implements it on SQLite (WAL). The SQL is kept portable (``INSERT … ON CONFLICT DO
NOTHING``, window functions, no SQLite-only types), so a PostgreSQL backend is a second
implementation of this protocol, not a rewrite.

Rules every backend keeps:

* events are unique by ``(site, seq)``: :meth:`Store.record_event` of a seq already held
  changes nothing and returns False (a replay, a redelivery after a restart);
* availability, state, info and host are stored when they *change* (a retained message seen
  again after a reconnect is not a change), always with the console's receive time;
* writes from one call are one transaction: after a crash either all of it is there or none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

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


class StoreError(RuntimeError):
    """The database cannot be opened or used (a clear message, no SQL)."""


class Store(Protocol):
    """Where the console keeps what it records and what staff do."""

    def close(self) -> None:
        """Release the database."""

    def second_connection(self) -> Store:
        """The same database through a connection of its own, for another thread (the
        recorder's writer stores while the dispatcher and the dashboard use this one, neither
        waiting for the other's queries). The caller closes it."""

    def transaction(self) -> AbstractContextManager[None]:
        """One transaction around several calls (nested calls join it): the recorder writes a
        batch of messages, then acknowledges them to the broker."""

    # -- small settings kept with the data (recorder session, heartbeat) -------------------
    def meta_get(self, key: str) -> str | None:
        """A value kept under ``key``, or None."""

    def meta_set(self, key: str, value: str) -> None:
        """Keep ``value`` under ``key``."""

    def meta_prefixed(self, prefix: str) -> dict[str, str]:
        """Every value kept under a key that begins with ``prefix``, by key."""

    # -- recording (the recorder's thread) ----------------------------------------------------
    def record_availability(self, site: str, value: str, received_at: float,
                            retained: bool) -> bool:
        """Store an availability message if it changes the room's availability; True if so."""

    def record_retained(self, site: str, kind: str, payload: dict[str, Any], raw: bytes,
                        received_at: float) -> bool:
        """Store a ``state``, ``info`` or ``host`` payload if it differs from the latest one
        held for the room; True if it was new. The room's live view is updated either way."""

    def record_event(self, event: EventRow, raw: bytes) -> bool:
        """Store an event once per ``(site, seq)``; True if it was new, False for a duplicate."""

    def record_reply(self, reply: Reply, raw: bytes) -> bool:
        """Store a room's reply (the first per command id); True if it was new."""

    def record_batch(self, items: Sequence[Incoming]) -> list[bool]:
        """Store many room messages in one transaction, with the same rules and answers as
        the ``record_*`` call for each, in order (a second ``online`` in the batch is no
        change, an event's second copy no new event); True for each that was new. A few
        statements per batch, not one or two per message."""

    def record_rejected(self, site: str | None, topic: str, raw: bytes, received_at: float,
                        problem: str) -> None:
        """Keep a message that could not be used, with why (nothing received is thrown away)."""

    def rejected(self, limit: int = 100) -> list[tuple[str | None, str, float, str]]:
        """The newest messages kept aside: ``(site, topic, received_at, problem)``."""

    def record_console_link(self, up: bool, at: float, detail: str = "") -> None:
        """The console's own broker connection came up or went down."""

    # -- reading what rooms said ----------------------------------------------------------------
    def live(self, site: str) -> LiveRoom:
        """The latest of everything the room published (empty if never heard from)."""

    def live_all(self, info: bool = True) -> dict[str, LiveRoom]:
        """:meth:`live` for every room ever heard from (``info=False``: without ``info`` and
        ``host``, for a status of every room)."""

    def live_many(self, sites: Sequence[str]) -> dict[str, LiveRoom]:
        """:meth:`live` for these rooms (those ever heard from), in one query per 500."""

    def live_stamps(self) -> dict[str, tuple[Any, ...]]:
        """For every room ever heard from, what changes whenever its :meth:`live` view
        (without ``info`` and ``host``) does — its availability and when, when its state
        came and its length, when it was last heard — without reading the state itself."""

    def availability_history(self, site: str, until: float | None = None
                             ) -> list[AvailabilityRow]:
        """The room's availability changes in receive order (up to ``until``)."""

    def last_availability_ids(self) -> dict[str, int]:
        """Site → the id of its latest availability change (rooms ever heard from)."""

    def seq_summaries(self, sites: Sequence[str] | None = None
                      ) -> dict[str, tuple[int, int, int]]:
        """Site → ``(lowest seq, highest seq, events held)`` for every room (or these) with
        events: what :meth:`seq_gaps` counts, for many rooms in one query."""

    def states(self, site: str, since: float | None = None, until: float | None = None
               ) -> list[tuple[float, dict[str, Any]]]:
        """``(received_at, state)`` for each state change the console received."""

    def events(self, site: str | None = None, *, kinds: Sequence[str] | None = None,
               since: float | None = None, until: float | None = None,
               window_id: str | None = None, limit: int | None = None,
               newest_first: bool = False) -> list[EventRow]:
        """Events filtered by room, kinds, the room's time stamp range and window id,
        ordered by ``(ts, seq)``."""

    def window_evidence(self, site: str, window_id: str, since: float, until: float
                        ) -> list[EventRow]:
        """The room's events that name the window, or whose time stamp is in
        ``[since, until]``, ordered by ``(ts, seq)`` (what a report reads)."""

    def seq_gaps(self, site: str) -> SeqGaps:
        """Which of the room's events are missing (holes in the seqs held, and the tail up to
        the ``last_seq`` its latest state reports)."""

    # -- windows and schedules ------------------------------------------------------------------
    def add_window(self, window: Window) -> None:
        """Store a new window with its rooms."""

    def window(self, window_id: str) -> Window | None:
        """The window, or None."""

    def windows(self, *, since: float | None = None, until: float | None = None,
                site: str | None = None) -> list[Window]:
        """Windows overlapping ``[since, until]`` (by start/end), optionally those of one room,
        by start time."""

    def update_window(self, window_id: str, **fields: Any) -> Window:
        """Change ``start``, ``end``, ``title``, ``completed_at`` or ``completed_by``."""

    def add_schedule(self, site: str, version: str, digest: str, payload: bytes,
                     created_at: float) -> SchedulePublication:
        """Keep the schedule to publish for a room (the newest one wins)."""

    def latest_schedule(self, site: str) -> SchedulePublication | None:
        """The newest schedule made for the room, published or not."""

    def latest_schedules(self, payload: bool = True) -> dict[str, SchedulePublication]:
        """:meth:`latest_schedule` for every room that has one (``payload=False``: without
        the bytes, an empty payload, for a status of every room)."""

    def schedule_counts(self) -> dict[str, int]:
        """:meth:`schedule_count` for every room that has schedules."""

    def unpublished_schedules(self) -> dict[str, SchedulePublication]:
        """The rooms whose newest schedule is not yet published: site → that schedule."""

    def mark_schedule_published(self, schedule_id: int, at: float) -> None:
        """The broker acknowledged this schedule."""

    def mark_schedules_published(self, schedule_ids: Sequence[int], at: float) -> None:
        """The broker acknowledged these schedules (one transaction)."""

    def schedule_count(self, site: str) -> int:
        """How many schedules were ever made for the room (for version numbers)."""

    # -- commands ---------------------------------------------------------------------------------
    def add_commands(self, commands: Iterable[CommandRow]) -> None:
        """Queue commands to send (ids are fresh; one transaction)."""

    def unsent_commands(self) -> list[CommandRow]:
        """Commands not yet handed to the broker, oldest first."""

    def mark_command_sent(self, command_id: str, at: float) -> None:
        """The broker acknowledged this command."""

    def mark_commands_sent(self, command_ids: Sequence[str], at: float) -> None:
        """The broker acknowledged these commands (one transaction)."""

    def command(self, command_id: str) -> CommandRow | None:
        """One command with its reply (if any)."""

    def commands(self, *, site: str | None = None, window_id: str | None = None,
                 names: Sequence[str] | None = None, since: float | None = None,
                 limit: int | None = None) -> list[CommandRow]:
        """Commands with their replies, newest first."""

    # -- results --------------------------------------------------------------------------------
    def set_result(self, window_id: str, site: str, *, mic: Result | None,
                   speaker: Result | None, attendance: int | None, by: str,
                   at: float) -> RoomResult:
        """Record (or replace) the technician's result for a room in a window; a field given as
        None keeps what was recorded before."""

    def results(self, window_id: str) -> dict[str, RoomResult]:
        """Site → result for a window."""

    # -- alerts ---------------------------------------------------------------------------------
    def raise_alert(self, key: str, site: str, kind: AlertKind, raised_at: float,
                    detail: dict[str, Any], window_id: str | None = None,
                    late: bool = False) -> Alert | None:
        """Raise an alert once per ``key``; None if that key was raised before."""

    def open_alert_counts(self) -> dict[str, int]:
        """Site → how many of its alerts are open (rooms with any)."""

    def alert_keys(self, window_ids: Sequence[str]) -> set[str]:
        """The keys of every alert raised for these windows (taken or not)."""

    def take_alert(self, alert_id: int, by: str, at: float, note: str = "") -> Alert | None:
        """A staff member takes the alert; None if there is no such alert. Taking a taken
        alert changes nothing and returns it as it was."""

    def alerts(self, *, open_only: bool = True, site: str | None = None,
               kinds: Sequence[str] | None = None, limit: int | None = None) -> list[Alert]:
        """Alerts, newest first."""

    # -- users ----------------------------------------------------------------------------------
    def add_user(self, name: str, role: Role, password_hash: str, at: float) -> User:
        """Create a user; ``StoreError`` if the name is taken."""

    def remove_user(self, name: str) -> bool:
        """Delete a user; False if there was none."""

    def set_user(self, name: str, *, role: Role | None = None,
                 password_hash: str | None = None) -> bool:
        """Change a user's role or password hash; False if there is no such user."""

    def user(self, name: str) -> tuple[User, str] | None:
        """The user and its password hash (for the service to verify), or None."""

    def users(self) -> list[User]:
        """Every user, by name."""
