"""The imperative shell: one queue, one loop, the core's decisions carried out.

Threads (paho's, gpiozero's button thread, the local control socket, serial pollers) only put
messages on :attr:`Agent.queue`. :meth:`Agent.run` takes them one at a time, asks the pure core
what they mean, and does what it says: relays, LED, events, replies, the state snapshot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from gpiozero import Factory

from agent import __version__, journal, systemd
from agent.clock import (
    clock_synchronized,
    read_last_known_good,
    trust_wall_clock,
    write_last_known_good,
)
from agent.config import ConfigError, SiteConfig, load_config
from agent.contract import events as ev
from agent.core import room as core
from agent.core.events import (
    BrokerConnection,
    ButtonHeld,
    ButtonPressed,
    ClockStatus,
    Command,
    Event,
    HelpRequested,
    LocalPowerRequest,
    ScheduleReceived,
    SelfTestRequested,
    Tick,
)
from agent.devices import EmulatedRoom, SerialDevices
from agent.hardware.board import Board, RelayError, released_power
from agent.inhibit import ShutdownInhibitor
from agent.journal import BacklogWatch, log_event
from agent.link import homeassistant as ha
from agent.link.host import HostReporter
from agent.link.info import centre_names, info_digest, info_message
from agent.link.mqtt import Incoming, Link, Published
from agent.link.payloads import PayloadError, ScheduleError, parse_command, parse_schedule
from agent.link.state import LinkStatus, ScheduleStatus, comparable
from agent.link.state import state_message as build_state
from agent.link.topics import RoomTopics
from agent.link.wire import dumps, reply_payload
from agent.outbox import New, Outbox, Record
from agent.reload import changed_fields, reload_problems
from agent.store import StateDir, previous_stop, read_boot_id, system_stopping
from agent.systemd import FailureRun, Watchdog

log = logging.getLogger(__name__)

MAX_WAIT_S = 1.0
"""How long the loop waits when it cannot work out its next deadline (a bug, logged)."""
MAX_IN_FLIGHT = 100
QUEUE_MAX = 1000
"""The agent's queue bound: far above what the producers can put (the broker sends at most
``RECEIVE_MAXIMUM`` unacknowledged messages, PUBACKs are coalesced, people press buttons)."""
ACK_BATCH = 100
"""Acknowledged events are deleted from the outbox when the loop is idle or this many wait."""
ALIVE_EVERY_S = 60.0
"""How often the alive stamp is written (cheaply: no disk sync)."""
DIE_BEFORE_HANDLING = "DIEMCAU_TEST_DIE_BEFORE_HANDLING"
"""Test hook: a command with this id kills the agent (SIGKILL) after it was received and
before it was handled, so the tests can prove it is then handled exactly once."""
MAX_TICK_GAP_S = 1.0  # a busy queue still gets a Tick this often
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


class SignalWaker:
    """Wakes the loop when a signal arrives, so it can sleep until its next deadline and still
    take a :class:`Stop` or :class:`Reload` at once.

    A signal handler must not take the queue's lock (it may interrupt the loop holding it): it
    only appends to the loop's ``signals`` deque. ``signal.set_wakeup_fd`` makes the C-level
    handler also write a byte to a pipe; a thread reading it puts a :class:`Tick` on the queue,
    and the woken loop takes what the handler left. Only in the main thread (where Python runs
    signal handlers); elsewhere it does nothing.
    """

    def __init__(self, put: Callable[[Any], None]) -> None:
        self._put = put
        self._fds: tuple[int, int] | None = None
        self._old = -1
        if threading.current_thread() is not threading.main_thread():
            return
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            self._old = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except ValueError:  # pragma: no cover - not the main thread after all
            os.close(r)
            os.close(w)
            return
        self._fds = (r, w)
        threading.Thread(target=self._read, args=(r,), name="signal-waker",
                         daemon=True).start()

    def _read(self, r: int) -> None:
        while True:
            try:
                if not os.read(r, 64):
                    return
            except OSError:
                return
            with contextlib.suppress(queue.Full):
                self._put(Tick())

    def close(self) -> None:
        if self._fds is None:
            return
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(self._old)
        r, w = self._fds
        self._fds = None
        os.close(w)   # the reader sees end of file
        with contextlib.suppress(OSError):
            os.close(r)


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
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_MAX)
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
        self._inflight: dict[int, Any] = {}   # seq -> paho's MQTTMessageInfo
        self._sent_upto = 0                   # highest seq handed to paho in this run
        self._acked: list[int] = []           # acknowledged, not yet deleted from the outbox
        self._unsent: list[Record] = []       # recorded while connected since the last flush
        self._fresh: set[int] = set()         # made while connected, not yet sent: live
        self._correlation: bytes | None = None  # of the command being fed to the core
        self._command_id: str | None = None     # the command being fed to the core
        self._command_reply: bytes | None = None  # its reply, recorded with its decision
        self._last_state: dict[str, Any] | None = None
        self._status_line = ""  # what systemctl status shows (systemd.status_line)
        self._last_heartbeat = time.monotonic()
        self._last_alive = -ALIVE_EVERY_S
        self._alive_before = self.store.load_alive()
        self._linkfile: dict[str, Any] = self.store.load_link()
        self._host = HostReporter(cfg.timing.host_interval_s)
        self._info_pending: tuple[str, Any] | None = None
        self._ha_removal: tuple[str, Any] | None = None
        """The empty retained message removing a former Home Assistant device (its topic, its
        publish) until the broker acknowledges it: only then is it forgotten on disk, so one
        lost before its PUBACK (a link down, the agent killed) is sent again."""
        self._reconnects = 0
        self._was_connected = False
        self._button_cv = threading.Condition()
        self._button_results: deque[tuple[int, list[dict[str, Any]]]] = deque(maxlen=16)
        # A local self-test's callers and what its devices did so far (answered at its end).
        self._selftest_waiting: list[Callable[[dict[str, Any]], None]] = []
        self._selftest_devices: list[dict[str, Any]] = []
        self._button_count = 0
        self.stop_reason = "signal"
        """What :meth:`close` says stopped the agent (``agent_stopping``), unless told."""
        self._connect = connect
        self.ha = ha.ha_topics(cfg, self.topics)
        """The Home Assistant topics, None unless ``homeassistant.enabled``."""
        self.link = Link(cfg.broker, self.topics, self._offer, broker_host, broker_port,
                         use_files=connect, clock=clock, ha=self.ha)
        self.started = threading.Event()
        self.watchdog = Watchdog.from_env()
        self.sim_clock: Any = None  # a simulated room's movable clock (agent/simclock.py)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Restore the cached schedule, take the first decisions, then connect."""
        if self.emulated is not None:
            self.emulated.start()
        self.devices.start()
        how, last_alive = previous_stop(self._alive_before, self.boot_id)
        self._stamp_alive()
        self.emit(ev.AgentStarted(
            agent_version=__version__, after_reboot=self.rebooted,
            previous_stop=how,  # type: ignore[arg-type]
            relays=dict(self.state.relays), last_alive_at=core.iso(last_alive),
            locked_by=self.state.locked_by))
        self.feed(Tick())
        self._check_clock()
        self._host.poll(time.monotonic())
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

        The loop sleeps until its next deadline: whoever sets ``stop`` also puts a
        :class:`Stop` on the queue to wake it. ``signals`` holds what signal handlers left
        (:class:`Stop`, :class:`Reload`): a handler must not take the queue's lock, so it
        appends there, :class:`SignalWaker` wakes the loop and the loop takes it first. A turn
        that raises is logged and the loop goes on, but ``LOOP_MAX_FAILURES`` failed turns in a
        row (or ``LOOP_MAX_FAILING_S`` of them) stop the watchdog pings: systemd restarts the
        agent rather than leave the room frozen.
        """
        stop = stop or threading.Event()
        failures = FailureRun(LOOP_MAX_FAILURES, LOOP_MAX_FAILING_S)
        backlog = BacklogWatch()
        waker = SignalWaker(self._offer) if signals is not None else None
        last_tick = time.monotonic()
        try:
            while not stop.is_set():
                # systemd restarts the agent if this loop stops coming round (a wedged
                # handler) or keeps failing.
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
                    if signals and isinstance(msg, Tick):
                        msg = signals.popleft()   # woken by a signal
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
                        if isinstance(msg, Tick):
                            last_tick = time.monotonic()
                        elif time.monotonic() - last_tick >= MAX_TICK_GAP_S:
                            # A queue that never empties (status requests, a flood of
                            # acknowledgements) must not hold a deadline back: a window's
                            # lock or a sequence step is at most this late.
                            last_tick = time.monotonic()
                            self.handle(Tick())
                except Exception as e:
                    # A bug must not take the room down: log it and go on with the next one.
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
        finally:
            if waker is not None:
                waker.close()

    def close(self, reason: str | None = None) -> None:
        """Say ``agent_stopping`` and then offline, let go of the pins (relays keep their
        state) and close the outbox.

        ``reason`` (default :attr:`stop_reason`): ``signal``, ``reload_restart`` or ``error``;
        while systemd shuts the machine down a ``signal`` stop is ``system_shutdown``."""
        reason = reason or self.stop_reason
        shutdown = system_stopping()
        if shutdown and reason == "signal":
            reason = "system_shutdown"
        # Before offline: delivered now, or after the restart if the link is gone.
        self.emit(ev.AgentStopping(reason=reason, system_shutdown=shutdown))  # type: ignore[arg-type]
        self.inhibitor.release()
        if self._connect:
            self.link.stop()   # waits for offline's PUBACK: everything before it is in
            self._harvest_acks()
        self._save_acks()
        try:
            self.store.stamp_alive(self.clock(), self.boot_id, stopped=reason)
        except OSError as e:
            log.error("cannot write the alive stamp (%s)", e)
        self.devices.close()
        if self.emulated is not None:
            self.emulated.close()
        self.board.close()
        self.outbox.close()

    # ------------------------------------------------------------------ the loop
    def _wait_s(self) -> float:
        due = core.next_deadline(self.settings, self.state, self.clock(), self.mono())
        wait = self._shell_wait_s()
        if due is not None:
            wait = min(wait, due)
        return max(0.0, wait)

    def _shell_wait_s(self) -> float:
        """Seconds until the shell's own next deadline: the heartbeat (clock check, host
        sample), the alive stamp, the host message, the watchdog's ping. No polling: an idle
        room's loop sleeps until one of these (or a message) comes."""
        mono = time.monotonic()
        times = [self._last_heartbeat + self.cfg.timing.heartbeat_s,
                 self._last_alive + ALIVE_EVERY_S]
        host_due = self._host.next_due()
        if host_due is not None and self.link.connected:   # it goes out on the next connect
            times.append(host_due)
        wait = min(times) - mono
        if self.watchdog.interval is not None:
            wait = min(wait, self.watchdog.interval / 2)
        return wait

    def handle(self, msg: Any) -> None:
        """Handle one queue message (public so tests can drive the agent without threads)."""
        match msg:
            case Incoming(kind="command"):
                self._command(msg)
            case Incoming(kind="schedule"):
                self._schedule(msg)
            case Incoming(kind="ha"):
                self._ha_command(msg)
            case Incoming(kind="ha_status"):
                if msg.payload.strip() == ha.BIRTH:
                    self._publish_discovery()   # Home Assistant (re)started: tell it again
                self.link.ack(msg)
            case Published() | Tick():
                self._collect_acks()
                self._forget_ha_removal()
                if isinstance(msg, Tick):
                    self.feed(msg)
            case LocalCall():
                self._local(msg)
            case BrokerConnection(connected=True):
                self.feed(msg)
                self._connected()
            case ButtonPressed() | ButtonHeld():
                self._button_done(self.feed(msg))
            case _:
                self.feed(msg)
        self._heartbeat()
        self._save_acks_when_idle()

    def feed(self, event: Event) -> core.Outcome:
        """Give the core one event and carry out what it decides."""
        now = self.clock()
        out = core.step(self.settings, self.state, event, now, self.mono())
        self.state = out.state
        # The decision's events are on disk first, then the state it led to, then the pins
        # move: a kill -9 at any point loses neither an event nor a relay's true level.
        self._record(out.actions, now)
        saved = self._persistent()
        if saved != self._saved:
            try:
                self.store.save_room(saved, sync=False)   # durable below, before any PUBACK
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
        self._publish_state_if_changed(force=any(isinstance(a, core.PublishState)
                                                 for a in out.actions))
        # Off the command's path, after its reply and state went out: the journal's lines
        # (the events are on disk already) and the room state's disk sync.
        for a in out.actions:
            if isinstance(a, core.Emit):
                log_event(a.kind, a.data, a.window_id)
        self._sync_room()
        self._selftest_progress(out)
        return out

    def _sync_room(self) -> None:
        try:
            self.store.sync_room()
        except OSError as e:
            log.error("cannot save the room state (%s); will try again", e)
            self._saved = {}   # saved again after the next decision

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
                payload = self._command_reply if (action.command_id == self._command_id
                                                  and self._command_reply is not None) else \
                    reply_payload(action.command_id, action.status, action.reason, action.data,
                                  self.cfg.site.id, self.clock())
                self.link.publish_reply(payload, self._correlation)
            case core.PublishState():
                pass  # handled in feed(), after every action

    def _relay_failed(self, e: RelayError) -> None:
        """Record a relay that did not switch, and make the state say what the pin shows."""
        self.emit(ev.RelayFailed(device=e.device, wanted=e.wanted, error=e.error,
                                 actual=e.actual))
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
            self.emit(ev.ConfigReloadRefused(problems=tuple(problems)))
            systemd.ready(f"room {self.cfg.site.id} running; last reload refused")
            return False
        applied = changed_fields(self.cfg, new)
        self.cfg = new
        self.settings = settings_from_config(new)
        self.config_hash = new.fingerprint()
        self._host.interval_s = new.timing.host_interval_s
        journal.use_config_level(new.log_level)
        self.emit(ev.ConfigReloaded(config_hash=self.config_hash, applied=tuple(applied)))
        self.feed(Tick())  # the core decides with the new timings
        self._publish_info_if_changed()   # a name, label or contact may have changed
        self._publish_discovery()         # names Home Assistant shows, too
        systemd.ready(f"room {self.cfg.site.id} running")
        return True

    # ------------------------------------------------------------------ events
    def emit(self, event: Any) -> Record:
        """Record one of the shell's own events (a :data:`agent.contract.events.SHELL_EVENTS`
        kind) durably, write its journal line, then send what is not acknowledged.

        Its envelope names the window locking the room (as the last step settled it) and
        whether the clock is trusted now."""
        kind, data = event.KIND, ev.data(event)
        wid = self.state.locked_by
        (rec,) = self.outbox.append_many([New(
            kind, data, wid, core.clock_trusted(self.settings, self.state, self.clock()))])
        log_event(kind, data, wid)
        self._recorded([rec])
        self._flush_outbox()
        return rec

    @staticmethod
    def _entry(a: core.Emit) -> New:
        """A core decision's event as the outbox keeps it (contract 2.0 envelope)."""
        return New(a.kind, a.data, a.window_id, a.clock_trusted)

    def _record(self, actions: tuple[core.Action, ...], now: float) -> None:
        """A decision's events on disk, with the reply to the command it decided (if any) in
        the same transaction: a crash leaves both or neither."""
        entries = [self._entry(a) for a in actions if isinstance(a, core.Emit)]
        command = None
        if self._command_id is not None and self._command_reply is None:
            for a in actions:
                if isinstance(a, core.Reply) and a.command_id == self._command_id:
                    self._command_reply = reply_payload(a.command_id, a.status, a.reason,
                                                        a.data, self.cfg.site.id, now)
                    command = (a.command_id, self._command_reply)
                    break
        self._recorded(self.outbox.append_many(entries, command=command))

    def _recorded(self, recs: list[Record]) -> None:
        if recs and self.link.connected:
            self._fresh.update(r.seq for r in recs)
            self._unsent.extend(recs)

    def _flush_outbox(self) -> None:
        """Send what the broker has not acknowledged, oldest first, at most
        :data:`MAX_IN_FLIGHT` at a time; what was not sent at once carries ``late``."""
        if self.link.connected and len(self._inflight) < MAX_IN_FLIGHT:
            now = self.clock()
            room = MAX_IN_FLIGHT - len(self._inflight)
            for rec in self._just_recorded(room) or self.outbox.pending(limit=room,
                                                                        after=self._sent_upto):
                info = self.link.publish_event(rec.to_json(
                    None if rec.seq in self._fresh else now))
                if info is None:
                    break
                self._inflight[rec.seq] = info
                self._sent_upto = rec.seq
        self._fresh.clear()
        self._unsent.clear()

    def _just_recorded(self, room: int) -> list[Record]:
        """What was recorded since the last flush, if that is exactly what the outbox holds
        unsent (no gap before it, nothing after it): sent from memory, without reading the
        outbox back. Empty otherwise (after an outage, a drop notice, a reset): the outbox is
        read."""
        recs = self._unsent
        if not recs or recs[0].seq != self._sent_upto + 1 \
                or recs[-1].seq != self.outbox.last_seq() \
                or recs[-1].seq - recs[0].seq != len(recs) - 1:
            return []
        return recs[:room]

    def _harvest_acks(self) -> list[int]:
        """Move what the broker acknowledged out of the in-flight set."""
        mids = self.link.take_published()
        acked = [seq for seq, info in self._inflight.items() if _published(info, mids)]
        for seq in acked:
            del self._inflight[seq]
        self._acked.extend(acked)
        if self._info_pending is not None:
            info = self._info_pending[1]
            if _published(info, mids):
                self._linkfile_set(info_digest=self._info_pending[0])
                self._info_pending = None
            elif info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
                self._info_pending = None   # it never went out: sent again at the next connect
        return acked

    def _save_acks(self) -> None:
        if self._acked:
            self.outbox.ack_many(self._acked)
            self._acked = []

    def _collect_acks(self) -> None:
        """After PUBACKs: take in what was acknowledged and send the next ones (the outbox
        forgets them in batches, :meth:`_save_acks_when_idle`)."""
        if self._harvest_acks():
            self._flush_outbox()

    def _save_acks_when_idle(self) -> None:
        """Delete acknowledged events (without a disk sync of their own) once the loop has
        nothing else to do, or :data:`ACK_BATCH` wait: never left in memory for long."""
        if self._acked and (len(self._acked) >= ACK_BATCH or self.queue.empty()):
            self._save_acks()

    # ------------------------------------------------------------------ the link
    def _offer(self, item: Any) -> None:
        """What paho's thread puts on the queue: it must never block for long."""
        try:
            self.queue.put(item, timeout=5)
        except queue.Full:
            log.error("the agent's queue is full: %s dropped", type(item).__name__)

    def _linkfile_set(self, **changes: Any) -> None:
        new = {**self._linkfile, **changes}
        if new == self._linkfile:
            return
        try:
            self.store.save_link(new)
        except OSError as e:
            log.error("cannot save the link state (%s); will try again", e)
            return
        self._linkfile = new

    def _connected(self) -> None:
        """The link came up: say what changed while it was down, then send the backlog."""
        if self._was_connected:
            self._reconnects += 1
            since, down = self.link.connected_since, self.link.down_since
            if since is not None and down is not None:
                self.emit(ev.LinkRestored(down_since=core.iso(down) or "",
                                          down_s=round(max(0.0, since - down), 3),
                                          reconnects=self._reconnects))
        self._was_connected = True
        self._publish_info_if_changed()
        self._publish_discovery()
        self._publish_host(time.monotonic())
        self._publish_state_if_changed()
        self._flush_outbox()

    def info(self) -> dict[str, Any]:
        """The retained info message as it would be published now."""
        return {**info_message(self.cfg, __version__, self.config_hash),
                "ts": core.iso(self.clock())}

    def _publish_info_if_changed(self) -> None:
        msg = self.info()
        digest = info_digest(msg)
        if digest == self._linkfile.get("info_digest"):
            return
        sent = self.link.publish_info(dumps(msg))
        if sent is not None:
            self._info_pending = (digest, sent)   # remembered once the broker has it

    def _publish_host(self, mono: float) -> None:
        if not self.link.connected or not self._host.due(mono):
            return
        if self.link.publish_host(dumps(self._host.message(self.clock()))) is not None:
            self._host.sent(mono)

    # ------------------------------------------------------------------ centre input
    def _answer_repeat(self, command_id: str, msg: Incoming) -> bool:
        """A command id handled before: the first reply again, word for word; nothing else."""
        first = self.outbox.command_reply(command_id)
        if first is None:
            return False
        log.info("command %s again: its first reply again, nothing done", command_id)
        self.link.publish_reply(first, msg.correlation)
        self.link.ack(msg)
        return True

    def _command(self, msg: Incoming) -> None:
        """A command, exactly once: handled, its decision and reply on disk, then PUBACK."""
        try:
            cmd = parse_command(msg.payload, self.cfg.site.id)
        except PayloadError as e:
            if e.command_id is not None and self._answer_repeat(e.command_id, msg):
                return
            reply = reply_payload(e.command_id, "invalid", "; ".join(e.problems), None,
                                  self.cfg.site.id, self.clock())
            if e.command_id is not None:
                self.outbox.record_command(e.command_id, reply)
            self.link.publish_reply(reply, msg.correlation)
            self.link.ack(msg)
            return
        if self._answer_repeat(cmd.id, msg):
            return
        if os.environ.get(DIE_BEFORE_HANDLING) == cmd.id:
            os.kill(os.getpid(), signal.SIGKILL)
        self._decide(cmd, msg)

    def _decide(self, cmd: Command, msg: Incoming) -> None:
        """Feed a parsed command to the core: its decision and reply on disk, then PUBACK."""
        self._command_id, self._command_reply = cmd.id, None
        self._correlation = msg.correlation  # the core's reply carries it too (API contract)
        try:
            self.feed(cmd)
        except Exception:
            log.exception("failed to handle command %s", cmd.id)
        finally:
            decided = self._command_reply
            self._command_id = self._command_reply = self._correlation = None
        if decided is None:
            # The core made no decision on it (a bug, logged): say so, once.
            reply = reply_payload(cmd.id, "refused", "the room could not decide on this "
                                  "command (internal error, logged); send it with a new id",
                                  None, self.cfg.site.id, self.clock())
            self.outbox.record_command(cmd.id, reply)
            self.link.publish_reply(reply, msg.correlation)
        self.link.ack(msg)

    def _ha_command(self, msg: Incoming) -> None:
        """A Home Assistant command (plain payload on one of the room's ``ha/.../set``
        topics): the same core command a district one makes, or ``ha_command_refused``."""
        assert self.ha is not None  # the link subscribes to these topics only when enabled
        try:
            cmd = ha.command_from(msg.topic, msg.payload, self.cfg, self.ha,
                                  retained=msg.retained)
        except ha.Refused as e:
            self.emit(ev.HaCommandRefused(topic=msg.topic, payload=ha.quoted(msg.payload),
                                          reason=str(e)))
            self.link.ack(msg)
            return
        self._decide(cmd, msg)

    def _publish_discovery(self) -> None:
        """Send the Home Assistant discovery message (retained), retiring the components the
        config dropped since the last one; with Home Assistant switched off, remove the
        device a former discovery message made (an empty retained message)."""
        if not self.link.connected:
            return
        last = self._linkfile.get("ha_discovery") or {}
        if self.ha is None:
            if last.get("topic"):
                sent = self.link.publish_retained(last["topic"], b"")
                if sent is not None:
                    self._ha_removal = (last["topic"], sent)   # forgotten after its PUBACK
            return
        retired = last.get("components") if last.get("topic") == self.ha.discovery else None
        msg = ha.discovery_message(self.cfg, self.ha, __version__, retired or {})
        if self.link.publish_retained(self.ha.discovery, dumps(msg)) is not None:
            self._linkfile_set(ha_discovery={"topic": self.ha.discovery,
                                             "components": ha.components(msg)})

    def _forget_ha_removal(self) -> None:
        """The broker has the removal of the former Home Assistant device: forget that device
        (a removal that failed to go out is sent again on the next connect)."""
        if self._ha_removal is None:
            return
        topic, info = self._ha_removal
        if _published(info, frozenset()):
            if self.ha is None and (self._linkfile.get("ha_discovery") or {}).get(
                    "topic") == topic:
                self._linkfile_set(ha_discovery=None)
            self._ha_removal = None
        elif info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
            self._ha_removal = None

    def _rejected(self, e: ScheduleError) -> None:
        """An unusable schedule: ``schedule_rejected`` once per digest (remembered on disk),
        and the state shows it until a valid one applies."""
        last = self._linkfile.get("rejected") or {}
        if last.get("digest") != e.digest:
            self.emit(ev.ScheduleRejected(digest=e.digest, problems=tuple(e.problems),
                                          version=e.version))
        self._linkfile_set(rejected={"digest": e.digest, "version": e.version, "shown": True})
        self._publish_state_if_changed()

    def _schedule(self, msg: Incoming) -> None:
        if not msg.payload:
            self.link.ack(msg)
            return  # a cleared retained message: nothing to apply
        try:
            sched = parse_schedule(msg.payload, self.cfg.site.id, self.cfg.site.timezone)
        except ScheduleError as e:
            self._rejected(e)
            self.link.ack(msg)
            return
        if sched.digest == self.state.schedule_digest:
            self.link.ack(msg)
            return  # the same schedule again
        try:
            self.store.save_schedule(msg.payload)
        except OSError as e:
            # The room follows it all the same; after a restart it has the older cache.
            log.error("cannot cache the schedule (%s)", e)
            self.emit(ev.ScheduleCacheFailed(error=str(e)[:200]))
        rejected = self._linkfile.get("rejected")
        if rejected and rejected.get("shown"):
            self._linkfile_set(rejected={**rejected, "shown": False})
        self.feed(sched)
        self.link.ack(msg)

    # ------------------------------------------------------------------ local control
    def operator_facts(self) -> dict[str, Any]:
        """What the operator's command line needs to speak for this room, in every local
        reply: the centre's name, the room's name, language and time zone, the devices'
        labels, who to call."""
        vi, en = centre_names(self.cfg)
        return {"centre": {"vi": vi, "en": en}, "language": self.cfg.site.language,
                "timezone": self.cfg.site.timezone, "name": self.cfg.site.name,
                "labels": {n: d.label or n for n, d in self.cfg.devices.items()},
                "support": [c.model_dump() for c in self.cfg.support]}

    def _local(self, call: LocalCall) -> None:
        room = self.operator_facts()
        if call.op == "status":
            call.respond({"ok": True, "state": self.state_message(), "info": self.info(),
                          **room})
            return
        if call.op in ("on", "off"):
            out = self.feed(LocalPowerRequest(call.op == "on", "cli"))
            did = self.outcome(out)
            refused = [e for e in did if e["kind"] == "shutdown_refused"]
            if refused:
                call.respond({"ok": False, "refused": refused[0], "state": self.state_message(),
                              **room})
            else:
                call.respond({"ok": True, "state": self.state_message(), "did": did, **room})
            return
        if call.op == "help":
            call.respond({"ok": True, "did": self.outcome(self.feed(HelpRequested("cli"))),
                          **room})
            return
        if call.op == "selftest":
            self._selftest(call, room)
            return
        call.respond({"ok": False, "error": f"unknown request '{call.op}'", "code": "unknown",
                      **room})

    def _selftest(self, call: LocalCall, room: dict[str, Any]) -> None:
        """Start a self-test; answered when it ends (:meth:`_selftest_progress`) or at once
        when refused."""
        did = self.outcome(self.feed(SelfTestRequested("cli")))
        refused = [e for e in did if e["kind"] == "selftest_refused"]
        if refused:
            call.respond({"ok": False, "refused": refused[0], "state": self.state_message(),
                          **room})
            return
        done = [e for e in did if e["kind"] == "selftest_finished"]
        if done:
            call.respond(self._selftest_result(done[0], room))
            return
        self._selftest_waiting.append(
            lambda finished: call.respond(self._selftest_result(finished, room)))

    def _selftest_result(self, finished: dict[str, Any], room: dict[str, Any]
                         ) -> dict[str, Any]:
        devices = {n: d.driver is not None for n, d in self.cfg.devices.items()}
        return {"ok": True, "selftest": {
            "devices": [{**d, "serial": devices.get(d["device"], False)}
                        for d in self._selftest_devices],
            "finished": finished["data"]}, "state": self.state_message(), "info": self.info(),
            **room}

    def _selftest_progress(self, out: core.Outcome) -> None:
        """Keep what a self-test's devices did; at its end, answer whoever asked for it."""
        for e in self.outcome(out):
            if e["kind"] == "selftest_started":
                self._selftest_devices = []
            elif e["kind"] == "selftest_device":
                self._selftest_devices.append(e["data"])
            elif e["kind"] == "selftest_finished":
                waiting, self._selftest_waiting = self._selftest_waiting, []
                for respond in waiting:
                    respond(e)

    def selftest_budget_s(self) -> float:
        """The longest a self-test of this room can take: each device's switch-off grace,
        time without power and longest wait to answer, plus a margin."""
        return 30.0 + sum(max(d.off_grace_s, 1.0) + self.settings.selftest_off_s
                          + d.ready_timeout_s + d.on_delay_s for d in self.cfg.devices.values())

    @staticmethod
    def outcome(out: core.Outcome) -> list[dict[str, Any]]:
        """The events a decision made, as ``{"kind", "window_id"?, "data"}`` (for the CLI)."""
        did = []
        for a in out.actions:
            if isinstance(a, core.Emit):
                item: dict[str, Any] = {"kind": a.kind, "data": a.data}
                if a.window_id is not None:
                    item["window_id"] = a.window_id
                did.append(item)
        return did

    def _button_done(self, out: core.Outcome) -> None:
        with self._button_cv:
            self._button_count += 1
            self._button_results.append((self._button_count, self.outcome(out)))
            self._button_cv.notify_all()

    def button_mark(self) -> int:
        """How many button events the loop has handled so far (see :meth:`wait_button`)."""
        with self._button_cv:
            return self._button_count

    def wait_button(self, mark: int, timeout: float = 5.0) -> list[dict[str, Any]] | None:
        """What the first button event handled after ``mark`` did, or None in ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._button_cv:
            while True:
                for n, did in self._button_results:
                    if n > mark:
                        return did
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._button_cv.wait(left)

    # ------------------------------------------------------------------ state
    def state_message(self) -> dict[str, Any]:
        """The retained state message (``agent.contract.messages.State``)."""
        rej = self._linkfile.get("rejected") or {}
        shown = bool(rej.get("shown"))
        return build_state(
            self.settings, self.state, self.clock(), site=self.cfg.site.id,
            link=LinkStatus(self.link.connected_since if self.link.connected else None,
                            self._reconnects),
            schedule=ScheduleStatus(self.state.schedule_digest or None,
                                    rej.get("version") if shown else None,
                                    rej.get("digest") if shown else None),
            last_seq=self.outbox.last_seq())

    def _publish_state_if_changed(self, force: bool = False) -> None:
        """Publish the state when it changed since the last one published (or ``force``);
        the systemd status line follows every change, link or no link."""
        msg = self.state_message()
        cmp = comparable(msg)
        line = systemd.status_line(msg, self.cfg.site.timezone)
        if line != self._status_line:
            self._status_line = line
            systemd.status(line)
        if not self.link.connected:
            return
        if (force or cmp != self._last_state) and \
                self.link.publish_state(dumps(msg)) is not None:
            self._last_state = cmp

    def _stamp_alive(self) -> None:
        self._last_alive = time.monotonic()
        try:
            self.store.stamp_alive(self.clock(), self.boot_id)
        except OSError as e:
            log.error("cannot write the alive stamp (%s)", e)

    def _heartbeat(self) -> None:
        mono = time.monotonic()
        if mono - self._last_heartbeat >= self.cfg.timing.heartbeat_s:
            self._last_heartbeat = mono
            self._check_clock()
            self._host.poll(mono)
        self._publish_host(mono)
        if mono - self._last_alive >= ALIVE_EVERY_S:
            self._stamp_alive()

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


def _published(info: mqtt.MQTTMessageInfo, mids: set[int] | frozenset[int]) -> bool:
    """Whether the broker acknowledged ``info``'s message. paho's ``is_published()`` raises
    for a publish that failed (made while the link was going down): that one was not."""
    if info.mid in mids:
        return True
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return False
