"""The paho-mqtt client of a room: a persistent MQTT v5 session to the centre's broker.

* **Session**: client id ``diemcau-room-<site>``, ``clean_start=False`` on every connect (the
  first one too: Mosquitto 2.0.11 does not write a session begun with a clean start to its
  persistence file, so a broker restart before the room's first reconnect would lose it),
  Session Expiry Interval 7 days: commands sent while the room is away wait for it.
* **Manual acknowledgement**: paho does not PUBACK a command or schedule by itself; the agent
  calls :meth:`Link.ack` once the message's decision is on disk, so a crash in between leaves
  the message with the broker, which sends it again on the next connect. Receive Maximum caps
  how many unacknowledged messages the broker sends at once.
* **Subscriptions** with ``retain_handling=1``: retained messages come only on a new
  subscription, not again on every reconnect inside the session.
* **Reconnects**: back-off 1 → 60 s with decorrelated random jitter (:class:`Backoff`), so a
  thousand rooms that lost the same broker do not all come back in the same second.
* **Bounded**: paho's outgoing queue is capped (:data:`MAX_OUTGOING`); PUBACKs are coalesced
  into at most one :class:`Published` on the agent's queue at a time.

paho's network thread only puts messages on the agent's queue (:class:`Incoming`,
:class:`Published`, :class:`~agent.core.events.BrokerConnection`); it never decides anything,
and nothing it calls may raise (an exception in a paho callback ends the network thread).
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.config import Broker
from agent.core.events import BrokerConnection
from agent.link.topics import HaTopics, RoomTopics

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"
SESSION_EXPIRY_S = 7 * 86400
"""Session Expiry Interval: the broker keeps the room's session (and its commands) this long."""
RECEIVE_MAXIMUM = 20
"""At most this many unacknowledged commands/schedules in flight from the broker."""
MAX_OUTGOING = 500
"""paho's outgoing queue bound (events in flight are capped lower by the agent)."""
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 60.0


@dataclass(frozen=True)
class Incoming:
    """A message for this room (``kind`` is ``command`` or ``schedule``; with Home Assistant
    on, also ``ha`` for its command topics and ``ha_status`` for its birth message).

    ``mid``/``qos``/``generation`` identify it to :meth:`Link.ack` (None/0 when it did not come
    from the broker, e.g. in tests); ``topic`` is where it came (for ``ha``)."""

    kind: str
    payload: bytes
    retained: bool = False
    correlation: bytes | None = None
    mid: int | None = None
    qos: int = 0
    generation: int = 0
    topic: str = ""


@dataclass(frozen=True)
class Published:
    """The broker acknowledged at least one QoS 1 publish: time to look at what is in flight.

    At most one is waiting on the agent's queue at a time, so a long backlog going out never
    buries a button press under thousands of these; :meth:`Link.take_published` gives the
    packet ids acknowledged since (paho calls ``on_publish`` before it marks the message
    published, so ``MQTTMessageInfo.is_published()`` alone could miss the last one)."""


class Backoff:
    """Reconnect delays from ``min_s`` to ``max_s`` with decorrelated jitter: each delay is
    drawn uniformly between ``min_s`` and three times the previous one (capped), so delays
    grow roughly exponentially and no two rooms keep retrying in step."""

    def __init__(self, min_s: float = RECONNECT_MIN_S, max_s: float = RECONNECT_MAX_S,
                 rng: random.Random | None = None) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError("need 0 < min_s <= max_s")
        self.min_s = min_s
        self.max_s = max_s
        self._rng = rng or random.Random()
        self._last = min_s

    def next(self) -> float:
        """The delay before the next attempt."""
        self._last = min(self.max_s, self._rng.uniform(self.min_s, self._last * 3))
        return self._last

    def reset(self) -> None:
        """Connected: the next loss starts from the bottom again."""
        self._last = self.min_s


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
    """One MQTT v5 connection to the centre's broker, reconnecting by itself.

    ``clock`` gives wall-clock seconds for the link times the state and events report;
    ``ha`` (when Home Assistant is enabled) adds its status and command topics.
    """

    def __init__(self, cfg: Broker, topics: RoomTopics, put: Callable[[Any], None],
                 host: str | None = None, port: int | None = None,
                 use_files: bool = True, *, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, ha: HaTopics | None = None) -> None:
        self.cfg = cfg
        self.topics = topics
        self.ha = ha
        self.host = host or cfg.host
        self.port = port or cfg.port
        self._put = put
        self._clock = clock
        self.connected = False
        self.generation = 0
        """Successful connects so far in this run (an :class:`Incoming` is acknowledged only
        on the connection it came on)."""
        self.connected_since: float | None = None
        self.down_since: float | None = None
        """After a loss: the last moment the room knew it was connected (wall clock)."""
        self.session_present = False
        self.backoff = Backoff(rng=rng)
        self.delays: deque[float] = deque(maxlen=32)
        """The last reconnect delays chosen (for the logs and tests)."""
        self.pubacks = 0
        self.published_signals = 0
        self._signal_lock = threading.Lock()
        self._signalled = False
        self._acked_mids: set[int] = set()
        self._heard = time.monotonic()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"diemcau-room-{topics.site}",
                                  protocol=mqtt.MQTTv5, manual_ack=True)
        self.client.enable_logger(logging.getLogger("paho"))
        self.client.max_queued_messages_set(MAX_OUTGOING)
        self.client.reconnect_delay_set(min_delay=RECONNECT_MIN_S,  # type: ignore[arg-type]
                                        max_delay=RECONNECT_MAX_S)  # type: ignore[arg-type]
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
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_log = self._on_log

    # lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self.client.connect_async(self.host, self.port, keepalive=self.cfg.keepalive_s,
                                  clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self, timeout: float = 3.0) -> None:
        """Say ``offline`` (retained) and disconnect cleanly (the session stays)."""
        if self.connected:
            info = self.client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
        self.client.disconnect()
        self.client.loop_stop()

    # incoming --------------------------------------------------------------------
    def ack(self, msg: Incoming) -> bool:
        """PUBACK ``msg`` now (its decision is on disk). Not on a later connection than the
        one it came on: the broker may have reused the packet id, and it sends the message
        again anyway, which the room answers from disk. Returns whether it was acknowledged."""
        if msg.mid is None or msg.qos == 0:
            return False
        if not self.connected or msg.generation != self.generation:
            return False
        rc = self.client.ack(msg.mid, msg.qos)
        return rc == mqtt.MQTT_ERR_SUCCESS

    def take_published(self) -> set[int]:
        """The packet ids the broker acknowledged since the last call; the next PUBACK puts a
        new :class:`Published` on the queue."""
        with self._signal_lock:
            self._signalled = False
            mids, self._acked_mids = self._acked_mids, set()
        return mids

    # outgoing --------------------------------------------------------------------
    def _publish(self, topic: str, payload: bytes, retain: bool = False,
                 properties: Properties | None = None) -> mqtt.MQTTMessageInfo | None:
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("publish to %s refused by paho: %s", topic, mqtt.error_string(info.rc))
            return None
        return info

    def publish_state(self, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        return self._publish(self.topics.state, payload, retain=True)

    def publish_info(self, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        return self._publish(self.topics.info, payload, retain=True)

    def publish_host(self, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        return self._publish(self.topics.host, payload, retain=True)

    def publish_retained(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        """A retained message outside the room's base (the Home Assistant discovery message;
        an empty payload clears it)."""
        return self._publish(topic, payload, retain=True)

    def publish_event(self, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        """Send one event (QoS 1); its info reports ``is_published()`` after the PUBACK.

        Returns None when not connected or paho's queue is full: the event stays in the
        outbox for later.
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
        self._publish(self.topics.replies, payload, properties=props)

    # paho callbacks (network thread: never raise) ---------------------------------
    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, buf: str) -> None:
        if buf.startswith("Received "):   # any packet from the broker, PINGRESP included
            self._heard = time.monotonic()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        try:
            if reason.is_failure:
                log.warning("broker refused connection: %s", reason)
                return
            self._heard = time.monotonic()
            nodelay(client)
            opts = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
            subs = [(self.topics.commands, opts), (self.topics.schedule, opts)]
            if self.ha is not None:
                subs += [(self.ha.commands, opts), (self.ha.status, opts)]
            client.subscribe(subs)
            client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
            self.session_present = bool(getattr(flags, "session_present", False))
            self.backoff.reset()
            self.generation += 1
            self.connected_since = self._clock()
            self.connected = True
            self._put(BrokerConnection(True))
        except Exception:  # pragma: no cover - defensive: keep paho's thread alive
            log.exception("on_connect failed")

    def _next_delay(self) -> None:
        delay = self.backoff.next()
        self.delays.append(delay)
        self.client.reconnect_delay_set(min_delay=delay, max_delay=delay)  # type: ignore[arg-type]

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        try:
            self._next_delay()
        except Exception:  # pragma: no cover
            log.exception("on_connect_fail failed")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        try:
            was = self.connected
            self.connected = False
            self._next_delay()
            if was:
                self.down_since = self._clock() - max(0.0, time.monotonic() - self._heard)
                self.connected_since = None
                self._put(BrokerConnection(False))
        except Exception:  # pragma: no cover
            log.exception("on_disconnect failed")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            kind = {self.topics.commands: "command", self.topics.schedule: "schedule"}.get(
                msg.topic)
            if kind is None and self.ha is not None:
                if msg.topic == self.ha.status:
                    kind = "ha_status"
                elif msg.topic.startswith(self.ha.base + "/"):
                    kind = "ha"
            if kind is None:
                if msg.qos:
                    client.ack(msg.mid, msg.qos)  # not ours to keep
                return
            corr = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
            self._put(Incoming(kind, bytes(msg.payload), bool(msg.retain), corr, msg.mid,
                               msg.qos, self.generation, msg.topic))
        except Exception:  # pragma: no cover
            log.exception("on_message failed")

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        try:
            self.pubacks += 1
            if getattr(reason, "is_failure", False):
                log.warning("broker refused publish %d: %s", mid, reason)
            with self._signal_lock:
                self._acked_mids.add(mid)
                if self._signalled:
                    return
                self._signalled = True
            self.published_signals += 1
            self._put(Published())
        except Exception:  # pragma: no cover
            log.exception("on_publish failed")
