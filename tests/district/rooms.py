"""A scripted room that speaks MQTT contract 2.0 (``/work``'s ``spec/contract-v2.md``) exactly,
for the console's tests.

It does what a room agent does on the wire, with nothing behind it: a persistent MQTT v5
session (client id ``diemcau-room-<site>``, clean start only the first time, Session Expiry
7 days), ``availability`` retained with a last will, retained ``state``/``info``/``host``,
events with a ``seq`` kept in an outbox until the broker acknowledged them, sent again from the
backlog with ``late`` after the link comes back, replies to commands (exactly once: a repeated
id gets the first reply), and the schedule's digest over the bytes received.

Tests drive it step by step (``room.event("window_ready", {...}, ts=...)``) with times from the
scenario's clock. The methods a scenario uses (:class:`RoomDriver`) are those the real agent
can be driven through too (its ``--simulate`` mode, its control socket and a fake clock), so a
test can take either.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.clock import iso_ms

PREFIX = "diemcau/v2"
TIMEOUT = 10.0


def compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class RoomDriver(Protocol):
    """What a console test does with a room (scripted here; the real agent later)."""

    site: str

    def connect(self) -> None: ...
    def drop(self) -> None: ...
    def stop_clean(self) -> None: ...
    def event(self, kind: str, data: dict[str, Any] | None = None, *, ts: float,
              window_id: str | None = None) -> dict[str, Any]: ...
    def flush(self, now: float) -> list[dict[str, Any]]: ...
    def publish_state(self, now: float, **changes: Any) -> dict[str, Any]: ...


@dataclass
class Outgoing:
    """An event in the room's outbox."""

    envelope: dict[str, Any]
    sent: bool = False


@dataclass
class ScriptedRoom:
    """One room on the wire. ``clock`` gives the room's "now" for replies and auto events."""

    site: str
    host: str
    port: int
    clock: Callable[[], float]
    auto_apply_schedule: bool = True
    auto_ack_checks: float | None = None
    """Acknowledge operator checks at once with this latency (an operator at the button)."""
    outbox: list[Outgoing] = field(default_factory=list)
    seq: int = 0
    connected: bool = False
    schedules: list[bytes] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    arrivals: list[str] = field(default_factory=list)
    """``command`` / ``schedule``, in the order they arrived."""

    def __post_init__(self) -> None:
        self.base = f"{PREFIX}/rooms/{self.site}"
        self._lock = threading.RLock()
        self._cv = threading.Condition(self._lock)
        self._first = True
        self.client = self._client()
        self.state = {
            "api": "2.0", "site": self.site, "power": "off",
            "devices": {"codec": {"power": "off", "health": "ok", "reason": "",
                                  "reported_power": "off", "in_call": False,
                                  "model": "Room Kit", "serial": "FOC123"}},
            "sequence": None, "lock": {"locked": False}, "window": None, "next_window": None,
            "schedule": {"version": None, "digest": None, "rejected": None},
            "operator": {"check": None, "last_check_in": None, "last_ack": None,
                         "help_requested": None},
            "led": "idle", "link": {"since": None, "reconnects": 0},
            "clock": {"synced": True, "trusted": True}, "last_seq": 0, "ts": None}

    # ------------------------------------------------------------------ the link
    def _client(self) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"diemcau-room-{self.site}",
                        protocol=mqtt.MQTTv5)
        c.will_set(f"{self.base}/availability", b"offline", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        return c

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            return
        opts = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe([(f"{self.base}/commands", opts), (f"{self.base}/schedule", opts)])
        client.publish(f"{self.base}/availability", b"online", qos=1, retain=True)
        with self._cv:
            self.connected = True
            self._cv.notify_all()

    def _on_disconnect(self, *_a: Any) -> None:
        with self._cv:
            self.connected = False
            self._cv.notify_all()

    def connect(self) -> None:
        """Connect (a persistent session: clean start only the first time) and say online."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 604800
        clean: Any = self._first
        self._first = False
        self.client.connect(self.host, self.port, keepalive=30, clean_start=clean,
                            properties=props)
        self.client.loop_start()
        with self._cv:
            assert self._cv.wait_for(lambda: self.connected, TIMEOUT), "room did not connect"
        # availability online is QoS 1: publish it again and wait for its PUBACK, so that the
        # test knows the broker has it.
        self._send(f"{self.base}/availability", b"online", retain=True)

    def drop(self) -> None:
        """Lose the link abruptly: the broker publishes the last will (``offline``)."""
        rc = ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
        self.client.disconnect(reasoncode=rc)
        self.client.loop_stop()
        with self._cv:
            self.connected = False

    def stop_clean(self) -> None:
        """A clean stop: ``offline`` (retained), then DISCONNECT."""
        self._send(f"{self.base}/availability", b"offline", retain=True)
        self.client.disconnect()
        self.client.loop_stop()
        with self._cv:
            self.connected = False

    def close(self) -> None:
        """Stop the network thread (tests' clean-up)."""
        if self.connected:
            self.client.disconnect()
        self.client.loop_stop()

    def _send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), f"no PUBACK for {topic}"

    # ------------------------------------------------------------------ what rooms publish
    def event(self, kind: str, data: dict[str, Any] | None = None, *, ts: float,
              window_id: str | None = None, clock_trusted: bool = True) -> dict[str, Any]:
        """Record an event; send it now if the link is up, else it waits in the outbox."""
        with self._lock:
            self.seq += 1
            env: dict[str, Any] = {"seq": self.seq, "id": uuid.uuid4().hex, "ts": iso_ms(ts),
                                   "kind": kind, "clock_trusted": clock_trusted}
            if window_id is not None:
                env["window_id"] = window_id
            env["data"] = {k: v for k, v in (data or {}).items() if v is not None}
            item = Outgoing(env)
            self.outbox.append(item)
            self.state["last_seq"] = self.seq
            up = self.connected
        if up:
            self._send(f"{self.base}/events", compact(env))
            item.sent = True
        return env

    def flush(self, now: float) -> list[dict[str, Any]]:
        """Send the backlog (events made while the link was down), each with ``late``."""
        sent = []
        for item in self.outbox:
            if item.sent:
                continue
            env = dict(item.envelope)
            env["late"] = {"first_due": item.envelope["ts"], "sent": iso_ms(now)}
            self._send(f"{self.base}/events", compact(env))
            item.sent = True
            sent.append(env)
        return sent

    def replay(self, from_seq: int, now: float) -> int:
        """Send again every event from ``from_seq`` (an outbox that lost its PUBACKs), each
        with ``late``: duplicates the console must drop."""
        n = 0
        for item in self.outbox:
            if item.envelope["seq"] >= from_seq and item.sent:
                env = dict(item.envelope)
                env["late"] = {"first_due": item.envelope["ts"], "sent": iso_ms(now)}
                self._send(f"{self.base}/events", compact(env))
                n += 1
        return n

    def publish_state(self, now: float, **changes: Any) -> dict[str, Any]:
        """Publish the state (retained) with ``changes`` applied."""
        with self._lock:
            self.state.update(changes)
            self.state["ts"] = iso_ms(now)
            payload = compact(self.state)
        self._send(f"{self.base}/state", payload, retain=True)
        return json.loads(payload)

    def publish_info(self, now: float) -> None:
        self._send(f"{self.base}/info", compact({
            "api": "2.0", "site": self.site, "name": self.site, "centre": "Trung tâm",
            "timezone": "Asia/Ho_Chi_Minh", "agent_version": "0.2.0",
            "config_hash": "f72a7a722956",
            "devices": {"codec": {"role": "codec", "label": "Codec", "driver": "cisco_xapi"}},
            "support": [], "ts": iso_ms(now)}), retain=True)

    def publish_host(self, now: float, **values: Any) -> None:
        host = {"cpu_temp_c": 48.3, "load": [0.2, 0.1, 0.1], "mem_used_pct": 23.5,
                "disk_used_pct": 31.0, "uptime_s": 86400, "alerts": [], "ts": iso_ms(now)}
        host.update(values)
        self._send(f"{self.base}/host", compact(host), retain=True)

    # ------------------------------------------------------------------ what rooms receive
    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/schedule"):
            self.arrivals.append("schedule")
            self._schedule(bytes(msg.payload))
        elif msg.topic.endswith("/commands"):
            self.arrivals.append("command")
            self._command(bytes(msg.payload))

    def _schedule(self, payload: bytes) -> None:
        digest = hashlib.sha256(payload).hexdigest()[:16]
        body = json.loads(payload)
        with self._cv:
            self.schedules.append(payload)
            self._cv.notify_all()
        if not self.auto_apply_schedule:
            return
        now = self.clock()
        self._event_nowait("schedule_applied", {"version": body["version"], "digest": digest,
                                                "windows": len(body["windows"])}, now)
        with self._lock:
            self.state["schedule"] = {"version": body["version"], "digest": digest,
                                      "rejected": None}
            self.state["ts"] = iso_ms(now)
            payload_state = compact(self.state)
        self.client.publish(f"{self.base}/state", payload_state, qos=1, retain=True)

    def _event_nowait(self, kind: str, data: dict[str, Any], ts: float,
                      window_id: str | None = None) -> None:
        """An event from paho's thread: published without waiting for its PUBACK."""
        with self._lock:
            self.seq += 1
            env: dict[str, Any] = {"seq": self.seq, "id": uuid.uuid4().hex, "ts": iso_ms(ts),
                                   "kind": kind, "clock_trusted": True}
            if window_id:
                env["window_id"] = window_id
            env["data"] = data
            self.outbox.append(Outgoing(env, sent=True))
            self.state["last_seq"] = self.seq
        self.client.publish(f"{self.base}/events", compact(env), qos=1)

    def _command(self, payload: bytes) -> None:
        cmd = json.loads(payload)
        cid = cmd["id"]
        with self._cv:
            self.commands.append(cmd)
            first = self.replies.get(cid)
            self._cv.notify_all()
        if first is None:
            first = {"command_id": cid, "status": "accepted", "reason": "", "data": {},
                     "site": self.site, "ts": iso_ms(self.clock())}
            name, args = cmd["name"], cmd.get("args", {})
            if name == "operator_check":
                first["data"] = {"check_id": cid}
                self._event_nowait("operator_check_requested",
                                   {"check_id": cid, "timeout_s": args.get("timeout_s"),
                                    "by": cmd.get("sender")}, self.clock())
                if self.auto_ack_checks is not None:
                    self._event_nowait("operator_check_acknowledged",
                                       {"check_id": cid, "latency_s": self.auto_ack_checks},
                                       self.clock())
            elif name == "complete_window":
                wid = args["window_id"]
                self._event_nowait("window_completed", {"by": cmd.get("sender"),
                                                        "command_id": cid, "via": "command"},
                                   self.clock(), wid)
                self._event_nowait("lock_released", {"reason": "completed"}, self.clock(), wid)
            with self._cv:
                self.replies[cid] = first
        self.client.publish(f"{self.base}/replies", compact(first), qos=1)

    def wait_commands(self, n: int, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Wait until ``n`` commands have arrived."""
        with self._cv:
            assert self._cv.wait_for(lambda: len(self.commands) >= n, timeout), (
                f"{self.site}: {len(self.commands)} commands, wanted {n}")
            return list(self.commands)

    def wait_schedules(self, n: int, timeout: float = TIMEOUT) -> list[bytes]:
        """Wait until ``n`` schedule messages have arrived."""
        with self._cv:
            assert self._cv.wait_for(lambda: len(self.schedules) >= n, timeout), (
                f"{self.site}: {len(self.schedules)} schedules, wanted {n}")
            return list(self.schedules)
