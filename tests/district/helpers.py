"""A console (store, service, recorder) against a real Mosquitto, on a clock the test moves.

Waits are on the console's own change notifications (or a marker event that arrives after
what the test sent, since one client's messages on one topic arrive in order), never on time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from broker.local import LocalBroker
from district.config import ConsoleConfig, parse_config
from district.model import Actor, Change
from district.recorder import Recorder
from district.service import Console
from district.store import is_postgres_url, open_store
from tests.district.rooms import ScriptedRoom


def _sqlite_file(tmp: Path) -> Path | str:
    return tmp / "console.db"


DATABASE: Callable[[Path], Path | str] = _sqlite_file
"""Where a rig keeps its data: a SQLite file in the test's directory, or (set by
``tests/district/conftest.py`` for the PostgreSQL runs) a fresh PostgreSQL database's URL."""

T0 = 1_795_000_000.0  # 2026-11-18T...Z; windows start an hour after
ACTOR = Actor("hung")
TIMEOUT = 10.0


class FakeClock:
    """A settable clock shared by the console and the scripted rooms."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def set(self, t: float) -> float:
        self.now = t
        return t


def config_yaml(broker_port: int, db: Path | str, rooms: list[str],
                groups: dict[str, str] | None = None, extra: str = "") -> str:
    groups = groups or {}
    lines = [
        "organisation:",
        '  name: {vi: "Trung tâm Thử", en: "Test Centre"}',
        '  level: {vi: "tỉnh", en: "province"}',
        f"broker: {{url: 'mqtt://127.0.0.1:{broker_port}', keepalive_s: 5}}",
        f"database: {{url: '{db}'}}" if is_postgres_url(db) else f"database: {{path: '{db}'}}",
        "rooms:",
    ]
    for r in rooms:
        g = f", group: '{groups[r]}'" if r in groups else ""
        lines.append(f"  - {{id: {r}, name: 'Xã {r}'{g}}}")
    return "\n".join(lines) + "\n" + extra


class ConsoleRig:
    """Store + service + recorder for one test; rooms are made with :meth:`room`."""

    def __init__(self, broker: LocalBroker, tmp: Path, rooms: list[str],
                 clock: FakeClock | None = None, groups: dict[str, str] | None = None,
                 client_id: str = "diemcau-console-test") -> None:
        self.broker = broker
        self.tmp = tmp
        self.clock = clock or FakeClock()
        self.db = DATABASE(tmp)
        self.cfg: ConsoleConfig = parse_config(config_yaml(broker.port, self.db, rooms, groups))
        self.client_id = client_id
        self.store = open_store(self.cfg.database)
        self.console = Console(self.cfg, self.store, clock=self.clock)
        self._cv = threading.Condition()
        self.changes: list[Change] = []
        self.console.subscribe(self._on_change)
        self.recorder: Recorder | None = None
        self.rooms: dict[str, ScriptedRoom] = {}

    def _on_change(self, change: Change) -> None:
        with self._cv:
            self.changes.append(change)
            self._cv.notify_all()

    # -- recorder ------------------------------------------------------------------------
    def start(self) -> Recorder:
        self.recorder = Recorder(self.cfg, self.console, clock=self.clock,
                                 client_id=self.client_id, tick_s=3600)
        self.recorder.start()
        assert self.recorder.connected.wait(TIMEOUT), "console did not connect"
        assert self.recorder.idle(TIMEOUT), "console did not store its connection"
        return self.recorder

    def stop(self) -> None:
        if self.recorder is not None:
            self.recorder.stop()
            self.recorder = None

    def restart(self) -> Recorder:
        self.stop()
        return self.start()

    def wait(self, pred: Callable[[], bool], what: str = "condition",
             timeout: float = TIMEOUT) -> None:
        """Wait until ``pred()`` holds, re-checking at every change the console makes."""
        with self._cv:
            ok = self._cv.wait_for(pred, timeout)
        assert ok, f"timed out waiting for {what}"

    def wait_seq(self, site: str, seq: int) -> None:
        """Wait until the room's event ``seq`` is stored."""
        self.wait(lambda: any(e.seq == seq for e in self.store.events(site)),
                  f"{site} event {seq}")

    def wait_availability(self, site: str, value: str) -> None:
        self.wait(lambda: self.store.live(site).availability == value, f"{site} {value}")

    # -- rooms ---------------------------------------------------------------------------
    def room(self, site: str, **kw: Any) -> ScriptedRoom:
        r = ScriptedRoom(site, "127.0.0.1", self.broker.port, self.clock, **kw)
        self.rooms[site] = r
        return r

    def online(self, site: str, at: float, **kw: Any) -> ScriptedRoom:
        """A room that connects at ``at`` (the console has recorded it online)."""
        self.clock.set(at)
        r = self.rooms.get(site) or self.room(site, **kw)
        r.connect()
        self.wait_availability(site, "online")
        return r

    def send(self, site: str, kind: str, data: dict[str, Any] | None = None, *, at: float,
             window_id: str | None = None) -> dict[str, Any]:
        """The room makes an event at ``at``; if its link is up, wait until it is stored."""
        self.clock.set(at)
        r = self.rooms[site]
        env = r.event(kind, data, ts=at, window_id=window_id)
        if r.connected:
            self.wait_seq(site, env["seq"])
        return env

    def close(self) -> None:
        for r in self.rooms.values():
            r.close()
        self.stop()
        self.store.close()


@contextmanager
def rig(broker: LocalBroker, tmp: Path, rooms: list[str], **kw: Any) -> Iterator[ConsoleRig]:
    r = ConsoleRig(broker, tmp, rooms, **kw)
    try:
        r.start()
        yield r
    finally:
        r.close()
