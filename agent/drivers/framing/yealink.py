"""Yealink VC series RS-232 / TCP 6024 framing: ASCII lines ending CR LF, case-sensitive.

``sysstatus get`` answers one of sleeping / idle / outgoing / ringing / talking / finished
(the exact line shape is unconfirmed: any line whose last word is one of them counts).
``version "model:…"`` arrives unasked on connect. Errors: ``error: command not found``,
``error: command has illegal parameters``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.drivers.framing.lines import Garbage, LineParser

SYSSTATES = ("sleeping", "idle", "outgoing", "ringing", "talking", "finished")


@dataclass(frozen=True)
class SysStatus:
    """The answer to ``sysstatus get``."""

    state: str


@dataclass(frozen=True)
class Version:
    """``version "model:VC800 …"``: what the codec says it is."""

    text: str


@dataclass(frozen=True)
class YealinkError:
    """``error: …``."""

    text: str


@dataclass(frozen=True)
class Line:
    """Any other line (``ok``, an echo…)."""

    text: str


Frame = SysStatus | Version | YealinkError | Line | Garbage

_SYS = re.compile(r"^(?:sysstatus\b[\s:=]*)?(\w+)$")


def classify(text: str) -> Frame:
    """One line as a frame."""
    s = text.strip()
    if s.startswith("error:"):
        return YealinkError(s[6:].strip())
    if s.startswith("version"):
        return Version(s[7:].strip().strip('"'))
    m = _SYS.match(s)
    if m and m[1] in SYSSTATES:
        return SysStatus(m[1])
    return Line(s)


class YealinkParser(LineParser[Frame]):
    """Bytes → Yealink frames."""

    def __init__(self) -> None:
        super().__init__(classify)
