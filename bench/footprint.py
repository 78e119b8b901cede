"""Footprint of a room agent beside its peer, on the same machine and the same broker.

The peer is mqtt-io 2.7 (the general Raspberry Pi GPIO-to-MQTT agent diemcau means to beat as
a room agent), driving the same pins — three relay outputs, an RGB LED, a button — with
gpiozero's mock pins. diemcau runs a relay-only room (``--simulate``: mock pins, no serial
emulators, so both do the same work) with a real state directory on disk (its outbox and state
files fsync'd as on the Pi) and the environment its systemd unit sets for the interpreter
(``MALLOC_*``/``PYTHON*`` lines of ``deploy/systemd/diemcau-agent.service``). For each it
measures, in one life of the process:

* **start → online**: from starting the process to a client (subscribed before) receiving the
  retained ``online`` (diemcau: ``…/availability``; mqtt-io: ``mqio/status`` ``running``);
* **RSS steady**: ``VmRSS`` once settled (``--settle`` seconds after online, idle), with its
  anonymous and file-backed parts (``/proc/<pid>/status``) and the thread count;
* **CPU idle**: CPU time over ``--idle`` seconds with nothing to do, as % of one core;
* **latency**: ``--commands`` commands back to back (``bench/latency.py``);
* **CPU at 1 cmd/s**: one command a second for ``--minutes`` minutes, as % of one core;
* **RSS peak**: ``VmHWM`` at the end (the high-water mark over the whole life).

Usage::

    .venv/bin/python bench/footprint.py [--minutes 10] [--commands 1000] [--idle 60]

mqtt-io is installed into its own venv (``/tmp/diemcau-bench-mqttio``) on first use, from PyPI.
Figures vary with the machine: compare the two columns, not runs on different machines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.link.mqtt import nodelay  # noqa: E402
from broker.local import LocalBroker  # noqa: E402

PEER_VENV = Path("/tmp/diemcau-bench-mqttio")
SITE = "bench-room"
PINS = {"codec": 26, "camera": 20, "amplifier": 21}
UNIT = ROOT / "deploy" / "systemd" / "diemcau-agent.service"
UNIT_ENV = re.compile(r"^Environment=((?:MALLOC_|PYTHON)\w*)=(\S*)\s*$", re.M)
"""The unit's interpreter settings the bench applies too (not the pin factory or paths)."""
PEERS = ("diemcau", "mqtt-io")
WORK_PARENT = Path("/var/tmp")
"""Where the bench's state directories live: a disk, as on the Pi (never a tmpfs)."""


def diemcau_config(port: int) -> str:
    """The relay-only room's site config, its broker on ``port``."""
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
    """mqtt-io's config for the same pins (its defaults otherwise)."""
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
    """mqtt-io's interpreter, installing it into its own venv on first use."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "mqtt-io==2.7.*",
                        "gpiozero"], check=True)
    return python


def unit_env(unit: Path = UNIT) -> dict[str, str]:
    """The interpreter's environment as the systemd unit sets it (``MALLOC_*``, ``PYTHON*``)."""
    return dict(UNIT_ENV.findall(unit.read_text()))


class Watch:
    """A client that records every message on ``topic`` and waits for one matching a
    predicate."""

    def __init__(self, port: int, topic: str) -> None:
        self.cv = threading.Condition()
        self.msgs: list[tuple[float, str, bytes]] = []
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.on_message = self._msg
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1", port)
        nodelay(self.c)
        self.c.subscribe(topic, qos=1)
        self.c.loop_start()
        if not subscribed.wait(10):
            raise TimeoutError(f"no SUBACK for {topic}")

    def _msg(self, client: Any, userdata: Any, m: mqtt.MQTTMessage) -> None:
        with self.cv:
            self.msgs.append((time.perf_counter(), m.topic, bytes(m.payload)))
            self.cv.notify_all()

    def wait(self, ok: Callable[[str, bytes], bool], since: int, timeout: float = 10) -> float:
        """The arrival time (``perf_counter``) of the first message from index ``since`` on
        that ``ok`` accepts; ``TimeoutError`` after ``timeout`` seconds."""
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
        """Index of the next message to arrive."""
        with self.cv:
            return len(self.msgs)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@dataclass
class Running:
    """One peer's process on the bench broker, with the client that watches and drives it."""

    name: str
    proc: subprocess.Popen[bytes]
    watch: Watch
    online_s: float
    send: Callable[[int], float]
    """Publish command ``i`` (even: camera off, odd: on); returns its ``perf_counter`` time."""
    done: Callable[[int, int], float]
    """Wait for command ``i``'s result messages from a mark on; returns the last one's time."""
    state_dir: Path | None = None
    sent: int = 0
    """Commands numbered so far: every command gets a new id (a repeated id is answered from
    the room's memory, with nothing switched)."""

    def next_command(self) -> int:
        """The number of the next command to send."""
        self.sent += 1
        return self.sent - 1

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> int:
        """Stop it (SIGTERM) and return its exit status."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            rc = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(5)
        self.watch.close()
        return rc


def _command(i: int) -> bytes:
    return json.dumps({"id": f"b{i}", "name": "power",
                       "args": {"on": i % 2 == 1, "device": "camera"}}).encode()


def start_diemcau(broker: LocalBroker, work: Path, env: dict[str, str] | None = None,
                  online_timeout: float = 60, python_args: Sequence[str] = ()) -> Running:
    """Start the room agent as production does (``python -m agent run``) on a fresh state
    directory under ``work``; returns once a client has seen its retained ``online``.
    ``python_args`` go to the interpreter before ``-m agent`` (a profiler, ``-X importtime``)."""
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "site.yaml"
    cfg.write_text(diemcau_config(broker.port))
    base = f"diemcau/v2/rooms/{SITE}"
    w = Watch(broker.port, f"{base}/#")
    mark = w.mark()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *python_args, "-m", "agent", "run", "--config", str(cfg), "--simulate",
         "--broker", broker.url, "--state-dir", str(work / "state")], cwd=ROOT,
        env={**os.environ, **unit_env(), **(env or {})},
        stdout=subprocess.DEVNULL, stderr=(work / "agent.log").open("wb"))
    try:
        t1 = w.wait(lambda t, p: t == f"{base}/availability" and p == b"online", mark,
                    online_timeout)
    except BaseException:
        proc.kill()
        w.close()
        raise

    def send(i: int) -> float:
        t = time.perf_counter()
        w.c.publish(f"{base}/commands", _command(i), qos=1)
        return t

    def done(i: int, since: int) -> float:
        cid, want = f"b{i}", "on" if i % 2 == 1 else "off"

        def reply(topic: str, payload: bytes) -> bool:
            return topic == f"{base}/replies" and json.loads(payload)["command_id"] == cid

        def state(topic: str, payload: bytes) -> bool:
            return topic == f"{base}/state" and \
                json.loads(payload)["devices"]["camera"]["power"] == want

        return max(w.wait(reply, since), w.wait(state, since))

    return Running("diemcau", proc, w, t1 - t0, send, done, work / "state")


def start_mqttio(broker: LocalBroker, work: Path, online_timeout: float = 90) -> Running:
    """Start mqtt-io 2.7 on the same pins (gpiozero mock pins); returns once a client has
    seen its retained ``running`` status."""
    python = ensure_peer()
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "mqttio.yml"
    cfg.write_text(mqttio_config(broker.port))
    w = Watch(broker.port, "mqio/#")
    mark = w.mark()
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(python), "-m", "mqtt_io", str(cfg)],
                            env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"},
                            stdout=subprocess.DEVNULL, stderr=(work / "mqttio.log").open("wb"))
    try:
        t1 = w.wait(lambda t, p: t == "mqio/status" and p == b"running", mark, online_timeout)
    except BaseException:
        proc.kill()
        w.close()
        raise

    def send(i: int) -> float:
        t = time.perf_counter()
        w.c.publish("mqio/output/camera/set", b"ON" if i % 2 else b"OFF", qos=1)
        return t

    def done(i: int, since: int) -> float:
        want = b"ON" if i % 2 else b"OFF"
        return w.wait(lambda t, p: t == "mqio/output/camera" and p == want, since)

    return Running("mqtt-io", proc, w, t1 - t0, send, done)


def start(name: str, broker: LocalBroker, work: Path) -> Running:
    """Start peer ``name`` (``diemcau`` or ``mqtt-io``) with its files in ``work``."""
    if name == "diemcau":
        return start_diemcau(broker, work)
    if name == "mqtt-io":
        return start_mqttio(broker, work)
    raise ValueError(f"unknown peer {name!r}")


@contextlib.contextmanager
def bench_broker(prefix: str = "dc-room-") -> Iterator[tuple[LocalBroker, Path]]:
    """A loopback Mosquitto (the project's local config) and a work directory on disk."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir=WORK_PARENT) as tmp:
        work = Path(tmp)
        broker = LocalBroker(work / "broker")
        broker.start()
        try:
            yield broker, work
        finally:
            broker.stop()


def proc_status(pid: int) -> dict[str, int]:
    """``VmRSS``, ``VmHWM``, ``RssAnon``, ``RssFile`` (KiB) and ``Threads`` of ``pid``."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
            out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used."""
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def cpu_percent_over(pid: int, seconds: float, work: Callable[[], None] | None = None) -> float:
    """% of one core ``pid`` used over ``seconds`` of wall time, while ``work`` (if given)
    runs in this process (it must return within the period)."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    if work is not None:
        work()
    left = seconds - (time.monotonic() - t0)
    if left > 0:
        time.sleep(left)  # the period being measured: nothing else to wait on
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return 100.0 * (c1 - c0) / (t1 - t0)


def one_per_second(r: Running, seconds: float) -> Callable[[], None]:
    """One command a second for ``seconds``, each waited for."""
    def work() -> None:
        t0 = time.monotonic()
        for k in range(int(seconds)):
            wait = t0 + k - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # the command rate is what is measured
            i = r.next_command()
            mark = r.watch.mark()
            r.send(i)
            r.done(i, mark)
    return work


@dataclass
class Options:
    """What one footprint run measures (the defaults are a quick run)."""

    settle_s: float = 5.0
    idle_s: float = 30.0
    commands: int = 1000
    minutes: float = 1.0
    peers: tuple[str, ...] = PEERS


@dataclass
class Figures:
    """Everything measured for one peer."""

    name: str
    online_s: float = 0.0
    rss_mib: float = 0.0
    anon_mib: float = 0.0
    file_mib: float = 0.0
    threads: int = 0
    peak_mib: float = 0.0
    cpu_idle_pct: float = 0.0
    cpu_1cps_pct: float = 0.0
    latency_ms: list[float] = field(default_factory=list)
    exit_status: int | None = None


def measure(r: Running, opts: Options) -> Figures:
    """The figures of one started peer, in order: settle, steady RSS, idle CPU, latency,
    CPU at one command a second, peak RSS."""
    from bench.latency import run_commands

    f = Figures(r.name, online_s=r.online_s)
    time.sleep(opts.settle_s)  # "steady" means after this settle, by definition
    st = proc_status(r.pid)
    f.rss_mib, f.anon_mib, f.file_mib = (st["VmRSS"] / 1024, st["RssAnon"] / 1024,
                                         st["RssFile"] / 1024)
    f.threads = st["Threads"]
    if opts.idle_s > 0:
        f.cpu_idle_pct = cpu_percent_over(r.pid, opts.idle_s)
    f.latency_ms = run_commands(r, opts.commands)
    if opts.minutes > 0:
        f.cpu_1cps_pct = cpu_percent_over(r.pid, opts.minutes * 60,
                                          one_per_second(r, opts.minutes * 60))
    f.peak_mib = proc_status(r.pid)["VmHWM"] / 1024
    return f


def run(opts: Options) -> dict[str, Figures]:
    """Every peer asked for, one after the other on the same broker."""
    out: dict[str, Figures] = {}
    with bench_broker() as (broker, work):
        for name in opts.peers:
            r = start(name, broker, work / name)
            try:
                out[name] = measure(r, opts)
            finally:
                rc = r.stop()
            out[name].exit_status = rc
    return out


def print_figures(figs: dict[str, Figures], opts: Options) -> None:
    """The footprint figures, one column per peer."""
    rows: list[tuple[str, Callable[[Figures], str]]] = [
        ("start -> online (s)", lambda f: f"{f.online_s:.2f}"),
        ("RSS steady (MiB)", lambda f: f"{f.rss_mib:.1f}"),
        ("  anonymous (MiB)", lambda f: f"{f.anon_mib:.1f}"),
        ("  file-backed (MiB)", lambda f: f"{f.file_mib:.1f}"),
        ("  threads", lambda f: str(f.threads)),
        ("RSS peak, VmHWM (MiB)", lambda f: f"{f.peak_mib:.1f}"),
        (f"CPU idle over {opts.idle_s:g} s (% core)", lambda f: f"{f.cpu_idle_pct:.3f}"),
        (f"CPU at 1 cmd/s, {opts.minutes:g} min (% core)", lambda f: f"{f.cpu_1cps_pct:.3f}"),
    ]
    names = list(figs)
    print(f"{'':42}" + "".join(f"{n:>14}" for n in names))
    for label, fmt in rows:
        print(f"{label:42}" + "".join(f"{fmt(figs[n]):>14}" for n in names))


def parser(description: str) -> argparse.ArgumentParser:
    """The options shared by footprint.py and room.py."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds after online (default 5)")
    ap.add_argument("--idle", type=float, default=30.0, help="idle seconds measured (30)")
    ap.add_argument("--commands", type=int, default=1000, help="commands timed (1000)")
    ap.add_argument("--minutes", type=float, default=1.0,
                    help="minutes at one command a second (1; 10 for the figure)")
    ap.add_argument("--peers", default=",".join(PEERS), help="diemcau,mqtt-io")
    return ap


def options(args: argparse.Namespace) -> Options:
    peers = tuple(p.strip() for p in args.peers.split(",") if p.strip())
    bad = set(peers) - set(PEERS)
    if bad:
        raise SystemExit(f"unknown peer(s): {', '.join(sorted(bad))}")
    return Options(args.settle, args.idle, args.commands, args.minutes, peers)


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    opts = options(args)
    figs = run(opts)
    print_figures(figs, opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
