"""Faults every driver must survive, each against its emulator on a pty: noise, silence,
split replies, slow replies, relay cycles, the port vanishing and returning. Only the typed
errors may come out, and the next call after the fault clears must work."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from agent.drivers import BadReply, DeviceError, DeviceRefused, DeviceTimeout, PortGone

from .conftest import DEVICES, FAST, Pair

NOISE = b"\x00\xfe\x13\x80noise\xff"


def wait_until(condition, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.005)


def test_noise_before_each_reply(pair: Pair) -> None:
    assert pair.driver.power_state() in ("on", "unknown")
    pair.emu.garbage_prefix = NOISE
    if DEVICES[pair.name].line_protocol:
        with pytest.raises(BadReply):
            pair.driver.power_state()
    else:
        assert pair.driver.power_state() == "on"    # VISCA resynchronises on the header byte
    pair.emu.garbage_prefix = b""
    assert pair.driver.power_state() in ("on", "unknown")


def test_noise_between_commands_is_dropped(pair: Pair) -> None:
    pair.driver.power_state()
    pair.emu.inject_garbage(NOISE)
    port = pair.driver._port
    assert port is not None
    wait_until(lambda: port.in_waiting >= len(NOISE))
    assert pair.driver.power_state() in ("on", "unknown")


def test_silence_is_a_timeout(pair: Pair) -> None:
    pair.driver.power_state()
    pair.emu.silent = True
    with pytest.raises(DeviceTimeout) as e:
        pair.driver.power_state()
    assert isinstance(e.value, TimeoutError)
    pair.emu.silent = False
    assert pair.driver.power_state() in ("on", "unknown")


def test_replies_in_pieces(pair: Pair) -> None:
    pair.emu.split_replies = 4
    pair.emu.split_pause_s = 0.001
    pair.driver.standby()
    assert pair.driver.power_state() in ("standby", "unknown")
    pair.driver.wake()
    assert pair.driver.power_state() in ("on", "unknown")


def test_slow_reply_within_the_timeout(pair: Pair) -> None:
    pair.driver.power_state()
    pair.emu.reply_delay_s = FAST / 3
    pair.driver.standby()
    assert pair.driver.power_state() in ("standby", "unknown")


def test_late_reply_does_not_confuse_the_next_command(pair: Pair) -> None:
    """The answer to a timed-out command arrives only after the next command has begun
    (without the settling drain: after it was sent). That next command is refused; the late
    acknowledgement must not be taken as its answer."""
    pair.driver.late_reply_quiet_s = 0.5        # generous: the late answer comes ~FAST after
    pair.driver.drain_max_s = 2.0               # the timeout; the bound is tested below
    pair.driver.power_state()
    pair.emu.reply_delay_s = FAST * 2
    with pytest.raises(DeviceTimeout):
        pair.driver.standby()
    standby = pair.emu.log[-1].received         # logged on arrival, before the delay
    port = pair.driver._port
    assert port is not None and port.in_waiting == 0    # the late answer is not here yet
    pair.emu.reply_delay_s = 0
    pair.emu.refuse_next(standby)
    with pytest.raises(DeviceRefused):
        pair.driver.standby()                   # at once: the late answer comes meanwhile
    pair.driver.wake()
    assert pair.driver.power_state() in ("on", "unknown")


def test_a_device_that_keeps_talking_cannot_hold_the_port(pair_factory) -> None:
    """Every line drained makes the device say another: the drain gives up after
    ``drain_max_s`` and the command is sent anyway."""
    p = pair_factory("extron_sis")
    p.driver.power_state()
    talking = threading.Event()
    talking.set()

    def chatter(frame: object) -> None:
        if talking.is_set():                    # another line, visible before this returns
            p.emu.send_unsolicited(b"Vol050\r\n")
            wait_until(lambda: port.in_waiting > 0)

    p.driver.on_unsolicited = chatter  # type: ignore[method-assign]
    p.emu.send_unsolicited(b"Vol050\r\n")
    port = p.driver._port
    assert port is not None
    wait_until(lambda: port.in_waiting > 0)
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(p.driver.power_state()), daemon=True)
    t.start()
    t.join(timeout=5)
    held = t.is_alive()
    talking.clear()                             # let a stuck drain go, then judge
    t.join(timeout=5)
    assert not held, "the drain held the port while the device kept talking"
    assert result


def test_relay_cycle(pair: Pair) -> None:
    pair.driver.power_state()
    pair.emu.power(False)
    with pytest.raises(DeviceTimeout):
        pair.driver.power_state()
    pair.emu.power(True)                        # boot_s = 0
    assert pair.driver.power_state() in ("on", "unknown")


def test_port_vanishes_and_returns(pair: Pair) -> None:
    pair.driver.power_state()
    pair.emu.unplug()
    with pytest.raises(PortGone) as e:
        pair.driver.power_state()
    assert isinstance(e.value, OSError)
    assert not pair.driver.is_open
    with pytest.raises(PortGone, match="cannot open"):
        pair.driver.power_state()
    pair.emu.replug()
    assert pair.driver.power_state() in ("on", "unknown")


def test_only_typed_errors_under_mixed_faults(pair: Pair) -> None:
    """A bad afternoon: every fault in turn; anything but a DeviceError fails the test."""
    pair.emu.split_replies = 3
    pair.emu.split_pause_s = 0.001
    faults = [
        lambda: setattr(pair.emu, "garbage_prefix", NOISE),
        lambda: setattr(pair.emu, "silent", True),
        lambda: pair.emu.fail_next(2),
        pair.emu.unplug,
    ]
    for fault in faults:
        fault()
        for call in (pair.driver.power_state, pair.driver.standby):
            with contextlib.suppress(DeviceError):   # anything else fails the test
                call()
        pair.emu.garbage_prefix = b""
        pair.emu.silent = False
        pair.emu.fail_next(0)
        pair.emu.replug()
        pair.driver.wake()
        assert pair.driver.power_state() in ("on", "unknown")
