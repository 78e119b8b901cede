"""The imperative shell: one queue, one loop, the core's decisions carried out.

Threads (paho's, gpiozero's button thread, the local control socket, serial pollers) only put
messages on :attr:`Agent.queue`. :meth:`Agent.run` takes them one at a time, asks the pure core
what they mean, and does what it says: relays, LED, events, replies, the state snapshot.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpiozero import Factory

from agent import __version__, journal, systemd
from agent.clock import (
    clock_synchronized,
    read_last_known_good,
    trust_wall_clock,
    write_last_known_good,
)
from agent.config import ConfigError, SiteConfig, load_config
from agent.core import room as core
from agent.core.events import (
    BrokerConnection,
    ButtonHeld,
    ButtonPressed,
    ClockStatus,
    Event,
    HelpRequested,
    LocalPowerRequest,
    ScheduleReceived,
    Tick,
)
from agent.devices import EmulatedRoom, SerialDevices
from agent.hardware.board import Board, RelayError, released_power
from agent.host import host_health
from agent.inhibit import ShutdownInhibitor
from agent.journal import BacklogWatch, log_event
from agent.link.mqtt import Incoming, Link, Published
from agent.link.payloads import PayloadError, parse_command, parse_schedule
from agent.link.topics import API_VERSION, RoomTopics
from agent.outbox import Outbox
from agent.reload import changed_fields, reload_problems
from agent.store import StateDir, read_boot_id, system_stopping
from agent.systemd import FailureRun, Watchdog

log = logging.getLogger(__name__)

RECENT_COMMANDS = 512
MAX_WAIT_S = 0.5
MAX_IN_FLIGHT = 100
LOOP_MAX_FAILURES = 20      # failed turns in a row, or
LOOP_MAX_FAILING_S = 60.0   # seconds of failing turns, before the watchdog pings stop


@dataclass(frozen=True)
class LocalCall:
    """A request from the local control socket (``diemcau-agent status|on|off``)."""

    op: str
    respond: Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Stop:
    """Ask the loop to end."""


@dataclass(frozen=True)
class Reload:
    """Re-read the site config at ``path`` (``SIGHUP``): see :meth:`Agent.reload`."""

    path: Path


def settings_from_config(cfg: SiteConfig) -> core.RoomSettings:
    """The core's view of a site config."""
    return core.RoomSettings(
        devices=tuple(
            core.DeviceSpec(name=n, order=d.order, on_delay_s=d.on_delay_s,
                            off_grace_s=d.off_grace_s, ready_timeout_s=d.ready_timeout_s,
                            confirm=d.driver is not None, role=d.role,
                            self_help=d.self_help)
            for n, d in cfg.devices.items()),
        lead_s=cfg.timing.lead_min * 60.0,
        hard_cap_s=cfg.timing.lock_hard_cap_min * 60.0,
        refusal_show_s=cfg.timing.refusal_show_s,
        check_timeout_s=cfg.timing.check_timeout_s,
        off_after_release_s=(None if cfg.timing.off_after_release_min is None
                             else cfg.timing.off_after_release_min * 60.0),
        centre=(cfg.site.centre.vi, cfg.site.centre.en),
    )


def _v1_data(e: core.Emit) -> dict[str, Any]:
    """An event's ``data`` as API 1.0 sends it: the window it was made in is part of it."""
    return {**e.data, "window_id": e.window_id} if e.window_id else e.data


class Agent:
    """A room agent. ``clock`` gives POSIX seconds, ``mono`` the monotonic seconds every
    duration is measured on (``docs/time.md`` rule 6); tests inject their own. Without
    ``mono``, the real monotonic clock goes with the real ``clock``, and an injected ``clock``
    is also taken as the monotonic one (a test's hand-moved clock does not jump)."""

    def __init__(self, cfg: SiteConfig, factory: Factory, state_dir: StateDir,
                 broker_host: str | None = None, broker_port: int | None = None,
                 clock: Callable[[], float] = time.time, connect: bool = True,
                 emulate: bool = False,
                 clock_synced: Callable[[], bool] = clock_synchronized,
                 mono: Callable[[], float] | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        self.mono = mono or (time.monotonic if clock is time.time else clock)
        self.store = state_dir
        self.settings = settings_from_config(cfg)
        self.queue: queue.Queue[Any] = queue.Queue()
        self.topics = RoomTopics(cfg.broker.topic_prefix, cfg.site.id)
        self.config_hash = cfg.fingerprint()

        saved = self.store.load_room()
        self.boot_id = read_boot_id()
        # After a reboot or power cut the pins are where /boot/firmware/config.txt put them
        # (coils released), whatever the room had before: that is the truth to start from.
        self.rebooted = bool(saved) and saved.get("boot_id") != self.boot_id
        relays = {n: released_power(d) for n, d in cfg.devices.items()}
        if saved and not self.rebooted and isinstance(saved.get("relays"), dict):
            relays.update({n: bool(v) for n, v in saved["relays"].items() if n in relays})
        try:
            self.state = core.initial_state(self.settings, relays, saved, self.rebooted)
        except (KeyError, TypeError, ValueError) as e:
            log.error("saved room state unusable (%s): starting from the pins alone", e)
            self.state = core.initial_state(self.settings, relays)
        self.clock_synced = clock_synced
        self.state = core.resume(self.state, self._cached_schedule(), self.clock_synced(),
                                 read_last_known_good(self.store.clock_file))
        self._saved = self._persistent()
        self.inhibitor = ShutdownInhibitor()
        # Pins are claimed at the level the room had: starting never switches a relay.
        self.board = Board(cfg.devices, cfg.status_led, cfg.button, factory, relays,
                           on_press=lambda: self.queue.put(ButtonPressed()),
                           on_hold=lambda: self.queue.put(ButtonHeld()),
                           on_help=lambda: self.queue.put(HelpRequested("button")))
        # A simulated room's serial devices are emulators on pseudo-terminals, powered by the
        # simulated relays; a real room's are its USB adapters.
        self.emulated = (EmulatedRoom(cfg.devices, relays, self.store.root / "tty")
                         if emulate else None)
        self.devices = SerialDevices(cfg.devices, self.queue.put, relays,
                                     self.emulated.urls if self.emulated else None)
        self.outbox = Outbox(self.store.outbox_file, clock=clock)
        self._acting: str = ""
        if hasattr(factory, "context"):  # a simulated room's pins log who moved them
            factory.context = lambda: f"{self.outbox.next_seq()}:{self._acting or '-'}"
        self._inflight: dict[int, Any] = {}
        self._recent: deque[str] = deque(maxlen=RECENT_COMMANDS)
        self._correlation: bytes | None = None  # of the command being fed to the core
        self._last_snapshot: dict[str, Any] | None = None
        self._last_heartbeat = time.monotonic()
        self._host: dict[str, Any] = host_health()
        self._connect = connect
        self.link = Link(cfg.broker, self.topics, self.queue.put, broker_host, broker_port,
                         use_files=connect)
        self.started = threading.Event()
        self.watchdog = Watchdog.from_env()
        self.sim_clock: Any = None  # a simulated room's movable clock (agent/simclock.py)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Restore the cached schedule, take the first decisions, then connect."""
        if self.emulated is not None:
            self.emulated.start()
        self.devices.start()
        self.outbox.append("agent_started", {
            "agent_version": __version__, "after_reboot": self.rebooted,
            "relays": dict(self.state.relays), "locked_by": self.state.locked_by})
        self.feed(Tick())
        self._check_clock()
        if self._connect:
            self.link.start()
        self.started.set()

    def _persistent(self) -> dict[str, Any]:
        return {**core.persistent(self.state), "boot_id": self.boot_id}

    def _cached_schedule(self) -> ScheduleReceived | None:
        cached = self.store.load_schedule()
        if cached is None:
            return None
        try:
            return parse_schedule(cached, self.cfg.site.id, self.cfg.site.timezone)
        except PayloadError as e:
            log.error("cached schedule unusable: %s", e)
            return None

    def run(self, stop: threading.Event | None = None,
            signals: deque[Any] | None = None) -> None:
        """The main loop, until :class:`Stop` arrives or ``stop`` is set.

        ``signals`` holds what signal handlers left (:class:`Stop`, :class:`Reload`): a
        handler must not take the queue's lock, so it appends there and the loop takes it
        first, within ``MAX_WAIT_S``. A turn that raises is logged and the loop goes on, but
        ``LOOP_MAX_FAILURES`` failed turns in a row (or ``LOOP_MAX_FAILING_S`` of them) stop
        the watchdog pings: systemd restarts the agent rather than leave the room frozen.
        """
        stop = stop or threading.Event()
        failures = FailureRun(LOOP_MAX_FAILURES, LOOP_MAX_FAILING_S)
        backlog = BacklogWatch()
        while not stop.is_set():
            # systemd restarts the agent if this loop stops coming round (a wedged handler)
            # or keeps failing.
            if not failures.exhausted:
                self.watchdog.loop_alive()
            self.watchdog.maybe_ping()
            error: Exception | None = None
            try:
                wait = self._wait_s()
            except Exception as e:  # never let a bug stop the loop
                log.exception("cannot compute the next deadline")
                error, wait = e, MAX_WAIT_S
            if signals:
                msg = signals.popleft()
            else:
                try:
                    msg = self.queue.get(timeout=wait)
                except queue.Empty:
                    msg = Tick()
            if isinstance(msg, Stop):
                break
            try:
                if isinstance(msg, Reload):
                    self.reload(msg.path)
                else:
                    if isinstance(msg, BrokerConnection):
                        log_event("broker_connected" if msg.connected else "broker_lost",
                                  {"broker": f"{getattr(self.link, 'host', '?')}:"
                                             f"{getattr(self.link, 'port', '?')}"})
                    self.handle(msg)
            except Exception as e:
                # A bug must not take the room down: log it and carry on with the next message.
                log.exception("failed to handle %r", msg)
                error = e
            backlog.observe(self.outbox.stats, time.monotonic())
            if error is None:
                if failures.succeeded():
                    log.warning("the main loop works again: watchdog pings resume")
            elif failures.failed():
                log_event("loop_failing", {"failures": failures.count,
                                           "seconds": round(failures.seconds, 1),
                                           "error": f"{type(error).__name__}: {error}"})

    def close(self) -> None:
        """Say offline, let go of the pins (relays keep their state) and close the outbox."""
        lock = self.state.window(self.state.locked_by)
        if lock is not None:
            # Stopped during a lock: say so (delivered after the restart if the link is gone).
            self.outbox.append("agent_stopped_during_lock", {
                "window_id": lock.id, "kind": lock.kind, "system_shutdown": system_stopping()})
            self._flush_outbox()
        self.inhibitor.release()
        if self._connect:
            self.link.stop()
        self.devices.close()
        if self.emulated is not None:
            self.emulated.close()
        self.board.close()
        self.outbox.close()

    # ------------------------------------------------------------------ the loop
    def _wait_s(self) -> float:
        due = core.next_deadline(self.settings, self.state, self.clock(), self.mono())
        wait = self._last_heartbeat + self.cfg.timing.heartbeat_s - time.monotonic()
        if due is not None:
            wait = min(wait, due)
        return max(0.0, min(MAX_WAIT_S, wait))

    def handle(self, msg: Any) -> None:
        """Handle one queue message (public so tests can drive the agent without threads)."""
        match msg:
            case Incoming(kind="command"):
                self._command(msg)
            case Incoming(kind="schedule"):
                self._schedule(msg)
            case Published() | Tick():
                self._collect_acks()
                if isinstance(msg, Tick):
                    self.feed(msg)
            case LocalCall():
                self._local(msg)
            case BrokerConnection(connected=True):
                self.feed(msg)
                self._publish_state_if_changed(force=True)
                self._flush_outbox()
            case _:
                self.feed(msg)
        self._heartbeat()

    def feed(self, event: Event) -> core.Outcome:
        """Give the core one event and carry out what it decides."""
        now = self.clock()
        out = core.step(self.settings, self.state, event, now, self.mono())
        self.state = out.state
        # The decision's events are on disk first, then the state it led to, then the pins
        # move: a kill -9 at any point loses neither an event nor a relay's true level.
        self.outbox.append_many([(a.kind, _v1_data(a)) for a in out.actions
                                 if isinstance(a, core.Emit)])
        for a in out.actions:
            if isinstance(a, core.Emit):
                log_event(a.kind, a.data, a.window_id)
        saved = self._persistent()
        if saved != self._saved:
            try:
                self.store.save_room(saved)
                self._saved = saved
            except OSError as e:
                # A full or failing card must not stop the room: act now, save next time.
                log.error("cannot save the room state (%s); will try again", e)
        for action in out.actions:
            try:
                self._do(action)
            except Exception:
                log.exception("failed to carry out %r", action)
        self._flush_outbox()
        if out.lock is None:
            self.inhibitor.release()
        else:
            self.inhibitor.hold(f"{out.lock.kind} {out.lock.id} {out.lock.title}".strip())
        self.board.show(out.led)
        if out.changed or any(isinstance(a, core.PublishState) for a in out.actions):
            self._publish_state_if_changed(force=True)
        return out

    def _do(self, action: core.Action) -> None:
        match action:
            case core.SetRelay(device=d, on=on):
                self._acting = action.reason
                try:
                    self.board.set_power(d, on)
                except RelayError as e:
                    self._relay_failed(e)
                    if e.actual != on:
                        return  # the relay did not move: the devices keep what they knew
                finally:
                    self._acting = ""
                if self.emulated is not None:
                    self.emulated.relay_changed(d, on)
                self.devices.relay_changed(d, on)
            case core.AwaitReady(device=d):
                self.devices.await_ready(d, step=action.step)
            case core.SendStandby(device=d):
                self.devices.send_standby(d, step=action.step)
            case core.Emit():
                pass  # recorded in feed(), before anything else
            case core.Reply():
                self._reply(action.command_id, action.status, action.reason, action.data,
                            correlation=self._correlation)
            case core.PublishState():
                pass  # handled in feed(), after every action

    def _relay_failed(self, e: RelayError) -> None:
        """Record a relay that did not switch, and make the state say what the pin shows."""
        data: dict[str, Any] = {"device": e.device, "wanted": e.wanted, "error": e.error}
        if e.actual is not None:
            data["actual"] = e.actual
        self.outbox.append("relay_failed", data)
        log_event("relay_failed", data)
        if e.actual is not None and self.state.relays.get(e.device) != e.actual:
            # Until the core has an event for it, its state is corrected here, and saved.
            self.state = dataclasses.replace(self.state,
                                             relays={**self.state.relays, e.device: e.actual})
            saved = self._persistent()
            try:
                self.store.save_room(saved)
                self._saved = saved
            except OSError as err:
                log.error("cannot save the room state (%s); will try again", err)

    def reload(self, path: Path) -> bool:
        """Re-read the site config at ``path`` (``SIGHUP``). The fields in
        ``agent.reload.LIVE`` are applied at once (``config_reloaded``); if anything else
        changed, or the file does not validate, nothing is (``config_reload_refused`` with
        every problem) and the agent runs on with the config it had. True if applied."""
        systemd.reloading(f"re-reading {path}")
        try:
            new = load_config(path)
            problems = reload_problems(self.cfg, new)
        except ConfigError as e:
            problems = e.problems
        if problems:
            refused = {"problems": problems}
            self.outbox.append("config_reload_refused", refused)
            log_event("config_reload_refused", refused)
            self._flush_outbox()
            systemd.ready(f"room {self.cfg.site.id} running; last reload refused")
            return False
        applied = changed_fields(self.cfg, new)
        self.cfg = new
        self.settings = settings_from_config(new)
        self.config_hash = new.fingerprint()
        journal.use_config_level(new.log_level)
        done = {"config_hash": self.config_hash, "applied": applied}
        self.outbox.append("config_reloaded", done)
        log_event("config_reloaded", done)
        self.feed(Tick())  # the core decides with the new timings; the state shows the hash
        systemd.ready(f"room {self.cfg.site.id} running")
        return True

    # ------------------------------------------------------------------ events
    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """Record an event durably, then send whatever the broker has not acknowledged."""
        self.outbox.append(kind, data)
        self._flush_outbox()

    def _flush_outbox(self) -> None:
        if not self.link.connected or len(self._inflight) >= MAX_IN_FLIGHT:
            return
        # Oldest first; a long backlog goes out a window at a time as acknowledgements return.
        for rec in self.outbox.pending(limit=len(self._inflight) + MAX_IN_FLIGHT):
            if rec.seq in self._inflight:
                continue
            if len(self._inflight) >= MAX_IN_FLIGHT:
                return
            info = self.link.publish_event(rec.to_json())
            if info is None:
                return
            self._inflight[rec.seq] = info

    def _collect_acks(self) -> None:
        acked = [seq for seq, info in self._inflight.items() if info.is_published()]
        if acked:
            self.outbox.ack_many(acked)
        for seq in acked:
            del self._inflight[seq]
        if acked:
            self._flush_outbox()

    # ------------------------------------------------------------------ district input
    def _reply(self, command_id: str | None, status: str, reason: str = "",
               data: dict[str, Any] | None = None, correlation: bytes | None = None) -> None:
        payload = {"command_id": command_id, "status": status, "reason": reason,
                   "data": data or {}, "site": self.cfg.site.id, "ts": core.iso(self.clock())}
        self.link.publish_reply(json.dumps(payload, ensure_ascii=False).encode(), correlation)

    def _command(self, msg: Incoming) -> None:
        try:
            cmd = parse_command(msg.payload, self.cfg.site.id)
        except PayloadError as e:
            self._reply(e.command_id, "invalid", "; ".join(e.problems), correlation=msg.correlation)
            return
        if cmd.id in self._recent:
            self._reply(cmd.id, "refused", f"duplicate command id '{cmd.id}': already handled",
                        correlation=msg.correlation)
            return
        self._correlation = msg.correlation  # the core's reply carries it too (API contract)
        try:
            self.feed(cmd)
        finally:
            self._correlation = None
        self._recent.append(cmd.id)

    def _schedule(self, msg: Incoming) -> None:
        if not msg.payload:
            return  # a cleared retained message: nothing to apply
        try:
            sched = parse_schedule(msg.payload, self.cfg.site.id, self.cfg.site.timezone)
        except PayloadError as e:
            # Also again for the same retained copy after a reconnect: the district should
            # know its broker still holds a schedule this room cannot use.
            self.emit("schedule_rejected", {"problems": e.problems})
            self._publish_state_if_changed()
            return
        if (sched.version == self.state.schedule_version
                and sched.windows == self.state.schedule):
            return  # the retained copy again after a reconnect
        self.store.save_schedule(msg.payload)
        self.feed(sched)

    # ------------------------------------------------------------------ local control
    def _local(self, call: LocalCall) -> None:
        if call.op == "status":
            call.respond({"ok": True, "state": self.state_message()})
            return
        if call.op in ("on", "off"):
            out = self.feed(LocalPowerRequest(call.op == "on", "cli"))
            refused = [a for a in out.actions
                       if isinstance(a, core.Emit) and a.kind == "shutdown_refused"]
            if refused:
                call.respond({"ok": False, "refused": _v1_data(refused[0])})
            else:
                call.respond({"ok": True, "state": self.state_message()})
            return
        call.respond({"ok": False, "error": f"unknown request '{call.op}'"})

    # ------------------------------------------------------------------ state snapshot
    def state_message(self) -> dict[str, Any]:
        """The retained state message (``docs/mqtt-api.md``)."""
        snap = core.snapshot(self.settings, self.state, self.clock())
        for name, d in self.cfg.devices.items():
            snap["devices"][name].update(role=d.role, label=d.label or name)
        return {
            "api": API_VERSION,
            "site": self.cfg.site.id,
            "name": self.cfg.site.name,
            "agent_version": __version__,
            "config_hash": self.config_hash,
            **snap,
            "host": self._host,
            "ts": core.iso(self.clock()),
        }

    def _publish_state_if_changed(self, force: bool = False) -> None:
        msg = self.state_message()
        comparable = {k: v for k, v in msg.items() if k not in ("ts", "host")}
        if force or comparable != self._last_snapshot:
            self._last_snapshot = comparable
            if self.link.connected:
                self.link.publish_state(json.dumps(msg, ensure_ascii=False).encode())

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat >= self.cfg.timing.heartbeat_s:
            self._last_heartbeat = now
            self._host = host_health()
            self._check_clock()
            self._publish_state_if_changed(force=True)

    def _check_clock(self) -> None:
        """Tell the core whether the wall clock is synchronised, and save a trusted time."""
        synced = self.clock_synced()
        lkg = read_last_known_good(self.store.clock_file)
        now = self.clock()
        if trust_wall_clock(now, synced, lkg, self.settings.plausible_after):
            write_last_known_good(self.store.clock_file, now)
            lkg = now
        if synced != self.state.clock_synced or lkg > self.state.last_known_good:
            self.feed(ClockStatus(synced, lkg))
