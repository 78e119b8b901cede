"""Cisco codec emulator: xAPI text mode with login, echo, standby and calls.

Standby states: Off, Standby, EnteringStandby for ``entering_standby_s`` after Activate,
Halfwake after :meth:`CiscoEmulator.halfwake` (someone walked in) or ``xCommand Standby
Halfwake``. Firmware ``"ce"`` prints ``** end`` then ``OK``; ``"tc"`` prints ``OK`` before
the block, as some older firmware does. Silent while booting; optional noise burst at power-up (boot
messages at 38400 baud look like this at 115200). ``product_id`` and ``serial_number`` answer
``xStatus SystemUnit ProductId`` / ``xStatus SystemUnit Hardware Module SerialNumber`` (None:
the path is unknown on this model, an error result).
"""

from __future__ import annotations

from typing import Literal

from agent.emulators.base import Emulator

IDENTITY_PATHS = {"xstatus systemunit productid": "product_id",
                  "xstatus systemunit hardware module serialnumber": "serial_number"}


class CiscoEmulator(Emulator):
    """Emulated Cisco Room Kit / SX codec; see the module docstring."""

    link_name = "ttyCODEC"
    keep_empty_lines = True     # Enter at the login prompt shows the prompt again

    def __init__(self, *, login_required: bool = True, username: str = "admin",
                 password: str = "", firmware: Literal["ce", "tc"] = "ce",
                 standby: bool = False, entering_standby_s: float = 0.0,
                 boot_noise: bool = False, product_id: str | None = "Cisco Codec Pro",
                 serial_number: str | None = "FOC2231N1AB", **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.product_id = product_id
        self.serial_number = serial_number
        self.login_required = login_required
        self.username = username
        self.password = password
        self.firmware = firmware
        self.entering_standby_s = entering_standby_s
        self.boot_noise = boot_noise
        self.call_id = 0
        self.reset_state()
        self._standby = standby

    # ---- state
    def reset_state(self) -> None:
        self._login: str = "user" if self.login_required else "done"
        self._echo = True
        self._standby = False           # a codec boots awake
        self._halfwake = False
        self._entering_until: float | None = None
        self._call: dict[str, str] | None = None

    def on_power_up(self) -> None:
        if self.boot_noise:
            self._write(b"\x80\xf8\x00\xfe\x86x\x98\x1e\xe0\x00\x80\xfe")

    @property
    def standby_state(self) -> str:
        """Off, Halfwake, EnteringStandby or Standby, as the codec would report it."""
        if self._halfwake:
            return "Halfwake"
        if not self._standby:
            return "Off"
        if self._entering_until is not None and self.clock() < self._entering_until:
            return "EnteringStandby"
        return "Standby"

    def halfwake(self) -> None:
        """Someone walks in: a codec in standby wakes halfway (the proximity sensor)."""
        def do() -> None:
            if self._standby:
                self._standby = False
                self._halfwake = True
        self.call(do)

    def start_call(self, remote: str = "Xa Tan Doan", number: str = "sip:1001@vq.local",
                   direction: str = "Incoming") -> None:
        """A call connects (wakes the codec)."""
        def do() -> None:
            self.call_id += 1
            self._standby = self._halfwake = False
            self._call = {"id": str(self.call_id), "remote": remote, "number": number,
                          "direction": direction}
        self.call(do)

    def end_call(self) -> None:
        """The call ends."""
        def do() -> None:
            self._call = None
        self.call(do)

    # ---- protocol
    def _finish(self, block: list[str] | None, ok: bool = True) -> bytes:
        """A command's answer: ``block`` lines (None: no block at all) and OK/ERROR."""
        end = "OK" if ok else "ERROR"
        if block is None:
            lines = [end]
        elif self.firmware == "tc":
            lines = [end, *block, "** end"]
        else:
            lines = [*block, "** end", "", end]
        return ("\r\n".join(lines) + "\r\n").encode()

    def error_reply(self, command: bytes) -> bytes:
        return b"Command not recognized.\r\n"

    def handle(self, command: bytes) -> bytes:
        line = command.decode("utf-8", "replace").strip("\r\n")
        if self._login == "user":
            if not line.strip():
                return b"\r\nlogin: "
            self._login = "password"
            self._user = line
            return b"Password: "
        if self._login == "password":
            if self._user == self.username and line == self.password:
                self._login = "done"
                return (b"Welcome to emulated codec\r\nSoftwareVersion: ce9.15.0\r\n"
                        b"*r Login successful\r\n\r\nOK\r\n")
            self._login = "user"
            return b"\r\nLogin incorrect\r\n\r\nlogin: "
        echo = (line + "\r\n").encode() if self._echo and line else b""
        return echo + self._command(line.strip())

    def _command(self, line: str) -> bytes:
        low = line.lower()
        if not line:
            return b""
        if low == "echo off":
            self._echo = False
            return self._finish(None)
        if low == "echo on":
            self._echo = True
            return self._finish(None)
        if low == "xstatus standby state":
            return self._finish([f"*s Standby State: {self.standby_state}"])
        if low == "xstatus standby":
            return self._finish([f"*s Standby State: {self.standby_state}"])
        if low == "xcommand standby activate":
            if self._call is not None:
                return self._finish(['*r StandbyActivateResult (status=Error):',
                                     '    Reason: "Not allowed while in call"'], ok=False)
            if not self._standby:
                self._standby = True
                self._halfwake = False
                self._entering_until = self.clock() + self.entering_standby_s
            return self._finish(["*r StandbyActivateResult (status=OK):"])
        if low == "xcommand standby deactivate":
            self._standby = self._halfwake = False
            return self._finish(["*r StandbyDeactivateResult (status=OK):"])
        if low == "xcommand standby halfwake":
            self._standby, self._halfwake = False, True
            return self._finish(["*r StandbyHalfwakeResult (status=OK):"])
        if low == "xstatus call":
            c = self._call
            if c is None:
                return self._finish([])
            cid = c["id"]
            return self._finish([
                f'*s Call {cid} AnswerState: Answered',
                f'*s Call {cid} CallbackNumber: "{c["number"]}"',
                f'*s Call {cid} Direction: {c["direction"]}',
                f'*s Call {cid} DisplayName: "{c["remote"]}"',
                f'*s Call {cid} Status: Connected',
            ])
        if low in IDENTITY_PATHS:
            value = getattr(self, IDENTITY_PATHS[low])
            path = line.split(None, 1)[1]
            if value is None:
                return self._finish(['*r Status (status=Error):',
                                     '    Reason: "No match on address expression."',
                                     f'    XPath: "/Status/{path.replace(" ", "/")}"'],
                                    ok=False)
            return self._finish([f'*s {path}: "{value}"'])
        if low.startswith("xfeedback register"):
            return self._finish(None)
        if low == "xcommand systemunit boot action: restart":
            reply = self._finish(["*r SystemUnitBootResult (status=OK):"])
            self._boot_until = self.clock() + self.boot_s
            self.reset_state()
            return reply
        return b"Command not recognized.\r\n"
