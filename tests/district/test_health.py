"""Is the console recording? Each recorder part's heartbeat and what the technician is told:
a part stopped (killed: its beats grow old; stopped cleanly: at once), never started, its
broker link down, or running with another roster; on every page, live, and in the JSON."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from starlette.testclient import TestClient

from bench.localpg import LocalPostgres
from bench.scale import BenchBroker, console_yaml
from district import health
from district.config import ConsoleConfig, parse_config, part_of
from district.model import Change
from district.recorder import Recorder, recorder_alive
from district.service import Console
from district.store.postgres import PostgresStore
from district.store.sqlite import SqliteStore
from district.web.app import Ctx, create_app
from district.web.fragments import _banner
from district.web.live import Batch
from tests.district.helpers import T0, FakeClock, config_yaml
from tests.district.test_shared import _until, district_broker  # noqa: F401
from tests.district.web.helpers import OPERATOR, login

SITES = [f"sim-{i:05d}" for i in range(1, 21)]


def _parts(cfg: ConsoleConfig, parts: int, part: int = 1) -> ConsoleConfig:
    """``cfg`` as part ``part`` of ``parts`` (the store here is SQLite, which a parts config
    refuses: only :func:`health.problems` reads it)."""
    return cfg.model_copy(update={"broker": cfg.broker.model_copy(
        update={"parts": parts, "part": part, "primary": part == 1})})


def _beat(store: SqliteStore, cfg: ConsoleConfig, at: float, **kw: object) -> None:
    beat = health.my_beat(cfg, at, kw.pop("connected", True), kw.pop("since", at - 60),
                          **kw)  # type: ignore[arg-type]
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
        shown = p.text("vi", rel)
        assert shown.startswith("Bộ ghi của bảng điều khiển đã ngừng ghi từ <0>"), shown
        assert "Phần" not in shown, "one process has no parts to speak of"
        _beat(store, one, T0 + 40, connected=False, since=T0 + 35)
        [p] = health.problems(one, store, T0 + 41)
        assert (p.kind, p.since) == ("link_down", T0 + 35)
        assert "mất kết nối tới máy chủ MQTT từ <35>" in p.text("vi", rel)
        assert "lost its MQTT broker link since <35>" in p.text("en", rel)
        _beat(store, one, T0 + 42, running=False)
        assert [p.kind for p in health.problems(one, store, T0 + 42)] == ["stopped"], \
            "a clean stop is seen at once, not after the beats grow old"
        assert not recorder_alive(Console(one, store, clock=lambda: T0 + 42))

        three = [_parts(one, 3, k) for k in (1, 2, 3)]
        counts = [sum(part_of(s, 3) == k for s in SITES) for k in (1, 2, 3)]
        _beat(store, three[0], T0 + 50)
        _beat(store, three[1], T0 + 50)
        store.meta_set(health.beat_key(3), "{not json")
        found = health.problems(three[0], store, T0 + 51)
        assert [(p.kind, p.part, p.rooms) for p in found] == [("never_started", 3, counts[2])]
        assert found[0].text("vi", str).startswith(f"Phần ghi 3/3 ({counts[2]} điểm cầu) chưa chạy")
        assert found[0].text("en", str).startswith(f"Recorder part 3 of 3 ({counts[2]} rooms) "
                                                   "has not started")
        # part 3 runs with a roster of one more room, part 2 thinks there are two parts
        bigger = _parts(parse_config(config_yaml(1883, tmp_path / "c.db",
                                                 [*SITES, "sim-09999"])), 3, 3)
        _beat(store, bigger, T0 + 52)
        _beat(store, _parts(one, 2, 2), T0 + 52)
        found = health.problems(three[0], store, T0 + 53)
        assert [(p.kind, p.part) for p in found] == [("config_differs", 2),
                                                    ("config_differs", 3)]
        assert "cấu hình khác" in found[0].text("vi", str)
        assert health.problems(bigger, store, T0 + 53)[0].kind == "config_differs", \
            "each side sees the other differ"
    finally:
        store.close()


def test_the_recorder_beats_and_the_dashboard_says_when_a_part_stops(
        postgres: LocalPostgres, district_broker: BenchBroker,  # noqa: F811
        short_tmp: Path) -> None:
    url = postgres.new_database()
    cfgs = [parse_config(console_yaml(district_broker.port, url, SITES, f"part-{k}", None,
                                      k == 1, short_tmp, part=(k, 2))) for k in (1, 2)]
    stores = [PostgresStore(url) for _ in cfgs]
    consoles = [Console(c, s) for c, s in zip(cfgs, stores, strict=True)]
    consoles[0].add_user(OPERATOR[0], "operator", OPERATOR[1])
    told = threading.Event()
    consoles[0].subscribe(lambda ch: told.set() if ch.what == "health" else None)
    recs = [Recorder(c, k, tick_s=0.1) for c, k in zip(cfgs, consoles, strict=True)]
    n2 = len(cfgs[1].broker.my_rooms(SITES))
    try:
        for r in recs:
            r.start()

        def problems() -> list[tuple[str, int]]:
            return [(p.kind, p.part) for p in health.problems(cfgs[0], stores[0], time.time())]

        _until(lambda: problems() == [], "both parts beating, their links up")
        assert recorder_alive(consoles[0])
        told.clear()

        recs[1].stop()   # a clean stop: seen at the next look, not 30 s later
        assert told.wait(10), "the primary's dashboard was not told"
        assert problems() == [("stopped", 2)]
        with TestClient(create_app(consoles[0], b"k" * 64), base_url="http://testserver",
                        follow_redirects=False) as c:
            login(c, OPERATOR)
            page = c.get("/").text
            assert 'id="health" role="alert"' in page
            assert f"Phần ghi 2/2 ({n2} điểm cầu) đã ngừng ghi từ" in page
            j = c.get("/rooms.json?lang=en").json()
            assert [(p["kind"], p["part"], p["rooms"]) for p in j["recording"]] == [
                ("stopped", 2, n2)]
            assert j["recording"][0]["since"].endswith("+07:00"), "in the site's zone"
            assert "Recorder part 2 of 2" in j["recording"][0]["text"]

        # part 2 comes back with a roster one room longer: rooms recorded by nobody or twice
        longer = parse_config(console_yaml(district_broker.port, url, [*SITES, "sim-09999"],
                                           "part-2", None, False, short_tmp, part=(2, 2)))
        recs[1] = Recorder(longer, Console(longer, stores[1]), tick_s=0.1)
        recs[1].start()
        _until(lambda: problems() == [("config_differs", 2)], "the other roster noticed")

        # the broker goes away: each beat says its link is down, from when
        district_broker.stop()
        _until(lambda: ("link_down", 1) in problems(), "part 1's link down")
        [p] = [p for p in health.problems(cfgs[0], stores[0], time.time()) if p.part == 1]
        assert p.since is not None and time.time() - 30 < p.since <= time.time()
        district_broker.start()
        _until(lambda: problems() == [("config_differs", 2)], "part 1 back", 40)
    finally:
        for r in recs:
            r.stop()
        for s in stores:
            s.close()


def test_a_page_without_problems_keeps_an_empty_place_for_them(tmp_path: Path) -> None:
    cfg = parse_config(config_yaml(1883, tmp_path / "c.db", SITES))
    store = SqliteStore(tmp_path / "c.db")
    clock = FakeClock(T0)
    console = Console(cfg, store, clock=clock)
    console.add_user(OPERATOR[0], "operator", OPERATOR[1])
    try:
        _beat(store, cfg, T0)
        with TestClient(create_app(console, b"k" * 64), base_url="http://testserver",
                        follow_redirects=False) as c:
            login(c, OPERATOR)
            page = c.get("/").text
            assert '<div id="health" class="none" data-problems="0"></div>' in page, \
                "the live stream has a place to put a problem that comes later"
            assert c.get("/rooms.json").json()["recording"] == []
        d = c.app.state.dashboard  # type: ignore[attr-defined]
        clock.now = T0 + 31   # the beat grows old: the recorder's tick notices, says "health"
        batch = Batch()
        batch.add(Change("health"))
        assert batch and batch.health and not batch.alerts
        [frag] = _banner(d, Ctx("vi", None, None, ""), batch)
        assert 'id="health" role="alert"' in frag and 'hx-swap-oob="true"' in frag
        assert "Bộ ghi của bảng điều khiển đã ngừng ghi từ 18:06:40" in frag, \
            "the time in the site's zone, today's without its date"
    finally:
        store.close()
