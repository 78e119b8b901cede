"""Device health from serial polling, and serial-confirmed power sequencing.

One :class:`HealthPoller` per device with a driver. The agent runs ``poller.run(stop)`` on a
thread of its own (or calls :meth:`HealthPoller.poll_once` itself); the poller emits
:class:`~agent.core.events.DeviceHealthChanged` only when the judgement changes (each one
carries the device's ``model`` and ``serial`` as far as the driver could read them). The agent
tells it whether the device's relay feeds it (:meth:`HealthPoller.set_relay`), because
"relay on but silent for N polls" means *no power or unplugged*, while silence with the relay
off is simply "off".

:meth:`HealthPoller.wait_ready` and :meth:`HealthPoller.standby_and_confirm` are for the
power-on and power-off sequences: bounded, usable from a worker thread, and they emit
:class:`~agent.core.events.DeviceReady` / :class:`~agent.core.events.DeviceStandby`.

Example::

    poller = HealthPoller("codec", driver, queue.put, interval_s=10, boot_grace_s=90)
    poller.set_relay(True)
    outcome = poller.wait_ready(timeout_s=90)     # Outcome(ok=True, elapsed_s=41.2, …)
    threading.Thread(target=poller.run, args=(stop,), daemon=True).start()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from agent.core.events import DeviceHealthChanged, DeviceReady, DeviceStandby, Event, HealthStatus
from agent.drivers.base import (
    BadReply,
    CallInfo,
    DeviceError,
    DeviceIdentity,
    DeviceRefused,
    DeviceTimeout,
    Driver,
    PortGone,
)

# Reasons say it in Vietnamese first, then English: operators and district staff read them.
R_ON = "Đang hoạt động / on"
R_ANSWERING = "Đang trả lời, chưa rõ trạng thái nguồn / answering, power state not known"
R_STANDBY = "Đang chờ (standby) / standby"
R_IN_CALL = "Đang trong cuộc gọi / in a call"
R_OFF = "Đã tắt nguồn / powered off"
R_BOOTING = "Đang khởi động / starting up"
R_SLOW_BOOT = "Khởi động quá lâu / still starting up"
R_SILENT = "Không phản hồi / no answer"
R_SILENT_FAULT = "Không phản hồi — mất nguồn hoặc rút cáp / no answer: no power or unplugged"
R_GARBLED = ("Trả lời không đọc được — kiểm tra cáp và tốc độ baud / unreadable reply: "
             "check the cable and baud rate")
R_PORT_GONE = ("Mất cổng serial — kiểm tra bộ chuyển USB-RS232 / serial port gone: check the "
               "USB-RS232 adapter")
R_REFUSED = "Thiết bị từ chối lệnh / device refused"
R_ERROR = "Lỗi giao tiếp / communication error"
R_RELAY_OFF_ALIVE = ("Rơ-le tắt nhưng thiết bị vẫn trả lời — kiểm tra dây rơ-le / relay off but "
                     "the device answers: check the relay wiring")
R_CANCELLED = "Đã hủy / cancelled"

ANSWERING = ("on", "standby", "unknown")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How a bounded wait ended: ``ok``, the last state seen, time taken and tries."""

    device: str
    ok: bool
    state: str          # last power state, or 'silent', 'garbled', 'refused', 'port-gone'…
    elapsed_s: float
    attempts: int
    reason: str = ""


@dataclass(frozen=True)
class _Reading:
    """One poll's raw result before judgement."""

    power: str | None = None
    call: CallInfo | None = None
    failure: str | None = None      # 'silent' | 'garbled' | 'refused' | 'port-gone' | 'error'
    detail: str = ""
    identity: DeviceIdentity = field(default_factory=DeviceIdentity)


class HealthPoller:
    """Polls one device's driver and judges its health; see the module docstring."""

    def __init__(self, device: str, driver: Driver, emit: Callable[[Event], None], *,
                 interval_s: float = 10.0, silent_polls_for_fault: int = 3,
                 boot_grace_s: float = 90.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] | None = None,
                 relay_on: bool | None = None) -> None:
        self.device = device
        self.driver = driver
        self.emit = emit
        self.interval_s = interval_s
        self.silent_polls_for_fault = silent_polls_for_fault
        self.boot_grace_s = boot_grace_s
        self.clock = clock
        self._cancel = threading.Event()
        self._generation = 0            # bumped by every new power request (new_step)
        self._wakeup = threading.Condition()
        self.sleep: Callable[[float], object] | None = sleep
        # One lock for the judgement state: the poll thread and the sequencing worker both
        # change the failure count, the relay state and the last health.
        self._lock = threading.RLock()
        self.relay_on = relay_on
        self._relay_since = clock()
        self.failures = 0
        """Failed polls in a row with the relay on; changed only with ``_lock`` held."""
        self.health: DeviceHealthChanged | None = None

    def __repr__(self) -> str:
        status = self.health.status if self.health else "unpolled"
        return f"<HealthPoller {self.device} relay={self.relay_on} {status}>"

    # ------------------------------------------------------------------ inputs
    def set_relay(self, on: bool) -> None:
        """The agent switched this device's power (the boot grace starts again)."""
        with self._lock:
            if on != self.relay_on:
                self._relay_since = self.clock()
                self.failures = 0
            self.relay_on = on

    def new_step(self) -> int:
        """A new power request: returns its generation. Any step of an older generation is
        now superseded: a running one stops at its next check, a queued one is skipped."""
        with self._wakeup:
            self._generation += 1
            self._wakeup.notify_all()
            return self._generation

    def cancel_step(self) -> None:
        """Stop a running :meth:`wait_ready` / :meth:`standby_and_confirm` (a newer power
        request replaced it); the poller itself goes on."""
        self.new_step()

    def is_current(self, generation: int) -> bool:
        """True while no newer power request than ``generation`` was made."""
        return generation == self._generation

    def _superseded(self, generation: int) -> bool:
        return self._cancel.is_set() or generation != self._generation

    def _pause(self, seconds: float, generation: int) -> None:
        """Sleep between tries; woken early by :meth:`cancel` or a newer request."""
        if self.sleep is not None:
            self.sleep(seconds)
            return
        with self._wakeup:
            self._wakeup.wait_for(lambda: self._superseded(generation), seconds)

    def cancel(self) -> None:
        """Stop :meth:`run` and any :meth:`wait_ready` / :meth:`standby_and_confirm` soon."""
        self._cancel.set()
        with self._wakeup:
            self._wakeup.notify_all()

    # ------------------------------------------------------------------ polling
    def _attempt(self, step: Callable[[], _Reading]) -> _Reading:
        """Run one driver step, turning each typed error into a failed reading (which carries
        what the driver still knows of the device's identity: usually nothing)."""
        try:
            return step()
        except PortGone as e:
            # The driver already dropped the dead handle (closing here could close a port
            # another thread has just reopened); the next call opens the port again.
            failure = _Reading(failure="port-gone", detail=str(e))
        except DeviceTimeout as e:
            failure = _Reading(failure="silent", detail=str(e))
        except BadReply as e:
            failure = _Reading(failure="garbled", detail=str(e))
        except DeviceRefused as e:
            failure = _Reading(failure="refused", detail=str(e))
        except DeviceError as e:
            failure = _Reading(failure="error", detail=str(e))
        return replace(failure, identity=self.driver.known_identity)

    def _read(self, with_call: bool = True, with_identity: bool = True) -> _Reading:
        d = self.driver

        def step() -> _Reading:
            power = d.power_state()
            # The identity is asked once per driver session (after the port opens, after a
            # silence…), and only of a device that answers: a booting one refuses.
            ident = (d.identity() if with_identity and power in ANSWERING
                     else d.known_identity)
            call = (d.call_state() if with_call and d.has_calls and power in ("on", "unknown")
                    else None)
            return _Reading(power=power, call=call, identity=ident)

        return self._attempt(step)

    def _in_grace(self) -> bool:
        return bool(self.relay_on) and self.clock() - self._relay_since < self.boot_grace_s

    def judge(self, r: _Reading) -> DeviceHealthChanged:
        """Turn one reading into a health value with the device's model and serial (updates
        the failure count, under the poller's lock: safe from any thread)."""
        with self._lock:
            health = self._judge(r)
        return replace(health, model=r.identity.model, serial=r.identity.serial)

    def _clear_failures(self) -> None:
        with self._lock:
            self.failures = 0

    def _judge(self, r: _Reading) -> DeviceHealthChanged:
        """:meth:`judge` with ``_lock`` held."""
        dev = self.device
        in_call = ((r.call is not None)
                   if self.driver.has_calls and r.power in ("on", "unknown") else None)
        if r.failure is None:
            self.failures = 0
            if r.power == "booting":
                grace = self._in_grace() or self.relay_on is None
                return DeviceHealthChanged(dev, "unknown" if grace else "degraded",
                                           R_BOOTING if grace else R_SLOW_BOOT, power="booting")
            if self.relay_on is False:
                return DeviceHealthChanged(dev, "degraded", R_RELAY_OFF_ALIVE, power=r.power)
            reason = (R_IN_CALL if in_call else R_STANDBY if r.power == "standby"
                      else R_ANSWERING if r.power == "unknown" else R_ON)
            return DeviceHealthChanged(dev, "ok", reason, power=r.power, in_call=in_call)
        if self.relay_on is False and r.failure in ("silent", "port-gone"):
            self.failures = 0
            return DeviceHealthChanged(dev, "ok", R_OFF, power="off")
        if self._in_grace() and r.failure in ("silent", "port-gone", "refused", "garbled"):
            return DeviceHealthChanged(dev, "unknown", R_BOOTING, power="booting")
        if r.failure == "port-gone":
            self.failures += 1
            return DeviceHealthChanged(dev, "fault", R_PORT_GONE)
        if r.failure == "refused":
            return DeviceHealthChanged(dev, "degraded", f"{R_REFUSED}: {_tail(r.detail)}")
        self.failures += 1
        status: HealthStatus
        if self.relay_on is None:
            status = "unknown"
        elif self.failures >= self.silent_polls_for_fault:
            status = "fault"
        else:
            status = "degraded"
        if r.failure == "garbled":
            return DeviceHealthChanged(dev, status, R_GARBLED)
        if r.failure == "error":
            return DeviceHealthChanged(dev, status, f"{R_ERROR}: {_tail(r.detail)}")
        return DeviceHealthChanged(dev, status, R_SILENT_FAULT if status == "fault" else R_SILENT)

    def poll_once(self) -> DeviceHealthChanged:
        """Poll now; emit and return the new health if it changed (else return it anyway)."""
        reading = self._read()
        with self._lock:
            health = self.judge(reading)
            changed = health != self.health
            self.health = health
        if changed:
            self.emit(health)
        return health

    def run(self, stop: threading.Event | None = None) -> None:
        """Poll every ``interval_s`` until ``stop`` is set or :meth:`cancel` is called.

        Nothing one poll raises ends the loop: an unexpected exception (a driver bug) is
        logged, reported as health ``unknown`` with the error, and the driver's port is
        closed so the next poll starts a fresh session.
        """
        stop = stop or self._cancel
        while not (stop.is_set() or self._cancel.is_set()):
            try:
                self.poll_once()
            except Exception as e:
                log.exception("%s: health poll failed", self.device)
                self._poll_crashed(e)
            stop.wait(self.interval_s)

    def _poll_crashed(self, e: Exception) -> None:
        try:
            self.driver.close()
        except Exception:
            log.exception("%s: closing the driver failed", self.device)
        ident = self.driver.known_identity      # empty: close() forgot it
        health = DeviceHealthChanged(self.device, "unknown",
                                     f"{R_ERROR}: {type(e).__name__}: {_tail(str(e))}",
                                     model=ident.model, serial=ident.serial)
        with self._lock:
            changed = health != self.health
            self.health = health
        if changed:
            try:
                self.emit(health)
            except Exception:
                log.exception("%s: reporting health failed", self.device)

    # ------------------------------------------------------------------ sequencing
    def _outcome(self, ok: bool, state: str, start: float, attempts: int,
                 reason: str) -> Outcome:
        return Outcome(self.device, ok, state, round(self.clock() - start, 3), attempts, reason)

    def _give_up_or_wait(self, start: float, timeout_s: float, interval_s: float,
                         attempts: int, state: str, reason: str,
                         generation: int) -> Outcome | None:
        """The failed outcome if superseded or out of time; else sleep until the next try."""
        if self._superseded(generation):
            return self._outcome(False, state, start, attempts, R_CANCELLED)
        left = start + timeout_s - self.clock()
        if left <= 0:
            return self._outcome(False, state, start, attempts, reason)
        self._pause(min(interval_s, left), generation)
        if self._superseded(generation):
            return self._outcome(False, state, start, attempts, R_CANCELLED)
        return None

    def wait_ready(self, timeout_s: float, *, interval_s: float = 1.0,
                   wake: bool = False, generation: int | None = None,
                   step: int = 0) -> Outcome:
        """Poll until the device answers (not booting) after power on, at most ``timeout_s``.

        With ``wake=True`` a device that answers in standby, or without saying whether it
        is awake (``unknown``: Poly after a reconnect, Cisco half awake), is woken (waking an
        awake device is harmless). Emits
        :class:`DeviceReady` ``(device, step)`` on success: ``step`` is the core's step
        number, so that a late answer to a replaced step confirms nothing. ``generation``
        (from :meth:`new_step`; default: the current one): a newer request cancels this wait.
        """
        start = self.clock()
        attempts = 0
        gen = self._generation if generation is None else generation

        def wake_up() -> _Reading:
            self.driver.wake()
            return _Reading(power="on")

        while True:
            if self._superseded(gen):
                return self._outcome(False, "cancelled", start, attempts, R_CANCELLED)
            attempts += 1
            r = self._read(with_call=False, with_identity=False)
            if r.failure is None and wake and r.power in ("standby", "unknown"):
                r = self._attempt(wake_up)
            if r.failure is None and r.power in ANSWERING:
                self._clear_failures()
                self.emit(DeviceReady(self.device, step))
                return self._outcome(True, r.power or "on", start, attempts, R_ON)
            if r.failure is None:
                state, reason = r.power or "unknown", R_BOOTING
            else:
                state, reason = _explain(r)
            if stop := self._give_up_or_wait(start, timeout_s, interval_s, attempts, state,
                                             reason, gen):
                return stop

    def standby_and_confirm(self, timeout_s: float, *, interval_s: float = 1.0,
                            generation: int | None = None, step: int = 0) -> Outcome:
        """Send standby, then poll until the device confirms it, at most ``timeout_s``.

        A refused standby (e.g. in a call) is sent again on the next try. Emits
        :class:`DeviceStandby` ``(device, step)`` on success. ``generation`` and ``step``: as
        for :meth:`wait_ready`.
        """
        start = self.clock()
        attempts = 0
        sent = False
        gen = self._generation if generation is None else generation

        def standby_then_read() -> _Reading:
            nonlocal sent
            if not sent:
                self.driver.standby()
                sent = True
            return _Reading(power=self.driver.power_state())

        while True:
            if self._superseded(gen):
                return self._outcome(False, "cancelled", start, attempts, R_CANCELLED)
            attempts += 1
            r = self._attempt(standby_then_read)
            if r.failure is None and r.power in ("standby", "off"):
                self.emit(DeviceStandby(self.device, step))
                return self._outcome(True, r.power or "standby", start, attempts, R_STANDBY)
            if r.failure == "refused":
                sent = False        # ask again next time (e.g. once the call has ended)
            state, reason = (r.power or "on", R_ON) if r.failure is None else _explain(r)
            if stop := self._give_up_or_wait(start, timeout_s, interval_s, attempts, state,
                                             reason, gen):
                return stop


def _explain(r: _Reading) -> tuple[str, str]:
    reasons = {"silent": R_SILENT, "garbled": R_GARBLED, "port-gone": R_PORT_GONE,
               "refused": f"{R_REFUSED}: {_tail(r.detail)}",
               "error": f"{R_ERROR}: {_tail(r.detail)}"}
    return r.failure or "error", reasons.get(r.failure or "", R_ERROR)


def _tail(detail: str) -> str:
    """A driver message without the device name prefix, kept short."""
    return detail.split(": ", 1)[-1][:120]
