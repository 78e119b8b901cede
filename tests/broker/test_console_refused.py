"""A console whose broker account may not write a room's topics (a viewer's account here, a
province console on the province broker in real life): the broker's PUBACK refuses each
schedule and command (MQTT v5 "not authorized"), and the console must not take them for
published or sent; with the console's own account the same schedule is published."""

from __future__ import annotations

from pathlib import Path

from broker.local import BrokerProcess
from district.config import parse_config
from district.recorder import Recorder
from district.service import Console
from district.store.sqlite import SqliteStore
from tests.broker.conftest import District
from tests.district.helpers import ACTOR
from tests.district.test_shared import _until

TIMEOUT = 10.0


def _console(district: District, account: str, tmp: Path) -> Console:
    db = tmp / f"{account}.db"
    cfg = parse_config(
        "organisation: {name: {vi: 'Thử'}, level: {vi: 'tỉnh'}}\n"
        f"broker: {{url: 'mqtt://127.0.0.1:{district.local_port}', client_id: c-{account}, "
        f"credentials_file: '{district.dir / 'staff' / account / 'credentials.yaml'}'}}\n"
        f"database: {{path: '{db}'}}\n"
        "rooms:\n  - {id: room-a, name: 'Xã A'}\n  - {id: room-b, name: 'Xã B'}\n")
    return Console(cfg, SqliteStore(db))


def test_what_the_broker_refuses_is_neither_published_nor_sent(
        district: District, district_broker: BrokerProcess, tmp_path: Path) -> None:
    viewer = _console(district, "viewer", tmp_path)
    rec = Recorder(viewer.cfg, viewer, tick_s=3600, reread_s=0.05)
    try:
        viewer.republish()
        [cmd] = viewer.power(ACTOR, "room-a", True)
        rec.start()
        assert rec.connected.wait(TIMEOUT)
        _until(lambda: len(getattr(rec, "refused", ())) == 3
               or not viewer.store.unpublished_schedules(), "the broker's answers")
        assert sorted(viewer.store.unpublished_schedules()) == ["room-a", "room-b"], \
            "a refused schedule is not published"
        assert [c.id for c in viewer.store.unsent_commands()] == [cmd.id], \
            "a refused command is not sent"
        assert set(rec.refused) == {("command", cmd.id),
                                    *(("schedule", s.id) for s in
                                      viewer.store.latest_schedules().values())}
        assert all("authori" in why.lower() for why in rec.refused.values()), rec.refused
        rec.dispatch()   # looked at again: not handed out again before the next connect
        assert not rec._inflight
    finally:
        rec.stop()
        viewer.store.close()

    console = _console(district, "console", tmp_path)
    rec = Recorder(console.cfg, console, tick_s=3600, reread_s=0.05)
    try:
        console.republish()
        rec.start()
        _until(lambda: not console.store.unpublished_schedules(), "published")
        assert not rec.refused
    finally:
        rec.stop()
        console.store.close()
