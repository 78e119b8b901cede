"""Cisco Room / SX / Codec Plus|Pro codecs over RS-232 (xAPI text mode).

Site config::

    codec:
      driver: cisco_xapi
      serial: {url: /dev/serial/by-id/usb-FTDI_FT232R-if00-port0, baudrate: 115200}
      settings: {username: admin, password: "…"}

Session: on open the driver presses Enter; a ``login:`` prompt gets the user name, then
``Password:`` the password, and ``*r Login successful`` / ``OK`` confirm. Then ``Echo off``.
A ``login:`` prompt at any later time (the codec rebooted) triggers a new login and one retry.

Identity: ``xStatus SystemUnit ProductId`` (model) and ``xStatus SystemUnit Hardware Module
SerialNumber`` (serial), both paths settings because no project source confirms them for every
firmware; a path the codec does not know is an error result, and gives None.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from agent.drivers.base import (
    CallInfo,
    DeviceIdentity,
    DeviceRefused,
    DeviceTimeout,
    Driver,
    DriverSettings,
    PowerState,
)
from agent.drivers.framing import xapi


class CiscoXapiSettings(DriverSettings):
    """Settings for :class:`CiscoXapi`."""

    login: bool = Field(True, description="xConfiguration SerialPort LoginRequired (default On)")
    username: str = Field("admin", min_length=1)
    password: SecretStr = Field(SecretStr(""), description="Codec user password")
    login_probe_s: float = Field(1.0, gt=0, le=30,
                                 description="Wait for a login: prompt after pressing Enter")
    require_ok: bool = Field(True, description="Wait for 'OK' after '** end' (all known "
                                               "firmware prints it; turn off if yours does not)")
    product_status: str | None = Field(
        "SystemUnit ProductId", min_length=1,
        description="xStatus path of the model name (none: do not ask; unconfirmed)")
    serial_status: str | None = Field(
        "SystemUnit Hardware Module SerialNumber", min_length=1,
        description="xStatus path of the serial number (none: do not ask; unconfirmed)")


class _NeedLogin(Exception):
    """The codec shows a login prompt: it rebooted or logged us out."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class CiscoXapi(Driver):
    """Cisco xAPI driver; see the module docstring."""

    name = "cisco_xapi"
    Settings = CiscoXapiSettings
    has_calls = True
    settings: CiscoXapiSettings

    def new_parser(self) -> xapi.XapiParser:
        return xapi.XapiParser()

    def on_open(self) -> None:
        self._session = False

    def on_close(self) -> None:
        self._session = False

    # ---- session
    def _login(self) -> None:
        """Answer the login prompts (the ``login:`` prompt has already been seen)."""
        s = self.settings

        def wait_prompt(f: xapi.Frame) -> str | None:
            if isinstance(f, xapi.LoginFailed):
                raise DeviceRefused(f"{self.device}: login refused: check username and "
                                    "password", code="login")
            return f.kind if isinstance(f, xapi.Prompt) else None

        kind = self._exchange(f"{s.username}\r".encode(), wait_prompt, what="login user",
                              drain=False)
        if kind == "login":
            raise DeviceRefused(f"{self.device}: login prompt repeated", code="login")

        def wait_ok(f: xapi.Frame) -> bool | None:
            if isinstance(f, xapi.LoginFailed | xapi.Prompt):
                raise DeviceRefused(f"{self.device}: login refused: check username and "
                                    "password", code="login")
            return True if isinstance(f, xapi.LoginOk | xapi.Ok) else None

        self._exchange(f"{s.password.get_secret_value()}\r".encode(), wait_ok,
                       what="login password", drain=False)

    def _prepare(self, *, probe: bool = True) -> None:
        """Log in if the codec asks (``probe``: press Enter to find out), then ``Echo off``."""
        if self._session:
            return
        if self.settings.login and probe:
            try:
                self._exchange(b"\r", lambda f: True if isinstance(f, xapi.Prompt) else None,
                               what="login probe", timeout=self.settings.login_probe_s)
                self._login()
            except DeviceTimeout:
                pass            # no prompt: still logged in from before
        self._command("Echo off", block=False)
        self._session = True

    def _command(self, line: str, *, block: bool = True) -> xapi.Reply:
        collector = xapi.ReplyCollector(block=block, require_ok=self.settings.require_ok)

        def handle(f: xapi.Frame) -> xapi.Reply | None:
            if isinstance(f, xapi.Prompt):
                raise _NeedLogin(f.kind)
            return collector.add(f)

        return self._exchange(f"{line}\r".encode(), handle, what=repr(line),
                              see_garbage=True)

    def xapi(self, line: str, *, block: bool = True) -> xapi.Reply:
        """Send one xAPI line (after logging in if needed) and return its reply."""
        with self._lock:
            probe = True
            for attempt in (1, 2):
                self._ensure_open()
                try:
                    self._prepare(probe=probe)
                    return self._command(line, block=block)
                except _NeedLogin as need:
                    self._session = False
                    self.forget_identity()      # it rebooted: maybe as another unit
                    if attempt == 2 or not self.settings.login:
                        raise DeviceRefused(f"{self.device}: codec keeps asking to log in "
                                            "(set settings.login: true?)", code="login") from None
                    if need.kind == "password":
                        # Our command was taken as a user name: fail that login first.
                        self._exchange(b"\r", lambda f: True if isinstance(f, xapi.Prompt)
                                       and f.kind == "login" else None, what="login reset",
                                       drain=False)
                    self._login()
                    probe = False
                except DeviceTimeout:
                    self._session = False       # it may have rebooted: log in again next time
                    raise
            raise AssertionError("unreachable")

    # ---- the contract
    def power_state(self) -> PowerState:
        """``xStatus Standby State``: Off → on, Standby → standby; Halfwake and
        EnteringStandby → unknown (to be woken; not yet a confirmed standby)."""
        return xapi.power_from_standby(self.xapi("xStatus Standby State").value("Standby State"))

    def wake(self) -> None:
        """``xCommand Standby Deactivate``."""
        self.xapi("xCommand Standby Deactivate")

    def standby(self) -> None:
        """``xCommand Standby Activate``."""
        self.xapi("xCommand Standby Activate")

    def call_state(self) -> CallInfo | None:
        """``xStatus Call``: the first call that is not idle, or None."""
        return xapi.call_from_statuses(self.xapi("xStatus Call").statuses)

    def read_identity(self) -> DeviceIdentity:
        """The model and serial number from their ``xStatus`` paths (see the settings)."""
        return DeviceIdentity(self._status_text(self.settings.product_status),
                              self._status_text(self.settings.serial_status))

    def _status_text(self, path: str | None) -> str | None:
        """The value of one ``xStatus`` path; None if not asked, unknown here or empty."""
        if path is None:
            return None
        try:
            value = self.xapi(f"xStatus {path}").value(path)
        except DeviceRefused as e:
            self.log_once(f"status {path}", "%s: the codec does not tell xStatus %s: %s",
                          self.device, path, e)
            return None
        if value is None or not value.strip():
            return None
        return value.strip()

    def restart(self) -> None:
        """``xCommand SystemUnit Boot Action: Restart`` (unconfirmed on older firmware)."""
        self.xapi("xCommand SystemUnit Boot Action: Restart")
