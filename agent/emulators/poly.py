"""Poly RealPresence Group Series emulator (RS-232 in *Control* mode).

Acknowledges actions by echoing them; ``sleep register`` / ``callstate register`` turn on
notifications; optional admin password prompt (``quiet_wrong_password``: a wrong password
gets no answer, the prompt only comes back with the next line); silent while booting.
``unsupported``: commands this model answers with ``error: this command is not supported on
this model`` (e.g. ``["callstate register"]``). ``model`` and ``serial_number`` are what
``whoami`` and ``serialnum`` tell.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.emulators.base import Emulator

UNSUPPORTED = b"error: this command is not supported on this model\r\n"


class PolyEmulator(Emulator):
    """Emulated Poly Group 500; see the module docstring."""

    link_name = "ttyCODEC"

    def __init__(self, *, password: str | None = None, asleep: bool = False,
                 quiet_wrong_password: bool = False, unsupported: Iterable[str] = (),
                 model: str = "Group500", serial_number: str = "82161234567890AB",
                 **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.model = model
        self.serial_number = serial_number
        self.password = password
        self.quiet_wrong_password = quiet_wrong_password
        self.unsupported = {c.lower() for c in unsupported}
        self.call_id = 33
        self.reset_state()
        self.asleep = asleep

    def reset_state(self) -> None:
        self.authed = self.password is None
        self._prompted = False
        self._owed_prompt = False
        self.asleep = False
        self.sleep_registered = False
        self.callstate_registered = False
        self.in_call: dict[str, str] | None = None

    def _notify(self, *lines: str) -> None:
        self._emit(b"", "".join(f"{ln}\r\n" for ln in lines).encode())

    # ---- things that happen in the room
    def start_call(self, remote: str = "Xa Tan Doan", number: str = "192.168.10.20") -> None:
        """An incoming call rings and connects (waking the system)."""
        def do() -> None:
            self.call_id += 1
            cid = self.call_id
            if self.asleep:
                self.asleep = False
                if self.sleep_registered:
                    self._notify("wake")
            self.in_call = {"id": str(cid), "remote": remote, "number": number}
            if self.callstate_registered:
                self._notify(f"cs: call[{cid}] chan[0] dialstr[{number}] state[RINGING]",
                             f"cs: call[{cid}] chan[0] dialstr[{number}] state[COMPLETE]",
                             f"active: call[{cid}] speed [384]")
        self.call(do)

    def end_call(self) -> None:
        """The far end hangs up."""
        def do() -> None:
            if self.in_call is None:
                return
            cid = self.in_call["id"]
            self.in_call = None
            if self.callstate_registered:
                self._notify(f"cleared: call[{cid}]", f"ended: call[{cid}]")
        self.call(do)

    def drop_session(self) -> None:
        """The codec restarts its serial session unseen (say, a quick reboot): the password is
        asked again and the registrations are forgotten; the power state is kept."""
        def do() -> None:
            self.authed = self.password is None
            self._prompted = self._owed_prompt = False
            self.sleep_registered = self.callstate_registered = False
        self.call(do)

    def fall_asleep(self) -> None:
        """The sleep timer puts the system to sleep (a notification if registered)."""
        def do() -> None:
            self.asleep = True
            if self.sleep_registered:
                self._notify("sleep")
        self.call(do)

    # ---- protocol
    def error_reply(self, command: bytes) -> bytes:
        return UNSUPPORTED

    def handle(self, command: bytes) -> bytes:
        line = command.decode("latin-1").strip()
        if not self.authed:
            if self._prompted and line == self.password:
                self.authed = True
                return b"\r\nHi, my name is : RealPresence Group 500\r\n"
            if self._prompted and self.quiet_wrong_password and not self._owed_prompt:
                self._owed_prompt = True
                return b""      # says nothing now; the next line gets the prompt again
            self._owed_prompt = False
            self._prompted = True
            return b"\r\nPassword: "
        low = line.lower()
        if low in self.unsupported:
            return UNSUPPORTED
        if low == "sleep":
            self.asleep = True
            return b"sleep\r\n"
        if low == "wake":
            self.asleep = False
            return b"wake\r\n"
        if low == "sleep register":
            self.sleep_registered = True
            return b"sleep registered\r\n"
        if low == "callstate register":
            self.callstate_registered = True
            return b"callstate registered\r\n"
        if low == "whoami":
            return ("Hi, my name is: Phong hop xa\r\n"
                    "Here is what I know about myself:\r\n"
                    f"Model: {self.model}\r\n"
                    f"Serial Number: {self.serial_number}\r\n"
                    "Software Version: Release 6.2.2 - 28Jan2021 17:21\r\n"
                    "Build Information: root on bldsrv\r\n").encode()
        if low == "serialnum":
            return f"serialnum {self.serial_number}\r\n".encode()
        if low == "notify callstatus":
            return b"notify callstatus success\r\n"
        if low == "callinfo all":
            c = self.in_call
            if c is None:
                return b"system is not in a call\r\n"
            return (f"callinfo begin\r\ncallinfo:{c['id']}:{c['remote']}:{c['number']}:384:"
                    "connected:notmuted:incoming:videocall\r\ncallinfo end\r\n").encode()
        if low == "reboot now":
            self.reset_state()
            self._boot_until = self.clock() + self.boot_s
            return b"reboot now\r\n"
        return UNSUPPORTED
