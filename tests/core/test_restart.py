"""After a reboot or power cut, or an agent restart, in the middle of a window: the room is
powered up again unless every device is surely on."""

from __future__ import annotations

from typing import Any

from agent.core import room as core
from agent.core.events import DeviceReady, LocalPowerRequest, ScheduleReceived, Tick, Window
from tests.core.helpers import Room, settings

T1 = Window("t1", "test", 1000, 1600, "Kiểm tra")
SCHEDULE = ScheduleReceived((T1,), "v1")
ALL_ON = {"codec": True, "camera": True, "amplifier": True}


def locked_and_on(confirm: bool) -> dict[str, Any]:
    """What a room saved once its window's power-up was done."""
    r = Room(settings(confirm=confirm))
    r.feed(SCHEDULE, at=0)
    r.feed(Tick(), at=100)
    for t in range(101, 200):
        if r.state.sequence is None:
            break
        seq = r.state.sequence
        r.feed(DeviceReady(seq.current or "", seq.step) if confirm else Tick(), at=t)
    assert r.state.locked_by == "t1" and r.state.relays == ALL_ON
    return core.persistent(r.state)


def restarted(saved: dict[str, Any], relays: dict[str, bool], confirm: bool,
              rebooted: bool) -> Room:
    r = Room(settings(confirm=confirm))
    r.state = core.resume(core.initial_state(r.settings, relays, saved, rebooted=rebooted),
                          SCHEDULE, True, 0.0)
    return r


def kinds(out: core.Outcome) -> list[str]:
    return [a.kind for a in out.actions if isinstance(a, core.Emit)]


def test_after_a_power_cut_devices_on_normally_open_contacts_come_back() -> None:
    saved = locked_and_on(confirm=False)
    # The boot released every coil: the camera, on a normally-open contact, lost its power.
    r = restarted(saved, {"codec": True, "camera": False, "amplifier": True}, confirm=False,
                  rebooted=True)
    out = r.feed(Tick(), at=300)
    assert "lock_engaged" not in kinds(out)            # the lock never went away
    assert kinds(out)[:2] == ["window_power_up", "power_sequence_started"]
    assert [(a.device, a.on) for a in out.actions if isinstance(a, core.SetRelay)] == [
        ("camera", True)]
    assert all(a.reason == "window:t1" for a in out.actions if isinstance(a, core.SetRelay))


def test_after_a_restart_a_codec_with_a_driver_is_woken_again() -> None:
    saved = locked_and_on(confirm=True)
    # Relays all on, but nobody has confirmed the codec is awake since the restart.
    r = restarted(saved, ALL_ON, confirm=True, rebooted=False)
    out = r.feed(Tick(), at=300)
    assert "window_power_up" in kinds(out)
    assert core.AwaitReady("codec") in out.actions
    assert [a for a in out.actions if isinstance(a, core.SetRelay)] == []


def test_a_room_surely_on_is_not_powered_up_twice() -> None:
    saved = locked_and_on(confirm=False)
    r = restarted(saved, ALL_ON, confirm=False, rebooted=True)
    out = r.feed(Tick(), at=300)
    assert "window_power_up" not in kinds(out) and out.actions == ()


def test_after_a_reboot_a_cut_sequence_starts_again_from_its_first_device() -> None:
    r = Room()
    r.feed(LocalPowerRequest(True, "cli"), at=0)
    r.feed(Tick(), at=5)                                 # codec and camera on, amplifier next
    saved = core.persistent(r.state)
    # A power cut: the pins are as the boot left them (here: everything off).
    r2 = Room()
    r2.state = core.initial_state(r2.settings, {}, saved, rebooted=True)
    out = r2.feed(Tick(), at=10)
    assert [(a.device, a.on) for a in out.actions if isinstance(a, core.SetRelay)] == [
        ("codec", True)]
    # Without a reboot the relays kept their level: it goes on where it was (the camera
    # gets its 2 s again, then the amplifier).
    r3 = Room(relays=saved["relays"], saved=saved)
    assert [a for a in r3.feed(Tick(), at=10).actions if isinstance(a, core.SetRelay)] == []
    out = r3.feed(Tick(), at=12)
    assert [(a.device, a.on) for a in out.actions if isinstance(a, core.SetRelay)] == [
        ("amplifier", True)]
