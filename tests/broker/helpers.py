"""Real Mosquitto processes and real paho clients (MQTT v5) for the broker tests.

Mosquitto itself runs as :class:`broker.local.BrokerProcess`. Nothing here sleeps hoping
something happened: every wait is on a condition with a deadline (a CONNACK, a PUBACK, a
message).
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

TIMEOUT = 5.0


@dataclass(frozen=True)
class Tls:
    """Files a TLS client uses."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool


class Client:
    """A paho MQTT v5 client with blocking helpers that wait on events, never on time."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None,
                 tls: Tls | None = None, host: str = "127.0.0.1",
                 client_id: str | None = None) -> None:
        self.host, self.port = host, port
        self.name = client_id or f"t-{username or 'anon'}-{uuid.uuid4().hex[:6]}"
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.name,
                             protocol=mqtt.MQTTv5)
        self.c.reconnect_delay_set(60, 120)  # a refused client must not quietly retry
        if username is not None:
            self.c.username_pw_set(username, password)
        if tls is not None:
            self.c.tls_set(ca_certs=str(tls.ca), certfile=str(tls.cert) if tls.cert else None,
                           keyfile=str(tls.key) if tls.key else None)
        self._cond = threading.Condition()
        self.connack: ReasonCode | None = None
        self.disconnect_reason: Any = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.messages: list[Message] = []
        self._pubacks: dict[int, ReasonCode] = {}
        self._subacks: dict[int, list[ReasonCode]] = {}
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = self._on_subscribe

    # -- callbacks (paho's thread): record and notify, nothing else
    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self.connack = rc
            if not rc.is_failure:
                self.connected.set()
            self._cond.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        with self._cond:
            self.disconnect_reason = rc
            self.disconnected.set()
            self._cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, msg.payload, bool(msg.retain)))
            self._cond.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self._pubacks[mid] = rc
            self._cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, rcs: list[ReasonCode], _p: Any) -> None:
        with self._cond:
            self._subacks[mid] = rcs
            self._cond.notify_all()

    def _wait(self, pred: Any, timeout: float) -> bool:
        with self._cond:
            return bool(self._cond.wait_for(pred, timeout))

    # -- blocking helpers
    def try_connect(self, timeout: float = TIMEOUT) -> bool:
        """Connect; True if the broker accepted (CONNACK success), False if it refused in any
        way (TLS handshake, CONNACK failure, connection dropped)."""
        try:
            self.c.connect(self.host, self.port, keepalive=30)
        except (ssl.SSLError, OSError) as e:
            self.disconnect_reason = e
            return False
        # Drive the network loop here (each call blocks in select() for at most 50 ms) until
        # CONNACK or a drop; only an accepted client gets the background thread.
        deadline = time.monotonic() + timeout
        while not (self.connack is not None or self.disconnected.is_set()):
            if time.monotonic() > deadline or self.c.loop(0.05) != mqtt.MQTT_ERR_SUCCESS:
                break
        if self.connected.is_set() and not self.disconnected.is_set():
            self.c.loop_start()
            return True
        self.c.disconnect()
        return False

    def connect(self) -> Client:
        """Connect or fail the test."""
        assert self.try_connect(), f"{self.name} refused: {self.connack} {self.disconnect_reason}"
        return self

    def publish(self, topic: str, payload: str | bytes, qos: int = 1,
                retain: bool = False) -> ReasonCode:
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        assert self._wait(lambda: info.mid in self._pubacks, TIMEOUT), f"no PUBACK for {topic}"
        return self._pubacks[info.mid]

    def subscribe(self, topic: str, qos: int = 1) -> list[ReasonCode]:
        """Subscribe and return the SUBACK reason codes."""
        _, mid = self.c.subscribe(topic, qos=qos)
        assert self._wait(lambda: mid in self._subacks, TIMEOUT), f"no SUBACK for {topic}"
        return self._subacks[mid]

    def received(self, payload: bytes, topic: str | None = None) -> Message | None:
        """The message with this payload (and topic), if it has arrived."""
        with self._cond:
            for m in self.messages:
                if m.payload == payload and (topic is None or m.topic == topic):
                    return m
        return None

    def wait_message(self, payload: bytes, topic: str | None = None,
                     timeout: float = TIMEOUT) -> Message | None:
        """Wait for the message with this payload (and topic); None on timeout."""
        self._wait(lambda: self.received(payload, topic) is not None, timeout)
        return self.received(payload, topic)

    def close(self) -> None:
        """Disconnect cleanly and stop the network thread."""
        self.c.disconnect()
        self.c.loop_stop()


def token() -> bytes:
    """A payload no other test sends."""
    return uuid.uuid4().hex.encode()
