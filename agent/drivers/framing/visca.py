"""Sony VISCA over RS-232: binary packets ``header … FF``.

The header byte has its top bit set (``8X`` from the controller, ``(X+8)0`` from camera X);
body bytes are below 0x80; ``FF`` ends a packet. So noise in front of a packet is found by
looking for the last header byte before ``FF``, and reported as :class:`Garbage`.

Replies: ACK ``z0 4y FF``, completion ``z0 5y … FF``, error ``z0 6y ee FF``, Network Change
``z0 38 FF``, Address Set ``88 30 0w FF``, IF_Clear ``88 01 00 01 FF``.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.drivers.framing.lines import Garbage

MAX_PACKET = 16

ERRORS = {
    0x01: "message length error",
    0x02: "syntax error",
    0x03: "command buffer full",
    0x04: "command cancelled",
    0x05: "no socket",
    0x41: "command not executable",
}


@dataclass(frozen=True)
class Ack:
    """``z0 4y FF``: command accepted into socket y."""

    address: int
    socket: int


@dataclass(frozen=True)
class Completion:
    """``z0 5y … FF``: command done, or an inquiry's answer in ``data``."""

    address: int
    socket: int
    data: bytes


@dataclass(frozen=True)
class ViscaError:
    """``z0 6y ee FF``."""

    address: int
    socket: int
    code: int

    @property
    def text(self) -> str:
        """What the error code means."""
        return ERRORS.get(self.code, f"error {self.code:#04x}")


@dataclass(frozen=True)
class NetworkChange:
    """``z0 38 FF``: a camera powered up; addresses must be set again."""

    address: int


@dataclass(frozen=True)
class AddressSet:
    """``88 30 0w FF`` back from the chain: ``next_address`` is one past the last camera."""

    next_address: int


@dataclass(frozen=True)
class IfClear:
    """``88 01 00 01 FF`` back from the chain."""


@dataclass(frozen=True)
class Other:
    """A well-formed packet of a kind we do not use (e.g. our own command echoed)."""

    packet: bytes


Frame = Ack | Completion | ViscaError | NetworkChange | AddressSet | IfClear | Other | Garbage


def classify(packet: bytes) -> Frame:
    """One packet (header … FF) as a frame."""
    head = packet[0]
    body = packet[1:-1]
    if head == 0x88:
        if len(body) == 2 and body[0] == 0x30:
            return AddressSet(body[1])
        if body == b"\x01\x00\x01":
            return IfClear()
        return Other(packet)
    if head & 0x0F or not 0x90 <= head <= 0xF0:
        return Other(packet)
    address = (head >> 4) - 8
    if not body:
        return Other(packet)
    kind, socket = body[0] >> 4, body[0] & 0x0F
    if kind == 4 and len(body) == 1:
        return Ack(address, socket)
    if kind == 5:
        return Completion(address, socket, bytes(body[1:]))
    if kind == 6 and len(body) == 2:
        return ViscaError(address, socket, body[1])
    if body == b"\x38":
        return NetworkChange(address)
    return Other(packet)


class ViscaParser:
    """Bytes → VISCA frames; resynchronises on noise (see the module docstring)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return the frames they complete."""
        out: list[Frame] = []
        self._buf += data
        while (end := self._buf.find(b"\xff")) >= 0:
            chunk = bytes(self._buf[:end + 1])
            del self._buf[:end + 1]
            start = max((i for i, b in enumerate(chunk[:-1]) if b & 0x80), default=None)
            if start is None:
                out.append(Garbage(chunk))
                continue
            if start:
                out.append(Garbage(chunk[:start]))
            packet = chunk[start:]
            out.append(classify(packet) if len(packet) >= 3 else Garbage(packet))
        if len(self._buf) > MAX_PACKET:
            out.append(Garbage(bytes(self._buf)))
            self._buf.clear()
        return out

    @property
    def pending(self) -> bool:
        """True while an unfinished packet is buffered."""
        return bool(self._buf)

    def discard_partial(self) -> None:
        """Forget an unfinished packet."""
        self._buf.clear()


def packet(address: int, *body: int) -> bytes:
    """Build ``8X body… FF`` for camera ``address`` (1–7)."""
    return bytes([0x80 | address, *body, 0xFF])


ADDRESS_SET = bytes([0x88, 0x30, 0x01, 0xFF])
IF_CLEAR = bytes([0x88, 0x01, 0x00, 0x01, 0xFF])
