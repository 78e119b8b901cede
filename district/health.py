"""Is the console recording? Each recorder process's heartbeat, and what the technician is told.

Every recorder process that records by part (one process: part 1 of 1) writes a
:class:`Beat` to the store's ``meta`` table every few seconds from its writer thread, through
the writer's own connection: the time, whether its broker link is up (and since when), and
the configuration it records with (how many parts, a digest of the roster). A beat proves the
writer itself is alive: a writer stuck on the database stops beating as surely as a killed
process. A process that stops cleanly writes a last beat that says so.

:func:`problems` reads the beats of parts ``1..parts`` of the reader's configuration and says
what is wrong: a part that has stopped (its last beat older than :data:`STALE_S`, or a clean
stop), a part never started, a part whose broker link is down, a part that runs with another
roster or another number of parts (rooms recorded twice or by nobody). The dashboard shows
them above the alerts on every page; without them, a stopped part would show only as its
rooms' tiles standing still.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from district.config import ConsoleConfig, Lang, part_of
from district.store.base import Store
from district.timefmt import iso_local

BEAT_PREFIX = "recorder_part:"
STALE_S = 30.0
"""A part whose last beat is older than this has stopped (it beats every 5 s)."""

ProblemKind = Literal["never_started", "stopped", "link_down", "config_differs"]


def beat_key(part: int) -> str:
    """The ``meta`` key of part ``part``'s heartbeat."""
    return f"{BEAT_PREFIX}{part}"


def roster_digest(site_ids: Iterable[str]) -> str:
    """A short digest of the roster's site ids (their order does not matter)."""
    return hashlib.sha256("\n".join(sorted(site_ids)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Beat:
    """One recorder process's heartbeat."""

    part: int
    parts: int
    roster: str
    """:func:`roster_digest` of the roster the process was started with."""
    rooms: int
    """How many rooms the process records (its part of the roster)."""
    at: float
    connected: bool
    link_since: float | None
    """When the broker link last went up (``connected``) or down (not), if it ever did."""
    running: bool = True
    """False in the last beat of a process that stopped cleanly."""

    def dumps(self) -> str:
        """The beat as stored."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str) -> Beat | None:
        """A stored beat; None for one that cannot be read (it counts as never started)."""
        try:
            d = json.loads(raw)
            return cls(part=int(d["part"]), parts=int(d["parts"]), roster=str(d["roster"]),
                       rooms=int(d["rooms"]), at=float(d["at"]),
                       connected=bool(d["connected"]),
                       link_since=None if d.get("link_since") is None
                       else float(d["link_since"]),
                       running=bool(d.get("running", True)))
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class Problem:
    """Something wrong with the recording, for the technician."""

    kind: ProblemKind
    part: int
    parts: int
    rooms: int
    """Rooms of that part (the reader's configuration): whose live view stands still."""
    since: float | None
    """When it began, as far as the beats tell (None: unknown)."""

    def json(self, zone: ZoneInfo, lang: Lang, when: Callable[[float], str]) -> dict[str, Any]:
        """The problem for ``/rooms.json``: its fields, ``since`` in ``zone``, and its
        sentence in ``lang``."""
        return {"kind": self.kind, "part": self.part, "parts": self.parts, "rooms": self.rooms,
                "since": iso_local(self.since, zone), "text": self.text(lang, when)}

    def text(self, lang: Lang, when: Callable[[float], str]) -> str:
        """One sentence in ``lang``; ``when`` writes a time for people (the site's zone)."""
        at = when(self.since) if self.since is not None else None
        if self.parts == 1:
            who_vi, who_en = "Bộ ghi của bảng điều khiển", "The console's recorder"
        else:
            n = f"{self.rooms:,}"
            who_vi = f"Phần ghi {self.part}/{self.parts} ({n.replace(',', '.')} điểm cầu)"
            who_en = f"Recorder part {self.part} of {self.parts} ({n} rooms)"
        stale_vi = "trạng thái các điểm cầu này có thể đã cũ"
        stale_en = "these rooms' status may be out of date"
        if self.kind == "never_started":
            vi = f"{who_vi} chưa chạy: {stale_vi}."
            en = f"{who_en} has not started: {stale_en}."
        elif self.kind == "stopped":
            vi = f"{who_vi} đã ngừng ghi từ {at}: {stale_vi}."
            en = f"{who_en} has stopped recording since {at}: {stale_en}."
        elif self.kind == "link_down":
            since_vi = f" từ {at}" if at else ""
            since_en = f" since {at}" if at else ""
            vi = f"{who_vi} mất kết nối tới máy chủ MQTT{since_vi}: {stale_vi}."
            en = f"{who_en} has lost its MQTT broker link{since_en}: {stale_en}."
        else:
            vi = (f"{who_vi} chạy với cấu hình khác (số phần hoặc danh sách điểm cầu): có "
                  "điểm cầu không được ghi hoặc bị ghi hai lần; hãy cập nhật cấu hình và "
                  "khởi động lại phần này.")
            en = (f"{who_en} runs with another configuration (number of parts or roster): "
                  "some rooms are recorded twice or not at all; update its configuration and "
                  "restart it.")
        return en if lang == "en" else vi


def my_beat(cfg: ConsoleConfig, at: float, connected: bool, link_since: float | None,
            running: bool = True) -> Beat:
    """The beat of the process configured by ``cfg``."""
    b = cfg.broker
    sites = cfg.room_ids()
    return Beat(part=b.part, parts=b.parts, roster=roster_digest(sites),
                rooms=len(b.my_rooms(sites)), at=at, connected=connected,
                link_since=link_since, running=running)


def problems(cfg: ConsoleConfig, store: Store, now: float,
             stale_s: float = STALE_S) -> list[Problem]:
    """What is wrong with the recording of ``cfg``'s console, part by part."""
    b = cfg.broker
    sites = cfg.room_ids()
    digest = roster_digest(sites)
    counts = [0] * b.parts
    for s in sites:
        counts[part_of(s, b.parts) - 1] += 1
    out: list[Problem] = []
    for part in range(1, b.parts + 1):
        raw = store.meta_get(beat_key(part))
        beat = Beat.loads(raw) if raw is not None else None
        n = counts[part - 1]
        if beat is None:
            out.append(Problem("never_started", part, b.parts, n, None))
        elif not beat.running or now - beat.at > stale_s:
            out.append(Problem("stopped", part, b.parts, n, beat.at))
        elif beat.parts != b.parts or beat.roster != digest:
            out.append(Problem("config_differs", part, b.parts, n, None))
        elif not beat.connected:
            out.append(Problem("link_down", part, b.parts, n, beat.link_since))
    return out
