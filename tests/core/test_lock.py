"""The lock is state: settled once at the start of each step, recorded before what it causes."""

from __future__ import annotations

import pytest

from agent.core import room as core
from agent.core.events import (
    BrokerConnection,
    ButtonHeld,
    ButtonPressed,
    Command,
    LocalPowerRequest,
    ScheduleReceived,
    Tick,
    Window,
)
from tests.core.helpers import Room

ALL_ON = {"codec": True, "camera": True, "amplifier": True}
T1 = Window("t1", "test", 1000, 1600, "Kiểm tra")


def emits(out: core.Outcome) -> list[core.Emit]:
    return [a for a in out.actions if isinstance(a, core.Emit)]


@pytest.mark.parametrize("event,caused", [
    (ButtonPressed(), "check_in"),
    (ButtonHeld(), "shutdown_refused"),
    (LocalPowerRequest(False, "cli"), "shutdown_refused"),
])
def test_a_request_just_after_the_lead_began_is_recorded_after_the_lock(
        event: object, caused: str) -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((T1,), "v1"), at=0)
    # No Tick since the lead began at 100: the press itself is the first step of the lock.
    out = r.feed(event, at=100.5)  # type: ignore[arg-type]
    kinds = [e.kind for e in emits(out)]
    assert kinds[0] == "lock_engaged", kinds
    assert caused in kinds
    assert all(e.window_id == "t1" for e in emits(out))
    assert r.state.locked_by == "t1" and r.state.lock_since == 100.5


def test_the_district_refusal_names_the_lock_that_engaged_in_the_same_step() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((T1,), "v1"), at=0)
    out = r.feed(Command("c1", "power", {"on": False}), at=101)
    assert emits(out)[0].kind == "lock_engaged"
    assert [a.status for a in out.actions if isinstance(a, core.Reply)] == ["refused"]


def test_since_is_when_the_lock_engaged_and_survives_a_restart() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((T1,), "v1"), at=0)
    r.feed(Tick(), at=130)
    r.feed(Tick(), at=400)
    assert r.state.lock_since == 130
    saved = core.persistent(r.state)
    again = Room(relays=saved["relays"], saved=saved)
    assert again.state.lock_since == 130


def test_a_moved_window_announces_its_new_times() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((T1,), "v1"), at=0)
    r.feed(Tick(), at=200)
    later = Window("t1", "test", 1000, 2200, "Kiểm tra")
    out = r.feed(ScheduleReceived((later,), "v2"), at=300)
    moved = [e for e in emits(out) if e.kind == "lock_moved"]
    assert [(e.window_id, e.data) for e in moved] == [("t1", {
        "start": core.iso(1000), "end": core.iso(2200), "cap": core.iso(2200 + 3600)})]
    assert "lock_released" not in [e.kind for e in emits(out)]
    # The same schedule again moves nothing.
    out = r.feed(ScheduleReceived((later,), "v3"), at=301)
    assert "lock_moved" not in [e.kind for e in emits(out)]


def test_the_outcome_says_the_lock_the_led_and_whether_the_state_message_changed() -> None:
    r = Room(relays=ALL_ON)
    r.feed(BrokerConnection(True), at=0)
    out = r.feed(ScheduleReceived((T1,), "v1"), at=0)
    assert out.lock is None and out.changed
    out = r.feed(Tick(), at=50)
    assert not out.changed
    out = r.feed(Tick(), at=100)
    assert out.lock == T1 and out.changed
    assert out.led.name == core.led(r.settings, r.state, 100).name
    out = r.feed(ButtonHeld(), at=101)
    assert out.led.name == "refused" and out.changed
    out = r.feed(Tick(), at=102)
    assert not out.changed and out.lock == T1
