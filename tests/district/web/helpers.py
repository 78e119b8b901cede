"""The dashboard in-process: a console over a temporary SQLite store on a clock the test sets,
two staff (an operator and a viewer), and Starlette's TestClient (httpx) logged in as either.

Rooms' messages are written straight into the store the way the recorder does (and the
change announced), so pages can be checked without a broker; the live stream and the browser
test use the real recorder on a real Mosquitto.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from agent.clock import iso_ms
from district.config import parse_config
from district.model import Change, EventRow
from district.service import Console
from district.store.sqlite import SqliteStore
from district.web.app import create_app
from district.web.auth import RateLimiter
from tests.district.helpers import T0, FakeClock

OPERATOR = ("hung", "mat-khau-hung-1")
VIEWER = ("lan", "mat-khau-lan-22")
ROOMS = ["xa-a", "xa-b", "xa-c"]
GROUPS = {"xa-a": "Cụm Bắc", "xa-b": "Cụm Bắc", "xa-c": "Cụm Nam"}


class Monotonic:
    """A monotonic clock the rate-limit tests move."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def config_text(db: Path, rooms: list[str], groups: dict[str, str], extra: str = "",
                contacts: dict[str, list[dict[str, str]]] | None = None) -> str:
    """The console's config: the rooms (``contacts``: site → its roster contacts)."""
    lines = ["organisation:",
             '  name: {vi: "Trung tâm Thử nghiệm tỉnh", en: "Provincial Test Centre"}',
             '  level: {vi: "tỉnh", en: "province"}',
             f"database: {{path: '{db}'}}", "rooms:"]
    for r in rooms:
        g = f", group: '{groups[r]}'" if r in groups else ""
        if contacts and r in contacts:
            g += f", contacts: {json.dumps(contacts[r], ensure_ascii=False)}"
        lines.append(f"  - {{id: {r}, name: 'UBND xã {r[3:].upper()}'{g}}}")
    return "\n".join(lines) + "\n" + extra


@dataclass
class Web:
    """One in-process dashboard."""

    console: Console
    store: SqliteStore
    clock: FakeClock
    mono: Monotonic
    app: Any
    seq: dict[str, int]

    def client(self) -> TestClient:
        return TestClient(self.app, base_url="http://testserver", follow_redirects=False)

    # -- rooms speaking, straight into the store ----------------------------------------------
    def online(self, site: str, value: str = "online") -> None:
        self.store.record_availability(site, value, self.clock(), False)
        self.console.notify(Change("availability", site=site))

    def state(self, site: str, **changes: Any) -> dict[str, Any]:
        state: dict[str, Any] = {
            "api": "2.0", "site": site, "power": "on",
            "devices": {"codec": {"power": "on", "health": "ok", "reason": "",
                                  "reported_power": "on", "in_call": False, "model": "Room Kit",
                                  "serial": "FOC1"},
                        "amplifier": {"power": "on", "health": "ok", "reason": ""}},
            "sequence": None, "lock": {"locked": False}, "window": None, "next_window": None,
            "schedule": {"version": None, "digest": None, "rejected": None},
            "operator": {"check": None, "last_check_in": None, "last_ack": None,
                         "help_requested": None},
            "led": "idle", "link": {"since": None, "reconnects": 0},
            "clock": {"synced": True, "trusted": True}, "last_seq": self.seq.get(site, 0),
            "ts": iso_ms(self.clock())}
        state.update(changes)
        raw = json.dumps(state).encode()
        self.store.record_retained(site, "state", state, raw, self.clock())
        self.console.notify(Change("state", site=site))
        return state

    def event(self, site: str, kind: str, data: dict[str, Any] | None = None,
              window_id: str | None = None, at: float | None = None) -> EventRow:
        self.seq[site] = self.seq.get(site, 0) + 1
        ts = self.clock() if at is None else at
        ev = EventRow(site, self.seq[site], kind, ts, self.clock(), window_id, True, False, None,
                      data or {})
        self.store.record_event(ev, b"{}")
        from district.alerts import event_alerts

        self.console.notify(Change("event", site=site, window_id=window_id, ref=ev.seq))
        for a in event_alerts(self.store, ev, self.clock()):
            self.console.notify(Change("alert", site=site, ref=a.id))
        return ev


@contextmanager
def web(tmp: Path, rooms: list[str] | None = None, groups: dict[str, str] | None = None,
        extra: str = "", coalesce_s: float = 0.05,
        contacts: dict[str, list[dict[str, str]]] | None = None) -> Iterator[Web]:
    """A dashboard over a fresh store with the two staff users (``contacts``: site → the
    roster's contacts of that room)."""
    db = tmp / "console.db"
    cfg = parse_config(config_text(db, rooms or ROOMS, GROUPS if groups is None else groups,
                                   extra, contacts))
    store = SqliteStore(db)
    clock = FakeClock(T0)
    console = Console(cfg, store, clock=clock)
    console.add_user(OPERATOR[0], "operator", OPERATOR[1])
    console.add_user(VIEWER[0], "viewer", VIEWER[1])
    mono = Monotonic()
    app = create_app(console, b"k" * 64, limiter=RateLimiter(5, 60.0, clock=mono),
                     coalesce_s=coalesce_s)
    try:
        yield Web(console, store, clock, mono, app, {})
    finally:
        store.close()


CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')


def login_form(client: TestClient) -> str:
    """GET the log-in page (sets the pre-session cookie); its CSRF token."""
    r = client.get("/login")
    assert r.status_code == 200, r.text
    m = CSRF_INPUT.search(r.text)
    assert m, "no CSRF token in the log-in form"
    return m.group(1)


def login(client: TestClient, user: tuple[str, str]) -> str:
    """Log in; the session's CSRF token (from the page's forms)."""
    token = login_form(client)
    r = client.post("/login", data={"user": user[0], "password": user[1], "csrf": token})
    assert r.status_code == 303, r.text
    page = client.get("/")
    assert page.status_code == 200, page.text
    m = CSRF_INPUT.search(page.text)
    assert m, "no CSRF token on the rooms page"
    return m.group(1)


def hx(token: str) -> dict[str, str]:
    """Headers of an htmx POST."""
    return {"HX-Request": "true", "X-CSRF-Token": token}
