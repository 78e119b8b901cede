"""Several recorder processes behind one MQTT v5 shared subscription, writing to one
PostgreSQL: every event stored exactly once when one of them is killed in the middle of a
burst; what Mosquitto does with shared subscriptions (no retained messages, a member's share
kept for it while it is down); and the console's session surviving a broker restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from bench.localpg import LocalPostgres
from bench.scale import SHARE_GROUP, BenchBroker, SimProcess, console_yaml
from broker.local import LocalBroker
from district.config import parse_config
from district.recorder import Recorder
from district.store.postgres import PostgresStore
from tests.district.helpers import T0, rig

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0


class RecorderProcess:
    """``python -m bench.scale recorder``: one recorder process, its ``stored N`` lines."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.count = 0
        self._cv = threading.Condition()
        self.connected = False
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.scale", "recorder",
                                      "--config", str(config)], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cv:
                if line.startswith("stored "):
                    self.count = int(line.split()[1])
                elif line.strip() == "connected":
                    self.connected = True
                self._cv.notify_all()

    def wait(self, pred: object, what: str, timeout: float = TIMEOUT) -> None:
        with self._cv:
            assert self._cv.wait_for(pred, timeout), f"timed out: {what}"  # type: ignore[arg-type]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def district_broker(short_tmp: Path) -> Iterator[BenchBroker]:
    """Mosquitto with the project's config and a district's raised limits."""
    b = BenchBroker(short_tmp / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


def _until(pred: object, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.05)


def rooms_online(broker: BenchBroker, store: PostgresStore, recs: list[RecorderProcess],
                 seed: int, tmp: Path, n: int = 40) -> SimProcess:
    """Once every recorder process is connected: ``n`` simulated rooms, each online in the
    console's store."""
    for r in recs:
        r.wait(lambda r=r: r.connected, "recorder connected")
    sim = SimProcess(broker.port, "sim", 1, n, ["--seed", str(seed)], tmp / "sim.log")
    _until(lambda: sim.ctl("status")["connected"] == n, "rooms connected")
    _until(lambda: len([v for v in store.live_all().values()
                        if v.availability == "online"]) == n, "every room online")
    return sim


def test_recorders_share_a_burst_and_one_killed_loses_and_doubles_nothing(
        postgres: LocalPostgres, district_broker: BenchBroker, short_tmp: Path) -> None:
    url = postgres.new_database()
    sites = [f"sim-{i:05d}" for i in range(1, 41)]
    configs = []
    for i, primary in ((1, True), (2, False)):
        cfg = short_tmp / f"rec-{i}.yaml"
        cfg.write_text(console_yaml(district_broker.port, url, sites, f"rec-{i}", SHARE_GROUP,
                                    primary, short_tmp))
        configs.append(cfg)
    store = PostgresStore(url)
    recs = [RecorderProcess(c) for c in configs]
    sim = None
    try:
        sim = rooms_online(district_broker, store, recs, 3, short_tmp)
        sim.ctl("burst", events=60)  # 2,400 events at once, from 40 rooms
        recs[1].wait(lambda: recs[1].count >= 100, "the second recorder storing its share")
        recs[1].kill()  # in the middle of the burst
        before_kill = recs[1].count
        made = sim.ctl("status")["made"]
        _until(lambda: sim.ctl("status")["pending"] == 0, "every event acknowledged")
        # Its share waits in its session on the broker; the other does not get it.
        recs[0].wait(lambda: recs[0].count > 0, "the first recorder storing")
        held = int(store._q("SELECT COUNT(*) FROM events")[0][0])
        assert held < made, "the killed recorder's share waits for it"
        recs[1] = RecorderProcess(configs[1])  # restarted (as systemd would), same client id
        _until(lambda: int(store._q("SELECT COUNT(*) FROM events")[0][0]) == made,
               "every event stored")
        total, distinct = store._q("SELECT COUNT(*), COUNT(DISTINCT (site, seq)) FROM events")[0]
        assert total == distinct == made == 40 * 61  # agent_started and 60 each
        for site in sites:
            g = store.seq_gaps(site)
            assert (g.first_held, g.last_held, g.holes) == (1, 61, []), site
        assert recs[0].count > 0 and before_kill > 0 and recs[1].count > 0
        assert recs[0].count + before_kill + recs[1].count <= made
        # Availability and state came through the primary's normal subscription only.
        assert {v.availability for v in store.live_all().values()} == {"online"}
        assert all(v.state is not None for v in store.live_all().values())
    finally:
        if sim is not None:
            sim.close()
        for r in recs:
            r.stop()
        store.close()


def test_a_recorder_subscribes_as_its_role_says(postgres: LocalPostgres) -> None:
    url = postgres.new_database()
    prefix = "diemcau/v2/rooms/+"
    for primary, expected in (
            (True, [f"$share/g/{prefix}/events", f"$share/g/{prefix}/replies",
                    f"{prefix}/availability", f"{prefix}/state", f"{prefix}/info",
                    f"{prefix}/host"]),
            (False, [f"$share/g/{prefix}/events", f"$share/g/{prefix}/replies"])):
        cfg = parse_config(console_yaml(1883, url, [], "r", "g", primary))
        from district.service import Console

        store = PostgresStore(url)
        try:
            rec = Recorder(cfg, Console(cfg, store))
            assert (rec.share_group, rec.primary) == ("g", primary)
            assert rec.subscriptions() == expected
        finally:
            store.close()
    cfg = parse_config(console_yaml(1883, url, [], "r", None, True))
    store = PostgresStore(url)
    try:
        from district.service import Console

        rec = Recorder(cfg, Console(cfg, store))
        assert rec.subscriptions() == [f"{prefix}/{k}" for k in (
            "availability", "state", "info", "host", "events", "replies")]
    finally:
        store.close()


def test_retained_messages_and_shared_subscriptions_in_mosquitto(broker: LocalBroker) -> None:
    """What Mosquitto 2.0.11 does, and why state and availability are not shared: MQTT 5.0
    sends no retained message to a shared subscription (EMQX 5, VerneMQ); Mosquitto 2.0.11
    sends the retained message to *every* member as it subscribes, while a live message goes
    to one member only. Either way a shared subscription is no way to read a room's current
    state: one normal subscription, on the primary process, takes them."""
    got: dict[str, list[tuple[str, bool]]] = {"a": [], "b": []}
    cv = threading.Condition()
    clients = []

    def member(name: str) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"m-{name}",
                        protocol=mqtt.MQTTv5)

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            with cv:
                got[name].append((msg.topic.rsplit("/", 1)[1], bool(msg.retain)))
                cv.notify_all()
        c.on_message = on_message
        c.connect(broker.host, broker.port)
        c.loop_start()
        clients.append(c)
        return c

    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    clients.append(pub)
    try:
        pub.publish("diemcau/v2/rooms/xa-r/state", b'{"power":"on"}', qos=1,
                    retain=True).wait_for_publish(5)
        opts = SubscribeOptions(qos=1)
        for name in ("a", "b"):
            member(name).subscribe([("$share/g/diemcau/v2/rooms/+/state", opts)])
            with cv:
                assert cv.wait_for(lambda name=name: got[name], 10), name
        assert got == {"a": [("state", True)], "b": [("state", True)]}, \
            "Mosquitto 2.0.11: the retained state to every member"
        for _ in range(4):
            pub.publish("diemcau/v2/rooms/xa-r/state", b'{"power":"off"}', qos=1,
                        retain=True).wait_for_publish(5)
        with cv:
            assert cv.wait_for(lambda: len(got["a"]) + len(got["b"]) == 6, 10)
        live = got["a"][1:] + got["b"][1:]
        assert live == [("state", False)] * 4, "each live message to one member"
        assert len(got["a"]) > 1 and len(got["b"]) > 1, "shared round robin"
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()


def test_the_console_session_survives_a_broker_restart_from_its_first_start(
        broker: LocalBroker, tmp_path: Path) -> None:
    """Mosquitto 2.0.11 does not save a session begun with a clean start: a console that
    connected clean the first time lost its session (and what rooms sent meanwhile) in the
    broker's first restart."""
    with rig(broker, tmp_path, ["xa-s"]) as c:
        r = c.online("xa-s", T0)
        c.stop()  # the console away (its first session on the broker)
        broker.stop()
        broker.start()
        with r._cv:
            assert r._cv.wait_for(lambda: r.connected, 30), "room did not reconnect"
        c.clock.set(T0 + 10)
        r.event("check_in", {"kind": "while-away"}, ts=T0 + 10)
        rec = c.start()
        assert rec.session_present is True
        c.wait_seq("xa-s", 1)
        assert [e.data["kind"] for e in c.store.events("xa-s")] == ["while-away"]



def test_mosquitto_forgets_shared_subscriptions_in_a_restart(broker: LocalBroker) -> None:
    """Mosquitto 2.0.11 keeps a persistent session over its restart (its queue, a normal
    subscription) but not the session's *shared* subscription: what is published after the
    restart and before the member subscribes again reaches nobody. So with this broker, a
    broker restart loses the events rooms send before the recorders are back; one recorder
    process (normal subscriptions) loses nothing (docs/benchmarks.md)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    def session(cid: str, topic: str | None = None) -> list[bytes]:
        got: list[bytes] = []
        up = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
        c.on_connect = lambda *_a: up.set()
        c.on_message = lambda _c, _u, m: got.append(bytes(m.payload))
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        c.connect(broker.host, broker.port, clean_start=False, properties=props)
        c.loop_start()
        assert up.wait(10)
        if topic is not None:
            c.subscribe(topic, qos=1)
        c.publish(f"marker/{cid}", b"m", qos=1).wait_for_publish(5)
        time.sleep(0.3)  # what the session holds arrives right after the CONNACK
        c.disconnect()
        c.loop_stop()
        return got

    def publish(payload: bytes) -> None:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.connect(broker.host, broker.port)
        c.loop_start()
        c.publish("diemcau/v2/rooms/xa-r/events", payload, qos=1).wait_for_publish(5)
        c.disconnect()
        c.loop_stop()

    for cid, topic in (("normal", "diemcau/v2/rooms/+/events"),
                       ("shared", "$share/g/diemcau/v2/rooms/+/events")):
        session(cid, topic)
        publish(b"before")
        broker.stop()
        broker.start()
        publish(b"after")
        got = session(cid)
        assert got == ([b"before", b"after"] if cid == "normal" else [b"before"]), cid


class _Deliveries:
    """What the broker hands one recorder's client: each event's ``seq`` as many times as it
    arrived (wrapped around the recorder's own ``on_message``), and the SUBACKs."""

    def __init__(self, rec: Recorder) -> None:
        self.seqs: list[int] = []
        self.subacks = 0
        self._cv = threading.Condition()
        handler = rec.client.on_message

        def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            if msg.topic.endswith("/events"):
                with self._cv:
                    self.seqs.append(int(json.loads(msg.payload)["seq"]))
                    self._cv.notify_all()
            handler(client, userdata, msg)  # type: ignore[misc]

        def on_subscribe(*_a: object) -> None:
            with self._cv:
                self.subacks += 1
                self._cv.notify_all()

        rec.client.on_message = on_message
        rec.client.on_subscribe = on_subscribe

    def wait(self, pred: Callable[[], bool], what: str) -> None:
        with self._cv:
            assert self._cv.wait_for(pred, TIMEOUT), f"timed out: {what}"


@pytest.mark.parametrize("after", ["parts", "plain"])
def test_a_recorder_that_leaves_its_share_group_hears_each_event_once(
        postgres: LocalPostgres, district_broker: BenchBroker, short_tmp: Path,
        after: str) -> None:
    """A process recorded through ``$share/<group>/…``, then is restarted with the same client
    id as part 1 of 2, or as one plain process: its session still holds the shared filters
    unless the process unsubscribes them, and each event would arrive twice (once per
    filter)."""
    from district.config import part_of
    from district.service import Console
    from tests.district.helpers import FakeClock
    from tests.district.rooms import ScriptedRoom

    url = postgres.new_database()
    sites = [f"sim-{i:05d}" for i in range(1, 9)]
    site = next(s for s in sites if part_of(s, 2) == 1)
    store = PostgresStore(url)
    room = ScriptedRoom(site, district_broker.host, district_broker.port, FakeClock())
    rec: Recorder | None = None
    try:
        cfg = parse_config(console_yaml(district_broker.port, url, sites, "rec-moved",
                                        SHARE_GROUP, True, short_tmp))
        rec = Recorder(cfg, Console(cfg, store))
        seen = _Deliveries(rec)
        rec.start()
        seen.wait(lambda: seen.subacks >= 1, "subscribed with the share group")
        room.connect()
        room.event("check_in", ts=T0)
        seen.wait(lambda: seen.seqs == [1], "the event through the shared subscription")
        assert rec.idle()
        rec.stop()
        rec = None

        part = (1, 2) if after == "parts" else None
        cfg = parse_config(console_yaml(district_broker.port, url, sites, "rec-moved", None,
                                        True, short_tmp, part=part))
        rec = Recorder(cfg, Console(cfg, store))
        seen = _Deliveries(rec)
        rec.start()
        # The UNSUBSCRIBE of what is stale goes before the SUBSCRIBE: the broker has done both.
        seen.wait(lambda: seen.subacks >= 1, "subscribed again")
        assert rec.session_present is True
        for n in range(3):
            room.event("check_in", ts=T0 + 1 + n)
        marker = room.event("check_in", ts=T0 + 10)["seq"]
        # A second copy of an event would have been queued before the marker's first.
        seen.wait(lambda: marker in seen.seqs, "the marker event")
        assert rec.idle()
        assert [s for s in seen.seqs if s != marker] == [2, 3, 4], \
            "an event arrived twice: the earlier share group's filter is still subscribed"
        assert [e.seq for e in store.events(site)] == [1, 2, 3, 4, 5]
    finally:
        room.drop()
        if rec is not None:
            rec.stop()
        store.close()
