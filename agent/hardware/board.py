"""The room's pins: one relay per device, the status LED and the operator button.

Everything takes a gpiozero pin factory, so the same code drives a Pi (lgpio) and the
simulator/tests (``MockFactory``).

Relay logic: a device is *powered* when its contact is closed. With ``contact: nc`` (the
fail-safe wiring) the device is powered while the coil is **released**; with ``contact: no``
while it is energised. :class:`Relay` hides this: ``relay.power = True`` powers the device.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from gpiozero import LED, RGBLED, Button, Factory, OutputDevice

from agent.config import ButtonCfg, Device, RgbLed, SingleLed
from agent.core.led import LedPattern


def coil_active_high(device: Device) -> bool:
    """gpiozero ``active_high`` that makes ``value == 1`` mean *device powered*."""
    return device.relay.active_high != (device.relay.contact == "nc")


def released_power(device: Device) -> bool:
    """Whether the device is powered while its relay coil is released (boot, agent gone)."""
    return device.relay.contact == "nc"


class Relay:
    """Power switch of one device. The pin is claimed at its final level: no start-up pulse."""

    def __init__(self, name: str, device: Device, factory: Factory, power: bool) -> None:
        self.name = name
        self.pin_number = device.relay.pin
        self._dev = OutputDevice(device.relay.pin, active_high=coil_active_high(device),
                                 initial_value=power, pin_factory=factory)

    @property
    def power(self) -> bool:
        return bool(self._dev.value)

    @power.setter
    def power(self, on: bool) -> None:
        if on:
            self._dev.on()
        else:
            self._dev.off()

    def close(self) -> None:
        """Let go of the pin; its level stays as it is (see :mod:`agent.hardware.pins`)."""
        self._dev.close()

    def __repr__(self) -> str:
        return f"<Relay {self.name} BCM{self.pin_number} power={'on' if self.power else 'off'}>"


class StatusLight:
    """The status LED, single or RGB; :meth:`show` is idempotent per pattern."""

    def __init__(self, cfg: SingleLed | RgbLed, factory: Factory) -> None:
        self._rgb: RGBLED | None = None
        self._single: LED | None = None
        if isinstance(cfg, RgbLed):
            self._rgb = RGBLED(cfg.pins.red, cfg.pins.green, cfg.pins.blue,
                               active_high=cfg.active_high, pwm=False, pin_factory=factory)
        else:
            self._single = LED(cfg.pin, active_high=cfg.active_high, pin_factory=factory)
        self.current: str | None = None

    def show(self, pattern: LedPattern) -> None:
        if pattern.name == self.current:
            return
        self.current = pattern.name
        if self._rgb is not None:
            if pattern.steady:
                self._rgb.color = pattern.colour
            else:
                self._rgb.blink(on_time=pattern.on_s, off_time=pattern.off_s,
                                on_color=pattern.colour, off_color=(0, 0, 0))
        elif self._single is not None:
            if pattern.steady:
                self._single.on()
            else:
                self._single.blink(on_time=pattern.on_s, off_time=pattern.off_s)

    def close(self) -> None:
        for dev in (self._rgb, self._single):
            if dev is not None:
                dev.off()
                dev.close()


class OperatorButton:
    """The operator button. A short press calls ``on_press`` (on release); holding past
    ``hold_s`` calls ``on_hold`` once, and the release that follows is not also a press.

    A **double press** — a second press beginning within ``double_press_s`` of the first —
    calls ``on_help`` instead of ``on_press`` for the second one. The first press is delivered
    at once as a press (a check-in, an answer to a check): nothing waits to see whether a
    second one follows, and whoever asks for help is in the room anyway. ``clock`` (monotonic
    seconds) is injectable for tests.
    """

    def __init__(self, cfg: ButtonCfg, factory: Factory, on_press: Callable[[], None],
                 on_hold: Callable[[], None], on_help: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._held = False
        self._down_at = 0.0
        self._last_press: float | None = None  # when the last delivered press began
        self._lock = threading.Lock()
        self._on_press = on_press
        self._on_hold = on_hold
        self._on_help = on_help
        self._double_s = cfg.double_press_s
        self._clock = clock
        self._btn = Button(cfg.pin, pull_up=cfg.pull_up, bounce_time=cfg.bounce_s or None,
                           hold_time=cfg.hold_s, pin_factory=factory)
        self._btn.when_pressed = self._pressed
        self._btn.when_held = self._was_held
        self._btn.when_released = self._released

    def _pressed(self) -> None:
        with self._lock:
            self._held = False
            self._down_at = self._clock()

    def _was_held(self) -> None:
        with self._lock:
            self._held = True
            self._last_press = None
        self._on_hold()

    def _released(self) -> None:
        with self._lock:
            held = self._held
            self._held = False
            if held:
                return
            last, self._last_press = self._last_press, self._down_at
            double = (self._on_help is not None and last is not None
                      and self._down_at - last <= self._double_s)
            if double:
                self._last_press = None  # a third press is a press again
        if double and self._on_help is not None:
            self._on_help()
        else:
            self._on_press()

    def close(self) -> None:
        self._btn.close()


class RelayError(Exception):
    """A relay that did not switch: the pin write raised, or the pin reads another level.

    ``actual`` is the level read back afterwards (device powered or not), None if the pin
    cannot be read either; ``error`` says what went wrong, for the ``relay_failed`` event.
    """

    def __init__(self, device: str, wanted: bool, actual: bool | None, error: str) -> None:
        super().__init__(f"relay {device}: {error}")
        self.device = device
        self.wanted = wanted
        self.actual = actual
        self.error = error


def _read_back(relay: Relay) -> tuple[bool | None, str]:
    try:
        return relay.power, ""
    except Exception as e:  # a failing GPIO chip raises whatever its library raises
        return None, f"cannot read the pin back: {e}"


class Board:
    """All of a room's pins. ``power`` maps device name to the power it should have at start."""

    def __init__(self, devices: Mapping[str, Device], led: SingleLed | RgbLed | None,
                 button: ButtonCfg | None, factory: Factory, power: Mapping[str, bool],
                 on_press: Callable[[], None], on_hold: Callable[[], None],
                 on_help: Callable[[], None] | None = None) -> None:
        self.factory = factory
        self.relays = {n: Relay(n, d, factory, power[n]) for n, d in devices.items()}
        self.light = StatusLight(led, factory) if led is not None else None
        self.button = (OperatorButton(button, factory, on_press, on_hold, on_help)
                       if button is not None else None)

    def set_power(self, device: str, on: bool) -> None:
        """Switch ``device``'s power and check the pin took it; raises :class:`RelayError`."""
        relay = self.relays[device]
        try:
            relay.power = on
        except Exception as e:  # lgpio raises its own error types, gpiozero others
            actual, unread = _read_back(relay)
            raise RelayError(device, on, actual,
                             f"pin write failed: {e}" + (f"; {unread}" if unread else "")) from e
        actual, unread = _read_back(relay)
        if unread:
            raise RelayError(device, on, None, unread)
        if actual != on:
            raise RelayError(device, on, actual,
                             f"BCM {relay.pin_number} reads {'on' if actual else 'off'} after "
                             f"switching {'on' if on else 'off'}")

    def show(self, pattern: LedPattern) -> None:
        if self.light is not None:
            self.light.show(pattern)

    def close(self) -> None:
        if self.button is not None:
            self.button.close()
        if self.light is not None:
            self.light.close()
        for r in self.relays.values():
            r.close()
