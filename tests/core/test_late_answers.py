"""A device's answer confirms only the step it names: a late answer to a step a newer request
replaced confirms nothing (and numbers are never used twice, across restarts too)."""

from __future__ import annotations

from agent.core import room as core
from agent.core.events import DeviceReady, DeviceStandby, LocalPowerRequest, Tick
from tests.core.helpers import Room, settings


def waits(out: core.Outcome) -> list[core.AwaitReady | core.SendStandby]:
    return [a for a in out.actions if isinstance(a, core.AwaitReady | core.SendStandby)]


def confirmed(out: core.Outcome) -> list[str]:
    return [a.data["device"] for a in out.actions if isinstance(a, core.Emit)
            and a.kind == "power_step" and a.data["outcome"] == "confirmed"]


def test_a_late_ready_for_a_replaced_step_confirms_nothing() -> None:
    r = Room(settings(confirm=True))
    first = waits(r.feed(LocalPowerRequest(True, "cli"), at=0))[0]      # wake the codec
    off = waits(r.feed(LocalPowerRequest(False, "cli"), at=1))[0]       # standby instead
    again = waits(r.feed(LocalPowerRequest(True, "cli"), at=2))[0]      # and wake it again
    assert (first.device, off.device, again.device) == ("codec", "codec", "codec")
    assert len({first.step, off.step, again.step}) == 3 and all(
        w.step > 0 for w in (first, off, again))
    # The codec's answer to the first wake-up arrives now: it says nothing of the third.
    assert confirmed(r.feed(DeviceReady("codec", first.step), at=3)) == []
    assert confirmed(r.feed(DeviceStandby("codec", off.step), at=3.5)) == []
    assert confirmed(r.feed(DeviceReady("codec", again.step), at=4)) == ["codec"]


def test_an_answer_that_names_no_step_confirms_nothing() -> None:
    # Every driver numbers its answers: an unnumbered one cannot be told from a late one.
    r = Room(settings(confirm=True))
    wait = waits(r.feed(LocalPowerRequest(True, "cli"), at=0))[0]
    assert confirmed(r.feed(DeviceReady("codec"), at=1)) == []
    assert confirmed(r.feed(DeviceReady("codec", wait.step), at=2)) == ["codec"]


def test_step_numbers_go_on_after_a_restart() -> None:
    r = Room(settings(confirm=True))
    first = waits(r.feed(LocalPowerRequest(True, "cli"), at=0))[0]
    saved = core.persistent(r.state)
    r2 = Room(settings(confirm=True), relays=saved["relays"], saved=saved)
    again = waits(r2.feed(Tick(), at=1))[0]
    assert again.device == "codec" and again.step > first.step
    assert confirmed(r2.feed(DeviceReady("codec", first.step), at=2)) == []
