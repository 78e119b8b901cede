"""Several recorder processes, each recording every topic of its own part of the rooms
(``broker.parts``) over normal subscriptions, into one PostgreSQL: every event stored exactly
once across a recorder killed in a burst AND a broker restart (which a shared subscription on
Mosquitto 2.0.11 does not survive); each part hears only its own rooms; a config that
contradicts itself is refused with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.localpg import LocalPostgres
from bench.scale import BenchBroker, SimProcess, console_yaml
from district.config import ConfigError, parse_config, part_of
from district.recorder import Recorder
from district.service import Console
from district.store.postgres import PostgresStore
from tests.district.test_shared import RecorderProcess, _until, district_broker  # noqa: F401

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
    try:
        for r in recs:
            r.wait(lambda r=r: r.connected, "recorder connected")
        sim = SimProcess(district_broker.port, "sim", 1, 40, ["--seed", "5"],
                         short_tmp / "sim.log")
        _until(lambda: sim.ctl("status")["connected"] == 40, "rooms connected")
        _until(lambda: len([v for v in store.live_all().values()
                            if v.availability == "online"]) == 40,
               "every room online (each part records its own rooms' availability)")
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
