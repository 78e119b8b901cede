"""Extron amplifiers and mixers speaking SIS (e.g. MLA VC10 Plus) over RS-232.

Site config::

    amplifier:
      driver: extron_sis
      serial: {url: /dev/serial/by-id/usb-FTDI-if00-port0, baudrate: 9600}
      settings: {wake_volume: 60}

An amplifier has no standby of its own, so **power here means: alive, and muted or not**.
``power_state`` asks ``Z`` (mute): muted → ``"standby"``, unmuted → ``"on"``; a device that
does not answer raises :class:`~agent.drivers.base.DeviceTimeout` as usual. ``standby()``
mutes (``1Z``) so the speakers make no thump when the relay opens; ``wake()`` unmutes
(``0Z``) and, if ``wake_volume`` is set, sets that volume (``60V``). ``ping`` asks ``Q``.

Identity: ``N`` answers the part number (``60-1234-01``, perhaps tagged ``Pno``), which names
the model; SIS tells no serial number. (``N`` is not in the project's protocol sheet: a model
that answers ``E10`` or something that is not a part number gives None.)
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import Field

from agent.drivers.base import (
    BadReply,
    DeviceIdentity,
    DeviceRefused,
    Driver,
    DriverSettings,
    PowerState,
)
from agent.drivers.framing import sis
from agent.drivers.framing.lines import Garbage

_PART_NUMBER = re.compile(r"^(?:Pno)?(\d{2}-\d{3,4}-\d{2}[A-Z]?)$")


class ExtronSisSettings(DriverSettings):
    """Settings for :class:`ExtronSis`."""

    wake_volume: int | None = Field(None, ge=0, le=100,
                                    description="Volume to set on wake (none: leave it)")


class ExtronSis(Driver):
    """Extron SIS driver; see the module docstring."""

    name = "extron_sis"
    Settings = ExtronSisSettings
    settings: ExtronSisSettings
    banner: str = ""

    def new_parser(self) -> sis.SisParser:
        return sis.SisParser()

    def on_unsolicited(self, frame: sis.Frame) -> None:
        if isinstance(frame, sis.Banner):
            self.banner = frame.text

    def _send(self, command: str, want: Callable[[sis.Frame], object | None], *,
              see_garbage: bool = False) -> object:
        def handle(f: sis.Frame) -> object | None:
            if isinstance(f, sis.SisError):
                raise DeviceRefused(f"{self.device}: {command!r}: {f.code} {f.text}",
                                    code=f.code)
            if isinstance(f, sis.Banner):
                self.on_unsolicited(f)
                return None
            return want(f)

        return self._exchange(command.encode("ascii"), handle, what=repr(command),
                              see_garbage=see_garbage)

    # ---- amplifier words
    def mute(self, on: bool) -> None:
        """``1Z`` / ``0Z`` → ``Amt1`` / ``Amt0``."""
        self._send(f"{int(on)}Z", lambda f: True if isinstance(f, sis.Mute) and
                   f.muted == on else None)

    def muted(self) -> bool:
        """``Z`` → ``Amt1`` or ``1``."""
        def want(f: sis.Frame) -> bool | None:
            if isinstance(f, sis.Mute):
                return f.muted
            if isinstance(f, sis.Value):
                if f.text in ("0", "1"):
                    return f.text == "1"
                raise BadReply(f"{self.device}: mute query answered {f.text!r}")
            return None

        result = self._send("Z", want)
        assert isinstance(result, bool)
        return result

    def set_volume(self, level: int) -> None:
        """``82V`` → ``Vol082``."""
        self._send(f"{level}V", lambda f: True if isinstance(f, sis.Volume) else None)

    def volume(self) -> int:
        """``V`` → ``Vol082`` or ``082``."""
        def want(f: sis.Frame) -> int | None:
            if isinstance(f, sis.Volume):
                return f.level
            if isinstance(f, sis.Value):
                if f.text.isdigit():
                    return int(f.text)
                raise BadReply(f"{self.device}: volume query answered {f.text!r}")
            return None

        result = self._send("V", want)
        assert isinstance(result, int)
        return result

    def firmware(self) -> str:
        """``Q`` → firmware version."""
        result = self._send("Q", lambda f: f.text if isinstance(f, sis.Value) else None)
        assert isinstance(result, str)
        return result

    def part_number(self) -> str:
        """``N`` → the part number; BadReply on noise, DeviceRefused on ``E10`` or an answer
        that is not a part number."""
        def want(f: sis.Frame) -> str | None:
            if isinstance(f, Garbage):
                raise BadReply(f"{self.device}: unreadable answer to 'N'")
            if isinstance(f, sis.Value):
                if m := _PART_NUMBER.match(f.text):
                    return m[1]
                raise DeviceRefused(f"{self.device}: 'N' answered {f.text!r}, not a part "
                                    "number", code="unexpected")
            return None

        result = self._send("N", want, see_garbage=True)
        assert isinstance(result, str)
        return result

    def read_identity(self) -> DeviceIdentity:
        """The part number (``N``) as the model; SIS has no serial number."""
        return DeviceIdentity(self.part_number(), None)

    # ---- the contract
    def power_state(self) -> PowerState:
        """Muted → standby, unmuted → on (see the module docstring)."""
        return "standby" if self.muted() else "on"

    def wake(self) -> None:
        """Unmute, then set ``wake_volume`` if configured."""
        self.mute(False)
        if self.settings.wake_volume is not None:
            self.set_volume(self.settings.wake_volume)

    def standby(self) -> None:
        """Mute, so cutting power makes no thump."""
        self.mute(True)

    def ping(self) -> None:
        """``Q`` (firmware query) answers."""
        self.firmware()
