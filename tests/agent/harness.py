"""Shared helpers for tests against a real Mosquitto: a watcher that sees every room topic,
an agent running in a thread, and site configs pointing at the test broker."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from agent.cli import serve
from agent.config import SiteConfig, parse_config
from agent.contract.events import EVENT_TYPES
from agent.contract.messages import MESSAGES
from agent.contract.validate import problems as schema_problems
from agent.control import request
from agent.hardware.pins import mock_factory
from agent.link.wire import dumps
from agent.runtime import Agent, Stop
from agent.store import StateDir
from broker.local import LocalBroker

SITE = "xa-thu"
BASE = f"diemcau/v2/rooms/{SITE}"


def site_yaml(broker: LocalBroker, lead_min: float = 15, site: str = SITE) -> str:
    return f"""\
site: {{id: {site}, name: "Xã Thử"}}
broker: {{host: 127.0.0.1, port: {broker.port}, keepalive_s: 5}}
devices:
  codec: {{role: codec, relay: {{pin: 26}}, order: 1, on_delay_s: 0, off_grace_s: 0}}
  camera: {{role: camera, relay: {{pin: 20}}, order: 2, on_delay_s: 0}}
  amplifier: {{role: amplifier, relay: {{pin: 21}}, order: 3, on_delay_s: 0}}
status_led: {{kind: rgb, pins: {{red: 17, green: 27, blue: 22}}}}
button: {{pin: 16, hold_s: 0.5, bounce_s: 0}}
timing: {{lead_min: {lead_min}, heartbeat_s: 30}}
support:
  - {{name: "Tổ kỹ thuật", role: "Hỗ trợ", phone: "+84 205 3830 000"}}
"""


def site_config(broker: LocalBroker, **kw: Any) -> SiteConfig:
    return parse_config(site_yaml(broker, **kw))


class NoBroker:
    """For a room that never connects (``connect=False``): only a port for its config."""

    port = 1883


def offline_config(**kw: Any) -> SiteConfig:
    """The test room's config for an agent driven by ``handle()`` without a broker."""
    return parse_config(site_yaml(NoBroker(), **kw))  # type: ignore[arg-type]


ROOM_PUBLISHES = ("availability", "info", "state", "host", "events", "replies")
ENVELOPE = ("window_id", "clock_trusted", "late", "seq", "id", "ts")


class Watcher:
    """A centre-side client: records every message under the room and waits for them.

    Every JSON message the room publishes is checked against its contract model
    (``agent.contract.messages``); :meth:`close` fails the test if one did not match."""

    def __init__(self, broker: LocalBroker, base: str = BASE, persistent: bool = False) -> None:
        """``persistent``: a session the broker keeps (and saves on a clean stop), so nothing
        the room publishes while the watcher reconnects after a broker restart is missed."""
        self.base = base
        self.messages: list[tuple[str, bytes, bool]] = []
        self.invalid: list[str] = []
        self._cv = threading.Condition()
        self._connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id="test-watcher" if persistent else "")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        props = None
        if persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        self.client.connect(broker.host, broker.port, clean_start=not persistent,
                            properties=props)
        self.client.loop_start()
        assert self._connected.wait(10), "watcher could not connect"

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe(f"{self.base}/#", qos=1)
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic.removeprefix(self.base + "/")
        # What the room publishes keeps to the published JSON Schemas too, not only to the
        # models they are made from (commands and schedules here are the tests' own, bad
        # ones on purpose among them).
        if topic in ROOM_PUBLISHES:
            self.invalid.extend(f"{p}: {msg.payload[:300]!r}"
                                for p in schema_problems(topic, bytes(msg.payload)))
        model = MESSAGES.get(topic)
        if model is not None:
            try:
                model.model_validate_json(msg.payload)
                if topic == "events":
                    ev = json.loads(msg.payload)
                    EVENT_TYPES[ev["kind"]](**ev["data"])   # exactly the kind's fields
            except (ValidationError, KeyError, TypeError) as e:
                self.invalid.append(f"{topic}: {msg.payload[:300]!r}: {e!r}")
            with contextlib.suppress(ValueError):
                if dumps(json.loads(msg.payload)) != msg.payload:
                    self.invalid.append(f"{topic}: not compact UTF-8 JSON: {msg.payload[:200]!r}")
        with self._cv:
            self.messages.append((topic, bytes(msg.payload), bool(msg.retain)))
            self._cv.notify_all()

    def wait(self, topic: str, match: Callable[[Any], bool] = lambda _: True,
             timeout: float = 10.0, raw: bool = False, since: int = 0) -> Any:
        """The first message on ``topic`` (after the room base) for which ``match`` holds,
        among those received after the first ``since``."""
        deadline = time.monotonic() + timeout
        seen = since
        with self._cv:
            while True:
                for t, payload, _ in self.messages[seen:]:
                    if t == topic:
                        value = payload if raw else json.loads(payload)
                        if match(value):
                            return value
                seen = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [(t, p[:200]) for t, p, _ in self.messages if t == topic][-5:]
                    raise AssertionError(f"nothing matching on {topic} in {timeout}s; last: {got}")
                self._cv.wait(left)

    def until(self, ready: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0,
              ) -> list[dict[str, Any]]:
        """Wait until ``ready(events so far)`` holds; return the events."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                evs = [json.loads(p) for t, p, _ in self.messages if t == "events"]
                if ready(evs):
                    return evs
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"events never got ready in {timeout}s; "
                                         f"last: {[e['kind'] for e in evs][-10:]}")
                self._cv.wait(left)

    def event(self, kind: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        """The first event of ``kind`` whose fields match (``window_id`` and the other
        envelope fields are looked up in the envelope, the rest in ``data``)."""
        return self.wait("events", lambda e: e["kind"] == kind and all(
            (e.get(k) if k in ENVELOPE else e["data"].get(k)) == v
            for k, v in fields.items()), timeout)

    def availability(self, value: str, timeout: float = 10.0) -> None:
        self.wait("availability", lambda v: v == value.encode(), timeout, raw=True)

    def events(self) -> list[dict[str, Any]]:
        with self._cv:
            return [json.loads(p) for t, p, _ in self.messages if t == "events"]

    def publish(self, topic: str, payload: Any, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(f"{self.base}/{topic}", data, qos=1, retain=retain).wait_for_publish(5)

    def command(self, cid: str, name: str, **args: Any) -> dict[str, Any]:
        """Send a command and return its reply."""
        with self._cv:
            mark = len(self.messages)
        self.publish("commands", {"id": cid, "name": name, "args": args, "sender": "test"})
        return self.wait("replies", lambda r: r["command_id"] == cid,  # type: ignore[no-any-return]
                         since=mark)

    def latest(self, topic: str) -> Any:
        """The last message received on ``topic``, decoded, or None."""
        with self._cv:
            for t, p, _ in reversed(self.messages):
                if t == topic:
                    return json.loads(p)
        return None

    def count(self, topic: str) -> int:
        with self._cv:
            return sum(t == topic for t, _, _ in self.messages)

    def raw_replies(self, cid: str) -> list[bytes]:
        """Every reply to command ``cid``, as received (bytes)."""
        with self._cv:
            return [p for t, p, _ in self.messages
                    if t == "replies" and json.loads(p)["command_id"] == cid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        assert not self.invalid, "messages not matching the contract:\n" + "\n".join(
            self.invalid[:5])


@contextmanager
def watcher(broker: LocalBroker, persistent: bool = False) -> Iterator[Watcher]:
    w = Watcher(broker, persistent=persistent)
    try:
        yield w
    finally:
        w.close()


class RunningAgent:
    """An agent on mock pins, its loop in a thread, as ``diemcau-agent run --simulate``."""

    def __init__(self, cfg: SiteConfig, state_dir: Path, factory: Any = None,
                 emulate: bool = False) -> None:
        self.factory = factory or mock_factory()
        self.agent = Agent(cfg, self.factory, StateDir(state_dir), emulate=emulate)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=serve, args=(self.agent, True, self._stop),
                                       daemon=True)
        self.thread.start()
        assert self.agent.started.wait(10)

    def stop(self) -> None:
        self._stop.set()
        self.agent.queue.put(Stop())   # the loop sleeps until its next deadline: wake it
        self.thread.join(10)
        assert not self.thread.is_alive(), "agent loop did not stop"


@contextmanager
def running(cfg: SiteConfig, state_dir: Path, factory: Any = None,
            emulate: bool = False) -> Iterator[RunningAgent]:
    r = RunningAgent(cfg, state_dir, factory, emulate)
    try:
        yield r
    finally:
        r.stop()


def schedule(start_in_min: float, *, length_min: float = 30, wid: str = "t1",
             kind: str = "test", version: str = "v1") -> dict[str, object]:
    """A schedule message with one window starting ``start_in_min`` from now."""
    start = datetime.now(UTC) + timedelta(minutes=start_in_min)
    return {"version": version, "site": SITE, "windows": [
        {"id": wid, "kind": kind, "title": "Kiểm tra kết nối",
         "start": start.isoformat(), "end": (start + timedelta(minutes=length_min)).isoformat()}]}


def start_agent(cfg_path: Path, broker: LocalBroker, state: Path,
                stderr: int = subprocess.DEVNULL,
                env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``python -m agent run --simulate`` as its own process (it can be killed for real);
    ``env`` adds to the environment (e.g. a test hook)."""
    return subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(cfg_path),
                             "--simulate", "--broker", broker.url, "--state-dir", str(state)],
                            stdout=subprocess.DEVNULL, stderr=stderr,
                            env={**os.environ, **(env or {})})


def status_when_up(state: Path, proc: subprocess.Popen[bytes], timeout: float = 20) -> Any:
    """The agent's status as soon as its control socket answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return request(StateDir(state).socket_path, "status")["state"]
        except OSError:
            assert proc.poll() is None, "the agent exited"
            assert time.monotonic() < deadline, "the agent did not come up"
            time.sleep(0.05)
