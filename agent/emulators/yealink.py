"""Yealink VC series emulator: ``sysstatus get``, the unasked ``version`` line after boot
and after the port returns, ``error:`` replies. Wake/standby commands are the driver's
(unconfirmed) defaults. ``model`` is what the ``version`` line names."""

from __future__ import annotations

from agent.emulators.base import Emulator

FIRMWARE = "63.345.0.15"


class YealinkEmulator(Emulator):
    """Emulated Yealink VC800; see the module docstring."""

    link_name = "ttyCODEC"

    def __init__(self, *, wake_command: str = "standby exit",
                 standby_command: str = "standby enter", asleep: bool = False,
                 model: str = "VC800", **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.model = model
        self.wake_command = wake_command
        self.standby_command = standby_command
        self.reset_state()
        self.state = "sleeping" if asleep else "idle"

    def reset_state(self) -> None:
        self.state = "idle"

    @property
    def version_line(self) -> bytes:
        """The ``version`` line this codec sends on its own."""
        return f'version "model:{self.model} firmware:{FIRMWARE}"\r\n'.encode()

    def on_booted(self) -> None:
        self._emit(b"", self.version_line)

    def replug(self) -> None:
        super().replug()
        self.call(lambda: self._emit(b"", self.version_line) if self.powered and not self.booting
                  else None)

    def start_call(self) -> None:
        """A call connects."""
        def do() -> None:
            self.state = "talking"
        self.call(do)

    def end_call(self) -> None:
        """The call ends."""
        def do() -> None:
            self.state = "finished"
        self.call(do)

    def error_reply(self, command: bytes) -> bytes:
        return b"error: command has illegal parameters\r\n"

    def handle(self, command: bytes) -> bytes:
        line = command.decode("latin-1").strip()
        if line == "sysstatus get":
            return f"sysstatus {self.state}\r\n".encode()
        if line == self.standby_command:
            self.state = "sleeping"
            return b"ok\r\n"
        if line == self.wake_command:
            self.state = "idle"
            return b"ok\r\n"
        return b"error: command not found\r\n"
