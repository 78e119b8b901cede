"""Sequencing steps of one device (agent/devices.py) against the Poly emulator on a pty: a
newer power request cancels the running step and skips the queued ones."""

from __future__ import annotations

import queue
import time

from agent.config import Device
from agent.core.events import DeviceReady, DeviceStandby
from agent.devices import SerialDevice
from agent.emulators import PolyEmulator

from .conftest import FAST


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.005)


def test_on_off_on_skips_the_superseded_standby() -> None:
    with PolyEmulator() as emu:
        dev = Device.model_validate({
            "role": "codec", "relay": {"pin": 17}, "order": 1, "driver": "poly_group",
            "serial": {"url": emu.url}, "ready_timeout_s": 30, "off_grace_s": 30,
            "poll_s": 600, "settings": {"command_gap_s": 0, "reply_timeout_s": FAST}})
        events: queue.Queue = queue.Queue()
        sd = SerialDevice("codec", dev, emu.url, events.put, relay_on=True)
        emu.silent = True                           # still booting
        sd.start()
        try:
            wait_until(lambda: sd.poller.health is not None)   # the first poll is over
            seen = len(emu.received())
            sd.await_ready()                        # on: waits for the silent codec
            wait_until(lambda: len(emu.received()) > seen)      # …and is running
            sd.send_standby()                       # off
            sd.await_ready()                        # on again
            emu.silent = False                      # the codec is up
            while not isinstance(ev := events.get(timeout=10), DeviceReady):
                assert not isinstance(ev, DeviceStandby), "the superseded standby ran"
            assert "sleep" not in emu.received(), "the superseded standby step was sent"
            assert "wake" in emu.received()
        finally:
            sd.close()
