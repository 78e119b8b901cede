"""Fault campaign: a simulated room under random faults while windows open and close.

One loopback Mosquitto (persistence on), one simulated room agent in its own process (talking
to the broker through a small TCP proxy, so the link can be cut or stalled without touching the
broker) and a district-side *recorder*: a paho MQTT v5 client with a persistent session
(fixed client id, ``clean_start=False``, long session expiry, QoS 1) that sees every message
under ``diemcau/v2/rooms/<site>/`` and also plays the centre (schedule, commands).

Each cycle picks one random action: schedule a window that locks the room at once, remove one,
start one by command, mark one complete, press or hold the button, local ``on``/``off``,
district power commands with and without ``override`` (whole room or one device), an operator
check, ``kill -9`` or a clean restart of the agent, stop or ``kill -9`` of the broker, cutting
or stalling the link. At the end the broker and the agent both run until the room's outbox is
empty, the agent is stopped, and the figures are computed from what the recorder got, the
outbox and the simulated pins' history (``<state>/pins.log``):

* generated: the highest event ``seq`` the agent assigned (``Outbox.next_seq() - 1``);
* delivered: distinct ``seq`` the recorder got; duplicated: deliveries of an already seen one;
* lost: generated - delivered - still pending in the outbox - announced gaps
  (``events_dropped``);
* unsafe relay transitions: relay pins going to the OFF level while the room was locked
  (between a ``lock_engaged`` and the next ``lock_released``, by their ``ts``; a lock still
  open at the end counts till the end) that no district override explains;
* agent crashes: agent exits the campaign did not cause, and tracebacks in its stderr;
* commands handled twice: command ids answered with two different replies (a repeat must get
  the first reply again, word for word); commands never answered is reported, not judged
  (a broker killed before its autosave forgets what it had queued for the room).

Usage::

    .venv/bin/python bench/fault_campaign.py --cycles 200 --seed 1

Exit status 1 if any of unsafe / lost / crashes / handled twice is not zero. See
``bench/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.control import request
from agent.hardware.pins import read_pin_changes
from agent.outbox import Outbox
from broker.local import LocalBroker, free_port

SITE = "xa-loi"
BASE = f"diemcau/v2/rooms/{SITE}"
RECORDER_ID = "diemcau-fault-campaign-recorder"
DEVICES = {"codec": 26, "camera": 20, "amplifier": 21}
RELAY_PINS = {f"GPIO{n}": name for name, n in DEVICES.items()}

NOT_COVERED: tuple[str, ...] = ()
MAX_CLOCK_OFFSET = 3 * 3600.0
SERIAL_FAULTS = ("unplug", "silence", "garbage")


def site_config_text(port: int, lead_min: float = 1.0) -> str:
    """The campaign room: three relays (active-low coil, NC contact: powered = pin HIGH),
    each device on an emulated RS-232 port (power steps confirmed over serial, health
    polled every second, self-help on the codec), an RGB LED and a button."""
    return f"""\
site: {{id: {SITE}, name: "Xã Lỗi"}}
broker: {{host: 127.0.0.1, port: {port}, keepalive_s: 5}}
devices:
  codec: {{role: codec, relay: {{pin: 26}}, order: 1, off_grace_s: 2, ready_timeout_s: 5,
          driver: cisco_xapi, serial: {{url: /dev/codec}}, poll_s: 1,
          silent_polls_for_fault: 2, self_help: true, simulation: {{boot_s: 0.3}}}}
  camera: {{role: camera, relay: {{pin: 20}}, order: 2, off_grace_s: 2, ready_timeout_s: 5,
           driver: sony_visca, serial: {{url: /dev/camera}}, poll_s: 1,
           silent_polls_for_fault: 2, simulation: {{boot_s: 0.2}}}}
  amplifier: {{role: amplifier, relay: {{pin: 21}}, order: 3, off_grace_s: 1,
              ready_timeout_s: 5, driver: extron_sis, serial: {{url: /dev/amplifier}},
              poll_s: 1, simulation: {{boot_s: 0.1}}}}
status_led: {{kind: rgb, pins: {{red: 17, green: 27, blue: 22}}}}
button: {{pin: 16, hold_s: 0.5, bounce_s: 0}}
timing: {{lead_min: {lead_min}, heartbeat_s: 30, lock_hard_cap_min: 1}}
support:
  - {{name: "Tổ kỹ thuật", role: "Hỗ trợ", phone: "+84 205 3830 000"}}
"""


def parse_ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------- the link


class LinkProxy:
    """A TCP relay between the agent and the broker: ``cut()`` drops every connection and
    refuses new ones (a dead link), ``stall()`` holds every byte (a link gone silent) until
    ``resume()``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._up = True
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, name="proxy", daemon=True).start()

    @property
    def up(self) -> bool:
        return self._up and self._flowing.is_set()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            if not self._up:
                conn.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
                upstream.settimeout(None)
            except OSError:
                conn.close()
                continue
            with self._lock:
                self._conns.update((conn, upstream))
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                self._drop(s)

    def _drop(self, s: socket.socket) -> None:
        with self._lock:
            self._conns.discard(s)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()

    def cut(self) -> None:
        self._up = False
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            self._drop(s)

    def restore(self) -> None:
        self._up = True

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self.resume()
        self.cut()
        self._server.close()


# --------------------------------------------------------------------------- the recorder


class Recorder:
    """The district's view: every message under the room, over a persistent session."""

    def __init__(self, broker: LocalBroker) -> None:
        self._cv = threading.Condition()
        self.events: dict[int, dict[str, Any]] = {}
        self.deliveries = 0
        self.duplicates = 0
        self.live_online = 0  # non-retained "online" messages: the agent really connected
        self.replies: dict[str, dict[str, Any]] = {}
        self.reply_bytes: dict[str, set[bytes]] = {}  # command id -> distinct replies
        self.connected = threading.Event()
        self.connects = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=RECORDER_ID,
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 7 * 86400
        self.client.connect_async(broker.host, broker.port, keepalive=5, clean_start=False,
                                  properties=props)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe(f"{BASE}/#", qos=1)
        with self._cv:
            self.connects += 1
            self.connected.set()
            self._cv.notify_all()

    def _on_disconnect(self, *args: Any) -> None:
        self.connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic.removeprefix(BASE + "/")
        with self._cv:
            if topic == "events":
                ev = json.loads(msg.payload)
                self.deliveries += 1
                if ev["seq"] in self.events:
                    self.duplicates += 1
                else:
                    self.events[ev["seq"]] = ev
            elif topic == "availability" and msg.payload == b"online" and not msg.retain:
                self.live_online += 1
            elif topic == "replies":
                r = json.loads(msg.payload)
                if r.get("command_id"):
                    self.replies.setdefault(r["command_id"], r)
                    self.reply_bytes.setdefault(r["command_id"], set()).add(bytes(msg.payload))
            self._cv.notify_all()

    def wait(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``ready()`` (called under the recorder's lock) holds."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
            return True

    def publish(self, topic: str, payload: dict[str, Any], retain: bool = False) -> bool:
        if not self.connected.wait(15):
            return False
        info = self.client.publish(f"{BASE}/{topic}", json.dumps(payload).encode(), qos=1,
                                   retain=retain)
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(5)
        return info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --------------------------------------------------------------------------- figures


@dataclass
class Figures:
    cycles: int = 0
    seed: int = 0
    generated: int = 0
    delivered: int = 0
    duplicated: int = 0
    lost: int = 0
    commands_sent: int = 0
    commands_unanswered: int = 0
    handled_twice: int = 0
    pending: int = 0
    announced_gaps: int = 0
    unsafe: int = 0
    crashes: int = 0
    relay_off_transitions: int = 0
    off_during_lock_by_override: int = 0
    locks: int = 0
    spurious_releases: int = 0
    refusals: int = 0
    duration_s: float = 0.0
    actions: Counter[str] = field(default_factory=Counter)
    serial_faults: Counter[str] = field(default_factory=Counter)
    clock_jumps: int = 0
    lost_seqs: list[int] = field(default_factory=list)
    unsafe_detail: list[str] = field(default_factory=list)
    crash_detail: list[str] = field(default_factory=list)
    not_covered: tuple[str, ...] = NOT_COVERED

    @property
    def ok(self) -> bool:
        return (self.unsafe == 0 and self.lost == 0 and self.crashes == 0
                and self.handled_twice == 0)

    def table(self) -> str:
        rows = [
            ("cycles run", self.cycles),
            ("events generated", self.generated),
            ("events delivered", self.delivered),
            ("events duplicated", self.duplicated),
            ("events lost", self.lost),
            ("unsafe relay transitions", self.unsafe),
            ("agent crashes", self.crashes),
            ("commands handled twice", self.handled_twice),
        ]
        out = [f"fault campaign (seed {self.seed}, {self.duration_s:.0f} s)"]
        out += [f"  {name:<28}{value:>8}" for name, value in rows]
        out.append(f"  (still pending in outbox {self.pending}, announced gaps "
                   f"{self.announced_gaps}; locks {self.locks}, refused switch-offs "
                   f"{self.refusals}, relay off-transitions {self.relay_off_transitions}, "
                   f"of them overridden during a lock {self.off_during_lock_by_override})")
        out.append(f"  (commands sent {self.commands_sent}, never answered "
                   f"{self.commands_unanswered})")
        out.append(f"  lock releases with no cause (window_removed without a schedule "
                   f"change): {self.spurious_releases}")
        out.append("  actions: " + ", ".join(f"{k} {v}" for k, v in sorted(self.actions.items())))
        out.append(f"  clock jumps: {self.clock_jumps}")
        out.append("  serial faults: " + (", ".join(
            f"{k} {v}" for k, v in sorted(self.serial_faults.items())) or "none"))
        out += [f"  not covered: {n}" for n in self.not_covered]
        out += [f"  LOST seq {s}" for s in self.lost_seqs[:20]]
        out += [f"  UNSAFE {d}" for d in self.unsafe_detail[:20]]
        out += [f"  CRASH {d}" for d in self.crash_detail[:20]]
        return "\n".join(out)


def unsafe_transitions(events: list[dict[str, Any]], pins_log: Path,
                       ) -> tuple[list[str], int, int]:
    """Relay switch-offs during a lock not made by a district override: (details, all relay
    off-transitions, off-transitions during a lock made by an override).

    Clock-free, so clock jumps cannot fool it: the simulated pins log, for every change, the
    agent's next event number ``k`` (every event below ``k`` was recorded before the pin
    moved: the agent writes a decision's events first) and the reason of the power sequence
    that moved it. The room is locked at ``k`` if, in ``seq`` order, the last of
    ``lock_engaged``/``lock_released`` below ``k`` is an engagement.
    """
    marks = sorted((e["seq"], e["kind"] == "lock_engaged",
                    e.get("window_id") or e["data"].get("window_id"))
                   for e in events if e["kind"] in ("lock_engaged", "lock_released"))

    def lock_at(k: int) -> str | None:
        window = None
        for seq, engaged, wid in marks:
            if seq >= k:
                break
            window = wid if engaged else None
        return window

    level: dict[str, bool] = {}
    details = []
    offs = explained = 0
    for c in read_pin_changes(pins_log):
        if c.pin not in RELAY_PINS:
            continue
        was = level.get(c.pin)
        level[c.pin] = c.level
        if c.level or was is False or c.seq is None:
            continue
        offs += 1  # device powered = pin HIGH; LOW = device switched off
        window = lock_at(c.seq)
        if window is None:
            continue
        if c.reason.startswith("override:"):
            explained += 1
            continue
        details.append(f"{RELAY_PINS[c.pin]} ({c.pin}) switched off by pid {c.pid} for "
                       f"'{c.reason}' after event {c.seq - 1}, during the lock of {window}")
    return details, offs, explained


def spurious_releases(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``lock_released`` (``window_removed``) not caused by a schedule: a schedule change
    emits ``schedule_applied`` before the release it causes, in the same step (a few events
    apart at most, e.g. a ``window_power_up`` in between, stamped within milliseconds)."""
    by_seq = {e["seq"]: e for e in events}

    def caused(release: dict[str, Any]) -> bool:
        t = parse_ts(release["ts"])
        for s in range(release["seq"] - 1, release["seq"] - 6, -1):
            prev = by_seq.get(s)
            if prev is None:
                return True        # not seen: cannot tell, do not accuse
            if t - parse_ts(prev["ts"]) > 0.05:
                return False       # an earlier step
            if prev["kind"] == "schedule_applied":
                return True
        return False

    return [e for e in events if e["kind"] == "lock_released"
            and e["data"].get("reason") == "window_removed" and not caused(e)]


# --------------------------------------------------------------------------- the campaign


class Campaign:
    def __init__(self, seed: int, workdir: Path, quick: bool) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.workdir = Path(workdir)
        self.quick = quick
        self.state = self.workdir / "state"
        self.figs = Figures(seed=seed)
        self.broker = LocalBroker(self.workdir / "broker")
        self.agent: subprocess.Popen[bytes] | None = None
        self.agent_logs: list[Path] = []
        self.windows: dict[str, dict[str, Any]] = {}  # id -> start, end, scheduled, done
        self.version = 0
        self.n = 0
        self.clock_offset = 0.0
        self.sent_commands: list[str] = []

    # ---------------------------------------------------------------- parts
    def setup(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.broker.start()
        self.recorder = Recorder(self.broker)
        assert self.recorder.connected.wait(15), "recorder could not connect"
        # A clean stop saves the recorder's session (and subscription) in the persistence
        # file, so even a broker killed before its next autosave brings the session back.
        self.broker.stop()
        self.broker.start()
        assert self.recorder.wait(lambda: self.recorder.connects >= 2, 15)
        self.proxy = LinkProxy(self.broker.port)
        self.cfg = self.workdir / "site.yaml"
        self.cfg.write_text(site_config_text(self.proxy.port))
        self.start_agent()
        assert self.wait_online(0, 30), "agent never came online"

    def sock_path(self) -> Path:
        from agent.store import StateDir
        return StateDir(self.state).socket_path

    def start_agent(self) -> None:
        log = self.workdir / f"agent-{len(self.agent_logs) + 1}.log"
        self.agent_logs.append(log)
        with log.open("wb") as err:
            self.agent = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "--config", str(self.cfg), "--simulate",
                 "--broker", f"mqtt://127.0.0.1:{self.proxy.port}",
                 "--state-dir", str(self.state)],
                stdout=subprocess.DEVNULL, stderr=err, cwd=Path(__file__).resolve().parent.parent)
        deadline = time.monotonic() + 20
        while True:
            try:
                request(self.sock_path(), "status", timeout=5)
                return
            except (OSError, ValueError):
                if self.agent.poll() is not None:
                    self.crash(f"agent exited at start-up with {self.agent.returncode}")
                    return self.start_agent()
                if time.monotonic() > deadline:
                    raise RuntimeError("the agent did not come up in 20 s") from None
                time.sleep(0.05)

    def crash(self, what: str) -> None:
        self.figs.crashes += 1
        log = self.agent_logs[-1] if self.agent_logs else None
        tail = log.read_text(errors="replace")[-600:] if log and log.exists() else ""
        self.figs.crash_detail.append(f"cycle {self.n}: {what}; stderr tail: {tail!r}")

    def check_agent(self) -> None:
        assert self.agent is not None
        if self.agent.poll() is not None:
            self.crash(f"agent exited by itself with {self.agent.returncode}")
            self.start_agent()

    def link_up(self) -> bool:
        return self.broker.running and self.proxy.up

    def wait_online(self, since: int, timeout: float) -> bool:
        return self.recorder.wait(lambda: self.recorder.live_online > since, timeout)

    def pause(self, lo: float, hi: float) -> None:
        time.sleep(self.rng.uniform(lo, hi) * (0.3 if self.quick else 1.0))

    # ---------------------------------------------------------------- district
    def publish_schedule(self) -> None:
        self.version += 1
        ws = [w for w in self.windows.values() if w["scheduled"]]
        sched = {"version": f"fc-{self.version}", "site": SITE,
                 "windows": [{"id": w["id"], "kind": w["kind"], "title": "Lỗi thử",
                              "start": w["start"].isoformat(), "end": w["end"].isoformat()}
                             for w in ws]}
        self.recorder.publish("schedule", sched, retain=True)

    def command(self, name: str, **args: Any) -> dict[str, Any] | None:
        """Send a command; its reply, or None if none came in 5 s (the link is down: the
        room's MQTT session keeps the command and the room answers when it is back)."""
        cid = f"fc-{self.seed}-{self.n}-{name}-{self.rng.randrange(10**6)}"
        sent = self.recorder.publish("commands", {"id": cid, "name": name, "args": args,
                                                  "sender": "campaign"})
        if sent:
            self.sent_commands.append(cid)
            if self.rng.random() < 0.2:   # the centre did not see the reply: it sends again
                self.recorder.publish("commands", {"id": cid, "name": name, "args": args,
                                                   "sender": "campaign"})
        if not sent or not self.link_up():
            return None
        self.recorder.wait(lambda: cid in self.recorder.replies, 5)
        return self.recorder.replies.get(cid)

    def open_windows(self) -> list[dict[str, Any]]:
        return [w for w in self.windows.values() if not w["done"]]

    # ---------------------------------------------------------------- actions
    def a_schedule_window(self) -> None:
        # In the room's time, which a clock jump may have moved away from the district's.
        now = datetime.now(UTC) + timedelta(seconds=self.clock_offset)
        wid = f"w{self.n}"
        start = now + timedelta(seconds=self.rng.uniform(5, 40))  # lead 1 min: locks at once
        self.windows[wid] = {"id": wid, "kind": self.rng.choice(["test", "session"]),
                             "start": start,
                             "end": start + timedelta(minutes=self.rng.uniform(2, 10)),
                             "scheduled": True, "done": False}
        # Forget windows long done, as the district's schedule moves on.
        done = [w for w in self.windows.values() if w["done"] and w["scheduled"]]
        for w in done[:-2]:
            w["scheduled"] = False
        self.publish_schedule()

    def a_remove_window(self) -> None:
        ws = [w for w in self.open_windows() if w["scheduled"]]
        if not ws:
            return self.a_schedule_window()
        w = self.rng.choice(ws)
        w["scheduled"] = False
        w["done"] = True
        self.publish_schedule()

    def a_start_window(self) -> None:
        wid = f"a{self.n}"
        reply = self.command("start_window", window_id=wid,
                             kind=self.rng.choice(["test", "session"]), duration_min=5)
        if reply and reply["status"] == "accepted":
            now = datetime.now(UTC)
            self.windows[wid] = {"id": wid, "kind": "test", "start": now,
                                 "end": now + timedelta(minutes=5), "scheduled": False,
                                 "done": False}

    def a_complete_window(self) -> None:
        ws = self.open_windows()
        if not ws:
            return self.a_schedule_window()
        w = self.rng.choice(ws)
        reply = self.command("complete_window", window_id=w["id"])
        if reply and reply["status"] == "accepted":
            w["done"] = True

    def a_button(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            request(self.sock_path(), self.rng.choice(["press", "press", "hold"]))

    def a_local(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            request(self.sock_path(), self.rng.choice(["on", "off", "off"]))

    def a_district_power(self) -> None:
        args: dict[str, Any] = {"on": self.rng.random() < 0.4}
        if self.rng.random() < 0.5:
            args["override"] = True
        if self.rng.random() < 0.3:
            args["device"] = self.rng.choice(list(DEVICES))
        self.command("power", **args)

    def a_serial_fault(self) -> None:
        """A USB adapter pulled, a cable cut or noise on a line, then put right."""
        device = self.rng.choice(list(DEVICES))
        fault = self.rng.choice(SERIAL_FAULTS)
        self.figs.serial_faults[f"{fault}:{device}"] += 1
        with contextlib.suppress(OSError, ValueError):
            request(self.sock_path(), f"{fault}:{device}")
            if fault != "garbage":
                if self.rng.random() < 0.5:  # the room is used meanwhile
                    self.rng.choice([self.a_local, self.a_button, self.a_district_power])()
                self.pause(0.5, 4)
                request(self.sock_path(), f"{'replug' if fault == 'unplug' else 'speak'}:"
                                          f"{device}")

    def a_clock_jump(self) -> None:
        """The Pi's wall clock jumps (NTP step, a wrong saved time) and NTP sync comes and
        goes; the simulated clock moves the agent's time and its pins' log alike."""
        delta = self.rng.choice([-1, 1]) * self.rng.uniform(30, 1800)
        if abs(self.clock_offset + delta) > MAX_CLOCK_OFFSET:
            delta = -delta
        with contextlib.suppress(OSError, ValueError):
            if request(self.sock_path(), f"clock:{delta:+.0f}").get("ok"):
                self.clock_offset += round(delta)
                self.figs.clock_jumps += 1
            if self.rng.random() < 0.4:
                request(self.sock_path(), f"sync:{self.rng.choice(['0', '1', 'auto'])}")
        if self.rng.random() < 0.5:  # the room is used meanwhile
            self.rng.choice([self.a_local, self.a_button, self.a_district_power])()

    def a_operator_check(self) -> None:
        self.command("operator_check", timeout_s=5)

    def stop_agent(self, when: str = "") -> bool:
        """SIGTERM the agent; a crash is recorded if it does not stop within 15 s.
        Returns True if it stopped by itself."""
        assert self.agent is not None
        self.agent.send_signal(signal.SIGTERM)
        try:
            self.agent.wait(15)
        except subprocess.TimeoutExpired:
            self.agent.kill()
            self.agent.wait()
            self.crash(f"agent did not stop within 15 s of SIGTERM{when}")
            return False
        return True

    def a_agent_restart(self) -> None:
        assert self.agent is not None
        if self.stop_agent() and self.agent.returncode != 0:
            self.crash(f"agent exited {self.agent.returncode} after SIGTERM")
        self.start_agent()

    def a_agent_kill(self) -> None:
        assert self.agent is not None
        # Sometimes in the middle of something: a sequence, a refusal, a schedule change.
        if self.rng.random() < 0.5:
            self.rng.choice([self.a_local, self.a_district_power, self.a_schedule_window])()
            time.sleep(self.rng.uniform(0, 0.5))
        os.kill(self.agent.pid, signal.SIGKILL)
        self.agent.wait(10)
        if self.rng.random() < 0.3:  # the district goes on while the room is down
            self.a_schedule_window()
        self.pause(0, 2)
        self.start_agent()

    def a_broker_down(self, kill: bool) -> None:
        online = self.recorder.live_online
        (self.broker.kill if kill else self.broker.stop)()
        if self.rng.random() < 0.5:  # the room works on without the district
            self.rng.choice([self.a_local, self.a_button])()
        self.pause(0.2, 3)
        self.broker.start()
        self.after_link_back(online, republish=True)

    def after_link_back(self, online: int, republish: bool = False) -> None:
        """Let the recorder and the room reconnect (by themselves) before going on."""
        if not self.recorder.connected.wait(20):
            raise RuntimeError("the recorder did not reconnect")
        if republish:
            # A killed broker may come back with an older retained schedule.
            self.version += 1
            self.publish_schedule()
        if not self.wait_online(online, 90):
            self.check_agent()

    def a_link_cut(self) -> None:
        online = self.recorder.live_online
        self.proxy.cut()
        if self.rng.random() < 0.6:
            self.rng.choice([self.a_local, self.a_button, self.a_schedule_window])()
        self.pause(0.5, 4)
        self.proxy.restore()
        self.after_link_back(online)

    def a_link_stall(self) -> None:
        online = self.recorder.live_online
        self.proxy.stall()
        if self.rng.random() < 0.6:
            self.rng.choice([self.a_local, self.a_button])()
        self.pause(0.5, 3 if self.quick else 10)
        self.proxy.resume()
        # A short stall may pass unnoticed; a long one makes the room reconnect.
        self.wait_online(online, 2)
        if self.rng.random() < 0.5:
            self.proxy.cut()
            self.proxy.restore()
            self.after_link_back(online)

    ACTIONS: tuple[tuple[str, int], ...] = (
        ("schedule_window", 4), ("remove_window", 1), ("start_window", 1),
        ("complete_window", 3), ("button", 3), ("local", 3), ("district_power", 3),
        ("operator_check", 1), ("agent_kill", 3), ("agent_restart", 1),
        ("broker_stop", 1), ("broker_kill", 2), ("link_cut", 2), ("link_stall", 1),
        ("serial_fault", 3), ("clock_jump", 2),
    )

    # Every campaign, however short, has each of these at least once (at random places).
    MUST: tuple[str, ...] = ("schedule_window", "agent_kill", "broker_kill", "link_cut",
                             "district_power", "button", "local", "complete_window",
                             "serial_fault", "clock_jump")

    def plan(self, cycles: int) -> list[str]:
        names = [a for a, _ in self.ACTIONS]
        picks = list(self.MUST[:cycles]) + self.rng.choices(
            names, weights=[w for _, w in self.ACTIONS], k=max(0, cycles - len(self.MUST)))
        self.rng.shuffle(picks)
        return picks

    def cycle(self, name: str) -> None:
        self.n += 1
        self.figs.actions[name] += 1
        if name == "broker_stop":
            self.a_broker_down(kill=False)
        elif name == "broker_kill":
            self.a_broker_down(kill=True)
        else:
            getattr(self, f"a_{name}")()
        self.pause(0, 1.5)
        self.check_agent()

    # ---------------------------------------------------------------- the end
    def outbox_rows(self) -> int:
        db = sqlite3.connect(f"file:{self.state / 'outbox.sqlite'}?mode=ro", uri=True,
                             timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        finally:
            db.close()

    def drain(self, timeout: float = 90) -> None:
        """Broker, link and room all up until the outbox is empty; then stop the room."""
        assert self.agent is not None
        if not self.broker.running:
            self.broker.start()
        self.proxy.resume()
        self.proxy.restore()
        self.check_agent()
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(sqlite3.Error):
                if self.outbox_rows() == 0:
                    break
            if time.monotonic() > deadline:
                break
            self.recorder.wait(lambda: False, 0.2)  # wake on recorder traffic or 0.2 s
        self.check_agent()
        self.stop_agent(" at the end")

    def compute(self) -> None:
        f = self.figs
        with Outbox(self.state / "outbox.sqlite") as ob:
            f.generated = ob.next_seq() - 1
            pending = {r.seq for r in ob.pending()}
        f.pending = len(pending)
        expected = set(range(1, f.generated + 1)) - pending
        # Events the broker acknowledged just before the stop may still be on their way.
        self.recorder.wait(lambda: expected <= self.recorder.events.keys(), 20)
        with self.recorder._cv:
            events = list(self.recorder.events.values())
            f.delivered = len(self.recorder.events)
            f.duplicated = self.recorder.duplicates
        gaps: set[int] = set()
        for ev in events:
            if ev["kind"] == "events_dropped":
                gaps |= set(range(ev["data"]["first_seq"], ev["data"]["last_seq"] + 1))
        seen = {e["seq"] for e in events}
        missing = sorted(expected - seen - gaps)
        f.announced_gaps = len((expected - seen) & gaps)
        f.lost = len(missing)
        f.lost_seqs = missing
        f.locks = sum(e["kind"] == "lock_engaged" for e in events)
        f.refusals = sum(e["kind"] == "shutdown_refused" for e in events)
        f.spurious_releases = len(spurious_releases(events))
        with self.recorder._cv:
            f.commands_sent = len(self.sent_commands)
            f.commands_unanswered = sum(c not in self.recorder.replies
                                        for c in self.sent_commands)
            f.handled_twice = sum(len(v) > 1 for v in self.recorder.reply_bytes.values())
        with (self.workdir / "events.jsonl").open("w") as out:
            for e in sorted(events, key=lambda e: e["seq"]):
                out.write(json.dumps(e, ensure_ascii=False) + "\n")
        details, offs, explained = unsafe_transitions(events, self.state / "pins.log")
        f.unsafe = len(details)
        f.unsafe_detail = details
        f.relay_off_transitions = offs
        f.off_during_lock_by_override = explained
        for log in self.agent_logs:
            text = log.read_text(errors="replace") if log.exists() else ""
            if "Traceback" in text:
                f.crashes += text.count("Traceback")
                i = text.index("Traceback")
                f.crash_detail.append(f"{log.name}: {text[max(0, i - 200):i + 1200]}")

    def close(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.kill()
            self.agent.wait()
        with contextlib.suppress(Exception):
            self.recorder.close()
        with contextlib.suppress(Exception):
            self.proxy.close()
        self.broker.stop()


def run_campaign(cycles: int, seed: int, workdir: Path, quick: bool | None = None) -> Figures:
    """Run ``cycles`` random fault cycles in ``workdir`` (keep it short: it holds a Unix
    socket) and return the figures. ``quick`` shortens the random waits (default: under 20
    cycles)."""
    c = Campaign(seed, Path(workdir), quick if quick is not None else cycles < 20)
    t0 = time.monotonic()
    try:
        c.setup()
        for name in c.plan(cycles):
            c.cycle(name)
        c.figs.cycles = c.n
        c.drain()
        c.compute()
    finally:
        c.close()
    c.figs.duration_s = time.monotonic() - t0
    return c.figs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=50)
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from time)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where broker, room state and logs go (default: a new /tmp/dc-fc-*)")
    p.add_argument("--quick", action="store_true", help="shorter random waits")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dc-fc-"))
    workdir.mkdir(parents=True, exist_ok=True)
    figs = run_campaign(args.cycles, seed, workdir, quick=args.quick or None)
    print(figs.table())
    print(f"  workdir: {workdir}")
    return 0 if figs.ok else 1


if __name__ == "__main__":
    sys.exit(main())
