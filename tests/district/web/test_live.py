"""Live updates: changes are coalesced into one SSE message per batch holding one fragment per
changed room on the page (over a real uvicorn server and a real HTTP stream), a slow tab gets
a refresh instead of a backlog, and the rooms page stays small at 10,000 rooms."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx

from broker.local import free_port
from district.config import ConsoleConfig
from district.model import Change
from district.service import Console
from district.store.sqlite import SqliteStore
from district.web import fragments
from district.web.app import Ctx, create_app
from district.web.live import QUEUE_MAX, Batch, Hub, Stream, sse_message
from district.web.server import WebServer
from tests.district.helpers import T0, FakeClock
from tests.district.web.helpers import CSRF_INPUT, OPERATOR, web

TILE = re.compile(r'id="room-([a-z0-9-]+)"[^>]*hx-swap-oob="true"')


def test_the_hub_turns_changes_from_many_threads_into_one_batch() -> None:
    """Changes made while the hub waits out its interval go out with the first one."""

    async def main() -> tuple[list[Batch], int]:
        sleeping = asyncio.Event()
        release = asyncio.Event()

        async def interval(_s: float) -> None:  # the coalescing interval, ended by the test
            sleeping.set()
            await release.wait()

        hub = Hub(coalesce_s=0.5, sleep=interval)
        await hub.start()
        stream = hub.open()
        hub.on_change(Change("state", site="xa-a"))
        await asyncio.wait_for(sleeping.wait(), 5)

        def burst(site: str) -> None:
            for i in range(500):
                hub.on_change(Change("state", site=site))
                if i % 100 == 0:
                    hub.on_change(Change("reply", site=site, ref=f"c-{site}-{i}"))

        threads = [threading.Thread(target=burst, args=(s,)) for s in ("xa-b", "xa-c")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        hub.on_change(Change("alert", site="xa-d", window_id="t-1", ref=7))
        release.set()
        batches = [await asyncio.wait_for(stream.queue.get(), 5)]
        sent = hub.batches_sent
        assert hub.wakes == 1, f"{hub.wakes} wakes for one batch"   # not one per change
        await hub.stop()
        return batches, sent

    got: list[tuple[list[Batch], int]] = []
    # its own thread: Playwright's sync API may hold an event loop in this one
    t = threading.Thread(target=lambda: got.append(asyncio.run(main())))
    t.start()
    t.join(30)
    assert got, "the hub gave no batch"
    (batch,), sent = got[0]
    assert sent == 1
    assert batch.sites == {"xa-a", "xa-b", "xa-c", "xa-d"} and batch.windows == {"t-1"}
    assert batch.alerts and not batch.full
    assert len(batch.commands) == 10


def test_a_tab_that_falls_behind_gets_one_refresh_instead_of_a_backlog() -> None:
    s = Stream()
    for i in range(QUEUE_MAX + 5):
        s.offer(Batch(sites={f"xa-{i}"}))
    assert s.queue.qsize() <= QUEUE_MAX
    items = [s.queue.get_nowait() for _ in range(s.queue.qsize())]
    assert any(b.full for b in items)
    assert sse_message("<a>\n<b>") == "event: update\ndata: <a>\ndata: <b>\n\n"


class SSE:
    """Reads server-sent events from an httpx stream, one message at a time."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines

    def next(self) -> tuple[str, str]:
        event, data = "", []
        for line in self.lines:
            if line == "":
                if data:
                    return event, "\n".join(data)
                continue
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        raise AssertionError("the stream ended")


def test_one_sse_message_per_batch_with_only_the_changed_rooms_on_the_page(
        tmp_path: Path) -> None:
    with web(tmp_path) as wb:
        port = free_port()
        server = WebServer(wb.console.cfg, wb.console, listen=f"127.0.0.1:{port}")
        # the server signs with the secret it made in the state directory
        assert (tmp_path / "web-secret").exists()
        server.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
                token = CSRF_INPUT.search(c.get("/login").text).group(1)
                r = c.post("/login", data={"user": OPERATOR[0], "password": OPERATOR[1],
                                           "csrf": token})
                assert r.status_code == 303
                with c.stream("GET", "/live?view=rooms&per_page=2") as resp:
                    assert resp.headers["content-type"].startswith("text/event-stream")
                    sse = SSE(resp.iter_lines())
                    event, first = sse.next()
                    assert event == "update"
                    assert TILE.findall(first) == ["xa-a", "xa-b"], "page 1 holds two rooms"
                    hub = server.app.state.dashboard.hub
                    before = hub.batches_sent
                    for site in ("xa-a", "xa-b", "xa-c"):
                        wb.store.record_availability(site, "online", wb.clock(), False)
                    # a burst of 300 changes (xa-c is not on this page)
                    for _ in range(100):
                        for site in ("xa-a", "xa-b", "xa-c"):
                            wb.console.notify(Change("availability", site=site))
                    event, data = sse.next()
                    assert event == "update"
                    assert sorted(TILE.findall(data)) == ["xa-a", "xa-b"]
                    assert data.count('data-availability="online"') == 2
                    assert 'id="summary"' in data and 'data-count="online">3<' in data
                    assert 'id="alerts"' not in data, "alerts did not change"
                    # the next message is the next batch: the burst made one message
                    wb.store.record_availability("xa-b", "offline", wb.clock(), False)
                    wb.console.notify(Change("availability", site="xa-b"))
                    _, data = sse.next()
                    assert TILE.findall(data) == ["xa-b"]
                    assert hub.batches_sent == before + 2
                    # the server ends open streams when it stops
                    server.stop()
                    for _ in sse.lines:
                        pass
            assert not server._thread.is_alive()
        finally:
            server.stop()


def _big_console(tmp: Path, n: int) -> Console:
    cfg = ConsoleConfig.model_validate({
        "organisation": {"name": {"vi": "Trung tâm Quốc gia"}, "level": {"vi": "quốc gia"}},
        "database": {"path": str(tmp / "big.db")},
        "rooms": [{"id": f"xa-{i:05d}", "name": f"Xã số {i}", "group": f"Tỉnh {i % 34}"}
                  for i in range(n)]})
    store = SqliteStore(cfg.database.path)
    with store.transaction():
        for i in range(n):
            s = f"xa-{i:05d}"
            if i % 7:
                store.record_availability(s, "online" if i % 5 else "offline", T0, True)
                store.record_retained(s, "state", {"power": "on", "lock": {"locked": False}},
                                      b"{}", T0)
    console = Console(cfg, store, clock=FakeClock(T0 + 10))
    console.add_user(OPERATOR[0], "operator", OPERATOR[1])
    return console


def test_ten_thousand_rooms_one_page_at_a_time_and_small_batches(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from tests.district.web.helpers import login

    console = _big_console(tmp_path, 10_000)
    app = create_app(console, b"k" * 64)
    with TestClient(app, follow_redirects=False) as c:
        login(c, OPERATOR)
        t = time.monotonic()
        r = c.get("/")
        page_s = time.monotonic() - t
        assert r.status_code == 200
        assert r.text.count('class="tile') == 100, "one page of tiles, not 10,000"
        assert "Trang 1/100" in r.text
        j = c.get("/rooms.json?problem=offline&per_page=500").json()
        assert j["counts"]["rooms"] == 10_000 and len(j["rooms"]) == 500
        assert j["matched"] == sum(1 for i in range(10_000) if i % 7 == 0 or i % 5 == 0)
    d = app.state.dashboard
    user = console.users()[0]
    render = fragments.renderer(d, Ctx("vi", None, user, ""), {"view": "rooms",
                                                               "sort": "roster"})
    changed = {"xa-00001", "xa-00002", "xa-00050", "xa-05000", "xa-09999"}
    t = time.monotonic()
    out = render(Batch(sites=changed))
    batch_s = time.monotonic() - t
    assert sorted(TILE.findall(out)) == ["xa-00001", "xa-00002", "xa-00050"]
    assert 'id="summary"' in out
    assert len(out.encode()) < 8000, "a batch carries only the changed rooms of the page"
    print(f"10,000 rooms: rooms page {page_s:.2f} s, a batch {batch_s:.2f} s")
    # generous bounds for a 2-core box shared with others; the figures are in docs/console.md
    assert page_s < 10 and batch_s < 5
    console.store.close()


def test_the_server_says_when_it_cannot_listen(tmp_path: Path) -> None:
    import socket

    import pytest

    from district.web.server import start_dashboard

    with web(tmp_path) as wb, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = WebServer(wb.console.cfg, wb.console, listen=f"127.0.0.1:{port}")
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            server.start()
        cfg = wb.console.cfg.model_copy(update={"http": wb.console.cfg.http.model_copy(
            update={"listen": f"127.0.0.1:{port}"})})
        with pytest.raises(SystemExit) as exit_:
            start_dashboard(cfg, wb.console)
        assert exit_.value.code == 2


def test_a_batch_is_computed_once_for_every_open_tab(tmp_path: Path) -> None:
    """Five tabs on the rooms pages (different pages, two languages): one batch reads the
    changed rooms once for their tiles and once for the kept tiles the counts over every room
    come from, for all of them."""
    console = _big_console(tmp_path, 2_000)
    app = create_app(console, b"k" * 64)
    d = app.state.dashboard
    user = console.users()[0]
    reads: list[int] = []
    real = console.rooms

    def counted(*a: Any, **kw: Any) -> Any:
        reads.append(1)
        return real(*a, **kw)

    tabs = [fragments.renderer(d, Ctx(lang, None, user, ""),
                               {"view": "rooms", "page": page, "sort": "roster"})
            for lang, page in (("vi", "1"), ("vi", "1"), ("en", "1"), ("vi", "2"),
                               ("vi", "20"))]
    console.rooms = counted  # type: ignore[method-assign]
    batch = Batch(sites={"xa-00001", "xa-00150", "xa-01999"})
    for site in sorted(batch.sites):  # as the recorder writes them
        console.store.record_availability(site, "offline", T0 + 5, False)
    outs = [tab(batch) for tab in tabs]
    assert len(reads) == 2, f"{len(reads)} reads of the rooms for one batch and five tabs"
    assert [TILE.findall(o) for o in outs] == [["xa-00001"], ["xa-00001"], ["xa-00001"],
                                               ["xa-00150"], ["xa-01999"]]
    assert outs[0] == outs[1] and outs[0] != outs[2], "shared within a language only"
    console.store.close()
