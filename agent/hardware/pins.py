"""Pin factories that never glitch a relay.

Two gpiozero behaviours would switch a relay for a moment at start-up or stop:

* lgpio's ``LGPIOPin`` claims every pin as an *input* when it is first touched, then claims an
  output with level **low** before the wanted level is written. On an active-low relay HAT that is
  a pulse that energises the coil.
* Closing a pin (clean exit, gpiozero's ``atexit``) turns it back into an input, releasing the
  relay.

:class:`SteadyLGPIOFactory` claims an output pin in one call with its final level and leaves
every output as it is on close. :class:`SteadyMockPin` gives the simulator and the tests the same
close behaviour, so what they prove holds on the Pi. See ``docs/hardware.md``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpiozero import Factory
from gpiozero.pins.mock import MockFactory, MockPin


class SteadyMockPin(MockPin):
    """A mock pin that keeps its output level when closed, like :class:`SteadyLGPIOFactory`."""

    def close(self) -> None:
        self.when_changed = None
        if self.function != "output":
            self.function = "input"


def mock_factory() -> MockFactory:
    """The factory for ``--simulate`` and the tests."""
    return MockFactory(pin_class=SteadyMockPin)


def lgpio_factory(chip: int | None = None) -> Factory:
    """The factory for a real Raspberry Pi (needs the ``lgpio`` package: ``pip install .[pi]``)."""
    import lgpio  # type: ignore[import-not-found]
    from gpiozero.pins.lgpio import LGPIOFactory, LGPIOPin
    from gpiozero.pins.local import LocalPiPin

    class SteadyLGPIOPin(LGPIOPin):  # type: ignore[misc]
        """An lgpio pin that is not claimed until its function is known."""

        def __init__(self, factory: Any, info: Any) -> None:
            # Skip LGPIOPin.__init__: claiming the line as an input would stop driving a relay
            # that the previous agent (or /boot/firmware/config.txt) left energised.
            LocalPiPin.__init__(self, factory, info)
            self._pwm = None
            self._bounce = None
            self._callback = None
            self._edges = lgpio.BOTH_EDGES

        def output_with_state(self, state: bool) -> None:
            # One call: the line becomes an output already at its level, so no pulse.
            if self._callback is not None:
                self._callback.cancel()
                self._callback = None
            lgpio.gpio_claim_output(self.factory._handle, self._number, int(bool(state)))

        def close(self) -> None:
            # Leave outputs driven at their level; inputs are returned as gpiozero does.
            if self.factory._handle is None:
                return
            mode = lgpio.gpio_get_mode(self.factory._handle, self._number)
            if not mode & self.GPIO_IS_OUT:
                super().close()

    class SteadyLGPIOFactory(LGPIOFactory):  # type: ignore[misc]
        def __init__(self, chip: int | None = None) -> None:
            super().__init__(chip)
            self.pin_class = SteadyLGPIOPin

    return SteadyLGPIOFactory(chip)


class RecordedMockPin(SteadyMockPin):
    """A mock pin that starts at the level it had in the previous process and logs every
    change, so a simulated room survives ``kill -9`` as a Pi's GPIO lines do."""

    def __init__(self, factory: Any, info: Any) -> None:
        super().__init__(factory, info)
        saved = factory.saved_levels.get(info.name)
        if saved is not None:
            self._state = saved
        self.clear_states()

    def _change_state(self, value: bool) -> bool:
        changed = bool(super()._change_state(value))
        if changed:
            self.factory.record(self.info.name, value)
        return changed


class RecordedMockFactory(MockFactory):
    """Mock pins for ``--simulate`` whose levels live in ``<dir>/pins.log``.

    Each line is ``<time> <pin name> <0|1> <pid> <seq>:<reason>``, appended and never
    rewritten: the last line of a pin is its level, the whole file its history (pid 0 marks a
    level set from outside, such as the boot levels after a simulated power cut). ``seq`` is
    the agent's next event number when the pin moved (so every event below it was recorded
    before), ``reason`` the power sequence's reason; ``-`` where unknown.
    """

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        # Who moved a pin: the agent sets this to give "<next event seq>:<reason>".
        self.context: Callable[[], str] = lambda: "-"
        self.log_path = Path(directory) / "pins.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.saved_levels: dict[str, bool] = read_pin_levels(self.log_path)
        self._lock = threading.Lock()
        super().__init__(pin_class=RecordedMockPin)

    def record(self, name: str, level: bool) -> None:
        with self._lock, self.log_path.open("a") as f:
            f.write(f"{self.clock():.6f} {name} {int(level)} {os.getpid()} {self.context()}\n")
            f.flush()


def read_pin_levels(log_path: Path) -> dict[str, bool]:
    """The last level of each pin in a :class:`RecordedMockFactory` log."""
    levels: dict[str, bool] = {}
    try:
        lines = log_path.read_text().splitlines()
    except FileNotFoundError:
        return levels
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("0", "1"):
            levels[parts[1]] = parts[2] == "1"
    return levels


def read_pin_history(log_path: Path) -> list[tuple[float, str, bool, int]]:
    """Every recorded change: (time, pin name, level, pid)."""
    return [(c.t, c.pin, c.level, c.pid) for c in read_pin_changes(log_path)]


@dataclass(frozen=True)
class PinChange:
    """One line of a :class:`RecordedMockFactory` log."""

    t: float
    pin: str
    level: bool
    pid: int
    seq: int | None = None      # the agent's next event number when the pin moved
    reason: str = ""            # the power sequence's reason


def read_pin_changes(log_path: Path) -> list[PinChange]:
    """Every recorded change, with who made it where the log says."""
    out = []
    for line in log_path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[2] not in ("0", "1"):
            continue
        seq, reason = None, ""
        if len(parts) >= 5 and ":" in parts[4]:
            head, _, reason = parts[4].partition(":")
            seq = int(head) if head.isdigit() else None
        out.append(PinChange(float(parts[0]), parts[1], parts[2] == "1", int(parts[3]), seq,
                             reason))
    return out
