"""Is the console recording? Each recorder process's heartbeat, and what is wrong with it.

Every recorder process that records by part (one process: part 1 of 1; with
``broker.share_group`` only the primary, a member having no part of its own) writes a
:class:`Beat` to the store's ``meta`` table every :data:`BEAT_S` seconds from its writer
thread, through the writer's own connection: the time, its broker link (up or down, since
when, and why it is down), and the configuration it records with (how many parts, a digest of
the roster). A beat proves the writer itself is alive: a writer stuck on the database stops
beating as surely as a killed process. A process writes a first beat as it starts (before its
dashboard listens) and a last one that says so when it stops cleanly.

:func:`problems` reads every part's beat and says what is wrong: a part that has stopped (its
last beat older than :data:`STALE_S`, or a clean stop), a part never started, a part whose
broker link is down (or that has not reached the broker :data:`STALE_S` after starting), a
part that runs with another roster or another number of parts, or one beyond the reader's
``parts`` still running (rooms recorded twice or by nobody). The dashboard shows them above
the alerts on every page (``district/web``), in its own words; without them, a stopped part
would show only as its rooms' tiles standing still.

The beats carry the writing host's clock: the hosts of a console's parts must keep their
clocks together (NTP), or a part more than :data:`STALE_S` behind is taken for stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

from district.config import ConsoleConfig, part_of
from district.store.base import Store

BEAT_PREFIX = "recorder_part:"
BEAT_S = 5.0
"""How often a recorder process beats."""
STALE_S = 30.0
"""A part whose last beat is older than this has stopped; one that has not reached its broker
this long after starting is reported as not connected."""
MAX_PARTS = 64
"""``broker.parts`` at most (``district/config.py``): beats beyond the reader's parts are
looked for up to here."""

ProblemKind = Literal["never_started", "stopped", "link_down", "not_connected",
                      "config_differs"]


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
    """When the broker link last went up (``connected``) or down (not); None: it has not
    been up since the process started."""
    running: bool = True
    """False in the last beat of a process that stopped cleanly."""
    started_at: float | None = None
    link_detail: str = ""
    """Why the link is down, as the broker or paho said (a refusal's reason)."""

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
                       running=bool(d.get("running", True)),
                       started_at=None if d.get("started_at") is None
                       else float(d["started_at"]),
                       link_detail=str(d.get("link_detail") or "")[:200])
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


@dataclass(frozen=True)
class Problem:
    """Something wrong with the recording, for the technician (words: ``district/web``)."""

    kind: ProblemKind
    part: int
    parts: int
    """The reader's ``broker.parts``."""
    rooms: int
    """Rooms of that part (the reader's configuration, or the part's own beat for a part
    beyond it): whose live view stands still or is recorded twice."""
    since: float | None
    """When it began, as far as the beats tell (None: unknown)."""
    detail: str = ""
    """Why the link is down, as the broker or paho said."""


_shape: tuple[ConsoleConfig, str, list[int]] | None = None


def _roster_shape(cfg: ConsoleConfig) -> tuple[str, list[int]]:
    """The roster's digest and each part's number of rooms (kept for the last ``cfg``: a
    page at 10,000 rooms does not hash the roster again)."""
    global _shape
    if _shape is None or _shape[0] is not cfg:
        sites = cfg.room_ids()
        counts = [0] * cfg.broker.parts
        for s in sites:
            counts[part_of(s, cfg.broker.parts) - 1] += 1
        _shape = (cfg, roster_digest(sites), counts)
    return _shape[1], _shape[2]


def my_beat(cfg: ConsoleConfig, at: float, connected: bool, link_since: float | None,
            running: bool = True, started_at: float | None = None,
            link_detail: str = "") -> Beat:
    """The beat of the process configured by ``cfg``."""
    digest, counts = _roster_shape(cfg)
    return Beat(part=cfg.broker.part, parts=cfg.broker.parts, roster=digest,
                rooms=counts[cfg.broker.part - 1], at=at, connected=connected,
                link_since=link_since, running=running, started_at=started_at,
                link_detail=link_detail)


def problems(cfg: ConsoleConfig, store: Store, now: float,
             stale_s: float = STALE_S) -> list[Problem]:
    """What is wrong with the recording of ``cfg``'s console, part by part."""
    parts = cfg.broker.parts
    digest, counts = _roster_shape(cfg)
    beats = {int(k[len(BEAT_PREFIX):]): Beat.loads(v)
             for k, v in store.meta_prefixed(BEAT_PREFIX).items()
             if k[len(BEAT_PREFIX):].isdigit()}
    out: list[Problem] = []
    for part in range(1, parts + 1):
        beat, n = beats.get(part), counts[part - 1]
        if beat is None:
            out.append(Problem("never_started", part, parts, n, None))
        elif not beat.running or now - beat.at > stale_s:
            out.append(Problem("stopped", part, parts, n, beat.at))
        elif beat.parts != parts or beat.roster != digest:
            out.append(Problem("config_differs", part, parts, n, None))
        elif not beat.connected and beat.link_since is not None:
            out.append(Problem("link_down", part, parts, n, beat.link_since,
                               beat.link_detail))
        elif not beat.connected and now - (beat.started_at or beat.at) > stale_s:
            out.append(Problem("not_connected", part, parts, n, beat.started_at,
                               beat.link_detail))
    for part in sorted(p for p in beats if p > parts):
        beat = beats[part]
        if beat is not None and beat.running and now - beat.at <= stale_s:
            out.append(Problem("config_differs", part, parts, beat.rooms, None))
    return out
