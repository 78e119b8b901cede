"""Sony VISCA PTZ cameras over RS-232 (also many VISCA-compatible PTZ cameras).

Site config::

    camera:
      driver: sony_visca
      serial: {url: /dev/serial/by-id/usb-FTDI-if00-port0, baudrate: 9600}
      settings: {address: 1}

Before the first command, and again whenever the camera announces a Network Change
(``z0 38 FF``, sent at power-up) or stops answering, the driver broadcasts Address Set and
IF_Clear. While the camera initialises it refuses commands with ``z0 6y 41 FF`` (not
executable), some even the Address Set broadcast: :meth:`SonyVisca.power_state` reports
either as ``"booting"``.

Identity: CAM_VersionInq ``8x 09 00 02 FF`` → ``y0 50 GG GG HH HH JJ JJ KK FF`` (vendor,
model, ROM version, sockets; from Sony's camera manuals, not the project's protocol sheet): the
model is the vendor and model code, e.g. ``"Sony 0519"``. VISCA has no serial number.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field

from agent.drivers.base import (
    BadReply,
    DeviceIdentity,
    DeviceRefused,
    DeviceTimeout,
    Driver,
    DriverSettings,
    KeepWaiting,
    PowerState,
)
from agent.drivers.framing import visca
from agent.drivers.framing.lines import Garbage

NOT_EXECUTABLE = 0x41
VENDORS = {0x0001: "Sony"}


class _Readdress(Exception):
    """A Network Change arrived while waiting for an answer."""


class SonyViscaSettings(DriverSettings):
    """Settings for :class:`SonyVisca`."""

    address: int = Field(1, ge=1, le=7, description="Camera address in the daisy chain")
    reply_timeout_s: float = Field(1.0, gt=0, le=60,
                                   description="Longest wait for an ACK or an inquiry answer")
    completion_timeout_s: float = Field(
        15.0, gt=0, le=120, description="Longest wait for a command's completion (power on "
                                        "moves the head and can take seconds)")


class SonyVisca(Driver):
    """VISCA camera driver; see the module docstring."""

    name = "sony_visca"
    Settings = SonyViscaSettings
    settings: SonyViscaSettings
    busy_codes = frozenset({f"{NOT_EXECUTABLE:02x}"})

    def new_parser(self) -> visca.ViscaParser:
        return visca.ViscaParser()

    def on_open(self) -> None:
        self._addressed = False

    def on_close(self) -> None:
        self._addressed = False

    def on_unsolicited(self, frame: visca.Frame) -> None:
        if isinstance(frame, visca.NetworkChange):
            self._addressed = False
            self.forget_identity()          # a camera powered up: maybe another one

    # ---- plumbing
    def _handle(self, want: Callable[[visca.Frame], object | None]
                ) -> Callable[[visca.Frame], object | None]:
        me = self.settings.address

        def handle(f: visca.Frame) -> object | None:
            if isinstance(f, visca.NetworkChange):
                self._addressed = False
                self.forget_identity()
                raise _Readdress
            if isinstance(f, visca.ViscaError) and f.address == me:
                raise DeviceRefused(f"{self.device}: {f.text}", code=f"{f.code:02x}")
            return want(f)

        return handle

    def address(self) -> None:
        """Broadcast Address Set and IF_Clear (done automatically when needed).

        A camera that answers Address Set with an error (``z0 6y 41 FF`` while it
        initialises) raises :class:`DeviceRefused` with that code, so that
        :meth:`power_state` reports ``"booting"`` rather than "no reply"."""
        def address_set(f: visca.Frame) -> visca.AddressSet | None:
            if isinstance(f, visca.ViscaError):
                raise DeviceRefused(f"{self.device}: Address Set: {f.text}",
                                    code=f"{f.code:02x}")
            return f if isinstance(f, visca.AddressSet) else None

        with self._lock:
            got = self._exchange(visca.ADDRESS_SET, address_set, what="Address Set")
            cameras = got.next_address - 1
            if self.settings.address > cameras:
                raise DeviceRefused(f"{self.device}: no camera at address "
                                    f"{self.settings.address}: the chain has {cameras}",
                                    code="address")
            self._exchange(visca.IF_CLEAR, lambda f: True if isinstance(f, visca.IfClear)
                           else None, what="IF_Clear")
            self._addressed = True

    def _run(self, what: str, body: tuple[int, ...],
             want: Callable[[visca.Frame], object | None], timeout: float | None = None,
             see_garbage: bool = False) -> object:
        with self._lock:
            self._ensure_open()
            for attempt in (1, 2):
                self._drain()           # a Network Change waiting here means: address first
                if not self._addressed:
                    self.address()
                try:
                    # No second drain: a Network Change from now on must reach _handle.
                    return self._exchange(visca.packet(self.settings.address, *body),
                                          self._handle(want), what=what, timeout=timeout,
                                          drain=False, see_garbage=see_garbage)
                except _Readdress:
                    # A camera powered up while we asked: address the chain, ask again.
                    if attempt == 2:
                        raise DeviceTimeout(f"{self.device}: {what}: the chain keeps "
                                            "re-initialising") from None
                except (DeviceTimeout, BadReply):
                    self._addressed = False
                    raise
            raise AssertionError("unreachable")

    def command(self, what: str, *body: int) -> None:
        """Send a command; wait ``reply_timeout_s`` for its ACK, then
        ``completion_timeout_s`` for its completion."""
        me = self.settings.address
        state: dict[str, int] = {}

        def want(f: visca.Frame) -> object | None:
            if isinstance(f, visca.Ack) and f.address == me:
                state["socket"] = f.socket
                return KeepWaiting(self.settings.completion_timeout_s, f"completion of {what}")
            if isinstance(f, visca.Completion) and f.address == me and (
                    f.socket == state.get("socket", f.socket)):
                return True
            return None

        self._run(what, (0x01, *body), want)

    def inquiry(self, what: str, *body: int, strict: bool = False) -> bytes:
        """Send an inquiry; return the data of its completion. ``strict``: noise before the
        answer is a BadReply (it may have eaten part of it) instead of being skipped."""
        me = self.settings.address

        def want(f: visca.Frame) -> bytes | None:
            if isinstance(f, Garbage):
                raise BadReply(f"{self.device}: noise in the answer to {what}")
            if isinstance(f, visca.Completion) and f.address == me and f.data:
                return f.data
            return None

        result = self._run(what, (0x09, *body), want, see_garbage=strict)
        assert isinstance(result, bytes)
        return result

    # ---- the contract
    def power_state(self) -> PowerState:
        """Power inquiry ``8x 09 04 00 FF`` → ``y0 50 02 FF`` on, ``03`` standby."""
        try:
            data = self.inquiry("power inquiry", 0x04, 0x00)
        except DeviceRefused as e:
            if e.code == f"{NOT_EXECUTABLE:02x}":
                return "booting"
            raise
        if data[:1] == b"\x02":
            return "on"
        if data[:1] == b"\x03":
            return "standby"
        raise BadReply(f"{self.device}: unknown power inquiry answer {data.hex(' ')}")

    def read_identity(self) -> DeviceIdentity:
        """CAM_VersionInq: vendor and model code as the model; no serial in VISCA."""
        data = self.inquiry("version inquiry", 0x00, 0x02, strict=True)
        if len(data) != 7:
            raise BadReply(f"{self.device}: version inquiry answered {data.hex(' ')}")
        vendor, model = (data[0] << 8) | data[1], (data[2] << 8) | data[3]
        name = VENDORS.get(vendor, f"vendor {vendor:04X}")
        return DeviceIdentity(f"{name} {model:04X}", None)

    def wake(self) -> None:
        """Power on ``8x 01 04 00 02 FF``."""
        self.command("power on", 0x04, 0x00, 0x02)

    def standby(self) -> None:
        """Standby ``8x 01 04 00 03 FF``."""
        self.command("standby", 0x04, 0x00, 0x03)
