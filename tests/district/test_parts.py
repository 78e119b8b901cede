"""Several recorder processes, each recording every topic of its own part of the rooms
(``broker.parts``) over normal subscriptions, into one PostgreSQL: every event stored exactly
once across a recorder killed in a burst AND a broker restart (which a shared subscription on
Mosquitto 2.0.11 does not survive); each part hears only its own rooms; a config that
contradicts itself is refused with the field named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.localpg import LocalPostgres
from bench.scale import BenchBroker, SimProcess, console_yaml
from district.config import ConfigError, parse_config, part_of
from district.recorder import Recorder
from district.service import Console
from district.store.postgres import PostgresStore
from tests.district.test_shared import (  # noqa: F401
    RecorderProcess,
    _until,
    district_broker,
    rooms_online,
)

SITES = [f"sim-{i:05d}" for i in range(1, 41)]
KINDS = ("availability", "state", "info", "host", "events", "replies")


def _configs(port: int, url: str, tmp: Path) -> list[Path]:
    out = []
    for part in (1, 2):
        cfg = tmp / f"part-{part}.yaml"
        cfg.write_text(console_yaml(port, url, SITES, f"part-{part}", None, part == 1, tmp,
                                    part=(part, 2)))
        out.append(cfg)
    return out


def _complete(store: PostgresStore, site: str, last: int) -> bool:
    g = store.seq_gaps(site)
    return (g.first_held, g.last_held, g.holes) == (1, last, [])


def test_parts_lose_and_double_nothing_across_a_kill_and_a_broker_restart(
        postgres: LocalPostgres, district_broker: BenchBroker,  # noqa: F811
        short_tmp: Path) -> None:
    url = postgres.new_database()
    configs = _configs(district_broker.port, url, short_tmp)
    mine = {p: [s for s in SITES if part_of(s, 2) == p] for p in (1, 2)}
    assert mine[1] and mine[2]
    store = PostgresStore(url)
    recs = [RecorderProcess(c) for c in configs]
    sim = None
    try:   # each part records its own rooms' availability
        sim = rooms_online(district_broker, store, recs, 5, short_tmp)
        sim.ctl("burst", events=30)
        recs[1].wait(lambda: recs[1].count >= 50, "part 2 storing its rooms")
        recs[1].kill()   # in the middle of the burst
        _until(lambda: sim.ctl("status")["pending"] == 0, "every event acknowledged")
        # Part 1 has all of its rooms' events; part 2's rooms wait in part 2's session.
        _until(lambda: all(_complete(store, s, 31) for s in mine[1]), "part 1's rooms")
        assert not all(_complete(store, s, 31) for s in mine[2]), \
            "part 1 recorded rooms of part 2"
        # The broker restarts while part 2 is down (persistence kept): its session, its
        # subscriptions and what it has not acknowledged survive; then a second burst.
        district_broker.stop()
        district_broker.start()
        recs[0].wait(lambda: recs[0].count >= 31 * len(mine[1]), "part 1 counted")
        _until(lambda: sim.ctl("status")["connected"] == 40, "rooms reconnected")
        recs[1] = RecorderProcess(configs[1])   # restarted, as systemd would, same client id
        recs[1].wait(lambda: recs[1].connected, "part 2 back")
        sim.ctl("burst", events=10)
        _until(lambda: sim.ctl("status")["pending"] == 0, "every event acknowledged")
        made = sim.ctl("status")["made"]
        _until(lambda: int(store._q("SELECT COUNT(*) FROM events")[0][0]) == made,
               "every event stored", 90)
        total, distinct = store._q("SELECT COUNT(*), COUNT(DISTINCT (site, seq)) FROM events")[0]
        assert total == distinct == made
        for site in SITES:
            last = int(store._q("SELECT MAX(seq) FROM events WHERE site = ?", (site,))[0][0])
            assert last > 31 and _complete(store, site, last), site
        assert all(v.state is not None for v in store.live_all().values())
        assert not store.rejected(), "a part recorded what is not a room message"
    finally:
        if sim is not None:
            sim.close()
        for r in recs:
            r.stop()
        store.close()


def test_each_part_subscribes_to_its_own_rooms_and_drops_the_rest(
        postgres: LocalPostgres) -> None:
    url = postgres.new_database()
    store = PostgresStore(url)
    try:
        seen: list[str] = []
        for part in (1, 2):
            cfg = parse_config(console_yaml(1883, url, SITES, f"p{part}", None, part == 1,
                                            part=(part, 2)))
            rec = Recorder(cfg, Console(cfg, store))
            subs = rec.subscriptions()
            rooms = sorted({t.split("/")[3] for t in subs})
            assert rooms == sorted(s for s in SITES if part_of(s, 2) == part)
            assert subs == [f"diemcau/v2/rooms/{s}/{k}" for s in cfg.broker.my_rooms(SITES)
                            for k in KINDS], "every topic of each room, in roster order"
            assert rec.primary == (part == 1)
            stale = rec.stale_subscriptions()
            assert "diemcau/v2/rooms/+/events" in stale, "a wildcard from a run with one part"
            assert not set(stale) & set(subs)
            assert {t.split("/")[3] for t in stale if "+" not in t} == set(SITES) - set(rooms)
            seen += rooms
        assert sorted(seen) == sorted(SITES), "every room in exactly one part"
    finally:
        store.close()


@pytest.mark.parametrize("broker, problem", [
    ("{part: 3, parts: 2, primary: false}", "part 3 of 2"),
    ("{parts: 2, share_group: g}", "use one"),
    ("{part: 2, parts: 2}", "primary must be false"),
    ("{part: 1, parts: 2, primary: false}", "primary must be true"),
    ("{parts: 0}", "parts"),
])
def test_a_contradictory_parts_config_is_refused_with_its_field(broker: str,
                                                                problem: str) -> None:
    text = console_yaml(1883, "postgresql://x@127.0.0.1/x", SITES[:2], "c", None, True)
    lines = [ln for ln in text.splitlines() if not ln.startswith("broker:")]
    lines.append(f"broker: {broker}")
    with pytest.raises(ConfigError) as e:
        parse_config("\n".join(lines) + "\n")
    assert "broker" in str(e.value) and problem in str(e.value)


def test_what_a_part_stores_reaches_the_primary_s_dashboard(
        postgres: LocalPostgres, district_broker: BenchBroker,  # noqa: F811
        short_tmp: Path) -> None:
    """The primary's live view hears only what its own recorder stored; part 2 announces what
    it stores (NOTIFY at its commit) and the primary hands it to its listeners."""
    import threading

    url = postgres.new_database()
    configs = _configs(district_broker.port, url, short_tmp)
    cfg = parse_config(configs[0].read_text())
    store = PostgresStore(url)
    console = Console(cfg, store)
    heard: list[tuple[str, str | None]] = []
    got = threading.Condition()

    def listener(ch: object) -> None:
        with got:
            heard.append((ch.what, ch.site))  # type: ignore[attr-defined]
            got.notify_all()

    console.subscribe(listener)
    primary = Recorder(cfg, console)
    assert primary.listens and not primary.announces
    primary.start()
    part2 = RecorderProcess(configs[1])
    sim = None
    try:
        assert primary.connected.wait(30)
        part2.wait(lambda: part2.connected, "part 2 connected")
        sim = SimProcess(district_broker.port, "sim", 1, 40, ["--seed", "9"],
                         short_tmp / "sim.log")
        theirs = {s for s in SITES if part_of(s, 2) == 2}
        with got:
            assert got.wait_for(lambda: theirs <= {s for w, s in heard if w == "event"}, 60), \
                "part 2's rooms' events never reached the primary's listeners"
            assert theirs <= {s for w, s in heard if w == "availability"}
    finally:
        if sim is not None:
            sim.close()
        part2.stop()
        primary.stop()
        store.close()


def test_an_announcement_goes_out_at_commit_only_and_whole(postgres: LocalPostgres) -> None:
    import threading

    from district.model import Change
    from district.store.postgres import NOTIFY_BYTES

    url = postgres.new_database()
    store, writer = PostgresStore(url), PostgresStore(url)
    got: list[list[Change]] = []
    cv = threading.Condition()
    stop = threading.Event()

    def on_changes(chs: list[Change]) -> None:
        with cv:
            got.append(chs)
            cv.notify_all()

    t = threading.Thread(target=store.listen, args=(stop, on_changes, 0.1), daemon=True)
    t.start()
    try:
        with pytest.raises(RuntimeError), writer.transaction():
            writer.announce([Change("event", site="xa-rolled-back", ref=1)])
            raise RuntimeError("rolled back")
        many = [Change("event", site=f"xa-{i:05d}", window_id="test-1", ref=i)
                for i in range(2000)]   # far more than one notification holds
        deadline = 0
        while not got and deadline < 50:   # the listener is up once it hears a probe
            with writer.transaction():
                writer.announce([Change("probe")])
            with cv:
                cv.wait_for(lambda: bool(got), 0.2)
            deadline += 1
        with cv:
            got.clear()
        with writer.transaction():
            writer.announce(many)
        with cv:
            assert cv.wait_for(lambda: sum(len(c) for c in got) >= len(many), 30)
            flat = [c for chunk in got for c in chunk]
        assert flat == many and len(got) > 1
        assert NOTIFY_BYTES < 8000 and all(
            len(json.dumps([[c.what, c.site, c.window_id, c.ref] for c in chunk])) < 8000
            for chunk in got), "a notification over PostgreSQL's limit"
        assert not any(c.site == "xa-rolled-back" for c in flat)
    finally:
        stop.set()
        t.join(5)
        store.close()
        writer.close()


def test_a_failed_announcement_costs_a_live_update_never_a_stored_event(
        postgres: LocalPostgres) -> None:
    """Part 2 stores a batch, then cannot tell the primary (its NOTIFY fails): the events
    stay stored, none is rejected, and the batch counts as stored (so it is acknowledged)."""
    from district.recorder import _Message

    url = postgres.new_database()
    cfg = parse_config(console_yaml(1883, url, SITES, "p2", None, False, part=(2, 2)))
    store = PostgresStore(url)
    try:
        rec = Recorder(cfg, Console(cfg, store))
        assert rec.announces

        def refuse(changes: object) -> None:
            raise RuntimeError("the database refused the notification")

        store.announce = refuse  # type: ignore[method-assign]
        site = cfg.broker.my_rooms(SITES)[0]
        batch = [_Message(f"diemcau/v2/rooms/{site}/events", json.dumps(
            {"seq": n, "id": f"e{n}", "ts": "2026-12-01T01:00:00.000Z", "kind": "check_in",
             "data": {}}).encode(), False, n, 1, 0, 1_764_550_800.0 + n) for n in (1, 2)]
        changes, stored = rec._store_batch(batch)
        assert stored == batch and [c.ref for c in changes if c.what == "event"] == [1, 2]
        assert [e.seq for e in store.events(site)] == [1, 2]
        assert not store.rejected()
    finally:
        store.close()
