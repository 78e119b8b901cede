"""Extron SIS framing: commands need no terminator; replies are lines ending CR LF.

``Amt1``/``Amt0`` mute, ``Vol082`` volume, ``E13`` style errors, the power-up banner
``(c) Copyright …``; a query's bare value (``1``, ``082``, ``1.00``) is read in the context of
the command that asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.drivers.framing.lines import Garbage, LineParser

SIS_ERRORS = {
    "E01": "invalid input number",
    "E10": "invalid command",
    "E11": "invalid preset number",
    "E12": "invalid port number",
    "E13": "invalid value (out of range)",
    "E14": "not valid for this configuration",
    "E17": "invalid command for signal type",
    "E22": "busy",
    "E24": "privilege violation",
    "E25": "device not present",
}


@dataclass(frozen=True)
class Mute:
    """``Amt1`` (muted) / ``Amt0``."""

    muted: bool


@dataclass(frozen=True)
class Volume:
    """``Vol082``."""

    level: int


@dataclass(frozen=True)
class SisError:
    """``E13`` and friends."""

    code: str

    @property
    def text(self) -> str:
        """What the code means."""
        return SIS_ERRORS.get(self.code, "error")


@dataclass(frozen=True)
class Banner:
    """The power-up copyright line."""

    text: str


@dataclass(frozen=True)
class Value:
    """Any other line: a query's bare answer."""

    text: str


Frame = Mute | Volume | SisError | Banner | Value | Garbage

_MUTE = re.compile(r"^Amt([01])$")
_VOL = re.compile(r"^Vol(\d{1,3})$")
_ERR = re.compile(r"^E\d\d$")


def classify(text: str) -> Frame:
    """One line as a frame."""
    s = text.strip()
    if m := _MUTE.match(s):
        return Mute(m[1] == "1")
    if m := _VOL.match(s):
        return Volume(int(m[1]))
    if _ERR.match(s):
        return SisError(s)
    if s.lower().startswith("(c)"):
        return Banner(s)
    return Value(s)


class SisParser(LineParser[Frame]):
    """Bytes → SIS frames."""

    def __init__(self) -> None:
        super().__init__(classify)
