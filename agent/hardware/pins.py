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
