"""The self-test in the core, fed by hand with a fake clock: each device off, a pause without
power, on again, in order; refused while locked or busy; ended early by another request or a
lock; a device that does not answer fails."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from agent.core import room as core
from agent.core.events import (
    DeviceReady,
    DeviceStandby,
    LocalPowerRequest,
    ScheduleReceived,
    SelfTestRequested,
    Tick,
    Window,
)
from tests.core.helpers import Room, settings

ON = {"codec": True, "camera": True, "amplifier": True}


def emitted(out: core.Outcome) -> list[tuple[str, dict[str, Any]]]:
    return [(a.kind, a.data) for a in out.actions if isinstance(a, core.Emit)]


def kinds(out: core.Outcome) -> list[str]:
    return [k for k, _ in emitted(out)]


def relays(out: core.Outcome) -> list[tuple[str, bool]]:
    return [(a.device, a.on) for a in out.actions if isinstance(a, core.SetRelay)]


def run_to_end(room: Room, t: float, answer: bool = True
               ) -> tuple[list[Any], list[tuple[str, bool]]]:
    """Tick (and answer each driver step, if ``answer``) until the self-test ends: the events
    and the relays switched."""
    events: list[Any] = []
    switched: list[tuple[str, bool]] = []
    for _ in range(200):
        seq = room.state.sequence
        if answer and seq is not None and seq.phase in ("wait_ready", "wait_standby"):
            ev = (DeviceReady if seq.on else DeviceStandby)(seq.current or "", seq.step)
            out = room.feed(ev, t)
        else:
            due = core.next_deadline(room.settings, room.state, t, t)
            t += due if due is not None else 1.0
            out = room.feed(Tick(), t)
        events += emitted(out)
        switched += relays(out)
        if room.state.selftest is None:
            return events, switched
    raise AssertionError("the self-test never ended")


def test_each_device_off_then_on_in_order_with_a_pause_without_power() -> None:
    room = Room(settings(confirm=True), relays=ON)
    out = room.feed(SelfTestRequested("cli"), 0)
    assert kinds(out)[:2] == ["selftest_started", "power_sequence_started"]
    assert emitted(out)[0][1] == {"source": "cli", "devices": ["codec", "camera", "amplifier"]}
    events, switched = run_to_end(room, 0)
    assert switched == [("codec", False), ("codec", True), ("camera", False), ("camera", True),
                        ("amplifier", False), ("amplifier", True)]
    done = [d for k, d in events if k == "selftest_device"]
    assert [(d["device"], d["ok"], d["off"], d["on"]) for d in done] == [
        ("codec", True, "confirmed", "confirmed"), ("camera", True, "confirmed", "confirmed"),
        ("amplifier", True, "confirmed", "confirmed")]
    finished = next(d for k, d in events if k == "selftest_finished")
    assert finished["ok"] is True and finished["failed"] == []
    # Three pauses of selftest_off_s without power, on the monotonic clock.
    assert finished["elapsed_s"] >= 3 * room.settings.selftest_off_s
    assert all(room.state.relays.values())


def test_the_pause_is_a_deadline_the_loop_wakes_for() -> None:
    room = Room(settings(confirm=False), relays=ON)
    room.feed(SelfTestRequested("cli"), 0)
    # Codec: off after its 10 s grace, then without power for selftest_off_s.
    assert core.next_deadline(room.settings, room.state, 0, 0) == 10
    out = room.feed(Tick(), 10)
    assert relays(out) == [("codec", False)]
    assert room.state.selftest is not None and room.state.selftest.phase == "hold"
    pause = room.settings.selftest_off_s
    assert core.next_deadline(room.settings, room.state, 10, 10) == pause
    assert relays(room.feed(Tick(), 10 + pause - 0.1)) == []
    assert relays(room.feed(Tick(), 10 + pause)) == [("codec", True)]
    # Its relay's read-back is in after that step: the next one (due at once) judges it and
    # goes on with the camera.
    assert core.next_deadline(room.settings, room.state, 10 + pause, 10 + pause) == 0
    out = room.feed(Tick(), 10 + pause)
    assert kinds(out)[0] == "selftest_device" and relays(out) == [("camera", False)]


def test_a_relay_that_does_not_open_fails_the_device() -> None:
    room = Room(settings(confirm=False), relays=ON)
    room.feed(SelfTestRequested("cli"), 0)
    assert relays(room.feed(Tick(), 10)) == [("codec", False)]
    # The pin read back closed: the shell puts what it reads into the state (relay_failed).
    room.state = replace(room.state, relays={**room.state.relays, "codec": True})
    events, _ = run_to_end(room, 10)
    done = {d["device"]: d for k, d in events if k == "selftest_device"}
    assert done["codec"]["ok"] is False and done["codec"]["off"] == "relay_failed"
    assert done["camera"]["ok"] and done["amplifier"]["ok"]
    finished = next(d for k, d in events if k == "selftest_finished")
    assert finished["failed"] == ["codec"]


def test_relay_only_devices_and_a_device_already_off() -> None:
    room = Room(settings(confirm=False), relays={"codec": True, "camera": False,
                                                 "amplifier": True})
    room.feed(SelfTestRequested("cli"), 0)
    events, _ = run_to_end(room, 0)
    done = {d["device"]: d for k, d in events if k == "selftest_device"}
    assert done["codec"]["off"] == "relay_only" and done["codec"]["on"] == "relay_only"
    assert done["camera"]["off"] == "already_off" and done["camera"]["on"] == "relay_only"
    assert all(d["ok"] for d in done.values())


def test_a_device_that_does_not_answer_fails_and_the_others_go_on() -> None:
    room = Room(settings(confirm=True), relays=ON)
    room.feed(SelfTestRequested("cli"), 0)
    t, events = 0.0, []
    while room.state.selftest is not None:
        seq = room.state.sequence
        if seq is not None and seq.phase in ("wait_ready", "wait_standby") \
                and seq.current != "camera":
            out = room.feed((DeviceReady if seq.on else DeviceStandby)(seq.current or "",
                                                                        seq.step), t)
        else:
            due = core.next_deadline(room.settings, room.state, t, t)
            t += due if due is not None else 1.0
            out = room.feed(Tick(), t)
        events += emitted(out)
    done = {d["device"]: d for k, d in events if k == "selftest_device"}
    assert done["camera"] == {"device": "camera", "ok": False, "off": "no_answer",
                              "on": "no_answer", "relay": True}
    assert done["codec"]["ok"] and done["amplifier"]["ok"]
    finished = next(d for k, d in events if k == "selftest_finished")
    assert finished["ok"] is False and finished["failed"] == ["camera"]


def locked_room() -> Room:
    room = Room(settings(), relays=ON)
    room.feed(ScheduleReceived((Window("t1", "test", 500, 2800, "Kiểm tra"),)), 0)
    assert room.state.locked_by == "t1"   # 15 min lead: locked from -400
    return room


def test_refused_while_locked_saying_which_window() -> None:
    room = locked_room()
    out = room.feed(SelfTestRequested("cli"), 10)
    assert emitted(out) == [("selftest_refused", {"source": "cli", "reason": "locked",
                                                  "kind": "test", "title": "Kiểm tra"})]
    assert room.state.selftest is None and relays(out) == []
    assert [a.window_id for a in out.actions if isinstance(a, core.Emit)] == ["t1"]


def test_refused_while_a_sequence_or_another_selftest_runs() -> None:
    room = Room(settings(), relays={"codec": False, "camera": False, "amplifier": False})
    room.feed(LocalPowerRequest(True, "cli"), 0)
    out = room.feed(SelfTestRequested("cli"), 1)
    assert emitted(out) == [("selftest_refused", {"source": "cli", "reason": "busy"})]
    room = Room(settings(), relays=ON)
    room.feed(SelfTestRequested("cli"), 0)
    out = room.feed(SelfTestRequested("button"), 1)
    assert emitted(out) == [("selftest_refused", {"source": "button", "reason": "running"})]


def test_another_request_ends_it_early_and_says_by_what() -> None:
    room = Room(settings(), relays=ON)
    room.feed(SelfTestRequested("cli"), 0)
    out = room.feed(LocalPowerRequest(False, "cli"), 1)
    finished = [d for k, d in emitted(out) if k == "selftest_finished"]
    assert finished == [{"ok": False, "failed": ["codec", "camera", "amplifier"],
                         "elapsed_s": 1.0, "interrupted_by": "local:cli"}]
    assert room.state.selftest is None
    assert room.state.sequence is not None and room.state.sequence.reason == "local:cli"


def test_a_window_locking_the_room_ends_it_and_powers_up() -> None:
    room = Room(settings(), relays=ON)
    room.feed(ScheduleReceived((Window("t1", "session", 2000, 3000, "Họp"),)), 0)
    room.feed(SelfTestRequested("cli"), 0)
    assert relays(room.feed(Tick(), 10)) == [("codec", False)]   # its pause begins
    out = room.feed(Tick(), 1100)   # 2000 - 900: the lock engages
    finished = [d for k, d in emitted(out) if k == "selftest_finished"]
    assert finished == [{"ok": False, "failed": ["codec", "camera", "amplifier"],
                         "elapsed_s": 1100.0, "interrupted_by": "lock:t1"}]
    assert "window_power_up" in kinds(out) and relays(out) == [("codec", True)]
    assert all(room.state.relays.values()) and room.state.selftest is None


def restarted(room: Room, rebooted: bool = False) -> Room:
    """The agent killed and started again (or the Pi rebooted): only what ``persistent``
    saved, and the pins, survive."""
    again = Room(room.settings)
    again.state = core.initial_state(room.settings, room.state.relays,
                                     core.persistent(room.state), rebooted=rebooted)
    return again


def test_a_restart_ends_it_as_interrupted_and_switches_its_device_back_on() -> None:
    """Killed while the codec is without power: after the restart the test ends at the first
    step (``interrupted_by: restart``, the time since it began on the wall clock: the
    monotonic one began again), the codec's half-done test is reported, and the codec is
    switched back on (the room is left on, as after any interruption)."""
    room = Room(settings(confirm=False), relays=ON)
    room.feed(SelfTestRequested("cli"), 100, mono=5)
    assert relays(room.feed(Tick(), 110, mono=15)) == [("codec", False)]
    assert room.state.selftest is not None and room.state.selftest.phase == "hold"
    room = restarted(room)
    out = room.feed(Tick(), 111, mono=0.5)
    assert [(k, d) for k, d in emitted(out) if k.startswith("selftest")] == [
        ("selftest_device", {"device": "codec", "ok": False, "off": "relay_only",
                             "on": "not_done", "relay": False}),
        ("selftest_finished", {"ok": False, "failed": ["codec", "camera", "amplifier"],
                               "elapsed_s": 11.0, "interrupted_by": "restart"})]
    assert room.state.selftest is None
    assert relays(out) == [("codec", True)]
    assert all(room.state.relays.values())
    assert "selftest_finished" not in kinds(restarted(room).feed(Tick(), 112)), "said once"


def test_a_restart_during_a_switch_off_turns_it_into_a_switch_on() -> None:
    """Killed while the codec's switch-off waits for its grace: the sequence that would go
    on switching it off after the restart switches it on instead."""
    room = Room(settings(confirm=True), relays=ON)
    room.feed(SelfTestRequested("button"), 0)
    seq = room.state.sequence
    assert seq is not None and not seq.on and seq.reason == "selftest:codec"
    room = restarted(room)
    out = room.feed(Tick(), 1)
    finished = [d for k, d in emitted(out) if k == "selftest_finished"]
    assert finished == [{"ok": False, "failed": ["codec", "camera", "amplifier"],
                         "elapsed_s": 1.0, "interrupted_by": "restart"}]
    assert room.state.sequence is not None and room.state.sequence.on
    assert ("codec", False) not in relays(out)


def test_after_a_reboot_it_ends_as_interrupted_and_nothing_more_is_switched() -> None:
    """The Pi rebooted mid-test: it ends as interrupted by the restart; the pins are what the
    boot left (no device is switched on for the test that is over)."""
    room = Room(settings(confirm=False), relays=ON)
    room.feed(SelfTestRequested("cli"), 0)
    room.feed(Tick(), 10)
    room = restarted(room, rebooted=True)
    out = room.feed(Tick(), 30)
    finished = [d for k, d in emitted(out) if k == "selftest_finished"]
    assert finished == [{"ok": False, "failed": ["codec", "camera", "amplifier"],
                         "elapsed_s": 30.0, "interrupted_by": "restart"}]
    assert relays(out) == [] and room.state.selftest is None


def test_after_a_reboot_its_own_switch_off_does_not_start_again() -> None:
    """Rebooted while the codec's switch-off waited for its grace: that sequence would start
    again from its first device; the test is over, so it is stopped instead."""
    room = Room(settings(confirm=True), relays=ON)
    room.feed(SelfTestRequested("cli"), 0)
    room = restarted(room, rebooted=True)
    assert room.state.sequence is not None and room.state.sequence.reason == "selftest:codec"
    out = room.feed(Tick(), 5)
    assert "selftest_finished" in kinds(out) and "power_sequence_cancelled" in kinds(out)
    assert room.state.sequence is None and relays(out) == []
    assert relays(room.feed(Tick(), 60)) == []
