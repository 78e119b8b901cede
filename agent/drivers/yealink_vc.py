"""Yealink VC series codecs (VC200/VC500/VC800/VC880…) over USB-serial or RS-232.

Site config::

    codec:
      driver: yealink_vc
      serial: {url: /dev/serial/by-id/usb-Yealink-if00, baudrate: 115200}
      settings: {}

``sysstatus get`` gives the power and call state at once: sleeping → standby; idle,
finished → on, no call; outgoing, ringing, talking → on, in a call. The wake and standby
commands are **unconfirmed** (no public source): they are settings, and any line that is not
an ``error:`` counts as acceptance.

Identity: the protocol has no query for it. The model comes from the ``version "model:…"``
line the codec sends on its own (at boot, on connect), heard since the port opened; there is
no serial number.
"""

from __future__ import annotations

import re
from typing import TypeVar

from pydantic import Field

from agent.drivers.base import (
    CallInfo,
    DeviceIdentity,
    DeviceRefused,
    Driver,
    DriverSettings,
    PowerState,
)
from agent.drivers.framing import yealink

_IN_CALL = ("outgoing", "ringing", "talking")
_MODEL = re.compile(r"(?:^|\s)model:(\S+)")
F = TypeVar("F", bound=yealink.Frame)


class YealinkVcSettings(DriverSettings):
    """Settings for :class:`YealinkVc`."""

    wake_command: str = Field("standby exit", min_length=1,
                              description="Leaves standby (unconfirmed)")
    standby_command: str = Field("standby enter", min_length=1,
                                 description="Enters standby (unconfirmed)")


class YealinkVc(Driver):
    """Yealink VC driver; see the module docstring."""

    name = "yealink_vc"
    Settings = YealinkVcSettings
    has_calls = True
    settings: YealinkVcSettings
    version: str = ""

    def new_parser(self) -> yealink.YealinkParser:
        return yealink.YealinkParser()

    def on_open(self) -> None:
        self.version = ""           # a reopened port may lead to another unit

    def on_close(self) -> None:
        self.version = ""

    def on_unsolicited(self, frame: yealink.Frame) -> None:
        if isinstance(frame, yealink.Version):
            self.version = frame.text

    def identity(self) -> DeviceIdentity:
        """The model named by the last ``version`` line heard since the port opened (None
        before one came); Yealink tells no serial number. Asks the device nothing, but takes
        in what it sent meanwhile."""
        with self._lock:
            self._ensure_open()
            self._drain()
        m = _MODEL.search(self.version)
        return DeviceIdentity(m[1] if m else None, None)

    def _send(self, line: str, want: type[F]) -> F:
        def handle(f: yealink.Frame) -> F | None:
            if isinstance(f, yealink.YealinkError):
                raise DeviceRefused(f"{self.device}: {line!r}: {f.text}", code="error")
            if isinstance(f, want):
                return f
            self.on_unsolicited(f)
            return None

        return self._exchange(f"{line}\r\n".encode(), handle, what=repr(line))

    def sysstatus(self) -> str:
        """``sysstatus get``: sleeping / idle / outgoing / ringing / talking / finished."""
        return self._send("sysstatus get", yealink.SysStatus).state

    def power_state(self) -> PowerState:
        """sleeping → standby, anything else → on."""
        return "standby" if self.sysstatus() == "sleeping" else "on"

    def call_state(self) -> CallInfo | None:
        """outgoing / ringing / talking → a call (no id or remote in this reply)."""
        state = self.sysstatus()
        return CallInfo(id="", status=state) if state in _IN_CALL else None

    def wake(self) -> None:
        """Send the configured wake command."""
        self._send(self.settings.wake_command, yealink.Line)

    def standby(self) -> None:
        """Send the configured standby command."""
        self._send(self.settings.standby_command, yealink.Line)
