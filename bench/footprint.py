"""Footprint of a room agent beside its peer, on the same machine and the same broker.

The peer is mqtt-io (the general Raspberry Pi GPIO-to-MQTT agent diemcau means to beat as a
room agent), driving the same pins — three relay outputs, an RGB LED, a button — with
gpiozero's mock pins. diemcau runs a relay-only room (``--simulate``, no serial emulators, so
both do the same work). For each it prints:

* resident memory (RSS) once settled;
* CPU time used over an idle period (no commands);
* the time from publishing a command to the broker delivering the message that shows the
  relay switched (diemcau: its state snapshot; mqtt-io: the output's state topic), median and
  95th percentile over a run of commands.

Usage::

    .venv/bin/python bench/footprint.py [--idle 20] [--commands 60]

mqtt-io is installed into its own venv (``/tmp/diemcau-bench-mqttio``) on first use, from PyPI.
Figures vary with the machine: compare the two columns, not runs on different machines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.link.mqtt import nodelay  # noqa: E402
from broker.local import LocalBroker  # noqa: E402

PEER_VENV = Path("/tmp/diemcau-bench-mqttio")
SITE = "bench-room"
PINS = {"codec": 26, "camera": 20, "amplifier": 21}


def diemcau_config(port: int) -> str:
    devices = "\n".join(
        f"  {name}: {{role: {'other' if name == 'amplifier' else name}, relay: {{pin: {pin}}}, "
        f"order: {i + 1}, on_delay_s: 0}}"
        for i, (name, pin) in enumerate(PINS.items()))
    return f"""\
site: {{id: {SITE}, name: Bench}}
broker: {{host: 127.0.0.1, port: {port}}}
devices:
{devices}
status_led: {{kind: rgb, pins: {{red: 17, green: 27, blue: 22}}}}
button: {{pin: 16}}
timing: {{heartbeat_s: 60}}
"""


def mqttio_config(port: int) -> str:
    outputs = "\n".join(f"  - {{name: {name}, module: pi, pin: {pin}}}"
                        for name, pin in [*PINS.items(), ("led_r", 17), ("led_g", 27),
                                          ("led_b", 22)])
    return f"""\
mqtt:
  host: 127.0.0.1
  port: {port}
  topic_prefix: mqio
gpio_modules:
  - name: pi
    module: gpiozero
digital_inputs:
  - {{name: button, module: pi, pin: 16}}
digital_outputs:
{outputs}
"""


def ensure_peer() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "mqtt-io", "gpiozero"],
                       check=True)
    return python


class Watch:
    """A client that waits for a message matching a predicate."""

    def __init__(self, port: int, topic: str) -> None:
        self.cv = threading.Condition()
        self.msgs: list[tuple[float, str, bytes]] = []
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.on_message = self._msg
        self.c.connect("127.0.0.1", port)
        nodelay(self.c)
        self.c.subscribe(topic, qos=1)
        self.c.loop_start()

    def _msg(self, client: Any, userdata: Any, m: mqtt.MQTTMessage) -> None:
        with self.cv:
            self.msgs.append((time.perf_counter(), m.topic, bytes(m.payload)))
            self.cv.notify_all()

    def wait(self, ok: Callable[[str, bytes], bool], since: int, timeout: float = 10) -> float:
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for t, topic, payload in self.msgs[since:]:
                    if ok(topic, payload):
                        return t
                since = len(self.msgs)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching message")
                self.cv.wait(left)

    def mark(self) -> int:
        with self.cv:
            return len(self.msgs)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def measure(proc: subprocess.Popen[bytes], idle_s: float) -> tuple[float, float]:
    """(RSS MiB, CPU seconds over ``idle_s``) of ``proc``."""
    p = psutil.Process(proc.pid)
    before = p.cpu_times()
    time.sleep(idle_s)  # the idle period being measured
    after = p.cpu_times()
    cpu = (after.user - before.user) + (after.system - before.system)
    return p.memory_info().rss / 2**20, cpu


def latency(w: Watch, send: Callable[[int], float], switched: Callable[[int, str, bytes], bool],
            n: int) -> list[float]:
    out = []
    for i in range(n):
        mark = w.mark()
        t0 = send(i)
        t1 = w.wait(lambda topic, payload, i=i: switched(i, topic, payload), mark)
        out.append((t1 - t0) * 1000)
    return out


def figures(rss: float, cpu: float, lat: list[float]) -> dict[str, float]:
    return {"rss": rss, "cpu": cpu, "p50": statistics.median(lat),
            "p95": statistics.quantiles(lat, n=20)[18]}


def run_diemcau(broker: LocalBroker, work: Path, idle_s: float, n: int) -> dict[str, float]:
    cfg = work / "site.yaml"
    cfg.write_text(diemcau_config(broker.port))
    w = Watch(broker.port, f"diemcau/v2/rooms/{SITE}/#")
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(cfg),
                             "--simulate", "--broker", broker.url, "--state-dir",
                             str(work / "st")], cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        w.wait(lambda t, p: t.endswith("/availability") and p == b"online", 0, 30)
        time.sleep(2)  # settle
        rss, cpu = measure(proc, idle_s)
        pub = w.c

        def send(i: int) -> float:
            t0 = time.perf_counter()
            pub.publish(f"diemcau/v2/rooms/{SITE}/commands", json.dumps(
                {"id": f"b{i}", "name": "power", "args": {"on": i % 2 == 1,
                                                          "device": "camera"}}), qos=1)
            return t0

        def switched(i: int, topic: str, payload: bytes) -> bool:
            if not topic.endswith("/state"):
                return False
            want = "on" if i % 2 == 1 else "off"
            return bool(json.loads(payload)["devices"]["camera"]["power"] == want)

        lat = latency(w, send, switched, n)
    finally:
        proc.terminate()
        proc.wait(15)
        w.close()
    return figures(rss, cpu, lat)


def run_peer(broker: LocalBroker, work: Path, idle_s: float, n: int) -> dict[str, float]:
    python = ensure_peer()
    cfg = work / "mqttio.yml"
    cfg.write_text(mqttio_config(broker.port))
    w = Watch(broker.port, "mqio/#")
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
    proc = subprocess.Popen([str(python), "-m", "mqtt_io", str(cfg)], env=env,
                            stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        w.wait(lambda t, p: t == "mqio/status" and p == b"running", 0, 60)
        time.sleep(2)
        rss, cpu = measure(proc, idle_s)

        def send(i: int) -> float:
            t0 = time.perf_counter()
            w.c.publish("mqio/output/camera/set", b"ON" if i % 2 else b"OFF", qos=1)
            return t0

        def switched(i: int, topic: str, payload: bytes) -> bool:
            return topic == "mqio/output/camera" and payload == (b"ON" if i % 2 else b"OFF")

        lat = latency(w, send, switched, n)
    finally:
        proc.terminate()
        proc.wait(15)
        w.close()
    return figures(rss, cpu, lat)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--idle", type=float, default=20.0, help="idle seconds measured")
    ap.add_argument("--commands", type=int, default=60, help="commands timed")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dc-bench-") as tmp:
        work = Path(tmp)
        broker = LocalBroker(work / "broker")
        broker.start()
        try:
            ours = run_diemcau(broker, work, args.idle, args.commands)
            peer = run_peer(broker, work, args.idle, args.commands)
        finally:
            broker.stop()
    rows = [("resident memory (MiB)", "rss", "{:.1f}"),
            (f"CPU over {args.idle:.0f} s idle (s)", "cpu", "{:.3f}"),
            ("command -> relay state, median (ms)", "p50", "{:.1f}"),
            ("command -> relay state, p95 (ms)", "p95", "{:.1f}")]
    print(f"{'':40}{'diemcau':>12}{'mqtt-io 2.7':>14}")
    for label, key, fmt in rows:
        print(f"{label:40}{fmt.format(ours[key]):>12}{fmt.format(peer[key]):>14}")
    print("(same machine, same Mosquitto; diemcau's state message carries the whole room, "
          "mqtt-io's output topic one pin)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
