"""``scripted://<name>``: a pyserial port that answers each write with the next scripted chunk.

Registered through pyserial's own extension point (``serial.protocol_handler_packages``, as
``loop://`` and ``socket://`` are), so a driver opens it with the unpatched
``serial.serial_for_url``. The bad-input campaign scripts arbitrary answers (garbage, partial
frames) and a write that fails, as a USB adapter pulled mid-exchange would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from serial import PortNotOpenError, SerialBase, SerialException


@dataclass
class Script:
    answers: list[bytes]
    fail_after: int | None = None
    writes: int = 0
    buf: bytearray = field(default_factory=bytearray)


SCRIPTS: dict[str, Script] = {}


class Serial(SerialBase):  # type: ignore[misc]
    """The scripted port; see the module docstring."""

    def open(self) -> None:
        name = str(self.portstr).removeprefix("scripted://")
        if name not in SCRIPTS:
            raise SerialException(f"no script named {name!r}")
        self._script = SCRIPTS[name]
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def _reconfigure_port(self, *args: Any) -> None:
        pass

    def _check(self) -> Script:
        if not self.is_open:
            raise PortNotOpenError()
        return self._script

    @property
    def in_waiting(self) -> int:
        return len(self._check().buf)

    def write(self, data: bytes) -> int:
        s = self._check()
        s.writes += 1
        if s.fail_after is not None and s.writes > s.fail_after:
            raise OSError(5, "Input/output error")
        if s.answers:
            s.buf += s.answers.pop(0)
        return len(data)

    def flush(self) -> None:
        self._check()

    def read(self, size: int = 1) -> bytes:
        s = self._check()
        out = bytes(s.buf[:size])
        del s.buf[:size]
        return out

    def reset_input_buffer(self) -> None:
        self._check().buf.clear()

    def reset_output_buffer(self) -> None:
        self._check()
