"""The console's MQTT side: the recorder (rooms → store) and the dispatcher (store → rooms).

One paho-mqtt 2 client, MQTT v5, with a **persistent session**: a fixed client id, never a
clean start (Mosquitto 2.0.11 does not save a session begun clean), a Session Expiry
Interval, QoS 1 subscriptions with ``retain_handling=1``. While the console is away the broker
queues what rooms publish; when it comes back (its own restart or the broker's) it receives
the backlog.

Nothing is acknowledged before it is stored: the client uses manual acknowledgement, so a
PUBACK goes to the broker only after the message's transaction has committed. A console that
dies between the two gets the message again and the ``(site, seq)`` constraint drops the copy.

Threads: paho's network thread only puts messages on a queue; the *writer* stores them in
batches (one transaction each, through a database connection of its own) and acknowledges;
the *dispatcher* publishes what the service queued (schedules retained, commands) and runs the
time-based alerts.

**Recorder parts** (``broker.parts``/``broker.part``, PostgreSQL): each process subscribes
normally to the six topics of each room of its part (a room's part from its id), so each room's
messages reach one process, in order, retained ones included, and the subscriptions survive a
broker restart in the session. Part 1 is the primary (dispatcher, timed alerts, dashboard); the
others announce what they stored (PostgreSQL ``NOTIFY``) and the primary's *listen* thread
hands it to the dashboard. This is the way to spread the recording on Mosquitto 2.0.11.

**Several recorder processes** (``broker.share_group``, PostgreSQL): each receives a share of
``events`` and ``replies`` through the MQTT v5 shared subscription
``$share/<group>/<prefix>/rooms/+/events`` (each message to one of them; each its own
``client_id`` and persistent session). Shared subscriptions get no retained messages and spread
one room's messages over several processes, so ``availability``, ``state``, ``info`` and
``host`` (retained, and only meaningful in order) are subscribed normally by the one
``primary`` process, which also runs the dispatcher. A member that is down keeps its share
queued in its session until it is back (Mosquitto 2.0 does not hand it to the others): run
each under a supervisor that restarts it. Mosquitto 2.0.11 forgets shared subscriptions when
it restarts (normal ones it keeps): events sent between its restart and the members'
resubscription are lost, so on that broker use parts instead. See ``docs/benchmarks.md``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from district import contract, health
from district.alerts import event_alerts
from district.config import ConsoleConfig
from district.model import Change, Incoming
from district.service import Console
from district.store.base import Store

log = logging.getLogger(__name__)

BATCH = 500
MAX_INFLIGHT = 1000
"""Messages the dispatcher keeps in flight to the broker at once (paho queues the rest)."""
ACK_GATHER_S = 0.05
"""While messages are in flight, the dispatcher looks for their PUBACKs this often."""
REREAD_S = 1.0
"""The dispatcher reads the store for work when the service says there is some, and this
often without being told (commands another process queued: the command line)."""
TICK_S = 5.0
"""The dispatcher's timed alerts and every writer's heartbeat (``district/health.py``)."""
RETRY_S = 1.0
SUBSCRIBE_CHUNK = 500
"""Topic filters per SUBSCRIBE or UNSUBSCRIBE packet (a part of 10,000 rooms has 5,000)."""
SHARED_KINDS = ("events", "replies")
"""What several recorder processes share: unique by key (``(site, seq)``, command id), so any
process may store any of them, in any order."""


@dataclass(frozen=True)
class _Message:
    topic: str
    payload: bytes
    retain: bool
    mid: int
    qos: int
    generation: int
    received_at: float


@dataclass(frozen=True)
class _Link:
    up: bool
    at: float
    detail: str


class Recorder:
    """Records every room's messages and publishes what the service queued.

    ``start()`` returns at once; ``connected`` is set while the broker link is up;
    ``idle()`` waits until everything received so far is stored (tests and shutdown use it).
    """

    def __init__(self, cfg: ConsoleConfig, console: Console,
                 clock: Callable[[], float] = time.time, client_id: str | None = None,
                 tick_s: float = TICK_S, share_group: str | None = None,
                 primary: bool | None = None, reread_s: float = REREAD_S) -> None:
        self.cfg = cfg
        self.reread_s = reread_s
        self.share_group = share_group or cfg.broker.share_group
        """Events and replies through ``$share/<group>/…`` (None: a normal subscription)."""
        self.primary = cfg.broker.primary if primary is None else primary
        """Records availability/state/info/host and runs the dispatcher."""
        several = cfg.broker.parts > 1 or self.share_group is not None
        self.announces = several and not self.primary
        """Tells the primary what it stored (the primary's dashboard hears only its own)."""
        self.listens = several and self.primary and hasattr(console.store, "listen")
        self.beats = self.share_group is None or self.primary
        """Writes this part's heartbeat (a shared-subscription member has no part of its own:
        its beat would be taken for the primary's)."""
        self.beat_s = health.BEAT_S
        self._link: tuple[bool, float | None, str] = (False, None, "")
        """The broker link for the heartbeat, as paho's thread last saw it: up, since when
        (None: not up since the process started), why it is down. Replaced whole (one
        assignment), only when it goes up or down: a refusal at every retry keeps the time
        the link went down and updates only the reason."""
        self._started_at: float | None = None
        self.console = console
        self.store = console.store
        """The dispatcher's (and the service's) connection."""
        self.wstore = console.store
        """The writer's: a connection of its own while the recorder runs."""
        self.clock = clock
        self.tick_s = tick_s
        self.topics = contract.Topics(cfg.broker.topic_prefix)
        self.client_id = client_id or cfg.broker.client_id
        self.earlier_share_group: str | None = None
        """The share group this client id last subscribed with (None: none, or not known):
        its ``$share`` filters are in :meth:`stale_subscriptions` when it is not
        :attr:`share_group`.

        The store keeps it under ``mqtt_share_group:<client_id>`` ("": none). The writer
        thread writes it, on its own connection, as it stores a link that came up (beside
        ``mqtt_session:``): by then :meth:`_on_connect` has handed paho the UNSUBSCRIBE of the
        earlier group's filters, ahead of the commit. :meth:`start` reads it once, on the
        caller's thread before paho's loop runs: paho's thread, which calls
        :meth:`stale_subscriptions` at the first connect, never waits on the database. A
        process that dies in the moment between that commit and the UNSUBSCRIBE reaching the
        broker, or a session from a version that did not remember its group, keeps the
        group's filters until the session expires (``session_expiry_s``)."""
        self.connected = threading.Event()
        self.session_present: bool | None = None
        self._q: queue.SimpleQueue[_Message | _Link | None] = queue.SimpleQueue()
        """paho's thread → the writer (SimpleQueue: no Python-level lock for the two threads
        to fight over at every message of a storm)."""
        self._generation = 0
        self._unsubscribed = False
        self._pending = 0
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._resend_schedules = False
        self._threads: list[threading.Thread] = []
        self._inflight: dict[tuple[str, Any], tuple[mqtt.MQTTMessageInfo, Any]] = {}
        """What the dispatcher handed to paho, not yet acknowledged by the broker."""
        self._by_mid: dict[int, tuple[str, Any]] = {}
        self._refused_mids: dict[int, str] = {}
        """Message ids whose PUBACK refused them (MQTT v5 reason code, e.g. not authorized:
        the account may not write there), with the reason (paho's thread adds them)."""
        self.refused: dict[tuple[str, Any], str] = {}
        self._refused_gen = 0
        """What the broker refused since the last connect, with its reason: never marked as
        sent or published, and not handed out again before the next connect."""
        self._pubacks: queue.SimpleQueue[int] = queue.SimpleQueue()
        """Message ids the broker acknowledged (paho's thread), for the dispatcher to mark."""
        self._next_scan = 0.0
        self.client = self._client()

    # ------------------------------------------------------------------ set-up
    def _client(self) -> mqtt.Client:
        b = self.cfg.broker
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=mqtt.MQTTv5, manual_ack=True)
        c.enable_logger(logging.getLogger("paho"))
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        creds = b.credentials()
        if creds is not None:
            c.username_pw_set(creds.username, creds.password.get_secret_value())
        if b.tls is not None or b.url.startswith("mqtts://"):
            tls = b.tls
            c.tls_set(ca_certs=str(tls.ca_file) if tls else None,
                      certfile=str(tls.cert_file) if tls and tls.cert_file else None,
                      keyfile=str(tls.key_file) if tls and tls.key_file else None,
                      cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.max_inflight_messages_set(MAX_INFLIGHT)
        c.max_queued_messages_set(0)
        return c

    def start(self) -> None:
        """Connect in the background (paho retries until the broker answers) and start the
        writer and dispatcher threads."""
        self.starting()
        self.earlier_share_group = self.store.meta_get(self._share_key) or None
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.broker.session_expiry_s
        # Never a clean start, not even the first time (the broker makes a new session when it
        # has none): Mosquitto 2.0.11 does not save a session begun clean, so the console's
        # first session, and what rooms sent while it was away, would not survive the
        # broker's first restart.
        self.client.connect_async(self.cfg.broker.host, self.cfg.broker.port,
                                  keepalive=self.cfg.broker.keepalive_s, clean_start=False,
                                  properties=props)
        self.wstore = self.store.second_connection()
        threads = [(self._writer, "district-writer")]
        if self.primary:
            threads.append((self._dispatcher, "district-dispatcher"))
        if self.listens:
            threads.append((self._listen, "district-listen"))
        for target, name in threads:
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.client.loop_start()

    def stop(self, timeout: float = 10.0) -> None:
        """Store what was received, disconnect (the session stays on the broker) and stop."""
        self._stop.set()
        self.console.wakeup.set()
        for t in self._threads:
            if t.name == "district-dispatcher":
                t.join(timeout)
        self.client.disconnect()
        self.client.loop_stop()
        self._q.put(None)
        for t in self._threads:
            t.join(timeout)
        self._threads = []
        if self.wstore is not self.store:
            self.wstore.close()
            self.wstore = self.store

    @property
    def _session_key(self) -> str:
        return f"mqtt_session:{self.client_id}"

    @property
    def _share_key(self) -> str:
        """Where the store keeps :attr:`earlier_share_group` for the next run."""
        return f"mqtt_share_group:{self.client_id}"

    def _shared(self, group: str) -> list[str]:
        """The shared-subscription filters of ``group``: events and replies of every room."""
        return [f"$share/{group}/{self.topics.prefix}/rooms/+/{k}" for k in SHARED_KINDS]

    def subscriptions(self) -> list[str]:
        """The topic filters this process subscribes to."""
        b = self.cfg.broker
        if b.parts > 1:
            return [self.topics.room(site, k) for site in b.my_rooms(self.cfg.room_ids())
                    for k in contract.ROOM_TOPICS]
        if self.share_group is None:
            return self.topics.subscriptions()
        out = self._shared(self.share_group)
        if self.primary:
            out += [self.topics.room("+", k) for k in contract.ROOM_TOPICS
                    if k not in SHARED_KINDS]
        return out

    def stale_subscriptions(self) -> list[str]:
        """Filters this client id may hold from an earlier run that are not
        :meth:`subscriptions` now (a persistent session keeps them): each room kind's
        wildcard, with several parts the other parts' rooms' filters, and the ``$share``
        filters of the group it last subscribed with (:attr:`earlier_share_group`) if that is
        not the group now. Unsubscribed at the process's first connect that finds its session,
        so that going to or between parts, or leaving or changing a share group, neither
        doubles a room's messages nor keeps another part's."""
        every = set(self.topics.subscriptions())
        if self.cfg.broker.parts > 1:
            every |= {self.topics.room(site, k) for site in self.cfg.room_ids()
                      for k in contract.ROOM_TOPICS}
        if self.earlier_share_group is not None:
            every |= set(self._shared(self.earlier_share_group))
        return sorted(every - set(self.subscriptions()))

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until every message received so far is stored; False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: self._pending == 0, timeout)

    # ------------------------------------------------------------------ paho thread
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        try:
            if reason.is_failure:
                log.warning("broker refused the console: %s", reason)
                self._link_down(f"refused: {reason}")
                self._enqueue(_Link(False, self.clock(), f"refused: {reason}"))
                return
            self._generation += 1
            present = bool(getattr(flags, "session_present", False))
            self.session_present = present
            opts = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
            first, self._unsubscribed = not self._unsubscribed, True
            if present and first:
                stale = self.stale_subscriptions()
                for i in range(0, len(stale), SUBSCRIBE_CHUNK):
                    client.unsubscribe(stale[i:i + SUBSCRIBE_CHUNK])
            if first or not present:
                # A session found again after the first connect (a broker restart) holds the
                # subscriptions as this process left them: 30,000 filters of a part are not
                # sent again into the rooms' reconnect storm.
                mine = self.subscriptions()
                for i in range(0, len(mine), SUBSCRIBE_CHUNK):
                    client.subscribe([(t, opts) for t in mine[i:i + SUBSCRIBE_CHUNK]])
            self._resend_schedules = not present
            self._link = (True, self.clock(), "")
            self._enqueue(_Link(True, self.clock(), f"session_present={present}"))
            self.connected.set()
            self.console.wakeup.set()
        except Exception:  # pragma: no cover - keep paho's thread alive
            log.exception("on_connect failed")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        try:
            if self.connected.is_set():
                self.connected.clear()
                self._link_down(str(reason))
                self._enqueue(_Link(False, self.clock(), str(reason)))
        except Exception:  # pragma: no cover
            log.exception("on_disconnect failed")

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        b = self.cfg.broker
        self._link_down(f"cannot reach {b.host}:{b.port}")

    def _link_down(self, why: str) -> None:
        """The link is down (or still not up), for the heartbeat: since the first time."""
        up, since, _ = self._link
        self._link = (False, self.clock() if up else since, why)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._enqueue(_Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.mid,
                                   msg.qos, self._generation, self.clock()))
        except Exception:  # pragma: no cover
            log.exception("on_message failed")

    def _enqueue(self, item: _Message | _Link) -> None:
        with self._cv:
            self._pending += 1
        self._q.put(item)

    # ------------------------------------------------------------------ writer thread
    def _writer(self) -> None:
        next_beat = 0.0
        while True:
            if self.beats and time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.beat_s
                self._beat()
            try:
                item = self._q.get(timeout=max(0.0, next_beat - time.monotonic())
                                   if self.beats else None)
            except queue.Empty:
                continue
            if item is None:
                if self.beats:
                    self._beat(running=False)
                return
            batch = [item]
            while len(batch) < BATCH:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._q.put(None)
                    break
                batch.append(nxt)
            changes, stored = self._store_batch(batch)
            if any(isinstance(it, _Link) for it in batch):
                next_beat = 0.0   # the link went up or down: the next beat says so, at once
            for it in stored:
                if isinstance(it, _Message) and it.qos > 0 \
                        and it.generation == self._generation:
                    with contextlib.suppress(Exception):
                        self.client.ack(it.mid, it.qos)
            for ch in changes:
                self.console.notify(ch)
            with self._cv:
                self._pending -= len(batch)
                self._cv.notify_all()

    def _beat(self, running: bool = True) -> None:
        """Write this process's heartbeat (``district/health.py``) through the writer's
        connection, between batches. Best effort: a failure is logged, and a beat missed for
        long enough shows this part as stopped, which it then nearly is."""
        self._write_beat(self.wstore, running)

    def _write_beat(self, store: Store, running: bool = True) -> None:
        up, since, why = self._link
        beat = health.my_beat(self.cfg, self.clock(), up, since, running, self._started_at,
                              "" if up else why)
        try:
            with store.transaction():
                store.meta_set(health.beat_key(beat.part), beat.dumps())
        except Exception as e:
            log.warning("could not write the recorder's heartbeat: %s", e)

    def starting(self) -> None:
        """Write this process's first heartbeat (started, not yet connected), through the
        caller's connection: ``run`` calls it before its dashboard listens, so that no page
        shows the previous run's stop as this one's (:meth:`start` calls it too)."""
        if self._started_at is None:
            self._started_at = self.clock()
            if self.beats:
                self._write_beat(self.store)

    def _store_batch(self, batch: list[_Message | _Link]
                     ) -> tuple[list[Change], list[_Message | _Link]]:
        """Store a batch in one transaction. If that fails, store each message on its own, a
        message that still fails being kept aside as rejected (with the error); if even that
        fails (the database is unusable), keep trying: nothing is acknowledged unstored."""
        try:
            with self.wstore.transaction():
                changes = self._store_many(batch)
            self._announce(changes)
            return changes, batch
        except Exception:
            log.exception("could not store a batch of %d messages; one by one", len(batch))
        changes: list[Change] = []
        stored: list[_Message | _Link] = []
        for it in batch:
            while True:
                try:
                    with self.wstore.transaction():
                        some = self._store(it)
                    self._announce(some)
                    changes += some
                    stored.append(it)
                    break
                except Exception as e:
                    log.exception("could not store a message from %s",
                                  getattr(it, "topic", "the link"))
                    if self._reject(it, e):
                        stored.append(it)
                        break
                if self._stop.wait(RETRY_S):
                    return changes, stored  # stopping: the rest comes again next time
        return changes, stored

    def _announce(self, changes: list[Change]) -> None:
        """After a batch's commit: a process that is not the primary tells the primary's
        dashboard what it stored (PostgreSQL ``NOTIFY``; see :meth:`_listen`). Best effort: a
        failure costs a live update (the page reads the store), never a stored message."""
        if not changes or not self.announces:
            return
        try:
            self.wstore.announce(changes)  # type: ignore[attr-defined]
        except Exception as e:
            log.warning("could not tell the primary's dashboard of %d changes: %s",
                        len(changes), e)

    def _listen(self) -> None:
        """The primary's thread: what the other processes stored, to the console's listeners
        (the dashboard's live view) as if recorded here."""
        def hand_on(changes: list[Change]) -> None:
            for ch in changes:
                self.console.notify(ch)

        self.store.listen(self._stop, hand_on)  # type: ignore[attr-defined]

    def _store_many(self, batch: list[_Message | _Link]) -> list[Change]:
        """The batch in the caller's transaction: each message parsed (a bad one kept aside),
        all of them stored with :meth:`~district.store.base.Store.record_batch` (a few
        statements for the batch), then the changes and event alerts in the batch's order."""
        parsed: list[Incoming | None] = []
        for it in batch:
            parsed.append(None)
            if isinstance(it, _Link):
                self._store(it)
                continue
            where = self.topics.parse(it.topic)
            if where is None:
                self._store(it)
                continue
            site, kind = where
            try:
                parsed[-1] = self._incoming(site, kind, it)
            except contract.BadPayload as e:
                self.wstore.record_rejected(site, it.topic, it.payload, it.received_at, str(e))
        todo = [x for x in parsed if x is not None]
        new = iter(self.wstore.record_batch(todo))
        changes: list[Change] = []
        for x in parsed:
            if x is None or not next(new):
                continue
            if x.kind == "events":
                ev = x.value
                changes.append(Change("event", site=x.site, window_id=ev.window_id, ref=ev.seq))
                for a in event_alerts(self.wstore, ev, x.received_at):
                    changes.append(Change("alert", site=x.site, window_id=a.window_id,
                                          ref=a.id))
            elif x.kind == "replies":
                changes.append(Change("reply", site=x.site, ref=x.value.command_id))
            else:
                changes.append(Change(x.kind, site=x.site))
        return changes

    def _incoming(self, site: str, kind: str, it: _Message) -> Incoming:
        """A room message parsed for the store; :class:`contract.BadPayload` if it is not one
        (the same checks as :meth:`_store_room`)."""
        at = it.received_at
        if kind == "availability":
            value = it.payload.decode("utf-8", "replace")
            if value not in ("online", "offline"):
                raise contract.BadPayload("availability must be online or offline")
            return Incoming(kind, site, at, it.payload, value, it.retain)
        if kind in ("state", "info", "host"):
            if not it.payload:
                raise contract.BadPayload("empty (a retained message was cleared)")
            return Incoming(kind, site, at, it.payload, contract.parse_object(it.payload))
        if kind == "events":
            return Incoming(kind, site, at, it.payload, contract.parse_event(site, it.payload, at))
        return Incoming("replies", site, at, it.payload,
                        contract.parse_reply(site, it.payload, at))

    def _reject(self, it: _Message | _Link, error: Exception) -> bool:
        if not isinstance(it, _Message):
            return True
        parsed = self.topics.parse(it.topic)
        try:
            self.wstore.record_rejected(parsed[0] if parsed else None, it.topic, it.payload,
                                       it.received_at, f"could not be stored: {error!r}"[:500])
        except Exception:
            return False
        return True

    def _store(self, it: _Message | _Link) -> list[Change]:
        if isinstance(it, _Link):
            self.wstore.record_console_link(it.up, it.at, it.detail)
            if it.up:
                self.wstore.meta_set(self._session_key, "1")
                self.wstore.meta_set(self._share_key, self.share_group or "")
            return []
        parsed = self.topics.parse(it.topic)
        if parsed is None:
            self.wstore.record_rejected(None, it.topic, it.payload, it.received_at,
                                       "not a room topic of this console")
            return []
        site, kind = parsed
        try:
            return self._store_room(site, kind, it)
        except contract.BadPayload as e:
            self.wstore.record_rejected(site, it.topic, it.payload, it.received_at, str(e))
            return []

    def _store_room(self, site: str, kind: str, it: _Message) -> list[Change]:
        at = it.received_at
        if kind == "availability":
            value = it.payload.decode("utf-8", "replace")
            if value not in ("online", "offline"):
                raise contract.BadPayload("availability must be online or offline")
            changed = self.wstore.record_availability(site, value, at, it.retain)
            return [Change("availability", site=site)] if changed else []
        if kind in ("state", "info", "host"):
            if not it.payload:
                raise contract.BadPayload("empty (a retained message was cleared)")
            obj = contract.parse_object(it.payload)
            changed = self.wstore.record_retained(site, kind, obj, it.payload, at)
            return [Change(kind, site=site)] if changed else []
        if kind == "events":
            ev = contract.parse_event(site, it.payload, at)
            if not self.wstore.record_event(ev, it.payload):
                return []
            out = [Change("event", site=site, window_id=ev.window_id, ref=ev.seq)]
            for a in event_alerts(self.wstore, ev, at):
                out.append(Change("alert", site=site, window_id=a.window_id, ref=a.id))
            return out
        reply = contract.parse_reply(site, it.payload, at)
        changed = self.wstore.record_reply(reply, it.payload)
        return [Change("reply", site=site, ref=reply.command_id)] if changed else []

    # ------------------------------------------------------------------ dispatcher thread
    def _dispatcher(self) -> None:
        """Read the store for work when told (``console.wakeup``: the service queued
        something, the link came up) or every :attr:`reread_s`; in between, while messages are
        in flight, only mark the PUBACKs that came (a storm of PUBACKs reads nothing)."""
        next_tick = next_read = 0.0
        while not self._stop.is_set():
            told = self.console.wakeup.wait(ACK_GATHER_S if self._inflight else self.reread_s)
            if told:   # cleared only when seen: a wake-up after a timeout waits for next time
                self.console.wakeup.clear()
            if self._stop.is_set():
                return
            try:
                if self.connected.is_set():
                    if told or self._resend_schedules or time.monotonic() >= next_read:
                        next_read = time.monotonic() + self.reread_s
                        self.dispatch()
                    else:
                        self._collect_acks()
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.tick_s
                    self.console.tick()
            except Exception:
                log.exception("dispatch failed; trying again")

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._refused_mids[mid] = str(reason)   # before the mid is seen acknowledged
        self._pubacks.put(mid)

    def _hand_out(self, key: tuple[str, Any], topic: str, payload: bytes, retain: bool,
                  what: Any) -> bool:
        """Give one message to paho (QoS 1; it keeps it in flight, and again after a
        reconnect, until the broker's PUBACK): False if paho refused it (link down)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        self._inflight[key] = (info, what)
        self._by_mid[info.mid] = key
        return True

    def _reported(self) -> list[tuple[str, Any]]:
        """The messages whose PUBACK paho reported (``on_publish``) since the last look."""
        keys = []
        while True:
            try:
                mid = self._pubacks.get_nowait()
            except queue.Empty:
                return keys
            key = self._by_mid.get(mid)
            if key is not None and key in self._inflight and self._inflight[key][0].mid == mid:
                keys.append(key)
            else:   # a message handed out again since: its old refusal must not outlive it
                self._refused_mids.pop(mid, None)

    def _collect_acks(self) -> None:
        """Mark what the broker acknowledged, in one transaction per :data:`BATCH`: what paho
        reported acknowledged (its ``on_publish`` comes before the message info says so) and,
        every :attr:`reread_s`, everything in flight asked one by one, which also forgets
        what paho gave up on as the link went down (it is handed out again, unmarked)."""
        if self._refused_gen != self._generation:   # a new connect: the account's grants
            self._refused_gen = self._generation     # may have changed, try them again
            self.refused = {}
        commands: list[Any] = []
        schedules: list[tuple[str, Any]] = []
        reported = self._reported()
        todo = dict.fromkeys(reported, True)
        if time.monotonic() >= self._next_scan:
            self._next_scan = time.monotonic() + self.reread_s
            for key in self._inflight:
                todo.setdefault(key, False)
        for key, acked in todo.items():
            if key not in self._inflight:
                continue
            info, what = self._inflight[key]
            if not acked:
                try:
                    acked = info.is_published()
                except (RuntimeError, ValueError):  # failed as the link went down: again
                    self._forget(key, info)
                    continue
            if not acked:
                continue
            self._forget(key, info)
            # Looked at once it is seen acknowledged: paho notes a refusal (on_publish)
            # before it marks the message published, so none can be missed here.
            why = self._refused_mids.pop(info.mid, None)
            if why is not None:   # acknowledged, but refused: not sent, not published
                self.refused[key] = why
                log.warning("the broker refused the console's %s for %s: %s (not marked "
                            "sent; tried again after the next connect)", key[0],
                            getattr(what, "site", None) or what[0], why)
                continue
            if key[0] == "command":
                commands.append(what)
            elif key[0] == "schedule":
                schedules.append(what)
        if not commands and not schedules:
            return
        now = self.clock()
        for i in range(0, max(len(commands), len(schedules)), BATCH):
            cs, ss = commands[i:i + BATCH], schedules[i:i + BATCH]
            with self.store.transaction():
                self.store.mark_commands_sent([c.id for c in cs], now)
                self.store.mark_schedules_published(
                    [s.id for _site, s in ss if s.published_at is None], now)
            for c in cs:
                self.console.notify(Change("command", site=c.site, window_id=c.window_id,
                                           ref=c.id))
            for site, s in ss:
                if s.published_at is None:
                    self.console.notify(Change("schedule", site=site))

    def _forget(self, key: tuple[str, Any], info: mqtt.MQTTMessageInfo) -> None:
        del self._inflight[key]
        if self._by_mid.get(info.mid) == key:
            del self._by_mid[info.mid]

    def dispatch(self) -> None:
        """Hand every unsent command, then the newest unpublished schedule of each room
        (retained), to paho without waiting for each PUBACK (paho keeps them in flight; the
        broker's PUBACKs come back in the order sent); mark what was acknowledged. After the
        broker lost our session, publish every room's schedule again (the same bytes, so the
        same digest). Commands go first so that a window started now reaches a room as
        ``start_window`` before it appears in the room's schedule. Nothing is marked before its
        PUBACK: what a console restart interrupts is handed out again (a room takes a command
        once by its id; a schedule again is the same retained bytes)."""
        self._collect_acks()
        for c in self.store.unsent_commands():
            if ("command", c.id) in self._inflight or ("command", c.id) in self.refused:
                continue
            payload = contract.command_payload(c.id, c.name, c.args, c.sender, c.site,
                                               self.clock())
            if not self._hand_out(("command", c.id), self.topics.room(c.site, "commands"),
                                  payload, False, c):
                return
        resend, self._resend_schedules = self._resend_schedules, False
        todo = (self.store.latest_schedules() if resend
                else self.store.unpublished_schedules())
        for site, s in sorted(todo.items()):
            key = ("schedule", s.id)
            if (key in self._inflight and not resend) or key in self.refused:
                continue
            if not self._hand_out(key, self.topics.room(site, "schedule"), s.payload, True,
                                  (site, s)):
                self._resend_schedules = self._resend_schedules or resend
                return
        self._collect_acks()


def recorder_alive(console: Console, within_s: float = health.STALE_S) -> bool:
    """True if the primary ``run`` process (part 1) wrote its heartbeat in the last
    ``within_s`` seconds and has not stopped."""
    raw = console.store.meta_get(health.beat_key(1))
    beat = health.Beat.loads(raw) if raw is not None else None
    return beat is not None and beat.running and console.clock() - beat.at < within_s
