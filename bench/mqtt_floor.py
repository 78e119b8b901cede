"""What one recorder process costs per message, beside paho-mqtt alone receiving the same.

A publisher process floods ``--messages`` valid room events (QoS 1, ``--rooms`` rooms, each
its own ``seq``) through Mosquitto (the project's local config with the district limits of
``bench/scale.py``) to, one after the other:

* **paho alone**: a paho-mqtt 2 client, MQTT v5, manual acknowledgement (as the recorder),
  that acknowledges each message as it arrives and does nothing else (its session ends with
  it: nothing is queued for it while the recorder runs);
* **the recorder**: ``python -m district run`` on PostgreSQL (``fsync`` on), the console's
  whole process as it runs (its dashboard with no page open, its dispatcher idle), which
  parses, stores in batches and acknowledges each message after its commit.

Printed: the time from the first message to the last one received (paho) or stored (the
recorder), messages per second, and the CPU seconds of the receiving process per message;
the ratio is the recorder's figure over paho's. The difference is what recording costs; the
paho figure is the floor of any recorder written on paho in Python: a window storm that
offers more messages per second than ``1 / (CPU per message)`` to one process can only be
absorbed by more processes (``broker.parts``), each on its own core.

Example::

    .venv/bin/python -m bench.mqtt_floor --messages 60000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bench.localpg import LocalPostgres
from bench.scale import ROOT, BenchBroker, console_yaml

PUBLISHER = r"""
import json, sys
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, rooms, n, k, of = (int(x) for x in sys.argv[1:6])
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"floor-publisher-{k}",
                protocol=mqtt.MQTTv5)
c.max_inflight_messages_set(1000)
c.max_queued_messages_set(0)
c.connect("127.0.0.1", port)
c.loop_start()
infos = []
for i in range(k, n, of):
    site = f"fl-{i % rooms + 1:05d}"
    env = {"api": "2.0", "seq": i // rooms + 1, "kind": "power_step", "id": f"e{i}",
           "ts": "2026-12-01T01:00:00.000Z", "window_id": "w-floor", "clock_trusted": True,
           "data": {"device": "codec", "power": "on", "step": i // rooms}}
    infos.append(c.publish(f"diemcau/v2/rooms/{site}/events",
                           json.dumps(env, separators=(",", ":")).encode(), qos=1))
for info in infos:
    info.wait_for_publish(120)
c.disconnect()
c.loop_stop()
"""

SUBSCRIBER = r"""
import sys, threading, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, n = int(sys.argv[1]), int(sys.argv[2])
got, first, done = [0], [0.0], threading.Event()
last = [0.0]
def on_message(client, userdata, msg):
    if not got[0]:
        first[0] = time.time()
    got[0] += 1
    last[0] = time.time()
    client.ack(msg.mid, msg.qos)
    if got[0] == n:
        done.set()
def on_subscribe(client, *a):
    print("ready", flush=True)
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="floor-paho", protocol=mqtt.MQTTv5,
                manual_ack=True)
c.on_message, c.on_subscribe = on_message, on_subscribe
c.connect("127.0.0.1", port, clean_start=True)
c.subscribe("diemcau/v2/rooms/+/events", qos=1)
c.loop_start()
done.wait(600)
print(f"done {first[0]} {last[0]} {got[0]}", flush=True)
c.disconnect()
c.loop_stop()
"""


def cpu_s(p: psutil.Process) -> float:
    """User and system CPU seconds of ``p`` and its threads so far."""
    t = p.cpu_times()
    return t.user + t.system


def publish(port: int, rooms: int, n: int, publishers: int) -> None:
    """Flood ``n`` events from ``publishers`` processes at once (one paho publisher is
    slower than one receiver); returns once the broker has them all."""
    procs = [subprocess.Popen([sys.executable, "-c", PUBLISHER, str(port), str(rooms), str(n),
                               str(k), str(publishers)]) for k in range(publishers)]
    for p in procs:
        assert p.wait(600) == 0, "a publisher failed"


def paho_alone(port: int, rooms: int, n: int, publishers: int) -> tuple[float, float]:
    """(seconds from the first message to the last, CPU seconds) of paho alone."""
    p = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(port), str(n)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    proc = psutil.Process(p.pid)
    c0 = cpu_s(proc)
    threading.Thread(target=publish, args=(port, rooms, n, publishers),
                     daemon=True).start()
    line = p.stdout.readline().split()
    c1 = cpu_s(proc)
    p.wait(60)
    assert line and line[0] == "done", line
    assert int(line[3]) == n, f"paho alone received {line[3]} of {n}"
    return float(line[2]) - float(line[1]), c1 - c0


def recorder(port: int, rooms: int, n: int, publishers: int,
             work: Path) -> tuple[float, float]:
    """(seconds from the first message to the last stored, CPU seconds) of the recorder."""
    import psycopg

    pg = LocalPostgres(Path(tempfile.mkdtemp(prefix="dc-floor-pg-")), fsync=True,
                       settings={"track_commit_timestamp": "on"})
    pg.start()
    try:
        url = pg.new_database("floor")
        sites = [f"fl-{i:05d}" for i in range(1, rooms + 1)]
        cfg = work / "console.yaml"
        cfg.write_text(console_yaml(port, url, sites, "floor-recorder", None, True, work))
        log = (work / "console.log").open("wb")
        p = subprocess.Popen([sys.executable, "-m", "district", "run", "--config", str(cfg)],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        try:
            proc = psutil.Process(p.pid)
            with psycopg.connect(url, autocommit=True) as db:
                def one(sql: str) -> object:
                    deadline = time.monotonic() + 60
                    while True:
                        try:
                            return db.execute(sql).fetchone()[0]  # type: ignore[index]
                        except psycopg.errors.UndefinedTable:
                            if time.monotonic() > deadline:
                                raise
                            time.sleep(0.2)

                deadline = time.monotonic() + 60
                while one("SELECT count(*) FROM meta WHERE key = "
                          "'mqtt_session:floor-recorder'") == 0:
                    assert time.monotonic() < deadline, "the recorder did not connect"
                    time.sleep(0.2)
                c0 = cpu_s(proc)
                publish(port, rooms, n, publishers)
                deadline = time.monotonic() + 600
                while one("SELECT count(*) FROM events") < n:
                    assert time.monotonic() < deadline, "the recorder did not store it all"
                    time.sleep(0.2)
                c1 = cpu_s(proc)
                first, last = db.execute(
                    "SELECT min(received_at), max(EXTRACT(EPOCH FROM "
                    "pg_xact_commit_timestamp(xmin))) FROM events").fetchone()  # type: ignore[misc]
            return float(last) - float(first), c1 - c0
        finally:
            p.terminate()
            p.wait(30)
            log.close()
    finally:
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=60000)
    ap.add_argument("--rooms", type=int, default=3000)
    ap.add_argument("--publishers", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the broker's and the console's files go (kept); default a "
                         "temporary directory, removed at the end")
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dc-floor-"))
    work.mkdir(parents=True, exist_ok=True)
    broker = BenchBroker(work / "broker")
    broker.start()
    try:
        n = args.messages
        paho = paho_alone(broker.port, args.rooms, n, args.publishers)
        ours = recorder(broker.port, args.rooms, n, args.publishers, work)
    finally:
        broker.stop()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    rows = [("messages per second", n / paho[0], n / ours[0], ".0f"),
            ("CPU per message (us)", paho[1] / n * 1e6, ours[1] / n * 1e6, ".0f"),
            ("seconds, first to last", paho[0], ours[0], ".2f")]
    print(f"{n} QoS 1 events from {args.rooms} rooms ({args.publishers} publishing "
          "processes), one receiving process "
          f"(load {' '.join(f'{x:.2f}' for x in psutil.getloadavg())})")
    print(f"  {'metric':<26} {'paho alone':>12} {'recorder':>12} {'ratio':>7}")
    for name, a, b, fmt in rows:
        print(f"  {name:<26} {a:>12{fmt}} {b:>12{fmt}} {b / a:>7.2f}")
    print(json.dumps({"paho": {"seconds": paho[0], "cpu_s": paho[1]},
                      "recorder": {"seconds": ours[0], "cpu_s": ours[1]}, "messages": n}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
