"""The decision core, transition by transition: fake clock, no threads, no sleeps."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.core import room as core
from agent.core.events import (
    BrokerConnection,
    ButtonHeld,
    ButtonPressed,
    ClockStatus,
    Command,
    DeviceHealthChanged,
    DeviceReady,
    DeviceStandby,
    LocalPowerRequest,
    ScheduleReceived,
    Tick,
    Window,
)
from tests.core.helpers import Room, settings

ALL_ON = {"codec": True, "camera": True, "amplifier": True}


def relays(actions: tuple[core.Action, ...]) -> list[tuple[str, bool]]:
    return [(a.device, a.on) for a in actions if isinstance(a, core.SetRelay)]


def kinds(actions: tuple[core.Action, ...]) -> list[str]:
    return [a.kind for a in actions if isinstance(a, core.Emit)]


def replies(actions: tuple[core.Action, ...]) -> list[core.Reply]:
    return [a for a in actions if isinstance(a, core.Reply)]


# ----------------------------------------------------------------------------- power order


def test_power_on_in_order_with_each_delay() -> None:
    r = Room()
    out = r.feed(LocalPowerRequest(True, "cli"), at=0)
    assert relays(out.actions) == [("codec", True)]
    assert kinds(out.actions)[:2] == ["power_requested", "power_sequence_started"]
    assert core.next_deadline(r.settings, r.state, 0, 0) == 5.0
    assert relays(r.feed(Tick(), at=4.9).actions) == []
    assert relays(r.feed(Tick(), at=5).actions) == [("camera", True)]
    out = r.feed(Tick(), at=7)
    assert relays(out.actions) == [("amplifier", True)]
    assert "power_sequence_finished" in kinds(out.actions)
    assert r.state.sequence is None
    assert core.room_power(r.settings, r.state) == "on"


def test_power_off_in_reverse_order_codec_gets_its_grace() -> None:
    r = Room(relays=ALL_ON)
    out = r.feed(LocalPowerRequest(False, "cli"), at=0)
    assert relays(out.actions) == [("amplifier", False), ("camera", False)]
    assert r.state.relays["codec"] is True
    assert core.next_deadline(r.settings, r.state, 0, 0) == 10.0
    out = r.feed(Tick(), at=10)
    assert relays(out.actions) == [("codec", False)]
    assert core.room_power(r.settings, r.state) == "off"


def test_new_request_replaces_running_sequence_and_keeps_order() -> None:
    r = Room()
    r.feed(LocalPowerRequest(True, "cli"), at=0)   # codec on, waiting 5 s
    out = r.feed(LocalPowerRequest(False, "cli"), at=1)
    assert "power_sequence_cancelled" in kinds(out.actions)
    # Only the codec was on: it alone is switched off, after its grace time.
    assert relays(out.actions) == []
    assert relays(r.feed(Tick(), at=11).actions) == [("codec", False)]


def test_nothing_to_do_when_already_in_wanted_state() -> None:
    r = Room(relays=ALL_ON)
    out = r.feed(LocalPowerRequest(True, "cli"), at=0)
    assert relays(out.actions) == [] and r.state.sequence is None


def test_serial_confirmation_seam_confirmed_and_timeout() -> None:
    s = settings(confirm=True)
    r = Room(s)
    out = r.feed(LocalPowerRequest(True, "cli"), at=0)
    assert core.AwaitReady("codec") in out.actions
    out = r.feed(DeviceReady("codec", r.state.sequence.step), at=12)
    steps = [a.data for a in out.actions if isinstance(a, core.Emit) and a.kind == "power_step"]
    assert steps[0]["outcome"] == "confirmed" and steps[0]["elapsed_s"] == 12
    assert relays(out.actions) == [("camera", True)]
    # The camera never answers: reported as a timeout, never skipped silently.
    out = r.feed(Tick(), at=12 + 30)
    steps = [a.data for a in out.actions if isinstance(a, core.Emit) and a.kind == "power_step"]
    assert steps[0] == {"device": "camera", "on": True, "outcome": "timeout", "elapsed_s": 30,
                        "reason": "local:cli"}
    assert relays(out.actions) == [("amplifier", True)]


def test_serial_standby_confirmation_on_power_off() -> None:
    r = Room(settings(confirm=True), relays=ALL_ON)
    out = r.feed(LocalPowerRequest(False, "cli"), at=0)
    assert out.actions[-1] == core.SendStandby("amplifier")
    assert relays(out.actions) == []
    out = r.feed(DeviceStandby("amplifier", r.state.sequence.step), at=1)
    assert relays(out.actions) == [("amplifier", False)]
    assert core.SendStandby("camera") in out.actions
    # A stray confirmation for another device changes nothing.
    assert relays(r.feed(DeviceStandby("codec", r.state.sequence.step), at=1.5).actions) == []


# ----------------------------------------------------------------------------- windows, lock


def test_window_powers_up_at_lead_and_locks() -> None:
    r = Room()
    w = Window("t1", "test", start=1000, end=1600, title="Kiểm tra")
    r.feed(ScheduleReceived((w,), "v1"), at=0)
    assert core.next_deadline(r.settings, r.state, 0, 0) == 100  # 1000 - 900 lead
    out = r.feed(Tick(), at=100)
    # The lock first, then what it causes.
    assert kinds(out.actions) == ["lock_engaged", "window_power_up", "power_sequence_started"]
    assert relays(out.actions) == [("codec", True)]
    assert r.state.locked_by == "t1"
    # A second tick in the same window does not power up again.
    r.feed(Tick(), at=105)
    r.feed(Tick(), at=107)
    assert "window_power_up" not in kinds(r.feed(Tick(), at=200).actions)


@pytest.mark.parametrize("event,source", [(ButtonHeld(), "button"),
                                          (LocalPowerRequest(False, "cli"), "cli"),
                                          (LocalPowerRequest(False, "system"), "system")])
def test_local_off_refused_while_locked(event: object, source: str) -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((Window("s1", "session", 1000, 2000, "Họp"),), "v1"), at=0)
    r.feed(Tick(), at=500)
    out = r.feed(event, at=510)  # type: ignore[arg-type]
    assert relays(out.actions) == []
    refused = [a for a in out.actions if isinstance(a, core.Emit)
               and a.kind == "shutdown_refused"]
    # The window is named on the event itself (contract 2.0), not in its data.
    assert [(a.window_id, a.data) for a in refused] == [
        ("s1", {"source": source, "kind": "session", "title": "Họp"})]
    assert core.led(r.settings, r.state, 511).name == "refused"
    # Shown refusal_show_s long: the step at that time ends it.
    assert r.feed(Tick(), at=510 + 7.9).led.name == "refused"
    assert r.feed(Tick(), at=510 + 8).led.name != "refused"


def test_district_off_refused_when_locked_unless_override() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((Window("s1", "session", 1000, 2000),), "v1"), at=0)
    out = r.feed(Command("c1", "power", {"on": False}), at=950)
    assert replies(out.actions)[0].status == "refused"
    assert "locked by session s1" in replies(out.actions)[0].reason
    assert relays(out.actions) == []
    out = r.feed(Command("c2", "power", {"on": False, "override": True}, "console:hung"), at=951)
    assert replies(out.actions)[0].status == "accepted"
    assert "lock_overridden" in kinds(out.actions)
    assert relays(out.actions) == [("amplifier", False), ("camera", False)]
    assert all(a.reason == "override:c2" for a in out.actions if isinstance(a, core.SetRelay))
    assert relays(r.feed(Tick(), at=961).actions) == [("codec", False)]


def test_complete_releases_lock_then_local_off_works() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=0)
    r.feed(Tick(), at=200)
    out = r.feed(Command("c1", "complete_window", {"window_id": "t1"}), at=1500)
    assert replies(out.actions)[0].status == "accepted"
    assert kinds(out.actions) == ["window_completed", "lock_released"]
    assert [a.data["reason"] for a in out.actions
            if isinstance(a, core.Emit) and a.kind == "lock_released"] == ["completed"]
    out = r.feed(ButtonHeld(), at=1501)
    assert relays(out.actions) == [("amplifier", False), ("camera", False)]


def test_hard_cap_releases_lock() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=0)
    r.feed(Tick(), at=200)
    cap = 1600 + r.settings.hard_cap_s
    assert r.feed(Tick(), at=cap - 0.001).state.locked_by == "t1"
    out = r.feed(Tick(), at=cap)
    assert [a.data["reason"] for a in out.actions
            if isinstance(a, core.Emit) and a.kind == "lock_released"] == ["hard_cap"]


def test_window_removed_from_schedule_releases_lock() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=0)
    r.feed(Tick(), at=200)
    out = r.feed(ScheduleReceived((), "v2"), at=300)
    assert [a.data["reason"] for a in out.actions
            if isinstance(a, core.Emit) and a.kind == "lock_released"] == ["window_removed"]


def test_clock_moving_back_is_named_in_the_release() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=0)
    r.feed(Tick(), at=200)
    out = r.feed(Tick(), at=50)
    assert [a.data["reason"] for a in out.actions
            if isinstance(a, core.Emit) and a.kind == "lock_released"] == ["clock_moved_back"]


def test_off_asked_before_lock_does_not_continue_into_it() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=0)
    out = r.feed(LocalPowerRequest(False, "cli"), at=95)   # codec grace runs until 105
    assert relays(out.actions) == [("amplifier", False), ("camera", False)]
    out = r.feed(Tick(), at=100)                           # lock begins at 100
    # The lock cancels the switch-off and powers the room up again, in order.
    assert relays(out.actions) == [("camera", True)]
    assert relays(r.feed(Tick(), at=102).actions) == [("amplifier", True)]
    assert r.state.relays["codec"] is True


def test_start_window_now_locks_and_powers_up() -> None:
    r = Room()
    out = r.feed(Command("c9", "start_window", {"kind": "test", "title": "Thử",
                                                "duration_min": 30}, "console"), at=50)
    assert replies(out.actions)[0].data == {"window_id": "adhoc-c9"}
    assert "lock_engaged" in kinds(out.actions) and "window_power_up" in kinds(out.actions)
    assert relays(out.actions) == [("codec", True)]
    again = r.feed(Command("c10", "start_window", {"window_id": "adhoc-c9"}), at=51)
    assert replies(again.actions)[0].status == "refused"
    # Ad-hoc windows survive a schedule update.
    r.feed(ScheduleReceived((), "v2"), at=52)
    assert r.state.locked_by == "adhoc-c9"


# ----------------------------------------------------------------------------- operator


def test_operator_check_acknowledged_with_latency() -> None:
    r = Room()
    out = r.feed(Command("k1", "operator_check", {"timeout_s": 60}, "console"), at=10)
    assert replies(out.actions)[0].status == "accepted"
    assert core.led(r.settings, r.state, 10).name == "check_requested"
    out = r.feed(ButtonPressed(), at=22.5)
    acks = [a.data for a in out.actions if isinstance(a, core.Emit)
            and a.kind == "operator_check_acknowledged"]
    assert acks == [{"check_id": "k1", "latency_s": 12.5}]
    assert r.state.check is None


def test_operator_check_unanswered_after_timeout() -> None:
    r = Room()
    r.feed(Command("k1", "operator_check", {}), at=10)
    # (seconds from now)
    assert core.next_deadline(r.settings, r.state, 10, 10) == r.settings.check_timeout_s
    out = r.feed(Tick(), at=10 + r.settings.check_timeout_s)
    assert [a.data["reason"] for a in out.actions if isinstance(a, core.Emit)
            and a.kind == "operator_check_unanswered"] == ["timeout"]


def test_new_check_supersedes_pending_one() -> None:
    r = Room()
    r.feed(Command("k1", "operator_check", {}), at=10)
    out = r.feed(Command("k2", "operator_check", {}), at=20)
    assert kinds(out.actions) == ["operator_check_unanswered", "operator_check_requested"]
    assert r.state.check is not None and r.state.check.id == "k2"


def test_press_in_window_is_check_in_outside_is_nothing() -> None:
    r = Room(relays=ALL_ON)
    assert kinds(r.feed(ButtonPressed(), at=0).actions) == []
    r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=1)
    r.feed(Tick(), at=940)
    out = r.feed(ButtonPressed(), at=950)
    assert kinds(out.actions) == ["check_in"]
    assert r.state.last_check_in == 950


def test_hold_when_off_switches_on() -> None:
    r = Room()
    out = r.feed(ButtonHeld(), at=0)
    assert relays(out.actions) == [("codec", True)]


# ----------------------------------------------------------------------------- commands


@pytest.mark.parametrize("cmd,why", [
    (Command("x", "reboot_everything"), "unknown command"),
    (Command("x", "power", {"on": True, "device": "projector"}), "unknown device"),
    (Command("x", "complete_window", {"window_id": "nope"}), "no window"),
])
def test_invalid_commands_say_why_and_change_nothing(cmd: Command, why: str) -> None:
    r = Room()
    before = r.state
    out = r.feed(cmd, at=0)
    assert replies(out.actions)[0].status == "invalid"
    assert why in replies(out.actions)[0].reason
    assert r.state == before


def test_device_level_power_command() -> None:
    r = Room()
    out = r.feed(Command("d1", "power", {"on": True, "device": "camera"}), at=0)
    assert relays(out.actions) == [("camera", True)]
    assert r.state.relays == {"codec": False, "camera": True, "amplifier": False}


def test_request_state_asks_for_a_publish() -> None:
    out = Room().feed(Command("q", "request_state"), at=0)
    assert core.PublishState() in out.actions


def test_complete_twice_is_accepted_once() -> None:
    r = Room()
    r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=0)
    r.feed(Command("c1", "complete_window", {"window_id": "t1"}), at=1)
    out = r.feed(Command("c2", "complete_window", {"window_id": "t1"}), at=2)
    assert replies(out.actions)[0].reason == "already complete"
    assert "window_completed" not in kinds(out.actions)


# ----------------------------------------------------------------------------- LED, state


def test_led_priorities() -> None:
    r = Room()
    assert core.led(r.settings, r.state, 0).name == "no_broker"
    r.feed(BrokerConnection(True), at=0)
    assert core.led(r.settings, r.state, 0).name == "idle"
    r.feed(DeviceHealthChanged("codec", "fault", "no answer"), at=0)
    assert core.led(r.settings, r.state, 0).name == "fault"
    r.feed(Command("k", "operator_check", {}), at=0)
    assert core.led(r.settings, r.state, 0).name == "check_requested"
    r.state = replace(r.state, check=None, health={n: core.DeviceHealth() for n in r.state.health})
    r.feed(LocalPowerRequest(True, "cli"), at=0)
    assert core.led(r.settings, r.state, 0).name == "powering"


def test_restart_restores_lock_and_does_not_power_up_twice() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=0)
    r.feed(Tick(), at=200)
    saved = core.persistent(r.state)
    # A new agent: same relays, saved state, schedule from the cache.
    r2 = Room(relays=saved["relays"], saved=saved)
    out = r2.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=300)
    assert relays(out.actions) == []
    assert "window_power_up" not in kinds(out.actions)
    assert "lock_engaged" not in kinds(out.actions)  # it never went away
    assert r2.state.locked_by == "t1"
    out = r2.feed(ButtonHeld(), at=301)
    assert "shutdown_refused" in kinds(out.actions)


def test_snapshot_shape() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600, "Kiểm tra"),), "v1"), at=0)
    r.feed(Tick(), at=200)
    snap = core.snapshot(r.settings, r.state, 200)
    assert snap["lock"]["locked"] is True and snap["lock"]["window_id"] == "t1"
    assert snap["window"]["title"] == "Kiểm tra"
    assert snap["devices"]["codec"]["power"] == "on"
    assert snap["power"] == "on"
    assert snap["schedule_version"] == "v1"


# ----------------------------------------------------------------------------- the clock


def test_untrusted_clock_never_ends_a_lock_by_time() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=0)
    r.feed(Tick(), at=200)
    r.feed(ClockStatus(synced=False, last_known_good=150), at=201)
    cap = 1600 + r.settings.hard_cap_s
    # Long past the hard cap, and a clock that jumped back: still locked, off refused.
    assert r.feed(Tick(), at=cap + 10_000).state.locked_by == "t1"
    assert r.feed(Tick(), at=10).state.locked_by == "t1"
    assert "shutdown_refused" in kinds(r.feed(ButtonHeld(), at=cap + 10).actions)
    assert core.snapshot(r.settings, r.state, cap + 10)["clock"] == {"synced": False,
                                                                      "trusted": False}
    # The district's word still ends it.
    out = r.feed(Command("c1", "complete_window", {"window_id": "t1"}), at=cap + 11)
    assert "lock_released" in kinds(out.actions)


def test_lock_ends_by_cap_once_the_clock_is_synchronised_again() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=0)
    r.feed(ClockStatus(synced=False, last_known_good=100), at=200)
    r.feed(Tick(), at=300)
    cap = 1600 + r.settings.hard_cap_s
    assert r.feed(Tick(), at=cap + 5).state.locked_by == "t1"
    out = r.feed(ClockStatus(synced=True, last_known_good=100), at=cap + 6)
    assert [a.data["reason"] for a in out.actions
            if isinstance(a, core.Emit) and a.kind == "lock_released"] == ["hard_cap"]


def test_untrusted_clock_behind_still_powers_up_when_the_window_provably_began() -> None:
    r = Room()
    r.feed(ClockStatus(synced=False, last_known_good=50), at=0)
    # The clock reads 40 (behind the saved 50: not even a lower bound); the schedule was
    # stamped by the district at 120, after the window's lead began (100).
    out = r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1", issued_at=120),
                 at=40)
    assert "window_power_up" in kinds(out.actions) and r.state.locked_by == "t1"


def test_untrusted_clock_with_no_proof_waits() -> None:
    r = Room()
    r.feed(ClockStatus(synced=False, last_known_good=50), at=0)
    out = r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1", issued_at=60),
                 at=40)
    assert "window_power_up" not in kinds(out.actions) and r.state.locked_by is None
    # A command stamped later by the district proves more time has passed.
    out = r.feed(Command("q", "request_state", issued_at=150), at=41)
    assert "window_power_up" in kinds(out.actions)


def test_sequence_cut_by_a_restart_goes_on_in_order() -> None:
    r = Room()
    r.feed(LocalPowerRequest(True, "cli"), at=0)           # codec on, camera due at 5
    saved = core.persistent(r.state)
    r2 = Room(relays=saved["relays"], saved=saved)
    out = r2.feed(Tick(), at=3)
    # The codec is already on: no relay change, but it still gets its 5 s before the camera.
    assert relays(out.actions) == []
    assert relays(r2.feed(Tick(), at=8).actions) == [("camera", True)]
    assert relays(r2.feed(Tick(), at=10).actions) == [("amplifier", True)]
    assert r2.state.sequence is None


def test_time_stamps_that_cannot_be_right_are_refused_and_never_proof() -> None:
    s = replace(settings(), plausible_after=1000)
    r = Room(s)
    r.feed(ClockStatus(synced=False, last_known_good=1000), at=0)
    r.feed(ScheduleReceived((Window("t1", "test", 5000, 6000),), "v1"), at=1)
    out = r.feed(Command("f", "request_state", issued_at=9e12), at=2)   # year 9999-ish
    assert replies(out.actions)[0].status == "invalid"
    assert replies(out.actions)[0].reason.startswith("ts: ")
    assert r.state.locked_by is None and r.state.evidence == 0
    out = r.feed(Command("o", "request_state", issued_at=10), at=3)     # before 'plausible'
    assert replies(out.actions)[0].status == "invalid"
    # A schedule with a wrong stamp is still applied, the stamp is not believed.
    r.feed(ScheduleReceived((Window("t1", "test", 5000, 6000),), "v2", issued_at=9e12), at=4)
    assert r.state.schedule_version == "v2" and r.state.evidence == 0


def test_stale_power_command_refused_with_a_synchronised_clock() -> None:
    r = Room(relays=ALL_ON)
    out = r.feed(Command("p", "power", {"on": False}, issued_at=0), at=1000)
    assert replies(out.actions)[0].status == "refused"
    assert replies(out.actions)[0].reason.startswith("stale: ")
    assert relays(out.actions) == []
    out = r.feed(Command("p2", "power", {"on": False}, issued_at=999), at=1000)
    assert replies(out.actions)[0].status == "accepted"
    out = r.feed(Command("f", "power", {"on": True}, issued_at=2000), at=1001)
    assert replies(out.actions)[0].reason.startswith("ts: ")


# ----------------------------------------------------------------------------- self-help, use


def test_self_help_cycles_a_faulty_codec_once_outside_windows() -> None:
    r = Room(relays=ALL_ON)
    out = r.feed(DeviceHealthChanged("codec", "fault", "no answer"), at=0)
    assert kinds(out.actions)[:3] == ["device_health", "self_help_power_cycle",
                                      "power_sequence_started"]
    assert relays(out.actions) == []                      # the codec gets its grace first
    out = r.feed(Tick(), at=10)
    assert relays(out.actions) == [("codec", False), ("codec", True)]
    assert all(a.reason == "self_help:codec" for a in out.actions if isinstance(a, core.SetRelay))
    # Still faulty after the cycle: not cycled again until it has been healthy once.
    out = r.feed(DeviceHealthChanged("codec", "fault", "no answer"), at=20)
    assert "self_help_power_cycle" not in kinds(out.actions)
    r.feed(DeviceHealthChanged("codec", "ok", ""), at=30)
    out = r.feed(DeviceHealthChanged("codec", "fault", "no answer"), at=40)
    assert "self_help_power_cycle" in kinds(out.actions)


def test_self_help_withheld_inside_a_window() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=0)
    r.feed(Tick(), at=200)
    out = r.feed(DeviceHealthChanged("codec", "fault", "no answer"), at=300)
    assert "self_help_withheld" in kinds(out.actions)
    assert relays(out.actions) == [] and r.state.sequence is None
    # Devices without self_help are never cycled.
    out = r.feed(DeviceHealthChanged("camera", "fault", "no answer"), at=2_000_000)
    assert "self_help_power_cycle" not in kinds(out.actions)


def test_codec_in_call_outside_windows_is_unscheduled_use() -> None:
    r = Room(relays=ALL_ON)
    out = r.feed(DeviceHealthChanged("codec", "ok", "", power="on", in_call=True), at=0)
    assert [a.data for a in out.actions if isinstance(a, core.Emit)
            and a.kind == "unscheduled_use"] == [{"device": "codec", "what": "in_call"}]
    out = r.feed(DeviceHealthChanged("codec", "ok", "", power="on", in_call=False), at=60)
    assert kinds(out.actions) == ["device_health", "unscheduled_use_ended", "unscheduled_use"]
    # Inside a window a call is what the room is for.
    out = r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=100)
    assert "unscheduled_use_ended" in kinds(out.actions) and r.state.unscheduled == {}


def test_window_power_up_wakes_devices_already_powered() -> None:
    # Fail-safe wiring: the relays are on when the room idles, the codec is in standby.
    r = Room(settings(confirm=True), relays=ALL_ON)
    for d, power in (("codec", "standby"), ("camera", "on"), ("amplifier", "standby")):
        r.feed(DeviceHealthChanged(d, "ok", "", power=power), at=0)
    r.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=1)
    out = r.feed(Tick(), at=100)
    started = [a.data for a in out.actions if isinstance(a, core.Emit)
               and a.kind == "power_sequence_started"]
    assert started[0]["devices"] == ["codec", "amplifier"]      # the camera is already on
    assert relays(out.actions) == [] and core.AwaitReady("codec") in out.actions
    out = r.feed(DeviceReady("codec", r.state.sequence.step), at=130)
    assert core.AwaitReady("amplifier") in out.actions


def test_window_moved_to_a_new_time_powers_up_again() -> None:
    r2 = Room()
    r2.feed(ScheduleReceived((Window("t1", "test", 1000, 1600),), "v1"), at=0)
    r2.feed(Tick(), at=100)
    r2.feed(LocalPowerRequest(True, "cli"), at=101)
    r2.feed(ScheduleReceived((Window("t1", "test", 5000, 5600),), "v2"), at=150)
    r2.feed(Command("off", "power", {"on": False}), at=200)
    r2.feed(Tick(), at=215)
    assert r2.state.relays == {"codec": False, "camera": False, "amplifier": False}
    out = r2.feed(Tick(), at=4100)
    assert "window_power_up" in kinds(out.actions)


def test_adhoc_windows_are_forgotten_once_surely_over() -> None:
    r = Room()
    r.feed(Command("c1", "start_window", {"duration_min": 10}), at=0)
    r.feed(Command("d", "complete_window", {"window_id": "adhoc-c1"}), at=100)
    assert [w.id for w in r.state.adhoc] == ["adhoc-c1"]
    r.feed(Tick(), at=600 + r.settings.hard_cap_s + 1)
    assert r.state.adhoc == () and "adhoc-c1" not in r.state.completed
