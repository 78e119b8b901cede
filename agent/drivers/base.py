"""The driver contract: typed errors, settings, and the serial transport every driver shares.

A driver is one file: a pydantic settings model plus a class with a handful of methods
(``wake``, ``standby``, ``power_state``, ``call_state``, ``ping``, ``identity``). Bytes on
the wire are cut into frames by a pure parser in :mod:`agent.drivers.framing`; this module
only moves bytes and turns every transport failure into one of the typed errors below.

Example::

    drv = CiscoXapi(SerialSettings(url="/dev/serial/by-id/usb-FTDI-if00", baudrate=115200),
                    {"username": "admin", "password": "secret"})
    with drv:
        drv.power_state()   # 'standby'
        drv.wake()
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import serial
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.drivers.framing.lines import Garbage

PowerState = Literal["on", "standby", "off", "booting", "unknown"]
T = TypeVar("T")
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- errors
class DeviceError(Exception):
    """Anything that went wrong talking to a device. Drivers raise nothing else."""


class DeviceTimeout(DeviceError, TimeoutError):
    """The device did not answer in time: no power, unplugged, booting or wrong baud rate."""


class BadReply(DeviceError, ValueError):
    """The device answered with something we cannot read (noise, wrong baud, odd firmware)."""


class DeviceRefused(DeviceError):
    """The device understood and said no (error reply, busy, initialising, unsupported)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class PortGone(DeviceError, OSError):
    """The serial port cannot be opened or vanished (USB adapter unplugged, port in use)."""


class SettingsError(DeviceError, ValueError):
    """Driver settings from the site config are wrong; ``problems`` lists ``field: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# --------------------------------------------------------------------------- values
@dataclass(frozen=True)
class CallInfo:
    """A call the codec is in (the first active one when there are several)."""

    id: str
    status: str                 # as the codec says it: 'Connected', 'talking', 'RINGING'…
    remote: str = ""            # display name or number of the far end
    direction: str = ""         # 'incoming' / 'outgoing' when known


@dataclass(frozen=True)
class DeviceIdentity:
    """What the device says it is: its model and serial number. None where its protocol does
    not tell (or this model refused the query): never a guess."""

    model: str | None = None
    serial: str | None = None


@dataclass(frozen=True)
class KeepWaiting:
    """What an exchange's ``handle`` returns for "not the answer yet, but the device is on it:
    wait ``seconds`` more from now" (a VISCA ACK before the completion)."""

    seconds: float
    what: str = ""          # what is awaited now, for the timeout message


class DriverSettings(BaseModel):
    """Base of every driver's settings: strict, because an operator typed them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    reply_timeout_s: float = Field(2.0, gt=0, le=60,
                                   description="Longest wait for one reply")


class SerialSettings(BaseModel):
    """Where the device is: a pyserial URL or path and its baud rate (always 8N1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str = Field(min_length=1)
    baudrate: int = Field(9600, ge=300, le=921600)


def settings_problems(err: ValidationError, prefix: str = "settings") -> list[str]:
    """Every problem in a settings validation error as ``settings.field: message``."""
    problems = []
    for e in err.errors(include_input=False):
        loc = ".".join(str(p) for p in (prefix, *e["loc"]))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown setting (check its spelling)"
        elif e["type"] == "missing":
            msg = "required setting is missing"
        problems.append(f"{loc}: {msg}")
    return problems


def valid_regex(v: str) -> str:
    """Pydantic validator body: the string must compile as a Python regular expression."""
    try:
        re.compile(v)
    except re.error as e:
        raise ValueError(f"not a valid regular expression: {e}") from None
    return v


# --------------------------------------------------------------------------- driver
class Driver(ABC):
    """One device on one serial port.

    Methods take a lock, so a poller thread and a worker running ``wait_ready`` may share a
    driver. A closed driver opens its port on the next call; when the port fails the driver
    closes it and raises :class:`PortGone`, and the call after that tries to open it again.
    """

    name: ClassVar[str]
    Settings: ClassVar[type[DriverSettings]] = DriverSettings
    has_calls: ClassVar[bool] = False
    read_slice_s: ClassVar[float] = 0.02
    busy_codes: ClassVar[frozenset[str]] = frozenset()
    """Refusal codes that mean "not now" (initialising) rather than "never": an identity
    query refused with one is asked again later, not remembered as unsupported."""
    drain_max_s: float = 0.5
    """Longest time :meth:`_drain` reads before sending anyway (a device that keeps talking
    must not hold the port forever)."""
    late_reply_quiet_s: float = 0.25
    """After a timeout or an unreadable reply, the next command waits until the line has
    been quiet this long (at most ``drain_max_s``): the late answer is drained, not taken
    as the answer to the next command."""

    def __init__(self, serial_settings: SerialSettings | Mapping[str, Any],
                 settings: DriverSettings | Mapping[str, Any] | None = None, *,
                 device: str = "", clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.serial = (serial_settings if isinstance(serial_settings, SerialSettings)
                       else SerialSettings.model_validate(dict(serial_settings)))
        self.settings = self.validate_settings(settings or {})
        self.device = device or self.name
        self.clock = clock          # pacing and bookkeeping; I/O deadlines use real time
        self.sleep = sleep
        self._lock = threading.RLock()
        self._port: serial.SerialBase | None = None
        self._parser = self.new_parser()
        self.saw_garbage = False
        self._unsettled = False         # the last exchange failed: its answer may still come
        self._last_rx = 0.0             # time.monotonic() of the last bytes read
        self._leftover: deque[Any] = deque()    # frames read after an answer, not yet handled
        self._identity: DeviceIdentity | None = None    # read once per session
        self._reading_identity = False
        self._logged: set[str] = set()

    # ---- construction
    @classmethod
    def validate_settings(cls, settings: DriverSettings | Mapping[str, Any]) -> Any:
        """Validate a ``settings:`` mapping; raise :class:`SettingsError` with every problem."""
        if isinstance(settings, cls.Settings):
            return settings
        if isinstance(settings, DriverSettings):
            settings = settings.model_dump()
        if not isinstance(settings, Mapping):     # a number, a string, a list of pairs…
            raise SettingsError(["settings: must be a mapping of setting: value"])
        try:
            return cls.Settings.model_validate(dict(settings))
        except ValidationError as e:
            raise SettingsError(settings_problems(e)) from None

    # ---- lifecycle
    @property
    def is_open(self) -> bool:
        """True while the port is open."""
        return self._port is not None

    def open(self) -> None:
        """Open the port (exclusively) and get the device ready to talk; idempotent."""
        with self._lock:
            if self._port is not None:
                return
            try:
                port = serial.serial_for_url(self.serial.url, baudrate=self.serial.baudrate,
                                             timeout=self.read_slice_s, write_timeout=2.0,
                                             exclusive=True)
            except (serial.SerialException, OSError, ValueError) as e:
                raise PortGone(f"{self.device}: cannot open {self.serial.url}: "
                               f"{_why(e)}") from None
            self._port = port
            self._parser = self.new_parser()
            self.saw_garbage = False
            self._unsettled = False
            self._leftover.clear()
            self._identity = None           # a reopened port may lead to another device
            self.on_open()

    def close(self) -> None:
        """Close the port; safe to call twice and on a port that already vanished."""
        with self._lock:
            port, self._port = self._port, None
            if port is not None:
                with contextlib.suppress(serial.SerialException, OSError):
                    port.close()
            self._identity = None
            self.on_close()

    def __enter__(self) -> Driver:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return (f"<{type(self).__name__} {self.device} "
                f"{self.serial.url}@{self.serial.baudrate} {state}>")

    # ---- the contract
    @abstractmethod
    def power_state(self) -> PowerState:
        """What the device says about its power: on, standby, booting…"""

    @abstractmethod
    def wake(self) -> None:
        """Leave standby (or unmute, for amplifiers)."""

    @abstractmethod
    def standby(self) -> None:
        """Go to standby, ready to lose power."""

    def power_on(self) -> None:
        """Everyday word for :meth:`wake`."""
        self.wake()

    def call_state(self) -> CallInfo | None:
        """The call the device is in, or None. Devices without calls always say None."""
        return None

    def ping(self) -> None:
        """Raise a :class:`DeviceError` unless the device answers."""
        self.power_state()

    def identity(self) -> DeviceIdentity:
        """The device's model and serial number, read once per session and then remembered.

        A session ends when the port is (re)opened, and whenever the device stops answering
        or logs us out (it may have been swapped or restarted meanwhile): the next call reads
        again. A query this model refuses, or does not answer, gives None for what it would
        have told (logged once), and never fails liveness; a refusal that means "not now"
        (:attr:`busy_codes`) is raised and asked again later. An unreadable answer raises
        :class:`BadReply` and is not remembered: never a wrong serial.
        """
        with self._lock:
            if self._identity is None:
                self._reading_identity = True
                try:
                    ident = self.read_identity()
                except DeviceRefused as e:
                    if e.code in self.busy_codes:
                        raise
                    self.log_once("identity", "%s: cannot read the model and serial number: "
                                  "%s", self.device, e)
                    ident = DeviceIdentity()
                except DeviceTimeout as e:
                    self.log_once("identity", "%s: cannot read the model and serial number: "
                                  "%s", self.device, e)
                    ident = DeviceIdentity()
                finally:
                    self._reading_identity = False
                self._identity = ident
            return self._identity

    @property
    def known_identity(self) -> DeviceIdentity:
        """The identity read in this session, without asking the device (empty if none)."""
        return self._identity or DeviceIdentity()

    def forget_identity(self) -> None:
        """The device may have changed (restarted, logged us out): read it again next time."""
        if not self._reading_identity:
            self._identity = None

    def log_once(self, key: str, message: str, *args: object) -> None:
        """Log a warning the first time ``key`` comes up for this driver, never again."""
        if key not in self._logged:
            self._logged.add(key)
            log.warning(message, *args)

    # ---- hooks for subclasses
    def new_parser(self) -> Any:
        """A fresh framing parser (its ``feed(bytes)`` returns frames)."""
        from agent.drivers.framing.lines import LineSplitter

        return LineSplitter()

    def on_open(self) -> None:  # noqa: B027 - optional hook
        """Called with the lock held just after the port opened."""

    def on_close(self) -> None:  # noqa: B027 - optional hook
        """Called with the lock held after the port closed (forget session state)."""

    def on_unsolicited(self, frame: Any) -> None:  # noqa: B027 - optional hook
        """A frame that answers no command (notification, banner…)."""

    def read_identity(self) -> DeviceIdentity:
        """Ask the device its model and serial (hook for :meth:`identity`); the default: the
        protocol tells neither."""
        return DeviceIdentity()

    command_gap_s: float = 0.0
    """Least time between two commands (Poly wants ~200 ms), kept with ``clock``/``sleep``."""
    _last_tx: float | None = None

    # ---- transport helpers for subclasses
    def _ensure_open(self) -> serial.SerialBase:
        if self._port is None:
            self.open()
        assert self._port is not None
        return self._port

    def _port_failed(self, e: BaseException, doing: str) -> PortGone:
        self.close()
        return PortGone(f"{self.device}: serial port {self.serial.url} failed while {doing}: "
                        f"{_why(e)}")

    def _write(self, data: bytes) -> None:
        port = self._ensure_open()
        try:
            port.write(data)
            port.flush()
        except serial.SerialTimeoutException:
            raise DeviceTimeout(f"{self.device}: cannot write (flow control stuck?)") from None
        except (serial.SerialException, OSError) as e:
            raise self._port_failed(e, "writing") from None

    def _read_frames(self) -> list[Any]:
        """Wait at most one read slice for bytes; return the frames they complete."""
        port = self._ensure_open()
        try:
            data = port.read(port.in_waiting or 1)
        except (serial.SerialException, OSError, TypeError) as e:
            # TypeError: pyserial's posix read can hit a closed fd mid-call.
            raise self._port_failed(e, "reading") from None
        if not data:
            return []
        self._last_rx = time.monotonic()
        frames = list(self._parser.feed(data))
        if any(isinstance(f, Garbage) for f in frames):
            self.saw_garbage = True
        return frames

    def _in_waiting(self, port: serial.SerialBase) -> int:
        try:
            return int(port.in_waiting)
        except (serial.SerialException, OSError, TypeError) as e:
            raise self._port_failed(e, "reading") from None

    def _drain(self) -> None:
        """Hand over whatever arrived unasked, then forget half-received noise.

        Frames that came after an earlier answer (in the same read) are handed over first.
        A half-received message may just be mid-flight, so it gets one read slice to finish
        before it is thrown away. After a failed exchange (timeout, unreadable reply) the
        line must stay quiet for ``late_reply_quiet_s`` first, so that a late answer is not
        taken for the answer to the next command. Never longer than ``drain_max_s``.
        """
        port = self._ensure_open()
        while self._leftover:
            frame = self._leftover.popleft()
            if not isinstance(frame, Garbage):
                self.on_unsolicited(frame)
        start = time.monotonic()
        deadline = start + self.drain_max_s
        quiet = self.late_reply_quiet_s if self._unsettled else 0.0
        waited = False
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if not self._in_waiting(port):
                if quiet:
                    if now - max(start, self._last_rx) >= quiet:
                        break
                elif waited or not self._parser.pending:
                    break
                else:
                    waited = True
            for frame in self._read_frames():
                if not isinstance(frame, Garbage):
                    self.on_unsolicited(frame)
        self._parser.discard_partial()
        self.saw_garbage = False
        self._unsettled = False

    def _exchange(self, data: bytes | None, handle: Callable[[Any], T | None], *,
                  what: str, timeout: float | None = None, drain: bool = True,
                  see_garbage: bool = False) -> T:
        """Send ``data`` and feed each frame to ``handle`` until it returns a result.

        ``see_garbage``: :class:`Garbage` frames go to ``handle`` too (a reply block must
        raise :class:`BadReply` on one rather than answer without the line it lost); by
        default they are skipped, and only noise with no answer is a BadReply.

        Frames after the answer are kept: the next exchange hands them to
        :meth:`on_unsolicited` when it drains, else to its own ``handle`` first.

        ``handle`` returns None for frames that are not the answer (it passes those to
        :meth:`on_unsolicited` itself if they matter), :class:`KeepWaiting` to move the
        deadline (an acknowledgement before the real answer), and may raise
        :class:`DeviceRefused` or :class:`BadReply`. Silence raises :class:`DeviceTimeout`, or
        :class:`BadReply` when only noise came back.
        """
        with self._lock:
            if drain:
                self._drain()
            if data is not None:
                if self.command_gap_s and self._last_tx is not None:
                    wait = self._last_tx + self.command_gap_s - self.clock()
                    if wait > 0:
                        self.sleep(wait)
                self._write(data)
                self._last_tx = self.clock()
            limit = self.settings.reply_timeout_s if timeout is None else timeout
            deadline = time.monotonic() + limit
            while True:
                if self._leftover:      # frames that followed an earlier answer come first
                    frames = list(self._leftover)
                    self._leftover.clear()
                else:
                    frames = self._read_frames()
                for i, frame in enumerate(frames):
                    if isinstance(frame, Garbage) and not see_garbage:
                        continue
                    try:
                        result = handle(frame)
                    except BaseException as e:
                        self._leftover.extend(frames[i + 1:])
                        if isinstance(e, BadReply):
                            # The rest of the reply is still coming: drain it, and the device
                            # may not be the one we knew.
                            self._unsettled = True
                            self.forget_identity()
                        raise
                    if isinstance(result, KeepWaiting):
                        deadline = time.monotonic() + result.seconds
                        limit, what = result.seconds, result.what or what
                        continue
                    if result is not None:
                        # What came after the answer is for on_unsolicited or the next exchange
                        self._leftover.extend(frames[i + 1:])
                        return result
                if time.monotonic() >= deadline:
                    break
            self._unsettled = True      # the answer may still be on its way
            self.forget_identity()      # silent or garbled: it may be another device after
            if self.saw_garbage:
                raise BadReply(f"{self.device}: unreadable reply to {what} "
                               "(noise or wrong baud rate?)")
            raise DeviceTimeout(f"{self.device}: no reply to {what} within {limit:g} s")


def _why(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:200]
