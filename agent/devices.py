"""The room's RS-232 devices at run time: one driver, one health poller and one sequencing
worker per device that has a driver, plus the emulators a simulated room talks to.

Everything here runs in its own threads and only reports through ``put`` (the agent's queue):
``DeviceHealthChanged`` from the pollers, ``DeviceReady`` / ``DeviceStandby`` from the
sequencing helpers, each naming the core's step it answers. The core decides what they mean.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agent.config import Device
from agent.core.events import Event
from agent.drivers import build_driver
from agent.drivers.health import HealthPoller

log = logging.getLogger(__name__)


class SerialDevice:
    """One device with a driver: its poller thread and a one-thread worker for sequencing."""

    def __init__(self, name: str, dev: Device, url: str, put: Callable[[Event], None],
                 relay_on: bool) -> None:
        assert dev.driver is not None and dev.serial is not None
        self.name = name
        self.dev = dev
        self.driver = build_driver(dev.driver, url=url, baudrate=dev.serial.baudrate,
                                   settings=dev.settings, device=name)
        self.poller = HealthPoller(name, self.driver, put, interval_s=dev.poll_s,
                                   silent_polls_for_fault=dev.silent_polls_for_fault,
                                   boot_grace_s=dev.ready_timeout_s, relay_on=relay_on)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=f"poll-{name}", daemon=True)
        self._work = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"seq-{name}")

    def start(self) -> None:
        self._thread.start()

    def _poll(self) -> None:
        try:
            self.poller.run(self._stop)
        except Exception:  # pragma: no cover - a poller bug must not end the room
            log.exception("health poller for %s stopped", self.name)

    def relay_changed(self, on: bool) -> None:
        self.poller.set_relay(on)

    def await_ready(self, step: int = 0) -> None:
        """Wake the device if it is in standby and report ``DeviceReady(device, step)`` once
        it answers (bounded); ``step`` is the core's step number, carried back so a late
        answer can be told from the current one. A step still running or queued for an
        older request is cancelled."""
        gen = self.poller.new_step()
        self._work.submit(self._guard, gen,
                          lambda t: self.poller.wait_ready(t, wake=True, generation=gen,
                                                           step=step),
                          self.dev.ready_timeout_s)

    def send_standby(self, step: int = 0) -> None:
        """Send standby and report ``DeviceStandby(device, step)`` once confirmed (bounded by
        the grace). A step still running or queued for an older request is cancelled."""
        gen = self.poller.new_step()
        self._work.submit(self._guard, gen,
                          lambda t: self.poller.standby_and_confirm(t, generation=gen,
                                                                    step=step),
                          max(self.dev.off_grace_s, 1.0))

    def _guard(self, generation: int, fn: Callable[[float], Any], timeout: float) -> None:
        if not self.poller.is_current(generation):
            log.info("%s: skipped a sequencing step a newer power request replaced", self.name)
            return
        try:
            outcome = fn(timeout)
            log.info("%s: %s", self.name, outcome)
        except Exception:  # pragma: no cover - typed errors are handled inside the poller
            log.exception("%s: sequencing step failed", self.name)

    def close(self) -> None:
        self._stop.set()
        self.poller.cancel()
        self._work.shutdown(wait=True, cancel_futures=True)
        if self._thread.is_alive():
            self._thread.join(5)
        self.driver.close()


class SerialDevices:
    """All the room's devices that have a driver (others are relay-only)."""

    def __init__(self, devices: Mapping[str, Device], put: Callable[[Event], None],
                 relays: Mapping[str, bool], urls: Mapping[str, str] | None = None) -> None:
        self.devices: dict[str, SerialDevice] = {}
        for name, dev in devices.items():
            if dev.driver is None or dev.serial is None:
                continue
            url = (urls or {}).get(name, dev.serial.url)
            self.devices[name] = SerialDevice(name, dev, url, put, relays[name])

    def start(self) -> None:
        for d in self.devices.values():
            d.start()

    def relay_changed(self, device: str, on: bool) -> None:
        if device in self.devices:
            self.devices[device].relay_changed(on)

    def await_ready(self, device: str, step: int = 0) -> None:
        """See :meth:`SerialDevice.await_ready`; nothing for a device without a driver."""
        if device in self.devices:
            self.devices[device].await_ready(step)

    def send_standby(self, device: str, step: int = 0) -> None:
        """See :meth:`SerialDevice.send_standby`; nothing for a device without a driver."""
        if device in self.devices:
            self.devices[device].send_standby(step)

    def close(self) -> None:
        for d in self.devices.values():
            d.close()


class EmulatedRoom:
    """For ``--simulate``: an emulator on a pseudo-terminal for every device with a driver,
    powered by its simulated relay. ``urls`` are the stable links the drivers open."""

    def __init__(self, devices: Mapping[str, Device], relays: Mapping[str, bool],
                 link_dir: Path) -> None:
        self.emulators: dict[str, Any] = {}
        for name, dev in devices.items():
            if dev.driver is None:
                continue
            from agent.emulators import make_emulator  # only a room with serial devices

            opts: dict[str, Any] = {"boot_s": dev.simulation.boot_s, "powered": relays[name],
                                    "link_dir": link_dir, "link_name": f"tty-{name}"}
            self.emulators[name] = make_emulator(dev.driver, **opts)

    @property
    def urls(self) -> dict[str, str]:
        return {name: str(emu.url) for name, emu in self.emulators.items()}

    def start(self) -> None:
        for emu in self.emulators.values():
            emu.start()

    def relay_changed(self, device: str, on: bool) -> None:
        if device in self.emulators:
            self.emulators[device].power(on)

    def close(self) -> None:
        for emu in self.emulators.values():
            emu.stop()
