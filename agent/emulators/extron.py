"""Extron SIS amplifier emulator (MLA VC10 Plus flavour).

Commands need no terminator: a command ends at its letter (``1Z``, ``82V``, ``Q``). The
power-up banner is sent when boot ends. ``query_style="bare"`` answers ``Z`` with ``1`` and
``V`` with ``082``; ``"tagged"`` with ``Amt1`` / ``Vol082``. ``N`` answers ``part_number``
(None: ``E10``, as a model without the query would).
"""

from __future__ import annotations

from typing import Literal

from agent.emulators.base import Emulator


class ExtronEmulator(Emulator):
    """Emulated Extron MLA VC10 Plus; see the module docstring."""

    link_name = "ttyAMP"

    def __init__(self, *, query_style: Literal["bare", "tagged"] = "bare", muted: bool = False,
                 volume: int = 50, part_number: str | None = "60-1234-01",
                 **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.part_number = part_number
        self.query_style = query_style
        self.volume = volume
        self.muted = muted

    def reset_state(self) -> None:
        self.muted = False          # volume is kept in non-volatile memory

    def on_booted(self) -> None:
        self._emit(b"", (f"(c) Copyright 2019, Extron Electronics, MLA VC10 PLUS, V1.00, "
                         f"{self.part_number or '60-0000-00'}\r\n").encode())

    def split_commands(self, buf: bytearray) -> list[bytes]:
        out: list[bytes] = []
        start = 0
        for i, b in enumerate(buf):
            if chr(b).isalpha() or b >= 0x80:
                out.append(bytes(buf[start:i + 1]).lstrip(b"\r\n "))
                start = i + 1
        del buf[:start]
        return out

    def error_reply(self, command: bytes) -> bytes:
        return b"E13\r\n"

    def handle(self, command: bytes) -> bytes:
        text = command.decode("latin-1")
        arg, letter = text[:-1], text[-1:].upper()
        tagged = self.query_style == "tagged"
        if letter == "Z":
            if arg == "":
                return (f"Amt{int(self.muted)}" if tagged else str(int(self.muted))
                        ).encode() + b"\r\n"
            if arg in ("0", "1"):
                self.muted = arg == "1"
                return f"Amt{arg}\r\n".encode()
            return b"E13\r\n"
        if letter == "V":
            if arg == "":
                return (f"Vol{self.volume:03d}" if tagged else f"{self.volume:03d}"
                        ).encode() + b"\r\n"
            if arg.isdigit() and int(arg) <= 100:
                self.volume = int(arg)
                return f"Vol{self.volume:03d}\r\n".encode()
            return b"E13\r\n"
        if letter == "N" and arg == "" and self.part_number is not None:
            return f"{self.part_number}\r\n".encode()
        if letter == "Q" and arg == "":
            return b"1.00\r\n"
        return b"E10\r\n"
