"""Records the console keeps and shows: what the store returns and the service hands the web.

Every time is a float of epoch seconds (UTC); :func:`district.timefmt.local` turns one into an
aware ``datetime`` in the configured zone for showing. Rows are frozen: to change something,
go through :class:`district.service.Console`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Availability = Literal["online", "offline", "never_connected"]
"""A room's link as the console sees it; ``never_connected``: in the roster, never heard from."""

WindowKind = Literal["test", "session"]
WindowStatus = Literal["scheduled", "active", "ended", "completed"]
"""``ended``: past its planned end but not yet marked complete (rooms stay locked until then,
or until their hard cap)."""

CommandStatus = Literal["queued", "sent", "accepted", "refused", "invalid"]
"""``queued``: not yet handed to the broker; ``sent``: the broker has it, no reply yet
("no answer yet"); the others are the room's reply."""

ScheduleStatus = Literal["none", "queued", "published", "applied", "rejected"]
"""Whether a room runs the schedule we published: ``none`` = no window ever for it; ``queued``
= not yet handed to the broker; ``published`` = sent, the room's state does not show it
applied; ``applied`` = its state's ``schedule.digest`` is ours; ``rejected`` = its state names
our digest as rejected."""

AlertKind = Literal["help", "device_fault", "identity_changed", "schedule_not_applied",
                    "offline_in_window"]
Result = Literal["good", "poor", "none"]
Role = Literal["operator", "viewer"]


@dataclass(frozen=True)
class EventRow:
    """One event as recorded (once per ``(site, seq)``)."""

    site: str
    seq: int
    kind: str
    ts: float | None
    """The room's time stamp (its clock; see ``clock_trusted``)."""
    received_at: float
    """The console's own receive time."""
    window_id: str | None
    clock_trusted: bool | None
    late: bool
    """Delivered from the room's backlog (envelope ``late``) rather than live."""
    first_due: float | None
    data: dict[str, Any]
    event_id: str | None = None


@dataclass(frozen=True)
class Incoming:
    """One room message, parsed, for :meth:`~district.store.base.Store.record_batch`.

    ``kind`` is ``availability`` (``value`` the word), ``state``/``info``/``host``
    (``value`` the parsed object), ``events`` (``value`` an :class:`EventRow`) or ``replies``
    (``value`` a :class:`Reply`); ``raw`` the bytes received.
    """

    kind: str
    site: str
    received_at: float
    raw: bytes
    value: Any
    retained: bool = False


@dataclass(frozen=True)
class AvailabilityRow:
    """A change of a room's availability, at the console's receive time."""

    site: str
    value: Literal["online", "offline"]
    received_at: float
    retained: bool
    id: int = 0


@dataclass(frozen=True)
class LiveRoom:
    """The latest of everything a room published (any part may be missing)."""

    site: str
    availability: Literal["online", "offline"] | None = None
    availability_at: float | None = None
    state: dict[str, Any] | None = None
    state_at: float | None = None
    info: dict[str, Any] | None = None
    info_at: float | None = None
    host: dict[str, Any] | None = None
    host_at: float | None = None
    last_seen_at: float | None = None
    """When anything (availability, state, info, host, event, reply) last arrived."""


@dataclass(frozen=True)
class SeqGaps:
    """Which of a room's events the console does not hold.

    ``holes`` are runs missing between the first and the highest seq held; ``tail`` is the run
    between the highest held and the room's reported ``last_seq`` (still coming, or lost).
    """

    site: str
    first_held: int | None
    last_held: int | None
    held: int
    last_seq: int | None
    holes: list[tuple[int, int]] = field(default_factory=list)
    tail: tuple[int, int] | None = None

    @property
    def missing(self) -> int:
        """How many events are missing in all."""
        n = sum(b - a + 1 for a, b in self.holes)
        return n + (self.tail[1] - self.tail[0] + 1 if self.tail else 0)


@dataclass(frozen=True)
class Window:
    """A test or session window run from the console."""

    id: str
    kind: WindowKind
    title: str
    start: float
    end: float
    sites: tuple[str, ...]
    created_by: str
    created_at: float
    completed_at: float | None = None
    completed_by: str | None = None

    def status(self, now: float) -> WindowStatus:
        """Where the window stands at ``now``."""
        if self.completed_at is not None:
            return "completed"
        if now < self.start:
            return "scheduled"
        return "active" if now < self.end else "ended"

    def holds(self, now: float) -> bool:
        """True while the window should keep its rooms on (started and not complete)."""
        return self.start <= now and self.completed_at is None


@dataclass(frozen=True)
class SchedulePublication:
    """One room's whole schedule as published (retained), exactly these bytes."""

    id: int
    site: str
    version: str
    digest: str
    payload: bytes
    created_at: float
    published_at: float | None


@dataclass(frozen=True)
class Reply:
    """A room's reply to a command."""

    command_id: str
    site: str
    status: Literal["accepted", "refused", "invalid"]
    reason: str
    data: dict[str, Any]
    received_at: float


@dataclass(frozen=True)
class CommandRow:
    """A command the console sent (or will send), with its reply once it came."""

    id: str
    site: str
    name: str
    args: dict[str, Any]
    sender: str
    created_at: float
    window_id: str | None = None
    note: str = ""
    """Why staff sent it (an override's reason); kept here, never sent to the room."""
    sent_at: float | None = None
    reply: Reply | None = None

    @property
    def status(self) -> CommandStatus:
        if self.reply is not None:
            return self.reply.status
        return "sent" if self.sent_at is not None else "queued"


@dataclass(frozen=True)
class RoomResult:
    """What the district technician recorded for a room in a window."""

    window_id: str
    site: str
    mic: Result | None = None
    speaker: Result | None = None
    attendance: int | None = None
    by: str = ""
    at: float = 0.0


@dataclass(frozen=True)
class Alert:
    """Something that needs a person, kept until a staff member takes it."""

    id: int
    site: str
    kind: AlertKind
    raised_at: float
    detail: dict[str, Any]
    window_id: str | None = None
    late: bool = False
    taken_by: str | None = None
    taken_at: float | None = None
    note: str = ""

    @property
    def open(self) -> bool:
        return self.taken_at is None


@dataclass(frozen=True)
class User:
    """A console user (the password hash never leaves the store)."""

    name: str
    role: Role
    created_at: float

    @property
    def may_command(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True)
class Actor:
    """Who asks the service for something: a signed-in user, or the CLI on the console box."""

    name: str
    role: Role = "operator"

    @property
    def sender(self) -> str:
        """The command envelope's ``sender`` and a schedule's ``completed.by``."""
        return f"console:{self.name}"


@dataclass(frozen=True)
class RoomView:
    """One roster room as the dashboard shows it."""

    site: str
    name: str
    group: str | None
    availability: Availability
    availability_at: float | None
    last_seen_at: float | None
    power: str | None
    """The state's ``power`` (``on``/``off``/``mixed``…), None without a state."""
    locked_by: str | None
    """The window id locking the room, per its state."""
    help_requested: float | None
    schedule: ScheduleStatus
    open_alerts: int
    missing_events: int
    live: LiveRoom


@dataclass(frozen=True)
class Change:
    """Something the dashboard should refresh (handed to :meth:`Console.subscribe` listeners).

    ``what`` is one of ``availability``, ``state``, ``info``, ``host``, ``event``, ``reply``,
    ``window``, ``schedule``, ``command``, ``alert``, ``result``, ``health`` (what
    :func:`district.health.problems` says has changed).
    """

    what: str
    site: str | None = None
    window_id: str | None = None
    ref: Any = None
