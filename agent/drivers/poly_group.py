"""Poly RealPresence Group Series codecs over RS-232 (serial mode *Control*).

Site config::

    codec:
      driver: poly_group
      serial: {url: /dev/serial/by-id/usb-Prolific-if00-port0, baudrate: 9600}
      settings: {password: "…"}        # admin password, if the port asks for one

Commands end CR; the device acknowledges an action by echoing it. The driver keeps
``command_gap_s`` (200 ms) between commands, timed with the injected clock and sleeper.
The Group Series has no power-state query: the driver sends ``sleep register`` (liveness,
and it keeps sleep/wake notifications on after a reboot) and reports the state it tracked
from its own ``sleep``/``wake`` acknowledgements and those notifications. After a (re)connect
(the port reopened, a ``Password:`` prompt mid-session, a timeout followed by registering
again) it reports ``"unknown"`` until it sees one of those: the codec may have gone to sleep
while no notification could reach us. (The health poller treats an answering ``unknown`` as
alive, and ``wait_ready(wake=True)`` wakes it.)

Identity: ``whoami`` (its ``Model:`` and ``Serial Number:`` lines) or ``serialnum`` (serial
only), per ``settings.identity_command``; neither is in the project's protocol sources, so a
model that refuses it gives None.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Literal, TypeVar

from pydantic import Field, SecretStr

from agent.drivers.base import (
    BadReply,
    CallInfo,
    DeviceIdentity,
    DeviceRefused,
    DeviceTimeout,
    Driver,
    DriverSettings,
    PowerState,
)
from agent.drivers.framing import poly
from agent.drivers.framing.lines import Garbage

R = TypeVar("R")


class PolyGroupSettings(DriverSettings):
    """Settings for :class:`PolyGroup`."""

    password: SecretStr | None = Field(None, description="Admin password when the serial "
                                                         "login mode asks for one")
    command_gap_s: float = Field(0.2, ge=0, le=5, description="Pause between commands")
    register_callstate: bool = Field(True, description="Send 'callstate register' to get "
                                                       "call notifications")
    identity_command: Literal["whoami", "serialnum"] | None = Field(
        "whoami", description="How to ask the model and serial number (none: do not ask)")


class PolyGroup(Driver):
    """Poly Group Series driver; see the module docstring."""

    name = "poly_group"
    Settings = PolyGroupSettings
    has_calls = True
    settings: PolyGroupSettings

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.command_gap_s = self.settings.command_gap_s
        self.tracked: PowerState = "unknown"
        self.events: list[poly.CallEvent] = []
        self._awaiting_password = False
        self._callstate_refused = False

    def new_parser(self) -> poly.PolyParser:
        return poly.PolyParser()

    def on_open(self) -> None:
        self._session = False
        self._awaiting_password = False
        self._callstate_refused = False     # a reopened port may lead to another model
        self.tracked = "unknown"

    def on_close(self) -> None:
        self._session = False

    def on_unsolicited(self, frame: poly.Frame) -> None:
        if isinstance(frame, poly.CallEvent):
            self.events = [*self.events[-49:], frame]
        elif isinstance(frame, poly.Line):
            low = frame.text.lower()
            if low in ("sleep", "globalsleep"):
                self.tracked = "standby"
            elif low in ("wake", "globalwake"):
                self.tracked = "on"

    # ---- commands
    def _send(self, line: str, done: Callable[[poly.Frame], R | None], *,
              see_garbage: bool = False) -> R:
        def handle(f: poly.Frame) -> R | None:
            if isinstance(f, poly.PasswordPrompt):
                raise _NeedPassword
            if isinstance(f, poly.PolyError):
                raise DeviceRefused(f"{self.device}: {line!r}: {f.text}", code="error")
            result = done(f)
            if result is None:
                self.on_unsolicited(f)
            return result

        return self._exchange(f"{line}\r".encode(), handle, what=repr(line),
                              see_garbage=see_garbage)

    def command(self, line: str, done: Callable[[poly.Frame], R | None], *,
                see_garbage: bool = False) -> R:
        """Send one command (logging in and registering first if needed).

        ``see_garbage``: ``done`` also gets unreadable lines (a multi-line answer raises
        BadReply on one); otherwise they are skipped.

        A ``Password:`` prompt gets the password and one retry; a prompt again after that
        (wrong password, or firmware that re-prompts only later) is
        :class:`DeviceRefused` with code ``login``.
        """
        with self._lock:
            for attempt in (1, 2):
                self._ensure_open()
                try:
                    if self._awaiting_password:
                        self._give_password()
                        self._awaiting_password = False
                    if not self._session:
                        self._register()
                    return self._send(line, done, see_garbage=see_garbage)
                except _NeedPassword:
                    self._session = False
                    self.tracked = "unknown"    # its session restarted: it may have slept
                    self._awaiting_password = True      # the next line must be the password
                    if attempt == 2:
                        raise DeviceRefused(f"{self.device}: the codec keeps asking for the "
                                            "password: check settings.password",
                                            code="login") from None
                except DeviceTimeout:
                    self._session = False
                    raise
            raise AssertionError("unreachable")

    def _give_password(self) -> None:
        pw = self.settings.password
        if pw is None:
            raise DeviceRefused(f"{self.device}: the codec asks for a password; set "
                                "settings.password", code="login")

        def accepted(f: poly.Frame) -> bool | None:
            if isinstance(f, poly.PasswordPrompt):
                raise DeviceRefused(f"{self.device}: password refused", code="login")
            return True if isinstance(f, poly.Line) else None

        # Some firmware prints nothing after a good password: silence is acceptance.
        with contextlib.suppress(DeviceTimeout):
            self._exchange(f"{pw.get_secret_value()}\r".encode(), accepted, what="password",
                           timeout=min(self.settings.reply_timeout_s, 1.0), drain=False)

    def _register(self) -> None:
        """Start a session: ``sleep register`` (required), then ``callstate register`` unless
        this model refused it already: an optional registration the model does not support is
        logged once and skipped, never a failure. A new session knows nothing of the power
        state (the codec may have slept, or restarted, while we were not registered): it is
        ``"unknown"`` until an acknowledgement or a notification says."""
        self.tracked = "unknown"
        self.forget_identity()
        self._send("sleep register", _expect("sleep registered"))
        if self.settings.register_callstate and not self._callstate_refused:
            try:
                self._send("callstate register", _expect("callstate registered"))
            except DeviceRefused as e:
                self._callstate_refused = True
                self.log_once("callstate", "%s: no call notifications (%s); calls are still "
                              "read with 'callinfo all'", self.device, e)
        self._session = True

    # ---- the contract
    def power_state(self) -> PowerState:
        """Liveness by ``sleep register``; the state tracked from acknowledgements."""
        self.command("sleep register", _expect("sleep registered"))
        return self.tracked

    def wake(self) -> None:
        """``wake``, acknowledged by its echo."""
        self.command("wake", _expect("wake"))
        self.tracked = "on"

    def standby(self) -> None:
        """``sleep``, acknowledged by its echo."""
        self.command("sleep", _expect("sleep"))
        self.tracked = "standby"

    def read_identity(self) -> DeviceIdentity:
        """``whoami`` → its ``Model:`` and ``Serial Number:`` lines (both must come; an
        unreadable line among them is a BadReply), or ``serialnum`` → the serial only."""
        how = self.settings.identity_command
        if how is None:
            return DeviceIdentity()
        if how == "serialnum":
            def serialnum(f: poly.Frame) -> str | None:
                if isinstance(f, Garbage):
                    raise BadReply(f"{self.device}: unreadable answer to 'serialnum'")
                if isinstance(f, poly.Line) and f.text.lower().startswith("serialnum "):
                    return f.text[len("serialnum "):].strip()
                return None
            return DeviceIdentity(None, self.command("serialnum", serialnum,
                                                     see_garbage=True) or None)
        seen: dict[str, str] = {}

        def whoami(f: poly.Frame) -> DeviceIdentity | None:
            if isinstance(f, Garbage):
                raise BadReply(f"{self.device}: unreadable line in the answer to 'whoami'")
            if isinstance(f, poly.Line) and ":" in f.text:
                key, value = (p.strip() for p in f.text.split(":", 1))
                if key.lower() in ("model", "serial number"):
                    seen[key.lower()] = value
            if len(seen) == 2:
                return DeviceIdentity(seen["model"] or None, seen["serial number"] or None)
            return None

        return self.command("whoami", whoami, see_garbage=True)

    def call_state(self) -> CallInfo | None:
        """``callinfo all``: the first call listed, or None; BadReply if a line of the list
        is unreadable."""
        return self.command("callinfo all", poly.CallInfoCollector().add, see_garbage=True)[0]


class _NeedPassword(Exception):
    """The codec printed ``Password:``."""


def _expect(text: str) -> Callable[[poly.Frame], bool | None]:
    def done(f: poly.Frame) -> bool | None:
        return True if isinstance(f, poly.Line) and f.text.lower() == text else None
    return done
