"""A stand-in for devices driven by ``generic_line`` (Huawei, ZTE, other amplifiers).

No public protocol exists for those, so this speaks a small invented one whose strings are
all options, matching the example settings in ``docs/drivers.md``::

    POWER ON → OK      POWER STANDBY → OK      POWER? → POWER=ON|STANDBY
    PING → PONG        ID? → MODEL=<model> SERIAL=<serial_number>
    anything else → ERROR
"""

from __future__ import annotations

from agent.emulators.base import Emulator


class GenericEmulator(Emulator):
    """Emulated line-protocol device; see the module docstring."""

    link_name = "ttyDEVICE"

    def __init__(self, *, on_cmd: str = "POWER ON", standby_cmd: str = "POWER STANDBY",
                 query_cmd: str = "POWER?", ping_cmd: str = "PING", ok: str = "OK",
                 error: str = "ERROR", pong: str = "PONG", state_reply: str = "POWER={state}",
                 terminator: str = "\r\n", standby: bool = False, identity_cmd: str = "ID?",
                 identity_reply: str = "MODEL={model} SERIAL={serial}", model: str = "EMU-1",
                 serial_number: str = "SN-0001", **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.identity_cmd, self.identity_reply = identity_cmd, identity_reply
        self.model, self.serial_number = model, serial_number
        self.on_cmd, self.standby_cmd, self.query_cmd = on_cmd, standby_cmd, query_cmd
        self.ping_cmd, self.ok, self.error, self.pong = ping_cmd, ok, error, pong
        self.state_reply, self.terminator = state_reply, terminator
        self.on = not standby

    def reset_state(self) -> None:
        self.on = True

    def _line(self, text: str) -> bytes:
        return (text + self.terminator).encode()

    def error_reply(self, command: bytes) -> bytes:
        return self._line(self.error)

    def handle(self, command: bytes) -> bytes:
        line = command.decode("latin-1").strip()
        if line == self.on_cmd:
            self.on = True
            return self._line(self.ok)
        if line == self.standby_cmd:
            self.on = False
            return self._line(self.ok)
        if line == self.query_cmd:
            return self._line(self.state_reply.format(state="ON" if self.on else "STANDBY"))
        if line == self.identity_cmd:
            return self._line(self.identity_reply.format(model=self.model,
                                                         serial=self.serial_number))
        if line == self.ping_cmd:
            return self._line(self.pong)
        return self._line(self.error)
