"""The emulators themselves: stable link, log, power, lifecycle."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import serial

from agent.emulators import ExtronEmulator, ViscaEmulator, make_emulator

from .conftest import FakeClock


def test_stable_link_survives_the_port_vanishing() -> None:
    with make_emulator("extron_sis") as emu:
        first = emu.pts_path
        assert os.path.realpath(emu.url) == first and first.startswith("/dev/pts/")
        emu.unplug()
        assert not os.path.lexists(emu.url) and emu.pts_path is None and not emu.plugged
        emu.replug()
        assert os.path.realpath(emu.url) == emu.pts_path
        with serial.serial_for_url(emu.url, timeout=1) as port:
            port.write(b"Q")
            assert port.readline() == b"1.00\r\n"


def test_log_has_time_command_and_reply() -> None:
    clock = FakeClock(500.0)
    with ExtronEmulator(clock=clock) as emu, serial.serial_for_url(emu.url, timeout=1) as port:
        port.write(b"1Z")
        ex = emu.wait_for(lambda ex: ex.command == "1Z")
        assert (ex.t, ex.reply) == (500.0, b"Amt1\r\n")
        with pytest.raises(TimeoutError):
            emu.wait_for(lambda ex: ex.command == "never", timeout=0.05)


def test_power_off_is_silent_and_forgets(tmp_path: Path) -> None:
    with ViscaEmulator(link_dir=tmp_path, standby=True) as emu, \
            serial.serial_for_url(emu.url, timeout=0.2) as port:
        assert emu.url == str(tmp_path / "ttyCAMERA")
        emu.power(False)
        port.write(bytes.fromhex("81090400ff"))
        assert emu.wait_for(lambda ex: ex.received.endswith(b"\xff")).reply == b""
        assert port.read(4) == b""
        emu.power(True)
        assert port.read(3) == bytes.fromhex("9038ff")       # Network Change
        assert emu.address is None and emu.on


def test_lifecycle_removes_its_directory() -> None:
    emu = make_emulator("poly_group").start()
    link_dir = Path(emu.url).parent
    assert link_dir.is_dir() and "PolyEmulator" in repr(emu)
    emu.stop()
    emu.stop()
    assert not link_dir.exists()


def test_unknown_emulator() -> None:
    with pytest.raises(ValueError, match="no emulator for driver 'huawei'"):
        make_emulator("huawei")
