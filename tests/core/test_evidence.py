"""Contract 2.0 evidence from the core: window_ready, completion by schedule, the schedule's
digest, help requests, device identities."""

from __future__ import annotations

from dataclasses import replace

from agent.core import room as core
from agent.core.events import (
    ButtonHeld,
    ClockStatus,
    Command,
    DeviceHealthChanged,
    DeviceReady,
    HelpRequested,
    ScheduleReceived,
    Tick,
    Window,
)
from tests.core.helpers import Room, settings

ALL_ON = {"codec": True, "camera": True, "amplifier": True}
T1 = Window("t1", "test", 1000, 1600, "Kiểm tra")


def emitted(out: core.Outcome, kind: str) -> list[core.Emit]:
    return [a for a in out.actions if isinstance(a, core.Emit) and a.kind == kind]


# ----------------------------------------------------------------------------- window_ready


def test_window_ready_at_the_start_says_how_each_device_was() -> None:
    r = Room(settings(confirm=True), relays={"codec": True, "camera": True, "amplifier": False})
    r.feed(ScheduleReceived((T1,), "v1"), at=0)
    r.feed(Tick(), at=100)                                   # power-up: wake the codec
    r.feed(DeviceReady("codec", r.state.sequence.step if r.state.sequence else 0), at=110)
    r.feed(DeviceHealthChanged("camera", "degraded", "slow"), at=120)
    r.feed(Tick(), at=150)                                   # the camera never answers
    r.feed(Tick(), at=200)                                   # nor the amplifier
    assert r.state.sequence is None
    assert emitted(r.feed(Tick(), at=999), "window_ready") == []
    assert core.next_deadline(r.settings, r.state, 999, 999) == 1
    out = r.feed(Tick(), at=1000)
    [ready] = emitted(out, "window_ready")
    assert ready.window_id == "t1"
    assert ready.data == {"start": core.iso(1000), "on_by_start": False, "devices": {
        "codec": {"relay": True, "state": "confirmed", "health": "unknown"},
        "camera": {"relay": True, "state": "on_silent", "health": "degraded"},
        "amplifier": {"relay": True, "state": "on_silent", "health": "unknown"}}}
    # Once per window.
    assert emitted(r.feed(Tick(), at=1001), "window_ready") == []


def test_window_ready_also_when_the_room_was_already_on() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((T1,), "v1"), at=0)
    r.feed(Tick(), at=100)
    [ready] = emitted(r.feed(Tick(), at=1000), "window_ready")
    assert ready.data["on_by_start"] is True
    assert {d["state"] for d in ready.data["devices"].values()} == {"on"}
    saved = core.persistent(r.state)
    again = Room(relays=ALL_ON, saved=saved)
    again.state = core.resume(again.state, ScheduleReceived((T1,), "v1"), True, 0.0)
    assert emitted(again.feed(Tick(), at=1010), "window_ready") == []   # not after a restart


def test_window_ready_for_a_window_started_now_and_a_device_off() -> None:
    r = Room()
    out = r.feed(Command("c1", "start_window", {"duration_min": 30}), at=50)
    [ready] = emitted(out, "window_ready")
    assert ready.window_id == "adhoc-c1" and ready.data["on_by_start"] is False
    assert ready.data["devices"]["camera"] == {"relay": False, "state": "off",
                                               "health": "unknown"}


# ----------------------------------------------------------------------------- the schedule


def test_a_completion_in_the_schedule_completes_the_window_and_is_never_undone() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((T1,), "v1", digest="aa"), at=0)
    r.feed(Tick(), at=200)
    r.feed(Tick(), at=1000)
    out = r.feed(ScheduleReceived((T1,), "v2", digest="bb",
                                  completed=(("t1", 1500.0, "console:hung"),)), at=1500)
    assert [a.kind for a in out.actions if isinstance(a, core.Emit)] == [
        "schedule_applied", "window_completed", "lock_released"]
    [done] = emitted(out, "window_completed")
    assert (done.window_id, done.data) == ("t1", {"by": "console:hung", "via": "schedule"})
    assert emitted(out, "lock_released")[0].data == {"reason": "completed"}
    # A later schedule that no longer says so completes nothing again, undoes nothing.
    out = r.feed(ScheduleReceived((T1,), "v3", digest="cc"), at=1510)
    assert emitted(out, "window_completed") == [] and emitted(out, "lock_engaged") == []
    assert "t1" in r.state.completed
    out = r.feed(ScheduleReceived((T1,), "v4", digest="dd",
                                  completed=(("t1", 1500.0, "console:hung"),)), at=1520)
    assert emitted(out, "window_completed") == []


def test_the_command_says_it_came_by_command() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((T1,), "v1"), at=0)
    out = r.feed(Command("c1", "complete_window", {"window_id": "t1"}, "console:hung"), at=5)
    assert emitted(out, "window_completed")[0].data == {"by": "console:hung", "via": "command",
                                                        "command_id": "c1"}


def test_schedule_applied_names_version_digest_and_the_state_keeps_them() -> None:
    r = Room()
    out = r.feed(ScheduleReceived((T1,), "2026-11-29#4", digest="9f2c0a1b3d4e5f60"), at=0)
    assert emitted(out, "schedule_applied")[0].data == {
        "version": "2026-11-29#4", "digest": "9f2c0a1b3d4e5f60", "windows": 1}
    assert (r.state.schedule_version, r.state.schedule_digest) == ("2026-11-29#4",
                                                                   "9f2c0a1b3d4e5f60")
    resumed = core.resume(core.initial_state(r.settings), ScheduleReceived(
        (T1,), "v9", digest="abcd", completed=(("t1", 1.0, "x"),)), True, 0.0)
    assert resumed.schedule_digest == "abcd" and "t1" in resumed.completed


def test_every_event_says_whether_the_clock_was_trusted() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((T1,), "v1"), at=0)
    r.feed(Tick(), at=200)
    r.feed(ClockStatus(synced=False, last_known_good=150), at=201)
    out = r.feed(ButtonHeld(), at=300)
    assert [(a.kind, a.clock_trusted, a.window_id) for a in out.actions
            if isinstance(a, core.Emit)] == [("shutdown_refused", False, "t1")]


# ----------------------------------------------------------------------------- help


def test_a_help_request_is_recorded_confirmed_on_the_led_and_kept_until_answered() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((T1,), "v1"), at=0)
    r.feed(Tick(), at=200)
    out = r.feed(HelpRequested("button"), at=300, mono=300)
    [help_] = emitted(out, "help_requested")
    assert (help_.window_id, help_.data) == ("t1", {"source": "button"})
    assert out.led.name == "help_requested" and out.changed
    assert "trung tâm" in out.led.vi and "the centre" in out.led.en
    assert r.state.help_requested_at == 300
    assert r.feed(Tick(), at=307.9, mono=307.9).led.name == "help_requested"
    assert r.feed(Tick(), at=308, mono=308).led.name == "no_broker"   # as before it
    # Still waiting for the centre, across a restart too.
    saved = core.persistent(r.state)
    r = Room(relays=ALL_ON, saved=saved)
    assert r.state.help_requested_at == 300
    out = r.feed(Command("a1", "answer_help", {"note": "đang gọi lại"}), at=400)
    assert [(a.status, a.reason) for a in out.actions if isinstance(a, core.Reply)] == [
        ("accepted", "")]
    assert r.state.help_requested_at is None and out.changed
    out = r.feed(Command("a2", "answer_help", {}), at=401)
    assert [a.status for a in out.actions if isinstance(a, core.Reply)] == ["accepted"]


def test_the_led_texts_name_the_centre_of_the_config() -> None:
    s = replace(settings(), centre=("Trung tâm CNTT tỉnh Lạng Sơn", "the Lang Son IT centre"))
    r = Room(s)
    out = r.feed(HelpRequested("cli"), at=0)
    assert "Trung tâm CNTT tỉnh Lạng Sơn" in out.led.vi
    assert "the Lang Son IT centre" in out.led.en
    for p in core.led_patterns(s.centre).values():
        assert "huyện" not in p.vi and "district" not in p.en


# ----------------------------------------------------------------------------- identity


def test_a_device_reporting_another_model_or_serial_is_named_not_on_first_sighting() -> None:
    r = Room(relays=ALL_ON)
    out = r.feed(DeviceHealthChanged("codec", "ok", "", model="Room Kit", serial="FOC1"), at=0)
    assert emitted(out, "device_identity_changed") == []
    out = r.feed(DeviceHealthChanged("codec", "ok", ""), at=10)        # says nothing of it
    assert emitted(out, "device_identity_changed") == []
    out = r.feed(DeviceHealthChanged("codec", "ok", "", model="Room Kit", serial="FOC1"), at=20)
    assert emitted(out, "device_identity_changed") == []
    # Someone swapped the codec; the room remembers across a restart.
    saved = core.persistent(r.state)
    r = Room(relays=ALL_ON, saved=saved)
    out = r.feed(DeviceHealthChanged("codec", "ok", "", model="Room Kit", serial="FOC9"), at=30)
    assert [e.data for e in emitted(out, "device_identity_changed")] == [{
        "device": "codec", "model": "Room Kit", "serial": "FOC9", "was_model": "Room Kit",
        "was_serial": "FOC1"}]
    out = r.feed(DeviceHealthChanged("codec", "ok", "", serial="FOC9"), at=40)
    assert emitted(out, "device_identity_changed") == []


def test_device_health_keeps_its_fields() -> None:
    r = Room(relays=ALL_ON)
    out = r.feed(DeviceHealthChanged("codec", "ok", "", power="on", in_call=False), at=0)
    assert emitted(out, "device_health")[0].data == {
        "device": "codec", "status": "ok", "reason": "", "power": "on", "in_call": False}
