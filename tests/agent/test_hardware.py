"""Pins on gpiozero's MockFactory: no relay glitch at start-up or restart; LED; button."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from agent.config import SiteConfig, parse_config
from agent.core.events import ButtonHeld, ButtonPressed, LocalPowerRequest
from agent.core.led import BY_NAME, PATTERNS, led_table_markdown
from agent.hardware.board import Board, OperatorButton, coil_active_high
from agent.hardware.pins import mock_factory
from agent.runtime import Agent
from agent.store import StateDir, read_boot_id

ROOT = Path(__file__).resolve().parents[2]

CFG = """\
site: {id: xa-pins, name: "Xã Pins"}
devices:
  codec: {role: codec, relay: {pin: 26, active_high: false, contact: nc}, order: 1,
          on_delay_s: 0}
  camera: {role: camera, relay: {pin: 20, active_high: false, contact: no}, order: 2,
           on_delay_s: 0}
  amplifier: {role: amplifier, relay: {pin: 21, active_high: true, contact: nc}, order: 3}
status_led: {kind: rgb, pins: {red: 17, green: 27, blue: 22}}
button: {pin: 16, hold_s: 0.5, bounce_s: 0}
"""


@pytest.fixture
def cfg() -> SiteConfig:
    return parse_config(CFG)


def agent(cfg: SiteConfig, factory: MockFactory, state: Path) -> Agent:
    return Agent(cfg, factory, StateDir(state), connect=False)


def relay_pins(factory: MockFactory) -> dict[int, object]:
    return {n: factory.pin(n) for n in (26, 20, 21)}


def test_coil_polarity_table(cfg: SiteConfig) -> None:
    # value 1 must mean "device powered" for every wiring.
    assert coil_active_high(cfg.devices["codec"]) is True       # active low coil, NC contact
    assert coil_active_high(cfg.devices["camera"]) is False     # active low coil, NO contact
    assert coil_active_high(cfg.devices["amplifier"]) is False  # active high coil, NC contact


@pytest.mark.parametrize("levels", [
    # Boot levels from config.txt: every coil released -> NC devices powered, NO device off.
    {26: True, 20: True, 21: False},
    # A previous agent left the codec cut (coil energised) and the camera on.
    {26: False, 20: False, 21: False},
])
def test_first_start_claims_pins_without_a_transition(cfg: SiteConfig, tmp_path: Path,
                                                      levels: dict[int, bool]) -> None:
    factory = mock_factory()
    pins = relay_pins(factory)
    for n, level in levels.items():
        pin = pins[n]
        pin.drive_high() if level else pin.drive_low()  # type: ignore[attr-defined]
        pin.clear_states()  # type: ignore[attr-defined]
    st = StateDir(tmp_path)
    if levels[26] is False:
        # What the previous agent saved before it died: the relays as it left them.
        st.save_room({"relays": {"codec": False, "camera": True, "amplifier": True},
                      "completed": [], "powered": [], "adhoc": [], "locked_by": None,
                      "boot_id": read_boot_id()})
    a = agent(cfg, factory, tmp_path)
    a.start()
    for n, pin in pins.items():
        assert [s.state for s in pin.states] == [levels[n]], f"BCM {n} moved at start-up"  # type: ignore[attr-defined]
    a.close()


def test_restart_never_glitches_a_relay(cfg: SiteConfig, tmp_path: Path) -> None:
    factory = mock_factory()
    a = agent(cfg, factory, tmp_path)
    a.start()
    a.handle(LocalPowerRequest(False, "cli"))   # everything off, in reverse order
    assert a.state.relays == {"codec": False, "camera": False, "amplifier": False}
    a.handle(LocalPowerRequest(True, "cli"))
    a.handle(LocalPowerRequest(False, "cli"))
    a.close()                                    # clean stop: pins keep their level
    pins = relay_pins(factory)
    before = {n: p.state for n, p in pins.items()}  # type: ignore[attr-defined]
    for p in pins.values():
        p.clear_states()  # type: ignore[attr-defined]
    b = agent(cfg, factory, tmp_path)
    b.start()
    for n, p in pins.items():
        assert [s.state for s in p.states] == [before[n]]  # type: ignore[attr-defined]
    assert b.state.relays == {"codec": False, "camera": False, "amplifier": False}
    b.close()


def test_relay_power_follows_wiring(cfg: SiteConfig, tmp_path: Path) -> None:
    factory = mock_factory()
    a = agent(cfg, factory, tmp_path)
    a.start()
    a.handle(LocalPowerRequest(False, "cli"))
    pins = relay_pins(factory)
    # Powered off: NC coils energised, NO coil released.
    assert pins[26].state is False and pins[20].state is True and pins[21].state is True  # type: ignore[attr-defined]
    a.close()


def test_led_shows_each_pattern(cfg: SiteConfig) -> None:
    factory = mock_factory()
    board = Board(cfg.devices, cfg.status_led, None, factory,
                  {n: True for n in cfg.devices}, lambda: None, lambda: None)
    board.show(BY_NAME["window_active"])
    assert (factory.pin(17).state, factory.pin(27).state, factory.pin(22).state) == (
        False, True, False)
    board.show(BY_NAME["refused"])
    assert board.light is not None and board.light.current == "refused"
    board.close()


def test_button_press_and_hold(cfg: SiteConfig) -> None:
    factory = mock_factory()
    events: list[object] = []
    held = threading.Event()
    pressed = threading.Event()

    def on_press() -> None:
        events.append(ButtonPressed())
        pressed.set()

    def on_hold() -> None:
        events.append(ButtonHeld())
        held.set()

    assert cfg.button is not None
    btn = OperatorButton(cfg.button, factory, on_press, on_hold)
    pin = factory.pin(16)
    pin.drive_low()
    pin.drive_high()
    assert pressed.wait(2)
    pin.drive_low()
    assert held.wait(3)     # gpiozero's hold thread after hold_s
    pin.drive_high()        # the release after a hold is not also a press
    assert events == [ButtonPressed(), ButtonHeld()]
    btn.close()


def test_led_guide_in_docs_matches_the_table() -> None:
    doc = (ROOT / "docs" / "led.md").read_text()
    assert led_table_markdown() in doc
    # Single-colour LEDs: every pattern must differ by timing alone.
    timings = [(p.on_s, p.off_s) for p in PATTERNS]
    assert len(set(timings)) == len(timings)


def test_after_a_reboot_pins_are_taken_as_boot_left_them(cfg: SiteConfig,
                                                          tmp_path: Path) -> None:
    factory = mock_factory()
    pins = relay_pins(factory)
    boot = {26: True, 20: True, 21: False}   # config.txt: coils released
    for n, level in boot.items():
        pin = pins[n]
        pin.drive_high() if level else pin.drive_low()  # type: ignore[attr-defined]
        pin.clear_states()  # type: ignore[attr-defined]
    # Before the power cut the agent had switched everything off.
    StateDir(tmp_path).save_room({"relays": {"codec": False, "camera": False,
                                             "amplifier": False}, "boot_id": "an-older-boot"})
    a = agent(cfg, factory, tmp_path)
    a.start()
    for n, pin in pins.items():
        assert [s.state for s in pin.states] == [boot[n]], f"BCM {n} moved after a reboot"  # type: ignore[attr-defined]
    # NC devices are powered by a released coil, the NO camera is not.
    assert a.state.relays == {"codec": True, "camera": False, "amplifier": True}
    started = [r for r in a.outbox.pending() if r.kind == "agent_started"]
    assert started and started[-1].data["after_reboot"] is True
    a.close()
