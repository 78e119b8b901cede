"""Real Mosquitto processes and real paho clients (MQTT v5) for the broker tests.

Nothing here sleeps hoping something happened: every wait is on a condition with a deadline
(a socket that accepts, a CONNACK, a PUBACK, a message, a log line).
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from broker.local import find_mosquitto

TIMEOUT = 5.0


class BrokerProcess:
    """``mosquitto -c conf`` in the foreground; ``start`` returns once every port accepts."""

    def __init__(self, conf: Path, ports: list[int], log: Path) -> None:
        self.conf, self.ports, self.log = conf, ports, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 10.0) -> BrokerProcess:
        """Start and wait (polling the sockets) until every listener accepts connections."""
        self.proc = subprocess.Popen([find_mosquitto(), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        waiting = list(self.ports)
        while waiting:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err}\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not listen on {waiting}")
            try:
                with socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.2):
                    waiting.pop(0)
            except OSError:
                time.sleep(0.02)
        return self

    def log_text(self) -> str:
        """The broker's log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def reload_count(self) -> int:
        """How many times the broker has logged ``Reloading config.``."""
        return self.log_text().count("Reloading config.")

    def wait_reloaded(self, before: int, timeout: float = TIMEOUT) -> None:
        """Wait until the broker logged a reload after ``before`` reloads had been logged.

        Mosquitto has one thread: once the line is written, the reload finishes before it
        handles any new connection, so a client connecting afterwards sees the new files.
        """
        deadline = time.monotonic() + timeout
        while self.reload_count() <= before:
            assert time.monotonic() < deadline, "broker did not reload"
            time.sleep(0.01)

    def sighup(self) -> None:
        """Ask the broker to reload its password file, ACL and CRL."""
        os.kill(self.pid, signal.SIGHUP)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None


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
