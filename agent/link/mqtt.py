"""The paho-mqtt client of a room: availability with a last will, state, events, replies.

paho's network thread only puts messages on the agent's queue (:class:`Incoming`,
:class:`Published`, :class:`~agent.core.events.BrokerConnection`); it never decides anything,
and nothing it calls may raise (an exception in a paho callback ends the network thread).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config import Broker
from agent.core.events import BrokerConnection
from agent.link.topics import RoomTopics

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"


@dataclass(frozen=True)
class Incoming:
    """A message for this room (``kind`` is ``command`` or ``schedule``)."""

    kind: str
    payload: bytes
    retained: bool = False
    correlation: bytes | None = None


@dataclass(frozen=True)
class Published:
    """The broker acknowledged a QoS 1 publish: time to look at what is in flight.

    paho calls ``on_publish`` before it marks the message published and while holding its own
    lock, so the loop checks ``MQTTMessageInfo.is_published()`` itself instead of mapping mids
    here (which would race with ``publish()`` returning).
    """


def nodelay(client: mqtt.Client) -> None:
    """Send small MQTT packets at once: without TCP_NODELAY a reply or event can wait for the
    broker's delayed ACK (tens of milliseconds on every exchange)."""
    sock = client.socket()
    with contextlib.suppress(OSError, AttributeError):
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def parse_broker_url(url: str) -> tuple[str, int]:
    """``mqtt://host:port`` → (host, port); raises ``ValueError`` with the reason."""
    u = urlparse(url if "://" in url else f"mqtt://{url}")
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise ValueError(f"broker URL {url!r}: expected mqtt://HOST:PORT")
    return u.hostname, u.port or (8883 if u.scheme == "mqtts" else 1883)


class Link:
    """One MQTT v5 connection to the district broker, reconnecting by itself."""

    def __init__(self, cfg: Broker, topics: RoomTopics, put: Callable[[Any], None],
                 host: str | None = None, port: int | None = None,
                 use_files: bool = True) -> None:
        self.cfg = cfg
        self.topics = topics
        self.host = host or cfg.host
        self.port = port or cfg.port
        self._put = put
        self.connected = False
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"diemcau-room-{topics.site}",
                                  protocol=mqtt.MQTTv5)
        self.client.enable_logger(logging.getLogger("paho"))
        self.client.reconnect_delay_set(min_delay=1, max_delay=60)
        self.client.will_set(topics.availability, OFFLINE, qos=1, retain=True)
        creds = cfg.credentials() if use_files else None
        if creds is not None:
            self.client.username_pw_set(creds.username, creds.password.get_secret_value())
        if cfg.tls is not None and use_files:
            self.client.tls_set(ca_certs=str(cfg.tls.ca_file),
                                certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
                                keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
                                cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            if cfg.tls.insecure_skip_verify:
                self.client.tls_insecure_set(True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    # lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers."""
        self.client.connect_async(self.host, self.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()

    def stop(self, timeout: float = 3.0) -> None:
        """Say ``offline`` (retained) and disconnect cleanly."""
        if self.connected:
            info = self.client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
        self.client.disconnect()
        self.client.loop_stop()

    # outgoing --------------------------------------------------------------------
    def publish_state(self, payload: bytes) -> None:
        self.client.publish(self.topics.state, payload, qos=1, retain=True)

    def publish_event(self, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        """Send one event (QoS 1); its info reports ``is_published()`` after the PUBACK.

        Returns None when not connected: the event stays in the outbox for the next connect.
        """
        if not self.connected:
            return None
        info = self.client.publish(self.topics.events, payload, qos=1)
        return info if info.rc == mqtt.MQTT_ERR_SUCCESS else None

    def publish_reply(self, payload: bytes, correlation: bytes | None = None) -> None:
        props = None
        if correlation is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = correlation
        self.client.publish(self.topics.replies, payload, qos=1, properties=props)

    # paho callbacks (network thread: never raise) ---------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        try:
            if reason.is_failure:
                log.warning("broker refused connection: %s", reason)
                return
            nodelay(client)
            client.subscribe([(self.topics.commands, 1), (self.topics.schedule, 1)])
            client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
            self.connected = True
            self._put(BrokerConnection(True))
        except Exception:  # pragma: no cover - defensive: keep paho's thread alive
            log.exception("on_connect failed")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        try:
            was = self.connected
            self.connected = False
            if was:
                self._put(BrokerConnection(False))
        except Exception:  # pragma: no cover
            log.exception("on_disconnect failed")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            kind = {self.topics.commands: "command", self.topics.schedule: "schedule"}.get(
                msg.topic)
            if kind is None:
                return
            corr = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
            self._put(Incoming(kind, bytes(msg.payload), bool(msg.retain), corr))
        except Exception:  # pragma: no cover
            log.exception("on_message failed")

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        try:
            self._put(Published())
        except Exception:  # pragma: no cover
            log.exception("on_publish failed")
