"""Sony VISCA camera emulator (one camera at address 1 once addressed).

At power-up it sends Network Change ``90 38 FF`` and forgets its address; until Address Set
it ignores addressed commands. While initialising (``boot_s``) it refuses commands and
inquiries with ``z0 6y 41 FF`` (not executable); ``address_set_while_booting="refuse"``
makes it answer the Address Set broadcast that way too (``90 61 41 FF``), as some cameras do.
``completion_delay_s``: power commands are acknowledged at once and completed that much (real
time) later. CAM_VersionInq ``8x 09 00 02 FF`` answers ``vendor_id``, ``model_id`` and
``rom_version`` (``version_inquiry=False``: a syntax error, as on cameras without it).
"""

from __future__ import annotations

from typing import Literal

from agent.emulators.base import Emulator

MAX_PACKET = 16


class ViscaEmulator(Emulator):
    """Emulated Sony SRG/EVI camera; see the module docstring."""

    link_name = "ttyCAMERA"
    answers_while_booting = True

    def __init__(self, *, standby: bool = False, addressed: bool = True,
                 completion_delay_s: float = 0.0,
                 address_set_while_booting: Literal["answer", "refuse"] = "answer",
                 vendor_id: int = 0x0001, model_id: int = 0x0519, rom_version: int = 0x0110,
                 version_inquiry: bool = True, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.vendor_id, self.model_id, self.rom_version = vendor_id, model_id, rom_version
        self.version_inquiry = version_inquiry
        self.completion_delay_s = completion_delay_s
        self.address_set_while_booting = address_set_while_booting
        self.reset_state()
        self.on = not standby
        self.address: int | None = 1 if addressed else None

    def reset_state(self) -> None:
        self.on = True
        self.address = None

    def on_power_up(self) -> None:
        self._emit(b"", bytes([0x90, 0x38, 0xFF]))

    def split_commands(self, buf: bytearray) -> list[bytes]:
        out: list[bytes] = []
        while (end := buf.find(b"\xff")) >= 0:
            out.append(bytes(buf[:end + 1]))
            del buf[:end + 1]
        if len(buf) > MAX_PACKET:
            out.append(bytes(buf))      # too long: answered with a length error
            buf.clear()
        return out

    def garble(self, reply: bytes, first: int, last: int, junk: bytes) -> bytes:
        """``junk`` in the middle of the reply's bytes (packets have no lines)."""
        mid = len(reply) // 2
        return reply[:mid] + junk + reply[mid:]

    def error_reply(self, command: bytes) -> bytes:
        return bytes([0x90, 0x60, 0x03, 0xFF])          # command buffer full

    def handle(self, p: bytes) -> bytes:
        if len(p) > MAX_PACKET or not p.endswith(b"\xff"):
            return bytes([0x90, 0x60, 0x01, 0xFF])
        if p == bytes([0x88, 0x30, 0x01, 0xFF]):        # Address Set broadcast
            if self.booting and self.address_set_while_booting == "refuse":
                return bytes([0x90, 0x61, 0x41, 0xFF])  # not executable (initialising)
            self.address = 1
            return bytes([0x88, 0x30, 0x02, 0xFF])
        if p == bytes([0x88, 0x01, 0x00, 0x01, 0xFF]):  # IF_Clear broadcast
            return p
        if self.address is None or p[0] != 0x80 | self.address:
            return b""                                  # not for us
        body = p[1:-1]
        if self.booting:
            socket = 0 if body[:1] == b"\x09" else 1
            return bytes([0x90, 0x60 | socket, 0x41, 0xFF])
        if body == b"\x01\x00\x01":                     # IF_Clear to this camera
            return bytes([0x90, 0x50, 0xFF])
        if body == b"\x09\x00\x02" and self.version_inquiry:  # CAM_VersionInq
            words = b"".join(bytes([(w >> 8) & 0x7F, w & 0x7F])
                             for w in (self.vendor_id, self.model_id, self.rom_version))
            return bytes([0x90, 0x50]) + words + bytes([0x02, 0xFF])
        if body == b"\x09\x04\x00":                     # power inquiry
            return bytes([0x90, 0x50, 0x02 if self.on else 0x03, 0xFF])
        if body in (b"\x01\x04\x00\x02", b"\x01\x04\x00\x03"):
            self.on = body[-1] == 0x02
            if self.completion_delay_s:         # the head moves: ACK now, completion later
                self._write(bytes([0x90, 0x41, 0xFF]))
                if self._stop.wait(self.completion_delay_s):
                    return b""
                return bytes([0x90, 0x51, 0xFF])
            return bytes([0x90, 0x41, 0xFF, 0x90, 0x51, 0xFF])
        return bytes([0x90, 0x60, 0x02, 0xFF])          # syntax error
