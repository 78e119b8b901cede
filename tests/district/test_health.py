"""Is the console recording? Each recorder part's heartbeat and what the technician is told:
a part stopped (killed: its beats grow old; stopped cleanly: at once), never started, its
broker link down, or running with another roster; on every page, live, and in the JSON."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx2 as httpx
from starlette.testclient import TestClient

from bench.localpg import LocalPostgres
from bench.scale import BenchBroker, console_yaml
from broker.local import free_port
from district import health
from district.config import ConsoleConfig, parse_config, part_of
from district.recorder import Recorder, recorder_alive
from district.service import Console
from district.store.postgres import PostgresStore
from district.store.sqlite import SqliteStore
from district.web.app import create_app
from district.web.server import WebServer
from district.web.text import recording_text
from tests.district.helpers import T0, config_yaml
from tests.district.test_shared import _until, district_broker  # noqa: F401
from tests.district.web.helpers import CSRF_INPUT, OPERATOR, login, web
from tests.district.web.test_live import SSE

SITES = [f"sim-{i:05d}" for i in range(1, 21)]


def _parts(cfg: ConsoleConfig, parts: int, part: int = 1) -> ConsoleConfig:
    """``cfg`` as part ``part`` of ``parts`` (the store here is SQLite, which a parts config
    refuses: only :func:`health.problems` reads it)."""
    return cfg.model_copy(update={"broker": cfg.broker.model_copy(
        update={"parts": parts, "part": part, "primary": part == 1})})


def _beat(store: SqliteStore, cfg: ConsoleConfig, at: float, **kw: object) -> None:
    beat = health.my_beat(cfg, at, kw.pop("connected", True),  # type: ignore[arg-type]
                          kw.pop("since", at - 60), **kw)  # type: ignore[arg-type]
    store.meta_set(health.beat_key(beat.part), beat.dumps())


def rel(ts: float) -> str:
    """A time as seconds after T0, to read the sentences by."""
    return f"<{ts - T0:.0f}>"


def test_each_part_s_problem_from_its_beats(tmp_path: Path) -> None:
    one = parse_config(config_yaml(1883, tmp_path / "c.db", SITES))
    store = SqliteStore(tmp_path / "c.db")
    try:
        assert [p.kind for p in health.problems(one, store, T0)] == ["never_started"]
        _beat(store, one, T0)
        assert health.problems(one, store, T0 + 29) == [], "a beat 29 s old is alive"
        [p] = health.problems(one, store, T0 + 31)
        assert (p.kind, p.part, p.parts, p.rooms, p.since) == ("stopped", 1, 1, 20, T0)
        shown = recording_text(p, "vi", rel)
        assert shown == ("Bộ ghi của bảng điều khiển đã ngừng ghi từ <0>: trạng thái các "
                         "điểm cầu có thể đã cũ."), shown
        _beat(store, one, T0 + 40, connected=False, since=T0 + 35, link_detail="refused: x")
        [p] = health.problems(one, store, T0 + 41)
        assert (p.kind, p.since, p.detail) == ("link_down", T0 + 35, "refused: x")
        assert "mất kết nối tới máy chủ MQTT từ <35> (máy chủ từ chối đăng nhập" in \
            recording_text(p, "vi", rel)
        assert "refused: x" not in recording_text(p, "vi", rel), "one language at a time"
        assert "lost its MQTT broker link since <35>" in recording_text(p, "en", rel)
        # started, not yet connected: nothing to say for STALE_S, then "not reached"
        _beat(store, one, T0 + 50, connected=False, since=None, started_at=T0 + 50)
        assert health.problems(one, store, T0 + 51) == [], "a process just starting"
        _beat(store, one, T0 + 85, connected=False, since=None, started_at=T0 + 50,
              link_detail="cannot reach 127.0.0.1:1883")
        [p] = health.problems(one, store, T0 + 86)
        assert p.kind == "not_connected"
        assert recording_text(p, "vi", rel).startswith(
            "Bộ ghi của bảng điều khiển chưa kết nối được tới máy chủ MQTT "
            "(không tới được máy chủ")
        assert "(the broker cannot be reached" in recording_text(p, "en", rel)
        _beat(store, one, T0 + 90, running=False)
        assert [p.kind for p in health.problems(one, store, T0 + 90)] == ["stopped"], \
            "a clean stop is seen at once, not after the beats grow old"
        assert not recorder_alive(Console(one, store, clock=lambda: T0 + 90))

        three = [_parts(one, 3, k) for k in (1, 2, 3)]
        counts = [sum(part_of(s, 3) == k for s in SITES) for k in (1, 2, 3)]
        _beat(store, three[0], T0 + 100)
        _beat(store, three[1], T0 + 100)
        store.meta_set(health.beat_key(3), "{not json")
        found = health.problems(three[0], store, T0 + 101)
        assert [(p.kind, p.part, p.rooms) for p in found] == [("never_started", 3, counts[2])]
        assert recording_text(found[0], "vi", rel).startswith(
            f"Phần ghi 3/3 ({counts[2]} điểm cầu) chưa chạy: trạng thái các điểm cầu của "
            "phần này")
        assert recording_text(found[0], "en", rel).startswith(
            f"Recorder part 3 of 3 ({counts[2]} rooms) has not started")
        # part 3 runs with a roster of one more room, part 2 thinks there are two parts
        bigger = _parts(parse_config(config_yaml(1883, tmp_path / "c.db",
                                                 [*SITES, "sim-09999"])), 3, 3)
        _beat(store, bigger, T0 + 102)
        _beat(store, _parts(one, 2, 2), T0 + 102)
        found = health.problems(three[0], store, T0 + 103)
        assert [(p.kind, p.part) for p in found] == [("config_differs", 2),
                                                    ("config_differs", 3)]
        assert "cấu hình khác" in recording_text(found[0], "vi", rel)
        assert health.problems(bigger, store, T0 + 103)[0].kind == "config_differs", \
            "each side sees the other differ"
        # down to two parts, the old part 3 left running: its rooms are recorded twice
        two = _parts(one, 2, 1)
        _beat(store, two, T0 + 104)
        _beat(store, _parts(one, 2, 2), T0 + 104)
        extra = health.problems(two, store, T0 + 105)
        assert [(p.kind, p.part, p.rooms) for p in extra] == [
            ("config_differs", 3, len(bigger.broker.my_rooms(bigger.room_ids())))]
        assert recording_text(extra[0], "vi", rel).startswith("Phần ghi 3 (")
        assert "cấu hình chỉ có 2 phần" in recording_text(extra[0], "vi", rel)
        assert not any(p.part == 3 for p in health.problems(two, store, T0 + 140)), \
            "a part beyond them that stopped beating is forgotten"
    finally:
        store.close()


def test_the_recorder_beats_and_every_dashboard_says_when_a_part_stops(
        postgres: LocalPostgres, district_broker: BenchBroker,  # noqa: F811
        short_tmp: Path) -> None:
    url = postgres.new_database()
    cfgs = [parse_config(console_yaml(district_broker.port, url, SITES, f"part-{k}", None,
                                      k == 1, short_tmp, part=(k, 2))) for k in (1, 2)]
    stores = [PostgresStore(url) for _ in cfgs]
    consoles = [Console(c, s) for c, s in zip(cfgs, stores, strict=True)]
    consoles[1].add_user(OPERATOR[0], "operator", OPERATOR[1])
    # tick_s as the test rigs have it: the beats do not depend on the dispatcher's tick
    recs = [Recorder(c, k, tick_s=3600) for c, k in zip(cfgs, consoles, strict=True)]
    for r in recs:
        r.beat_s = 0.1
    n2 = len(cfgs[1].broker.my_rooms(SITES))
    try:
        for r in recs:
            r.start()

        def problems() -> list[tuple[str, int]]:
            return [(p.kind, p.part) for p in health.problems(cfgs[0], stores[0], time.time())]

        _until(lambda: problems() == [], "both parts beating, their links up")
        assert recorder_alive(consoles[0])
        # part 2's own dashboard (every process has one) watches the heartbeats too
        app = create_app(consoles[1], b"k" * 64, health_s=0.05)
        with TestClient(app, base_url="http://testserver", follow_redirects=False) as c:
            d = app.state.dashboard
            _until(lambda: d.recording_seen == (), "the dashboard's first look")
            login(c, OPERATOR)
            told = threading.Event()
            hub_on_change = d.hub.on_change
            d.hub.on_change = lambda ch: (told.set() if ch.what == "health" else None,
                                          hub_on_change(ch))[1]
            recs[0].stop()   # a clean stop of the primary: seen at the next look
            assert told.wait(10), "the live pages were not told"
            assert [(p.kind, p.part) for p in d.recording_seen] == [("stopped", 1)]
            page = c.get("/").text
            assert 'id="health" role="alert"' in page
            n1 = len(SITES) - n2
            assert f"Phần ghi 1/2 ({n1} điểm cầu) đã ngừng ghi từ" in page
            j = c.get("/rooms.json?lang=en").json()
            assert [(p["kind"], p["part"], p["rooms"]) for p in j["recording"]] == [
                ("stopped", 1, n1)]
            assert j["recording"][0]["since"].endswith("+07:00"), "in the site's zone"
            assert "Recorder part 1 of 2" in j["recording"][0]["text"]

        # part 1 comes back with a roster one room longer: rooms recorded by nobody or twice
        longer = parse_config(console_yaml(district_broker.port, url, [*SITES, "sim-09999"],
                                           "part-1", None, True, short_tmp, part=(1, 2)))
        recs[0] = Recorder(longer, Console(longer, stores[0]), tick_s=3600)
        recs[0].beat_s = 0.1
        recs[0].start()
        _until(lambda: problems() == [("config_differs", 1)], "the other roster noticed")

        # the broker goes away: each beat says its link is down, and since when
        district_broker.stop()
        _until(lambda: ("link_down", 2) in problems(), "part 2's link down")
        [p] = [p for p in health.problems(cfgs[0], stores[0], time.time()) if p.part == 2]
        assert p.since is not None and time.time() - 30 < p.since <= time.time()
        district_broker.start()
        _until(lambda: problems() == [("config_differs", 1)], "part 2 back", 40)
    finally:
        for r in recs:
            r.stop()
        for s in stores:
            s.close()


def test_a_problem_that_comes_later_reaches_an_open_page_live(tmp_path: Path) -> None:
    with web(tmp_path) as wb:
        _beat(wb.store, wb.console.cfg, T0)
        port = free_port()
        server = WebServer(wb.console.cfg, wb.console, listen=f"127.0.0.1:{port}",
                           health_s=0.05)
        server.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
                token = CSRF_INPUT.search(c.get("/login").text).group(1)  # type: ignore[union-attr]
                c.post("/login", data={"user": OPERATOR[0], "password": OPERATOR[1],
                                       "csrf": token})
                page = c.get("/").text
                assert '<div id="health" class="none" data-problems="0"></div>' in page, \
                    "the page has a place for a problem that comes later"
                assert c.get("/rooms.json").json()["recording"] == []
                with c.stream("GET", "/live?view=rooms") as resp:
                    sse = SSE(resp.iter_lines())
                    event, _first = sse.next()
                    assert event == "update"
                    wb.clock.now = T0 + 31   # the beat grows old, nothing else changes
                    event, data = sse.next()
                    assert 'id="health" role="alert"' in data and 'hx-swap-oob="true"' in data
                    assert "Bộ ghi của bảng điều khiển đã ngừng ghi từ 18:06:40" in data, \
                        "the time in the site's zone, today's without its date"
                    server.stop()
                    for _ in sse.lines:
                        pass
        finally:
            server.stop()
