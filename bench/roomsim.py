"""A light room simulator: thousands of rooms speaking MQTT contract 2.0 from one process.

Each room is what a room agent is on the wire (``/work``'s ``spec/contract-v2.md``), with a
small model of a room behind it instead of relays and serial devices:

* its own MQTT v5 connection (client id ``diemcau-room-<site>``, a persistent session: never
  a clean start, as the room agent, since Mosquitto 2.0.11 does not save a session begun clean;
  Session Expiry 7 days, keepalive 240 s, subscriptions with ``retain_handling=1``),
  ``availability`` retained with ``offline`` as last will, ``info``
  and ``host`` retained at the first connect, ``state`` retained **on change only**;
* events with ``seq``, ``id``, ``ts``, ``clock_trusted``, ``window_id`` (the window locking
  the room) and, sent again from the backlog after a reconnect, ``late``; an event leaves the
  outbox only when the broker acknowledged it; reconnects back off 1 → 60 s with jitter;
* commands exactly once (a repeated id gets the first reply, word for word, and does
  nothing); the schedule's digest over the bytes received;
* the room's decisions in the core's order (facts, lock, request, time): ``schedule_applied``;
  at ``start - lead`` ``lock_engaged``, ``window_power_up`` and a power sequence over three
  devices (codec and camera confirmed by their "driver" after a short boot, amplifier without
  one); ``window_ready`` at the start; check-ins and refused switch-offs (``shutdown_refused``)
  at the button; operator checks answered (``operator_check_acknowledged`` then ``check_in``)
  or not (``operator_check_unanswered``); ``power`` (refused while locked unless
  ``override``: ``lock_overridden``), ``start_window``, ``complete_window`` and completions in
  the schedule (``window_completed``, ``lock_released``), the hard cap, the switch-off after a
  window (``after_window_power_off``); ``agent_started``, ``link_restored`` and
  ``agent_stopping`` from the "shell"; outages (the link lost abruptly: the broker publishes
  the will; events made meanwhile go out late).

Operators are simulated from a seeded plan (``--answer``, ``--checkin``, ``--refuse``,
``--outage`` probabilities per window), so a run is repeatable. One asyncio loop drives every
room's paho client (its socket registered with the loop, ``loop_read``/``loop_write`` when
ready, one task calling ``loop_misc`` for keepalives): no thread per room.

Control: one JSON line per request on standard input, one JSON line per answer on standard
output (``{"op": "status"}``, ``burst``, ``press``, ``hold``, ``help``, ``outage``,
``ledger``, ``stop``); see :meth:`Sim.control`. ``ledger`` writes every event the rooms made
(site, seq, kind, window, made, last sent, acknowledged) as JSON lines, for the benches'
lost / duplicated / lag figures.

Example::

    python -m bench.roomsim --port 1883 --prefix sim --count 1000 --lead-s 20 --seed 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.clock import iso_ms

log = logging.getLogger("roomsim")

PREFIX = "diemcau/v2"
SESSION_EXPIRY_S = 604800
KEEPALIVE_S = 240
BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 60.0
AGENT_VERSION = "0.2.0-sim"
DEVICES: tuple[tuple[str, bool, tuple[float, float]], ...] = (
    ("codec", True, (1.0, 3.0)),      # (name, has a driver that confirms, boot seconds)
    ("camera", True, (0.5, 1.5)),
    ("amplifier", False, (0.0, 0.0)),
)
COMMANDS = ("power", "start_window", "complete_window", "operator_check", "request_state",
            "answer_help")


def compact(obj: Any) -> bytes:
    """The contract's JSON encoding."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def parse_time(text: Any) -> float | None:
    """ISO 8601 (``Z`` or an offset) as epoch seconds, or None."""
    from datetime import datetime

    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class Plan:
    """How the simulated people behave (probabilities per window, per room) and the room's
    timing settings."""

    lead_s: float = 900.0
    hard_cap_s: float = 4 * 3600.0
    check_timeout_s: float = 120.0
    off_after_release_s: float | None = 600.0
    answer: float = 0.8
    checkin: float = 0.5
    refuse: float = 0.1
    outage: float = 0.0
    outage_s: tuple[float, float] = (5.0, 20.0)
    seed: int = 1


@dataclass
class Win:
    """A window the room knows (from its schedule, or started by command)."""

    id: str
    kind: str
    title: str
    start: float
    end: float


@dataclass
class Seq:
    """A running power sequence."""

    on: bool
    reason: str
    remaining: list[str]
    started: float
    current: str | None = None
    step_started: float = 0.0
    due: float | None = None  # when the current step ends (loop time)
    outcome: str = "done"


@dataclass
class Outgoing:
    """An event in the room's outbox, and what the ledger keeps of it."""

    env: dict[str, Any]
    made: float
    sent: float | None = None
    acked: float | None = None
    late: bool = False


@dataclass
class Room:
    """One simulated room: its model, its outbox and its link."""

    site: str
    sim: Sim
    rng: random.Random
    relays: dict[str, bool] = field(default_factory=dict)
    awake: set[str] = field(default_factory=set)
    sequence: Seq | None = None
    schedule: list[Win] = field(default_factory=list)
    adhoc: list[Win] = field(default_factory=list)
    schedule_version: str | None = None
    schedule_digest: str | None = None
    completed: set[str] = field(default_factory=set)
    powered: set[str] = field(default_factory=set)
    ready_reported: set[str] = field(default_factory=set)
    locked_by: str | None = None
    lock_since: float | None = None
    check: tuple[str, float, float, float] | None = None  # id, requested (wall), due (loop), t
    last_check_in: float | None = None
    last_ack: tuple[str, float, float] | None = None
    help_requested: float | None = None
    refusal_until: float | None = None
    after_window: tuple[str, float] | None = None  # window id, due (loop time)
    seq: int = 0
    outbox: dict[int, Outgoing] = field(default_factory=dict)
    ledger: list[Outgoing] = field(default_factory=list)
    replies: dict[str, bytes] = field(default_factory=dict)
    last_state: bytes | None = None
    client: mqtt.Client | None = None
    connected: bool = False
    first_connect: bool = True
    link_since: float | None = None
    down_since: float | None = None
    reconnects: int = 0
    attempts: int = 0
    hold_until: float = 0.0  # an outage: no reconnect before this (loop time)
    inflight: dict[int, int] = field(default_factory=dict)  # mid -> seq
    timer: asyncio.TimerHandle | None = None
    planned: set[str] = field(default_factory=set)  # windows whose people are planned
    schedules_at: list[float] = field(default_factory=list)  # wall time of each schedule

    def __post_init__(self) -> None:
        self.base = f"{PREFIX}/rooms/{self.site}"
        self.relays = {name: False for name, _c, _b in DEVICES}

    # ------------------------------------------------------------------ helpers
    @property
    def plan(self) -> Plan:
        return self.sim.plan

    def now(self) -> float:
        return time.time()

    def mono(self) -> float:
        return self.sim.loop.time()

    @property
    def windows(self) -> list[Win]:
        return sorted(self.schedule + self.adhoc, key=lambda w: (w.start, w.id))

    def window(self, wid: str | None) -> Win | None:
        return next((w for w in self.windows if w.id == wid), None)

    def lock_window(self) -> Win | None:
        t = self.now()
        for w in self.windows:
            if (w.id not in self.completed and w.start - self.plan.lead_s <= t
                    < w.end + self.plan.hard_cap_s):
                return w
        return None

    def emit(self, kind: str, data: dict[str, Any], window_id: Any = ...) -> None:
        """Record an event (stamped with the locking window), send it if the link is up."""
        wid = self.locked_by if window_id is ... else window_id
        self.seq += 1
        now = self.now()
        env: dict[str, Any] = {"seq": self.seq, "id": uuid.uuid4().hex, "ts": iso_ms(now),
                               "kind": kind, "clock_trusted": True}
        if wid is not None:
            env["window_id"] = wid
        env["data"] = {k: v for k, v in data.items() if v is not None}
        item = Outgoing(env, now)
        self.outbox[self.seq] = item
        self.ledger.append(item)
        self.sim.made += 1
        if self.connected:
            self._send_event(item)

    def _send_event(self, item: Outgoing, late: bool = False) -> None:
        assert self.client is not None
        env = item.env
        if late:
            env = {**env, "late": {"first_due": env["ts"], "sent": iso_ms(self.now())}}
            item.late = True
        info = self.client.publish(f"{self.base}/events", compact(env), qos=1)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            item.sent = self.now()
            self.inflight[info.mid] = env["seq"]

    # ------------------------------------------------------------------ the state message
    def power_word(self) -> str:
        if self.sequence is not None:
            return "powering_on" if self.sequence.on else "powering_off"
        on = list(self.relays.values())
        return "on" if all(on) else "off" if not any(on) else "partial"

    def led(self, lw: Win | None) -> str:
        if self.refusal_until is not None and self.mono() < self.refusal_until:
            return "refused"
        if self.check is not None:
            return "check_requested"
        if self.sequence is not None:
            return "powering"
        if not self.connected:
            return "no_broker"
        if lw is not None:
            return "window_active"
        return "on" if any(self.relays.values()) else "idle"

    def state(self) -> dict[str, Any]:
        lw = self.lock_window() if self.locked_by else None
        nxt = next((w for w in self.windows if w.id not in self.completed
                    and w.start - self.plan.lead_s > self.now()), None)
        sq = self.sequence

        def wjson(w: Win | None) -> dict[str, Any] | None:
            return None if w is None else {"id": w.id, "kind": w.kind, "title": w.title,
                                           "start": iso_ms(w.start), "end": iso_ms(w.end)}
        lock: dict[str, Any] = {"locked": False}
        if lw is not None:
            lock = {"locked": True, "window_id": lw.id, "kind": lw.kind,
                    "since": iso_ms(self.lock_since or self.now()), "start": iso_ms(lw.start),
                    "end": iso_ms(lw.end), "cap": iso_ms(lw.end + self.plan.hard_cap_s)}
        chk = self.check
        return {
            "api": "2.0", "site": self.site, "power": self.power_word(),
            "devices": {n: {"power": "on" if self.relays[n] else "off", "health": "ok",
                            "reason": "", "reported_power": ("on" if n in self.awake else
                                                             "standby") if c else None,
                            "in_call": False if n == "codec" else None,
                            "model": f"Sim {n}" if c else None,
                            "serial": f"{self.site}-{n}" if c else None}
                        for n, c, _b in DEVICES},
            "sequence": None if sq is None else {
                "on": sq.on, "reason": sq.reason, "current": sq.current,
                "remaining": list(sq.remaining), "started": iso_ms(sq.started)},
            "lock": lock, "window": wjson(lw), "next_window": wjson(nxt),
            "schedule": {"version": self.schedule_version, "digest": self.schedule_digest,
                         "rejected": None},
            "operator": {
                "check": None if chk is None else {
                    "id": chk[0], "requested": iso_ms(chk[1]),
                    "deadline": iso_ms(chk[1] + chk[3])},
                "last_check_in": iso_ms(self.last_check_in) if self.last_check_in else None,
                "last_ack": None if self.last_ack is None else {
                    "check_id": self.last_ack[0], "at": iso_ms(self.last_ack[1]),
                    "latency_s": round(self.last_ack[2], 3)},
                "help_requested": iso_ms(self.help_requested) if self.help_requested else None},
            "led": self.led(lw),
            "link": {"since": iso_ms(self.link_since) if self.link_since else None,
                     "reconnects": self.reconnects},
            "clock": {"synced": True, "trusted": True},
            "last_seq": self.seq, "ts": iso_ms(self.now())}

    def publish_state(self) -> None:
        """Publish the state if anything but its time and counter changed since the last one
        published (changes made while the link was down go out when it is back)."""
        st = self.state()
        comparable = compact({k: v for k, v in st.items() if k not in ("ts", "last_seq")})
        if comparable == self.last_state or not self.connected:
            return
        assert self.client is not None
        info = self.client.publish(f"{self.base}/state", compact(st), qos=1, retain=True)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self.last_state = comparable
            self.sim.states += 1

    # ------------------------------------------------------------------ one step
    def step(self, what: Callable[[], None] | None = None,
             facts: Callable[[], None] | None = None) -> None:
        """The core's order: facts (schedule, window commands), the lock, the request,
        then what time makes due; then the state if it changed, and the next timer."""
        if facts is not None:
            facts()
        self.settle_lock()
        if what is not None:
            what()
        self.on_time()
        self.publish_state()
        self.arm()

    def settle_lock(self) -> None:
        w = self.lock_window()
        old = self.locked_by
        if old is not None and (w is None or w.id != old):
            was = self.window(old)
            why = ("completed" if old in self.completed else "window_removed" if was is None
                   else "hard_cap")
            self.emit("lock_released", {"reason": why}, old)
            self.locked_by, self.lock_since = None, None
            if any(self.relays.values()) and self.plan.off_after_release_s is not None:
                self.after_window = (old, self.mono() + self.plan.off_after_release_s)
        if w is not None and w.id != old:
            self.locked_by, self.lock_since = w.id, self.now()
            self.after_window = None
            self.emit("lock_engaged", {"kind": w.kind, "title": w.title,
                                       "start": iso_ms(w.start), "end": iso_ms(w.end),
                                       "cap": iso_ms(w.end + self.plan.hard_cap_s)}, w.id)
            self.plan_people(w)
        sq = self.sequence
        if w is not None and sq is not None and not sq.on \
                and not sq.reason.startswith("override:"):
            self.emit("power_sequence_cancelled", {"on": False, "reason": sq.reason,
                                                   "replaced_by": f"lock:{w.id}",
                                                   "device": sq.current})
            self.sequence = None

    def on_time(self) -> None:
        self.advance_due()
        chk = self.check
        if chk is not None and self.mono() >= chk[2]:
            self.emit("operator_check_unanswered", {"check_id": chk[0], "reason": "timeout",
                                                    "waited_s": round(chk[3], 3)})
            self.check = None
        if self.refusal_until is not None and self.mono() >= self.refusal_until:
            self.refusal_until = None
        w = self.window(self.locked_by)
        if w is not None and w.id not in self.powered:
            self.powered.add(w.id)
            self.emit("window_power_up", {"kind": w.kind, "title": w.title,
                                          "start": iso_ms(w.start)})
            self.start_sequence(True, f"window:{w.id}")
        if w is not None and w.id not in self.ready_reported and self.now() >= w.start:
            devs = {}
            for n, confirm, _b in DEVICES:
                state = ("off" if not self.relays[n] else "on" if not confirm
                         else "confirmed" if n in self.awake else "on_silent")
                devs[n] = {"relay": self.relays[n], "state": state, "health": "ok"}
            self.ready_reported.add(w.id)
            self.emit("window_ready", {"start": iso_ms(w.start), "on_by_start": all(
                d["state"] in ("confirmed", "on") for d in devs.values()), "devices": devs})
        aw = self.after_window
        if aw is not None and self.sequence is None and self.mono() >= aw[1]:
            self.after_window = None
            self.emit("after_window_power_off", {"after_s": self.plan.off_after_release_s},
                      aw[0])
            self.start_sequence(False, f"after_window:{aw[0]}")

    # ------------------------------------------------------------------ power sequences
    def start_sequence(self, on: bool, reason: str, devices: tuple[str, ...] | None = None
                       ) -> None:
        names = [n for n, _c, _b in DEVICES]
        order = names if on else names[::-1]
        old = self.sequence
        if old is not None:
            self.emit("power_sequence_cancelled", {"on": old.on, "reason": old.reason,
                                                   "replaced_by": reason,
                                                   "device": old.current})
        todo = [n for n in order if (devices is None or n in devices)
                and (self.relays[n] != on or (on and self._confirms(n) and n not in self.awake))]
        self.sequence = None
        if not todo:
            return
        self.sequence = Seq(on, reason, todo, self.now())
        self.emit("power_sequence_started", {"on": on, "reason": reason, "devices": todo})
        self.advance()

    @staticmethod
    def _confirms(name: str) -> bool:
        return next(c for n, c, _b in DEVICES if n == name)

    def advance(self) -> None:
        while (sq := self.sequence) is not None and sq.current is None:
            if not sq.remaining:
                self.emit("power_sequence_finished", {
                    "on": sq.on, "reason": sq.reason,
                    "elapsed_s": round(self.now() - sq.started, 3)})
                self.sequence = None
                return
            name = sq.remaining.pop(0)
            sq.current, sq.step_started = name, self.now()
            boot = next(b for n, _c, b in DEVICES if n == name)
            if sq.on:
                self.relays[name] = True
                if self._confirms(name):
                    sq.due, sq.outcome = self.mono() + self.rng.uniform(*boot), "confirmed"
                    return
            elif self._confirms(name) and self.relays[name]:
                sq.due, sq.outcome = self.mono() + 0.5, "confirmed"
                return
            self.finish_step("done")

    def advance_due(self) -> None:
        sq = self.sequence
        if sq is not None and sq.due is not None and self.mono() >= sq.due:
            if sq.on and sq.current:
                self.awake.add(sq.current)
            self.finish_step(sq.outcome)

    def finish_step(self, outcome: str) -> None:
        sq = self.sequence
        assert sq is not None and sq.current is not None
        if not sq.on:
            self.relays[sq.current] = False
            self.awake.discard(sq.current)
        self.emit("power_step", {"device": sq.current, "on": sq.on, "outcome": outcome,
                                 "elapsed_s": round(self.now() - sq.step_started, 3),
                                 "reason": sq.reason})
        sq.current, sq.due = None, None
        self.advance()

    # ------------------------------------------------------------------ timers
    def next_due(self) -> float | None:
        """The earliest loop time at which something is due."""
        due: list[float] = []
        mono, now = self.mono(), self.now()
        if self.sequence is not None and self.sequence.due is not None:
            due.append(self.sequence.due)
        if self.check is not None:
            due.append(self.check[2])
        if self.refusal_until is not None:
            due.append(self.refusal_until)
        if self.after_window is not None and self.sequence is None:
            due.append(self.after_window[1])
        lw = self.window(self.locked_by)
        if lw is not None and lw.id not in self.ready_reported:
            due.append(mono + max(0.0, lw.start - now))
        for w in self.windows:
            if w.id in self.completed:
                continue
            for t in (w.start - self.plan.lead_s, w.end + self.plan.hard_cap_s):
                if t > now:
                    due.append(mono + (t - now))
        return min(due) if due else None

    def arm(self) -> None:
        due = self.next_due()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if due is not None:
            self.timer = self.sim.loop.call_at(due + 0.001, self._tick)

    def _tick(self) -> None:
        self.timer = None
        self.step()

    # ------------------------------------------------------------------ people
    def plan_people(self, w: Win) -> None:
        """What the room's people will do in this window (from the seeded plan)."""
        if w.id in self.planned:
            return
        self.planned.add(w.id)
        p, rng, loop = self.plan, self.rng, self.sim.loop
        at_start = max(0.0, w.start - self.now())
        if rng.random() < p.checkin:
            loop.call_later(at_start + rng.uniform(0.5, 5.0), self.press)
        if rng.random() < p.refuse:
            loop.call_later(at_start + rng.uniform(1.0, 6.0), self.hold)
        if rng.random() < p.outage:
            loop.call_later(at_start + rng.uniform(0.0, 3.0),
                            lambda: self.outage(rng.uniform(*p.outage_s)))

    def press(self) -> None:
        """A short press of the button."""
        def what() -> None:
            chk = self.check
            if chk is not None:
                latency = chk[3] - (chk[2] - self.mono())
                self.emit("operator_check_acknowledged",
                          {"check_id": chk[0], "latency_s": round(latency, 3)})
                self.last_ack = (chk[0], self.now(), latency)
                self.check = None
            w = self.window(self.locked_by)
            if w is not None:
                self.emit("check_in", {"kind": w.kind})
                self.last_check_in = self.now()
        self.step(what)

    def hold(self) -> None:
        """The button held: switch off (refused while locked) or on."""
        def what() -> None:
            w = self.window(self.locked_by)
            if any(self.relays.values()) or (self.sequence is not None and self.sequence.on):
                if w is not None:
                    self.refusal_until = self.mono() + 8.0
                    self.emit("shutdown_refused", {"source": "button", "kind": w.kind,
                                                   "title": w.title})
                else:
                    self.emit("power_requested", {"on": False, "source": "button"})
                    self.start_sequence(False, "local:button")
            else:
                self.emit("power_requested", {"on": True, "source": "button"})
                self.start_sequence(True, "local:button")
        self.after_window = None
        self.step(what)

    def help(self) -> None:
        def what() -> None:
            self.emit("help_requested", {"source": "button"})
            self.help_requested = self.now()
        self.step(what)

    # ------------------------------------------------------------------ the district's messages
    def on_schedule(self, payload: bytes) -> None:
        digest = hashlib.sha256(payload).hexdigest()[:16]
        try:
            body = json.loads(payload)
            wins = [Win(w["id"], w["kind"], w.get("title", ""), parse_time(w["start"]) or 0.0,
                        parse_time(w["end"]) or 0.0) for w in body["windows"]]
            done = [(w["id"], w["completed"].get("by", "")) for w in body["windows"]
                    if isinstance(w.get("completed"), dict)]
            version = str(body["version"])
        except (ValueError, KeyError, TypeError, AttributeError):
            self.step(lambda: self.emit("schedule_rejected", {
                "digest": digest, "problems": ["(payload): not a schedule"]}))
            return

        def facts() -> None:
            old = {w.id: w.start for w in self.schedule}
            moved = {w.id for w in wins if w.id in old and old[w.id] != w.start}
            self.schedule = wins
            self.schedule_version, self.schedule_digest = version, digest
            known = {w.id for w in self.windows}
            self.powered = {p for p in self.powered - moved if p in known}
            self.ready_reported = {p for p in self.ready_reported - moved if p in known}
            self.completed &= known
            self.emit("schedule_applied", {"version": version, "digest": digest,
                                           "windows": len(wins)})
            for wid, by in done:
                if wid not in self.completed:
                    self.completed.add(wid)
                    self.emit("window_completed", {"by": by, "via": "schedule"}, wid)
        self.step(facts=facts)

    def on_command(self, payload: bytes) -> None:
        try:
            cmd = json.loads(payload)
            cid, name = cmd["id"], cmd["name"]
            args = cmd.get("args") or {}
            sender = str(cmd.get("sender", ""))
            if not isinstance(cid, str) or not isinstance(args, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._reply(None, "invalid", "(payload): not a command")
            return
        first = self.replies.get(cid)
        if first is not None:  # exactly once: the first reply again, nothing done
            self._send_reply(first)
            return
        if name not in COMMANDS:
            self._reply(cid, "invalid", f"unknown command '{name}'; known: {', '.join(COMMANDS)}")
            return
        out: dict[str, Any] = {}

        def reply(status: str, reason: str = "", **data: Any) -> None:
            out.update(status=status, reason=reason, data=data)

        def facts() -> None:
            if name == "start_window":
                wid = args.get("window_id") or f"adhoc-{cid}"
                if self.window(wid) is not None:
                    reply("refused", f"window '{wid}' already exists")
                    return
                now = self.now()
                w = Win(wid, args.get("kind", "test"), args.get("title", ""), now,
                        now + float(args.get("duration_min", 60)) * 60)
                self.adhoc.append(w)
                self.emit("window_started", {"kind": w.kind, "title": w.title,
                                             "start": iso_ms(w.start), "end": iso_ms(w.end),
                                             "by": sender, "command_id": cid}, w.id)
                reply("accepted", window_id=w.id)
            elif name == "complete_window":
                wid = args.get("window_id")
                if self.window(wid) is None:
                    reply("invalid", f"args.window_id: no window '{wid}' in this room's schedule")
                elif wid in self.completed:
                    reply("accepted", "already complete", window_id=wid)
                else:
                    self.completed.add(wid)
                    self.emit("window_completed", {"by": sender, "via": "command",
                                                   "command_id": cid}, wid)
                    reply("accepted", window_id=wid)

        def what() -> None:
            if name == "power":
                on, device = bool(args.get("on")), args.get("device")
                if device is not None and device not in self.relays:
                    reply("invalid", f"args.device: unknown device '{device}'")
                    return
                self.after_window = None
                w = self.window(self.locked_by)
                if not on and w is not None:
                    if not args.get("override"):
                        reply("refused", f"locked by {w.kind} {w.id}; send override=true to "
                                         "switch off anyway", window_id=w.id)
                        return
                    self.emit("lock_overridden", {"kind": w.kind, "command_id": cid,
                                                  "by": sender, "device": device})
                reply("accepted")
                kind = "override" if w is not None and not on else "district"
                self.start_sequence(on, f"{kind}:{cid}", (device,) if device else None)
            elif name == "operator_check":
                timeout = float(args.get("timeout_s", self.plan.check_timeout_s))
                old = self.check
                if old is not None:
                    self.emit("operator_check_unanswered", {
                        "check_id": old[0], "reason": "superseded",
                        "waited_s": round(old[3] - (old[2] - self.mono()), 3)})
                self.check = (cid, self.now(), self.mono() + timeout, timeout)
                self.emit("operator_check_requested", {"check_id": cid, "timeout_s": timeout,
                                                       "by": sender})
                reply("accepted", check_id=cid)
                if self.rng.random() < self.plan.answer:
                    self.sim.loop.call_later(self.rng.uniform(0.5, min(timeout * 0.8, 10.0)),
                                             self.press)
            elif name == "request_state":
                reply("accepted")
                self.last_state = None
            elif name == "answer_help":
                if self.help_requested is None:
                    reply("accepted", "no help request is waiting")
                else:
                    self.help_requested = None
                    reply("accepted")

        if name in ("start_window", "complete_window"):
            self.step(facts=facts)
        else:
            self.step(what)
        self._reply(cid, out.get("status", "accepted"), out.get("reason", ""),
                    out.get("data", {}))

    def _reply(self, cid: str | None, status: str, reason: str,
               data: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"command_id": cid, "status": status, "reason": reason,
                                "data": data or {}, "site": self.site, "ts": iso_ms(self.now())}
        if cid is None:
            del body["command_id"]
        payload = compact(body)
        if cid is not None:
            self.replies[cid] = payload
        self._send_reply(payload)

    def _send_reply(self, payload: bytes) -> None:
        if self.connected and self.client is not None:
            self.client.publish(f"{self.base}/replies", payload, qos=1)

    # ------------------------------------------------------------------ the link
    def connect(self) -> None:
        """One connection attempt (a new paho client: the room's outbox, not paho's, holds
        what is unacknowledged)."""
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"diemcau-room-{self.site}",
                        protocol=mqtt.MQTTv5)
        c.will_set(f"{self.base}/availability", b"offline", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        self.sim.attach(c)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client = c
        try:
            c.connect(self.sim.host, self.sim.port, keepalive=KEEPALIVE_S, clean_start=False,
                      properties=props)
        except OSError:
            self.client = None
            self.retry()

    def retry(self) -> None:
        """Try again after the back-off (1 → 60 s, random jitter)."""
        self.attempts += 1
        delay = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** min(self.attempts - 1, 6))
        delay = delay * self.rng.uniform(0.5, 1.0)
        wait = max(delay, self.hold_until - self.mono())
        self.sim.loop.call_later(wait, self.sim.queue_connect, self)

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
        if client is not self.client:
            return
        if rc.is_failure:
            client.disconnect()
            return
        opts = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe([(f"{self.base}/commands", opts), (f"{self.base}/schedule", opts)])
        client.publish(f"{self.base}/availability", b"online", qos=1, retain=True)
        now = self.now()
        first = self.first_connect
        self.first_connect, self.connected, self.attempts = False, True, 0
        self.link_since = now
        self.sim.connected += 1
        if first:
            client.publish(f"{self.base}/info", compact({
                "api": "2.0", "site": self.site, "name": self.site, "centre": "Trung tâm",
                "timezone": "Asia/Ho_Chi_Minh", "agent_version": AGENT_VERSION,
                "config_hash": "000000000000",
                "devices": {n: {"role": n, "label": n, "driver": "sim" if c else None}
                            for n, c, _b in DEVICES},
                "support": [], "ts": iso_ms(now)}), qos=1, retain=True)
            client.publish(f"{self.base}/host", compact({
                "cpu_temp_c": 45.0, "load": [0.1, 0.1, 0.1], "mem_used_pct": 20.0,
                "disk_used_pct": 30.0, "uptime_s": 3600, "alerts": [], "ts": iso_ms(now)}),
                qos=1, retain=True)
        for item in list(self.outbox.values()):  # the backlog goes out first, late
            self._send_event(item, late=True)
        if first:
            self.step(lambda: self.emit("agent_started", {
                "agent_version": AGENT_VERSION, "after_reboot": False,
                "previous_stop": "clean", "relays": dict(self.relays),
                "locked_by": self.locked_by}))
        else:
            self.reconnects += 1
            down = self.down_since or now
            self.step(lambda: self.emit("link_restored", {
                "down_since": iso_ms(down), "down_s": round(now - down, 3),
                "reconnects": self.reconnects}))

    def _on_disconnect(self, client: mqtt.Client, *_a: Any) -> None:
        if client is not self.client:
            return
        if self.connected:
            self.sim.connected -= 1
            self.down_since = self.now()
        self.connected = False
        self.client = None
        self.inflight.clear()
        if not self.sim.stopping:
            self.retry()

    def _on_publish(self, client: mqtt.Client, _u: Any, mid: int, *_a: Any) -> None:
        seq = self.inflight.pop(mid, None)
        if seq is not None:
            item = self.outbox.pop(seq, None)
            if item is not None:
                item.acked = self.now()
                self.sim.acked += 1

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if msg.topic.endswith("/schedule"):
                self.schedules_at.append(self.now())
                self.on_schedule(bytes(msg.payload))
            elif msg.topic.endswith("/commands"):
                self.on_command(bytes(msg.payload))
        except Exception:  # pragma: no cover - one room's bug must not stop the others
            log.exception("%s: cannot handle %s", self.site, msg.topic)

    def outage(self, seconds: float) -> None:
        """The link is lost abruptly (the broker publishes the will) for ``seconds``."""
        self.hold_until = self.mono() + seconds
        if self.client is not None and self.connected:
            self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT,
                                                         "Disconnect with will message"))

    def stop(self) -> None:
        """A clean stop: ``agent_stopping``, ``offline`` (retained), DISCONNECT."""
        if self.client is None or not self.connected:
            return
        self.step(lambda: self.emit("agent_stopping", {"reason": "signal",
                                                       "system_shutdown": False}))
        self.client.publish(f"{self.base}/availability", b"offline", qos=1, retain=True)


class Sim:
    """Every room of this process on one asyncio loop."""

    def __init__(self, sites: list[str], host: str, port: int, plan: Plan) -> None:
        self.host, self.port, self.plan = host, port, plan
        self.loop = asyncio.get_running_loop()
        self.rooms = {s: Room(s, self, random.Random(f"{plan.seed}:{s}")) for s in sites}
        self.made = self.acked = self.states = self.connected = 0
        self.stopping = False
        self._connects: asyncio.Queue[Room] = asyncio.Queue()

    # -- paho on the loop ----------------------------------------------------------------
    def attach(self, c: mqtt.Client) -> None:
        loop = self.loop

        def opened(client: mqtt.Client, _u: Any, sock: Any) -> None:
            loop.add_reader(sock, self._read, client)

        def closed(client: mqtt.Client, _u: Any, sock: Any) -> None:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(sock)
                loop.remove_writer(sock)

        c.on_socket_open = opened
        c.on_socket_close = closed
        c.on_socket_register_write = lambda client, _u, sock: loop.add_writer(
            sock, self._write, client)
        c.on_socket_unregister_write = lambda client, _u, sock: loop.remove_writer(sock)

    @staticmethod
    def _read(client: mqtt.Client) -> None:
        client.loop_read()

    @staticmethod
    def _write(client: mqtt.Client) -> None:
        client.loop_write()

    async def keepalive(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            for r in list(self.rooms.values()):
                if r.client is not None:
                    r.client.loop_misc()

    def queue_connect(self, room: Room) -> None:
        if not self.stopping:
            self._connects.put_nowait(room)

    async def connector(self, per_s: float) -> None:
        """Connection attempts, at most ``per_s`` a second (a blocking TCP connect each)."""
        gap = 1.0 / per_s
        while True:
            room = await self._connects.get()
            if room.client is None and not room.connected:
                room.connect()
            await asyncio.sleep(gap)

    # -- control ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {"rooms": len(self.rooms), "connected": self.connected, "made": self.made,
                "acked": self.acked, "pending": sum(len(r.outbox) for r in self.rooms.values()),
                "states": self.states}

    def _sites(self, req: dict[str, Any]) -> list[Room]:
        sites = req.get("sites")
        return list(self.rooms.values()) if sites is None else [
            self.rooms[s] for s in sites if s in self.rooms]

    async def control(self, req: dict[str, Any]) -> dict[str, Any]:
        """One control request: ``status``; ``schedules`` ({since}: how many rooms received a
        schedule since then, and when the last of them did); ``burst`` ({events, kind}: each
        room makes ``events`` events now); ``press`` / ``hold`` / ``help`` ({sites?}); ``outage``
        ({sites?, seconds}); ``ledger`` ({path}); ``stop``."""
        op = req.get("op")
        if op == "status":
            return {"ok": True, **self.status()}
        if op == "burst":
            n, kind = int(req.get("events", 1)), str(req.get("kind", "check_in"))
            for r in self._sites(req):
                for _ in range(n):
                    r.emit(kind, {"kind": "burst"})
            return {"ok": True, **self.status()}
        if op == "schedules":
            # Rooms that received a schedule since ``since`` (wall time), and when the last
            # of them received its first one since then.
            since = float(req.get("since", 0.0))
            firsts = [min(t for t in r.schedules_at if t >= since) for r in self.rooms.values()
                      if r.schedules_at and r.schedules_at[-1] >= since]
            return {"ok": True, "rooms": len(firsts), "last": max(firsts, default=None)}
        if op in ("press", "hold", "help"):
            for r in self._sites(req):
                getattr(r, op)()
            return {"ok": True}
        if op == "outage":
            for r in self._sites(req):
                r.outage(float(req.get("seconds", 10)))
            return {"ok": True}
        if op == "ledger":
            path = str(req["path"])
            with open(path, "w", encoding="utf-8") as f:
                for r in self.rooms.values():
                    for it in r.ledger:
                        f.write(json.dumps([r.site, it.env["seq"], it.env["kind"],
                                            it.env.get("window_id"), it.made, it.sent,
                                            it.acked, it.late]) + "\n")
            return {"ok": True, "path": path, **self.status()}
        if op == "stop":
            for r in self.rooms.values():
                r.stop()
            await asyncio.sleep(0.5)
            self.stopping = True
            for r in self.rooms.values():
                if r.client is not None:
                    r.client.disconnect()
            await asyncio.sleep(0.3)
            return {"ok": True, **self.status()}
        return {"ok": False, "error": f"unknown op {op!r}"}


def site_names(prefix: str, first: int, count: int) -> list[str]:
    """``<prefix>-00001`` … (site ids the broker, console and rooms accept)."""
    return [f"{prefix}-{i:05d}" for i in range(first, first + count)]


async def _main(args: argparse.Namespace) -> int:
    plan = Plan(lead_s=args.lead_s, hard_cap_s=args.hard_cap_s,
                check_timeout_s=args.check_timeout_s,
                off_after_release_s=None if args.off_after_release_s < 0
                else args.off_after_release_s,
                answer=args.answer, checkin=args.checkin, refuse=args.refuse,
                outage=args.outage, seed=args.seed)
    sim = Sim(site_names(args.prefix, args.first, args.count), args.host, args.port, plan)
    tasks = [asyncio.create_task(sim.keepalive()),
             asyncio.create_task(sim.connector(args.connects_per_s))]
    for r in sim.rooms.values():
        sim.queue_connect(r)
    reader = asyncio.StreamReader()
    await sim.loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ok": True, "ready": True, "pid": os.getpid()}), flush=True)
    try:
        while line := await reader.readline():
            try:
                req = json.loads(line)
                answer = await sim.control(req if isinstance(req, dict) else {})
            except (ValueError, KeyError, TypeError, OSError) as e:
                answer = {"ok": False, "error": str(e)}
            print(json.dumps(answer), flush=True)
            if isinstance(req, dict) and req.get("op") == "stop":
                break
    finally:
        for t in tasks:
            t.cancel()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--prefix", default="sim", help="site ids <prefix>-00001 …")
    p.add_argument("--first", type=int, default=1)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lead-s", type=float, default=900.0)
    p.add_argument("--hard-cap-s", type=float, default=4 * 3600.0)
    p.add_argument("--check-timeout-s", type=float, default=120.0)
    p.add_argument("--off-after-release-s", type=float, default=600.0,
                   help="switch off this long after a window (negative: never)")
    p.add_argument("--answer", type=float, default=0.8, help="P(an operator check answered)")
    p.add_argument("--checkin", type=float, default=0.5, help="P(a check-in in a window)")
    p.add_argument("--refuse", type=float, default=0.1, help="P(a refused switch-off)")
    p.add_argument("--outage", type=float, default=0.0, help="P(an outage in a window)")
    p.add_argument("--connects-per-s", type=float, default=2000.0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
