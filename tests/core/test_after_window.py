"""After a window: the room switches itself off, in order, some time after the lock ends,
unless someone uses it; what the codec does in that time is not unscheduled use."""

from __future__ import annotations

from dataclasses import replace

from agent.core import room as core
from agent.core.events import (
    ButtonPressed,
    Command,
    DeviceHealthChanged,
    HelpRequested,
    LocalPowerRequest,
    ScheduleReceived,
    Tick,
    Window,
)
from tests.core.helpers import Room, settings

ALL_ON = {"codec": True, "camera": True, "amplifier": True}
T1 = Window("t1", "test", 1000, 1600)


def room(after_s: float | None = 600) -> Room:
    """Locked by t1 since 100, all on; the district completes t1 at 1500."""
    r = Room(replace(settings(), off_after_release_s=after_s), relays=ALL_ON)
    r.feed(ScheduleReceived((T1,), "v1"), at=0)
    r.feed(Tick(), at=100)
    r.feed(DeviceHealthChanged("codec", "ok", "", power="on"), at=200)
    out = r.feed(Command("done", "complete_window", {"window_id": "t1"}), at=1500)
    assert "lock_released" in kinds(out)
    return r


def kinds(out: core.Outcome) -> list[str]:
    return [a.kind for a in out.actions if isinstance(a, core.Emit)]


def offs(out: core.Outcome) -> list[str]:
    return [a.device for a in out.actions if isinstance(a, core.SetRelay) and not a.on]


def test_the_room_switches_itself_off_after_the_window_in_order() -> None:
    r = room()
    assert core.next_deadline(r.settings, r.state, 1500, 1500) == 600
    assert offs(r.feed(Tick(), at=2099.9)) == []
    out = r.feed(Tick(), at=2100)
    off = [a for a in out.actions if isinstance(a, core.Emit)
           and a.kind == "after_window_power_off"]
    assert [(a.window_id, a.data) for a in off] == [("t1", {"after_s": 600})]
    assert kinds(out)[:2] == ["after_window_power_off", "power_sequence_started"]
    assert offs(out) == ["amplifier", "camera"]
    assert all(a.reason == "after_window:t1" for a in out.actions
               if isinstance(a, core.SetRelay))
    assert offs(r.feed(Tick(), at=2110)) == ["codec"]


def test_the_codec_in_that_time_is_not_unscheduled_use() -> None:
    r = room()
    out = r.feed(DeviceHealthChanged("codec", "ok", "", power="on", in_call=True), at=1510)
    assert "unscheduled_use" not in kinds(out)
    r.feed(DeviceHealthChanged("codec", "ok", "", power="on", in_call=False), at=1520)
    for t in (1600, 2100, 2110, 2200):
        assert "unscheduled_use" not in kinds(r.feed(Tick(), at=t))


def test_a_call_still_going_is_not_cut() -> None:
    r = room()
    r.feed(DeviceHealthChanged("codec", "ok", "", power="on", in_call=True), at=2000)
    assert offs(r.feed(Tick(), at=2100)) == []
    assert core.next_deadline(r.settings, r.state, 2100, 2100) is None
    out = r.feed(DeviceHealthChanged("codec", "ok", "", power="on", in_call=False), at=2300)
    assert "after_window_power_off" in kinds(out) and offs(out) == ["amplifier", "camera"]


def test_someone_using_the_room_in_that_time_keeps_it_on() -> None:
    for use in (ButtonPressed(), HelpRequested("button"), LocalPowerRequest(True, "cli"),
                Command("p", "power", {"on": True})):
        r = room()
        r.feed(use, at=1800)  # type: ignore[arg-type]
        out = r.feed(Tick(), at=2200)
        assert offs(out) == [] and "after_window_power_off" not in kinds(out), use
        assert r.state.after_window is None


def test_a_new_window_keeps_it_on() -> None:
    r = room()
    r.feed(ScheduleReceived((T1, Window("t2", "session", 2500, 3000)), "v2"), at=1550)
    r.feed(Tick(), at=1600)                       # t2's lead begins at 1600: locked again
    assert r.state.locked_by == "t2" and r.state.after_window is None
    assert offs(r.feed(Tick(), at=2200)) == []


def test_null_means_never() -> None:
    r = room(after_s=None)
    assert core.next_deadline(r.settings, r.state, 1500, 1500) is None
    for t in (2100, 5000, 10_000):
        out = r.feed(Tick(), at=t)
        assert offs(out) == [] and "unscheduled_use" not in kinds(out)


def test_a_restart_in_that_time_starts_the_wait_again() -> None:
    r = room()
    r.feed(Tick(), at=1800)
    saved = core.persistent(r.state)
    r2 = Room(r.settings, relays=saved["relays"], saved=saved)
    r2.state = core.resume(r2.state, ScheduleReceived((T1,), "v1"), True, 0.0)
    r2.feed(Tick(), at=1900, mono=5)              # a new boot: its monotonic clock is new
    assert offs(r2.feed(Tick(), at=2100, mono=300)) == []
    assert "after_window_power_off" in kinds(r2.feed(Tick(), at=2500, mono=605))


def test_a_command_that_is_refused_or_invalid_changes_nothing() -> None:
    r = room()
    before = r.state
    r.feed(Command("x", "power", {"on": True, "device": "projector"}), at=1800)
    r.feed(Command("y", "power", {"on": True}, issued_at=0.5), at=1801)   # stale
    assert r.state.after_window == before.after_window
    assert "after_window_power_off" in kinds(r.feed(Tick(), at=2100))
