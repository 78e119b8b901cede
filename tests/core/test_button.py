"""The operator button's double press is a help request (agent/hardware/board.py), on
gpiozero's MockFactory with an injected clock: no sleeps."""

from __future__ import annotations

import queue

from agent.config import ButtonCfg
from agent.core.events import ButtonHeld, ButtonPressed, HelpRequested
from agent.hardware.board import OperatorButton
from agent.hardware.pins import mock_factory


def button(double_press_s: float = 0.6) -> tuple[OperatorButton, queue.Queue[object],
                                                 list[float], object]:
    factory = mock_factory()
    got: queue.Queue[object] = queue.Queue()
    now = [100.0]
    cfg = ButtonCfg(pin=16, hold_s=3, bounce_s=0, double_press_s=double_press_s)
    btn = OperatorButton(cfg, factory, lambda: got.put(ButtonPressed()),
                         lambda: got.put(ButtonHeld()), lambda: got.put(HelpRequested("button")),
                         clock=lambda: now[0])
    return btn, got, now, factory.pin(16)


def press(pin: object, now: list[float], at: float) -> None:
    now[0] = at
    pin.drive_low()   # type: ignore[attr-defined]  # pulled up: pressed connects to ground
    pin.drive_high()  # type: ignore[attr-defined]


def test_two_presses_close_together_are_a_press_then_a_help_request() -> None:
    btn, got, now, pin = button()
    press(pin, now, 100.0)
    assert got.get(timeout=2) == ButtonPressed()          # delivered at once, no waiting
    press(pin, now, 100.5)
    assert got.get(timeout=2) == HelpRequested("button")
    press(pin, now, 100.9)                                 # a third is a press again
    assert got.get(timeout=2) == ButtonPressed()
    assert got.empty()
    btn.close()


def test_presses_further_apart_are_two_presses() -> None:
    btn, got, now, pin = button(double_press_s=0.6)
    press(pin, now, 100.0)
    press(pin, now, 100.61)
    assert [got.get(timeout=2), got.get(timeout=2)] == [ButtonPressed(), ButtonPressed()]
    assert got.empty()
    btn.close()


def test_the_window_is_configurable() -> None:
    btn, got, now, pin = button(double_press_s=1.5)
    press(pin, now, 100.0)
    press(pin, now, 101.4)
    assert [got.get(timeout=2), got.get(timeout=2)] == [ButtonPressed(), HelpRequested("button")]
    btn.close()
