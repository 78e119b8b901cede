"""The rooms page from the tiles kept in memory: a page view reads only the rooms that changed
(not every room of the roster), whoever wrote them, and it answers what a read of every room
answers — the same rooms in the same order, the same counts — on a roster with every kind of
problem, before and after rooms change."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from district.model import Actor, Change
from district.web import views
from district.web.live import Hub
from tests.district.web.helpers import Web, web

N = 120
ROOMS = [f"xa-{i:03d}" for i in range(N)]
GROUPS = {s: f"Cụm {i % 4}" for i, s in enumerate(ROOMS)}
CONTACTS = {s: [{"name": f"Cán bộ {i}", "role": "văn phòng"},
                {"name": f"Kỹ thuật {i}", "phone": f"0205 38{i:05d}"}]
            for i, s in enumerate(ROOMS) if i % 4 == 1}
"""Whom to phone: a quarter of the rooms have a roster contact with a phone."""


def _full_read(roster: views.Roster, q: views.Query) -> views.Page:
    """The rooms page as it was made before tiles were kept: every room's tile built."""
    return views.page_of(roster, views.tiles(roster), q)


QUERIES = [views.Query(), views.Query(per_page=7), views.Query(per_page=7, page=3),
           views.Query(sort="name", per_page=25, page=2), views.Query(sort="last_seen"),
           views.Query(sort="roster", per_page=50, page=2), views.Query(group="Cụm 1"),
           views.Query(q="XA-01"), views.Query(q="0"), views.Query(page=99, per_page=10),
           *(views.Query(problem=p, per_page=15) for p in views.PROBLEMS)]


def _mixed(w: Web) -> str:
    """Rooms never connected, offline, online with alerts, faults, help, locks, a window
    whose schedules are queued (a problem for the online rooms), a window on now in which
    some rooms refused a switch-off (and refusals of a window that is not on); its id."""
    for i, s in enumerate(ROOMS):
        if i % 9 == 0:
            continue  # never connected
        w.online(s, "offline" if i % 8 == 0 else "online")
        changes: dict[str, Any] = {}
        if i % 5 == 0:
            changes["lock"] = {"locked": True, "window_id": "w-1", "kind": "test"}
        if i % 7 == 0:
            changes["operator"] = {"check": None, "last_check_in": None, "last_ack": None,
                                   "help_requested": "2026-03-02T08:00:00.000+07:00"}
        if i % 11 == 0:
            changes["devices"] = {"codec": {"power": "on", "health": "fault", "reason": "x"}}
        w.state(s, **changes)
        if i % 6 == 0:
            w.clock.set(w.clock() + 1)  # last_seen differs between rooms
        if i % 13 == 0:
            w.store.raise_alert(f"k-{s}", s, "offline", w.clock(), {})
            w.console.notify(Change("alert", site=s))
    w.console.create_window(Actor("hung", "operator"), kind="test", title="Kiểm tra",
                            start=w.clock() + 7200, end=w.clock() + 9000,
                            rooms=ROOMS[::3])
    on = w.console.create_window(Actor("hung", "operator"), kind="test", title="Đang diễn ra",
                                 start=w.clock() + 60, end=w.clock() + 3600, rooms=ROOMS)
    for i, s in enumerate(ROOMS):
        if i % 10 == 3:
            w.event(s, "shutdown_refused", {"source": "button"}, window_id=on.id)
        if i % 15 == 4:
            w.event(s, "shutdown_refused", {"source": "cli"}, window_id="t-khac")
    return on.id


def _same(roster: views.Roster) -> None:
    """The kept tiles' pages are the pages of tiles built fresh (every field: the refusals
    in the windows on now and whom to phone too)."""
    for q in QUERIES:
        got, want = views.rooms_page(roster, q), _full_read(roster, q)
        assert [t.site for t in got.items] == [t.site for t in want.items], q
        assert got.items == want.items, q
        assert (got.total, got.matched, got.page, got.pages, got.counts) == \
            (want.total, want.matched, want.page, want.pages, want.counts), q


def test_the_page_answers_what_a_read_of_every_room_answers(tmp_path: Path) -> None:
    with web(tmp_path, ROOMS, GROUPS, contacts=CONTACTS) as w:
        roster = views.Roster(w.console)
        _same(roster)  # an empty store
        on = _mixed(w)
        _same(roster)
        assert views.rooms_page(roster, views.Query()).counts["problems"] > 0
        kept = {t.site: t for t in roster.kept.current()}
        assert {s for s, t in kept.items() if t.refused} == set(ROOMS[3::10])
        assert {s for s, t in kept.items() if t.contact} == set(CONTACTS)
        assert kept[ROOMS[1]].contact is not None
        assert kept[ROOMS[1]].contact.phone == "0205 3800001"
        # Rooms change after the tiles were kept: back online, help answered, a fault,
        # an alert taken, a lock released, a schedule applied.
        w.online(ROOMS[8], "online")
        w.online(ROOMS[1], "offline")
        w.state(ROOMS[7])
        w.state(ROOMS[3], devices={"amplifier": {"power": "on", "health": "degraded"}})
        alert = w.store.alerts(open_only=True, site=ROOMS[13])[0]
        w.console.take_alert(Actor("hung", "operator"), alert.id)
        w.state(ROOMS[5], lock={"locked": False})
        digest = w.store.latest_schedule(ROOMS[6]).digest
        w.state(ROOMS[6], schedule={"version": "v", "digest": digest, "rejected": None})
        w.online("xa-not-in-roster", "online")  # not on the page
        _same(roster)
        # Written by another process (a second recorder, the CLI): nothing announced here.
        w.store.record_availability(ROOMS[2], "offline", w.clock(), False)
        w.store.raise_alert("k-other", ROOMS[20], "offline", w.clock(), {})
        _same(roster)
        alerted = views.rooms_page(roster, views.Query(problem="alerts", per_page=500)).items
        assert ROOMS[20] in [t.site for t in alerted]
        # Another refusal; then the window is over (no message from any room says so), and
        # then marked complete.
        w.event(ROOMS[4], "shutdown_refused", {"source": "button"}, window_id=on)
        _same(roster)
        refused = views.Query(problem="refused", per_page=500)
        assert ROOMS[4] in [t.site for t in views.rooms_page(roster, refused).items]
        w.clock.set(w.clock() + 4000)
        _same(roster)
        assert views.rooms_page(roster, refused).items == []
        w.clock.set(w.clock() - 4000)
        _same(roster)
        assert views.rooms_page(roster, refused).matched == 13
        w.console.complete_window(Actor("hung", "operator"), on)
        _same(roster)
        assert views.rooms_page(roster, refused).items == []


def test_a_page_view_reads_only_the_rooms_that_changed(tmp_path: Path) -> None:
    """Counted: the room views the console builds for each page view. The first view of the
    dashboard reads every room; after it, a view reads only the rooms that changed since."""
    with web(tmp_path, ROOMS, GROUPS) as w:
        _mixed(w)
        roster = views.Roster(w.console)
        built: list[str] = []
        real = w.console._view

        def counted(site: str, *a: Any, **kw: Any) -> Any:
            built.append(site)
            return real(site, *a, **kw)

        w.console._view = counted  # type: ignore[method-assign]
        views.rooms_page(roster, views.Query())
        assert len(built) == N
        built.clear()
        page = views.rooms_page(roster, views.Query(per_page=10))
        assert built == [], f"{len(built)} rooms read again with nothing changed"
        assert len(page.items) == 10
        w.state(ROOMS[4], operator={"check": None, "last_check_in": None, "last_ack": None,
                                    "help_requested": "2026-03-02T08:00:00.000+07:00"})
        w.online(ROOMS[10], "offline")
        page = views.rooms_page(roster, views.Query(sort="name", page=2, per_page=10))
        assert sorted(built) == [ROOMS[4], ROOMS[10]]
        assert "help" in next(t for t in roster.kept.current() if t.site == ROOMS[4]).problems
        built.clear()
        # Many rooms changed: one read of every room rather than one by name each.
        for s in ROOMS[: N // 2]:
            w.online(s, "offline")
        views.rooms_page(roster, views.Query())
        assert len(built) == N
        built.clear()
        # Written by another process: read all the same.
        w.store.record_availability(ROOMS[100], "offline", w.clock(), False)
        views.rooms_page(roster, views.Query())
        assert built == [ROOMS[100]]


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_hub_reads_the_changed_rooms_after_each_batch(tmp_path: Path) -> None:
    """Once started, and after each batch whether or not a tab is open, the hub runs its
    ``after_batch`` in a worker thread: while pages look at the kept tiles, they are read
    before a page asks; when no page has for :data:`views.KEEP_S`, they are not."""
    with web(tmp_path, ROOMS, GROUPS) as w:
        _mixed(w)
        roster = views.Roster(w.console)
        ticks = Ticks()
        roster.kept.clock = ticks
        views.rooms_page(roster, views.Query())
        assert roster.kept.built == N
        ran = threading.Semaphore(0)

        def after() -> None:
            roster.kept.refresh()
            ran.release()

        async def main() -> None:
            hub = Hub(coalesce_s=0.01)
            hub.after_batch = after
            unsubscribe = w.console.subscribe(hub.on_change)
            await hub.start()
            try:
                assert await asyncio.to_thread(ran.acquire, True, 10), "not run at start"
                assert roster.kept.built == N
                w.online(ROOMS[1], "offline")
                assert await asyncio.to_thread(ran.acquire, True, 10), "not run after a batch"
                assert roster.kept.built == N + 1
                assert hub.batches_sent == 1
                ticks.now += views.KEEP_S + 1  # nobody looked for a while
                w.online(ROOMS[2], "offline")
                assert await asyncio.to_thread(ran.acquire, True, 10), "not run after a batch"
                assert roster.kept.built == N + 1, "read with no page looking"
            finally:
                unsubscribe()
                await hub.stop()

        asyncio.run(main())
        page = views.rooms_page(roster, views.Query(problem="offline", per_page=500))
        assert roster.kept.built == N + 2
        assert {ROOMS[1], ROOMS[2]} <= {t.site for t in page.items}
