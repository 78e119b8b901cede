"""The power sequence on its own: the machine, fed by hand with a fake clock."""

from __future__ import annotations

from typing import Any

from agent.contract.events import data
from agent.core.actions import AwaitReady, SendStandby, SetRelay
from agent.core.sequence import Power, Sequencer
from tests.core.helpers import settings

OFF = {"codec": False, "camera": False, "amplifier": False}
ON = {"codec": True, "camera": True, "amplifier": True}


class Machine:
    """A sequencer and what it said, used at successive times."""

    def __init__(self, confirm: bool = False, relays: dict[str, bool] | None = None,
                 awake: frozenset[str] = frozenset()) -> None:
        self.settings = settings(confirm=confirm)
        self.power = Power(dict(relays or OFF), awake)
        self.out: list[Any] = []

    def at(self, now: float) -> Sequencer:
        m = Sequencer(self.settings, self.power, now, now, self._emit, self.out.append)
        self._machine = m
        return m

    def _emit(self, event: Any) -> None:
        self.out.append((event.KIND, data(event)))

    def step(self) -> int:
        """The number of the step the machine waits on now."""
        seq = self._machine.sequence
        return seq.step if seq is not None else 0

    def take(self) -> list[Any]:
        self.power = self._machine.power
        out, self.out = self.out, []
        return out


def relays(out: list[Any]) -> list[tuple[str, bool]]:
    return [(a.device, a.on) for a in out if isinstance(a, SetRelay)]


def kinds(out: list[Any]) -> list[str]:
    return [o[0] for o in out if isinstance(o, tuple)]


def test_on_in_order_each_after_its_delay() -> None:
    m = Machine()
    m.at(0).start(True, "r")
    out = m.take()
    assert kinds(out) == ["power_sequence_started"]
    assert relays(out) == [("codec", True)]
    assert m.power.sequence is not None and m.power.sequence.deadline == 5
    m.at(4.9).on_time()
    assert m.take() == []
    m.at(5).on_time()
    out = m.take()
    assert relays(out) == [("camera", True)] and kinds(out) == ["power_step"]
    m.at(7).on_time()
    out = m.take()
    # The last device has no one after it to wait for.
    assert relays(out) == [("amplifier", True)]
    assert kinds(out) == ["power_step", "power_step", "power_sequence_finished"]
    assert m.power.sequence is None and m.power.relays == ON


def test_off_in_reverse_order_each_relay_after_its_grace() -> None:
    m = Machine(relays=ON)
    m.at(0).start(False, "r")
    assert relays(m.take()) == [("amplifier", False), ("camera", False)]
    m.at(9.9).on_time()
    assert m.take() == []
    m.at(10).on_time()
    out = m.take()
    assert relays(out) == [("codec", False)] and kinds(out)[-1] == "power_sequence_finished"


def test_driver_confirms_or_times_out_and_every_step_is_reported() -> None:
    m = Machine(confirm=True)
    m.at(0).start(True, "r")
    out = m.take()
    assert AwaitReady("codec") in out
    m.at(3).answer("camera", True, m.step())          # not the device being waited for
    assert m.take() == []
    m.at(4).answer("codec", True, m.step())
    out = m.take()
    steps = [o[1] for o in out if isinstance(o, tuple) and o[0] == "power_step"]
    assert steps == [{"device": "codec", "on": True, "outcome": "confirmed", "elapsed_s": 4,
                      "reason": "r"}]
    assert relays(out) == [("camera", True)] and AwaitReady("camera") in out
    m.at(4 + 30).on_time()
    steps = [o[1] for o in m.take() if isinstance(o, tuple) and o[0] == "power_step"]
    assert steps[0]["outcome"] == "timeout" and steps[0]["device"] == "camera"


def test_standby_confirmation_opens_the_relay() -> None:
    m = Machine(confirm=True, relays=ON)
    m.at(0).start(False, "r")
    out = m.take()
    assert out[-1] == SendStandby("amplifier") and relays(out) == []
    m.at(0.5).answer("amplifier", True, m.step())       # an answer of the wrong kind
    assert m.take() == []
    m.at(0.6).answer("amplifier", False, m.step())
    assert relays(m.take()) == [("amplifier", False)]


def test_new_request_cancels_the_running_one() -> None:
    m = Machine()
    m.at(0).start(True, "first")
    m.take()
    m.at(1).start(False, "second")
    out = m.take()
    assert out[0] == ("power_sequence_cancelled", {"on": True, "reason": "first",
                                                   "replaced_by": "second", "device": "codec"})
    # Only the codec was on: it alone goes off, after its grace.
    assert m.power.sequence is not None and m.power.sequence.remaining == ()
    assert m.power.sequence.current == "codec"


def test_nothing_to_do_is_no_sequence_but_a_closed_relay_still_gets_woken() -> None:
    m = Machine(relays=ON)
    m.at(0).start(True, "r")
    assert m.take() == [] and m.power.sequence is None and m.power.started == 1
    m = Machine(confirm=True, relays=ON, awake=frozenset({"camera"}))
    m.at(0).start(True, "r")
    out = m.take()
    assert out[0] == ("power_sequence_started", {"on": True, "reason": "r",
                                                 "devices": ["codec", "amplifier"]})
    assert relays(out) == [] and AwaitReady("codec") in out


def test_power_cycle_switches_back_on_once_off() -> None:
    m = Machine(relays=ON)
    m.at(0).start(False, "cycle", ("codec",), then_on=True)
    assert relays(m.take()) == []
    m.at(10).on_time()
    out = m.take()
    assert relays(out) == [("codec", False), ("codec", True)]
    assert kinds(out).count("power_sequence_started") == 1   # the second half
    assert all(a.reason == "cycle" for a in out if isinstance(a, SetRelay))


def test_each_wait_for_a_driver_has_its_own_number_and_only_it_is_confirmed() -> None:
    m = Machine(confirm=True)
    m.at(0).start(True, "r")
    codec = next(a for a in m.take() if isinstance(a, AwaitReady))
    m.at(1).answer("codec", True, codec.step + 1)           # someone else's answer
    assert m.take() == [] and m.power.awake == frozenset()
    m.at(2).answer("codec", True, codec.step)
    camera = next(a for a in m.take() if isinstance(a, AwaitReady))
    assert camera.step == codec.step + 1 and m.power.steps == camera.step
    assert m.power.awake == {"codec"}                        # the driver said so


def test_a_relay_opened_forgets_that_its_device_was_awake() -> None:
    m = Machine(relays=ON, awake=frozenset({"codec", "camera"}))
    m.at(0).start(False, "r", ("camera",))
    m.take()
    assert m.power.awake == {"codec"} and m.power.relays["camera"] is False
